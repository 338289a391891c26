"""The response cache: the real Gateway and SDKs over HTTP to the simulator, answers stored in SQLite and
PostgreSQL. A question asked twice reaches the model once; any change to the question is a new question."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from annotator.gateway import Gateway, Media
from annotator.prompting import render
from annotator.schemas import FirstSegmentPlot
from annotator.simulator.server import SimulatorServer
from profiles_db.models import ResponseCacheEntry
from profiles_db.response_cache import DatabaseResponseCache
from tests.support.gateway import KEY, MODELS, settings_for
from workers.storage import file_sha256

pytestmark = pytest.mark.shared_ray  # its jobs run on the session's one Ray (tests/support/ray_session.py)


@pytest.fixture(scope="module")
def server(play):
    with SimulatorServer(play) as running:
        yield running


def model_calls(server: SimulatorServer) -> int:
    return sum(r.endpoint in ("generateContent", "chat.completions") for r in server.requests)


def ask(gateway: Gateway, api: str, proxy, *, version: str | None = None, media: Media | None = None):
    prompt = render("plot_first", 1, segment_index=1, duration="30s")
    if version is not None:
        prompt = prompt.model_copy(update={"version": version})
    return gateway.structured(
        stage="plot",
        backend=api,
        model=MODELS[api],
        prompt=prompt,
        schema=FirstSegmentPlot,
        media=media or Media(path=proxy, sha256=file_sha256(proxy)),
    )


@pytest.mark.parametrize("api", ["gemini", "openai"])
def test_a_second_identical_question_makes_no_call_and_keeps_the_answers_usage(database, server, proxy, api):
    gateway = Gateway(settings_for(server), cache=DatabaseResponseCache(database))
    first = ask(gateway, api, proxy)
    assert first.ok and not first.cached and first.usage.calls == 1
    before = model_calls(server)

    # a new gateway (another worker, a resumed job) over the same database
    again = ask(Gateway(settings_for(server), cache=DatabaseResponseCache(database)), api, proxy)
    assert model_calls(server) == before
    # no call is made; the answer keeps what it cost, so the stage that uses it accounts for it once
    assert again.cached and again.usage.calls == 0
    assert (again.usage.input_tokens, again.usage.output_tokens, again.usage.cost_usd) == (
        first.usage.input_tokens,
        first.usage.output_tokens,
        first.usage.cost_usd,
    )
    assert first.usage.input_tokens > 0
    assert again.value == first.value

    with database.transaction() as session:
        row = session.scalars(select(ResponseCacheEntry)).one()
    assert (row.backend, row.model, row.prompt_version, row.hits) == (api, MODELS[api], "plot_first.v1", 1)
    assert row.input_tokens == first.usage.input_tokens and row.cost_usd == first.usage.cost_usd


def test_another_prompt_version_or_media_is_a_new_question(database, server, proxy, tmp_path):
    gateway = Gateway(settings_for(server), cache=DatabaseResponseCache(database))
    assert ask(gateway, "gemini", proxy).ok
    before = model_calls(server)

    assert not ask(gateway, "gemini", proxy, version="plot_first.v2").cached
    other = Media(path=proxy, sha256="0" * 64)  # another file's hash
    assert not ask(gateway, "gemini", proxy, media=other).cached
    window = Media(path=proxy, sha256=file_sha256(proxy), start_offset_s=0.0, end_offset_s=20.0)
    assert not ask(gateway, "gemini", proxy, media=window).cached
    assert not ask(gateway, "openai", proxy).cached  # another backend and model
    assert model_calls(server) == before + 4
    assert DatabaseResponseCache(database).count() == 5


def test_failures_are_not_cached(database, play, proxy):
    from annotator.simulator.scenarios import Scenario

    with SimulatorServer(play, behaviours=Scenario.from_flags(["schema_violation@plot"])) as broken:
        gateway = Gateway(settings_for(broken), cache=DatabaseResponseCache(database))
        assert not ask(gateway, "gemini", proxy).ok
        calls = model_calls(broken)
        assert not ask(gateway, "gemini", proxy).ok
        assert model_calls(broken) == 2 * calls  # asked again: a failure is worth another try
    assert DatabaseResponseCache(database).count() == 0


def test_the_cache_can_be_switched_off(database, server, proxy):
    gateway = Gateway(settings_for(server, response_cache=False), cache=DatabaseResponseCache(database))
    assert ask(gateway, "gemini", proxy).ok and ask(gateway, "gemini", proxy).ok
    assert DatabaseResponseCache(database).count() == 0


def test_key_is_not_in_the_cache(database, server, proxy):
    """The stored row holds the answer and usage, never a credential."""
    ask(Gateway(settings_for(server), cache=DatabaseResponseCache(database)), "gemini", proxy)
    with database.transaction() as session:
        row = session.scalars(select(ResponseCacheEntry)).one()
    assert KEY not in repr(row.answer) and KEY not in (row.reasoning_content or "")


# --- a whole job: a rerun whose stage bookkeeping was lost asks the model nothing ---------------------------


def test_the_workers_gateway_caches_in_the_job_database(tmp_path, monkeypatch):
    """What the workers call (`workers.context.gateway(ctx)`) stores answers in that job's database, with the
    keys the worker reads itself (the run's settings carry none)."""
    from annotator.settings import ModelSettings
    from profiles_db.db import sqlite_url
    from workers.context import RunContext, gateway
    from workers.splitter.settings import SplitSettings

    url = sqlite_url(tmp_path / "v2s.sqlite")
    monkeypatch.setenv("V2S_GEMINI_API_KEY", "worker-own-key")
    models = ModelSettings(_env_file=None, gemini_base_url="http://127.0.0.1:9")
    ctx = RunContext(
        job_id="j", db_url=url, out_dir=str(tmp_path), models=models.without_keys(), split=SplitSettings()
    )
    assert ctx.models.gemini_api_key is None and "worker-own-key" not in ctx.model_dump_json()
    cached = gateway(ctx)
    assert isinstance(cached.cache, DatabaseResponseCache)
    assert cached.cache.db.engine.url.database == str(tmp_path / "v2s.sqlite")
    assert cached.settings.gemini_api_key.get_secret_value() == "worker-own-key"
    assert gateway(ctx) is cached  # one per run settings in a process
    other = ctx.model_copy(update={"models": models.model_copy(update={"temperature": 0.5}).without_keys()})
    assert gateway(other) is not cached and gateway(other).settings.temperature == 0.5


@pytest.mark.slow
def test_a_rerun_after_wiping_stage_runs_makes_no_model_call(tmp_path):
    from sqlalchemy import delete

    from jobs.runner import JobSpec, run_job
    from profiles_db.db import Database
    from profiles_db.models import StageRun
    from tests.support import e2e as checks

    with checks.simulator_environment(tmp_path / "film") as (film, _, server):
        out = tmp_path / "out"
        spec = JobSpec(source=str(film), out=out, max_segment_s=60, num_cpus=2)
        run_job(spec)
        first = model_calls(server)
        db = Database(spec.db_url())
        with db.transaction() as session:
            session.execute(delete(StageRun))
        run_job(spec)
        assert first > 0 and model_calls(server) == first
        assert DatabaseResponseCache(db).count() > 0
