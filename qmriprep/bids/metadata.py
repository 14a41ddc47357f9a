"""Protocol of each qMRI collection, read from its BIDS sidecars and checked once.

BIDS gives times in seconds and flip angles and RF phase increments in degrees; this module
turns them into SI (s, rad) exactly once and returns a protocol from :mod:`.protocols`, so
nothing downstream checks units again. Every problem is an :class:`~qmriprep.errors.InputError`
naming the sidecar (the one that set the field when it was inherited) and the field, e.g.
``sub-01/anat/sub-01_echo-2_MESE.json: EchoTime is missing (required for MESE)``.

The builders are pure: they take :class:`~.sidecars.Sidecar` records (merged metadata of one
image, already ordered along the series) and return a protocol. Sidecar reading and the
protocol classes live in :mod:`.sidecars` and :mod:`.protocols` (module size); they are
re-exported here because ``metadata`` was their public home.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError
from .mrf import mrf_protocol
from .protocols import (  # noqa: F401  (re-exported: public home before the split)
    AFIProtocol,
    B1MapProtocol,
    BSSFPProtocol,
    DAMProtocol,
    DESSProtocol,
    MRFProtocol,
    MultiEchoProtocol,
    Protocol,
    TFLProtocol,
    VFAProtocol,
    ascending,
)
from .sidecars import (  # noqa: F401  (re-exported: public home before the split)
    Sidecar,
    parse_name,
    read_json,
    resolve_sidecar,
    sidecar_name,
)

#: every collection kind qmriprep recognises, in report order
KINDS = ("MESE", "MEGRE", "VFA", "TB1map", "TB1TFL", "TB1AFI", "TB1DAM", "bSSFP", "DESS", "MRF",
         "kspace")
#: kinds with a processing workflow today; the others are "found, not yet processed"
SUPPORTED = frozenset({"MESE", "MEGRE", "VFA", "TB1map", "TB1TFL", "TB1AFI", "TB1DAM", "bSSFP", "DESS",
                       "MRF", "kspace"})
#: B1+ map kinds, in order of preference when several could correct one collection
B1_KINDS = ("TB1map", "TB1TFL", "TB1AFI", "TB1DAM")

#: required sidecar fields per kind ("A|B": A, else B), as the builders below enforce them
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
    "MRF": ("FlipAngle", "RepetitionTimeExcitation|RepetitionTime", "EchoTime"),
}
#: where a TR is read from, in order of preference
TR_KEYS = ("RepetitionTimeExcitation", "RepetitionTime")

#: longest plausible echo time (s); larger values are milliseconds written as seconds
MAX_ECHO_TIME = 1.0
#: longest plausible TR of a spoiled/balanced gradient echo (VFA, AFI, bSSFP, DESS), s
MAX_GRE_TR = 1.0
#: longest plausible TR of anything (MESE, DAM), s
MAX_TR = 100.0
#: largest flip angle (deg)
MAX_FLIP = 180.0
#: smallest plausible flip angle of one excitation (deg); below: radians written as degrees
MIN_FLIP = 1.0
#: relative tolerance for "the second DAM angle is twice the first"
DAM_TOLERANCE = 0.02
#: TB1map ``Units`` read as percent (scale 0.01) and as a fraction (scale 1)
PERCENT_UNITS = frozenset({"percent", "%", "pct", "percentage"})
FRACTION_UNITS = frozenset({"fraction", "ratio", "relative", "1", "unitless", "a.u.", "au",
                            "arbitrary", "arbitrary units", "none", "n/a"})


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


def _flip(sc: Sidecar, kind: str) -> float:
    """A flip angle in degrees, checked to lie in [1, 180], returned in radians."""
    value = _number(sc, "FlipAngle", kind, maximum=MAX_FLIP, unit="deg")
    _not_radians(value, sc)
    return math.radians(value)


def _not_radians(value: float, sc: Sidecar) -> None:
    """No excitation is below 1 deg: such a FlipAngle is radians written as degrees."""
    if value < MIN_FLIP:
        raise InputError(sc.where("FlipAngle"), f"FlipAngle = {value:g} looks like radians "
                         f"(BIDS wants degrees; {value:g} rad = {math.degrees(value):.3g} deg)")


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


def _tr(scs: Sequence[Sidecar], kind: str, *, required: bool = True,
        maximum: float = MAX_GRE_TR) -> float | None:
    """The shared TR: RepetitionTimeExcitation, else RepetitionTime (BIDS keeps both)."""
    return _common(scs, TR_KEYS, kind, required=required, maximum=maximum)


def _common_flip(scs: Sequence[Sidecar], kind: str, *, required: bool = True) -> float | None:
    """The shared flip angle in radians (degrees in the sidecar)."""
    fa = _common(scs, ("FlipAngle",), kind, required=required, maximum=MAX_FLIP, unit="deg")
    if fa is not None:
        _not_radians(fa, next(sc for sc in scs if sc.values.get("FlipAngle") is not None))
    return None if fa is None else math.radians(fa)


def _in_order(pairs: list[tuple[float, Sidecar]], key: str) -> tuple[float, ...]:
    """Values in series order, which must ascend (files are sorted; a 4-D list must be too)."""
    vals = tuple(v for v, _ in pairs)
    if not ascending(vals):
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
    tr = _tr(scs, kind, required=False, maximum=MAX_TR)
    fa = _common_flip(scs, kind, required=False)
    return MultiEchoProtocol(_in_order(pairs, "EchoTime"), tr, fa)


def vfa_protocol(scs: Sequence[Sidecar]) -> VFAProtocol:
    """Flip angles (rad) and the shared TR (RepetitionTimeExcitation, else RepetitionTime)."""
    pairs = _series(scs, "FlipAngle", "VFA", maximum=MAX_FLIP, unit="deg")
    for value, sc in pairs:
        _not_radians(value, sc)
    if len(pairs) < 2:
        raise InputError(scs[0].name, "VFA needs at least 2 flip angles; found 1")
    _no_duplicates(pairs, "FlipAngle")
    tr = _tr(scs, "VFA")
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
    return DAMProtocol(a1, _tr(scs, "TB1DAM", required=False, maximum=MAX_TR))


def afi_protocol(scs: Sequence[Sidecar]) -> AFIProtocol:
    """Images ordered (acq-tr1, acq-tr2); TR2 > TR1 and one flip angle."""
    _count(scs, 2, "TB1AFI", "acq-tr1 and acq-tr2")
    trs = []
    for sc in scs:
        key = next((k for k in TR_KEYS if sc.values.get(k) is not None), TR_KEYS[-1])
        trs.append((_number(sc, key, "TB1AFI", maximum=MAX_GRE_TR), key))
    (tr1, _), (tr2, key2) = trs
    if not tr2 > tr1:
        raise InputError(scs[1].where(key2), f"{key2} = {tr2:g} of acq-tr2 must be longer than "
                         f"{tr1:g} of acq-tr1 ({scs[0].where(trs[0][1])})")
    return AFIProtocol(_common_flip(scs, "TB1AFI"), tr1, tr2)


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
    if not isinstance(incs, list) or not incs or not all(_is_number(v) for v in incs):
        raise InputError(sc.where("RFPhaseIncrement"),
                         f"RFPhaseIncrement = {incs!r} must be a list of numbers (deg), one per volume")
    if len(incs) < 4:
        raise InputError(sc.where("RFPhaseIncrement"), f"RFPhaseIncrement has {len(incs)} values: "
                         "pc-bSSFP relaxometry needs at least 4 phase cycles")
    if n_volumes is not None and len(incs) != n_volumes:
        raise InputError(sc.where("RFPhaseIncrement"), f"RFPhaseIncrement has {len(incs)} values "
                         f"but the image has {n_volumes} volumes")
    for other in scs[1:]:
        if other.values.get("RFPhaseIncrement") != incs:
            raise InputError(other.where("RFPhaseIncrement"),
                             f"RFPhaseIncrement differs from {sc.where('RFPhaseIncrement')}")
    tr = _tr(scs, "bSSFP")
    fa = _common_flip(scs, "bSSFP")
    te = _common(scs, ("EchoTime",), "bSSFP", required=False, maximum=MAX_ECHO_TIME)
    parts = tuple(str(s.entities.get("part", "mag")) for s in scs)
    return BSSFPProtocol(tuple(math.radians(v) for v in incs), tr, fa, te, parts)


def dess_protocol(scs: Sequence[Sidecar]) -> DESSProtocol:
    """Two DESS echoes (ordered by echo time) with TR, angle and, if given, the spoiler."""
    _count(scs, 2, "DESS", "echo-1 and echo-2")
    pairs = _series(scs, "EchoTime", "DESS", maximum=MAX_ECHO_TIME)
    _no_duplicates(pairs, "EchoTime")
    tr = _tr(scs, "DESS")
    fa = _common_flip(scs, "DESS")
    amp = _common(scs, ("SpoilerGradientAmplitude",), "DESS", required=False, unit="T/m")
    dur = _common(scs, ("SpoilerGradientDuration",), "DESS", required=False, maximum=MAX_ECHO_TIME)
    return DESSProtocol(_in_order(pairs, "EchoTime"), tr, fa, amp, dur)


def build_protocol(kind: str, sidecars: Sequence[Sidecar], *, n_volumes: int | None = None
                   ) -> Protocol | None:
    """The checked protocol of a collection of ``kind`` (``None`` for raw k-space)."""
    if kind == "kspace":
        return None
    if kind in ("MESE", "MEGRE"):
        return multiecho_protocol(sidecars, kind)
    if kind == "bSSFP":
        return bssfp_protocol(sidecars, n_volumes=n_volumes)
    if kind == "MRF":
        return mrf_protocol(sidecars, n_volumes=n_volumes)
    builders = {"VFA": vfa_protocol, "TB1DAM": dam_protocol, "TB1AFI": afi_protocol,
                "TB1TFL": tfl_protocol, "TB1map": b1map_protocol, "DESS": dess_protocol}
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
    if hasattr(p, "describe"):  # protocols that describe themselves (bids.weighted)
        return p.describe()
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
    if isinstance(p, MRFProtocol):
        return (f"{p.n_points} frames, flip angles {deg([min(p.flip_angles), max(p.flip_angles)])} "
                f"(range), TR {ms([min(p.repetition_times), max(p.repetition_times)])} (range), "
                f"TE = {ms([p.echo_time])}"
                + ("" if p.inversion_time is None else f", inversion TI = {ms([p.inversion_time])}"))
    return repr(p)
