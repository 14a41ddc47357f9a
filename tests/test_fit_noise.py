"""Noise estimation (fit/noise.py): within 10 % of the true sigma on the brain phantom."""

import numpy as np
import pytest

from qmriprep.fit.noise import NoiseEstimate, estimate_noise, mp_variance
from qmriprep.synth import bssfp, contrasts
from qmriprep.synth.phantom import make_phantom


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(downsample=3, crop=False, n_slices=24)


def _magnitude(ph, mod, snr, rng):
    clean = np.stack([v[2] for v in contrasts.complete_volumes(mod, ph)], -1)
    sigma = float(np.mean(clean[..., 0][ph.noise_reference()]) / snr)
    n = rng.standard_normal((2,) + clean.shape)
    return np.hypot(clean + sigma * n[0], sigma * n[1]), sigma


def _complex(ph, snr, rng):
    sig = bssfp.clean_signal(ph, 12)
    sigma = bssfp.noise_sigma(np.mean(ph.pd[ph.noise_reference()]), snr)
    n = rng.standard_normal((2,) + sig.shape)
    return sig + sigma * (n[0] + 1j * n[1]), sigma


@pytest.mark.parametrize("mod", ["MESE", "VFA"])
@pytest.mark.parametrize("view", ["full", "skullstripped", "tight"])
def test_noise_of_magnitude_series_within_10_percent(phantom, mod, view):
    data, sigma = _magnitude(phantom, mod, 30, np.random.default_rng(1))
    data, mask = _view(phantom, data, view)
    est = estimate_noise(data, is_complex=False, mask=mask)
    assert isinstance(est, NoiseEstimate)
    assert abs(est.sigma / sigma - 1) < 0.10, (est, sigma)
    assert est.method.startswith("background" if view == "full" else "MP-PCA")
    assert 20 < est.snr < 60  # 30 in pure WM; the median over all tissue is near it


@pytest.mark.parametrize("view", ["full", "skullstripped", "tight"])
def test_noise_of_complex_series_within_10_percent(phantom, view):
    data, sigma = _complex(phantom, 30, np.random.default_rng(2))
    data, mask = _view(phantom, data, view)
    est = estimate_noise(data, is_complex=True, mask=mask)
    assert abs(est.sigma / sigma - 1) < 0.10, (est, sigma)
    assert est.method.startswith("background" if view == "full" else "MP-PCA")


def _view(ph, data, view):
    """The whole field of view (mask computed), skull-stripped (zero outside), or a tight box
    inside the brain (no background at all)."""
    if view == "full":
        return data, None
    if view == "skullstripped":
        return data * ph.mask[..., None], ph.mask
    idx = np.argwhere(ph.mask)
    lo, hi = idx.min(0), idx.max(0)
    mid, half = (lo + hi) // 2, np.maximum((hi - lo) // 4, 3)
    box = tuple(slice(m - h, m + h) for m, h in zip(mid[:2], half[:2])) + (slice(None),)
    return data[box], None


def test_mp_variance_matches_dipy_classifier():
    """The batched Marchenko-Pastur classifier equals dipy's loop on each patch."""
    from dipy.denoise.localpca import _pca_classifier

    rng = np.random.default_rng(3)
    base = rng.standard_normal((6, 125, 3)) @ rng.standard_normal((6, 3, 12)) * 5
    patches = base + rng.standard_normal((6, 125, 12)) * 0.7
    ours = mp_variance(patches)
    for p, v in zip(patches, ours):
        c = p - p.mean(0)
        lam = np.linalg.eigvalsh(c.T @ c / len(p))
        assert v == pytest.approx(_pca_classifier(lam, len(p))[0], rel=1e-10)
    assert np.all(np.abs(np.sqrt(ours) / 0.7 - 1) < 0.15)


def test_empty_series_gives_zero_sigma_and_nan_snr():
    est = estimate_noise(np.zeros((12, 12, 12, 4)), is_complex=False)
    assert est.sigma == 0 and np.isnan(est.snr)


