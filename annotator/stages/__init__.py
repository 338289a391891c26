"""Stage logic: what to ask the models for each segment and how to judge the answers (no Ray, no SQL)."""

from annotator.stages import distill, plot, script
from annotator.stages.distill import ThinkingDistiller
from annotator.stages.plot import PlotReasoner, synopsis
from annotator.stages.quality import QualityGates
from annotator.stages.script import ScriptWriter
from annotator.stages.segment import SegmentInput

# The prompt templates (stage, version) each engine stage renders.
PROMPT_FILES: dict[str, list[tuple[str, int]]] = {
    "plot": [("plot_first", plot.PROMPT_VERSION), ("plot_next", plot.PROMPT_VERSION)],
    "script": [("script", script.PROMPT_VERSION)],
    "distill": [("distill", distill.PROMPT_VERSION)],
}

__all__ = [
    "PROMPT_FILES",
    "PlotReasoner",
    "QualityGates",
    "ScriptWriter",
    "SegmentInput",
    "ThinkingDistiller",
    "synopsis",
]
