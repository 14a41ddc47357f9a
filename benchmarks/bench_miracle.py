"""MIRACLE on a whole-brain-sized pc-bSSFP volume: Newton (compiled) against the seed's alternation.

    python benchmarks/bench_miracle.py [--shape 176 176 128] [--snr 0] [--threads 2]
        [--subset 100000] [--agree 20000] [--n-loop 20] [--repeat 3] [--baseline c95d71d]

Synthetic data (seed protocol: TR 4.8 ms, TE 2.4 ms, FA 15 deg, 12 phase cycles on
``phi_j = pi (2j - 1)/12``): an ellipsoidal "brain" of ~1.5 M voxels (radii 80/70/64 voxels)
in a 176x176x128 volume; shells from the centre: ventricle CSF, white matter
(T1/T2 = 940 +- 50 / 62 +- 4 ms), grey matter (1400 +- 80 / 80 +- 6 ms), outer CSF
(4000 +- 300 / 2000 +- 200 ms; ``--no-csf``: WM/GM there instead); a smooth B1 field in
~[0.8, 1.2]; optional smooth off-resonance (``--offres``, amplitude in units of pi rad per
TR); optional complex Gaussian noise with ``sigma = 0.074 / (sqrt(2) SNR)`` on the real and
imaginary parts of every phase-cycle image (``--snr``). The signal is simulated with
:mod:`qmriprep.physics.bssfp` and reduced to the normalised configurations
``(F-1, F0, F+1)`` by ``fourier_features``.

Timed in one run (wall and CPU seconds; the machine may be shared, so compare ratios):

- ``newton`` (:func:`qmriprep.fit.miracle.fit_miracle`, the default) on the whole brain (best of
  ``--repeat``) and on a random ``--subset`` of brain voxels;
- on the same subset: the compiled seed alternation (``search="full"``) and the vectorised torch
  implementation of the ``--baseline`` commit (``git show``; before issue 14), ``warm`` search;
- the per-voxel loop :func:`~qmriprep.fit.miracle.fit_miracle_voxel` (the seed's algorithm on
  0-d torch tensors) on ``--n-loop`` voxels; subset and loop times are extrapolated to the brain.

Agreement: ``newton`` against the baseline's torch ``full`` search (the seed's algorithm) on
``--agree`` random voxels of each tissue; accuracy against the truth per tissue.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("MKL_NUM_THREADS", "2")
# idle OpenMP workers sleep instead of spinning: on a loaded machine spinning makes the two
# intra-op threads wait for each other at every op (measured 10x slower at load ~5 on 2 CPUs)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qmriprep.bids.protocols import BSSFPProtocol  # noqa: E402
from qmriprep.fit.miracle import MiracleSettings, fit_miracle, fit_miracle_voxel  # noqa: E402
from qmriprep.physics import bssfp  # noqa: E402

TR, TE, FA = 4.8e-3, 2.4e-3, np.deg2rad(15.0)
# name, outer normalised radius, T1 mean/sd, T2 mean/sd (s)
TISSUES = (("CSF", 0.20, 4.0, 0.3, 2.0, 0.2), ("WM", 0.72, 0.94, 0.05, 0.062, 0.004),
           ("GM", 0.95, 1.40, 0.08, 0.080, 0.006), ("CSF", 1.00, 4.0, 0.3, 2.0, 0.2))
RADII = (80.0 / 176, 70.0 / 176, 64.0 / 128)  # fraction of the matrix (80/70/64 voxels)


def simulate(shape, n_cycles, snr, offres, seed, *, csf=True, chunk=200_000):
    """Features (shape + (3,), complex), mask, truth maps (t1, t2, b1) and tissue labels.

    ``csf=False``: the CSF shells get white (inner) and grey (outer) matter values instead.
    """
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*(np.arange(n) - (n - 1) / 2 for n in shape), indexing="ij")
    rho = np.sqrt(sum((g / (r * n)) ** 2 for g, r, n in zip(grids, RADII, shape)))
    mask = rho <= 1.0
    label = np.full(shape, -1, np.int8)
    inner = 0.0
    for k, (_, outer, *_rest) in enumerate(TISSUES):
        label[mask & (rho > inner) & (rho <= outer)] = k if csf else {0: 1, 3: 2}.get(k, k)
        inner = outer
    t1, t2 = np.zeros(shape), np.zeros(shape)
    for k, (_, _, m1, s1, m2, s2) in enumerate(TISSUES):
        sel = label == k
        t1[sel] = np.clip(rng.normal(m1, s1, sel.sum()), 0.3, 4.9)
        t2[sel] = np.clip(rng.normal(m2, s2, sel.sum()), 0.01, 4.9)
    x, y, z = (g / (n / 2) for g, n in zip(grids, shape))
    b1 = 1.15 - 0.3 * np.clip(rho, 0, 1.2) ** 2 + 0.05 * z
    theta = offres * np.pi * np.sin(1.3 * x + 0.4) * np.cos(0.9 * y - 0.7 * z)

    phi = np.pi * (2 * np.arange(1, n_cycles + 1) - 1) / n_cycles
    idx = np.flatnonzero(mask)
    feats = np.zeros((mask.size, 3), np.complex128)
    sigma = 0.074 / (np.sqrt(2) * snr) if snr else 0.0
    for s in range(0, idx.size, chunk):
        sel = idx[s:s + chunk]
        sig = bssfp.bssfp_signal(t1.flat[sel], t2.flat[sel], b1.flat[sel], theta.flat[sel],
                                 BSSFPProtocol(tuple(phi), TR, FA, TE))
        if sigma:
            noise = rng.standard_normal(sig.shape) + 1j * rng.standard_normal(sig.shape)
            sig = sig + sigma * noise
        feats[sel] = bssfp.fourier_features(sig, phi)
    return feats.reshape(shape + (3,)), mask, (t1, t2, b1), label


def accuracy(out, truth, label):
    """{tissue: (median, p99) of |rel err| for T1 and T2, voxels, mean rounds, not converged}."""
    t1, t2, _ = truth
    acc = {}
    for name, sel in tissues(label).items():
        e1 = np.abs(out["t1"][sel] / t1[sel] - 1)
        e2 = np.abs(out["t2"][sel] / t2[sel] - 1)
        acc[name] = (np.median(e1), np.percentile(e1, 99), np.median(e2), np.percentile(e2, 99),
                     int(sel.sum()), out["rounds"][sel].mean(), int(out["not_converged"][sel].sum()))
    return acc


def tissues(label):
    """{tissue name: boolean mask} (both CSF shells as one)."""
    names = dict.fromkeys(t[0] for t in TISSUES)
    masks = {n: np.isin(label, [k for k, t in enumerate(TISSUES) if t[0] == n]) for n in names}
    return {n: m for n, m in masks.items() if m.any()}


def baseline_module(commit):
    """``qmriprep/fit/miracle.py`` of ``commit`` (the vectorised torch searches) as a module."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:qmriprep/fit/miracle.py"],
                            check=True, capture_output=True, text=True).stdout
    source = source.replace("from ..physics.bssfp import", "from qmriprep.physics.bssfp import")
    spec = importlib.util.spec_from_loader(f"miracle_{commit}", loader=None)
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # for dataclasses
    exec(compile(source, f"{commit}:qmriprep/fit/miracle.py", "exec"), module.__dict__)
    return module


