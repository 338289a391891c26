"""The V2S metrics (paper §4.1): temporally-aware hierarchical evaluation of video scripts.

Stages: alignment (`evaluation.alignment`), character mapping (`evaluation.characters`), fields
(`evaluation.fields`), temporal hit rate (`evaluation.temporal`), at event and scene level. Standalone: it imports
nothing of the pipeline. See docs/evaluation.md.
"""

from evaluation import judges
from evaluation.core import (
    DatasetResult,
    EvalSettings,
    VideoResult,
    evaluate,
    evaluate_dataset,
    segmented_reward,
)
from evaluation.judges import Judge, JudgeError, LexicalJudge, LLMJudge, get_judge
from evaluation.loader import load_scripts
from evaluation.metrics import Counts, LevelResult
from evaluation.schema import Script

__all__ = [
    "Counts",
    "DatasetResult",
    "EvalSettings",
    "Judge",
    "JudgeError",
    "LLMJudge",
    "LevelResult",
    "LexicalJudge",
    "Script",
    "VideoResult",
    "evaluate",
    "evaluate_dataset",
    "get_judge",
    "judges",
    "load_scripts",
    "segmented_reward",
]
