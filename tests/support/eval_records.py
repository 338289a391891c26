"""Records of the engine's shape, built in a line, for the evaluation tests."""

from __future__ import annotations

from pathlib import Path


def records(uri: str, segments: list[tuple[float, float, list[dict]]]) -> list[dict]:
    out = []
    for k, (start, end, events) in enumerate(segments):
        out.append(
            {
                "id": f"{Path(uri).stem}-{k}",
                "video": {"uri": uri, "video_id": "v", "start_s": start, "end_s": end, "segment_index": k},
                "script": {"meta": {}, "script": [{"scene_id": 1, "location": f"seg {k}", "events": events}]},
                "thinking": "",
            }
        )
    return out
