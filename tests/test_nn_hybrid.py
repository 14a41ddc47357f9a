"""The hybrid loss of seed 002 (nn/hybrid.py) and the U-Net (nn/unet.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qmriprep.nn.hybrid import HybridSettings, Volumes, edge_loss, predict, sobel, synthesise, train
from qmriprep.nn.unet import UNet
from qmriprep.synth.weighted import MPRAGE, TSE


def _images(seed=0, n=3, size=24):
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 2, size, size, dtype=torch.float64)
    for i in range(n):
        r0, c0 = torch.randint(2, size // 2, (2,), generator=g)
        x[i, :, r0:r0 + size // 3, c0:c0 + size // 3] = torch.rand(2, 1, 1, generator=g, dtype=torch.float64) + 0.5
    return x + 0.01 * torch.rand(x.shape, generator=g, dtype=torch.float64)


def test_sobel_of_a_ramp_is_its_slope():
    """The kernels are scaled by 1/8, so a ramp's interior derivative is its slope."""
    ramp = torch.arange(10.0)[None, None, :, None] * torch.ones(1, 1, 10, 6) * 2.0
    g = sobel(ramp)[0, :, 1:-1]
    across, along = (g[0], g[1]) if g[0].abs().max() > 0 else (g[1], g[0])
    assert torch.allclose(along, torch.zeros(8, 6)) and torch.allclose(across, torch.full((8, 6), 2.0))


def test_edge_loss_is_zero_for_a_scaled_copy_and_scale_invariant():
    acquired, synth = _images(0), _images(1)
    assert edge_loss(3.7 * acquired, acquired) < 1e-12
    assert edge_loss(5.0 * synth, acquired) == pytest.approx(float(edge_loss(synth, acquired)), rel=1e-9)


def test_gradients_flow_through_the_scale_factor():
    """With ``a`` in the graph the gradient of the loss is orthogonal to the synthesised image
    (scale invariance); detaching ``a`` would make it push on the scale."""
    acquired, synth = _images(0), _images(1).requires_grad_(True)
    edge_loss(synth, acquired).backward()
    radial = float((synth.grad * synth.detach()).sum())
    assert abs(radial) < 1e-9 * float(synth.grad.norm() * synth.detach().norm()) + 1e-12


def test_synthesised_images_follow_the_signal_models():
    maps = torch.tensor([[0.85, 0.07, 0.69], [1.35, 0.09, 0.8], [4.3, 1.8, 1.0]], dtype=torch.float64)
    out = synthesise(maps[:, :, None, None], MPRAGE, TSE)[..., 0, 0]
    assert out[0, 0] > out[1, 0] > out[2, 0]  # T1w: WM > GM > CSF
    assert out[2, 1] > out[1, 1] > out[0, 1]  # T2w: CSF > GM > WM


@pytest.mark.parametrize("shape", [(17, 9), (32, 32)])
def test_unet_keeps_any_image_size(shape):
    net = UNet(2, 3, width=4, depth=2)
    assert net(torch.zeros(1, 2, *shape)).shape == (1, 3, *shape)


def _two_tissue_volume(n: int = 6, seed: int = 0):
    """WM and GM side by side (random boundary per slice): weighted images and exact labels."""
    from qmriprep.physics.mprage import mprage_signal
    from qmriprep.physics.tse import tse_signal

    rng = np.random.default_rng(seed)
    wm = np.zeros((n, 24, 16), bool)
    for i in range(n):
        wm[i, :, :rng.integers(5, 11)] = True
    t1, t2, m0 = np.where(wm, 0.85, 1.35), np.where(wm, 0.07, 0.09), np.where(wm, 0.69, 0.8)
    images = np.stack([mprage_signal(m0, t1, MPRAGE), tse_signal(m0, t1, t2, TSE)]).astype(np.float32)
    return Volumes(images, np.stack([t1, t2, m0]).astype(np.float32))


