"""MIRACLE on a whole-brain-sized pc-bSSFP volume: vectorised (torch) against the per-voxel loop.

    python benchmarks/bench_miracle.py [--shape 176 176 128] [--snr 25] [--threads 2]
        [--search full warm] [--n-loop 40] [--repeat 1]

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

Timed: :func:`qmriprep.fit.miracle.fit_miracle` on the whole volume with the brain mask
(best of ``--repeat``; ``torch.set_num_threads`` per ``--threads``) and the per-voxel loop
:func:`~qmriprep.fit.miracle.fit_miracle_voxel` on ``--n-loop`` random brain voxels,
extrapolated to the whole brain. The machine may be shared: the vectorised time is the best
of the repeats, and 2-thread runs suffer most from other load (intra-op barriers).
Accuracy: median and 99th percentile of ``|estimate/truth - 1|`` per tissue.
"""

from __future__ import annotations

import argparse
import os
import platform
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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
    """{tissue: (median, p99) of |rel err| for T1 and T2, voxels, mean rounds}."""
    est_t1, est_t2 = out["t1"], out["t2"]
    t1, t2, _ = truth
    acc = {}
    for name in dict.fromkeys(t[0] for t in TISSUES):
        sel = np.isin(label, [k for k, t in enumerate(TISSUES) if t[0] == name])
        if not sel.any():
            continue
        e1 = np.abs(est_t1[sel] / t1[sel] - 1)
        e2 = np.abs(est_t2[sel] / t2[sel] - 1)
        acc[name] = (np.median(e1), np.percentile(e1, 99), np.median(e2), np.percentile(e2, 99),
                     int(sel.sum()), out["rounds"][sel].mean())
    return acc


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", type=int, nargs=3, default=(176, 176, 128))
    p.add_argument("--n-cycles", type=int, default=12)
    p.add_argument("--snr", type=float, default=0.0, help="0 = noise-free")
    p.add_argument("--offres", type=float, default=0.0, help="off-resonance amplitude (x pi)")
    p.add_argument("--threads", type=int, nargs="+", default=[2])
    p.add_argument("--search", nargs="+", default=["full", "warm"], choices=["full", "warm"])
    p.add_argument("--n-loop", type=int, default=40, help="voxels for the per-voxel loop")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-csf", action="store_true", help="WM/GM values in the CSF shells")
    args = p.parse_args(argv)

    t0 = time.perf_counter()
    feats, mask, truth, label = simulate(tuple(args.shape), args.n_cycles, args.snr, args.offres,
                                         args.seed, csf=not args.no_csf)
    n_brain = int(mask.sum())
    print(f"simulated {mask.size:,} voxels ({n_brain:,} brain) x {args.n_cycles} cycles, "
          f"SNR {args.snr or 'inf'}, in {time.perf_counter() - t0:.1f} s", flush=True)
    b1 = truth[2]

    runs, acc, maps = [], {}, {}
    for threads in args.threads:
        torch.set_num_threads(threads)
        for search in args.search:
            best = np.inf
            for _ in range(args.repeat):
                t = time.perf_counter()
                out = fit_miracle(feats, b1, flip_angle=FA, tr=TR, mask=mask,
                                  settings=MiracleSettings(search=search))
                best = min(best, time.perf_counter() - t)
            maps[search] = out
            acc[search] = accuracy(out, truth, label)
            rounds = out["rounds"][mask]
            runs.append((search, threads, best, rounds.mean(), rounds.max()))
            print(f"vectorised {search} threads={threads}: {best:.2f} s "
                  f"({best / n_brain * 1e6:.1f} us/voxel), rounds mean {rounds.mean():.1f} "
                  f"max {rounds.max()}", flush=True)

    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed + 1)
    sub = rng.choice(np.flatnonzero(mask), size=min(args.n_loop, n_brain), replace=False)
    f_flat, b1_flat = feats.reshape(-1, 3), b1.ravel()
    loop = {}
    for search in args.search:
        t = time.perf_counter()
        res = [fit_miracle_voxel(f_flat[i], b1_flat[i], flip_angle=FA, tr=TR,
                                 settings=MiracleSettings(search=search)) for i in sub]
        per_voxel = (time.perf_counter() - t) / sub.size
        est = np.array([r[:2] for r in res])
        vec = np.stack([maps[search]["t1"].ravel()[sub], maps[search]["t2"].ravel()[sub]], 1)
        loop[search] = (per_voxel, np.abs(est / vec - 1).max())
        print(f"per-voxel loop {search}: {per_voxel * 1e3:.1f} ms/voxel -> "
              f"{per_voxel * n_brain / 3600:.1f} h extrapolated; max |loop/vectorised - 1| "
              f"{loop[search][1]:.1e}", flush=True)

    print(f"\n## MIRACLE, {n_brain:,} brain voxels of {'x'.join(map(str, args.shape))}, "
          f"{args.n_cycles} phase cycles, SNR {args.snr or 'inf'}\n")
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end\n")
    print("| fit | search | threads | time (s) | us/voxel | rounds mean (max) | loop/vectorised |")
    print("|---|---|---|---|---|---|---|")
    for search, threads, best, r_mean, r_max in runs:
        ratio = loop[search][0] * n_brain / best
        print(f"| vectorised | {search} | {threads} | {best:.1f} | {best / n_brain * 1e6:.1f} | "
              f"{r_mean:.1f} ({r_max}) | {ratio:,.0f}x |")
    for search, (per_voxel, diff) in loop.items():
        print(f"| per-voxel loop ({sub.size} voxels, extrapolated) | {search} | 1 | "
              f"{per_voxel * n_brain:,.0f} | {per_voxel * 1e6:,.0f} | - | 1x (diff {diff:.0e}) |")
    print("\n|search|tissue|voxels|rounds mean|T1 median|T1 p99|T2 median|T2 p99|")
    print("|---|---|---|---|---|---|---|---|")
    for search, per_tissue in acc.items():
        for name, (m1, q1, m2, q2, n, r) in per_tissue.items():
            print(f"| {search} | {name} | {n:,} | {r:.1f} | {100 * m1:.3f} % | {100 * q1:.3f} % | "
                  f"{100 * m2:.3f} % | {100 * q2:.3f} % |")
    cmd = " ".join(sys.argv[1:] if argv is None else argv)
    env = " ".join(f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY"))
    print(f"\n    {env} python benchmarks/bench_miracle.py {cmd}")


if __name__ == "__main__":
    main()
