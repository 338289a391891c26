"""What `v2s submit` sends to the cluster in the runtime_env: settings by name, keys only when asked."""

import pytest

from jobs.control import NOT_FORWARDED, SECRET_ENV, forwarded_env, runtime_env

CALLER = {
    "GEMINI_API_KEY": "g-secret",
    "V2S_OPENAI_API_KEY": "o-secret",
    "AWS_SECRET_ACCESS_KEY": "aws-secret",
    "V2S_RAY_TOKEN": "ray-token",
    "V2S_PLOT_MODEL": "gemini-2.5-flash",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "HOME": "/root",
}


def test_keys_stay_home_unless_asked_for():
    sent = forwarded_env(CALLER)
    assert sent == {"V2S_PLOT_MODEL": "gemini-2.5-flash", "AWS_DEFAULT_REGION": "eu-west-1"}
    assert not set(sent) & (SECRET_ENV | NOT_FORWARDED)


def test_forward_secrets_sends_keys_but_never_the_ray_token():
    sent = forwarded_env(CALLER, secrets=True)
    assert sent["GEMINI_API_KEY"] == "g-secret" and sent["AWS_SECRET_ACCESS_KEY"] == "aws-secret"
    assert "V2S_RAY_TOKEN" not in sent and "HOME" not in sent


def test_runtime_env_without_code_upload_has_only_env_vars(monkeypatch):
    for name, value in CALLER.items():
        monkeypatch.setenv(name, value)
    env = runtime_env(ship_code=False)
    assert set(env) == {"env_vars"} and "GEMINI_API_KEY" not in env["env_vars"]


PG = "postgresql+psycopg://v2s:pg-secret@db.internal:5432/v2s"


def test_the_job_command_carries_the_database_url_without_its_password():
    from jobs.control import entrypoint
    from jobs.runner import JobSpec

    spec = JobSpec(source="s3://films/", out="s3://out/", database_url=PG)
    for command in (entrypoint(spec, "j1"), entrypoint(spec, "j1", resume=True)):
        assert "pg-secret" not in command
        assert "--database-url postgresql+psycopg://v2s@db.internal:5432/v2s" in command


def test_a_database_url_with_a_password_is_forwarded_only_when_asked_for(monkeypatch):
    caller = {**CALLER, "V2S_DATABASE_URL": PG}
    assert "V2S_DATABASE_URL" not in forwarded_env(caller)
    assert forwarded_env(caller, secrets=True)["V2S_DATABASE_URL"] == PG
    plain = "postgresql+psycopg://v2s@db.internal/v2s"  # no password: a plain setting, forwarded
    assert forwarded_env({**CALLER, "V2S_DATABASE_URL": plain})["V2S_DATABASE_URL"] == plain

    monkeypatch.delenv("V2S_DATABASE_URL", raising=False)
    assert "V2S_DATABASE_URL" not in runtime_env(False, database_url=PG)["env_vars"]
    assert runtime_env(False, forward_secrets=True, database_url=PG)["env_vars"]["V2S_DATABASE_URL"] == PG


def test_the_driver_completes_the_url_from_its_node_environment(monkeypatch):
    from jobs.runner import JobSpec

    bare = "postgresql+psycopg://v2s@db.internal:5432/v2s"
    monkeypatch.setenv("V2S_DATABASE_URL", PG)
    assert JobSpec(source="", out="o", database_url=bare).db_url() == PG
    other = "postgresql+psycopg://v2s@db.internal:5432/other"  # another database: not its password
    assert JobSpec(source="", out="o", database_url=other).db_url() == other
    monkeypatch.delenv("V2S_DATABASE_URL")
    assert (
        JobSpec(source="", out="o", database_url=bare).db_url() == bare
    )  # libpq's PGPASSWORD / .pgpass then


def test_the_engine_settings_reach_every_task_through_the_run_context(monkeypatch):
    import pickle

    from annotator.settings import ModelSettings
    from jobs.runner import JobSpec, run_context
    from jobs.settings import EngineSettings

    monkeypatch.setenv("V2S_MAX_IN_FLIGHT", "32")
    monkeypatch.setenv("V2S_LEASE_S", "120")
    monkeypatch.setenv("V2S_SPLIT_PROXY__HEIGHT", "240")
    monkeypatch.setenv("V2S_PLOT_MODEL", "gemini-4-hydrogen")
    monkeypatch.setenv("V2S_GEMINI_API_KEY", "never-in-the-context")
    spec = JobSpec(source="", out="o", max_segment_s=90)
    ctx = run_context(spec, "j1", "sqlite:///x", "/o", EngineSettings(), ModelSettings())
    assert (ctx.max_in_flight, ctx.stages.lease_s, ctx.max_segment_s) == (32, 120, 90)
    assert ctx.split.proxy.height == 240 and ctx.models.plot_model == "gemini-4-hydrogen"
    # what Ray stores and ships to every task: the settings, never a key
    shipped = pickle.dumps(ctx)
    assert b"never-in-the-context" not in shipped and pickle.loads(shipped).models.gemini_api_key is None
    monkeypatch.setenv("V2S_MAX_IN_FLIGHT", "0")
    with pytest.raises(ValueError, match="max_in_flight"):
        EngineSettings()
