"""Per-node time and peak memory from Nipype's resource monitor (qmriprep.cli.resources)."""

from types import SimpleNamespace

from qmriprep.cli.resources import NodeResources, enable_monitor, node_subject


def _node(fullname, runtime):
    return SimpleNamespace(fullname=fullname, result=SimpleNamespace(runtime=runtime))


def test_subject_of_a_node():
    assert node_subject("qmriprep_wf.sub_01_wf.mese_wf.fit") == "01"
    assert node_subject("qmriprep_wf.group") == ""


def test_mapnode_items_are_summed_and_the_largest_peak_kept(tmp_path):
    res = NodeResources()
    item = lambda s, m: SimpleNamespace(duration=s, mem_peak_gb=m)  # noqa: E731
    res.record(_node("qmriprep_wf.sub_01_wf.mese_wf.fit", item(3.0, 1.5)))
    res.record(_node("qmriprep_wf.sub_01_wf.vfa_wf.fit", [item(1.0, 0.5), item(2.0, 2.5)]))
    res.record(_node("qmriprep_wf.sub_02_wf.vfa_wf.fit", item(1.0, 0.1)))
    res.record(SimpleNamespace(fullname="qmriprep_wf.sub_01_wf.broken"))  # no result: skipped
    lines = res.write(tmp_path, "01").read_text().splitlines()
    assert lines == ["node\tseconds\tpeak_rss_gb\testimate_gb", "vfa_wf.fit\t3.00\t2.500\t0.00",
                     "mese_wf.fit\t3.00\t1.500\t0.00"]
    assert res.write(tmp_path / "x", "03") is None


def test_the_monitor_is_available():
    assert enable_monitor()  # psutil is a dependency


def test_the_status_callback_pickles_without_its_rows():
    """Nodes that run in the main process pickle themselves with the plugin's callback."""
    import pickle

    from qmriprep.cli.execute import _StatusCallback

    res = NodeResources()
    res.rows["01"] = [("fit", 1.0, 2.0)]
    copy = pickle.loads(pickle.dumps(_StatusCallback(res)))
    assert copy.resources.rows == {} and res.rows["01"]
