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
(at most ``max_rounds``).

Accuracy: the model terms are the infinite-cycle (``N -> inf``) configurations at
``theta = 0``. With ``N`` phase cycles the measured ``F_p`` contain the aliases
``F_{p +- N}``, whose size scales like ``((p - r)/q)^(N-1)``: negligible at 12 cycles for
brain tissue (white matter 939/62 ms: < 0.02 %), but not for long T2 with short T1 or low
flip angle (T1/T2 = 400/150 ms at B1 0.7: ~17 % T2 bias at 12 cycles), and at 6 and 4
cycles off resonance they bias the fit strongly.

Vectorised: a chunk of voxels iterates together (torch, float64); every GSS has a fixed
number of iterations and converged voxels leave the active set (their values frozen). The
GSS lower bound 0 is replaced by ``LOWER_MIN`` and non-finite costs count as ``_BIG``
(``exp(TR/T2)`` overflows at tiny T2): no NaN reaches the output.

Settings (:class:`MiracleSettings`): ``search="full"`` (default) is the seed's algorithm: every
step searches all of ``bounds`` (33 iterations at tol 1e-6 s from a 5 s bracket). The
alternation contracts by ~0.6-0.7 per round for brain tissue (WM ~17, GM ~25 rounds) but by
~0.97 when T2 approaches T1 (CSF, T1/T2 ~ 4/2 s): such voxels use all ``max_rounds``
(``rounds == max_rounds`` flags them) and are not converged (~0.1 % short without aliasing; at
12 cycles aliasing adds ~2.5 % in T1 and ~15 % in T2).
``search="warm"`` runs the same alternation but, once a voxel's previous change is known,
searches only ``x_prev +- WARM_FACTOR |change|`` to ``WARM_REL`` of that half-width, down
to ``WARM_FINE * tol`` (finer than ``tol``: unlike a fixed full bracket, a moving bracket
does not reproduce the same GSS grid every round, and a T2 jitter of tol/2 moves T1 by ~20x
that, which would never satisfy the stopping rule); a minimum on a narrowed bracket's edge
is searched again on all of ``bounds``. Same fixed point and stopping rule, about half the
evaluations; results agree with ``"full"`` to ~1e-5 s.

Speed (176x176x128 volume, 1.5 M brain voxels incl. 15 % CSF, 12 cycles, one thread of a
shared 2-CPU machine; ``benchmarks/bench_miracle.py``): ``full`` 120 s, ``warm`` 59 s
(80 / 40 us per voxel); WM/GM only 95 / 48 s. One evaluation costs ~25 ns per voxel in
eager torch (:func:`~qmriprep.physics.bssfp.miracle_terms` and the cost: ~46 float64
element-wise ops incl. 3 exp, cos, sqrt) plus ~10-15 ns of GSS bookkeeping; ``full`` needs
68 evaluations per round, ``warm`` ~30, and brain tissue takes ~20 rounds.

