"""Typed protocols of the qMRI collections, in SI units (s, rad), checked on construction.

Frozen dataclasses built by :func:`qmriprep.bids.metadata.build_protocol`, so nothing
downstream checks units again. Kept apart from the sidecar reading so code that only consumes
a protocol (workflows, tests) needs no BIDS parsing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


def ascending(values: Sequence[float]) -> bool:
    return all(b > a for a, b in zip(values, values[1:]))


@dataclass(frozen=True)
class MultiEchoProtocol:
    """MESE or MEGRE: echo times (s, ascending); TR (s) and excitation angle (rad) if known."""

    echo_times: tuple[float, ...]
    repetition_time: float | None = None
    flip_angle: float | None = None

    def __post_init__(self):
        _check(len(self.echo_times) >= 2 and ascending(self.echo_times)
               and self.echo_times[0] > 0, f"echo times must be >= 2, > 0, ascending: {self.echo_times}")

    @property
    def n_points(self) -> int:
        return len(self.echo_times)


@dataclass(frozen=True)
class VFAProtocol:
    """Variable flip angle SPGR: nominal flip angles (rad, ascending) at one TR (s)."""

    flip_angles: tuple[float, ...]
    tr: float

    def __post_init__(self):
        _check(len(self.flip_angles) >= 2 and ascending(self.flip_angles) and self.tr > 0,
               f"need >= 2 ascending flip angles and TR > 0: {self}")

    @property
    def n_points(self) -> int:
        return len(self.flip_angles)


@dataclass(frozen=True)
class DAMProtocol:
    """Double angle method: nominal angle ``a`` (rad) of the first image; the second is ``2a``."""

    flip_angle: float
    tr: float | None = None

    def __post_init__(self):
        _check(0 < self.flip_angle <= math.pi / 2, f"DAM angle must be in (0, 90] deg: {self}")

    @property
    def flip_angles(self) -> tuple[float, float]:
        return (self.flip_angle, 2 * self.flip_angle)

    n_points = 2


@dataclass(frozen=True)
class AFIProtocol:
    """Actual flip angle imaging: nominal angle (rad) and the two interleaved TRs (s), TR2 > TR1."""

    flip_angle: float
    tr1: float
    tr2: float

    def __post_init__(self):
        _check(self.flip_angle > 0 and 0 < self.tr1 < self.tr2, f"AFI needs TR2 > TR1 > 0: {self}")

    @property
    def n(self) -> float:
        """TR ratio ``TR2 / TR1``."""
        return self.tr2 / self.tr1

    n_points = 2


@dataclass(frozen=True)
class TFLProtocol:
    """Siemens TFL B1 map: nominal flip angle (rad) of the ``acq-famp`` image."""

    flip_angle: float

    def __post_init__(self):
        _check(self.flip_angle > 0, f"TFL angle must be > 0: {self}")

    n_points = 2  # acq-anat, acq-famp


@dataclass(frozen=True)
class B1MapProtocol:
    """Ready-made B1+ map: multiply the stored values by ``scale`` to get B1+ as a fraction."""

    scale: float
    units: str

    n_points = 1


@dataclass(frozen=True)
class BSSFPProtocol:
    """Phase-cycled bSSFP: RF phase increments (rad, one per volume), TR (s), angle (rad)."""

    phase_increments: tuple[float, ...]
    tr: float
    flip_angle: float
    echo_time: float | None = None
    parts: tuple[str, ...] = ("mag",)

    @property
    def n_points(self) -> int:
        return len(self.phase_increments)

    @property
    def te(self) -> float:
        """Echo time (s); without ``EchoTime`` in the sidecar, TR/2 (balanced readout echo)."""
        return self.tr / 2 if self.echo_time is None else self.echo_time


@dataclass(frozen=True)
class DESSProtocol:
    """Double-echo steady state: two echo times (s), TR (s), angle (rad), spoiler (T/m, s)."""

    echo_times: tuple[float, ...]
    tr: float
    flip_angle: float
    spoiler_gradient_amplitude: float | None = None
    spoiler_gradient_duration: float | None = None

    n_points = 2


@dataclass(frozen=True)
class MRFProtocol:
    """MR fingerprinting (FISP): flip angle (rad) and TR (s) of every frame, TE (s), and the
    inversion time (s) before the first frame (None: no inversion)."""

    flip_angles: tuple[float, ...]
    repetition_times: tuple[float, ...]
    echo_time: float
    inversion_time: float | None = None

    def __post_init__(self):
        object.__setattr__(self, "flip_angles", tuple(float(a) for a in self.flip_angles))
        object.__setattr__(self, "repetition_times", tuple(float(t) for t in self.repetition_times))
        _check(len(self.flip_angles) >= 2 and len(self.repetition_times) == len(self.flip_angles),
               f"MRF needs >= 2 frames and one TR per flip angle: {len(self.flip_angles)} angles, "
               f"{len(self.repetition_times)} TRs")
        _check(all(0 <= a <= math.pi for a in self.flip_angles), "MRF flip angles must be in [0, pi]")
        _check(all(t > 0 for t in self.repetition_times) and 0 <= self.echo_time < min(self.repetition_times),
               "MRF needs TR > 0 and 0 <= TE < TR")
        _check(self.inversion_time is None or self.inversion_time > 0, "MRF inversion time must be > 0")

    @property
    def n_points(self) -> int:
        return len(self.flip_angles)


Protocol = Union[MultiEchoProtocol, VFAProtocol, DAMProtocol, AFIProtocol, TFLProtocol,
                 B1MapProtocol, BSSFPProtocol, DESSProtocol, MRFProtocol]
