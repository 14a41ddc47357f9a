"""B1+ estimators (DAM, AFI, TFL) and B1 map regularisation."""

import numpy as np
import pytest

from qmriprep.fit.b1 import b1_from_afi, b1_from_dam, b1_from_tfl, median_filter_b1, smooth_b1
from qmriprep.physics.b1 import afi_signals, dam_signals, tfl_famp

B1 = np.linspace(0.6, 1.4, 41)


def _rel(a, b):
    return np.abs(np.asarray(a, np.float64) / b - 1.0)


def test_dam_exact_long_tr():
    a = np.deg2rad(60.0)
    sig = dam_signals(1000.0, 1.0, a, 1000.0, B1)  # TR >> T1: the DAM assumption holds
    out = b1_from_dam(sig, a)
    assert out["b1"].dtype == np.float32 and out["valid"].dtype == bool
    assert out["valid"].all()
    assert _rel(out["b1"], B1).max() < 1e-6


def test_afi_small_finite_tr_bias():
    a = np.deg2rad(60.0)
    b1 = np.linspace(0.7, 1.3, 31)
    for t1, tol in ((1.0, 5e-3), (4.0, 1.5e-3)):
        sig = afi_signals(1000.0, t1, a, 0.020, 0.100, b1)
        out = b1_from_afi(sig, 0.020, 0.100, a)
        assert out["valid"].all()
        assert _rel(out["b1"], b1).max() < tol, t1
    # the bias vanishes as TR/T1 -> 0
    sig = afi_signals(1000.0, 1000.0, a, 0.020, 0.100, b1)
    assert _rel(b1_from_afi(sig, 0.020, 0.100, a)["b1"], b1).max() < 1e-5


def test_tfl_exact():
    a = np.deg2rad(80.0)
    out = b1_from_tfl(tfl_famp(a, B1), a)
    assert out["valid"].all()
    assert _rel(out["b1"], B1).max() < 1e-6


def test_invalid_voxels():
    a = np.deg2rad(60.0)
    dam = np.array([[0.0, 0.0], [np.nan, 1.0], [1.0, 5.0], [-1.0, 0.5], [10.0, 10.0]])
    out = b1_from_dam(dam, a)
    assert out["valid"].tolist() == [False, False, False, False, True]
    assert (out["b1"][:4] == 0).all() and np.isfinite(out["b1"]).all()
    afi = np.array([[0.0, 0.0], [1.0, np.inf], [1.0, -0.5], [1.0, 20.0], [1.0, 0.6]])
    out = b1_from_afi(afi, 0.02, 0.1, a)
    assert out["valid"].tolist() == [False, False, False, False, True]
    assert (out["b1"][:4] == 0).all() and np.isfinite(out["b1"]).all()
    out = b1_from_tfl(np.array([0.0, np.nan, -5.0, 600.0]), a)
    assert out["valid"].tolist() == [False, False, False, True]
    assert out["b1"][3] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        b1_from_dam(np.ones((3, 3)), a)


def _field(shape):
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    return 1.0 + 0.15 * x - 0.1 * y + 0.05 * z


def test_smooth_b1_fills_holes_and_keeps_smooth_field():
    shape = (24, 24, 12)
    truth = _field(shape)
    rng = np.random.default_rng(0)
    noisy = truth + rng.normal(0.0, 0.03, shape)
    valid = rng.random(shape) > 0.3
    valid[8:12, 8:12, 4:8] = False  # a hole
    b1 = np.where(valid, noisy, 0.0)
    out = smooth_b1(b1, valid, voxel_size_mm=(2.0, 2.0, 3.0), fwhm_mm=8.0)
    assert out.dtype == np.float32 and out.shape == shape
    assert np.isfinite(out).all()
    inner = (slice(4, -4), slice(4, -4), slice(2, -2))
    err_in = np.abs(out[inner] - truth[inner])
    assert err_in.max() < 0.03  # hole filled, noise averaged, linear field unbiased
    assert np.sqrt(np.mean(err_in**2)) < 0.3 * 0.03
    # a constant field with holes is reproduced exactly everywhere (normalised convolution)
    const = smooth_b1(np.where(valid, 0.9, 0.0), valid, voxel_size_mm=2.0)
    assert np.abs(const - 0.9).max() < 1e-6


def test_smooth_b1_mask_single_slice_and_empty():
    shape = (64, 56, 1)
    truth = _field(shape)  # 0.5 %/mm at 1 mm voxels: steeper than a real 3 T field
    valid = np.ones(shape, bool)
    mask = np.zeros(shape, bool)
    mask[4:60, 4:52] = True
    out = smooth_b1(truth, valid, 1.0, mask=mask)
    assert (out[~mask] == 0).all()
    # a linear field is unbiased where the kernel is symmetric; at the mask border the
    # one-sided average lags by about 0.8 sigma x gradient per axis (worst in the corners)
    assert np.abs(out[20:44, 20:36] - truth[20:44, 20:36]).max() < 1e-3
    sigma = 8 / 2.355
    gx, gy = 0.15 * 2 / 63, 0.1 * 2 / 55
    assert np.abs(out[mask] - truth[mask]).max() < 0.8 * sigma * (gx + gy) * 1.1
    nothing = smooth_b1(np.zeros(shape), np.zeros(shape, bool), 1.0)
    assert (nothing == 1.0).all()


def test_median_filter_b1_removes_spike():
    b1 = np.full((9, 9, 1), 1.0)
    b1[4, 4, 0] = 3.0
    b1[2, 2, 0] = np.nan
    out = median_filter_b1(b1, 3)
    assert out.shape == b1.shape and out.dtype == np.float32
    assert np.allclose(out, 1.0)
    vol = np.full((7, 7, 7), 0.9)
    vol[3, 3, 3] = 0.0
    assert np.allclose(median_filter_b1(vol, 3), 0.9)
