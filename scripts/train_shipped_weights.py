#!/usr/bin/env python
"""Train the pc-bSSFP networks shipped with qmriprep and write their manifest.

Seed-003 protocol: TR 4.8 ms, TE 2.4 ms, FA 15 deg, phase cycles ``phi_j = pi (2j - 1) / N``.
Models: SVNN and PINN magnitude networks at 12 cycles; SVNN-complex and PINN-complex at 12, 6
and 4 cycles; all on the ``uniform`` distribution, noise-free, seed 0, with the defaults of
:data:`qmriprep.nn.train.DEFAULTS`. Writes ``qmriprep/data/weights/<name>.pt`` and
``manifest.json`` (file, SHA256, protocol, estimator, architecture, training settings,
validation metrics). Run from the repository root::

    python scripts/train_shipped_weights.py [--threads 2] [--only svnn_12 ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qmriprep.nn.insilico import grid_cod, seed_protocol, sweep_errors  # noqa: E402
from qmriprep.nn.train import TrainSettings, train  # noqa: E402
from qmriprep.nn.weights import MANIFEST, SHIPPED_DIR, load_model, read_manifest, save_model  # noqa: E402

#: settings that differ from the defaults (:class:`qmriprep.nn.train.TrainSettings` fields, and
#: "init_from"): PINN-complex T1 converges slowest (seed: Suppl. Fig. S8)
#: At 4 cycles the PINN-complex trained from scratch stalls at ~6 % (ill-conditioned physics loss;
#: higher rates diverge); warm-started from the 6-cycle PINN-complex (also label-free) it reaches
#: ~3 % in 30 epochs ("init_from": a model trained earlier in this list).
OVERRIDES = {"pinncomplex_12": {"max_epochs": 90}, "pinncomplex_6": {"max_epochs": 90},
             "pinncomplex_4": {"max_epochs": 30, "lr": 1e-3, "init_from": "pinncomplex_6"}}
#: name -> (estimator, complex_net, n_cycles)
MODELS = {
    "svnn_12": ("svnn", False, 12),
    "pinn_12": ("pinn", False, 12),
    "svnncomplex_12": ("svnn", True, 12),
    "pinncomplex_12": ("pinn", True, 12),
    "svnncomplex_6": ("svnn", True, 6),
    "pinncomplex_6": ("pinn", True, 6),
    "svnncomplex_4": ("svnn", True, 4),
    "pinncomplex_4": ("pinn", True, 4),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", nargs="*", choices=sorted(MODELS), help="train only these (others kept)")
    ap.add_argument("--out", type=Path, default=SHIPPED_DIR)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(args.out)
    entries = {e["name"]: e for e in manifest.get("models", []) if "name" in e}
    t_all = time.perf_counter()
    for name in args.only or MODELS:
        estimator, complex_net, n_cycles = MODELS[name]
        protocol = seed_protocol(n_cycles)
        t0 = time.perf_counter()
        over = dict(OVERRIDES.get(name, {}))
        init_from, init = over.pop("init_from", None), None
        if init_from:
            if init_from not in entries:
                raise SystemExit(f"{name} warm-starts from {init_from}: train that first")
            e = entries[init_from]
            init = load_model(args.out / e["file"], sha256=e["sha256"])
            over["init_label"] = f"{init_from} (sha256 {e['sha256']})"
        model = train(protocol, estimator, complex_net, TrainSettings(seed=0, **over), init=init,
                      log=lambda r: print(f"  {name} epoch {r['epoch']:3d} train {r['train_loss']:.3g} "
                                          f"val {r['val_loss']:.3g} lr {r['lr']:.2g} {r['seconds']:.0f} s",
                                          flush=True))
        wall = time.perf_counter() - t0
        metrics = {"grid_cod": grid_cod(model)}
        if complex_net:
            metrics["sweep_max_rel_error"] = sweep_errors(model)
        fname = f"bssfp_{name}.pt"
        sha = save_model(model, args.out / fname)
        entries[name] = {
            "name": name, "file": fname, "sha256": sha, "protocol": protocol.as_dict(),
            "n_cycles": n_cycles, "estimator": estimator, "complex_net": complex_net,
            "architecture": "-".join(str(n) for n in model.net.layers), "distribution": "uniform",
            "snr": None, "seed": 0, "settings": {k: v for k, v in model.settings.items() if k != "device"},
            "val_loss": model.val_loss, "training_seconds": round(model.seconds, 1),
            "init_from": init_from,
            "wall_seconds": round(wall, 1), "threads": args.threads, "metrics": metrics,
        }
        print(f"{name}: {model.settings['epochs_run']} epochs ({model.settings['stopped']}), "
              f"{model.seconds:.0f} s, metrics {json.dumps(metrics)}, sha256 {sha[:12]}", flush=True)
        _write(args.out, entries)
    print(f"total {time.perf_counter() - t_all:.0f} s")
    return 0


def _write(out: Path, entries: dict) -> None:
    """Merge ``entries`` into the manifest (under a lock: several runs may share the folder)."""
    import fcntl
    import tempfile

    with open(Path(tempfile.gettempdir()) / "qmriprep-weights-manifest.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = {e["name"]: e for e in read_manifest(out).get("models", []) if "name" in e}
        current.update(entries)
        _write_locked(out, current)


def _write_locked(out: Path, entries: dict) -> None:
    order = [n for n in MODELS if n in entries]
    doc = {"description": "pc-bSSFP networks trained by scripts/train_shipped_weights.py (seed 003 "
                          "protocol, uniform distribution, noise-free, seed 0)",
           "models": [entries[n] for n in order]}
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(out / MANIFEST)


if __name__ == "__main__":
    sys.exit(main())
