"""Maps from weighted images with low-resolution labels (issue 10, seed 002): supervised vs hybrid.

    python benchmarks/bench_hybrid.py WORK_DIR [--subjects 6] [--test 2 | --held-out 01 02] [--slices 32] [--threads 1]
                                      [--edge-weight 0.5] [--epochs N] [--steps N] [--width N]
                                      [--flair] [--label-noise 0.05] [--ensemble N]

1. ``python -m qmriprep.synth`` equivalent: ``--subjects`` phantoms at 1 mm (``--slices`` central
   axial slices, smooth per-subject deformation of 2 mm RMS, SNR 50), MPRAGE T1w + TSE T2w (with
   ``--flair`` also FLAIR, then a third network input), label maps on 3.5 mm slices
   (``derivatives/lowres``; ``--label-noise``: times 1 + that relative noise, as labels fitted from
   noisy data are); the last ``--test`` subjects are held out (or those of ``--held-out``).
2. ``qmriprep-hybrid train`` twice on the training subjects (``--loss supervised`` and ``hybrid``),
   same settings and seed, the two at the same time (``--threads`` each); wall and CPU time of each,
   the load average.
3. Each model applied to each held-out subject (the estimator core, as a run calls it; time).
4. Against the 1 mm truth, inside the brain (truth dseg > 0: a tissue fills most of the voxel): T1 and T2 mean percentage error (MPE),
   and on maps divided by 3 s (as the seed) PSNR, SSIM and HFEN (:mod:`qmriprep.recon.metrics`,
   sagittal planes, the labels' thick axis in-plane); MPE in the edge band (voxels whose 3x3x3
   neighbourhood holds two tissue labels) and inside tissues; the interpolated low-resolution labels
   as the baseline; the % of voxels whose truth lies within +-1 SD of the networks' SD maps
   (``in1SD``; brain, edge band, inside tissues) and of the held-out subject's interpolated labels
   (``in1SD_labels``: what the SD was calibrated on); the % of brain voxels in the out-of-range mask
   (``out_of_range``: an estimate outside the training labels' 0.1-99.9 percentiles).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from qmriprep.estimators.hybrid import fit_weighted
from qmriprep.estimators.names import HYBRID, SUPERVISED
from qmriprep.recon.metrics import hfen, psnr, ssim
from qmriprep.synth.dataset import DatasetSpec, write_dataset


def _args():
    p = argparse.ArgumentParser()
    p.add_argument("work", type=Path)
    p.add_argument("--subjects", type=int, default=6)
    p.add_argument("--test", type=int, default=2)
    p.add_argument("--held-out", nargs="+", default=None, metavar="LABEL",
                   help="held-out subjects (default: the last --test); the others train (cross-validation folds)")
    p.add_argument("--slices", type=int, default=32)
    p.add_argument("--threads", type=int, default=1, help="torch threads of each of the 2 trainings")
    p.add_argument("--edge-weight", type=float, default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--ensemble", type=int, default=None, help="networks per model (qmriprep-hybrid train --ensemble)")
    p.add_argument("--flair", action="store_true", help="FLAIR images too (a third network input)")
    p.add_argument("--label-noise", type=float, default=0.0, help="relative noise of the label maps")
    return p.parse_args()


def _data(args):
    bids = args.work / "bids"
    if not bids.exists():
        t = time.perf_counter()
        write_dataset(bids, DatasetSpec(subjects=tuple(_subjects(args)),
                                        downsample=1, n_slices=args.slices, modalities=("weighted",),
                                        warp_mm=2.0, snr=50.0, label_thickness=3.5, flair=args.flair,
                                        label_noise=args.label_noise))
        print(f"dataset written in {time.perf_counter() - t:.0f} s")
    return bids


def _train(args, bids, loss):
    """Start ``qmriprep-hybrid train`` (``python -m qmriprep.cli.hybrid``); returns (folder, process)."""
    import subprocess
    import sys

    out = args.work / f"model-{loss}"
    if (out / "model.json").exists():
        return out, None
    extra = [f for k, v in (("--edge-weight", args.edge_weight), ("--epochs", args.epochs),
                            ("--steps-per-epoch", args.steps), ("--width", args.width),
                            ("--ensemble", args.ensemble)) if v is not None
             for f in (k, str(v))]
    train = [s for s in _subjects(args) if s not in _held_out(args)]
    cmd = [sys.executable, "-m", "qmriprep.cli.hybrid", "train", str(bids), str(out), "--labels",
           str(bids / "derivatives" / "lowres"), "--participant-label", *train, "--loss", loss,
           "--nthreads", str(args.threads), *extra]
    print(" ".join(cmd[1:]))
    with open(args.work / f"train-{loss}.log", "w") as log:  # the child keeps its own descriptor
        return out, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


def _subjects(args) -> list[str]:
    return [f"{i:02d}" for i in range(1, args.subjects + 1)]


def _held_out(args) -> list[str]:
    return args.held_out or _subjects(args)[-args.test:]


def _load(path):
    return np.asarray(nib.load(path).dataobj, np.float64)


def _metrics(est, truth, mask, band, sd=None):
    """MPE (%), PSNR (dB), SSIM, HFEN on maps / 3 s; MPE in the edge band and inside tissues; with
    an SD map the % of voxels whose truth lies within +-1 SD, in the brain, edge band and inside."""
    rel = np.abs(est - truth) / np.where(mask, truth, 1)
    e, t = est / 3.0, truth / 3.0
    out = {"MPE": 100 * rel[mask].mean(), "PSNR": psnr(e * mask, t * mask, mask),
           "SSIM": ssim(e * mask, t * mask, mask), "HFEN": hfen(e * mask, t * mask, mask),
           "MPE_edge": 100 * rel[mask & band].mean(), "MPE_inside": 100 * rel[mask & ~band].mean()}
    if sd is not None:
        within = np.abs(est - truth) <= sd
        out.update({"in1SD": 100 * within[mask].mean(), "in1SD_edge": 100 * within[mask & band].mean(),
                    "in1SD_inside": 100 * within[mask & ~band].mean()})
    return out


def _evaluate(args, bids, models):
    import torch
    from nibabel.processing import resample_from_to

    torch.set_num_threads(args.threads)
    rows, apply_s = [], []
    for sub in _held_out(args):
        anat, truth = bids / f"sub-{sub}" / "anat", bids / "derivatives" / "truth" / f"sub-{sub}" / "anat"
        ref = nib.load(anat / f"sub-{sub}_T1w.nii.gz")
        labels = _load(truth / f"sub-{sub}_dseg.nii.gz").astype(int)
        mask = labels > 0  # CSF, GM or WM fills most of the voxel
        band = (ndimage.maximum_filter(labels, 3) != ndimage.minimum_filter(labels, 3))
        from qmriprep.bids.weighted import find_weighted

        protocol = find_weighted(bids, sub)[0]["protocol"]
        est = {}
        low = bids / "derivatives" / "lowres" / f"sub-{sub}" / "anat"
        est["interpolated labels"] = {k: np.asarray(resample_from_to(nib.load(low / f"sub-{sub}_{s}.nii.gz"), ref,
                                                                     order=1, mode="nearest").dataobj)
                                      for k, s in (("t1", "T1map"), ("t2", "T2map"))}
        for name, folder in models.items():
            contrasts = json.loads((folder / "model.json").read_text())["Contrasts"]
            series = np.stack([_load(anat / f"sub-{sub}_{c}.nii.gz") for c in contrasts], -1)
            t, c = time.perf_counter(), time.process_time()
            est[name] = fit_weighted(series, protocol, mask=mask, model=str(folder))
            apply_s.append((time.perf_counter() - t, time.process_time() - c))
        for name, maps in est.items():
            for k, s in (("t1", "T1map"), ("t2", "T2map")):
                rows.append({"subject": sub, "method": name, "map": s,
                             **_metrics(np.asarray(maps[k], float), _load(truth / f"sub-{sub}_{s}.nii.gz"), mask,
                                        band, maps.get(f"{k}_sd"))})
                if f"{k}_sd" in maps:  # the SD against what it was calibrated on: this subject's labels
                    near = np.abs(maps[k] - est["interpolated labels"][k]) <= maps[f"{k}_sd"]
                    rows[-1]["in1SD_labels"] = 100 * near[mask].mean()
                    rows[-1]["out_of_range"] = 100 * maps["out_of_range"][mask].mean()
    return rows, apply_s


def _table(rows):
    keys = ("MPE", "PSNR", "SSIM", "HFEN", "MPE_edge", "MPE_inside", "in1SD", "in1SD_edge", "in1SD_inside",
            "in1SD_labels", "out_of_range")
    lines = ["| map | method | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    for m in ("T1map", "T2map"):
        for method in ("interpolated labels", SUPERVISED, HYBRID):
            sel = [r for r in rows if r["map"] == m and r["method"] == method]
            vals = [np.mean([r.get(k, np.nan) for r in sel]) for k in keys]
            lines.append(f"| {m} | {method} | " + " | ".join(f"{v:.4g}" for v in vals) + " |")
    return "\n".join(lines)


def main():
    args = _args()
    args.work.mkdir(parents=True, exist_ok=True)
    bids = _data(args)
    load0, t = os.getloadavg()[0], time.perf_counter()
    started = {loss: _train(args, bids, loss) for loss in (SUPERVISED, HYBRID)}  # in parallel
    models = {}
    for loss, (folder, proc) in started.items():
        assert proc is None or proc.wait() == 0, f"training {loss} failed (see {args.work})"
        models[loss] = folder
        meta = json.loads((folder / "model.json").read_text())
        epochs = "+".join(str(m["epochs"]) for m in meta["members"])
        print(f"{loss}: {epochs} epochs ({meta['stopped']}), {meta['seconds']:.0f} s wall, "
              f"{meta['cpu_seconds']:.0f} s CPU, load average {load0:.1f} -> {os.getloadavg()[0]:.1f}"
              f" (both trainings {time.perf_counter() - t:.0f} s)")
    rows, apply_s = _evaluate(args, bids, models)
    wall, cpu = np.mean(apply_s, axis=0)
    print(f"apply: {wall:.1f} s wall, {cpu:.1f} s CPU per subject and model (mean of {len(apply_s)}, "
          f"{args.threads} thread(s), load average {os.getloadavg()[0]:.1f})")
    print(_table(rows))
    (args.work / "results.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
