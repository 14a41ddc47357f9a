"""Scan-specific subspace CNN for MR fingerprinting (seed 001, ``mrf:subspacecnn``).

The seed's idea: a CNN maps the subspace coefficient images of an MRF scan to coefficient images
``c``; the series they stand for, ``c Phi^T``, is compared with the acquired series by an L1
loss; no labels, trained on this scan only; T1/T2/M0 by dictionary matching of the network's
coefficients (:func:`qmriprep.fit.mrf.maps_from`). Its spatial context is what denoises.

A CNN fed the coefficients of all frames and scored on the same frames learns the identity (the
projection is already the per-voxel optimum of the loss). Here the frames are split in two
interleaved halves ``A`` (even) and ``B`` (odd) whose noise and undersampling artefacts are
independent: the network reads the coefficients least-squares fitted to one half and is scored
on the other half's frames (L2 by default, or the seed's L1; real and imaginary parts), both
ways (Noise2Noise, Lehtinen et al., ICML 2018). It cannot predict the other half's noise, so it
learns the signal. L2 because the per-frame noise dominates the loss: its gradient equals that of
the coefficient-domain error, whereas the L1 gradient is mostly the sign of that noise (measured:
L1 stops earlier with less gain, ``benchmarks/RESULTS.md``). The L2 loss is computed without the
frames: with ``x_B = Phi_B c_B + r_B`` (``c_B`` the least-squares coefficients of half ``B``,
``r_B`` orthogonal to ``Phi_B``'s columns), ``|Phi_B c - x_B|^2 = (c - c_B)^H G_B (c - c_B) +
|r_B|^2``, ``G_B = Phi_B^T Phi_B`` (r x r), so a step costs the coefficients' memory, not the
series' (the L1 loss keeps each half's frames). The maps
come from the mean of its two outputs. A random ``holdout`` fraction of the mask voxels is left
out of the loss; training (:func:`qmriprep.nn.loop.fit`) stops when their loss stops falling.

Network: 3x3 conv + instance norm + ReLU, ``blocks`` residual blocks, a 1x1 conv back to the
coefficient channels (real and imaginary parts of complex data), added to its input (it
predicts a correction; the last conv starts at zero, so training starts from the identity).
Axial slices are the batch. Deterministic for a given ``seed``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from ..fit.mrf import MRFSettings, maps_from, prepare
from .blocks import ResidualBlock, conv_norm_relu
from .loop import LoopSettings, fit, seeded
from .subspacecnn_sd import HALVES, variance_factor

LOGGER = logging.getLogger("nipype.interface")


@dataclass
class SubspaceCNNSettings:
    """Network and training of ``mrf:subspacecnn`` (config section ``mrf_cnn``)."""

    width: int = 16
    blocks: int = 2
    lr: float = 3e-3
    max_epochs: int = 150
    steps_per_epoch: int = 4
    patience: int = 30
    holdout: float = 0.1
    loss: str = "l2"  # "l2" or "l1" (the seed's), on real and imaginary parts of the frames
    time_budget_s: float = 600.0  # stop after this many seconds of training (0: none)

    def __post_init__(self):
        if self.loss not in ("l1", "l2"):
            raise ValueError(f"mrf_cnn loss must be 'l1' or 'l2', got {self.loss!r}")


class SubspaceCNN(nn.Module):
    """Coefficient images ``(B, C, H, W)`` -> corrected coefficient images, same shape."""

    def __init__(self, channels: int, width: int, blocks: int):
        super().__init__()
        self.net = nn.Sequential(*conv_norm_relu(channels, width),
                                 *[ResidualBlock(width) for _ in range(blocks)],
                                 nn.Conv2d(width, channels, 1))
        nn.init.zeros_(self.net[-1].weight)  # starts as the identity: it learns a correction
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x):
        return x + self.net(x)


@dataclass
class _Slices:
    """Cropped axial slices: inputs from each half, what the loss compares them with, masks."""

    inputs: tuple  # (A, B): (Z, C, H, W) coefficients fitted to the even / odd frames
    phis: tuple    # (A, B): (T/2, r)
    residual: tuple  # (A, B): (Z, H, W) |r|^2 of each half's frames outside its subspace
    frames: tuple | None  # (A, B): (Z, H, W, T/2) series of each half, for the L1 loss only
    train: torch.Tensor  # (Z, H, W) voxels in the loss
    held: torch.Tensor   # (Z, H, W) held-out voxels
    complex: bool


def _channels(coef: torch.Tensor) -> torch.Tensor:
    """(..., r) coefficients -> (..., C) real channels (real and imaginary parts of complex)."""
    return torch.cat([coef.real, coef.imag], -1) if coef.is_complex() else coef


def _coefficients(ch: torch.Tensor, is_complex: bool) -> torch.Tensor:
    if not is_complex:
        return ch
    r = ch.shape[-1] // 2
    return torch.complex(ch[..., :r], ch[..., r:])


def _volume(values: torch.Tensor, keep: np.ndarray, box) -> torch.Tensor:
    """Voxel rows ``(V, ...)`` back on the cropped grid ``(Z, H, W, ...)`` (zeros outside)."""
    full = torch.zeros(keep.shape + values.shape[1:], dtype=values.dtype)
    full[torch.as_tensor(keep)] = values
    return full[box].permute(2, 0, 1, *range(3, values.dim() + 2))


class _Rows:
    """Cropped-grid volumes ``(Z, C, H, W)`` (or masks ``(Z, H, W)``) back to the voxel rows of the
    series ``(V, r)``, coefficients in the series' units."""

    def __init__(self, keep, box, is_complex: bool, scale: float):
        self.inner, self.box, self.complex, self.scale = torch.as_tensor(keep)[box], box, is_complex, scale

    def __call__(self, vol: torch.Tensor) -> torch.Tensor:
        return _coefficients(vol.permute(2, 3, 0, 1)[self.inner], self.complex) * self.scale

    def mask(self, vol: torch.Tensor) -> torch.Tensor:
        return vol.permute(1, 2, 0)[self.inner]


