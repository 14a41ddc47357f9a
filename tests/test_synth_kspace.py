"""Synthetic multi-coil k-space (ISMRMRD) of the phantom, its truth, and the DESS images."""

import json

import nibabel as nb
import numpy as np
import pytest

from qmriprep.bids.protocols import DESSProtocol
from qmriprep.physics.dess import dess_signals
from qmriprep.recon.fft import centred_fft
from qmriprep.recon.io import read_kspace
from qmriprep.synth import DatasetSpec, make_phantom, write_dataset
from qmriprep.synth.__main__ import build_parser
from qmriprep.synth.bssfp import receiver_phase
from qmriprep.synth.kspace import DESS_PROTOCOL, check_settings, coil_maps

SMALL = {"downsample": 8, "n_slices": 8}
KSPACE = {"contrasts": ("MESE", "VFA", "DESS"), "acceleration": 4, "coils": 4, "mese_echoes": 2}


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("synth") / "ksp",
                         DatasetSpec(snr=40, modalities=("DESS",), kspace=KSPACE, **SMALL))


def _names():
    return ["echo-1_MESE", "echo-2_MESE"] + [f"flip-{i}_VFA" for i in range(1, 5)] + \
        ["echo-1_DESS", "echo-2_DESS"]


def test_files_headers_and_acceleration(ds):
    src = ds / "sourcedata" / "kspace" / "sub-01" / "anat"
    assert sorted(p.name for p in src.glob("*.h5")) == sorted(f"sub-01_{n}.h5" for n in _names())
    ref = nb.load(ds / "sub-01" / "anat" / "sub-01_echo-1_DESS.nii.gz")
    masks = {}
    for name in _names():
        scan = read_kspace(src / f"sub-01_{name}.h5")
        side = json.loads((src / f"sub-01_{name}.json").read_text())
        achieved = scan.mask.size / scan.mask.sum()
        assert achieved == pytest.approx(4, rel=0.05)
        assert side["ParallelReductionFactorInPlane"] == pytest.approx(achieved, rel=1e-3)
        assert scan.layout == ("2d" if "MESE" in name else "3d")
        assert scan.kspace.shape[1] == 4 and scan.shape == ref.shape
        np.testing.assert_allclose(scan.affine, ref.affine, atol=1e-6)
        keys = ("RepetitionTimeExcitation", "FlipAngle") + (() if "VFA" in name else ("EchoTime",))
        for key in keys:
            assert scan.metadata[key] == pytest.approx(side[key])
        masks[name] = scan.mask
    assert side["SpoilerGradientAmplitude"] == DESS_PROTOCOL["SpoilerGradientAmplitude"]
    assert side["EchoTime"] == DESS_PROTOCOL["EchoTime"][1]
    np.testing.assert_array_equal(masks["echo-1_MESE"], masks["echo-2_MESE"])
    np.testing.assert_array_equal(masks["echo-1_DESS"], masks["echo-2_DESS"])
    assert not np.array_equal(masks["flip-1_VFA"], masks["flip-2_VFA"])
    record = json.loads((ds / "derivatives/truth/sub-01/sub-01_simulation.json").read_text())
    assert record["kspace"]["settings"]["acceleration"] == 4
    assert "kspace" in (ds / "README").read_text()


@pytest.mark.parametrize("name", ["echo-2_MESE", "flip-3_VFA", "echo-2_DESS"])
def test_fully_sampled_combination_equals_truth_up_to_noise(ds, name):
    full = read_kspace(ds / f"derivatives/truth/sub-01/kspace/sub-01_rec-fullysampled_{name}.h5")
    assert full.mask.all()
    truth = nb.load(ds / f"derivatives/truth/sub-01/anat/sub-01_rec-truth_{name}.nii.gz")
    grid = make_phantom(**SMALL)
    maps = coil_maps(grid, 4) * np.exp(1j * receiver_phase(grid))[None]
    coils = centred_fft(full.kspace, (2, 3), inverse=True)  # (S, N, H, W)
    combined = full.to_volume(np.sum(maps_as_problems(maps, full).conj() * coils, 1))
    record = json.loads((ds / "derivatives/truth/sub-01/sub-01_simulation.json").read_text())
    sigma = record["kspace"]["noise_sigma"][f"sourcedata/kspace/sub-01/anat/sub-01_{name}.h5"]
    diff = np.abs(combined) - truth.get_fdata()
    inside = truth.get_fdata() > 5 * sigma
    assert np.std(diff[inside]) == pytest.approx(sigma, rel=0.15)
    assert abs(np.mean(diff[inside])) < 0.2 * sigma


