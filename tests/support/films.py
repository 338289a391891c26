"""Rendered films, each rendered once per test process and copied to wherever a test wants one.

Rendering is the costliest set-up of the suite (the sample film takes ~10 s on the CI machine) and a dozen
modules need the same few films; a copy takes milliseconds and leaves each test free to damage its own.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import shutil
import tempfile
import threading
from pathlib import Path

from annotator.simulator.film import render_film, slugify
from annotator.simulator.screenplay import DEFAULT_SCREENPLAY, Screenplay

_CACHE = Path(tempfile.mkdtemp(prefix="v2s-test-films-"))
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
_LOCK = threading.Lock()


def film_copy(screenplay: Screenplay, target: Path, **options: object) -> Path:
    """What `render_film(screenplay, target, **options)` writes, from one render per distinct film."""
    key = hashlib.sha256((screenplay.model_dump_json() + json.dumps(options, sort_keys=True)).encode())
    cached = _CACHE / f"{key.hexdigest()[:20]}.mp4"
    with _LOCK:
        if not cached.exists():
            render_film(screenplay, cached, **options)  # type: ignore[arg-type]
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cached, target)
    return target


def sample_copy(out_dir: Path, screenplay_path: Path | None = None) -> tuple[Path, Path]:
    """What `render_sample(out_dir, screenplay_path)` writes: the film and its screenplay beside it."""
    source = Path(screenplay_path) if screenplay_path else DEFAULT_SCREENPLAY
    screenplay = Screenplay.load(source)
    slug = slugify(screenplay.title)
    video = film_copy(screenplay, Path(out_dir) / f"{slug}.mp4")
    truth = Path(out_dir) / f"{slug}.screenplay.json"
    shutil.copyfile(source, truth)
    return video, truth


def silent_copy(target: Path, seconds: float = 20.0) -> Path:
    """What `render_silent_film(target, seconds)` writes."""
    return film_copy(Screenplay.load(), target, until_s=seconds, with_audio=False)
