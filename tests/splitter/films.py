"""Planted films for the splitter's tests and benchmark: real videos rendered with the real ffmpeg binary, with
known cut, flash, keyframe and dialogue times."""

from __future__ import annotations

import subprocess
from pathlib import Path

from annotator.media import ffmpeg_exe

SHOT_LOOKS = [
    "gradients=s={size}:r={fps}:c0=0x2040a0:c1=0xe0c060:c2=0x102010:n=3:speed=0.015:seed=11",
    "testsrc2=s={size}:r={fps}",
    "gradients=s={size}:r={fps}:c0=0xa02020:c1=0x20a0a0:n=2:speed=0.02:seed=5",
    "mandelbrot=s={size}:r={fps}:start_scale=2.5:end_scale=0.5:maxiter=64",
    "gradients=s={size}:r={fps}:c0=0x303030:c1=0xf0f0f0:c2=0x806020:n=3:speed=0.01:seed=7",
    "gradients=s={size}:r={fps}:c0=0x10a040:c1=0x4010a0:c2=0xf08000:n=3:speed=0.03:seed=3",
]
# hard cut, dissolve (xfade fade), fade through black (xfade fadeblack), dip to black (fade out, then fade in):
# (kind, transition seconds)
TRANSITIONS = [("cut", 0.0), ("fade", 1.0), ("cut", 0.0), ("fadeblack", 1.2), ("dip", 1.0), ("fade", 2.0)]


def _shot(
    i: int,
    duration: float,
    size: str,
    fps: int,
    flashes: list[float],
    dips: tuple[float, float],
    looks: list[str] = SHOT_LOOKS,
) -> str:
    """One shot: a moving look, a bright box crossing it, film grain; white flashes (2 frames) at shot times;
    `dips`: seconds of fade in from black at its start and fade out to black at its end."""
    look = looks[i % len(looks)].format(size=size, fps=fps)
    box = f"drawbox=x='mod(t*{40 + 7 * i}\\,iw)':y={20 + 9 * (i % 5)}:w=24:h=24:color=white@0.7:t=fill"
    chain = [look, f"trim=duration={duration}", "format=yuv420p", box, "noise=alls=6:allf=t"]
    for at in flashes:
        chain.append(f"drawbox=c=white:t=fill:enable='between(t\\,{at}\\,{at + 1.5 / fps})'")
    if dips[0]:
        chain.append(f"fade=t=in:st=0:d={dips[0]}")
    if dips[1]:
        chain.append(f"fade=t=out:st={duration - dips[1]:.3f}:d={dips[1]}")
    return ",".join(chain) + f",setpts=PTS-STARTPTS,settb=1/{fps}"


