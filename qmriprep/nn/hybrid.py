"""T1, T2 and M0 maps from clinical weighted images, trained with low-resolution labels (seed 002).

A 2-D :class:`~.unet.UNet` maps slices of the weighted images (T1w MPRAGE, T2w TSE, optional
FLAIR; each divided by its 99th percentile) to ``T1/s_T1``, ``T2/s_T2``, ``M0/s_M0`` (softplus
outputs; scales ``s`` of :class:`HybridSettings`). Slices are taken along ``slice_axis`` (default
0, sagittal: axial thick-slice labels then lie in the plane, as in the seed). The loss is

    L = L1(m_hat, m_lowres) + lambda sum_c L1(a_c S(i_hat_c), S(i_c)),
    a_c = <S(i_hat_c), S(i_c)> / <S(i_hat_c), S(i_hat_c)>   (closed-form least squares, per slice)

with ``S`` the two Sobel derivatives of a slice, ``i_c`` the acquired T1w and T2w images and
``i_hat_c`` their synthesis from the predicted maps by :func:`~qmriprep.physics.mprage.mprage_signal`
and :func:`~qmriprep.physics.tse.tse_signal` (Bloch-based models; seed 002, Ea-GAN edge loss of Yu
et al. 2019, scale-invariant loss of Wang et al. 2020). **Gradients flow through a**: it is a
differentiable function of ``i_hat`` in the graph (not detached), so the edge term is exactly
invariant to the scale of ``i_hat`` and the network is not pushed to match the unknown receiver
gain. ``lambda = 0`` is the supervised-only baseline. Training goes through :func:`.loop.fit`
(Adam, early stopping on held-out slices of the training volumes).

**Uncertainty**: a second head of the U-Net (on detached features, so the
maps are trained as without it) predicts a log-variance ``s`` per map, trained by the Gaussian
negative log-likelihood of the maps' residual to the labels, ``(r^2 exp(-s) + s) / 2`` in the brain
(``r`` on the scaled maps, detached: Kendall and Gal 2017 with the mean kept from the L1 loss).
The standard deviation ``k exp(s / 2)`` is then calibrated on the held-out slices: ``k`` per map makes
68.27 % of their label residuals lie within +-1 SD (as a Gaussian's; the model's ``SDCalibration``).
The residual is to the *labels*: label noise counts as error; what the network shares with the
labels (their blur, their bias) does not.

**Ensembles** (``members`` > 1; Lakshminarayanan et al. 2017): networks trained on the same split
from seeds ``seed .. seed + members - 1``; the maps are their mean and the SD combines their
predicted variances with their spread, ``sqrt(mean_k sd_k^2 + var_k(maps_k))``, calibrated as above.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch.nn import functional as F

from ..physics.mprage import MPRAGEProtocol, mprage_signal
from ..physics.tse import TSEProtocol, tse_signal
from ..utils.progress import Progress
from .loop import Hooks, LoopSettings, fit, seeded
from .unet import UNet

_SOBEL = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8
#: smallest relaxation time fed to the signal models (s): predictions in the background
_T_MIN = 1e-3


@dataclass(frozen=True)
class HybridSettings:
    """Network, loss and training settings (SI: scales in s for T1 and T2)."""

    edge_weight: float = 0.5          # lambda; 0: supervised only
    width: int = 12
    depth: int = 3
    scales: tuple[float, float, float] = (3.0, 1.0, 1.0)  # T1 (s), T2 (s), M0
    slice_axis: int = 0
    batch_size: int = 8
    max_epochs: int = 80
    patience: int = 20                # the cosine schedule's low-rate end gives much of the gain (RESULTS)
    lr: float = 2e-3
    steps_per_epoch: int = 25
    val_fraction: float = 0.1
    time_budget_s: float | None = None   # shared by the members
    seed: int = 0
    members: int = 3                  # an ensemble of networks (maps averaged, their spread in the SD; RESULTS)


@dataclass
class Volumes:
    """Training data of one subject on one grid: ``images`` (C, X, Y, Z) raw weighted images
    (T1w, T2w first), ``labels`` (3, X, Y, Z) T1 (s), T2 (s), M0 resampled to that grid."""

    images: np.ndarray
    labels: np.ndarray


def normalise(images: np.ndarray) -> np.ndarray:
    """Each image divided by its 99th percentile (inputs and edge targets, float32)."""
    scale = np.percentile(images.reshape(images.shape[0], -1), 99, axis=1)
    return (images / np.maximum(scale, 1e-12)[:, None, None, None]).astype(np.float32)


def sobel(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W) -> (B, 2C, H, W)``: the horizontal and vertical Sobel derivatives."""
    k = torch.stack([_SOBEL, _SOBEL.T]).to(x)[:, None]
    b, c, h, w = x.shape
    return F.conv2d(F.pad(x.reshape(b * c, 1, h, w), (1, 1, 1, 1), mode="replicate"), k).reshape(b, 2 * c, h, w)


