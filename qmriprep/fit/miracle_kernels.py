"""Compiled per-voxel MIRACLE kernels (numba): the seed's alternation and its Newton solution.

Both solve, per voxel, the two ratio equations of :mod:`qmriprep.fit.miracle` with the model
terms of :func:`qmriprep.physics.bssfp.miracle_terms` written out in scalars (``E1 = e^{-TR/T1}``,
``E2 = e^{-TR/T2}``, ``c = cos(B1 a)``)::

    g2(T1, T2) = Fm1m / (E2 (F0m - F1m)) = y2 = f-1 / (f0 - f1)     (increases with T2)
    g1(T1, T2) = (p - r) / q             = y1 = f1 / f0              (decreases with T1)

- :func:`alternate`: the seed's algorithm, golden-section searches (GSS) of ``|y2 - g2|`` over
  T2 and ``|y1 - g1|`` over T1 on the whole bracket, alternating from ``T1 = t1_init`` until
  both change by less than ``tol`` in one round.
- :func:`newton`: its fixed point directly. Each GSS step returns the root of its equation in
  the bracket (``g2``, ``g1`` are monotone there), or the bracket end nearest to it, so the fixed
  point is the root of ``R = ((y2 - g2)/(1 + |y2|), y1 - g1)`` in ``(ln T1, ln T2)``, with a
  coordinate at a bound of the bracket when its root lies beyond it. Damped Newton with the
  analytic Jacobian, projected on the bracket: a coordinate reaching a bound stays there (only
  the other equation is solved) while its residual's sign says its root lies beyond the bound.
  Converged when the step is below 1e-12 and the free residuals below 1e-11.

:func:`fit_voxels` fits a block of voxels: ``newton`` from one coarse alternation round (15
GSS iterations per step), and the full alternation where Newton fails. It releases the GIL
(blocks run on threads) and is compiled once into numba's cache (``NUMBA_CACHE_DIR``).
"""

from __future__ import annotations

import math

from numba import njit

GOLD = (math.sqrt(5.0) - 1.0) / 2.0  # 0.618...
BIG = 1e300  # cost of an undefined model (e.g. E2 underflow at tiny T2)
COARSE = 15  # GSS iterations per step of the round that starts Newton (bracket / 1,365)
NEWTON_ITER = 60  # Newton iterations at most before the alternation takes over
STATUS_NEWTON, STATUS_ALTERNATION, STATUS_NOT_CONVERGED = 2, 1, 0


@njit(cache=True, error_model="numpy")
def ratios(t1, t2, ca, tr):
    """``(g2, g1)``: the model ratios at ``(T1, T2)`` (the operation order of ``miracle_terms``)."""
    e1, e2 = math.exp(-tr / t1), math.exp(-tr / t2)
    p = 1 - e1 * ca - e2 * e2 * (e1 - ca)
    q = e2 * (1 - e1) * (1 + ca)
    r = math.sqrt(max(p * p - q * q, 0.0))
    f0 = 1 - (e1 - ca) * (1 - e2 * e2) / r
    fm1 = 1 - (1 - e1 * ca) * (1 - e2 * e2) / r
    f1 = f0 * (p - r) / q
    return fm1 * math.exp(tr / t2) / (f0 - f1), (p - r) / q


@njit(cache=True, error_model="numpy")
def _cost(which, x, other, ca, tr, y):
    """``|y2 - g2(other, x)|`` (``which`` 2) or ``|y1 - g1(x, other)|`` (1); NaN, inf -> BIG."""
    g = ratios(other, x, ca, tr)[0] if which == 2 else ratios(x, other, ca, tr)[1]
    cost = abs(y - g)
    return cost if cost < BIG else BIG


@njit(cache=True, error_model="numpy")
def gss(which, other, ca, tr, y, bracket, n_iter):
    """Golden-section search of :func:`_cost` on ``bracket = (a, b)``: the final midpoint."""
    a, b = bracket
    c, d = b - GOLD * (b - a), a + GOLD * (b - a)
    fc, fd = _cost(which, c, other, ca, tr, y), _cost(which, d, other, ca, tr, y)
    for _ in range(n_iter):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - GOLD * (b - a)
            fc = _cost(which, c, other, ca, tr, y)
        else:
            a, c, fc = c, d, fd
            d = a + GOLD * (b - a)
            fd = _cost(which, d, other, ca, tr, y)
    return 0.5 * (a + b)


