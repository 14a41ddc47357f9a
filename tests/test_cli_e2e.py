"""End to end: the CLI on a tiny noise-free synthetic dataset, checked against the truth."""

import json

import nibabel as nib
import numpy as np
import pytest

from qmriprep.cli.run import main
from qmriprep.synth.dataset import DatasetSpec, write_dataset

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    bids = write_dataset(root / "bids", DatasetSpec(downsample=8, n_slices=6, b1_downsample=1))
    out = root / "out"
    code = main([str(bids), str(out), "participant", "-w", str(root / "work"), "--nprocs", "1",
                 "--omp-nthreads", "1", "--estimators", "mese:varpro,loglinear", "vfa:all",
                 "--b1-source", "TB1TFL", "--align-series", "never", "--b1-registration", "header"])
    return bids, out, code


def _tissue(bids, label):
    """Voxels labelled ``label`` (the phantom mixes partial-volume voxels into one compartment,
    so every voxel follows the signal model exactly)."""
    t = bids / "derivatives" / "truth" / "sub-01" / "anat"
    return np.asarray(nib.load(t / "sub-01_dseg.nii.gz").dataobj) == label


def _truth(bids, suffix):
    return np.asarray(nib.load(bids / "derivatives" / "truth" / "sub-01" / "anat" /
                               f"sub-01_{suffix}.nii.gz").dataobj, dtype=float)


def test_cli_runs_and_writes_every_map(run):
    _, out, code = run
    assert code == 0
    anat = out / "sub-01" / "anat"
    for name in ("desc-varpro_T2map", "desc-loglinear_T2map", "desc-varpro_R2map",
                 "desc-varproT2_M0map", "desc-varproRMSE_T2map", "desc-varpro_T2starmap",
                 "desc-nlls_T1map", "desc-linear_T1map", "desc-nllsT1_M0map", "fmap/desc-vfa_TB1map",
                 "acq-mese_desc-brain_mask"):
        folder, name = (out / "sub-01" / "fmap", name[5:]) if name.startswith("fmap/") else (anat, name)
        assert (folder / f"sub-01_{name}.nii.gz").exists(), name
        assert (folder / f"sub-01_{name}.json").exists(), name
    assert (out / "sub-01" / "fmap" / "sub-01_desc-tfl_TB1map.nii.gz").exists()
    rmse = json.loads((anat / "sub-01_desc-varproRMSE_T2map.json").read_text())
    assert rmse["Units"] == "arbitrary"  # signal units, not the T2 map's seconds
    assert (out / "sub-01.html").exists()
    assert not list(out.glob(".qmriprep-staging*")), "staging folder left behind"
    assert list((out / "sub-01" / "log").glob("*/qmriprep.toml"))
    desc = json.loads((out / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative" and desc["GeneratedBy"][0]["Name"] == "qmriprep"


def test_peak_memory_of_every_node_is_recorded_and_reported(run):
    _, out, _ = run
    (tsv,) = (out / "sub-01" / "log").glob("*/resources.tsv")
    rows = [line.split("\t") for line in tsv.read_text().splitlines()]
    assert rows[0] == ["node", "seconds", "peak_rss_gb", "estimate_gb"]
    fits = {name: float(peak) for name, _, peak, _ in rows[1:] if "fit" in name}
    assert fits, rows  # the fitting nodes are there, with a process size a Python/torch step has
    assert all(0.05 < peak < 8.0 for peak in fits.values()), fits
    peaks = [float(r[2]) for r in rows[1:]]
    assert peaks == sorted(peaks, reverse=True)
    assert all(float(r[3]) >= 0.9 for r in rows[1:] if "fit" in r[0])  # worker steps declare memory
    assert "Peak RSS (GB)" in (out / "sub-01.html").read_text()


def test_cli_sidecars_carry_provenance(run):
    _, out, _ = run
    meta = json.loads((out / "sub-01" / "anat" / "sub-01_desc-nlls_T1map.json").read_text())
    assert meta["Units"] == "s"
    assert "SPGR" in meta["EstimationAlgorithm"] and meta["EstimationReference"]
    assert "bids:raw:sub-01/anat/sub-01_flip-1_VFA.nii.gz" in meta["Sources"]
    assert any("TB1TFL" in s for s in meta["Sources"])
    assert meta["FlipAngle"] == [3.0, 8.0, 15.0, 20.0]


@pytest.mark.parametrize("name, truth", [("desc-varpro_T2map", "T2map"),
                                         ("desc-loglinear_T2map", "T2map"),
                                         ("desc-varpro_T2starmap", "T2starmap"),
                                         ("desc-nlls_T1map", "T1map"),
                                         ("desc-linear_T1map", "T1map"),
                                         ("desc-varproT2_M0map", "M0map")])
def test_cli_noise_free_maps_match_truth(run, name, truth):
    """Noise-free data and a B1 map on the same grid: the pipeline reproduces the truth."""
    bids, out, _ = run
    est = np.asarray(nib.load(out / "sub-01" / "anat" / f"sub-01_{name}.nii.gz").dataobj, dtype=float)
    ref = _truth(bids, truth)
    for label in (2, 3):  # GM, WM
        m = _tissue(bids, label)
        assert m.sum() > 50
        rel = np.abs(est[m] - ref[m]) / ref[m]
        assert np.median(rel) < 0.005, (name, label, np.median(rel))


def test_cli_group_level_summarises_maps(run):
    _, out, _ = run
    assert main([str(run[0]), str(out), "group", "--template-resolution", "4", "-w", str(out.parent / "gw")]) == 0
    lines = (out / "group" / "qmriprep_maps.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    rows = [dict(zip(header, line.split("\t"))) for line in lines[1:]]
    t1 = [r for r in rows if (r["map"], r["method"], r["region"]) == ("T1map", "nlls", "brain")]
    assert {r["space"] for r in t1} == {"native", "MNI152NLin2009aAsym"}
    assert all(0.5 < float(r["median"]) < 3.0 for r in t1)


def test_boilerplate_only_writes_methods_and_no_maps(run, tmp_path):
    bids = run[0]
    out = tmp_path / "out"
    assert main([str(bids), str(out), "participant", "--boilerplate-only",
                 "--estimators", "mese:nlls", "-w", str(tmp_path / "w")]) == 0
    text = (out / "logs" / "CITATION.md").read_text()
    mese = next(p for p in text.split("\n\n") if "MESE series" in p)
    assert "nlls fitting" in mese and "[@cpmg; @levenberg]" in mese and "golub1973" not in mese
    assert "golub1973" in text  # MEGRE keeps its default, VarPro
    assert (out / "logs" / "CITATION.bib").exists()
    assert not list(out.rglob("*.nii*"))


def test_config_file_repeats_the_settings_of_a_run(run, tmp_path):
    """The TOML saved in the log folder, given back with --config-file, restores the settings."""
    from qmriprep.cli.parser import build_parser
    from qmriprep.cli.run import _build_config

    bids, out, _ = run
    saved = next((out / "sub-01" / "log").glob("*/qmriprep.toml"))
    opts = build_parser().parse_args([str(bids), str(tmp_path / "again"), "participant",
                                      "--config-file", str(saved)])
    config = _build_config(opts)
    assert config.workflow.estimators["vfa"] == ["nlls", "linear"]
    assert config.workflow.b1_source == "TB1TFL" and config.workflow.align_series == "never"
    assert config.execution.output_dir == str(tmp_path / "again")
    assert config.execution.run_uuid != saved.parent.name  # its own log folder
