"""Cramer-Rao standard deviations of conventional fits from the measured noise.

For signals ``s(theta)`` with i.i.d. Gaussian noise of standard deviation ``sigma`` per real
channel, the Fisher information is ``F = J^T J / sigma^2`` with ``J = ds/dtheta`` (complex
signals: real and imaginary parts as channels), and the Cramer-Rao bound of an unbiased
estimator is ``SD(theta_k) = sigma sqrt((J^T J)^-1_kk)`` (Kay 1993, Fundamentals of Statistical
Signal Processing I, ch. 3). ``J`` is the Jacobian of the shared signal model
(:mod:`qmriprep.physics`) by forward-mode automatic differentiation (``torch.func.jvp``, one
pass per parameter), evaluated at the fitted parameters, batched over voxel chunks. Magnitude
data are treated as Gaussian (valid where the SNR of the echoes that carry the fit is above 3).
"""

from __future__ import annotations

import numpy as np
import torch

from ..utils.progress import Progress

CHUNK = 1 << 16  # voxels per batch


def crb_sd(model, params: dict, sigma: float, mask=None, *, fixed=None, chunk: int = CHUNK,
           basis=None) -> dict:
    """SD maps of ``params`` (arrays of one spatial shape) for ``model(**tensors) -> (v, n)``.

    ``model`` takes 1-D tensors (one value per voxel) by the names of ``params`` and of ``fixed``
    (known per-voxel inputs such as B1+, not estimated) and returns the voxels' signals (real or
    complex). Voxels outside ``mask``, with non-finite parameters or a singular ``J^T J`` get
    SD 0 (float32 maps, like the fits). ``basis``: the :class:`~qmriprep.fit.denoise.NoiseBasis`
    of a denoised series (``mask`` inside its mask, its channels those of ``model``): the noise
    then has covariance ``sigma^2 C``, ``C = V V^T + f I`` (:meth:`NoiseBasis.at
    <qmriprep.fit.denoise.NoiseBasis.at>`), and the SD of the least-squares estimate is
    ``sigma sqrt(diag(A C A^T))``, ``A = (J^T J)^-1 J^T`` (first-order propagation through the denoiser).
    """
    names, fixed = list(params), dict(fixed or {})
    arrays = [np.asarray(params[k], np.float64) for k in names]
    shape = arrays[0].shape
    inside = np.ones(shape, bool) if mask is None else np.asarray(mask, bool).copy()
    for a in arrays:
        inside &= np.isfinite(a)
    flat = [a[inside] for a in arrays]
    known = {k: np.broadcast_to(np.asarray(v, np.float64), shape)[inside] for k, v in fixed.items()}
    vectors, floor = (None, None) if basis is None else basis.at(inside)
    sd = np.zeros((len(names), int(inside.sum())))
    progress = Progress("Cramer-Rao SD", sd.shape[1], unit="voxels")
    for start in range(0, sd.shape[1], chunk):
        part = slice(start, start + chunk)
        primals = tuple(torch.from_numpy(np.ascontiguousarray(v[part])) for v in flat)
        consts = {k: torch.from_numpy(np.ascontiguousarray(v[part])) for k, v in known.items()}
        noise = None if vectors is None else (torch.from_numpy(vectors[part]).double(),
                                              torch.from_numpy(floor[part]).double())
        sd[:, part] = _chunk_sd(lambda **kw: model(**kw, **consts), names, primals, sigma, noise)
        progress.update(min(start + chunk, sd.shape[1]), final=start + chunk >= sd.shape[1])
    out = {}
    for k, name in enumerate(names):
        full = np.zeros(shape, np.float32)
        full[inside] = sd[k]
        out[name] = full
    return out


def _chunk_sd(model, names, primals, sigma, noise=None):
    """``sigma sqrt(diag((J^T J)^-1))`` for one chunk, ``(n_params, voxels)``; 0 if singular;
    ``noise``: ``(V (v, n, P), f (v,))`` of a denoised series (:func:`crb_sd`)."""
    def signal(*values):
        s = model(**dict(zip(names, values)))
        return torch.cat([s.real, s.imag], -1) if s.is_complex() else s

    cols = []
    for k in range(len(primals)):
        tangents = tuple(torch.ones_like(p) if i == k else torch.zeros_like(p)
                         for i, p in enumerate(primals))
        cols.append(torch.func.jvp(signal, primals, tangents)[1])
    jac = torch.stack(cols, -1)  # (v, n, p)
    inv, info = torch.linalg.inv_ex(jac.transpose(1, 2) @ jac)
    var = torch.diagonal(inv, dim1=1, dim2=2).T
    if noise is not None:  # diag(A C A^T) = |A V|^2 + f |A|^2, with diag(A A^T) = var
        vectors, floor = noise
        var = ((inv @ jac.transpose(1, 2)) @ vectors).pow(2).sum(-1).T + var * floor
    ok = (info == 0) & torch.isfinite(var).all(0) & (var >= 0).all(0)
    return torch.where(ok, sigma * var.clamp(min=0).sqrt(), torch.zeros_like(var)).numpy()


