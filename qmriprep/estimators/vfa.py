"""Variable flip angle T1 (SPGR: S = M0 sin(a) (1 - E1) / (1 - E1 cos(a)), a = B1 x nominal)."""

from __future__ import annotations

from .names import LINEAR, NLLS
from .spec import CRB, Estimator, Output, register


def _fit(method: str, series, protocol, *, b1=None, mask=None, noise_sigma=None, noise_basis=None, **_):
    from ..fit.despot1 import fit_vfa
    from ..fit.uncertainty import spgr_sd

    maps = fit_vfa(series, protocol.flip_angles, protocol.tr, b1=b1, method=method, mask=mask)
    return {**maps, **spgr_sd(maps, protocol.flip_angles, protocol.tr, noise_sigma, mask, b1, noise_basis)}


def fit_nlls(series, protocol, **kw):
    """Non-linear least squares on the SPGR equation."""
    return _fit(NLLS, series, protocol, **kw)


def fit_linear(series, protocol, **kw):
    """Linear DESPOT1: S/sin(a) against S/tan(a) (Deoni 2003)."""
    return _fit(LINEAR, series, protocol, **kw)


_OUTPUTS = (Output("t1", "T1map"), Output("r1", "R1map"), Output("m0", "M0map", desc="T1"),
            Output("rmse", "T1map", desc="RMSE"),
            Output("t1_sd", "T1map", desc="SD", description=CRB.format("T1")),
            Output("r1_sd", "R1map", desc="SD", description=CRB.format("R1")),
            Output("m0_sd", "M0map", desc="T1SD", description=CRB.format("M0")))
register(Estimator(
    kind="VFA", name=NLLS, default=True, takes_b1=True, core=f"{__name__}:fit_nlls",
    algorithm="Variable flip angle T1, non-linear least squares on the SPGR equation, B1+ corrected "
              "flip angles", citations=("vfa", "despot1"), outputs=_OUTPUTS))
register(Estimator(
    kind="VFA", name=LINEAR, takes_b1=True, core=f"{__name__}:fit_linear",
    algorithm="Variable flip angle T1, linear DESPOT1 (S/sin a vs S/tan a), B1+ corrected flip angles",
    citations=("vfa", "despot1"), outputs=_OUTPUTS))
