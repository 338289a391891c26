"""Fine-grained script generation from the video, the plot synopsis and the fixed character ids (Fig. 11)."""

from __future__ import annotations

from annotator.gateway import Gateway, StageAsk, StructuredResult
from annotator.prompting import render
from annotator.schemas import CharacterProfile, Script
from annotator.schemas.context import PROMPT_FIELDS
from annotator.schemas.contract import AnswerContract, codes_in
from annotator.stages.segment import SegmentInput

PROMPT_VERSION = 1  # prompts/script.v1.md


class ScriptWriter:
    def __init__(
        self, gateway: Gateway, *, backend: str, model: str, prompt_version: int = PROMPT_VERSION
    ) -> None:
        self.gateway, self.backend, self.model, self.version = gateway, backend, model, prompt_version

    def write(
        self, segment: SegmentInput, profiles: list[CharacterProfile], synopsis: str
    ) -> StructuredResult[Script]:
        return self.gateway.ask(self.ask(segment, profiles, synopsis))

    def ask(self, segment: SegmentInput, profiles: list[CharacterProfile], synopsis: str) -> StageAsk:
        prompt = render(
            "script",
            self.version,
            duration=segment.duration_label,
            character_profiles=[p.model_dump(include=PROMPT_FIELDS, exclude_none=True) for p in profiles],
            synopsis=synopsis or "(no synopsis)",
        )
        return StageAsk(
            stage="script",
            backend=self.backend,
            model=self.model,
            prompt=prompt,
            schema_type=Script,
            media=segment.media,
            # the script uses the profiles' ids only (codes the synopsis shows belong to them or to former codes)
            contract=AnswerContract(
                known_codes=frozenset(
                    codes_in([[p.id, *p.former_codes] for p in profiles]) | codes_in(synopsis)
                ),
                clip_s=segment.duration_s,
            ),
        )
