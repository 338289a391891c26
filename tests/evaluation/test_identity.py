"""The identity metric (a v2s addition, not in the paper): B-cubed over aligned events, with hand-computed figures.

Events of the helper scripts are 40 s apart, more than the 30 s alignment window, so event k of the GT can only
align with event k of the prediction: every expected number below follows from the labels alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evaluation import (
    EvalSettings,
    IdentityItem,
    evaluate,
    evaluate_dataset,
    identity_items,
    load_scripts,
    score_identity,
)
from evaluation.alignment import align
from evaluation.schema import as_script, script_units
from jobs.cli import app
from tests.support.eval_records import records

STEP = 40.0


def event(t: float, character: str, dialogue: str, character_id: str | None = None) -> dict:
    out = {"timestamp": t, "character": character, "dialogue": dialogue, "action": "stands"}
    if character_id is not None:
        out["character_id"] = character_id
    return out


def one_scene(events: list[dict]) -> dict:
    end = max((e["timestamp"] for e in events), default=0) + STEP
    return {"script": [{"scene_id": 1, "start_timestamp": 0, "end_timestamp": end, "events": events}]}


def paired(rows: list[tuple[str, str | None]]) -> tuple[dict, dict]:
    """GT with row k's true name at 40·k s; the prediction the same events, named like the GT but carrying
    row k's predicted id (None: no id, the name is the label). The names alone would score perfectly."""
    gt = [event(STEP * k, true, f"line {k}") for k, (true, _) in enumerate(rows)]
    pred = [event(STEP * k, true, f"line {k}", pid) for k, (true, pid) in enumerate(rows)]
    return one_scene(gt), one_scene(pred)


def test_perfect_mapping_scores_100_whatever_the_labels():
    # the predicted ids are not the GT names at all: B-cubed only asks that the partitions agree
    gt, pred = paired([("Anna", "char_001"), ("Ben", "char_002"), ("Anna", "char_001"), ("Ben", "char_002")])
    identity = evaluate(gt, pred).identity
    assert (identity.precision, identity.recall, identity.f1) == (1.0, 1.0, 1.0)
    assert (identity.items, identity.cast_events) == (4, 4)
    assert identity.worst_splits() == [] and identity.worst_mixes() == []


def test_one_character_split_three_to_one():
    # Anna: 3 items as char_001, 1 as char_007; Ben: 2 as char_002. Every predicted cluster is pure.
    gt, pred = paired(
        [
            ("Anna", "char_001"),
            ("Ben", "char_002"),
            ("Anna", "char_001"),
            ("Anna", "char_007"),
            ("Ben", "char_002"),
            ("Anna", "char_001"),
        ]
    )
    identity = evaluate(gt, pred).identity
    # recall: Anna's 3 items 3/4 each, her 1 item 1/4, Ben's 2 items 1 each → (9/4 + 1/4 + 2) / 6 = 4.5 / 6
    assert identity.precision == 1.0
    assert identity.recall == pytest.approx(0.75)
    assert identity.f1 == pytest.approx(2 * 0.75 / 1.75)
    (split,) = identity.worst_splits()
    assert (split.label, split.distinct, split.counts) == ("Anna", 2, {"char_001": 3, "char_007": 1})
    assert identity.worst_mixes() == []


def test_two_characters_mixed_into_one_id():
    # char_001 holds Anna ×3 and Ben ×1; Carl ×2 has char_002. Every true character has one id.
    gt, pred = paired(
        [
            ("Anna", "char_001"),
            ("Ben", "char_001"),
            ("Carl", "char_002"),
            ("Anna", "char_001"),
            ("Anna", "char_001"),
            ("Carl", "char_002"),
        ]
    )
    identity = evaluate(gt, pred).identity
    # precision: Anna's items 3/4 each, Ben's 1/4, Carl's 1 each → (9/4 + 1/4 + 2) / 6 = 0.75
    assert identity.precision == pytest.approx(0.75)
    assert identity.recall == 1.0
    (mix,) = identity.worst_mixes()
    assert (mix.label, mix.distinct, mix.counts) == ("char_001", 2, {"Anna": 3, "Ben": 1})
    assert identity.worst_splits() == []


