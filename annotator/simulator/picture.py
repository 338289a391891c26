"""The synthetic film's picture: one ffmpeg filter graph, one chain per scene, concatenated at the cuts.

Every scene is a flat background with its own colour and line pattern (so PySceneDetect finds a hard cut at
each scene boundary and nowhere else), the characters on screen are coloured figures labelled with a short
visual descriptor (never their name, so naming must come from the dialogue), and dialogue is burned in as
subtitles; a strip across the top marks every frame with the film's time and scene (film_mark.py). The graph names only short relative files (text files, `font.ttf`) in ffmpeg's working directory,
so it needs no path escaping.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

from annotator.schemas.script import ENVIRONMENT, Scene
from annotator.simulator import film_mark
from annotator.simulator.screenplay import OFF_SCREEN, CastMember, Screenplay
from annotator.simulator.soundtrack import Sound, sound_spans


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


class TextFiles:
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


def _figure(member: CastMember, at: float, centre_x: int, frame: Frame, files: TextFiles) -> list[str]:
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
    files: TextFiles,
) -> str:
    """One scene as a filter chain with scene-local time (t = 0 at its cut), ending in the label [s<index>]."""
    look, s = SCENE_LOOKS[index % len(SCENE_LOOKS)], frame.scale
    start, _ = span
    filters = [
        f"color=c={look.background}:s={frame.width}x{frame.height}:r={frame.fps}:d={frames / frame.fps:.6f}",
        f"drawgrid=w={look.cell_w}:h={look.cell_h}:t={look.thickness}:c={look.lines}",
        *film_mark.scene_filters(index, frame.width, frame.height),
        _text(
            files.add(_caption(scene)),
            15 * s,
            "12",
            str(film_mark.band_height(frame.height) + 6),
            box_alpha=0.7,
        ),
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


def filter_graph(screenplay: Screenplay, until_s: float, frame: Frame, files: TextFiles) -> tuple[str, float]:
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
    marks = ",".join(film_mark.time_filters(frame.width, frame.height))
    chains.append(f"{labels}concat=n={len(chains)}:v=1:a=0,{marks},format=yuv420p[v]")
    return ";\n".join(chains), total_frames / frame.fps
