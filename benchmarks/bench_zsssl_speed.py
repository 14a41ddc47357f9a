"""ZS-SSL time to quality on a CPU (issue 14): where a training step's time goes, before vs after.

Every part runs once per source tree in a subprocess (``--before SRC``: a checkout of the package
before the change, e.g. ``git archive c95d71d qmriprep | tar -x -C SRC``; the current tree is
"after"), so the ratios come from one run under one load. Times are wall and process CPU seconds
(the CPU column is the steadier one when other jobs share the cores).

- ``profile``: one 2-D slice set of the issue's size (230 readout x 180 phase encodes, 8 echoes,
  8 coils, R = 4, :func:`slice_set`): SENSE normal operator ``E^H E``, residual CNN forward and
  forward + backward (``fast`` network), one ZS-SSL training step (forward with the DC of every
  unroll, loss, backward with MEL's implicit CG and checkpointed CNN) and one validation pass.
- ``slice``: CG-SENSE and ZS-SSL (``--settings``, JSON over the ``fast`` preset) at R = 4 and 8:
  seconds, image NRMSE and SSIM of the magnitudes against the noise-free truth in the brain.
- ``curve``: image NRMSE / SSIM after every epoch of one ZS-SSL training per R (slice set,
  ``--settings``): quality against training CPU seconds; ``--data real``: on real anatomy
  (``pretrain_zsssl.real_slice_set``) instead of the phantom.
- ``demo``: the demo's three k-space collections (``qmriprep.synth.DEMO``: 4 mm, 16 slices,
  MESE 16 echoes, VFA 4 flips, DESS 2 echoes, R = 4) through ``pipeline.reconstruct("zsssl")``
  with the demo's settings (``--demo-settings``), one torch thread as in ``scripts/demo.sh``.

The slice set: the central axial slice of the 1 mm phantom (:mod:`qmriprep.synth.phantom`, seed
0), MESE ``M0 exp(-TE/T2)`` at TE = 10..80 ms, cropped to 180 (x, phase) x 230 (y, readout), the
synthetic head array and receiver phase of :mod:`qmriprep.synth.kspace`, complex Gaussian k-space
noise at SNR 50 in white matter, whole-line variable-density masks (24 calibration lines) shared by
the echoes; ESPIRiT maps from the undersampled data.

    python benchmarks/bench_zsssl_speed.py --parts profile,slice,demo --before /tmp/before \\
        --threads 2 --out zsssl_speed.json
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

import numpy as np

HERE = Path(__file__).resolve().parents[1]


def slice_set(r=4.0, snr=50.0, echoes=8, coils=8, seed=0, shape=(180, 230)):
    """``y (1, E, N, H, W)``, ``mask (1, E, H, W)``, noise-free magnitudes ``truth (1, E, H, W)`` (the
    echoes of ``physics.exponential.monoexp``, which may be complex),
    ``brain (H, W)``, noise-free coil images ``coil_truth (1, E, N, H, W)``."""
    from qmriprep.physics.exponential import monoexp
    from qmriprep.recon.fft import centred_fft
    from qmriprep.recon.masks import variable_density_mask
    from qmriprep.synth.bssfp import receiver_phase
    from qmriprep.synth.kspace import coil_maps
    from qmriprep.synth.phantom import make_phantom

    ph = make_phantom(downsample=1, crop=False, n_slices=1, seed=seed)
    te = 0.010 * np.arange(1, echoes + 1)
    img = np.where(ph.mask[..., None], monoexp(ph.pd[..., None], ph.safe("t2")[..., None], te), 0)[:, :, 0]
    maps = coil_maps(ph, coils)[..., 0] * np.exp(1j * receiver_phase(ph))[None, ..., 0]
    (h, w), (nx, ny) = shape, img.shape[:2]
    box = (slice((nx - h) // 2, (nx - h) // 2 + h), slice((ny - w) // 2, (ny - w) // 2 + w))
    img, maps = img[box].transpose(2, 0, 1), maps[(slice(None),) + box]
    ksp = centred_fft(maps[None] * img[:, None], (-2, -1))
    sigma = float(np.mean(np.abs(img[0])[ph.noise_reference()[box + (0,)]]) / snr)
    rng = np.random.default_rng(seed)
    ksp = ksp + sigma * (rng.standard_normal(ksp.shape) + 1j * rng.standard_normal(ksp.shape))
    lines = variable_density_mask((h, w), r, calib=24, kind="lines", seed=seed)
    mask = np.broadcast_to(lines, (1, echoes, h, w)).astype(np.float32)
    return {"y": (ksp[None] * mask[:, :, None]).astype(np.complex64), "mask": mask,
            "truth": np.abs(img[None]).astype(np.float32), "brain": ph.mask[box + (0,)],
            "coil_truth": (maps[None] * img[:, None]).astype(np.complex64)[None]}


def clock(fn, repeat=1):
    """``(result, wall s, CPU s)`` per call, after one warm-up call."""
    fn()
    w, c = time.perf_counter(), time.process_time()
    for _ in range(repeat):
        out = fn()
    return out, (time.perf_counter() - w) / repeat, (time.process_time() - c) / repeat


def scores(x, d) -> dict:
    from qmriprep.recon import metrics

    mag = np.abs(np.asarray(x))
    return {"nrmse": metrics.nrmse(mag, d["truth"], np.broadcast_to(d["brain"], mag.shape)),
            "ssim": float(np.mean([metrics.ssim(mag[0, e], d["truth"][0, e], d["brain"])
                                   for e in range(mag.shape[1])]))}


def settings(extra: dict):
    from qmriprep.recon.pipeline import PRESETS
    from qmriprep.recon.zsssl import ReconSettings

    return ReconSettings(**{**PRESETS["fast"], **extra})


# ----------------------------------------------------------------------------- parts (workers)
def part_profile(args) -> dict:
    import torch

    from qmriprep.recon import zsssl as Z
    from qmriprep.recon.coils import estimate_coils
    from qmriprep.recon.masks import zsssl_splits
    from qmriprep.recon.mel import dc_layer
    from qmriprep.recon.sense import SenseOp

    d = slice_set(4.0)
    maps = estimate_coils(d["y"], d["mask"])
    st = settings(json.loads(args.settings))
    scan = Z._prepare(d["y"], maps, d["mask"], "cpu")
    sp = zsssl_splits(scan.mask, n_pairs=2, val_fraction=st.val_fraction, loss_fraction=st.loss_fraction, seed=0)
    model, _ = Z._build_model(scan.y.shape[1], st, None)
    idx = np.array([0])
    theta, lam = Z._rows(sp.theta[0], idx, "cpu"), Z._rows(sp.lam[0], idx, "cpu")
    x = torch.randn(1, scan.y.shape[1], *scan.y.shape[-2:], dtype=torch.complex64)
    xr = x.clone().requires_grad_(True)
    op = SenseOp(scan.maps[idx], theta)
    out = {}
    with torch.no_grad():
        out["normal operator E^H E"] = clock(lambda: op.normal(x), 2)[1:]
        out["CNN forward"] = clock(lambda: model.cnn(x), 2)[1:]
        out["DC (CG, cg_iter iterations)"] = clock(lambda: dc_layer(op, x, x, model.mu.detach(), st.cg_iter), 1)[1:]
    out["CNN forward + backward"] = clock(lambda: model.cnn(xr).abs().sum().backward(), 2)[1:]
    out["training step (forward + loss + backward)"] = clock(
        lambda: Z._masked_loss(model, scan, idx, theta, lam).backward(), 1)[1:]
    model.eval()
    with torch.no_grad():
        out["validation pass"] = clock(lambda: Z._masked_loss(model, scan, idx, theta, lam).item(), 1)[1:]
    return {k: {"wall": round(v[0], 3), "cpu": round(v[1], 3)} for k, v in out.items()}


def part_slice(args) -> dict:
    import torch

    from qmriprep.recon import zsssl as Z
    from qmriprep.recon.coils import estimate_coils
    from qmriprep.recon.pipeline import CGSENSE_ITER, CGSENSE_LAMBDA
    from qmriprep.recon.sense import cg_sense

    rows = []
    for r in (float(a) for a in args.accelerations.split(",")):
        if args.data == "real":
            from pretrain_zsssl import real_slice_set
            d = real_slice_set(r)
        else:
            d = slice_set(r)
        maps = estimate_coils(d["y"], d["mask"])
        tens = [torch.from_numpy(np.ascontiguousarray(a)) for a in (d["y"], maps, d["mask"])]
        with torch.no_grad():
            xc, w, c = clock(lambda: cg_sense(*tens, lam=CGSENSE_LAMBDA, max_iter=CGSENSE_ITER))
        rows.append({"R": r, "method": "cgsense", "wall": w, "cpu": c, **scores(xc, d)})
        st = settings(json.loads(args.settings))
        w0, c0 = time.perf_counter(), time.process_time()
        model, hist = Z.train_zsssl(d["y"], maps, d["mask"], st, log=lambda m: print(m, file=sys.stderr, flush=True))
        x = Z.reconstruct(model, d["y"], maps, d["mask"])
        rows.append({"R": r, "method": "zsssl", "wall": time.perf_counter() - w0, "cpu": time.process_time() - c0,
                     "epochs": hist["epochs"], "best_epoch": hist["best_epoch"],
                     "steps": hist["epochs"] * st.steps_per_epoch, **scores(x, d)})
        print(rows[-2:], file=sys.stderr, flush=True)
    return {"rows": rows}


def part_demo(args) -> dict:
    from dataclasses import replace

    from qmriprep.recon import pipeline as rp
    from qmriprep.synth import DEMO, DatasetSpec, write_dataset

    root = Path(args.work) / "demo_kspace"
    if not (root / "dataset_description.json").is_file():
        spec = DatasetSpec(**{**{k: getattr(DEMO, k) for k in ("subjects", "snr", "downsample", "n_slices", "seed",
                                                             "kspace")}, "modalities": ("TB1TFL",)})
        write_dataset(root, spec, overwrite=True)
    st = replace(settings({}), **json.loads(args.demo_settings))
    rows = []
    for contrast in ("MESE", "VFA", "DESS"):
        files = sorted((root / "sourcedata" / "kspace" / "sub-01" / "anat").glob(f"*_{contrast}.h5"))
        col = rp.load_collection(files)
        maps = rp.coil_maps(col)
        c0 = time.process_time()
        _, info = rp.reconstruct(col, maps, "zsssl", settings=st)
        rows.append({"contrast": contrast, "shape": list(col.y.shape), "wall": info["ReconstructionSeconds"],
                     "training": info["TrainingSeconds"], "cpu": time.process_time() - c0,
                     "epochs": info["EpochsRun"]})
        print(rows[-1], file=sys.stderr, flush=True)
    return {"rows": rows}


def part_curve(args) -> dict:
    """NRMSE / SSIM of the current weights after every epoch of one ZS-SSL training per R (the
    time-to-quality curve); ``cpu``: training CPU seconds without these evaluations."""
    from qmriprep.nn.loop import Hooks, fit
    from qmriprep.recon import zsssl as Z
    from qmriprep.recon.coils import estimate_coils

    out = {}
    for r in (float(a) for a in args.accelerations.split(",")):
        if args.data == "real":
            from pretrain_zsssl import real_slice_set
            d = real_slice_set(r)
        else:
            d = slice_set(r)
        maps = estimate_coils(d["y"], d["mask"])
        st = settings(json.loads(args.settings))
        scan = Z._prepare(d["y"], maps, d["mask"], "cpu")
        sp = Z.zsssl_splits(scan.mask, n_pairs=st.n_pairs, val_fraction=st.val_fraction,
                            loss_fraction=st.loss_fraction, seed=st.seed, kind=st.split)
        model, _ = Z._build_model(scan.y.shape[1], st, None)
        rng, spent, c0 = np.random.default_rng(st.seed), [0.0], time.process_time()

        def step_loss():  # as train_zsssl's
            _, idx = Z._pick(rng, [scan], st.batch)
            k = int(rng.integers(st.n_pairs))
            return Z._masked_loss(model, scan, idx, Z._rows(sp.theta[k], idx, "cpu"), Z._rows(sp.lam[k], idx, "cpu"))

        def extras():
            t = time.process_time()
            res = scores(Z.reconstruct(model, d["y"], maps, d["mask"]), d)
            spent[0] += time.process_time() - t
            model.train()
            return {**res, "cpu": time.process_time() - c0 - spent[0]}

        jobs = [(scan, i, Z._rows(scan.mask & ~sp.gamma, i, "cpu"), Z._rows(sp.gamma, i, "cpu"))
                for i in Z._val_chunks(scan, st.batch)]
        hist = fit(model, step_loss, st.loop(), val_loss=lambda: Z._mean_loss(Z._masked_loss, model, jobs),
                   hooks=Hooks(extras=extras, log=lambda rec: print(rec, file=sys.stderr, flush=True)))
        out[str(r)] = hist.records
    return out


PARTS = {"profile": part_profile, "slice": part_slice, "demo": part_demo, "curve": part_curve}


# ----------------------------------------------------------------------------- driver
def run_worker(src: Path, part: str, args, settings_json: str, demo_json: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = [sys.executable, __file__, "--worker", part, "--threads", str(args.threads if part != "demo" else 1),
           "--settings", settings_json, "--demo-settings", demo_json, "--accelerations", args.accelerations,
           "--work", str(args.work), "--data", args.data]
    res = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--parts", default="profile,slice,demo")
    p.add_argument("--before", type=Path, default=None, help="source tree of the package before the change")
    p.add_argument("--settings", default="{}", help="ZS-SSL settings over the fast preset (JSON), after")
    p.add_argument("--before-settings", default=None, help="the same for the before tree (default: --settings)")
    p.add_argument("--demo-settings", default='{"max_epochs": 10, "steps_per_epoch": 10}')
    p.add_argument("--before-demo-settings", default='{"max_epochs": 10, "steps_per_epoch": 10}')
    p.add_argument("--accelerations", default="4,8")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data", choices=["phantom", "real"], default="phantom", help="curve: the slice set")
    p.add_argument("--work", type=Path, default=None)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.worker:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(PARTS[args.worker](args), default=float))
        return 0
    args.work = args.work or Path(tempfile.mkdtemp(prefix="qmriprep-zsssl-speed-"))
    trees = {"after": (HERE, args.settings, args.demo_settings)}
    if args.before:
        trees["before"] = (args.before, args.before_settings or args.settings, args.before_demo_settings)
    results = {"uptime_start": os.getloadavg(), "settings": vars(args) | {"work": str(args.work),
                                                                          "before": str(args.before)}}
    for part in args.parts.split(","):
        for name, (src, st, demo) in trees.items():
            results[f"{part}_{name}"] = run_worker(src, part, args, st, demo)
            print(part, name, json.dumps(results[f"{part}_{name}"], default=float), flush=True)
    results["uptime_end"] = os.getloadavg()
    if args.out:
        args.out.write_text(json.dumps(results, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
