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
cycles off resonance they bias the fit strongly: :mod:`qmriprep.fit.miracle_alias` takes them
out (the estimator does, for complex configurations).

Solved per voxel by compiled kernels (:mod:`qmriprep.fit.miracle_kernels`, numba; blocks of
:data:`CHUNK` voxels on ``torch.get_num_threads()`` threads, with progress lines). The GSS
lower bound 0 is replaced by ``LOWER_MIN``; non-finite costs count as ``BIG`` (``exp(TR/T2)``
overflows at tiny T2): no NaN reaches the output.

Settings (:class:`MiracleSettings`): ``search="newton"`` (default) computes the fixed point of
the seed's alternation directly: both GSS steps return the root of their ratio equation in the
bracket (the ratios are monotone there) or the bracket end nearest to it, so the fixed point is
the joint root of the two equations (a coordinate at a bound when its root lies beyond),
found by a projected Newton iteration with the analytic Jacobian from one coarse alternation
round; where Newton fails, the alternation itself runs. ``search="full"`` is the seed's
algorithm: alternate GSS steps on all of ``bounds`` (33 iterations at tol 1e-6 s from a 5 s
bracket), starting from ``T1 = t1_init``, until both change by less than ``tol`` in a round.
The alternation contracts by ~0.6-0.7 per round for brain tissue (WM ~17, GM ~25 rounds) but
by ~0.97 when T2 approaches T1 (CSF, T1/T2 ~ 4/2 s): there it stops at ``max_rounds``, ~0.5 %
short of its fixed point (flagged ``not_converged``), while Newton converges in ~5-10
iterations. Both agree within 1e-5 (relative) wherever the alternation converges.

Speed (``benchmarks/bench_miracle.py``: 1.5 M brain voxels incl. 15 % CSF, 12 cycles): ``newton``
2.5-2.7 s of CPU (1.7 us per voxel: 30 GSS evaluations, then 4-8 Newton iterations; voxel
blocks on threads, so ~1.3 s on 2 free cores); ``full`` needs 40-55x, the vectorised torch
search this replaced (``warm``) 65-70x and the per-voxel torch loop ~1.5-3e5x that CPU time.

:func:`fit_miracle_voxel` is the seed's algorithm as a plain scalar loop on the torch model
terms (an independent implementation: the benchmark's baseline and the tests' reference).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ..physics.bssfp import miracle_terms
from ..utils.progress import Progress
from . import miracle_kernels as kernels

CHUNK = 16_384  # voxels per kernel call (blocks shared by the threads; progress updates)
LOWER_MIN = 1e-9  # s: replaces a GSS lower bound of 0 (E = exp(-TR/0))
SEARCHES = ("newton", "full")
_BIG = kernels.BIG  # cost of an undefined model
_LOG_GOLD = math.log(kernels.GOLD)


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
    convergence threshold (s). ``max_rounds``: T2/T1 rounds at most. ``search``: ``"newton"``
    (the alternation's fixed point by Newton) or ``"full"`` (the seed's alternation).
    """

    t1_init: float = 1.0
    bounds: tuple[float, float] = (0.0, 5.0)
    tol: float = 1e-6
    max_rounds: int = 200
    search: str = "newton"

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


def _targets(mag):
    """Measured ratios ``(f-1/(f0 - f1), f1/f0)`` of magnitudes ``(..., 3)``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return mag[..., 0] / (mag[..., 1] - mag[..., 2]), mag[..., 2] / mag[..., 1]


def _check(tr):
    if not float(tr) > 0:
        raise ValueError(f"tr must be > 0 s, got {tr}")


def _solve(y, b1, params, chunk, progress=True):
    """:func:`~qmriprep.fit.miracle_kernels.fit_voxels` on blocks of ``chunk`` voxels, on
    ``torch.get_num_threads()`` threads (progress lines unless ``progress`` is False); ``(n, 4)``
    rows ``(T1, T2, rounds, status)``."""
    out = np.zeros((y.shape[0], 4))
    progress = Progress("MIRACLE T1/T2", y.shape[0], unit="voxels") if progress else None
    blocks = [slice(s, s + chunk) for s in range(0, y.shape[0], chunk)]
    with ThreadPoolExecutor(max(1, torch.get_num_threads())) as pool:
        jobs = [pool.submit(kernels.fit_voxels, y[b], b1[b], params, out[b]) for b in blocks]
        for job, block in zip(jobs, blocks):
            job.result()
            done = min(block.stop, y.shape[0])
            if progress is not None:
                progress.update(done, final=done == y.shape[0])
    return out


