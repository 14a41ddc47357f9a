"""Cramer-Rao SD maps (fit/uncertainty.py): closed form, and calibration by simulation."""

import numpy as np
import pytest
import torch

from qmriprep.fit.despot1 import fit_vfa
from qmriprep.fit.monoexp import fit_monoexp
from qmriprep.fit.uncertainty import crb_sd, monoexp_sd, spgr_sd


def test_crb_of_a_line_matches_the_closed_form():
    """s = a + b t with Gaussian noise: Var(b) = sigma^2 / sum (t - mean t)^2."""
    t = torch.linspace(0, 1, 9, dtype=torch.float64)
    sd = crb_sd(lambda a, b: a[:, None] + b[:, None] * t, {"a": np.ones(4), "b": np.arange(4.0)}, 0.3)
    expected = 0.3 / np.sqrt(((t - t.mean()) ** 2).sum().item())
    np.testing.assert_allclose(sd["b"], expected, rtol=1e-6)
    np.testing.assert_allclose(sd["a"], 0.3 * np.sqrt((t ** 2).mean().item() / ((t - t.mean()) ** 2).mean().item() / 9),
                               rtol=1e-6)


def test_crb_is_zero_outside_the_mask_and_for_a_singular_model():
    sd = crb_sd(lambda a, b: (a + b)[:, None] * torch.ones(3, dtype=torch.float64),
                {"a": np.ones(3), "b": np.ones(3)}, 1.0, np.array([True, True, False]))
    assert np.all(sd["a"] == 0) and np.all(sd["b"] == 0)


def _coverage(fit, truth, sd):
    return np.mean(np.abs(fit - truth) <= sd)


@pytest.mark.parametrize("method", ["varpro", "nlls"])
def test_monoexp_sd_is_calibrated(method):
    rng = np.random.default_rng(0)
    te = 0.01 * np.arange(1, 17)
    t2 = rng.uniform(0.05, 0.12, 4000)
    clean = np.exp(-te / t2[:, None])
    sigma = 1 / 30
    noisy = np.abs(clean + sigma * (rng.standard_normal(clean.shape) + 1j * rng.standard_normal(clean.shape)))
    maps = fit_monoexp(noisy, te, method=method)
    sd = monoexp_sd(maps, te, sigma)
    assert 0.62 < _coverage(maps["t2"], t2, sd["t2_sd"]) < 0.74
    assert 0.62 < _coverage(maps["m0"], 1.0, sd["m0_sd"]) < 0.74
    np.testing.assert_allclose(sd["r2_sd"], sd["t2_sd"] / maps["t2"] ** 2, rtol=1e-5)


def test_spgr_sd_is_calibrated_with_b1():
    rng = np.random.default_rng(1)
    fa, tr = np.deg2rad([3, 8, 15, 20]), 0.015
    t1 = rng.uniform(0.8, 1.6, 4000)
    b1 = rng.uniform(0.8, 1.2, 4000)
    a = b1[:, None] * fa
    e1 = np.exp(-tr / t1)[:, None]
    clean = np.sin(a) * (1 - e1) / (1 - e1 * np.cos(a))
    sigma = clean[:, 0].mean() / 30
    noisy = clean + sigma * rng.standard_normal(clean.shape)
    maps = fit_vfa(noisy, fa, tr, b1=b1, method="nlls")
    sd = spgr_sd(maps, fa, tr, sigma, b1=b1)
    assert 0.62 < _coverage(maps["t1"], t1, sd["t1_sd"]) < 0.74


def test_without_measured_noise_the_residuals_give_sigma():
    rng = np.random.default_rng(2)
    te = 0.01 * np.arange(1, 17)
    clean = np.exp(-te / 0.08)[None].repeat(2000, 0)
    noisy = clean + 0.02 * rng.standard_normal(clean.shape)
    maps = fit_monoexp(noisy, te, method="varpro")
    ratio = monoexp_sd(maps, te, None)["t2_sd"] / monoexp_sd(maps, te, 0.02)["t2_sd"]
    assert abs(np.median(ratio) - 1) < 0.05


