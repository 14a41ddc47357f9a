"""Protocol of each qMRI collection, read from its BIDS sidecars and checked once.

BIDS gives times in seconds and flip angles and RF phase increments in degrees; this module
turns them into SI (s, rad) exactly once and returns a small frozen dataclass per protocol, so
nothing downstream checks units again. Every problem is an :class:`~qmriprep.errors.InputError`
naming the sidecar (the one that set the field when it was inherited) and the field, e.g.
``sub-01/anat/sub-01_echo-2_MESE.json: EchoTime is missing (required for MESE)``.

The builders are pure: they take :class:`Sidecar` records (merged metadata of one image,
already ordered along the series) and return a protocol. :func:`resolve_sidecar` applies the
BIDS inheritance principle by itself, for files pybids does not index and to name where an
inherited value came from.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from ..errors import InputError

#: every collection kind qmriprep recognises, in report order
KINDS = ("MESE", "MEGRE", "VFA", "TB1map", "TB1TFL", "TB1AFI", "TB1DAM", "bSSFP", "DESS", "kspace")
#: kinds with a processing workflow today; the others are "found, not yet processed"
SUPPORTED = frozenset({"MESE", "MEGRE", "VFA", "TB1map", "TB1TFL", "TB1AFI", "TB1DAM"})
#: B1+ map kinds, in order of preference when several could correct one collection
B1_KINDS = ("TB1map", "TB1TFL", "TB1AFI", "TB1DAM")

#: required sidecar fields per kind ("A|B": A, else B); documented in the README and the report
REQUIRED_FIELDS = {
    "MESE": ("EchoTime",),
    "MEGRE": ("EchoTime",),
    "VFA": ("FlipAngle", "RepetitionTimeExcitation|RepetitionTime"),
    "TB1DAM": ("FlipAngle",),
    "TB1AFI": ("FlipAngle", "RepetitionTimeExcitation|RepetitionTime"),
    "TB1TFL": ("FlipAngle",),
    "TB1map": ("Units",),
    "bSSFP": ("FlipAngle", "RepetitionTimeExcitation|RepetitionTime", "RFPhaseIncrement"),
    "DESS": ("EchoTime", "FlipAngle", "RepetitionTimeExcitation|RepetitionTime"),
}

#: longest plausible echo time (s); larger values are milliseconds written as seconds
MAX_ECHO_TIME = 1.0
#: longest plausible TR of a spoiled/balanced gradient echo (VFA, AFI, bSSFP, DESS), s
MAX_GRE_TR = 1.0
#: longest plausible TR of anything (MESE, DAM), s
MAX_TR = 100.0
#: relative tolerance for "the second DAM angle is twice the first"
DAM_TOLERANCE = 0.02
#: TB1map ``Units`` read as percent (scale 0.01) and as a fraction (scale 1)
PERCENT_UNITS = frozenset({"percent", "%", "pct", "percentage"})
FRACTION_UNITS = frozenset({"fraction", "ratio", "relative", "1", "unitless", "a.u.", "au",
                            "arbitrary", "arbitrary units", "none", "n/a"})


@dataclass(frozen=True)
class Sidecar:
    """Merged metadata of one image and where it came from.

    ``name`` is the image's own sidecar path relative to the dataset root (named in errors even
    when it does not exist); ``origins`` maps a field to the JSON file that set it.
    """

    name: str
    values: Mapping[str, Any]
    entities: Mapping[str, Any] = field(default_factory=dict)
    origins: Mapping[str, str] = field(default_factory=dict)

    def where(self, key: str) -> str:
        return self.origins.get(key, self.name)


# --------------------------------------------------------------------------------- protocols
def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


def _ascending(values: Sequence[float]) -> bool:
    return all(b > a for a, b in zip(values, values[1:]))


@dataclass(frozen=True)
class MultiEchoProtocol:
    """MESE or MEGRE: echo times (s, ascending); TR (s) and excitation angle (rad) if known."""

    echo_times: tuple[float, ...]
    repetition_time: float | None = None
    flip_angle: float | None = None

    def __post_init__(self):
        _check(len(self.echo_times) >= 2 and _ascending(self.echo_times)
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
        _check(len(self.flip_angles) >= 2 and _ascending(self.flip_angles) and self.tr > 0,
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


@dataclass(frozen=True)
class DESSProtocol:
    """Double-echo steady state: two echo times (s), TR (s), angle (rad), spoiler (T/m, s)."""

    echo_times: tuple[float, ...]
    tr: float
    flip_angle: float
    spoiler_gradient_amplitude: float | None = None
    spoiler_gradient_duration: float | None = None

    n_points = 2


Protocol = Union[MultiEchoProtocol, VFAProtocol, DAMProtocol, AFIProtocol, TFLProtocol,
                 B1MapProtocol, BSSFPProtocol, DESSProtocol]


# ----------------------------------------------------------------------------- field access
def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _raw(sc: Sidecar, key: str, kind: str, required: bool = True) -> Any:
    v = sc.values.get(key)
    if v is None and required:
        raise InputError(sc.name, f"{key} is missing (required for {kind})")
    return v


def _number(sc: Sidecar, key: str, kind: str, *, required: bool = True,
            maximum: float | None = None, unit: str = "s") -> float | None:
    """A positive finite number; ``maximum`` flags values that look like the wrong unit."""
    v = _raw(sc, key, kind, required)
    if v is None:
        return None
    if not _is_number(v):
        raise InputError(sc.where(key), f"{key} = {v!r} is not a number")
    _positive_bounded(float(v), sc, key, maximum, unit)
    return float(v)


def _positive_bounded(v: float, sc: Sidecar, key: str, maximum: float | None, unit: str) -> None:
    if v <= 0:
        raise InputError(sc.where(key), f"{key} = {v:g} must be positive")
    if maximum is not None and v > maximum:
        hint = ("looks like milliseconds (BIDS wants seconds)" if unit == "s"
                else f"is above {maximum:g} {unit}")
        raise InputError(sc.where(key), f"{key} = {v:g} {hint}")


def _series(scs: Sequence[Sidecar], key: str, kind: str, *, maximum: float | None = None,
            unit: str = "s") -> list[tuple[float, Sidecar]]:
    """One value per image, or the list of a single image holding the whole series (4-D)."""
    if len(scs) == 1 and isinstance(scs[0].values.get(key), list):
        sc = scs[0]
        vals = sc.values[key]
        if not vals or not all(_is_number(v) for v in vals):
            raise InputError(sc.where(key), f"{key} = {vals!r} is not a list of numbers")
        for v in vals:
            _positive_bounded(float(v), sc, key, maximum, unit)
        return [(float(v), sc) for v in vals]
    return [(_number(sc, key, kind, maximum=maximum, unit=unit), sc) for sc in scs]


def _flip(sc: Sidecar, kind: str, key: str = "FlipAngle") -> float:
    """A flip angle in degrees, checked to lie in (0, 180], returned in radians."""
    return math.radians(_number(sc, key, kind, maximum=180.0, unit="deg"))


def _no_duplicates(pairs: list[tuple[float, Sidecar]], key: str) -> None:
    seen: dict[float, Sidecar] = {}
    for v, sc in pairs:
        for u, first in seen.items():
            if math.isclose(u, v, rel_tol=1e-6):
                raise InputError(sc.where(key), f"{key} = {v:g} is duplicated "
                                 f"(also in {first.where(key)})")
        seen[v] = sc


def _common(scs: Sequence[Sidecar], keys: Sequence[str], kind: str, *, required: bool = True,
            maximum: float | None = None, unit: str = "s") -> float | None:
    """A value the series shares (TR, flip angle): the first of ``keys`` any image has; the
    images that give it must agree (an image without it takes the others' value)."""
    key = next((k for k in keys if any(sc.values.get(k) is not None for sc in scs)), None)
    if key is None:
        if required:
            raise InputError(scs[0].name, f"{' or '.join(keys)} is missing (required for {kind})")
        return None
    vals = [(_number(sc, key, kind, maximum=maximum, unit=unit), sc) for sc in scs
            if sc.values.get(key) is not None]
    v0, sc0 = vals[0]
    for v, sc in vals[1:]:
        if not math.isclose(v, v0, rel_tol=1e-4):
            raise InputError(sc.where(key), f"{key} = {v:g} contradicts {key} = {v0:g} in "
                             f"{sc0.where(key)} (must be the same across the {kind} series)")
    return v0


def _in_order(pairs: list[tuple[float, Sidecar]], key: str) -> tuple[float, ...]:
    """Values in series order, which must ascend (files are sorted; a 4-D list must be too)."""
    vals = tuple(v for v, _ in pairs)
    if not _ascending(vals):
        raise InputError(pairs[0][1].where(key), f"{key} values {list(vals)} must be ascending "
                         "(one per volume, in volume order)")
    return vals


def _count(scs: Sequence[Sidecar], n: int, kind: str, what: str) -> None:
    if len(scs) != n:
        raise InputError(scs[0].name if scs else None,
                         f"{kind} needs {n} images ({what}); found {len(scs)}: "
                         + ", ".join(Path(sc.name).stem for sc in scs))


# -------------------------------------------------------------------------------- builders
def multiecho_protocol(scs: Sequence[Sidecar], kind: str = "MESE") -> MultiEchoProtocol:
    """Echo times of a MESE/MEGRE series (images ordered by echo time)."""
    pairs = _series(scs, "EchoTime", kind, maximum=MAX_ECHO_TIME)
    if len(pairs) < 2:
        raise InputError(scs[0].name, f"{kind} needs at least 2 echoes; found 1")
    _no_duplicates(pairs, "EchoTime")
    tr = _common(scs, ("RepetitionTimeExcitation", "RepetitionTime"), kind, required=False,
                 maximum=MAX_TR)
    fa = _common(scs, ("FlipAngle",), kind, required=False, maximum=180.0, unit="deg")
    return MultiEchoProtocol(_in_order(pairs, "EchoTime"), tr,
                             None if fa is None else math.radians(fa))


def vfa_protocol(scs: Sequence[Sidecar]) -> VFAProtocol:
    """Flip angles (rad) and the shared TR (RepetitionTimeExcitation, else RepetitionTime)."""
    pairs = _series(scs, "FlipAngle", "VFA", maximum=180.0, unit="deg")
    if len(pairs) < 2:
        raise InputError(scs[0].name, "VFA needs at least 2 flip angles; found 1")
    _no_duplicates(pairs, "FlipAngle")
    tr = _common(scs, ("RepetitionTimeExcitation", "RepetitionTime"), "VFA", maximum=MAX_GRE_TR)
    return VFAProtocol(tuple(math.radians(v) for v in _in_order(pairs, "FlipAngle")), tr)


def dam_protocol(scs: Sequence[Sidecar]) -> DAMProtocol:
    """Two images at ``a`` and ``2a`` (ordered by angle)."""
    _count(scs, 2, "TB1DAM", "flip-1 at a and flip-2 at 2a")
    a1, a2 = (_flip(sc, "TB1DAM") for sc in scs)
    if not math.isclose(a2, 2 * a1, rel_tol=DAM_TOLERANCE):
        raise InputError(scs[1].where("FlipAngle"),
                         f"FlipAngle = {math.degrees(a2):g} deg must be twice the FlipAngle "
                         f"{math.degrees(a1):g} deg of {scs[0].where('FlipAngle')} (double angle method)")
    if a1 > math.pi / 2:
        raise InputError(scs[0].where("FlipAngle"),
                         f"FlipAngle = {math.degrees(a1):g} deg: DAM needs a <= 90 deg")
    tr = _common(scs, ("RepetitionTimeExcitation", "RepetitionTime"), "TB1DAM",
                 required=False, maximum=MAX_TR)
    return DAMProtocol(a1, tr)


def afi_protocol(scs: Sequence[Sidecar]) -> AFIProtocol:
    """Images ordered (acq-tr1, acq-tr2); TR2 > TR1 and one flip angle."""
    _count(scs, 2, "TB1AFI", "acq-tr1 and acq-tr2")
    trs = []
    for sc in scs:
        key = ("RepetitionTimeExcitation" if sc.values.get("RepetitionTimeExcitation") is not None
               else "RepetitionTime")
        trs.append((_number(sc, key, "TB1AFI", maximum=MAX_GRE_TR), key))
    (tr1, _), (tr2, key2) = trs
    if not tr2 > tr1:
        raise InputError(scs[1].where(key2), f"{key2} = {tr2:g} of acq-tr2 must be longer than "
                         f"{tr1:g} of acq-tr1 ({scs[0].where(trs[0][1])})")
    fa = _common(scs, ("FlipAngle",), "TB1AFI", maximum=180.0, unit="deg")
    return AFIProtocol(math.radians(fa), tr1, tr2)


def tfl_protocol(scs: Sequence[Sidecar]) -> TFLProtocol:
    """Images ordered (acq-anat, acq-famp); the nominal angle is the famp sidecar's FlipAngle."""
    _count(scs, 2, "TB1TFL", "acq-anat and acq-famp")
    return TFLProtocol(_flip(scs[1], "TB1TFL"))


def b1map_protocol(scs: Sequence[Sidecar]) -> B1MapProtocol:
    """Scale of a ready-made TB1map from its ``Units``: percent -> 0.01, fraction-like -> 1."""
    _count(scs, 1, "TB1map", "one map")
    sc = scs[0]
    units = _raw(sc, "Units", "TB1map")
    u = str(units).strip().lower()
    if u in PERCENT_UNITS:
        return B1MapProtocol(0.01, str(units))
    if u in FRACTION_UNITS:
        return B1MapProtocol(1.0, str(units))
    raise InputError(sc.where("Units"), f"Units = {units!r} is not supported for TB1map "
                     "(expected 'percent' or a fraction such as 'fraction' or 'a.u.')")


def bssfp_protocol(scs: Sequence[Sidecar], *, n_volumes: int | None = None) -> BSSFPProtocol:
    """Phase-cycled bSSFP parts (mag/phase or real/imag) sharing one protocol."""
    sc = scs[0]
    incs = _raw(sc, "RFPhaseIncrement", "bSSFP")
    if not isinstance(incs, list) or not incs or not all(
            _is_number(v) and not isinstance(v, bool) for v in incs):
        raise InputError(sc.where("RFPhaseIncrement"),
                         f"RFPhaseIncrement = {incs!r} must be a list of numbers (deg), one per volume")
    if n_volumes is not None and len(incs) != n_volumes:
        raise InputError(sc.where("RFPhaseIncrement"), f"RFPhaseIncrement has {len(incs)} values "
                         f"but the image has {n_volumes} volumes")
    for other in scs[1:]:
        if other.values.get("RFPhaseIncrement") != incs:
            raise InputError(other.where("RFPhaseIncrement"),
                             f"RFPhaseIncrement differs from {sc.where('RFPhaseIncrement')}")
    tr = _common(scs, ("RepetitionTimeExcitation", "RepetitionTime"), "bSSFP", maximum=MAX_GRE_TR)
    fa = _common(scs, ("FlipAngle",), "bSSFP", maximum=180.0, unit="deg")
    te = _common(scs, ("EchoTime",), "bSSFP", required=False, maximum=MAX_ECHO_TIME)
    parts = tuple(str(s.entities.get("part", "mag")) for s in scs)
    return BSSFPProtocol(tuple(math.radians(v) for v in incs), tr, math.radians(fa), te, parts)


def dess_protocol(scs: Sequence[Sidecar]) -> DESSProtocol:
    """Two DESS echoes (ordered by echo time) with TR, angle and, if given, the spoiler."""
    _count(scs, 2, "DESS", "echo-1 and echo-2")
    pairs = _series(scs, "EchoTime", "DESS", maximum=MAX_ECHO_TIME)
    _no_duplicates(pairs, "EchoTime")
    tr = _common(scs, ("RepetitionTimeExcitation", "RepetitionTime"), "DESS", maximum=MAX_GRE_TR)
    fa = _common(scs, ("FlipAngle",), "DESS", maximum=180.0, unit="deg")
    amp = _common(scs, ("SpoilerGradientAmplitude",), "DESS", required=False, unit="T/m")
    dur = _common(scs, ("SpoilerGradientDuration",), "DESS", required=False, maximum=MAX_ECHO_TIME)
    return DESSProtocol(_in_order(pairs, "EchoTime"), tr, math.radians(fa), amp, dur)


def build_protocol(kind: str, sidecars: Sequence[Sidecar], *, n_volumes: int | None = None
                   ) -> Protocol | None:
    """The checked protocol of a collection of ``kind`` (``None`` for raw k-space)."""
    if kind in ("MESE", "MEGRE"):
        return multiecho_protocol(sidecars, kind)
    if kind == "bSSFP":
        return bssfp_protocol(sidecars, n_volumes=n_volumes)
    builders = {"VFA": vfa_protocol, "TB1DAM": dam_protocol, "TB1AFI": afi_protocol,
                "TB1TFL": tfl_protocol, "TB1map": b1map_protocol, "DESS": dess_protocol}
    if kind == "kspace":
        return None
    if kind not in builders:
        raise ValueError(f"unknown collection kind {kind!r}")
    return builders[kind](sidecars)


def describe_protocol(protocol: Protocol | None) -> str:
    """One line in the units people read (ms, deg)."""
    def ms(vals):
        return ", ".join(f"{1e3 * v:.4g}" for v in vals) + " ms"

    def deg(vals):
        return ", ".join(f"{math.degrees(v):.4g}" for v in vals) + " deg"

    p = protocol
    if p is None:
        return "no protocol"
    if isinstance(p, MultiEchoProtocol):
        return f"{p.n_points} echoes, TE = {ms(p.echo_times)}"
    if isinstance(p, VFAProtocol):
        return f"{p.n_points} flip angles = {deg(p.flip_angles)}, TR = {ms([p.tr])}"
    if isinstance(p, DAMProtocol):
        return f"flip angles {deg(p.flip_angles)}"
    if isinstance(p, AFIProtocol):
        return f"flip angle {deg([p.flip_angle])}, TR1/TR2 = {ms([p.tr1, p.tr2])} (n = {p.n:.3g})"
    if isinstance(p, TFLProtocol):
        return f"nominal flip angle {deg([p.flip_angle])}"
    if isinstance(p, B1MapProtocol):
        return f"Units {p.units!r} (x{p.scale:g} to a fraction)"
    if isinstance(p, BSSFPProtocol):
        return (f"{p.n_points} phase cycles ({deg(p.phase_increments)}), TR = {ms([p.tr])}, "
                f"flip angle {deg([p.flip_angle])}, parts {'/'.join(p.parts)}")
    if isinstance(p, DESSProtocol):
        return f"TE = {ms(p.echo_times)}, TR = {ms([p.tr])}, flip angle {deg([p.flip_angle])}"
    return repr(p)


# ----------------------------------------------------------------------------- inheritance
def parse_name(name: str) -> tuple[dict[str, str], str]:
    """Short entities (``{"sub": "01", "acq": "x"}``) and suffix of a BIDS file name."""
    stem = name.split(".", 1)[0]
    parts = stem.split("_")
    ents = dict(p.split("-", 1) for p in parts[:-1] if "-" in p)
    return ents, parts[-1]


def read_json(path: Path, root: Path | None = None) -> dict:
    """A JSON object from ``path``; an InputError naming the file otherwise."""
    name = _rel(path, root)
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(name, f"cannot be read ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise InputError(name, f"is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise InputError(name, "is not a JSON object")
    return data


def _rel(path: Path, root: Path | None) -> str:
    path = Path(path)
    if root is not None:
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            pass
    return str(path)


def sidecar_name(image: Path, root: Path | None = None) -> str:
    """The image's own sidecar path, relative to ``root``."""
    image = Path(image)
    return _rel(image.with_name(image.name.split(".", 1)[0] + ".json"), root)


def resolve_sidecar(root: str | Path, image: str | Path) -> tuple[dict, dict[str, str]]:
    """Metadata of ``image`` by the BIDS inheritance principle, and each field's source.

    Every JSON on the path from ``root`` down to the image's folder whose suffix matches and
    whose entities are a subset of the image's applies; deeper and more specific files win.
    Returns ``(values, origins)`` with ``origins[field]`` the source path relative to ``root``.
    """
    root, image = Path(root), Path(image)
    ents, suffix = parse_name(image.name)
    rel_parts = image.parent.relative_to(root).parts
    values: dict = {}
    origins: dict[str, str] = {}
    for depth in range(len(rel_parts) + 1):
        level = root.joinpath(*rel_parts[:depth])
        found = []
        for js in level.glob(f"*{suffix}.json"):
            jents, jsuffix = parse_name(js.name)
            if jsuffix == suffix and all(ents.get(k) == v for k, v in jents.items()):
                found.append((len(jents), js.name, js))
        for _, _, js in sorted(found):
            data = read_json(js, root)
            values.update(data)
            origins.update(dict.fromkeys(data, _rel(js, root)))
    return values, origins
