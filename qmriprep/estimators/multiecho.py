"""Mono-exponential T2 (MESE) and T2* (MEGRE) estimators: S = M0 exp(-TE/T2) [+ offset]."""

from __future__ import annotations

from dataclasses import dataclass

from .names import LOGLINEAR, NLLS, VARPRO
from .spec import Estimator, Output, register


@dataclass
class MultiEchoSettings:
    """Options of every multi-echo fit (config section ``multiecho``)."""

    drop_first_echo: bool = False
    fit_offset: bool = False


def _fit(solver: str, series, protocol, *, mask=None, drop_first_echo=False, fit_offset=False, **_):
    from ..fit.monoexp import fit_monoexp

    return fit_monoexp(series, protocol.echo_times, method=solver, drop_first_echo=drop_first_echo,
                       offset=fit_offset, mask=mask)


def fit_varpro(series, protocol, **kw):
    """Variable projection: M0 in closed form, 1-D search over R2 (Golub & Pereyra 1973)."""
    return _fit(VARPRO, series, protocol, **kw)


def fit_nlls(series, protocol, **kw):
    """Non-linear least squares (vectorised Levenberg-Marquardt)."""
    return _fit(NLLS, series, protocol, **kw)


def fit_loglinear(series, protocol, **kw):
    """Weighted log-linear least squares (weights S^2)."""
    return _fit(LOGLINEAR, series, protocol, **kw)


_HOW = {VARPRO: ("variable projection (M0 in closed form, 1-D search over R2)", ("golub1973",)),
        NLLS: ("non-linear least squares (vectorised Levenberg-Marquardt)", ("levenberg",)),
        LOGLINEAR: ("weighted log-linear least squares (weights S^2)", ())}

for _kind, _t, _r, _ref in (("MESE", "T2", "R2", "cpmg"), ("MEGRE", "T2*", "R2*", "t2star")):
    _tmap = "T2map" if _kind == "MESE" else "T2starmap"
    for _name, (_how, _cites) in _HOW.items():
        register(Estimator(
            kind=_kind, name=_name, default=_name == VARPRO,
            algorithm=f"Mono-exponential {_t} fit S = M0 exp(-TE/{_t}): {_how}",
            citations=(_ref, *_cites), core=f"{__name__}:fit_{_name}", settings="multiecho",
            outputs=(Output("t2", _tmap), Output("r2", _tmap.replace("T2", "R2")),
                     Output("m0", "M0map", desc=_t.replace("*", "star")), Output("rmse", f"{_tmap}RMSE"))))
