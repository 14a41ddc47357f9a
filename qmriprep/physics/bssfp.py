"""Phase-cycled balanced SSFP (pc-bSSFP) signal and its Fourier configurations (seed 003).

Signal of phase cycle ``j`` (Zur et al. 1988; Freeman & Hill 1971), ``psi_j = theta - phi_j``,
``theta = 2 pi df TR``, ``a = B1 a_nom``, ``E1 = exp(-TR/T1)``, ``E2 = exp(-TR/T2)``::

    C = E2 (E1 - 1)(1 + cos a)      D = (1 - E1 cos a) - (E1 - cos a) E2^2
    S_j = M0 (1 - E1) sin a (1 - E2 exp(-i psi_j)) / (C cos psi_j + D) exp(-TE/T2) exp(i theta TE/TR)

Configurations (Zur 1988; Nguyen & Bieri 2017, MIRACLE): remove the voxel's common phase
``S_j <- S_j exp(-i angle(sum_j S_j))``, take ``F_p = (1/N) sum_j S_j exp(+i p phi_j)`` for
``p = -1, 0, +1`` and normalise per voxel by ``sqrt(|F-1|^2 + |F0|^2 + |F+1|^2)``.

Written once in torch (differentiable, complex); numpy inputs give numpy outputs.
SI units: seconds, radians, B1 as a fraction, off-resonance as ``theta`` (rad per TR).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

ORDERS = (-1, 0, 1)


def _tensor(v):
    """numpy arrays, floats, ints, lists and tuples as float64 (complex128) tensors; others as is."""
    if isinstance(v, (np.ndarray, float, int, list, tuple)) and not isinstance(v, bool):
        return torch.as_tensor(v, dtype=torch.complex128 if np.iscomplexobj(v) else torch.float64)
    return v


def _numpy_friendly(func):
    """Accept numpy/float inputs (converted to float64 tensors) and return numpy then."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        as_numpy = not any(isinstance(a, torch.Tensor) for a in (*args, *kwargs.values()))
        out = func(*(_tensor(a) for a in args), **{k: _tensor(v) for k, v in kwargs.items()})
        return _to_numpy(out) if as_numpy else out

    return wrapper


def _to_numpy(out):
    """Tensors -> numpy arrays, through (nested) tuples such as ``miracle_terms``' output."""
    return tuple(_to_numpy(o) for o in out) if isinstance(out, tuple) else out.numpy()


@_numpy_friendly
def bssfp_signal(t1, t2, b1, theta, protocol, *, m0=1.0):
    """Complex pc-bSSFP signals, shape ``(..., n_cycles)``; parameters broadcast over voxels.

    ``protocol``: a :class:`~qmriprep.bids.protocols.BSSFPProtocol` (SI: ``phase_increments``
    rad, ``tr`` and ``te`` s, ``flip_angle`` rad).
    """
    t1, t2, b1, theta, m0 = (torch.as_tensor(v)[..., None] for v in (t1, t2, b1, theta, m0))
    flip_angle, tr, te = (_tensor(v) for v in (protocol.flip_angle, protocol.tr, protocol.te))
    phi = torch.as_tensor(_tensor(protocol.phase_increments), dtype=t1.dtype, device=t1.device)
    a = b1 * flip_angle
    e1, e2 = torch.exp(-tr / t1), torch.exp(-tr / t2)
    ca = torch.cos(a)
    c = e2 * (e1 - 1) * (1 + ca)
    d = (1 - e1 * ca) - (e1 - ca) * e2 * e2
    psi = theta - phi
    num = (1 - e2 * torch.exp(-1j * psi))
    sig = m0 * (1 - e1) * torch.sin(a) * num / (c * torch.cos(psi) + d)
    return sig * torch.exp(-te / t2) * torch.exp(1j * theta * te / tr)


@_numpy_friendly
def remove_common_phase(signal):
    """``S_j exp(-i angle(sum_j S_j))``: makes F0 real and non-negative."""
    return signal * torch.exp(-1j * torch.angle(signal.sum(-1, keepdim=True)))


@_numpy_friendly
def configurations(signal, phase_increments, orders=ORDERS):
    """``F_p = (1/N) sum_j S_j exp(+i p phi_j)``, shape ``(..., len(orders))``."""
    phi = torch.as_tensor(phase_increments, dtype=torch.float64).to(signal.real.dtype)
    p = torch.as_tensor(orders, dtype=phi.dtype)
    kernel = torch.exp(1j * p[None, :] * phi[:, None]).to(signal.dtype)  # (n_cycles, n_orders)
    return signal @ kernel / phi.numel()


