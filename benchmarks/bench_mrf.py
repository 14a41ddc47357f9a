"""MR fingerprinting: EPG accuracy, dictionary matching throughput and accuracy (issue 9).

    OMP_NUM_THREADS=2 python benchmarks/bench_mrf.py [--voxels 500000] [--threads 2]
                                                    [--skip-phantom] [--cnn]

1. EPG against the closed-form FISP steady state (constant flip angle and TR): max |error|.
2. Dictionary of the default settings (T1 0.05-5 s, T2 5 ms-2 s, 3 % steps, T2 <= T1) on the
   400-frame synthetic FISP schedule: size, simulation time, subspace rank.
3. Throughput of the matching on ``--voxels`` voxels (coefficients of random atoms, complex
   Gaussian noise at 2 % of the atom norm) with ``--threads`` torch threads: coarse-to-fine
   (the default) and exhaustive; agreement between the two on a 50,000-voxel subset.
4. Accuracy on the phantom (``--downsample`` 4: 4 mm, ``--slices`` 6 central slices): noise-free,
   SNR ``--snr`` (default 1: sigma = mean |signal| over frames and pure WM; 400 frames average
   it), and 4x per-frame undersampling (density compensated, zero-filled); T1/T2 RMSE in GM+WM
   (the phantom's B1+ map given). ``--cnn``: also the subspace CNN (``mrf:subspacecnn``, default
   settings) on the noisy and undersampled series; ``--no-undersampling`` skips that case.
5. ``--cost``: seconds per epoch and peak memory of the subspace CNN on the phantom at
   ``--downsample`` / ``--slices`` (e.g. 1 mm, 24 slices), SNR 1, 400 frames, with the L2 loss
   in the coefficient domain (the default) against the L1 loss, which compares frames (the
   baseline: what every loss cost before), each in a fresh process (2 epochs of 4 steps).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import time

import numpy as np
import torch

from qmriprep.fit.mrf import MRFSettings, build, fit_mrf_matching
from qmriprep.fit.noise import estimate_noise
from qmriprep.fit.mrfmatch import GridSearch, match
from qmriprep.physics.epg import fisp_signal
from qmriprep.synth.mrf import fisp_schedule, mrf_series, protocol_of
from qmriprep.synth.phantom import make_phantom


def epg_error() -> float:
    worst = 0.0
    for t1, t2, fa, tr in ((0.3, 0.05, 60, 0.02), (0.6, 0.1, 30, 0.012), (0.8, 0.3, 90, 0.015),
                           (0.4, 0.2, 12, 0.01), (0.5, 0.45, 75, 0.005)):
        n, a = int(40 * t1 / tr), math.radians(fa)
        proto = argparse.Namespace(flip_angles=[a] * n, repetition_times=[tr] * n, echo_time=0.0,
                                   inversion_time=None)
        sim = fisp_signal([t1], [t2], proto)[0, -1].item()
        e1, e2, ca = math.exp(-tr / t1), math.exp(-tr / t2), math.cos(a)
        p, q = 1 - e1 * ca - e2 ** 2 * (e1 - ca), e2 * (1 - e1) * (1 + ca)
        ref = math.tan(a / 2) * (1 - (e1 - ca) * (1 - e2 ** 2) / math.sqrt(p * p - q * q))
        worst = max(worst, abs(sim - ref))
    return worst


def throughput(sub, dic, n_vox: int, threads: int, strides=(16, 4, 1)) -> dict:
    """Voxels/s of the coarse-to-fine search (one thread, and ``threads`` threads each matching a
    share of the voxels) and of the exhaustive search; agreement of the two."""
    from concurrent.futures import ThreadPoolExecutor

    g = torch.Generator().manual_seed(0)
    pick = torch.randint(0, sub.coef.shape[0], (n_vox,), generator=g)
    clean = sub.coef[pick] * torch.exp(1j * 2 * math.pi * torch.rand(n_vox, 1, generator=g))
    noise = 0.02 * sub.norms[pick, None, None] * torch.randn(n_vox, sub.rank, 2, generator=g)
    coef = clean + torch.view_as_complex(noise.contiguous())
    torch.set_num_threads(1)
    search = GridSearch(sub.coef, dic.grid[:, :2], strides=strides)
    rates = {}

    def best_of(fn, n, repeats=3):
        best = math.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        return n / best

    rates["grid_1thread"] = best_of(lambda: search(coef), n_vox)
    with ThreadPoolExecutor(threads) as pool:
        rates["grid_threads"] = best_of(lambda: list(pool.map(search, torch.chunk(coef, 4 * threads))),
                                        n_vox)
    n = min(n_vox, 50_000)
    torch.set_num_threads(threads)
    rates["exhaustive"] = best_of(lambda: match(coef[:n], sub.coef), n, repeats=1)
    fast, full = search(coef[:n]), match(coef[:n], sub.coef)
    rates["agree"] = (fast["index"] == full["index"]).float().mean().item()
    step = math.log(1.031)
    rates["within_step"] = ((torch.log(dic.t1[fast["index"]] / dic.t1[full["index"]]).abs() <= step)
                            & (torch.log(dic.t2[fast["index"]] / dic.t2[full["index"]]).abs() <= step)
                            ).float().mean().item()
    rates["score_ratio"] = (fast["score"] / full["score"]).min().item()
    return rates


def rmse(est, ph, keep):
    return tuple(float(np.sqrt(np.mean((est[k][keep] - getattr(ph, k)[keep]) ** 2))) for k in ("t1", "t2"))


def phantom_accuracy(proto, meta, settings, args):
    ph = make_phantom(downsample=args.downsample, n_slices=args.slices, seed=0)
    tissue = ph.mask & np.isin(ph.labels, (2, 3))
    cases = [("noise-free", None, 1.0)] + [(f"SNR {snr:g}", snr, 1.0) for snr in args.snr]
    for label, snr, r in cases + ([] if args.no_undersampling else [("R=4 undersampled", None, 4.0)]):
        series, _ = mrf_series(ph, meta, snr=snr, rng=np.random.default_rng(1), undersampling=r)
        sigma = estimate_noise(series, is_complex=np.iscomplexobj(series)).sigma  # as the pipeline
        t0 = time.perf_counter()
        out = fit_mrf_matching(series, proto, b1=ph.b1, mask=ph.mask, settings=settings, sigma=sigma)
        row = {"case": label, "matching": rmse(out, ph, tissue), "t_match": time.perf_counter() - t0,
               "within_sd": tuple(float(np.mean(np.abs(out[k] - getattr(ph, k))[tissue] <= out[f"{k}_sd"][tissue]))
                                  for k in ("t1", "t2"))}
        if args.cnn and label != "noise-free":
            from qmriprep.nn.subspacecnn import SubspaceCNNSettings, train

            t0 = time.perf_counter()
            cnn, record = train(series, proto, b1=ph.b1, mask=ph.mask, settings=settings,
                                cnn=SubspaceCNNSettings(time_budget_s=args.cnn_budget), sigma=sigma)
            row["cnn_factor"] = record["SDCalibration"]["VarianceOverBound"]
            row["cnn"] = rmse(cnn, ph, tissue)
            row["cnn_within_sd"] = tuple(float(np.mean(np.abs(cnn[k] - getattr(ph, k))[tissue]
                                                       <= cnn[f"{k}_sd"][tissue])) for k in ("t1", "t2"))
            row["t_cnn"] = time.perf_counter() - t0
        yield row


def _cnn_cost(args, loss: str) -> dict:
    """One subspace-CNN run of 2 epochs in this (fresh) process: seconds per epoch, peak RSS."""
    from qmriprep.nn.subspacecnn import SubspaceCNNSettings, train

    torch.set_num_threads(args.threads)
    ph = make_phantom(downsample=args.downsample, n_slices=args.slices, seed=0)
    meta = fisp_schedule()
    series, _ = mrf_series(ph, meta, snr=1.0, rng=np.random.default_rng(1))
    coarse = dataclasses.replace(MRFSettings(), t1_step=0.05, t2_step=0.05)
    before = _rss_gb("VmRSS")
    _, rec = train(series, protocol_of(meta), b1=ph.b1, mask=ph.mask, settings=coarse,
                   cnn=SubspaceCNNSettings(loss=loss, max_epochs=2, patience=10))
    return {"loss": loss, "seconds_per_epoch": rec["TrainingSeconds"] / rec["TrainingEpochs"],
            "peak_gb": _rss_gb("VmHWM"), "before_gb": before, "series_gb": series.nbytes / 1e9,
            "shape": ph.shape, "voxels": int(ph.mask.sum())}


def _rss_gb(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process, GB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field)) / 1e6


def cost(args):
    import multiprocessing

    print(f"5. subspace CNN cost, {args.threads} threads (fresh process per loss):")
    ctx = multiprocessing.get_context("spawn")
    for loss in ("l2", "l1"):
        with ctx.Pool(1) as pool:
            r = pool.apply(_cnn_cost, (args, loss))
        print(f"   {r['loss']}: grid {r['shape']}, {r['voxels']} voxels, series {r['series_gb']:.2f} GB; "
              f"{r['seconds_per_epoch']:.1f} s per epoch; peak RSS {r['peak_gb']:.2f} GB "
              f"({r['before_gb']:.2f} GB in use when training starts)", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voxels", type=int, default=500_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-phantom", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--cnn", action="store_true")
    ap.add_argument("--downsample", type=int, default=4)
    ap.add_argument("--slices", type=int, default=6)
    ap.add_argument("--snr", type=float, nargs="+", default=[1.0])
    ap.add_argument("--no-undersampling", action="store_true")
    ap.add_argument("--cost", action="store_true", help="only item 5")
    ap.add_argument("--cnn-budget", type=float, default=600.0, help="the CNN's time budget (s; 0: none)")
    args = ap.parse_args(argv)
    if args.cost:
        return cost(args)
    print(f"load average at start: {os.getloadavg()}")
    print(f"1. EPG vs closed-form FISP steady state: max |error| = {epg_error():.2e}")
    meta = fisp_schedule()
    proto, settings = protocol_of(meta), MRFSettings()
    if not args.skip_throughput:
        speed(proto, settings, args)
    if args.skip_phantom:
        return
    torch.set_num_threads(args.threads)
    coarse = dataclasses.replace(settings, t1_step=0.05, t2_step=0.05)
    print(f"4. phantom ({args.downsample} mm, {args.slices} slices; GM+WM), RMSE T1 / T2 in ms "
          "(dictionary 5 % steps, B1+ axis 2.5 %):")
    for row in phantom_accuracy(proto, meta, coarse, args):
        line = (f"   {row['case']:18s} matching {1e3 * row['matching'][0]:7.1f} / {1e3 * row['matching'][1]:6.1f}"
                f"  ({row['t_match']:.1f} s; within +-1 SD {100 * row['within_sd'][0]:.0f} / "
                f"{100 * row['within_sd'][1]:.0f} %)")
        if "cnn" in row:
            c, m = row["cnn"], row["matching"]
            line += (f" | subspace CNN {1e3 * c[0]:7.1f} / {1e3 * c[1]:6.1f} ({row['t_cnn']:.0f} s); "
                     f"gain {m[0] / c[0]:.2f}x / {m[1] / c[1]:.2f}x; within +-1 SD "
                     f"{100 * row['cnn_within_sd'][0]:.0f} / {100 * row['cnn_within_sd'][1]:.0f} %; "
                     "error variance / bound (held out) " + " / ".join(f"{v:.2f}" for v in row["cnn_factor"].values()))
        print(line, flush=True)
    print(f"   load average at the end: {os.getloadavg()}")


def speed(proto, settings, args):
    t0 = time.perf_counter()
    dic, sub = build(proto, settings)
    s = sub.singular_values.double()
    print(f"2. dictionary: {dic.atoms.shape[0]} atoms x {dic.atoms.shape[1]} frames in "
          f"{time.perf_counter() - t0:.1f} s; rank {sub.rank} (95 % of the sum of singular values; "
          f"95 % of their squares would give {int((torch.cumsum(s * s, 0) / (s * s).sum() < 0.95).sum()) + 1})")
    r = throughput(sub, dic, args.voxels, args.threads)
    print(f"3. matching {args.voxels} voxels (2 % complex noise): coarse-to-fine "
          f"{r['grid_1thread'] / 1e6:.2f} M voxels/s on 1 thread, {r['grid_threads'] / 1e6:.2f} M voxels/s "
          f"with {args.threads} threads; exhaustive {r['exhaustive'] / 1e6:.3f} M voxels/s; same atom "
          f"as exhaustive {100 * r['agree']:.1f} %, T1 and T2 within one step {100 * r['within_step']:.1f} %, "
          f"worst score ratio {r['score_ratio']:.4f}")
    print(f"   load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
