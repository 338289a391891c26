"""Quality gates a script must pass before it becomes a record (the paper filters its annotations too)."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel

from annotator.schemas import Script
from annotator.schemas.contract import TIME_TOLERANCE_S, times_outside
from annotator.schemas.plot import CODE_PATTERN
from annotator.schemas.script import ENVIRONMENT


class QualityGates(BaseModel):
    time_tolerance_s: float = TIME_TOLERANCE_S
    min_events_per_min: float = 1.0
    max_events_per_min: float = 90.0
    max_repeats: int = 4  # the same line this many times in a row is a degenerate loop

    def check(
        self,
        script: Script,
        duration_s: float,
        resolves: Callable[[str], bool],
        shown_s: float | None = None,
    ) -> list[str]:
        """Problems with a clip-relative script of a `duration_s` segment; an empty list means it passes.
        `shown_s`: how much of the segment the video sent actually showed (its proxy's measured length); a
        script is held to that, and a video shorter than its segment is a problem of its own."""
        events = script.events()
        problems: list[str] = []
        if shown_s is not None and shown_s < duration_s - self.time_tolerance_s:
            problems.append(f"the video sent shows {shown_s:.1f}s of the segment's {duration_s:.1f}s")
            duration_s = shown_s
        if not events:
            return [*problems, "the script has no events"]
        # the one rule for answer times (plot answers are held to it at the gateway)
        problems += times_outside(script.clip_times(), duration_s, self.time_tolerance_s)
        previous = 0.0
        for i, event in enumerate(events):
            if event.timestamp + self.time_tolerance_s < previous:
                problems.append(
                    f"event {i + 1} at {event.timestamp:.0f}s goes back in time (after {previous:.0f}s)"
                )
            previous = max(previous, event.timestamp)
        minutes = max(duration_s / 60.0, 0.25)
        density = len(events) / minutes
        if density < self.min_events_per_min:
            problems.append(f"{density:.1f} events/min is below the minimum {self.min_events_per_min}")
        if density > self.max_events_per_min:
            problems.append(f"{density:.1f} events/min is above the maximum {self.max_events_per_min}")
        run, last = 1, None
        for event in events:
            line = (event.character, event.dialogue, event.action)
            run = run + 1 if line == last else 1
            last = line
            if run >= self.max_repeats:
                problems.append(
                    f"the same event repeats {run} times in a row (degenerate loop) near {event.timestamp:.0f}s"
                )
                break
        unknown = sorted(
            {e.character for e in events if CODE_PATTERN.match(e.character) and not resolves(e.character)}
        )
        if unknown:
            problems.append(f"characters not in the profile memory: {', '.join(unknown)}")
        if any(not e.character.strip() for e in events):
            problems.append(f"an event has an empty character (use '{ENVIRONMENT}' for sounds)")
        return problems
