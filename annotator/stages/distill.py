"""Thinking distillation (paper §3.2): a text model writes the reasoning that leads from plot to script."""

from __future__ import annotations

from annotator.gateway import Gateway, StageAsk, StructuredResult
from annotator.prompting import render
from annotator.schemas import DistilledThinking, PlotReasoning, Script
from annotator.schemas.contract import AnswerContract, codes_in

PROMPT_VERSION = 1  # prompts/distill.v1.md


class ThinkingDistiller:
    def __init__(
        self, gateway: Gateway, *, backend: str, model: str, prompt_version: int = PROMPT_VERSION
    ) -> None:
        self.gateway, self.backend, self.model, self.version = gateway, backend, model, prompt_version

    def distill(self, plot: PlotReasoning, script: Script) -> StructuredResult[DistilledThinking]:
        return self.gateway.ask(self.ask(plot, script))

    def ask(self, plot: PlotReasoning, script: Script) -> StageAsk:
        plot_view = plot.model_dump(
            mode="json",
            include={"segment_info", "characters", "plot_summary", "relationships"},
            exclude_none=True,
        )
        script_view = script.model_dump(mode="json", exclude_none=True)
        prompt = render("distill", self.version, plot=plot_view, script=script_view)
        return StageAsk(
            stage="distill",
            backend=self.backend,
            model=self.model,
            prompt=prompt,
            schema_type=DistilledThinking,
            # the thinking may name only the characters its plot and script blocks name
            contract=AnswerContract(known_codes=frozenset(codes_in([plot_view, script_view]))),
        )
