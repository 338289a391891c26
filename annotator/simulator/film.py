"""Render a screenplay into a small synthetic film whose ground truth is known exactly.

The film is built for the engine's tests and demo, not for people: every scene is a flat background with its own
colour and line pattern (so PySceneDetect finds a hard cut at each scene boundary and nowhere else), the
characters on screen are coloured figures labelled with a short visual descriptor (never their name, so naming
must come from the dialogue), dialogue is burned in as subtitles, and the soundtrack has a pitched voice-like
tone per line and a synthetic sound per audio cue, with silence everywhere else.

Audio is synthesised with numpy into a WAV file; the picture is one ffmpeg filter graph (one chain per scene,
concatenated). All files ffmpeg reads live in one temporary folder that is ffmpeg's working directory, so the
graph only ever names short relative files and needs no path escaping.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import textwrap
import wave
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import matplotlib
import numpy as np

from annotator.media import ffmpeg_exe
from annotator.schemas.script import ENVIRONMENT, Scene, ScriptEvent
from annotator.simulator.screenplay import DEFAULT_SCREENPLAY, CastMember, Screenplay

SAMPLE_RATE = 22050
OFF_SCREEN = {"VO", "OS", "V.O.", "O.S."}
TAIL_SILENCE_S = 0.5  # no sound runs into a cut, so a splitter that prefers silences finds one at every cut
FONT = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


class FilmRenderError(RuntimeError):
    """ffmpeg failed to render the film; the message carries the end of its log."""


# ── what is heard ──────────────────────────────────────────────────────────────────────────────────────


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


def _write_wav(samples: np.ndarray, path: Path) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes((samples * 32767).astype("<i2").tobytes())


# ── what is seen ───────────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class SceneLook:
    """Background colour and a line pattern (drawgrid: cell width, cell height, line thickness)."""

    background: str
    lines: str
    cell_w: str
    cell_h: str
    thickness: int


# Neighbours differ in hue and brightness, so every cut is obvious to a content detector; the patterns
# are static, so nothing inside a scene looks like a cut.
SCENE_LOOKS = (
    SceneLook("0x1d2b53", "0x34508f", "48", "48", 2),  # navy grid
    SceneLook("0x6b4a1f", "0x87602c", "iw", "20", 3),  # ochre, horizontal lines
    SceneLook("0x0e4d4d", "0x1a6e6e", "36", "ih", 4),  # teal, vertical lines
    SceneLook("0x505050", "0x666666", "90", "90", 6),  # grey, wide grid
    SceneLook("0x3b1f4d", "0x56307a", "iw", "60", 10),  # plum, broad bands
    SceneLook("0x5c1a1a", "0x7a2a2a", "30", "30", 1),  # oxblood, fine grid
    SceneLook("0x1f3d1f", "0x2f5a2f", "80", "ih", 12),  # forest, wide columns
    SceneLook("0x8a6e80", "0x9c8193", "iw", "16", 1),  # dawn mauve, fine lines
)


@dataclass(frozen=True)
class Frame:
    width: int
    height: int
    fps: int

    @property
    def scale(self) -> float:
        return self.height / 360


class _TextFiles:
    """drawtext reads its text from files, so no dialogue ever needs filter-graph escaping."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0

    def add(self, text: str) -> str:
        self.count += 1
        name = f"text{self.count:04d}.txt"
        (self.folder / name).write_text(text, encoding="utf-8")
        return name


def _between(start: float, end: float) -> str:
    return f"enable='between(t,{start:.3f},{end:.3f})'"


def _text(file: str, size: float, x: str, y: str, *, box_alpha: float = 0.55) -> str:
    return (
        f"drawtext=fontfile=font.ttf:textfile={file}:expansion=none:fontsize={round(size)}:fontcolor=white"
        f":line_spacing=4:box=1:boxcolor=black@{box_alpha}:boxborderw=5:x={x}:y={y}"
    )


