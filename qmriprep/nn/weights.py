"""Saving, loading, shipping and caching trained pc-bSSFP networks.

A model file is a small ``torch.save`` dict (``weights_only``-loadable), written atomically:
state dict (MLP weights plus the z-score statistics and output ranges as buffers), layer sizes,
protocol, training settings, training curve, validation loss and training seconds. Every file is
identified by its SHA256.

:func:`get_model` resolves a network for a protocol in this order:

1. **shipped** weights in ``qmriprep/data/weights`` (listed with their SHA256 in
   ``manifest.json``) when protocol, estimator, architecture, distribution, SNR and seed match
   and no training overrides are given; a SHA256 mismatch is a :class:`WeightsError`;
2. the **cache** (``cache_dir``), keyed by :func:`cache_key`, a hash of the rounded protocol,
   distribution, architecture, estimator, SNR, seed, sample count and :data:`train.VERSION`;
   each cached ``.pt`` has a ``.json`` sidecar with its SHA256 (checked on load);
3. otherwise the network is **trained** (:func:`qmriprep.nn.train.train` with the given
   :class:`~qmriprep.nn.train.TrainSettings`), logged, and cached.

Where it looks is a :class:`ModelSource`; any hyper-parameter set in the training settings
disables the shipped weights.

A PINN-complex for 4 or fewer phase cycles trained from scratch stalls at ~6 % T1/T2 error
(seed-protocol sweep); it is therefore warm-started (:data:`WARM_START`) from the PINN-complex of
the same TR/TE/flip angle on the 6-cycle grid ``pi (2j - 1) / 6`` (itself shipped, cached or
trained, label-free too), which reaches the seed's ~3 %.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..utils.files import atomic_write, atomic_write_text, content_sha256, sha256_file
from .insilico import Protocol, as_protocol, seed_phase_increments
from .mlp import BSSFPNet
from .train import DEFAULTS, PINN, VERSION, TrainedModel, TrainSettings, train

FORMAT = "qmriprep-bssfp-mlp"
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "data" / "weights"
MANIFEST = "manifest.json"
#: protocol tolerances for matching shipped weights: flip angle and phases (rad), TR/TE (s)
ANGLE_TOL, TIME_TOL = 1e-4, 1e-7
#: warm start of few-cycle PINN-complex networks: helper cycles, and the settings of the fine-tuning
WARM_START = {"max_cycles": 4, "from_cycles": 6, "max_epochs": 30, "lr": 1e-3}


class WeightsError(RuntimeError):
    """A weights file that is missing, unreadable or does not match its recorded SHA256."""


@dataclass(frozen=True)
class ModelSource:
    """Where :func:`get_model` looks before training: the shipped weights (``shipped``, in
    ``shipped_dir``), then the cache (``cache_dir``, default :func:`default_cache_dir`);
    ``retrain`` skips both and replaces the cached model."""

    cache_dir: str | Path | None = None
    retrain: bool = False
    shipped: bool = True
    shipped_dir: Path = SHIPPED_DIR


def save_model(model: TrainedModel, path) -> str:
    """Write ``model`` to ``path`` (atomically) and return the file's SHA256."""
    path = Path(path)
    blob = {
        "format": FORMAT, "version": VERSION,
        "layers": list(model.net.layers), "complex_net": model.net.complex_net,
        "log_outputs": list(model.net.log_outputs), "sd_head": model.net.sd_head,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.net.state_dict().items()},
        "protocol": as_protocol(model.protocol).as_dict(),
        "settings": json.loads(json.dumps(model.settings)),
        "curve": [{k: float(v) for k, v in r.items()} for r in model.curve],
        "val_loss": float(model.val_loss), "seconds": float(model.seconds),
    }
    atomic_write(path, lambda tmp: torch.save(blob, tmp))
    return sha256_file(path)


