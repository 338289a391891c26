"""Render a screenplay into a small synthetic film whose ground truth is known exactly.

The film is built for the engine's tests and demo, not for people: every scene is a flat background with its own
colour and line pattern (so PySceneDetect finds a hard cut at each scene boundary and nowhere else), the
characters on screen are coloured figures labelled with a short visual descriptor (never their name, so naming
must come from the dialogue), dialogue is burned in as subtitles, and the soundtrack has a pitched voice-like
tone per line and a synthetic sound per audio cue, with silence everywhere else.

Audio is synthesised with numpy into a WAV file (soundtrack.py); the picture is one ffmpeg filter graph, one
chain per scene, concatenated (picture.py); this module runs ffmpeg on the two. All files ffmpeg reads live in
one temporary folder that is ffmpeg's working directory, so the graph only ever names short relative files and
needs no path escaping.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import matplotlib

from annotator.media import ffmpeg_exe
from annotator.simulator.picture import OFF_SCREEN, Frame, TextFiles, filter_graph
from annotator.simulator.screenplay import DEFAULT_SCREENPLAY, Screenplay
from annotator.simulator.soundtrack import sound_spans, synthesize_audio, write_wav

__all__ = [  # OFF_SCREEN and sound_spans: the film's ground truth, read by tests beside the renderers
    "OFF_SCREEN",
    "FilmRenderError",
    "render_film",
    "render_sample",
    "render_silent_film",
    "slugify",
    "sound_spans",
]

FONT = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


class FilmRenderError(RuntimeError):
    """ffmpeg failed to render the film; the message carries the end of its log."""


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
        graph, length = filter_graph(screenplay, limit, frame, TextFiles(work))
        (work / "graph.txt").write_text(graph, encoding="utf-8")
        command = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y"]
        if with_audio:
            write_wav(synthesize_audio(screenplay, length), work / "audio.wav")
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
