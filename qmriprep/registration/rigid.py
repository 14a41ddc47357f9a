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
is registered in-plane (Euler2D: rotation about that axis, translation within the plane) and one
with two such axes is left at identity, each with a logged warning.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
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
#: above this many fixed voxels in a pyramid level, the metric uses a random (seeded) subset
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


def _itk_lps(tx, dim=3):
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
        return _LPS @ _itk_lps(sitk.ReadTransform(str(path))) @ _LPS
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
    angles = (np.arctan2(rot[2, 1], rot[2, 2]), -np.arcsin(np.clip(rot[2, 0], -1.0, 1.0)),
              np.arctan2(rot[1, 0], rot[0, 0]))
    return translation, np.degrees(angles)


def rotation_angle_deg(matrix):
    """Total rotation angle (axis-angle magnitude, degrees) of a rigid 4x4 matrix."""
    rot = np.asarray(matrix, dtype=float)[:3, :3]
    return float(np.degrees(np.arccos(np.clip((np.trace(rot) - 1.0) / 2.0, -1.0, 1.0))))


def motion_table(transforms, *, center=None):
    """One dict per transform (JSON-ready): translation at ``center``, rotations, magnitudes."""
    rows = []
    for i, matrix in enumerate(transforms):
        shift, angles = motion_parameters(matrix, center=center)
        rows.append({"index": i, "translation_mm": [round(float(v), 4) for v in shift],
                     "rotation_deg": [round(float(v), 4) for v in angles],
                     "displacement_mm": round(float(np.linalg.norm(shift)), 4),
                     "rotation_angle_deg": round(rotation_angle_deg(matrix), 4)})
    return rows


def image_center(img):
    """World (RAS) position of the centre of an image's field of view."""
    ijk = (np.asarray(img.shape[:3], dtype=float) - 1.0) / 2.0
    return nib.affines.apply_affine(img.affine, ijk)


# ---------------------------------------------------------------- registration
def _local_image(img, data, rot, plane=None):
    """``data`` on ``img``'s grid as a SimpleITK image in the frame ``rot`` (columns: LPS axes).

    With ``plane=(a, b)`` (frame axes) the image is 2D: the middle slice along ``img``'s thin
    axis, its geometry projected on the plane (the offset across the plane is dropped).
    """
    origin, spacing, direction = affine_to_itk(img.affine)
    origin, direction = rot.T @ origin, rot.T @ direction
    data = np.asarray(data)
    if plane is not None:
        thin = int(np.argmin(data.shape))
        own = [ax for ax in range(3) if ax != thin]
        mid = data.shape[thin] // 2
        origin = origin + direction[:, thin] * spacing[thin] * mid
        data = np.take(data, mid, axis=thin)
        origin, spacing, direction = origin[plane], spacing[own], direction[np.ix_(plane, own)]
    simg = sitk.GetImageFromArray(np.ascontiguousarray(data.T))
    simg.SetOrigin(origin.tolist())
    simg.SetSpacing(spacing.tolist())
    simg.SetDirection(direction.ravel().tolist())
    return simg


def _volume(img, name):
    """``img`` as a 3D image (a trailing axis of length 1 is dropped)."""
    if img.ndim == 4 and img.shape[3] == 1:
        return img.slicer[..., 0]
    if img.ndim != 3:
        raise ValueError(f"{name}: expected a 3D image, got shape {img.shape}")
    return img