def reciprocal_sd(value, sd):
    """SD of ``1/value`` to first order: ``sd / value^2`` (R2 from T2, R1 from T1); 0 where
    ``value`` is 0."""
    value = np.asarray(value, np.float64)
    safe = np.where(value > 0, value, 1.0)
    return np.where(value > 0, np.asarray(sd) / safe ** 2, 0.0).astype(np.float32)


def residual_sigma(rmse, mask, n_points: int, n_params: int) -> float:
    """Noise sigma from fit residuals when none was measured: the median RMS residual in the
    mask times ``sqrt(n / (n - p))`` (degrees of freedom)."""
    vals = np.asarray(rmse)[np.asarray(mask, bool) & (np.asarray(rmse) > 0)]
    return float(np.median(vals) * np.sqrt(n_points / max(n_points - n_params, 1))) if vals.size else 0.0


def monoexp_sd(maps: dict, te, sigma, mask=None, basis=None) -> dict:
    """``t2_sd``, ``r2_sd``, ``m0_sd`` (and ``offset`` estimated too when ``maps`` has it) of
    ``S = M0 exp(-TE/T2) [+ offset]`` (:func:`qmriprep.physics.exponential.monoexp`)."""
    from ..physics.exponential import monoexp

    te = torch.as_tensor(np.asarray(te, np.float64))
    params = {"m0": maps["m0"], "t2": maps["t2"], **({"offset": maps["offset"]} if "offset" in maps else {})}
    valid = (np.asarray(maps["t2"]) > 0) & (True if mask is None else np.asarray(mask, bool))
    if sigma is None:
        sigma = residual_sigma(maps["rmse"], valid, te.numel(), len(params))

    def model(m0, t2, offset=0.0):
        return monoexp(m0[:, None], t2[:, None], te, offset if np.isscalar(offset) else offset[:, None])

    sd = crb_sd(model, params, sigma, valid, basis=basis)
    return {"t2_sd": sd["t2"], "r2_sd": reciprocal_sd(maps["t2"], sd["t2"]), "m0_sd": sd["m0"]}


def spgr_sd(maps: dict, flip_angles, tr, sigma, mask=None, b1=None, basis=None) -> dict:
    """``t1_sd``, ``r1_sd``, ``m0_sd`` of the SPGR signal (:func:`qmriprep.physics.spgr.spgr`) with
    the flip angles scaled by the (known) B1+ map."""
    from ..physics.spgr import spgr

    fa = torch.as_tensor(np.asarray(flip_angles, np.float64))
    valid = (np.asarray(maps["t1"]) > 0) & (True if mask is None else np.asarray(mask, bool))
    if sigma is None:
        sigma = residual_sigma(maps["rmse"], valid, fa.numel(), 2)

    def model(m0, t1, b1):
        return spgr(m0[:, None], t1[:, None], fa, tr, b1[:, None])

    sd = crb_sd(model, {"m0": maps["m0"], "t1": maps["t1"]}, sigma, valid,
                fixed={"b1": 1.0 if b1 is None else b1}, basis=basis)
    return {"t1_sd": sd["t1"], "r1_sd": reciprocal_sd(maps["t1"], sd["t1"]), "m0_sd": sd["m0"]}


def dess_sd(t2, s1, protocol, sigma, mask=None, *, t1=1.2, b1=None) -> dict:
    """``t2_sd``, ``r2_sd`` of qDESS (:func:`qmriprep.physics.dess.dess_signals`, whose S2 is the
    ratio model the estimate inverts): parameters M0 (from S1 at the fitted T2) and T2, the
    assumed T1 and the B1+ map held fixed."""
    from ..physics.dess import dess_signals

    t2 = np.asarray(t2, np.float64)
    valid = (t2 > 0) & (True if mask is None else np.asarray(mask, bool))
    b1 = np.ones(t2.shape) if b1 is None else np.broadcast_to(np.asarray(b1, np.float64), t2.shape)
    unit = dess_signals(1.0, t1, np.where(valid, t2, 1.0), protocol, b1=b1)[0]
    m0 = np.where(valid & (unit > 0), np.asarray(s1, np.float64) / np.where(unit > 0, unit, 1.0), 0.0)

    def model(m0, t2, b1):
        return torch.stack(dess_signals(m0, torch.full_like(t2, t1), t2, protocol, b1=b1), -1)

    sd = crb_sd(model, {"m0": m0, "t2": t2}, sigma, valid & (m0 > 0), fixed={"b1": b1})
    return {"t2_sd": sd["t2"], "r2_sd": reciprocal_sd(t2, sd["t2"])}


