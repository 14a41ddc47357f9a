"""Rigid registration and resampling of nibabel images, with SimpleITK inside.

World coordinates, data axes and transforms follow :mod:`.itk`: a transform is a 4x4 RAS matrix
mapping fixed-space points to moving-space points (``x_moving = T @ x_fixed``, the ITK/ANTs
"pull" convention), saved as an ITK text file by :func:`.itk.save_transform`.

Registration starts from the scanner's world coordinates (images of one session share them);
the rotation centre is the centre of the fixed field of view. It works in the fixed image's own
axis frame, so an image with one axis of fewer than 4 voxels (a single slice, ``(nx, ny, 1)``)
is registered in-plane (Euler2D: rotation about that axis, translation within the plane) and one
with two such axes is left at identity, each with a logged warning.
"""

from __future__ import annotations

import dataclasses
import logging
from contextlib import contextmanager

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from ..utils.images import off_grid
from .itk import LPS, affine_to_itk, itk_lps_matrix, nib_to_sitk, transform_to_itk

LOGGER = logging.getLogger(__name__)

_INTERPOLATORS = {0: sitk.sitkNearestNeighbor, 1: sitk.sitkLinear, 3: sitk.sitkBSpline}
#: fewest voxels along an axis for it to take part in registration
_MIN_AXIS = 4
#: above this many fixed voxels in a pyramid level, the metric uses a random (seeded) subset
_MAX_SAMPLES = 60_000


@dataclasses.dataclass(frozen=True)
class RigidSettings:
    """How :func:`register_rigid` searches, checked on construction.

    ``metric``: ``"mattes"`` (mutual information: different contrasts, e.g. echoes or flip
    angles) or ``"correlation"`` (same contrast). ``seed`` of the metric's random sampling.
    ``shrink``: the pyramid (None: ``(4, 2, 1)``; levels that would leave < 4 voxels on an axis
    are dropped). ``initialize``: ``"header"`` (scanner coordinates), ``"geometry"`` (align
    field-of-view centres) or ``"moments"`` (align centres of mass). With ``num_threads=1`` the
    result is bit-identical between runs for a given ``seed``; more threads are faster but differ
    in the last digits (~1e-13). ``max_iterations`` of the gradient descent per level.
    """

    metric: str = "mattes"
    seed: int = 0
    shrink: tuple[int, ...] | None = None
    initialize: str = "header"
    num_threads: int = 1
    max_iterations: int = 200

    def __post_init__(self):
        if self.metric not in ("mattes", "correlation"):
            raise ValueError(f"unknown metric {self.metric!r}")
        if self.initialize not in ("header", "geometry", "moments"):
            raise ValueError(f"unknown initialization {self.initialize!r}")


# ---------------------------------------------------------------- motion
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


def _method(settings: RigidSettings, sizes):
    """SimpleITK registration method: metric, seeded sampling, optimizer, pyramid."""
    levels = _shrink_levels(sizes, settings.shrink)
    reg = sitk.ImageRegistrationMethod()
    reg.SetNumberOfThreads(int(settings.num_threads))
    if settings.metric == "mattes":
        reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    else:
        reg.SetMetricAsCorrelation()
    # at most _MAX_SAMPLES fixed voxels per level (random, seeded), else all of them
    fractions = [min(1.0, _MAX_SAMPLES * f ** len(sizes) / np.prod(sizes)) for f in levels]
    if min(fractions) < 1.0:
        reg.SetMetricSamplingStrategy(reg.RANDOM)
        reg.SetMetricSamplingPercentagePerLevel(fractions, int(settings.seed))
    else:
        reg.SetMetricSamplingStrategy(reg.NONE)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=1.0, minStep=1e-5, numberOfIterations=int(settings.max_iterations),
        relaxationFactor=0.7, gradientMagnitudeTolerance=1e-8,
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel(levels)
    reg.SetSmoothingSigmasPerLevel([f / 2.0 for f in levels])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    return reg


