"""The CLI edge refuses with one clear line (exit status 2, no traceback) and leaves the job's state true."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from annotator.simulator.screenplay import Screenplay
from annotator.simulator.server import SimulatorServer
from jobs.cli import app
from tests.support.films import film_copy

pytestmark = pytest.mark.own_ray  # starts a Ray of its own, or its workers need environment of their own


@pytest.fixture(scope="module")
def simulator():
    with SimulatorServer(Screenplay.load()) as server:
        yield server


@pytest.fixture
def env(simulator, monkeypatch):
    for name, value in {
        "V2S_GEMINI_BASE_URL": simulator.base_url,
        "V2S_GEMINI_API_KEY": "sim-test-key-refusals",
        "V2S_OPENAI_BASE_URL": f"{simulator.base_url}/v1",
        "V2S_OPENAI_API_KEY": "sim-test-key-refusals",
    }.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="module")
def film(tmp_path_factory):
    return film_copy(Screenplay.load(), tmp_path_factory.mktemp("film") / "film.mp4", until_s=12)


def _run(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def test_an_unreachable_database_is_one_line_without_its_password(env, film, tmp_path):
    url = "postgresql+psycopg://v2s:hunter2-secret@127.0.0.1:1/nowhere"
    done = _run("run", str(film), "--out", str(tmp_path / "out"), "--database-url", url)
    assert done.exit_code == 2, done.output
    assert "database postgresql+psycopg://v2s:***@127.0.0.1:1/nowhere cannot be used" in done.output
    assert "hunter2" not in done.output and "Traceback" not in done.output
    status = _run("status", "--database-url", url)
    assert status.exit_code == 2 and "cannot be used" in status.output and "hunter2" not in status.output


def test_an_output_that_is_a_file_is_refused(env, film, tmp_path):
    # a path under a file cannot be written by anyone (a read-only folder still is, by root, as CI runs)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    done = _run("run", str(film), "--out", str(blocker / "out"))
    assert done.exit_code == 2, done.output
    assert f"output {blocker / 'out'} is not writable" in done.output and "Traceback" not in done.output


def test_a_ray_that_does_not_start_leaves_the_job_as_it_was(env, film, tmp_path, monkeypatch):
    from profiles_db.db import Database, sqlite_url
    from profiles_db.stages import StageStore
    from tests.support.db import make_video

    out = tmp_path / "out"
    out.mkdir()
    db = Database(sqlite_url(out / "v2s.sqlite"))
    store = StageStore(db, max_attempts=1)
    store.ensure_job("job-old", str(film), str(out), {"source": str(film), "out": str(out)})
    store.finish_job("job-old", "partial")
    (segment,) = make_video(db, scope="s", segments=1, job_id="job-old")
    assert store.claim(segment, "plot", "w")
    store.fail(segment, "plot", "HTTP 503 from the model", outcome="server_error")
    # "auto" with no cluster to find fails at once (a dead host:port would be retried for minutes); a temp dir
    # of its own, so no cluster file an earlier `ray start` left in /tmp/ray is found either
    monkeypatch.setenv("RAY_ADDRESS", "auto")
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "ray"))
    done = _run("resume", "job-old", "--out", str(out))
    assert done.exit_code == 2, done.output
    assert "Ray could not start at auto" in done.output and "Traceback" not in done.output
    status, _ = store.result(segment, "plot")
    with db.sessions() as s:
        from profiles_db.models import StageRun

        run = s.query(StageRun).filter_by(segment_id=segment, stage="plot").one()
    assert (status, run.error, run.attempts) == ("failed", "HTTP 503 from the model", 1)  # untouched
    assert store.job_status("job-old") == "partial"
    db.dispose()


@pytest.mark.parametrize("command", ["status", "verify", "resume"])
def test_a_mistyped_output_is_refused_and_nothing_is_created(tmp_path, command):
    """Read-only commands once made a database in any OUT they were given and reported success."""
    missing = tmp_path / "v2s-ouput"  # sic: a typo of the real folder
    args = [command, str(missing)] if command == "verify" else [command, "--out", str(missing)]
    if command == "resume":
        args.insert(1, "job-0123456789")
    done = _run(*args)
    assert done.exit_code == 2, done.output
    assert f"{missing} holds no v2s output (no v2s.sqlite there)" in done.output.replace("\n", " ")
    assert not missing.exists() and "Traceback" not in done.output


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("garbage", "database URL 'garbage' cannot be used: expected DIALECT+DRIVER://USER@HOST[:PORT]/DB"),
        ("postgres://v2s:hunter2@db/v2s", "write postgresql+psycopg://v2s:***@db/v2s"),
    ],
)
def test_a_database_url_that_cannot_be_used_is_one_line_with_the_fix(url, said):
    done = _run("status", "--database-url", url)
    assert done.exit_code == 2, done.output
    assert (
        said in done.output.replace("\n", " ")
        and "Traceback" not in done.output
        and "hunter2" not in done.output
    )
    assert len(done.output.strip().splitlines()) <= 2


def test_a_wrong_option_value_is_one_line_naming_the_option(tmp_path):
    """Bad `export` options and an unknown `--format` are refused by name, without pydantic's dump (#33)."""
    split = CliRunner().invoke(
        app, ["export", str(tmp_path), "--to", str(tmp_path / "e"), "--split", "train=2"]
    )
    assert split.exit_code == 2
    assert split.stderr.strip().splitlines() == [
        "error: --split: split fractions must be non-negative and sum to 1, got {'train': 2.0}"
    ]
    fmt = CliRunner().invoke(app, ["profiles", "list", "--format", "yaml", "--database-url", str(tmp_path)])
    assert fmt.exit_code == 2 and "yaml" in fmt.output and "Traceback" not in fmt.output


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["profiles", "list", "--database-url", "postgres://u@h/db"], "postgresql+psycopg://u@h/db"),
        (
            ["profiles", "show", "char_001", "--database-url", "postgresql+psycopg://u@127.0.0.1:9/db"],
            "cannot be used",
        ),
    ],
)
def test_a_refusal_in_any_sub_app_is_one_line_and_exit_2(args, said):
    """The CLI's one error boundary (jobs/cli_common.RefusingGroup) covers every command and sub-app."""
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and said in lines[0], result.stderr
    assert "Traceback" not in result.output