def test_training_recovers_label_maps_of_a_two_tissue_phantom():
    """WM and GM side by side (random boundary): after a short training the network's T1 separates
    them and is nearer the truth than the mean T1 is."""
    vol = _two_tissue_volume(6)
    images, t1, wm = vol.images, vol.labels[0], vol.labels[0] < 1
    settings = HybridSettings(width=4, depth=2, max_epochs=16, steps_per_epoch=4, batch_size=4, lr=1e-2,
                              patience=16, val_fraction=0.2)
    torch.set_num_threads(1)
    nets, record = train([vol], (MPRAGE, TSE), settings)
    est = predict(nets, images, settings)
    assert np.median(est["t1"][wm]) < np.median(est["t1"][~wm])
    assert np.abs(est["t1"] - t1).mean() < 0.8 * np.abs(t1.mean() - t1).mean()
    curve = record["members"][0]["curves"]["train_loss"]
    assert len(nets) == 3 and curve[-1] < curve[0]   # the default ensemble


def test_subjects_of_different_matrices_train_together():
    """Sites change matrices between subjects: their slices are padded (centred, as background) to
    the largest, and the labels stay on their voxels."""
    from qmriprep.nn.hybrid import _slices

    def vol(h, w, value):
        labels = np.zeros((3, 4, h, w), np.float32)
        labels[:, :, 2:-2, 2:-2] = value
        return Volumes(np.ones((2, 4, h, w), np.float32), labels)

    x, y = _slices([vol(20, 16, 1.0), vol(24, 12, 2.0)], axis=0)
    assert x.shape == (8, 2, 24, 16) and y.shape == (8, 3, 24, 16)
    assert (y[:4, 2] == 1).sum() == 4 * 16 * 12 and (y[4:, 2] == 2).sum() == 4 * 20 * 8
    assert y[:4, 2, :2].sum() == 0 and x[:4, :, :2].sum() == 0   # the first subject padded by 2 rows
    assert y[4:, 2, :, :2].sum() == 0 and x[4:, :, :, :2].sum() == 0   # the second by 2 columns
    settings = HybridSettings(width=4, depth=2, max_epochs=2, steps_per_epoch=2, batch_size=4, val_fraction=0.25)
    _, record = train([vol(20, 16, 1.0), vol(24, 12, 2.0)], (MPRAGE, TSE), settings)
    assert record["members"][0]["epochs"] == 2


def test_ensemble_extends_the_single_model_averages_members_and_adds_their_spread():
    """Member 0 of an ensemble is the single model of the same settings (same split and seed); the
    maps are the members' mean; the SD combines their predicted variances and their spread; the
    weights round-trip through the saved state (one member keeps the single-network keys)."""
    from dataclasses import replace

    from qmriprep.nn.hybrid import nets_from, state_of

    vol = _two_tissue_volume(8)
    settings = HybridSettings(width=4, depth=2, max_epochs=3, steps_per_epoch=3, batch_size=4, lr=1e-2,
                              val_fraction=0.25, members=1)
    torch.set_num_threads(1)
    single, _ = train([vol], (MPRAGE, TSE), settings)
    nets, record = train([vol], (MPRAGE, TSE), replace(settings, members=3))
    assert len(nets) == 3 and [m["seed"] for m in record["members"]] == [0, 1, 2]
    assert all(torch.equal(a, b) for a, b in zip(single[0].state_dict().values(), nets[0].state_dict().values()))
    assert not torch.equal(nets[0].state_dict()["head.weight"], nets[1].state_dict()["head.weight"])
    one = [predict([n], vol.images, settings, sd_calibration=[1, 1, 1]) for n in nets]
    est = predict(nets, vol.images, settings, sd_calibration=[1, 1, 1])
    mean = np.mean([o["t1"] for o in one], axis=0)
    spread = np.mean([(o["t1"] - mean) ** 2 for o in one], axis=0)
    assert np.allclose(est["t1"], mean, atol=1e-6) and spread.max() > 0
    assert np.allclose(est["t1_sd"] ** 2, np.mean([o["t1_sd"] ** 2 for o in one], axis=0) + spread, rtol=1e-4)
    assert len(record["SDCalibration"]) == 3 and record["seconds"] == sum(m["seconds"] for m in record["members"])
    again = nets_from(state_of(nets), 2, replace(settings, members=3))
    assert np.array_equal(predict(again, vol.images, settings)["t1"], predict(nets, vol.images, settings)["t1"])
    assert set(state_of(single)) == set(nets[0].state_dict())