@njit(cache=True, error_model="numpy")
def alternate(y2, y1, ca, tr, t1, bracket, tol, max_rounds):
    """The seed's alternation from ``T1 = t1``: ``(t1, t2, rounds, converged)``."""
    n_iter = max(0, math.ceil(math.log(tol / (bracket[1] - bracket[0])) / math.log(GOLD)))
    t2 = 0.0
    for k in range(1, max_rounds + 1):
        t2n = gss(2, t1, ca, tr, y2, bracket, n_iter)
        t1n = gss(1, t2n, ca, tr, y1, bracket, n_iter)
        d1, d2 = t1n - t1, (t2n - t2 if k > 1 else math.inf)
        t1, t2 = t1n, t2n
        if abs(d2) < tol and abs(d1) < tol:
            return t1, t2, k, True
    return t1, t2, max_rounds, False


@njit(cache=True, error_model="numpy")
def residuals(u, v, ca, tr, y2, y1):
    """``(R2, R1, dR2/du, dR2/dv, dR1/du, dR1/dv)`` at ``u = ln T1``, ``v = ln T2`` (analytic)."""
    t1, t2 = math.exp(u), math.exp(v)
    e1, e2 = math.exp(-tr / t1), math.exp(-tr / t2)
    de1, de2 = e1 * tr / t1, e2 * tr / t2  # dE1/du, dE2/dv
    s, s2, b, c = 1 - e2 * e2, -2 * e2, e1 - ca, 1 - e1 * ca  # s2 = ds/dE2
    p, p1, p2 = c - e2 * e2 * b, -ca - e2 * e2, -2 * e2 * b  # partials: _1 by E1, _2 by E2
    q, q1, q2 = e2 * (1 - e1) * (1 + ca), -e2 * (1 + ca), (1 - e1) * (1 + ca)
    r = math.sqrt(max(p * p - q * q, 0.0))
    r1, r2 = (p * p1 - q * q1) / r, (p * p2 - q * q2) / r
    f0 = 1 - b * s / r
    f01, f02 = -s / r + b * s * r1 / (r * r), -b * s2 / r + b * s * r2 / (r * r)
    fm = 1 - c * s / r
    fm1, fm2 = ca * s / r + c * s * r1 / (r * r), -c * s2 / r + c * s * r2 / (r * r)
    g1 = (p - r) / q
    g11, g12 = ((p1 - r1) * q - (p - r) * q1) / (q * q), ((p2 - r2) * q - (p - r) * q2) / (q * q)
    d = e2 * f0 * (1 - g1)
    d1 = e2 * f01 * (1 - g1) - e2 * f0 * g11
    d2 = f0 * (1 - g1) + e2 * f02 * (1 - g1) - e2 * f0 * g12
    g21, g22 = (fm1 * d - fm * d1) / (d * d), (fm2 * d - fm * d2) / (d * d)
    w = 1.0 / (1.0 + abs(y2))
    return (y2 - fm / d) * w, y1 - g1, -g21 * de1 * w, -g22 * de2 * w, -g11 * de1, -g12 * de2


@njit(cache=True, error_model="numpy")
def _held(at, res, sign):
    """A coordinate at a bound (``at`` -1/+1) stays there while its root lies beyond: ``res``
    has the sign ``sign * at`` (``sign`` +1 for T2's residual, -1 for T1's)."""
    return at != 0 and res * sign * at > 0


@njit(cache=True, error_model="numpy")
def _merit(res, at_u, at_v):
    """Sum of the free equations' residuals (T2's equation R2 frees v, T1's R1 frees u)."""
    return (abs(res[0]) if at_v == 0 else 0.0) + (abs(res[1]) if at_u == 0 else 0.0)


