"""Tiny BIDS trees for the tests of ``qmriprep.bids`` (a few 4x4x3 NIfTI files and sidecars).

>>> root = write_dataset(tmp_path, {
...     bids_name("01", "MESE", echo=1): {"EchoTime": 0.01},
...     bids_name("01", "MESE", echo=2): {"EchoTime": 0.02},
... }, extra={"MESE.json": {"RepetitionTime": 2.0}})
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nb
import numpy as np

SHAPE = (4, 4, 3)
#: BIDS entity order in file names
_ORDER = ("ses", "task", "acq", "ce", "rec", "dir", "run", "mt", "inv", "flip", "echo", "part")
_FMAP = {"TB1map", "TB1DAM", "TB1AFI", "TB1TFL"}


def bids_name(sub: str, suffix: str, *, datatype: str | None = None, **entities) -> str:
    """``sub-01/[ses-1/]anat/sub-01_[ses-1_]..._<suffix>`` (no extension); fmap for TB1*."""
    datatype = datatype or ("fmap" if suffix in _FMAP else "anat")
    ents = [("sub", sub)] + [(k, entities[k]) for k in _ORDER if entities.get(k) is not None]
    ents += [(k, v) for k, v in entities.items() if k not in _ORDER and v is not None]
    stem = "_".join(f"{k}-{v}" for k, v in ents) + f"_{suffix}"
    folder = f"sub-{sub}/" + (f"ses-{entities['ses']}/" if entities.get("ses") else "") + datatype
    return f"{folder}/{stem}"


def write_nifti(path: str | Path, data: np.ndarray | None = None, *, shape=SHAPE,
                affine: np.ndarray | None = None) -> Path:
    """A float32 NIfTI; default data are 1..N (no zeros, no NaN)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if data is None:
        data = np.arange(1, int(np.prod(shape)) + 1, dtype=np.float32).reshape(shape)
    nb.Nifti1Image(np.asarray(data, dtype=np.float32), np.eye(4) if affine is None else affine
                   ).to_filename(str(path))
    return path


def write_json(path: str | Path, obj) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


def write_dataset(root: str | Path, images: dict[str, dict | None], *, extra: dict | None = None,
                  shape=SHAPE, ext: str = ".nii.gz") -> Path:
    """Write ``dataset_description.json``, an image per ``images`` key (its sidecar from the
    value unless ``None``) and ``extra`` files (path relative to root -> JSON object or text)."""
    root = Path(root)
    write_json(root / "dataset_description.json", {"Name": "tiny", "BIDSVersion": "1.9.0"})
    for stem, sidecar in images.items():
        write_nifti(root / f"{stem}{ext}", shape=shape)
        if sidecar is not None:
            write_json(root / f"{stem}.json", sidecar)
    for rel, content in (extra or {}).items():
        if rel.endswith(".json") or not isinstance(content, str):
            write_json(root / rel, content)
        else:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(content)
    return root


def mese(sub="01", tes=(0.01, 0.02, 0.03), **entities) -> dict:
    return {bids_name(sub, "MESE", echo=i + 1, **entities): {"EchoTime": te}
            for i, te in enumerate(tes)}


def megre(sub="01", tes=(0.003, 0.006, 0.009), **entities) -> dict:
    return {bids_name(sub, "MEGRE", echo=i + 1, **entities): {"EchoTime": te}
            for i, te in enumerate(tes)}


def vfa(sub="01", flips=(3, 15), tr=0.015, **entities) -> dict:
    return {bids_name(sub, "VFA", flip=i + 1, **entities):
            {"FlipAngle": fa, **({"RepetitionTimeExcitation": tr} if tr else {})}
            for i, fa in enumerate(flips)}


def dam(sub="01", angle=60, **entities) -> dict:
    return {bids_name(sub, "TB1DAM", flip=i + 1, **entities): {"FlipAngle": a}
            for i, a in enumerate((angle, 2 * angle))}


def afi(sub="01", tr1=0.02, tr2=0.1, angle=60, **entities) -> dict:
    acq = entities.pop("acq", "")
    return {bids_name(sub, "TB1AFI", acq=f"{acq}tr{i + 1}", **entities):
            {"FlipAngle": angle, "RepetitionTimeExcitation": tr} for i, tr in enumerate((tr1, tr2))}


def tfl(sub="01", angle=8, **entities) -> dict:
    return {bids_name(sub, "TB1TFL", acq="anat", **entities): {"FlipAngle": angle},
            bids_name(sub, "TB1TFL", acq="famp", **entities): {"FlipAngle": angle}}


def b1map(sub="01", units="percent", **entities) -> dict:
    return {bids_name(sub, "TB1map", **entities): {"Units": units}}
