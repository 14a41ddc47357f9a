"""nibabel <-> SimpleITK images and ITK transform files: where RAS and LPS meet.

Conventions (the one place where they are converted):

- **World coordinates** are RAS+ millimetres, as in nibabel affines. ITK works in LPS; the
  flip :data:`LPS` ``= diag(-1, -1, 1)`` is applied only in this package.
- **Data axes**: nibabel arrays are indexed ``[i, j, k]``; SimpleITK arrays ``[k, j, i]``. The
  converters transpose, so voxel ``(i, j, k)`` is the same point on both sides.
- **Transforms** are 4x4 RAS matrices ``T`` that map a point of the *fixed* (reference) space to
  the corresponding point of the *moving* space, ``x_moving = T @ x_fixed``. This is the ITK/ANTs
  "pull" convention: resampling the moving image onto the fixed grid samples it at ``T(x)`` for
  every fixed voxel centre ``x``. Saved with :func:`save_transform`, the file is what
  ``antsApplyTransforms -i moving -r fixed -t xfm.txt`` expects.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from ..utils.files import atomic_write

#: RAS <-> LPS flip (its own inverse)
LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def affine_to_itk(affine):
    """``(origin, spacing, direction)`` in LPS of a RAS voxel-to-world ``affine``."""
    lps = LPS @ np.asarray(affine, dtype=float)
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    return lps[:3, 3].copy(), spacing, lps[:3, :3] / spacing


def itk_to_affine(origin, spacing, direction):
    """RAS voxel-to-world affine of an ITK geometry (inverse of :func:`affine_to_itk`)."""
    lps = np.eye(4)
    lps[:3, :3] = np.reshape(direction, (3, 3)) * np.asarray(spacing, dtype=float)
    lps[:3, 3] = origin
    return LPS @ lps


def nib_to_sitk(img, data=None):
    """SimpleITK image of a 3D nibabel image (``data`` overrides the voxel values, e.g. float32).

    2D data ``(nx, ny)`` is taken as ``(nx, ny, 1)``.
    """
    data = np.asanyarray(img.dataobj) if data is None else np.asarray(data)
    if data.ndim == 2:
        data = data[..., np.newaxis]
    if data.ndim != 3:
        raise ValueError(f"expected a 3D image, got shape {data.shape}")
    if data.dtype == bool:
        data = data.astype(np.uint8)
    simg = sitk.GetImageFromArray(np.ascontiguousarray(data.T))
    origin, spacing, direction = affine_to_itk(img.affine)
    simg.SetOrigin(origin.tolist())
    simg.SetSpacing(spacing.tolist())
    simg.SetDirection(direction.ravel().tolist())
    return simg


def sitk_to_nib(simg):
    """nibabel NIfTI image of a 3D SimpleITK image (inverse of :func:`nib_to_sitk`)."""
    affine = itk_to_affine(simg.GetOrigin(), simg.GetSpacing(), simg.GetDirection())
    return nib.Nifti1Image(sitk.GetArrayFromImage(simg).T, affine)


def transform_to_itk(matrix):
    """ITK (LPS) affine transform of a 4x4 RAS matrix (fixed -> moving points)."""
    lps = LPS @ np.asarray(matrix, dtype=float) @ LPS
    tx = sitk.AffineTransform(3)
    tx.SetMatrix(lps[:3, :3].ravel().tolist())
    tx.SetTranslation(lps[:3, 3].tolist())
    return tx


def itk_lps_matrix(tx, dim=3):
    """Homogeneous LPS matrix of any linear ITK transform (Euler, affine, composite of them)."""
    pts = np.vstack([np.zeros(dim), np.eye(dim), [[10.0, -20.0, 30.0][:dim]]])
    mapped = np.array([tx.TransformPoint(p.tolist()) for p in pts])
    lps = np.eye(dim + 1)
    lps[:dim, dim] = mapped[0]
    lps[:dim, :dim] = (mapped[1 : dim + 1] - mapped[0]).T
    if not np.allclose(lps[:dim, :dim] @ pts[-1] + lps[:dim, dim], mapped[-1], atol=1e-4):
        raise ValueError("not a linear (affine) transform")
    return lps


def save_transform(matrix, path):
    """Write a 4x4 RAS ``matrix`` as an ITK text transform (``AffineTransform_double_3_3``, LPS).

    Readable by ANTs and ITK (and :func:`load_transform`); written atomically
    (:func:`qmriprep.utils.files.atomic_write`). Returns the path.
    """
    path = Path(path)
    if path.suffix not in (".txt", ".tfm"):
        raise ValueError(f"ITK text transforms end in .txt or .tfm, not {path.name}")
    return atomic_write(path, lambda tmp: sitk.WriteTransform(transform_to_itk(matrix), tmp))


def load_transform(path):
    """4x4 RAS matrix (fixed -> moving points) of an ITK/ANTs linear transform file."""
    try:
        return LPS @ itk_lps_matrix(sitk.ReadTransform(str(path))) @ LPS
    except (RuntimeError, ValueError) as err:
        raise InputError(path, f"not a readable linear ITK transform ({err})") from err
