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
