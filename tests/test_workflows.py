"""Workflow construction: graphs build for several option sets (nothing runs)."""

import pytest

from qmriprep.config import Config
from qmriprep.synth.dataset import DatasetSpec, write_dataset
from qmriprep.workflows.base import collect_boilerplate, init_single_subject_wf


@pytest.fixture(scope="module")
def collections(tmp_path_factory):
    from qmriprep.bids.collections import find_collections, load_layout

    bids = write_dataset(tmp_path_factory.mktemp("wf") / "bids", DatasetSpec(downsample=8, n_slices=2))
    return bids, find_collections(load_layout(bids), "01")


def _config(bids, **settings):
    """A run config; ``settings`` are config paths with ``__`` for dots (``multiecho__fit_offset``)."""
    config = Config()
    config.execution.bids_dir = str(bids)
    config.execution.version = "test"
    for key, value in settings.items():
        config.set(key.replace("__", ".") if "__" in key else f"workflow.{key}", value)
    return config


def _build(collections, **settings):
    from qmriprep.bids.plan import plan_subject

    bids, cols = collections
    config = _config(bids, **settings)
    return init_single_subject_wf(plan=plan_subject("01", cols, config.workflow), config=config,
                                  staging_dir="/tmp/qmriprep-staging")


def _names(wf):
    return set(wf.list_node_names())


def test_default_graph_has_every_collection(collections):
    wf = _build(collections)
    names = _names(wf)
    for node in ("mese_wf.fit_varpro", "megre_wf.fit_varpro", "vfa_wf.fit_nlls",
                 "vfa_wf.align_series", "vfa_wf.b1_to_vfa", "tb1dam_wf.b1map",
                 "tb1afi_wf.b1map", "tb1tfl_wf.b1map", "mese_wf.ds_maps_wf.ds_t2_varpro"):
        assert node in names, node


def test_all_estimators_and_no_alignment(collections):
    wf = _build(collections, estimators={"mese": ["varpro", "nlls", "loglinear"],
                                         "megre": ["loglinear"], "vfa": ["nlls", "linear"]},
                align_series="never", multiecho__drop_first_echo=True, multiecho__fit_offset=True)
    names = _names(wf)
    assert {"mese_wf.fit_nlls", "mese_wf.fit_loglinear", "megre_wf.fit_loglinear",
            "vfa_wf.fit_linear"} <= names
    assert "vfa_wf.align_series" not in names
    assert "megre_wf.fit_varpro" not in names
    fit = wf.get_node("mese_wf.fit_nlls")
    assert fit.inputs.options == {"drop_first_echo": True, "fit_offset": True}
    assert fit.inputs.protocol["echo_times"][0] == pytest.approx(0.01)  # SI units at the interface
    text = collect_boilerplate(wf)
    assert "excluding the first echo" in text and "noise-floor offset" in text


def test_without_b1_correction_says_so(collections):
    wf = _build(collections, b1_source="none")
    names = _names(wf)
    assert "vfa_wf.b1_to_vfa" not in names
    sink = wf.get_node("vfa_wf.ds_maps_wf.ds_t1_nlls")
    assert "B1 = 1 assumed" in sink.interface._metadata["B1Correction"]
    assert "B1+ correction disabled by --b1-source none" in collect_boilerplate(wf)


def test_header_only_b1_alignment(collections):
    wf = _build(collections, b1_registration="header")
    assert wf.get_node("vfa_wf.b1_to_vfa").inputs.mode == "header"


def test_boilerplate_names_protocol_and_citations(collections):
    text = collect_boilerplate(_build(collections))
    assert "16-echo MESE" in text and "[@cpmg; @golub1973]" in text and "[@vfa; @despot1]" in text
    assert "3, 8, 15, 20 deg" in text


def test_vfa_interface_takes_radians(collections):
    """SI units at every interface: flip angles reach the fit in rad (sidecars keep deg)."""
    import math

    wf = _build(collections)
    fit = wf.get_node("vfa_wf.fit_nlls")
    assert fit.inputs.protocol["flip_angles"] == pytest.approx([math.radians(a) for a in (3, 8, 15, 20)])
    sink = wf.get_node("vfa_wf.ds_maps_wf.ds_t1_nlls")
    assert sink.interface._metadata["FlipAngle"] == [3.0, 8.0, 15.0, 20.0]



def test_noise_matched_trainer_gets_sigma_and_level(tmp_path):
    """The bSSFP trainers take the noise sigma (by default that of the MP-PCA denoised
    configurations' i.i.d. equivalent) and the configurations' norm in the mask (the level of the
    series' SNR)."""
    from qmriprep.bids.collections import find_collections, load_layout
    from qmriprep.estimators.names import SVNN

    bids = write_dataset(tmp_path / "bids", DatasetSpec(downsample=8, n_slices=2, modalities=("bSSFP",)))
    wf = _build((bids, find_collections(load_layout(bids), "01")), estimators={"bssfp": [SVNN]})
    trainers = [n for n in wf.list_node_names() if n.endswith(f".train_{SVNN}")]
    assert trainers, "no bSSFP network in the graph"
    sub = wf.get_node(trainers[0].rsplit(".", 1)[0])
    edges = {(u.name, v.name, tuple(d["connect"])) for u, v, d in sub._graph.edges(data=True)}
    train = f"train_{SVNN}"
    assert {("configuration_noise", train, (("training_sigma", "noise_sigma"),)),
            ("configs", train, (("out_norm", "scale_file"),)),
            ("mask", train, (("out_mask", "mask_file"),))} <= edges
