"""Tissue classes for the report's per-tissue statistics, from the subject's own T1 map.

Three classes by multi-level Otsu thresholds (scikit-image ``threshold_multiotsu``) of log T1
inside the T1 map's brain mask: WM (shortest T1), GM, CSF (longest). On the demo phantom the
WM class is 87 % white matter and the GM class 98 % grey matter (partial-volume voxels make the
rest). A ``_dseg`` of the derivatives, when there is one, is used instead (it belongs to its
collection; this one is generic). Written to the report's figures folder with a ``_dseg.tsv``
naming the labels, never as a derivative.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nb
import numpy as np

from .analysis import Image

#: labels written (the sMRIPrep order the report assumes: 1 GM, 2 WM, 3 CSF)
LABELS = {1: "GM", 2: "WM", 3: "CSF"}


def classify_t1(t1: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Labels (:data:`LABELS`, 0 outside the mask or where T1 <= 0) from a T1 map in seconds."""
    from skimage.filters import threshold_multiotsu

    inside = mask & np.isfinite(t1) & (t1 > 0)
    labels = np.zeros(t1.shape, np.uint8)
    if inside.sum() < 30:
        return labels
    low, high = np.exp(threshold_multiotsu(np.log(np.clip(t1[inside], 1e-3, 20.0)), classes=3))
    labels[inside & (t1 < low)] = 2
    labels[inside & (t1 >= low) & (t1 < high)] = 1
    labels[inside & (t1 >= high)] = 3
    return labels


def tissue_support(t1_image: Image, mask_path: Path, fig_dir: Path, subject: str) -> Image | None:
    """Classify ``t1_image`` (seconds) within ``mask_path``; the ``_dseg`` as a report support."""
    if str(t1_image.sidecar.get("Units", "s")).lower() not in ("s", "second", "seconds"):
        return None
    img = nb.load(str(t1_image.path))
    t1 = np.asanyarray(img.dataobj).astype(np.float64)
    mask = np.asanyarray(nb.load(str(mask_path)).dataobj) > 0
    if t1.shape != mask.shape:
        return None
    labels = classify_t1(t1, mask)
    if not labels.any():
        return None
    fig_dir.mkdir(parents=True, exist_ok=True)
    path = fig_dir / f"sub-{subject}_dseg.nii.gz"
    nb.Nifti1Image(labels, img.affine).to_filename(path)
    path.with_name(f"sub-{subject}_dseg.tsv").write_text(
        "index\tname\n" + "".join(f"{k}\t{v}\n" for k, v in LABELS.items()))
    return Image(path, {"sub": subject}, "dseg", {"Description": (
        f"GM/WM/CSF by multi-Otsu thresholds of log T1 of {t1_image.path.name}")})


def from_groups(groups, fig_dir: Path, subject: str) -> Image | None:
    """Tissue classes from the first T1 map of an image collection (not k-space) with a mask."""
    for group in groups:
        if group.kind == "kspace" or not group.masks:
            continue
        for image in group.maps:
            if image.suffix == "T1map":
                try:
                    return tissue_support(image, group.masks[0].path, fig_dir, subject)
                except Exception:  # noqa: BLE001 - no tissue classes is not an error
                    return None
    return None
