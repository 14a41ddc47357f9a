"""The CLI measures the noise of every series and writes Cramer-Rao SD maps (issue 11)."""

import json

import nibabel as nib
import numpy as np
import pytest

from qmriprep.cli.run import main
from qmriprep.synth.dataset import DatasetSpec, write_dataset

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("noise")
    bids = write_dataset(root / "bids", DatasetSpec(downsample=4, n_slices=12, snr=30.0,
                                                    modalities=("MESE", "VFA", "TB1DAM", "bSSFP"),
                                                    bssfp_cycles=(12,)))
    out = root / "out"
    code = main([str(bids), str(out), "participant", "-w", str(root / "work"), "--nprocs", "1",
                 "--omp-nthreads", "1", "--estimators", "mese:varpro", "vfa:nlls", "bssfp:miracle", "bssfp:svnn",
                 "--denoise", "mppca", "--align-series", "never", "--b1-registration", "header",
                 "--nn-cache-dir", str(root / "nn")])
    return bids, out, code


def _sidecar(out, name):
    return json.loads((out / "sub-01" / "anat" / f"sub-01_{name}.json").read_text())


def test_sidecars_carry_the_measured_noise(run):
    bids, out, code = run
    assert code == 0
    record = json.loads(next((bids / "derivatives" / "truth").rglob("*_simulation.json")).read_text())
    for name, series in (("desc-varpro_T2map", "MESE"), ("desc-nlls_T1map", "VFA")):
        meta = _sidecar(out, name)
        sigma = next(v for k, v in record["noise_sigma"].items() if k.endswith(f"_{series}.nii.gz"))
        assert abs(meta["NoiseSigma"] / sigma - 1) < 0.10, (name, meta["NoiseSigma"], sigma)
        assert meta["NoiseMethod"].startswith("background") and meta["SNR"] > 5
        assert meta["NoiseChannels"] == pytest.approx(1, rel=0.1)  # the synthetic series' one channel
        assert "MP-PCA" in meta["Denoising"]  # --denoise mppca


def test_sd_maps_are_written_with_description_and_units(run):
    _, out, _ = run
    anat = out / "sub-01" / "anat"
    for name, unit in (("desc-varproSD_T2map", "s"), ("desc-nllsSD_T1map", "s"),
                       ("desc-varproT2SD_M0map", None)):
        meta = _sidecar(out, name)
        assert "Cramer-Rao" in meta["Description"] and "NoiseSigma" in meta
        if unit:
            assert meta["Units"] == unit
        sd = np.asarray(nib.load(anat / f"sub-01_{name}.nii.gz").dataobj)
        mask = np.asarray(nib.load(next(anat.glob("*mese*brain_mask.nii.gz"))).dataobj) > 0
        assert np.isfinite(sd).all() and np.median(sd[mask]) > 0


def test_miracle_sd_is_the_noise_propagated_through_the_configurations(run):
    """pc-bSSFP at SNR 30 (4 mm): MIRACLE's SD maps hold the measured noise relative to each voxel's
    configuration norm: a few % of T1 and T2 in white matter (0 if the norm or sigma were lost)."""
    bids, out, _ = run
    anat = out / "sub-01" / "anat"
    wm = np.asarray(nib.load(bids / "derivatives" / "truth" / "sub-01" / "anat" / "sub-01_dseg.nii.gz").dataobj) == 3
    for suffix in ("T1map", "T2map"):
        est = np.asarray(nib.load(anat / f"sub-01_acq-pc12_desc-miracle_{suffix}.nii.gz").dataobj)
        sd = np.asarray(nib.load(anat / f"sub-01_acq-pc12_desc-miracleSD_{suffix}.nii.gz").dataobj)
        rel = np.median(sd[wm & (est > 0)] / est[wm & (est > 0)])
        assert 0.01 < rel < 0.2, (suffix, rel)
        assert "NoiseSigma" in _sidecar(out, f"acq-pc12_desc-miracleSD_{suffix}")


def test_sd_of_a_denoised_series_is_calibrated_end_to_end(run):
    """MESE at SNR 30 denoised by --denoise mppca: the T2 SD map (noise propagated through the
    kept components) covers the truth for 58-76 % of the pure GM and WM voxels."""
    bids, out, _ = run
    truth = bids / "derivatives" / "truth" / "sub-01" / "anat"
    load = lambda path: np.asarray(nib.load(path).dataobj, dtype=float)  # noqa: E731
    labels, t2 = load(truth / "sub-01_dseg.nii.gz"), load(truth / "sub-01_T2map.nii.gz")
    est = load(out / "sub-01" / "anat" / "sub-01_desc-varpro_T2map.nii.gz")
    sd = load(out / "sub-01" / "anat" / "sub-01_desc-varproSD_T2map.nii.gz")
    tissue = np.isin(labels, (2, 3)) & (est > 0)
    assert 0.58 < np.mean(np.abs(est - t2)[tissue] <= sd[tissue]) < 0.76


def test_network_on_denoised_cycles_trains_for_their_noise_and_its_sd_is_calibrated(run):
    """pc-bSSFP denoised by --denoise mppca: the noise-matched SVNN trains for the (lower) noise of
    the denoised configurations and its SD maps, the head's noise part rescaled to that noise,
    cover the truth for 55-80 % of pure GM and WM voxels (4 mm)."""
    bids, out, _ = run
    truth = bids / "derivatives" / "truth" / "sub-01" / "anat"
    anat = out / "sub-01" / "anat"
    load = lambda path: np.asarray(nib.load(path).dataobj, dtype=float)  # noqa: E731
    labels, pure = load(truth / "sub-01_dseg.nii.gz"), load(truth / "sub-01_desc-pure_mask.nii.gz") > 0
    meta = _sidecar(out, "acq-pc12_desc-svnn_T1map")
    assert "MP-PCA" in meta["Denoising"] and 0 < meta["TrainingNoiseSigma"] < meta["NoiseSigma"]
    for suffix in ("T1map", "T2map"):
        est = load(anat / f"sub-01_acq-pc12_desc-svnn_{suffix}.nii.gz")
        sd = load(anat / f"sub-01_acq-pc12_desc-svnnSD_{suffix}.nii.gz")
        ref = load(truth / f"sub-01_{suffix}.nii.gz")
        tissue = np.isin(labels, (2, 3)) & pure & (est > 0)
        assert 0.55 < np.mean(np.abs(est - ref)[tissue] <= sd[tissue]) < 0.80, suffix
