"""Voxel-wise MLPs for pc-bSSFP relaxometry (seed 003): SVNN and PINN share the architecture.

Magnitude network (4-64-64-2)
    inputs ``[|F-1|, |F0|, |F+1|, B1]``, outputs ``T1, T2``.
Complex network (6-256-256-3)
    inputs ``[Re F-1, Re F0, Re F+1, -Im F-1, Im F+1, B1]`` (``Im F0 = 0`` after the phase
    removal, dropped), outputs ``T1, T2, theta`` (theta in ``[-0.9 pi, 0.9 pi]``).

Linear - ReLU - Linear - ReLU - Linear - sigmoid; the sigmoid output is mapped linearly onto
the training range of every parameter (``low + (high - low) s``). Inputs are z-scored with the
statistics of the noise-free training set, stored as buffers with the weights.
"""

from __future__ import annotations

import math

import torch
from torch import nn

MAGNITUDE_LAYERS = (4, 64, 64, 2)
COMPLEX_LAYERS = (6, 256, 256, 3)
OUTPUTS = ("t1", "t2", "theta")


def features_from_configurations(F, b1, complex_input: bool) -> torch.Tensor:
    """Network inputs from normalised configurations ``F`` (complex ``(..., 3)``: F-1, F0, F+1)
    and B1 (broadcast to ``F.shape[:-1]``).

    Magnitude: ``[|F-1|, |F0|, |F+1|, B1]``; complex: ``[Re F-1, Re F0, Re F+1, -Im F-1, Im F+1,
    B1]``. A real ``F`` is taken as magnitudes (magnitude input only).
    """
    F = torch.as_tensor(F)
    if not torch.is_complex(F):
        if complex_input:
            raise ValueError("complex network needs complex configurations")
        F = F.to(torch.float32 if F.dtype not in (torch.float32, torch.float64) else F.dtype)
    rdtype = F.real.dtype if torch.is_complex(F) else F.dtype
    b1 = torch.as_tensor(b1, dtype=rdtype).expand(F.shape[:-1])
    if complex_input:
        cols = [F[..., 0].real, F[..., 1].real, F[..., 2].real, -F[..., 0].imag, F[..., 2].imag]
    else:
        mag = F.abs()
        cols = [mag[..., 0], mag[..., 1], mag[..., 2]]
    return torch.stack([*cols, b1], dim=-1)


class BSSFPNet(nn.Module):
    """MLP with input z-scoring and sigmoid outputs mapped to ``[low, high]`` per parameter."""

    def __init__(self, complex_net: bool = False, *, low=None, high=None, layers=None):
        super().__init__()
        self.complex_net = bool(complex_net)
        layers = tuple(layers or (COMPLEX_LAYERS if complex_net else MAGNITUDE_LAYERS))
        self.layers = layers
        mods = []
        for i, (a, b) in enumerate(zip(layers[:-1], layers[1:])):
            mods.append(nn.Linear(a, b))
            if i < len(layers) - 2:
                mods.append(nn.ReLU())
        self.mlp = nn.Sequential(*mods)
        n_in, n_out = layers[0], layers[-1]
        low = torch.zeros(n_out) if low is None else torch.as_tensor(low, dtype=torch.float32)
        high = torch.ones(n_out) if high is None else torch.as_tensor(high, dtype=torch.float32)
        self.register_buffer("in_mean", torch.zeros(n_in))
        self.register_buffer("in_std", torch.ones(n_in))
        self.register_buffer("out_low", low.clone())
        self.register_buffer("out_high", high.clone())

    @property
    def outputs(self) -> tuple[str, ...]:
        return OUTPUTS[:self.layers[-1]]

    def set_input_stats(self, features: torch.Tensor) -> None:
        """Store mean and SD (floored at 1e-6) of the training features for the z-score."""
        self.in_mean.copy_(features.mean(0))
        self.in_std.copy_(features.std(0).clamp_min(1e-6))

    def zscore(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.in_mean) / self.in_std

    def scaled(self, features: torch.Tensor) -> torch.Tensor:
        """Sigmoid outputs in ``[0, 1]`` (the min-max-scaled parameters)."""
        return torch.sigmoid(self.mlp(self.zscore(features)))

    def unscale(self, s: torch.Tensor) -> torch.Tensor:
        return self.out_low + (self.out_high - self.out_low) * s

    def scale(self, params: torch.Tensor) -> torch.Tensor:
        return (params - self.out_low) / (self.out_high - self.out_low)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Parameters ``(..., n_out)`` in SI units (T1, T2 in s; theta in rad)."""
        return self.unscale(self.scaled(features))

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def default_ranges(distribution_bounds, complex_net: bool, theta_max: float = 0.9 * math.pi):
    """``(low, high)`` output ranges from ``((t1lo, t1hi), (t2lo, t2hi))``."""
    (t1lo, t1hi), (t2lo, t2hi) = distribution_bounds
    low, high = [t1lo, t2lo], [t1hi, t2hi]
    if complex_net:
        low.append(-theta_max), high.append(theta_max)
    return torch.tensor(low, dtype=torch.float32), torch.tensor(high, dtype=torch.float32)
