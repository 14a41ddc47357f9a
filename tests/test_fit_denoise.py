"""MP-PCA denoising (fit/denoise.py) on the brain phantom, against dipy's mppca."""

import numpy as np
import pytest

from qmriprep.fit.denoise import DenoiseSettings, denoise_mppca
from qmriprep.synth import bssfp, contrasts
from qmriprep.synth.phantom import make_phantom


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(downsample=3, crop=True, n_slices=12)


def test_denoising_a_magnitude_series_lowers_the_error(phantom):
    clean = np.stack([v[2] for v in contrasts.complete_volumes("MESE", phantom)], -1)
    sigma = float(clean[..., 0][phantom.mask].mean() / 30)
    rng = np.random.default_rng(0)
    noisy = np.hypot(clean + sigma * rng.standard_normal(clean.shape), sigma * rng.standard_normal(clean.shape))
    out = denoise_mppca(noisy, phantom.mask)
    m = phantom.mask
    err = lambda x: np.sqrt(np.mean((x - clean)[m] ** 2))  # noqa: E731
    assert err(out) < 0.7 * err(noisy)
    assert np.array_equal(out[~m], noisy[~m]) and out.min() >= 0


def test_denoising_a_complex_series_keeps_it_complex_and_lowers_the_error(phantom):
    clean = bssfp.clean_signal(phantom, 12)
    rng = np.random.default_rng(1)
    sigma = 0.074 / (np.sqrt(2) * 30)
    noisy = clean + sigma * (rng.standard_normal(clean.shape) + 1j * rng.standard_normal(clean.shape))
    out = denoise_mppca(noisy, phantom.mask)
    m = phantom.mask
    assert np.iscomplexobj(out)
    assert np.abs(out - clean)[m].mean() < 0.8 * np.abs(noisy - clean)[m].mean()


def test_denoising_is_comparable_to_dipy(phantom):
    from dipy.denoise.localpca import mppca

    clean = np.stack([v[2] for v in contrasts.complete_volumes("VFA", phantom)], -1)[..., :4]
    clean = np.concatenate([clean, clean * 0.9, clean * 1.1], -1)  # 12 volumes of rank 4
    sigma = float(clean[..., 0][phantom.mask].mean() / 20)
    noisy = clean + sigma * np.random.default_rng(2).standard_normal(clean.shape)
    m = phantom.mask
    ours = np.sqrt(np.mean((denoise_mppca(noisy, m) - clean)[m] ** 2))
    theirs = np.sqrt(np.mean((mppca(noisy, mask=m, suppress_warning=True) - clean)[m] ** 2))
    assert ours < 1.5 * theirs and ours < 0.8 * sigma


def test_settings_choose_the_kinds():
    assert DenoiseSettings("mppca").applies_to("MESE") and not DenoiseSettings("mppca").applies_to("DESS")
    assert not DenoiseSettings("none").applies_to("VFA")


def test_noise_basis_refuses_voxels_it_did_not_denoise():
    rng = np.random.default_rng(0)
    data = rng.standard_normal((8, 8, 8, 6)) + 5
    mask = np.zeros((8, 8, 8), bool)
    mask[2:6, 2:6, 2:6] = True
    _, basis = denoise_mppca(data, mask, sigma=1.0, return_basis=True)
    assert basis.at(mask)[0].shape[:2] == (int(mask.sum()), 6)
    with pytest.raises(ValueError, match="outside the denoised mask"):
        basis.at(np.ones_like(mask))


def test_noise_basis_counts_the_signal_the_denoiser_removed():
    """A weak component under the Marchenko-Pastur edge is dropped with the noise: its variance
    (0.25 sigma^2 over 5 dropped directions, 0.05 each) shows in ``dropped``; pure noise gives ~0."""
    shape = (16, 16, 16)
    mask = np.zeros(shape, bool)
    mask[3:13, 3:13, 3:13] = True
    rng = np.random.default_rng(0)
    strong = rng.standard_normal(shape)[..., None] * 10 * np.ones(6) / np.sqrt(6)
    weak = rng.standard_normal(shape)[..., None] * np.array([1, -1, 1, -1, 1, -1]) / np.sqrt(6)
    means = []
    for amplitude in (0.0, 0.5):
        data = 5 + strong + amplitude * weak + rng.standard_normal(shape + (6,))
        _, basis = denoise_mppca(data, mask, sigma=1.0, return_basis=True)
        one_kept = (basis.vectors.astype(float) ** 2).sum(1).astype(bool).sum(1) == 1
        means.append(float(basis.dropped[one_kept].mean()))
    assert means[0] < 0.015 < 0.025 < means[1] < 0.06
