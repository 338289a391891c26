"""Answers built from the screenplay: deterministic JSON for the plot, script and distillation prompts.

All times in answers are clip-relative "MM:SS": seconds after the start of the window the request showed
(see `Window.rel`). Character ids follow `identity.py`.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from annotator.schemas.script import ENVIRONMENT, ScriptEvent
from annotator.schemas.timecode import format_timestamp
from annotator.simulator import prompt_reader
from annotator.simulator.errors import invalid
from annotator.simulator.identity import Identity, Profiles, plot_identities, script_id
from annotator.simulator.imperfection import degrade_events
from annotator.simulator.prompt_reader import Stage
from annotator.simulator.screenplay import Screenplay
from annotator.simulator.window import Window

RELATIONSHIP_LABELS = (
    "acquaintances",
    "strangers who become allies",
    "colleagues",
    "wary rivals",
    "old friends",
    "protector and protected",
)
GENERIC_ANSWER = {
    "note": (
        "This is the v2s simulator. It answers the v2s plot, script and distillation prompts "
        "(recognised by the response schema title or the prompt's '## …' headings); this request is none of them."
    ),
    "stages": [s.value for s in Stage if s is not Stage.GENERIC],
}


@dataclass(frozen=True)
class Clip:
    """The absolute range of the screenplay a request shows, and the index the engine gave the segment."""

    start_s: float
    end_s: float
    segment_index: int = 1
    heard: bool = True  # the request's sound is the film's sound of the clip (else: pictures only)


@dataclass(frozen=True)
class Answer:
    stage: Stage
    body: dict
    reasoning: str | None = None


class Responder:
    def __init__(self, screenplay: Screenplay, *, imperfection: float = 0.0) -> None:
        self.screenplay = screenplay
        self.imperfection = imperfection  # see imperfection.py: 0 answers exactly from the screenplay

    def answer(self, stage: Stage, texts: list[str], clip: Clip | None) -> Answer:
        if stage.needs_video:
            if clip is None:
                raise invalid(f"the {stage.value} prompt needs the segment's video")
            window = Window(self.screenplay, clip.start_s, clip.end_s, heard=clip.heard)
            if not window.scenes:
                raise invalid(
                    f"{clip.start_s:.1f}–{clip.end_s:.1f} s shows nothing of the screenplay "
                    f"{self.screenplay.title!r} ({self.screenplay.duration_s:.1f} s)"
                )
            index = prompt_reader.clip_index(texts) or 1  # the prompt says it; the tag is not read
            if stage is Stage.PLOT_FIRST:
                return Answer(stage, self.plot(window, index, texts, known=None))
            if stage is Stage.PLOT_NEXT:
                known = prompt_reader.profiles(texts, "Known characters")
                return Answer(stage, self.plot(window, index, texts, known=known))
            return Answer(stage, self.script(window, prompt_reader.profiles(texts, "Character profiles")))
        if stage is Stage.DISTILL:
            body = distill(prompt_reader.json_block(texts, "Plot"), prompt_reader.json_block(texts, "Script"))
            return Answer(stage, body, reasoning=_reasoning(body))
        return Answer(stage, dict(GENERIC_ANSWER))

    # -- plot reasoning (Fig. 9 / Fig. 10) -----------------------------------------------------------------
    def plot(self, window: Window, index: int, texts: list[str], *, known: list[dict] | None) -> dict:
        identities = plot_identities(window, known)
        ids = {i.member.name: i.id for i in identities}
        main = max(window.scenes, key=lambda s: min(s.end_s, window.end_s) - max(s.start_s, window.start_s))
        info: dict = {
            "segment_index": index,
            "duration": format_timestamp(window.duration_s),
            "main_location": main.scene.location,
            "time_period": main.scene.time,
        }
        answer: dict = {
            "segment_info": info,
            "characters": [self._character(window, i, known) for i in identities],
        }
        events = [
            {
                "timestamp": window.rel(event.timestamp),
                "description": _describe(event, ids),
                "involved_characters": [ids[event.character]] if event.character in ids else [],
            }
            for _, event in window.events
            if event.character != ENVIRONMENT or event.action
        ]
        summary: dict = {"main_events": events, "narrative": self._narrative(window, ids)}
        if known is not None:
            previous = prompt_reader.heading_body(texts, "Previous clip") or ""
            link = _first_sentence(previous)
            note = f"Follows the previous clip ({link})" if link else "Follows the previous clip"
            info["continuity_note"] = f"{note}; now at {main.scene.location}."
            summary["connection_to_previous"] = info["continuity_note"]
            answer["name_updates"] = [vars(i.name_update) for i in identities if i.name_update is not None]
            answer["same_as"] = [vars(entry) for i in identities for entry in i.same_as]
        answer["plot_summary"] = summary
        answer["relationships"] = self._relationships(window, identities, cold=known is None)
        answer["scene_transitions"] = [
            {
                "timestamp": window.rel(span.start_s),
                "from_scene": before.scene.location,
                "to_scene": span.scene.location,
                "transition_type": "cut",
            }
            for before, span in zip(window.scenes, window.scenes[1:], strict=False)
            if span.start_s > window.start_s
        ]
        answer["audio_elements"] = _audio(window)
        answer["new_characters_summary"] = [
            {
                "id": i.id,
                "name": i.name,
                "appearance": i.look,
                "voice": i.member.voice,
                "role_in_segment": _role_line(window, i),
            }
            for i in identities
            if i.is_new
        ]
        return answer

    def _character(self, window: Window, identity: Identity, known: list[dict] | None) -> dict:
        member = identity.member
        body: dict = {
            "id": identity.id,
            "name": identity.name,
            "aliases": list(identity.aliases),
            "first_appear": window.rel(window.first_time(member)),
            "role_type": member.role_type,
            "appearances_in_segment": [
                {"timestamp": window.rel(e.timestamp), "action": _action(e)} for e in window.events_of(member)
            ],
        }
        if identity.name_evidence:
            body["name_evidence"] = identity.name_evidence
        if identity.is_new:
            body |= {"appearance": identity.look, "voice": member.voice, "personality": member.personality}
        else:
            body |= {
                "matched_from": identity.id,
                "match_confidence": identity.confidence,
                "match_reason": identity.reason,
            }
            new_info = {"appearance": identity.new_look, "aliases": identity.new_aliases or []}
            if identity.new_look or identity.new_aliases:
                body["new_info"] = {k: v for k, v in new_info.items() if v}
        return body

    def _narrative(self, window: Window, ids: dict[str, str]) -> str:
        parts = []
        for span in window.scenes:
            lines = [_describe(e, ids) for s, e in window.events if s.index == span.index]
            setting = (
                f"{span.scene.location} ({span.scene.type or 'Scene'}, {span.scene.time or 'time unclear'})"
            )
            mood = f" The mood is {span.scene.mood.lower()}." if span.scene.mood else ""
            where = _sentence(span.scene.environment) if span.scene.environment else ""
            if lines:
                parts.append(f"At {setting}: {where}{mood} " + " ".join(_sentence(x) for x in lines))
        if not parts and window.scenes:  # a clip where nothing happens yet: a model still says what it shows
            span = window.scenes[0]
            parts.append(
                f"{span.scene.location} ({span.scene.time or 'time unclear'}); nobody does anything yet."
            )
        return "\n\n".join(parts)

    def _relationships(self, window: Window, identities: list[Identity], *, cold: bool) -> list[dict]:
        by_name = {i.member.name: i for i in identities}
        pairs: dict[tuple[str, str], str] = {}
        for span in window.scenes:
            present = [n for n in window.members_in(span) if n in by_name]
            for a_i, a in enumerate(present):
                for b in present[a_i + 1 :]:
                    if (b, a) not in pairs:
                        pairs.setdefault((a, b), span.scene.location)
        result = []
        for (a, b), where in pairs.items():
            label = RELATIONSHIP_LABELS[
                zlib.crc32("|".join(sorted((a, b))).encode()) % len(RELATIONSHIP_LABELS)
            ]
            first, second = by_name[a], by_name[b]
            entry = {
                "char1_id": first.id,
                "char2_id": second.id,
                "relationship": label,
                "evidence": f"{first.id} and {second.id} talk at {where}",
            }
            if not cold:
                entry["is_new"] = first.is_new or second.is_new
            result.append(entry)
        return result

    # -- script (Fig. 11) -------------------------------------------------------------------------------------
    def script(self, window: Window, profiles: list[dict]) -> dict:
        known = Profiles(profiles, self.screenplay)
        ids = {m.name: script_id(window, m, known) for m in window.members}
        scenes = []
        for number, span in enumerate(window.scenes, start=1):
            events = [self._script_event(window, e, ids) for s, e in window.events if s.index == span.index]
            events = degrade_events(events, self.imperfection, window.duration_s)
            scene = span.scene
            scenes.append(
                {
                    "scene_id": number,
                    "location": scene.location,
                    "type": scene.type,
                    "environment": scene.environment,
                    "time": scene.time,
                    "mood": scene.mood,
                    "start_timestamp": window.rel(span.start_s),
                    "end_timestamp": window.rel(span.end_s),
                    "events": events,
                }
            )
        high_points = []
        for point in self.screenplay.script.high_points:
            if len(point.time_range) == 2:
                start, end = point.time_range
                if min(end, window.end_s) - max(start, window.start_s) <= 0:
                    continue
                body = point.model_dump(mode="json", exclude_none=True)
                body["id"] = len(high_points) + 1
                body["time_range"] = [window.rel(start), window.rel(end)]
                high_points.append(body)
        return {
            "meta": {
                "title": self.screenplay.title,
                "duration": format_timestamp(window.duration_s),
                "characters": list(dict.fromkeys(ids.values())),
            },
            "script": scenes,
            "high_points": high_points,
        }

    @staticmethod
    def _script_event(window: Window, event: ScriptEvent, ids: dict[str, str]) -> dict:
        body = event.model_dump(mode="json", exclude_none=True, exclude={"character_id"})
        body["timestamp"] = window.rel(event.timestamp)
        if event.end_timestamp is not None:
            body["end_timestamp"] = window.rel(event.end_timestamp)
        body["character"] = ids.get(event.character, event.character)
        return body


# -- distillation -----------------------------------------------------------------------------------------
def distill(plot: object, script: object) -> dict:
    """A DistilledThinking answer from the `## Plot` and `## Script` blocks: names (ids) from the script,
    roles and looks from the plot, relationships from the plot."""
    plot = plot if isinstance(plot, dict) else {}
    script = script if isinstance(script, dict) else {}
    scenes = [s for s in script.get("script") or [] if isinstance(s, dict)]
    events = [e for s in scenes for e in s.get("events") or [] if isinstance(e, dict)]
    plot_chars = {c.get("id"): c for c in plot.get("characters") or [] if isinstance(c, dict)}
    order = list(
        dict.fromkeys(e.get("character") for e in events if e.get("character") not in (None, ENVIRONMENT))
    )
    order += [c for c in (script.get("meta") or {}).get("characters") or [] if c not in order]
    characters = []
    for code in order:
        info = plot_chars.get(code, {})
        lines = [e for e in events if e.get("character") == code]
        wants = next((e.get("dialogue") for e in lines if e.get("dialogue")), None)
        description = (info.get("appearance") or "seen on screen").rstrip(".")
        if wants:
            description += f'; here they say "{wants}"'
        characters.append({"name": code, "role": _role(info.get("role_type")), "description": description})
    relationships = [
        {"a": r["char1_id"], "b": r["char2_id"], "relationship": r.get("relationship") or "related"}
        for r in plot.get("relationships") or []
        if isinstance(r, dict) and r.get("char1_id") and r.get("char2_id")
    ]
    summary_source = (plot.get("plot_summary") or {}) if isinstance(plot.get("plot_summary"), dict) else {}
    beats = [e.get("description") for e in summary_source.get("main_events") or [] if isinstance(e, dict)]
    sentences = [_sentence(b) for b in beats if b][:6]
    if not sentences:
        sentences = [_sentence(_script_line(e)) for e in events[:6]] or [
            "Nothing happens that the script records."
        ]
    thinking = [f"This clip has {len(scenes)} scene{'s' if len(scenes) != 1 else ''}."]
    for item in characters:
        thinking.append(f"I see {item['name']}: {item['description']}.")
    for rel in relationships:
        thinking.append(f"{rel['a']} and {rel['b']} seem to be {rel['relationship']}.")
    for event in events:
        if event.get("character") not in (None, ENVIRONMENT):
            thinking.append(f"At {event.get('timestamp')}, {_sentence(_script_line(event))}")
    locations = [s.get("location") for s in scenes if s.get("location")]
    if locations:
        thinking.append("So the scenes divide as: " + " → ".join(locations) + ".")
    return {
        "plot_summary": " ".join(sentences),
        "characters": characters,
        "relationships": relationships,
        "thinking": " ".join(thinking),
    }


def _reasoning(body: dict) -> str:
    return (
        f"The user gives a plot analysis and a script and wants the thinking behind them. "
        f"I count {len(body['characters'])} characters and {len(body['relationships'])} relationships; "
        "I will summarise the plot in order, describe each character by id, keep only relationships the plot "
        "states, and write the reasoning in the first person."
    )


# -- small text helpers -------------------------------------------------------------------------------------
def _action(event: ScriptEvent) -> str:
    if event.action:
        return event.action
    if event.dialogue:
        return f'says "{event.dialogue}"'
    return event.expression or event.audio_cue or "is on screen"


def _describe(event: ScriptEvent, ids: dict[str, str]) -> str:
    who = ids.get(event.character)
    if who is None:
        return event.action or event.audio_cue or "Something happens"
    if event.action and event.dialogue:
        return f'{who}: {event.action.rstrip(".")}, saying "{event.dialogue}"'
    if event.dialogue:
        return f'{who} says "{event.dialogue}"'
    return f"{who}: {event.action or event.expression or 'is on screen'}"


def _script_line(event: dict) -> str:
    who = event.get("character") or "someone"
    what = event.get("action") or (f'says "{event["dialogue"]}"' if event.get("dialogue") else None)
    return f"{who} {what or event.get('expression') or event.get('audio_cue') or 'is there'}"


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?", '"', "…")) else text + "."


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    for stop in (". ", "! ", "? "):
        if stop in text:
            text = text.split(stop, 1)[0]
    return text[:160].rstrip(".")


def _role(role_type: str | None) -> str:
    role = (role_type or "").lower()
    if role in {"lead", "protagonist", "main", "antagonist"}:
        return "lead"
    return "supporting" if role in {"supporting", "secondary"} else "background"


def _role_line(window: Window, identity: Identity) -> str:
    first = window.events_of(identity.member)[0]
    return f"{identity.member.role_type}: {_action(first)}"


def _audio(window: Window) -> dict:
    cues = [(e.character, e.audio_cue) for _, e in window.events if e.audio_cue]
    music = next((cue for _, cue in cues if "music" in cue.lower() or "song" in cue.lower()), "")
    effects = list(dict.fromkeys(cue for who, cue in cues if who == ENVIRONMENT and cue != music))
    ambient = window.scenes[0].scene.environment if window.scenes else ""
    return {"background_music": music, "sound_effects": effects, "ambient_sound": ambient}
