"""The conventions every `v2s` command keeps (docs/cli.md): `--version`, one spelling of the database option
with its environment variable in `--help` (the old spellings hidden but working), `status --format json` in
its documented shape, an unknown job id as an error, `submit` reading RAY_ADDRESS, shell completion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from jobs.cli import app
from jobs.status_report import StatusReport
from profiles_db.cpm import CharacterProfileManager
from profiles_db.db import sqlite_url
from profiles_db.stages import StageStore, StageUsage
from tests.support.db import make_video, plot_answer

pytestmark = pytest.mark.own_ray  # starts a Ray of its own, or its workers need environment of their own

ROOT = Path(__file__).resolve().parents[2]
WIDE = {"COLUMNS": "200"}


def invoke(*args: str, env: dict[str, str | None] | None = None):
    return CliRunner().invoke(app, list(args), env={**WIDE, **(env or {})})


def commands(group, path: tuple[str, ...] = ()):
    """Every command of the CLI with its path (`("profiles", "list")`), nested groups included (Typer's
    groups are its own click's, hence the duck typing)."""
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from commands(command, (*path, name))
        else:
            yield (*path, name), command


@pytest.fixture
def job_db(database):
    """job-1: one video of two segments, the plot of the first done (with a cost), the second failed."""
    segs = make_video(database, scope="show", segments=2, job_id="job-1")
    CharacterProfileManager(database).apply(
        "show", segs[0], plot_answer(1, [{"id": "char_001", "name": "Ada", "aliases": ["Ada, Jr."]}])
    )
    store = StageStore(database)
    assert store.claim(segs[0], "plot", "test", "job-1")
    store.complete(
        segs[0], "plot", {}, StageUsage(model="m", input_tokens=120, output_tokens=30, cost_usd=0.25)
    )
    assert store.claim(segs[1], "plot", "test", "job-1")
    store.fail(segs[1], "plot", "the model said no", outcome="invalid_output")
    return database


def test_version_is_the_installed_package_version():
    shown = invoke("--version")
    assert shown.exit_code == 0 and shown.stdout == f"v2s {version('v2s')}\n"
    real = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "--version"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert real.returncode == 0 and real.stdout == f"v2s {version('v2s')}\n", real.stderr


def test_one_database_option_everywhere_with_its_environment_variable():
    taking = {
        path: cmd
        for path, cmd in commands(typer.main.get_command(app))
        if "database_url" in {p.name for p in cmd.params}
    }
    # every command that opens the job database, and nothing else, takes it
    assert {" ".join(path) for path in taking} >= {
        "run",
        "status",
        "resume",
        "verify",
        "submit",
        "cancel",
        "db upgrade",
        *(f"profiles {c}" for c in ("list", "show", "relationships", "graph", "rename", "merge", "unmerge")),
    }
    for path, command in taking.items():
        (option,) = [p for p in command.params if p.name == "database_url"]
        assert option.opts == ["--database-url"] and option.envvar == "V2S_DATABASE_URL", path
        shown = invoke(*path, "--help")
        assert "--database-url" in shown.stdout and "V2S_DATABASE_URL" in shown.stdout, path
        # one spelling: no --db, and a --url only where it is the Label Studio server's (`review push/import`)
        assert not [p for p in command.params if "--db" in getattr(p, "opts", [])], path
        urls = [p for p in command.params if "--url" in getattr(p, "opts", [])]
        assert all("Label Studio" in (p.help or "") for p in urls), path


def test_the_option_and_the_environment_variable_work(job_db):
    url = job_db.url
    for args in (("--database-url", url),):
        listed = invoke("profiles", "list", *args, "--format", "json")
        assert listed.exit_code == 0, listed.output
        assert [p["code"] for p in json.loads(listed.stdout)] == ["char_001"]
    from_env = invoke("profiles", "list", "--format", "json", env={"V2S_DATABASE_URL": url})
    assert from_env.exit_code == 0, from_env.output
    (ada,) = json.loads(from_env.stdout)
    assert ada["aliases"] == ["Ada", "Ada, Jr."] and ada["former_codes"] == []  # the views' JSON arrays
    # the typed option beats the environment
    typed = invoke(
        "profiles", "list", "--database-url", url, env={"V2S_DATABASE_URL": "sqlite:////nonexistent/x.sqlite"}
    )
    assert typed.exit_code == 0, typed.output
    assert invoke("status", "job-1", env={"V2S_DATABASE_URL": url}).exit_code == 0


def test_db_upgrade_takes_the_option_and_the_environment(tmp_path):
    for i, args in enumerate((["--database-url"], [])):
        url = sqlite_url(tmp_path / f"db{i}.sqlite")
        env = {} if args else {"V2S_DATABASE_URL": url}
        done = invoke("db", "upgrade", *args, *([url] if args else []), env=env)
        assert done.exit_code == 0 and "latest schema" in done.stdout, done.output
        assert (tmp_path / f"db{i}.sqlite").is_file()
    missing = invoke("db", "upgrade", env={"V2S_DATABASE_URL": None})
    assert missing.exit_code == 2 and "--database-url" in missing.output


def test_status_json_has_the_documented_shape(job_db):
    shown = invoke("status", "job-1", "--database-url", job_db.url, "--format", "json")
    assert shown.exit_code == 0, shown.output
    raw = json.loads(shown.stdout)
    report = StatusReport.model_validate(raw)
    assert raw["format_version"] == 1 and report.job == "job-1"
    assert [j.id for j in report.jobs] == ["job-1"] and report.jobs[0].created_at.utcoffset() is not None
    assert report.segments == 2 and report.videos == {"pending": 1}
    plot = next(s for s in report.stages if s.stage == "plot")
    assert (plot.done, plot.failed, plot.pending, plot.input_tokens, plot.cost_usd) == (1, 1, 0, 120, 0.25)
    script = next(s for s in report.stages if s.stage == "script")
    assert script.pending == 2  # segments without a row for a stage have not reached it
    assert report.total.output_tokens == 30 and len(report.per_video) == 1
    assert [(f.segment_index, f.stage, f.outcome) for f in report.failures] == [(2, "plot", "invalid_output")]
    assert [(c.scope, c.segment_index, c.waiting) for c in report.blocked_chains] == [("show", 2, 0)]
    assert report.shards[0].shards is None and report.shards[0].error is None  # no manifest yet
    # every field the model declares is in the output, so a script may rely on the shape
    assert set(raw) == set(StatusReport.model_fields)
    everything = json.loads(invoke("status", "--database-url", job_db.url, "--format", "json").stdout)
    assert everything["job"] is None and [j["id"] for j in everything["jobs"]] == ["job-1"]


def test_status_json_refuses_watch(job_db):
    both = invoke("status", "--database-url", job_db.url, "--format", "json", "--watch")
    assert both.exit_code == 2 and "--watch" in both.output
    bad = invoke("status", "--database-url", job_db.url, "--format", "yaml")
    assert bad.exit_code == 2


def test_an_unknown_job_id_is_an_error_naming_it(job_db):
    url = job_db.url
    for args in (
        ("status", "job-nope", "--database-url", url),
        ("status", "job-nope", "--database-url", url, "--format", "json"),
        ("resume", "job-nope", "--database-url", url),
        ("cancel", "job-nope", "--database-url", url),
    ):
        refused = invoke(*args)
        assert refused.exit_code == 2, (args, refused.output)
        assert "job-nope" in refused.output and "Traceback" not in refused.output, args
    assert StageStore(job_db).job("job-nope") is None  # nothing was made up for it


def test_submit_falls_back_to_ray_address(tmp_path):
    base = ["submit", str(tmp_path / "films"), "--out", str(tmp_path / "out")]
    missing = invoke(*base, env={"RAY_ADDRESS": None})
    assert missing.exit_code == 2 and "RAY_ADDRESS" in missing.output and "--address" in missing.output
    # a closed port: the submission is tried at RAY_ADDRESS (and fails there, in one line)
    tried = invoke(*base, env={"RAY_ADDRESS": "http://127.0.0.1:9"})
    assert tried.exit_code == 2 and "http://127.0.0.1:9" in tried.output, tried.output
    # --address given beats the environment
    given = invoke(*base, "--address", "http://127.0.0.1:7", env={"RAY_ADDRESS": "http://127.0.0.1:9"})
    assert given.exit_code == 2 and "127.0.0.1:7" in given.output and "127.0.0.1:9" not in given.output
    assert "RAY_ADDRESS" in invoke("submit", "--help").stdout


def test_shell_completion_is_enabled(tmp_path):
    assert "--install-completion" in invoke("--help").stdout
    v2s = Path(sys.executable).with_name("v2s")
    env = {**os.environ, "_V2S_COMPLETE": "complete_bash", "COMP_WORDS": "v2s sta", "COMP_CWORD": "1"}
    done = subprocess.run([str(v2s)], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.split() == ["status"], done.stderr
    env |= {"COMP_WORDS": "v2s profiles list --data", "COMP_CWORD": "3"}
    done = subprocess.run([str(v2s)], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.stdout.split() == ["--database-url"], done.stderr
