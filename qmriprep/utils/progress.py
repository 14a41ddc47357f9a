"""Progress lines of long steps (trainings, voxel-chunk fits): few, and visible on the terminal.

Lines go to the logger ``qmriprep.progress`` at level :data:`LEVEL` (25, "IMPORTANT": the level
the command line shows without ``-v``; Nipype's workers are forked and inherit its handler). A
:class:`Progress` writes the first update, then at most one line every :data:`EVERY_S` seconds,
and the last update; so a step shorter than ``EVERY_S`` prints one or two lines, and a long one
one line per ``EVERY_S``. Each line has the elapsed time and an estimate of the time left.
Without a configured handler (library use) nothing is printed (level 25 < WARNING).
"""

from __future__ import annotations

import logging
import math
import time

LOGGER = logging.getLogger("qmriprep.progress")
LEVEL = 25
EVERY_S = 10.0  # seconds between two progress lines of one step (read when a Progress is made)


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``; ``?`` if unknown."""
    if not math.isfinite(seconds):
        return "?"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class Progress:
    """Progress of ``name`` over ``total`` units (epochs, voxels), reported by :meth:`update`."""

    def __init__(self, name: str, total: int, *, unit: str = ""):
        self.name, self.total, self.unit = name, int(total), unit
        self.every_s = EVERY_S
        self.t0 = time.perf_counter()
        self._last = -math.inf

    def update(self, done: int, detail: str = "", *, left_s: float | None = None,
               at_most: bool = False, final: bool = False) -> bool:
        """Report ``done`` units (the first call, ``final``, or ``every_s`` after the last line);
        ``left_s``: the caller's estimate of the time left (default: linear in ``done``), an
        upper bound if ``at_most`` (e.g. until ``max_epochs``, early stopping may end sooner).
        Returns whether a line was written."""
        now = time.perf_counter()
        if not (final or now - self._last >= self.every_s):
            return False
        self._last = now
        elapsed = now - self.t0
        if left_s is None:
            left_s = elapsed * (self.total - done) / done if done > 0 else math.nan
        unit = f" {self.unit}" if self.unit else ""
        detail = f": {detail}" if detail else ""
        left = "" if final else \
            f", {'at most ' if at_most else '~'}{duration(left_s)} left"
        LOGGER.log(LEVEL, "%s %s/%s%s%s (%s elapsed%s)", self.name, f"{done:,}", f"{self.total:,}",
                   unit, detail, duration(elapsed), left)
        return True