def _slices(prep, settings: SubspaceCNNSettings, scale: float, seed: int) -> tuple[_Slices, tuple]:
    keep = prep.keep if prep.keep.ndim == 3 else prep.keep[..., None]
    idx = np.nonzero(keep)
    box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in idx)
    x = (prep.x / scale).to(torch.complex64 if prep.x.is_complex() else torch.float32)
    phi = prep.sub.phi
    inputs, frames, phis, residual = [], [], [], []
    for half in HALVES:
        ph = phi[half]
        solve = torch.linalg.pinv(ph.double()).float().T  # (T/2, r): least-squares coefficients
        xs = x[:, half]
        coef = xs @ solve.to(xs.dtype)
        inputs.append(_volume(_channels(coef), keep, box).permute(0, 3, 1, 2).contiguous())
        fitted = (coef.conj() * (coef @ (ph.T @ ph).to(coef.dtype))).real.sum(1)  # c^H G c
        residual.append(_volume(((xs.abs() ** 2).sum(1) - fitted).clamp_min(0), keep, box))
        if settings.loss == "l1":
            frames.append(_volume(xs, keep, box))
        phis.append(ph)
    g = torch.Generator().manual_seed(seed)
    held_rows = torch.rand(int(keep.sum()), generator=g) < settings.holdout
    held = _volume(held_rows, keep, box)
    inside = _volume(torch.ones(int(keep.sum()), dtype=torch.bool), keep, box)
    return _Slices(tuple(inputs), tuple(phis), tuple(residual), tuple(frames) or None, inside & ~held,
                   held, prep.x.is_complex()), (keep, box)