def _figure(member: CastMember, at: float, centre_x: int, frame: Frame, files: _TextFiles) -> list[str]:
    """A character as a head and a body in their colour, labelled with how they look (never who they are)."""
    s, colour = frame.scale, member.color_at(at)
    body_w, body_h, head = round(70 * s), round(105 * s), round(44 * s)
    head_y, body_y = round(88 * s), round(136 * s)
    label = textwrap.fill(member.look_at(at), 16)
    return [
        f"drawbox=x={centre_x - head // 2}:y={head_y}:w={head}:h={head}:color={colour}:t=fill",
        f"drawbox=x={centre_x - body_w // 2}:y={body_y}:w={body_w}:h={body_h}:color={colour}:t=fill",
        f"drawbox=x={centre_x - body_w // 2}:y={body_y}:w={body_w}:h={body_h}:color=black@0.6:t=2",
        _text(files.add(label), 11 * s, f"{centre_x}-text_w/2", str(round(252 * s))),
    ]


def _speaking_marker(centre_x: int, frame: Frame, start: float, end: float) -> str:
    """A white frame around the speaker's figure while the line is said."""
    s = frame.scale
    w, h = round(84 * s), round(166 * s)
    return (
        f"drawbox=x={centre_x - w // 2}:y={round(81 * s)}:w={w}:h={h}:color=white:t=3:{_between(start, end)}"
    )


def _on_screen(scene: Scene, screenplay: Screenplay) -> list[CastMember]:
    """Cast members with at least one in-vision event in the scene (voice-over lines do not put them there)."""
    present = {
        e.character for e in scene.events if e.character != ENVIRONMENT and e.voice_type not in OFF_SCREEN
    }
    return [member for member in screenplay.cast if member.name in present]


def _caption(scene: Scene) -> str:
    kind = {"interior": "INT.", "exterior": "EXT."}.get(scene.type.strip().lower(), "")
    return " ".join(part for part in (kind, scene.location.upper(), "-", scene.time.upper()) if part).strip(
        " -"
    )


def _scene_chain(
    index: int,
    scene: Scene,
    span: tuple[float, float],
    frames: int,
    screenplay: Screenplay,
    sounds: list[Sound],
    frame: Frame,
    files: _TextFiles,
) -> str:
    """One scene as a filter chain with scene-local time (t = 0 at its cut), ending in the label [s<index>]."""
    look, s = SCENE_LOOKS[index % len(SCENE_LOOKS)], frame.scale
    start, _ = span
    filters = [
        f"color=c={look.background}:s={frame.width}x{frame.height}:r={frame.fps}:d={frames / frame.fps:.6f}",
        f"drawgrid=w={look.cell_w}:h={look.cell_h}:t={look.thickness}:c={look.lines}",
        _text(files.add(_caption(scene)), 15 * s, "12", "10", box_alpha=0.7),
    ]
    cast = _on_screen(scene, screenplay)
    centres = {m.name: round(frame.width * (i + 1) / (len(cast) + 1)) for i, m in enumerate(cast)}
    for member in cast:
        filters += _figure(member, start, centres[member.name], frame, files)
    in_scene = {id(event) for event in scene.events}
    for sound in (x for x in sounds if x.kind == "voice" and id(x.event) in in_scene):
        local = (sound.start - start, sound.end - start)
        if sound.event.character in centres and sound.event.voice_type not in OFF_SCREEN:
            filters.append(_speaking_marker(centres[sound.event.character], frame, *local))
        subtitle = files.add(textwrap.fill(sound.event.dialogue or "", 52))
        filters.append(
            _text(subtitle, 16 * s, "(w-text_w)/2", f"h-text_h-{round(14 * s)}") + ":" + _between(*local)
        )
    return ",".join(filters) + f"[s{index}]"


