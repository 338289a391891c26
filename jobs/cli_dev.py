"""Developer tools: the demo, the sample film and the simulator — for trying and testing the engine, never
part of a production run (grouped apart in `v2s --help`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from jobs.cli_common import console, escape

DEV_PANEL = "Developer tools"


def register(app: typer.Typer) -> None:
    @app.command(rich_help_panel=DEV_PANEL)
    def demo(
        out: Annotated[Path, typer.Option(help="where the demo writes everything")] = Path("v2s-demo"),
        max_segment_s: Annotated[float, typer.Option(help="segment length for the demo film")] = 60.0,
        imperfection: Annotated[
            float, typer.Option(help="how far the simulated models drift from the truth")
        ] = 0.3,
    ) -> None:
        """Render the sample film, start the simulator, run the pipeline against it and score the result."""
        from jobs.demo import run_demo

        raise typer.Exit(run_demo(out, max_segment_s, console, imperfection))

    @app.command("sample-film", rich_help_panel=DEV_PANEL)
    def sample_film(
        out: Annotated[Path, typer.Option(help="folder for the film and its screenplay")],
        screenplay: Annotated[
            Path | None, typer.Option(help="screenplay JSON (default: the bundled one)")
        ] = None,
    ) -> None:
        """Render a screenplay into an MP4 with ffmpeg (the ground truth for the simulator and `v2s eval`)."""
        from annotator.simulator.film import render_sample

        film, play = render_sample(out, screenplay)
        console.print(f"film: {escape(str(film))}\nscreenplay: {escape(str(play))}")

    @app.command("sim-server", rich_help_panel=DEV_PANEL)
    def sim_server(
        screenplay: Annotated[
            Path | None, typer.Option(help="screenplay JSON (default: the bundled one)")
        ] = None,
        host: Annotated[str, typer.Option(help="bind address (loopback)")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="port")] = 8765,
        imperfection: Annotated[
            float, typer.Option(help="0 = exact answers; 0.3 = drifts like a real model")
        ] = 0.0,
        faults: Annotated[
            Path | None, typer.Option(help="scenario JSON file of fault rules (docs/simulator.md)")
        ] = None,
        fault: Annotated[
            list[str] | None,
            typer.Option(help="a fault rule KIND[@STAGE][:TIMES], e.g. rate_limit@script:2 (repeatable)"),
        ] = None,
    ) -> None:
        """Serve the Gemini and OpenAI APIs from a screenplay, for tests and demos (never for production)."""
        from pydantic import ValidationError

        from annotator.simulator.scenarios import Scenario
        from annotator.simulator.server import serve

        try:
            scenario = Scenario.load(faults) if faults else Scenario()
            scenario = scenario.plus(Scenario.from_flags(fault or []))
        except (OSError, ValueError, ValidationError) as exc:
            console.print(f"[red]bad fault scenario:[/red] {escape(str(exc))}")
            raise typer.Exit(2) from None
        serve(screenplay, host, port, imperfection, scenario if scenario.rules else None)
