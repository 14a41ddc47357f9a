"""Accuracy of every qmriprep output map against the synthetic phantom's truth (issue 2).

For each variant below the script writes a synthetic BIDS dataset with
:func:`qmriprep.synth.dataset.write_dataset` (4 mm voxels, 16 central slices, one subject, all
collections: MESE, MEGRE, VFA, TB1DAM, TB1AFI, TB1TFL), runs the ``qmriprep`` command line with
every estimator (``--estimators mese:all megre:all vfa:all``), times it, and compares every map
with the truth in ``<bids>/derivatives/truth`` inside pure grey and pure white matter (truth
``dseg`` label 2 / 3 and ``desc-pure_mask``: one tissue fills > 90 % of the voxel).

Reported per map and tissue: ``n`` voxels, median signed relative error ``est / truth - 1``,
median absolute relative error and its 95th percentile, in percent. Voxels the app left at 0
(outside its mask) count with an error of -100 % (``n0`` says how many; 0 everywhere here).

Grids and units:

- anatomical maps (T2map, T2starmap, T1map, M0map, ``desc-vfa_TB1map``) are on the grid of the
  truth maps and compared voxel by voxel;
- B1+ maps written on their own (fmap) grid (``desc-<dam|afi|tfl>[smooth]_TB1map``) are
  compared with the truth *evaluated analytically on that grid*: the phantom's B1+ field is an
  analytic function of world position (``qmriprep.synth.phantom.Fields``, parameters in
  ``derivatives/truth/sub-01/sub-01_simulation.json``) and the fmap images were simulated from
  it at exactly those voxel centres, so this is the exact truth, with no interpolation. The
  tissue masks on that grid come from the same phantom coarsened the way the simulator does it
  (:meth:`Phantom.coarsen`, partial-volume rule); the script checks that the re-built phantom
  reproduces the stored truth maps and the B1 grid. (Resampling the anatomical truth TB1map
  onto the coarse grid with ``qmriprep.registration.rigid.resample_to`` instead differs from
  the analytic values by the error of linear interpolation of a smooth field: printed as a
  check.)
- TB1map outputs are in percent (sidecar ``Units``), converted to a fraction; the truth is a
  fraction.

Usage (from the repository root, venv active)::

    python benchmarks/accuracy_synthetic.py [--out DIR] [--variants noisefree snr50 ...]
                                            [--nprocs 2] [--json FILE]

Variants (all seed 0, ``downsample=4``, ``n_slices=16``):

``noisefree``        noise-free, B1 on a 2x coarser (8 mm) grid, default options;
``b1fine``           noise-free, ``b1_downsample=1`` (B1 on the 4 mm anatomical grid);
``b1fine_raw``       as ``b1fine`` with ``--b1-fwhm 0 --b1-registration header``: the VFA fit gets
                     the unsmoothed B1 estimate on its own grid, no registration;
``b1fine_exact``     as ``b1fine_raw`` with ``--align-series never`` as well: the VFA fit sees the
                     simulated images and the exact B1+ (TFL is exact): checks the fit alone;
``noisefree_noreg``  as ``noisefree`` with ``--b1-registration header --align-series never``: only
                     the B1+ smoothing (8 mm FWHM) and its interpolation from 8 mm to 4 mm remain;
``snr50``            Rician noise, SNR 50 (per collection, in pure WM of the first volume);
``snr50_b1fine``     as ``snr50`` with ``b1_downsample=1``;
``motion``           noise-free, VFA flip 2 rotated (0, 1, 2) deg and translated (1.5, -1, 0.5) mm.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nb
import numpy as np

VARIANTS = {
    "noisefree": dict(snr=None, b1_downsample=2, cli=[]),
    "b1fine": dict(snr=None, b1_downsample=1, cli=[]),
    "b1fine_raw": dict(snr=None, b1_downsample=1,
                       cli=["--b1-fwhm", "0", "--b1-registration", "header"]),
    "b1fine_exact": dict(snr=None, b1_downsample=1,
                         cli=["--b1-fwhm", "0", "--b1-registration", "header",
                              "--align-series", "never"]),
    "noisefree_noreg": dict(snr=None, b1_downsample=2,
                            cli=["--b1-registration", "header", "--align-series", "never"]),
    "snr50": dict(snr=50, b1_downsample=2, cli=[]),
    "snr50_b1fine": dict(snr=50, b1_downsample=1, cli=[]),
    "motion": dict(snr=None, b1_downsample=2, motion=True, cli=[]),
}
DOWNSAMPLE, N_SLICES, SEED, SUB = 4, 16, 0, "01"
TISSUES = {"GM": 2, "WM": 3}
ESTIMATORS = ["--estimators", "mese:all", "megre:all", "vfa:all"]


# ------------------------------------------------------------------------------ running
def qmriprep_command():
    exe = shutil.which("qmriprep")
    return [exe] if exe else [sys.executable, "-m", "qmriprep.cli.run"]


def run_variant(name, root, nprocs):
    """Write the dataset, run the CLI; returns (bids, out, work, seconds, command)."""
    from qmriprep.synth.dataset import DatasetSpec, write_dataset

    spec = VARIANTS[name]
    base = root / name
    bids, out, work = base / "bids", base / "out", base / "work"
    for d in (out, work):
        shutil.rmtree(d, ignore_errors=True)
    write_dataset(bids, DatasetSpec(snr=spec["snr"], downsample=DOWNSAMPLE, n_slices=N_SLICES,
                                    seed=SEED, b1_downsample=spec["b1_downsample"],
                                    motion=spec.get("motion")), overwrite=True)
    args = [str(bids), str(out), "participant", "-w", str(work),
            "--nprocs", str(nprocs)] + ESTIMATORS + spec["cli"]
    shown = " ".join(["qmriprep", f"{name}/bids", f"{name}/out", "participant", "-w",
                      f"{name}/work", "--nprocs", str(nprocs)] + ESTIMATORS + spec["cli"])
    t0 = time.perf_counter()
    proc = subprocess.run(qmriprep_command() + args, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"{name}: qmriprep exited with {proc.returncode}")
    return bids, out, work, seconds, shown


# ------------------------------------------------------------------------------ truth
def load(path):
    img = nb.load(path)
    return img, np.asanyarray(img.dataobj).astype(np.float64)


def to_fraction(path, data):
    """TB1map outputs: percent -> fraction as the sidecar says."""
    meta = json.loads(Path(str(path).replace(".nii.gz", ".json")).read_text())
    units = str(meta.get("Units", "")).lower()
    return data / 100.0 if units in ("percent", "%") else data


class Truth:
    """Truth maps and tissue masks on the anatomical grid and on the B1 (fmap) grid."""

    def __init__(self, bids, b1_downsample):
        from qmriprep.synth.phantom import make_phantom

        self.dir = bids / "derivatives" / "truth" / f"sub-{SUB}"
        anat = self.dir / "anat"
        self.maps = {s: load(anat / f"sub-{SUB}_{s}.nii.gz")[1]
                     for s in ("T1map", "T2map", "T2starmap", "M0map", "TB1map")}
        self.affine = nb.load(anat / f"sub-{SUB}_M0map.nii.gz").affine
        dseg = load(anat / f"sub-{SUB}_dseg.nii.gz")[1]
        pure = load(anat / f"sub-{SUB}_desc-pure_mask.nii.gz")[1] > 0
        self.masks = {t: pure & (dseg == lab) for t, lab in TISSUES.items()}
        # the same phantom, rebuilt: checked against the stored truth, then coarsened
        ph = make_phantom(downsample=DOWNSAMPLE, n_slices=None, seed=SEED).slab(N_SLICES)
        assert np.allclose(ph.affine, self.affine), "re-built phantom: grid differs"
        assert np.allclose(ph.pd, self.maps["M0map"], atol=1e-6), "re-built phantom: M0 differs"
        assert np.allclose(ph.b1, self.maps["TB1map"], atol=1e-6), "re-built phantom: B1 differs"
        self.coarse = ph.coarsen(b1_downsample)
        sim = json.loads((self.dir / f"sub-{SUB}_simulation.json").read_text())
        assert np.allclose(self.coarse.affine, sim["grid"]["b1"]["affine"], atol=1e-5)
        self.coarse_masks = {t: self.coarse.pure & (self.coarse.labels == lab)
                             for t, lab in TISSUES.items()}

    def b1_on(self, img):
        """Exact B1+ truth at the voxel centres of ``img`` (analytic field)."""
        shape = img.shape[:3]
        ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
        xyz = ijk @ img.affine[:3, :3].T + img.affine[:3, 3]
        return self.coarse.fields.b1(xyz)

    def masks_on(self, img):
        if np.allclose(img.affine, self.affine) and img.shape[:3] == self.maps["M0map"].shape:
            return self.masks
        assert np.allclose(img.affine, self.coarse.affine), "B1 map on an unexpected grid"
        return self.coarse_masks


def truth_for(name):
    """Truth map name for an output file name (None: not compared; nor are fit-quality and SD
    maps, ``desc-<method>RMSE|SD|Match_<suffix>``, nor template-space maps)."""
    suffix = name.split("_")[-1].split(".")[0]
    if re.search(r"desc-[a-zA-Z0-9]*(RMSE|SD|Match)_|_space-", name):
        return None
    return suffix if suffix in ("T1map", "T2map", "T2starmap", "M0map", "TB1map") else None


# ------------------------------------------------------------------------------ statistics
def stats(est, truth, mask):
    e, t = est[mask], truth[mask]
    rel = e / t - 1.0
    a = np.abs(rel)
    return {"n": int(mask.sum()), "n0": int((e == 0).sum()),
            "median": float(np.median(rel)) if rel.size else float("nan"),
            "mae": float(np.median(a)) if a.size else float("nan"),
            "p95": float(np.percentile(a, 95)) if a.size else float("nan")}


def compare(out, truth):
    rows = []
    files = sorted((out / f"sub-{SUB}").glob("*/*.nii.gz"))
    for path in files:
        suffix = truth_for(path.name)
        if suffix is None:
            continue
        img, est = load(path)
        if suffix == "TB1map":
            est = to_fraction(path, est)
        masks = truth.masks_on(img)
        if masks is truth.masks:
            ref = truth.maps[suffix]
        else:  # B1 map on its own grid
            ref = truth.b1_on(img)
        label = path.name.replace(f"sub-{SUB}_", "").replace(".nii.gz", "")
        rows.append({"map": label, **{t: stats(est, ref, m) for t, m in masks.items()}})
    return rows


def interpolation_check(truth, out):
    """|resample_to(anatomical truth TB1map) / analytic - 1| on the B1 grid (pure tissue)."""
    from qmriprep.registration.rigid import resample_to

    fmaps = sorted((out / f"sub-{SUB}" / "fmap").glob("*_TB1map.nii.gz"))
    if not fmaps:
        return None
    ref = nb.load(fmaps[0])
    if np.allclose(ref.affine, truth.affine):
        return None
    anat = nb.Nifti1Image(truth.maps["TB1map"].astype(np.float32), truth.affine)
    res = np.asanyarray(resample_to(anat, ref, order=1).dataobj).astype(np.float64)
    exact = truth.b1_on(ref)
    m = (truth.coarse_masks["GM"] | truth.coarse_masks["WM"]) & (res > 0)
    d = np.abs(res[m] / exact[m] - 1)
    return {"n": int(m.sum()), "median": float(np.median(d)), "max": float(d.max())}


def motion_report(work, truth):
    """Series-alignment transforms found vs the simulated motion: residual displacement over
    the truth brain mask, ``|T x - W x|`` (T: found, fixed -> moving; W: simulated world map)."""
    from qmriprep.registration.itk import load_transform

    sim = json.loads((truth.dir / f"sub-{SUB}_simulation.json").read_text())
    img = nb.load(truth.dir / "anat" / f"sub-{SUB}_desc-brain_mask.nii.gz")
    ijk = np.argwhere(np.asanyarray(img.dataobj) > 0)
    xyz = np.c_[ijk @ img.affine[:3, :3].T + img.affine[:3, 3], np.ones(len(ijk))]
    out = []
    for f in sorted(Path(work).rglob("motion.json")):
        rep = json.loads(f.read_text())
        for key, mot in sim["motion"].items():
            k = int(key.split("flip-")[1].split("_")[0]) - 1
            xfm = next(f.parent.glob(f"*_vol-{k:03d}_xfm.txt"))
            res = np.linalg.norm((xyz @ load_transform(xfm).T - xyz @ np.asarray(
                mot["world_matrix"]).T)[:, :3], axis=1)
            moved = np.linalg.norm((xyz @ np.asarray(mot["world_matrix"]).T - xyz)[:, :3], axis=1)
            rep.setdefault("residual", []).append({
                "volume": key, "simulated": {"rotation": mot["rotation"],
                                             "translation": mot["translation"]},
                "simulated_displacement_mm": {"mean": float(moved.mean()),
                                              "max": float(moved.max())},
                "residual_mm": {"mean": float(res.mean()), "max": float(res.max())}})
        out.append(rep)
    return out


# ------------------------------------------------------------------------------ printing
def pct(x, signed=False):
    if not np.isfinite(x):
        return "n/a"
    v = 100 * x
    return f"{v:+.3f}" if signed else f"{v:.3f}"


def table(rows):
    head = ("| map | GM n | GM median (%) | GM median abs (%) | GM p95 abs (%) "
            "| WM n | WM median (%) | WM median abs (%) | WM p95 abs (%) |")
    lines = [head, "|---|" + "---:|" * 8]
    for r in rows:
        cells = [r["map"]]
        for t in TISSUES:
            s = r[t]
            n = f"{s['n']}" + (f" ({s['n0']} at 0)" if s["n0"] else "")
            cells += [n, pct(s["median"], True), pct(s["mae"]), pct(s["p95"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def describe(name):
    s = VARIANTS[name]
    parts = ["noise-free" if s["snr"] is None else f"SNR {s['snr']}",
             f"B1 grid {DOWNSAMPLE * s['b1_downsample']} mm (b1_downsample={s['b1_downsample']})"]
    if s.get("motion"):
        parts.append("motion=True")
    if s["cli"]:
        parts.append("CLI " + " ".join(s["cli"]))
    return ", ".join(parts)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=None,
                   help="working folder (default: a temporary folder, removed at the end)")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    p.add_argument("--nprocs", type=int, default=2)
    p.add_argument("--json", type=Path, default=None, help="also write all numbers as JSON")
    args = p.parse_args(argv)
    root = args.out or Path(tempfile.mkdtemp(prefix="qmriprep-accuracy-"))
    root.mkdir(parents=True, exist_ok=True)
    results = {}
    try:
        for name in args.variants:
            bids, out, work, seconds, cmd = run_variant(name, root.absolute(), args.nprocs)
            truth = Truth(bids, VARIANTS[name]["b1_downsample"])
            rows = compare(out, truth)
            results[name] = {"description": describe(name), "seconds": seconds,
                             "command": cmd,
                             "rows": rows, "interpolation_check": interpolation_check(truth, out),
                             "motion": (motion_report(work, truth)
                                        if VARIANTS[name].get("motion") else None)}
            print(f"\n### {name}: {describe(name)}\n")
            print(f"CLI wall time {seconds:.1f} s; command: `{results[name]['command']}`\n")
            print(table(rows))
            ic = results[name]["interpolation_check"]
            if ic:
                print(f"\nTruth B1 on the fmap grid: analytic field. Check: linear resampling of "
                      f"the anatomical truth TB1map (resample_to) differs from it by median "
                      f"{100 * ic['median']:.3f} %, max {100 * ic['max']:.3f} % "
                      f"({ic['n']} pure GM/WM voxels of the B1 grid).")
            for rep in results[name]["motion"] or []:
                for r in rep.get("residual", []):
                    sd, rd = r["simulated_displacement_mm"], r["residual_mm"]
                    print(f"\nMotion of {r['volume']}: rotation {r['simulated']['rotation']} deg, "
                          f"translation {r['simulated']['translation']} mm (brain voxels moved "
                          f"{sd['mean']:.2f} mm on average, {sd['max']:.2f} max); after series "
                          f"alignment the residual is {rd['mean']:.2f} mm mean, "
                          f"{rd['max']:.2f} mm max.")
                others = [v for v in rep["volumes"] if v["index"] != rep["reference_index"]]
                print("Transforms found for all volumes (rotation deg, translation mm): "
                      + "; ".join(f"vol {v['index']}: {v['rotation_deg']}, {v['translation_mm']}"
                                  for v in others))
            sys.stdout.flush()
    finally:
        if args.out is None:
            shutil.rmtree(root, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
