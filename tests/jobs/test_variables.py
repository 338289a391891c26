"""A mistyped `V2S_*` variable is reported, not silently ignored (#31)."""

from __future__ import annotations

from typer.testing import CliRunner

from jobs.cli import app
from jobs.variables import known_variables, unknown_variables


def test_every_setting_is_known_by_its_variable_name():
    known = known_variables()
    for name in (
        "V2S_PLOT_MODEL",  # a model setting
        "V2S_GEMINI_API_KEY",  # a key
        "V2S_SPLIT_PROXY__HEIGHT",  # a nested split setting
        "V2S_MAX_IN_FLIGHT",  # an engine setting
        "V2S_S3_ENDPOINT_URL",  # a storage setting
        "V2S_JUDGE_MODEL",  # the judge's
        "V2S_CALL_ATTEMPTS",  # an alias
    ):
        assert name in known, name


def test_a_typo_is_reported_with_the_name_it_resembles(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("V2S_SPLIT_PROXY__HEIGTH=240\nV2S_PLOT_MODEL=gemini-4-hydrogen\n")
    environ = {"V2S_PLOT_MODLE": "gemini-4-hydrogen", "V2S_SIM_BATCH_PENDING_S": "1", "PATH": "/bin"}
    lines = unknown_variables(environ, dotenv)
    assert lines == [
        "V2S_PLOT_MODLE (set in the environment) is not a v2s setting and is ignored "
        "(did you mean V2S_PLOT_MODEL?)",
        f"V2S_SPLIT_PROXY__HEIGTH (set in the {dotenv}) is not a v2s setting and is ignored "
        f"(did you mean V2S_SPLIT_PROXY__HEIGHT?)",
    ]
    assert unknown_variables({"V2S_PLOT_MODEL": "x"}, None) == []


def test_every_command_warns_of_an_unknown_variable_on_stderr(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    result = CliRunner().invoke(app, ["db", "--help"], env={"V2S_PLOT_MODLE": "gemini-4-hydrogen"})
    assert result.exit_code == 0
    assert "warning: V2S_PLOT_MODLE" in result.stderr and "V2S_PLOT_MODEL?" in result.stderr
    assert "V2S_PLOT_MODLE" not in result.stdout


def test_a_bucket_endpoint_in_dotenv_is_honoured(tmp_path, monkeypatch):
    from workers.storage import storage_options

    monkeypatch.delenv("V2S_S3_ENDPOINT_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    assert "endpoint_url" not in storage_options("s3")
    (tmp_path / ".env").write_text("V2S_S3_ENDPOINT_URL=http://127.0.0.1:9000\n")
    assert storage_options("s3")["endpoint_url"] == "http://127.0.0.1:9000"
