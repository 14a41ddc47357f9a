"""The files of a synthetic dataset: NIfTI images with their JSON sidecars."""

from __future__ import annotations

import json

import nibabel as nb
import numpy as np


def save_nifti(path, data, affine, meta):
    """Write ``data`` as float32 NIfTI (qform = sform = ``affine``, mm and s) and, unless ``meta``
    is None, its sidecar ``meta`` beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nb.Nifti1Image(np.asarray(data, np.float32), affine)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(affine, 1)
    img.set_sform(affine, 1)
    img.to_filename(path)
    if meta is not None:
        write_json(path.with_name(path.name.replace(".nii.gz", ".json")), meta)


def write_json(path, obj):
    """``obj`` as indented JSON with a final newline (parent folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")
