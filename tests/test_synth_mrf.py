"""Synthetic MRF series: schedule, noise, per-frame undersampling, and the dataset hook."""

import json

import nibabel as nib
import numpy as np

from qmriprep.synth.dataset import DatasetSpec, write_dataset
from qmriprep.synth.mrf import fisp_schedule, undersample


def test_schedule_lists_one_value_per_frame_in_bids_units():
    meta = fisp_schedule(120)
    assert len(meta["FlipAngle"]) == len(meta["RepetitionTimeExcitation"]) == 120
    assert 5 <= min(meta["FlipAngle"]) and max(meta["FlipAngle"]) <= 75
    assert 0.009 < min(meta["RepetitionTimeExcitation"]) and max(meta["RepetitionTimeExcitation"]) < 0.015
    assert meta["EchoTime"] < min(meta["RepetitionTimeExcitation"])


def test_undersampling_is_unbiased_over_frames_and_differs_per_frame():
    rng = np.random.default_rng(0)
    img = np.zeros((16, 16, 1, 400), np.complex64)
    img[4:12, 5:11] = 1.0
    out = undersample(img, 4.0, rng)
    assert np.iscomplexobj(out)
    assert not np.allclose(out[..., 0], out[..., 1])  # each frame its own lines
    np.testing.assert_allclose(out.mean(-1), img[..., 0], atol=0.15)  # density compensated


def test_mrf_only_on_request(tmp_path):
    plain = write_dataset(tmp_path / "plain", DatasetSpec(downsample=8, n_slices=2, modalities=("MESE",)))
    assert "MRF" not in (plain / ".bidsignore").read_text()
    assert "mrf" not in (plain / "README").read_text()
    bids = write_dataset(tmp_path / "mrf", DatasetSpec(downsample=8, n_slices=2, modalities=("MRF",),
                                                       mrf_frames=50, snr=10, mrf_undersampling=3))
    img = nib.load(bids / "sub-01" / "anat" / "sub-01_MRF.nii.gz")
    meta = json.loads((bids / "sub-01" / "anat" / "sub-01_MRF.json").read_text())
    assert img.shape[3] == 50 == len(meta["FlipAngle"]) and np.iscomplexobj(np.asanyarray(img.dataobj))
    assert "*_MRF.*" in (bids / ".bidsignore").read_text()
    sim = json.loads((bids / "derivatives" / "truth" / "sub-01" / "sub-01_simulation.json").read_text())
    assert sim["mrf_undersampling"] == 3 and "sub-01/anat/sub-01_MRF.nii.gz" in sim["noise_sigma"]
