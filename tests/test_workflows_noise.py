"""Noise nodes in the graph: measured for every collection, denoised as --denoise says."""

import pytest

from qmriprep.config import Config
from qmriprep.fit.denoise import AUTO_KINDS
from qmriprep.synth.dataset import DatasetSpec, write_dataset
from qmriprep.workflows.base import collect_boilerplate, init_single_subject_wf


@pytest.fixture(scope="module")
def collections(tmp_path_factory):
    from qmriprep.bids.collections import find_collections, load_layout

    bids = write_dataset(tmp_path_factory.mktemp("wf") / "bids",
                         DatasetSpec(downsample=8, n_slices=2, modalities=("MESE", "VFA", "TB1DAM", "bSSFP", "DESS")))
    return bids, find_collections(load_layout(bids), "01")


def _build(collections, denoise):
    from qmriprep.bids.plan import plan_subject

    bids, cols = collections
    config = Config()
    config.execution.bids_dir, config.execution.version = str(bids), "test"
    config.set("noise.denoise", denoise)
    return init_single_subject_wf(plan=plan_subject("01", cols, config.workflow), config=config,
                                  staging_dir="/tmp/qmriprep-staging")


@pytest.mark.parametrize("denoise", ["none", "mppca", "auto"])
def test_every_collection_measures_noise_and_denoises_as_asked(collections, denoise):
    wf = _build(collections, denoise)
    names = set(wf.list_node_names())
    for kind in ("mese", "vfa", "bssfp", "dess"):
        nodes = {n.split(".", 1)[1] for n in names if n.startswith(f"{kind}_")}
        assert "noise" in nodes, kind
        wanted = kind != "dess" and (denoise == "mppca" or (denoise == "auto" and {
            "mese": "MESE", "vfa": "VFA", "bssfp": "bSSFP"}[kind] in AUTO_KINDS))
        assert ("denoise" in nodes) == wanted, kind
    text = collect_boilerplate(wf)
    denoised = denoise == "mppca" or (denoise == "auto" and bool(AUTO_KINDS))
    assert "noise standard deviation" in text
    assert ("Marchenko-Pastur PCA of 5x5x5" in text) == denoised


def test_fit_nodes_get_the_noise(collections):
    wf = _build(collections, "none")
    mese = wf.get_node("mese_wf")
    edges = {(u.name, v.name) for u, v in mese._graph.edges()}
    assert ("noise", "fit_varpro") in edges


def test_auto_denoising_passes_a_series_without_background_through(tmp_path):
    """--denoise auto: no noise-only background (noise-free or skull-stripped data) -> not denoised."""
    import nibabel as nib
    import numpy as np

    from qmriprep.interfaces.noise import Denoise

    path = tmp_path / "series.nii.gz"
    data = np.random.default_rng(0).random((8, 8, 8, 5)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    kept = Denoise(in_files=[str(path)], noise_sigma=0.1, background=False, require_background=True,
                   noise_meta={"NoiseSigma": 0.1}).run().outputs
    assert kept.out_file == str(path) and kept.out_files in (str(path), [str(path)])
    assert "Denoising" not in kept.meta
    done = Denoise(in_files=[str(path)], noise_sigma=0.5, background=True, require_background=True,
                   noise_meta={"NoiseSigma": 0.5}).run(cwd=str(tmp_path)).outputs  # pure noise: all removed
    assert done.out_file != str(path) and "MP-PCA" in done.meta["Denoising"]
    assert not np.allclose(np.asarray(nib.load(done.out_file).dataobj), data)


def test_denoised_bssfp_fits_and_networks_get_the_configuration_noise(collections):
    """MP-PCA of the cycles: MIRACLE and the networks read the configurations' noise basis, the
    noise-matched trainers the i.i.d. sigma equivalent to it; without denoising, the measured sigma."""
    wf = _build(collections, "mppca")
    bssfp = wf.get_node(next(n.split(".")[0] for n in wf.list_node_names() if n.startswith("bssfp")))
    edges = {(u.name, v.name): d["connect"] for u, v, d in bssfp._graph.edges(data=True)}
    assert ("noise_basis", "noise_basis") in edges[("denoise", "configuration_noise")]
    assert ("noise_basis", "noise_basis_file") in edges[("configuration_noise", "fit_miracle")]
    assert ("noise_basis", "noise_basis_file") in edges[("configuration_noise", "fit_svnn")]
    assert ("training_sigma", "noise_sigma") in edges[("configuration_noise", "train_svnn")]
    assert ("scale_file" in dict((b, a) for a, b in edges[("configs", "fit_svnn")]))
    wf = _build(collections, "none")
    raw = wf.get_node(next(n.split(".")[0] for n in wf.list_node_names() if n.startswith("bssfp")))
    edges = {(u.name, v.name): d["connect"] for u, v, d in raw._graph.edges(data=True)}
    assert "configuration_noise" not in raw.list_node_names()
    assert ("sigma", "noise_sigma") in edges[("noise", "train_svnn")]
