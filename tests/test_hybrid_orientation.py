"""The weighted-image U-Net sees sagittal slices whatever voxel order a converter stored, and warns
about a voxel size it was not trained at (qmriprep.utils.orientation, estimators.hybrid)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from qmriprep.bids.weighted import find_weighted
from qmriprep.cli import hybrid
from qmriprep.estimators.hybrid import fit_weighted
from qmriprep.synth.dataset import DatasetSpec, write_dataset
from qmriprep.utils.orientation import from_ras, ras_zooms, to_ras

#: stored orders to test: axial-first with flips (LPS-like), and a plain axis swap
ORDERS = ([[2, -1], [1, -1], [0, 1]], [[1, 1], [0, -1], [2, 1]])


def _reordered(img, ornt):
    return img.as_reoriented(np.array(ornt))


@pytest.mark.parametrize("ornt", ORDERS)
def test_to_ras_undoes_any_stored_order_and_from_ras_restores_it(ornt):
    data = np.random.default_rng(0).random((5, 6, 7, 2))
    ras = nib.Nifti1Image(data, np.diag([2.0, 1.0, 3.0, 1.0]))
    stored = _reordered(ras, ornt)
    assert stored.shape[:3] != data.shape[:3] or not np.array_equal(np.asarray(stored.dataobj), data)
    back = to_ras(np.asarray(stored.dataobj), stored.affine)
    np.testing.assert_array_equal(back, data)
    np.testing.assert_array_equal(from_ras(back, stored.affine), np.asarray(stored.dataobj))
    assert ras_zooms(stored.header.get_zooms(), stored.affine) == (2.0, 1.0, 3.0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    bids = write_dataset(tmp_path_factory.mktemp("orient") / "bids", DatasetSpec(
        subjects=("01", "02"), downsample=4, n_slices=16, modalities=("weighted",), label_thickness=8.0, snr=50.0))
    model = bids.parent / "model"
    code = hybrid.main(["train", str(bids), str(model), "--labels", str(bids / "derivatives" / "lowres"),
                        "--participant-label", "01", "--epochs", "2", "--steps-per-epoch", "2", "--width", "4",
                        "--batch-size", "2", "--nthreads", "1"])
    assert code == 0
    return bids, model


def _series(bids, sub="02", ornt=None):
    wset = find_weighted(bids, sub)[0]
    imgs = [nib.load(f) for f in wset["files"]]
    if ornt is not None:
        imgs = [_reordered(i, ornt) for i in imgs]
    return np.stack([np.asarray(i.dataobj, np.float32) for i in imgs], -1), imgs[0].affine, wset["protocol"]


def test_model_records_the_training_orientation_and_voxel_size(trained):
    bids, model = trained
    meta = json.loads((model / "model.json").read_text())
    zooms = nib.load(bids / "sub-01" / "anat" / "sub-01_T1w.nii.gz").header.get_zooms()[:3]
    assert meta["Orientation"] == "RAS" and meta["VoxelSize"] == [[pytest.approx(float(z)) for z in zooms]]


@pytest.mark.parametrize("ornt", ORDERS)
def test_maps_do_not_depend_on_the_stored_voxel_order(trained, ornt):
    bids, model = trained
    series, affine, protocol = _series(bids)
    ref = fit_weighted(series, protocol, model=str(model), affine=affine)
    series_o, affine_o, _ = _series(bids, ornt=ornt)
    out = fit_weighted(series_o, protocol, model=str(model), affine=affine_o)
    for key in ("t1", "t2", "m0", "t1_sd", "out_of_range"):
        assert out[key].shape == series_o.shape[:3]
        np.testing.assert_array_equal(to_ras(out[key], affine_o), ref[key])
    assert "VoxelSizeWarning" not in out["meta"]


def test_the_training_volumes_do_not_depend_on_the_stored_voxel_order(trained, tmp_path):
    bids, _ = trained
    wset = find_weighted(bids, "01")[0]
    labels = {s: bids / "derivatives" / "lowres" / "sub-01" / "anat" / f"sub-01_{s}.nii.gz"
              for s in ("T1map", "T2map", "M0map")}
    ref = hybrid.load_volumes(wset["files"][:2], labels, bids)
    moved = []
    for f in wset["files"][:2]:
        moved.append(tmp_path / f.name)
        nib.save(_reordered(nib.load(f), ORDERS[0]), moved[-1])
    out = hybrid.load_volumes(moved, labels, tmp_path)
    np.testing.assert_array_equal(out.images, ref.images)
    np.testing.assert_allclose(out.labels, ref.labels, rtol=1e-5, atol=1e-6)


def test_a_voxel_size_unlike_the_training_subjects_is_warned(trained):
    bids, model = trained
    series, affine, protocol = _series(bids)
    out = fit_weighted(series, protocol, model=str(model), affine=affine @ np.diag([0.5, 0.5, 0.5, 1]))
    assert "differs from the training subjects'" in out["meta"]["VoxelSizeWarning"]