def load_model(path, *, sha256: str | None = None, device: str = "cpu") -> TrainedModel:
    """Load a model file; with ``sha256`` the file must match it (else :class:`WeightsError`)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: network weights file not found")
    if sha256 is not None:
        actual = sha256_file(path)
        if actual != sha256:
            raise WeightsError(f"{path}: SHA256 mismatch (expected {sha256}, file has {actual}); "
                               "the weights file is corrupt or was modified: reinstall qmriprep or "
                               "delete the file to retrain")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling problem is a bad weights file
        raise WeightsError(f"{path}: not a readable qmriprep network file ({exc})") from exc
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise WeightsError(f"{path}: not a qmriprep pc-bSSFP network file")
    net = BSSFPNet(blob["complex_net"], layers=blob["layers"], log_outputs=blob.get("log_outputs", ()),
                   sd_head=blob.get("sd_head", False))
    net.load_state_dict(blob["state_dict"])
    net.to(device).eval()
    settings = dict(blob["settings"], device=device)
    return TrainedModel(net, as_protocol(blob["protocol"]), settings, blob["curve"], blob["val_loss"],
                        blob["seconds"], device=device)


def cache_key(protocol, *, estimator: str, complex_net: bool, distribution: str = "uniform",
              snr: float | None = None, seed: int = 0, n_samples: int | None = None, **extra) -> str:
    """Hash of everything that determines a trained network (16 hex digits)."""
    p = as_protocol(protocol)
    n_samples = n_samples or DEFAULTS[(estimator, bool(complex_net))]["n_samples"]
    spec = {"protocol": p.rounded(), "estimator": estimator, "complex_net": bool(complex_net),
            "architecture": list(BSSFPNet(complex_net, sd_head=True).layers), "distribution": distribution,
            "snr": None if snr is None or math.isinf(snr) else float(snr), "seed": int(seed),
            "n_samples": int(n_samples), "version": VERSION,
            "extra": {k: extra[k] for k in sorted(extra)}}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def protocols_match(a, b) -> bool:
    """Same flip angle, TR, TE and phase increments (mod 2 pi) within small tolerances."""
    a, b = as_protocol(a), as_protocol(b)
    if a.n_cycles != b.n_cycles:
        return False
    angles = [(a.flip_angle, b.flip_angle)] + list(zip(a.phase_increments, b.phase_increments))
    return (all(abs(math.remainder(x - y, 2 * math.pi)) <= ANGLE_TOL for x, y in angles)
            and abs(a.tr - b.tr) <= TIME_TOL and abs(a.te - b.te) <= TIME_TOL)


def read_manifest(directory=SHIPPED_DIR) -> dict:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        return {"models": []}
    return json.loads(path.read_text())


def find_shipped(protocol, estimator: str, complex_net: bool, *, distribution: str = "uniform",
                 snr: float | None = None, seed: int = 0, directory=SHIPPED_DIR) -> dict | None:
    """The manifest entry of shipped weights for this protocol and network, if any."""
    snr = None if snr is None or math.isinf(snr) else float(snr)
    for entry in read_manifest(directory).get("models", []):
        if (entry["estimator"] == estimator and bool(entry["complex_net"]) == bool(complex_net)
                and entry.get("distribution", "uniform") == distribution and entry.get("snr") == snr
                and int(entry.get("seed", 0)) == int(seed) and protocols_match(entry["protocol"], protocol)):
            return entry
    return None


def default_cache_dir() -> Path:
    """``$QMRIPREP_CACHE_DIR`` or ``~/.cache/qmriprep``, with ``networks/`` below it."""
    root = os.environ.get("QMRIPREP_CACHE_DIR") or Path.home() / ".cache" / "qmriprep"
    return Path(root) / "networks"


def _provenance(model: TrainedModel, sha: str, source: str, path, key=None) -> dict:
    """``weights_sha256``: of the weights (identical for identical seeded runs); ``file_sha256``:
    of the file (integrity; it also holds the training timings)."""
    s = model.settings
    return {"weights_sha256": content_sha256(model.net.state_dict()), "file_sha256": sha,
            "source": source, "file": str(path), "cache_key": key,
            "estimator": s.get("estimator"), "complex_net": model.complex_net,
            "architecture": "-".join(str(n) for n in model.net.layers),
            "protocol": as_protocol(model.protocol).as_dict(),
            "training_settings": {k: v for k, v in s.items() if k != "device"},
            "seed": s.get("seed"), "final_val_loss": float(model.val_loss),
            "training_seconds": float(model.seconds)}


def _warm_start(protocol, training: TrainSettings, source: ModelSource, log) -> tuple[TrainedModel, TrainSettings]:
    """The 6-cycle PINN-complex of the same TR/TE/flip angle and the fine-tuning settings
    (:data:`WARM_START` unless set) for a few-cycle PINN-complex."""
    cycles = seed_phase_increments(WARM_START["from_cycles"])
    helper = Protocol(protocol.flip_angle, protocol.tr, protocol.te, cycles)
    init, prov = get_model(helper, PINN, True, training, source, log=log)
    label = f"{PINN}complex {WARM_START['from_cycles']} cycles (sha256 {prov['weights_sha256']})"
    max_epochs = WARM_START["max_epochs"] if training.max_epochs is None else training.max_epochs
    lr = WARM_START["lr"] if training.lr is None else training.lr
    return init, replace(training, max_epochs=max_epochs, lr=lr, init_label=label)


def _train_and_cache(protocol, estimator: str, complex_net: bool, training: TrainSettings, path: Path,
                     key: str, init) -> tuple[TrainedModel, str]:
    """Train, write the model and its ``.json`` sidecar (SHA256, key, provenance); the SHA256."""
    model = train(protocol, estimator, complex_net, training, init=init)
    sha = save_model(model, path)
    atomic_write_text(path.with_suffix(".json"), json.dumps(
        {"sha256": sha, "key": key, **_provenance(model, sha, "trained", path, key)}, indent=1))
    return model, sha


def get_model(protocol, estimator: str = PINN, complex_net: bool = False, training: TrainSettings | None = None,
              source: ModelSource | None = None, *, log=None) -> tuple[TrainedModel, dict]:
    """A network for ``protocol``: shipped, else cached, else trained and cached.

    ``training``: :class:`~qmriprep.nn.train.TrainSettings` (distribution, SNR, seed and device
    select the network; any hyper-parameter set there disables the shipped weights and, unless it
    only bounds the time, enters the cache key); ``source``: :class:`ModelSource`. Returns
    ``(model, provenance)``; ``provenance`` has ``weights_sha256``, ``source`` (``shipped`` |
    ``cache`` | ``trained``), the training settings, seed, final validation loss and training
    seconds.
    """
    protocol, t, src = as_protocol(protocol), training or TrainSettings(), source or ModelSource()
    say = log or (lambda msg: None)
    if src.shipped and not src.retrain and not t.overrides():
        entry = find_shipped(protocol, estimator, complex_net, distribution=t.distribution, snr=t.snr,
                             seed=t.seed, directory=src.shipped_dir)
        if entry is not None:
            path = Path(src.shipped_dir) / entry["file"]
            model = load_model(path, sha256=entry["sha256"], device=t.device)
            return model, _provenance(model, entry["sha256"], "shipped", path, None)
    init = None
    if estimator == PINN and complex_net and protocol.n_cycles <= WARM_START["max_cycles"]:
        say(f"warm start: PINN-complex for {protocol.n_cycles} cycles starts from the "
            f"{WARM_START['from_cycles']}-cycle one")
        init, t = _warm_start(protocol, t, src, log)
    keyed = {k: v for k, v in t.overrides().items() if k not in ("time_budget_s", "n_samples")}
    key = cache_key(protocol, estimator=estimator, complex_net=complex_net, distribution=t.distribution,
                    snr=t.snr, seed=t.seed, n_samples=t.n_samples, **keyed)
    cache = Path(src.cache_dir) if src.cache_dir is not None else default_cache_dir()
    path = cache / f"bssfp_{estimator}{'complex' if complex_net else ''}_{key}.pt"
    label = f"{estimator}{' complex' if complex_net else ''} network"
    if not src.retrain and path.is_file() and path.with_suffix(".json").is_file():
        sha = json.loads(path.with_suffix(".json").read_text())["sha256"]
        model = load_model(path, sha256=sha, device=t.device)
        say(f"using cached {label} {path} (sha256 {sha[:12]})")
        return model, _provenance(model, sha, "cache", path, key)
    say(f"training {label} for {protocol} (distribution {t.distribution}, snr {t.snr}, seed {t.seed}); "
        f"caching as {path}")
    model, sha = _train_and_cache(protocol, estimator, complex_net, t, path, key, init)
    say(f"trained in {model.seconds:.1f} s, val loss {model.val_loss:.3g}, sha256 {sha[:12]}")
    return model, _provenance(model, sha, "trained", path, key)
