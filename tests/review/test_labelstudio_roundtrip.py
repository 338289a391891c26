"""The Label Studio round trip against a real Label Studio server (its own virtualenv, SQLite, loopback):
`v2s review push` the demo's tasks, an annotator's submission through the REST API that changes one line of
dialogue and one character's name, `v2s review import`, and the change in the ground truth tables, in
`v2s eval --gt OUT` (lower than 100 by what that line costs) and in the character memory."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import requests
from rich.console import Console
from sqlalchemy import select
from typer.testing import CliRunner

from evaluation.text import text_sim
from jobs.cli import app
from jobs.demo import run_demo
from jobs.review.ls_client import LabelStudio
from profiles_db.cpm import CharacterProfileManager
from profiles_db.db import Database, sqlite_url
from profiles_db.models import GtEvent, GtScene, GtSegment, NameEvent
from tests.support.e2e import free_port
from tests.support.labelstudio import label_studio, require

pytestmark = [pytest.mark.slow, pytest.mark.own_ray]
NEW_LINE = "One ticket to Marrow Island. The last boat, please."
NEW_NAME = "Captain Elias Crane"  # the reviewer adds the rank the film gives him


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """`v2s demo` (the sample film through the simulator) while Label Studio starts beside it: the server
    serves local files from the demo's folder."""
    require()  # skip before paying for the demo when there is no Label Studio
    base = tmp_path_factory.mktemp("ls-demo")
    with label_studio(tmp_path_factory.mktemp("ls-server"), base, free_port()) as server:
        assert run_demo(base, 60.0, Console(file=io.StringIO())) == 0
        yield base, server.wait()


def _run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for p in sorted((out / "shards").glob("part-*.jsonl")) for line in p.open()]


def _edit(result: list[dict], region: str, name: str, text: str) -> None:
    (item,) = [r for r in result if r["id"] == region and r["from_name"] == name]
    item["value"]["text"] = [text]


def test_a_review_in_label_studio_comes_back_as_ground_truth_a_score_and_a_renamed_character(setup):
    demo, server = setup
    out = demo / "run"
    key = ("--api-key", server.token)
    pushed = _run("review", "push", str(out), "--url", server.url, *key, "--document-root", str(demo))
    project = json.loads(pushed.strip().splitlines()[-1])["project"]
    ls = LabelStudio(server.url, server.token)
    tasks = {t["data"]["v2s_segment"]: t for t in ls.tasks(project)}
    records = {r["video"]["segment_index"]: r for r in _records(out)}
    assert sorted(tasks) == sorted(records)

    # Label Studio itself serves the proxy the task names (local files under the project's storage)
    first = tasks[1]
    media = requests.get(
        server.url + first["data"]["video"], headers={"Authorization": f"Token {server.token}"}
    )
    assert (
        media.status_code == 200
        and media.content == (Path(out) / records[1]["video"]["proxy_uri"]).read_bytes()
    )

    # the annotator starts from the prediction, fixes one line and gives one character his full name
    record = records[1]
    events = [e for scene in record["script"]["script"] for e in scene["events"]]
    line_at = next(j for j, e in enumerate(events) if e["character"] == "Elias Crane" and e["dialogue"])
    scene_no, event_no = _position(record, line_at)
    region = f"sc{scene_no}e{event_no}"
    old_line = events[line_at]["dialogue"]
    (prediction,) = requests.get(
        f"{server.url}/api/predictions",
        params={"task": first["id"]},
        headers={"Authorization": f"Token {server.token}"},
    ).json()
    result = prediction["result"]
    _edit(result, region, "dialogue", NEW_LINE)
    _edit(result, region, "character_name", NEW_NAME)
    ls.annotate(first["id"], result)

    _run("review", "import", "--out", str(out), "--url", server.url, "--project", str(project), *key)
    db = Database(sqlite_url(out / "v2s.sqlite"))
    try:
        _check_ground_truth(db, region, old_line, server.user, len(events))
        _check_memory(db, server.user)
        _check_score(out, record, old_line)
        _check_corrected_export(out, demo / "exports", record, old_line, server.user)
        # importing the same annotations again changes nothing
        _run("review", "import", "--out", str(out), "--url", server.url, "--project", str(project), *key)
        _check_ground_truth(db, region, old_line, server.user, len(events))
        with db.sessions() as s:
            assert len(s.scalars(select(NameEvent).where(NameEvent.new_name == NEW_NAME)).all()) == 1
    finally:
        db.dispose()


