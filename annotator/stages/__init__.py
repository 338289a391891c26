"""Stage logic: what to ask the models for each segment and how to judge the answers (no Ray, no SQL)."""

from annotator.stages.distill import ThinkingDistiller
from annotator.stages.plot import PlotReasoner, synopsis
from annotator.stages.quality import QualityGates
from annotator.stages.script import ScriptWriter
from annotator.stages.segment import SegmentInput

__all__ = ["PlotReasoner", "QualityGates", "ScriptWriter", "SegmentInput", "ThinkingDistiller", "synopsis"]
