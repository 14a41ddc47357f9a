"""Spoiled gradient echo (SPGR / FLASH) steady state, used by variable flip angle T1 mapping.

``S = M0 sin(a') (1 - E1) / (1 - E1 cos a')``, ``E1 = exp(-TR/T1)``, ``a' = B1 a``
(Fram et al. 1987, Magn Reson Imaging 5:201; Deoni et al. 2003, MRM 49:515).
"""

from __future__ import annotations

from . import xp


def spgr(m0, t1, flip_angle, tr, b1=1.0):
    """SPGR signal; inputs broadcast (T1, TR in s, flip angle in rad, B1 a fraction)."""
    ns = xp(m0, t1, flip_angle, tr, b1)
    a = b1 * flip_angle
    e1 = ns.exp(-tr / t1)
    return m0 * ns.sin(a) * (1 - e1) / (1 - e1 * ns.cos(a))
