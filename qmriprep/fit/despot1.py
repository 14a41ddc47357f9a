"""Variable flip angle (VFA / DESPOT1) T1 mapping, vectorised over voxels.

Model (:func:`qmriprep.physics.spgr.spgr`): ``S = M0 sin a' (1 - E1) / (1 - E1 cos a')``,
``E1 = exp(-TR/T1)``, ``a' = B1 a`` (Fram et al. 1987, Magn Reson Imaging 5:201).

Methods
-------
``linear``
    DESPOT1 linearisation (Gupta 1977, J Magn Reson 25:231; Deoni et al. 2003, MRM 49:515):
    ``S/sin a' = E1 (S/tan a') + M0 (1 - E1)``, i.e. ``y = m x + b`` with slope ``m = E1``:
    ``T1 = -TR / ln m``, ``M0 = b / (1 - m)``; undefined (output 0) when ``m <= 0`` or
    ``m >= 1``. Ordinary least squares over the flip angles with a positive signal.
``nlls``
    Levenberg-Marquardt on ``(M0, T1)`` of the SPGR equation itself (no noise distortion
    by the linearising transform; matters at low SNR with >= 3 angles), started from
    ``linear`` (or ``T1 = 1 s`` where the linear fit is undefined). The T1 derivative of the
    model is taken by the complex step through ``physics.spgr``.

Conventions: T1 (s) is clipped to ``[T1_MIN, T1_MAX] = [1 ms, 10 s]`` (M0 then re-solved
at the clipped T1); voxels outside ``mask``, with a non-finite angle signal, fewer than two
positive signals, a non-positive/non-finite B1, an undefined linear fit (method
``linear``) or a non-positive M0 get 0 in every output. float64 throughout.
"""

from __future__ import annotations

import numpy as np
import torch

from ..physics.spgr import spgr
from .monoexp import _finish, _select_voxels

T1_MIN = 1e-3  # s
T1_MAX = 10.0  # s
CHUNK = 65536
_LM_ITERS = 50
_LM_TOL = 1e-8


