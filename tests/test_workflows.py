"""Workflow construction: graphs build for several option sets (nothing runs)."""

import pytest

from qmriprep.config import Config
from qmriprep.synth.dataset import write_dataset
from qmriprep.workflows.base import collect_boilerplate, init_single_subject_wf


@pytest.fixture(scope="module")
def collections(tmp_path_factory):
    from qmriprep.bids.collections import find_collections, load_layout

    bids = write_dataset(tmp_path_factory.mktemp("wf") / "bids", downsample=8, n_slices=2)
    return bids, find_collections(load_layout(bids), "01")


def _config(bids, **workflow):
    config = Config()
    config.execution.bids_dir = str(bids)
    config.execution.version = "test"
    for key, value in workflow.items():
        setattr(config.workflow, key, value)
    return config


def _build(collections, **workflow):
    bids, cols = collections
    return init_single_subject_wf(subject="01", collections=cols, config=_config(bids, **workflow),
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
                align_series="never", drop_first_echo=True, fit_offset=True)
    names = _names(wf)
    assert {"mese_wf.fit_nlls", "mese_wf.fit_loglinear", "megre_wf.fit_loglinear",
            "vfa_wf.fit_linear"} <= names
    assert "vfa_wf.align_series" not in names
    assert "megre_wf.fit_varpro" not in names
    fit = wf.get_node("mese_wf.fit_nlls")
    assert fit.inputs.drop_first_echo and fit.inputs.offset
    text = collect_boilerplate(wf)
    assert "excluding the first echo" in text and "noise-floor offset" in text


def test_without_b1_correction_says_so(collections):
    wf = _build(collections, b1_source="none")
    names = _names(wf)
    assert "vfa_wf.b1_to_vfa" not in names
    sink = wf.get_node("vfa_wf.ds_maps_wf.ds_t1_nlls")
    assert "B1 = 1 assumed" in sink.interface._metadata["B1Correction"]
    assert "no B1+ map was available" in collect_boilerplate(wf)


def test_header_only_b1_alignment(collections):
    wf = _build(collections, b1_registration="header")
    assert wf.get_node("vfa_wf.b1_to_vfa").inputs.mode == "header"


def test_boilerplate_names_protocol_and_citations(collections):
    text = collect_boilerplate(_build(collections))
    assert "16-echo MESE" in text and "[@varpro]" in text and "[@despot1]" in text
    assert "3, 8, 15, 20 deg" in text
