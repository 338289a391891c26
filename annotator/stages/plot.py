"""Character-centric plot reasoning (paper §3.2, Fig. 9/10), conditioned on the CPM's context."""

from __future__ import annotations

from annotator.gateway import Gateway, StageAsk, StructuredResult
from annotator.prompting import render
from annotator.schemas import (
    CharacterContext,
    FirstSegmentPlot,
    NextSegmentPlot,
    PlotReasoning,
    format_timestamp,
)
from annotator.schemas.context import PROMPT_FIELDS
from annotator.schemas.contract import AnswerContract, codes_in
from annotator.schemas.plot import replace_codes
from annotator.stages.segment import SegmentInput

PROMPT_VERSION = 2  # v2: name classes, name_evidence and same_as proposals (prompts/README.md)


class PlotReasoner:
    def __init__(
        self, gateway: Gateway, *, backend: str, model: str, prompt_version: int = PROMPT_VERSION
    ) -> None:
        self.gateway, self.backend, self.model, self.version = gateway, backend, model, prompt_version

    def reason(
        self, segment: SegmentInput, context: CharacterContext | None
    ) -> StructuredResult[PlotReasoning]:
        return self.gateway.ask(self.ask(segment, context))

    def ask(self, segment: SegmentInput, context: CharacterContext | None) -> StageAsk:
        """The first segment of a scope starts cold; every later one sees the known characters and the story."""
        cold = context is None or (not context.characters and not context.previous_summary)
        known: set[str] = set()
        if cold:
            prompt = render(
                "plot_first", self.version, segment_index=segment.index, duration=segment.duration_label
            )
            schema = FirstSegmentPlot
        else:
            profiles = [p.model_dump(include=PROMPT_FIELDS, exclude_none=True) for p in context.characters]
            prompt = render(
                "plot_next",
                self.version,
                segment_index=segment.index,
                duration=segment.duration_label,
                character_context=profiles,
                previous_summary=context.previous_summary or "(no summary of the previous clip)",
            )
            schema = NextSegmentPlot
            # the codes the prompt showed (profiles, and the summary, which may name one the budget left out)
            known = codes_in([[p.id, *p.former_codes] for p in context.characters]) | codes_in(
                context.previous_summary or ""
            )
        return StageAsk(
            stage="plot",
            backend=self.backend,
            model=self.model,
            prompt=prompt,
            schema_type=schema,
            media=segment.media,
            contract=AnswerContract(known_codes=frozenset(known), clip_s=segment.duration_s),
        )


def synopsis(plot: PlotReasoning, code_map: dict[str, str]) -> str:
    """The plot as a synopsis for script generation, with the model's ids replaced by canonical codes."""

    def canon(code: str) -> str:
        return code_map.get(code, code)

    lines = [replace_codes(plot.plot_summary.narrative.strip(), canon)]
    if plot.plot_summary.main_events:
        lines.append("")
        lines.append("Main events:")
        for event in plot.plot_summary.main_events:
            who = ", ".join(canon(c) for c in event.involved_characters)
            suffix = f" ({who})" if who else ""
            lines.append(
                f"- {format_timestamp(event.timestamp)} {replace_codes(event.description, canon)}{suffix}"
            )
    return "\n".join(lines).strip()
