"""The fast path every judge shares, and the categorical scene fields (type, time) it reads by synonym."""

from __future__ import annotations

from evaluation.text import normalise

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


def fast_score(field: str, gt: str, pred: str) -> float | None:
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
