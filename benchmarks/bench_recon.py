"""Accuracy of the k-space reconstructions against the synthetic truth (issue 4, seed 000).

For each acceleration the script writes a synthetic dataset with raw multi-coil k-space
(:func:`qmriprep.synth.write_dataset`, ``kspace={...}``, seed 0, complex Gaussian k-space noise at
``--snr`` in pure WM of the first image), reconstructs every collection with the public functions
of :mod:`qmriprep.recon.pipeline` (``load_collection``, ``coil_maps``, ``reconstruct``:
zero-filled, CG-SENSE, ZSSSL) plus CG-SENSE at several Tikhonov weights
(:func:`qmriprep.recon.sense.cg_sense`, an oracle-tuned baseline) and, with ``--database``,
SSL / SL networks trained on two other synthetic subjects. The fully sampled k-space
(``derivatives/truth/.../kspace``, same noise) coil-combined with its own ESPIRiT maps is the
floor; the noise-free truth images give the fit-model floor of the maps.

Image metrics (:mod:`qmriprep.recon.metrics`), on magnitudes inside the truth brain mask, per
image (echo / flip angle) then averaged over the collection: NRMSE (no scale fitted: ESPIRiT
maps and the simulated coils are both normalised to ``sum |S|^2 = 1``; the least-squares scale
``magnitude_scale_fit`` is reported as ``scale``), SSIM per slice of the 2-D problems.

Maps, median absolute relative error in pure GM / WM (truth ``dseg`` 2 / 3 and
``desc-pure_mask``, as ``benchmarks/accuracy_synthetic.py``): MESE T2 (``fit_monoexp`` varpro,
all echoes), VFA T1 (``fit_vfa`` nlls with the TRUE B1+, fraction on the anatomical grid),
DESS T2 (``fit_qdess`` with the TRUE T1 and B1+, so only the reconstruction error remains).

Usage (repository root, venv active)::

    python benchmarks/bench_recon.py --contrasts MESE,VFA,DESS --accelerations 4,8,12 \\
        --downsample 2 --n-slices 16 --preset fast --out results.json [--database]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nb
import numpy as np
import torch

from qmriprep.bids.protocols import DESSProtocol
from qmriprep.errors import InputError
from qmriprep.fit.despot1 import fit_vfa
from qmriprep.fit.monoexp import fit_monoexp
from qmriprep.fit.qdess import fit_qdess
from qmriprep.recon import metrics
from qmriprep.recon import pipeline as rp
from qmriprep.recon.sense import cg_sense
from qmriprep.recon.zsssl import ReconSettings, reconstruct as infer, train_sl, train_ssl
from qmriprep.synth import DatasetSpec, write_dataset
from qmriprep.synth.kspace import DESS_PROTOCOL

SEED, SUB = 0, "01"
TISSUES = {"GM": 2, "WM": 3}
LAMBDAS = (0.0, 1e-3, 1e-2, 3e-2, 1e-1)
TRAIN_SUBJECTS = ("02", "03")


# ------------------------------------------------------------------------------ data
def make_dataset(root: Path, contrasts, r, args, subjects=(SUB,)) -> Path:
    return write_dataset(root, DatasetSpec(subjects=subjects, snr=args.snr, downsample=args.downsample,
                                           n_slices=args.n_slices, seed=SEED, modalities=("TB1TFL",),
                                           kspace={"contrasts": contrasts, "acceleration": r}),
                         overwrite=True)


def kspace_files(bids: Path, contrast: str, sub: str = SUB, full: bool = False) -> list[Path]:
    if full:
        folder = bids / "derivatives" / "truth" / f"sub-{sub}" / "kspace"
        pattern = f"sub-{sub}_rec-fullysampled_*_{contrast}.h5"
    else:
        folder, pattern = bids / "sourcedata" / "kspace" / f"sub-{sub}" / "anat", f"*_{contrast}.h5"
    return sorted(folder.glob(pattern), key=lambda p: _index(p.name))


def _index(name: str) -> int:
    """Echo / flip index of a file name (``echo-10`` after ``echo-9``)."""
    part = next(p for p in name.split("_") if p.startswith(("echo-", "flip-")))
    return int(part.split("-")[1])


def load(path) -> np.ndarray:
    return np.asanyarray(nb.load(path).dataobj).astype(np.float64)


class Truth:
    """Truth images (per contrast, volumes ``(X, Y, Z, C)``), maps and masks of one subject."""

    def __init__(self, bids: Path, sub: str = SUB):
        d = bids / "derivatives" / "truth" / f"sub-{sub}" / "anat"
        self.dir = d
        self.maps = {s: load(d / f"sub-{sub}_{s}.nii.gz") for s in ("T1map", "T2map", "TB1map")}
        self.brain = load(d / f"sub-{sub}_desc-brain_mask.nii.gz") > 0
        dseg, pure = load(d / f"sub-{sub}_dseg.nii.gz"), load(d / f"sub-{sub}_desc-pure_mask.nii.gz") > 0
        self.tissue = {t: pure & (dseg == lab) for t, lab in TISSUES.items()}

    def images(self, contrast: str, sub: str = SUB) -> np.ndarray:
        files = sorted(self.dir.glob(f"sub-{sub}_rec-truth_*_{contrast}.nii.gz"),
                       key=lambda p: _index(p.name))
        return np.stack([load(f) for f in files], -1)


def volumes(images: np.ndarray, col) -> np.ndarray:
    """Recon images ``(S, C, H, W)`` -> magnitude volumes ``(X, Y, Z, C)``."""
    return np.stack([np.abs(s.to_volume(images[:, c])) for c, s in enumerate(col.scans)], -1)


def to_problems(vol: np.ndarray, layout: str) -> np.ndarray:
    """A volume ``(X, Y, Z)`` as the scan's 2-D problems ``(S, H, W)`` (inverse of to_volume)."""
    return vol if layout == "3d" else vol.transpose(2, 1, 0)


