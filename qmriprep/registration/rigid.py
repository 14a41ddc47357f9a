"""Rigid registration and resampling of nibabel images, with SimpleITK inside.

Conventions (the one place where they are converted):

- **World coordinates** are RAS+ millimetres, as in nibabel affines. ITK works in LPS; the
  flip ``diag(-1, -1, 1)`` is applied only in this module.
- **Data axes**: nibabel arrays are indexed ``[i, j, k]``; SimpleITK arrays ``[k, j, i]``. The
  converters transpose, so voxel ``(i, j, k)`` is the same point on both sides.
- **Transforms** are 4x4 RAS matrices ``T`` that map a point of the *fixed* (reference) space to
  the corresponding point of the *moving* space, ``x_moving = T @ x_fixed``. This is the ITK/ANTs
  "pull" convention: resampling the moving image onto the fixed grid samples it at ``T(x)`` for
  every fixed voxel centre ``x``. Saved with :func:`save_transform`, the file is what
  ``antsApplyTransforms -i moving -r fixed -t xfm.txt`` expects.

Registration starts from the scanner's world coordinates (images of one session share them);
the rotation centre is the centre of the fixed field of view. It works in the fixed image's own
axis frame, so an image with one axis of fewer than 4 voxels (a single slice, ``(nx, ny, 1)``)
is registered in-plane (rotation about that axis, translation within the plane) and one with two
such axes is left at identity, each with a logged warning.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from ..errors import InputError

LOGGER = logging.getLogger(__name__)

#: RAS <-> LPS flip (its own inverse)
_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
_INTERPOLATORS = {0: sitk.sitkNearestNeighbor, 1: sitk.sitkLinear, 3: sitk.sitkBSpline}
#: fewest voxels along an axis for it to take part in registration
_MIN_AXIS = 4
#: above this many fixed voxels per level, the metric uses a random (seeded) subset
_MAX_SAMPLES = 60_000


# ---------------------------------------------------------------- nibabel <-> SimpleITK
def affine_to_itk(affine):
    """``(origin, spacing, direction)`` in LPS of a RAS voxel-to-world ``affine``."""
    lps = _LPS @ np.asarray(affine, dtype=float)
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    return lps[:3, 3].copy(), spacing, lps[:3, :3] / spacing


def itk_to_affine(origin, spacing, direction):
    """RAS voxel-to-world affine of an ITK geometry (inverse of :func:`affine_to_itk`)."""
    lps = np.eye(4)
    lps[:3, :3] = np.reshape(direction, (3, 3)) * np.asarray(spacing, dtype=float)
    lps[:3, 3] = origin
    return _LPS @ lps


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


# ---------------------------------------------------------------- transforms
def _to_itk(matrix):
    """ITK (LPS) affine transform of a 4x4 RAS matrix."""
    lps = _LPS @ np.asarray(matrix, dtype=float) @ _LPS
    tx = sitk.AffineTransform(3)
    tx.SetMatrix(lps[:3, :3].ravel().tolist())
    tx.SetTranslation(lps[:3, 3].tolist())
    return tx


def _itk_lps(tx):
    """4x4 LPS matrix of any linear ITK transform (Euler, versor, affine, composite of them)."""
    pts = np.vstack([np.zeros(3), np.eye(3), [[10.0, -20.0, 30.0]]])
    mapped = np.array([tx.TransformPoint(p.tolist()) for p in pts])
    lps = np.eye(4)
    lps[:3, 3] = mapped[0]
    lps[:3, :3] = (mapped[1:4] - mapped[0]).T
    if not np.allclose(lps[:3, :3] @ pts[4] + lps[:3, 3], mapped[4], atol=1e-4):
        raise ValueError("not a linear (affine) transform")
    return lps


def _from_itk(tx):
    """4x4 RAS matrix of a linear ITK transform."""
    return _LPS @ _itk_lps(tx) @ _LPS


def save_transform(matrix, path):
    """Write a 4x4 RAS ``matrix`` as an ITK text transform (``AffineTransform_double_3_3``, LPS).

    Readable by ANTs and ITK (and :func:`load_transform`). Written to a temporary file first,
    then renamed. Returns the path.
    """
    path = Path(path)
    if path.suffix not in (".txt", ".tfm"):
        raise ValueError(f"ITK text transforms end in .txt or .tfm, not {path.name}")
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    sitk.WriteTransform(_to_itk(matrix), str(tmp))
    os.replace(tmp, path)
    return path


def load_transform(path):
    """4x4 RAS matrix (fixed -> moving points) of an ITK/ANTs linear transform file."""
    try:
        return _from_itk(sitk.ReadTransform(str(path)))
    except (RuntimeError, ValueError) as err:
        raise InputError(path, f"not a readable linear ITK transform ({err})") from err


def motion_parameters(matrix, *, center=None):
    """Translation (mm) and rotation (deg) of a rigid 4x4 RAS ``matrix``, for reports.

    ``translation_mm`` is the displacement of ``center`` (RAS mm; default: the world origin,
    i.e. the matrix's translation column). ``rotation_deg`` holds the angles about the RAS x, y
    and z axes of ``R = Rz @ Ry @ Rx``. Both describe the fixed -> moving mapping.
    """
    m = np.asarray(matrix, dtype=float)
    u, _, vt = np.linalg.svd(m[:3, :3])
    rot = u @ vt
    c = np.zeros(3) if center is None else np.asarray(center, dtype=float)
    translation = m[:3, :3] @ c + m[:3, 3] - c
    angles = np.array(
        [
            np.arctan2(rot[2, 1], rot[2, 2]),
            -np.arcsin(np.clip(rot[2, 0], -1.0, 1.0)),
            np.arctan2(rot[1, 0], rot[0, 0]),
        ]
    )
    return translation, np.degrees(angles)


def rotation_angle_deg(matrix):
    """Total rotation angle (axis-angle magnitude, degrees) of a rigid 4x4 matrix."""
    rot = np.asarray(matrix, dtype=float)[:3, :3]
    return float(np.degrees(np.arccos(np.clip((np.trace(rot) - 1.0) / 2.0, -1.0, 1.0))))


def image_center(img):
    """World (RAS) position of the centre of an image's field of view."""
    ijk = (np.asarray(img.shape[:3], dtype=float) - 1.0) / 2.0
    return nib.affines.apply_affine(img.affine, ijk)


# ---------------------------------------------------------------- registration
def _in_frame(simg, rot):
    """The same image expressed in the frame whose axes are the columns of ``rot`` (LPS)."""
    out = sitk.Image(simg)
    out.SetOrigin((rot.T @ np.asarray(simg.GetOrigin())).tolist())
    out.SetDirection((rot.T @ np.reshape(simg.GetDirection(), (3, 3))).ravel().tolist())
    return out


def _shrink_levels(sizes, shrink):
    """Multi-resolution factors, dropping levels that leave fewer than 4 voxels on an axis."""
    shrink = (4, 2, 1) if shrink is None else tuple(int(f) for f in shrink)
    levels = [f for f in shrink if f > 1 and min(sizes) // f >= _MIN_AXIS]
    return levels + [1] if not levels or levels[-1] != 1 else levels


def register_rigid(
    moving,
    fixed,
    *,
    metric="mattes",
    fixed_mask=None,
    seed=0,
    shrink=None,
    initialize="header",
    num_threads=1,
    max_iterations=200,
):
    """Rigid (Euler) transform aligning ``moving`` to ``fixed`` (3D nibabel images).

    Returns a 4x4 RAS matrix mapping fixed-space points to moving-space points (module
    docstring). ``metric`` is ``"mattes"`` (mutual information: different contrasts, e.g.
    echoes or flip angles) or ``"correlation"`` (same contrast). ``fixed_mask`` (image or array
    on the fixed grid) limits the metric to its non-zero voxels. ``shrink`` is the pyramid
    (default ``(4, 2, 1)``; levels that would leave < 4 voxels on an axis are dropped).
    ``initialize``: ``"header"`` (scanner coordinates), ``"geometry"`` (align field-of-view
    centres) or ``"moments"`` (align centres of mass). The result is deterministic for a given
    ``seed`` and ``num_threads``. If ITK fails, the initial transform is returned with a warning.
    """
    if metric not in ("mattes", "correlation"):
        raise ValueError(f"unknown metric {metric!r}")
    fshape, mshape = np.array(fixed.shape[:3]), np.array(moving.shape[:3])
    thin = np.flatnonzero(fshape < _MIN_AXIS)
    if len(thin) > 1 or (mshape < _MIN_AXIS).sum() != len(thin):
        LOGGER.warning(
            "Images too small for rigid registration (fixed %s, moving %s voxels): identity.",
            tuple(fshape), tuple(mshape),
        )
        return np.eye(4)
    if len(thin):
        LOGGER.warning("Axis %d of %s voxels has < 4 voxels: in-plane rigid registration.",
                       thin[0], tuple(fshape))

    fimg = nib_to_sitk(fixed, np.asarray(fixed.dataobj, dtype=np.float32))
    mimg = nib_to_sitk(moving, np.asarray(moving.dataobj, dtype=np.float32))
    u, _, vt = np.linalg.svd(np.reshape(fimg.GetDirection(), (3, 3)))
    rot = u @ vt  # frame of the fixed image's axes (orthonormalised)
    fimg, mimg = _in_frame(fimg, rot), _in_frame(mimg, rot)

    center = fimg.TransformContinuousIndexToPhysicalPoint(((fshape - 1) / 2.0).tolist())
    tx = sitk.Euler3DTransform()
    tx.SetCenter(center)
    if initialize != "header":
        mode = {"geometry": sitk.CenteredTransformInitializerFilter.GEOMETRY,
                "moments": sitk.CenteredTransformInitializerFilter.MOMENTS}[initialize]
        tx = sitk.Euler3DTransform(sitk.CenteredTransformInitializer(fimg, mimg, tx, mode))
        tx.SetCenter(center)

    reg = sitk.ImageRegistrationMethod()
    reg.SetNumberOfThreads(int(num_threads))
    if metric == "mattes":
        reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    else:
        reg.SetMetricAsCorrelation()
    fraction = _MAX_SAMPLES / float(np.prod(fshape))
    if fraction < 1.0:
        reg.SetMetricSamplingStrategy(reg.RANDOM)
        reg.SetMetricSamplingPercentage(fraction, int(seed))
    else:
        reg.SetMetricSamplingStrategy(reg.NONE)
    if fixed_mask is not None:
        mdata = np.asanyarray(getattr(fixed_mask, "dataobj", fixed_mask)) != 0
        reg.SetMetricFixedMask(_in_frame(nib_to_sitk(fixed, mdata.astype(np.uint8)), rot))
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=1.0, minStep=1e-5, numberOfIterations=int(max_iterations),
        relaxationFactor=0.7, gradientMagnitudeTolerance=1e-8,
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    if len(thin):  # Euler3D parameters: angles about x, y, z, then translations
        weights = [0.0] * 6
        weights[thin[0]] = 1.0
        for ax in range(3):
            weights[3 + ax] = float(ax != thin[0])
        reg.SetOptimizerWeights(weights)
    levels = _shrink_levels(np.delete(fshape, thin), shrink)
    reg.SetShrinkFactorsPerLevel(levels)
    reg.SetSmoothingSigmasPerLevel([f / 2.0 for f in levels])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    reg.SetInitialTransform(tx, inPlace=False)
    try:
        final = reg.Execute(fimg, mimg)
        LOGGER.debug("Registration: %s", reg.GetOptimizerStopConditionDescription())
    except RuntimeError as err:
        LOGGER.warning("Rigid registration failed, keeping the initial alignment: %s", err)
        final = tx
    frame = np.eye(4)
    frame[:3, :3] = rot
    return _LPS @ frame @ _itk_lps(final) @ frame.T @ _LPS


# ---------------------------------------------------------------- resampling
def resample_to(img, reference, *, transform=None, order=1):
    """``img`` resampled on the grid of ``reference`` (world coordinates), 0 outside.

    ``transform`` (4x4 RAS, fixed=reference -> moving=img points; default identity) comes from
    :func:`register_rigid`. ``order`` 0 (nearest, keeps the dtype), 1 (linear) or 3 (cubic
    B-spline); orders 1 and 3 give float32. 4D images are resampled volume by volume.
    """
    if order not in _INTERPOLATORS:
        raise ValueError(f"order must be 0, 1 or 3, not {order!r}")
    data = np.asanyarray(img.dataobj)
    dtype = data.dtype if order == 0 else np.float32
    shape = reference.shape[:3]
    origin, spacing, direction = affine_to_itk(reference.affine)
    tx = _to_itk(np.eye(4) if transform is None else transform)
    resampler = sitk.ResampleImageFilter()
    resampler.SetSize([int(n) for n in shape])
    resampler.SetOutputOrigin(origin.tolist())
    resampler.SetOutputSpacing(spacing.tolist())
    resampler.SetOutputDirection(direction.ravel().tolist())
    resampler.SetTransform(tx)
    resampler.SetInterpolator(_INTERPOLATORS[order])
    resampler.SetDefaultPixelValue(0.0)

    vols = data.reshape(data.shape[:3] + (-1,)) if data.ndim > 3 else data[..., np.newaxis]
    out = np.zeros(shape + (vols.shape[-1],), dtype=dtype)
    for v in range(vols.shape[-1]):
        vol = vols[..., v] if order == 0 else vols[..., v].astype(np.float32)
        out[..., v] = sitk.GetArrayFromImage(resampler.Execute(nib_to_sitk(img, vol))).T
    out = out.reshape(shape + data.shape[3:]) if data.ndim > 3 else out[..., 0]

    new = nib.Nifti1Image(out, reference.affine, header=reference.header)
    new.set_data_dtype(dtype)
    new.header.set_zooms(reference.header.get_zooms()[:3] + img.header.get_zooms()[3:out.ndim])
    return new


def align_series(images, *, reference_index=None, metric="mattes", order=3, **kwargs):
    """Rigidly align each 3D volume of a series to one of them.

    ``reference_index`` defaults to the middle volume, which is returned unchanged with an
    identity transform; every other volume is registered to it (:func:`register_rigid`,
    ``kwargs`` passed on) and resampled on its grid with ``order`` (1 linear or 3 cubic
    B-spline). Volumes without negative values (magnitudes) are clipped at 0 after resampling.
    Returns ``(aligned_images, transforms)`` in input order.
    """
    images = list(images)
    if not images:
        raise ValueError("align_series needs at least one image")
    ref_i = len(images) // 2 if reference_index is None else int(reference_index)
    if not -len(images) <= ref_i < len(images):
        raise ValueError(f"reference_index {ref_i} out of range for {len(images)} images")
    ref_i %= len(images)
    reference = images[ref_i]
    aligned, transforms = [], []
    for i, img in enumerate(images):
        if i == ref_i:
            aligned.append(img)
            transforms.append(np.eye(4))
            continue
        matrix = register_rigid(img, reference, metric=metric, **kwargs)
        out = resample_to(img, reference, transform=matrix, order=order)
        if order > 1 and np.min(np.asanyarray(img.dataobj)) >= 0:
            out = nib.Nifti1Image(np.clip(out.get_fdata(dtype=np.float32), 0, None),
                                  out.affine, out.header)
        aligned.append(out)
        transforms.append(matrix)
    return aligned, transforms