:func:`fit_miracle_voxel` is the same algorithm as a plain scalar loop (the benchmark's
baseline and a test's reference).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
import torch

from ..physics.bssfp import miracle_terms

CHUNK = 131_072  # voxels per chunk (memory ~ 50 float64 temporaries of this size)
LOWER_MIN = 1e-9  # s: replaces a GSS lower bound of 0 (E = exp(-TR/0))
SEARCHES = ("full", "warm")
WARM_FACTOR = 4.0  # warm bracket half-width = WARM_FACTOR x the previous change ...
WARM_MIN = 4.0  # ... but at least WARM_MIN x tol, ...
WARM_REL = 0.01  # ... searched to WARM_REL x the half-width, down to ...
WARM_FINE = 0.01  # ... WARM_FINE x tol (a full-bracket GSS is deterministic; a moving
# bracket is not, and its +-tol/2 jitter in T2 moves T1 by ~20x that: no convergence)
_GOLD = (math.sqrt(5.0) - 1.0) / 2.0  # 0.618...
_BIG = 1e300  # cost of an undefined model (finite, so that 0/1-weighted lerp selects exactly)
_LOG_GOLD = math.log(_GOLD)


def gss_iterations(lo, hi, tol):
    """Golden-section iterations until the bracket ``(hi - lo) g^k`` is below ``tol``."""
    if not hi > lo:
        raise ValueError(f"empty GSS bracket [{lo}, {hi}]")
    return max(0, math.ceil(math.log(tol / (hi - lo)) / _LOG_GOLD))


@dataclasses.dataclass(frozen=True)
class MiracleSettings:
    """Search settings of :func:`fit_miracle` (module docstring), checked on construction.

    ``t1_init``: starting T1 (s). ``bounds``: GSS bracket (s) for T1 and T2 (a lower bound of 0
    is replaced by :data:`LOWER_MIN`, see :attr:`bracket`). ``tol``: GSS bracket width and
    convergence threshold (s). ``max_rounds``: T2/T1 rounds at most. ``search``: ``"full"`` (the
    seed's GSS on all of ``bounds`` at every step) or ``"warm"`` (narrowed brackets around the
    previous estimate).
    """

    t1_init: float = 1.0
    bounds: tuple[float, float] = (0.0, 5.0)
    tol: float = 1e-6
    max_rounds: int = 200
    search: str = "full"

    def __post_init__(self):
        if self.search not in SEARCHES:
            raise ValueError(f"search must be one of {SEARCHES}, got {self.search!r}")
        put = functools.partial(object.__setattr__, self)
        put("bounds", tuple(float(v) for v in self.bounds))
        put("t1_init", float(self.t1_init))
        put("tol", float(self.tol))
        put("max_rounds", int(self.max_rounds))
        lo, hi = self.bracket
        if not hi > lo:
            raise ValueError(f"bounds must be increasing, got {self.bounds}")

    @property
    def bracket(self):
        """``(lo, hi)`` searched: ``bounds`` with the lower bound at least :data:`LOWER_MIN`."""
        return max(self.bounds[0], LOWER_MIN), self.bounds[1]


# ----------------------------------------------------------------------------------------
# costs (shared by the vectorised and the scalar fit)


def _cost_t2(t2, t1, b1, target, *, flip_angle, tr):
    """``| f-1/(f0 - f1) - Fm1m e^{TR/T2} / (F0m - F1m) |`` (NaN, inf -> ``_BIG``)."""
    (fm1m, f0m, f1m), _ = miracle_terms(t1, t2, b1, flip_angle=flip_angle, tr=tr)
    cost = torch.abs(target - fm1m * torch.exp(tr / t2) / (f0m - f1m))
    return torch.nan_to_num(cost, nan=_BIG, posinf=_BIG)


def _cost_t1(t1, t2, b1, target, *, flip_angle, tr):
    """``| f1/f0 - (p - r)/q |`` (NaN, inf -> ``_BIG``)."""
    _, (p, q, r) = miracle_terms(t1, t2, b1, flip_angle=flip_angle, tr=tr)
    return torch.nan_to_num(torch.abs(target - (p - r) / q), nan=_BIG, posinf=_BIG)


# ----------------------------------------------------------------------------------------
# vectorised


def _gss(cost, a, b, n_iter):
    """Vectorised golden-section search of ``cost(x, m)`` on per-voxel brackets ``[a, b]``.

    ``n_iter`` is an int (every voxel) or a per-voxel int64 tensor sorted in descending
    order, so that the voxels still iterating at step ``i`` are the prefix ``[:m]``: updates
    act in place on views and ``cost(x, m)`` sees the first ``m`` voxels. One new evaluation
    per iteration (the surviving interior point is reused). Returns the bracket midpoints
    (``a`` and ``b`` are overwritten).
    """
    n = a.numel()
    if isinstance(n_iter, int):
        active = [n] * n_iter
    else:
        hist = torch.bincount(n_iter)
        active = (n - torch.cumsum(hist, 0)).tolist()[:-1]
    span = _GOLD * (b - a)
    c, d = b - span, a + span
    fc, fd = cost(c, n), cost(d, n)
    for m in active:
        if m == 0:
            break
        A, B, C, D, FC, FD = a[:m], b[:m], c[:m], d[:m], fc[:m], fd[:m]
        # minimum in [a, d] (w = 1): b <- d, d <- c, new c; else a <- c, c <- d, new d.
        # lerp with weights 0/1 selects exactly (finite inputs) and is ~10x faster than where
        w = (FC < FD).to(a.dtype)
        torch.lerp(B, D, w, out=B)
        torch.lerp(C, A, w, out=A)
        span = _GOLD * (B - A)
        x = torch.lerp(A + span, B - span, w)
        fx = cost(x, m)
        dn, fdn = torch.lerp(x, C, w), torch.lerp(fx, FC, w)
        torch.lerp(D, x, w, out=C)
        torch.lerp(FD, fx, w, out=FC)
        D.copy_(dn)
        FD.copy_(fdn)
    return 0.5 * (a + b)


def _step(cost, args, x_prev, dx_prev, settings):
    """One GSS step (T2 or T1) of every active voxel, minimising ``cost(x, *args)`` (``args``:
    per-voxel tensors, the target last); ``x_prev`` None searches all of the bracket. Returns
    the new values."""
    lo, hi = settings.bracket
    tol = settings.tol
    n_full = gss_iterations(lo, hi, tol)
    y = args[-1]
    if settings.search == "full" or x_prev is None:
        a, b = torch.full_like(y, lo), torch.full_like(y, hi)
        return _gss(lambda x, m: cost(x, *(v[:m] for v in args)), a, b, n_full)
    w = torch.clamp(WARM_FACTOR * torch.abs(dx_prev), min=WARM_MIN * tol)
    full = ~(2 * w < hi - lo)  # also an unknown (inf) previous change
    a0 = torch.where(full, lo, torch.clamp(x_prev - w, min=lo))
    b0 = torch.where(full, hi, torch.clamp(x_prev + w, max=hi))
    tol_v = torch.where(full, tol, torch.clamp(WARM_REL * w, min=WARM_FINE * tol))
    n_v = torch.clamp(torch.ceil(torch.log(tol_v / (b0 - a0)) / _LOG_GOLD), min=0)
    n_v = torch.where(full, n_full, n_v).long()
    order = torch.argsort(n_v, descending=True)
    ordered = [v[order] for v in args]
    x = torch.empty_like(y)
    x[order] = _gss(lambda x, m: cost(x, *(v[:m] for v in ordered)),
                    a0[order], b0[order], n_v[order])
    edge = ((a0 > lo) & (x - a0 < tol_v)) | ((b0 < hi) & (b0 - x < tol_v))
    if bool(edge.any()):  # the minimum may lie outside the narrowed bracket
        sel = torch.nonzero(edge).squeeze(1)
        x[sel] = _step(cost, [v[sel] for v in args], None, None, settings)
    return x


def _fit_chunk(y2, y1, b1, *, flip_angle, tr, settings):
    """Alternate T2/T1 GSS steps on flat float64 tensors; converged voxels are frozen."""
    t1 = torch.full_like(y1, settings.t1_init)
    t2 = torch.zeros_like(y1)
    dt1 = torch.full_like(y1, math.inf)  # last change (inf: unknown)
    dt2 = torch.full_like(y1, math.inf)
    rounds = torch.zeros(y1.shape, dtype=torch.int32)
    active = torch.arange(y1.numel())
    cost_t2, cost_t1 = (functools.partial(c, flip_angle=flip_angle, tr=tr)
                        for c in (_cost_t2, _cost_t1))
    tol = settings.tol
    for k in range(1, settings.max_rounds + 1):
        if active.numel() == 0:
            break
        t1a, t2a, b1a = t1[active], t2[active], b1[active]
        t2n = _step(cost_t2, (t1a, b1a, y2[active]), t2a, dt2[active], settings)
        t1n = _step(cost_t1, (t2n, b1a, y1[active]), t1a, dt1[active], settings)
        d1, d2 = t1n - t1a, t2n - t2a
        if k == 1:
            d2.fill_(math.inf)  # no previous T2 yet
        t1[active], t2[active], dt1[active], dt2[active] = t1n, t2n, d1, d2
        rounds[active] = k
        active = active[~((torch.abs(d2) < tol) & (torch.abs(d1) < tol))]
    return t1, t2, rounds


def _targets(mag):
    """Measured ratios ``(f-1/(f0 - f1), f1/f0)`` of magnitudes ``(..., 3)``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return mag[..., 0] / (mag[..., 1] - mag[..., 2]), mag[..., 2] / mag[..., 1]


def _check(tr):
    if not float(tr) > 0:
        raise ValueError(f"tr must be > 0 s, got {tr}")


def fit_miracle(features, b1=None, *, flip_angle, tr, settings=None, mask=None, chunk=CHUNK):
    """MIRACLE T1/T2 maps from normalised bSSFP configurations, vectorised over voxels.

    Parameters
    ----------
    features : array (..., 3), complex or magnitude, ordered ``(F-1, F0, F+1)`` as produced
        by :func:`qmriprep.physics.bssfp.fourier_features` (only magnitudes are used).
    b1 : B1+ map (fraction of nominal) broadcastable to ``features.shape[:-1]``; None = 1.
    flip_angle : nominal flip angle (rad). tr : repetition time (s).
    settings : :class:`MiracleSettings` (start, bracket, tolerance, rounds, full or warm
        search); None = the defaults (the seed's algorithm).
    mask : bool array broadcastable to ``features.shape[:-1]``; None = all voxels.
    chunk : voxels fitted together (bounds memory and keeps temporaries in cache).

    Returns
    -------
    dict: ``t1``, ``t2`` (s, float32) and ``rounds`` (int32) shaped ``features.shape[:-1]``;
    0 outside the mask and for all-zero, non-finite or non-positive-B1 voxels.
    """
    feats = np.asarray(features)
    if feats.ndim < 1 or feats.shape[-1] != 3:
        raise ValueError(f"features must have a last axis of 3 (F-1, F0, F+1), got {feats.shape}")
    _check(tr)
    settings = MiracleSettings() if settings is None else settings

    spatial = feats.shape[:-1]
    mag = np.abs(feats.reshape(-1, 3)).astype(np.float64, copy=False)
    b1_flat = np.ones(mag.shape[0]) if b1 is None else \
        np.broadcast_to(np.asarray(b1, dtype=np.float64), spatial).ravel()
    y2, y1 = _targets(mag)
    valid = np.isfinite(mag).all(1) & (mag.max(1) > 0) & np.isfinite(y2) & np.isfinite(y1)
    valid &= np.isfinite(b1_flat) & (b1_flat > 0)
    if mask is not None:
        valid &= np.broadcast_to(np.asarray(mask, dtype=bool), spatial).ravel()
    idx = np.flatnonzero(valid)

    t1 = np.zeros(mag.shape[0], np.float32)
    t2 = np.zeros(mag.shape[0], np.float32)
    rounds = np.zeros(mag.shape[0], np.int32)
    for s in range(0, idx.size, int(chunk)):
        sel = idx[s:s + int(chunk)]
        args = (torch.from_numpy(np.ascontiguousarray(v[sel])) for v in (y2, y1, b1_flat))
        c1, c2, cr = _fit_chunk(*args, flip_angle=float(flip_angle), tr=float(tr),
                                settings=settings)
        t1[sel], t2[sel], rounds[sel] = c1.numpy(), c2.numpy(), cr.numpy()
    bad = ~(np.isfinite(t1) & np.isfinite(t2))
    t1[bad] = t2[bad] = 0.0
    rounds[bad] = 0
    return {"t1": t1.reshape(spatial), "t2": t2.reshape(spatial), "rounds": rounds.reshape(spatial)}


# ----------------------------------------------------------------------------------------
# reference: one voxel at a time


def _gss_scalar(cost, a, b, n_iter):
    c, d = b - _GOLD * (b - a), a + _GOLD * (b - a)
    fc, fd = cost(c), cost(d)
    for _ in range(n_iter):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - _GOLD * (b - a)
            fc = cost(c)
        else:
            a, c, fc = c, d, fd
            d = a + _GOLD * (b - a)
            fd = cost(d)
    return 0.5 * (a + b)


def _step_scalar(cost, x_prev, dx_prev, settings):
    lo, hi = settings.bracket
    tol = settings.tol
    n_full = gss_iterations(lo, hi, tol)
    w = max(WARM_FACTOR * abs(dx_prev), WARM_MIN * tol)
    if settings.search == "full" or not 2 * w < hi - lo:
        return _gss_scalar(cost, lo, hi, n_full)
    a0, b0 = max(x_prev - w, lo), min(x_prev + w, hi)
    tol_v = max(WARM_REL * w, WARM_FINE * tol)
    n_v = max(0, math.ceil(math.log(tol_v / (b0 - a0)) / _LOG_GOLD))
    x = _gss_scalar(cost, a0, b0, n_v)
    if (a0 > lo and x - a0 < tol_v) or (b0 < hi and b0 - x < tol_v):
        x = _gss_scalar(cost, lo, hi, n_full)
    return x


def fit_miracle_voxel(f, b1=1.0, *, flip_angle, tr, settings=None):
    """The MIRACLE algorithm of :func:`fit_miracle` for one voxel, as a plain scalar loop.

    ``f`` is the voxel's ``(F-1, F0, F+1)``; returns ``(t1, t2, rounds)`` (s), ``(0, 0, 0)``
    for an unusable voxel. Reference and benchmark baseline only (slow: the model terms are
    evaluated by :func:`~qmriprep.physics.bssfp.miracle_terms` on 0-d tensors).
    """
    _check(tr)
    settings = MiracleSettings() if settings is None else settings
    mag = np.abs(np.asarray(f, dtype=np.complex128)).astype(np.float64)
    y2, y1 = (float(v) for v in _targets(mag))
    b1 = float(b1)
    if not (np.isfinite(mag).all() and mag.max() > 0 and math.isfinite(y2) and math.isfinite(y1)
            and math.isfinite(b1) and b1 > 0):
        return 0.0, 0.0, 0
    kw = dict(flip_angle=float(flip_angle), tr=float(tr))
    t64 = functools.partial(torch.tensor, dtype=torch.float64)
    b1_t, y2_t, y1_t = t64(b1), t64(y2), t64(y1)
    tol = settings.tol

    t1, t2, dt1, dt2 = settings.t1_init, 0.0, math.inf, math.inf
    k = 0
    for k in range(1, settings.max_rounds + 1):
        t1_t = t64(t1)
        t2n = _step_scalar(lambda x: float(_cost_t2(t64(x), t1_t, b1_t, y2_t, **kw)), t2, dt2,
                           settings)
        t2n_t = t64(t2n)
        t1n = _step_scalar(lambda x: float(_cost_t1(t64(x), t2n_t, b1_t, y1_t, **kw)), t1, dt1,
                           settings)
        dt1, dt2 = t1n - t1, (t2n - t2 if k > 1 else math.inf)
        t1, t2 = t1n, t2n
        if abs(dt2) < tol and abs(dt1) < tol:
            break
    if not (math.isfinite(t1) and math.isfinite(t2)):
        return 0.0, 0.0, 0
    return t1, t2, k