def maps_from(out: torch.Tensor, settings: HybridSettings) -> torch.Tensor:
    """Network output -> ``(B, 3, H, W)`` T1 (s), T2 (s), M0 (softplus, scaled)."""
    return F.softplus(out[:, :3]) * torch.tensor(settings.scales, dtype=out.dtype)[:, None, None]


def log_variance(out: torch.Tensor) -> torch.Tensor:
    """Network output -> ``(B, 3, H, W)`` log-variances of the scaled maps (clamped to [-30, 10])."""
    return out[:, 3:6].clamp(-30.0, 10.0)


def sd_loss(out: torch.Tensor, maps: torch.Tensor, y: torch.Tensor, settings: HybridSettings) -> torch.Tensor:
    """Gaussian NLL ``(r^2 exp(-s) + s) / 2`` of the detached scaled residual ``r`` where the M0 label > 0."""
    scales = torch.tensor(settings.scales, dtype=y.dtype)[:, None, None]
    r, s = (maps.detach() - y) / scales, log_variance(out)
    brain = (y[:, 2:3] > 0).expand_as(r)
    return (0.5 * (r ** 2 * torch.exp(-s) + s))[brain].mean() if brain.any() else s.sum() * 0


def synthesise(maps: torch.Tensor, mprage: MPRAGEProtocol, tse: TSEProtocol) -> torch.Tensor:
    """``(B, 2, H, W)`` T1w and T2w images of the maps by the MPRAGE and TSE models."""
    t1, t2, m0 = maps[:, 0].clamp_min(_T_MIN), maps[:, 1].clamp_min(_T_MIN), maps[:, 2]
    return torch.stack([mprage_signal(m0, t1, mprage), tse_signal(m0, t1, t2, tse)], 1)


