"""Data checks of ``qmriprep.bids.validate`` on tiny NIfTI files (no pybids needed)."""

import gzip

import numpy as np
import pytest
from bidsfiles import write_nifti

from qmriprep.bids import Collection, check_b1_overlap, check_collection_data
from qmriprep.bids.metadata import MultiEchoProtocol, TFLProtocol
from qmriprep.errors import InputError

TES = (0.01, 0.02, 0.03)


def mese(root, files, tes=TES, phase=()):
    return Collection("MESE", "01", None, {}, tuple(files), [{} for _ in files],
                      MultiEchoProtocol(tes), True, "test", phase_files=tuple(phase), root=root)


def echoes(root, n=3, **kwargs):
    return [write_nifti(root / f"sub-01/anat/sub-01_echo-{i + 1}_MESE.nii.gz", **kwargs) for i in range(n)]


def check_fails(coll, match):
    with pytest.raises(InputError, match=match) as info:
        check_collection_data(coll)
    return str(info.value)


def test_good_series_passes(tmp_path):
    check_collection_data(mese(tmp_path, echoes(tmp_path)))
    single = write_nifti(tmp_path / "sub-01/anat/sub-01_MESE.nii.gz", shape=(4, 4, 3, 3))
    check_collection_data(mese(tmp_path, [single]))
    trailing = write_nifti(tmp_path / "sub-01/fmap/sub-01_acq-anat_TB1TFL.nii.gz", shape=(4, 4, 3, 1))
    famp = write_nifti(tmp_path / "sub-01/fmap/sub-01_acq-famp_TB1TFL.nii.gz")
    check_collection_data(Collection("TB1TFL", "01", None, {}, (trailing, famp), [{}, {}],
                                     TFLProtocol(0.14), True, "test", root=tmp_path))


def test_empty_and_unreadable_files(tmp_path):
    files = echoes(tmp_path)
    files[1].write_bytes(b"")
    check_fails(mese(tmp_path, files), r"^sub-01/anat/sub-01_echo-2_MESE.nii.gz: is empty \(0 bytes\)$")
    files[1].write_bytes(b"this is not a nifti file at all")
    check_fails(mese(tmp_path, files), "sub-01_echo-2_MESE.nii.gz: cannot be read as NIfTI")


