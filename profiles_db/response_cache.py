"""The response cache in the job database: every worker already has it, so a resumed job on any machine finds
the answers the first run paid for."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from annotator.schemas.cache import CachedAnswer, CacheKey
from profiles_db.answer_journal import AnswerJournal
from profiles_db.db import Database, shown_url
from profiles_db.models import ResponseCacheEntry

log = logging.getLogger(__name__)


class DatabaseResponseCache:
    """`journal` (optional) keeps the answers the database cannot take (profiles_db/answer_journal.py); they
    are stored before this cache answers anything again."""

    def __init__(self, db: Database, journal: AnswerJournal | None = None) -> None:
        self.db = db
        self.journal = journal
        self._replay_due = journal is not None and journal.pending()

    def get(self, key: CacheKey) -> CachedAnswer | None:
        if self._replay_due:  # a database that failed a put may be back: what it missed goes in first
            self.journal.replay(self._store)
            self._replay_due = False
        digest = key.digest
        with self.db.transaction() as session:
            row = session.get(ResponseCacheEntry, digest)
            if row is None:
                return None
            session.execute(
                update(ResponseCacheEntry)
                .where(ResponseCacheEntry.key == digest)
                .values(hits=ResponseCacheEntry.hits + 1)
            )
            return CachedAnswer(
                answer=row.answer,
                reasoning_content=row.reasoning_content,
                calls=row.calls,
                input_tokens=row.input_tokens,
                output_tokens=row.output_tokens,
                cost_usd=row.cost_usd,
            )

    def put(self, key: CacheKey, entry: CachedAnswer) -> None:
        """Store a paid answer. When the database cannot take it and there is a journal, it is kept there
        instead (this never raises then: the answer is safe, and the stage's own bookkeeping will meet the
        outage next)."""
        try:
            self._store(key, entry)
        except Exception as exc:
            if self.journal is None:
                raise
            kept = self.journal.append(key, entry)
            self._replay_due = True
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]
            log.warning(
                "database %s could not store a paid %s answer (%s); kept in %s",
                shown_url(self.db.url),
                key.stage or key.model,
                reason,
                kept,
            )

    def _store(self, key: CacheKey, entry: CachedAnswer) -> None:
        row = ResponseCacheEntry(
            key=key.digest,
            backend=key.backend,
            model=key.model,
            prompt_version=key.prompt_version,
            prompt_sha256=key.prompt_sha256,
            media_sha256=key.media_sha256,
            stage=key.stage,
            answer=entry.answer,
            reasoning_content=entry.reasoning_content,
            calls=entry.calls,
            input_tokens=entry.input_tokens,
            output_tokens=entry.output_tokens,
            cost_usd=entry.cost_usd,
            hits=0,
        )
        try:
            with self.db.transaction() as session:
                session.add(row)
        except IntegrityError:
            pass  # two workers answered the same question at once: the first stored answer stands

    def count(self) -> int:
        with self.db.transaction() as session:
            return len(session.scalars(select(ResponseCacheEntry.key)).all())


def forget_answer(
    s: Session, *, stage: str, model: str | None, prompt_version: str | None, answer: Any
) -> int:
    """Drop the stored copies of one answer (in the caller's session), so the same question is asked again.

    Used when a rejected answer is retried on purpose: the request is the same, so without this the cache would
    hand back the answer just rejected, for free and to the same end. The key cannot be rebuilt here (it hashes
    the prompt the gateway rendered), so the answer itself is matched, among that stage's, model's and prompt
    version's entries. Returns the number of entries dropped."""
    query = select(ResponseCacheEntry).where(ResponseCacheEntry.stage == stage)
    if model is not None:
        query = query.where(ResponseCacheEntry.model == model)
    if prompt_version is not None:
        query = query.where(ResponseCacheEntry.prompt_version == prompt_version)
    dropped = 0
    for row in s.scalars(query.execution_options(yield_per=200)):
        if row.answer == answer:
            s.delete(row)
            dropped += 1
    return dropped
