"""Turbo spin echo (TSE): recovery over TR minus the echo train, decay to the effective echo time.

Simplified 180-degree TSE model (Couturo et al. 1987, MRM 4:282; seed 002):

    S = M0 (1 - exp(-(TR - ETL ESP) / T1)) exp(-TE_eff / T2)

``TR``: ``RepetitionTimeExcitation`` (or ``RepetitionTime``), ``ETL``: ``EchoTrainLength``,
``ESP``: the echo spacing, ``TE_eff``: ``EchoTime`` (the echo at the centre of k-space). The
longitudinal magnetisation is assumed to be 0 at the end of the train (with ideal 180-degree
refocusing the recovery during the train is inverted at every echo and nearly cancels) and
stimulated echoes of non-ideal refocusing angles are not modelled. SI units (s).

FLAIR (fluid-attenuated inversion recovery) is the same train after an ideal inversion ``TI``
before the excitation (``InversionTime``); from ``Mz = 0`` at the end of the train, recovery
until the next inversion and recovery over ``TI`` give the magnitude image

    S = M0 |1 - 2 exp(-TI / T1) + exp(-(TR - ETL ESP) / T1)| exp(-TE_eff / T2)
"""

from __future__ import annotations

from dataclasses import dataclass

from . import xp


@dataclass(frozen=True)
class TSEProtocol:
    """TSE timing in SI units; checked on construction."""

    tr: float                 # RepetitionTimeExcitation | RepetitionTime (s)
    echo_time: float          # EchoTime (s): effective echo time
    echo_train_length: int    # EchoTrainLength
    echo_spacing: float       # s (sidecar EchoSpacing, else 2 TE_eff / ETL: linear ordering)

    def __post_init__(self):
        if not (self.echo_time > 0 and self.echo_spacing > 0 and self.echo_train_length >= 1):
            raise ValueError(f"TSE needs TE > 0, echo spacing > 0 and >= 1 echo: {self}")
        if self.recovery_time <= 0:
            raise ValueError(f"{type(self).__name__[:-8]} echo train ({self.echo_train_length} x "
                             f"{self.echo_spacing:g} s) does not fit in TR {self.tr:g} s")

    @property
    def recovery_time(self) -> float:
        """``TR - ETL ESP`` (s)."""
        return self.tr - self.echo_train_length * self.echo_spacing


def tse_signal(m0, t1, t2, protocol: TSEProtocol):
    """``M0 (1 - exp(-(TR - ETL ESP)/T1)) exp(-TE_eff/T2)``; numpy or torch, broadcast."""
    ns = xp(m0, t1, t2)
    return m0 * (1 - ns.exp(-protocol.recovery_time / t1)) * ns.exp(-protocol.echo_time / t2)


@dataclass(frozen=True)
class FLAIRProtocol(TSEProtocol):
    """An inversion-recovery TSE: the TSE timing and ``InversionTime`` (s)."""

    inversion_time: float

    def __post_init__(self):
        if not self.inversion_time > 0:
            raise ValueError(f"FLAIR needs an inversion time > 0: {self}")
        super().__post_init__()

    @property
    def recovery_time(self) -> float:
        """``TR - TI - ETL ESP`` (s): end of the train to the next inversion."""
        return self.tr - self.inversion_time - self.echo_train_length * self.echo_spacing


def flair_signal(m0, t1, t2, protocol: FLAIRProtocol):
    """``M0 |1 - 2 exp(-TI/T1) + exp(-(TR - ETL ESP)/T1)| exp(-TE_eff/T2)``; numpy or torch."""
    ns = xp(m0, t1, t2)
    ti = protocol.inversion_time
    mz = 1 - 2 * ns.exp(-ti / t1) + ns.exp(-(protocol.recovery_time + ti) / t1)
    return m0 * abs(mz) * ns.exp(-protocol.echo_time / t2)
