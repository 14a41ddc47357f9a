"""End to end: undersampled multi-coil k-space (ISMRMRD) -> rec-<method> images -> maps, and bad input."""

from __future__ import annotations

import json
import shutil

import nibabel as nb
import numpy as np
import pytest

from qmriprep.cli.run import main
from qmriprep.errors import EXIT_INPUT
from qmriprep.synth import DatasetSpec, write_dataset

pytestmark = pytest.mark.e2e
#: a ZSSSL small enough for CI (the numbers that matter are in benchmarks/RESULTS.md)
TINY = ["--recon-epochs", "2", "--recon-steps", "2", "--recon-features", "8", "--recon-blocks", "1",
        "--recon-unrolls", "2", "--recon-cg-iter", "4"]


@pytest.fixture(scope="module")
def kspace_ds(tmp_path_factory):
    """4 mm phantom, 16 slices, TFL B1 map, noise-free k-space of MESE (2-D), VFA and DESS (3-D) at R = 4."""
    root = tmp_path_factory.mktemp("ks") / "ds"
    return write_dataset(root, DatasetSpec(downsample=4, n_slices=16, modalities=("TB1TFL",),
                                           kspace={"contrasts": ("MESE", "VFA", "DESS"),
                                                   "acceleration": 4}))


@pytest.fixture(scope="module")
def kspace_run(kspace_ds, tmp_path_factory):
    out = tmp_path_factory.mktemp("ks_out") / "out"
    code = main([str(kspace_ds), str(out), "participant", "-w", str(out.parent / "work"),
                 "--recon", "cgsense", "zsssl", "--nprocs", "2", *TINY])
    return code, out


def _truth(ds, name):
    return nb.load(ds / "derivatives" / "truth" / "sub-01" / "anat" / f"sub-01_{name}.nii.gz").get_fdata()


def _median_errors(ds, est, truth_name):
    dseg, pure, truth = _truth(ds, "dseg"), _truth(ds, "desc-pure_mask") > 0, _truth(ds, truth_name)
    return [float(np.median(np.abs(est[(dseg == lab) & pure] / truth[(dseg == lab) & pure] - 1)))
            for lab in (2, 3)]  # GM, WM


def test_every_collection_is_reconstructed_then_mapped(kspace_run, kspace_ds):
    code, out = kspace_run
    assert code == 0
    anat = out / "sub-01" / "anat"
    for rec in ("cgsense", "zsssl"):
        for name in [f"echo-{i}_MESE" for i in range(1, 9)] + [f"flip-{i}_VFA" for i in range(1, 5)] + \
                    ["echo-1_DESS", "echo-2_DESS"]:
            assert (anat / f"sub-01_rec-{rec}_{name}.nii.gz").exists(), (rec, name)
        for name in ("desc-varpro_T2map", "desc-nlls_T1map", "desc-qdess_T2map"):
            assert (anat / f"sub-01_rec-{rec}_{name}.nii.gz").exists(), (rec, name)
        assert (out / "sub-01" / "fmap" / f"sub-01_rec-{rec}_desc-vfa_TB1map.nii.gz").exists(), rec
    meta = json.loads((anat / "sub-01_rec-zsssl_echo-1_MESE.json").read_text())
    assert meta["ReconstructionMethod"] == "zsssl" and meta["Acceleration"][0] == pytest.approx(4.0, rel=0.05)
    assert len(meta["WeightsSHA256"]) == 64 and meta["RandomSeed"] == 0 and meta["EpochsRun"] == 2
    model = out / meta["ModelFile"]
    assert meta["ModelFile"] == "sub-01/models/sub-01_rec-zsssl_MESE.pt" and model.exists()
    from qmriprep.recon.zsssl import load_model

    assert load_model(model)[1]["sha256"] == meta["WeightsSHA256"]  # the weights' hash, not the file's
    assert meta["Settings"]["mel"] is True and meta["Sources"][0].startswith("bids:raw:sourcedata/kspace/")
    t1 = json.loads((anat / "sub-01_rec-cgsense_desc-nlls_T1map.json").read_text())
    assert t1["B1Correction"].startswith("B1+ map") and t1["Units"] == "s"
    citation = (out / "logs" / "CITATION.md").read_text()
    assert "ESPIRiT" in citation and "zero-shot self-supervised" in citation


def test_maps_from_cgsense_at_r4_are_close_to_truth(kspace_run, kspace_ds):
    """Noise-free, R = 4: what remains is residual aliasing of a regularised CG-SENSE."""
    _, out = kspace_run
    anat = out / "sub-01" / "anat"
    t2 = nb.load(anat / "sub-01_rec-cgsense_desc-varpro_T2map.nii.gz").get_fdata()
    t1 = nb.load(anat / "sub-01_rec-cgsense_desc-nlls_T1map.nii.gz").get_fdata()
    assert max(_median_errors(kspace_ds, t2, "T2map")) < 0.10
    assert max(_median_errors(kspace_ds, t1, "T1map")) < 0.10


