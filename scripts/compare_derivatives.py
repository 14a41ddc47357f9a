#!/usr/bin/env python3
"""Compare two qmriprep output folders: are the derivatives the same?

    python scripts/compare_derivatives.py BEFORE AFTER [--ignore-key KEY ...] [--atol 0]

Every NIfTI present in both is compared voxel by voxel (and its affine); every JSON sidecar key by
key, except keys that hold run times or run ids (``*Seconds``, ``*_seconds``, ``cpu_seconds``) and
those given with ``--ignore-key``. Reports, figures, logs and crash files are not compared (they
hold dates and run ids). Prints one line per difference and a summary; exits 1 if anything
differs or a derivative exists on one side only.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

#: keys whose values change from run to run (timings)
VOLATILE = re.compile(r"(Seconds|_seconds)$")
SKIP_PARTS = {"figures", "log", "logs"}


def derivatives(root: Path) -> set[str]:
    """Relative paths of the derivative files (maps, masks, sidecars, models) under ``root``."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.is_file() and p.name.startswith("sub-") and not SKIP_PARTS & set(p.relative_to(root).parts)
            and not p.name.endswith(".html")}


def _strip(value, ignore: set[str]):
    if isinstance(value, dict):
        return {k: _strip(v, ignore) for k, v in value.items() if k not in ignore and not VOLATILE.search(k)}
    if isinstance(value, list):
        return [_strip(v, ignore) for v in value]
    return value


def compare_json(a: Path, b: Path, ignore: set[str]) -> list[str]:
    da, db = (_strip(json.loads(p.read_text()), ignore) for p in (a, b))
    keys = sorted(set(da) | set(db))
    return [f"{k}: {da.get(k, '<missing>')!r} != {db.get(k, '<missing>')!r}" for k in keys
            if da.get(k, "<missing>") != db.get(k, "<missing>")]


def compare_nifti(a: Path, b: Path, atol: float) -> list[str]:
    ia, ib = nib.load(a), nib.load(b)
    out = []
    if not np.allclose(ia.affine, ib.affine, atol=1e-6):
        out.append("affines differ")
    xa, xb = np.asanyarray(ia.dataobj), np.asanyarray(ib.dataobj)
    if xa.shape != xb.shape or xa.dtype != xb.dtype:
        return out + [f"shape/dtype {xa.shape} {xa.dtype} != {xb.shape} {xb.dtype}"]
    diff = np.abs(xa.astype(np.float64) - xb.astype(np.float64))
    if np.nanmax(diff, initial=0) > atol or not np.array_equal(np.isnan(xa), np.isnan(xb)):
        out.append(f"{int((diff > atol).sum())} voxels differ, max |difference| {np.nanmax(diff):.3g}")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--ignore-key", action="append", default=[], help="sidecar key not compared")
    parser.add_argument("--atol", type=float, default=0.0, help="tolerated absolute voxel difference")
    args = parser.parse_args(argv)
    fa, fb = derivatives(args.before), derivatives(args.after)
    problems = [f"only in {args.before}: {f}" for f in sorted(fa - fb)]
    problems += [f"only in {args.after}: {f}" for f in sorted(fb - fa)]
    compared = 0
    for rel in sorted(fa & fb):
        a, b = args.before / rel, args.after / rel
        if rel.endswith(".json"):
            found = compare_json(a, b, set(args.ignore_key))
        elif rel.endswith((".nii", ".nii.gz")):
            found = compare_nifti(a, b, args.atol)
        else:
            found = [] if a.read_bytes() == b.read_bytes() else ["contents differ"]
        compared += 1
        problems += [f"{rel}: {p}" for p in found]
    print("\n".join(problems))
    print(f"{compared} files compared, {len(fa ^ fb)} on one side only, {len(problems)} differences")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
