"""Judges: the similarity of free-text fields (stage 3) and the character-name resolution (stage 2).

- `LexicalJudge` (default): offline and deterministic — ½·token-set ratio + ½·normalised Levenshtein for
  free text, synonym tables for the categorical scene fields (type, time), the `names` heuristics for
  character categories and proper-name pairs.
- `LLMJudge`: an OpenAI-compatible chat-completions model through the `openai` SDK, with per-field prompts
  written after the paper's criteria (Appendix A.2), many pairs per request, and an on-disk cache keyed by a
  hash of (model, prompt, inputs). Settings come from V2S_JUDGE_BASE_URL, V2S_JUDGE_API_KEY (or
  OPENAI_API_KEY), V2S_JUDGE_MODEL and V2S_JUDGE_CACHE_DIR; a client can be injected. The key is never logged.

Both share a fast path: texts equal after normalisation score 1.0, an empty side scores 0.0 (never sent).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

from evaluation.names import CATEGORIES, CharacterJudgement, classify_name, lexical_proper_pairs
from evaluation.text import lexical_sim, normalise

log = logging.getLogger("evaluation.judges")

JUDGE_FIELDS = ("action", "expression", "audio_cue", "location", "type", "environment", "time", "mood")
"""Fields scored by a judge (dialogue and character are scored by fixed rules)."""


class JudgeError(RuntimeError):
    """A judge could not score (bad answer, unreachable server, missing settings)."""


@runtime_checkable
class Judge(Protocol):
    name: str

    def similarity(self, field: str, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Similarity in [0, 1] of each (GT text, predicted text) pair for `field`, in order."""
        ...

    def resolve_characters(self, gt_names: Sequence[str], pred_names: Sequence[str]) -> CharacterJudgement:
        """Categories of all names and proposed (pred, GT) proper-name pairs."""
        ...


# --- categorical scene fields ------------------------------------------------------------------------------

_TYPE_SYNONYMS = {
    "interior": "interior", "int": "interior", "inside": "interior", "indoor": "interior", "indoors": "interior",
    "内景": "interior", "室内": "interior",
    "exterior": "exterior", "ext": "exterior", "outside": "exterior", "outdoor": "exterior",
    "outdoors": "exterior", "外景": "exterior", "室外": "exterior",
}  # fmt: skip
_TIME_SYNONYMS = {
    "day": "day", "daytime": "day", "morning": "day", "noon": "day", "midday": "day", "afternoon": "day",
    "daylight": "day", "白天": "day", "日": "day", "上午": "day", "中午": "day", "下午": "day", "早上": "day",
    "night": "night", "nighttime": "night", "midnight": "night", "evening": "night", "late": "night",
    "夜": "night", "夜晚": "night", "晚上": "night", "深夜": "night", "夜间": "night",
    "dusk": "dusk", "sunset": "dusk", "twilight": "dusk", "黄昏": "dusk", "傍晚": "dusk",
    "dawn": "dawn", "sunrise": "dawn", "daybreak": "dawn", "黎明": "dawn", "清晨": "dawn", "凌晨": "dawn",
}  # fmt: skip


def canonical_category(field: str, text: str) -> str | None:
    """The canonical class of a scene type ("interior"/"exterior"/both) or time of day, or None."""
    table = _TYPE_SYNONYMS if field == "type" else _TIME_SYNONYMS if field == "time" else None
    if table is None:
        return None
    norm = normalise(text)
    if norm in table:
        return table[norm]
    found = {table[w] for w in norm.split() if w in table}
    if field == "time" and "early" in norm.split() and "day" in found:  # "early morning" is dawn
        found = {"dawn"}
    if not found:
        return None
    return "/".join(sorted(found))


def _fast(field: str, gt: str, pred: str) -> float | None:
    """Score without asking: equal after normalisation, an empty side, or both canonical categories."""
    ng, np_ = normalise(gt), normalise(pred)
    if not ng or not np_:
        return 0.0
    if ng == np_:
        return 1.0
    cg, cp = canonical_category(field, gt), canonical_category(field, pred)
    if cg is not None and cp is not None:
        return 1.0 if cg == cp or set(cg.split("/")) & set(cp.split("/")) else 0.0
    return None


