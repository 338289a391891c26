"""The LLM judge: an OpenAI-compatible chat model through the `openai` SDK (see the package docstring)."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from evaluation.judges.base import JudgeError
from evaluation.judges.cache import DiskCache
from evaluation.judges.categories import fast_score
from evaluation.judges.prompts import CHARACTER_SYSTEM, similarity_prompt
from evaluation.names import CATEGORIES, CharacterJudgement, classify_name

log = logging.getLogger("evaluation.judges")

_FENCE = re.compile(r"^\s*```(?:json)?\s*|\s*```\s*$", re.IGNORECASE)


def parse_json_object(text: str | None) -> dict[str, Any]:
    """The JSON object in a model's answer, tolerating code fences and text around it."""
    if not text:
        raise JudgeError("the judge returned an empty answer")
    body = _FENCE.sub("", text.strip())
    try:
        value = json.loads(body)
    except json.JSONDecodeError:
        first, last = body.find("{"), body.rfind("}")
        if first < 0 or last <= first:
            raise JudgeError(f"the judge's answer is not JSON: {text[:200]!r}") from None
        try:
            value = json.loads(body[first : last + 1])
        except json.JSONDecodeError as exc:
            raise JudgeError(f"the judge's answer is not JSON ({exc}): {text[:200]!r}") from None
    if not isinstance(value, dict):
        raise JudgeError(f"the judge's answer is not a JSON object: {text[:200]!r}")
    return value


def _public_url(url: str | None) -> str:
    """The URL without any user:password part (for logs)."""
    if not url:
        return "the default OpenAI endpoint"
    parts = urlsplit(url)
    return urlunsplit(
        parts._replace(netloc=(parts.hostname or "") + (f":{parts.port}" if parts.port else ""))
    )


class JudgeSettings(BaseSettings):
    """The llm judge's settings, read once from the environment: V2S_JUDGE_MODEL, V2S_JUDGE_BASE_URL (any
    OpenAI-compatible server), V2S_JUDGE_API_KEY (or OPENAI_API_KEY), V2S_JUDGE_CACHE_DIR."""

    model_config = SettingsConfigDict(env_prefix="V2S_JUDGE_", extra="ignore")

    model: str = "gpt-4o-mini"
    base_url: str | None = None
    api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("V2S_JUDGE_API_KEY", "OPENAI_API_KEY")
    )
    cache_dir: Path = Path.home() / ".cache" / "v2s" / "judge"


