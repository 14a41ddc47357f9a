"""The contrast subspace of a k-space collection (qmriprep.recon.subspace) and ZSSSL through it."""

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from qmriprep.recon.masks import variable_density_mask
from qmriprep.recon.pipeline import KspaceCollection, reconstruct
from qmriprep.recon.sense import SenseOp
from qmriprep.recon.subspace import contrast_subspace, shares_one_mask
from qmriprep.recon.zsssl import ReconSettings

H, W, N = 32, 28, 4
CALIB = (8, 8)


def _maps(rng):
    yy, xx = np.meshgrid(np.linspace(-1, 1, H), np.linspace(-1, 1, W), indexing="ij")
    maps = np.stack([np.exp(-((yy - np.sin(a)) ** 2 + (xx - np.cos(a)) ** 2)) * np.exp(1j * rng.uniform(-1, 1) * yy)
                     for a in 2 * np.pi * np.arange(N) / N])
    return (maps / np.sqrt((np.abs(maps) ** 2).sum(0)))[None].astype(np.complex64)


def _series(t2s, te, sigma=1e-3, seed=0):
    """Images of regions with the given T2s (mono-exponential over ``te``), their k-space with
    complex noise ``sigma`` and the coil maps: ``x (1, C, H, W)``, ``y (1, C, N, H, W)``, maps."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(t2s), (H // 4, W // 4)).repeat(4, 0).repeat(4, 1)
    t2 = np.asarray(t2s)[labels]
    x = np.exp(-np.asarray(te)[:, None, None] / t2)[None].astype(np.complex64)
    maps = _maps(rng)
    y = SenseOp(torch.from_numpy(maps), torch.ones(1)).forward(torch.from_numpy(x)).numpy()
    y = y + sigma * (rng.standard_normal(y.shape) + 1j * rng.standard_normal(y.shape))
    return x, y.astype(np.complex64), maps


TE = 0.01 * np.arange(1, 9)


@pytest.mark.parametrize("t2s, rank", [([0.08], 1), ([0.03, 0.3], 2), ([0.015, 0.06, 0.5], 3)])
def test_the_rank_is_the_number_of_decays_above_the_noise(t2s, rank):
    _, y, _ = _series(t2s, TE)
    mask = np.ones((1, len(TE), H, W), np.float32)
    sub = contrast_subspace(y, mask, CALIB)
    assert sub.rank == rank
    assert np.allclose(sub.basis.conj().T @ sub.basis, np.eye(rank), atol=1e-5)
    big = np.argmax(np.abs(sub.basis), axis=0)  # the phase convention: largest element real > 0
    assert np.allclose(sub.basis[big, np.arange(rank)].imag, 0, atol=1e-6)
    assert (sub.basis[big, np.arange(rank)].real > 0).all()


def test_projected_kspace_gives_the_same_least_squares_problem():
    """sum_c ||y_c - E (Phi a)_c||^2 = ||Phi^H y - E a||^2 + ||(I - Phi Phi^H) y||^2 with one mask."""
    _, y, maps = _series([0.03, 0.3], TE, sigma=1e-2)
    mask = np.broadcast_to(variable_density_mask((H, W), 3, calib=8, seed=1), (1, len(TE), H, W)).astype(np.float32)
    y = y * mask[:, :, None]
    sub = contrast_subspace(y, mask, CALIB)
    rng = np.random.default_rng(3)
    a = (rng.standard_normal((1, sub.rank, H, W)) + 1j * rng.standard_normal((1, sub.rank, H, W))).astype(np.complex64)
    full = SenseOp(torch.from_numpy(maps), torch.from_numpy(mask))
    small = SenseOp(torch.from_numpy(maps), torch.from_numpy(np.ascontiguousarray(mask[:, :sub.rank])))
    lhs = np.sum(np.abs(y - full.forward(torch.from_numpy(sub.expand(a))).numpy()) ** 2)
    outside = y - sub.expand(sub.project(y))
    rhs = np.sum(np.abs(sub.project(y) - small.forward(torch.from_numpy(a)).numpy()) ** 2) + np.sum(np.abs(outside) ** 2)
    assert lhs == pytest.approx(rhs, rel=1e-4)


def test_no_subspace_for_few_contrasts_or_contrasts_sampled_differently():
    _, y, _ = _series([0.03, 0.3], TE)
    same = np.ones((1, len(TE), H, W), np.float32)
    assert contrast_subspace(y[:, :5], same[:, :5], CALIB) is None  # too few contrasts to tell noise
    differ = np.stack([variable_density_mask((H, W), 2, calib=8, seed=c) for c in range(len(TE))])[None]
    assert shares_one_mask(same) and not shares_one_mask(differ)
    assert contrast_subspace(y, differ.astype(np.float32), CALIB) is None


def test_zsssl_through_the_subspace_returns_every_contrast_in_its_span():
    x, y, maps = _series([0.03, 0.3], TE, sigma=3e-3)
    mask = np.broadcast_to(variable_density_mask((H, W), 3, calib=8, seed=2), (1, len(TE), H, W)).astype(np.float32)
    col = KspaceCollection(y * mask[:, :, None], mask, scans=[SimpleNamespace(metadata={})], files=["a.h5"])
    tiny = ReconSettings(features=8, blocks=2, n_unrolls=2, cg_iter=3, n_pairs=4, steps_per_epoch=4,
                         max_epochs=3, patience=20, lr=1e-3, subspace=True)
    images, info = reconstruct(col, maps, "zsssl", settings=tiny, log=lambda *_: None)
    assert images.shape == x.shape and info["ContrastSubspace"]["Rank"] == 2
    assert info["ContrastSubspace"]["Contrasts"] == len(TE)
    flat = images.reshape(len(TE), -1)
    assert np.linalg.matrix_rank(flat, tol=1e-4 * np.abs(flat).max() * flat.shape[1]) == 2
    plain, info = reconstruct(col, maps, "zsssl", settings=dataclasses.replace(tiny, subspace=False),
                              log=lambda *_: None)
    assert info["ContrastSubspace"] is None and np.linalg.matrix_rank(plain.reshape(len(TE), -1)) > 2
    error = {name: np.linalg.norm(np.abs(im) - np.abs(x)) / np.linalg.norm(x)  # against the truth
             for name, im in (("subspace", images), ("plain", plain),
                              ("zero-filled", reconstruct(col, maps, "zerofilled")[0]))}
    assert error["subspace"] < 0.6 * error["zero-filled"] and error["subspace"] < 1.05 * error["plain"]


def test_a_model_trained_in_a_subspace_starts_a_scan_in_a_subspace_of_its_rank(tmp_path):
    from qmriprep.recon.zsssl import load_model

    x, y, maps = _series([0.015, 0.06, 0.5], TE, sigma=3e-3)
    mask = np.broadcast_to(variable_density_mask((H, W), 3, calib=8, seed=2), (1, len(TE), H, W)).astype(np.float32)
    col = KspaceCollection(y * mask[:, :, None], mask, scans=[SimpleNamespace(metadata={})], files=["a.h5"])
    tiny = ReconSettings(features=8, blocks=2, n_unrolls=2, cg_iter=3, n_pairs=4, steps_per_epoch=2,
                         max_epochs=1, patience=20, lr=1e-3, subspace=True)
    _, first = reconstruct(col, maps, "zsssl", settings=tiny, model_path=str(tmp_path / "m.pt"), log=lambda *_: None)
    assert first["ContrastSubspace"]["Rank"] == 3 and load_model(tmp_path / "m.pt")[1]["settings"]["subspace"]
    _, again = reconstruct(col, maps, "zsssl", settings=dataclasses.replace(tiny, subspace=False),
                           init=str(tmp_path / "m.pt"), log=lambda *_: None)
    assert again["WarmStart"].startswith("m.pt (sha256") and again["ContrastSubspace"]["Rank"] == 3
    _, plain = reconstruct(col, maps, "zsssl", settings=dataclasses.replace(tiny, subspace=False),
                           model_path=str(tmp_path / "p.pt"), log=lambda *_: None)
    assert not load_model(tmp_path / "p.pt")[1]["settings"]["subspace"]
    _, from_plain = reconstruct(col, maps, "zsssl", settings=tiny, init=str(tmp_path / "p.pt"), log=lambda *_: None)
    assert from_plain["ContrastSubspace"] is None and from_plain["WarmStart"].startswith("p.pt")
