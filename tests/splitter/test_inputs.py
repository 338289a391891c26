"""Input rules of a local SOURCE: every entry left out is reported with why, and each film is one video however
many paths (symlink, hard link, manifest rows, a byte-identical copy) lead to it."""

from __future__ import annotations

import os
import shutil

import pytest

from jobs.sources import SourceError, scan_sources
from tests.support.media import color_film


@pytest.fixture()
def folder(tmp_path):
    films = tmp_path / "films"
    films.mkdir()
    real = color_film(films / "film.mp4", [1.0], 2.0)
    other = color_film(films / "other.m2ts", [1.0], 2.5)  # Blu-ray transport streams are videos too
    (films / "a_link.mp4").symlink_to(real)
    os.link(real, films / "hard.mkv")
    shutil.copyfile(other, films / "z_copy.mts")
    (films / "gone.mp4").symlink_to(films / "deleted.mp4")
    (films / "notes.txt").write_text("shooting notes")
    (films / "film.srt").write_text("1\n00:00:00,500 --> 00:00:01,000\nHi\n")
    (films / "extras.mkv").mkdir()  # a folder named like a video
    return films


def test_every_skipped_entry_is_reported_with_its_reason(folder):
    listing = scan_sources(str(folder))
    assert sorted(os.path.basename(v.uri) for v in listing.videos) == ["film.mp4", "other.m2ts"]
    reasons = {os.path.basename(s.uri.split(" (")[0]): s.reason for s in listing.skipped}
    assert reasons["gone.mp4"].startswith("dangling symlink")
    assert reasons["notes.txt"].startswith("unsupported suffix .txt")
    assert reasons["extras.mkv"].startswith("a folder named like a video")
    assert reasons["a_link.mp4"].startswith("the same file as")
    assert reasons["hard.mkv"].startswith("the same file as")
    assert reasons["z_copy.mts"].startswith("the same content as") and "other.m2ts" in reasons["z_copy.mts"]
    assert "film.srt" not in reasons  # subtitles are read with their video, not skipped


def test_a_manifest_listing_one_film_three_ways_is_one_video(folder, tmp_path):
    manifest = tmp_path / "list.csv"
    manifest.write_text(f"uri\n{folder / 'film.mp4'}\n{folder / 'a_link.mp4'}\n{folder / 'hard.mkv'}\n")
    listing = scan_sources(str(manifest))
    assert len(listing.videos) == 1
    assert len(listing.skipped) == 2 and all("the same file as" in s.reason for s in listing.skipped)


def test_a_dangling_symlink_as_the_source_says_so(folder):
    with pytest.raises(SourceError, match="dangling symlink"):
        scan_sources(str(folder / "gone.mp4"))
