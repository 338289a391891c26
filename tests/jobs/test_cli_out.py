"""`--out` on the command line: a bucket URI reaches `v2s run`'s summary as typed (`s3://…`, never the `s3:/…` a
Path makes of it); `status`, `resume` and `cancel` find a local output's database, and for a bucket output whose
database is not on this machine they say to pass --database-url instead of opening an empty one."""

from __future__ import annotations

import boto3
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from annotator.simulator.server import SimulatorServer
from jobs.cli import app
from profiles_db.db import Database, sqlite_url
from profiles_db.models import Job, Video
from profiles_db.stages import StageStore
from tests.support import e2e as checks
from tests.support.db import make_video
from tests.support.media import color_film, cut_off, remux
from tests.support.play import small_screenplay
from workers.storage import local_workdir

pytestmark = pytest.mark.own_ray  # starts a Ray of its own, or its workers need environment of their own

OUT = "s3://films/v2s out/run-1"
ELSEWHERE = "s3://films/another-run"
WIDE = {"COLUMNS": "400"}  # rich wraps long cells at the terminal width; the URIs must stay on one line


def _text(result) -> str:
    return " ".join(result.output.split())


@pytest.fixture(scope="module")
def bucket_run(tmp_path_factory):
    """`v2s run` on a local input (a faststart MP4 cut short: it fails at probe, so no model is asked anything)
    writing to a bucket on a real S3-compatible server (moto), with the simulator answering the key check."""
    root = tmp_path_factory.mktemp("cli-out")
    film = color_film(root / "film.mp4", [2.0], 4.0)
    inputs = root / "inputs"
    inputs.mkdir()
    cut_off(remux(film, root / "fast.mp4", faststart=True), inputs / "cut.mp4", 0.6)
    with (
        checks.moto_s3(root / "cache") as endpoint,
        SimulatorServer(small_screenplay()) as server,
        pytest.MonkeyPatch.context() as env,
    ):
        env.setenv("V2S_GEMINI_BASE_URL", server.base_url)
        env.setenv("V2S_GEMINI_API_KEY", "sim-cli-out-key")
        env.setenv("V2S_OPENAI_BASE_URL", f"{server.base_url}/v1")
        env.setenv("V2S_OPENAI_API_KEY", "sim-cli-out-key")
        env.delenv("V2S_DATABASE_URL", raising=False)
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="films")
        runner = CliRunner()
        result = runner.invoke(app, ["run", str(inputs), "--out", OUT, "--num-cpus", "2"], env=WIDE)
        yield runner, result


@pytest.mark.slow
def test_the_summary_of_a_bucket_run_shows_the_bucket_uri(bucket_run):
    _, result = bucket_run
    assert result.exit_code == 1, result.output  # the cut input failed, alone
    text = _text(result)
    assert f"{OUT}/shards (manifest: {OUT}/manifest.json)" in text, text
    assert "s3:/films" not in text.replace("s3://films", "")
    assert "cut.mp4: " in text and "truncated file" in text, text
    db = Database(sqlite_url(local_workdir(OUT) / "v2s.sqlite"))
    try:
        with db.sessions() as s:
            assert s.scalars(select(Job.out)).all() == [OUT]
    finally:
        db.dispose()


@pytest.mark.slow
def test_status_of_the_bucket_output_finds_its_database_on_this_machine(bucket_run):
    runner, _ = bucket_run
    shown = runner.invoke(app, ["status", "--out", OUT], env=WIDE)
    assert shown.exit_code == 0, shown.output
    text = _text(shown)
    assert OUT in text and "cut.mp4: " in text and "truncated file" in text, text


@pytest.mark.parametrize("command", [["status"], ["resume", "job-x"], ["cancel", "job-x"]])
def test_a_bucket_out_without_a_database_here_asks_for_the_database_url(tmp_path, monkeypatch, command):
    monkeypatch.setenv("V2S_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("V2S_DATABASE_URL", raising=False)
    result = CliRunner().invoke(app, [*command, "--out", ELSEWHERE], env=WIDE)
    assert result.exit_code == 2, result.output
    text = _text(result)
    assert f"--out {ELSEWHERE} is a bucket URI" in text and "pass --database-url" in text, text
    assert "Traceback" not in result.output
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").rglob("*.sqlite"))


def test_a_bucket_out_with_a_database_url_uses_that_database(tmp_path, monkeypatch):
    monkeypatch.setenv("V2S_CACHE_DIR", str(tmp_path / "cache"))
    url = sqlite_url(tmp_path / "shared.sqlite")
    db = Database(url)
    make_video(db, scope="s", video_id="v1", segments=1, job_id="job-db")
    db.dispose()
    result = CliRunner().invoke(
        app, ["status", "job-db", "--out", ELSEWHERE, "--database-url", url], env=WIDE
    )
    assert result.exit_code == 0, result.output
    assert "job-db" in _text(result)


def test_a_local_out_still_locates_its_database(tmp_path, monkeypatch):
    monkeypatch.delenv("V2S_DATABASE_URL", raising=False)
    out = tmp_path / "out folder"
    out.mkdir()
    db = Database(sqlite_url(out / "v2s.sqlite"))
    make_video(db, scope="s", video_id="v1", segments=1, job_id="job-local")
    with db.transaction() as s:
        s.get(Video, "v1").status, s.get(Video, "v1").error = "failed", "v1.mp4: not a readable video"
    db.dispose()
    runner = CliRunner()
    shown = runner.invoke(app, ["status", "job-local", "--out", str(out)], env=WIDE)
    assert shown.exit_code == 0, shown.output
    assert "job-local" in _text(shown) and "not a readable video" in _text(shown)
    cancelled = runner.invoke(app, ["cancel", "job-local", "--out", str(out)], env=WIDE)
    assert cancelled.exit_code == 0, cancelled.output
    db = Database(sqlite_url(out / "v2s.sqlite"))
    try:
        assert StageStore(db).job("job-local").status == "cancelled"
    finally:
        db.dispose()


def test_the_follow_hint_of_a_submitted_job_is_a_command_that_finds_its_database(capsys):
    from jobs.cli_cluster import print_follow as _print_follow

    _print_follow("job-1", "job-1", "http://head:8265", None, "/data/out dir")
    assert "v2s status job-1 --out '/data/out dir' --watch" in capsys.readouterr().out
    # a bucket output's default database is on the driver's machine, not in the bucket
    _print_follow("job-2", "job-2", "http://head:8265", None, "s3://films/out")
    assert "v2s status job-2 --database-url URL --watch" in capsys.readouterr().out
    # the URL is never printed: it may hold a password
    _print_follow("job-3", "job-3", "http://head:8265", "postgresql://u:pw-h1dden@db/v2s", "s3://films/out")
    printed = capsys.readouterr().out
    assert "pw-h1dden" not in printed and "--database-url URL" in printed
    assert "the database password was not sent" in printed  # and where the nodes take it from