def _copy(ds, tmp_path):
    dst = tmp_path / "ds"
    shutil.copytree(ds, dst, ignore=shutil.ignore_patterns("derivatives"))
    return dst


def _run_bad(ds, tmp_path, capsys):
    out = tmp_path / "out"
    code = main([str(ds), str(out), "participant", "-w", str(tmp_path / "work"), "--recon", "cgsense"])
    captured = capsys.readouterr()
    err = captured.out + captured.err
    assert code == EXIT_INPUT
    assert not any(out.rglob("*.nii.gz")), "no derivative may be written for bad input"
    return err


def _kspace(ds, name):
    return ds / "sourcedata" / "kspace" / "sub-01" / "anat" / f"sub-01_{name}.h5"


def test_missing_kspace_file_for_a_contrast(kspace_ds, tmp_path, capsys):
    ds = _copy(kspace_ds, tmp_path)
    _kspace(ds, "echo-3_MESE").unlink()
    err = _run_bad(ds, tmp_path, capsys)
    assert "no k-space file for echo-3" in err and "sub-01_echo-1_MESE.h5" in err


def test_sidecar_disagreeing_with_the_header(kspace_ds, tmp_path, capsys):
    ds = _copy(kspace_ds, tmp_path)
    sidecar = _kspace(ds, "echo-2_MESE").with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    meta["EchoTime"] = 0.5
    sidecar.write_text(json.dumps(meta))
    err = _run_bad(ds, tmp_path, capsys)
    assert "sub-01_echo-2_MESE.json" in err and "disagrees with the ISMRMRD header" in err


def _rewrite(path, keep=lambda acq: True, edit=lambda acq: None):
    """Rewrite an ISMRMRD file keeping (and editing) some of its acquisitions."""
    import ismrmrd

    with ismrmrd.Dataset(str(path), "dataset", create_if_needed=False) as dset:
        header = dset.read_xml_header()
        acqs = [dset.read_acquisition(k) for k in range(dset.number_of_acquisitions())]
    n_pe = ismrmrd.xsd.CreateFromDocument(header).encoding[0].encodedSpace.matrixSize.y
    path.unlink()
    with ismrmrd.Dataset(str(path), "dataset", create_if_needed=True) as dset:
        dset.write_xml_header(header)
        for acq in acqs:
            if keep(acq, n_pe):
                edit(acq)
                dset.append_acquisition(acq)


def test_all_zero_acquisitions(kspace_ds, tmp_path, capsys):
    ds = _copy(kspace_ds, tmp_path)

    def zero(acq):
        acq.data[:] = 0

    _rewrite(_kspace(ds, "flip-2_VFA"), keep=lambda acq, n_pe: True, edit=zero)
    err = _run_bad(ds, tmp_path, capsys)
    assert "sub-01_flip-2_VFA.h5" in err and "zero" in err


def test_kspace_without_calibration_region(kspace_ds, tmp_path, capsys):
    """Remove the central phase-encode lines of every echo: ESPIRiT has nothing to calibrate on."""
    ds = _copy(kspace_ds, tmp_path)
    for i in range(1, 9):
        _rewrite(_kspace(ds, f"echo-{i}_MESE"),
                 keep=lambda acq, n_pe: abs(acq.idx.kspace_encode_step_1 - n_pe // 2) > 1)
    err = _run_bad(ds, tmp_path, capsys)
    assert "sub-01_echo-1_MESE.h5" in err and "calibration region" in err


def test_warm_start_from_a_saved_model(kspace_run, kspace_ds, tmp_path):
    """--recon-init: the MESE model transfers to MESE (same contrasts), not to the 4-flip VFA."""
    from qmriprep.recon.pipeline import coil_maps, load_collection, reconstruct
    from qmriprep.recon.zsssl import ReconSettings

    _, out = kspace_run
    model = out / "sub-01" / "models" / "sub-01_rec-zsssl_MESE.pt"
    settings = ReconSettings(n_unrolls=2, cg_iter=3, features=4, blocks=3, max_epochs=1,
                             steps_per_epoch=1)  # architecture taken from the model
    kdir = kspace_ds / "sourcedata" / "kspace" / "sub-01" / "anat"
    mese = load_collection([kdir / f"sub-01_echo-{i}_MESE.h5" for i in range(1, 9)])
    _, info = reconstruct(mese, coil_maps(mese), "zsssl", settings=settings, init=str(model))
    assert info["WarmStart"].startswith("sub-01_rec-zsssl_MESE.pt (sha256 ")
    assert info["Settings"]["features"] == 8 and info["Settings"]["blocks"] == 1
    vfa = load_collection([kdir / f"sub-01_flip-{i}_VFA.h5" for i in range(1, 5)])
    _, info = reconstruct(vfa, coil_maps(vfa), "zsssl", settings=settings, init=str(model))
    assert info["WarmStart"].startswith("not used") and info["Settings"]["features"] == 4
