"""Training modes of the unrolled network: ZSSSL (scan-specific), SSL (database), SL (supervised).

Seed 000 (SCIENCE.md section 4); ZS-SSL: Yaman et al., ICLR 2022; SSDU: Yaman et al., MRM 2020.
Arrays follow :mod:`qmriprep.recon`: ``y (S, C, N, H, W)``, ``maps (S, N, H, W)``, mask
broadcastable to ``(S, C, H, W)``, images ``(S, C, H, W)``; numpy or torch in, complex64 inside.
Each scan's k-space is divided by its largest magnitude (:func:`kspace_scale`) before training or
inference, and images come back in the input's scale.

- **ZSSSL** (:func:`train_zsssl`): one scan, split once into ``Gamma`` and ``K`` pairs
  ``(Theta_k, Lambda_k)`` (:func:`~qmriprep.recon.masks.zsssl_splits`); a step runs the network
  with data consistency (DC) on ``Theta_k`` and the loss on ``Lambda_k``; after each epoch the
  self-validation runs DC on ``Omega \\ Gamma`` with the loss on ``Gamma``.
- **SSL** (:func:`train_ssl`): many scans; a fresh ``Theta/Lambda`` split of ``Omega`` each step.
- **SL** (:func:`train_sl`): DC on ``Omega``, image-domain loss against the fully sampled image.

Training runs the shared loop (:func:`qmriprep.nn.loop.fit`): Adam; an epoch is
``steps_per_epoch`` steps; the state with the best validation loss (training loss when there is
no validation data) is kept; training stops after ``patience`` epochs without improvement or at
``max_epochs``. Validation uses at most :data:`MAX_VAL_SLICES` evenly spaced slices per scan. All
randomness derives from ``settings.seed``: two runs give the same weights.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import torch

from ..nn.loop import Hooks, LoopSettings, fit, seeded
from ..utils.files import atomic_write, content_sha256
from .masks import zsssl_splits
from .sense import SenseOp
from .unrolled import UnrolledNet

#: at most this many (evenly spaced) slices of a scan enter a validation loss
MAX_VAL_SLICES = 8


@dataclass
class ReconSettings:
    """Network, optimiser and split settings (defaults: the seed's ZSSSL set-up)."""

    n_unrolls: int = 10
    cg_iter: int = 10
    features: int = 64
    blocks: int = 15
    mu_init: float = 0.05
    lr: float = 5e-4
    n_pairs: int = 25
    steps_per_epoch: int = 25
    max_epochs: int = 300
    patience: int = 25
    val_fraction: float = 0.2
    loss_fraction: float = 0.4
    split: str = "uniform"
    batch: int = 1
    mel: bool = True
    seed: int = 0
    device: str = "cpu"
    time_budget_s: float = 0.0  # stop after the epoch that passes it (0: no limit)
    subspace: bool = False  # reconstruct the contrast subspace's coefficients (recon.subspace)
    schedule: str = "constant"  # learning rate over the epochs: constant | cosine (to 1e-5 at max_epochs)

    def as_dict(self) -> dict:
        return asdict(self)

    def loop(self) -> LoopSettings:
        """The settings of the training loop."""
        return LoopSettings(max_epochs=self.max_epochs, patience=self.patience, lr=self.lr,
                            steps_per_epoch=self.steps_per_epoch, schedule=self.schedule,
                            time_budget_s=self.time_budget_s or None)


def _l1l2(diff: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """``0.5 ||diff||_2 / ||ref||_2 + 0.5 ||diff||_1 / ||ref||_1`` (complex magnitudes)."""
    tiny = torch.finfo(diff.real.dtype).tiny
    l2 = torch.linalg.vector_norm(diff) / torch.linalg.vector_norm(ref).clamp_min(tiny)
    l1 = diff.abs().sum() / ref.abs().sum().clamp_min(tiny)
    return 0.5 * l2 + 0.5 * l1


def kspace_loss(y_hat: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Normalised L1-L2 k-space loss on ``mask`` (``(B, C, H, W)``, broadcast over the coils):
    ``0.5 ||M(y - y^)||_2 / ||M y||_2 + 0.5 ||M(y - y^)||_1 / ||M y||_1``, norms over the batch."""
    m = mask.to(y.real.dtype)
    m = m.reshape((1,) * (4 - m.ndim) + tuple(m.shape)).unsqueeze(2)
    return _l1l2(m * (y - y_hat), m * y)


def image_loss(x: torch.Tensor, x_ref: torch.Tensor) -> torch.Tensor:
    """Normalised L1-L2 image loss ``0.5 ||x - r||_2 / ||r||_2 + 0.5 ||x - r||_1 / ||r||_1`` (SL)."""
    return _l1l2(x - x_ref, x_ref)


def kspace_scale(y) -> float:
    """Normalisation of a collection: its largest k-space magnitude (1 for all-zero data)."""
    peak = float(torch.as_tensor(y).abs().max()) if np.size(y) else 0.0
    return peak if peak > 0 else 1.0


class _Scan(NamedTuple):
    """One scan on the training device: normalised ``y``, ``maps``, bool mask ``(Sm, Cm, H, W)``."""

    y: torch.Tensor
    maps: torch.Tensor
    mask: np.ndarray
    scale: float
    x_ref: torch.Tensor | None = None


def _complex(a, device) -> torch.Tensor:
    return torch.as_tensor(a).to(device=device, dtype=torch.complex64)


def _prepare(y, maps, mask, device, x_ref=None) -> _Scan:
    scale = kspace_scale(y)
    mask = np.asarray(mask.cpu() if isinstance(mask, torch.Tensor) else mask).astype(bool)
    mask = mask.reshape((1,) * (4 - mask.ndim) + mask.shape)
    ref = None if x_ref is None else _complex(x_ref, device) / scale
    return _Scan(_complex(y, device) / scale, _complex(maps, device), mask, scale, ref)


def _mask_tensor(mask: np.ndarray, device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(mask)).to(device=device, dtype=torch.float32)


def _slices(mask: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The mask of slices ``idx``; a mask shared by all slices (leading dim 1) is kept as is."""
    return mask if mask.shape[0] == 1 else mask[idx]


def _rows(mask: np.ndarray, idx: np.ndarray, device) -> torch.Tensor:
    """:func:`_slices` as a 0/1 float tensor on ``device``."""
    return _mask_tensor(_slices(mask, idx), device)


def _masked_loss(model: UnrolledNet, scan: _Scan, idx: np.ndarray, dc: torch.Tensor,
                 loss_mask: torch.Tensor) -> torch.Tensor:
    """Self-supervised loss of slices ``idx``: DC on ``dc``, k-space loss on ``loss_mask``."""
    y, maps = scan.y[idx], scan.maps[idx]
    x = model(y * dc.unsqueeze(2), maps, dc)
    return kspace_loss(SenseOp(maps, loss_mask).forward(x), y, loss_mask)


def _supervised_loss(model: UnrolledNet, scan: _Scan, idx: np.ndarray) -> torch.Tensor:
    omega = _rows(scan.mask, idx, scan.y.device)
    x = model(scan.y[idx] * omega.unsqueeze(2), scan.maps[idx], omega)
    return image_loss(x, scan.x_ref[idx])


def _val_chunks(scan: _Scan, batch: int) -> list[np.ndarray]:
    """At most ``MAX_VAL_SLICES`` evenly spaced slice indices, in chunks of ``batch``."""
    n = scan.y.shape[0]
    idx = np.unique(np.linspace(0, n - 1, min(n, MAX_VAL_SLICES)).round().astype(int))
    return [idx[i:i + batch] for i in range(0, idx.size, batch)]


def _mean_loss(loss_fn: Callable[..., torch.Tensor], model: UnrolledNet, jobs: list) -> float:
    """Mean of ``loss_fn(model, *job)`` over the validation ``jobs`` (slice chunks)."""
    return float(np.mean([loss_fn(model, *job).item() for job in jobs]))


def _pick(rng: np.random.Generator, scans: list[_Scan], batch: int) -> tuple[_Scan, np.ndarray]:
    """A random scan and ``batch`` distinct random slices of it."""
    scan = scans[int(rng.integers(len(scans)))]
    n = scan.y.shape[0]
    return scan, np.sort(rng.choice(n, size=min(batch, n), replace=False))


def _build_model(n_contrasts: int, settings: ReconSettings, init) -> tuple[UnrolledNet, str | None]:
    """A seeded :class:`UnrolledNet`; ``init`` (model file path, module or state dict) warm-starts it."""
    with seeded(settings.seed):
        model = UnrolledNet(n_contrasts, settings.n_unrolls, settings.cg_iter, settings.features,
                            settings.blocks, settings.mu_init, mel=settings.mel)
    init_sha = None
    if isinstance(init, (str, Path)):
        init, meta = load_model(init)
        init_sha = meta["sha256"]
    if init is not None:
        model.load_state_dict(init.state_dict() if isinstance(init, torch.nn.Module) else init)
    return model.to(settings.device), init_sha


def _train(model: UnrolledNet, step_loss: Callable[[], torch.Tensor],
           val_loss: Callable[[], float] | None, settings: ReconSettings, log=None) -> dict:
    """Train with the shared loop; the history: ``train_loss``, ``val_loss``, ``mu`` per epoch,
    ``best_epoch`` (from 0), ``epochs``, ``seconds``. ``log`` gets one line per epoch."""
    say = None if log is None else (lambda r: log(f"epoch {r['epoch'] - 1}: train {r['train_loss']:.4g} "
                                                  f"val {r['val_loss']} mu {r['mu']:.4g}"))
    hooks = Hooks(log=say, extras=lambda: {"mu": float(model.mu.detach())}, progress="ZS-SSL training")
    h = fit(model, step_loss, settings.loop(), val_loss=val_loss, hooks=hooks)
    return {"train_loss": h.column("train_loss"), "val_loss": h.column("val_loss"), "mu": h.column("mu"),
            "best_epoch": h.best_epoch, "epochs": len(h.records), "seconds": h.seconds, "stopped": h.stopped}


def train_zsssl(y, maps, mask, settings: ReconSettings, init=None, log=None) -> tuple[UnrolledNet, dict]:
    """Zero-shot self-supervised training on one scan; returns ``(model, history)``.

    ``history``: ``train_loss``, ``val_loss``, ``mu`` per epoch, ``best_epoch``, ``epochs``,
    ``seconds``, ``stopped`` (``patience`` | ``max_epochs`` | ``time_budget``), ``scale`` (k-space
    normalisation), ``val_slices``, ``init_sha256`` (when ``init`` is a model file). ``log``:
    optional callable receiving one line per epoch.
    """
    dev = settings.device
    scan = _prepare(y, maps, mask, dev)
    splits = zsssl_splits(scan.mask, n_pairs=settings.n_pairs, val_fraction=settings.val_fraction,
                          loss_fraction=settings.loss_fraction, seed=settings.seed, kind=settings.split)
    model, init_sha = _build_model(scan.y.shape[1], settings, init)
    rng = np.random.default_rng(settings.seed)

    def step_loss():
        _, idx = _pick(rng, [scan], settings.batch)
        k = int(rng.integers(settings.n_pairs))
        return _masked_loss(model, scan, idx, _rows(splits.theta[k], idx, dev),
                            _rows(splits.lam[k], idx, dev))

    chunks = _val_chunks(scan, settings.batch)
    dc_val = scan.mask & ~splits.gamma
    jobs = [(scan, idx, _rows(dc_val, idx, dev), _rows(splits.gamma, idx, dev)) for idx in chunks]
    hist = _train(model, step_loss, lambda: _mean_loss(_masked_loss, model, jobs), settings, log)
    hist.update(scale=scan.scale, val_slices=np.concatenate(chunks).tolist(), init_sha256=init_sha)
    return model, hist


def _fresh_split(mask: np.ndarray, settings: ReconSettings, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One random ``(Theta, Lambda)`` partition of ``Omega`` (no ``Gamma``), SSDU style."""
    s = zsssl_splits(mask, n_pairs=1, val_fraction=0.0, loss_fraction=settings.loss_fraction,
                     seed=seed, kind=settings.split)
    return s.theta[0], s.lam[0]


def train_ssl(dataset, settings: ReconSettings, init=None, val_dataset=None, log=None):
    """Database self-supervised training (SSDU) on ``dataset``: a list of ``(y, maps, mask)``.

    Each step takes ``batch`` slices of a random scan and a fresh ``Theta/Lambda`` split of their
    mask. ``val_dataset`` (same form, held-out scans) gets one fixed split per scan (seeded); the
    validation loss is the k-space loss on its ``Lambda`` with DC on its ``Theta``.
    Returns ``(model, history)``.
    """
    dev = settings.device
    scans = [_prepare(*d, dev) for d in dataset]
    model, init_sha = _build_model(scans[0].y.shape[1], settings, init)
    rng = np.random.default_rng(settings.seed)

    def step_loss():
        scan, idx = _pick(rng, scans, settings.batch)
        theta, lam = _fresh_split(_slices(scan.mask, idx), settings, int(rng.integers(2 ** 32)))
        return _masked_loss(model, scan, idx, _mask_tensor(theta, dev), _mask_tensor(lam, dev))

    jobs = []
    for i, d in enumerate(val_dataset or ()):
        scan = _prepare(*d, dev)
        theta, lam = _fresh_split(scan.mask, settings, settings.seed + i)
        jobs += [(scan, idx, _rows(theta, idx, dev), _rows(lam, idx, dev))
                 for idx in _val_chunks(scan, settings.batch)]
    val_loss = (lambda: _mean_loss(_masked_loss, model, jobs)) if jobs else None
    hist = _train(model, step_loss, val_loss, settings, log)
    hist.update(init_sha256=init_sha)
    return model, hist


def train_sl(dataset, settings: ReconSettings, init=None, val_dataset=None, log=None):
    """Supervised training on ``dataset``: a list of ``(y, maps, mask, x_ref)``.

    ``x_ref (S, C, H, W)``: the fully sampled coil-combined image, in the scale of ``y`` (it is
    divided by the same k-space scale). Loss: :func:`image_loss` of the network output (DC on
    ``Omega``). ``val_dataset`` (same form) drives early stopping. Returns ``(model, history)``.
    """
    dev = settings.device
    scans = [_prepare(y, maps, mask, dev, x_ref) for y, maps, mask, x_ref in dataset]
    model, init_sha = _build_model(scans[0].y.shape[1], settings, init)
    rng = np.random.default_rng(settings.seed)

    def step_loss():
        return _supervised_loss(model, *_pick(rng, scans, settings.batch))

    jobs = []
    for y, maps, mask, x_ref in val_dataset or ():
        scan = _prepare(y, maps, mask, dev, x_ref)
        jobs += [(scan, idx) for idx in _val_chunks(scan, settings.batch)]
    val_loss = (lambda: _mean_loss(_supervised_loss, model, jobs)) if jobs else None
    hist = _train(model, step_loss, val_loss, settings, log)
    hist.update(init_sha256=init_sha)
    return model, hist


def reconstruct(model: UnrolledNet, y, maps, mask, batch: int = 4):
    """Images ``(S, C, H, W)`` with DC on all of ``Omega``, ``batch`` slices at a time, no grad.

    ``y`` is normalised by :func:`kspace_scale` and the result scaled back; numpy in gives
    numpy out, a tensor gives a CPU tensor.
    """
    scan = _prepare(y, maps, mask, next(model.parameters()).device)
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, scan.y.shape[0], batch):
            idx = np.arange(start, min(start + batch, scan.y.shape[0]))
            omega = _rows(scan.mask, idx, scan.y.device)
            out.append(model(scan.y[idx] * omega.unsqueeze(2), scan.maps[idx], omega).cpu())
    x = torch.cat(out) * scan.scale
    return x.numpy() if isinstance(y, np.ndarray) else x


def save_model(path, model: UnrolledNet, settings: ReconSettings, history: dict) -> str:
    """``torch.save`` of ``{hparams, state_dict, settings, history}``, written atomically; returns
    the SHA256 of the weights (:func:`weights_sha256`: the history's timings do not enter it)."""
    blob = {"hparams": dict(model.hparams),
            "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            "settings": settings.as_dict() if isinstance(settings, ReconSettings) else dict(settings),
            "history": history}
    atomic_write(path, lambda tmp: torch.save(blob, tmp))
    return weights_sha256(blob["hparams"], blob["state_dict"])


def weights_sha256(hparams: dict, state_dict: dict) -> str:
    """SHA256 of a model's architecture and weights (same model, same hash, in every run)."""
    import hashlib
    import json

    arch = hashlib.sha256(json.dumps(hparams, sort_keys=True, default=str).encode()).hexdigest()
    return content_sha256({**state_dict, "__hparams__": np.frombuffer(arch.encode(), np.uint8)})


def load_model(path, device: str = "cpu") -> tuple[UnrolledNet, dict]:
    """``(model, meta)`` from :func:`save_model`'s file; ``meta``: hparams, settings, history, sha256."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    model = UnrolledNet(**blob["hparams"])
    model.load_state_dict(blob["state_dict"])
    meta = {k: blob[k] for k in ("hparams", "settings", "history")}
    meta["sha256"] = weights_sha256(blob["hparams"], blob["state_dict"])
    return model.to(device).eval(), meta
