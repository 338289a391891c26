"""Hostile inputs (DESIGN.md §8) in one job, from a manifest that mixes a local folder and an S3 bucket (moto):
corrupt, truncated (index lost, or index at the front and media cut off), zero-length and not-video files fail alone, each with a clear reason in the database, in
`v2s run`'s summary and in `v2s status`; files without audio and names with spaces and non-ASCII are annotated;
keys with `../` are refused and never place a file outside the output or the cache."""

from __future__ import annotations

import csv
import os
import re
import subprocess
from pathlib import Path

import boto3
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from annotator.media import MediaError, ffmpeg_exe, probe
from jobs.cli import app
from profiles_db.db import Database, sqlite_url
from profiles_db.models import Video
from tests.support import e2e as checks
from tests.support.films import film_copy, silent_copy
from tests.support.media import color_film, cut_off, remux

pytestmark = [pytest.mark.slow, pytest.mark.own_ray]

SPACED = "café noir — 雨の夜 (final cut).mp4"
BUCKET_SPACED = "s3://films/in/Ünïcode key with spaces.mp4"
ESCAPE = "s3://films/in/../escape.mp4"
DEEP_ESCAPE = "s3://films/in/a/../../../../tmp/v2s-escape.mp4"

EXPECTED_FAILURES = {
    "zero.mp4": "file is empty",
    "notes.mp4": "not a readable video",
    "truncated.mp4": "not a readable video",
    "cut.mp4": "truncated file",  # faststart: the index survives, so only the sizes tell
    "garbled.mp4": "not a readable video",
    ESCAPE: "unsafe object key",
    DEEP_ESCAPE: "unsafe object key",
}


@pytest.fixture(scope="module")
def simulator_env(tmp_path_factory):
    with checks.simulator_environment(tmp_path_factory.mktemp("film")) as env:
        yield env


@pytest.fixture(scope="module")
def hostile_run(simulator_env, tmp_path_factory):
    screenplay = simulator_env[1]
    root = tmp_path_factory.mktemp("hostile")
    inputs = root / "inputs"
    inputs.mkdir()
    good = film_copy(screenplay, inputs / SPACED, until_s=56)
    silent_copy(inputs / "silent.mp4", seconds=20)
    (inputs / "zero.mp4").write_bytes(b"")
    (inputs / "notes.mp4").write_text("these are meeting notes, not a film\n" * 50)
    data = good.read_bytes()
    plain = root / "plain.mp4"  # the same film with its index (moov) at the end, as a plain ffmpeg mux writes
    subprocess.run(
        [ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(good), "-c", "copy", str(plain)], check=True
    )
    whole = plain.read_bytes()
    (inputs / "truncated.mp4").write_bytes(whole[: len(whole) // 3])  # an interrupted copy: the index is lost
    fast = remux(good, root / "fast.mp4", faststart=True)
    cut_off(fast, inputs / "cut.mp4", 0.6)  # an interrupted upload of a faststart file
    (inputs / "garbled.mp4").write_bytes(os.urandom(2048) + data[2048:])  # header overwritten with noise
    with checks.moto_s3(root / "cache") as endpoint:
        client = boto3.client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket="films")
        for uri in (BUCKET_SPACED, ESCAPE, DEEP_ESCAPE):
            client.put_object(Bucket="films", Key=uri.removeprefix("s3://films/"), Body=data)
        manifest = root / "inputs.csv"
        with manifest.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["uri"])
            for name in (SPACED, "silent.mp4", *[k for k in EXPECTED_FAILURES if "://" not in k]):
                writer.writerow([f"inputs/{name}"])
            for uri in (BUCKET_SPACED, ESCAPE, DEEP_ESCAPE):
                writer.writerow([uri])
        out = root / "out"
        runner = CliRunner()
        result = runner.invoke(
            app, ["run", str(manifest), "--out", str(out), "--max-segment-s", "60", "--num-cpus", "2"]
        )
        status = runner.invoke(app, ["status", "--out", str(out)])
        yield root, out, result, status


def _label(uri: str) -> str:
    return uri if "://" in uri else Path(uri).name


def test_every_bad_input_fails_alone_with_its_reason_in_the_database(hostile_run):
    _, out, result, _ = hostile_run
    assert result.exit_code == 1, result.output
    db = Database(sqlite_url(out / "v2s.sqlite"))
    try:
        with db.sessions() as s:
            failed = {
                _label(u): e
                for u, e in s.execute(select(Video.uri, Video.error).where(Video.status == "failed"))
            }
            done = {_label(u) for u in s.scalars(select(Video.uri).where(Video.status == "done"))}
    finally:
        db.dispose()
    assert set(failed) == set(EXPECTED_FAILURES)
    for name, reason in EXPECTED_FAILURES.items():
        assert reason in failed[name], (name, failed[name])
    assert done == {SPACED, "silent.mp4", BUCKET_SPACED}