def miracle_sd(t1, t2, b1, protocol, *, sigma, norm, mask=None, basis=None) -> dict:
    """``t1_sd``, ``t2_sd`` of MIRACLE by first-order propagation of the configuration noise.

    MIRACLE inverts the three magnitudes ``|F-1|, |F0|, |F+1|`` exactly (their two ratios give T1
    and T2, the scale ``c`` is free), so its SD is ``sigma_F sqrt((J^T J)^-1)`` with ``J`` the 3 x 3
    Jacobian of ``c |F_p(T1, T2, B1)|`` (:func:`~qmriprep.physics.bssfp.closed_form_configurations`,
    theta 0, TE 0: a common ``exp(-TE/T2)`` lies along ``c`` and does not change the T1/T2 SDs)
    and ``sigma_F = sigma / (sqrt(N) norm)``: the DFT over the ``N`` cycles of ``protocol`` (its
    ``phase_increments``, ``flip_angle``, ``tr``; SI) divides the noise of each
    real channel by ``sqrt(N)`` and the configurations were normalised by ``norm`` (their raw
    per-voxel norm). Magnitudes treated as Gaussian (high SNR of each configuration). ``basis``:
    the 3-channel noise of the magnitudes of a denoised series over ``sigma^2 / N``
    (:func:`qmriprep.fit.fourier.configuration_noise`).
    """
    from ..physics.bssfp import closed_form_configurations as configurations

    flip_angle, tr, n_cycles = protocol.flip_angle, protocol.tr, len(protocol.phase_increments)
    t1, t2 = np.asarray(t1, np.float64), np.asarray(t2, np.float64)
    b1 = np.ones(t1.shape) if b1 is None else np.broadcast_to(np.asarray(b1, np.float64), t1.shape)
    norm = np.broadcast_to(np.asarray(norm, np.float64), t1.shape)
    valid = (t1 > 0) & (t2 > 0) & (b1 > 0) & (norm > 0) & (True if mask is None else np.asarray(mask, bool))

    def model(c, t1, t2, b1):
        mags = configurations(t1, t2, b1, flip_angle=flip_angle, tr=tr, te=0.0)
        return c[:, None] * torch.stack([m.abs() for m in mags], -1)

    unit = np.stack([np.abs(m) for m in configurations(np.where(valid, t1, 1.0), np.where(valid, t2, 0.1),
                                                         np.where(valid, b1, 1.0),
                                                         flip_angle=flip_angle, tr=tr, te=0.0)], -1)
    c = 1.0 / np.maximum(np.linalg.norm(unit, axis=-1), 1e-12)  # the configurations have unit norm
    sd = crb_sd(model, {"c": c, "t1": t1, "t2": t2}, 1.0, valid, fixed={"b1": b1}, basis=basis)
    scale = np.where(valid, float(sigma) / (np.sqrt(n_cycles) * np.where(norm > 0, norm, 1.0)), 0.0)
    return {"t1_sd": (sd["t1"] * scale).astype(np.float32), "t2_sd": (sd["t2"] * scale).astype(np.float32)}


def denoised_network_sd(estimate: dict, b1, protocol, *, sigma, training_sigma, norm, basis, mask=None) -> dict:
    """``t1_sd``, ``t2_sd`` of a network trained for i.i.d. noise ``training_sigma`` applied to the
    configurations of a denoised series (noise ``sigma``, ``basis`` of
    :func:`qmriprep.fit.fourier.configuration_noise`, ``norm`` their per-voxel norm).

    The network's ``estimate`` (``t1``, ``t2``) comes with its SD ``h`` (``t1_sd``, ``t2_sd``), read as that of a linear shrinkage
    estimator at the training noise: the noise's Cramer-Rao SD ``n`` there (configuration
    magnitudes, :func:`miracle_sd`) scaled by its weight ``w = min(h^2 / n^2, 1)`` (a Gaussian
    prior's posterior: ``h^2 = w n^2``), plus a part the noise does not set (the prior's pull
    ``h^2 (1 - w)``, or the approximation error above ``n``): ``b^2 = h^2 - w^2 n^2``. On the
    denoised data the noise part becomes ``w d`` with ``d`` the SD the denoised noise gives:
    ``SD = sqrt(b^2 + w^2 d^2)``, at the network's estimates."""
    kw = {"norm": norm, "mask": mask}
    t1, t2 = estimate["t1"], estimate["t2"]
    denoised = miracle_sd(t1, t2, b1, protocol, sigma=sigma, basis=basis, **kw)
    iid = miracle_sd(t1, t2, b1, protocol, sigma=training_sigma, **kw)
    out = {}
    for p in ("t1_sd", "t2_sd"):
        head, noise = np.asarray(estimate[p], np.float64), np.asarray(iid[p], np.float64)
        weight = np.where(noise > 0, np.minimum(head ** 2 / np.where(noise > 0, noise, 1.0) ** 2, 1.0), 0.0)
        rest = np.maximum(head ** 2 - (weight * noise) ** 2, 0)
        out[p] = np.where(noise > 0, np.sqrt(rest + (weight * denoised[p]) ** 2), head).astype(np.float32)
    return out
