"""Rigid registration and resampling core (:mod:`qmriprep.registration.rigid`)."""

from __future__ import annotations

import logging

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from qmriprep.errors import InputError
from qmriprep.registration import itk, rigid


def rigid_matrix(shift=(0, 0, 0), angles_deg=(0, 0, 0), center=(0, 0, 0)):
    """4x4 RAS matrix ``R = Rz @ Ry @ Rx`` about ``center``, then ``shift`` (mm)."""
    ax, ay, az = np.radians(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    m = np.eye(4)
    m[:3, :3] = rz @ ry @ rx
    m[:3, 3] = np.asarray(center) - m[:3, :3] @ np.asarray(center) + np.asarray(shift)
    return m


def centered_affine(shape, zooms):
    aff = np.diag(list(zooms) + [1.0])
    aff[:3, 3] = -(np.asarray(shape) - 1) / 2 * np.asarray(zooms)
    return aff


def head(xyz):
    """Smooth brain-like phantom (RAS mm): an ellipsoid with asymmetric bright/dark blobs."""
    x, y, z = np.moveaxis(xyz, -1, 0)
    out = 100 / (1 + np.exp((np.sqrt((x / 22) ** 2 + (y / 25) ** 2 + (z / 10) ** 2) - 1) * 12))
    for c, s, a in [((8, 10, 3), 6, 60), ((-10, -5, -2), 5, -40), ((0, -15, 4), 4, 50),
                    ((-6, 14, -4), 4, 30), ((12, -12, 0), 3, -30)]:
        out = out + a * np.exp(-((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) / (2 * s * s))
    return np.clip(out, 0, None)


def world(shape, affine):
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    return nib.affines.apply_affine(affine, ijk)


def phantom(shape, affine, moved=None, fn=head):
    """``fn`` sampled on a grid; with ``moved`` (fixed -> moving matrix) the moved object."""
    xyz = world(shape, affine)
    if moved is not None:
        xyz = nib.affines.apply_affine(np.linalg.inv(moved), xyz)
    return nib.Nifti1Image(fn(xyz).astype(np.float32), affine)


def errors(estimate, truth, img):
    """Largest displacement error over the field of view (mm) and rotation error (deg)."""
    err = np.linalg.inv(truth) @ estimate
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)])
    corners = nib.affines.apply_affine(img.affine, corners * (np.array(img.shape[:3]) - 1))
    moved = nib.affines.apply_affine(err, corners)
    return np.linalg.norm(moved - corners, axis=1).max(), rigid.rotation_angle_deg(err)


SHAPE, ZOOMS = (32, 32, 16), (2.0, 2.0, 2.0)
AFFINE = centered_affine(SHAPE, ZOOMS)


def test_nib_sitk_round_trip_oblique_affine():
    rot = rigid_matrix(angles_deg=(10, -7, 25))[:3, :3]
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([-1.5, 2.0, 3.0])  # LAS-like, anisotropic, oblique
    affine[:3, 3] = (40.0, -12.0, 7.5)
    data = np.random.default_rng(0).random((5, 6, 7)).astype(np.float32)
    simg = itk.nib_to_sitk(nib.Nifti1Image(data, affine))
    assert simg.GetSize() == (5, 6, 7)
    back = itk.sitk_to_nib(simg)
    np.testing.assert_array_equal(back.get_fdata(), data)
    np.testing.assert_allclose(back.affine, affine, atol=1e-10)
    # voxel (i, j, k) is the same point on both sides, LPS in ITK
    point = simg.TransformIndexToPhysicalPoint((4, 1, 3))
    ras = nib.affines.apply_affine(affine, (4, 1, 3))
    np.testing.assert_allclose(point, ras * (-1, -1, 1), atol=1e-10)
    assert simg[4, 1, 3] == pytest.approx(data[4, 1, 3])


@pytest.mark.parametrize("metric", ["mattes", "correlation"])
def test_register_rigid_recovers_2mm_shift_3deg_rotation(metric):
    truth = rigid_matrix(shift=(2.0, 0, 0), angles_deg=(0, 0, 3.0))
    fixed = phantom(SHAPE, AFFINE)
    moving = phantom(SHAPE, AFFINE, moved=truth)
    estimate = rigid.register_rigid(moving, fixed, rigid.RigidSettings(metric=metric))
    disp, angle = errors(estimate, truth, fixed)
    assert disp < 0.3 and angle < 0.3, (disp, angle)


