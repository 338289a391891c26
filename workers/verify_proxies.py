"""`v2s verify`'s media half: every proxy a record points to is there and is the proxy of that record's span.

The shards can be whole while the pictures they pair with are not: a proxy deleted, cut off by a failed copy,
swapped for another segment's, or re-encoded without its sound. For each proxy the records name, this checks
that its provenance tag is of the record's video and covers the record's span, that its picture is as long as
the tag says and that it has sound when the source has (workers.splitter.proxy_check). With `repair`, a wrong or
missing proxy is cut again from the source (the picture transform sampled anew, as a resume does).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from annotator.media import MediaError, probe, read_provenance
from annotator.schemas.provenance import Provenance
from workers.context import VideoSource
from workers.fetch import ensure_proxy, local_copy, local_proxy, proxy_present, release_copy
from workers.splitter import ProxyBatch, SplitSettings
from workers.splitter.proxy_check import proxy_problem
from workers.storage import located

TOLERANCE_S = 1e-3


@dataclass(frozen=True)
class ProxyUse:
    """A proxy as the records use it: its URI, the video, and the spans of the records shown through it."""

    uri: str
    video_id: str
    source_uri: str
    segment_index: int  # the file's own index (0: one proxy of the whole video, offsets mode)
    spans: tuple[tuple[float, float], ...]


@dataclass
class ProxyFinding:
    uri: str
    problem: str
    repaired: bool = False


def proxy_uses(lines: Iterable[bytes], out: str) -> list[ProxyUse]:
    """The proxies that shard lines point to (located in the output `out` as it is now), each with every span
    shown through it."""
    found: dict[str, dict] = {}
    for line in lines:
        video = json.loads(line)["video"]
        if not video.get("proxy_uri"):
            continue
        uri = located(video["proxy_uri"], out)
        use = found.setdefault(uri, {"video": video, "spans": []})
        use["spans"].append((video["start_s"], video["end_s"]))
    return [
        ProxyUse(
            uri=uri,
            video_id=use["video"]["video_id"],
            source_uri=use["video"]["uri"],
            segment_index=_index(uri),
            spans=tuple(sorted(use["spans"])),
        )
        for uri, use in sorted(found.items())
    ]


def _index(uri: str) -> int:
    stem = uri.rsplit("/", 1)[-1].removesuffix(".mp4")
    return int(stem.removeprefix("seg_")) if stem.startswith("seg_") and stem[4:].isdigit() else 0


def _tag_problem(path: Path, use: ProxyUse) -> str | None:
    tag = read_provenance(path)
    if tag is None:
        return "carries no provenance tag (not a proxy v2s cut)"
    first, last = use.spans[0][0], use.spans[-1][1]
    if tag.video_id != use.video_id or tag.start_s > first + TOLERANCE_S or tag.end_s < last - TOLERANCE_S:
        return (
            f"is the proxy of {tag.video_id} {tag.start_s:.2f}-{tag.end_s:.2f}s, but its records show "
            f"{use.video_id} {first:.2f}-{last:.2f}s"
        )
    return None


def problem_of(use: ProxyUse, has_audio: bool | None) -> str | None:
    """What is wrong with a proxy as its records use it; None when nothing is."""
    if not proxy_present(use.uri):
        return "missing"
    path = local_proxy(use.uri)
    problem = _tag_problem(path, use)
    if problem is not None:
        return problem
    tag = read_provenance(path)
    assert tag is not None  # checked by _tag_problem
    try:
        fps = probe(path).fps
    except MediaError as exc:
        return str(exc)
    return proxy_problem(path, tag.start_s, tag.end_s, audio=bool(has_audio), fps=fps or 6.0)


def recut(use: ProxyUse, out_dir: str, split: SplitSettings) -> None:
    """Cut the proxy again from its source, at the span its records need, into its own place."""
    if use.segment_index == 0:  # offsets mode: the whole video's proxy covers every record's span
        start, end = use.spans[0][0], use.spans[-1][1]
    else:
        (start, end), *_ = use.spans
    tag = Provenance(
        video_id=use.video_id,
        source_uri=use.source_uri,
        segment_index=use.segment_index,
        start_s=start,
        end_s=end,
    )
    source = VideoSource(uri=use.source_uri, local_path=use.source_uri, video_id=use.video_id)
    path = local_copy(source)
    try:
        has_audio = probe(path, name=use.source_uri).has_audio

        def fits(made: Path) -> str | None:
            return _tag_problem(made, use) or proxy_problem(
                made, start, end, audio=has_audio, fps=split.proxy.fps
            )

        with ProxyBatch(path, [tag], split.proxy, None, has_audio) as batch:
            ensure_proxy(
                out_dir,
                use.video_id,
                use.segment_index,
                lambda target: batch.make(tag.segment_index, target),
                fits,
            )
    finally:
        release_copy(source, path)


def verify_proxies(
    uses: list[ProxyUse],
    out_dir: str,
    has_audio: Callable[[str], bool | None],
    *,
    repair: bool,
    split: SplitSettings | None = None,
) -> list[ProxyFinding]:
    findings = []
    for use in uses:
        problem = problem_of(use, has_audio(use.video_id))
        if problem is None:
            continue
        finding = ProxyFinding(use.uri, problem)
        findings.append(finding)
        if repair:
            try:
                recut(use, out_dir, split or SplitSettings())
            except MediaError as exc:
                finding.problem += f"; could not cut it again: {exc}"
                continue
            finding.repaired = problem_of(use, has_audio(use.video_id)) is None
            finding.problem += (
                "; cut again from the source" if finding.repaired else "; still wrong after cutting"
            )
    return findings
