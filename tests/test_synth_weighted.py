"""Synthetic MPRAGE/TSE images and their low-resolution label maps (qmriprep.synth.weighted)."""

from __future__ import annotations

import dataclasses
import json

import nibabel as nb
import numpy as np
import pytest

from qmriprep.physics.mprage import mprage_signal
from qmriprep.physics.tse import flair_signal, tse_signal
from qmriprep.synth import DatasetSpec, make_phantom, write_dataset
from qmriprep.synth.weighted import FLAIR, MPRAGE, TSE, _slab_mean, deform, lowres_maps


def test_slab_mean_averages_fractional_voxels():
    a = np.arange(7, dtype=float)[None, None, :] * np.ones((2, 2, 1))
    out = _slab_mean(a, np.array([0.0, 3.5, 7.0]))
    # [0, 3.5): (0 + 1 + 2 + 0.5 * 3) / 3.5; [3.5, 7): (0.5 * 3 + 4 + 5 + 6) / 3.5
    np.testing.assert_allclose(out[0, 0], [4.5 / 3.5, 16.5 / 3.5], rtol=1e-6)


def test_lowres_labels_keep_slice_constant_maps_and_grid():
    ph = make_phantom(downsample=4, n_slices=14, seed=0)
    flat = {f: np.repeat(getattr(ph, f)[..., 7:8], 14, axis=2) for f in ("pd", "t1", "t2")}
    ph = dataclasses.replace(ph, **flat)
    maps, affine = lowres_maps(ph, thickness=8.0)  # 2 voxels of 4 mm per slab
    assert maps["T1map"].shape == ph.shape[:2] + (7,)
    np.testing.assert_allclose(maps["T1map"][..., 3], ph.t1[..., 0], rtol=1e-5)
    np.testing.assert_allclose(maps["M0map"][..., 0], ph.pd[..., 0], rtol=1e-5)
    # slab k is centred between 1 mm voxels 2k and 2k+1 of the 4 mm grid
    centre = affine @ [0, 0, 1, 1]
    np.testing.assert_allclose(centre[:3], (ph.affine @ [0, 0, 2.5, 1])[:3])


def test_deform_changes_anatomy_but_not_tissue_values():
    ph = make_phantom(downsample=4, n_slices=14, seed=0)
    d = deform(ph, 2.0, seed=3)
    assert np.abs(d.pd - ph.pd).mean() > 0.01
    pure_wm = ph.pure & (ph.labels == 3)
    assert np.median(d.t1[d.pure & (d.labels == 3)]) == pytest.approx(np.median(ph.t1[pure_wm]), rel=0.05)


def test_dataset_images_are_the_signal_models_of_the_truth(tmp_path):
    spec = DatasetSpec(subjects=("01",), downsample=4, n_slices=14, modalities=("weighted",),
                       label_thickness=8.0)
    root = write_dataset(tmp_path / "ds", spec)
    anat, truth = root / "sub-01" / "anat", root / "derivatives" / "truth" / "sub-01" / "anat"
    t1, t2, m0 = (nb.load(truth / f"sub-01_{s}.nii.gz").get_fdata() for s in ("T1map", "T2map", "M0map"))
    ok = m0 > 0
    t1w, t2w = (nb.load(anat / f"sub-01_{s}.nii.gz").get_fdata() for s in ("T1w", "T2w"))
    np.testing.assert_allclose(t1w[ok], mprage_signal(m0, np.where(ok, t1, 1), MPRAGE)[ok], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(t2w[ok], tse_signal(m0, np.where(ok, t1, 1), np.where(ok, t2, 1), TSE)[ok],
                               rtol=1e-4, atol=1e-6)
    meta = json.loads((anat / "sub-01_T1w.json").read_text())
    assert meta["InversionTime"] == MPRAGE.inversion_time and meta["FlipAngle"] == pytest.approx(9.0)
    low = nb.load(root / "derivatives" / "lowres" / "sub-01" / "anat" / "sub-01_T1map.nii.gz")
    assert low.shape[2] == 7 and low.header.get_zooms()[2] == pytest.approx(8.0)


def test_flair_image_and_noisy_labels(tmp_path):
    """``flair``: the FLAIR model of the truth with its sidecar; ``label_noise``: thick-slice labels
    times 1 + noise of that relative SD (against the noise-free labels of the same phantom)."""
    kw = dict(subjects=("01",), downsample=4, n_slices=14, modalities=("weighted",), label_thickness=8.0)
    root = write_dataset(tmp_path / "ds", DatasetSpec(**kw, flair=True, label_noise=0.05))
    clean = write_dataset(tmp_path / "clean", DatasetSpec(**kw))
    anat, truth = root / "sub-01" / "anat", root / "derivatives" / "truth" / "sub-01" / "anat"
    t1, t2, m0 = (nb.load(truth / f"sub-01_{s}.nii.gz").get_fdata() for s in ("T1map", "T2map", "M0map"))
    ok = m0 > 0
    flair = nb.load(anat / "sub-01_FLAIR.nii.gz").get_fdata()
    np.testing.assert_allclose(flair[ok], flair_signal(m0, np.where(ok, t1, 1), np.where(ok, t2, 1), FLAIR)[ok],
                               rtol=1e-4, atol=1e-6)
    meta = json.loads((anat / "sub-01_FLAIR.json").read_text())
    assert meta["InversionTime"] == FLAIR.inversion_time and meta["RepetitionTime"] == FLAIR.tr
    assert not (clean / "sub-01" / "anat" / "sub-01_FLAIR.nii.gz").exists()
    low = "derivatives/lowres/sub-01/anat/sub-01_T1map.nii.gz"
    noisy, exact = nb.load(root / low).get_fdata(), nb.load(clean / low).get_fdata()
    ratio = noisy[exact > 0.5] / exact[exact > 0.5] - 1
    assert ratio.std() == pytest.approx(0.05, rel=0.15) and abs(ratio.mean()) < 0.01
