"""Multi-coil Cartesian SENSE forward model ``E = M F S`` and conjugate-gradient solvers.

Shapes follow :mod:`qmriprep.recon`: images ``(B, C, H, W)``, maps ``(B, N, H, W)``,
k-space ``(B, C, N, H, W)``, mask real 0/1 broadcastable to ``(B, C, H, W)``.
Pure torch; works in complex64 and complex128 on any device.
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np
import torch

from .fft import centring_phases


class SenseOp:
    """SENSE encoding ``E x = M F (S x)`` for every contrast and coil.

    ``maps``: ``(B, N, H, W)`` complex coil sensitivities (shared by the contrasts);
    ``mask``: real (or bool) 0/1, broadcastable to ``(B, C, H, W)``; it is cast to the real
    dtype of ``maps`` and kept with a coil axis, ``(..., C, 1, H, W)``.

    ``F`` is the centred unitary 2-D FFT (:func:`~qmriprep.recon.fft.centred_fft`) computed
    without shifts, ``F x = post * fft(pre * x)`` (:func:`~qmriprep.recon.fft.centring_phases`):
    ``pre`` is folded into the maps once, and in ``E^H E`` the unimodular ``post`` cancels
    (``conj(post) M post = M``), so the normal operator is ``sum_n conj(S'_n) ifft(M fft(S'_n x))``
    with ``S' = pre S``: two plain FFTs per coil and contrast, no copies (the shifts were half of a
    training step's time).
    """

    def __init__(self, maps: torch.Tensor, mask: torch.Tensor):
        if maps.ndim != 4 or not maps.is_complex():
            raise ValueError(f"maps must be complex (B, N, H, W), got {tuple(maps.shape)} {maps.dtype}")
        if mask.ndim > 4:
            raise ValueError(f"mask must broadcast to (B, C, H, W), got {tuple(mask.shape)}")
        self.maps = maps
        mask = mask.to(device=maps.device, dtype=maps.real.dtype)
        self.mask = mask.reshape((1,) * (4 - mask.ndim) + tuple(mask.shape)).unsqueeze(2)
        (pre_h, post_h), (pre_w, post_w) = (centring_phases(n) for n in maps.shape[-2:])
        as_t = functools.partial(torch.as_tensor, dtype=maps.dtype, device=maps.device)
        self._maps = maps * as_t(np.outer(pre_h, pre_w))                      # S' = pre S
        self._maps_conj = self._maps.conj().resolve_conj()
        self._post = as_t(np.outer(post_h, post_w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, C, N, H, W)``: ``mask * F(maps[:, None] * x[:, :, None])``."""
        k = torch.fft.fft2(self._maps[:, None] * x[:, :, None], norm="ortho")
        return k.mul_(self._post).mul_(self.mask)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``(B, C, N, H, W) -> (B, C, H, W)``: ``sum_n conj(S_n) F^-1(mask * y_n)``."""
        z = torch.fft.ifft2(self.mask * self._post.conj() * y, norm="ortho")
        return z.mul_(self._maps_conj[:, None]).sum(dim=2)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """``E^H E x`` (shift-free, see the class docstring)."""
        k = torch.fft.fft2(self._maps[:, None] * x[:, :, None], norm="ortho").mul_(self.mask)
        return torch.fft.ifft2(k, norm="ortho").mul_(self._maps_conj[:, None]).sum(dim=2)

    def with_mask(self, mask: torch.Tensor) -> "SenseOp":
        """The same coil maps with another sampling mask (e.g. a ZS-SSL split)."""
        return SenseOp(self.maps, mask)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``<a, b> = sum conj(a) b`` per (B, C) system, reduced over the remaining dims (kept)."""
    return (a.conj() * b).sum(dim=tuple(range(2, a.ndim)), keepdim=True)


def _safe_div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den`` where ``den > 0``, else 0 (no NaN, also in the backward pass)."""
    ok = den > 0
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(num))


def cg(apply_A: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor,
       x0: torch.Tensor | None = None, max_iter: int = 10, tol: float = 0.0) -> torch.Tensor:
    """Batched conjugate gradient for ``A x = b``, ``A`` Hermitian positive definite.

    Each (B, C) entry of ``b`` (shape ``(B, C, ...)``) is an independent system; all are
    iterated together until ``max_iter`` or until every residual satisfies
    ``||r|| <= tol ||b||``. Systems whose residual or curvature ``<p, A p>`` is exactly zero
    stop moving (an all-zero system stays zero, no NaN). Differentiable by plain autograd.
    """
    x = torch.zeros_like(b) if x0 is None else x0
    r = b - apply_A(x) if x0 is not None else b
    p = r
    rs = _dot(r, r).real
    stop = tol ** 2 * _dot(b, b).real
    for _ in range(max_iter):
        if bool((rs <= stop).all()):
            break
        Ap = apply_A(p)
        alpha = _safe_div(rs, _dot(p, Ap).real)
        x = x + alpha * p
        r = r - alpha * Ap
        rs_new = _dot(r, r).real
        p = r + _safe_div(rs_new, rs) * p
        rs = rs_new
    return x


def zero_filled(y: torch.Tensor, maps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Coil-combined zero-filled image ``E^H y``, ``(B, C, H, W)``."""
    return SenseOp(maps, mask).adjoint(y)


def cg_sense(y: torch.Tensor, maps: torch.Tensor, mask: torch.Tensor, lam: float = 0.0,
             max_iter: int = 30, tol: float = 1e-6, x0: torch.Tensor | None = None) -> torch.Tensor:
    """CG-SENSE: solve ``(E^H E + lam I) x = E^H y`` (Pruessmann et al., MRM 2001)."""
    op = SenseOp(maps, mask)
    return cg(lambda x: op.normal(x) + lam * x, op.adjoint(y), x0=x0, max_iter=max_iter, tol=tol)


def dc_solve(op: SenseOp, rhs: torch.Tensor, z: torch.Tensor, mu: torch.Tensor | float,
             max_iter: int, tol: float = 0.0) -> torch.Tensor:
    """Data consistency ``argmin ||E x - y||^2 + mu ||x - z||^2``.

    Solves ``(E^H E + mu I) x = rhs + mu z`` with ``rhs = E^H y`` by CG started at ``z``.
    """
    return cg(lambda x: op.normal(x) + mu * x, rhs + mu * z, x0=z, max_iter=max_iter, tol=tol)
