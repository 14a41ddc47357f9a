"""Training of the pc-bSSFP networks on protocol-matched in-silico data (seed 003).

``svnn``  supervised: MSE of the min-max-scaled parameters (the sigmoid outputs against the
          scaled truth: T1, T2 and, for complex networks, theta).
``pinn``  physics-informed, self-supervised: the predicted (T1, T2[, theta]) and the input B1
          are pushed through the SAME model as the data (:func:`qmriprep.nn.insilico.simulate`
          = :func:`qmriprep.physics.bssfp.bssfp_signal`, then phase removal, DFT and
          normalisation), turned into network features and z-scored with the network's
          statistics; the loss is their MSE against the z-scored input features, B1 excluded.
          No labels are used.

Adam; early stopping on the validation loss with the best weights kept. The seed used batch
128 at lr 2e-4 for up to 300 epochs; the defaults here (:data:`DEFAULTS`) use larger batches,
higher rates and a cosine decay over a fixed, short schedule. Measured on 1 CPU thread (noise
free, seed protocol, ``benchmarks/bench_bssfp_networks.py --train``), time to target: magnitude
SVNN 1.6 s and PINN 7.5 s to grid CoD >= 0.999; complex SVNN 37 / 55 / 13 s and PINN 95 / 141 s
to the seed's off-resonance accuracy at 12 / 6 / 4 cycles (the 4-cycle PINN-complex, which
stalls at ~6 % from scratch, warm-started from the 6-cycle one: 17 s; see
``scripts/train_shipped_weights.py``). These small networks gain little from a second torch
thread and lose a lot when the cores are oversubscribed (measured 10x): prefer 1 thread there.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .insilico import BOUNDS, add_noise, as_protocol, configurations, make_dataset, simulate
from .mlp import BSSFPNet, default_ranges, features_from_configurations

VERSION = 1  # bump when training data, losses or architectures change (invalidates the cache)
ESTIMATORS = ("svnn", "pinn")

#: defaults per (estimator, complex_net), measured for speed to the seed's accuracy (see above)
DEFAULTS = {
    ("svnn", False): dict(n_samples=200_000, batch_size=1024, lr=3e-3, schedule="cosine", max_epochs=40,
                          patience=25),
    ("pinn", False): dict(n_samples=200_000, batch_size=1024, lr=3e-3, schedule="cosine", max_epochs=80,
                          patience=25),
    ("svnn", True): dict(n_samples=400_000, batch_size=256, lr=1e-3, schedule="cosine", max_epochs=60,
                         patience=25),
    ("pinn", True): dict(n_samples=400_000, batch_size=512, lr=3e-3, schedule="cosine", max_epochs=60,
                         patience=25),
}
PREDICT_CHUNK = 1 << 14  # voxels per inference chunk: activations stay in cache


@dataclass
class TrainedModel:
    """A trained network with its protocol, settings and training curve."""

    net: BSSFPNet
    protocol: object
    settings: dict
    curve: list = field(default_factory=list)
    val_loss: float = float("nan")
    seconds: float = 0.0
    device: str = "cpu"

    @property
    def complex_net(self) -> bool:
        return self.net.complex_net

    @property
    def estimator(self) -> str:
        return self.settings.get("estimator", "svnn")

    def features(self, F, b1) -> torch.Tensor:
        """Network inputs from configurations (complex, or magnitudes) and B1."""
        return features_from_configurations(F, b1, self.complex_net)

    def predict(self, F, b1=1.0, *, chunk: int = PREDICT_CHUNK) -> dict:
        """``t1, t2[, theta]`` (numpy float32, shape ``F.shape[:-1]``) from ``F`` (``(..., 3)``:
        complex F-1, F0, F+1, or their magnitudes for a magnitude network) and B1 (fraction,
        broadcast). ``F`` is (re)normalised per voxel; voxels with zero or non-finite input
        get 0."""
        F = torch.as_tensor(np.asarray(F) if not isinstance(F, torch.Tensor) else F)
        if torch.is_complex(F):
            F = F.to(torch.complex64)
        elif self.complex_net:
            raise ValueError("complex network needs complex configurations F (..., 3)")
        else:
            F = F.to(torch.float32)
        shape = F.shape[:-1]
        F = F.reshape(-1, F.shape[-1])
        b1 = torch.as_tensor(np.asarray(b1, dtype=np.float32)).expand(shape).reshape(-1)
        out = torch.zeros(F.shape[0], len(self.net.outputs), dtype=torch.float32)
        net = self.net.eval()
        with torch.inference_mode():
            for s in range(0, F.shape[0], chunk):
                f = F[s:s + chunk].to(self.device)
                norm = torch.sqrt((f.abs() ** 2).sum(-1, keepdim=True))
                x = features_from_configurations(f / norm.clamp_min(1e-30), b1[s:s + chunk].to(self.device),
                                                 self.complex_net)
                ok = torch.isfinite(x).all(-1) & (norm[:, 0] > 0)
                y = net(torch.where(ok[:, None], x, torch.zeros_like(x)))
                out[s:s + chunk] = torch.where(ok[:, None], y, torch.zeros_like(y)).cpu()
        return {name: out[:, i].reshape(shape).numpy() for i, name in enumerate(self.net.outputs)}


def resimulated_features(net: BSSFPNet, params: torch.Tensor, b1: torch.Tensor, protocol) -> torch.Tensor:
    """Network features of the signals simulated from ``params`` (T1, T2[, theta]) and B1."""
    theta = params[:, 2] if net.complex_net else torch.zeros_like(params[:, 0])
    sig = simulate(protocol, params[:, 0], params[:, 1], b1, theta)
    return features_from_configurations(configurations(protocol, sig), b1, net.complex_net)


def pinn_loss(net: BSSFPNet, features: torch.Tensor, protocol, params: torch.Tensor | None = None):
    """MSE between the z-scored input features and those re-simulated from the parameters
    (``params``, default the network's prediction), B1 excluded."""
    params = net(features) if params is None else params
    pred = resimulated_features(net, params, features[:, -1], protocol)
    return torch.mean((net.zscore(pred)[:, :-1] - net.zscore(features)[:, :-1]) ** 2)


def svnn_loss(net: BSSFPNet, features: torch.Tensor, target: torch.Tensor):
    """MSE of the min-max-scaled parameters."""
    return torch.mean((net.scaled(features) - net.scale(target)) ** 2)


def _targets(params: dict, complex_net: bool) -> torch.Tensor:
    cols = [params["t1"], params["t2"]] + ([params["theta"]] if complex_net else [])
    return torch.stack(cols, -1)


def _features(protocol, signal, b1, complex_net):
    return features_from_configurations(configurations(protocol, signal), b1, complex_net)


def train(protocol, *, estimator: str = "svnn", complex_net: bool = False, distribution: str = "uniform",
          n_samples: int | None = None, max_epochs: int | None = None, patience: int | None = None,
          batch_size: int | None = None, lr: float | None = None, schedule: str | None = None,
          lr_decay: float = 0.5,
          decay_patience: int | None = None, min_lr: float = 1e-5, grad_clip: float | None = None,
          snr: float | None = None, seed: int = 0,
          device: str = "cpu", time_budget_s: float | None = None, log=None, stop_when=None,
          dataset=None, init=None, init_label: str | None = None) -> TrainedModel:
    """Train an SVNN or PINN (magnitude or complex) for ``protocol`` and return the best model.

    Unset hyper-parameters come from :data:`DEFAULTS`. Learning-rate ``schedule``: ``"cosine"``
    (the default of every network) anneals from ``lr`` to ``min_lr`` over ``max_epochs``;
    ``"plateau"`` multiplies it by ``lr_decay`` after ``decay_patience`` (default
    ``max(3, patience // 4)``) epochs without a new best validation loss. Training stops after
    ``patience`` epochs without a new best validation loss, at
    ``max_epochs``, past ``time_budget_s`` seconds, or when ``stop_when(model)`` is true (a
    hook for time-to-target benchmarks; its own run time is not counted). ``log`` gets one
    dict per epoch. ``grad_clip`` caps the gradient norm of every step. ``snr`` adds fresh noise
    to every training batch (and one fixed draw to the validation set); the z-score statistics
    always come from the noise-free set. ``init`` (a :class:`TrainedModel` of the same
    architecture, e.g. one trained for more phase cycles) warm-starts the MLP weights; the z-score
    statistics and output ranges are still this training set's; ``init_label`` is recorded.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; choose one of {ESTIMATORS}")
    protocol = as_protocol(protocol)
    hp = dict(DEFAULTS[(estimator, bool(complex_net))])
    for k, v in dict(n_samples=n_samples, max_epochs=max_epochs, patience=patience,
                     batch_size=batch_size, lr=lr).items():
        if v is not None:
            hp[k] = v
    decay_patience = max(3, hp["patience"] // 4) if decay_patience is None else decay_patience
    default_schedule = hp.pop("schedule", "plateau")
    schedule = schedule or default_schedule
    if schedule not in ("plateau", "cosine"):
        raise ValueError(f"unknown schedule {schedule!r}")
    t_start, cpu_start = time.perf_counter(), time.process_time()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    data = dataset or make_dataset(protocol, hp["n_samples"], distribution=distribution,
                                   complex_net=complex_net, seed=seed)
    tr, va = data.subset("train"), data.subset("val")
    b1_tr, b1_va = tr["params"]["b1"], va["params"]["b1"]
    x_tr = features_from_configurations(tr["configurations"], b1_tr, complex_net)
    y_tr, y_va = _targets(tr["params"], complex_net), _targets(va["params"], complex_net)
    noisy_val = add_noise(va["signal"], snr, gen) if snr else None
    x_va = _features(protocol, noisy_val, b1_va, complex_net) if snr else \
        features_from_configurations(va["configurations"], b1_va, complex_net)

    low, high = default_ranges(BOUNDS[distribution], complex_net)
    net = BSSFPNet(complex_net, low=low, high=high)
    net.set_input_stats(x_tr)
    if init is not None:
        if tuple(init.net.layers) != tuple(net.layers):
            raise ValueError(f"init network {init.net.layers} does not match {net.layers}")
        net.mlp.load_state_dict(init.net.mlp.state_dict())
    net.to(device)
    x_tr, y_tr, x_va, y_va = (t.to(device) for t in (x_tr, y_tr, x_va, y_va))
    sig_tr = tr["signal"].to(device) if snr else None
    b1_tr = b1_tr.to(device)
    opt = torch.optim.Adam(net.parameters(), lr=hp["lr"])

    def batch_loss(xb, yb):
        return pinn_loss(net, xb, protocol) if estimator == "pinn" else svnn_loss(net, xb, yb)

    def val_loss():
        net.eval()
        with torch.no_grad():
            tot = 0.0
            for s in range(0, x_va.shape[0], 65536):
                tot += float(batch_loss(x_va[s:s + 65536], y_va[s:s + 65536])) * x_va[s:s + 65536].shape[0]
        net.train()
        return tot / max(1, x_va.shape[0])

    settings = dict(estimator=estimator, complex_net=bool(complex_net), distribution=distribution,
                    snr=snr, seed=seed, device=device, version=VERSION, lr_decay=lr_decay,
                    schedule=schedule, decay_patience=decay_patience, min_lr=min_lr, grad_clip=grad_clip,
                    optimizer="Adam", init=None if init is None else (init_label or "given"), **hp)
    model = TrainedModel(net, protocol, settings, device=device)
    best, best_state, since_best, since_decay = math.inf, None, 0, 0
    excluded = excluded_cpu = 0.0  # seconds spent in stop_when
    stopped = "max_epochs"
    n = x_tr.shape[0]
    bs = hp["batch_size"]
    for epoch in range(1, hp["max_epochs"] + 1):
        perm = torch.randperm(n, generator=gen).to(device)
        tot = 0.0
        for s in range(0, n - bs + 1 if n >= bs else 1, bs):
            idx = perm[s:s + bs]
            if snr:
                xb = _features(protocol, add_noise(sig_tr[idx], snr, gen), b1_tr[idx], complex_net)
            else:
                xb = x_tr[idx]
            loss = batch_loss(xb, y_tr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip:
                torch.nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
            opt.step()
            tot += float(loss.detach()) * idx.numel()
        v = val_loss()
        if v < best:
            best, since_best, since_decay = v, 0, 0
            best_state = copy.deepcopy(net.state_dict())
        else:
            since_best += 1
            since_decay += 1
            if schedule == "plateau" and since_decay >= decay_patience and lr_decay < 1:
                for g in opt.param_groups:
                    g["lr"] = max(min_lr, g["lr"] * lr_decay)
                since_decay = 0
        if schedule == "cosine":
            frac = min(1.0, epoch / hp["max_epochs"])
            for g in opt.param_groups:
                g["lr"] = min_lr + 0.5 * (hp["lr"] - min_lr) * (1 + math.cos(math.pi * frac))
        elapsed = time.perf_counter() - t_start - excluded
        rec = dict(epoch=epoch, train_loss=tot / max(1, (n // bs) * bs), val_loss=v, seconds=elapsed,
                   cpu_seconds=time.process_time() - cpu_start - excluded_cpu, lr=opt.param_groups[0]["lr"])
        model.curve.append(rec)
        if log is not None:
            log(rec)
        if since_best >= hp["patience"]:
            stopped = "patience"
            break
        if time_budget_s is not None and elapsed >= time_budget_s:
            stopped = "time_budget"
            break
        if stop_when is not None:
            t0, c0 = time.perf_counter(), time.process_time()
            hit = stop_when(model)
            excluded += time.perf_counter() - t0
            excluded_cpu += time.process_time() - c0
            if hit:
                stopped = "target"
                break
    if best_state is not None and stopped != "target":  # at a target keep the weights that hit it
        net.load_state_dict(best_state)
    net.eval()
    model.val_loss = model.curve[-1]["val_loss"] if stopped == "target" else best
    model.seconds = time.perf_counter() - t_start - excluded
    settings.update(epochs_run=len(model.curve), stopped=stopped,
                    cpu_seconds=round(time.process_time() - cpu_start - excluded_cpu, 2))
    return model