def fit_vfa(signal, flip_angles, tr, *, b1=None, method="linear", mask=None):
    """Fit T1 and M0 from spoiled gradient echoes at several flip angles.

    Parameters
    ----------
    signal : array (..., n_fa).
    flip_angles : array (n_fa,), nominal flip angles in rad.
    tr : repetition time in s.
    b1 : B1+ map (fraction of nominal) broadcastable to ``signal.shape[:-1]``; None = 1.
    method : "linear" (DESPOT1) or "nlls".
    mask : bool array broadcastable to ``signal.shape[:-1]``; None = every voxel with at
        least two positive signals.

    Returns
    -------
    dict of float32 arrays shaped ``signal.shape[:-1]``: ``t1`` (s), ``r1`` (1/s), ``m0``
    and ``rmse`` (RMS residual of the SPGR model over the flip angles).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {tuple(METHODS)}, got {method!r}")
    signal = np.asarray(signal)
    fa = np.asarray(flip_angles, dtype=np.float64).ravel()
    if signal.ndim < 1 or signal.shape[-1] != fa.size:
        raise ValueError(f"signal last axis {signal.shape[-1:]} must match flip_angles ({fa.size})")
    if fa.size < 2:
        raise ValueError("need at least two flip angles")
    tr = float(tr)
    if not tr > 0:
        raise ValueError(f"tr must be > 0 s, got {tr}")

    y_flat, idx, spatial = _select_voxels(signal, mask, min_positive=2)
    nvox = y_flat.shape[0]
    b1_flat = np.ones(nvox)
    if b1 is not None:
        b1_flat = np.broadcast_to(np.asarray(b1, dtype=np.float64), spatial).ravel()
    ok_b1 = np.isfinite(b1_flat[idx]) & (b1_flat[idx] > 0)
    idx = idx[ok_b1]

    flat = {k: np.zeros(nvox, np.float32) for k in ("t1", "r1", "m0", "rmse")}
    fa_t = torch.as_tensor(fa)
    for start in range(0, idx.size, CHUNK):
        ii = idx[start : start + CHUNK]
        s = torch.from_numpy(np.ascontiguousarray(y_flat[ii], dtype=np.float64))
        scale = s.abs().amax(1)
        s = s / scale[:, None]
        a = torch.from_numpy(b1_flat[ii].copy())[:, None] * fa_t  # actual angles (N, n_fa)
        m0, t1, ok = METHODS[method](s, a, tr)
        clipped = (t1 < T1_MIN) | (t1 > T1_MAX)
        t1 = t1.clamp(T1_MIN, T1_MAX)
        m0 = torch.where(clipped, _project_m0(s, t1, a, tr), m0)
        rmse = (s - spgr(m0[:, None], t1[:, None], a, tr)).square().mean(1).sqrt()
        m0 = torch.where(ok, m0, torch.zeros_like(m0))  # undefined -> 0 (zeroed by _finish)
        with np.errstate(over="ignore", invalid="ignore"):  # float32 overflow -> inf -> zeroed
            flat["t1"][ii] = t1.numpy()
            flat["r1"][ii] = (1.0 / t1).numpy()
            flat["m0"][ii] = (m0 * scale).numpy()
            flat["rmse"][ii] = (rmse * scale).numpy()
    return _finish(flat, spatial, positive="m0")


def linear(s, a, tr):
    """DESPOT1 OLS over the angles with s > 0; returns (M0, T1, defined)."""
    w = (s > 0).to(s.dtype)
    x = s / torch.tan(a)
    y = s / torch.sin(a)
    n = w.sum(1)
    sx, sy = (w * x).sum(1), (w * y).sum(1)
    sxx, sxy = (w * x * x).sum(1), (w * x * y).sum(1)
    m = (n * sxy - sx * sy) / (n * sxx - sx * sx)
    b = (sy - m * sx) / n
    ok = torch.isfinite(m) & (m > 0) & (m < 1) & torch.isfinite(b)
    mm = torch.where(ok, m, torch.full_like(m, 0.5))
    t1 = -tr / torch.log(mm)
    m0 = b / (1 - mm)
    return m0, t1, ok


def nlls(s, a, tr):
    """Levenberg-Marquardt on the SPGR equation from the DESPOT1 start (T1 = 1 s where the
    linear fit is undefined); returns (M0, T1, defined)."""
    m0, t1, ok = linear(s, a, tr)
    t1 = torch.where(ok, t1, torch.ones_like(t1))
    m0 = torch.where(ok, m0, _project_m0(s, t1, a, tr))
    m0, t1 = _lm(s, a, tr, m0, t1)
    return m0, t1, torch.isfinite(t1) & torch.isfinite(m0)


#: the methods of :func:`fit_vfa`, by name
METHODS = {f.__name__: f for f in (linear, nlls)}


def _project_m0(s, t1, a, tr):
    """Least-squares M0 for a given T1 (the model is linear in M0)."""
    f = spgr(1.0, t1[:, None], a, tr)
    return (f * s).sum(1) / (f * f).sum(1).clamp_min(1e-300)


def _model_and_dt1(t1, a, tr):
    """spgr(1, T1) and its T1 derivative by the complex step (Squire & Trapp 1998, SIAM Rev
    40:110): ``f'(x) = Im f(x + ih) / h``, exact to rounding for analytic ``f``, straight
    through ``physics.spgr`` (no derivative formula written out, no autograd set-up)."""
    h = 1e-30 * t1.abs().clamp_min(1e-3)
    f = spgr(1.0, torch.complex(t1, h)[:, None], a, tr)
    return f.real, f.imag / h[:, None]


def _lm(s, a, tr, m0, t1):
    """Levenberg-Marquardt on (M0, T1), all voxels at once; converged voxels drop out."""
    f, df = _model_and_dt1(t1, a, tr)

    def terms(s_, m_, f_, df_):
        r = s_ - m_[:, None] * f_
        j1 = m_[:, None] * df_  # J = [f, M0 df/dT1]
        return (
            (r * r).sum(1),
            (f_ * f_).sum(1),
            (f_ * j1).sum(1),
            (j1 * j1).sum(1),
            (f_ * r).sum(1),
            (j1 * r).sum(1),
        )

    cost, haa, hat, htt, ga, gt = terms(s, m0, f, df)
    lam = torch.full_like(m0, 1e-3)
    act = torch.arange(s.shape[0])
    for _ in range(_LM_ITERS):
        if act.numel() == 0:
            break
        la = lam[act]
        daa, dtt, dat = haa[act] * (1 + la), htt[act] * (1 + la), hat[act]
        det = daa * dtt - dat * dat
        dm = torch.nan_to_num((ga[act] * dtt - dat * gt[act]) / det)
        dt = torch.nan_to_num((daa * gt[act] - dat * ga[act]) / det)
        m_old, t_old = m0[act], t1[act]
        m_new, t_new = m_old + dm, (t_old + dt).clamp(T1_MIN, T1_MAX)
        fn, dfn = _model_and_dt1(t_new, a[act], tr)
        cn, haan, hatn, httn, gan, gtn = terms(s[act], m_new, fn, dfn)
        c_old = cost[act]
        ok = cn <= c_old
        sel = lambda new, old: torch.where(ok, new, old)  # noqa: E731
        m0[act], t1[act], cost[act] = sel(m_new, m_old), sel(t_new, t_old), sel(cn, c_old)
        haa[act], hat[act], htt[act] = sel(haan, haa[act]), sel(hatn, hat[act]), sel(httn, htt[act])
        ga[act], gt[act] = sel(gan, ga[act]), sel(gtn, gt[act])
        lam[act] = torch.where(ok, la * 0.1, la * 10.0).clamp(1e-12, 1e12)
        small = (t_new - t_old).abs() <= _LM_TOL * t_old
        small &= (m_new - m_old).abs() <= _LM_TOL * m_old.abs()
        flat = (cn - c_old).abs() <= 1e-12 * c_old + 1e-24
        done = (ok & small) | flat | (la >= 1e12)
        act = act[~done]
    return m0, t1