def fit_miracle(features, b1=None, *, flip_angle, tr, settings=None, mask=None, chunk=CHUNK, progress=True):
    """MIRACLE T1/T2 maps from normalised bSSFP configurations, every voxel independently.

    Parameters
    ----------
    features : array (..., 3), complex or magnitude, ordered ``(F-1, F0, F+1)`` as produced
        by :func:`qmriprep.physics.bssfp.fourier_features` (only magnitudes are used).
    b1 : B1+ map (fraction of nominal) broadcastable to ``features.shape[:-1]``; None = 1.
    flip_angle : nominal flip angle (rad). tr : repetition time (s).
    settings : :class:`MiracleSettings` (start, bracket, tolerance, rounds, search); None = the
        defaults (Newton on the fixed point of the seed's alternation).
    mask : bool array broadcastable to ``features.shape[:-1]``; None = all voxels.
    chunk : voxels per kernel call and progress update.
    progress : False: no progress lines (a caller fitting again and again shows its own).

    Returns
    -------
    dict: ``t1``, ``t2`` (s, float32), ``rounds`` (int32: alternation rounds, or 1 + Newton
    iterations) and ``not_converged`` (bool: the alternation stopped at ``max_rounds``) shaped
    ``features.shape[:-1]``; 0 (False) outside the mask and for all-zero, non-finite or
    non-positive-B1 voxels.
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

    lo, hi = settings.bracket
    params = np.array([flip_angle, tr, settings.t1_init, lo, hi, settings.tol, settings.max_rounds,
                       settings.search == "newton"], dtype=np.float64)
    res = _solve(np.stack([y2[idx], y1[idx]], 1), np.ascontiguousarray(b1_flat[idx]), params,
                 int(chunk), progress)
    maps = {"t1": np.zeros(mag.shape[0], np.float32), "t2": np.zeros(mag.shape[0], np.float32),
            "rounds": np.zeros(mag.shape[0], np.int32), "not_converged": np.zeros(mag.shape[0], bool)}
    maps["t1"][idx], maps["t2"][idx], maps["rounds"][idx] = res[:, 0], res[:, 1], res[:, 2]
    maps["not_converged"][idx] = res[:, 3] == kernels.STATUS_NOT_CONVERGED
    bad = ~(np.isfinite(maps["t1"]) & np.isfinite(maps["t2"]))
    for v in maps.values():
        v[bad] = 0
    return {k: v.reshape(spatial) for k, v in maps.items()}


# ----------------------------------------------------------------------------------------
# reference: one voxel at a time, on the torch model terms


def _cost_t2(t2, t1, b1, target, *, flip_angle, tr):
    """``| f-1/(f0 - f1) - Fm1m e^{TR/T2} / (F0m - F1m) |`` (NaN, inf -> ``_BIG``)."""
    (fm1m, f0m, f1m), _ = miracle_terms(t1, t2, b1, flip_angle=flip_angle, tr=tr)
    cost = torch.abs(target - fm1m * torch.exp(tr / t2) / (f0m - f1m))
    return torch.nan_to_num(cost, nan=_BIG, posinf=_BIG)


def _cost_t1(t1, t2, b1, target, *, flip_angle, tr):
    """``| f1/f0 - (p - r)/q |`` (NaN, inf -> ``_BIG``)."""
    _, (p, q, r) = miracle_terms(t1, t2, b1, flip_angle=flip_angle, tr=tr)
    return torch.nan_to_num(torch.abs(target - (p - r) / q), nan=_BIG, posinf=_BIG)


def _gss_scalar(cost, a, b, n_iter):
    c, d = b - kernels.GOLD * (b - a), a + kernels.GOLD * (b - a)
    fc, fd = cost(c), cost(d)
    for _ in range(n_iter):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - kernels.GOLD * (b - a)
            fc = cost(c)
        else:
            a, c, fc = c, d, fd
            d = a + kernels.GOLD * (b - a)
            fd = cost(d)
    return 0.5 * (a + b)


def fit_miracle_voxel(f, b1=1.0, *, flip_angle, tr, settings=None):
    """The seed's alternation (``search="full"`` of :func:`fit_miracle`) for one voxel, as a
    plain scalar loop on :func:`~qmriprep.physics.bssfp.miracle_terms` (0-d tensors).

    ``f`` is the voxel's ``(F-1, F0, F+1)``; returns ``(t1, t2, rounds)`` (s), ``(0, 0, 0)``
    for an unusable voxel. Reference and benchmark baseline only (slow).
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
    (lo, hi), tol = settings.bracket, settings.tol
    n_iter = gss_iterations(lo, hi, tol)

    t1, t2, k = settings.t1_init, 0.0, 0
    for k in range(1, settings.max_rounds + 1):
        t1_t = t64(t1)
        t2n = _gss_scalar(lambda x: float(_cost_t2(t64(x), t1_t, b1_t, y2_t, **kw)), lo, hi, n_iter)
        t2n_t = t64(t2n)
        t1n = _gss_scalar(lambda x: float(_cost_t1(t64(x), t2n_t, b1_t, y1_t, **kw)), lo, hi, n_iter)
        dt1, dt2 = t1n - t1, (t2n - t2 if k > 1 else math.inf)
        t1, t2 = t1n, t2n
        if abs(dt2) < tol and abs(dt1) < tol:
            break
    if not (math.isfinite(t1) and math.isfinite(t2)):
        return 0.0, 0.0, 0
    return t1, t2, k