def _check_corrected_export(out: Path, to: Path, record: dict, old_line: str, reviewer: str) -> None:
    """`v2s export --corrected`: the reviewed record's script and SFT target carry the reviewer's line and
    the new name, marked with who reviewed it; every other record is exported as it was."""
    rows = {}
    for mode in ("plain", "corrected"):
        flags = ["--corrected"] if mode == "corrected" else []
        for fmt in ("hf", "swift"):
            _run("export", str(out), "--to", str(to / f"{mode}-{fmt}"), "--format", fmt, *flags)
            lines = (to / f"{mode}-{fmt}" / "train.jsonl").read_text().splitlines()
            rows[mode, fmt] = {json.loads(line)["id"]: json.loads(line) for line in lines}
    reviewed = rows["corrected", "hf"][record["id"]]
    lines = [e["dialogue"] for scene in reviewed["script"]["script"] for e in scene["events"]]
    assert NEW_LINE in lines and old_line not in lines
    assert NEW_NAME in {e["character"] for scene in reviewed["script"]["script"] for e in scene["events"]}
    assert reviewed["review"]["reviewer"] == reviewer and reviewed["review"]["changes"] >= 1
    target = rows["corrected", "swift"][record["id"]]["messages"][-1]["content"]
    script_part = target.split("</think>\n", 1)[1]  # the reasoning before it is the engine's, unchanged
    assert NEW_LINE in script_part and old_line not in script_part
    for fmt in ("hf", "swift"):
        others = set(rows["plain", fmt]) - {record["id"]}
        assert others and all(rows["corrected", fmt][i] == rows["plain", fmt][i] for i in others)
    assert rows["plain", "hf"][record["id"]]["review"] is None


def _position(record: dict, flat_index: int) -> tuple[int, int]:
    n = 0
    for k, scene in enumerate(record["script"]["script"], start=1):
        for j, _ in enumerate(scene["events"], start=1):
            if n == flat_index:
                return k, j
            n += 1
    raise AssertionError(flat_index)


def _check_ground_truth(db: Database, region: str, old_line: str, reviewer: str, n_events: int) -> None:
    with db.sessions() as s:
        (segment,) = s.scalars(select(GtSegment)).all()  # only the annotated task became ground truth
        assert segment.reviewer == reviewer and segment.source == "labelstudio"
        assert {"region": region, "field": "dialogue", "old": old_line, "new": NEW_LINE} in segment.changes
        events = s.scalars(select(GtEvent).join(GtScene).where(GtScene.gt_segment_id == segment.id)).all()
        assert len(events) == n_events
        (edited,) = [e for e in events if e.region_id == region]
        assert edited.dialogue == NEW_LINE and edited.character == NEW_NAME


def _check_memory(db: Database, reviewer: str) -> None:
    (character,) = [p for p in _all_profiles(db) if p.name == NEW_NAME]
    assert "Elias Crane" in character.aliases
    with db.sessions() as s:
        (event,) = s.scalars(select(NameEvent).where(NameEvent.new_name == NEW_NAME)).all()
    assert event.evidence.startswith(f"review by {reviewer} (") and event.old_name == "Elias Crane"


def _all_profiles(db: Database):
    from profiles_db.models import Video

    with db.sessions() as s:
        scopes = set(s.scalars(select(Video.scope)))
    manager = CharacterProfileManager(db)
    return [p for scope in scopes for p in manager.profiles(scope)]


def _check_score(out: Path, record: dict, old_line: str) -> None:
    """The engine's output against its corrected ground truth, on the reviewed segment: every figure is 100
    but dialogue, whose score loses 1 − sim(old, new) of one item out of the segment's dialogue items (each
    event is its own 1-to-1 group, one item per event with dialogue); the renamed character still maps to
    his old name (a word-subset of the new one), so the character field stays 100."""
    report = json.loads(_run("eval", "--gt", str(out), "--pred", str(out), "--format", "json"))
    events = report["events"]["fields"]
    n_dialogue = sum(1 for scene in record["script"]["script"] for e in scene["events"] if e["dialogue"])
    expected = (n_dialogue - 1 + text_sim(old_line, NEW_LINE)) / n_dialogue
    assert events["dialogue"]["n_gt"] == events["dialogue"]["n_pred"] == n_dialogue
    assert events["dialogue"]["f1"] == pytest.approx(expected, abs=1e-6)
    assert expected < 1.0
    for name in ("character", "action", "expression", "audio_cue"):
        assert events[name]["f1"] in (None, 1.0), name
    defined = [f["f1"] for f in events.values() if f["f1"] is not None]
    assert report["events"]["overall"]["f1"] == pytest.approx(sum(defined) / len(defined))
    assert all(f["f1"] in (None, 1.0) for f in report["scenes"]["fields"].values())
    assert report["events"]["temporal"]["0.7"]["f1"] == 1.0
