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
    in closed form, converged voxels drop out).
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
echo and fitted in float32 with torch on chunks of ``CHUNK`` voxels (time origin shifted to
the first echo for conditioning); M0 is reported at ``TE = 0``.
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
DTYPE = torch.float32
N_GRID = 64  # log-spaced R2 grid of the VarPro search (neighbour ratio 1.2)
_NEWTON_ITERS = 30
_NEWTON_TOL = 1e-4  # last Newton step on log R2 (quadratic: error after it ~1e-7, float32 level)
_LM_ITERS = 60
_LM_TOL = 1e-4  # relative parameter step after which the fit is taken as converged
_LM_FTOL = 1e-6  # relative cost change below float32 resolution: converged
METHODS = ("loglinear", "nlls", "varpro")


def fit_monoexp(signal, te, *, method="varpro", drop_first_echo=False, offset=False, mask=None):
    """Fit ``S(TE) = M0 exp(-TE/T2) [+ offset]`` voxel-wise.

    Parameters
    ----------
    signal : array (..., n_echo), magnitude echoes.
    te : array (n_echo,), echo times in s.
    method : "loglinear" | "nlls" | "varpro".
    drop_first_echo : exclude echo 1 (stimulated-echo contamination in MESE).
    offset : also fit a constant noise floor (``nlls`` and ``varpro`` only).
    mask : bool array broadcastable to ``signal.shape[:-1]``; None fits every voxel with
        at least two positive echoes.

    Returns
    -------
    dict of float32 arrays shaped ``signal.shape[:-1]``: ``t2`` (s), ``r2`` (1/s), ``m0``,
    ``rmse`` (RMS residual over the echoes used) and ``offset`` when ``offset=True``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if offset and method == "loglinear":
        raise ValueError("offset=True needs method 'nlls' or 'varpro' (log-linear cannot fit a floor)")
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
    fitter = {"loglinear": _loglinear, "nlls": _nlls, "varpro": _varpro}[method]
    for start in range(0, idx.size, CHUNK):
        ii = idx[start : start + CHUNK]
        y = torch.from_numpy(np.ascontiguousarray(y_flat[ii], dtype=np.float32)).to(DTYPE)
        scale = y.amax(1, keepdim=True)
        y = y / scale
        if method == "loglinear":
            amp, r2, c = fitter(y, tt)
        else:
            amp, r2, c = fitter(y, tt, offset)
        r2 = r2.clamp(R2_MIN, R2_MAX)
        resid = y - monoexp(amp[:, None], 1.0 / r2[:, None], tt, c[:, None])
        rmse = resid.square().mean(1).sqrt()
        s = scale[:, 0].double()
        r2d = r2.double()
        flat["r2"][ii] = r2d.numpy()
        flat["t2"][ii] = (1.0 / r2d).numpy()
        flat["m0"][ii] = (amp.double() * s * torch.exp(r2d * t0)).numpy()  # back to TE = 0
        flat["rmse"][ii] = (rmse.double() * s).numpy()
        if offset:
            flat["offset"][ii] = (c.double() * s).numpy()
    return _finish(flat, spatial, positive="m0")


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
    n = t.numel()
    yc = y - y.mean(1, keepdim=True) if offset else y
    mom = _moments(t, 3)
    # 1) grid: maximise g(R) = e.y / |e| over log-spaced R (one matmul)
    ugrid = torch.linspace(math.log(R2_MIN), math.log(R2_MAX), N_GRID, dtype=torch.float64)
    egrid = monoexp(1.0, torch.exp(-ugrid)[None, :], t.double()[:, None])  # (n, G)
    if offset:
        egrid = egrid - egrid.mean(0, keepdim=True)
    egrid = (egrid / egrid.norm(dim=0, keepdim=True).clamp_min(1e-300)).to(y.dtype)
    k = (yc @ egrid).argmax(1)
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
        g_rr = a_rr * ib - a_r * b_r * ib3 + ib3 * ib * ib * (0.75 * a * b_r * b_r) - 0.5 * a * b_rr * ib3
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


def _lm_eval(y, t, amp, r2, c, offset, blk):
    """Cost, normal matrix entries and gradient at (amp, r2, c)."""
    n = t.numel()
    e = monoexp(1.0, 1.0 / r2[:, None], t)
    res = y - monoexp(amp[:, None], 1.0 / r2[:, None], t, c[:, None])
    z = torch.cat([e * e, e * res, e, res, res * res], 1) @ blk
    q0, q1, q2, p0, p1, s0, s1, rs, cost = z.T.clone().unbind(0)
    # J = [de/dA, d/dR, d/dc] = [e, -A t e, 1]
    h = {
        "aa": q0,
        "ar": -amp * q1,
        "rr": amp * amp * q2,
        "ac": s0,
        "rc": -amp * s1,
        "cc": torch.full_like(q0, float(n)),
    }
    g = {"a": p0, "r": -amp * p1, "c": rs}
    if not offset:
        h = {k: h[k] for k in ("aa", "ar", "rr")}
        g = {k: g[k] for k in ("a", "r")}
    return cost, h, g


def _lm_step(h, g, lam, offset):
    """Solve (H + lam diag H) d = g in closed form (2x2 or 3x3, Cramer)."""
    daa = h["aa"] * (1 + lam)
    drr = h["rr"] * (1 + lam)
    if not offset:
        det = daa * drr - h["ar"] ** 2
        da = (g["a"] * drr - h["ar"] * g["r"]) / det
        dr = (daa * g["r"] - h["ar"] * g["a"]) / det
        return da, dr, torch.zeros_like(da)
    dcc = h["cc"] * (1 + lam)
    ar, ac, rc = h["ar"], h["ac"], h["rc"]
    c00, c01, c02 = drr * dcc - rc * rc, -(ar * dcc - rc * ac), ar * rc - drr * ac
    c11, c12 = daa * dcc - ac * ac, -(daa * rc - ar * ac)
    c22 = daa * drr - ar * ar
    det = daa * c00 + ar * c01 + ac * c02
    ga, gr, gc = g["a"], g["r"], g["c"]
    da = (c00 * ga + c01 * gr + c02 * gc) / det
    dr = (c01 * ga + c11 * gr + c12 * gc) / det
    dc = (c02 * ga + c12 * gr + c22 * gc) / det
    return da, dr, dc


def _nlls(y, t, offset):
    """LM on (A, R2[, c]) from the log-linear start; y scaled to max 1, t shifted."""
    n = t.numel()
    amp, r2, c = _loglinear(y, t)
    ones = torch.ones(n, 1, dtype=y.dtype)
    blk = torch.block_diag(_moments(t, 3), _moments(t, 2), _moments(t, 2), ones, ones)
    cost, h, g = _lm_eval(y, t, amp, r2, c, offset, blk)
    lam = torch.full_like(amp, 1e-3)
    act = torch.arange(y.shape[0])
    for _ in range(_LM_ITERS):
        if act.numel() == 0:
            break
        ha = {k: v[act] for k, v in h.items()}
        ga = {k: v[act] for k, v in g.items()}
        la = lam[act]
        aa, ra, ca = amp[act], r2[act], c[act]
        da, dr, dc = _lm_step(ha, ga, la, offset)
        da, dr, dc = (torch.nan_to_num(v, 0.0, 0.0, 0.0) for v in (da, dr, dc))
        an, rn, cn = aa + da, (ra + dr).clamp(R2_MIN, R2_MAX), ca + dc
        cost_n, hn, gn = _lm_eval(y[act], t, an, rn, cn, offset, blk)
        cost_old = cost[act]
        ok = cost_n <= cost_old
        amp[act] = torch.where(ok, an, aa)
        r2[act] = torch.where(ok, rn, ra)
        c[act] = torch.where(ok, cn, ca)
        cost[act] = torch.where(ok, cost_n, cost_old)
        for k in h:
            h[k][act] = torch.where(ok, hn[k], ha[k])
        for k in g:
            g[k][act] = torch.where(ok, gn[k], ga[k])
        lam[act] = torch.where(ok, la * 0.1, la * 10.0).clamp(1e-9, 1e9)
        small = ((rn - ra).abs() <= _LM_TOL * ra) & ((an - aa).abs() <= _LM_TOL * aa.abs())
        if offset:
            small &= (cn - ca).abs() <= _LM_TOL * (aa.abs() + ca.abs())
        flat = (cost_n - cost_old).abs() <= _LM_FTOL * cost_old + 1e-12
        done = (ok & small) | flat | (la >= 1e9)
        act = act[~done]
    return amp, r2, c
