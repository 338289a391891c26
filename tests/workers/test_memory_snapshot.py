"""A segment's script is asked with the memory as of its own place in the chain (#30: deterministic records).

Later plots of the chain may be applied before a segment's script is asked (they run as soon as the previous
plot is in; scripts wait for a free worker). If the script prompt read the memory as it is when the script is
asked, a name learned two segments later would leak into an earlier segment's prompt on one run and not on
another, and two fault-free runs would write different records."""

from __future__ import annotations

from sqlalchemy import update

from annotator.gateway.structured import StructuredResult, Usage
from annotator.schemas.stage_results import PlotResult
from annotator.settings import ModelSettings
from profiles_db.models import Segment
from profiles_db.stages import Stage, StageStore
from tests.support.db import make_video, plot_answer
from workers.context import RunContext
from workers.splitter.settings import SplitSettings
from workers.stage_steps import finish_plot, script_ask

STRANGER = {"id": "unknown_001", "name": "Unnamed", "appearance": "tall man, grey beard"}


def _plot(index: int, **parts) -> StructuredResult:
    return StructuredResult(
        value=plot_answer(index, [STRANGER], **parts), model="m", prompt_version="plot.v1", usage=Usage()
    )


def _stored(st: StageStore, segment_id: int) -> PlotResult:
    return PlotResult.model_validate(st.result(segment_id, Stage.PLOT)[1])


def test_a_name_learned_later_does_not_reach_an_earlier_segments_script(
    sqlite_database, tmp_path, monkeypatch
):
    monkeypatch.setenv("V2S_GEMINI_API_KEY", "k")
    monkeypatch.setenv("V2S_OPENAI_API_KEY", "k")
    first, second = make_video(sqlite_database, scope="film", segments=2, job_id="job-1")
    proxy = tmp_path / "seg.mp4"
    proxy.write_bytes(b"not read: the request is only built")
    with sqlite_database.transaction() as s:
        s.execute(update(Segment).values(proxy_uri=str(proxy)))
    models = ModelSettings(_env_file=None, gemini_base_url="http://127.0.0.1:9").without_keys()
    ctx = RunContext(
        job_id="job-1",
        db_url=sqlite_database.url,
        out_dir=str(tmp_path),
        models=models,
        split=SplitSettings(),
    )
    st = StageStore(sqlite_database)

    assert st.claim(first, Stage.PLOT, "test", "job-1")
    finish_plot(ctx, first, _plot(1, narrative="A tall man waits."), None)
    asked_in_order = script_ask(ctx, first, _stored(st, first)).prompt.text

    # the next plot names him before the first segment's script is asked
    assert st.claim(second, Stage.PLOT, "test", "job-1")
    naming = [{"unknown_id": "unknown_001", "name": "Elias Crane", "evidence": "introduced by name"}]
    finish_plot(ctx, second, _plot(2, name_updates=naming, narrative="Elias Crane returns."), None)
    asked_late = script_ask(ctx, first, _stored(st, first)).prompt.text

    assert "tall man, grey beard" in asked_in_order and "Elias Crane" not in asked_in_order
    assert asked_late == asked_in_order
    # the memory itself did learn the name: the second segment's script sees it
    assert "Elias Crane" in script_ask(ctx, second, _stored(st, second)).prompt.text
