"""Records with the reviewers' corrections in place (`v2s export --corrected`).

A record whose segment was reviewed gets the corrected scenes and events as its `script` (absolute seconds),
the same script clip-relative in its assistant turn, and `review` (who, when, from where, how many changes).
Its id, video, plot, reasoning and meta stay the engine's: the reasoning was distilled for the engine's
script, so it may speak of a line a reviewer since changed (docs/review.md). Scene notes the review does not
cover (the script's meta, its high points) are kept as the engine wrote them. Names come from the CPM now,
as in the ground truth, so a character renamed in review carries the new name.
"""

from __future__ import annotations

from annotator.records import assistant_turn
from annotator.schemas import Record, Script
from annotator.schemas.record import Message, RecordReview
from jobs.review.ground_truth import gt_records
from profiles_db.db import Database


def corrected_records(records: list[Record], db: Database) -> tuple[list[Record], int]:
    """(the records with every reviewed one corrected, how many were corrected)."""
    reviewed = {(g["video"]["video_id"], g["video"]["segment_index"]): g for g in gt_records(db)}
    out, corrected = [], 0
    for record in records:
        found = reviewed.get((record.video.video_id, record.video.segment_index))
        if found is None:
            out.append(record)
            continue
        out.append(corrected_record(record, found))
        corrected += 1
    return out, corrected


def corrected_record(record: Record, gt: dict) -> Record:
    """One record with a ground-truth segment (a `gt_records` entry) as its script."""
    script = Script.model_validate(
        {
            "meta": record.script.meta.model_dump(mode="json"),
            "script": gt["script"]["script"],
            "high_points": [p.model_dump(mode="json") for p in record.script.high_points],
        }
    )
    clip = script.shifted(-record.video.start_s)
    messages = [
        m
        if m.role != "assistant"
        else Message(role="assistant", content=assistant_turn(record.thinking, clip))
        for m in record.messages
    ]
    review = gt["review"]
    return record.model_copy(
        update={
            "script": script,
            "messages": messages,
            "review": RecordReview(
                reviewer=review["reviewer"],
                reviewed_at=review["reviewed_at"],
                source=review.get("source") or "",
                changes=review.get("changes") or 0,
            ),
        }
    )
