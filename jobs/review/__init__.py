"""`v2s review build`: a static site to read a run's scripts beside their video (docs/review.md).

It opens from file:// with no server, fetches nothing (no script, font or style from anywhere; the pages'
Content-Security-Policy forbids any request), and escapes every string that came from a model or a file name.
"""

from __future__ import annotations

from pydantic import BaseModel

from jobs.export import copy_object, write_bytes
from jobs.review.collect import ReviewData, collect
from jobs.review.pages import (
    cast_page,
    media_path,
    render_cast,
    render_run,
    render_video,
    track_path,
    video_page,
    webvtt,
)
from profiles_db.db import Database
from workers.storage import join


class SiteSummary(BaseModel):
    to: str
    pages: int
    videos: int
    media: int


def build_site(out: str, to: str, db: Database, *, gt: str | None = None) -> SiteSummary:
    """Write the site of `out` into the local folder `to`: index.html, a page per video and per cast, the
    proxies under media/ (bucket ones fetched) with a WebVTT file of each segment's dialogue and events."""
    data = collect(out, db)
    if not data.videos:
        raise ValueError(f"{out} has no records in shards/part-*.jsonl: is it the --out of a finished run?")
    pages = {"index.html": render_run(data, _scores(out, gt) if gt else None)}
    for video in data.videos:
        pages[video_page(video.video_id)] = render_video(video, data)
    for cast in data.casts:
        pages[cast_page(cast.scope)] = render_cast(cast, data)
    media = _media(data, to)
    for name, text in pages.items():
        write_bytes(join(to, name), text.encode())
    return SiteSummary(to=to, pages=len(pages), videos=len(data.videos), media=media)


def _media(data: ReviewData, to: str) -> int:
    copied = 0
    for video in data.videos:
        for record in video.records:
            write_bytes(join(to, track_path(record)), webvtt(video, record).encode())
            if record.video.proxy_uri:
                copy_object(record.video.proxy_uri, join(to, media_path(record)))
                copied += 1
    return copied


def _scores(out: str, gt: str) -> dict:
    """The V2S metrics of the run's records against the ground truth at `gt` (a file or folder `v2s eval`
    reads), as `DatasetResult.to_dict` gives them."""
    from evaluation.core import evaluate_dataset
    from evaluation.loader import load_scripts

    return evaluate_dataset(load_scripts(gt), load_scripts(join(out, "shards"))).to_dict(per_video=False)


__all__ = ["SiteSummary", "build_site"]
