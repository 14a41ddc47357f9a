"""Phase-cycled bSSFP relaxometry (seed 003): MIRACLE and networks trained in silico."""

from __future__ import annotations

from .names import COMPLEX, MIRACLE, PINN, SVNN
from .spec import Estimator, Output, register


#: alias level (:func:`qmriprep.physics.bssfp.alias_level`) above which a MIRACLE voxel is flagged
ALIAS_LIMIT = 0.01


def fit_miracle(configurations, protocol, *, b1=None, mask=None, noise_sigma=None, scale=None,
                noise_basis=None, **_):
    """MIRACLE T1, T2 from the Fourier configurations (the fixed point of the seed's alternating
    golden-section searches, by Newton), then, for complex configurations, with the aliases of
    few phase cycles taken out (:mod:`qmriprep.fit.miracle_alias`); the sidecars count the voxels
    that did not converge and those corrected. ``t1_sd``, ``t2_sd``: the configuration noise
    (``noise_sigma`` of the cycles, ``scale`` the per-voxel norm the configurations were divided
    by) propagated to first order, through the denoiser when ``noise_basis``
    (:func:`qmriprep.fit.fourier.configuration_noise`); 0 without them. ``out_of_range``: voxels
    whose configurations at the estimate hold aliases above :data:`ALIAS_LIMIT` that were not
    corrected (magnitude configurations) or whose correction did not settle."""
    import numpy as np

    from ..fit.miracle import fit_miracle as miracle
    from ..fit.uncertainty import miracle_sd

    out = miracle(configurations, b1, flip_angle=protocol.flip_angle, tr=protocol.tr, mask=mask)
    corrected = _alias_correction(out, configurations, b1, protocol)
    if noise_sigma is None or scale is None:
        sd = {k: np.zeros_like(out["t1"]) for k in ("t1_sd", "t2_sd")}
    else:
        sd = miracle_sd(out["t1"], out["t2"], b1, protocol, sigma=noise_sigma, norm=scale, mask=mask,
                        basis=noise_basis)
    flagged = _aliased(out, b1, protocol, mask) & ~corrected
    meta = {"NotConvergedVoxels": int(out["not_converged"].sum()), "OutOfRangeVoxels": int(flagged.sum()),
            "AliasCorrectedVoxels": int(corrected.sum())}
    return {**out, **sd, "out_of_range": flagged.astype(np.uint8), "meta": meta}


def _alias_correction(out: dict, configurations, b1, protocol):
    """Replace ``out``'s T1, T2 by the alias-corrected ones (the last round where the fixed point
    did not settle); the mask of the voxels where it settled (none for magnitude configurations,
    which hold no off-resonance phase)."""
    import numpy as np

    from ..fit.miracle import fit_miracle as miracle
    from ..fit.miracle_alias import correct_aliases

    fitted = (out["t1"] > 0) & (out["t2"] > 0)
    if not np.iscomplexobj(configurations) or not fitted.any():
        return np.zeros_like(fitted)
    b1v = np.ones(fitted.sum()) if b1 is None else np.broadcast_to(b1, fitted.shape)[fitted]

    def solve(mags, b):
        res = miracle(mags, b, flip_angle=protocol.flip_angle, tr=protocol.tr, progress=False)
        return res["t1"], res["t2"]

    fix = correct_aliases(np.asarray(configurations)[fitted], b1v, out["t1"][fitted], out["t2"][fitted],
                          protocol=protocol, solve=solve)
    settled = fix["settled"]
    for key in ("t1", "t2"):
        out[key][fitted] = fix[key].astype(out[key].dtype)
    corrected = np.zeros_like(fitted)
    corrected[fitted] = settled
    return corrected


