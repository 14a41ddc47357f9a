"""A 2-D U-Net (Ronneberger et al., MICCAI 2015) built from the shared blocks (:mod:`.blocks`).

``depth`` levels of two 3x3 conv + ReLU, 2x2 max pooling down, transposed 2x2 convolution up,
skip connections by concatenation, a 1x1 head; the width doubles per level. With ``sd_channels``
a second head (3x3 conv + ReLU + 1x1) reads the last features *detached*, so whatever it is trained
for (e.g. a log-variance) leaves the trunk and the first head as without it. No normalisation
layers: instance norm would remove each slice's absolute intensity, which carries T1 and T2.
Inputs of any size: padded (replicate) to a multiple of ``2**depth`` and cropped back.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .blocks import conv_norm_relu


def _double(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(*conv_norm_relu(c_in, c_out, norm=False), *conv_norm_relu(c_out, c_out, norm=False))


class UNet(nn.Module):
    """``(B, c_in, H, W) -> (B, c_out + sd_channels, H, W)``; see the module docstring."""

    def __init__(self, c_in: int, c_out: int, width: int = 16, depth: int = 3, sd_channels: int = 0):
        super().__init__()
        widths = [width * 2 ** i for i in range(depth + 1)]
        self.depth = depth
        self.down = nn.ModuleList(_double(a, b) for a, b in zip([c_in] + widths[:-2], widths[:-1]))
        self.bottom = _double(widths[-2], widths[-1])
        self.up = nn.ModuleList(nn.ConvTranspose2d(b, a, 2, stride=2)
                                for a, b in zip(widths[:-1], widths[1:]))
        self.merge = nn.ModuleList(_double(2 * a, a) for a in widths[:-1])
        self.head = nn.Conv2d(width, c_out, 1)
        self.sd_head = (nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(width, sd_channels, 1)) if sd_channels else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = 2 ** self.depth
        x = F.pad(x, (0, -w % m, 0, -h % m), mode="replicate")
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottom(x)
        for up, merge, skip in zip(reversed(self.up), reversed(self.merge), reversed(skips)):
            x = merge(torch.cat([up(x), skip], 1))
        out = self.head(x) if self.sd_head is None else torch.cat([self.head(x), self.sd_head(x.detach())], 1)
        return out[..., :h, :w]
