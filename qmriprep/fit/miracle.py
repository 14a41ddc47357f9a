"""MIRACLE: T1 and T2 from the Fourier configurations of phase-cycled bSSFP (seed 003).

Nguyen & Bieri 2017 (MRM 78:1747), the conventional reference of the pc-bSSFP networks.
The measured magnitudes ``f-1, f0, f1`` of the configurations ``F-1, F0, F+1``
(:func:`qmriprep.physics.bssfp.fourier_features`) are compared with the model terms at
``theta = 0`` (:func:`qmriprep.physics.bssfp.miracle_terms`)::

    T2 step (T1 fixed):  min_T2 | f-1 / (f0 - f1) - Fm1m e^{TR/T2} / (F0m - F1m) |
    T1 step (T2 fixed):  min_T1 | f1 / f0 - (p - r) / q |

Both ratios are free of M0, of the per-voxel normalisation and of the common ``tan(a/2)``;
the first assumes the same TE for every mode (``F-1 ~ e^{(TR - TE)/T2}``, ``F0, F+1 ~
e^{-TE/T2}``). Each step is a golden-section search (GSS) on ``bounds`` (``[0, 5]`` s) until
the bracket is narrower than ``tol`` (1e-6 s = 0.001 ms); starting from ``T1 = t1_init``
(1 s) the T2 and T1 steps alternate until both change by less than ``tol`` in one round
(at most ``max_rounds``). Exact for 12 phase cycles; aliasing (``p +- Npc``) biases it at
6 and 4 cycles off resonance.

Vectorised: every voxel runs the same fixed number of GSS iterations, so a whole chunk of
voxels iterates together (torch, float64); voxels that converged are dropped from the active
set (their values frozen). The GSS lower bound 0 is replaced by ``LOWER_MIN`` and
non-finite costs count as ``+inf`` (``exp(TR/T2)`` overflows at tiny T2): no NaN reaches
the output. :func:`fit_miracle_voxel` is the same algorithm as a plain scalar loop (the
benchmark's baseline and a test's reference).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..physics.bssfp import miracle_terms

CHUNK = 200_000
LOWER_MIN = 1e-9  # s: replaces a GSS lower bound of 0 (E = exp(-TR/0))
_GOLD = (math.sqrt(5.0) - 1.0) / 2.0  # 0.618...


def gss_iterations(lo, hi, tol):
    """Golden-section iterations until the bracket ``(hi - lo) g^k`` is below ``tol``."""
    if not hi > lo:
        raise ValueError(f"empty GSS bracket [{lo}, {hi}]")
    return max(0, math.ceil(math.log(tol / (hi - lo)) / math.log(_GOLD)))


def _bracket(bounds):
    lo, hi = (float(v) for v in bounds)
    return max(lo, LOWER_MIN), hi


# ----------------------------------------------------------------------------------------
# costs (shared by the vectorised and the scalar fit)


def _cost_t2(t2, t1, b1, target, *, flip_angle, tr):
    """``| f-1/(f0 - f1) - Fm1m e^{TR/T2} / (F0m - F1m) |`` (NaN -> inf)."""
    (fm1m, f0m, f1m), _ = miracle_terms(t1, t2, b1, flip_angle=flip_angle, tr=tr)
    cost = torch.abs(target - fm1m * torch.exp(tr / t2) / (f0m - f1m))
    return torch.nan_to_num(cost, nan=math.inf)


def _cost_t1(t1, t2, b1, target, *, flip_angle, tr):
    """``| f1/f0 - (p - r)/q |`` (NaN -> inf)."""
    _, (p, q, r) = miracle_terms(t1, t2, b1, flip_angle=flip_angle, tr=tr)
    return torch.nan_to_num(torch.abs(target - (p - r) / q), nan=math.inf)


def _gss(cost, lo, hi, n_iter, like):
    """Vectorised golden-section search of ``cost(x)`` (one new evaluation per iteration)."""
    a = torch.full_like(like, lo)
    b = torch.full_like(like, hi)
    c = b - _GOLD * (b - a)
    d = a + _GOLD * (b - a)
    fc, fd = cost(c), cost(d)
    for _ in range(n_iter):
        left = fc < fd  # minimum in [a, d]
        b = torch.where(left, d, b)
        a = torch.where(left, a, c)
        x = torch.where(left, b - _GOLD * (b - a), a + _GOLD * (b - a))
        fx = cost(x)
        c, fc, d, fd = (torch.where(left, x, d), torch.where(left, fx, fd),
                        torch.where(left, c, x), torch.where(left, fc, fx))
    return 0.5 * (a + b)


def _fit_chunk(y2, y1, b1, *, flip_angle, tr, t1_init, lo, hi, n_iter, tol, max_rounds):
    """Alternate T2/T1 GSS steps on flat float64 tensors; converged voxels are frozen."""
    t1 = torch.full_like(y1, t1_init)
    t2 = torch.zeros_like(y1)
    rounds = torch.zeros(y1.shape, dtype=torch.int32)
    active = torch.arange(y1.numel())
    kw = dict(flip_angle=flip_angle, tr=tr)
    for k in range(1, max_rounds + 1):
        if active.numel() == 0:
            break
        t1a, b1a, t2a = t1[active], b1[active], t2[active]
        t2n = _gss(lambda x: _cost_t2(x, t1a, b1a, y2[active], **kw), lo, hi, n_iter, t1a)
        t1n = _gss(lambda x: _cost_t1(x, t2n, b1a, y1[active], **kw), lo, hi, n_iter, t1a)
        done = (torch.abs(t2n - t2a) < tol) & (torch.abs(t1n - t1a) < tol)
        if k == 1:
            done[:] = False  # no previous T2 yet
        t1[active], t2[active] = t1n, t2n
        rounds[active] = k
        active = active[~done]
    return t1, t2, rounds


def fit_miracle(features, b1=None, *, flip_angle, tr, t1_init=1.0, bounds=(0.0, 5.0), tol=1e-6,
                max_rounds=200, mask=None, chunk=CHUNK):
    """MIRACLE T1/T2 maps from normalised bSSFP configurations, vectorised over voxels.

    Parameters
    ----------
    features : array (..., 3), complex or magnitude, ordered ``(F-1, F0, F+1)`` as produced
        by :func:`qmriprep.physics.bssfp.fourier_features` (only magnitudes are used).
    b1 : B1+ map (fraction of nominal) broadcastable to ``features.shape[:-1]``; None = 1.
    flip_angle : nominal flip angle (rad). tr : repetition time (s).
    t1_init : starting T1 (s). bounds : GSS bracket (s) for T1 and T2.
    tol : GSS bracket width and convergence threshold (s). max_rounds : T2/T1 rounds.
    mask : bool array broadcastable to ``features.shape[:-1]``; None = all voxels.
    chunk : voxels fitted together (bounds memory).

    Returns
    -------
    dict: ``t1``, ``t2`` (s, float32) and ``rounds`` (int32) shaped ``features.shape[:-1]``;
    0 outside the mask and for all-zero, non-finite or non-positive-B1 voxels.
    """
    feats = np.asarray(features)
    if feats.ndim < 1 or feats.shape[-1] != 3:
        raise ValueError(f"features must have a last axis of 3 (F-1, F0, F+1), got {feats.shape}")
    tr, flip_angle = float(tr), float(flip_angle)
    if not tr > 0:
        raise ValueError(f"tr must be > 0 s, got {tr}")
    lo, hi = _bracket(bounds)
    n_iter = gss_iterations(lo, hi, tol)

    spatial = feats.shape[:-1]
    mag = np.abs(feats.reshape(-1, 3)).astype(np.float64, copy=False)
    b1_flat = np.ones(mag.shape[0]) if b1 is None else \
        np.broadcast_to(np.asarray(b1, dtype=np.float64), spatial).ravel()
    with np.errstate(divide="ignore", invalid="ignore"):
        y2 = mag[:, 0] / (mag[:, 1] - mag[:, 2])  # f-1 / (f0 - f1)
        y1 = mag[:, 2] / mag[:, 1]  # f1 / f0
    valid = np.isfinite(mag).all(1) & (mag.max(1) > 0) & np.isfinite(y2) & np.isfinite(y1)
    valid &= np.isfinite(b1_flat) & (b1_flat > 0)
    if mask is not None:
        valid &= np.broadcast_to(np.asarray(mask, dtype=bool), spatial).ravel()
    idx = np.flatnonzero(valid)

    t1 = np.zeros(mag.shape[0], np.float32)
    t2 = np.zeros(mag.shape[0], np.float32)
    rounds = np.zeros(mag.shape[0], np.int32)
    for s in range(0, idx.size, chunk):
        sel = idx[s:s + chunk]
        args = (torch.from_numpy(np.ascontiguousarray(v[sel])) for v in (y2, y1, b1_flat))
        c1, c2, cr = _fit_chunk(*args, flip_angle=flip_angle, tr=tr, t1_init=float(t1_init), lo=lo,
                                hi=hi, n_iter=n_iter, tol=tol, max_rounds=max_rounds)
        t1[sel], t2[sel], rounds[sel] = c1.numpy(), c2.numpy(), cr.numpy()
    bad = ~(np.isfinite(t1) & np.isfinite(t2))
    t1[bad] = t2[bad] = 0.0
    return {"t1": t1.reshape(spatial), "t2": t2.reshape(spatial), "rounds": rounds.reshape(spatial)}


# ----------------------------------------------------------------------------------------
# reference: one voxel at a time


def _gss_scalar(cost, lo, hi, tol):
    a, b = lo, hi
    c, d = b - _GOLD * (b - a), a + _GOLD * (b - a)
    fc, fd = cost(c), cost(d)
    for _ in range(gss_iterations(lo, hi, tol)):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - _GOLD * (b - a)
            fc = cost(c)
        else:
            a, c, fc = c, d, fd
            d = a + _GOLD * (b - a)
            fd = cost(d)
    return 0.5 * (a + b)


def fit_miracle_voxel(f, b1=1.0, *, flip_angle, tr, t1_init=1.0, bounds=(0.0, 5.0), tol=1e-6,
                      max_rounds=200):
    """The MIRACLE algorithm of :func:`fit_miracle` for one voxel, as a plain scalar loop.

    ``f`` is the voxel's ``(F-1, F0, F+1)``; returns ``(t1, t2, rounds)`` (s), ``(0, 0, 0)``
    for an unusable voxel. Reference and benchmark baseline only (slow).
    """
    fm1, f0, f1 = (abs(complex(v)) for v in f)
    b1, tr, flip_angle = float(b1), float(tr), float(flip_angle)
    if not (f0 > 0 and f0 != f1 and b1 > 0 and all(map(math.isfinite, (fm1, f0, f1, b1)))):
        return 0.0, 0.0, 0
    y2, y1 = fm1 / (f0 - f1), f1 / f0
    lo, hi = _bracket(bounds)
    b1_t = torch.tensor(b1, dtype=torch.float64)
    kw = dict(flip_angle=flip_angle, tr=tr)

    def scalar(cost, other, target):
        other_t, target_t = (torch.tensor(v, dtype=torch.float64) for v in (other, target))
        return lambda x: float(cost(torch.tensor(x, dtype=torch.float64), other_t, b1_t, target_t,
                                    **kw))

    t1, t2 = float(t1_init), None
    for k in range(1, max_rounds + 1):
        t2n = _gss_scalar(scalar(_cost_t2, t1, y2), lo, hi, tol)
        t1n = _gss_scalar(scalar(_cost_t1, t2n, y1), lo, hi, tol)
        done = t2 is not None and abs(t2n - t2) < tol and abs(t1n - t1) < tol
        t1, t2 = t1n, t2n
        if done:
            break
    if not (math.isfinite(t1) and math.isfinite(t2)):
        return 0.0, 0.0, 0
    return t1, t2, k