def _loss(model, data: _Slices, where: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    """L1 (or L2) between each half's frames and the series of the other half's predicted
    coefficients, mean over frames (and real and imaginary parts), both ways, at voxels ``where``."""
    total = 0.0
    for src, dst in ((0, 1), (1, 0)):
        out = model(data.inputs[src]).permute(0, 2, 3, 1)[where]  # (V, C) real channels
        total = total + (_l2(out, data, dst, where) if kind == "l2" else _l1(out, data, dst, where))
    return total / 2


def _l2(out, data: _Slices, dst: int, where) -> torch.Tensor:
    """Mean squared frame error from the coefficients: ``(c - c_B)^H G_B (c - c_B) + |r_B|^2``
    (module docstring), per frame (and real and imaginary part)."""
    phi = data.phis[dst]
    gram = phi.T @ phi
    gram = torch.block_diag(gram, gram) if data.complex else gram
    err = out - data.inputs[dst].permute(0, 2, 3, 1)[where]
    size = err.shape[0] * phi.shape[0] * (2 if data.complex else 1)
    return (((err @ gram) * err).sum() + data.residual[dst][where].sum()) / size


def _l1(out, data: _Slices, dst: int, where) -> torch.Tensor:
    """Mean absolute frame error (the seed's loss; needs the frames)."""
    coef = _coefficients(out, data.complex)
    diff = coef @ data.phis[dst].T.to(coef.dtype) - data.frames[dst][where]
    return (torch.view_as_real(diff) if diff.is_complex() else diff).abs().mean()


def fit_mrf_subspacecnn(series, protocol, *, b1=None, mask=None, settings: MRFSettings | None = None,
                        cnn: SubspaceCNNSettings | None = None, seed: int = 0, sigma=None) -> dict[str, np.ndarray]:
    """T1, T2, M0, match quality and RMSE maps by the subspace CNN (module docstring); with the
    series' noise ``sigma`` also their SDs (:func:`train`)."""
    return train(series, protocol, b1=b1, mask=mask, settings=settings, cnn=cnn, seed=seed, sigma=sigma)[0]


def train(series, protocol, *, b1=None, mask=None, settings: MRFSettings | None = None,
          cnn: SubspaceCNNSettings | None = None, seed: int = 0, sigma=None) -> tuple[dict[str, np.ndarray], dict]:
    """The maps and the sidecar record of the training (settings, seed, epochs, curves, seconds,
    and ``IdentityValidationLoss``: the held-out loss of the input coefficients themselves); with
    the series' noise ``sigma`` also ``t1_sd``, ``t2_sd``, ``m0_sd``: the voxel-wise Cramer-Rao bound
    at the CNN's matched atoms (:func:`qmriprep.fit.mrf_sd.matching_sd`) scaled by the CNN's error
    variance over that bound, measured on the held-out voxels (:mod:`.subspacecnn_sd`; recorded
    as ``SDCalibration``)."""
    cnn = cnn or SubspaceCNNSettings()
    prep = prepare(series, protocol, b1=b1, mask=mask, settings=settings)
    full = prep.x @ prep.sub.phi.to(prep.x.dtype) if prep.x.is_complex() else prep.x.float() @ prep.sub.phi
    norms = full.abs().norm(dim=1) if full.is_complex() else full.norm(dim=1)
    scale = float(torch.quantile(norms, 0.99)) / np.sqrt(prep.sub.rank) if norms.numel() else 1.0
    data, (keep, box) = _slices(prep, cnn, scale or 1.0, seed)
    with seeded(seed):
        model = SubspaceCNN(data.inputs[0].shape[1], cnn.width, cnn.blocks)
    with torch.no_grad():  # the loss of copying the other half's coefficients: what to beat
        identity = float(_loss(lambda c: c, data, data.held if data.held.any() else data.train, cnn.loss))
    loop = LoopSettings(max_epochs=cnn.max_epochs, patience=cnn.patience, lr=cnn.lr,
                        steps_per_epoch=cnn.steps_per_epoch, time_budget_s=cnn.time_budget_s or None)
    hist = fit(model, lambda: _loss(model, data, data.train, cnn.loss), loop,
               val_loss=(lambda: float(_loss(model, data, data.held, cnn.loss))) if data.held.any() else None)
    with torch.no_grad():
        outs = [model(data.inputs[k]) for k in (0, 1)]  # (Z, C, H, W) each
    rows = _Rows(keep, box, data.complex, scale or 1.0)
    coef = rows((outs[0] + outs[1]) / 2)
    factor = None
    if sigma is not None:
        factor = variance_factor([rows(x) for x in data.inputs], [rows(x) for x in outs], float(sigma), prep,
                                 rows.mask(data.held))
    record = {"TrainingSettings": asdict(cnn), "RandomSeed": seed, "TrainingEpochs": len(hist.records),
              "TrainingBestEpoch": hist.best_epoch + 1, "TrainingStopped": hist.stopped,
              "TrainingSeconds": round(hist.seconds, 3), "IdentityValidationLoss": identity,
              "TrainingCurve": {"epoch": hist.column("epoch"),
                                "train_loss": [float(f"{v:.6g}") for v in hist.column("train_loss")],
                                "val_loss": [None if v is None else float(f"{v:.6g}")
                                             for v in hist.column("val_loss")]}}
    if factor is not None:
        record["SDCalibration"] = {"HeldOutVoxels": factor.pop("voxels"),
                                   "VarianceOverBound": {k: round(v, 4) for k, v in factor.items()}}
    LOGGER.info("subspace CNN: %d epochs (%s), %.0f s", len(hist.records), hist.stopped, hist.seconds)
    return maps_from(coef, prep, sigma, factor), record
