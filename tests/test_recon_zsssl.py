"""Losses and the ZSSSL / SSL / SL training modes (qmriprep.recon.zsssl), on tiny problems."""

import hashlib

import numpy as np
import pytest
import torch

from qmriprep.recon.masks import variable_density_mask
from qmriprep.recon.sense import SenseOp, zero_filled
from qmriprep.recon.unrolled import UnrolledNet
from qmriprep.recon.zsssl import (ReconSettings, kspace_loss, load_model, reconstruct, save_model,
                                  train_sl, train_ssl, train_zsssl, weights_sha256)

H = W = 24
TINY = dict(features=8, blocks=2, n_unrolls=2, cg_iter=3, n_pairs=4, steps_per_epoch=6,
            max_epochs=6, patience=20, lr=1e-3)


def phantom(S=2, C=2, N=4, seed=0):
    """Piecewise-constant ellipse with a long-T2 disc, smooth phase, C echoes; N smooth coils
    (sum of squares 1). Returns ``x (S,C,H,W)``, ``maps (S,N,H,W)``, fully sampled ``y``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(-1, 1, H), np.linspace(-1, 1, W), indexing="ij")
    x = np.zeros((S, C, H, W), complex)
    for s in range(S):
        pd = ((yy / 0.8) ** 2 + (xx / 0.7) ** 2 < 1).astype(float)
        disc = ((yy - rng.uniform(-.3, .3)) ** 2 + (xx - rng.uniform(-.3, .3)) ** 2 < 0.1)
        phase = np.exp(1j * (0.5 * yy + 0.3 * xx + rng.uniform(-1, 1)))
        for c in range(C):
            x[s, c] = pd * np.exp(-(c + 1) * 0.4 / (1.0 + 2.0 * disc)) * phase
    maps = np.zeros((S, N, H, W), complex)
    for n in range(N):
        a = 2 * np.pi * n / N
        maps[:, n] = (np.exp(-((yy - 1.2 * np.sin(a)) ** 2 + (xx - 1.2 * np.cos(a)) ** 2) / 1.5)
                      * np.exp(1j * rng.uniform(-1, 1) * (yy + xx)))
    maps /= np.sqrt((np.abs(maps) ** 2).sum(1, keepdims=True))
    x, maps = x.astype(np.complex64), maps.astype(np.complex64)
    y = SenseOp(torch.from_numpy(maps), torch.ones(1)).forward(torch.from_numpy(x)).numpy()
    return x, maps, y


def undersample(y, R=4, per_slice=False, seed=0):
    """R-fold 2-D variable-density masks, one per contrast (and per slice), and the masked k-space."""
    S, C = y.shape[:2]
    n = S if per_slice else 1
    mask = np.stack([[variable_density_mask((H, W), R, calib=6, seed=seed + 10 * s + c)
                      for c in range(C)] for s in range(n)])
    return y * mask[:, :, None], mask


def nrmse(a, ref):
    return float(np.linalg.norm(a - ref) / np.linalg.norm(ref))


def same_weights(a, b):
    return all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())


def test_kspace_loss_hand_example_zero_and_scale_invariance():
    y = torch.tensor([3, 4j, 5]).reshape(1, 1, 1, 1, 3)
    y_hat = torch.tensor([3, 0, 0], dtype=torch.complex64).reshape(1, 1, 1, 1, 3)
    mask = torch.tensor([1.0, 1.0, 0.0]).reshape(1, 1, 1, 3)
    # M(y - y^) = [0, 4j, 0], M y = [3, 4j, 0]: 0.5 * 4/5 + 0.5 * 4/7
    assert kspace_loss(y_hat, y, mask).item() == pytest.approx(0.4 + 2 / 7, rel=1e-6)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(2, 2, 3, 8, 8, dtype=torch.complex64, generator=g)
    b = torch.randn(2, 2, 3, 8, 8, dtype=torch.complex64, generator=g)
    m = (torch.rand(1, 2, 8, 8, generator=g) > 0.5).float()
    assert kspace_loss(a, a, m).item() == 0.0
    ref = kspace_loss(a, b, m).item()
    assert ref > 0
    for scale in (1e3, 3 - 4j, 1e-4):
        assert kspace_loss(scale * a, scale * b, m).item() == pytest.approx(ref, rel=1e-5)


def test_zsssl_validation_loss_decreases_and_beats_zero_filled():
    x, maps, y_full = phantom()
    y, mask = undersample(y_full)
    model, hist = train_zsssl(y, maps, mask, ReconSettings(**TINY))
    assert hist["epochs"] == TINY["max_epochs"] and len(hist["val_loss"]) == hist["epochs"]
    assert min(hist["val_loss"][1:]) < 0.95 * hist["val_loss"][0]
    assert hist["best_epoch"] > 0 and hist["seconds"] > 0 and len(hist["mu"]) == hist["epochs"]
    assert hist["scale"] > 0 and hist["val_slices"] == [0, 1]
    recon = reconstruct(model, y, maps, mask)
    zf = zero_filled(torch.from_numpy(y), torch.from_numpy(maps), torch.from_numpy(mask).float()).numpy()
    assert isinstance(recon, np.ndarray) and recon.shape == x.shape
    assert nrmse(recon, x) < 0.8 * nrmse(zf, x)


def test_early_stopping_stops_after_patience():
    x, maps, y_full = phantom()
    y, mask = undersample(y_full)
    settings = ReconSettings(**dict(TINY, lr=0.0, patience=2, max_epochs=50, steps_per_epoch=2))
    _, hist = train_zsssl(y, maps, mask, settings)
    # lr 0: the validation loss never improves after epoch 0
    assert hist["epochs"] == 3 and hist["best_epoch"] == 0


def test_time_budget_stops_after_the_epoch_that_passes_it():
    x, maps, y_full = phantom()
    y, mask = undersample(y_full)
    settings = ReconSettings(**dict(TINY, max_epochs=50, steps_per_epoch=1, time_budget_s=1e-6))
    _, hist = train_zsssl(y, maps, mask, settings)
    assert hist["epochs"] == 1 and hist["stopped"] == "time_budget"
    _, hist = train_zsssl(y, maps, mask, ReconSettings(**dict(TINY, max_epochs=2, steps_per_epoch=1)))
    assert hist["epochs"] == 2 and hist["stopped"] == "max_epochs"


def test_same_seed_same_weights_other_seed_differs():
    x, maps, y_full = phantom()
    y, mask = undersample(y_full, per_slice=True)
    kw = dict(TINY, max_epochs=2, steps_per_epoch=3, batch=2)
    state = torch.get_rng_state()
    a, ha = train_zsssl(y, maps, mask, ReconSettings(**kw))
    assert torch.equal(torch.get_rng_state(), state)  # seeded without touching the global generator
    b, hb = train_zsssl(y, maps, mask, ReconSettings(**kw))
    c, _ = train_zsssl(y, maps, mask, ReconSettings(**dict(kw, seed=1)))
    assert same_weights(a, b) and ha["val_loss"] == hb["val_loss"]
    assert not same_weights(a, c)
    sha = [weights_sha256(dict(m.hparams), m.state_dict()) for m in (a, b, c)]
    assert sha[0] == sha[1] != sha[2]  # the sidecars' WeightsSHA256 of identical seeded runs agree


def test_save_load_and_warm_start_exact(tmp_path):
    x, maps, y_full = phantom()
    y, mask = undersample(y_full)
    settings = ReconSettings(**dict(TINY, max_epochs=1, steps_per_epoch=2))
    model, hist = train_zsssl(y, maps, mask, settings)
    path = tmp_path / "zsssl.pt"
    sha = save_model(path, model, settings, hist)
    assert sha == weights_sha256(dict(model.hparams), model.state_dict())
    # the hash is the weights': a second file of the same model with other timings has it too
    again = tmp_path / "again" / "zsssl.pt"
    assert save_model(again, model, settings, {**hist, "seconds": hist["seconds"] + 1.0}) == sha
    assert hashlib.sha256(again.read_bytes()).hexdigest() != hashlib.sha256(path.read_bytes()).hexdigest()
    again.unlink()
    again.parent.rmdir()
    assert [p.name for p in tmp_path.iterdir()] == ["zsssl.pt"]  # written atomically, no temporary left
    loaded, meta = load_model(path)
    assert meta["sha256"] == sha and meta["settings"] == settings.as_dict()
    assert meta["history"]["val_loss"] == hist["val_loss"] and same_weights(loaded, model)
    x, maps, y_full = phantom(seed=5)
    y, mask = undersample(y_full, seed=3)
    frozen = ReconSettings(**dict(TINY, lr=0.0, max_epochs=1, steps_per_epoch=1, n_pairs=1, seed=9))
    warm, warm_hist = train_zsssl(y, maps, mask, frozen, init=path)
    assert warm_hist["init_sha256"] == sha and same_weights(warm, model)
    from_module, _ = train_zsssl(y, maps, mask, frozen, init=loaded)
    assert same_weights(from_module, model)


def test_reconstruct_full_mask_keeps_scale():
    x, maps, y = phantom()
    torch.manual_seed(0)
    model = UnrolledNet(2, n_unrolls=2, cg_iter=3, features=8, blocks=2)
    full = np.ones((1, 1, H, W), bool)
    recon = reconstruct(model, y, maps, full)
    assert nrmse(recon, x) < 0.1  # DC with E^H E = I pulls an untrained network to E^H y = x
    big = reconstruct(model, 1e3 * y, maps, full, batch=1)
    np.testing.assert_allclose(big, 1e3 * recon, rtol=1e-4, atol=1e-6 * np.abs(big).max())
    as_tensor = reconstruct(model, torch.from_numpy(y), torch.from_numpy(maps), torch.from_numpy(full))
    assert isinstance(as_tensor, torch.Tensor) and np.allclose(as_tensor.numpy(), recon, atol=1e-6)


def test_train_ssl_reduces_validation_loss():
    dataset = []
    for seed in (0, 1):
        _, maps, y_full = phantom(seed=seed)
        y, mask = undersample(y_full, per_slice=True, seed=seed)
        dataset.append((y, maps, mask))
    _, maps, y_full = phantom(seed=2)
    y, mask = undersample(y_full, seed=2)
    val = [(y, maps, mask)]
    _, hist = train_ssl(dataset, ReconSettings(**dict(TINY, max_epochs=5)), val_dataset=val)
    assert hist["epochs"] == 5 and min(hist["val_loss"][1:]) < 0.97 * hist["val_loss"][0]
    _, no_val = train_ssl(dataset, ReconSettings(**dict(TINY, max_epochs=2, steps_per_epoch=2)))
    assert no_val["val_loss"] == [None, None] and no_val["best_epoch"] >= 0


def test_train_sl_reduces_validation_loss():
    dataset = []
    for seed in (0, 1):
        x, maps, y_full = phantom(seed=seed)
        y, mask = undersample(y_full, seed=seed)
        dataset.append((y, maps, mask, x))
    _, hist = train_sl(dataset, ReconSettings(**dict(TINY, max_epochs=5)), val_dataset=dataset[:1])
    assert hist["epochs"] == 5 and min(hist["val_loss"][1:]) < 0.95 * hist["val_loss"][0]