def planted_film(
    path: Path,
    *,
    shots: int = 14,
    shot_s: float = 6.5,
    size: str = "320x180",
    fps: int = 24,
    looks: list[str] = SHOT_LOOKS,
    audio: Path | None = None,
    crf: int = 18,
) -> tuple[Path, list[float], list[float]]:
    """Shots joined by hard cuts, dissolves, fades through black and dips to black, with 2-frame white flashes
    inside some shots (no cut); `audio`: a sound track to mux in. Returns (path, true cut times, flash times)."""
    kinds = [TRANSITIONS[(i - 1) % len(TRANSITIONS)] for i in range(shots)]  # kinds[i]: into shot i
    parts, cuts, flashes = [], [], []
    length, label = 0.0, ""
    for i in range(shots):
        kind, span = kinds[i] if i else ("cut", 0.0)
        overlap = span if kind in ("fade", "fadeblack") else 0.0
        duration = shot_s + 0.3 * (i % 3) + overlap  # a cross transition eats into the shot's start
        own = [round(duration * 0.55, 2)] if i % 3 == 1 else []
        dip_in = span / 2 if kind == "dip" else 0.0
        following = kinds[i + 1] if i + 1 < shots else ("cut", 0.0)
        dip_out = following[1] / 2 if following[0] == "dip" else 0.0
        parts.append(f"{_shot(i, duration, size, fps, own, (dip_in, dip_out), looks)}[s{i}]")
        if i == 0:
            label, length = "[s0]", duration
            flashes += own
            continue
        if kind in ("cut", "dip"):
            parts.append(f"{label}[s{i}]concat=n=2:v=1:a=0,settb=1/{fps}[j{i}]")
            cuts.append(length)
            start = length
        else:
            offset = length - span
            parts.append(f"{label}[s{i}]xfade=transition={kind}:duration={span}:offset={offset:.3f}[j{i}]")
            cuts.append(offset + span / 2)
            start = offset
        flashes += [start + at for at in own]
        label, length = f"[j{i}]", start + duration
    cmd = [ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error", "-filter_complex", ";".join(parts)]
    if audio is not None:
        cmd += ["-i", str(audio), "-map", "0:a", "-c:a", "aac", "-shortest"]
    cmd += ["-map", label, "-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf), "-pix_fmt", "yuv420p"]
    subprocess.run([*cmd, str(path)], check=True)
    return path, [round(c, 3) for c in cuts], [round(f, 3) for f in flashes]


ENCODINGS: dict[str, list[str]] = {
    "vp9": ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "600k"],
    "av1": ["-c:v", "libsvtav1", "-preset", "12", "-crf", "40"],
    "hevc10": ["-c:v", "libx265", "-preset", "ultrafast", "-crf", "28", "-pix_fmt", "yuv420p10le"],
    # 50 fields/s woven into 25 interlaced frames, flagged as such (MPEG-2 in a transport stream, like 1080i TV)
    "mpeg2i": [
        "-vf",
        "fps=50,tinterlace=mode=interleave_top,setfield=tff",
        "-c:v",
        "mpeg2video",
        "-flags",
        "+ilme+ildct",
        "-b:v",
        "1500k",
    ],
    "h264i": [
        "-vf",
        "fps=50,tinterlace=mode=interleave_top,setfield=tff",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-flags",
        "+ildct+ilme",
        "-x264-params",
        "interlaced=1:tff=1",
        "-pix_fmt",
        "yuv420p",
    ],
}
ENCODING_SUFFIX = {"vp9": ".webm", "av1": ".mkv", "hevc10": ".mp4", "mpeg2i": ".ts", "h264i": ".mp4"}


def transcode(source: Path, target: Path, encoding: str) -> Path:
    """The same film in another codec (see ENCODINGS); the audio, if any, as AAC/Opus as the container takes."""
    audio = ["-c:a", "libopus"] if target.suffix == ".webm" else ["-c:a", "aac"]
    cmd = [ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error", "-i", str(source), *ENCODINGS[encoding]]
    subprocess.run([*cmd, *audio, str(target)], check=True, capture_output=True)  # SVT-AV1 logs to stderr
    return target


def static_film(
    path: Path, duration: float = 90.0, *, size: str = "320x180", fps: int = 24, seed: int = 1
) -> tuple[Path, list[float]]:
    """One unchanging grainy picture, strongly compressed, with keyframes 2-10 s apart at random: every keyframe
    refreshes the picture (a compression pulse) and none is a cut. Returns (path, keyframe times)."""
    import random

    rng, times, t = random.Random(seed), [], 0.0
    while (t := t + rng.uniform(2.0, 10.0)) < duration:
        times.append(round(t, 2))
    look = f"gradients=s={size}:r={fps}:c0=0x604830:c1=0xc0b090:c2=0x203040:n=3:speed=0:seed=9"
    graph = f"{look},trim=duration={duration},format=yuv420p,noise=alls=14:allf=t"
    cmd = [ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", graph]
    cmd += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "34", "-g", "100000", "-sc_threshold", "0"]
    cmd += ["-force_key_frames", ",".join(str(k) for k in times), "-pix_fmt", "yuv420p", str(path)]
    subprocess.run(cmd, check=True)
    return path, times


DATA = Path(__file__).parent / "data"
# espeak-ng lines (16 kHz Opus), made once and kept here: the tests need real speech, not an installed synthesiser
LINES = sorted(DATA.glob("line*.opus"))
MUSIC = (
    "aevalsrc='0.12*sin(2*PI*220*t)*(0.6+0.4*sin(2*PI*0.5*t))+0.08*sin(2*PI*277.2*t+2*sin(2*PI*3*t))"
    "+0.08*sin(2*PI*329.6*t)*(0.5+0.5*sin(2*PI*0.25*t))+0.05*sin(2*PI*110*t)':s=16000:d={d}"
)


def line_extent(path: Path) -> tuple[float, float]:
    """Where the voice is in a line's file (first and last sample above 1% of full scale)."""
    import av
    import numpy as np

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        chunks = [f.to_ndarray().reshape(-1) for f in container.decode(stream)]
        rate = stream.rate
    loud = np.flatnonzero(np.abs(np.concatenate(chunks)) > 0.01)
    return float(loud[0] / rate), float(loud[-1] / rate)


def dialogue_track(path: Path, duration: float, every_s: float = 9.0) -> Path:
    """A sound track of `duration` s: the music bed with room tone and a line every `every_s` seconds."""
    starts = [t for t in range(2, int(duration) - 8, round(every_s))]
    cmd = [
        ffmpeg_exe(),
        "-y",
        "-hide_banner",
        "-loglevel",
        "error",
        "-f",
        "lavfi",
        "-i",
        MUSIC.format(d=duration),
    ]
    cmd += ["-f", "lavfi", "-i", f"anoisesrc=c=pink:a=0.02:r=16000:d={duration}"]
    graph = []
    for k, start in enumerate(starts):
        cmd += ["-i", str(LINES[k % len(LINES)])]
        graph.append(f"[{k + 2}:a]adelay={start * 1000}:all=1[l{k}]")
    mix = "[0:a][1:a]" + "".join(f"[l{k}]" for k in range(len(starts)))
    graph.append(f"{mix}amix=inputs={len(starts) + 2}:normalize=0:duration=first[a]")
    cmd += ["-filter_complex", ";".join(graph), "-map", "[a]", "-c:a", "aac", str(path)]
    subprocess.run(cmd, check=True)
    return path


def dialogue_film(
    path: Path,
    placements: list[tuple[float, int]],
    duration: float,
    *,
    size: str = "320x180",
    seed: int = 1,
) -> tuple[Path, list[tuple[float, float]]]:
    """One continuous shot (no cut) over a continuous music bed with room tone, and espeak lines: line
    `placements[k][1]` starting at `placements[k][0]` s. `seed`: the room tone's (the same seed, the same
    sound, so the VAD hears the same film on every run). Returns (path, the true spans of speech)."""
    look = f"gradients=s={size}:r=12:c0=0x403020:c1=0xa09070:n=2:speed=0.005:seed=4,noise=alls=4:allf=t"
    cmd = [
        ffmpeg_exe(),
        "-y",
        "-hide_banner",
        "-loglevel",
        "error",
        "-f",
        "lavfi",
        "-i",
        f"{look},trim=duration={duration}",
    ]
    cmd += ["-f", "lavfi", "-i", MUSIC.format(d=duration)]
    cmd += ["-f", "lavfi", "-i", f"anoisesrc=c=pink:a=0.02:r=16000:d={duration}:seed={seed}"]
    graph, spans = [], []
    for k, (start, line) in enumerate(placements):
        cmd += ["-i", str(LINES[line])]
        graph.append(f"[{k + 3}:a]adelay={round(start * 1000)}:all=1[l{k}]")
        lo, hi = line_extent(LINES[line])
        spans.append((round(start + lo, 3), round(start + hi, 3)))
    mix = "[1:a][2:a]" + "".join(f"[l{k}]" for k in range(len(placements)))
    graph.append(f"{mix}amix=inputs={len(placements) + 2}:normalize=0:duration=first[a]")
    cmd += ["-filter_complex", ";".join(graph), "-map", "0:v", "-map", "[a]", "-t", str(duration)]
    cmd += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "28", "-pix_fmt", "yuv420p", "-c:a", "aac"]
    subprocess.run([*cmd, str(path)], check=True)
    return path, spans


def back_to_back(duration: float, pauses: list[float], *, first_s: float = 1.0) -> list[tuple[float, int]]:
    """Placements for `dialogue_film` of fast conversation: the lines in turn, each voice starting `pauses[k]` s
    (cycled) after the previous one ends, until `duration` is nearly reached."""
    extents = [line_extent(line) for line in LINES]
    placements: list[tuple[float, int]] = []
    voice = first_s  # where the next line's voice begins
    while True:
        line = len(placements) % len(LINES)
        lo, hi = extents[line]
        if voice + hi - lo > duration - 1.0:
            return placements
        placements.append((round(voice - lo, 3), line))
        voice += hi - lo + pauses[(len(placements) - 1) % len(pauses)]


def write_srt(path: Path, spans: list[tuple[float, float]]) -> Path:
    """A sidecar SubRip file with one cue per span."""

    def stamp(t: float) -> str:
        ms = round(t * 1000)
        return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"

    cues = [f"{n}\n{stamp(a)} --> {stamp(b)}\n(line {n})\n" for n, (a, b) in enumerate(spans, start=1)]
    path.write_text("\n".join(cues), encoding="utf-8")
    return path
