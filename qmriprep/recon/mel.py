"""Memory-efficient learning (MEL) for unrolled networks (SCIENCE.md section 4).

Two pieces keep the training memory independent of the number of unrolls:

- :class:`ImplicitDC`: the CG data-consistency layer ``x = (E^H E + mu I)^{-1} (rhs + mu z)``
  runs its forward without autograd and differentiates implicitly: with ``A = E^H E + mu I``
  (Hermitian) and upstream gradient ``g``, solve ``A v = g`` by CG, then
  ``d rhs = v``, ``d z = mu v``, ``d mu = Re <v, z - x>``. No CG iterate is stored.
- :func:`checkpointed`: per-unroll gradient checkpointing of the CNN (its activations are
  recomputed during the backward pass).

The implicit gradient is that of the exact solve: it equals plain backpropagation through CG
when CG has converged.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable
from torch.utils.checkpoint import checkpoint

from .sense import SenseOp, cg, dc_solve


class ImplicitDC(torch.autograd.Function):
    """``ImplicitDC.apply(rhs, z, mu, op, max_iter, tol)`` -> ``x`` solving ``(E^H E + mu I) x = rhs + mu z``.

    ``mu`` is a real tensor (0-d); gradients flow to ``rhs``, ``z`` and ``mu``, not to the
    coil maps or mask held by ``op``. Single backward only (no double differentiation).
    """

    @staticmethod
    def forward(ctx, rhs, z, mu, op: SenseOp, max_iter: int, tol: float):
        with torch.no_grad():
            x = dc_solve(op, rhs, z, mu, max_iter, tol)
        ctx.save_for_backward(z, mu, x)
        ctx.op, ctx.max_iter, ctx.tol = op, max_iter, tol
        return x

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        z, mu, x = ctx.saved_tensors
        op = ctx.op
        v = cg(lambda u: op.normal(u) + mu * u, g, max_iter=ctx.max_iter, tol=ctx.tol)
        grad_rhs, grad_z, grad_mu = None, None, None
        if ctx.needs_input_grad[0]:
            grad_rhs = v
        if ctx.needs_input_grad[1]:
            grad_z = mu * v
        if ctx.needs_input_grad[2]:
            grad_mu = (v.conj() * (z - x)).real.sum().reshape(mu.shape).to(mu.dtype)
        return grad_rhs, grad_z, grad_mu, None, None, None


def dc_layer(op: SenseOp, rhs: torch.Tensor, z: torch.Tensor, mu: torch.Tensor,
             max_iter: int, tol: float = 0.0, implicit: bool = False) -> torch.Tensor:
    """CG data consistency; ``implicit=True`` uses :class:`ImplicitDC` when gradients are on.

    Both paths compute the same forward (:func:`~qmriprep.recon.sense.dc_solve`).
    """
    if implicit and torch.is_grad_enabled():
        return ImplicitDC.apply(rhs, z, mu, op, max_iter, tol)
    return dc_solve(op, rhs, z, mu, max_iter, tol)


def checkpointed(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)`` without keeping its activations (recomputed in backward) when grad is on."""
    if torch.is_grad_enabled():
        return checkpoint(module, x, use_reentrant=False)
    return module(x)