@_numpy_friendly
def normalise(features, eps=1e-12):
    """Divide by the per-voxel norm ``sqrt(sum_p |F_p|^2)`` (0 stays 0)."""
    norm = torch.sqrt((features.abs() ** 2).sum(-1, keepdim=True))
    return features / torch.clamp(norm, min=eps)


@_numpy_friendly
def fourier_features(signal, phase_increments):
    """Phase removal, DFT over phase cycles and normalisation: ``(F-1, F0, F+1)`` per voxel."""
    return normalise(configurations(remove_common_phase(signal), phase_increments))


@_numpy_friendly
def miracle_terms(t1, t2, b1, *, flip_angle, tr):
    """MIRACLE model terms ``(Fm1m, F0m, F1m)`` and ``(p, q, r)`` at ``theta = 0``.

    ``p = 1 - E1 cos a - E2^2 (E1 - cos a)``, ``q = E2 (1 - E1)(1 + cos a)``, ``r = sqrt(p^2 - q^2)``,
    ``F0m = 1 - (E1 - cos a)(1 - E2^2)/r``, ``F1m = F0m (p - r)/q``,
    ``Fm1m = 1 - (1 - E1 cos a)(1 - E2^2)/r`` (Nguyen & Bieri 2017).
    """
    a = b1 * flip_angle
    e1, e2 = torch.exp(-tr / t1), torch.exp(-tr / t2)
    ca = torch.cos(a)
    p = 1 - e1 * ca - e2 * e2 * (e1 - ca)
    q = e2 * (1 - e1) * (1 + ca)
    r = torch.sqrt(torch.clamp(p * p - q * q, min=0))
    f0 = 1 - (e1 - ca) * (1 - e2 * e2) / r
    return (1 - (1 - e1 * ca) * (1 - e2 * e2) / r, f0, f0 * (p - r) / q), (p, q, r)


@_numpy_friendly
def closed_form_configurations(t1, t2, b1, *, flip_angle, tr, te, m0=1.0):
    """``(F-1, F0, F+1)`` at ``theta = 0`` in closed form, before normalisation (test reference).

    ``F0 = M0 tan(a/2) F0m e^{-TE/T2}``, ``F+1 = F0 (p - r)/q``,
    ``F-1 = -M0 tan(a/2) Fm1m e^{(TR - TE)/T2}``... scaled as in :func:`bssfp_signal`.
    """
    (fm1m, f0m, f1m), _ = miracle_terms(t1, t2, b1, flip_angle=flip_angle, tr=tr)
    a = b1 * flip_angle
    scale = m0 * torch.tan(a / 2)
    return -scale * fm1m * torch.exp((tr - te) / t2), scale * f0m * torch.exp(-te / t2), \
        scale * f1m * torch.exp(-te / t2)


@_numpy_friendly
def alias_level(t1, t2, b1, *, flip_angle, tr, n_cycles: int):
    """Largest relative size of the aliases in the measured ``F-1, F0, F+1`` of ``n_cycles``
    equidistant phase cycles: ``F_p`` of ``N`` cycles holds ``sum_k F_{p + kN}``, and with
    ``x = (p - r)/q`` (:func:`miracle_terms`) ``F_n = F0 x^n`` (n >= 0), ``F_-n = F-1 x^(n-1)``::

        A_-1 = g + (|F0|/|F-1|) x^(N-1)/(1 - x^N)      g = x^N / (1 - x^N)
        A_0  = g + (|F-1|/|F0|) x^(N-1)/(1 - x^N)
        A_+1 = g + (|F-1|/|F0|) x^(N-3)/(1 - x^N)

    The sum of the aliases' magnitudes: a bound on the error of the measured ``|F_p|``, which
    reaches a median 0.8-0.9 of it at the worst off-resonance. It is what MIRACLE's
    infinite-cycle model misses; its T2 bias is about 1-2.5 times this level (benchmarks/RESULTS.md)."""
    (fm1m, f0m, _), (p, q, r) = miracle_terms(t1, t2, b1, flip_angle=flip_angle, tr=tr)
    x = torch.clamp((p - r) / q, 0.0, 1.0 - 1e-12)
    ratio = torch.abs(fm1m * torch.exp(tr / t2) / f0m)  # |F-1| / |F0|
    tail = 1.0 / (1.0 - x ** n_cycles)
    g = x ** n_cycles * tail
    levels = (g + x ** (n_cycles - 1) * tail / ratio, g + ratio * x ** (n_cycles - 1) * tail,
              g + ratio * x ** (n_cycles - 3) * tail)
    return torch.maximum(torch.maximum(levels[0], levels[1]), levels[2])