def test_missed_gt_event_contributes_no_item():
    # GT Anna at 0, 40, 80 s; the prediction puts its third event (another id) at 160 s: a miss and a
    # hallucination. Counted, Anna would be split; as it is, two items, both char_001.
    gt = one_scene([event(0, "Anna", "line 0"), event(40, "Anna", "line 1"), event(80, "Anna", "line 2")])
    pred = one_scene(
        [
            event(0, "Anna", "line 0", "char_001"),
            event(40, "Anna", "line 1", "char_001"),
            event(160, "Anna", "line 2", "char_009"),
        ]
    )
    result = evaluate(gt, pred)
    assert result.events.groups == {"aligned": 2, "miss": 1, "hallucination": 1}
    identity = result.identity
    assert (identity.items, identity.cast_events) == (2, 3)
    assert (identity.precision, identity.recall, identity.f1) == (1.0, 1.0, 1.0)
    assert {it.gt_index for it in result.identity_items} == {0, 1}


def test_environment_events_are_ignored():
    # the prediction gives Anna's id to the kettle: counted, char_001 would mix Anna and "Environment"
    gt = one_scene(
        [event(0, "Anna", "line 0"), event(40, "Environment", "kettle whistles"), event(80, "Anna", "line 2")]
    )
    pred = one_scene(
        [
            event(0, "Anna", "line 0", "char_001"),
            event(40, "Anna", "kettle whistles", "char_001"),
            event(80, "Anna", "line 2", "char_001"),
        ]
    )
    identity = evaluate(gt, pred).identity
    assert (identity.items, identity.cast_events) == (2, 2)
    assert (identity.precision, identity.recall) == (1.0, 1.0)
    assert identity.worst_mixes() == []


def test_name_is_the_label_without_an_id_and_an_unnamed_event_is_its_own_identity():
    gt, pred = paired([("Anna", None), ("Ben", None), ("Anna", None)])
    assert evaluate(gt, pred).identity.f1 == 1.0  # names as labels, consistent
    # Anna: char_001, char_001, and one predicted event with no character at all (a singleton)
    gt, pred = paired([("Anna", "char_001"), ("Anna", "char_001"), ("Anna", None)])
    pred["script"][0]["events"][2]["character"] = ""
    identity = evaluate(gt, pred).identity
    # recall: (2/3 + 2/3 + 1/3) / 3 = 5/9; precision 1 (the singleton claims nobody else)
    assert identity.precision == 1.0
    assert identity.recall == pytest.approx(5 / 9)
    (split,) = identity.worst_splits()
    assert (split.distinct, split.counts) == (2, {"char_001": 2, "": 1})


def items_of(gt: dict, pred: dict) -> list[IdentityItem]:
    g, p = script_units(as_script(gt)), script_units(as_script(pred))
    return identity_items(align(g.events, p.events).groups, g.events, p.events, video="v")


def test_n_to_1_group_gives_one_item_to_the_best_text_match():
    # Anna and Ben speak 2 s apart; the prediction has one event with both lines: one 2-to-1 group.
    gt = one_scene([event(0, "Anna", "hello there friend"), event(2, "Ben", "go away now")])
    pred = one_scene([event(1, "Anna", "hello there friend go away now", "char_001")])
    g, p = script_units(as_script(gt)), script_units(as_script(pred))
    groups = [grp for grp in align(g.events, p.events).groups if grp.kind == "aligned"]
    assert [(grp.gt, grp.pred) for grp in groups] == [((0, 1), (0,))]
    # S_text: Anna's line 0.6 (18 of 30 characters) against Ben's at most 11/30, so Anna takes the event
    assert items_of(gt, pred) == [IdentityItem("v", 0, 0, "Anna", "char_001")]


def test_1_to_n_group_pairs_the_gt_event_with_its_best_predicted_event_not_its_best_name():
    gt = one_scene([event(0, "Anna", "hello there friend go away now")])
    pred = one_scene(
        [event(0, "Anna", "hello there friend", "char_005"), event(2, "Anna", "go away now", "char_001")]
    )
    assert items_of(gt, pred) == [IdentityItem("v", 0, 0, "Anna", "char_005")]


