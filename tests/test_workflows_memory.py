"""Memory the nodes declare (qmriprep.workflows.memory): from the series size, refused above --mem."""

import pytest

from qmriprep.bids.collections import find_collections, load_layout
from qmriprep.bids.plan import plan_subject
from qmriprep.cli.run import main
from qmriprep.config import Config
from qmriprep.errors import EXIT_INPUT
from qmriprep.interfaces.noise import Denoise
from qmriprep.synth.dataset import DatasetSpec, write_dataset
from qmriprep.workflows import memory
from qmriprep.workflows.base import init_single_subject_wf


@pytest.fixture(scope="module")
def bids(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("mem") / "bids",
                         DatasetSpec(downsample=8, n_slices=4, modalities=("MESE",)))


def _mese(bids):
    plan = plan_subject("01", find_collections(load_layout(bids), "01"), Config().workflow)
    return next(p.collection for p in plan.processed() if p.collection.kind == "MESE"), plan


def test_series_size_is_read_from_the_headers(bids):
    import nibabel as nb

    col, _ = _mese(bids)
    shape = nb.load(col.files[0]).shape
    n_voxels = shape[0] * shape[1] * shape[2]
    assert memory.series_gb(col) == pytest.approx((8 * n_voxels * len(col.files) / 1024 ** 3, 0.0))


def test_nodes_declare_worker_plus_their_copies_of_the_series(bids, tmp_path):
    col, plan = _mese(bids)
    config = Config()
    config.execution.bids_dir = str(bids)
    config.execution.version = "test"
    workflow = init_single_subject_wf(plan=plan, config=config, staging_dir=str(tmp_path / "stage"))
    size, _ = memory.series_gb(col)
    nodes = [n for n in workflow._get_all_nodes() if not n.run_without_submitting]
    assert nodes
    for node in nodes:
        copies = getattr(node.interface, "mem_copies", memory.DEFAULT_COPIES)
        assert node.mem_gb == pytest.approx(memory.WORKER_GB + copies * size, abs=0.01)
    assert Denoise.mem_copies > memory.DEFAULT_COPIES


def test_a_collection_larger_than_mem_is_refused_before_any_work(bids, tmp_path, capsys):
    out = tmp_path / "out"
    code = main([str(bids), str(out), "participant", "-w", str(tmp_path / "work"), "--nprocs", "1",
                 "--mem", "0.1"])
    err = capsys.readouterr().out
    assert code == EXIT_INPUT
    assert "sub-01/anat/sub-01_echo-1_MESE.nii.gz" in err and "--mem 0.1 GB" in err
    assert "Traceback" not in err
    assert not out.exists() or not list(out.rglob("*.nii*"))
