"""Scan-specific unsupervised CNN for mono-exponential relaxometry (seed 001; SCIENCE.md section 2).

A convolutional network is trained on the one scan it maps, without labels: it reads the echo
images of a slice and writes M0 and T2 (or T2*) maps; the loss compares the acquired echoes with
the echoes synthesised through the shared model ``S(TE) = M0 exp(-TE/T2)``
(:func:`qmriprep.physics.exponential.monoexp`). Its spatial context is what beats voxel-wise
fitting in noise. Made practical on a CPU by:

1. **a warm start**: the network is first fitted (``pretrain_epochs``) to the VarPro maps of the
   same scan, which a CNN reproduces smooth before it reproduces their noise;
2. **held-out echo samples**: a random ``holdout`` fraction of the (voxel, echo) samples is left
   out of the loss; training stops when their squared error (an unbiased estimate of the signal
   error plus sigma^2) stops falling (``patience`` epochs), and the best state is kept;
3. the network's field of view cropped to the mask, slices without mask voxels skipped.

Network (after Ulyanov et al.'s and the seed's design): 3x3 conv + instance norm + ReLU, then
``blocks`` residual blocks of two such convs, then a 1x1 conv to two channels ``(u, v)``;
``T2 = t2_min (t2_max / t2_min)^sigmoid(u)`` (log-uniformly bounded) and
``M0 = m0_scale softplus(v)``. Deterministic for a given ``seed`` on one thread count.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, fields, replace

import numpy as np
import torch
from torch import nn

from .blocks import ResidualBlock, conv_norm_relu
from .loop import History, Hooks, LoopSettings, fit, seeded

LOSSES = ("l1", "l2", "ssim", "ssim+l1")
LOGGER = logging.getLogger("nipype.interface")


@dataclass
class ScanCNNSettings:
    """Settings of the scan-specific CNN (config section ``scan_cnn``)."""

    loss: str = "l2"            # one of LOSSES: data term between acquired and synthesised echoes
    width: int = 16             # feature channels
    blocks: int = 2             # residual blocks (the seed: 9)
    lr: float = 3e-3            # Adam learning rate
    batch_slices: int = 4       # slices per optimiser step (an epoch visits every slice once)
    pretrain_epochs: int = 0    # epochs fitting the VarPro maps first (0: random start)
    max_epochs: int = 2000      # physics-loss epochs (the time budget usually stops a volume first)
    patience: int = 60          # epochs without a lower held-out error before stopping
    holdout: float = 0.1        # fraction of (voxel, echo) samples held out for stopping
    t2_min: float = 1e-3        # output bounds (s)
    t2_max: float = 3.0
    time_budget_s: float = 270.0  # stop training after this many seconds (0: none)

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"unknown scancnn loss {self.loss!r}; choose one of {LOSSES}")
        if not 0 < self.holdout < 0.5 or not 0 < self.t2_min < self.t2_max:
            raise ValueError(f"invalid scancnn settings: {self}")


class ScanCNN(nn.Module):
    """Echo images ``(B, n_echo, H, W)`` -> raw outputs ``(B, 2, H, W)`` (see the module docstring)."""

    def __init__(self, n_echo: int, width: int, blocks: int):
        super().__init__()
        self.net = nn.Sequential(*conv_norm_relu(n_echo, width),
                                 *[ResidualBlock(width) for _ in range(blocks)],
                                 nn.Conv2d(width, 2, 1))

    def forward(self, x):
        return self.net(x)


@dataclass
class _Scan:
    """The cropped slices of one scan, normalised (echo 1 ~ 1), as tensors ``(B, E, H, W)``."""

    y: torch.Tensor
    mask: torch.Tensor      # (B, 1, H, W) bool
    train: torch.Tensor     # (B, E, H, W) bool: samples in the loss
    te: torch.Tensor        # (E,) s
    scale: float


def _maps(raw, s: ScanCNNSettings):
    lo, hi = math.log(s.t2_min), math.log(s.t2_max)
    t2 = torch.exp(lo + (hi - lo) * torch.sigmoid(raw[:, :1]))
    return t2, torch.nn.functional.softplus(raw[:, 1:2])


def _synth(t2, m0, te):
    return m0 * torch.exp(-te[None, :, None, None] / t2)


def _gauss_window(size=7, sigma=1.5):
    g = torch.exp(-(torch.arange(size) - size // 2) ** 2 / (2 * sigma ** 2))
    g = (g / g.sum()).to(torch.float32)
    return (g[:, None] * g[None, :])[None, None]


def ssim(a, b, window, c1=1e-4, c2=9e-4):
    """Mean SSIM (Wang et al., IEEE TIP 2004) of ``(B, E, H, W)`` images with dynamic range ~1."""
    e = a.shape[1]
    w = window.expand(e, 1, *window.shape[-2:])
    pad = window.shape[-1] // 2

    def blur(x):
        return torch.nn.functional.conv2d(x, w, padding=pad, groups=e)

    ma, mb = blur(a), blur(b)
    va, vb, cov = blur(a * a) - ma ** 2, blur(b * b) - mb ** 2, blur(a * b) - ma * mb
    return (((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2))).mean()


def _data_loss(pred, scan: _Scan, kind: str, window):
    """The data term over the training samples inside the mask."""
    w = scan.train & scan.mask
    diff = (pred - scan.y)[w]
    l1 = diff.abs().mean()
    if kind == "l1":
        return l1
    if kind == "l2":
        return (diff ** 2).mean()
    # SSIM on images whose held-out samples and background carry the (fixed) prediction
    target = torch.where(w, scan.y, pred.detach())
    dssim = 1 - ssim(pred, target, window)
    return dssim if kind == "ssim" else 0.5 * dssim + 0.5 * l1


def _prepare(series, te, mask, holdout, gen) -> tuple[_Scan, tuple]:
    """Crop the scan to the mask's in-plane box (margin 4), slices as a batch, normalise."""
    idx = np.nonzero(mask)
    lo = [max(0, int(i.min()) - 4) for i in idx[:2]]
    hi = [min(n, int(i.max()) + 5) for i, n in zip(idx[:2], mask.shape[:2])]
    zs = np.unique(idx[2])
    box = (slice(lo[0], hi[0]), slice(lo[1], hi[1]), zs)
    y = np.moveaxis(series[box], (2, 3), (0, 1)).astype(np.float32)   # (B, E, H, W)
    m = np.moveaxis(mask[box], 2, 0)[:, None]
    scale = float(np.percentile(y[:, 0][m[:, 0]], 99)) or 1.0
    yt = torch.from_numpy(y / scale)
    train = torch.rand(yt.shape, generator=gen) >= holdout
    return _Scan(yt, torch.from_numpy(m), train, torch.as_tensor(te, dtype=torch.float32), scale), box


