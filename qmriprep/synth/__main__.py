"""``python -m qmriprep.synth OUT``: write a synthetic qMRI BIDS dataset with its truth maps."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from ..errors import EXIT_USAGE
from . import DEMO
from .bssfp import PARTS
from .dataset import ALL_MODALITIES, MODALITIES, DatasetSpec, write_dataset
from .kspace import DEFAULTS as KSPACE_DEFAULTS
from .kspace import LAYOUTS as KSPACE_LAYOUTS
from .mrf import N_FRAMES


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m qmriprep.synth",
        description="Write a synthetic BIDS dataset (MNI152 brain phantom, 3 T tissue values) "
                    "whose images are qmriprep's signal models of known truth maps "
                    "(derivatives/truth).")
    add = p.add_argument
    add("out_dir", type=Path, help="output folder (must be empty or absent)")
    add("--demo", action="store_true",
        help="the built-in demo dataset (ignores the options below except --overwrite)")
    add("--snr", type=float, default=None,
        help="SNR of the first volume of each collection in white matter; bSSFP: complex noise "
             "0.074 M0_WM / (sqrt(2) SNR) as in seed 003 (default: no noise)")
    add("--downsample", type=int, default=4,
        help="voxel size in mm (integer factor of the 1 mm MNI grid; default 4)")
    add("--slices", type=int, default=None, help="keep this many central axial slices")
    add("--subjects", nargs="+", default=["01"], help="subject labels (default 01)")
    add("--sessions", nargs="*", default=None, help="session labels (default: no session level)")
    add("--seed", type=int, default=0, help="seed of the phantom texture, fields and noise")
    add("--modalities", nargs="+", default=list(MODALITIES), choices=ALL_MODALITIES,
        metavar="MOD", help=f"collections to simulate, of {' '.join(ALL_MODALITIES)} "
                            f"(default: {' '.join(MODALITIES)})")
    add("--bssfp-cycles", nargs="+", type=int, default=[12], metavar="N",
        help="phase cycles of each bSSFP collection, one acq-pc<N> each (default 12)")
    add("--bssfp-parts", choices=list(PARTS), default="magphase",
        help="bSSFP images: part-mag + part-phase (default), part-real + part-imag, or "
             "part-mag only")
    add("--b1-downsample", type=int, default=2,
        help="B1 maps on a grid this many times coarser (default 2)")
    add("--motion", action="store_true", help="move VFA flip 2 rigidly (about 2 mm, 2 deg)")
    add("--kspace", default=None, metavar="MOD[,MOD]",
        help="also write multi-coil raw k-space (ISMRMRD, sourcedata/kspace) of these contrasts, "
             f"of {','.join(KSPACE_LAYOUTS)} (e.g. --kspace MESE,VFA,DESS)")
    add("--acceleration", type=float, default=KSPACE_DEFAULTS["acceleration"],
        help="k-space undersampling factor (default %(default)s)")
    add("--coils", type=int, default=KSPACE_DEFAULTS["coils"],
        help="receive coils of the k-space (default %(default)s)")
    add("--mrf-frames", type=int, default=N_FRAMES, metavar="N",
        help="frames of the MRF series (with --modalities ... MRF; default %(default)s)")
    add("--mrf-undersampling", type=float, default=1.0, metavar="R",
        help="per-frame random undersampling of the MRF series (R > 1: complex, aliased frames)")
    add("--warp-mm", type=float, default=0.0, metavar="MM",
        help="give each subject its own anatomy: smooth random deformation of this RMS (mm)")
    add("--label-thickness", type=float, default=3.5, metavar="MM",
        help="slice thickness of the label maps of --modalities weighted (derivatives/lowres)")
    add("--label-noise", type=float, default=0.0, metavar="FRACTION",
        help="relative Gaussian noise of those label maps (labels fitted from noisy data)")
    add("--flair", action="store_true", help="--modalities weighted with a FLAIR image")
    add("--overwrite", action="store_true", help="replace a previous synthetic dataset")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        out = write_dataset(args.out_dir, DEMO if args.demo else _spec(args), overwrite=args.overwrite)
    except (FileExistsError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    print(summary(out))
    return 0


def _spec(args):
    kspace = None
    if args.kspace:
        kspace = {"contrasts": [c.strip() for c in args.kspace.split(",")],
                  "acceleration": args.acceleration, "coils": args.coils}
    return DatasetSpec(subjects=args.subjects, sessions=args.sessions or None, snr=args.snr,
                       downsample=args.downsample, n_slices=args.slices, seed=args.seed,
                       modalities=args.modalities, b1_downsample=args.b1_downsample,
                       motion=True if args.motion else None, bssfp_cycles=args.bssfp_cycles,
                       bssfp_parts=args.bssfp_parts, kspace=kspace, mrf_frames=args.mrf_frames,
                       mrf_undersampling=args.mrf_undersampling, warp_mm=args.warp_mm,
                       label_thickness=args.label_thickness, label_noise=args.label_noise,
                       flair=args.flair)


def _natural(path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def summary(out):
    """A short description of what was written."""
    import nibabel as nb

    images = sorted((p.relative_to(out) for p in out.rglob("*.nii.gz")
                     if "derivatives" not in p.parts), key=_natural)
    truth = sorted(p.relative_to(out) for p in (out / "derivatives" / "truth").rglob("*.nii.gz"))
    lines = [f"Wrote a synthetic BIDS dataset to {out}"]
    grids = {}
    for p in images:
        img = nb.load(out / p)
        key = (p.parts[-2], img.shape, tuple(round(float(z), 2) for z in img.header.get_zooms()))
        grids.setdefault(key, []).append(p)
    for (dtype, shape, zooms), files in grids.items():
        lines.append(f"  {len(files):3d} {dtype} images, {'x'.join(map(str, shape))} voxels of "
                     f"{'x'.join(map(str, zooms))} mm")
    lines += [f"    {p}" for p in images]
    lines.append(f"  {len(truth)} truth images in {Path('derivatives') / 'truth'}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