def test_register_rigid_oblique_grids_and_rotation_off_centre():
    truth = rigid_matrix(shift=(1.2, -1.5, 0.8), angles_deg=(2, -1.5, 3), center=(3, 2, 1))
    fixed_aff = rigid_matrix(shift=(3, -2, 1), angles_deg=(10, -7, 15)) @ AFFINE
    moving_aff = rigid_matrix(angles_deg=(-5, 4, -8)) @ centered_affine((28, 30, 14),
                                                                         (2.2, 2.1, 2.3))
    fixed = phantom(SHAPE, fixed_aff)
    moving = phantom((28, 30, 14), moving_aff, moved=truth)
    disp, angle = errors(rigid.register_rigid(moving, fixed), truth, fixed)
    assert disp < 0.3 and angle < 0.3, (disp, angle)


@pytest.mark.parametrize("metric", ["mattes", "correlation"])
def test_register_rigid_identical_images_no_spurious_motion(metric):
    fixed = phantom(SHAPE, AFFINE)
    estimate = rigid.register_rigid(fixed, fixed, rigid.RigidSettings(metric=metric))
    disp, angle = errors(estimate, np.eye(4), fixed)
    assert disp < 0.05 and angle < 0.05, (disp, angle)


def test_register_rigid_fixed_mask():
    truth = rigid_matrix(shift=(0, 1.5, -1.0), angles_deg=(0, 2, 0))
    fixed = phantom(SHAPE, AFFINE)
    mask = fixed.get_fdata() > 10
    estimate = rigid.register_rigid(phantom(SHAPE, AFFINE, moved=truth), fixed, fixed_mask=mask)
    disp, angle = errors(estimate, truth, fixed)
    assert disp < 0.3 and angle < 0.3, (disp, angle)
    with pytest.raises(ValueError, match="fixed grid"):
        rigid.register_rigid(fixed, fixed, fixed_mask=mask[:-1])


def test_register_rigid_small_image():
    shape, zooms = (24, 28, 6), (2.5, 2.5, 4.0)
    affine = centered_affine(shape, zooms)
    truth = rigid_matrix(shift=(2.0, -1.0, 0.5), angles_deg=(0, 0, 3.0))
    fixed = phantom(shape, affine)
    disp, angle = errors(rigid.register_rigid(phantom(shape, affine, moved=truth), fixed),
                         truth, fixed)
    assert disp < 0.5 and angle < 0.5, (disp, angle)


def test_register_rigid_single_slice_is_in_plane(caplog):
    # coronal single slice (LAS): rotation about y and shift in x-z are recoverable
    affine = np.array([[-2.0, 0, 0, 31], [0, 4.0, 0, 0], [0, 0, 2.0, -31], [0, 0, 0, 1]])
    truth = rigid_matrix(shift=(2.0, 0, -1.0), angles_deg=(0, 3.0, 0))
    fixed = phantom((32, 1, 32), affine)
    with caplog.at_level(logging.WARNING, logger="qmriprep.registration.rigid"):
        estimate = rigid.register_rigid(phantom((32, 1, 32), affine, moved=truth), fixed)
    assert "in-plane" in caplog.text
    disp, angle = errors(estimate, truth, fixed)
    assert disp < 0.3 and angle < 0.3, (disp, angle)
    assert estimate[1, 3] == 0 and estimate[1, 1] == 1  # nothing across the slice


def test_register_rigid_too_small_gives_identity(caplog):
    affine = centered_affine((32, 2, 1), (2, 2, 2))
    img = phantom((32, 2, 1), affine)
    moved = phantom((32, 2, 1), affine, moved=rigid_matrix(shift=(2, 0, 0)))
    with caplog.at_level(logging.WARNING, logger="qmriprep.registration.rigid"):
        np.testing.assert_array_equal(rigid.register_rigid(moved, img), np.eye(4))
    assert "identity" in caplog.text


def test_register_rigid_deterministic_with_random_sampling(monkeypatch):
    monkeypatch.setattr(rigid, "_MAX_SAMPLES", 4000)  # force the seeded random subset
    truth = rigid_matrix(shift=(1.0, 0.5, 0), angles_deg=(1, 0, 2))
    fixed, moving = phantom(SHAPE, AFFINE), phantom(SHAPE, AFFINE, moved=truth)
    settings = rigid.RigidSettings(seed=3)
    first = rigid.register_rigid(moving, fixed, settings)
    np.testing.assert_array_equal(first, rigid.register_rigid(moving, fixed, settings))
    assert errors(first, truth, fixed)[0] < 0.5


