"""No character code that means nobody reaches a record (issue 30): after the CPM applies a plot, every code in a
record's plot, script and thinking is a profile of the memory (through its redirects); a code no profile answers
to stops the record (`UnresolvedCodes`) instead of being written. The gateway's contract keeps such codes out of
fresh answers (tests/gateway/test_contract.py); this is the last line, for answers stored before it."""

from __future__ import annotations

import pytest

from annotator.records import UnresolvedCodes, build_record
from annotator.schemas import DistilledThinking, Script
from annotator.schemas.contract import codes_in
from annotator.schemas.record import RecordVideo
from profiles_db.cpm import CharacterProfileManager
from tests.support.db import make_video, plot_answer

SCOPE = "film-x"


def _record(cpm: CharacterProfileManager, plot, code_map: dict[str, str], script: dict, thinking: str):
    return build_record(
        job_id="job-codes",
        pipeline_version="pv",
        video=RecordVideo(uri="/f.mp4", video_id="vid", start_s=0.0, end_s=30.0, segment_index=1),
        plot=plot,
        code_map=code_map,
        script=Script.model_validate(script),
        thinking=DistilledThinking(plot_summary="Anna waits.", thinking=thinking),
        reasoning_content=None,
        stages={},
        resolve=cpm.resolver(SCOPE),
    )


def _script(character: str, action: str) -> dict:
    return {
        "script": [
            {"scene_id": 1, "events": [{"timestamp": "00:03", "character": character, "action": action}]}
        ]
    }


def test_an_unknown_matched_from_is_new_and_no_record_text_carries_a_code_outside_the_memory(database):
    """DESIGN §5: `matched_from` naming no known code is treated as new (and logged); the record then names
    people only by profiles the memory holds."""
    cpm = CharacterProfileManager(database)
    (seg,) = make_video(database, scope=SCOPE, segments=1)
    plot = plot_answer(
        1,
        [
            {"id": "char_001", "name": "Anna", "matched_from": "char_777"},
            {"id": "unknown_001", "name": "Unnamed"},
        ],
        narrative="char_001 waits while unknown_001 smokes.",
        events=[{"timestamp": "00:02", "description": "char_001 waits", "involved_characters": ["char_001"]}],
    )
    report = cpm.apply(SCOPE, seg, plot)
    assert report.created == ["char_001", "unknown_001"]
    assert any("char_777" in w and "treated as a new character" in w for w in report.warnings)
    record = _record(
        cpm, plot, report.code_map, _script("unknown_001", "unknown_001 smokes"), "I see char_001."
    )
    known = {p.id for p in map(cpm.resolver(SCOPE), ["char_001", "unknown_001"]) if p}
    texts = [record.plot, record.script, record.thinking, record.messages[1].content]
    assert codes_in(texts) <= known  # only the unnamed man keeps his code: it is his display name
    assert "char_777" not in record.model_dump_json()


@pytest.mark.parametrize(
    ("where", "plot_text", "script", "thinking"),
    [
        ("plot", "char_001 waits; char_999 watches.", _script("char_001", "waits"), "Anna waits."),
        ("script event", "char_001 waits.", _script("char_999", "watches"), "Anna waits."),
        ("script text", "char_001 waits.", _script("char_001", "nods at char_999"), "Anna waits."),
        ("thinking", "char_001 waits.", _script("char_001", "waits"), "char_999 must be her brother."),
    ],
)
def test_a_stored_answer_naming_a_code_no_profile_has_builds_no_record(
    database, where, plot_text, script, thinking
):
    cpm = CharacterProfileManager(database)
    (seg,) = make_video(database, scope=SCOPE, segments=1)
    plot = plot_answer(1, [{"id": "char_001", "name": "Anna"}], narrative=plot_text)
    report = cpm.apply(SCOPE, seg, plot)
    with pytest.raises(UnresolvedCodes) as refused:
        _record(cpm, plot, report.code_map, script, thinking)
    assert refused.value.codes == {"char_999"}, where
