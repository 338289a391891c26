"""Batch items through the gateway's batch half (annotator/gateway/batch.py, gemini_batch.py, openai_batch.py),
the REAL google-genai and openai SDKs against the simulator's batch APIs: what a batch that ended early keeps,
what a gone context cache turns into, and a degenerate answer. The loop below is the worker's
(workers/batch_tasks.py) without Ray and the database: submit, wait for the batch to end, settle each item,
send the rest again."""

from __future__ import annotations

import time

import pytest

from annotator.gateway import Gateway, Media, StageAsk, StructuredResult
from annotator.gateway.batch import BatchRun, BatchSnapshot, ItemState, display_name
from annotator.simulator.batch_store import BatchPlay
from annotator.simulator.server import SimulatorServer
from annotator.stages import PlotReasoner, SegmentInput
from tests.support.gateway import settings_for
from tests.support.play import make_proxy, segment_provenance
from workers.storage import file_sha256

SPANS = [(1, 0.0, 30.0), (2, 30.0, 60.0), (3, 60.0, 90.0)]


def segments(folder) -> dict[str, SegmentInput]:
    out = {}
    for index, start, end in SPANS:
        proxy = make_proxy(folder / f"seg{index}.mp4", segment_provenance(index, start, end))
        media = Media(path=proxy, sha256=file_sha256(proxy))
        out[str(index)] = SegmentInput(index=index, start_s=start, end_s=end, media=media)
    return out


def ended(api, name: str, model: str, seconds: float = 20.0) -> BatchSnapshot:
    """The batch once the provider says it has ended (polled, as the worker does, with a deadline)."""
    deadline = time.monotonic() + seconds
    while (snapshot := api.batch(name, model)).state == "open":
        assert time.monotonic() < deadline, f"{name} still open"
        time.sleep(0.05)
    return snapshot


def run_batches(gw: Gateway, backend: str, asks: dict[str, StageAsk]) -> tuple[dict, list[BatchSnapshot]]:
    """Every item settled through as many batches as it takes: (results by key, the snapshots read)."""
    api = gw.batches(backend)
    assert api is not None
    rounds = BatchRun(gw.settings)
    states: dict[str, ItemState] = {key: rounds.item(ask) for key, ask in asks.items()}
    results: dict[str, StructuredResult] = {}
    snapshots: list[BatchSnapshot] = []
    attempt = 0
    while len(results) < len(asks):
        attempt += 1
        left = {key: states[key].request for key in asks if key not in results}
        model = next(iter(asks.values())).model
        name = api.submit_batch(model, left, display_name("test", "stage", attempt, list(left)))
        snapshot = ended(api, name, model)
        snapshots.append(snapshot)
        for key in left:
            settled = rounds.settle(asks[key], states[key], snapshot.results.get(key))
            if settled is not None:
                results[key] = settled
    return results, snapshots


def test_an_expired_openai_batch_keeps_and_bills_its_finished_items(play, tmp_path):
    """OpenAI keeps an expired batch's finished answers in its output file (paid for): the engine takes them
    and sends only the unfinished item again, so no item is answered (or billed) twice."""
    # items finish 0.2 s apart; the batch expires at 0.5 s: the first two are done, the third is not
    timing = BatchPlay(pending_s=0.0, running_s=0.0, item_s=0.2, expire_after_s=0.5)
    shown = segments(tmp_path)
    with SimulatorServer(play, batches=timing) as server:
        gw = Gateway(settings_for(server, batch_rounds=3))
        reasoner = PlotReasoner(gw, backend="openai", model="v2s-sim")
        asks = {key: reasoner.ask(segment, None) for key, segment in shown.items()}
        results, snapshots = run_batches(gw, "openai", asks)
        answered = [r for r in server.requests if r.endpoint == "batch.chat.completions"]
    assert [s.state for s in snapshots] == ["expired", "done"]
    assert sorted(snapshots[0].results) == ["1", "2"]  # read from the expired batch's output file
    assert all(r.ok for r in results.values())
    assert len(answered) == 3  # each item answered once: the finished two were not sent again
    assert [r.usage.calls for r in results.values()] == [1, 1, 1]
    assert all(r.usage.input_tokens > 0 and r.usage.output_tokens > 0 for r in results.values())