def test_dataset_pools_items_per_video_and_series_scope_joins_episodes(tmp_path):
    # ep1: Anna ×2 char_001, Ben ×1 char_003; ep2: Anna ×2 char_002 (memory lost), Ben ×1 char_003
    gt_dir, shards = tmp_path / "gt", tmp_path / "out"
    gt_dir.mkdir()
    shards.mkdir()
    lines = []
    for ep, anna in (("ep1", "char_001"), ("ep2", "char_002")):
        gt, pred = paired([("Anna", anna), ("Ben", "char_003"), ("Anna", anna)])
        (gt_dir / f"{ep}.json").write_text(json.dumps(gt), encoding="utf-8")
        for rec in records(f"/films/{ep}.mp4", [(0, 160, pred["script"][0]["events"])]):
            rec["video"]["series"] = "harbour"  # as the engine writes it for episodes of one series
            lines.append(json.dumps(rec))
    (shards / "part-00000.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")

    loaded = load_scripts(shards)
    assert loaded["ep2"].series == "harbour"
    assert loaded["ep2"].script[0].events[0].character_id == "char_002"  # the loader keeps the CPM code

    per_video = evaluate_dataset(gt_dir, shards)
    assert [v.identity.f1 for v in per_video.videos] == [1.0, 1.0]
    assert (per_video.identity.items, per_video.identity.f1) == (6, 1.0)

    series = evaluate_dataset(gt_dir, shards, settings=EvalSettings(identity_scope="series"))
    # one scope: Anna's 4 items split 2/2 (recall 1/2 each), Ben's 2 items one id → (4·1/2 + 2) / 6
    assert series.identity.precision == 1.0
    assert series.identity.recall == pytest.approx(2 / 3)
    (split,) = series.identity.worst_splits()
    assert (split.scope, split.label, split.counts) == ("harbour", "Anna", {"char_001": 2, "char_002": 2})


def test_pooling_sums_before_dividing():
    perfect = score_identity([IdentityItem("a", k, k, "Anna", "x") for k in range(2)], scope="a")
    split = score_identity(
        [IdentityItem("b", k, k, "Anna", pid) for k, pid in enumerate(["x", "x", "x", "y"])], scope="b"
    )
    pooled = perfect + split
    # recall: 2 items at 1, then 3·3/4 + 1/4 = 2.5 → 4.5 / 6 (not the mean of 1 and 0.625)
    assert pooled.recall == pytest.approx(0.75) and pooled.precision == 1.0
    assert score_identity([]).f1 is None


def test_cli_prints_the_identity_section_and_json(tmp_path):
    gt, pred = paired(
        [("Anna", "char_001"), ("Anna", "char_001"), ("Anna", "char_001"), ("Anna", "char_007")]
    )
    gt_path = tmp_path / "film.json"
    gt_path.write_text(json.dumps(gt), encoding="utf-8")
    pred_path = tmp_path / "part-00000.jsonl"
    recs = records("/films/film.mp4", [(0, 160, pred["script"][0]["events"])])
    pred_path.write_text("\n".join(json.dumps(r) for r in recs) + "\n", encoding="utf-8")
    runner = CliRunner()
    args = ["eval", "--gt", str(gt_path), "--pred", str(pred_path)]

    table = runner.invoke(app, args, env={"COLUMNS": "160"})
    assert table.exit_code == 0, table.output
    assert "Character identity, B-cubed · v2s addition, not in the paper" in table.output
    assert "Event level (Table 1)" in table.output  # beside the paper's tables, not instead of them
    # recall (9/4 + 1/4) / 4 = 62.5; F1 2·0.625/1.625 = 76.9
    row = next(line for line in table.output.splitlines() if "All (items pooled)" in line)
    assert [cell.strip() for cell in row.split("│")[2:8]] == ["100.0", "62.5", "76.9", "4/4", "1", "0"]
    assert "Anna → 2 ids: char_001 ×3, char_007 ×1" in table.output

    res = runner.invoke(app, [*args, "--format", "json", "--out", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    identity = json.loads(res.output)["v2s_additions"]["identity"]
    assert (identity["precision"], identity["recall"], identity["items"]) == (1.0, 0.625, 4)
    assert identity["scope"] == "video" and identity["split_characters"] == 1
    saved = json.loads(Path(tmp_path / "r.json").read_text(encoding="utf-8"))
    assert saved["per_video"][0]["v2s_additions"]["identity"]["splits"][0]["counts"] == {
        "char_001": 3,
        "char_007": 1,
    }

    bad = runner.invoke(app, [*args, "--identity-scope", "galaxy"])
    assert bad.exit_code == 2 and "series" in bad.output
