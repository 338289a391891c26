"""`v2s verify` checks the pictures the records pair with, not only the shards: a proxy missing, swapped for
another segment's, stripped of its sound or cut off is reported (exit 1), and `--repair` cuts it again from the
source (exit 0, and the next verify is clean)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from annotator.media import ffmpeg_exe, probe
from annotator.simulator.film import DEFAULT_SCREENPLAY
from annotator.simulator.screenplay import Screenplay
from annotator.simulator.server import SimulatorServer
from jobs.cli import app
from jobs.runner import JobSpec, run_job
from tests.support import e2e as checks
from tests.support.films import film_copy
from workers.splitter.proxy_check import measure

pytestmark = [pytest.mark.slow, pytest.mark.shared_ray]


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("verify-proxies")
    screenplay = Screenplay.load(DEFAULT_SCREENPLAY)
    film = film_copy(screenplay, folder / "film.mp4", until_s=40)
    settings = {"V2S_SPLIT_PROXY__HEIGHT": "240"}  # a setting the run once overrode with its own 360
    with SimulatorServer(screenplay) as server, checks.models_from(server, "sim-test-key-verify", **settings):
        _, summary = run_job(JobSpec(source=str(film), out=folder / "out", max_segment_s=15, num_cpus=2))
    assert summary.records_written == summary.segments >= 3, summary
    return folder / "out"


def test_proxies_have_the_height_the_settings_ask_for(out):
    assert probe(next((out / "proxies").iterdir()) / "seg_0001.mp4").height == 240


def _verify(out: Path, *flags: str):
    return CliRunner().invoke(app, ["verify", str(out), *flags], env={"COLUMNS": "300"})


def _ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", *args], check=True)


def _damage(proxies: Path, how: str, work: Path) -> str:
    first, second = proxies / "seg_0001.mp4", proxies / "seg_0002.mp4"
    if how == "missing":
        second.unlink()
        return "missing"
    if how == "swapped":  # another segment's proxy (tag and all) in its place
        shutil.copyfile(first, second)
        return "is the proxy of"
    temp = work / f"{how}.mp4"
    if how == "no sound":  # the same picture and tag, the sound left out
        _ffmpeg("-i", str(second), "-map", "0:v", "-c", "copy", "-map_metadata", "0", str(temp))
    else:  # cut off: the first third only
        length = probe(second).duration_s / 3
        _ffmpeg("-i", str(second), "-t", f"{length:.2f}", "-c", "copy", "-map_metadata", "0", str(temp))
    temp.replace(second)
    return "no sound" if how == "no sound" else "of picture"


@pytest.mark.parametrize("how", ["missing", "swapped", "no sound", "cut off"])
def test_a_wrong_proxy_is_reported_and_cut_again(out, how, tmp_path):
    assert _verify(out).exit_code == 0, _verify(out).output
    proxies = next((out / "proxies").iterdir())
    said = _damage(proxies, how, tmp_path)
    found = _verify(out)
    assert found.exit_code == 1, found.output
    assert "seg_0002.mp4" in found.output and said in found.output
    repaired = _verify(out, "--repair")
    assert repaired.exit_code == 0, repaired.output
    assert "repaired" in repaired.output and "cut again from the source" in repaired.output
    assert _verify(out).exit_code == 0
    facts = measure(proxies / "seg_0002.mp4")
    assert facts.audio_s is not None and facts.video_s > 5
