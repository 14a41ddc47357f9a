#!/usr/bin/env python
"""Benchmark of the pc-bSSFP networks (seed 003) against the seed's numbers and MIRACLE.

Seed protocol (TR 4.8 ms, TE 2.4 ms, FA 15 deg, ``phi_j = pi (2j - 1) / N``). Reports

1. training time to target per network: magnitude SVNN/PINN (12 cycles) until the grid CoD of
   T1 and T2 is >= 0.999; complex SVNN/PINN (12, 6, 4 cycles) until the max relative error over
   the off-resonance sweep (theta in [-0.9 pi, 0.9 pi], T1/T2 = 0.939/0.062 s) is <= 1 / 1.5 /
   3.5 %. Default: the shipped weights (their recorded training time and the stop reason);
   ``--train``: train afresh with the settings of ``scripts/train_shipped_weights.py``, stopping
   at the target (evaluation time not counted; the warm-started 4-cycle PINN-complex counts only
   its own training);
2. noise-free CoD on the 200 x 200 (T1, T2) grid (B1 1, theta 0) and the sweep errors;
3. CoD at SNR 25 on the grid: networks trained noise-free (shipped) and trained with noise at
   SNR 25, and MIRACLE (:func:`qmriprep.fit.miracle.fit_miracle`) if present; the seed's metric
   is the CoD of the Monte-Carlo mean (``--mc`` draws), the single-draw CoD is shown too;
4. inference time on 1.5 M voxels at 1 and 2 threads.

Usage::

    python benchmarks/bench_bssfp_networks.py [--train [NAME ...]] [--threads 1] [--mc 5] [--skip-snr]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qmriprep.nn.insilico import (add_noise, cod, configurations, grid_cod, grid_parameters,  # noqa: E402
                                  seed_protocol, simulate, sweep_errors)
from qmriprep.nn.train import TrainSettings, train  # noqa: E402
from qmriprep.nn.weights import get_model, read_manifest  # noqa: E402

SWEEP_TARGET = {12: 0.01, 6: 0.015, 4: 0.035}
TIME_TARGET = {("svnn", False): 10, ("pinn", False): 60, ("svnn", True): 180, ("pinn", True): 180}
NETWORKS = [("svnn", False, 12), ("pinn", False, 12)] + \
    [(e, True, n) for n in (12, 6, 4) for e in ("svnn", "pinn")]


def name(est, cpx, n):
    return f"{est}{'complex' if cpx else ''}_{n}"


def shipping_overrides():
    """Per-network settings of scripts/train_shipped_weights.py (longer PINN-complex schedules,
    the warm start of the 4-cycle PINN-complex)."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "scripts" / "train_shipped_weights.py"
    spec = importlib.util.spec_from_file_location("train_shipped_weights", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.OVERRIDES


def time_to_target(est, cpx, n, models):
    protocol = seed_protocol(n)
    over = dict(shipping_overrides().get(name(est, cpx, n), {}))
    init_from, init = over.pop("init_from", None), None
    if init_from:
        n_init = int(init_from.rsplit("_", 1)[1])
        init = models.get(init_from) or get_model(seed_protocol(n_init), est, cpx)[0]
        over["init_label"] = init_from
    if cpx:
        def hit(m):
            e = sweep_errors(m)
            return e["t1"] <= SWEEP_TARGET[n] and e["t2"] <= SWEEP_TARGET[n]
    else:
        def hit(m):
            c = grid_cod(m)
            return min(c.values()) >= 0.999
    m = train(protocol, est, cpx, TrainSettings(seed=0, **over), init=init, stop_when=hit)
    return m, m.settings["stopped"] == "target"


def noisy_grid(protocol, snr, draws, seed=0):
    g = grid_parameters(200)
    sig = simulate(protocol, g["t1"], g["t2"], g["b1"], g["theta"])
    gen = torch.Generator().manual_seed(seed)
    return g, [configurations(protocol, add_noise(sig, snr, gen)) for _ in range(draws)]


def snr_table(models, snr, draws, threads):
    p = seed_protocol(12)
    g, feats = noisy_grid(p, snr, draws)
    rows = []
    estimators = {k: (lambda F, m=m: m.predict(F, 1.0)) for k, m in models.items()}
    try:
        from qmriprep.fit.miracle import fit_miracle

        estimators["MIRACLE (Newton)"] = lambda F: fit_miracle(F.numpy(), 1.0, flip_angle=p.flip_angle,
                                                               tr=p.tr)
    except ImportError:
        pass
    for label, fn in estimators.items():
        t0 = time.perf_counter()
        outs = [fn(F) for F in feats]
        sec = (time.perf_counter() - t0) / draws
        mean = {k: np.mean([o[k] for o in outs], 0) for k in ("t1", "t2")}
        rows.append((label, cod(mean["t1"], g["t1"]), cod(mean["t2"], g["t2"]),
                     cod(outs[0]["t1"], g["t1"]), cod(outs[0]["t2"], g["t2"]), sec))
    return rows


def inference_times(models, n_vox=1_500_000):
    p = seed_protocol(12)
    gen = torch.Generator().manual_seed(0)
    t1 = 0.36 + 1.72 * torch.rand(n_vox, generator=gen)
    t2 = 0.02 + 0.1 * torch.rand(n_vox, generator=gen)
    F = configurations(p, simulate(p, t1, t2, torch.ones(n_vox), torch.zeros(n_vox)))
    out = {}
    threads = torch.get_num_threads()
    for nt in (1, 2):
        torch.set_num_threads(nt)
        for label, m in models.items():
            m.predict(F[:1000], 1.0)
            t0 = time.perf_counter()
            m.predict(F, 1.0)
            out[f"{label}, {nt} thread{'s' if nt > 1 else ''}"] = time.perf_counter() - t0
    torch.set_num_threads(threads)
    try:
        from qmriprep.fit.miracle import fit_miracle

        k = 10_000
        t0 = time.perf_counter()
        fit_miracle(F[:k].numpy(), 1.0, flip_angle=p.flip_angle, tr=p.tr)
        out["MIRACLE Newton (extrapolated from 10k voxels)"] = (time.perf_counter() - t0) * n_vox / k
    except ImportError:
        pass
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", nargs="*", metavar="NAME",
                    help="train afresh and time to target (these networks, e.g. svnn_12 pinncomplex_4; "
                         "none named: all)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1 is as fast for these small nets and robust on a loaded machine)")
    ap.add_argument("--mc", type=int, default=5, help="noise draws at SNR 25")
    ap.add_argument("--skip-snr", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    manifest = {e["name"]: e for e in read_manifest().get("models", [])}
    print(f"# pc-bSSFP networks ({args.threads} threads)\n")
    print("command: `python benchmarks/bench_bssfp_networks.py " + " ".join(argv or sys.argv[1:]) + "`\n")
    print("| network | cycles | training wall s (target) | CPU s | epochs | stop | reached | grid CoD T1 "
          "| grid CoD T2 | sweep max err T1 | sweep max err T2 (target) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    models = {}
    for est, cpx, n in NETWORKS:
        fresh = args.train is not None and (not args.train or name(est, cpx, n) in args.train)
        if fresh:
            m, reached = time_to_target(est, cpx, n, models)
        else:
            m, _ = get_model(seed_protocol(n), est, cpx)
            reached = None
        models[name(est, cpx, n)] = m
        c = grid_cod(m)
        e = sweep_errors(m) if cpx else {"t1": float("nan"), "t2": float("nan")}
        secs = m.seconds if fresh else manifest.get(name(est, cpx, n), {}).get("training_seconds", m.seconds)
        tgt = f"{SWEEP_TARGET[n] * 100:.1f} %" if cpx else "-"
        print(f"| {est}{' complex' if cpx else ''} | {n} | {secs:.1f} (< {TIME_TARGET[(est, cpx)]}) "
              f"| {m.settings.get('cpu_seconds', float('nan')):.1f} | {m.settings.get('epochs_run')} "
              f"| {m.settings.get('stopped')} | "
              f"{'-' if reached is None else reached} | {c['t1']:.5f} | {c['t2']:.5f} | "
              f"{e['t1'] * 100:.2f} % | {e['t2'] * 100:.2f} % ({tgt}) |", flush=True)
    if not args.skip_snr:
        print("\n## SNR 25 on the grid (CoD of the MC mean over %d draws; single draw)\n" % args.mc)
        noisy = {}
        for est in ("svnn", "pinn"):
            t0 = time.perf_counter()
            noisy[f"{est}_12 trained at SNR 25"] = train(seed_protocol(12), est, False,
                                                         TrainSettings(snr=25, seed=0))
            print(f"(trained {est} at SNR 25 in {time.perf_counter() - t0:.0f} s)", flush=True)
        sel = {"svnn_12 (noise-free training)": models["svnn_12"],
               "pinn_12 (noise-free training)": models["pinn_12"],
               **noisy}
        print("| estimator | CoD T1 (MC mean) | CoD T2 (MC mean) | CoD T1 (1 draw) | CoD T2 (1 draw) "
              "| s per 40k voxels |")
        print("|---|---|---|---|---|---|")
        for row in snr_table(sel, 25, args.mc, args.threads):
            print("| %s | %.4f | %.4f | %.4f | %.4f | %.3f |" % row, flush=True)
        print("\nseed (Fig. 3, uniform training): nets ~0.93/0.94 vs MIRACLE ~0.90/0.92 (T1/T2)")
    print("\n## Inference on 1.5 M voxels\n")
    print("| estimator | seconds |\n|---|---|")
    sel = {"magnitude (svnn_12, 4-64-64-2)": models["svnn_12"], "complex (svnncomplex_12, 6-256-256-3)":
           models["svnncomplex_12"]}
    for label, sec in inference_times(sel).items():
        print(f"| {label} | {sec:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
