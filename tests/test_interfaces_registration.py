"""Nipype interfaces over the registration core (:mod:`qmriprep.interfaces.registration`)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np

from qmriprep.interfaces.registration import AlignSeries, RegisterToReference
from qmriprep.registration import itk

SHAPE = (32, 32, 16)
AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])
AFFINE[:3, 3] = -31.0, -31.0, -15.0


def moved(shift=(0, 0, 0), angle_z_deg=0.0):
    m = np.eye(4)
    a = np.radians(angle_z_deg)
    m[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    m[:3, 3] = shift
    return m


def head(shape=SHAPE, affine=AFFINE, motion=None, scale=1.0):
    """Smooth ellipsoid with off-centre blobs (RAS mm); ``motion`` moves it (fixed -> moving)."""
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    xyz = nib.affines.apply_affine(affine, ijk)
    if motion is not None:
        xyz = nib.affines.apply_affine(np.linalg.inv(motion), xyz)
    x, y, z = np.moveaxis(xyz, -1, 0)
    out = 100 / (1 + np.exp((np.sqrt((x / 22) ** 2 + (y / 25) ** 2 + (z / 10) ** 2) - 1) * 12))
    for c, s, a in [((8, 10, 3), 6, 60), ((-10, -5, -2), 5, -40), ((0, -15, 4), 4, 50)]:
        out = out + a * np.exp(-((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) / (2 * s * s))
    return nib.Nifti1Image((scale * np.clip(out, 0, None)).astype(np.float32), affine)


def max_error(estimate, truth):
    err = np.linalg.inv(truth) @ estimate
    corners = np.array([[x, y, z] for x in (-31, 31) for y in (-31, 31) for z in (-15, 15)])
    return np.abs(nib.affines.apply_affine(err, corners) - corners).max()


def test_align_series_list_of_3d_files(tmp_path):
    truths = [moved((1.5, -1.0, 0.5), 2.0), np.eye(4), moved((-1.0, 0, 0), -1.5)]
    files = []
    for i, (t, scale) in enumerate(zip(truths, (0.6, 1.0, 1.3))):
        files.append(str(tmp_path / f"sub-01_flip-{i + 1}_VFA.nii.gz"))
        head(motion=t, scale=scale).to_filename(files[-1])
    (tmp_path / "work").mkdir()
    res = AlignSeries(in_files=files).run(cwd=str(tmp_path / "work"))
    out = res.outputs
    assert len(out.out_files) == 3 and all("_aligned" in f for f in out.out_files)
    assert out.out_files[0].endswith("sub-01_flip-1_VFA_aligned.nii.gz")
    for f, xfm, truth in zip(out.out_files, out.out_transforms, truths):
        img = nib.load(f)
        assert img.shape == SHAPE and img.get_data_dtype() == np.float32
        assert img.get_fdata().min() >= 0
        assert max_error(itk.load_transform(xfm), truth) < 0.3
    report = json.loads(open(out.out_report).read())
    assert report["reference_index"] == 1 and report["metric"] == "mattes"
    assert [v["source"] for v in report["volumes"]] == files
    assert report["volumes"][1]["displacement_mm"] == 0
    assert abs(report["volumes"][0]["rotation_angle_deg"] - 2.0) < 0.3


def test_align_series_4d_file_and_reference_index(tmp_path):
    vols = [head(motion=moved((1.0, 0.5, 0), 1.0)), head(scale=0.8)]
    series = nib.concat_images(vols)
    series.to_filename(tmp_path / "series.nii.gz")
    res = AlignSeries(in_files=[str(tmp_path / "series.nii.gz")], reference_index=1,
                      metric="correlation", order=1).run(cwd=str(tmp_path))
    out = res.outputs
    assert len(out.out_files) == 1 and len(out.out_transforms) == 2
    img = nib.load(out.out_files[0])
    assert img.shape == SHAPE + (2,)
    np.testing.assert_allclose(img.get_fdata()[..., 1], vols[1].get_fdata(), rtol=1e-6)
    assert max_error(itk.load_transform(out.out_transforms[0]), moved((1.0, 0.5, 0), 1.0)) < 0.3
    report = json.loads(open(out.out_report).read())
    assert report["volumes"][0]["source"].endswith("series.nii.gz[0]")


def test_register_to_reference_rigid_brings_b1_map_onto_target(tmp_path):
    # B1 fmap on a coarse grid, its magnitude moved with respect to the target
    truth = moved((2.0, -1.0, 0), 3.0)
    b1_aff = np.diag([4.0, 4.0, 4.0, 1.0])
    b1_aff[:3, 3] = -30.0, -30.0, -14.0
    magnitude = head((16, 16, 8), b1_aff, motion=truth)
    b1 = nib.Nifti1Image(np.full((16, 16, 8), 0.9, np.float32), b1_aff)
    for name, img in (("mag", magnitude), ("b1", b1), ("target", head())):
        img.to_filename(tmp_path / f"{name}.nii.gz")
    res = RegisterToReference(moving=str(tmp_path / "mag.nii.gz"),
                              fixed=str(tmp_path / "target.nii.gz"),
                              apply_to=[str(tmp_path / "b1.nii.gz")]).run(cwd=str(tmp_path))
    out = res.outputs
    assert max_error(itk.load_transform(out.out_transform), truth) < 0.5
    (b1_file,) = out.out_files
    b1_out = nib.load(b1_file)
    assert b1_out.shape == SHAPE
    np.testing.assert_allclose(b1_out.affine, AFFINE)
    np.testing.assert_allclose(b1_out.get_fdata()[8:24, 8:24, 4:12], 0.9, atol=1e-6)


def test_register_to_reference_header_mode_is_identity(tmp_path):
    head(motion=moved((3.0, 0, 0))).to_filename(tmp_path / "mag.nii.gz")
    head().to_filename(tmp_path / "target.nii.gz")
    res = RegisterToReference(moving=str(tmp_path / "mag.nii.gz"),
                              fixed=str(tmp_path / "target.nii.gz"),
                              mode="header").run(cwd=str(tmp_path))
    np.testing.assert_array_equal(itk.load_transform(res.outputs.out_transform), np.eye(4))
    (out_file,) = res.outputs.out_files
    np.testing.assert_allclose(nib.load(out_file).get_fdata(),
                               nib.load(tmp_path / "mag.nii.gz").get_fdata(), atol=1e-4)


def test_interfaces_deterministic(tmp_path):
    files = []
    for i, t in enumerate((moved((1.0, 0.5, 0), 1.0), np.eye(4))):
        files.append(str(tmp_path / f"v{i}.nii.gz"))
        head(motion=t).to_filename(files[-1])
    runs = []
    for k in range(2):
        (tmp_path / f"run{k}").mkdir()
        runs.append(AlignSeries(in_files=files).run(cwd=str(tmp_path / f"run{k}")).outputs)
    for a, b in zip(runs[0].out_transforms, runs[1].out_transforms):
        assert open(a).read() == open(b).read()
    np.testing.assert_array_equal(nib.load(runs[0].out_files[0]).get_fdata(),
                                  nib.load(runs[1].out_files[0]).get_fdata())
