"""Noise-matched pc-bSSFP networks: the SNR matching, the uncertainty head, out-of-range flags."""

import math

import numpy as np
import pytest
import torch

from qmriprep.nn.insilico import (add_noise, configurations, matched_snr, noise_sigma, sample_parameters,
                                  seed_protocol, signal_level, simulate, snap_snr)
from qmriprep.nn.mlp import BSSFPNet
from qmriprep.nn.options import NetworkOptions, matched_training
from qmriprep.nn.train import TrainSettings, head_loss, train

SMALL = dict(n_samples=30_000, max_epochs=10, batch_size=512, lr=3e-3)


def _prior_series(protocol, n, m0, sigma, seed, on_resonance=False):
    g = torch.Generator().manual_seed(seed)
    p = sample_parameters(n, "invivo", complex_net=True, generator=g, dtype=torch.float64)
    theta = torch.zeros_like(p["theta"]) if on_resonance else p["theta"]
    sig = m0 * simulate(protocol, p["t1"], p["t2"], p["b1"], theta)
    return p, sig + sigma * torch.complex(torch.randn(sig.shape, generator=g, dtype=torch.float64),
                                          torch.randn(sig.shape, generator=g, dtype=torch.float64))


def _level(protocol, series) -> float:
    """The pipeline's level: median norm of the configurations (fit.fourier, as the workflow)."""
    from qmriprep.fit.fourier import fourier_configurations

    _, norm = fourier_configurations(series.numpy(), protocol.phase_increments, gibbs=False, return_norm=True)
    return float(np.median(norm))


@pytest.mark.parametrize("n_cycles", [12, 4])
@pytest.mark.parametrize("on_resonance", [False, True])
def test_matched_snr_recovers_the_seed_snr_of_a_brain_like_series(n_cycles, on_resonance):
    """A brain-like series with M0 = 0.7 and sigma of seed SNR 30 is measured as SNR 30 from the
    median norm of its configurations, whatever its off-resonance (all on resonance: 32 at 4
    cycles, where F+-1 alias with F-+3; the first cycle's level, used before, gave 41)."""
    p = seed_protocol(n_cycles)
    sigma = 0.074 * 0.7 / (math.sqrt(2) * 30)
    _, sig = _prior_series(p, 20_000, 0.7, sigma, seed=3, on_resonance=on_resonance)
    assert matched_snr(sigma, _level(p, sig), p) == pytest.approx(30, rel=0.08)
    assert signal_level(p) > 0 and matched_snr(0.0, 1.0, p) == math.inf


def test_snap_snr_grid():
    assert snap_snr(30) == 32.0 and snap_snr(50) == 53.8 and snap_snr(100) == 108.0
    assert snap_snr(math.inf) is None and snap_snr(5000) is None
    for snr in (7.0, 23.0, 61.0, 400.0):
        assert abs(math.log(snap_snr(snr) / snr)) <= math.log(2) / 8 + 1e-3


def test_matched_training_options():
    p = seed_protocol(12)
    sigma = 0.074 * 0.7 / (math.sqrt(2) * 30)
    got = matched_training(NetworkOptions(distribution="uniform"), p, sigma, 0.7 * signal_level(p))
    assert got["snr"] == 32.0 and got["series_snr"] == pytest.approx(30, rel=1e-3)
    assert got["training_noise_sigma"] == pytest.approx(noise_sigma(32.0) * 0.7, rel=1e-3)
    assert matched_training(NetworkOptions(noise_match=False), p, sigma, 20.0) == {"snr": None}
    assert matched_training(NetworkOptions(), p, None, None) == {"snr": None}
    assert matched_training(NetworkOptions(snr=25.0), p, None, None) == {"snr": 25.0}


def test_head_loss_is_minimal_at_the_error_variance():
    net = BSSFPNet(False, low=[0.0, 0.0], high=[1.0, 1.0])
    s = torch.full((10_000, 2), 0.5)
    target = s + 0.1 * torch.randn(10_000, 2, generator=torch.Generator().manual_seed(0))
    losses = {v: head_loss(net, s, torch.full_like(s, math.log(v)), target).item() for v in (0.003, 0.01, 0.03)}
    assert losses[0.01] < losses[0.003] and losses[0.01] < losses[0.03]


@pytest.fixture(scope="module")
def nets():
    """Magnitude SVNNs for 12 cycles on the uniform prior: noise-free and at SNR 15."""
    p = seed_protocol(12)
    return p, {snr: train(p, "svnn", settings=TrainSettings(snr=snr, seed=1, **SMALL)) for snr in (None, 15.0)}