@pytest.mark.parametrize("channels", [300, 800])
def test_mp_variance_of_long_series_is_the_noise_variance(channels):
    """More channels than patch voxels (an MRF series, 400 frames, complex: 800 channels): the
    variance is sigma^2 within 5 %; read off the m-channel covariance it would be m/(n-1) times
    too large (the non-zero eigenvalues of an n-voxel patch carry all m channels' noise)."""
    rng = np.random.default_rng(4)
    patches = rng.standard_normal((40, 125, 3)) @ rng.standard_normal((40, 3, channels)) * 4
    patches += 0.5 * rng.standard_normal(patches.shape)
    assert np.sqrt(np.median(mp_variance(patches))) == pytest.approx(0.5, rel=0.05)


def test_noise_of_a_signed_mrf_series_without_background_within_5_percent():
    """A phase-corrected (signed, real) MRF series cropped to the head, 400 frames: MP-PCA reads
    its signed values (a folded |x| shrank the noise where the signal crosses zero: 0.79 of the
    truth) through the patches' Gram matrix (the covariance route: m/(n-1) times too large)."""
    from qmriprep.synth.mrf import fisp_schedule, mrf_series

    ph = make_phantom(downsample=4, n_slices=6, seed=0)
    series, sigma = mrf_series(ph, fisp_schedule(), snr=1.0, rng=np.random.default_rng(1))
    est = estimate_noise(series, is_complex=False)
    assert est.method.startswith("MP-PCA") and est.sigma == pytest.approx(sigma, rel=0.05)


def test_noise_of_a_single_slice_series_without_background_within_10_percent():
    """One slice, no background (qMRLab's real examples): 5 x 5 x 1 patches (cubes of side
    min(shape) were single voxels, whose centred covariance is 0: sigma was 0)."""
    rng = np.random.default_rng(2)
    te = np.linspace(0.01, 0.3, 30)
    t2 = 0.05 + 0.07 * rng.random((60, 70, 1, 1))
    series = 300 * (0.7 + 0.6 * rng.random((60, 70, 1, 1))) * np.exp(-te / t2)
    series += 10 * rng.standard_normal(series.shape)
    est = estimate_noise(series, is_complex=False, mask=np.ones((60, 70, 1), bool))
    assert est.method.startswith("MP-PCA") and est.sigma == pytest.approx(10, rel=0.1)


@pytest.mark.parametrize("coils", [1, 4, 8, 32])
def test_noise_of_a_coil_combined_magnitude_within_10_percent(phantom, coils):
    """A multi-channel magnitude's background is a central chi with 2N degrees of freedom: its
    channels and sigma (per real channel of one coil) from the background's moments."""
    from qmriprep.synth.kspace import coil_maps, root_sum_of_squares

    clean = np.stack([v[2] for v in contrasts.complete_volumes("MESE", phantom)], -1)
    sigma = float(np.mean(clean[..., 0][phantom.noise_reference()]) / 30)
    data = root_sum_of_squares(clean, coil_maps(phantom, coils), sigma, np.random.default_rng(5))
    est = estimate_noise(data, is_complex=False)
    assert est.method.startswith("background") and est.channels == pytest.approx(coils, rel=0.05)
    assert abs(est.sigma / sigma - 1) < 0.10, (est, sigma)


def test_a_background_with_a_ghost_is_not_taken_for_noise(phantom):
    """A Nyquist ghost (the image shifted by half the field of view at 10 %) filling a single-coil
    background: chi-like moments (taken as noise they gave sigma 32 % high), but neighbouring
    background voxels correlate, so MP-PCA in the foreground is used instead."""
    data, sigma = _magnitude(phantom, "MESE", 30, np.random.default_rng(6))
    ghost = np.roll(data, data.shape[1] // 2, axis=1)
    est = estimate_noise(np.hypot(data, 0.1 * ghost), is_complex=False)
    assert est.method.startswith("MP-PCA") and est.channels is None
    assert abs(est.sigma / sigma - 1) < 0.10, (est, sigma)
