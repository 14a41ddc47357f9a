"""MR fingerprinting through the CLI: a tiny synthetic series end to end, and its bad inputs."""

import json
import math
import shutil

import nibabel as nib
import numpy as np
import pytest

from qmriprep.cli.run import main
from qmriprep.errors import EXIT_INPUT
from qmriprep.synth.dataset import DatasetSpec, write_dataset

pytestmark = pytest.mark.e2e
STEP = 0.06  # dictionary steps of the run (config file below)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("mrf") / "bids",
                         DatasetSpec(downsample=8, n_slices=4, modalities=("MRF", "TB1TFL"),
                                     b1_downsample=1, mrf_frames=150, snr=100))


def _args(bids, root, *extra):
    toml = root / "mrf.toml"
    toml.write_text(f"[mrf]\nt1_step = {STEP}\nt2_step = {STEP}\nb1_step = 0.05\n"
                    "[mrf_cnn]\nwidth = 4\nblocks = 1\nmax_epochs = 2\nsteps_per_epoch = 1\n")
    return [str(bids), str(root / "out"), "participant", "-w", str(root / "work"), "--nprocs", "1",
            "--b1-registration", "header", "--config-file", str(toml), *extra]


@pytest.fixture(scope="module")
def run(pristine, tmp_path_factory):
    root = tmp_path_factory.mktemp("mrf_run")
    return root / "out", main(_args(pristine, root, "--estimators", "mrf:matching,subspacecnn"))


def _load(path):
    return np.asarray(nib.load(path).dataobj, dtype=float)


def test_mrf_matching_recovers_the_truth_within_one_dictionary_step(pristine, run):
    out, code = run
    assert code == 0
    truth = pristine / "derivatives" / "truth" / "sub-01" / "anat"
    labels = _load(truth / "sub-01_dseg.nii.gz")
    mask = _load(out / "sub-01" / "anat" / "sub-01_acq-mrf_desc-brain_mask.nii.gz") > 0
    for suffix in ("T1map", "T2map", "M0map"):
        est = _load(out / "sub-01" / "anat" / f"sub-01_desc-matching_{suffix}.nii.gz")
        ref = _load(truth / f"sub-01_{suffix}.nii.gz")
        for tissue in (2, 3):  # GM, WM
            m = mask & (labels == tissue)
            assert m.sum() > 50
            assert np.median(np.abs(np.log(est[m] / ref[m]))) < math.log1p(STEP) / 2, (suffix, tissue)
    meta = json.loads((out / "sub-01" / "anat" / "sub-01_desc-matching_T1map.json").read_text())
    assert meta["Units"] == "s" and "Nature" in meta["EstimationReference"]
    assert len(meta["FlipAngle"]) == 150 and meta["B1Correction"].startswith("B1+ map")
    for suffix in ("T1map", "T2map"):  # SNR 100: the SD is mostly the grid's quantisation, STEP / sqrt(12)
        est = _load(out / "sub-01" / "anat" / f"sub-01_desc-matching_{suffix}.nii.gz")
        sd = _load(out / "sub-01" / "anat" / f"sub-01_desc-matchingSD_{suffix}.nii.gz")
        rel = np.median(sd[mask & (labels > 1)] / est[mask & (labels > 1)])
        assert 0.7 < rel / (STEP / math.sqrt(12)) < 1.5, (suffix, rel)


def test_subspace_cnn_runs_through_the_cli_with_its_training_record(pristine, run):
    out, code = run
    assert code == 0
    meta = json.loads((out / "sub-01" / "anat" / "sub-01_desc-subspacecnn_T2map.json").read_text())
    assert meta["TrainingEpochs"] == 2 and len(meta["TrainingCurve"]["train_loss"]) == 2
    assert meta["RandomSeed"] == 0 and "Gao" in meta["EstimationReference"]
    est = _load(out / "sub-01" / "anat" / "sub-01_desc-subspacecnn_T1map.nii.gz")
    ref = _load(pristine / "derivatives" / "truth" / "sub-01" / "anat" / "sub-01_T1map.nii.gz")
    wm = (_load(pristine / "derivatives" / "truth" / "sub-01" / "anat" / "sub-01_dseg.nii.gz") == 3) & (est > 0)
    assert np.median(np.abs(np.log(est[wm] / ref[wm]))) < math.log1p(STEP)
    sd = _load(out / "sub-01" / "anat" / "sub-01_desc-subspacecnnSD_T1map.nii.gz")  # the bound at its atoms
    rel = np.median(sd[wm] / est[wm])
    assert 0.7 < rel / (STEP / math.sqrt(12)) < 1.5, rel
    sidecar = out / "sub-01" / "anat" / "sub-01_desc-subspacecnnSD_T1map.json"
    assert "subspace CNN" in json.loads(sidecar.read_text())["Description"]
    # 2 Adam steps from the identity move the coefficients by more than the noise at SNR 100: the
    # held-out voxels say the CNN is worse than the bound (its SD larger than matching's)
    calibration = meta["SDCalibration"]
    assert calibration["HeldOutVoxels"] > 50
    assert all(v > 1 for v in calibration["VarianceOverBound"].values()), calibration


@pytest.fixture
def bids(pristine, tmp_path):
    return shutil.copytree(pristine, tmp_path / "bids")


@pytest.mark.parametrize("key, words", [("FlipAngle", "FlipAngle has 149 values but the MRF series "
                                                      "has 150 frames"),
                                        ("RepetitionTimeExcitation", "RepetitionTimeExcitation has 149")])
def test_series_length_not_matching_its_lists_is_exit_65_naming_the_file(bids, tmp_path, capsys,
                                                                         key, words):
    sidecar = bids / "sub-01" / "anat" / "sub-01_MRF.json"
    meta = json.loads(sidecar.read_text())
    meta[key] = meta[key][:-1]
    sidecar.write_text(json.dumps(meta))
    code = main(_args(bids, tmp_path))
    msg = capsys.readouterr().out
    assert code == EXIT_INPUT, msg
    assert "sub-01/anat/sub-01_MRF.json" in msg and words in msg
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.nii*"))
