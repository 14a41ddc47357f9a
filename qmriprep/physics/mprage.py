"""MPRAGE: magnetisation at the centre of k-space of an inversion-prepared spoiled readout train.

Closed form of the steady state over repeated preparations (Deichmann et al. 2000, NeuroImage 12:112;
Wang et al. 2014, PLoS ONE 9:e96899). One preparation cycle of length ``TR_prep``
(``RepetitionTimePreparation``): an inversion (efficiency ``eta``: ``Mz -> -eta Mz``), free
recovery for ``TA``, then ``n`` readout pulses (``EchoTrainLength``) of angle ``a`` (``FlipAngle``)
spaced by ``TR`` (``RepetitionTimeExcitation``), ideally spoiled, then free recovery for
``TD = TR_prep - TA - n TR``. **Linear ordering**: the centre of k-space is read by pulse
``n_c = n // 2`` (0-based) and ``InversionTime`` is the time from the inversion to that pulse, so
``TA = TI - n_c TR``. With ``E1 = exp(-TR/T1)``, ``q = (E1 cos a)^n`` and the train's steady
state ``Mss = M0 (1 - E1) / (1 - E1 cos a)``, the longitudinal magnetisation before pulse ``k``
of a train starting at ``Mz(TA)`` is ``Mss + (Mz(TA) - Mss) (E1 cos a)^k``; requiring the same
``Mz`` before every inversion gives

    M_inv = [M0 (1 - ED) + ED Mss (1 - q) + ED q M0 (1 - EA)] / (1 + eta ED q EA),
    Mz(TA) = M0 (1 - EA) - eta EA M_inv,    S = sin(a) [Mss + (Mz(TA) - Mss) (E1 cos a)^n_c]

with ``EA = exp(-TA/T1)``, ``ED = exp(-TD/T1)``. ``T2*`` decay over ``EchoTime`` is not modelled
(a constant factor for TE << T2*). SI units: s, rad; B1+ scales the readout angle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from . import xp


@dataclass(frozen=True)
class MPRAGEProtocol:
    """MPRAGE timing in SI units (see the module docstring); checked on construction."""

    tr_prep: float            # RepetitionTimePreparation (s): inversion to inversion
    inversion_time: float     # InversionTime (s): inversion to the centre of k-space
    tr: float                 # RepetitionTimeExcitation (s): readout pulse spacing
    flip_angle: float         # FlipAngle (rad) of the readout pulses
    n_readout: int            # EchoTrainLength: readout pulses per inversion
    inversion_efficiency: float = 1.0

    def __post_init__(self):
        if not (self.tr > 0 and 0 < self.flip_angle < math.pi and self.n_readout >= 1):
            raise ValueError(f"MPRAGE needs TR > 0, 0 < flip < 180 deg and >= 1 readout pulse: {self}")
        if self.time_before <= 0 or self.time_after < 0:
            raise ValueError(f"MPRAGE timing does not fit: TI {self.inversion_time:g} s, "
                             f"{self.n_readout} pulses of {self.tr:g} s in TR_prep {self.tr_prep:g} s")

    @property
    def centre(self) -> int:
        """Index of the pulse reading the centre of k-space (linear ordering)."""
        return self.n_readout // 2

    @property
    def time_before(self) -> float:
        """``TA``: inversion to the first readout pulse (s)."""
        return self.inversion_time - self.centre * self.tr

    @property
    def time_after(self) -> float:
        """``TD``: end of the readout train to the next inversion (s)."""
        return self.tr_prep - self.time_before - self.n_readout * self.tr


def mprage_signal(m0, t1, protocol: MPRAGEProtocol, b1=1.0):
    """Signal ``sin(a) Mz`` at the centre of k-space (module docstring); numpy or torch, broadcast."""
    ns = xp(m0, t1, b1)
    p = protocol
    a = b1 * p.flip_angle
    trig = math if isinstance(a, (int, float)) else ns
    cos_a, sin_a, e1 = trig.cos(a), trig.sin(a), ns.exp(-p.tr / t1)
    ea, ed = ns.exp(-p.time_before / t1), ns.exp(-p.time_after / t1)
    r = e1 * cos_a
    mss = m0 * (1 - e1) / (1 - r)
    q = r ** p.n_readout
    eta = p.inversion_efficiency
    m_inv = (m0 * (1 - ed) + ed * mss * (1 - q) + ed * q * m0 * (1 - ea)) / (1 + eta * ed * q * ea)
    m_a = m0 * (1 - ea) - eta * ea * m_inv
    return sin_a * (mss + (m_a - mss) * r ** p.centre)
