"""Signals of B1+ mapping sequences (forward models behind the closed-form B1 estimators).

- Double angle method, DAM (Insko & Bolinger 1993, JMR A 103:82): two SPGR acquisitions at
  ``a`` and ``2a``; with ``TR >> T1`` the signal is ``M0 sin(B1 a)``.
- Actual flip angle imaging, AFI (Yarnykh 2007, MRM 57:192): interleaved TR1/TR2 steady state
  ``S1 = M0 sin a (1 - E2 + (1 - E1) E2 cos a) / (1 - E1 E2 cos^2 a)``,
  ``S2 = M0 sin a (1 - E1 + (1 - E2) E1 cos a) / (1 - E1 E2 cos^2 a)``, ``Ei = exp(-TRi/T1)``,
  ``a = B1 a_nom`` (ideal spoiling).
- Siemens turbo-FLASH B1 map, TFL (Chung et al. 2010, MRM 64:439): the ``acq-famp`` image holds
  ten times the actual flip angle in degrees.
"""

from __future__ import annotations

from . import xp
from .spgr import spgr


def dam_signals(m0, t1, flip_angle, tr, b1=1.0):
    """SPGR signals at ``a`` and ``2a`` (stacked on a new last axis)."""
    ns = xp(m0, t1, flip_angle, tr, b1)
    return ns.stack([spgr(m0, t1, flip_angle, tr, b1), spgr(m0, t1, 2 * flip_angle, tr, b1)], -1)


def afi_signals(m0, t1, flip_angle, tr1, tr2, b1=1.0):
    """AFI steady-state signals for TR1 and TR2 (stacked on a new last axis)."""
    ns = xp(m0, t1, flip_angle, tr1, tr2, b1)
    a = b1 * flip_angle
    e1, e2 = ns.exp(-tr1 / t1), ns.exp(-tr2 / t1)
    c = ns.cos(a)
    den = 1 - e1 * e2 * c * c
    s1 = m0 * ns.sin(a) * (1 - e2 + (1 - e1) * e2 * c) / den
    s2 = m0 * ns.sin(a) * (1 - e1 + (1 - e2) * e1 * c) / den
    return ns.stack([s1, s2], -1)


def tfl_famp(flip_angle, b1):
    """Siemens TFL ``famp`` image: ``10 x`` the actual flip angle in degrees."""
    ns = xp(flip_angle, b1)
    return 10.0 * (b1 * flip_angle) * 180.0 / ns.pi
