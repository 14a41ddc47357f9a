"""Small synthetic datasets and the edits that break them, for the bad-input corpus.

:func:`datasets` writes one phantom dataset (8 mm voxels, 4 slices, every image kind, a TB1map and
2-coil k-space of 4 MESE echoes and the VFA flips) and splits it into one dataset per kind, so a
case indexes a few files only. The edit helpers take the copied dataset root.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np

from qmriprep.synth.dataset import DatasetSpec, write_dataset

ANAT, FMAP = "sub-01/anat", "sub-01/fmap"
KSPACE = "sourcedata/kspace/sub-01/anat"
#: kind -> file-name patterns of the dataset of that kind
GROUPS = {"MESE": ["*_MESE.*"], "MEGRE": ["*_MEGRE.*"], "VFA": ["*_VFA.*"],
          "TB1DAM": ["*_TB1DAM.*"], "TB1AFI": ["*_TB1AFI.*"], "TB1TFL": ["*_TB1TFL.*"],
          "TB1map": ["*_TB1map.*", "*_VFA.*"], "bSSFP": ["*_bSSFP.*"], "DESS": ["*_DESS.*"],
          "kspace": ["*_MESE.*"]}


def datasets(root: Path) -> dict[str, Path]:
    """One small dataset per kind of :data:`GROUPS` under ``root``."""
    full = write_dataset(root / "full", DatasetSpec(
        downsample=8, n_slices=4, modalities=("MESE", "MEGRE", "VFA", "TB1DAM", "TB1AFI", "TB1TFL",
                                              "bSSFP", "DESS"), bssfp_cycles=(4,),
        kspace={"contrasts": ("MESE",), "mese_echoes": 4, "coils": 2, "acceleration": 2}))
    b1 = nib.load(full / "derivatives/truth/sub-01/anat/sub-01_TB1map.nii.gz")
    nib.save(nib.Nifti1Image(np.asarray(b1.dataobj, np.float32) * 100, b1.affine),
             full / FMAP / "sub-01_TB1map.nii.gz")
    write(full / FMAP / "sub-01_TB1map.json", {"Units": "percent"})
    out = {}
    for kind, patterns in GROUPS.items():
        dest = root / kind
        shutil.copytree(full, dest, ignore=shutil.ignore_patterns("derivatives", "sourcedata", "sub-*"))
        for pattern in patterns:
            for src in full.glob(f"sub-01/*/{pattern}"):
                (dest / src.parent.relative_to(full)).mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / src.relative_to(full))
        if kind == "kspace":
            shutil.copytree(full / "sourcedata", dest / "sourcedata")
        out[kind] = dest
    return out


def write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))


def edit_json(path: Path, **changes) -> None:
    """Set (or with None, remove) sidecar fields."""
    meta = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    write(path, meta)


def data(path: Path) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj, dtype=np.float64)


def replace(path: Path, array, affine=None) -> None:
    img = nib.load(path)
    nib.save(nib.Nifti1Image(np.asarray(array, np.float32), img.affine if affine is None else affine), path)


def set_voxels(path: Path, value, fraction: float = 1.0) -> None:
    """The first ``fraction`` of the voxels (C order) set to ``value``."""
    arr = np.ascontiguousarray(data(path))
    flat = arr.reshape(-1)
    flat[: int(round(fraction * flat.size))] = value
    replace(path, arr)


def self_link(path: Path) -> None:
    path.unlink()
    os.symlink(path.name, path)


def rename_label(root: Path, old: str, new: str) -> None:
    """Rename every file and folder whose name contains ``old``."""
    for p in sorted(root.rglob("*"), key=lambda p: -len(p.parts)):
        if old in p.name:
            p.rename(p.with_name(p.name.replace(old, new)))


def kspace_xml(path: Path, pattern: str, repl: str) -> None:
    """Edit the ISMRMRD XML header of a k-space file (first match of ``pattern``)."""
    with h5py.File(path, "r+") as f:
        xml = f["dataset/xml"][0].decode()
        new = re.sub(pattern, repl, xml, count=1)
        assert new != xml, pattern
        del f["dataset/xml"]
        f["dataset"].create_dataset("xml", data=[new.encode()], dtype=h5py.special_dtype(vlen=bytes))


def kspace_data(path: Path, edit) -> None:
    """``edit(acquisitions)`` in place on the acquisitions of a k-space file."""
    with h5py.File(path, "r+") as f:
        acqs = f["dataset/data"][:]
        acqs = edit(acqs)
        del f["dataset/data"]
        f["dataset"].create_dataset("data", data=acqs, maxshape=(None,), dtype=acqs.dtype)