def maps_as_problems(maps, scan):
    """(N, X, Y, Z) coil maps arranged like the scan's 2-D problems (S, N, H, W)."""
    return maps.transpose(1, 0, 2, 3) if scan.layout == "3d" else maps.transpose(3, 0, 2, 1)


def test_dess_images_and_sidecars(ds):
    grid = make_phantom(**SMALL)
    p = DESS_PROTOCOL
    protocol = DESSProtocol(tuple(p["EchoTime"]), p["RepetitionTimeExcitation"],
                            np.deg2rad(p["FlipAngle"]), p["SpoilerGradientAmplitude"],
                            p["SpoilerGradientDuration"])
    clean = dess_signals(grid.pd, grid.safe("t1"), grid.safe("t2"), protocol, b1=grid.b1)
    for i, s in enumerate(clean, 1):
        base = ds / "sub-01" / "anat" / f"sub-01_echo-{i}_DESS"
        side = json.loads(base.with_suffix(".json").read_text())
        assert side["EchoTime"] == p["EchoTime"][i - 1]
        for key in ("RepetitionTimeExcitation", "FlipAngle", "SpoilerGradientAmplitude",
                    "SpoilerGradientDuration"):
            assert side[key] == p[key]
        truth = nb.load(ds / f"derivatives/truth/sub-01/anat/sub-01_rec-truth_echo-{i}_DESS.nii.gz")
        np.testing.assert_allclose(truth.get_fdata(), s, atol=1e-5)
        img = nb.load(base.with_suffix(".nii.gz"))
        assert img.shape == grid.shape and np.corrcoef(img.get_fdata().ravel(), s.ravel())[0, 1] > 0.9


def test_settings_and_cli():
    assert check_settings(None, 10) is None
    assert check_settings(True, 10)["snr"] == 10
    with pytest.raises(ValueError, match="unknown settings"):
        check_settings({"accel": 4}, None)
    with pytest.raises(ValueError, match="contrasts"):
        check_settings({"contrasts": ["MEGRE"]}, None)
    args = build_parser().parse_args(["out", "--kspace", "MESE,VFA", "--acceleration", "12"])
    assert args.kspace == "MESE,VFA" and args.acceleration == 12


def test_thin_slabs_and_fewer_kspace_echoes_give_datasets_qmriprep_accepts(tmp_path):
    """``--kspace MESE`` (8 k-space echoes) wrote 16 image echoes, and a 4-slice 3-D slab had no
    calibration block qmriprep accepts: both datasets were refused (issue 15)."""
    from qmriprep.cli.run import main
    from qmriprep.recon.coils import MIN_CALIB, calibration_region

    ds = write_dataset(tmp_path / "ds", DatasetSpec(downsample=8, n_slices=4, modalities=("MESE", "VFA"),
                                                    kspace={"contrasts": ("MESE", "VFA")}))
    assert len(list((ds / "sub-01" / "anat").glob("*_MESE.nii.gz"))) == 8
    scan = read_kspace(ds / "sourcedata" / "kspace" / "sub-01" / "anat" / "sub-01_flip-1_VFA.h5")
    assert calibration_region(scan.mask) == (MIN_CALIB, 4)  # the whole 4-partition axis
    assert scan.mask.sum() == MIN_CALIB * 4  # R = 8 leaves fewer points than the block: R ~ 4
    assert main([str(ds), str(tmp_path / "out"), "participant", "-w", str(tmp_path / "w"),
                 "--boilerplate-only", "--skip-bids-validation"]) == 0
