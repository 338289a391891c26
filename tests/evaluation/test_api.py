"""End to end: edge cases, loading the three input forms, pairing, the CLI and the reward."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from evaluation import Script, evaluate, evaluate_dataset, load_scripts, segmented_reward
from evaluation.schema import EVENT_FIELDS, SCENE_FIELDS
from jobs.cli import app
from tests.support.eval_records import records

THRESHOLDS = (0.1, 0.3, 0.5, 0.7)


def rich_script() -> dict:
    return {
        "meta": {"title": "Test", "duration": "02:00", "characters": ["Anna", "Ben"]},
        "script": [
            {
                "scene_id": 1,
                "location": "Anna's kitchen",
                "type": "Interior",
                "environment": "warm morning light",
                "time": "Day",
                "mood": "calm",
                "start_timestamp": "00:00",
                "events": [
                    {
                        "timestamp": "00:02",
                        "character": "Anna",
                        "dialogue": "Coffee?",
                        "action": "pours coffee",
                        "expression": "smiling",
                    },
                    {"timestamp": "00:06", "character": "Ben", "dialogue": "Please.", "action": "sits down"},
                    {"timestamp": "00:12", "character": "Environment", "audio_cue": "kettle whistles"},
                ],
            },
            {
                "scene_id": 2,
                "location": "street",
                "type": "Exterior",
                "environment": "rain",
                "time": "Night",
                "mood": "tense",
                "start_timestamp": "01:00",
                "events": [
                    {"timestamp": "01:05", "character": "Ben", "action": "runs", "expression": "afraid"},
                    {
                        "timestamp": "01:30",
                        "character": "Anna",
                        "dialogue": "Ben, wait!",
                        "audio_cue": "thunder",
                    },
                ],
            },
        ],
        "high_points": [],
    }


def test_identical_scripts_score_one_everywhere():
    result = evaluate(rich_script(), rich_script())
    for name in EVENT_FIELDS:
        c = result.events.fields[name]
        assert (c.precision, c.recall, c.f1) == (1.0, 1.0, 1.0), name
    for name in SCENE_FIELDS:
        assert result.scenes.fields[name].f1 == 1.0, name
    for t in THRESHOLDS:
        assert result.events.tiou(t) == 1.0 and result.scenes.tiou(t) == 1.0
    assert result.events.overall() == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert result.events.groups == {"aligned": 5, "miss": 0, "hallucination": 0}
    assert segmented_reward(rich_script(), rich_script()) == 1.0


def test_empty_prediction():
    result = evaluate(rich_script(), {"script": []})
    for name in EVENT_FIELDS:
        c = result.events.fields[name]
        assert c.n_pred == 0 and c.n_gt > 0
        assert (c.precision, c.recall, c.f1) == (0.0, 0.0, 0.0)
    assert result.events.fields["character"].n_gt == 5
    t = result.events.temporal[0.1]
    assert (t.score, t.n_pred, t.n_gt) == (0, 0, 5) and t.f1 == 0.0
    assert result.scenes.overall()["f1"] == 0.0
    assert segmented_reward({"script": []}, rich_script()) == 0.0


def test_empty_ground_truth():
    result = evaluate({"script": []}, rich_script())
    # every prediction is a hallucination: no field counts at all (undefined), the hit rate is 0
    assert all(result.events.fields[n].f1 is None for n in EVENT_FIELDS)
    assert result.events.overall()["f1"] is None
    t = result.events.temporal[0.5]
    assert (t.score, t.n_pred, t.n_gt) == (0, 5, 0) and (t.precision, t.recall, t.f1) == (0.0, 0.0, 0.0)
    assert segmented_reward(rich_script(), {"script": []}) == 0.0
    assert segmented_reward({"script": []}, {"script": []}) == 0.0


def test_all_events_outside_the_30_s_window():
    def script(offset: float) -> dict:
        return {
            "script": [
                {
                    "scene_id": 1,
                    "start_timestamp": offset,
                    "end_timestamp": offset + 30,
                    "events": [
                        {
                            "timestamp": offset + 10 * k,
                            "character": "Anna",
                            "dialogue": "same words",
                            "action": "x",
                        }
                        for k in range(3)
                    ],
                }
            ]
        }

    result = evaluate(script(0), script(100))
    assert result.events.groups == {"aligned": 0, "miss": 3, "hallucination": 3}
    d = result.events.fields["dialogue"]
    assert (d.score, d.n_pred, d.n_gt) == (0.0, 0, 3) and d.f1 == 0.0
    t = result.events.temporal[0.1]
    assert (t.score, t.n_pred, t.n_gt) == (0, 3, 3) and t.f1 == 0.0
    assert result.scenes.groups == {"aligned": 0, "miss": 1, "hallucination": 1}


def test_reward_documented_example():
    scene = {"scene_id": 1, "start_timestamp": 0, "end_timestamp": 300}
    gt = {
        "script": [
            {
                **scene,
                "events": [
                    {"timestamp": 0, "character": "Anna", "dialogue": "hello there", "action": "waves"},
                    {"timestamp": 100, "character": "Ben", "action": "leaves"},
                ],
            }
        ]
    }
    pred = {
        "script": [
            {
                **scene,
                "events": [
                    {"timestamp": 1, "character": "Anna", "dialogue": "Hello there!", "action": "waves"},
                    {"timestamp": 200, "character": "Carl", "action": "dances"},
                ],
            }
        ]
    }
    # Overall F1 = mean(char 2/3, dialogue 1, action 2/3) = 7/9; tIoU@0.5 = 0 (the aligned pair has 0.495)
    assert segmented_reward(pred, gt) == pytest.approx(0.5 * 7 / 9)
    assert segmented_reward(Script.model_validate(pred), Script.model_validate(gt)) == pytest.approx(7 / 18)


def test_load_records_groups_by_video_sorts_and_concatenates(tmp_path):
    a = records(
        "s3://bucket/films/film_a.mp4",
        [
            (0, 60, [{"timestamp": 5, "character": "Anna", "character_id": "char_001", "action": "enters"}]),
            (60, 120, [{"timestamp": 70, "character": "Anna", "action": "sits"}]),
        ],
    )
    b = records("/data/film_b.mkv", [(0, 50, [{"timestamp": 3, "character": "Ben", "dialogue": "hi"}])])
    lines = [a[1], b[0], a[0]]  # out of order, interleaved
    path = tmp_path / "part-00000.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in lines) + "\n\n", encoding="utf-8")
    scripts = load_scripts(path)
    assert list(scripts) == ["film_a", "film_b"]
    film_a = scripts["film_a"]
    assert [s.location for s in film_a.script] == ["seg 0", "seg 1"]
    assert film_a.duration() == 120
    # the last scene of each segment ends at the segment's end_s
    assert [s.end_timestamp for s in film_a.script] == [60, 120]
    result = evaluate(film_a, film_a)
    assert result.events.tiou(0.7) == 1.0 and result.events.fields["character"].f1 == 1.0


def test_load_script_screenplay_and_folder(tmp_path):
    (tmp_path / "ep1.json").write_text(json.dumps(rich_script()), encoding="utf-8")
    screenplay = {"title": "T", "duration_s": 150, "cast": [{"name": "Anna"}], "script": rich_script()}
    (tmp_path / "ep2.json").write_text(json.dumps(screenplay), encoding="utf-8")
    (tmp_path / "manifest.json").write_text(json.dumps({"shards": []}), encoding="utf-8")
    scripts = load_scripts(tmp_path)
    assert sorted(scripts) == ["ep1", "ep2"]
    assert scripts["ep2"].duration() == 150  # the screenplay's duration_s
    assert scripts["ep1"].duration() == 120  # meta.duration "02:00"
    assert scripts["ep1"].script[0].events[0].timestamp == 2.0
    with pytest.raises(ValueError, match="neither a script"):
        load_scripts(tmp_path / "manifest.json")
    with pytest.raises(FileNotFoundError):
        load_scripts(tmp_path / "nope.json")


def test_pairing_by_id_and_single_pairs(tmp_path):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    (gt_dir / "x.json").write_text(json.dumps(rich_script()), encoding="utf-8")
    (pred_dir / "y.json").write_text(json.dumps(rich_script()), encoding="utf-8")
    single = evaluate_dataset(gt_dir, pred_dir)  # one each: paired whatever the ids
    assert len(single.videos) == 1 and single.events.overall()["f1"] == 1.0
    (gt_dir / "z.json").write_text(json.dumps(rich_script()), encoding="utf-8")
    both = evaluate_dataset(gt_dir, pred_dir)
    assert both.missing_predictions == ["x", "z"] and both.unmatched_predictions == ["y"]
    assert both.events.fields["dialogue"].recall == 0.0  # all GT items are misses


def test_cli_table_json_and_out(tmp_path):
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(rich_script()), encoding="utf-8")
    runner = CliRunner()

    table = runner.invoke(app, ["eval", "--gt", str(gt), "--pred", str(gt)], env={"COLUMNS": "160"})
    assert table.exit_code == 0, table.output
    for label in ("Char.", "Dia.", "Aud.", "Loc.", "Mood", "Overall", "tIoU@t", "100.0"):
        assert label in table.output

    out = tmp_path / "report" / "r.json"
    res = runner.invoke(
        app,
        [
            "eval",
            "--gt",
            str(gt),
            "--pred",
            str(gt),
            "--format",
            "json",
            "--group-size",
            "2",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["events"]["overall"]["f1"] == 1.0
    assert report["scenes"]["temporal"]["0.7"]["f1"] == 1.0
    assert json.loads(out.read_text(encoding="utf-8"))["per_video"][0]["id"] == "gt"

    bad = runner.invoke(app, ["eval", "--gt", str(gt), "--pred", str(gt), "--judge", "oracle"])
    assert bad.exit_code == 2 and "lexical" in bad.output
    missing = runner.invoke(app, ["eval", "--gt", str(tmp_path / "none.json"), "--pred", str(gt)])
    assert missing.exit_code == 2
