"""The estimator registry: declarations drive the CLI, graph, sidecars and report.

A toy estimator registered here, from this test module alone, must reach the command-line
choices, the graph, a run, the sink (name, units, provenance sidecar) and the report, without
any package file knowing it.
"""

import json

import nibabel as nib
import numpy as np
import pytest

from qmriprep import estimators
from qmriprep.cli.parser import build_parser
from qmriprep.cli.run import main
from qmriprep.estimators import Estimator, Output
from qmriprep.estimators.citations import bibliography, reference
from qmriprep.synth.dataset import DatasetSpec, write_dataset

SCALE = 2.0


def fit_toy(series, protocol, *, b1=None, mask=None, scale=1.0, **_):
    """T2 = ``scale`` x the last echo time inside the mask; M0 = the first echo."""
    inside = np.ones(series.shape[:-1], bool) if mask is None else mask
    return {"t2": np.where(inside, scale * protocol.echo_times[-1], 0.0),
            "m0": np.where(inside, series[..., 0], 0.0)}


TOY = Estimator(kind="MESE", name="toy", algorithm="Toy: T2 = 2 x the last echo time",
                citations=("cpmg",), core=f"{__name__}:fit_toy", options={"scale": SCALE},
                outputs=(Output("t2", "T2map"), Output("m0", "M0map", desc="T2")))


@pytest.fixture
def toy():
    estimators.register(TOY)
    yield TOY
    estimators.unregister(TOY)


def test_every_declaration_is_complete():
    """Names are valid BIDS labels, outputs have known suffixes, citations exist in the .bib."""
    from qmriprep.suffixes import SUFFIXES

    bib = bibliography()
    for est in estimators.estimators():
        assert est.name.isalnum() and est.name == est.name.lower(), est.key
        assert est.outputs and est.algorithm
        assert all(o.suffix in SUFFIXES or o.suffix == "mask" for o in est.outputs), est.key
        assert all(k in bib for k in est.citations), est.key
        assert est.core or est.learned or not est.choosable, est.key
        if est.core:
            assert callable(estimators.resolve(est.core)), est.core
    for rec in estimators.reconstructions():
        assert all(k in bib for k in rec.citations), rec.name
    assert "VFA" in estimators.b1_kinds() and "MESE" not in estimators.b1_kinds()


def test_a_name_is_registered_once():
    with pytest.raises(ValueError, match="already registered"):
        estimators.register(estimators.get("MESE", estimators.default_estimators()["mese"][0]))


def test_references_are_rendered_from_the_bibliography():
    assert reference("cpmg").startswith("Meiboom S, Gill D. Review of Scientific Instruments 1958;29:688")
    assert reference("pruessmann2001").startswith("Pruessmann KP, Weiger M, Bornert P et al.")


def test_toy_estimator_is_a_command_line_choice(toy, tmp_path):
    parser = build_parser()
    opts = parser.parse_args([str(tmp_path), str(tmp_path / "out"), "participant", "--estimators", "mese:toy"])
    assert opts.estimators == [("mese", ["toy"])]
    assert "toy" in parser.format_help()


@pytest.mark.e2e
def test_toy_estimator_runs_end_to_end(toy, tmp_path):
    bids = write_dataset(tmp_path / "bids", DatasetSpec(downsample=8, n_slices=4, modalities=("MESE",)))
    out = tmp_path / "out"
    code = main([str(bids), str(out), "participant", "-w", str(tmp_path / "work"), "--nprocs", "1",
                 "--omp-nthreads", "1", "--estimators", "mese:toy,varpro"])
    assert code == 0
    anat = out / "sub-01" / "anat"
    t2_file = anat / "sub-01_desc-toy_T2map.nii.gz"
    t2 = np.asarray(nib.load(t2_file).dataobj)
    mask = np.asarray(nib.load(anat / "sub-01_acq-mese_desc-brain_mask.nii.gz").dataobj) > 0
    echo_times = [json.loads(p.read_text())["EchoTime"] for p in sorted((bids / "sub-01" / "anat").glob("*_MESE.json"))]
    assert np.allclose(t2[mask], SCALE * max(echo_times)) and np.all(t2[~mask] == 0)
    assert (anat / "sub-01_desc-toyT2_M0map.nii.gz").exists()
    meta = json.loads((anat / "sub-01_desc-toy_T2map.json").read_text())
    assert meta["Units"] == "s"
    assert meta["EstimationAlgorithm"] == TOY.algorithm
    assert meta["EstimationReference"] == reference("cpmg")
    assert "bids:raw:sub-01/anat/sub-01_echo-1_MESE.nii.gz" in meta["Sources"]
    varpro = json.loads((anat / "sub-01_desc-varpro_T2map.json").read_text())
    assert "Golub" in varpro["EstimationReference"] and "Golub" not in meta["EstimationReference"]
    assert "sub-01_desc-toy_T2map" in (out / "sub-01.html").read_text()
    assert "by toy, varpro fitting" in (out / "logs" / "CITATION.md").read_text()
