"""Voxel arrays reordered to the closest RAS axes of their affine, and back.

Networks that work on slices (the weighted-image U-Net: sagittal planes, axis 0) must see the same
anatomical planes whatever order a scanner or converter stored the voxels in. ``to_ras`` permutes
and flips the three spatial axes (nibabel ``io_orientation``; no resampling), ``from_ras`` undoes
it exactly; later axes (contrasts, channels) are carried along. A degenerate affine keeps the
stored order.
"""

from __future__ import annotations

import nibabel as nb
import numpy as np


def ras_orientation(affine) -> np.ndarray | None:
    """nibabel orientation (3 x 2) taking the stored voxel axes to RAS, or None if degenerate."""
    try:
        ornt = nb.orientations.io_orientation(np.asarray(affine, float))
    except Exception:  # noqa: BLE001 - a singular or non-finite affine
        return None
    return ornt if np.isfinite(ornt).all() else None


def to_ras(array: np.ndarray, affine) -> np.ndarray:
    """``array`` (X, Y, Z, ...) with its spatial axes in RAS order."""
    ornt = ras_orientation(affine)
    return array if ornt is None else nb.orientations.apply_orientation(array, ornt)


def from_ras(array: np.ndarray, affine) -> np.ndarray:
    """The inverse of :func:`to_ras` for the same ``affine``."""
    ornt = ras_orientation(affine)
    if ornt is None:
        return array
    back = nb.orientations.ornt_transform(nb.orientations.axcodes2ornt(("R", "A", "S")), ornt)
    return nb.orientations.apply_orientation(array, back)


def ras_zooms(zooms, affine) -> tuple[float, ...]:
    """Voxel sizes (mm) of the three spatial axes in RAS order."""
    zooms = [float(z) for z in zooms[:3]]
    ornt = ras_orientation(affine)
    if ornt is None:
        return tuple(zooms)
    out = [1.0] * 3
    for old, (new, _) in enumerate(ornt):
        out[int(new)] = zooms[old]
    return tuple(out)


def ras_voxel_size(affine) -> tuple[float, ...]:
    """Voxel sizes (mm) of ``affine``'s three spatial axes in RAS order."""
    return ras_zooms(nb.affines.voxel_sizes(np.asarray(affine, float)), affine)
