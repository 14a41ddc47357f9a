"""pc-bSSFP through the CLI: end to end against the truth, and its bad inputs."""

import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from qmriprep.cli.run import main
from qmriprep.errors import EXIT_INPUT
from qmriprep.synth.dataset import DatasetSpec, write_dataset

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("bssfp") / "bids",
                         DatasetSpec(downsample=8, n_slices=4, modalities=("bSSFP", "TB1TFL"),
                                     bssfp_cycles=(12,), b1_downsample=1))


@pytest.fixture(scope="module")
def run(pristine, tmp_path_factory):
    root = tmp_path_factory.mktemp("bssfp_run")
    code = main([str(pristine), str(root / "out"), "participant", "-w", str(root / "work"),
                 "--nprocs", "1", "--estimators", "bssfp:miracle,svnn,svnncomplex",
                 "--b1-registration", "header"])
    return root / "out", code


def _maps(out, desc, suffix, datatype="anat"):
    return np.asarray(nib.load(out / "sub-01" / datatype /
                               f"sub-01_acq-pc12_desc-{desc}_{suffix}.nii.gz").dataobj, dtype=float)


def _truth(bids, name):
    return np.asarray(nib.load(bids / "derivatives" / "truth" / "sub-01" / "anat" /
                               f"sub-01_{name}.nii.gz").dataobj, dtype=float)


@pytest.mark.parametrize("desc", ["miracle", "svnn", "svnncomplex"])
def test_bssfp_maps_match_truth(pristine, run, desc):
    out, code = run
    assert code == 0
    wm = _truth(pristine, "dseg") == 3
    for suffix, tol in (("T1map", 0.02), ("T2map", 0.01)):
        est, ref = _maps(out, desc, suffix), _truth(pristine, suffix)
        rel = np.abs(est[wm] - ref[wm]) / ref[wm]
        assert np.median(rel) < tol, (desc, suffix, np.median(rel))


def test_bssfp_off_resonance_and_provenance(pristine, run):
    out, _ = run
    hz = _maps(out, "svnncomplex", "fieldmap", "fmap")
    truth = np.asarray(nib.load(pristine / "derivatives" / "truth" / "sub-01" / "fmap" /
                                "sub-01_fieldmap.nii.gz").dataobj, dtype=float)
    wm = _truth(pristine, "dseg") == 3
    assert np.median(np.abs(hz[wm] - truth[wm])) < 2.0  # Hz
    meta = json.loads((out / "sub-01" / "anat" / "sub-01_acq-pc12_desc-svnn_T1map.json").read_text())
    assert len(meta["NetworkWeightsSHA256"]) == 64 and meta["NetworkSource"] == "shipped"
    assert meta["RFPhaseIncrement"][0] == pytest.approx(15.0) and meta["Units"] == "s"
    assert "TB1TFL" in " ".join(meta["Sources"])


def test_miracle_sidecar_counts_voxels_not_converged(run):
    out, _ = run
    meta = json.loads((out / "sub-01" / "anat" / "sub-01_acq-pc12_desc-miracle_T2map.json").read_text())
    assert meta["NotConvergedVoxels"] == 0  # Newton converges also where T2 nears T1 (CSF)


def test_miracle_writes_sd_maps_from_the_measured_noise(run):
    """Noise-free series: the background noise is (near) zero, and so is every SD; the maps exist
    with units and the description of how they were computed."""
    out, _ = run
    for suffix in ("T1map", "T2map"):
        meta = json.loads((out / "sub-01" / "anat" / f"sub-01_acq-pc12_desc-miracleSD_{suffix}.json").read_text())
        assert meta["Units"] == "s" and "propagated" in meta["Description"] and "NoiseSigma" in meta
        sd = _maps(out, "miracleSD", suffix)
        assert np.isfinite(sd).all() and (sd >= 0).all()
        assert np.median(sd[_maps(out, "miracle", suffix) > 0]) < 1e-3  # s: no noise, no spread


@pytest.fixture
def bids(pristine, tmp_path):
    return shutil.copytree(pristine, tmp_path / "bids")


def _fail(bids, tmp_path, capsys, *extra):
    code = main([str(bids), str(tmp_path / "out"), "participant", "-w", str(tmp_path / "w"),
                 "--nprocs", "1", "--estimators", "bssfp:miracle", *extra])
    msg = capsys.readouterr().out
    assert code == EXIT_INPUT, msg
    assert not list((tmp_path / "out").rglob("*.nii*")) if (tmp_path / "out").exists() else True
    return msg


