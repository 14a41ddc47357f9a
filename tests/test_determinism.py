"""Determinism of the recorded hashes: identical seeded runs record identical weights hashes."""

import math

import numpy as np
import pytest
import torch

from qmriprep.nn.insilico import Protocol, seed_phase_increments
from qmriprep.nn.train import TrainSettings
from qmriprep.nn.weights import ModelSource, get_model
from qmriprep.utils.files import content_sha256

TINY = dict(n_samples=2000, max_epochs=2, batch_size=256, lr=3e-3)


def test_content_hash_is_of_values_names_and_shapes():
    a = {"w": torch.arange(6.0).reshape(2, 3), "b": np.zeros(3, np.float32)}
    same = {"b": np.zeros(3, np.float32), "w": torch.arange(6.0).reshape(2, 3).clone()}
    assert content_sha256(a) == content_sha256(same)  # order and storage do not matter
    assert content_sha256(a) != content_sha256({**a, "w": a["w"].reshape(3, 2)})
    assert content_sha256(a) != content_sha256({**a, "b": np.zeros(3, np.float64)})
    assert content_sha256(a) != content_sha256({"w2": a["w"], "b": a["b"]})


def test_network_trained_twice_records_one_weights_hash(tmp_path):
    """NetworkWeightsSHA256 is the weights' hash: two seeded trainings in two caches agree while
    their files (which hold the training seconds) differ."""
    protocol = Protocol(math.radians(20), 5e-3, 2.5e-3, seed_phase_increments(8))
    runs = [get_model(protocol, "svnn", False, TrainSettings(**TINY), ModelSource(tmp_path / c))[1]
            for c in ("a", "b")]
    assert runs[0]["source"] == runs[1]["source"] == "trained"
    assert runs[0]["weights_sha256"] == runs[1]["weights_sha256"]
    assert runs[0]["file_sha256"] != runs[1]["file_sha256"]


#: sidecar fields that measure time (everything else must be equal between identical runs)
TIMINGS = {"TrainingSeconds", "ReconstructionSeconds", "TrainingTime", "seconds"}


def _derivatives(out):
    import json

    import nibabel as nib

    maps = {p.relative_to(out).as_posix(): np.asarray(nib.load(p).dataobj)
            for p in sorted(out.glob("sub-01/**/*.nii.gz"))}
    sidecars = {p.relative_to(out).as_posix(): {k: v for k, v in json.loads(p.read_text()).items()
                                                if k not in TIMINGS}
                for p in sorted(out.glob("sub-01/**/*.json"))}
    return maps, sidecars


@pytest.mark.e2e
def test_same_seed_same_derivatives_zsssl_included(tmp_path):
    """Two runs, same seed, one thread: bitwise-equal maps and reconstructions (ZS-SSL trained in
    each run) and equal sidecars, WeightsSHA256 included (before: the file hash, which differed)."""
    from qmriprep.cli.run import main
    from qmriprep.synth.dataset import DatasetSpec, write_dataset

    bids = write_dataset(tmp_path / "bids", DatasetSpec(
        downsample=8, n_slices=4, modalities=("MESE",),
        kspace={"contrasts": ("MESE",), "mese_echoes": 4, "coils": 2, "acceleration": 2}))
    tiny = ["--recon", "zsssl", "--recon-epochs", "2", "--recon-steps", "2", "--recon-features", "4",
            "--recon-blocks", "1", "--recon-unrolls", "2", "--recon-cg-iter", "2"]
    runs = []
    for run in ("a", "b"):
        out = tmp_path / run
        assert main([str(bids), str(out), "participant", "-w", str(tmp_path / f"work-{run}"), "--nprocs", "1",
                     "--omp-nthreads", "1", "--random-seed", "7", "--skip-bids-validation", *tiny]) == 0
        runs.append(_derivatives(out))
    (maps_a, meta_a), (maps_b, meta_b) = runs
    assert maps_a.keys() == maps_b.keys() and any("rec-zsssl" in k for k in maps_a)
    for name in maps_a:
        np.testing.assert_array_equal(maps_a[name], maps_b[name], err_msg=name)
    assert meta_a == meta_b
    assert any("WeightsSHA256" in m for m in meta_a.values())
