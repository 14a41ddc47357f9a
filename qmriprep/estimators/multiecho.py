"""Mono-exponential T2 (MESE) and T2* (MEGRE) estimators: S = M0 exp(-TE/T2) [+ offset]."""

from __future__ import annotations

from dataclasses import dataclass

from .names import LOGLINEAR, NLLS, SCANCNN, VARPRO
from .spec import CRB, Estimator, Output, register


@dataclass
class MultiEchoSettings:
    """Options of every multi-echo fit (config section ``multiecho``)."""

    drop_first_echo: bool = False
    fit_offset: bool = False


def _fit(solver: str, series, protocol, *, mask=None, drop_first_echo=False, fit_offset=False,
         noise_sigma=None, noise_basis=None, **_):
    from ..fit.monoexp import fit_monoexp
    from ..fit.uncertainty import monoexp_sd

    maps = fit_monoexp(series, protocol.echo_times, method=solver, drop_first_echo=drop_first_echo,
                       offset=fit_offset, mask=mask)
    te = protocol.echo_times[1:] if drop_first_echo else protocol.echo_times
    if noise_basis is not None and drop_first_echo:
        noise_basis = noise_basis.channels(slice(1, None))
    return {**maps, **monoexp_sd(maps, te, noise_sigma, mask, noise_basis)}


def fit_varpro(series, protocol, **kw):
    """Variable projection: M0 in closed form, 1-D search over R2 (Golub & Pereyra 1973)."""
    return _fit(VARPRO, series, protocol, **kw)


def fit_nlls(series, protocol, **kw):
    """Non-linear least squares (vectorised Levenberg-Marquardt)."""
    return _fit(NLLS, series, protocol, **kw)


def fit_loglinear(series, protocol, **kw):
    """Weighted log-linear least squares (weights S^2)."""
    return _fit(LOGLINEAR, series, protocol, **kw)


def fit_scancnn(series, protocol, *, mask=None, drop_first_echo=False, fit_offset=False, noise_sigma=None,
                noise_basis=None, **settings):
    """Scan-specific unsupervised CNN (Gao et al. 2022) started from the VarPro maps of the scan;
    ``settings``: the fields of :class:`~qmriprep.nn.scancnn.ScanCNNSettings`, and the run's
    ``seed`` and ``device`` (``b1`` is not used). SD maps: the
    voxel-wise Cramer-Rao bound at the CNN's estimates (its spatial context makes the error
    smaller than that bound; coverage measured in benchmarks/RESULTS.md)."""
    import numpy as np

    from ..fit.monoexp import fit_monoexp
    from ..fit.uncertainty import monoexp_sd
    from ..nn.scancnn import ScanCNNSettings, fit_scancnn as train_scancnn

    if fit_offset:
        raise ValueError(f"{SCANCNN} has no noise-floor offset: run it without --fit-offset")
    settings.pop("b1", None)
    run = {"seed": settings.pop("seed", 0), "device": settings.pop("device", "cpu")}
    series, te = np.asarray(series), np.asarray(protocol.echo_times, float)
    if drop_first_echo:
        series, te = series[..., 1:], te[1:]
        noise_basis = None if noise_basis is None else noise_basis.channels(slice(1, None))
    init = fit_monoexp(series, te, method=VARPRO, mask=mask)
    inside = init["m0"] > 0 if mask is None else mask & (init["m0"] > 0)
    if not inside.any():
        raise ValueError(f"{SCANCNN}: no voxel inside the mask has a positive signal")
    maps, meta = train_scancnn(series, te, inside, init, ScanCNNSettings(**settings), **run)
    resid = series - maps["m0"][..., None] * np.exp(-te / np.where(inside, maps["t2"], 1.0)[..., None])
    rmse = np.where(inside, np.sqrt(np.mean(resid ** 2, axis=-1)), 0.0)
    sigma = float(np.median(init["rmse"][inside]) * np.sqrt(te.size / max(te.size - 2, 1)))
    maps = {**maps, "r2": np.where(inside, 1.0 / np.where(inside, maps["t2"], 1.0), 0.0), "rmse": rmse}
    sd = monoexp_sd(maps, te, sigma if noise_sigma is None else noise_sigma, inside, noise_basis)
    return {**maps, **sd, "meta": {**meta, "NoiseSigmaEstimate": sigma, "NoiseSigmaMethod":
                                   "median VarPro residual RMS x sqrt(n_echo / (n_echo - 2))"}}


SCANCNN_SD = ("Standard deviation of the {} estimate: Cramer-Rao lower bound sigma sqrt((J^T J)^-1) from "
              "the noise sigma measured on the series (NoiseSigma) and the Jacobian J of the signal model at "
              "the CNN's estimates (automatic differentiation): the bound of a voxel-wise fit, which the "
              "CNN's spatial context can undercut")


def _sd_outputs(tmap: str, t: str, r: str, text: str) -> tuple:
    """SD maps of T2 (T2*), R2 (R2*) and M0 described by ``text``."""
    return (Output("t2_sd", tmap, desc="SD", description=text.format(t)),
            Output("r2_sd", tmap.replace("T2", "R2"), desc="SD", description=text.format(r)),
            Output("m0_sd", "M0map", desc=t.replace("*", "star") + "SD", description=text.format("M0")))


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
                     Output("m0", "M0map", desc=_t.replace("*", "star")), Output("rmse", _tmap, desc="RMSE"),
                     *_sd_outputs(_tmap, _t, _r, CRB))))
    register(Estimator(
        kind=_kind, name=SCANCNN, stochastic=True, settings=("multiecho", "scan_cnn"),
        algorithm=f"Scan-specific unsupervised CNN: M0 and {_t} maps from the echo images, trained on this "
                  f"scan only with the loss between the acquired echoes and M0 exp(-TE/{_t}), started "
                  "from the VarPro maps, stopped on held-out echo samples",
        citations=(_ref, "gao2022"), core=f"{__name__}:fit_{SCANCNN}",
        outputs=(Output("t2", _tmap), Output("r2", _tmap.replace("T2", "R2")),
                 Output("m0", "M0map", desc=_t.replace("*", "star")), Output("rmse", _tmap, desc="RMSE"),
                 *_sd_outputs(_tmap, _t, _r, SCANCNN_SD))))
