"""Convolutional building blocks shared by the scan-specific networks (scancnn, the MRF subspace CNN):
3x3 conv + instance norm + ReLU, and residual blocks of two such convs (He et al., CVPR 2016)."""

from __future__ import annotations

import torch
from torch import nn


def conv_norm_relu(c_in: int, c_out: int, norm: bool = True) -> list[nn.Module]:
    """3x3 convolution (same size), affine instance norm (``norm``), ReLU."""
    return [nn.Conv2d(c_in, c_out, 3, padding=1), *([nn.InstanceNorm2d(c_out, affine=True)] if norm else []),
            nn.ReLU()]


class ResidualBlock(nn.Module):
    """``relu(x + IN(conv(relu(IN(conv(x))))))`` at constant width."""

    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(*conv_norm_relu(width, width), nn.Conv2d(width, width, 3, padding=1),
                                  nn.InstanceNorm2d(width, affine=True))

    def forward(self, x):
        return torch.relu(x + self.body(x))
