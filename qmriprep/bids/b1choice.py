"""Which B1+ map would correct a flip-angle-dependent collection by default, and why.

:func:`choose_b1` ranks the candidates (IntendedFor, then session and acquisition time, then
kind); :mod:`.plan` applies the user's ``--b1-source`` on top and records the decision.
"""

from __future__ import annotations

import logging
import re
from .collection import Collection
from .metadata import B1_KINDS

LOGGER = logging.getLogger(__name__)

def _intended_for(c: Collection) -> dict[str, str]:
    """Targets (paths relative to the root) named by the IntendedFor of ``c``, with the source."""
    out = {}
    for sc in c.sidecars:
        value = sc.values.get("IntendedFor")
        for v in [value] if isinstance(value, str) else list(value or []):
            if not isinstance(v, str):
                continue
            if v.startswith("bids::"):
                out[v[len("bids::"):].lstrip("/")] = sc.where("IntendedFor")
            elif v.startswith("bids:"):
                LOGGER.info("%s: IntendedFor %r names another dataset; ignored", sc.where("IntendedFor"), v)
            else:
                out[f"sub-{c.subject}/{v.lstrip('/')}"] = sc.where("IntendedFor")
    return out


def _acq_time(c: Collection) -> float | None:
    """AcquisitionTime of the first image in seconds of the day (``hh:mm:ss[.f]``)."""
    value = c.metadata[0].get("AcquisitionTime") if c.metadata else None
    m = re.fullmatch(r"(\d{1,2}):?(\d{2}):?(\d{2}(?:\.\d*)?)", str(value or "").strip())
    return None if m is None else 3600 * int(m[1]) + 60 * int(m[2]) + float(m[3])


def choose_b1(target: Collection, b1s: list[Collection]) -> tuple[Collection | None, str]:
    """The B1+ collection that corrects ``target`` and why.

    ``IntendedFor`` naming one of the target's files wins; otherwise the only B1+ map of the
    same subject and session, or the one nearest in AcquisitionTime (when every candidate has
    one), or the preferred kind ``TB1map > TB1TFL > TB1AFI > TB1DAM``.
    """
    pref = {k: i for i, k in enumerate(B1_KINDS)}
    order = " > ".join(B1_KINDS)
    mine = set(target.relpaths())
    claims = []
    for c in b1s:
        hits = [(t, src) for t, src in _intended_for(c).items() if t in mine]
        if hits:
            claims.append((pref[c.kind], c.name, c, hits[0]))
    if claims:
        claims.sort(key=lambda x: x[:2])
        _, _, best, (target_file, src) = claims[0]
        reason = f"IntendedFor in {src} names {target_file}"
        if len(claims) > 1:
            reason += f"; {len(claims)} B1+ maps name it, chose the preferred kind ({order})"
        return best, reason
    where = f"sub-{target.subject}" + (f" ses-{target.session}" if target.session else "")
    same = [c for c in b1s if c.subject == target.subject and c.session == target.session]
    if not same:
        return None, f"no B1+ map in {where}: nominal flip angles are used (no B1+ correction)"
    if len(same) == 1:
        return same[0], f"the only B1+ map in {where} (no IntendedFor names this collection)"
    t0 = _acq_time(target)
    times = [_acq_time(c) for c in same]
    if t0 is not None and None not in times:
        dt, _, _, best = min((abs(t - t0), pref[c.kind], c.name, c) for c, t in zip(same, times))
        return best, (f"nearest in AcquisitionTime ({dt:.0f} s apart) of {len(same)} B1+ maps "
                      f"in {where}")
    best = min(same, key=lambda c: (pref[c.kind], c.name))
    return best, (f"preferred kind ({order}) of {len(same)} B1+ maps in {where}; "
                  "set IntendedFor to choose another")