def fit_scancnn(series, te, mask, init: dict, settings: ScanCNNSettings, *, seed: int = 0,
                device: str = "cpu", log=None) -> tuple[dict, dict]:
    """T2 and M0 maps of one scan (arrays shaped ``mask.shape``) and the training record.

    ``series``: magnitude echoes ``(X, Y, Z, n_echo)``; ``te``: echo times (s); ``init``: the VarPro
    maps (``t2`` s, ``m0``) of the same voxels; ``log``: called with each epoch's record (default:
    a progress line every 10 epochs on the ``nipype.interface`` logger).
    """
    gen = torch.Generator().manual_seed(seed)
    scan, box = _prepare(np.asarray(series), te, mask, settings.holdout, gen)
    scan = replace(scan, **{f.name: getattr(scan, f.name).to(device) for f in fields(scan) if f.name != "scale"})
    with seeded(seed):
        model = ScanCNN(scan.y.shape[1], settings.width, settings.blocks).to(device)
    window = _gauss_window().to(device)
    inside = scan.mask[:, 0]
    t2_ref = torch.from_numpy(np.moveaxis(np.clip(init["t2"][box], settings.t2_min, settings.t2_max),
                                          2, 0).astype(np.float32)).to(device)
    m0_ref = torch.from_numpy(np.moveaxis(init["m0"][box], 2, 0).astype(np.float32) / scan.scale).to(device)

    def pretrain_loss(b):
        t2, m0 = _maps(model(scan.y[b]), settings)
        w = inside[b]
        return ((torch.log(t2[:, 0][w]) - torch.log(t2_ref[b][w])).abs().mean()
                + (m0[:, 0][w] - m0_ref[b][w]).abs().mean())

    def physics_loss(b):
        t2, m0 = _maps(model(scan.y[b]), settings)
        return _data_loss(_synth(t2, m0, scan.te), _Scan(scan.y[b], scan.mask[b], scan.train[b], scan.te,
                                                         scan.scale), settings.loss, window)

    def held_out_error():
        t2, m0 = _predict(model, scan, settings)
        w = ~scan.train & scan.mask
        return float(((_synth(t2, m0, scan.te) - scan.y)[w] ** 2).mean())

    def batches():
        order = torch.randperm(scan.y.shape[0], generator=gen)
        return [order[i:i + settings.batch_slices] for i in range(0, order.numel(), settings.batch_slices)]

    if settings.pretrain_epochs:
        fit(model, pretrain_loss, LoopSettings(max_epochs=settings.pretrain_epochs, patience=10 ** 6,
                                               lr=settings.lr), batches=batches)
    loop = LoopSettings(max_epochs=settings.max_epochs, patience=settings.patience, lr=settings.lr,
                        time_budget_s=settings.time_budget_s or None)
    hist = fit(model, physics_loss, loop, batches=batches, val_loss=held_out_error,
               hooks=Hooks(log=log or _progress))
    with torch.no_grad():
        t2, m0 = (v.cpu() for v in _predict(model, scan, settings))
    return _uncrop(t2, m0, scan, box, mask.shape), _record(hist, settings, seed)


