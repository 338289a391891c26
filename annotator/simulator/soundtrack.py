"""The synthetic film's soundtrack: when something is heard, and how it sounds.

A pitched, voice-like tone per line of dialogue and a synthetic sound per audio cue, synthesised with numpy,
with silence everywhere else (and before every cut), so the ground truth of what is heard is known exactly.
"""

from __future__ import annotations

import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annotator.schemas.script import ScriptEvent
from annotator.simulator.screenplay import Screenplay

SAMPLE_RATE = 22050
TAIL_SILENCE_S = 0.5  # no sound runs into a cut, so a splitter that prefers silences finds one at every cut


@dataclass(frozen=True)
class Sound:
    """One audible span of the soundtrack: a line of dialogue ("voice") or an audio cue ("cue")."""

    start: float
    end: float
    kind: str
    event: ScriptEvent


def speech_seconds(dialogue: str) -> float:
    """How long a line takes to say: about three words a second, at least a second."""
    return min(5.0, max(1.0, 0.6 + 0.33 * len(dialogue.split())))


def sound_spans(screenplay: Screenplay, until_s: float | None = None) -> list[Sound]:
    """Every audible span, in time order. A line lasts until it is said, the next line starts or the scene
    nears its end; a cue lasts as long as its kind of sound does. Everything outside these spans is silent."""
    limit = min(until_s or screenplay.duration_s, screenplay.duration_s)
    sounds: list[Sound] = []
    for scene, (_, scene_end) in zip(screenplay.script.script, screenplay.scene_spans(), strict=True):
        stop = min(scene_end, limit) - TAIL_SILENCE_S
        lines = [e for e in scene.events if e.dialogue]
        for event in scene.events:
            if event.audio_cue:
                _, length = _cue_sound(event.audio_cue)
                sounds.append(Sound(event.timestamp, min(event.timestamp + length, stop), "cue", event))
            if event.dialogue:
                later = [e.timestamp for e in lines if e.timestamp > event.timestamp]
                end = min(event.timestamp + speech_seconds(event.dialogue), stop, *(t - 0.2 for t in later))
                sounds.append(Sound(event.timestamp, end, "voice", event))
    return sorted((s for s in sounds if s.end - s.start >= 0.3), key=lambda s: (s.start, s.kind))


def _voice(n: int, pitch: float, rng: np.random.Generator) -> np.ndarray:
    """A sung-vowel stand-in for speech: harmonics on a gliding pitch, chopped into ~4 syllables a second."""
    t = np.arange(n) / SAMPLE_RATE
    pitch_curve = pitch * (1 + 0.08 * np.sin(2 * np.pi * 1.3 * t + rng.uniform(0, 6)))
    phase = 2 * np.pi * np.cumsum(pitch_curve) / SAMPLE_RATE
    tone = np.sin(phase) + 0.5 * np.sin(2 * phase) + 0.25 * np.sin(3 * phase)
    syllables = 0.25 + 0.75 * np.abs(np.sin(np.pi * 4.2 * t))
    return 0.18 * tone * syllables


def _smoothed_noise(n: int, rng: np.random.Generator, width: int) -> np.ndarray:
    """White noise low-passed by a moving average; wider means duller (rain → rumble)."""
    noise = np.convolve(rng.standard_normal(n), np.ones(width) / width, mode="same")
    return noise / (np.abs(noise).max() or 1.0)


def _decay(n: int, seconds: float) -> np.ndarray:
    return np.exp(-np.arange(n) / (seconds * SAMPLE_RATE))


def _bang(n: int, rng: np.random.Generator) -> np.ndarray:
    return 0.6 * _smoothed_noise(n, rng, 6) * _decay(n, 0.2)


def _knocks(n: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n)
    hit = int(0.3 * SAMPLE_RATE)
    for start in range(0, n - hit // 2, hit):
        piece = _bang(min(hit, n - start), rng)
        out[start : start + len(piece)] += piece
    return out


def _ring(n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    gate = (t % 0.6) < 0.4
    return 0.2 * (np.sin(2 * np.pi * 440 * t) + np.sin(2 * np.pi * 480 * t)) * gate


def _horn(n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    return 0.15 * sum(np.sin(2 * np.pi * 110 * k * t) / k for k in (1, 2, 3, 5))


def _whistle(n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    return 0.15 * np.sin(2 * np.pi * (1800 + 60 * np.sin(2 * np.pi * 5 * t)) * t)


def _clicks(n: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n)
    for start in range(0, n, int(0.5 * SAMPLE_RATE)):
        piece = _bang(min(800, n - start), rng)
        out[start : start + len(piece)] += piece
    return out


def _hum(n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    return 0.12 * (np.sin(2 * np.pi * 100 * t) + 0.6 * np.sin(2 * np.pi * 200 * t))


def _crackle(n: int, rng: np.random.Generator) -> np.ndarray:
    return 0.5 * rng.standard_normal(n) * (rng.random(n) < 0.05)


def _rain(n: int, rng: np.random.Generator) -> np.ndarray:
    return 0.25 * _smoothed_noise(n, rng, 3)


def _rumble(n: int, rng: np.random.Generator) -> np.ndarray:
    return 0.6 * _smoothed_noise(n, rng, 60)


# First match wins: (words in the cue, seconds it lasts, synthesiser). Unknown cues get a short bang.
_CUE_SOUNDS: tuple[tuple[tuple[str, ...], float, Callable[[int, np.random.Generator], np.ndarray]], ...] = (
    (("knock",), 1.0, _knocks),
    (("ring", "phone"), 1.8, _ring),
    (("horn",), 2.0, _horn),
    (("whistl", "kettle"), 1.5, _whistle),
    (("crackle", "static", "radio"), 0.8, _crackle),
    (("buzz", "hum"), 2.0, _hum),
    (("tick", "click", "latch"), 1.2, _clicks),
    (("thunder", "rumble", "engine"), 2.5, _rumble),
    (("rain", "drizzle", "wind", "wave", "spray", "storm"), 3.0, _rain),
)


def _cue_sound(cue: str) -> tuple[Callable[[int, np.random.Generator], np.ndarray], float]:
    lowered = cue.lower()
    for words, seconds, synth in _CUE_SOUNDS:
        if any(word in lowered for word in words):
            return synth, seconds
    return _bang, 0.8


def _pitch(screenplay: Screenplay, name: str) -> float:
    member = screenplay.member(name)
    if member and member.voice_hz:
        return member.voice_hz
    index = next((i for i, c in enumerate(screenplay.cast) if c.name == name), 0)
    return (110.0, 220.0, 90.0, 260.0, 140.0, 190.0)[index % 6]


def synthesize_audio(screenplay: Screenplay, duration_s: float) -> np.ndarray:
    """The soundtrack as mono float samples in [-1, 1]; deterministic for a given screenplay."""
    rng = np.random.default_rng(7)
    track = np.zeros(round(duration_s * SAMPLE_RATE))
    for sound in sound_spans(screenplay, until_s=duration_s):
        start, end = round(sound.start * SAMPLE_RATE), round(sound.end * SAMPLE_RATE)
        n = end - start
        if sound.kind == "voice":
            samples = _voice(n, _pitch(screenplay, sound.event.character), rng)
        else:
            samples = _cue_sound(sound.event.audio_cue or "")[0](n, rng)
        fade = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / (0.02 * SAMPLE_RATE))
        track[start:end] += samples * fade  # fades avoid clicks, which would smear sound into the silences
    return np.clip(track, -1.0, 1.0)


def write_wav(samples: np.ndarray, path: Path) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes((samples * 32767).astype("<i2").tobytes())