def test_dess_sd_is_calibrated():
    from qmriprep.bids.protocols import DESSProtocol
    from qmriprep.fit.qdess import fit_qdess
    from qmriprep.fit.uncertainty import dess_sd
    from qmriprep.physics.dess import dess_signals

    rng = np.random.default_rng(3)
    protocol = DESSProtocol(echo_times=(0.006, 0.006), tr=0.02, flip_angle=np.deg2rad(25),
                            spoiler_gradient_amplitude=None, spoiler_gradient_duration=None)
    t2 = rng.uniform(0.04, 0.1, 4000)
    s1, s2 = dess_signals(np.ones_like(t2), 1.2, t2, protocol)
    sigma = s2.mean() / 30
    n1, n2 = (s + sigma * rng.standard_normal(s.shape) for s in (s1, s2))
    fit = fit_qdess(n1, n2, protocol, t1=1.2)["t2"]
    sd = dess_sd(fit, n1, protocol, sigma, t1=1.2)
    assert 0.60 < _coverage(fit, t2, sd["t2_sd"]) < 0.76


def test_miracle_sd_is_calibrated():
    """12 complex cycles with noise, random tissue, B1+ and off-resonance: MIRACLE's propagated SD
    covers the truth for about 68 % of the voxels, and scales with sigma and the signal level."""
    from qmriprep.bids.protocols import BSSFPProtocol
    from qmriprep.estimators.bssfp import fit_miracle
    from qmriprep.fit.fourier import fourier_configurations
    from qmriprep.physics.bssfp import bssfp_signal

    rng = np.random.default_rng(4)
    n = 4000
    protocol = BSSFPProtocol(tuple(2 * np.pi * np.arange(12) / 12), 0.0048, np.deg2rad(15), 0.0024)
    t1, t2 = rng.uniform(0.6, 1.8, n), rng.uniform(0.04, 0.12, n)
    b1, theta = rng.uniform(0.8, 1.2, n), rng.uniform(-np.pi, np.pi, n)
    clean = bssfp_signal(t1, t2, b1, theta, protocol, m0=rng.uniform(0.7, 1.3, n))
    sigma = float(np.abs(clean).mean()) / 30
    noisy = clean + sigma * (rng.standard_normal(clean.shape) + 1j * rng.standard_normal(clean.shape))
    feats, norm = fourier_configurations(noisy, protocol.phase_increments, gibbs=False, return_norm=True)
    fit = fit_miracle(feats, protocol, b1=b1, noise_sigma=sigma, scale=norm)
    for p, truth in (("t1", t1), ("t2", t2)):
        assert 0.60 < _coverage(fit[p], truth, fit[f"{p}_sd"]) < 0.76, p
    half = fit_miracle(feats, protocol, b1=b1, noise_sigma=sigma / 2, scale=2 * norm)
    np.testing.assert_allclose(half["t2_sd"], fit["t2_sd"] / 4, rtol=1e-5)
    assert np.all(fit_miracle(feats, protocol, b1=b1)["t1_sd"] == 0)  # no noise measured: no SD


