"""Deterministic character-name categories and proper-name pairing (the offline half of stage 2).

Categories (paper §4.1.2): "proper" (John, Mrs. Smith), "singular" identity (officer, man in black, Officer A,
unknown_002) and "plural" identity (cops, the thieves, crowd). The heuristic:
1. a name is *proper* if one of its words is capitalised, is not a single letter or a number, and neither the
   word nor its singular form is a common noun, adjective or function word of the lists below;
2. otherwise it is *plural* if its head word (the last content word before a preposition such as "in", "with",
   "of") is a known plural or collective ("police", "crowd", "men", "thieves") or ends in "s" (not "ss", "us",
   "is") with more than three letters;
3. otherwise *singular*.
Names in Chinese script (no letter case): ending in 们 or a crowd word → plural; containing an identity noun
character (人, 男, 女, 警, 官, 兵, 员, 者, 师, …) → singular; else proper.

Proper pairing (the lexical stand-in for the LLM's mapping graph): proper names equal after normalisation;
then a proper name whose words are a subset of the other side's proper name ("John" ↔ "John Smith") when that
candidate is unique on both sides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from evaluation.text import normalise

Category = Literal["proper", "singular", "plural"]
CATEGORIES: tuple[Category, ...] = ("proper", "singular", "plural")

_FUNCTION = {
    "a", "an", "the", "of", "in", "with", "at", "on", "from", "and", "or", "to", "by", "for", "his", "her",
    "their", "its", "my", "our", "your", "one", "two", "three", "another", "other", "some", "all", "both",
}  # fmt: skip
_PREPOSITIONS = {"in", "with", "of", "at", "on", "from", "by", "for", "near", "behind", "wearing"}
_ADJECTIVES = {
    "old", "young", "elderly", "tall", "short", "little", "big", "small", "fat", "thin", "first", "second",
    "third", "fourth", "last", "new", "unknown", "unnamed", "mysterious", "masked", "hooded", "bald", "blond",
    "blonde", "female", "male", "black", "white", "red", "blue", "green", "yellow", "grey", "gray", "brown",
    "dark", "pretty", "angry", "main", "background", "nearby", "local", "head", "chief", "senior", "junior",
    "middle", "aged", "uniformed", "armed", "off", "screen",
}  # fmt: skip
_NOUNS = {
    "man", "woman", "boy", "girl", "child", "kid", "baby", "person", "people", "guy", "lady", "gentleman",
    "officer", "police", "policeman", "policewoman", "cop", "detective", "guard", "soldier", "agent", "driver",
    "doctor", "nurse", "patient", "waiter", "waitress", "bartender", "clerk", "teacher", "student", "stranger",
    "narrator", "voice", "announcer", "reporter", "crowd", "group", "team", "family", "couple", "everyone",
    "someone", "somebody", "nobody", "customer", "passenger", "thief", "robber", "criminal", "suspect",
    "witness", "neighbor", "neighbour", "friend", "mother", "father", "mom", "dad", "son", "daughter",
    "brother", "sister", "husband", "wife", "boss", "worker", "employee", "manager", "owner", "villager",
    "servant", "maid", "king", "queen", "prince", "princess", "lord", "master", "captain", "sergeant",
    "lieutenant", "general", "commander", "priest", "monk", "nun", "judge", "lawyer", "killer", "assassin",
    "gang", "gangster", "thug", "henchman", "henchmen", "bodyguard", "security", "staff", "audience",
    "environment", "character", "figure", "shadow", "unknown", "char", "speaker", "caller", "operator",
    "host", "guest", "visitor", "official", "scientist", "engineer", "pilot", "sailor", "farmer", "chef",
    "cook", "vendor", "shopkeeper", "cashier", "receptionist", "secretary", "assistant", "colleague",
    "classmate", "partner", "intruder", "attacker", "victim", "hostage", "prisoner", "inmate", "warden",
    "mob", "crew", "others", "kids", "children", "men", "women",
}  # fmt: skip
_PLURALS = {
    "people", "police", "crowd", "group", "team", "family", "couple", "everyone", "men", "women", "children",
    "kids", "thieves", "gang", "mob", "crew", "staff", "audience", "others", "henchmen", "police officers",
    "all", "both", "them", "they", "villagers", "soldiers", "guards",
}  # fmt: skip
_COMMON = _FUNCTION | _ADJECTIVES | _NOUNS
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def _singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("ves") and len(word) > 4:
        return word[:-3] + "f"
    if word.endswith("es") and len(word) > 4 and word[-3] in "sxz":
        return word[:-2]
    if word.endswith("men"):
        return word[:-3] + "man"
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _is_common(word: str) -> bool:
    low = word.casefold()
    return low in _COMMON or _singular(low) in _COMMON


def _is_label(word: str) -> bool:
    return len(word) == 1 or word.isdigit() or any(ch.isdigit() for ch in word)


def _head(words: list[str]) -> str:
    content: list[str] = []
    for word in words:
        low = word.casefold()
        if low in _PREPOSITIONS and content:
            break
        if not _is_label(word) and low not in _FUNCTION:
            content.append(low)
    return content[-1] if content else ""


_CJK = re.compile(r"[\u3400-\u9fff]")
_CJK_PLURAL = ("们", "人群", "众人", "大家", "群众")
_CJK_IDENTITY = "人男女警官兵员者师生孩客手士长妈爸哥姐弟妹叔婶爷奶"


def classify_name(name: str) -> Category:
    """The deterministic category of a character name (see the module docstring)."""
    words = _WORD.findall(name or "")
    if not words:
        return "singular"
    if _CJK.search(name):  # no letter case: plural markers, identity nouns, else a proper name
        if name.strip().endswith(_CJK_PLURAL):
            return "plural"
        return "singular" if any(ch in _CJK_IDENTITY for ch in name) else "proper"
    for word in words:
        if word[0].isupper() and not _is_label(word) and not _is_common(word):
            return "proper"
    low = normalise(name)
    head = _head(words)
    if low in _PLURALS or head in _PLURALS:
        return "plural"
    if len(head) > 3 and head.endswith("s") and not head.endswith(("ss", "us", "is")):
        return "plural"
    return "singular"


@dataclass
class CharacterJudgement:
    """What stage 2 asks a judge: a category per name, and proposed (pred name, GT name) proper pairs."""

    categories: dict[str, Category] = field(default_factory=dict)
    pairs: list[tuple[str, str]] = field(default_factory=list)


def lexical_proper_pairs(
    gt_names: list[str], pred_names: list[str], categories: dict[str, Category]
) -> list[tuple[str, str]]:
    """(pred, GT) pairs of proper names: equal after normalisation, then unique word-subset matches."""
    gt_proper = [n for n in gt_names if categories.get(n) == "proper"]
    pred_proper = [n for n in pred_names if categories.get(n) == "proper"]
    pairs: list[tuple[str, str]] = []
    used_gt: set[str] = set()
    used_pred: set[str] = set()
    for p in pred_proper:
        for g in gt_proper:
            if g not in used_gt and normalise(p) == normalise(g):
                pairs.append((p, g))
                used_gt.add(g)
                used_pred.add(p)
                break

    def words(name: str) -> set[str]:
        return set(normalise(name).split())

    def related(a: str, b: str) -> bool:
        wa, wb = words(a), words(b)
        return bool(wa) and bool(wb) and (wa <= wb or wb <= wa)

    for p in pred_proper:
        if p in used_pred:
            continue
        options = [g for g in gt_proper if g not in used_gt and related(p, g)]
        if len(options) != 1:
            continue
        g = options[0]
        rivals = [q for q in pred_proper if q not in used_pred and related(q, g)]
        if rivals == [p]:
            pairs.append((p, g))
            used_gt.add(g)
            used_pred.add(p)
    return pairs