def test_noise_matched_network_is_more_accurate_and_its_sd_calibrated(nets):
    """On noisy draws of the training prior, the SNR-15 network beats the noise-free one (it
    estimates the posterior mean) and about 68 % of the truths lie within +-1 predicted SD."""
    p, models = nets
    g = torch.Generator().manual_seed(7)
    prm = sample_parameters(20_000, "uniform", generator=g)
    sig = add_noise(simulate(p, prm["t1"], prm["t2"], prm["b1"], prm["theta"]), 15.0, g)
    F = configurations(p, sig).abs()
    rmse = {}
    for snr, m in models.items():
        out = m.predict(F, prm["b1"].numpy())
        rmse[snr] = [float(np.sqrt(np.mean((out[k] / prm[k].numpy() - 1) ** 2))) for k in ("t1", "t2")]
        if snr:
            inside = [np.mean(np.abs(out[k] - prm[k].numpy()) <= out[f"{k}_sd"]) for k in ("t1", "t2")]
            assert all(0.6 <= f <= 0.76 for f in inside), inside
    assert rmse[15.0][0] < 0.95 * rmse[None][0] and rmse[15.0][1] < 0.95 * rmse[None][1], rmse


def test_out_of_range_flags(nets):
    """B1+ outside 0.7-1.3 and CSF-like relaxation (outside the uniform box) are flagged; WM is not."""
    p, models = nets
    t1, t2 = torch.tensor([0.85, 0.85, 4.3]), torch.tensor([0.07, 0.07, 1.8])
    b1 = torch.tensor([1.0, 1.5, 1.0])
    F = configurations(p, simulate(p, t1, t2, b1, torch.zeros(3))).abs()
    out = models[15.0].predict(F, b1.numpy())
    assert out["out_of_range"].tolist() == [False, True, True]
    assert (out["t1_sd"] > 0).all() and out["t1_sd"][0] < 0.2 * out["t1"][0]


def test_interfaces_train_for_the_series_noise_and_write_sd_and_flags(nets, tmp_path):
    """TrainNetwork picks the training SNR from the measured noise; NetworkFit writes the SD maps,
    the out-of-range mask and the sidecar fields."""

    import nibabel as nib

    from qmriprep.interfaces.nn import NetworkFit, TrainNetwork
    from qmriprep.nn.weights import save_model

    p, models = nets
    sigma = 0.074 * 0.7 / (math.sqrt(2) * 30)
    snr = 20.0
    nib.save(nib.Nifti1Image(np.full((4, 4, 2), 0.7 * signal_level(p), np.float32), np.eye(4)),
             str(tmp_path / "norm.nii.gz"))
    trained = TrainNetwork(protocol=p.as_dict(), noise_sigma=sigma, scale_file=str(tmp_path / "norm.nii.gz"),
                           options={"physics_informed": False, "complex_net": False, "n_samples": 3000,
                                    "max_epochs": 1, "cache_dir": str(tmp_path / "cache")}).run()
    prov = trained.outputs.provenance
    assert prov["snr"] == 32.0 and prov["training_settings"]["snr"] == 32.0
    assert prov["training_noise_sigma"] == pytest.approx(noise_sigma(32.0) * 0.7, rel=1e-3)

    t1, t2 = torch.tensor([[0.85, 1.35, 4.3]]), torch.tensor([[0.07, 0.09, 1.8]])
    F = configurations(p, simulate(p, t1, t2, torch.ones_like(t1), torch.zeros_like(t1))).numpy()
    nib.save(nib.Nifti1Image(F[:, :, None, :].astype(np.complex64), np.eye(4)), str(tmp_path / "F.nii.gz"))
    save_model(models[15.0], tmp_path / "m.pt")
    res = NetworkFit(in_files=[str(tmp_path / "F.nii.gz")], model_file=str(tmp_path / "m.pt"),
                     protocol=p.as_dict(), provenance=prov, noise_meta={"NoiseSigma": sigma, "SNR": snr}).run()
    sd = np.asarray(nib.load(res.outputs.t2_sd).dataobj)[0, :, 0]
    flags = nib.load(res.outputs.out_of_range)
    assert (sd[:2] > 0).all() and flags.get_data_dtype() == np.uint8
    assert np.asarray(flags.dataobj)[0, :, 0].tolist() == [0, 0, 1]
    meta = res.outputs.meta
    assert meta["OutOfRangeVoxels"] == 1 and meta["TrainingSNR"] == 32.0 and meta["NoiseSigma"] == sigma
    assert meta["TrainingNoiseSigma"] == pytest.approx(prov["training_noise_sigma"])