def _sidecar(bids, part):
    return bids / "sub-01" / "anat" / f"sub-01_acq-pc12_part-{part}_bSSFP.json"


def _edit(path, **changes):
    meta = json.loads(path.read_text())
    meta.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        meta.pop(key)
    path.write_text(json.dumps(meta))


def test_missing_rf_phase_increment(bids, tmp_path, capsys):
    for part in ("mag", "phase"):
        _edit(_sidecar(bids, part), RFPhaseIncrement=None)
    assert "RFPhaseIncrement" in _fail(bids, tmp_path, capsys)


def test_rf_phase_increment_length_mismatch(bids, tmp_path, capsys):
    for part in ("mag", "phase"):
        _edit(_sidecar(bids, part), RFPhaseIncrement=[15.0 * k for k in range(10)])
    msg = _fail(bids, tmp_path, capsys)
    assert "RFPhaseIncrement has 10 values" in msg and "12 volumes" in msg


def test_fewer_than_four_cycles(bids, tmp_path, capsys):
    for part in ("mag", "phase"):
        path = bids / "sub-01" / "anat" / f"sub-01_acq-pc12_part-{part}_bSSFP.nii.gz"
        img = nib.load(path)
        nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[..., :3], img.affine), path)
        _edit(_sidecar(bids, part), RFPhaseIncrement=[60.0, 180.0, 300.0])
    assert "at least 4 phase cycles" in _fail(bids, tmp_path, capsys)


def test_magnitude_and_phase_shapes_differ(bids, tmp_path, capsys):
    path = bids / "sub-01" / "anat" / "sub-01_acq-pc12_part-phase_bSSFP.nii.gz"
    img = nib.load(path)
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[:-2], img.affine), path)
    assert "part-phase_bSSFP" in _fail(bids, tmp_path, capsys)


def test_phase_not_in_radians(bids, tmp_path, capsys):
    path = bids / "sub-01" / "anat" / "sub-01_acq-pc12_part-phase_bSSFP.nii.gz"
    img = nib.load(path)
    nib.save(nib.Nifti1Image(np.degrees(np.asarray(img.dataobj)), img.affine), path)
    assert "radians" in _fail(bids, tmp_path, capsys)


def test_no_b1_map_strict_fails_and_default_warns(bids, tmp_path, capsys):
    shutil.rmtree(bids / "sub-01" / "fmap")
    assert "--strict" in _fail(bids, tmp_path, capsys, "--strict")
    code = main([str(bids), str(tmp_path / "out2"), "participant", "-w", str(tmp_path / "w2"),
                 "--nprocs", "1", "--estimators", "bssfp:svnn"])
    assert code == 0
    assert "B1 = 1" in capsys.readouterr().out
    meta = json.loads((tmp_path / "out2" / "sub-01" / "anat" /
                       "sub-01_acq-pc12_desc-svnn_T1map.json").read_text())
    assert "B1 = 1 assumed" in meta["B1Correction"]
    assert "B1 = 1 assumed" in (tmp_path / "out2" / "sub-01.html").read_text()


def test_new_protocol_trains_a_network_then_reuses_it(bids, tmp_path, capsys):
    """A protocol without shipped weights: trained at run time, cached, reused by the next run."""
    for part in ("mag", "phase"):
        _edit(_sidecar(bids, part), EchoTime=0.0025)  # not the seed's 2.4 ms: no shipped weights
    cache = tmp_path / "cache"
    args = ["participant", "--nprocs", "1", "--estimators", "bssfp:svnn", "--nn-samples", "60000",
            "--nn-epochs", "30", "--nn-cache-dir", str(cache), "--b1-registration", "header"]
    sources = []
    for run_id in ("a", "b"):
        out = tmp_path / f"out{run_id}"
        assert main([str(bids), str(out), *args, "-w", str(tmp_path / f"w{run_id}")]) == 0
        meta = json.loads((out / "sub-01" / "anat" / "sub-01_acq-pc12_desc-svnn_T1map.json").read_text())
        sources.append((meta["NetworkSource"], meta["NetworkWeightsSHA256"]))
    assert sources[0][0] == "trained" and sources[1][0] == "cache"
    assert sources[0][1] == sources[1][1]
    assert list(cache.glob("*.pt"))
    wm = _truth(bids, "dseg") == 3
    est, ref = _maps(tmp_path / "outb", "svnn", "T2map"), _truth(bids, "T2map")
    assert np.median(np.abs(est[wm] - ref[wm]) / ref[wm]) < 0.05
