"""Unrolled CG-SENSE network with a shared residual CNN (seed 000, SCIENCE.md section 4).

``x0 = E^H y``; for ``k = 1..K``: ``z = R(x)``, ``x = argmin ||E x - y||^2 + mu ||x - z||^2``
(CG on ``(E^H E + mu I) x = E^H y + mu z``). One CNN ``R`` and one scalar ``mu`` shared by all
unrolls; the contrasts enter ``R`` as channels. ``mel=True`` trains with memory-efficient
learning (:mod:`.mel`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .mel import checkpointed, dc_layer
from .sense import SenseOp

MU_MIN = 1e-6


def _conv3x3(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False)


class _ResBlock(nn.Module):
    """``x + scale * conv(relu(conv(x)))`` (EDSR-style, no bias, no normalisation)."""

    def __init__(self, features: int, scale: float):
        super().__init__()
        self.conv1, self.conv2 = _conv3x3(features, features), _conv3x3(features, features)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.scale * self.conv2(torch.relu(self.conv1(x)))


class ResidualCNN(nn.Module):
    """Regulariser ``R(x) = x + net(x)`` on complex ``(B, C, H, W)`` images.

    ``net``: real/imaginary parts as ``2C`` channels (``re_0, im_0, re_1, ...``) -> conv3x3 ->
    ``blocks`` residual blocks -> conv3x3 -> ``2C`` channels back to complex. The channels are
    laid out last in memory (``channels_last``: oneDNN's fast CPU convolutions; 1.5-2x faster
    forward and backward than ``NCHW`` at 230 x 180, benchmarks/RESULTS.md). Parameter dtype sets
    the working precision (float32 for complex64 input, float64 for complex128).
    """

    def __init__(self, n_contrasts: int, features: int = 64, blocks: int = 15, scale: float = 0.1):
        super().__init__()
        self.net = nn.Sequential(
            _conv3x3(2 * n_contrasts, features),
            *(_ResBlock(features, scale) for _ in range(blocks)),
            _conv3x3(features, 2 * n_contrasts),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        real = torch.view_as_real(x.permute(0, 2, 3, 1).contiguous()).reshape(b, h, w, 2 * c)
        out = self.net(real.permute(0, 3, 1, 2)).permute(0, 2, 3, 1).contiguous()
        return x + torch.view_as_complex(out.reshape(b, h, w, c, 2)).permute(0, 3, 1, 2)


class UnrolledNet(nn.Module):
    """Unrolled data-consistency network; ``forward(y, maps, mask) -> (B, C, H, W)``.

    ``y`` is k-space already multiplied by ``mask`` (the data-consistency set). ``mu`` is
    ``softplus(mu_raw) + MU_MIN`` (always positive, with a gradient everywhere; a clamped raw
    value stuck at its bound once training pushed it below zero), ``mu_raw`` initialised so that
    ``mu = mu_init``. ``cg_tol`` (relative residual) stops CG early; 0 runs all
    ``cg_iter`` iterations. ``self.hparams`` rebuilds the model: ``UnrolledNet(**hparams)``;
    ``mel`` can be switched at any time (it changes memory and time, not the result).
    """

    def __init__(self, n_contrasts: int, n_unrolls: int = 10, cg_iter: int = 10,
                 features: int = 64, blocks: int = 15, mu_init: float = 0.05,
                 mel: bool = False, cg_tol: float = 0.0):
        super().__init__()
        self.hparams = dict(n_contrasts=n_contrasts, n_unrolls=n_unrolls, cg_iter=cg_iter,
                            features=features, blocks=blocks, mu_init=mu_init, mel=mel,
                            cg_tol=cg_tol)
        self.cnn = ResidualCNN(n_contrasts, features, blocks)
        self.mu_raw = nn.Parameter(torch.tensor(math.log(math.expm1(max(float(mu_init) - MU_MIN, 1e-8)))))

    @property
    def mu(self) -> torch.Tensor:
        """The data-consistency weight (positive, differentiable)."""
        return nn.functional.softplus(self.mu_raw) + MU_MIN

    @property
    def mel(self) -> bool:
        return self.hparams["mel"]

    @mel.setter
    def mel(self, value: bool) -> None:
        self.hparams["mel"] = bool(value)

    def forward(self, y: torch.Tensor, maps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        op = SenseOp(maps, mask)
        rhs = op.adjoint(y)
        mu = self.mu
        hp = self.hparams
        x = rhs
        for _ in range(hp["n_unrolls"]):
            z = checkpointed(self.cnn, x) if self.mel else self.cnn(x)
            x = dc_layer(op, rhs, z, mu, hp["cg_iter"], hp["cg_tol"], implicit=self.mel)
        return x
