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

Name classes (DESIGN §5, the finer view the Character Profile Manager needs; `classify_name` is derived from
them so the CPM and the evaluation never disagree on what a proper name is):
- *proper*: "Sal Moreno", "Kate", "Dr. Osei", "Uncle Tomas" — a capitalised word that is not a common word,
  before any preposition and not after a leading article, or a title followed by a capitalised word
  ("Mr. White");
- *relative*: kinship words, forms of address and bare titles ("Mom", "my dad", "Sir", "Officer", "Dr.") —
  who they mean depends on who speaks, so two people may share them;
- *group*: plural identities ("the guards", "cops");
- *descriptor*: everything else that singles out one person by role or looks ("Driver", "the Man in Cap").
`analyse_name` also gives the form of a proper name (title, given, family) and how complete it is
(given + family > title + family > one name alone), which the CPM uses to keep the best form as the name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from evaluation.text import normalise

Category = Literal["proper", "singular", "plural"]
CATEGORIES: tuple[Category, ...] = ("proper", "singular", "plural")
NameClass = Literal["proper", "descriptor", "relative", "group"]
NAME_CLASSES: tuple[NameClass, ...] = ("proper", "descriptor", "relative", "group")

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
_KINSHIP = {
    "mom", "mum", "mommy", "mummy", "mama", "mamma", "ma", "mother", "dad", "daddy", "papa", "pa", "father",
    "son", "daughter", "brother", "sister", "bro", "sis", "uncle", "aunt", "auntie", "aunty", "grandma",
    "grandpa", "granny", "grandmother", "grandfather", "nana", "gran", "husband", "wife", "cousin", "nephew",
    "niece", "honey", "sweetheart", "darling", "dear", "love", "babe", "sweetie", "kiddo",
}  # fmt: skip
_ADDRESS = {
    "sir", "madam", "maam", "miss", "mister", "missus", "boss", "buddy", "pal", "mate", "dude", "kid",
    "lad", "lass", "friend", "stranger", "honor", "honour", "majesty", "highness", "lordship", "ladyship",
    "folks", "guys", "gentlemen", "ladies", "everybody",
}  # fmt: skip
_TITLES = {
    "mr", "mrs", "ms", "mx", "miss", "mister", "dr", "doc", "doctor", "prof", "professor", "officer",
    "detective", "det", "inspector", "sergeant", "sgt", "lieutenant", "lt", "captain", "capt", "cpt",
    "commander", "general", "colonel", "col", "major", "judge", "father", "sister", "brother", "mother",
    "reverend", "rev", "nurse", "agent", "constable", "deputy", "sheriff", "marshal", "coach", "lord",
    "lady", "sir", "dame", "king", "queen", "prince", "princess", "uncle", "aunt", "auntie", "grandma",
    "grandpa", "granny", "nana", "master", "madam", "senator", "mayor", "president", "chief", "admiral",
    "private", "corporal", "cpl", "pastor", "rabbi", "imam", "saint", "st", "count", "countess", "duke",
    "duchess", "baron", "emperor", "empress", "señor", "senor", "señora", "senora", "monsieur", "madame",
    "mademoiselle", "herr", "frau", "signor", "signora",
}  # fmt: skip
_RELATIVE = _KINSHIP | _ADDRESS | _TITLES
_ARTICLES = {"the", "a", "an", "some", "this", "that", "these", "those", "another"}
_POSSESSIVES = {"my", "your", "his", "her", "our", "their", "its", "thy"}
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


_CJK_KIN = "妈爸哥姐弟妹叔婶爷奶伯姑舅姨"
_CJK_KIN_PREFIX = "大小老阿"
_POSSESSIVE_S = re.compile(r"\w['’]s\b")


