"""Determinism of the recorded hashes: identical seeded runs record identical weights hashes."""

import math

import numpy as np
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
