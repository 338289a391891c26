"""The V2S metrics (paper §4.1): temporally-aware hierarchical evaluation of video scripts.

Stages: alignment (`evaluation.alignment`), character mapping (`evaluation.characters`), fields
(`evaluation.fields`), temporal hit rate (`evaluation.temporal`), at event and scene level. A v2s addition, not in
the paper: B-cubed character identity across a whole video (`evaluation.identity`). Standalone: it imports nothing
of the pipeline. See docs/evaluation.md.
"""

from evaluation import judges
from evaluation.alignment import AlignSettings
from evaluation.core import (
    DatasetResult,
    EvalSettings,
    VideoResult,
    evaluate,
    evaluate_dataset,
    segmented_reward,
)
from evaluation.identity import (
    IdentityCluster,
    IdentityItem,
    IdentityResult,
    identity_items,
    pool_by_scope,
    score_identity,
)
from evaluation.judges import Judge, JudgeError, LexicalJudge, LLMJudge, get_judge
from evaluation.loader import load_scripts
from evaluation.metrics import Counts, LevelResult
from evaluation.schema import Script

__all__ = [
    "AlignSettings",
    "Counts",
    "DatasetResult",
    "EvalSettings",
    "IdentityCluster",
    "IdentityItem",
    "IdentityResult",
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
    "identity_items",
    "judges",
    "load_scripts",
    "pool_by_scope",
    "score_identity",
    "segmented_reward",
]
