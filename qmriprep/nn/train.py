"""Training of the pc-bSSFP networks on protocol-matched in-silico data (seed 003).

``svnn``  supervised: MSE of the min-max-scaled parameters (the sigmoid outputs against the
          scaled truth: T1, T2 and, for complex networks, theta).
``pinn``  physics-informed, self-supervised: the predicted (T1, T2[, theta]) and the input B1
          are pushed through the SAME model as the data (:func:`qmriprep.nn.insilico.simulate`
          = :func:`qmriprep.physics.bssfp.bssfp_signal`, then phase removal, DFT and
          normalisation), turned into network features and z-scored with the network's
          statistics; the loss is their MSE against the z-scored input features, B1 excluded.
          No labels are used for the estimate.

Every network trained here also has a heteroscedastic head (:class:`~qmriprep.nn.mlp.BSSFPNet`
``sd_head``): ``NLL_WEIGHT`` times the Gaussian negative log-likelihood of the in-silico truth
under ``N(s.detach(), exp(v))`` is added to either loss (the estimate ``s`` is held fixed, so the
head learns the error variance of that estimate; for the PINN this is the one use of labels).
Trained with noise at the series' level (``snr``, :func:`qmriprep.nn.insilico.add_noise` on every
batch) an SVNN estimates the posterior mean of (log) T1, T2 under the training distribution and
its head the posterior SD.

Adam; early stopping on the validation loss with the best weights kept (the shared loop,
:func:`qmriprep.nn.loop.fit`); settings in :class:`TrainSettings`. The seed used batch
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

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..estimators.names import PINN, SVNN
from .insilico import B1_RANGE, BOUNDS, LOG_OUTPUTS, add_noise, as_protocol, configurations, make_dataset, simulate
from .loop import Hooks, LoopSettings, Stopwatch, fit, seeded
from .mlp import BSSFPNet, default_ranges, features_from_configurations

VERSION = 2  # bump when training data, losses or architectures change (invalidates the cache)
ESTIMATORS = (SVNN, PINN)

#: defaults per (estimator, complex_net), measured for speed to the seed's accuracy (see above)
DEFAULTS = {
    (SVNN, False): dict(n_samples=200_000, batch_size=1024, lr=3e-3, schedule="cosine", max_epochs=40,
                          patience=25),
    (PINN, False): dict(n_samples=200_000, batch_size=1024, lr=3e-3, schedule="cosine", max_epochs=80,
                          patience=25),
    (SVNN, True): dict(n_samples=400_000, batch_size=256, lr=1e-3, schedule="cosine", max_epochs=60,
                         patience=25),
    (PINN, True): dict(n_samples=400_000, batch_size=512, lr=3e-3, schedule="cosine", max_epochs=60,
                         patience=25),
}
#: defaults of the loop settings no estimator overrides
LOOP_DEFAULTS = dict(lr_decay=0.5, min_lr=1e-5, grad_clip=None)
PREDICT_CHUNK = 1 << 14  # voxels per inference chunk: activations stay in cache
VAL_CHUNK = 1 << 16  # samples per validation-loss chunk
NLL_WEIGHT = 1e-3  # weight of the heteroscedastic head's NLL against the estimate's loss
EDGE = 5e-3  # scaled outputs this close to 0 or 1 sit at the edge of the training box


@dataclass(frozen=True)
class TrainSettings:
    """How one network is trained (:func:`train`); a hyper-parameter left ``None`` takes the
    per-(estimator, complex) :data:`DEFAULTS` or :data:`LOOP_DEFAULTS`.

    ``snr`` (None: noise-free) adds fresh noise to every training batch and one fixed draw to the
    validation set; the z-score statistics always come from the noise-free set. ``schedule``:
    ``"cosine"`` (every network's default) anneals ``lr`` to ``min_lr`` over ``max_epochs``;
    ``"plateau"`` multiplies it by ``lr_decay`` after ``decay_patience`` (default
    ``max(3, patience // 4)``) epochs without a new best validation loss (see
    :mod:`qmriprep.nn.loop`). ``grad_clip`` caps the gradient norm of every step;
    ``time_budget_s`` stops training after the epoch that passes it; ``init_label`` names a warm
    start (it is recorded, and keyed in the cache in place of the initial weights).
    """

    distribution: str = "uniform"
    snr: float | None = None
    seed: int = 0
    device: str = "cpu"
    n_samples: int | None = None
    max_epochs: int | None = None
    patience: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    schedule: str | None = None
    lr_decay: float | None = None
    decay_patience: int | None = None
    min_lr: float | None = None
    grad_clip: float | None = None
    time_budget_s: float | None = None
    init_label: str | None = None

    def overrides(self) -> dict:
        """The hyper-parameters set here (all fields but distribution, snr, seed and device)."""
        fixed = ("distribution", "snr", "seed", "device")
        return {k: v for k, v in asdict(self).items() if k not in fixed and v is not None}

    def resolved(self, estimator: str, complex_net: bool) -> dict:
        """Every hyper-parameter: the overrides, else the defaults."""
        hp = {**DEFAULTS[(estimator, bool(complex_net))], **LOOP_DEFAULTS, "decay_patience": None}
        hp.update({k: v for k, v in self.overrides().items() if k in hp})
        if hp["decay_patience"] is None:
            hp["decay_patience"] = max(3, hp["patience"] // 4)
        return hp


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
        return self.settings.get("estimator", SVNN)

    def features(self, F, b1) -> torch.Tensor:
        """Network inputs from configurations (complex, or magnitudes) and B1."""
        return features_from_configurations(F, b1, self.complex_net)

    def predict(self, F, b1=1.0, *, chunk: int = PREDICT_CHUNK) -> dict:
        """``t1, t2[, theta]`` (numpy float32, shape ``F.shape[:-1]``) from ``F`` (``(..., 3)``:
        complex F-1, F0, F+1, or their magnitudes for a magnitude network) and B1 (fraction,
        broadcast). ``F`` is (re)normalised per voxel; voxels with zero or non-finite input
        get 0. Also ``out_of_range`` (bool: B1 outside the training range, or T1 or T2 at the
        edge of the training box) and, with a heteroscedastic head, ``<name>_sd`` (SI units)."""
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
        n = len(self.net.outputs)
        out = torch.zeros(F.shape[0], 2 * n + 1, dtype=torch.float32)
        net = self.net.eval()
        with torch.inference_mode():
            for s in range(0, F.shape[0], chunk):
                f, b = F[s:s + chunk].to(self.device), b1[s:s + chunk].to(self.device)
                norm = torch.sqrt((f.abs() ** 2).sum(-1, keepdim=True))
                x = features_from_configurations(f / norm.clamp_min(1e-30), b, self.complex_net)
                ok = torch.isfinite(x).all(-1) & (norm[:, 0] > 0)
                y, sd, sc = net.with_sd(torch.where(ok[:, None], x, torch.zeros_like(x)))
                edge = ((sc[:, :2] < EDGE) | (sc[:, :2] > 1 - EDGE)).any(-1)
                far = edge | (b < B1_RANGE[0] - 1e-3) | (b > B1_RANGE[1] + 1e-3)
                res = torch.cat([y, sd, far[:, None].float()], -1)
                out[s:s + chunk] = torch.where(ok[:, None], res, torch.zeros_like(res)).cpu()
        res = {name: out[:, i].reshape(shape).numpy() for i, name in enumerate(self.net.outputs)}
        if self.net.sd_head:
            res.update({f"{name}_sd": out[:, n + i].reshape(shape).numpy()
                        for i, name in enumerate(self.net.outputs)})
        res["out_of_range"] = out[:, -1].reshape(shape).numpy() > 0.5
        return res


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


def svnn_loss(net: BSSFPNet, features: torch.Tensor, target: torch.Tensor, s: torch.Tensor | None = None):
    """MSE of the min-max-scaled parameters (``s``: the network's scaled outputs, if known)."""
    s = net.scaled(features) if s is None else s
    return torch.mean((s - net.scale(target)) ** 2)


def head_loss(net: BSSFPNet, s: torch.Tensor, logvar: torch.Tensor, target: torch.Tensor):
    """Gaussian NLL ``(v + (s_true - s)^2 e^-v) / 2`` of the log-variance head, ``s`` held fixed."""
    err2 = (net.scale(target) - s.detach()) ** 2
    return 0.5 * torch.mean(logvar + err2 * torch.exp(-logvar))


def _targets(params: dict, complex_net: bool) -> torch.Tensor:
    cols = [params["t1"], params["t2"]] + ([params["theta"]] if complex_net else [])
    return torch.stack(cols, -1)


def _features(protocol, signal, b1, complex_net):
    return features_from_configurations(configurations(protocol, signal), b1, complex_net)


@dataclass
class _Tensors:
    """Training features, targets, signals and B1; validation features (with one fixed noise
    draw at ``snr``) and targets."""

    x_tr: torch.Tensor
    y_tr: torch.Tensor
    sig_tr: torch.Tensor
    b1_tr: torch.Tensor
    x_va: torch.Tensor
    y_va: torch.Tensor

    @classmethod
    def split(cls, protocol, data, complex_net: bool, snr, gen) -> _Tensors:
        tr, va = data.subset("train"), data.subset("val")
        b1_tr, b1_va = tr["params"]["b1"], va["params"]["b1"]
        x_tr = features_from_configurations(tr["configurations"], b1_tr, complex_net)
        x_va = (_features(protocol, add_noise(va["signal"], snr, gen), b1_va, complex_net) if snr else
                features_from_configurations(va["configurations"], b1_va, complex_net))
        return cls(x_tr, _targets(tr["params"], complex_net), tr["signal"], b1_tr, x_va,
                   _targets(va["params"], complex_net))

    def to(self, device) -> _Tensors:
        return _Tensors(*(t.to(device) for t in (self.x_tr, self.y_tr, self.sig_tr, self.b1_tr,
                                                  self.x_va, self.y_va)))


class _Objective:
    """Batches and losses of one network: :func:`svnn_loss` or :func:`pinn_loss`; with ``snr``,
    every training batch gets fresh noise before its features are formed."""

    def __init__(self, net: BSSFPNet, protocol, estimator: str, data: _Tensors, snr, batch_size: int, gen):
        self.net, self.protocol, self.estimator, self.data = net, protocol, estimator, data
        self.snr, self.batch_size, self.gen = snr, batch_size, gen

    def loss(self, x, y):
        s, logvar = self.net.raw(x)
        if self.estimator == PINN:
            main = pinn_loss(self.net, x, self.protocol, self.net.unscale(s))
        else:
            main = svnn_loss(self.net, x, y, s)
        return main if logvar is None else main + NLL_WEIGHT * head_loss(self.net, s, logvar, y)

    def batches(self) -> list:
        """A fresh permutation of the training samples in full batches (one short batch when
        there are fewer samples than a batch)."""
        n, bs = self.data.x_tr.shape[0], self.batch_size
        perm = torch.randperm(n, generator=self.gen).to(self.data.x_tr.device)
        return [perm[s:s + bs] for s in range(0, n - bs + 1 if n >= bs else 1, bs)]

    def step(self, idx):
        d = self.data
        if self.snr:
            xb = _features(self.protocol, add_noise(d.sig_tr[idx], self.snr, self.gen), d.b1_tr[idx],
                           self.net.complex_net)
        else:
            xb = d.x_tr[idx]
        return self.loss(xb, d.y_tr[idx])

    def val_loss(self) -> float:
        """Sample-weighted mean loss over the validation set, in chunks of :data:`VAL_CHUNK`."""
        x, y, tot = self.data.x_va, self.data.y_va, 0.0
        for s in range(0, x.shape[0], VAL_CHUNK):
            tot += float(self.loss(x[s:s + VAL_CHUNK], y[s:s + VAL_CHUNK])) * x[s:s + VAL_CHUNK].shape[0]
        return tot / max(1, x.shape[0])


def _network(x_tr, complex_net: bool, distribution: str, init) -> BSSFPNet:
    """A fresh network (global torch generator) with this training set's z-score statistics and
    output ranges; ``init`` (a :class:`TrainedModel`) warm-starts the MLP weights."""
    low, high = default_ranges(BOUNDS[distribution], complex_net)
    net = BSSFPNet(complex_net, low=low, high=high, log_outputs=(LOG_OUTPUTS[distribution],) * 2, sd_head=True)
    net.set_input_stats(x_tr)
    if init is not None:
        if tuple(init.net.layers) != tuple(net.layers):
            raise ValueError(f"init network {init.net.layers} does not match {net.layers}")
        net.mlp.load_state_dict(init.net.mlp.state_dict())
    return net


def _record(estimator: str, complex_net: bool, s: TrainSettings, hp: dict, init) -> dict:
    """The settings recorded with a model (and in its provenance)."""
    return dict(estimator=estimator, complex_net=bool(complex_net), distribution=s.distribution,
                snr=s.snr, seed=s.seed, device=s.device, version=VERSION, lr_decay=hp["lr_decay"],
                schedule=hp["schedule"], decay_patience=hp["decay_patience"], min_lr=hp["min_lr"],
                grad_clip=hp["grad_clip"], optimizer="Adam",
                init=None if init is None else (s.init_label or "given"),
                **{k: hp[k] for k in ("n_samples", "batch_size", "lr", "max_epochs", "patience")})


def _loop_settings(s: TrainSettings, hp: dict) -> LoopSettings:
    return LoopSettings(max_epochs=hp["max_epochs"], patience=hp["patience"], lr=hp["lr"],
                        schedule=hp["schedule"], min_lr=hp["min_lr"], lr_decay=hp["lr_decay"],
                        decay_patience=hp["decay_patience"], grad_clip=hp["grad_clip"],
                        time_budget_s=s.time_budget_s)


def train(protocol, estimator: str = SVNN, complex_net: bool = False, settings: TrainSettings | None = None,
          *, init: TrainedModel | None = None, dataset=None, log=None, stop_when=None) -> TrainedModel:
    """Train an SVNN or PINN (magnitude or complex) for ``protocol`` and return the best model.

    ``settings``: :class:`TrainSettings` (default: all defaults, seed 0). Training stops after
    ``patience`` epochs without a new best validation loss, at ``max_epochs``, past
    ``time_budget_s`` seconds (data generation included), or when ``stop_when(model)`` is true (a
    hook for time-to-target benchmarks; its own run time is not counted, and the weights that hit
    the target are kept). ``log`` gets one dict per epoch (the ``model.curve`` record).
    ``dataset``: an :class:`~qmriprep.nn.insilico.InSilicoData` to use instead of drawing one;
    ``init``: a model of the same architecture (e.g. one trained for more phase cycles) whose MLP
    weights start training. The torch global generator is seeded inside and left as it was.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; choose one of {ESTIMATORS}")
    protocol, s = as_protocol(protocol), settings or TrainSettings()
    hp = s.resolved(estimator, complex_net)
    loop, clock = _loop_settings(s, hp), Stopwatch()
    with seeded(s.seed):
        gen = torch.Generator().manual_seed(s.seed + 1)
        data = dataset or make_dataset(protocol, hp["n_samples"], distribution=s.distribution,
                                       complex_net=complex_net, seed=s.seed)
        tensors = _Tensors.split(protocol, data, complex_net, s.snr, gen)
        net = _network(tensors.x_tr, complex_net, s.distribution, init).to(s.device)
        obj = _Objective(net, protocol, estimator, tensors.to(s.device), s.snr, hp["batch_size"], gen)
        model = TrainedModel(net, protocol, _record(estimator, complex_net, s, hp, init), device=s.device)

        def on_epoch(rec):
            model.curve.append(rec)
            if log is not None:
                log(rec)

        hooks = Hooks(log=on_epoch, stop_when=None if stop_when is None else (lambda _: stop_when(model)))
        hist = fit(net, obj.step, loop, batches=obj.batches, val_loss=obj.val_loss, hooks=hooks, clock=clock)
    model.val_loss = model.curve[-1]["val_loss"] if hist.stopped == "target" else hist.best_loss
    model.seconds = hist.seconds
    model.settings.update(epochs_run=len(model.curve), stopped=hist.stopped,
                          cpu_seconds=round(hist.cpu_seconds, 2))
    return model