def _filter_graph(
    screenplay: Screenplay, until_s: float, frame: Frame, files: _TextFiles
) -> tuple[str, float]:
    """The whole picture: scene chains concatenated at the cuts. Returns the graph and the film's length."""
    sounds = sound_spans(screenplay, until_s=until_s)
    chains, total_frames = [], 0
    for index, (scene, span) in enumerate(
        zip(screenplay.script.script, screenplay.scene_spans(), strict=True)
    ):
        start, end = span[0], min(span[1], until_s)
        if start >= until_s:
            break
        # Whole frames from the film's start, so rounding never drifts a cut off its scene boundary.
        frames = round(end * frame.fps) - round(start * frame.fps)
        chains.append(_scene_chain(index, scene, (start, end), frames, screenplay, sounds, frame, files))
        total_frames += frames
    labels = "".join(f"[s{i}]" for i in range(len(chains)))
    chains.append(f"{labels}concat=n={len(chains)}:v=1:a=0,format=yuv420p[v]")
    return ";\n".join(chains), total_frames / frame.fps


# ── rendering ──────────────────────────────────────────────────────────────────────────────────────────


@cache
def _filter_script_option() -> str:
    """ffmpeg 7 replaced -filter_complex_script with the -/filter_complex file syntax (and 8 removed the old)."""
    banner = subprocess.run([ffmpeg_exe(), "-version"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"ffmpeg version n?(\d+)\.", banner)
    return "-filter_complex_script" if match and int(match.group(1)) < 7 else "-/filter_complex"


def render_film(
    screenplay: Screenplay,
    out_path: Path,
    *,
    width: int = 640,
    height: int = 360,
    fps: int = 12,
    until_s: float | None = None,
    with_audio: bool = True,
) -> Path:
    """Render `screenplay` (or its first `until_s` seconds) to an H.264/AAC MP4 at `out_path`.

    `with_audio=False` writes a video without any audio stream (for the engine's "no audio" error path).
    The file appears only when complete (rendered to a temporary name, then renamed).
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    limit = min(until_s, screenplay.duration_s) if until_s else screenplay.duration_s
    frame = Frame(width, height, fps)
    partial = out_path.with_name(out_path.stem + ".partial.mp4")
    with tempfile.TemporaryDirectory(prefix="v2s-film-") as tmp:
        work = Path(tmp)
        shutil.copyfile(FONT, work / "font.ttf")
        graph, length = _filter_graph(screenplay, limit, frame, _TextFiles(work))
        (work / "graph.txt").write_text(graph, encoding="utf-8")
        command = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y"]
        if with_audio:
            _write_wav(synthesize_audio(screenplay, length), work / "audio.wav")
            command += ["-i", "audio.wav"]
        command += [_filter_script_option(), "graph.txt", "-map", "[v]"]
        command += [
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            "30",
            "-tune",
            "stillimage",
            "-g",
            "120",
        ]
        if with_audio:
            command += ["-map", "0:a", "-c:a", "aac", "-b:a", "48k", "-ac", "1"]
        command += ["-metadata", f"title={screenplay.title}", "-movflags", "+faststart"]
        command += ["-t", f"{length:.3f}", str(partial.resolve())]
        result = subprocess.run(command, cwd=work, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise FilmRenderError(f"ffmpeg could not render {out_path.name}: {result.stderr.strip()[-2000:]}")
    partial.replace(out_path)
    return out_path


def render_silent_film(out_path: Path, seconds: float = 20.0, screenplay: Screenplay | None = None) -> Path:
    """The first `seconds` of the sample film with no audio stream at all."""
    return render_film(screenplay or Screenplay.load(), out_path, until_s=seconds, with_audio=False)


def slugify(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "film"


def render_sample(out_dir: Path, screenplay_path: Path | None = None) -> tuple[Path, Path]:
    """Render a screenplay (default: the bundled story) into `out_dir`: `<slug>.mp4` and, beside it, the
    ground truth as `<slug>.screenplay.json` (a byte-for-byte copy of the screenplay file)."""
    source = Path(screenplay_path) if screenplay_path else DEFAULT_SCREENPLAY
    screenplay = Screenplay.load(source)
    out_dir = Path(out_dir)
    slug = slugify(screenplay.title)
    video = render_film(screenplay, out_dir / f"{slug}.mp4")
    truth = out_dir / f"{slug}.screenplay.json"
    shutil.copyfile(source, truth)
    return video, truth