def test_truncated_data_block(tmp_path):
    files = echoes(tmp_path, shape=(16, 16, 16))
    raw = gzip.decompress(files[2].read_bytes())
    files[2].write_bytes(gzip.compress(raw[: len(raw) // 2]))
    check_fails(mese(tmp_path, files), "sub-01_echo-3_MESE.nii.gz: image data cannot be read")


def test_wrong_dimensionality(tmp_path):
    files = echoes(tmp_path)
    write_nifti(files[0], shape=(4, 4, 3, 2))
    check_fails(mese(tmp_path, files), r"sub-01_echo-1_MESE.nii.gz: has 2 volumes \(4, 4, 3, 2\); expected a 3-D volume")
    write_nifti(files[0], shape=(4, 4))
    check_fails(mese(tmp_path, files), "sub-01_echo-1_MESE.nii.gz: has 2 dimensions")
    single = write_nifti(tmp_path / "sub-01/anat/sub-01_MESE.nii.gz", shape=(4, 4, 3, 2))
    check_fails(mese(tmp_path, [single]), r"has 2 volumes .*expected 3 volumes \(one per protocol point\)")


def test_different_grids_within_a_collection(tmp_path):
    files = echoes(tmp_path)
    write_nifti(files[2], shape=(4, 4, 4))
    msg = check_fails(mese(tmp_path, files), "has grid")
    assert msg.startswith("sub-01/anat/sub-01_echo-3_MESE.nii.gz: has grid (4, 4, 4) but "
                          "sub-01/anat/sub-01_echo-1_MESE.nii.gz has (4, 4, 3)")
    shifted = np.eye(4)
    shifted[0, 3] = 2.0
    write_nifti(files[2], affine=shifted)
    check_fails(mese(tmp_path, files), "sub-01_echo-3_MESE.nii.gz: has a different affine")


def test_nan_inf_masked_or_refused_and_all_zero(tmp_path):
    files = echoes(tmp_path)
    data = np.arange(48.0).reshape(4, 4, 3) + 1
    data[1, 2, 0] = np.nan
    write_nifti(files[1], data)
    assert check_collection_data(mese(tmp_path, files)) == {files[1]: 1}  # a few: masked
    data[:3] = np.nan  # 36 of 48 voxels: most of the image
    write_nifti(files[1], data)
    check_fails(mese(tmp_path, files), r"sub-01_echo-2_MESE.nii.gz: has 36 NaN or infinite voxels of 48")
    write_nifti(files[1], np.zeros((4, 4, 3)))
    check_fails(mese(tmp_path, files), r"sub-01_echo-2_MESE.nii.gz: is all zeros$")
    write_nifti(files[1], np.full((4, 4, 3), 100.0))
    check_fails(mese(tmp_path, files), r"sub-01_echo-2_MESE.nii.gz: has the same value \(100\) in every voxel")
    data4 = np.ones((4, 4, 3, 3)) * np.arange(1, 49).reshape(4, 4, 3, 1)
    data4[..., 1] = 0
    single = write_nifti(tmp_path / "sub-01/anat/sub-01_MESE.nii.gz", data4)
    check_fails(mese(tmp_path, [single]), "is all zeros in volume 2")
    data4[..., 1] = np.inf
    write_nifti(single, data4)
    check_fails(mese(tmp_path, [single]), "has 48 NaN or infinite voxels of 48 in volume 2")


def test_phase_images_are_checked_but_may_be_zero(tmp_path):
    mags = echoes(tmp_path)
    phases = [write_nifti(tmp_path / f"sub-01/anat/sub-01_echo-{i}_part-phase_MESE.nii.gz",
                          np.zeros((4, 4, 3))) for i in (1, 2, 3)]
    check_collection_data(mese(tmp_path, mags, phase=phases))
    write_nifti(phases[0], shape=(4, 4, 2))
    check_fails(mese(tmp_path, mags, phase=phases), "echo-1_part-phase_MESE.nii.gz: has grid")


def test_b1_on_another_grid_overlapping_is_fine(tmp_path):
    target = write_nifti(tmp_path / "target.nii.gz", shape=(8, 8, 8))
    b1_aff = np.diag([2.0, 2.0, 2.0, 1.0])
    b1_aff[:3, 3] = 0.5
    b1 = write_nifti(tmp_path / "b1.nii.gz", shape=(4, 4, 4), affine=b1_aff)
    assert check_b1_overlap(b1, target) == pytest.approx(1.0)
    b1_aff[0, 3] = 4.5  # moved 4 mm: half of the target along x
    half = write_nifti(tmp_path / "half.nii.gz", shape=(4, 4, 4), affine=b1_aff)
    assert check_b1_overlap(half, target) == pytest.approx(0.5)


def test_b1_outside_the_target_is_an_error(tmp_path):
    import nibabel as nb

    target = nb.load(write_nifti(tmp_path / "target.nii.gz", shape=(8, 8, 8)))
    far = np.eye(4)
    far[2, 3] = 100.0
    b1 = nb.load(write_nifti(tmp_path / "sub-01_TB1map.nii.gz", affine=far))
    with pytest.raises(InputError, match="field of view does not overlap") as info:
        check_b1_overlap(b1, target, b1_name="sub-01/fmap/sub-01_TB1map.nii.gz")
    assert str(info.value).startswith("sub-01/fmap/sub-01_TB1map.nii.gz: field of view")
    with pytest.raises(InputError, match=r"sub-01_TB1map.nii.gz: field of view"):
        check_b1_overlap(b1, target)


def test_kspace_collections_are_read_and_checked(tmp_path):
    h5 = tmp_path / "sub-01_echo-1_MESE.h5"
    h5.write_bytes(b"")
    with pytest.raises(InputError, match="sub-01_echo-1_MESE.h5"):
        check_collection_data(Collection("kspace", "01", None, {"suffix": "MESE"}, (h5,), [{}], None,
                                         True, "test", root=tmp_path))