def register_rigid(moving, fixed, settings: RigidSettings | None = None, *, fixed_mask=None):
    """Rigid (Euler) transform aligning ``moving`` to ``fixed`` (3D nibabel images).

    Returns a 4x4 RAS matrix mapping fixed-space points to moving-space points (module
    docstring). ``settings``: :class:`RigidSettings` (None: the defaults, Mattes mutual
    information, seed 0, one thread). ``fixed_mask`` (image or array on the fixed grid) limits
    the metric to its non-zero voxels.

    Images with one axis of < 4 voxels are registered in-plane (Euler2D on their middle
    slices); with more such axes, or slices that are not parallel, the result is the identity.
    Both cases, and an ITK failure (the initial transform is returned), log a warning.
    """
    settings = RigidSettings() if settings is None else settings
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
    if settings.initialize != "header":
        mode = getattr(sitk.CenteredTransformInitializerFilter, settings.initialize.upper())
        tx = sitk.CenteredTransformInitializer(fimg, mimg, tx, mode)

    sizes = [fshape[ax] for ax in range(3) if ax not in thin]
    reg = _method(settings, sizes)
    if fixed_mask is not None:
        mdata = np.asanyarray(getattr(fixed_mask, "dataobj", fixed_mask)) != 0
        if mdata.shape != fshape:
            raise ValueError(f"fixed_mask of shape {mdata.shape} is not on the fixed grid")
        reg.SetMetricFixedMask(_local_image(fixed, mdata.astype(np.uint8), rot, plane))
    reg.SetInitialTransform(tx, inPlace=False)
    try:
        with _itk_threads(settings.num_threads):
            final = reg.Execute(fimg, mimg)
        LOGGER.debug("Registration: %s", reg.GetOptimizerStopConditionDescription())
    except RuntimeError as err:
        LOGGER.warning("Rigid registration failed, keeping the initial alignment: %s", err)
        final = tx

    local = np.eye(4)  # fixed -> moving in the frame, LPS
    if plane:
        m2 = itk_lps_matrix(final, 2)
        local[np.ix_(plane, plane)], local[plane, 3] = m2[:2, :2], m2[:2, 2]
    else:
        local = itk_lps_matrix(final, 3)
    frame = np.eye(4)
    frame[:3, :3] = rot
    return LPS @ frame @ local @ frame.T @ LPS


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
    tx = transform_to_itk(np.eye(4) if transform is None else transform)
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


def align_series(images, *, reference_index=None, settings=None, order=3, min_displacement=0.0):
    """Rigidly align each 3D volume of a series to one of them.

    ``reference_index`` defaults to the middle volume, which is returned unchanged with an
    identity transform; every other volume is registered to it (:func:`register_rigid` with
    :class:`RigidSettings` ``settings``) and resampled on its grid with ``order`` (1 linear or 3
    cubic B-spline). Volumes without negative values (magnitudes) are clipped at 0 after resampling.
    A motion displacing no corner of the field of view by ``min_displacement`` voxels is
    within registration noise: that volume is kept as it is (identity), sparing it the blur
    of interpolation (resampled without motion when it lies on another grid). Returns
    ``(aligned_images, transforms)`` in input order.
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
        matrix = register_rigid(img, reference, settings)
        if is_negligible(matrix, reference, min_displacement):
            matrix = np.eye(4)
            if off_grid([reference, img]) is None:
                aligned.append(img)
                transforms.append(matrix)
                continue
        out = resample_to(img, reference, transform=matrix, order=order)
        if order > 1 and np.min(np.asanyarray(img.dataobj)) >= 0:
            out = nib.Nifti1Image(np.clip(out.get_fdata(dtype=np.float32), 0, None),
                                  out.affine, out.header)
        aligned.append(out)
        transforms.append(matrix)
    return aligned, transforms