def test_sd_after_denoising_propagates_the_noise_through_the_kept_components():
    """MP-PCA of a textured 16-echo MESE slab at SNR 30: with the acquired sigma alone the SD
    over-covers the errors of the denoised fit; propagated through each voxel's kept components
    (with the noise those components absorbed) it is calibrated to within a few points of 68 %."""
    from qmriprep.fit.denoise import denoise_mppca
    from qmriprep.synth.phantom import make_phantom

    ph = make_phantom(downsample=3, crop=True, n_slices=10)
    te = 0.01 * np.arange(1, 17)
    rng = np.random.default_rng(5)
    clean = np.where(ph.mask[..., None], ph.pd[..., None] * np.exp(-te / np.maximum(ph.t2, 1e-3)[..., None]), 0)
    sigma = float(np.mean(clean[..., 0][ph.mask & (ph.labels == 3)])) / 30
    noisy = np.hypot(clean + sigma * rng.standard_normal(clean.shape), sigma * rng.standard_normal(clean.shape))
    den, basis = denoise_mppca(noisy, ph.mask, sigma=sigma, return_basis=True)
    maps = fit_monoexp(den, te, method="varpro", mask=ph.mask)
    tissue = ph.mask & np.isin(ph.labels, (2, 3))
    naive = monoexp_sd(maps, te, sigma, ph.mask)["t2_sd"]
    sd = monoexp_sd(maps, te, sigma, ph.mask, basis)["t2_sd"]
    assert _coverage(maps["t2"][tissue], ph.t2[tissue], naive[tissue]) > 0.75
    assert 0.64 < _coverage(maps["t2"][tissue], ph.t2[tissue], sd[tissue]) < 0.72
    assert np.median(sd[tissue]) < np.median(naive[tissue])
    # the kept eigenvectors lean towards the patch noise: more than sigma^2 per kept direction
    assert 1.1 < np.median(basis.kept_noise[tissue[basis.mask]]) < 1.6


def test_configuration_noise_is_the_linearised_magnitude_covariance():
    """The 3-channel basis of |F-1|, |F0|, |F+1| gives N J C J^T, with J the finite-difference
    Jacobian of the magnitudes with respect to the real and imaginary parts of the cycles and C
    the series' covariance ``U U^T + f (I - U U^T)``; the identity when every direction is kept."""
    from qmriprep.fit.denoise import NoiseBasis
    from qmriprep.fit.fourier import configuration_noise
    from qmriprep.physics.bssfp import configurations

    rng = np.random.default_rng(7)
    n, voxels, kept = 8, 5, 3
    phi = 2 * np.pi * np.arange(n) / n
    series = (rng.standard_normal((voxels, 1, 1, n)) + 1j * rng.standard_normal((voxels, 1, 1, n)))
    vectors = np.linalg.qr(rng.standard_normal((voxels, 2 * n, kept)))[0]
    mask = np.ones((voxels, 1, 1), bool)
    basis = NoiseBasis(mask, vectors.astype(np.float16), 125, rng.uniform(0, 0.3, voxels).astype(np.float32),
                       rng.uniform(1, 1.5, voxels).astype(np.float32))
    got = configuration_noise(basis, series, phi)
    w, f = got.at(mask)
    for v in range(voxels):
        x = np.concatenate([series[v, 0, 0].real, series[v, 0, 0].imag])
        mags = lambda x: np.abs(np.asarray(configurations(x[:n] + 1j * x[n:], phi)))  # noqa: E731
        jac = np.stack([(mags(x + 1e-6 * e) - mags(x - 1e-6 * e)) / 2e-6 for e in np.eye(2 * n)], -1)
        u = basis.vectors[v].astype(np.float64)
        cov = basis.kept_noise[v] * u @ u.T + f[v] * (np.eye(2 * n) - u @ u.T)
        expected = n * jac @ cov @ jac.T
        np.testing.assert_allclose(w[v].astype(np.float64) @ w[v].T + f[v] * np.eye(3), expected, atol=2e-3)
    full = NoiseBasis(mask, np.broadcast_to(np.eye(2 * n), (voxels, 2 * n, 2 * n)).astype(np.float16), 125,
                      np.zeros(voxels, np.float32), np.ones(voxels, np.float32))
    np.testing.assert_allclose(configuration_noise(full, series, phi).variance(), 1.0, atol=2e-3)