class LLMJudge:
    """A judge backed by an OpenAI-compatible chat model (see the package docstring).

    `batch_size` pairs go in one request; up to `concurrency` requests run at once. Answers are cached per pair
    (and per name list for characters), so a re-run, or another run sharing pairs, asks only for what is new.
    """

    name = "llm"

    def __init__(
        self,
        client: Any | None = None,
        *,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        cache_dir: str | Path | None = None,
        batch_size: int = 20,
        concurrency: int = 4,
        json_mode: bool = True,
        timeout_s: float = 120.0,
        max_retries: int = 3,
        settings: JudgeSettings | None = None,
    ) -> None:
        settings = settings or JudgeSettings()
        self.model = model or settings.model
        if client is None:
            import openai

            base_url = base_url or settings.base_url or None
            key = api_key or (settings.api_key.get_secret_value() if settings.api_key else None)
            if not key:
                if not base_url:
                    raise JudgeError(
                        "the llm judge needs V2S_JUDGE_API_KEY (or OPENAI_API_KEY), or V2S_JUDGE_BASE_URL "
                        "for a local server that takes no key"
                    )
                key = "not-needed"
            client = openai.OpenAI(base_url=base_url, api_key=key, timeout=timeout_s, max_retries=max_retries)
            log.info("llm judge: model %s at %s", self.model, _public_url(base_url))
        self.client = client
        self.cache = DiskCache(cache_dir or settings.cache_dir)
        self.batch_size = max(1, batch_size)
        self.concurrency = max(1, concurrency)
        self.json_mode = json_mode
        self.requests = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never show the client (it holds the key)
        return f"LLMJudge(model={self.model!r}, batch_size={self.batch_size})"

    def _ask(self, system: str, payload: dict[str, Any]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if self.json_mode:
            kwargs["response_format"] = {"type": "json_object"}
        with self._lock:
            self.requests += 1
        try:
            response = self.client.chat.completions.create(
                model=self.model,
                messages=[
                    {"role": "system", "content": system},
                    {"role": "user", "content": json.dumps(payload, ensure_ascii=False)},
                ],
                temperature=0,
                **kwargs,
            )
        except Exception as exc:
            message = str(exc)
            secret = getattr(self.client, "api_key", None)
            if isinstance(secret, str) and len(secret) > 3:
                message = message.replace(secret, "***")  # in case a server echoes the key
            raise JudgeError(f"the llm judge request failed: {type(exc).__name__}: {message[:500]}") from None
        if not response.choices:
            raise JudgeError("the llm judge returned no choices")
        return parse_json_object(response.choices[0].message.content)

    def _score_batch(self, field: str, system: str, batch: list[tuple[int, str, str]]) -> dict[int, float]:
        pending = list(batch)
        scores: dict[int, float] = {}
        for _attempt in range(2):  # one retry for ids the answer left out
            if not pending:
                break
            answer = self._ask(
                system,
                {
                    "task": "similarity",
                    "field": field,
                    "pairs": [{"id": i, "gt": gt, "pred": pred} for i, gt, pred in pending],
                },
            )
            results = answer.get("results")
            if not isinstance(results, list):
                raise JudgeError(f"the llm judge's answer has no 'results' list: {str(answer)[:200]}")
            wanted = {i for i, _, _ in pending}
            for item in results:
                if not isinstance(item, dict):
                    continue
                try:
                    i, value = int(item["id"]), float(item["similarity"])
                except (KeyError, TypeError, ValueError):
                    continue
                if i in wanted:
                    scores[i] = min(1.0, max(0.0, value))
            pending = [p for p in pending if p[0] not in scores]
        if pending:
            raise JudgeError(f"the llm judge gave no score for {len(pending)} of {len(batch)} {field} pairs")
        return scores

    def similarity(self, field: str, pairs: Sequence[tuple[str, str]]) -> list[float]:
        system = similarity_prompt(field)
        out: list[float] = [0.0] * len(pairs)
        pending: dict[tuple[str, str], list[int]] = {}
        for n, (gt, pred) in enumerate(pairs):
            fast = fast_score(field, gt, pred)
            if fast is None:
                pending.setdefault((gt, pred), []).append(n)
            else:
                out[n] = fast
        asks: list[tuple[tuple[str, str], list[int], str]] = []
        for pair, idx in pending.items():
            key = self.cache.key("similarity", self.model, system, field, pair[0], pair[1])
            cached = self.cache.get(key)
            if isinstance(cached, dict) and isinstance(cached.get("similarity"), int | float):
                for n in idx:
                    out[n] = float(cached["similarity"])
            else:
                asks.append((pair, idx, key))
        if not asks:
            return out
        batches = [
            [(k, asks[k][0][0], asks[k][0][1]) for k in range(s, min(s + self.batch_size, len(asks)))]
            for s in range(0, len(asks), self.batch_size)
        ]

        def run(batch: list[tuple[int, str, str]]) -> dict[int, float]:
            scores = self._score_batch(field, system, batch)
            # cache each batch as it lands: a failed run keeps what it paid for
            for k, value in scores.items():
                self.cache.put(asks[k][2], {"similarity": value})
            return scores

        if len(batches) == 1 or self.concurrency == 1:
            parts = [run(b) for b in batches]
        else:
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(batches))) as pool:
                parts = list(pool.map(run, batches))
        for part in parts:
            for k, value in part.items():
                for n in asks[k][1]:
                    out[n] = value
        return out

    def resolve_characters(self, gt_names: Sequence[str], pred_names: Sequence[str]) -> CharacterJudgement:
        gt_list, pred_list = sorted(set(gt_names)), sorted(set(pred_names))
        if not gt_list and not pred_list:
            return CharacterJudgement()
        key = self.cache.key("characters", self.model, CHARACTER_SYSTEM, gt_list, pred_list)
        answer = self.cache.get(key)
        if not isinstance(answer, dict):
            answer = self._ask(
                CHARACTER_SYSTEM, {"task": "characters", "gt_names": gt_list, "pred_names": pred_list}
            )
            self.cache.put(key, answer)
        raw = answer.get("categories") if isinstance(answer.get("categories"), dict) else {}
        categories = {}
        for name in [*gt_list, *pred_list]:
            value = str(raw.get(name, "")).strip().lower()
            categories[name] = value if value in CATEGORIES else classify_name(name)  # type: ignore[assignment]
        pairs: list[tuple[str, str]] = []
        for item in answer.get("pairs") or []:
            if isinstance(item, dict) and item.get("pred") in pred_list and item.get("gt") in gt_list:
                pairs.append((str(item["pred"]), str(item["gt"])))
        return CharacterJudgement(categories, pairs)