def _predict(model, scan: _Scan, settings: ScanCNNSettings, chunk: int = 8):
    """T2 and M0 of every slice, ``chunk`` slices at a time (memory)."""
    parts = [_maps(model(scan.y[i:i + chunk]), settings) for i in range(0, scan.y.shape[0], chunk)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _progress(record: dict) -> None:
    if record["epoch"] % 10 == 0:
        LOGGER.info("scancnn epoch %d: loss %.4g, held-out error %.4g (%.0f s)", record["epoch"],
                    record["train_loss"], record["val_loss"], record["seconds"])


def _uncrop(t2, m0, scan: _Scan, box, shape) -> dict:
    out = {}
    for key, v in (("t2", t2), ("m0", m0 * scan.scale)):
        full = np.zeros(shape, np.float32)
        full[box] = np.moveaxis((v * scan.mask).cpu()[:, 0].numpy(), 0, 2)
        out[key] = full
    return out


def _record(hist: History, settings: ScanCNNSettings, seed: int) -> dict:
    """Sidecar fields: settings, seed, stopping and the per-epoch training curves."""
    best = hist.records[hist.best_epoch] if hist.best_epoch >= 0 else {}
    return {"TrainingSettings": asdict(settings), "RandomSeed": seed,
            "TrainingEpochs": len(hist.records), "TrainingBestEpoch": best.get("epoch"),
            "TrainingStopped": hist.stopped, "TrainingSeconds": round(hist.seconds, 3),
            "TrainingCurve": {"epoch": hist.column("epoch"),
                              "train_loss": [float(f"{v:.6g}") for v in hist.column("train_loss")],
                              "val_loss": [float(f"{v:.6g}") for v in hist.column("val_loss")]}}