def test_sd_head_reads_detached_features():
    """The SD head's loss moves no trunk or map-head weight: the maps train as without it."""
    net = UNet(2, 3, width=4, depth=2, sd_channels=3)
    out = net(torch.rand(2, 2, 16, 16))
    assert out.shape == (2, 6, 16, 16)
    out[:, 3:].sum().backward()
    moved = {n for n, p in net.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert moved and all(n.startswith("sd_head.") for n in moved)


def test_sd_follows_label_noise_per_tissue_and_is_calibrated_on_held_out_slices():
    """Labels noisier in one tissue (T1 x (1 + 12 % noise) in GM, 2 % in WM): the predicted T1 SD is
    larger in GM, and on slices not trained on, about 68 % of the label residuals lie within +-1 SD."""
    rng = np.random.default_rng(1)
    wm = np.zeros((24, 24, 16), bool)
    for i in range(24):
        wm[i, :, :rng.integers(5, 11)] = True
    t1, t2, m0 = np.where(wm, 0.85, 1.35), np.where(wm, 0.07, 0.09), np.where(wm, 0.69, 0.8)
    from qmriprep.physics.mprage import mprage_signal
    from qmriprep.physics.tse import tse_signal

    images = np.stack([mprage_signal(m0, t1, MPRAGE), tse_signal(m0, t1, t2, TSE)]).astype(np.float32)
    noisy_t1 = t1 * (1 + np.where(wm, 0.02, 0.12) * rng.standard_normal(t1.shape))
    labels = np.stack([noisy_t1, t2, m0]).astype(np.float32)
    settings = HybridSettings(width=4, depth=2, max_epochs=30, steps_per_epoch=6, batch_size=4, lr=1e-2,
                              patience=30, val_fraction=0.25, edge_weight=0.0)
    torch.set_num_threads(1)
    nets, record = train([Volumes(images[:, :18], labels[:, :18])], (MPRAGE, TSE), settings)
    k = record["SDCalibration"]
    assert len(k) == 3 and all(np.isfinite(k)) and all(v > 0 for v in k)
    est = predict(nets, images[:, 18:], settings, sd_calibration=k)
    sd, err = est["t1_sd"], np.abs(est["t1"] - noisy_t1[18:])
    assert np.median(sd[~wm[18:]]) > 2 * np.median(sd[wm[18:]])
    assert 0.55 < (err <= sd).mean() < 0.82


def test_prediction_reports_progress_over_slices(caplog, monkeypatch):
    """Applying a model to a whole brain takes seconds to minutes: it reports slices done."""
    from qmriprep.utils import progress

    monkeypatch.setattr(progress, "EVERY_S", 0.0)
    net = UNet(2, 3, 4, 2, sd_channels=3)
    images = np.random.default_rng(0).uniform(0.1, 1, (2, 20, 16, 16)).astype(np.float32)
    with caplog.at_level(progress.LEVEL, logger=progress.LOGGER.name):
        maps = predict([net], images, HybridSettings(width=4, depth=2), batch=8, sd_calibration=[1, 1, 1])
    assert maps["t1"].shape == (20, 16, 16) and maps["t1_sd"].shape == (20, 16, 16)
    lines = {r.getMessage().split(" slices")[0] for r in caplog.records if r.name == progress.LOGGER.name}
    assert lines == {"U-Net maps 8/20", "U-Net maps 16/20", "U-Net maps 20/20"}