CACHING = "gemini-2.5-flash-lite"  # a model whose cache storage the catalog prices


def test_a_batch_item_whose_cache_is_gone_is_sent_again_with_the_video(play, tmp_path):
    """A batch runs its items minutes to hours after they were made; a context cache gone by then is refused
    (403 "CachedContent not found") for every item naming it. The next batch shows each item's video itself,
    not the same request again, and every item is answered and billed once, without cached tokens."""
    shown = segments(tmp_path)
    with SimulatorServer(play, batches=BatchPlay(pending_s=0.0, running_s=0.05)) as server:
        gw = Gateway(settings_for(server, batch_rounds=1))  # one round: a resend must not cost one
        reasoner = PlotReasoner(gw, backend="gemini", model=CACHING)
        asks = {}
        for key, segment in shown.items():
            cache = gw.cache_video("gemini", CACHING, segment.media)
            server.caches.delete(cache.name)  # gone before the batch runs (as if its TTL had passed)
            media = segment.media.model_copy(update={"cache_name": cache.name})
            asks[key] = reasoner.ask(segment.model_copy(update={"media": media}), None)
        results, snapshots = run_batches(gw, "gemini", asks)
        first, second = (server.batches.get(s.name) for s in snapshots)
    assert [s.state for s in snapshots] == ["done", "done"]
    assert (first.succeeded, first.failed) == (0, 3)
    assert all("CachedContent not found" in r.error for r in snapshots[0].results.values())
    resent = [item.request for item in second.items]
    assert all("cachedContent" not in r and "cached_content" not in r for r in resent)
    assert all(any("fileData" in p or "file_data" in p for p in r["contents"][0]["parts"]) for r in resent)
    price = gw.settings.price(CACHING)
    for result in results.values():
        assert result.ok and result.usage.calls == 1 and result.usage.cached_tokens == 0
        expected = price.cost(result.usage.input_tokens, result.usage.output_tokens, "batch")
        assert result.usage.cost_usd == pytest.approx(expected)


def test_a_degenerate_batch_answer_is_repaired_not_passed_on(play, tmp_path):
    """Users get degenerate answers from Gemini's batch endpoint with `responseJsonSchema` (crmne/ruby_llm#894):
    the schema's template with no data, which validates as a plot since every field has a default. The engine
    holds it to the plot's semantic minimum (`missing()`) and asks a repair turn in the next batch; only the
    repaired plot comes back, and both answers are billed."""
    from annotator.simulator.scenarios import FaultRule, Scenario

    rules = Scenario(rules=[FaultRule(kind="degenerate_template", batch=True, times=3)])
    shown = segments(tmp_path)
    with SimulatorServer(play, batches=BatchPlay(pending_s=0.0, running_s=0.05), behaviours=rules) as server:
        gw = Gateway(settings_for(server, batch_rounds=2))
        reasoner = PlotReasoner(gw, backend="gemini", model="gemini-3.8-flash")
        asks = {key: reasoner.ask(segment, None) for key, segment in shown.items()}
        results, snapshots = run_batches(gw, "gemini", asks)
        plain = PlotReasoner(gw, backend="gemini", model="gemini-3.8-flash").reason(shown["1"], None)
    assert rules.played() == [3]  # every item of the first batch came back degenerate
    first = snapshots[0].results["1"].response
    assert first is not None and '"characters": []' in first.text  # it parsed: a template, not an error
    assert len(snapshots) == 2
    for result in results.values():
        assert result.ok and result.value.characters and result.value.plot_summary.main_events
        assert result.usage.calls == 2  # the degenerate answer was billed too
    assert results["1"].value == plain.value  # the repair turn got the honest answer