class LexicalJudge:
    """Offline, deterministic judge (the default)."""

    name = "lexical"

    def similarity(self, field: str, pairs: Sequence[tuple[str, str]]) -> list[float]:
        out: list[float] = []
        for gt, pred in pairs:
            fast = _fast(field, gt, pred)
            if fast is not None:
                out.append(fast)
            elif field == "type":  # categorical: strict
                out.append(0.0)
            else:
                out.append(lexical_sim(gt, pred))
        return out

    def resolve_characters(self, gt_names: Sequence[str], pred_names: Sequence[str]) -> CharacterJudgement:
        categories = {n: classify_name(n) for n in [*gt_names, *pred_names]}
        return CharacterJudgement(
            categories, lexical_proper_pairs(list(gt_names), list(pred_names), categories)
        )


# --- LLM judge ---------------------------------------------------------------------------------------------

_FIELD_LABELS = {
    "action": "character action",
    "expression": "facial expression and emotion",
    "audio_cue": "audio cue (sound effects, music, ambience)",
    "location": "scene location",
    "type": "scene type (interior or exterior)",
    "environment": "scene environment (lighting, setting, atmosphere)",
    "time": "scene time of day",
    "mood": "scene mood",
}

_GRADED_GUIDE = (
    "1.0 = the same thing in substance; 0.7-0.9 = the essence is captured, details or perspective differ; "
    "0.4-0.6 = related, at a different level of detail; 0.1-0.3 = only loosely related; "
    "0.0 = unrelated or contradictory."
)
_STRICT_GUIDE = (
    "1.0 = the same category (synonyms and abbreviations count as the same); 0.0 = a different category."
)

_CRITERIA = {
    "action": (
        "Judge whether the prediction describes the same situation or deed as the ground truth. Paraphrase, "
        "another point of view, a summary instead of a detailed account (or the reverse) and partial coverage "
        "are all acceptable as long as nothing contradicts the ground truth. For instance 'he hurries to the "
        "door, opens it and walks out' against 'he leaves' is a match, and 'she bangs the table in anger' "
        "against 'she is furious' is a match too."
    ),
    "expression": (
        "Judge whether the prediction conveys the same emotional direction (positive, negative or neutral) as "
        "the ground truth. Broader or narrower wording and partial lists are fine; only an opposite emotional "
        "direction is a mismatch. For instance 'rage, hurt, disappointment' against 'negative feelings' is a "
        "match, as is 'delight, excitement' against 'happy'."
    ),
    "audio_cue": (
        "Judge whether the prediction names the same kind of sound or audio atmosphere. Paraphrase, a more "
        "general category or only part of the sounds are acceptable unless they contradict. For instance "
        "'glass shattering and a scream' against 'glass shattering' is a match, and 'suspenseful score' against "
        "'background music' is a match."
    ),
    "location": (
        "Judge whether the prediction identifies the same kind of place and general setting. Reasonable "
        "rewording and missing small details are fine. For instance 'Anna's bedroom' against 'a bedroom' is a "
        "match, and 'hospital hallway' against 'inside a hospital' is a match."
    ),
    "type": (
        "The scene type is categorical: interior or exterior. Treat abbreviations as synonyms ('INT' is "
        "interior, 'EXT' is exterior). Score strictly."
    ),
    "environment": (
        "Judge whether the prediction captures the main environmental features (lighting, furnishing, weather, "
        "surroundings). Missing minor details is fine when the core atmosphere agrees. For instance 'dim light, "
        "worn-out furniture' against 'a dark, shabby room' is a match."
    ),
    "time": (
        "The time of day is categorical (day, night, dusk, dawn, ...). Accept synonyms and sensible mappings "
        "such as 'afternoon' for day or 'late evening' for night. Score strictly."
    ),
    "mood": (
        "Judge whether the prediction captures the dominant mood and its general tone. Missing secondary mood "
        "elements is fine when the core agrees. For instance 'tense, oppressive' against 'tense and uneasy' is "
        "a match."
    ),
}