def test_good_inputs_are_annotated_despite_the_bad_ones(hostile_run):
    out = hostile_run[1]
    annotated = {_label(r["video"]["uri"]) for r in checks.records(out)}
    assert annotated == {SPACED, "silent.mp4", BUCKET_SPACED}
    checks.check_manifest_matches_the_files(out, expected_records=len(checks.records(out)))


@pytest.mark.parametrize("output", ["run", "status"])
def test_reasons_are_printed_by_run_and_status(hostile_run, output):
    _, _, result, status = hostile_run
    printed = result if output == "run" else status
    assert output == "run" or printed.exit_code == 0, printed.output
    text = " ".join(printed.output.split())
    for name, reason in EXPECTED_FAILURES.items():
        assert f"{name}: " in text and reason in text, (name, text)


def test_dot_dot_keys_place_nothing_outside_the_output_or_the_cache(hostile_run):
    root, out, _, _ = hostile_run
    assert not Path("/tmp/v2s-escape.mp4").exists()
    outside = [p for p in root.parent.rglob("*escape*")]
    assert outside == []
    for path in out.rglob("*"):
        assert path.resolve().is_relative_to(out.resolve())
    cache = root / "cache"
    leftovers = [p for p in cache.rglob("*") if p.is_file() and "fetch" in p.parts]
    assert leftovers == []  # downloads are removed once their proxies are cut


def test_the_reason_for_a_cut_faststart_mp4_says_how_much_is_missing(hostile_run):
    root, out, _, _ = hostile_run
    db = Database(sqlite_url(out / "v2s.sqlite"))
    try:
        with db.sessions() as s:
            error = s.scalar(select(Video.error).where(Video.uri.endswith("cut.mp4")))
    finally:
        db.dispose()
    whole, present = (root / "fast.mp4").stat().st_size, (root / "inputs" / "cut.mp4").stat().st_size
    assert error.startswith(f"{root / 'inputs' / 'cut.mp4'}: truncated file"), error
    assert f"{present:,} of {whole:,} bytes present ({whole - present:,} bytes" in error, error


# -- probe alone: the truncation check must not touch good files, whatever the index position or container ----


@pytest.fixture(scope="module")
def small_film(tmp_path_factory) -> tuple[Path, float]:
    seconds = 12.0
    return color_film(tmp_path_factory.mktemp("probe") / "film.mp4", [4.0, 8.0], seconds), seconds


@pytest.mark.parametrize("layout", ["faststart", "plain", "mkv"])
def test_good_files_probe_to_their_full_length(small_film, layout):
    film, seconds = small_film
    target = film.with_name(f"{layout}.{'mkv' if layout == 'mkv' else 'mp4'}")
    remuxed = remux(film, target, faststart=layout == "faststart")
    for source in (remuxed, remuxed.read_bytes()):
        info = probe(source)
        assert info.duration_s == pytest.approx(seconds, abs=0.1)
        assert info.has_audio


@pytest.mark.parametrize(("layout", "fraction"), [("faststart", 0.6), ("faststart", 0.995), ("mkv", 0.6)])
def test_a_file_cut_short_is_refused_as_truncated(small_film, layout, fraction):
    film, seconds = small_film
    suffix = "mkv" if layout == "mkv" else "mp4"
    whole = remux(film, film.with_name(f"whole-{layout}.{suffix}"), faststart=layout != "mkv")
    cut = cut_off(whole, film.with_name(f"cut-{layout}-{fraction}.{suffix}"), fraction)
    missing = whole.stat().st_size - cut.stat().st_size
    for source, label in ((cut, str(cut)), (cut.read_bytes(), "upload.bin")):
        with pytest.raises(MediaError) as caught:
            probe(source, name=label)
        message = str(caught.value)
        assert message.startswith(f"{label}: truncated file"), message
        assert f"({missing:,} bytes" in message, message
        playable = re.search(r"only the first ~([0-9.]+) s of ([0-9.]+) s", message)
        if layout != "mkv":  # the MP4 index tells how far the media reaches
            assert playable, message
            assert 0 < float(playable.group(1)) < float(playable.group(2)) == pytest.approx(seconds, abs=0.1)