# ------------------------------------------------------------------------------ metrics
def image_metrics(vols: np.ndarray, truth: np.ndarray, brain: np.ndarray, layout: str) -> dict:
    """NRMSE, SSIM (2-D problems) and fitted scale per image, averaged over the contrasts."""
    n, s, a = [], [], []
    for c in range(truth.shape[-1]):
        x, ref = to_problems(vols[..., c], layout), to_problems(truth[..., c], layout)
        m = to_problems(brain, layout)
        n.append(metrics.nrmse(x, ref, m))
        s.append(metrics.ssim(x, ref, m))
        a.append(metrics.magnitude_scale_fit(x, ref, m))
    return {"nrmse": float(np.mean(n)), "ssim": float(np.mean(s)), "scale": float(np.mean(a)),
            "nrmse_per_image": [round(v, 5) for v in n]}


def fit_map(contrast: str, vols: np.ndarray, scans, truth: Truth) -> np.ndarray:
    """The quantitative map (s) of one collection's magnitude volumes ``(X, Y, Z, C)``."""
    meta = [s.metadata for s in scans]
    if contrast == "MESE":
        te = np.array([m["EchoTime"] for m in meta], float)
        return fit_monoexp(vols, te, method="varpro", mask=truth.brain)["t2"]
    if contrast == "VFA":
        fa = np.deg2rad([m["FlipAngle"] for m in meta])
        return fit_vfa(vols, fa, meta[0]["RepetitionTimeExcitation"], b1=truth.maps["TB1map"],
                       method="nlls", mask=truth.brain)["t1"]
    p = {**DESS_PROTOCOL, **meta[0]}
    te = p["EchoTime"][0] if isinstance(p["EchoTime"], list) else p["EchoTime"]
    tr = p["RepetitionTimeExcitation"]
    protocol = DESSProtocol((te, 2 * tr - te), tr, np.deg2rad(p["FlipAngle"]),
                            p["SpoilerGradientAmplitude"], p["SpoilerGradientDuration"])
    return fit_qdess(vols[..., 0], vols[..., 1], protocol, t1=truth.maps["T1map"],
                     b1=truth.maps["TB1map"], mask=truth.brain)["t2"]