def linear_field(xyz):
    return 1.0 + 0.01 * xyz[..., 0] - 0.005 * xyz[..., 1] + 0.008 * xyz[..., 2]


@pytest.mark.parametrize("order", [1, 3])
def test_resample_to_coarse_b1_grid_reproduces_linear_field(order):
    coarse_aff = rigid_matrix(angles_deg=(0, 0, 12)) @ centered_affine((12, 12, 8), (6, 6, 5))
    b1 = phantom((12, 12, 8), coarse_aff, fn=linear_field)
    fine = nib.Nifti1Image(np.zeros(SHAPE, np.int16), AFFINE)
    out = rigid.resample_to(b1, fine, order=order)
    assert out.shape == SHAPE and out.get_data_dtype() == np.float32
    np.testing.assert_allclose(out.affine, AFFINE)
    # voxels well inside the coarse grid: exact for linear (and nearly for B-spline)
    ijk = nib.affines.apply_affine(np.linalg.inv(coarse_aff), world(SHAPE, AFFINE))
    inside = np.all((ijk > 1) & (ijk < np.array([12, 12, 8]) - 2), axis=-1)
    assert inside.sum() > 1000
    truth = linear_field(world(SHAPE, AFFINE))
    atol = 1e-4 if order == 1 else 1e-2  # B-spline: mirror boundary conditions
    np.testing.assert_allclose(out.get_fdata()[inside], truth[inside], atol=atol)
    outside = np.any((ijk < -0.6) | (ijk > np.array([12, 12, 8]) - 0.4), axis=-1)
    assert outside.any() and np.all(out.get_fdata()[outside] == 0)


def test_resample_to_applies_transform_convention():
    truth = rigid_matrix(shift=(2.0, -1.0, 1.0), angles_deg=(3, 0, -2))
    fixed, moving = phantom(SHAPE, AFFINE), phantom(SHAPE, AFFINE, moved=truth)
    inner = (slice(4, -4), slice(4, -4), slice(3, -3))

    def rms_to_fixed(matrix):
        out = rigid.resample_to(moving, fixed, transform=matrix, order=3).get_fdata()
        return np.sqrt(np.mean((out - fixed.get_fdata())[inner] ** 2))

    assert rms_to_fixed(truth) < 1.0  # of ~150: interpolation only
    assert rms_to_fixed(np.linalg.inv(truth)) > 20 * rms_to_fixed(truth)


def test_resample_to_nearest_4d_keeps_dtype_and_volumes():
    data = np.arange(4 * 4 * 4 * 2, dtype=np.int16).reshape(4, 4, 4, 2)
    img = nib.Nifti1Image(data, np.eye(4))
    img.header.set_zooms((1, 1, 1, 2.5))
    out = rigid.resample_to(img, nib.Nifti1Image(np.zeros((4, 4, 4)), np.eye(4)), order=0)
    assert out.get_data_dtype() == np.int16 and out.header.get_zooms()[3] == 2.5
    np.testing.assert_array_equal(np.asanyarray(out.dataobj), data)
    with pytest.raises(ValueError, match="order"):
        rigid.resample_to(img, img, order=2)


def test_align_series_recovers_motion_across_contrasts():
    truths = [rigid_matrix(shift=(1.5, 0, -0.5), angles_deg=(0, 2, 0)), np.eye(4),
              rigid_matrix(shift=(-1.0, 1.0, 0), angles_deg=(0, 0, -2.5))]
    contrast = [lambda v: 0.5 * v, lambda v: v, lambda v: 200 * (v / 160) ** 2]  # e.g. flip angles
    images = [phantom(SHAPE, AFFINE, moved=t, fn=lambda x, c=c: c(head(x)))
              for t, c in zip(truths, contrast)]
    aligned, xfms = rigid.align_series(images, order=3)
    assert aligned[1] is images[1]
    np.testing.assert_array_equal(xfms[1], np.eye(4))
    inner = (slice(4, -4), slice(4, -4), slice(3, -3))
    for i in (0, 2):
        disp, angle = errors(xfms[i], truths[i], images[1])
        assert disp < 0.3 and angle < 0.3, (i, disp, angle)
        data = aligned[i].get_fdata()
        assert data.min() >= 0 and aligned[i].shape == SHAPE
        expected = contrast[i](head(world(SHAPE, AFFINE)))
        assert np.corrcoef(data[inner].ravel(), expected[inner].ravel())[0, 1] > 0.999
    with pytest.raises(ValueError, match="out of range"):
        rigid.align_series(images, reference_index=3)