@njit(cache=True, error_model="numpy")
def newton(y, ca, tr, start, log_bracket, max_iter):
    """Projected damped Newton (module docstring) from ``start = (ln T1, ln T2)``; ``y = (y2,
    y1)``. Returns ``(ln T1, ln T2, iterations, converged)``."""
    (u, v), (lo, hi) = start, log_bracket
    at_u, at_v = 0, 0  # -1 / +1: held at the lower / upper bound
    res = residuals(u, v, ca, tr, y[0], y[1])
    for it in range(1, max_iter + 1):
        at_u = at_u if _held(at_u, res[1], -1.0) else 0
        at_v = at_v if _held(at_v, res[0], 1.0) else 0
        r2, r1, a, b, c, d = res
        if at_u == 0 and at_v == 0:
            det = a * d - b * c
            du, dv = -(d * r2 - b * r1) / det, -(a * r1 - c * r2) / det
        elif at_v != 0 and at_u != 0:
            return u, v, it, True
        else:
            du, dv = (0.0, -r2 / b) if at_u != 0 else (-r1 / c, 0.0)
        step = max(abs(du), abs(dv))
        if not math.isfinite(step):
            return u, v, it, False
        lam = min(1.0, 1.0 / step)  # at most a factor e per iteration
        m0 = _merit(res, at_u, at_v)
        while True:
            un, vn = min(max(u + lam * du, lo), hi), min(max(v + lam * dv, lo), hi)
            new = residuals(un, vn, ca, tr, y[0], y[1])
            if _merit(new, at_u, at_v) < m0 or lam * step < 1e-13:
                break
            lam *= 0.5
        moved = max(abs(un - u), abs(vn - v))
        u, v, res = un, vn, new
        at_u = at_u if at_u != 0 or lo < u < hi else (1 if u == hi else -1)
        at_v = at_v if at_v != 0 or lo < v < hi else (1 if v == hi else -1)
        m = _merit(res, at_u, at_v)
        if moved < 1e-12 or m < 1e-15:
            ok = m < 1e-11 and (at_u == 0 or _held(at_u, res[1], -1.0)) and \
                (at_v == 0 or _held(at_v, res[0], 1.0))
            return u, v, it, ok
    return u, v, max_iter, False


@njit(cache=True, nogil=True, error_model="numpy")
def fit_voxels(y, b1, params, out):
    """Fit every voxel: ``y`` (n, 2) targets ``(y2, y1)``, ``b1`` (n,), ``params`` = (flip angle,
    TR, t1_init, bracket lo, hi, tol, max_rounds, use Newton); ``out`` (n, 4) receives ``(T1, T2,
    rounds, status)``: status :data:`STATUS_NEWTON`, ``_ALTERNATION`` (converged) or
    ``_NOT_CONVERGED`` (the alternation used ``max_rounds``). Newton's rounds: 1 + iterations."""
    fa, tr, t1_init, lo, hi, tol = params[0], params[1], params[2], params[3], params[4], params[5]
    max_rounds, use_newton = int(params[6]), params[7] > 0
    bracket, log_bracket = (lo, hi), (math.log(lo), math.log(hi))
    for i in range(y.shape[0]):
        y2, y1 = y[i, 0], y[i, 1]
        ca = math.cos(b1[i] * fa)
        if use_newton:
            t2 = gss(2, t1_init, ca, tr, y2, bracket, COARSE)
            t1 = gss(1, t2, ca, tr, y1, bracket, COARSE)
            u, v, it, ok = newton((y2, y1), ca, tr, (math.log(t1), math.log(t2)), log_bracket,
                                  NEWTON_ITER)
            if ok:
                out[i, 0], out[i, 1], out[i, 2], out[i, 3] = math.exp(u), math.exp(v), 1 + it, \
                    STATUS_NEWTON
                continue
        t1, t2, k, conv = alternate(y2, y1, ca, tr, t1_init, bracket, tol, max_rounds)
        out[i, 0], out[i, 1], out[i, 2] = t1, t2, k
        out[i, 3] = STATUS_ALTERNATION if conv else STATUS_NOT_CONVERGED