def map_errors(contrast: str, qmap: np.ndarray, truth: Truth) -> dict:
    """Median absolute relative error per pure tissue (voxels at 0 count as -100 %)."""
    ref = truth.maps["T1map" if contrast == "VFA" else "T2map"]
    return {t: float(np.median(np.abs(qmap[m] / ref[m] - 1))) for t, m in truth.tissue.items()}


def evaluate(contrast, images, col, truth, timg) -> dict:
    vols = volumes(images, col)
    qmap = fit_map(contrast, vols, col.scans, truth)
    return {**image_metrics(vols, timg, truth.brain, col.scans[0].layout),
            "map": map_errors(contrast, qmap, truth)}


# ------------------------------------------------------------------------------ reconstructions
def settings_for(args) -> ReconSettings:
    over = {k: v for k, v in (("max_epochs", args.epochs), ("steps_per_epoch", args.steps),
                              ("patience", args.patience)) if v is not None}
    return ReconSettings(**{**rp.PRESETS[args.preset], **over})


def lambda_sweep(col, maps) -> dict:
    y, s, m = (torch.from_numpy(np.ascontiguousarray(a)) for a in (col.y, maps, col.mask))
    with torch.no_grad():
        return {lam: cg_sense(y, s, m, lam=lam, max_iter=rp.CGSENSE_ITER).numpy() for lam in LAMBDAS}


def run_collection(contrast, bids, r, args, truth, timg, log) -> list[dict]:
    """All reconstructions of one collection (sub-01) at acceleration ``r``."""
    col = rp.load_collection(kspace_files(bids, contrast))
    rows = []
    base = {"contrast": contrast, "R": r, "R_achieved": round(float(np.mean(col.acceleration)), 2)}
    try:
        t0 = time.perf_counter()
        maps = rp.coil_maps(col)
        t_maps = time.perf_counter() - t0
    except InputError as exc:
        log(f"{contrast} R={r}: {exc}")
        return [{**base, "method": "all", "error": str(exc)}]
    for method in ("zerofilled", "cgsense"):
        images, info = rp.reconstruct(col, maps, method)
        rows.append({**base, "method": method, "seconds": info["ReconstructionSeconds"],
                     **evaluate(contrast, images, col, truth, timg)})
    for lam, images in lambda_sweep(col, maps).items():
        rows.append({**base, "method": f"cgsense lam={lam:g}",
                     **evaluate(contrast, images, col, truth, timg)})
    if "zsssl" in args.methods:
        images, info = rp.reconstruct(col, maps, "zsssl", settings=settings_for(args))
        rows.append({**base, "method": "zsssl", "seconds": info["ReconstructionSeconds"],
                     "training_seconds": info["TrainingSeconds"], "epochs": info["EpochsRun"],
                     "best_epoch": info["BestEpoch"], **evaluate(contrast, images, col, truth, timg)})
    rows[0]["coil_map_seconds"] = round(t_maps, 2)
    return rows


def run_floor(contrast, bids, truth, timg) -> list[dict]:
    """Fully sampled k-space (ESPIRiT of its own centre) and the noise-free truth images."""
    col = rp.load_collection(kspace_files(bids, contrast, full=True))
    images, _ = rp.reconstruct(col, rp.coil_maps(col), "zerofilled")
    out = [{"contrast": contrast, "R": 1, "method": "fully sampled",
            **evaluate(contrast, images, col, truth, timg)}]
    qmap = fit_map(contrast, timg, col.scans, truth)
    out.append({"contrast": contrast, "R": 1, "method": "truth images (fit floor)",
                "nrmse": 0.0, "ssim": 1.0, "map": map_errors(contrast, qmap, truth)})
    return out


