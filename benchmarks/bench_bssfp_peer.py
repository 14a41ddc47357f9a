#!/usr/bin/env python
"""pc-bSSFP T1/T2 mapping: qmriprep (MIRACLE, SVNN/PINN networks) against the peer ``ssfp.planet``.

PLANET (Shcherbakova et al., MRM 79:711, 2018) fits an ellipse to the complex phase-cycled
signals of each voxel and reads T1, T2, M0 and the off-resonance from its geometry; it is the
conventional peer of the seed's MIRACLE and networks (seed 003). The peer package ``ssfp`` 1.2
does not run on numpy 2, so it lives in its own virtual environment (``benchmarks/README_peer.md``)
and runs in a subprocess (``benchmarks/peer_planet.py``) on ``.npy`` files.

Test data: a whole-brain-sized phantom, an ellipsoid of ~1.50 M voxels (radii 80/70/64 voxels)
in a 176x176x128 matrix, shells from the centre: ventricular CSF, white matter, grey matter,
outer CSF; per voxel T1/T2 ~ N(mean, sd) of the tissue (WM 940 +- 50 / 62 +- 4 ms, GM 1400 +- 80
/ 80 +- 6 ms, CSF 4000 +- 300 / 2000 +- 200 ms); a smooth B1 field in ~[0.8, 1.2]; a smooth
off-resonance field (a linear gradient of +-20 Hz plus a +100 Hz "sinus" and two -40 Hz
"temporal" hot spots; theta = 2 pi df TR, wrapped). Seed protocol: TR 4.8 ms, TE 2.4 ms,
FA 15 deg, 12 phase cycles phi_j = pi (2j - 1)/12, M0 = 1. Signals from
:func:`qmriprep.physics.bssfp.bssfp_signal`; noise-free and SNR 25 (complex Gaussian,
sigma = 0.074 / (sqrt(2) SNR) on every phase-cycle image; one draw, shared by all methods).

Methods (all given the true B1 map; PLANET as the actual flip angle B1 x FA):
* MIRACLE: :func:`qmriprep.physics.bssfp.fourier_features` then
  :func:`qmriprep.fit.miracle.fit_miracle` (``search="full"``, the seed's GSS, and
  ``"newton"``, its fixed point by Newton);
* the shipped networks (:func:`qmriprep.nn.weights.find_shipped` / ``load_model``; never
  trained here): magnitude SVNN/PINN 4-64-64-2 and complex SVNN/PINN 6-256-256-3, ``predict``;
* ``ssfp.planet`` in the peer venv with ``pcs`` = the phase increments.

Accuracy is computed on one random subset of ``--subset`` brain voxels, the same for every
method. The networks run on the whole brain (timed there); MIRACLE and PLANET run on the
subset and their time is extrapolated linearly to the whole brain (``--subset 0``: everything
on the whole brain). Times of the qmriprep methods include the Fourier features (phase
removal, DFT, normalisation) from the complex signals; PLANET's time is its ellipse fit plus
``planet`` inside the peer process (no file I/O or start-up). Threads: ``--threads`` for
torch and OMP/MKL/OpenBLAS in both processes.

Metrics: median |estimate/truth - 1| per tissue and over the brain; CoD ``1 - SSres/SStot``
with estimates clipped to [0, 5] s (MIRACLE's search bounds; the networks' outputs lie inside
their training range); a non-finite or non-positive estimate is a failure and counts as 0;
off-resonance: median |wrap(theta_est - theta)| / (2 pi TR) in Hz for the methods that give it.

Usage::

    python benchmarks/bench_bssfp_peer.py [--subset 200000] [--threads 2] [--snr 25]
        [--peer-python /tmp/ssfpvenv/bin/python] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_THREADS = "2"
for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_v, _THREADS)

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qmriprep.bids.protocols import BSSFPProtocol  # noqa: E402
from qmriprep.fit.miracle import MiracleSettings, fit_miracle  # noqa: E402
from qmriprep.nn.insilico import noise_sigma, seed_protocol  # noqa: E402
from qmriprep.nn.weights import SHIPPED_DIR, find_shipped, load_model  # noqa: E402
from qmriprep.physics.bssfp import bssfp_signal, fourier_features  # noqa: E402

SHAPE = (176, 176, 128)
RADII = (80.0, 70.0, 64.0)  # voxels
# name, outer normalised radius, T1 mean/sd, T2 mean/sd (s)
SHELLS = (("CSF", 0.20, 4.0, 0.3, 2.0, 0.2), ("WM", 0.72, 0.94, 0.05, 0.062, 0.004),
          ("GM", 0.95, 1.40, 0.08, 0.080, 0.006), ("CSF", 1.00, 4.0, 0.3, 2.0, 0.2))
TISSUES = ("WM", "GM", "CSF")
CLIP = 5.0  # s, for the CoD
PEER = Path(__file__).resolve().parent / "peer_planet.py"
NETWORKS = (("svnn", False, "SVNN magnitude 4-64-64-2"), ("pinn", False, "PINN magnitude 4-64-64-2"),
            ("svnn", True, "SVNN complex 6-256-256-3"), ("pinn", True, "PINN complex 6-256-256-3"))


def phantom(seed=0):
    """Brain voxels (flat): t1, t2, b1, theta (rad per TR), tissue label index into TISSUES."""
    rng = np.random.default_rng(seed)
    c = [np.arange(n) - (n - 1) / 2 for n in SHAPE]
    x, y, z = np.meshgrid(*c, indexing="ij")
    rho = np.sqrt((x / RADII[0]) ** 2 + (y / RADII[1]) ** 2 + (z / RADII[2]) ** 2)
    mask = rho <= 1.0
    x, y, z, rho = x[mask], y[mask], z[mask], rho[mask]
    n = rho.size
    t1, t2 = np.empty(n), np.empty(n)
    label = np.empty(n, np.int8)
    inner = 0.0
    for name, outer, m1, s1, m2, s2 in SHELLS:
        sel = (rho > inner) & (rho <= outer) if inner > 0 else rho <= outer
        k = int(sel.sum())
        t1[sel] = rng.normal(m1, s1, k)
        t2[sel] = rng.normal(m2, s2, k)
        label[sel] = TISSUES.index(name)
        inner = outer
    # smooth transmit field: centre-bright (3 T) with a left-right tilt, ~[0.8, 1.2]
    rxy = (x / RADII[0]) ** 2 + (y / RADII[1]) ** 2
    b1 = 1.17 - 0.3 * rxy - 0.08 * (z / RADII[2]) ** 2 + 0.05 * x / RADII[0]
    # off-resonance (Hz): gradient + frontal-inferior "sinus" (+100 Hz) + two "temporal" spots (-40 Hz)
    g = lambda cx, cy, cz, s: np.exp(-((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) / (2 * s * s))  # noqa: E731
    df = 20 * z / RADII[2] + 100 * g(0, 60, -40, 12) - 40 * (g(-62, 0, -30, 10) + g(62, 0, -30, 10))
    return {"t1": t1, "t2": t2, "b1": b1, "df": df, "label": label, "n": n}


def wrap(a):
    return (a + np.pi) % (2 * np.pi) - np.pi


def simulate(par, protocol, snr, seed=1, chunk=250_000):
    """Complex (n, n_cycles) signals, M0 = 1; noise drawn per chunk from one seeded generator."""
    theta = wrap(2 * np.pi * par["df"] * protocol.tr)
    out = np.empty((par["n"], protocol.n_cycles), np.complex128)
    rng = np.random.default_rng(seed)
    sigma = noise_sigma(snr) if snr else 0.0
    for s in range(0, par["n"], chunk):
        sl = slice(s, s + chunk)
        sig = bssfp_signal(par["t1"][sl], par["t2"][sl], par["b1"][sl], theta[sl],
                           BSSFPProtocol(protocol.phase_increments, protocol.tr,
                                         protocol.flip_angle, protocol.te))
        if sigma:
            sig = sig + sigma * (rng.standard_normal(sig.shape) + 1j * rng.standard_normal(sig.shape))
        out[sl] = sig
    return out, theta


def timed(fn, repeat=1):
    """``(output, wall s, CPU s)``: the best wall time of ``repeat`` calls and that call's process
    CPU time (all threads; less sensitive to other load on a shared machine)."""
    best = None
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if best is None or wall < best[1]:
            best = (out, wall, cpu)
    return best


def run_planet(peer_python, signal, alpha, protocol, threads):
    """ssfp.planet in its venv; returns t1, t2, df (Hz, PLANET's sign), wall s, CPU s, info."""
    with tempfile.TemporaryDirectory(prefix="qmriprep_planet_") as tmp:
        wd = Path(tmp)
        np.save(wd / "signal.npy", signal)
        np.save(wd / "alpha.npy", alpha)
        np.save(wd / "pcs.npy", np.asarray(protocol.phase_increments, dtype=np.float64))
        (wd / "params.json").write_text(json.dumps({"tr": protocol.tr, "t1_guess": 1.0}))
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env.update({v: str(threads) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")})
        subprocess.run([str(peer_python), str(PEER), str(wd)], check=True, env=env, stdout=subprocess.DEVNULL)
        info = json.loads((wd / "planet_timing.json").read_text())
        t1, t2, df = (np.load(wd / f"planet_{k}.npy") for k in ("t1", "t2", "df"))
    return t1, t2, df, info["seconds"], info["cpu_seconds"], info


def cod(est, true):
    return float(1 - ((est - true) ** 2).sum() / ((true - true.mean()) ** 2).sum())


def metrics(est, truth, label, theta_est=None, theta_true=None, tr=None):
    """Per-tissue and whole-brain median |rel err|, CoD (brain and WM+GM), failures, off-res."""
    m = {}
    bad = np.zeros(label.shape, bool)
    for k in ("t1", "t2"):
        e = np.asarray(est[k], np.float64)
        fail = ~np.isfinite(e) | (e <= 0)
        bad |= fail
        e = np.where(fail, 0.0, e)
        rel = np.abs(e / truth[k] - 1)
        ec = np.clip(e, 0, CLIP)
        m[f"{k}_brain"] = float(np.median(rel))
        for i, t in enumerate(TISSUES):
            m[f"{k}_{t}"] = float(np.median(rel[label == i]))
        par = label != TISSUES.index("CSF")
        m[f"{k}_par"] = float(np.median(rel[par]))
        m[f"cod_{k}_brain"] = cod(ec, truth[k])
        m[f"cod_{k}_par"] = cod(ec[par], truth[k][par])
    m["failed"] = float(bad.mean())
    if theta_est is not None:
        err = np.abs(wrap(theta_est - theta_true)) / (2 * np.pi * tr)
        par = label != TISSUES.index("CSF")
        m["df_par_hz"] = float(np.median(err[par]))
        m["df_brain_hz"] = float(np.median(err))
    return m


def run_condition(snr, par, sub, protocol, args, nets):
    """All methods at one noise level; rows (label, wall s and CPU s for the whole brain, note, metrics)."""
    n, k = par["n"], sub.size
    scale = n / k
    signal, theta = simulate(par, protocol, snr)
    truth = {"t1": par["t1"][sub], "t2": par["t2"][sub]}
    label, b1_sub = par["label"][sub], par["b1"][sub]
    F, t_feat, c_feat = timed(lambda: fourier_features(signal, protocol.phase_increments), args.repeat)
    rows = []
    for est, cpx, name in NETWORKS:
        if est + str(cpx) not in nets:
            continue
        model = nets[est + str(cpx)]
        model.predict(F[:1000], par["b1"][:1000])  # warm-up
        out, sec, cpu = timed(lambda: model.predict(F, par["b1"]), args.repeat)
        o = {key: v[sub] for key, v in out.items()}
        th = o.get("theta")
        rows.append((f"qmriprep {name}", t_feat + sec, c_feat + cpu,
                     f"measured on the whole brain (best of {args.repeat})",
                     metrics(o, truth, label, th, theta[sub] if th is not None else None, protocol.tr)))
        print(f"  {name}: {t_feat + sec:.2f} s", flush=True)
    Fs = F[sub] if k < n else F
    for search in args.miracle:
        out, sec, cpu = timed(lambda: fit_miracle(Fs, b1_sub, flip_angle=protocol.flip_angle, tr=protocol.tr,
                                                  settings=MiracleSettings(search=search)))
        note = "measured" if k == n else f"extrapolated from {k:,} voxels"
        rows.append((f"qmriprep MIRACLE (GSS {search})", t_feat + sec * scale, c_feat + cpu * scale, note,
                     metrics(out, truth, label)))
        print(f"  MIRACLE {search}: {sec:.1f} s on {k} voxels", flush=True)
    if args.peer_python:
        alpha = par["b1"][sub] * protocol.flip_angle
        t1, t2, df, sec, cpu, info = run_planet(args.peer_python, np.ascontiguousarray(signal[sub]), alpha, protocol,
                                           args.threads)
        th = -2 * np.pi * df * protocol.tr  # PLANET's df has the opposite sign of our theta (README_peer.md)
        note = "measured" if k == n else f"extrapolated from {k:,} voxels"
        m = metrics({"t1": t1, "t2": t2}, truth, label, th, theta[sub], protocol.tr)
        m["ellipse_fit_failures"] = info["ellipse_fit_failures"]
        rows.append(("ssfp.planet (PLANET, ssfp %s)" % info.get("ssfp"), sec * scale, cpu * scale, note, m))
        print(f"  PLANET: {sec:.1f} s on {k} voxels ({info})", flush=True)
    return rows, t_feat


def pct(v):
    return f"{100 * v:.2f}"


def tables(results, n, k):
    lines = [f"Whole brain: {n:,} voxels; accuracy on the same {k:,} random brain voxels for every method.", "",
             "| method | SNR | wall s (whole brain) | voxels/s | CPU s | T1 err % | T2 err % | CoD T1 | CoD T2 "
             "| failed % | time |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for snr, rows in results:
        for label, sec, cpu, note, m in rows:
            lines.append(f"| {label} | {snr or 'inf'} | {sec:.1f} | {n / sec:,.0f} | {cpu:.1f} | {pct(m['t1_brain'])} | "
                         f"{pct(m['t2_brain'])} | {m['cod_t1_brain']:.4f} | {m['cod_t2_brain']:.4f} | "
                         f"{pct(m['failed'])} | {note} |")
    lines += ["", "By tissue (median |rel err| %, T1 / T2; CoD on WM+GM only; off-resonance error in Hz, "
              "WM+GM):", "",
              "| method | SNR | WM | GM | CSF | CoD T1 WM+GM | CoD T2 WM+GM | off-res err Hz |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
    for snr, rows in results:
        for label, sec, cpu, note, m in rows:
            tis = " | ".join(f"{pct(m['t1_' + t])} / {pct(m['t2_' + t])}" for t in TISSUES)
            dfe = f"{m['df_par_hz']:.2f}" if "df_par_hz" in m else "-"
            lines.append(f"| {label} | {snr or 'inf'} | {tis} | {m['cod_t1_par']:.4f} | {m['cod_t2_par']:.4f} | {dfe} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subset", type=int, default=200_000,
                    help="random brain voxels for accuracy and for MIRACLE/PLANET (0: whole brain)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--snr", type=float, nargs="*", default=[0, 25], help="0 = noise-free")
    ap.add_argument("--miracle", nargs="*", default=["full", "newton"], choices=["full", "newton"])
    ap.add_argument("--peer-python", default=os.environ.get("SSFP_PYTHON", "/tmp/ssfpvenv/bin/python"),
                    help="python of the ssfp venv ('' to skip PLANET)")
    ap.add_argument("--repeat", type=int, default=3, help="timing repeats of the features and networks (best)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.peer_python and not Path(args.peer_python).exists():
        print(f"no peer python at {args.peer_python}: PLANET skipped (see benchmarks/README_peer.md)")
        args.peer_python = ""
    protocol = seed_protocol(12)
    nets, missing = {}, []
    for est, cpx, name in NETWORKS:
        entry = find_shipped(protocol, est, cpx)
        if entry is None:
            missing.append(name)
            continue
        nets[est + str(cpx)] = load_model(SHIPPED_DIR / entry["file"], sha256=entry["sha256"])
    par = phantom(args.seed)
    n = par["n"]
    rng = np.random.default_rng(args.seed + 7)
    sub = np.sort(rng.choice(n, args.subset, replace=False)) if 0 < args.subset < n else np.arange(n)
    cmd = "python benchmarks/bench_bssfp_peer.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"# pc-bSSFP: qmriprep vs ssfp.planet\n\ncommand: `{cmd.strip()}`; {args.threads} threads; "
          f"load average before {os.getloadavg()[0]:.2f}")
    frac = {t: float((par['label'] == i).mean()) for i, t in enumerate(TISSUES)}
    print(f"phantom {SHAPE}: {n:,} brain voxels ({', '.join(f'{t} {100 * f:.1f} %' for t, f in frac.items())}); "
          f"B1 {par['b1'].min():.2f}-{par['b1'].max():.2f}; df {par['df'].min():.0f} to {par['df'].max():.0f} Hz; "
          f"|theta| > 0.9 pi in {100 * np.mean(np.abs(wrap(2 * np.pi * par['df'] * protocol.tr)) > 0.9 * np.pi):.2f} %")
    if missing:
        print(f"not shipped (skipped, never trained here): {', '.join(missing)}")
    results, feat = [], {}
    for snr in args.snr:
        print(f"SNR {snr or 'inf'}:", flush=True)
        rows, feat[snr] = run_condition(snr or None, par, sub, protocol, args, nets)
        results.append((snr, rows))
    print(f"\nload average after {os.getloadavg()[0]:.2f}; Fourier features of the whole brain "
          + ", ".join(f"{v:.2f} s (SNR {s or 'inf'})" for s, v in feat.items()) + " (included in qmriprep times)\n")
    print(tables(results, n, sub.size))
    if args.json:
        args.json.write_text(json.dumps({"n": n, "subset": int(sub.size), "missing": missing, "results": [
            {"snr": s, "rows": [{"method": r[0], "seconds": r[1], "cpu_seconds": r[2], "note": r[3], **r[4]}
                                for r in rows]}
            for s, rows in results]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
