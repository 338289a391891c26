"""Records whose null and empty patterns differ, built by the engine's own `build_record` from answers as the
models give them, and written by the real `ShardWriter` one shard each: the shapes that made `datasets` fail
(issue #13) when a column was all null or empty in one shard and typed in another."""

from __future__ import annotations

from pathlib import Path

from annotator.records import build_record
from annotator.schemas import CharacterProfile, DistilledThinking, Script
from annotator.schemas.record import MemoryGap, RecordVideo
from annotator.schemas.usage import StageUsage
from profiles_db.db import Database, sqlite_url
from profiles_db.models import Segment, Video
from tests.support.db import plot_answer
from workers.shards import ShardWriter

CAST = {
    "char_001": CharacterProfile(id="char_001", name="Mara Quinn", status="named", aliases=["Mara"]),
    "unknown_001": CharacterProfile(id="unknown_001", status="provisional", appearance="man in a grey cap"),
}


def _script(events: list[dict], *, end: bool) -> Script:
    scene = {"scene_id": 1, "location": "Harbour", "type": "Exterior", "events": events}
    if end:
        scene |= {"start_timestamp": "00:00", "end_timestamp": "00:50"}
    points = [{"id": 1, "type": "Reveal", "time_range": ["00:10", "00:20"], "score": 8.5}] if end else []
    return Script.model_validate(
        {
            "meta": {"title": "t", "duration": "00:50", "characters": []},
            "script": [scene],
            "high_points": points,
        }
    )


def series_episode() -> dict:
    """A series episode with named characters, event end times, a continuity note and three models."""
    events = [
        {"timestamp": "00:05", "end_timestamp": "00:09", "character": "char_001", "dialogue": "Cast off."},
        {"timestamp": "00:12", "character": "unknown_001", "action": "coils a rope", "voice_type": "OS"},
    ]
    return {
        "video": {"series": "Harbour Lights", "episode": 2},
        "plot": plot_answer(
            1,
            [{"id": "char_001", "name": "Mara Quinn"}],
            events=[
                {"timestamp": "00:05", "description": "char_001 leaves", "involved_characters": ["char_001"]}
            ],
            continuity_note="picks up after the storm",
        ),
        "script": _script(events, end=True),
        "stages": {
            "plot": StageUsage(model="gemini-2.5-pro", prompt_version="plot/3", input_tokens=900),
            "script": StageUsage(model="gemini-2.5-pro", prompt_version="script/4", output_tokens=300),
            "distill": StageUsage(model="deepseek-reasoner", prompt_version="distill/2", cost_usd=0.01),
        },
        "reasoning": "long chain of thought",
        "gaps": [],
    }


def no_characters() -> dict:
    """A film (no series, no episode) whose segment has only the environment: no characters, no end times,
    no involved characters, no high points, no continuity note, one model."""
    events = [{"timestamp": "00:03", "character": "Environment", "audio_cue": "gulls, distant horn"}]
    return {
        "video": {"series": None, "episode": None},
        "plot": plot_answer(1, [], events=[{"timestamp": "00:03", "description": "an empty quay"}]),
        "script": _script(events, end=False),
        "stages": {"script": StageUsage(model="gemini-2.5-flash", prompt_version="script/4")},
        "reasoning": None,
        "gaps": [],
    }


def other_models() -> dict:
    """Another model map (an OpenAI-compatible script model, no plot model recorded) and a memory gap."""
    events = [{"timestamp": "00:20", "end_timestamp": "00:25", "character": "char_001", "expression": "wary"}]
    return {
        "video": {"series": None, "episode": None},
        "plot": plot_answer(2, [{"id": "char_001", "name": "Mara Quinn"}]),
        "script": _script(events, end=False),
        "stages": {
            "script": StageUsage(model="qwen2.5-vl-72b", prompt_version="script/5", input_tokens=10),
            "distill": StageUsage(model="gpt-4.1-mini"),
            "plot": StageUsage(),
        },
        "reasoning": None,
        "gaps": [MemoryGap(video_id="vid-c", segment_index=1)],
    }


SHAPES = {"vid-a": series_episode, "vid-b": no_characters, "vid-c": other_models}


def write_shapes(out: str | Path, db_path: Path, proxies: dict[str, str] | None = None) -> list[str]:
    """One shard per shape (max_records=1) under `out` (a folder or a bucket URI); returns the record ids."""
    db = Database(sqlite_url(db_path))
    ids: list[tuple[int, str]] = []
    with db.transaction() as s:
        for n, video_id in enumerate(SHAPES, start=1):
            s.add(Video(id=video_id, uri=f"/films/{video_id}.mp4", scope=video_id, status="split"))
            s.flush()
            segment = Segment(video_id=video_id, idx=1, start_s=60.0 * n, end_s=60.0 * n + 50)
            s.add(segment)
            s.flush()
            ids.append((segment.id, video_id))
    writer = ShardWriter(out, db, max_records=1)
    written = []
    for segment_id, video_id in ids:
        record = _build(video_id, SHAPES[video_id](), (proxies or {}).get(video_id))
        writer.write(segment_id, record.model_dump_json())
        written.append(record.id)
    writer.finish()
    db.dispose()
    return written


def _build(video_id: str, shape: dict, proxy: str | None):
    start = {"vid-a": 60.0, "vid-b": 120.0, "vid-c": 180.0}[video_id]
    video = RecordVideo(
        uri=f"/films/{video_id}.mp4",
        video_id=video_id,
        start_s=start,
        end_s=start + 50,
        proxy_uri=proxy,
        segment_index=1,
        **shape["video"],
    )
    thinking = DistilledThinking(plot_summary="Mara leaves the harbour.", thinking="Who is on the quay?")
    return build_record(
        job_id="job-shapes",
        pipeline_version="pv-1",
        video=video,
        plot=shape["plot"],
        code_map={},
        script=shape["script"],
        thinking=thinking,
        reasoning_content=shape["reasoning"],
        stages=shape["stages"],
        resolve=CAST.get,
        memory_gaps=shape["gaps"],
    )
