"""Terminal progress bars for long steps (reading slices, meshing, writing).

A :class:`Progress` draws one line on a terminal and nothing at all when it is
disabled: with ``--quiet``, or when its stream is not a TTY (pipes, log files,
tests).  Library functions take ``progress=None`` and then draw nothing.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

#: Width of the bar itself, in characters.
BAR_WIDTH = 30
#: Redraw at most this often, in seconds, so drawing never costs noticeable time.
REDRAW_INTERVAL = 0.1


class Task:
    """One step with a known amount of work, drawn as ``label [#####     ] 42%``.

    Use as a context manager; the line is finished (or cleared) on exit.
    """

    def __init__(self, progress: Progress, label: str, total: float):
        self._progress = progress
        self.label = label
        self.total = float(total) if total else 1.0
        self.done = 0.0
        self._last_draw = 0.0

    def advance(self, amount: float = 1.0) -> None:
        """Record ``amount`` more units of work done."""
        self.update(self.done + amount)

    def update(self, done: float) -> None:
        """Set the amount of work done so far (same units as ``total``)."""
        self.done = min(float(done), self.total)
        now = time.monotonic()
        if now - self._last_draw >= REDRAW_INTERVAL or self.done >= self.total:
            self._last_draw = now
            self._progress._draw(self)

    def set_fraction(self, fraction: float) -> None:
        """Set progress as a fraction in 0..1 (for VTK filters' progress events)."""
        self.update(float(fraction) * self.total)

    def __enter__(self) -> Task:
        self._progress._draw(self)
        return self

    def __exit__(self, kind, value, traceback) -> None:
        self._progress._finish(self, completed=kind is None)


class Progress:
    """Progress bars on ``stream`` (stderr by default).

    Parameters
    ----------
    enabled:
        Draw at all.  ``None`` (default) draws only when ``stream`` is a terminal.
    stream:
        Where to draw; stderr keeps stdout clean for results.
    """

    def __init__(self, enabled: bool | None = None, stream: TextIO | None = None):
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled

    def task(self, label: str, total: float = 1.0) -> Task:
        """A new step of ``total`` units; use it in a ``with`` block."""
        return Task(self, label, total)

    def _draw(self, task: Task) -> None:
        if not self.enabled:
            return
        fraction = task.done / task.total
        filled = int(round(fraction * BAR_WIDTH))
        bar = "#" * filled + " " * (BAR_WIDTH - filled)
        self.stream.write(f"\r{task.label:<24.24} [{bar}] {fraction:4.0%}")
        self.stream.flush()

    def _finish(self, task: Task, completed: bool) -> None:
        if not self.enabled:
            return
        if completed:
            task.done = task.total
            self._draw(task)
            self.stream.write("\n")
        else:
            self.stream.write("\r" + " " * (BAR_WIDTH + 32) + "\r")
        self.stream.flush()


def task(progress: Progress | None, label: str, total: float = 1.0) -> Task:
    """``progress.task(...)``, or a task that draws nothing when ``progress`` is None."""
    return (progress or _SILENT).task(label, total)


_SILENT = Progress(enabled=False)


def observe_vtk(algorithm, current: Task) -> int:
    """Forward a VTK algorithm's progress events to ``current``; returns the observer id."""
    return algorithm.AddObserver(
        "ProgressEvent", lambda caller, _event: current.set_fraction(caller.GetProgress())
    )
