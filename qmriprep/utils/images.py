"""Load series of NIfTI volumes into arrays and save arrays like a reference image."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np


def load_series(files) -> tuple[np.ndarray, nib.Nifti1Image]:
    """Stack 3D files (or take one 4D file) into ``(x, y, z, n)`` float64; returns data, first image."""
    files = [files] if isinstance(files, (str, os.PathLike)) else list(files)
    imgs = [nib.load(f) for f in files]
    if len(imgs) == 1 and imgs[0].ndim == 4:
        return np.asarray(imgs[0].dataobj, dtype=np.float64), imgs[0]
    data = np.stack([np.asarray(img.dataobj, dtype=np.float64).reshape(img.shape[:3]) for img in imgs], -1)
    return data, imgs[0]


def load_volume(file) -> tuple[np.ndarray, nib.Nifti1Image]:
    """One 3D volume as float64 and its image."""
    img = nib.load(file)
    return np.asarray(img.dataobj, dtype=np.float64).reshape(img.shape[:3]), img


def save_like(data, reference: nib.Nifti1Image, path: str | Path, dtype=np.float32) -> str:
    """Save ``data`` with the reference's affine and header (float32 unless told otherwise)."""
    header = reference.header.copy()
    header.set_data_dtype(dtype)
    img = nib.Nifti1Image(np.asarray(data, dtype=dtype), reference.affine, header)
    img.header.set_xyzt_units("mm")
    path = str(Path(path).absolute())
    nib.save(img, path)
    return path


def optional_volume(file):
    """The 3D volume of an optional Nipype ``File`` input, or None when it was not given."""
    from nipype.interfaces.base import isdefined

    return load_volume(file)[0] if isdefined(file) and file else None


def optional_mask(file):
    """Boolean mask of an optional Nipype ``File`` input (voxels > 0), or None."""
    volume = optional_volume(file)
    return None if volume is None else volume > 0


def finite_copies(files, out_dir) -> dict:
    """Copies of ``files`` (one grid) in ``out_dir`` with every voxel that is NaN or infinite in
    any of them set to 0 in all of them (masked); returns ``{path: copy}``."""
    imgs = [nib.load(f) for f in files]
    bad = None
    for img in imgs:
        data = np.asanyarray(img.dataobj)
        spatial = ~np.isfinite(data).reshape(img.shape[:3] + (-1,)).all(-1)
        bad = spatial if bad is None else bad | spatial
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    copies = {}
    for i, (f, img) in enumerate(zip(files, imgs)):
        data = np.asanyarray(img.dataobj).copy()
        data.reshape(img.shape[:3] + (-1,))[bad] = 0
        path = out_dir / f"{i:03d}_{Path(f).name}"
        nib.Nifti1Image(data, img.affine, img.header).to_filename(str(path))
        copies[Path(f)] = path
    return copies


def off_grid(images) -> int | None:
    """Index of the first of ``images`` (nibabel images or paths) not on the first one's grid
    (shape and affine within 1e-3 mm), or None when all share it."""
    imgs = [nib.load(i) if isinstance(i, (str, os.PathLike)) else i for i in images]
    for k, img in enumerate(imgs[1:], 1):
        if img.shape[:3] != imgs[0].shape[:3] or not np.allclose(img.affine, imgs[0].affine, atol=1e-3):
            return k
    return None
