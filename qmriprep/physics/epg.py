"""Extended phase graph (EPG) simulation of FISP MR fingerprinting, vectorised in torch.

FISP (Jiang et al. 2015, MRM 74:1621): one RF pulse per TR (flip angle ``a_t``, phase 0), the
signal read ``TE`` after it, then an unbalanced gradient that dephases by one full cycle per TR,
so every configuration state shifts by one order each TR (Weigel 2015, JMRI 41:266). Per frame
``t`` and for every dictionary entry at once::

    rotate by B1 a_t   ->   signal_t = F0+ exp(-TE/T2)   ->   relax over TR_t   ->   shift

with ``E1 = exp(-TR_t/T1)``, ``E2 = exp(-TR_t/T2)``; ``Z0`` recovers towards 1. Optional
inversion before the first frame: ``Z0 = 1 - 2 exp(-TI/T1)`` (an ideal, B1-insensitive adiabatic
inversion). The equilibrium magnetisation is 1, so a voxel's series is ``M0 x`` the simulated one.

Real arithmetic: with RF phase 0 and real ``Z``, every ``F`` state stays purely imaginary, so
``F = i g`` with real ``g`` and the rotation (Weigel 2015, eq. 15) becomes, with ``c = cos^2(a/2)``,
``s = sin^2(a/2)``::

    g+' = c g+ + s g- - sin(a) Z,   g-' = s g+ + c g- + sin(a) Z,   Z' = sin(a) (g+ - g-)/2 + cos(a) Z

The returned signal is ``-g0+`` (``F0+ = -i x signal``): positive after exciting ``+Z``.
States of order above ``min(t, T - t)`` at frame ``t`` cannot reach ``F0`` before the last of
the ``T`` frames, so they are not simulated: exact, and about a quarter of the ``T^2`` work.
SI units: s, rad, B1+ as a fraction of nominal.
"""

from __future__ import annotations

import torch


def _as_tensor(v, dtype, device=None):
    return torch.as_tensor(v, dtype=dtype, device=device)


def fisp_signal(t1, t2, protocol, *, b1=None, dtype=torch.float64, chunk=512):
    """FISP MRF series of every entry: a ``(N, T)`` tensor (real; equilibrium magnetisation 1).

    ``t1``, ``t2`` (s) and ``b1`` (fraction, None: 1) are 1-D of length ``N`` (or scalars);
    ``protocol`` has ``flip_angles`` (rad, ``T``), ``repetition_times`` (s, ``T``),
    ``echo_time`` (s) and ``inversion_time`` (s or None), as
    :class:`~qmriprep.bids.protocols.MRFProtocol`. Entries are simulated ``chunk`` at a time
    (the states of a chunk stay in the CPU cache).
    """
    t1 = _as_tensor(t1, dtype).reshape(-1)
    t1, t2 = torch.broadcast_tensors(t1, _as_tensor(t2, dtype, t1.device).reshape(-1))
    n, dev = t1.shape[0], t1.device
    b1 = torch.ones(n, dtype=dtype, device=dev) if b1 is None else \
        torch.broadcast_to(_as_tensor(b1, dtype, dev).reshape(-1), (n,))
    alpha = _as_tensor(protocol.flip_angles, dtype, dev).reshape(-1)
    trs = _as_tensor(protocol.repetition_times, dtype, dev).reshape(-1)
    if trs.shape != alpha.shape:
        raise ValueError(f"{alpha.shape[0]} flip angles but {trs.shape[0]} repetition times")
    ti = getattr(protocol, "inversion_time", None)
    out = torch.empty(n, alpha.shape[0], dtype=dtype, device=dev)
    for i in range(0, n, chunk):
        sl = slice(i, i + chunk)
        out[sl] = _simulate(t1[sl], t2[sl], b1[sl], alpha, trs, float(protocol.echo_time), ti)
    return out


def _simulate(t1, t2, b1, alpha, trs, te, ti):
    """``(n, T)`` signals of one chunk. States are stored order-major (``[order, entry]``) in
    buffers where the shift is an offset: ``g+`` of order ``k`` after ``t`` shifts sits at
    ``P[T - t + k]``, ``g-`` at ``M[t + k]``, ``Z`` at ``Z[k]``."""
    n_frames, n = alpha.shape[0], t1.shape[0]
    k = n_frames // 2 + 2
    p = torch.zeros(n_frames + k + 1, n, dtype=t1.dtype, device=t1.device)
    q, z = torch.zeros_like(p), torch.zeros(k, n, dtype=t1.dtype, device=t1.device)
    z[0] = 1.0 if ti is None else 1.0 - 2.0 * torch.exp(-float(ti) / t1)
    e1s, e2s = torch.exp(-trs[:, None] / t1), torch.exp(-trs[:, None] / t2)
    cas, sas = torch.cos(alpha[:, None] * b1), torch.sin(alpha[:, None] * b1)
    echo = torch.exp(-te / t2)
    out = torch.empty(n_frames, n, dtype=t1.dtype, device=t1.device)
    for t in range(n_frames):
        m = min(t, n_frames - 1 - t) + 1  # orders 0..m-1 can still reach F0
        gp, gm, zz = p[n_frames - t: n_frames - t + m], q[t: t + m], z[:m]
        _rotate(gp, gm, zz, cas[t], sas[t])
        out[t] = -gp[0] * echo
        gp.mul_(e2s[t])
        gm.mul_(e2s[t])
        zz.mul_(e1s[t])
        zz[0] += 1.0 - e1s[t]
        # shift: g+ moves up (an offset), g- down (an offset); the new F+0 = conj(F-0)
        p[n_frames - t - 1] = -q[t + 1]
    return out.T


def _rotate(gp, gm, z, ca, sa):
    """The RF rotation about x (phase 0) of the real states, in place. With ``v = g+ - g-``
    (``g+ + g-`` is unchanged): ``v' = cos(a) v - 2 sin(a) Z``, ``Z' = sin(a) v / 2 + cos(a) Z``."""
    v = gp - gm
    w = v * ca
    w.addcmul_(z, sa, value=-2.0)
    z.mul_(ca).addcmul_(v, sa, value=0.5)
    w.sub_(v).mul_(0.5)  # (v' - v) / 2
    gp.add_(w)
    gm.sub_(w)