def run_database(contrast, r, root, bids, args, truth, timg, log) -> list[dict]:
    """SSL (undersampled) and SL (fully sampled truth) on subjects 02 and 03, applied to 01."""
    train_bids = make_dataset(root / f"train_{contrast}_R{r:g}", (contrast,), r, args,
                              subjects=TRAIN_SUBJECTS)
    under, sup = [], []
    for sub in TRAIN_SUBJECTS:
        col = rp.load_collection(kspace_files(train_bids, contrast, sub))
        maps = rp.coil_maps(col)
        full = rp.load_collection(kspace_files(train_bids, contrast, sub, full=True))
        x_ref, _ = rp.reconstruct(full, maps, "zerofilled")  # fully sampled, the same maps
        under.append((col.y, maps, col.mask))
        sup.append((col.y, maps, col.mask, x_ref))
    col = rp.load_collection(kspace_files(bids, contrast))
    maps = rp.coil_maps(col)
    rows = []
    for name, train, data in (("ssl", train_ssl, under), ("sl", train_sl, sup)):
        t0 = time.perf_counter()
        model, hist = train(data[:1], settings_for(args), val_dataset=data[1:])
        images = infer(model, col.y, maps, col.mask)
        rows.append({"contrast": contrast, "R": r, "method": f"{name} (train sub-02, val sub-03)",
                     "training_seconds": round(hist["seconds"], 1), "epochs": hist["epochs"],
                     "seconds": round(time.perf_counter() - t0, 1),
                     **evaluate(contrast, images, col, truth, timg)})
        log(f"{contrast} R={r:g} {name}: nrmse {rows[-1]['nrmse']:.4f}")
    return rows


# ------------------------------------------------------------------------------ output
def table(rows) -> str:
    lines = ["| contrast | R | method | NRMSE | SSIM | scale | map err GM (%) | map err WM (%) | s (train) |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['contrast']} | {r['R']:g} | {r['method']} | {r['error']} |||||")
            continue
        sec = "" if "seconds" not in r else f"{r['seconds']:.1f}"
        if "training_seconds" in r:
            sec += f" ({r['training_seconds']:.0f}, {r['epochs']} ep)"
        scale = f"{r['scale']:.3f}" if "scale" in r else ""
        lines.append(f"| {r['contrast']} | {r['R']:g} | {r['method']} | {r['nrmse']:.4f} | "
                     f"{r['ssim']:.4f} | {scale} | {100 * r['map']['GM']:.2f} | "
                     f"{100 * r['map']['WM']:.2f} | {sec} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--contrasts", default="MESE,VFA,DESS")
    p.add_argument("--accelerations", default="4,8,12")
    p.add_argument("--downsample", type=int, default=2)
    p.add_argument("--n-slices", type=int, default=16)
    p.add_argument("--snr", type=float, default=50.0)
    p.add_argument("--preset", default="fast", choices=list(rp.PRESETS))
    p.add_argument("--epochs", type=int, default=None, help="max_epochs override")
    p.add_argument("--steps", type=int, default=None, help="steps_per_epoch override")
    p.add_argument("--patience", type=int, default=None)
    p.add_argument("--methods", default="zsssl", help="'zsssl' or 'none' (baselines only)")
    p.add_argument("--database", action="store_true", help="also SSL / SL (2 other subjects)")
    p.add_argument("--database-r", type=float, default=8.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work", type=Path, default=None, help="dataset folder (default: temporary)")
    p.add_argument("--out", type=Path, default=None, help="JSON results")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    contrasts = args.contrasts.split(",")
    accels = [float(a) for a in args.accelerations.split(",")]
    root = args.work or Path(tempfile.mkdtemp(prefix="qmriprep-bench-recon-"))

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    rows = []
    for i, r in enumerate(accels):
        bids = make_dataset(root / f"R{r:g}", contrasts, r, args)
        truth = Truth(bids)
        for contrast in contrasts:
            timg = truth.images(contrast)
            if i == 0:
                rows += run_floor(contrast, bids, truth, timg)
            rows += run_collection(contrast, bids, r, args, truth, timg, log)
            if args.database and r == args.database_r:
                rows += run_database(contrast, r, root, bids, args, truth, timg, log)
            log(table([x for x in rows if x["contrast"] == contrast and x["R"] in (1, r)]))
    order = {c: i for i, c in enumerate(contrasts)}
    rows.sort(key=lambda x: (order[x["contrast"]], x["R"]))
    print(table(rows))
    if args.out:
        cfg = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        args.out.write_text(json.dumps({"settings": cfg, "zsssl": settings_for(args).as_dict(),
                                        "cgsense_lambda_default": rp.CGSENSE_LAMBDA,
                                        "torch_threads": torch.get_num_threads(), "rows": rows},
                                       indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
