"""How far the subspace CNN beats the voxel-wise bound: its error variance from the held-out voxels.

The CNN (:mod:`qmriprep.nn.subspacecnn`) reads the coefficients ``c_A`` least-squares fitted to
one half of the frames and predicts those of the other half, ``c_B = c + n_B`` (``c`` the truth,
``n_B`` of covariance ``sigma^2 G_B^-1``, ``G_B = Phi_B^T Phi_B``), independent of its input. At a
held-out voxel (never in the loss), for a direction ``u`` in coefficient space (Noise2Noise's
argument, Lehtinen et al., ICML 2018)::

    E[(u . (out_A - c_B))^2] = E[(u . e_A)^2] + sigma^2 u^T G_B^-1 u

with ``e_A = out_A - c`` the CNN's error, and ``E[(u . (out_A - out_B))^2] = v_A + v_B - 2 cov``, so
the error variance of the maps' coefficients, the mean of the two outputs, is
``(v_A + v_B) / 2 - E[(u . (out_A - out_B))^2] / 4``. ``u``: the rows of the linearised matching
estimator (:func:`qmriprep.fit.mrf_sd.sensitivity`) at each voxel's matched atom, scaled so that
the voxel-wise bound of its parameter (full series, ``Phi^T Phi = I``) is 1; with the voxel's
phase removed for complex data. The mean over held-out voxels is, per parameter, the CNN's error
variance as a fraction of the bound: the factor of :func:`qmriprep.fit.mrf_sd.matching_sd`
(1, the bound itself, where fewer than :data:`MIN_VOXELS` voxels are held out or the estimate is
below :data:`MIN_FACTOR`, which the model cannot explain).
Undersampling artefacts of ``c_B`` (not in ``sigma``) only make it larger (conservative); the part
of the series outside the subspace, which leaks into each half's fit, was measured negligible
(``tests/test_nn_subspacecnn_sd.py`` fits the halves of real series, 120 frames).
"""

from __future__ import annotations

import torch

from ..fit.mrf import match_by_b1
from ..fit.mrf_sd import sensitivity

HALVES = (slice(0, None, 2), slice(1, None, 2))  # the frames of half A and of half B
MIN_VOXELS = 50    # fewer held-out voxels: no calibration (factor 1, the voxel-wise bound)
MIN_FACTOR = 0.05  # a smaller estimate contradicts the noise model (e.g. sigma over-estimated): factor 1
NAMES = ("t1", "t2", "m0")


def _rotated(c: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """Real part of ``e^{-i phase} c`` ``(V, r)`` (real coefficients unchanged)."""
    return (c * torch.exp(-1j * phase)[:, None].to(c.dtype)).real.double() if c.is_complex() else c.double()


def variance_factor(inputs, outputs, sigma: float, prep, held) -> dict:
    """Per parameter (``t1``, ``t2``, ``m0``) the CNN's error variance over the voxel-wise bound
    (module docstring), and ``voxels``: the held-out voxels used; ``inputs`` ``(c_A, c_B)``
    (least-squares coefficients of the frames :data:`HALVES`) and ``outputs`` ``(out_A, out_B)``:
    ``(V, r)`` coefficients of all voxels of ``prep``, ``sigma`` the noise in their units, ``held``
    ``(V,)``."""
    held = torch.as_tensor(held, dtype=torch.bool)
    n = int(held.sum())
    if n < MIN_VOXELS or sigma <= 0:
        return {name: 1.0 for name in NAMES} | {"voxels": n}
    c = [x[held] for x in inputs]
    out = [x[held] for x in outputs]
    mean = (out[0] + out[1]) / 2
    b1 = None if prep.b1 is None else prep.b1[held.numpy()]
    single = mean.to(torch.complex64 if mean.is_complex() else torch.float32)
    found = match_by_b1(single, prep.dic, prep.sub, b1, prep.settings)
    atom = prep.sub.coef[found["index"]]
    phase = torch.angle((mean * atom.to(mean.dtype)).sum(1)) if mean.is_complex() else torch.zeros(n)
    rows, ok = sensitivity(found["index"], found["m0"], prep.dic, prep.sub, b1_free=prep.b1 is None)
    rows = rows[ok, :3] / (sigma * rows[ok, :3].norm(dim=2, keepdim=True)).clamp_min(1e-30)
    c, out, phase = [x[ok] for x in c], [x[ok] for x in out], phase[ok]
    total = 0.0
    for src, dst in ((0, 1), (1, 0)):
        err = torch.einsum("vpr,vr->vp", rows, _rotated(out[src] - c[dst], phase)) ** 2
        half = prep.sub.phi[HALVES[dst]].double()
        inv = torch.linalg.inv(half.T @ half)
        noise = sigma ** 2 * torch.einsum("vpr,rs,vps->vp", rows, inv, rows)
        total = total + (err - noise).mean(0) / 2
    spread = (torch.einsum("vpr,vr->vp", rows, _rotated(out[0] - out[1], phase)) ** 2).mean(0)
    factor = total - spread / 4
    factor = torch.where(factor >= MIN_FACTOR, factor, torch.ones_like(factor))
    return {name: float(factor[k]) for k, name in enumerate(NAMES)} | {"voxels": int(ok.sum())}
