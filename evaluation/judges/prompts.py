"""The LLM judge's prompts, written after the paper's criteria (Appendix A.2): one per field, one for names."""

from __future__ import annotations

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

CHARACTER_SYSTEM = """You resolve character names between a ground-truth video script and a predicted one.
You receive a JSON object with "gt_names" and "pred_names". Do two things.
1. Put every name (from both lists) into one category:
   "proper" - a personal name or title with a name (e.g. "John", "Mrs. Lee", "Zhang San");
   "singular" - a description of one unnamed individual (e.g. "officer", "man in black", "Officer A");
   "plural" - a description of several people (e.g. "cops", "thieves", "the crowd").
2. Propose pairs (pred name, gt name) only where you are confident both denote the same character by name,
   e.g. "John Smith" and "John". Never pair when unsure; a name appears in at most one pair.
Reply with one JSON object and nothing else:
{"categories": {"<name>": "proper" | "singular" | "plural", ...}, "pairs": [{"pred": "<pred name>", "gt": "<gt name>"}, ...]}"""


def similarity_prompt(field: str) -> str:
    """The system prompt for one field."""
    guide = _STRICT_GUIDE if field in ("type", "time") else _GRADED_GUIDE
    criteria = _CRITERIA.get(field, "Judge whether the prediction means the same as the ground truth.")
    return _SIMILARITY_SYSTEM.format(label=_FIELD_LABELS.get(field, field), criteria=criteria, guide=guide)
