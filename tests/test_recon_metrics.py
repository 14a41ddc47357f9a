"""Reconstruction metrics: hand-computed values, invariances, no-reference artefact measures."""

import numpy as np
import pytest
import torch

from qmriprep.recon import metrics as M


def _disc(n=64, radius=0.6):
    y, x = np.mgrid[-1 : 1 : n * 1j, -1 : 1 : n * 1j]
    img = (x**2 + y**2 < radius**2).astype(float)
    img += 0.5 * ((x - 0.15) ** 2 + (y + 0.1) ** 2 < 0.04)  # inner structure
    return img


def test_nrmse_psnr_hand_values():
    ref = np.array([3.0, 4.0, 0.0, 0.0])
    x = np.array([3.0, 3.0, 0.0, 1.0])
    assert M.nrmse(x, ref) == pytest.approx(np.sqrt(2) / 5)
    assert M.psnr(x, ref) == pytest.approx(10 * np.log10(16 / 0.5))
    mask = np.array([True, True, False, False])
    assert M.nrmse(x, ref, mask) == pytest.approx(1 / 5)
    assert M.psnr(x, ref, mask) == pytest.approx(10 * np.log10(16 / 0.5))  # mse 1/2 over 2
    assert M.psnr(ref, ref) == np.inf
    # complex, torch input
    refc = torch.tensor([1 + 1j, 2.0 + 0j])
    xc = torch.tensor([1 + 0j, 2.0 + 0j])
    assert M.nrmse(xc, refc) == pytest.approx(1 / np.sqrt(6))


def test_magnitude_scale_fit_removes_global_scale_and_phase():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(8, 8)) + 1j * rng.normal(size=(8, 8))
    x = ref * 0.37 * np.exp(-1.1j) + 0.01 * rng.normal(size=(8, 8))
    a = M.magnitude_scale_fit(x, ref)
    assert isinstance(a, complex)
    assert abs(a) == pytest.approx(1 / 0.37, rel=1e-2) and np.angle(a) == pytest.approx(1.1, abs=1e-2)
    assert M.nrmse(a * x, ref) < 0.05 < M.nrmse(x, ref)
    # the scaled error does not depend on the scale of x
    a2 = M.magnitude_scale_fit(5j * x, ref)
    assert M.nrmse(a2 * 5j * x, ref) == pytest.approx(M.nrmse(a * x, ref), rel=1e-10)
    # real inputs: real LS scale, hand value <x,r>/<x,x> = (1*2 + 2*3)/(1 + 4)
    assert M.magnitude_scale_fit(np.array([1.0, 2.0]), np.array([2.0, 3.0])) == pytest.approx(1.6)
    assert isinstance(M.magnitude_scale_fit(np.array([1.0]), np.array([2.0])), float)


def test_ssim_identity_degradation_stack_and_mask():
    ref = _disc(32)
    assert M.ssim(ref, ref) == pytest.approx(1.0)
    assert M.ssim(torch.tensor(ref * np.exp(0.7j)), ref) == pytest.approx(1.0)  # magnitudes
    rng = np.random.default_rng(1)
    noisy = ref + 0.2 * rng.normal(size=ref.shape)
    s = M.ssim(noisy, ref)
    assert 0 < s < 0.9
    stack = np.stack([ref, noisy])
    assert M.ssim(stack, np.stack([ref, ref])) == pytest.approx((1 + s) / 2)
    mask = np.zeros((2, 32, 32), bool)
    mask[0] = True  # second slice has no mask pixel: ignored
    assert M.ssim(np.stack([noisy, noisy]), np.stack([ref, ref]), mask) == pytest.approx(s)


def test_hfen_zero_for_identical_and_grows_with_blur():
    from scipy.ndimage import gaussian_filter

    ref = _disc(48)
    assert M.hfen(ref, ref) == 0.0
    e1 = M.hfen(gaussian_filter(ref, 0.7), ref)
    e2 = M.hfen(gaussian_filter(ref, 1.5), ref)
    assert 0 < e1 < e2
    assert M.hfen(3.0 * ref, 3.0 * ref) == 0.0
    # stack: each plane filtered on its own (an empty slice next to the disc stays empty)
    x = gaussian_filter(ref, 0.7)
    zero = np.zeros_like(ref)
    assert M.hfen(np.stack([x, zero]), np.stack([ref, zero])) == pytest.approx(e1, rel=1e-12)
    lap_scale = M.hfen(2.0 * ref, ref)  # LoG is linear: ||LoG(2r) - LoG(r)|| / ||LoG(r)|| = 1
    assert lap_scale == pytest.approx(1.0)


def _undersampled_zero_filled(img, frac, seed):
    """Zero-filled reconstruction from random phase-encode lines (centre 8 lines kept)."""
    rng = np.random.default_rng(seed)
    k = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(img), norm="ortho"))
    n = img.shape[0]
    keep = rng.random(n) < frac
    keep[n // 2 - 4 : n // 2 + 4] = True
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k * keep[:, None]), norm="ortho"))


def test_background_artifact_ratio_detects_aliasing():
    clean = _disc(64, radius=0.5)
    aliased = _undersampled_zero_filled(clean, 0.3, seed=2)
    r_clean = M.background_artifact_ratio(clean)
    r_alias = M.background_artifact_ratio(aliased)
    assert r_clean == pytest.approx(0.0, abs=1e-12)  # empty background
    assert r_alias > 0.015  # measured 0.025
    # scale-free, torch accepted, given mask gives the same as the Otsu one here
    assert M.background_artifact_ratio(torch.tensor(7.0 * aliased)) == pytest.approx(r_alias)
    filled, _ = M.object_mask_otsu(clean)
    assert M.background_artifact_ratio(aliased, filled) == pytest.approx(r_alias, rel=0.2)
    # hand value: background mean 1 outside, median 10 inside -> 0.1
    img = np.ones((20, 20))
    img[8:12, 8:12] = 10.0
    obj = img > 5
    assert M.background_artifact_ratio(img, obj, dilation=1) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        M.background_artifact_ratio(img, np.ones((20, 20), bool))


def test_tenengrad_scale_free_and_lower_when_blurred():
    from scipy.ndimage import gaussian_filter

    ref = _disc(48)
    t = M.tenengrad_sharpness(ref)
    assert t > 0
    assert M.tenengrad_sharpness(4.2 * ref * np.exp(0.3j)) == pytest.approx(t)
    assert M.tenengrad_sharpness(gaussian_filter(ref, 1.5)) < 0.7 * t
    assert M.tenengrad_sharpness(np.ones((16, 16))) == 0.0
