"""Voxel-wise MLPs for pc-bSSFP relaxometry (seed 003): SVNN and PINN share the architecture.

Magnitude network (4-64-64-2)
    inputs ``[|F-1|, |F0|, |F+1|, B1]``, outputs ``T1, T2``.
Complex network (6-256-256-3)
    inputs ``[Re F-1, Re F0, Re F+1, -Im F-1, Im F+1, B1]`` (``Im F0 = 0`` after the phase
    removal, dropped), outputs ``T1, T2, theta`` (theta in ``[-0.9 pi, 0.9 pi]``).

Linear - ReLU - Linear - ReLU - Linear - sigmoid; the sigmoid output is mapped linearly onto
the training range of every parameter (``low + (high - low) s``; with ``log_outputs``, on
``log low .. log high`` for T1 and T2). Inputs are z-scored with the statistics of the noise-free
training set, stored as buffers with the weights.

Heteroscedastic head (``sd_head``): one more output per parameter, the log-variance ``v`` of the
error of the scaled estimate (trained by the Gaussian NLL against the in-silico truth, the mean
held fixed, so ``exp(v)`` estimates ``E[(s - s_true)^2 | x]``); the standard deviation in SI
units follows by the delta method, ``sd = (high - low) exp(v/2)`` (times the estimate for log
outputs).
"""

from __future__ import annotations

import math

import torch
from torch import nn

MAGNITUDE_LAYERS = (4, 64, 64, 2)
COMPLEX_LAYERS = (6, 256, 256, 3)
OUTPUTS = ("t1", "t2", "theta")
LOGVAR_RANGE = (-30.0, 4.0)  # clamp of the log-variance outputs (scaled units)


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
    """MLP with input z-scoring and sigmoid outputs mapped to ``[low, high]`` per parameter
    (``log_outputs``: a flag per parameter), optionally with a log-variance head (``sd_head``)."""

    def __init__(self, complex_net: bool = False, *, low=None, high=None, layers=None,
                 log_outputs=(), sd_head: bool = False):
        super().__init__()
        self.complex_net, self.sd_head = bool(complex_net), bool(sd_head)
        n_par = 3 if complex_net else 2
        if layers is None:
            base = COMPLEX_LAYERS if complex_net else MAGNITUDE_LAYERS
            layers = base[:-1] + (n_par * (2 if sd_head else 1),)
        self.layers = tuple(layers)
        self.n_params = self.layers[-1] // (2 if sd_head else 1)
        self.log_outputs = tuple(bool(x) for x in log_outputs) + (False,) * (self.n_params - len(log_outputs))
        mods = []
        for i, (a, b) in enumerate(zip(self.layers[:-1], self.layers[1:])):
            mods.append(nn.Linear(a, b))
            if i < len(self.layers) - 2:
                mods.append(nn.ReLU())
        self.mlp = nn.Sequential(*mods)
        n_in = self.layers[0]
        low = torch.zeros(self.n_params) if low is None else torch.as_tensor(low, dtype=torch.float32)
        high = torch.ones(self.n_params) if high is None else torch.as_tensor(high, dtype=torch.float32)
        self.register_buffer("in_mean", torch.zeros(n_in))
        self.register_buffer("in_std", torch.ones(n_in))
        self.register_buffer("out_low", low.clone())
        self.register_buffer("out_high", high.clone())

    @property
    def outputs(self) -> tuple[str, ...]:
        return OUTPUTS[:self.n_params]

    def set_input_stats(self, features: torch.Tensor) -> None:
        """Store mean and SD (floored at 1e-6) of the training features for the z-score."""
        self.in_mean.copy_(features.mean(0))
        self.in_std.copy_(features.std(0).clamp_min(1e-6))

    def zscore(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.in_mean) / self.in_std

    def _bounds(self):
        """Low and high of the scaled space (log of the SI bounds where ``log_outputs``)."""
        logs = torch.tensor(self.log_outputs, device=self.out_low.device)
        return (torch.where(logs, self.out_low.log(), self.out_low),
                torch.where(logs, self.out_high.log(), self.out_high), logs)

    def raw(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Sigmoid outputs in ``[0, 1]`` and the clamped log-variances (None without a head)."""
        z = self.mlp(self.zscore(features))
        s = torch.sigmoid(z[..., :self.n_params])
        return s, (z[..., self.n_params:].clamp(*LOGVAR_RANGE) if self.sd_head else None)

    def scaled(self, features: torch.Tensor) -> torch.Tensor:
        """Sigmoid outputs in ``[0, 1]`` (the min-max-scaled parameters)."""
        return self.raw(features)[0]

    def unscale(self, s: torch.Tensor) -> torch.Tensor:
        lo, hi, logs = self._bounds()
        u = lo + (hi - lo) * s
        return torch.where(logs, u.exp(), u)

    def scale(self, params: torch.Tensor) -> torch.Tensor:
        lo, hi, logs = self._bounds()
        return (torch.where(logs, params.clamp_min(1e-12).log(), params) - lo) / (hi - lo)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Parameters ``(..., n_params)`` in SI units (T1, T2 in s; theta in rad)."""
        return self.unscale(self.scaled(features))

    def with_sd(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Parameters, their SD (SI, delta method) and the scaled outputs ``s``."""
        s, logvar = self.raw(features)
        params = self.unscale(s)
        lo, hi, logs = self._bounds()
        sd_scaled = torch.exp(0.5 * logvar) if logvar is not None else torch.full_like(s, float("nan"))
        return params, (hi - lo) * sd_scaled * torch.where(logs, params, torch.ones_like(params)), s

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def default_ranges(distribution_bounds, complex_net: bool, theta_max: float = 0.9 * math.pi):
    """``(low, high)`` output ranges from ``((t1lo, t1hi), (t2lo, t2hi))``."""
    (t1lo, t1hi), (t2lo, t2hi) = distribution_bounds
    low, high = [t1lo, t2lo], [t1hi, t2hi]
    if complex_net:
        low.append(-theta_max), high.append(theta_max)
    return torch.tensor(low, dtype=torch.float32), torch.tensor(high, dtype=torch.float32)
