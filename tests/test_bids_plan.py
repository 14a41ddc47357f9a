"""The run plan: one B1+ decision per collection, read unchanged by graph, sidecars and report."""

import pytest

from qmriprep.bids.collections import find_collections, load_layout
from qmriprep.bids.plan import plan_subject
from qmriprep.config import Config
from qmriprep.errors import InputError
from qmriprep.synth.dataset import DatasetSpec, write_dataset
from qmriprep.workflows.base import _wf_name, collect_boilerplate, init_single_subject_wf


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    bids = write_dataset(tmp_path_factory.mktemp("plan") / "bids",
                         DatasetSpec(downsample=8, n_slices=2, modalities=("VFA", "TB1DAM", "TB1AFI", "TB1TFL")))
    return bids, find_collections(load_layout(bids), "01")


def _config(bids, **workflow):
    config = Config()
    config.execution.bids_dir, config.execution.version = str(bids), "test"
    for key, value in workflow.items():
        setattr(config.workflow, key, value)
    return config


def _b1_source_of(wf, target):
    """The workflow feeding ``target``'s B1+ input in the built graph (None: nothing)."""
    for src, dst, data in wf._graph.edges(data=True):
        if dst is target and any(d == "inputnode.b1" for _, d in data["connect"]):
            return src.name
    return None


@pytest.mark.parametrize("source", ["auto", "TB1TFL", "TB1AFI", "TB1DAM", "none"])
def test_plan_graph_sidecars_and_report_agree(dataset, source):
    bids, cols = dataset
    config = _config(bids, b1_source=source)
    plan = plan_subject("01", cols, config.workflow)
    vfa = next(p for p in plan.collections if p.collection.kind == "VFA")
    wf = init_single_subject_wf(plan=plan, config=config, staging_dir="/tmp/qmriprep-staging")
    vfa_wf = wf.get_node(_wf_name(vfa.collection))
    fed_by = _b1_source_of(wf, vfa_wf)
    sink_meta = wf.get_node(f"{vfa_wf.name}.ds_maps_wf.ds_t1_nlls").interface._metadata
    decision = vfa.decision()["b1"]
    text = collect_boilerplate(wf)
    if source == "none":
        assert vfa.b1.map is None and fed_by is None
        assert "B1 = 1 assumed" in sink_meta["B1Correction"] and "--b1-source none" in sink_meta["B1Correction"]
        assert decision.startswith("none (--b1-source none)")
        assert "disabled by --b1-source none" in text
        assert "b1_to_vfa" not in wf.get_node(vfa_wf.name).list_node_names()
        return
    expected = "TB1TFL" if source == "auto" else source  # auto: IntendedFor / preferred kind
    assert vfa.b1.map.kind == expected
    assert fed_by == _wf_name(vfa.b1.map)
    assert sink_meta["B1Sources"] == [f"bids:raw:{p}" for p in vfa.b1.map.relpaths()]
    assert sink_meta["B1Correction"] == f"B1+ map ({vfa.b1.registration} alignment)"
    assert decision.startswith(vfa.b1.map.name)
    assert "with flip angles corrected by the B1+ map" in text


def test_scanner_b1_maps_are_never_registered(dataset):
    """A TB1map has no magnitude image: the plan says header alignment whatever the option."""
    from qmriprep.bids.plan import decide_b1

    bids, cols = dataset
    vfa = next(c for c in cols if c.kind == "VFA")
    tfl = next(c for c in cols if c.kind == "TB1TFL")
    tb1map = type(tfl)(**{**tfl.__dict__, "kind": "TB1map"})
    decision = decide_b1(vfa, [tb1map], _config(bids, b1_registration="rigid").workflow)
    assert decision.map is tb1map and decision.registration == "header"


def test_strict_without_b1_map_is_an_input_error(dataset):
    bids, cols = dataset
    vfa_only = [c for c in cols if c.kind == "VFA"]
    with pytest.raises(InputError, match="no B1\\+ map found .* --strict"):
        plan_subject("01", vfa_only, _config(bids, strict=True).workflow)
    plan = plan_subject("01", vfa_only, _config(bids, strict=True, b1_source="none").workflow)
    assert plan.collections[0].b1.map is None


def test_estimators_come_from_the_settings_and_the_registry(dataset):
    bids, cols = dataset
    plan = plan_subject("01", cols, _config(bids, estimators={"vfa": ["linear"]}).workflow)
    by_kind = {p.collection.kind: p for p in plan.collections}
    assert by_kind["VFA"].estimators == ("linear",)
    assert by_kind["TB1DAM"].estimators and by_kind["TB1DAM"].b1 is None