def timed(fn, repeat=1):
    """(result, best wall s, CPU s of that run)."""
    best = (None, np.inf, np.inf)
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if wall < best[1]:
            best = (out, wall, cpu)
    return best


def rel_diff(a, b):
    return np.maximum(np.abs(a["t1"] / b["t1"] - 1), np.abs(a["t2"] / b["t2"] - 1))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", type=int, nargs=3, default=(176, 176, 128))
    p.add_argument("--n-cycles", type=int, default=12)
    p.add_argument("--snr", type=float, default=0.0, help="0 = noise-free")
    p.add_argument("--offres", type=float, default=0.0, help="off-resonance amplitude (x pi)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--subset", type=int, default=100_000, help="brain voxels for the slow searches")
    p.add_argument("--agree", type=int, default=20_000, help="voxels per tissue for the agreement")
    p.add_argument("--n-loop", type=int, default=20, help="voxels for the per-voxel loop")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--baseline", default="c95d71d", help="commit of the torch implementation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-csf", action="store_true", help="WM/GM values in the CSF shells")
    args = p.parse_args(argv)

    t0 = time.perf_counter()
    feats, mask, truth, label = simulate(tuple(args.shape), args.n_cycles, args.snr, args.offres,
                                         args.seed, csf=not args.no_csf)
    n_brain = int(mask.sum())
    print(f"simulated {mask.size:,} voxels ({n_brain:,} brain) x {args.n_cycles} cycles, "
          f"SNR {args.snr or 'inf'}, in {time.perf_counter() - t0:.1f} s", flush=True)
    torch.set_num_threads(args.threads)
    b1, kw = truth[2], dict(flip_angle=FA, tr=TR)
    old = baseline_module(args.baseline)
    rng = np.random.default_rng(args.seed + 1)
    f_flat, b1_flat, lab = feats.reshape(-1, 3), b1.ravel(), label.ravel()
    sub = np.sort(rng.choice(np.flatnonzero(mask), size=min(args.subset, n_brain), replace=False))
    scale = n_brain / sub.size

    t = time.perf_counter()
    fit_miracle(f_flat[sub[:100]], b1_flat[sub[:100]], **kw)  # numba: compile or load the cache
    first = time.perf_counter() - t
    runs = {}  # name: (wall s, cpu s, whole-brain wall s)
    newton, wall, cpu = timed(lambda: fit_miracle(feats, b1, mask=mask, **kw), args.repeat)
    runs["newton, whole brain"] = (wall, cpu, 1.0)
    jobs = {"newton": lambda: fit_miracle(f_flat[sub], b1_flat[sub], **kw),
            "full (compiled seed alternation)": lambda: fit_miracle(
                f_flat[sub], b1_flat[sub], **kw, settings=MiracleSettings(search="full")),
            f"warm (torch, {args.baseline})": lambda: old.fit_miracle(
                f_flat[sub], b1_flat[sub], **kw, settings=old.MiracleSettings(search="warm"))}
    for name, job in jobs.items():
        _, wall, cpu = timed(job, 1 if "torch" in name or "full" in name else args.repeat)
        runs[f"{name}, {sub.size:,} voxels"] = (wall, cpu, scale)
        print(f"{name}: {wall:.2f} s wall, {cpu:.2f} s CPU on {sub.size:,} voxels", flush=True)
    loop_sub = rng.choice(np.flatnonzero(mask), size=min(args.n_loop, n_brain), replace=False)
    torch.set_num_threads(1)
    _, wall, cpu = timed(lambda: [fit_miracle_voxel(f_flat[i], b1_flat[i], **kw,
                                                    settings=MiracleSettings(search="full"))
                                  for i in loop_sub])
    torch.set_num_threads(args.threads)
    runs[f"per-voxel loop (torch 0-d), {loop_sub.size} voxels, 1 thread"] = (
        wall, cpu, n_brain / loop_sub.size)

    agree = {}
    for name, sel in tissues(lab[mask.ravel()].reshape(-1)).items():
        pick = rng.choice(np.flatnonzero(mask.ravel())[sel], size=min(args.agree, int(sel.sum())),
                          replace=False)
        ref = old.fit_miracle(f_flat[pick], b1_flat[pick], **kw, settings=old.MiracleSettings(search="full"))
        d = rel_diff({k: newton[k].ravel()[pick] for k in ("t1", "t2")}, ref)
        conv = ref["rounds"] < 200
        agree[name] = (pick.size, d.max(), np.percentile(d, 99), int(conv.sum()),
                       d[conv].max() if conv.any() else np.nan, int(newton["not_converged"].ravel()[pick].sum()))
        print(f"agreement {name}: max {d.max():.1e}", flush=True)
    report(args, argv, n_brain, first, runs, agree, accuracy(newton, truth, label))


