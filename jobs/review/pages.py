"""The review site's pages: the run, one page per video (segments with their proxy, scenes and events), one
per scope's cast (character cards and the relationship graph). Pure: data in, {relative path: text} out."""

from __future__ import annotations

import hashlib
import re

from annotator.schemas import Record
from jobs.review.collect import Character, ReviewData, ScopeCast, VideoRecords
from jobs.review.graph_svg import graph_svg
from jobs.review.html import clock, esc, json_data, page, table

EVENT_COLUMNS = ["time", "character", "dialogue", "action", "expression", "audio cue", "subtext"]
SCENE_COLUMNS = ["scene", "start", "end", "location", "type", "environment", "time", "mood"]


def video_page(video_id: str) -> str:
    return f"videos/{re.sub(r'[^A-Za-z0-9_-]', '_', video_id)}.html"


def cast_page(scope: str) -> str:
    return f"cast/{hashlib.sha256(scope.encode()).hexdigest()[:16]}.html"


def media_path(record: Record) -> str:
    """Where the site keeps the record's proxy (copied, so the site opens from file:// and can be moved)."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", record.video.video_id)
    return f"media/{safe}/{record.video.segment_index:05d}.mp4"


def track_path(record: Record) -> str:
    return media_path(record).removesuffix(".mp4") + ".vtt"


def _nav(depth: int, data: ReviewData) -> list[tuple[str, str]]:
    up = "../" * depth
    links = [(f"{up}index.html", "run")]
    links += [(f"{up}{video_page(v.video_id)}", v.uri.rsplit("/", 1)[-1]) for v in data.videos]
    links += [(f"{up}{cast_page(c.scope)}", f"cast of {c.scope}") for c in data.casts]
    return links


# -- a video ---------------------------------------------------------------------------------------------


def render_video(video: VideoRecords, data: ReviewData) -> str:
    sections = [_segment(video, record, n) for n, record in enumerate(video.records, start=1)]
    intro = (
        f'<p class="muted">{esc(video.uri)} · scope {esc(video.scope)} · {len(video.records)} segments</p>'
    )
    return page(video.uri.rsplit("/", 1)[-1], intro + "".join(sections), nav=_nav(1, data))


def _segment(video: VideoRecords, record: Record, n: int) -> str:
    offset = video.proxy_offset(record)
    events = [e for scene in record.script.script for e in scene.events]
    rows = [
        [clock(e.timestamp), e.character, e.dialogue, e.action, e.expression, e.audio_cue, e.subtext]
        for e in events
    ]
    attrs = [f'class="event" data-t="{max(0.0, e.timestamp - offset):.3f}"' for e in events]
    scenes = [_scene_row(s) for s in record.script.script]
    cues = [
        {
            "start": max(0.0, e.timestamp - offset),
            "end": _cue_end(events, i, record) - offset,
            "text": _cue(e),
        }
        for i, e in enumerate(events)
    ]
    quality = "" if record.quality.accepted else f"<p>rejected: {esc('; '.join(record.quality.problems))}</p>"
    span = f"{clock(record.video.start_s)}–{clock(record.video.end_s)}"
    return (
        f'<section class="segment" id="segment-{record.video.segment_index}" data-cues="cues-{n}">'
        f"<h2>segment {record.video.segment_index} · {esc(span)}</h2>"
        f'<video controls preload="metadata" src="../{esc(media_path(record))}"></video>'
        f'<p class="muted">record {esc(record.id)} · <a href="../{esc(track_path(record))}">WebVTT</a></p>'
        f"{quality}<p>{esc(record.plot.summary)}</p>"
        f"<h3>scenes</h3>{table(SCENE_COLUMNS, scenes)}"
        f"<h3>events</h3>{table(EVENT_COLUMNS, rows, cls='events', row_attrs=attrs)}"
        f"{json_data(f'cues-{n}', cues)}</section>"
    )


def _scene_row(s) -> list:
    times = [clock(s.start_timestamp), clock(s.end_timestamp)]
    return [s.scene_id, *times, s.location, s.type, s.environment, s.time, s.mood]


def _cue_end(events, i: int, record: Record) -> float:
    event = events[i]
    if event.end_timestamp is not None and event.end_timestamp > event.timestamp:
        return event.end_timestamp
    later = [e.timestamp for e in events[i + 1 :] if e.timestamp > event.timestamp]
    return min(later[0] if later else record.video.end_s, event.timestamp + 6.0)


def _cue(event) -> str:
    said = f"{event.character}: {event.dialogue}" if event.dialogue else ""
    done = " ".join(f"[{x}]" for x in (event.action, event.audio_cue) if x)
    return " ".join(x for x in (said, done) if x) or event.character


def webvtt(video: VideoRecords, record: Record) -> str:
    """The segment's dialogue and events as a WebVTT file, times in the proxy's own clock."""
    offset = video.proxy_offset(record)
    events = [e for scene in record.script.script for e in scene.events]
    lines = ["WEBVTT", ""]
    for i, event in enumerate(events):
        start, end = max(0.0, event.timestamp - offset), _cue_end(events, i, record) - offset
        text = _cue(event).replace("-->", "→")  # the one sequence that would end a cue's timing line
        lines += [f"{i + 1}", f"{_vtt_time(start)} --> {_vtt_time(max(end, start + 0.5))}", text, ""]
    return "\n".join(lines)


def _vtt_time(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms % 3_600_000 // 60_000:02d}:{ms % 60_000 // 1000:02d}.{ms % 1000:03d}"


# -- a scope's cast --------------------------------------------------------------------------------------


def render_cast(cast: ScopeCast, data: ReviewData) -> str:
    cards = "".join(_card(c) for c in cast.characters)
    svg = graph_svg([c.profile for c in cast.characters], cast.relationships, f"characters of {cast.scope}")
    links = [
        [r.get("a_name") or r["a_code"], r.get("label"), r.get("b_name") or r["b_code"], r.get("first_idx")]
        for r in cast.relationships
    ]
    body = (
        f'<h2>characters</h2><div class="cards">{cards}</div>'
        f"<h2>relationships</h2>{svg}{table(['who', 'relation', 'whom', 'from segment'], links)}"
    )
    return page(f"cast of {cast.scope}", body, nav=_nav(1, data))


def _card(character: Character) -> str:
    p = character.profile
    names = [
        f"segment {h.segment}: {h.old_name or h.old_code} → {h.new_name}"
        for h in (character.history.name_history if character.history else [])
    ]
    seen = [
        f'<a href="../{esc(video_page(vid))}#segment-{idx}">{esc(vid[:8])} #{idx}</a>'
        for vid, idx in character.segments
    ]
    looks = [
        f"{look} (from {vid[:8]} segment {idx})" if vid else look for look, vid, idx in character.appearances
    ]
    return (
        f'<div class="card" data-code="{esc(p["code"])}"><h3>{esc(p.get("name") or p["code"])}</h3>'
        f'<p class="muted">{esc(p["code"])} · {esc(p.get("status"))} · {esc(p.get("role_type"))}</p>'
        f"{_list('aliases', p.get('aliases') or [])}{_list('former codes', p.get('former_codes') or [])}"
        f"{_list('name history', names)}{_list('appearance history', looks)}"
        f"<p>in segments: {' '.join(seen) or '-'}</p></div>"
    )


def _list(title: str, items: list) -> str:
    if not items:
        return ""
    return f"<p><b>{esc(title)}</b></p><ul>{''.join(f'<li>{esc(i)}</li>' for i in items)}</ul>"


# -- the run ---------------------------------------------------------------------------------------------


def render_run(data: ReviewData, scores: dict | None) -> str:
    r = data.report
    records = sum(len(v.records) for v in data.videos)
    usage = ["tokens in", "tokens out", "cost USD"]

    def spent(u) -> list:
        return [f"{u.input_tokens:,}", f"{u.output_tokens:,}", f"{u.cost_usd:.4f}"]

    stages = [[s.stage, s.done, s.failed, s.rejected, s.pending, *spent(s)] for s in r.stages]
    parts = [
        f"<p>{len(data.videos)} videos with records, {records} records, {r.segments} segments in the database; "
        f"total {esc(f'{r.total.cost_usd:.4f}')} USD</p>",
        "<h2>per stage</h2>" + table(["stage", "done", "failed", "rejected", "pending", *usage], stages),
        "<h2>per model</h2>" + table(["model", *usage], [[m.model, *spent(m)] for m in r.per_model]),
        "<h2>per service tier</h2>" + table(["tier", *usage], [[t.tier, *spent(t)] for t in r.per_tier]),
        "<h2>rejected segments</h2>"
        + table(
            ["video", "segment", "reasons"],
            [[x.get("video"), x.get("segment"), "; ".join(x.get("reasons", []))] for x in data.rejects],
        ),
        "<h2>failed inputs</h2>" + table(["video", "why"], [[f.uri, f.error] for f in r.failed_inputs]),
        "<h2>failed stages</h2>"
        + table(
            ["video", "segment", "stage", "status", "why"],
            [[f.uri, f.segment_index, f.stage, f.status, f.error] for f in r.failures],
        ),
        "<h2>skipped inputs</h2>" + table(["input", "why"], [[s.uri, s.reason] for s in r.skipped_inputs]),
    ]
    parts.append("<h2>V2S scores</h2>" + _scores(scores))
    return page(f"v2s run: {data.out}", "".join(parts), nav=_nav(0, data))


def _scores(scores: dict | None) -> str:
    if scores is None:
        return '<p class="muted">no ground truth given (v2s review build OUT --gt GT)</p>'
    rows = []
    for level in ("events", "scenes"):
        overall = scores[level]["overall"]
        for name, value in overall.items() if isinstance(overall, dict) else [("overall", overall)]:
            rows.append([level, name, f"{value:.3f}" if isinstance(value, float) else value])
    return table(["level", "metric", "value"], rows)