def _aliased(out: dict, b1, protocol, mask):
    """Voxels whose configurations at the estimate hold aliases above :data:`ALIAS_LIMIT`."""
    import numpy as np

    from ..physics.bssfp import alias_level

    fitted = (out["t1"] > 0) & (out["t2"] > 0) & (True if mask is None else np.asarray(mask, bool))
    level = alias_level(np.where(fitted, out["t1"], 1.0), np.where(fitted, out["t2"], 0.1),
                        1.0 if b1 is None else np.where(fitted, b1, 1.0), flip_angle=protocol.flip_angle,
                        tr=protocol.tr, n_cycles=len(protocol.phase_increments))
    return fitted & (level > ALIAS_LIMIT)


_MAPS = (Output("t1", "T1map"), Output("t2", "T2map"))
_MIRACLE_SD = ("Standard deviation of the {} estimate: the noise of the configurations (NoiseSigma of "
               "the cycles / sqrt(cycles) / the voxel's configuration norm) propagated to first order "
               "through MIRACLE's exact inversion of |F-1|, |F0|, |F+1| (the Cramer-Rao bound of those "
               "three magnitudes, Jacobian by automatic differentiation)")
_NET_SD = ("Standard deviation of the {} estimate: the network's heteroscedastic output (log-variance "
           "head trained by the Gaussian negative log-likelihood of the in-silico truth at the training "
           "noise TrainingNoiseSigma; calibrated on the training distribution)")
_NET_EXTRA = (Output("t1_sd", "T1map", desc="SD", description=_NET_SD.format("T1")),
              Output("t2_sd", "T2map", desc="SD", description=_NET_SD.format("T2")),
              Output("out_of_range", "mask", desc="OutOfRange", description=(
                  "1 where the voxel lies outside what the network was trained on: B1+ outside "
                  "0.7-1.3 or the T1 or T2 estimate at the edge of the training range")))
_NET = ("multilayer perceptron trained in silico for this protocol on the pc-bSSFP signal model, "
        "input: normalised Fourier configurations F-1, F0, F+1 and B1+")
register(Estimator(
    kind="bSSFP", name=MIRACLE, default=True, takes_b1=True, core=f"{__name__}:fit_miracle",
    algorithm="MIRACLE: alternating golden-section searches for T2 and T1 on the configuration "
              "ratios of pc-bSSFP (magnitudes of F-1, F0, F+1); the aliases of few phase cycles "
              "taken out by a fixed point on the N-cycle signal model (off-resonance from the "
              "configurations' phases; AliasCorrectedVoxels)",
    citations=("nguyen2017", "birk2025"),
    outputs=_MAPS + (Output("t1_sd", "T1map", desc="SD", description=_MIRACLE_SD.format("T1")),
                     Output("t2_sd", "T2map", desc="SD", description=_MIRACLE_SD.format("T2")),
                     Output("out_of_range", "mask", desc="OutOfRange", description=(
                         f"1 where MIRACLE's infinite-cycle model misses more than {100 * ALIAS_LIMIT:g} % "
                         "of a configuration at the estimate (the aliases F_(p+kN) of N phase cycles: few "
                         "cycles, long T2, low flip angle; T2 bias about 1-2.5 times that level) and their "
                         "correction did not settle in its rounds; the SD maps do not include that bias")))))
for _complex in (False, True):
    for _name, _label, _pinn in ((SVNN, "SVNN (supervised)", False),
                                 (PINN, "PINN (physics-informed, self-supervised)", True)):
        register(Estimator(
            kind="bSSFP", name=_name + (COMPLEX if _complex else ""), default=True, takes_b1=True,
            learned=True, node="qmriprep.interfaces.nn:NetworkFit",
            trainer="qmriprep.interfaces.nn:TrainNetwork", settings="nn",
            options={"physics_informed": _pinn, "complex_net": _complex},
            algorithm=f"{_label} {_NET} " + ("real and imaginary parts; also off-resonance" if _complex
                                             else "magnitudes"),
            citations=("nguyen2017", "birk2025"),
            outputs=_MAPS + _NET_EXTRA
            + ((Output("off_resonance", "fieldmap", datatype="fmap"),) if _complex else ())))