def report(args, argv, n_brain, first, runs, agree, acc):
    shape = "x".join(map(str, args.shape))
    print(f"\n## MIRACLE, {n_brain:,} brain voxels of {shape}, {args.n_cycles} phase cycles, "
          f"SNR {args.snr or 'inf'}, {args.threads} threads\n")
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end; first call "
          f"(numba cache load or compile) {first:.1f} s\n")
    ref_wall, ref_cpu, _ = runs["newton, whole brain"]
    print("| fit | wall (s) | CPU (s) | whole brain wall / CPU (s, extrapolated) | x newton wall / CPU |")
    print("|---|---|---|---|---|")
    for name, (wall, cpu, scale) in runs.items():
        print(f"| {name} | {wall:.2f} | {cpu:.2f} | {wall * scale:,.1f} / {cpu * scale:,.1f} | "
              f"{wall * scale / ref_wall:,.0f} / {cpu * scale / ref_cpu:,.0f} |")
    print(f"\n| tissue | voxels | max \\|newton/full - 1\\| | p99 | full converged | max where "
          f"converged | newton not converged |")
    print("|---|---|---|---|---|---|---|")
    for name, (n, dmax, d99, conv, dconv, nc) in agree.items():
        print(f"| {name} | {n:,} | {dmax:.1e} | {d99:.1e} | {conv:,} | {dconv:.1e} | {nc} |")
    print("\n| tissue | voxels | rounds mean | T1 median | T1 p99 | T2 median | T2 p99 | not converged |")
    print("|---|---|---|---|---|---|---|---|")
    for name, (m1, q1, m2, q2, n, r, nc) in acc.items():
        print(f"| {name} | {n:,} | {r:.1f} | {100 * m1:.3f} % | {100 * q1:.3f} % | "
              f"{100 * m2:.3f} % | {100 * q2:.3f} % | {nc} |")
    cmd = " ".join(sys.argv[1:] if argv is None else argv)
    env = " ".join(f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY"))
    print(f"\n    {env} python benchmarks/bench_miracle.py {cmd}")


if __name__ == "__main__":
    main()