@dataclass(frozen=True)
class NameInfo:
    """What a character name is: its class and, for a proper name, its form.

    `title` is a leading title or kinship word ("Dr", "Uncle"); `words` the proper words after it ("Katherine",
    "Osei"); `completeness` ranks forms: 3 given + family (two proper words or more), 2 a title + one name,
    1 one name alone, 0 not a proper name. `surname` is the family name a form carries, when it carries one
    (the last of two proper words, or the name after a title that is not a kinship word)."""

    name: str
    cls: NameClass
    title: str | None = None
    words: tuple[str, ...] = ()

    @property
    def completeness(self) -> int:
        if self.cls != "proper":
            return 0
        if len(self.words) >= 2:
            return 3
        return 2 if self.title else 1

    @property
    def surname(self) -> str | None:
        if self.cls != "proper" or not self.words:
            return None
        if len(self.words) >= 2:
            return self.words[-1].casefold()
        if self.title and self.title.casefold() not in _KINSHIP:
            return self.words[0].casefold()
        return None

    @property
    def is_title_form(self) -> bool:
        """A title with a single name ("Mr. Moreno", "Dr. Osei"): proper, but ambiguous within a family."""
        return self.cls == "proper" and self.title is not None and len(self.words) == 1

    def rank(self) -> tuple[int, int]:
        """Orders forms of one person's name: the more complete, then the longer, is the better name."""
        return (self.completeness, len(self.words))


def analyse_name(name: str) -> NameInfo:
    """The class and form of a character name (see the module docstring)."""
    name = name or ""
    words = _WORD.findall(name)
    if not words:
        return NameInfo(name, "descriptor")
    if _CJK.search(name):  # no letter case: plural markers, kinship, identity nouns, else a proper name
        text = name.strip()
        if text.endswith(_CJK_PLURAL):
            return NameInfo(name, "group")
        if all(ch in _CJK_KIN or ch in _CJK_KIN_PREFIX for ch in text) and any(ch in _CJK_KIN for ch in text):
            return NameInfo(name, "relative")
        if any(ch in _CJK_IDENTITY for ch in text):
            return NameInfo(name, "descriptor")
        return NameInfo(name, "proper", words=(text,))
    proper = _proper_form(name, words)
    if proper is not None:
        return proper
    if _is_plural(name, words):
        return NameInfo(name, "group")
    content = [w for w in words if w.casefold() not in _POSSESSIVES]
    if words[0].casefold() not in _ARTICLES and content and all(w.casefold() in _RELATIVE for w in content):
        return NameInfo(name, "relative")
    return NameInfo(name, "descriptor")


def _proper_form(name: str, words: list[str]) -> NameInfo | None:
    """A proper name's (title, words), or None. Only words before the first preposition count ("Man in Cap"
    is a man, not Cap), a leading article makes a description ("the Driver"), and "Nora's mother" is a
    description of someone relative to Nora."""
    if words[0].casefold() in _ARTICLES or words[0].casefold() in _POSSESSIVES or _POSSESSIVE_S.search(name):
        return None
    head: list[str] = []
    for i, word in enumerate(words):
        if i and word.casefold() in _PREPOSITIONS:
            break
        head.append(word)
    title = head[0] if len(head) > 1 and head[0].casefold() in _RELATIVE else None
    rest = head[1:] if title else head
    named = [w for w in rest if w[0].isupper() and not _is_label(w)]
    if title and named and len(named) == len(rest):  # "Mr. White", "Officer Lund": the title makes it a name
        return NameInfo(name, "proper", title=title, words=tuple(named))
    if any(not _is_common(w) and w.casefold() not in _RELATIVE for w in named):
        return NameInfo(name, "proper", title=title, words=tuple(named))
    return None


def _is_plural(name: str, words: list[str]) -> bool:
    low = normalise(name)
    head = _head(words)
    if low in _PLURALS or head in _PLURALS:
        return True
    return len(head) > 3 and head.endswith("s") and not head.endswith(("ss", "us", "is"))


def name_class(name: str) -> NameClass:
    return analyse_name(name).cls


def classify_name(name: str) -> Category:
    """The evaluation's category of a character name: proper, singular identity (descriptor or relative term)
    or plural identity (group) — the paper's three, read off the finer name classes."""
    cls = name_class(name)
    return "proper" if cls == "proper" else "plural" if cls == "group" else "singular"


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
