"""A paid answer the database cannot take is kept on local disk and stored before anything is asked again, so
a database outage never pays twice (#30). The outage is real: PostgreSQL behind a TCP relay the test cuts while
the model is answering, over the real SDK to the simulator."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from annotator.gateway import Gateway, Media
from annotator.prompting import render
from annotator.schemas import FirstSegmentPlot
from annotator.schemas.cache import CachedAnswer, CacheKey
from annotator.simulator.server import SimulatorServer
from profiles_db.answer_journal import AnswerJournal
from profiles_db.db import Database
from profiles_db.response_cache import DatabaseResponseCache
from tests.support.gateway import MODELS, settings_for
from tests.support.tcp_proxy import TcpRelay
from workers.storage import file_sha256


def model_calls(server: SimulatorServer) -> int:
    return sum(r.endpoint in ("generateContent", "chat.completions") for r in server.requests)


def test_the_journal_keeps_answers_until_they_are_stored(tmp_path):
    journal = AnswerJournal(tmp_path / "journal")
    key = CacheKey(backend="gemini", model="m", prompt_version="plot.v1", prompt_sha256="p", stage="plot")
    journal.append(key, CachedAnswer(answer={"a": 1}, calls=1, cost_usd=0.01))
    journal.append(key.model_copy(update={"prompt_sha256": "q"}), CachedAnswer(answer={"a": 2}, calls=1))
    assert journal.pending()

    def refuse(_key, _entry):
        raise OSError("still down")

    with pytest.raises(OSError):
        journal.replay(refuse)
    assert journal.pending()  # nothing lost by a replay that failed
    stored: list[tuple[str, dict]] = []
    assert journal.replay(lambda k, e: stored.append((k.prompt_sha256, e.answer))) == 2
    assert stored == [("p", {"a": 1}), ("q", {"a": 2})] and not journal.pending()
    # the same writer goes on in a new file once its old one was replayed
    journal.append(key, CachedAnswer(answer={"a": 3}))
    assert journal.replay(lambda k, e: stored.append((k.prompt_sha256, e.answer))) == 1


@pytest.mark.postgres
@pytest.mark.parametrize("api", ["gemini", "openai"])
def test_an_answer_paid_during_a_database_outage_is_not_paid_again(api, postgres_url, play, proxy, tmp_path):
    target = make_url(postgres_url)
    relay = TcpRelay((target.host or "127.0.0.1", target.port or 5432))
    url = target.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
    journal_dir = tmp_path / "journal"
    prompt = render("plot_first", 1, segment_index=1, duration="30s")
    media = Media(path=proxy, sha256=file_sha256(proxy))
    with SimulatorServer(play) as server:
        settings = settings_for(server)

        def ask(gateway: Gateway):
            return gateway.structured(
                stage="plot",
                backend=api,
                model=MODELS[api],
                prompt=prompt,
                schema=FirstSegmentPlot,
                media=media,
            )

        first_db = Database(url, auto_upgrade=False)
        stored_before = DatabaseResponseCache(
            first_db
        ).count()  # the session's database keeps other tests' rows
        cache = DatabaseResponseCache(first_db, AnswerJournal(journal_dir))
        # the database goes away while the model is answering (the guard runs just before the HTTP call)
        first = ask(Gateway(settings, cache=cache, guard=relay.cut))
        first_db.dispose()
        assert first.ok and model_calls(server) == 1
        assert AnswerJournal(journal_dir).pending()

        relay.up()  # the database is back: a resumed run on this machine
        second_db = Database(url, auto_upgrade=False)
        again = ask(Gateway(settings, cache=DatabaseResponseCache(second_db, AnswerJournal(journal_dir))))
        assert again.cached and again.value == first.value
        assert model_calls(server) == 1  # paid once
        assert not AnswerJournal(journal_dir).pending()
        assert DatabaseResponseCache(second_db).count() == stored_before + 1
        second_db.dispose()
    relay.close()
