"""Mono-exponential T2 / T2* estimation, vectorised over voxels.

Model (:func:`qmriprep.physics.exponential.monoexp`): ``S(TE) = M0 exp(-TE R2) + c``,
``R2 = 1/T2``; the offset ``c`` (noise floor) only with ``offset=True``.

Methods
-------
``loglinear``
    Weighted linear least squares on ``log S`` with weights ``S^2`` (first-order correction
    of the noise amplification by the log; Bevington & Robinson, *Data Reduction and Error
    Analysis*, 2003, ch. 6). Echoes with ``S <= 0`` get weight 0.
``nlls``
    Levenberg-Marquardt on ``(M0, R2[, c])`` (Marquardt 1963, SIAM J Appl Math 11:431),
    started from ``loglinear``; all voxels advance together (batched normal equations solved
    in closed form, converged voxels drop out, the slowest ~1 % of every chunk are finished
    together in one batch).
``varpro``
    Variable projection (Golub & Pereyra 1973, SIAM J Numer Anal 10:413): for a given R2 the
    linear parameters are solved in closed form, ``M0 = e.y / e.e`` with ``e = exp(-TE R2)``
    (with an offset, ``e`` and ``y`` are centred first, which projects out the constant),
    so only the 1-D cost ``(e.y)^2 / e.e`` is searched: a log-spaced R2 grid (one matrix
    product) brackets the maximum, then safeguarded Newton steps in ``log R2`` polish it.

Without offset ``nlls`` and ``varpro`` minimise the same least-squares cost and agree to
numerical precision; ``varpro`` is the more robust (global grid) and faster.

Conventions: T2 (s) is clipped to ``[T2_MIN, T2_MAX] = [0.1 ms, 10 s]``; voxels outside
``mask``, with a non-finite echo, fewer than two positive echoes, or a non-positive or
non-finite fitted M0 get 0 in every output. Internally each voxel is scaled by its largest
echo and fitted in float64 with torch on chunks of ``CHUNK`` voxels (time origin shifted to
the first echo for conditioning; float32 would be faster but leaves a tail of voxels whose
Newton steps stall at its rounding level); M0 is reported at ``TE = 0``. The torch thread
count is the caller's (``torch.set_num_threads``).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..physics.exponential import monoexp

T2_MIN = 1e-4  # s
T2_MAX = 10.0  # s
R2_MIN, R2_MAX = 1.0 / T2_MAX, 1.0 / T2_MIN
CHUNK = 32768  # voxels per batch: the working set of a chunk stays in cache
DTYPE = torch.float64
N_GRID = 64  # log-spaced R2 grid of the VarPro search (neighbour ratio 1.2)
_NEWTON_ITERS = 30
_NEWTON_TOL = 1e-4  # last Newton step on log R2 (quadratic convergence: error after it ~1e-8)
_LM_ITERS = 60
_LM_TOL = 1e-4  # converged when the next relative step is below this (then taken unchecked)
_LM_TOL_OFFSET = 1e-5  # with an offset the valley is flatter and convergence slower: stricter
_LM_FTOL = 1e-6  # relative cost change below which the fit is taken as converged


def fit_monoexp(signal, te, *, method=None, drop_first_echo=False, offset=False, mask=None):
    """Fit ``S(TE) = M0 exp(-TE/T2) [+ offset]`` voxel-wise.

    Parameters
    ----------
    signal : array (..., n_echo), magnitude echoes.
    te : array (n_echo,), echo times in s.
    method : a name of :data:`METHODS` (log-linear, NLLS, VarPro; default VarPro).
    drop_first_echo : exclude echo 1 (stimulated-echo contamination in MESE).
    offset : also fit a constant noise floor (``nlls`` and ``varpro`` only).
    mask : bool array broadcastable to ``signal.shape[:-1]``; None fits every voxel with
        at least two positive echoes.

    Returns
    -------
    dict of float32 arrays shaped ``signal.shape[:-1]``: ``t2`` (s), ``r2`` (1/s), ``m0``,
    ``rmse`` (RMS residual over the echoes used) and ``offset`` when ``offset=True``.
    """
    method = method or varpro.__name__
    if method not in METHODS:
        raise ValueError(f"method must be one of {tuple(METHODS)}, got {method!r}")
    solver = METHODS[method]
    if offset and solver is loglinear:
        raise ValueError("offset=True needs method 'nlls' or 'varpro' (not log-linear)")
    signal = np.asarray(signal)
    te = np.asarray(te, dtype=np.float64).ravel()
    if signal.ndim < 1 or signal.shape[-1] != te.size:
        raise ValueError(f"signal last axis ({signal.shape[-1:]}) must match te ({te.size})")
    if drop_first_echo:
        signal, te = signal[..., 1:], te[1:]
    n_min = 3 if offset else 2
    if te.size < n_min:
        raise ValueError(f"need at least {n_min} echoes, got {te.size}")

    keys = ["t2", "r2", "m0", "rmse"] + (["offset"] if offset else [])
    y_flat, idx, spatial = _select_voxels(signal, mask, min_positive=2)
    flat = {k: np.zeros(y_flat.shape[0], np.float32) for k in keys}
    t0 = float(te.min())
    tt = torch.as_tensor(te - t0, dtype=DTYPE)  # shifted echo times: e(first) = 1
    tail = []  # nlls: voxels still iterating when their chunk is nearly done, fitted together
    for start in range(0, idx.size, CHUNK):
        ii = idx[start : start + CHUNK]
        y = torch.from_numpy(np.ascontiguousarray(y_flat[ii], dtype=np.float64)).to(DTYPE)
        scale = y.amax(1, keepdim=True)
        y = y / scale
        fit, left = solver(y, tt, offset, min_active=max(64, ii.size // 100))
        if left is not None and left.numel():
            tail.append((ii[left.numpy()], y[left], scale[left], *(v[left] for v in fit)))
        _store(flat, ii, y, scale, fit, tt, t0, offset)
    if tail:  # one batch for the slow voxels of every chunk: per-iteration overhead paid once
        cols = list(zip(*tail))
        ii = np.concatenate(cols[0])
        y, scale, amp, r2, c = (torch.cat(v) for v in cols[1:])
        *fit, _ = _nlls(y, tt, offset, start=(amp, r2, c))
        _store(flat, ii, y, scale, fit, tt, t0, offset)
    return _finish(flat, spatial, positive="m0")


def _store(flat, ii, y, scale, fit, t, t0, offset):
    """Write the maps of voxels ``ii`` (scaled fit ``(A, R2, c)`` at shifted times) in physical
    units."""
    amp, r2, c = fit
    r2 = r2.clamp(R2_MIN, R2_MAX)
    resid = y - monoexp(amp[:, None], 1.0 / r2[:, None], t, c[:, None])
    rmse = resid.square().mean(1).sqrt()
    s = scale[:, 0].double()
    r2d = r2.double()
    with np.errstate(over="ignore", invalid="ignore"):  # float32 overflow -> inf -> zeroed
        flat["r2"][ii] = r2d.numpy()
        flat["t2"][ii] = (1.0 / r2d).numpy()
        flat["m0"][ii] = (amp.double() * s * torch.exp(r2d * t0)).numpy()  # back to TE = 0
        flat["rmse"][ii] = (rmse.double() * s).numpy()
        if offset:
            flat["offset"][ii] = (c.double() * s).numpy()


# ----------------------------------------------------------------------------------------
# shared helpers (also used by despot1)


def _select_voxels(signal, mask, *, min_positive):
    """Flatten to (n_vox, n) and list the voxels worth fitting (finite, enough positive)."""
    spatial = signal.shape[:-1]
    y = signal.reshape(-1, signal.shape[-1])
    finite = np.isfinite(y).all(1)
    valid = finite & ((y > 0).sum(1) >= min_positive)
    if mask is not None:
        valid &= np.broadcast_to(np.asarray(mask, dtype=bool), spatial).ravel()
    return y, np.flatnonzero(valid), spatial


def _finish(flat, spatial, *, positive):
    """Zero every output of voxels with a non-finite output or a non-positive ``positive``."""
    bad = ~(flat[positive] > 0)
    for v in flat.values():
        bad |= ~np.isfinite(v)
    out = {}
    for k, v in flat.items():
        v[bad] = 0.0
        out[k] = v.reshape(spatial)
    return out


def _moments(t, k):
    """Columns ``[1, t, ..., t^(k-1)]`` (n, k): weighted sums by one matrix product."""
    return torch.stack([t**p for p in range(k)], 1)


# ----------------------------------------------------------------------------------------
# the methods: scaled echoes y (N, n) at shifted times t -> ((A, R2, c), stragglers or None)


def loglinear(y, t, offset=False, min_active=0):
    """Weighted log-linear least squares (weights S^2); no offset."""
    return _loglinear(y, t), None


def varpro(y, t, offset=False, min_active=0):
    """Variable projection: A (and c) in closed form, 1-D search over R2 (Golub & Pereyra 1973)."""
    return _varpro(y, t, offset), None


def nlls(y, t, offset=False, min_active=0):
    """Levenberg-Marquardt from the log-linear start; returns the voxels still iterating when at
    most ``min_active`` are left (resumed together by :func:`fit_monoexp`)."""
    *fit, left = _nlls(y, t, offset, min_active=min_active)
    return tuple(fit), left


#: the methods of :func:`fit_monoexp`, by name
METHODS = {f.__name__: f for f in (loglinear, nlls, varpro)}


# ----------------------------------------------------------------------------------------
# log-linear


def _loglinear(y, t):
    """Weighted LS of ``log y = log A - R t`` with weights ``y^2``; returns (A, R, 0)."""
    pos = y > 0
    w = torch.where(pos, y * y, torch.zeros((), dtype=y.dtype))
    logy = torch.where(pos, torch.log(torch.where(pos, y, torch.ones((), dtype=y.dtype))), 0.0)
    s = w @ _moments(t, 3)  # sum w, sum w t, sum w t^2
    z = (w * logy) @ _moments(t, 2)  # sum w log y, sum w t log y
    w0, w1, w2 = s.unbind(1)
    z0, z1 = z.unbind(1)
    det = w0 * w2 - w1 * w1
    slope = (w0 * z1 - w1 * z0) / det
    icpt = (w2 * z0 - w1 * z1) / det
    r2 = (-slope).nan_to_num(R2_MIN, R2_MAX, R2_MIN).clamp(R2_MIN, R2_MAX)
    amp = torch.exp(icpt.clamp(max=80.0)).nan_to_num(0.0)
    return amp, r2, torch.zeros_like(amp)


# ----------------------------------------------------------------------------------------
# variable projection


def _vp_terms(y, t, r2, offset, mom):
    """a = e.y (y centred if offset), b = e.e (centred), and their R2 derivatives."""
    n = t.numel()
    e = monoexp(1.0, 1.0 / r2[:, None], t)
    a0, a1, a2 = ((e * y) @ mom).unbind(1)
    q0, q1, q2 = ((e * e) @ mom).unbind(1)
    a, a_r, a_rr = a0, -a1, a2
    if offset:
        s0, s1, s2 = (e @ mom).unbind(1)
        b = q0 - s0 * s0 / n
        b_r = -2 * q1 + 2 * s0 * s1 / n
        b_rr = 4 * q2 - 2 * (s1 * s1 + s0 * s2) / n
    else:
        b, b_r, b_rr = q0, -2 * q1, 4 * q2
    return a, a_r, a_rr, b, b_r, b_rr


def _varpro(y, t, offset):
    """VarPro fit on scaled data y (N, n); returns amplitude at t=0 (shifted), R2, offset."""
    yc = y - y.mean(1, keepdim=True) if offset else y
    mom = _moments(t, 3)
    # 1) grid: maximise g(R) = e.y / |e| over log-spaced R (one matmul)
    ugrid = torch.linspace(math.log(R2_MIN), math.log(R2_MAX), N_GRID, dtype=torch.float64)
    egrid = monoexp(1.0, torch.exp(-ugrid)[None, :], t.double()[:, None])  # (n, G)
    if offset:
        egrid = egrid - egrid.mean(0, keepdim=True)
    egrid = egrid / egrid.norm(dim=0, keepdim=True).clamp_min(1e-300)
    k = (yc.float() @ egrid.float()).argmax(1)  # float32 is plenty to bracket the maximum
    ug = ugrid.to(y.dtype)
    u = ug[k]
    lo = ug[(k - 1).clamp(min=0)]
    hi = ug[(k + 1).clamp(max=N_GRID - 1)]
    edge = (k == 0) | (k == N_GRID - 1)  # optimum beyond the T2 range: keep the clipped end
    lo = torch.where(edge, u, lo)
    hi = torch.where(edge, u, hi)
    # 2) safeguarded Newton on g(u), u = log R, inside the shrinking bracket [lo, hi]
    act = torch.nonzero(~edge).squeeze(1)
    for _ in range(_NEWTON_ITERS):
        if act.numel() == 0:
            break
        ua, loa, hia = u[act], lo[act], hi[act]
        r = torch.exp(ua)
        a, a_r, a_rr, b, b_r, b_rr = _vp_terms(yc[act], t, r, offset, mom)
        ib = b.clamp_min(1e-30).rsqrt()  # b^-1/2
        ib3 = ib * ib * ib
        g_r = a_r * ib - 0.5 * a * b_r * ib3
        g_rr = a_rr * ib - a_r * b_r * ib3 + 0.75 * a * b_r * b_r * ib3 * ib * ib
        g_rr = g_rr - 0.5 * a * b_rr * ib3
        g_u = r * g_r
        g_uu = r * r * g_rr + g_u
        up = g_u > 0  # maximum lies to the right of u
        loa = torch.where(up, ua, loa)
        hia = torch.where(up, hia, ua)
        unew = ua - g_u / g_uu
        bad = ~((g_uu < 0) & (unew > loa) & (unew < hia))
        unew = torch.where(bad, 0.5 * (loa + hia), unew)
        done = ((unew - ua).abs() < _NEWTON_TOL) | ((hia - loa) < _NEWTON_TOL)
        u[act], lo[act], hi[act] = unew, loa, hia
        act = act[~done]
    r2 = torch.exp(u).clamp(R2_MIN, R2_MAX)
    e = monoexp(1.0, 1.0 / r2[:, None], t)
    if offset:
        ec = e - e.mean(1, keepdim=True)
        amp = (ec * yc).sum(1) / (ec * ec).sum(1).clamp_min(1e-30)
        c = y.mean(1) - amp * e.mean(1)
    else:
        amp = (e * y).sum(1) / (e * e).sum(1).clamp_min(1e-30)
        c = torch.zeros_like(amp)
    return amp, r2, c


# ----------------------------------------------------------------------------------------
# Levenberg-Marquardt


def _lm_eval(y, ysum, ysq, t, params, offset, mom):
    """Cost, normal matrix ``[aa, ar, rr, ac, rc, cc]`` and gradient ``[a, r, c]`` (N, 10) at
    ``params = (A, R2, c)``.

    ``J = [df/dA, df/dR, df/dc] = [e, -A t e, 1]``. The residual ``r = y - (A e + c)`` is
    never formed: its sums follow from the moments of ``e.y``, ``e.e`` and ``e`` (float64
    keeps the expanded cost accurate).
    """
    n = t.numel()
    amp, r2, c = params
    e = monoexp(1.0, 1.0 / r2[:, None], t)
    p0, p1, _ = ((e * y) @ mom).unbind(1)  # sum e y, sum t e y
    q0, q1, q2 = ((e * e) @ mom).unbind(1)
    a2 = amp * amp
    if offset:
        s0, s1, _ = (e @ mom).unbind(1)
        er0 = p0 - amp * q0 - c * s0  # sum e r
        er1 = p1 - amp * q1 - c * s1  # sum t e r
        rs = ysum - amp * s0 - n * c  # sum r
        cost = ysq - 2 * amp * p0 - 2 * c * ysum + a2 * q0 + 2 * amp * c * s0 + n * c * c
        cc = torch.full_like(q0, float(n))
    else:
        er0 = p0 - amp * q0
        er1 = p1 - amp * q1
        cost = ysq - 2 * amp * p0 + a2 * q0
        s0 = s1 = rs = torch.zeros_like(q0)
        cc = torch.ones_like(q0)  # decoupled dummy: dc = 0
    return torch.stack(
        [cost.clamp_min(0.0), q0, -amp * q1, a2 * q2, s0, -amp * s1, cc, er0, -amp * er1, rs], 1
    )


def _lm_step(hg, lam):
    """Solve (H + lam diag H) d = g for (N, 3) in closed form (Cramer); hg as _lm_eval."""
    aa, ar, rr, ac, rc, cc, ga, gr, gc = hg[:, 1:].unbind(1)
    f = 1 + lam
    daa, drr, dcc = aa * f, rr * f, cc * f
    c00, c01, c02 = drr * dcc - rc * rc, -(ar * dcc - rc * ac), ar * rc - drr * ac
    c11, c12 = daa * dcc - ac * ac, -(daa * rc - ar * ac)
    c22 = daa * drr - ar * ar
    det = daa * c00 + ar * c01 + ac * c02
    d = torch.stack(
        [
            c00 * ga + c01 * gr + c02 * gc,
            c01 * ga + c11 * gr + c12 * gc,
            c02 * ga + c12 * gr + c22 * gc,
        ],
        1,
    )
    return torch.nan_to_num(d / det[:, None], 0.0, 0.0, 0.0)


def _nlls(y, t, offset, start=None, min_active=0):
    """LM on (A, R2[, c]) from the log-linear start (or ``start``); y scaled, t shifted.

    Stops early once at most ``min_active`` voxels still iterate and returns their indices
    (to be resumed in a batch with other chunks' stragglers) after the parameters. The
    per-voxel state is one (N, 14) tensor [A, R2, c, cost, H (6), g (3), lambda]: one gather
    and one scatter per iteration.
    """
    amp, r2, c = _loglinear(y, t) if start is None else (v.clone() for v in start)
    mom = _moments(t, 3)
    ysum, ysq = y.sum(1), (y * y).sum(1)
    hg = _lm_eval(y, ysum, ysq, t, (amp, r2, c), offset, mom)
    state = torch.cat([torch.stack([amp, r2, c], 1), hg, torch.full_like(amp, 1e-3)[:, None]], 1)
    act = torch.arange(y.shape[0])
    tol = _LM_TOL_OFFSET if offset else _LM_TOL
    for _ in range(_LM_ITERS):
        if act.numel() <= min_active:
            break
        st = state[act]
        p_old, hg_old, lam = st[:, :3], st[:, 3:13], st[:, 13]
        p_new = p_old + _lm_step(hg_old, lam)
        p_new[:, 1].clamp_(R2_MIN, R2_MAX)
        hg_new = _lm_eval(y[act], ysum[act], ysq[act], t, p_new.unbind(1), offset, mom)
        cost_old, cost_new = hg_old[:, 0], hg_new[:, 0]
        ok = cost_new <= cost_old
        lam = torch.where(ok, lam * 0.1, lam * 10.0).clamp(1e-9, 1e9)
        keep = torch.where(ok[:, None], torch.cat([p_new, hg_new], 1), st[:, :13])
        # converged when the next step, known without a new evaluation, is small: take it
        # unchecked (Gauss-Newton near the minimum: the error after it is ~ step^2)
        nxt = _lm_step(keep[:, 3:], lam)
        small = ok & (nxt[:, 1].abs() <= tol * keep[:, 1]) & (nxt[:, 0].abs() <= tol * keep[:, 0].abs())
        if offset:
            small &= nxt[:, 2].abs() <= tol * (keep[:, 0].abs() + keep[:, 2].abs())
        keep[:, :3] += torch.where(small[:, None], nxt, torch.zeros_like(nxt))
        keep[:, 1].clamp_(R2_MIN, R2_MAX)
        state[act] = torch.cat([keep, lam[:, None]], 1)
        flat = ok & ((cost_old - cost_new) <= _LM_FTOL * cost_old + 1e-24)
        done = small | flat | (st[:, 13] >= 1e9)
        act = act[~done]
    amp, r2, c = state[:, :3].unbind(1)
    return amp, r2, (c if offset else torch.zeros_like(c)), act