_SIMILARITY_SYSTEM = """You are an expert evaluator of video scripts who specialises in comparing the {label} field.
You receive a JSON object with a list of pairs; each pair has an "id", a ground truth ("gt") and a prediction \
("pred"). Rate how semantically similar each prediction is to its ground truth.

Matching criteria:
{criteria}

Scoring guide: {guide}

Reply with one JSON object and nothing else:
{{"results": [{{"id": <the pair's id>, "similarity": <number from 0.0 to 1.0>, "reason": "<a few words>"}}, ...]}}
with exactly one result for every pair."""

_CHARACTER_SYSTEM = """You resolve character names between a ground-truth video script and a predicted one.
You receive a JSON object with "gt_names" and "pred_names". Do two things.
1. Put every name (from both lists) into one category:
   "proper" - a personal name or title with a name (e.g. "John", "Mrs. Lee", "Zhang San");
   "singular" - a description of one unnamed individual (e.g. "officer", "man in black", "Officer A");
   "plural" - a description of several people (e.g. "cops", "thieves", "the crowd").
2. Propose pairs (pred name, gt name) only where you are confident both denote the same character by name,
   e.g. "John Smith" and "John". Never pair when unsure; a name appears in at most one pair.
Reply with one JSON object and nothing else:
{"categories": {"<name>": "proper" | "singular" | "plural", ...}, "pairs": [{"pred": "<pred name>", "gt": "<gt name>"}, ...]}"""

_FENCE = re.compile(r"^\s*```(?:json)?\s*|\s*```\s*$", re.IGNORECASE)


def similarity_prompt(field: str) -> str:
    """The system prompt for one field."""
    guide = _STRICT_GUIDE if field in ("type", "time") else _GRADED_GUIDE
    criteria = _CRITERIA.get(field, "Judge whether the prediction means the same as the ground truth.")
    return _SIMILARITY_SYSTEM.format(label=_FIELD_LABELS.get(field, field), criteria=criteria, guide=guide)


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


class DiskCache:
    """One small JSON file per key under `root` (sharded by the first two hex digits), written atomically."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()

    @staticmethod
    def key(*parts: Any) -> str:
        blob = json.dumps(parts, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> Any | None:
        try:
            return json.loads(self._path(key).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def put(self, key: str, value: Any) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(value, fh, ensure_ascii=False)
        os.replace(tmp, path)


def _public_url(url: str | None) -> str:
    """The URL without any user:password part (for logs)."""
    if not url:
        return "the default OpenAI endpoint"
    parts = urlsplit(url)
    return urlunsplit(
        parts._replace(netloc=(parts.hostname or "") + (f":{parts.port}" if parts.port else ""))
    )


class LLMJudge:
    """A judge backed by an OpenAI-compatible chat model (see the module docstring).

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
    ) -> None:
        self.model = model or os.environ.get("V2S_JUDGE_MODEL") or "gpt-4o-mini"
        if client is None:
            import openai

            base_url = base_url or os.environ.get("V2S_JUDGE_BASE_URL") or None
            key = api_key or os.environ.get("V2S_JUDGE_API_KEY") or os.environ.get("OPENAI_API_KEY")
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
        self.cache = DiskCache(
            cache_dir or os.environ.get("V2S_JUDGE_CACHE_DIR") or Path.home() / ".cache" / "v2s" / "judge"
        )
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
            fast = _fast(field, gt, pred)
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
            for (
                k,
                value,
            ) in scores.items():  # cache each batch as it lands: a failed run keeps what it paid for
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
        key = self.cache.key("characters", self.model, _CHARACTER_SYSTEM, gt_list, pred_list)
        answer = self.cache.get(key)
        if not isinstance(answer, dict):
            answer = self._ask(
                _CHARACTER_SYSTEM, {"task": "characters", "gt_names": gt_list, "pred_names": pred_list}
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


def get_judge(name: str | Judge | None = None, **kwargs: Any) -> Judge:
    """A judge by name ("lexical" or "llm"), or the given judge unchanged."""
    if name is None or name == "lexical":
        return LexicalJudge()
    if name == "llm":
        return LLMJudge(**kwargs)
    if isinstance(name, str):
        raise ValueError(f"unknown judge {name!r}: use 'lexical' or 'llm'")
    return name
