"""`v2s review build` in a real headless Chromium (Debian's `chromium`, driven by Playwright; no browser is
downloaded): the demo's site renders, an event click seeks its video, the graph has one node per canonical
character, model text shows as text and runs nothing, and no request leaves the pages."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from annotator.simulator.screenplay import Screenplay
from annotator.simulator.server import SimulatorServer
from jobs.cli import app
from jobs.demo import run_demo
from jobs.profiles_cli import view_rows
from jobs.runner import JobSpec, run_job
from profiles_db.db import Database, sqlite_url
from tests.support.e2e import models_from
from tests.support.films import film_copy
from tests.support.play import BEN_NAMING_LINE, PLAY

pytestmark = [pytest.mark.slow, pytest.mark.shared_ray]
CHROMIUM = "/usr/bin/chromium"
# as this machine's notes say Chromium must start here: no sandbox as root, no background connections
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
]
ARGS += ["--disable-component-update", "--disable-sync"]
SCRIPT_LINE = "<script>window.__xss = 1; alert(1)</script>"
HOSTILE_NAME = 'Cleo "><img src=x onerror="window.__xss=2">'


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        if os.environ.get("V2S_REQUIRE_CHROMIUM") == "1":
            pytest.fail(
                "V2S_REQUIRE_CHROMIUM=1 but Debian's chromium is not installed (apt-get install chromium)"
            )
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def demo_site(tmp_path_factory) -> Path:
    """`v2s demo` (the sample film, the simulator at its default imperfection), then `v2s review build`."""
    base = tmp_path_factory.mktemp("review-demo")
    before = dict(os.environ)
    assert run_demo(base, 60.0, Console(file=io.StringIO())) == 0
    assert dict(os.environ) == before  # the simulator's settings were the demo's job's alone
    built = CliRunner().invoke(app, ["review", "build", str(base / "run")])
    assert built.exit_code == 0, built.output
    return base / "run"


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory) -> Path:
    """A run whose model answers carry markup: a line of dialogue that is a script, a name that closes an
    attribute and opens an image with an onerror handler (the simulator answers from this screenplay)."""
    base = tmp_path_factory.mktemp("review-hostile")
    text = json.dumps(PLAY).replace(json.dumps(BEN_NAMING_LINE)[1:-1], json.dumps(SCRIPT_LINE)[1:-1])
    text = text.replace("Cleo Park", json.dumps(HOSTILE_NAME)[1:-1])
    play = Screenplay.model_validate(json.loads(text))
    film = film_copy(play, base / "film.mp4")
    with SimulatorServer(play) as server, models_from(server, "sim-test-key-review"):
        run_job(JobSpec(source=str(film), out=base / "out", max_segment_s=30, num_cpus=2))
    built = CliRunner().invoke(app, ["review", "build", str(base / "out")])
    assert built.exit_code == 0, built.output
    return base / "out"


def _open(browser, path: Path, seen: list[str] | None = None):
    page = browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    if seen is not None:
        page.on("request", lambda r: seen.append(r.url))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, dialogs


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for p in sorted((out / "shards").glob("part-*.jsonl")) for line in p.open()]


def test_the_demo_site_renders_and_an_event_click_seeks_its_video(browser, demo_site):
    records = _records(demo_site)
    (video_page,) = (demo_site / "review" / "videos").glob("*.html")
    page, dialogs = _open(browser, video_page)
    sections = page.locator("section.segment")
    assert sections.count() == len(records)
    events = [e for r in records for scene in r["script"]["script"] for e in scene["events"]]
    assert page.locator("tr.event").count() == len(events)
    second = records[1]
    first_event = second["script"]["script"][0]["events"][0]
    row = sections.nth(1).locator("tr.event").nth(0)
    row.click()
    expected = first_event["timestamp"] - second["video"]["start_s"]  # the proxy's clock: segment-relative
    now = page.evaluate("document.querySelectorAll('section.segment')[1].querySelector('video').currentTime")
    assert now == pytest.approx(expected, abs=0.01)
    assert "current" in (row.get_attribute("class") or "")
    cues = page.evaluate(
        "document.querySelectorAll('section.segment')[1].querySelector('video').textTracks[0].cues.length"
    )
    assert cues == sum(len(s["events"]) for s in second["script"]["script"])
    assert page.evaluate("document.querySelector('video').readyState") >= 1  # the copied proxy plays
    assert not dialogs
    page.close()


def test_the_graph_has_one_node_per_canonical_character(browser, demo_site):
    db = Database(sqlite_url(demo_site / "v2s.sqlite"))
    rows = view_rows(db, "v_character_profiles", None, "code")
    db.dispose()
    canonical = {r["code"] for r in rows}
    (cast_page,) = (demo_site / "review" / "cast").glob("*.html")
    page, _ = _open(browser, cast_page)
    nodes = page.eval_on_selector_all("svg.graph g.node", "els => els.map(e => e.dataset.code)")
    assert sorted(nodes) == sorted(canonical) and len(nodes) == len(set(nodes))
    cards = page.eval_on_selector_all(".card", "els => els.map(e => e.dataset.code)")
    assert sorted(cards) == sorted(canonical)
    # every costume of every appearance history says which segment it was first seen in
    looks = sum(len(r["appearance_history"]) for r in rows)
    assert looks >= len(rows) and page.locator(".card li", has_text="(from ").count() == looks
    page.close()


def test_no_request_leaves_the_pages(browser, demo_site):
    seen: list[str] = []
    site = demo_site / "review"
    for path in [site / "index.html", *site.glob("videos/*.html"), *site.glob("cast/*.html")]:
        page, _ = _open(browser, path, seen)
        page.wait_for_timeout(300)
        page.close()
    assert seen and all(url.startswith("file://") for url in seen), sorted(set(seen))


def test_model_text_shows_as_text_and_runs_nothing(browser, hostile_site):
    site = hostile_site / "review"
    pages = [site / "index.html", *site.glob("videos/*.html"), *site.glob("cast/*.html")]
    shown = ""
    for path in pages:
        page, dialogs = _open(browser, path)
        page.wait_for_timeout(300)
        assert not dialogs, path
        assert page.evaluate("typeof window.__xss") == "undefined", path
        assert page.locator("img").count() == 0, path
        shown += page.inner_text("body")
        page.close()
    assert SCRIPT_LINE in shown  # the dialogue, as written, on the video page
    assert 'onerror="window.__xss=2"' in shown  # the name, as text, wherever it is shown


def test_an_output_without_records_is_refused(tmp_path):
    (tmp_path / "v2s.sqlite").touch()
    result = CliRunner().invoke(app, ["review", "build", str(tmp_path)])
    assert result.exit_code == 2 and "has no records" in " ".join(result.output.split())