def edge_loss(synth: torch.Tensor, acquired: torch.Tensor) -> torch.Tensor:
    """Mean ``|a S(i_hat) - S(i)|`` with the least-squares ``a`` per slice and contrast (in the graph)."""
    gs, ga = sobel(synth), sobel(acquired)
    b, c2 = gs.shape[:2]
    gs, ga = gs.reshape(b, c2 // 2, -1), ga.reshape(b, c2 // 2, -1)
    a = (gs * ga).sum(-1, keepdim=True) / (gs * gs).sum(-1, keepdim=True).clamp_min(1e-12)
    return (a * gs - ga).abs().mean()


def loss_terms(model, x, y, settings: HybridSettings, protocols) -> tuple[torch.Tensor, ...]:
    """``(supervised L1 on scaled maps, edge loss, SD head NLL)`` of a batch ``x`` (inputs), ``y``
    (labels, SI); the edge loss zero when ``edge_weight`` is."""
    out = model(x)
    maps = maps_from(out, settings)
    scales = torch.tensor(settings.scales, dtype=x.dtype)[:, None, None]
    sup = (maps / scales - y / scales).abs().mean()
    nll = sd_loss(out, maps, y, settings)
    if settings.edge_weight == 0:
        return sup, torch.zeros(()), nll
    return sup, edge_loss(synthesise(maps, *protocols), x[:, :2]), nll


def _slices(vols: list[Volumes], axis: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All slices along ``axis`` with any label, as ``(N, C, H, W)`` inputs and ``(N, 3, H, W)`` labels."""
    xs, ys = [], []
    for v in vols:
        x, y = np.moveaxis(normalise(v.images), axis + 1, 1), np.moveaxis(v.labels, axis + 1, 1)
        keep = (y[2] > 0).reshape(y.shape[1], -1).mean(1) > 0.05
        xs.append(np.swapaxes(x[:, keep], 0, 1))
        ys.append(np.swapaxes(y[:, keep], 0, 1).astype(np.float32))
    size = np.max([a.shape[2:] for a in xs], axis=0)
    return (torch.from_numpy(np.concatenate([_pad_to(a, size) for a in xs])),
            torch.from_numpy(np.concatenate([_pad_to(a, size) for a in ys])))


def _pad_to(a: np.ndarray, size) -> np.ndarray:
    """``a`` (N, C, H, W) zero-padded, centred, to ``size`` (H, W): subjects of different matrices
    train together, their padding as background (no labels, no edges); unchanged when it fits."""
    pad = [(0, 0), (0, 0)] + [((n - m) // 2, n - m - (n - m) // 2) for n, m in zip(size, a.shape[2:])]
    return np.pad(a, pad) if any(p != (0, 0) for p in pad) else a


def train(vols: list[Volumes], protocols: tuple[MPRAGEProtocol, TSEProtocol], settings: HybridSettings,
          *, log=None):
    """Train ``settings.members`` networks on ``vols`` (one split of training and held-out slices;
    member ``k`` initialised with seed ``seed + k`` and batched by a generator of that seed, member
    0 by the split's own, so it is the single network of ``members = 1``; the time budget shared); returns
    ``(networks, record)`` (record: per-member curves and timings, slices used, SD calibration of
    the ensemble, training range)."""
    x, y = _slices(vols, settings.slice_axis)
    gen = torch.Generator().manual_seed(settings.seed)
    order = torch.randperm(x.shape[0], generator=gen)
    n_val = max(1, int(round(settings.val_fraction * x.shape[0])))
    val, tr = order[:n_val], order[n_val:]
    nets, runs = [], []
    for k in range(settings.members):
        member_gen = gen if k == 0 else torch.Generator().manual_seed(settings.seed + k)
        net, run = _train_member((x, y, tr, val), protocols, settings, k, member_gen, log=log)
        nets.append(net)
        runs.append(run)
    record = {"settings": asdict(settings), "n_train_slices": int(len(tr)), "n_val_slices": int(n_val),
              "members": runs, "seconds": sum(r["seconds"] for r in runs),
              "cpu_seconds": sum(r["cpu_seconds"] for r in runs),
              "stopped": ", ".join(sorted({r["stopped"] for r in runs}))}
    record["SDCalibration"] = calibrate_sd(nets, x[val], y[val], settings)
    record["TrainingRange"] = training_range(y[tr])
    return nets, record


def _train_member(data, protocols, settings: HybridSettings, k: int, gen: torch.Generator, *, log=None):
    """Member ``k``: a U-Net initialised with seed ``seed + k``, batches drawn by ``gen`` from the
    training slices ``tr`` of ``data = (x, y, tr, val)``, early stopping on ``val``."""
    x, y, tr, val = data
    with seeded(settings.seed + k):
        model = UNet(x.shape[1], 3, settings.width, settings.depth, sd_channels=3)

    def total(xb, yb, *, with_sd=False):
        """The maps' loss; ``with_sd`` adds the SD head's gradient but not its value (curves and
        early stopping stay on the maps' loss)."""
        sup, edge, nll = loss_terms(model, xb, yb, settings, protocols)
        return sup + settings.edge_weight * edge + (nll - nll.detach() if with_sd else 0)

    def step():
        idx = tr[torch.randint(len(tr), (settings.batch_size,), generator=gen)]
        return total(x[idx], y[idx], with_sd=True)

    def val_loss():
        return float(sum(total(x[val[i:i + 16]], y[val[i:i + 16]]) * len(val[i:i + 16])
                         for i in range(0, len(val), 16)) / len(val))

    budget = None if settings.time_budget_s is None else settings.time_budget_s / settings.members
    loop = LoopSettings(max_epochs=settings.max_epochs, patience=settings.patience, lr=settings.lr,
                        steps_per_epoch=settings.steps_per_epoch, schedule="cosine", time_budget_s=budget)
    what = "U-Net training" + (f" (member {k + 1} of {settings.members})" if settings.members > 1 else "")
    hist = fit(model, step, loop, val_loss=val_loss, hooks=Hooks(log=log, progress=what))
    return model, {"seed": settings.seed + k, "epochs": len(hist.records), "best_epoch": hist.best_epoch + 1,
                   "stopped": hist.stopped, "seconds": hist.seconds, "cpu_seconds": hist.cpu_seconds,
                   "curves": {c: hist.column(c) for c in ("train_loss", "val_loss", "seconds")}}


def training_range(y: torch.Tensor) -> list[list[float]]:
    """Per map ``[low, high]``: the 0.1 and 99.9 percentiles of the brain's (M0 label > 0) labels;
    estimates outside are extrapolations (the estimator's out-of-range mask)."""
    brain = (y[:, 2] > 0).numpy()
    return [np.quantile(y[:, c].numpy()[brain], [0.001, 0.999]).tolist() if brain.any() else [0.0, np.inf]
            for c in range(3)]


#: fraction of a Gaussian within +-1 SD
ONE_SD = 0.6827


@torch.no_grad()
def combined(nets, x: torch.Tensor, settings: HybridSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """``(maps, sd)`` of slices ``x`` by the members ``nets``: the mean of their maps, and the
    uncalibrated SD ``sqrt(mean_k var_k + var_k(maps_k))`` (each member's predicted variance
    ``exp(s_k)`` times the scale squared, plus the spread between members: Lakshminarayanan 2017)."""
    outs = [net.eval()(x) for net in nets]
    maps = torch.stack([maps_from(o, settings) for o in outs])
    scales = torch.tensor(settings.scales)[:, None, None]
    var = torch.stack([torch.exp(log_variance(o)) for o in outs]).mean(0) * scales ** 2
    return maps.mean(0), torch.sqrt(var + maps.var(0, unbiased=False))


@torch.no_grad()
def calibrate_sd(nets, x: torch.Tensor, y: torch.Tensor, settings: HybridSettings) -> list[float]:
    """Per map, the factor ``k`` making 68.27 % of the label residuals of slices ``x``, ``y`` (brain:
    M0 label > 0) lie within ``k`` times the members' combined SD (:func:`combined`)."""
    parts = [combined(nets, x[i:i + 16], settings) for i in range(0, len(x), 16)]
    maps, sd = (torch.cat([p[j] for p in parts]) for j in (0, 1))
    z = (maps - y).abs() / sd
    brain = y[:, 2] > 0
    return [float(np.quantile(z[:, c][brain].numpy(), ONE_SD)) if brain.any() else 1.0 for c in range(3)]


_KEYS = ("t1", "t2", "m0")


@torch.no_grad()
def predict(nets, images: np.ndarray, settings: HybridSettings, *, mask=None, batch: int = 16,
            sd_calibration=None) -> dict:
    """``{"t1", "t2", "m0"}`` (s, s, label units) of raw weighted ``images`` (C, X, Y, Z) by the
    members ``nets`` (mean) and their SDs ``{"t1_sd", "t2_sd", "m0_sd"}`` (:func:`combined`, times
    ``sd_calibration`` per map); 0 outside ``mask``."""
    x = torch.from_numpy(np.moveaxis(normalise(images), settings.slice_axis + 1, 0))
    progress, parts = Progress("U-Net maps", x.shape[0], unit="slices"), []
    for i in range(0, x.shape[0], batch):
        parts.append(combined(nets, x[i:i + batch], settings))
        progress.update(min(i + batch, x.shape[0]), final=i + batch >= x.shape[0])
    maps, sd = (torch.cat([p[j] for p in parts]) for j in (0, 1))
    sd = sd * torch.tensor(sd_calibration or [1.0] * 3)[:, None, None]
    fields = {k: maps[:, i] for i, k in enumerate(_KEYS)}
    fields.update({f"{k}_sd": sd[:, i] for i, k in enumerate(_KEYS)})
    keep = np.ones(images.shape[1:], bool) if mask is None else np.asarray(mask, bool)
    return {k: np.where(keep, np.moveaxis(v.numpy(), 0, settings.slice_axis), 0).astype(np.float32)
            for k, v in fields.items()}


def state_of(nets) -> dict:
    """The weights to save: one member's state dict as is (the single-network format), several as a
    ``ModuleList``'s (keys ``"k.<name>"``)."""
    return nets[0].state_dict() if len(nets) == 1 else torch.nn.ModuleList(nets).state_dict()


def nets_from(state: dict, n_inputs: int, settings: HybridSettings) -> list:
    """The ``settings.members`` U-Nets of a saved ``state`` (:func:`state_of`)."""
    nets = [UNet(n_inputs, 3, settings.width, settings.depth, sd_channels=3) for _ in range(settings.members)]
    (nets[0] if len(nets) == 1 else torch.nn.ModuleList(nets)).load_state_dict(state)
    return nets