def test_miracle_sd_after_complex_denoising_is_calibrated():
    """MP-PCA of a 12-cycle phantom slab at SNR 30: MIRACLE's SD from the acquired sigma alone
    over-covers the denoised fit's errors; through the magnitudes' noise basis it is calibrated."""
    from qmriprep.estimators.bssfp import fit_miracle
    from qmriprep.fit.denoise import denoise_mppca
    from qmriprep.fit.fourier import configuration_noise, fourier_configurations
    from qmriprep.nn.insilico import seed_protocol
    from qmriprep.synth import bssfp as sb
    from qmriprep.synth.phantom import make_phantom

    ph = make_phantom(downsample=3, crop=True, n_slices=10, seed=1)
    protocol = seed_protocol(12)
    clean = sb.clean_signal(ph, 12)
    sigma = sb.noise_sigma(float(np.mean(ph.pd[ph.noise_reference()])), 30)
    rng = np.random.default_rng(8)
    noisy = clean + sigma * (rng.standard_normal(clean.shape) + 1j * rng.standard_normal(clean.shape))
    brain = ph.mask & (ph.pd > 0.3)
    den, basis = denoise_mppca(noisy, brain, sigma=sigma, return_basis=True)
    feats, norm = fourier_configurations(den, protocol.phase_increments, gibbs=False, mask=brain, return_norm=True)
    tissue = brain & np.isin(ph.labels, (2, 3))
    naive = fit_miracle(feats, protocol, b1=ph.b1, mask=brain, noise_sigma=sigma, scale=norm)
    fit = fit_miracle(feats, protocol, b1=ph.b1, mask=brain, noise_sigma=sigma, scale=norm,
                      noise_basis=configuration_noise(basis, den, protocol.phase_increments))
    for p, truth in (("t1", ph.t1), ("t2", ph.t2)):
        assert _coverage(naive[p][tissue], truth[tissue], naive[f"{p}_sd"][tissue]) > 0.8, p
        assert 0.60 < _coverage(fit[p][tissue], truth[tissue], fit[f"{p}_sd"][tissue]) < 0.76, p


def test_network_sd_on_denoised_data_keeps_the_prior_part_and_rescales_the_noise_part():
    """Identity noise basis at the training sigma: the head's SD is returned; a basis with a tenth
    of the noise: a head at the noise's Cramer-Rao SD (no prior pull) scales by 0.1, a head at half
    of it (w = 1/4) becomes sqrt(h^2 - n^2 / 16 + n^2 / 1600)."""
    from qmriprep.bids.protocols import BSSFPProtocol
    from qmriprep.fit.denoise import NoiseBasis
    from qmriprep.fit.uncertainty import denoised_network_sd, miracle_sd

    protocol = BSSFPProtocol(tuple(2 * np.pi * np.arange(12) / 12), 0.0048, np.deg2rad(15), 0.0024)
    t1, t2 = np.array([0.8, 1.3, 1.9]), np.array([0.06, 0.08, 0.1])
    mask = np.ones(3, bool)
    same = NoiseBasis(mask, np.zeros((3, 3, 1), np.float16), 1, np.zeros(3, np.float32), np.ones(3, np.float32))
    tenth = NoiseBasis(mask, np.zeros((3, 3, 1), np.float16), 100, np.zeros(3, np.float32), np.ones(3, np.float32))
    n = miracle_sd(t1, t2, None, protocol, sigma=0.01, norm=0.2)
    kw = {"sigma": 0.01, "training_sigma": 0.01, "norm": 0.2}
    for p in ("t1_sd", "t2_sd"):
        heads = {"t1": t1, "t2": t2, "t1_sd": n["t1_sd"], "t2_sd": n["t2_sd"]}
        np.testing.assert_allclose(denoised_network_sd(heads, None, protocol, basis=same, **kw)[p],
                                   n[p], rtol=1e-5)
        np.testing.assert_allclose(denoised_network_sd(heads, None, protocol, basis=tenth, **kw)[p],
                                   n[p] / 10, rtol=1e-4)
        half = {**heads, "t1_sd": n["t1_sd"] / 2, "t2_sd": n["t2_sd"] / 2}
        np.testing.assert_allclose(denoised_network_sd(half, None, protocol, basis=tenth, **kw)[p],
                                   np.sqrt(n[p] ** 2 / 4 - n[p] ** 2 / 16 + n[p] ** 2 / 1600), rtol=1e-4)