def _shrink_levels(sizes, shrink):
    """Multi-resolution factors, dropping levels that leave fewer than 4 voxels on an axis."""
    shrink = (4, 2, 1) if shrink is None else tuple(int(f) for f in shrink)
    levels = [f for f in shrink if f > 1 and min(sizes) // f >= _MIN_AXIS]
    return levels + [1]


@contextmanager
def _itk_threads(num_threads):
    """ITK's default thread count for the duration (the metric ignores the method's setting)."""
    old = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(int(num_threads))
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(old)


def _method(metric, sizes, levels, *, seed, num_threads, max_iterations):
    """SimpleITK registration method: metric, seeded sampling, optimizer, pyramid."""
    reg = sitk.ImageRegistrationMethod()
    reg.SetNumberOfThreads(int(num_threads))
    if metric == "mattes":
        reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    else:
        reg.SetMetricAsCorrelation()
    # at most _MAX_SAMPLES fixed voxels per level (random, seeded), else all of them
    fractions = [min(1.0, _MAX_SAMPLES * f ** len(sizes) / np.prod(sizes)) for f in levels]
    if min(fractions) < 1.0:
        reg.SetMetricSamplingStrategy(reg.RANDOM)
        reg.SetMetricSamplingPercentagePerLevel(fractions, int(seed))
    else:
        reg.SetMetricSamplingStrategy(reg.NONE)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=1.0, minStep=1e-5, numberOfIterations=int(max_iterations),
        relaxationFactor=0.7, gradientMagnitudeTolerance=1e-8,
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel(levels)
    reg.SetSmoothingSigmasPerLevel([f / 2.0 for f in levels])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    return reg


def register_rigid(moving, fixed, *, metric="mattes", fixed_mask=None, seed=0, shrink=None,
                   initialize="header", num_threads=1, max_iterations=200):
    """Rigid (Euler) transform aligning ``moving`` to ``fixed`` (3D nibabel images).

    Returns a 4x4 RAS matrix mapping fixed-space points to moving-space points (module
    docstring). ``metric`` is ``"mattes"`` (mutual information: different contrasts, e.g.
    echoes or flip angles) or ``"correlation"`` (same contrast). ``fixed_mask`` (image or array
    on the fixed grid) limits the metric to its non-zero voxels. ``shrink`` is the pyramid
    (default ``(4, 2, 1)``; levels that would leave < 4 voxels on an axis are dropped).
    ``initialize``: ``"header"`` (scanner coordinates), ``"geometry"`` (align field-of-view
    centres) or ``"moments"`` (align centres of mass). With ``num_threads=1`` (default) the
    result is bit-identical between runs for a given ``seed``; more threads are faster but
    differ in the last digits (~1e-13).

    Images with one axis of < 4 voxels are registered in-plane (Euler2D on their middle
    slices); with more such axes, or slices that are not parallel, the result is the identity.
    Both cases, and an ITK failure (the initial transform is returned), log a warning.
    """
    if metric not in ("mattes", "correlation"):
        raise ValueError(f"unknown metric {metric!r}")
    if initialize not in ("header", "geometry", "moments"):
        raise ValueError(f"unknown initialization {initialize!r}")
    moving, fixed = _volume(moving, "moving"), _volume(fixed, "fixed")
    fshape = tuple(int(n) for n in fixed.shape[:3])
    mshape = tuple(int(n) for n in moving.shape[:3])
    thin = [ax for ax in range(3) if fshape[ax] < _MIN_AXIS]
    mthin = [ax for ax in range(3) if mshape[ax] < _MIN_AXIS]
    u, _, vt = np.linalg.svd(affine_to_itk(fixed.affine)[2])
    rot = u @ vt  # frame of the fixed image's axes (orthonormalised), LPS
    plane = None
    if thin or mthin:
        plane = [ax for ax in range(3) if ax not in thin]
        mdir = rot.T @ affine_to_itk(moving.affine)[2]
        if len(thin) != 1 or len(mthin) != 1 or abs(mdir[thin[0], mthin[0]]) < 0.99:
            LOGGER.warning("Images of %s and %s voxels cannot be registered: identity.",
                           mshape, fshape)
            return np.eye(4)
        LOGGER.warning("Images of %s and %s voxels: in-plane registration.", mshape, fshape)

    fimg = _local_image(fixed, np.asarray(fixed.dataobj, dtype=np.float32), rot, plane)
    mimg = _local_image(moving, np.asarray(moving.dataobj, dtype=np.float32), rot, plane)
    tx = sitk.Euler2DTransform() if plane else sitk.Euler3DTransform()
    center = (np.array(fimg.GetSize(), dtype=float) - 1.0) / 2.0
    tx.SetCenter(fimg.TransformContinuousIndexToPhysicalPoint(center.tolist()))
    if initialize != "header":
        mode = getattr(sitk.CenteredTransformInitializerFilter, initialize.upper())
        tx = sitk.CenteredTransformInitializer(fimg, mimg, tx, mode)

    sizes = [fshape[ax] for ax in range(3) if ax not in thin]
    reg = _method(metric, sizes, _shrink_levels(sizes, shrink), seed=seed,
                  num_threads=num_threads, max_iterations=max_iterations)
    if fixed_mask is not None:
        mdata = np.asanyarray(getattr(fixed_mask, "dataobj", fixed_mask)) != 0
        if mdata.shape != fshape:
            raise ValueError(f"fixed_mask of shape {mdata.shape} is not on the fixed grid")
        reg.SetMetricFixedMask(_local_image(fixed, mdata.astype(np.uint8), rot, plane))
    reg.SetInitialTransform(tx, inPlace=False)
    try:
        with _itk_threads(num_threads):
            final = reg.Execute(fimg, mimg)
        LOGGER.debug("Registration: %s", reg.GetOptimizerStopConditionDescription())
    except RuntimeError as err:
        LOGGER.warning("Rigid registration failed, keeping the initial alignment: %s", err)
        final = tx

    local = np.eye(4)  # fixed -> moving in the frame, LPS
    if plane:
        m2 = _itk_lps(final, 2)
        local[np.ix_(plane, plane)], local[plane, 3] = m2[:2, :2], m2[:2, 2]
    else:
        local = _itk_lps(final, 3)
    frame = np.eye(4)
    frame[:3, :3] = rot
    return _LPS @ frame @ local @ frame.T @ _LPS


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


def max_displacement_mm(matrix, img) -> float:
    """Largest displacement (mm) ``matrix`` gives a corner of ``img``'s field of view."""
    corners = np.array([[x, y, z, 1.0] for x in (-0.5, img.shape[0] - 0.5)
                        for y in (-0.5, img.shape[1] - 0.5) for z in (-0.5, img.shape[2] - 0.5)])
    world = corners @ np.asarray(img.affine, dtype=float).T
    moved = world @ np.asarray(matrix, dtype=float).T
    return float(np.linalg.norm((moved - world)[:, :3], axis=1).max())


def is_negligible(matrix, img, min_displacement, voxel_mm=None) -> bool:
    """True when ``matrix`` moves no corner of ``img`` by ``min_displacement`` voxels (of
    ``voxel_mm``, default ``img``'s smallest voxel side) or more."""
    voxel_mm = voxel_mm or min(img.header.get_zooms()[:3])
    return min_displacement > 0 and max_displacement_mm(matrix, img) < min_displacement * voxel_mm


def align_series(images, *, reference_index=None, metric="mattes", order=3, min_displacement=0.0,
                 **kwargs):
    """Rigidly align each 3D volume of a series to one of them.

    ``reference_index`` defaults to the middle volume, which is returned unchanged with an
    identity transform; every other volume is registered to it (:func:`register_rigid`,
    ``kwargs`` passed on) and resampled on its grid with ``order`` (1 linear or 3 cubic
    B-spline). Volumes without negative values (magnitudes) are clipped at 0 after resampling.
    A motion displacing no corner of the field of view by ``min_displacement`` voxels is
    within registration noise: that volume is kept as it is (identity), sparing it the blur
    of interpolation. Returns ``(aligned_images, transforms)`` in input order.
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
        if is_negligible(matrix, reference, min_displacement):
            aligned.append(img)
            transforms.append(np.eye(4))
            continue
        out = resample_to(img, reference, transform=matrix, order=order)
        if order > 1 and np.min(np.asanyarray(img.dataobj)) >= 0:
            out = nib.Nifti1Image(np.clip(out.get_fdata(dtype=np.float32), 0, None),
                                  out.affine, out.header)
        aligned.append(out)
        transforms.append(matrix)
    return aligned, transforms
