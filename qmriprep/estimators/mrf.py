"""MR fingerprinting (FISP): dictionary matching in an SVD subspace, and the subspace CNN."""

from __future__ import annotations

from .names import MATCHING, SUBSPACECNN
from .spec import Estimator, Output, register


def fit_matching(series, protocol, *, b1=None, mask=None, noise_sigma=None, **settings):
    """T1, T2, M0, match quality and RMSE by subspace dictionary matching (:mod:`..fit.mrf`); SD
    maps from the measured ``noise_sigma`` (0 without it)."""
    import numpy as np

    from ..fit.mrf import fit_mrf_matching, settings_from

    maps = fit_mrf_matching(series, protocol, b1=b1, mask=mask, settings=settings_from(settings),
                            sigma=noise_sigma)
    return {f"{k}_sd": np.zeros_like(maps[k]) for k in ("t1", "t2", "m0")} | maps


def fit_subspacecnn(series, protocol, *, b1=None, mask=None, seed=0, device="cpu", noise_sigma=None, **settings):
    """The subspace CNN of seed 001 (:mod:`..nn.subspacecnn`), trained on this scan (CPU);
    ``settings``: the fields of the ``mrf`` and ``mrf_cnn`` config sections; SD maps from the
    measured ``noise_sigma`` (0 without it)."""
    from dataclasses import fields

    import numpy as np

    from ..fit.mrf import settings_from
    from ..nn.subspacecnn import SubspaceCNNSettings, train

    cnn = SubspaceCNNSettings(**{f.name: settings[f.name] for f in fields(SubspaceCNNSettings)
                                 if f.name in settings})
    maps, record = train(series, protocol, b1=b1, mask=mask, settings=settings_from(settings), cnn=cnn,
                         seed=seed, sigma=noise_sigma)
    return {f"{k}_sd": np.zeros_like(maps[k]) for k in ("t1", "t2", "m0")} | maps | {"meta": record}


_MAPS = (Output("t1", "T1map"), Output("t2", "T2map"), Output("m0", "M0map"),
         Output("quality", "T1map", desc="Match"), Output("rmse", "T1map", desc="RMSE"))
_DICTIONARY = ("FISP dictionary simulated by extended phase graphs (T1 x T2 grid, B1+ axis from the "
               "B1+ map when there is one), compressed to its SVD subspace")
_CITES = ("ma2013", "jiang2015", "mcgivney2014", "weigel2015")
_SD = ("Standard deviation of the {} estimate: Cramer-Rao bound of the voxel's subspace coefficients "
       "(noise sigma measured on the series, NoiseSigma; Jacobian of the matched atom by finite "
       "differences on the dictionary grid, the phase and, without a B1+ map, B1+ estimated too){}")
_QUANTISED = " combined with the grid quantisation (spacing^2 / 12)"
_CNN_SD = ("; for the subspace CNN: that voxel-wise bound at the atoms its coefficients match, its "
           "variance scaled by the CNN's error variance over the bound, per parameter, measured on the "
           "held-out voxels against the other half of the frames (SDCalibration)")


def _sd_outputs(extra: str = "") -> tuple:
    """The T1, T2, M0 SD maps of an MRF estimator (description :data:`_SD` plus ``extra``)."""
    return (Output("t1_sd", "T1map", desc="SD", description=_SD.format("T1", _QUANTISED + extra)),
            Output("t2_sd", "T2map", desc="SD", description=_SD.format("T2", _QUANTISED + extra)),
            Output("m0_sd", "M0map", desc="SD", description=_SD.format("M0", extra)))
register(Estimator(
    kind="MRF", name=MATCHING, default=True, takes_b1=True, core=f"{__name__}:fit_matching",
    settings="mrf", citations=_CITES,
    outputs=_MAPS + _sd_outputs(),
    algorithm=f"MR fingerprinting dictionary matching: {_DICTIONARY}; each voxel takes the atom of "
              "largest normalised inner product (coarse-to-fine search on the T1 x T2 grid), M0 the "
              "projection scale"))
register(Estimator(
    kind="MRF", name=SUBSPACECNN, takes_b1=True, stochastic=True, core=f"{__name__}:fit_subspacecnn",
    settings=("mrf", "mrf_cnn"), citations=(*_CITES, "gao2022"), outputs=_MAPS + _sd_outputs(_CNN_SD),
    algorithm=f"Scan-specific subspace CNN: {_DICTIONARY}; a CNN maps the coefficient images fitted to "
              "one half of the frames (even or odd) to coefficients whose series is compared with the "
              "other half's frames by an L2 (default) or L1 loss (trained on this scan only, no labels, "
              "stopped on held-out voxels); T1, T2 and M0 by dictionary matching of its coefficients"))