def test_align_series_resamples_an_unmoved_volume_on_another_grid():
    """A clinical T2w on its own grid (larger voxels, shifted field of view), not moved: it is put
    on the reference grid, with the registration's near-identity transform, or with the identity
    when that is below the motion threshold (a volume on the reference grid would be kept as is)."""
    reference = phantom(SHAPE, AFFINE)
    thick = np.diag([2.5, 2.5, 3.0, 1.0])
    thick[:3, 3] = AFFINE[:3, 3] + (1.0, -2.0, 0.5)
    other = phantom((26, 26, 11), thick, fn=lambda x: 0.5 * head(x))
    inner = (slice(6, -6), slice(6, -6), slice(4, -4))
    expected = 0.5 * head(world(SHAPE, AFFINE))[inner]
    for threshold in (0.0, 10.0):
        aligned, xfms = rigid.align_series([reference, other], reference_index=0, min_displacement=threshold)
        assert aligned[0] is reference and aligned[1].shape == SHAPE
        np.testing.assert_allclose(aligned[1].affine, reference.affine)
        disp, angle = errors(xfms[1], np.eye(4), reference)
        assert disp < 1.0 and angle < 0.5
        if threshold:
            np.testing.assert_array_equal(xfms[1], np.eye(4))
        assert np.corrcoef(aligned[1].get_fdata()[inner].ravel(), expected.ravel())[0, 1] > 0.98


def test_transform_itk_text_round_trip(tmp_path):
    matrix = rigid_matrix(shift=(1.0, -2.0, 3.0), angles_deg=(4, -5, 6), center=(10, 0, -5))
    path = itk.save_transform(matrix, tmp_path / "xfm.txt")
    text = path.read_text()
    assert "AffineTransform_double_3_3" in text and "FixedParameters: 0 0 0" in text
    np.testing.assert_allclose(itk.load_transform(path), matrix, atol=1e-10)
    # LPS in the file: ITK maps the LPS point of a RAS point to the LPS of its image
    tx = sitk.ReadTransform(str(path))
    ras = np.array([5.0, -7.0, 9.0])
    lps_out = tx.TransformPoint((ras * (-1, -1, 1)).tolist())
    np.testing.assert_allclose(np.array(lps_out) * (-1, -1, 1),
                               nib.affines.apply_affine(matrix, ras), atol=1e-10)
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_load_transform_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("not a transform\n")
    with pytest.raises(InputError, match="bad.txt"):
        itk.load_transform(bad)
    with pytest.raises(ValueError, match=".txt"):
        itk.save_transform(np.eye(4), tmp_path / "xfm.mat")


def test_motion_parameters():
    matrix = rigid_matrix(shift=(1.0, -2.0, 0.5), angles_deg=(2.0, -3.0, 4.0), center=(5, 5, 5))
    shift, angles = rigid.motion_parameters(matrix, center=(5, 5, 5))
    np.testing.assert_allclose(shift, (1.0, -2.0, 0.5), atol=1e-10)
    np.testing.assert_allclose(angles, (2.0, -3.0, 4.0), atol=1e-10)
    np.testing.assert_allclose(rigid.motion_parameters(matrix)[0], matrix[:3, 3])
    assert rigid.rotation_angle_deg(rigid_matrix(angles_deg=(0, 0, 3))) == pytest.approx(3.0)
    rows = rigid.motion_table([np.eye(4), matrix], center=(5, 5, 5))
    assert rows[0]["displacement_mm"] == 0 and rows[1]["rotation_deg"] == [2.0, -3.0, 4.0]


def test_register_rigid_rejects_4d_and_bad_options():
    img = phantom(SHAPE, AFFINE)
    series = nib.concat_images([img, img])
    with pytest.raises(ValueError, match="3D"):
        rigid.register_rigid(series, img)
    single = nib.Nifti1Image(img.get_fdata()[..., None], AFFINE)  # (x, y, z, 1) is fine
    assert errors(rigid.register_rigid(single, img), np.eye(4), img)[0] < 0.05
    with pytest.raises(ValueError, match="unknown metric"):
        rigid.RigidSettings(metric="mi")
