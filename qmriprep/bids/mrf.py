"""The protocol of an MR fingerprinting series (``anat/sub-<l>[_ses-..][_acq-..]_MRF.nii.gz``).

One 4-D image, frames on the 4th axis; its sidecar lists, one value per frame, ``FlipAngle``
(deg, 0-180) and ``RepetitionTimeExcitation`` (s; a single number: the same TR for every
frame; ``RepetitionTime`` is read when ``RepetitionTimeExcitation`` is absent), and gives
``EchoTime`` (s, shorter than every TR) and optionally ``InversionTime`` (s, an inversion before
the first frame). Returned in SI (rad, s) as :class:`~.protocols.MRFProtocol`; every problem is an
:class:`~qmriprep.errors.InputError` naming the sidecar that set the field and the field.
Kept apart from :mod:`.metadata` (module size); :func:`.metadata.build_protocol` calls it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..errors import InputError
from .protocols import MRFProtocol
from .sidecars import Sidecar

#: largest flip angle (deg), longest plausible TR of one MRF frame (s), longest TE (s)
MAX_FLIP, MAX_TR, MAX_TE = 180.0, 1.0, 1.0
#: longest plausible inversion time (s); more looks like milliseconds
MAX_TI = 10.0
#: fewest frames worth matching
MIN_FRAMES = 2


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _list(sc: Sidecar, key: str, n: int | None, *, scalar_ok: bool) -> list[float]:
    """The per-frame list ``key`` (a number repeated when ``scalar_ok``), of length ``n``."""
    v = sc.values.get(key)
    if v is None:
        raise InputError(sc.name, f"{key} is missing (required for MRF: one value per frame)")
    if scalar_ok and _number(v):
        return [float(v)] * (n or 1)
    if not isinstance(v, list) or not v or not all(_number(x) for x in v):
        raise InputError(sc.where(key), f"{key} must be a list of numbers, one per frame "
                         f"(got {str(v)[:60]})")
    if n is not None and len(v) != n:
        raise InputError(sc.where(key), f"{key} has {len(v)} values but the MRF series has {n} "
                         "frames (volumes): one value per frame")
    return [float(x) for x in v]


def _scalar(sc: Sidecar, key: str, *, required: bool, maximum: float) -> float | None:
    v = sc.values.get(key)
    if v is None:
        if required:
            raise InputError(sc.name, f"{key} is missing (required for MRF)")
        return None
    if not _number(v):
        raise InputError(sc.where(key), f"{key} = {v!r} is not a number")
    if not 0 < v <= maximum:
        raise InputError(sc.where(key), f"{key} = {v:g} must be positive" if v <= 0 else
                         f"{key} = {v:g} looks like milliseconds (BIDS wants seconds)")
    return float(v)


def mrf_protocol(scs: Sequence[Sidecar], *, n_volumes: int | None = None) -> MRFProtocol:
    """The checked protocol of one MRF image of ``n_volumes`` frames (None: not checked)."""
    if len(scs) != 1:
        raise InputError(scs[0].name, f"MRF needs one 4-D image; found {len(scs)} images")
    sc = scs[0]
    if n_volumes is not None and n_volumes < MIN_FRAMES:
        raise InputError(sc.name, f"describes an image with {n_volumes} volume: an MRF series is 4-D, one volume per frame")
    fa = _list(sc, "FlipAngle", n_volumes, scalar_ok=False)
    n = len(fa)
    bad = next((a for a in fa if not 0 <= a <= MAX_FLIP), None)
    if bad is not None:
        raise InputError(sc.where("FlipAngle"), f"FlipAngle {bad:g} deg is outside 0-180 deg")
    key = "RepetitionTimeExcitation" if "RepetitionTimeExcitation" in sc.values else "RepetitionTime"
    if key not in sc.values:
        raise InputError(sc.name, "RepetitionTimeExcitation is missing (required for MRF: one TR "
                         "per frame, s)")
    trs = _list(sc, key, n, scalar_ok=True)
    bad = next((t for t in trs if not 0 < t <= MAX_TR), None)
    if bad is not None:
        raise InputError(sc.where(key), f"{key} {bad:g} s " + ("must be positive" if bad <= 0 else
                         "looks like milliseconds (BIDS wants seconds)"))
    te = _scalar(sc, "EchoTime", required=True, maximum=MAX_TE)
    if te >= min(trs):
        raise InputError(sc.where("EchoTime"), f"EchoTime = {te:g} s must be shorter than the "
                         f"shortest {key} ({min(trs):g} s)")
    ti = _scalar(sc, "InversionTime", required=False, maximum=MAX_TI)
    return MRFProtocol(tuple(math.radians(a) for a in fa), tuple(trs), te, ti)
