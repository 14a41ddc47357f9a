"""MIRACLE (pc-bSSFP T1/T2 by alternating golden-section searches): accuracy, bad voxels,
vectorised == per-voxel, off-resonance bias with 6 and 4 phase cycles."""

import numpy as np
import pytest

from qmriprep.bids.protocols import BSSFPProtocol
from qmriprep.fit.miracle import (LOWER_MIN, MiracleSettings, fit_miracle, fit_miracle_voxel,
                                  gss_iterations)
from qmriprep.physics import bssfp

TR, TE, FA = 4.8e-3, 2.4e-3, np.deg2rad(15.0)  # seed protocol
WM = (0.939, 0.062)  # s, 3 T white matter (seed)
KW = dict(flip_angle=FA, tr=TR)


def seed_grid(n):
    return np.pi * (2 * np.arange(1, n + 1) - 1) / n


def features(t1, t2, b1=1.0, theta=0.0, n_cycles=12):
    phi = seed_grid(n_cycles)
    sig = bssfp.bssfp_signal(t1, t2, b1, theta, BSSFPProtocol(tuple(phi), TR, FA, TE))
    return bssfp.fourier_features(sig, phi)


def rel(est, true):
    return np.abs(np.asarray(est, np.float64) / true - 1.0)


def tissue_box(n, seed=0):
    """T1 0.4-2.5 s, T2 0.02-0.15 s, B1 0.7-1.3 (the tissue range of the tests)."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.4, 2.5, n), rng.uniform(0.02, 0.15, n), rng.uniform(0.7, 1.3, n)


def test_gss_iterations_match_the_seed_stopping_rule():
    n = gss_iterations(0.0, 5.0, 1e-6)
    assert n == 33 and 5.0 * 0.618034**n < 1e-6 < 5.0 * 0.618034 ** (n - 1)


@pytest.mark.parametrize("search", ["full", "warm"])
def test_miracle_exact_without_aliasing(search):
    # 64 phase cycles: the configurations equal the N -> inf model terms (aliases < 1e-6)
    t1, t2, b1 = tissue_box(120)
    out = fit_miracle(features(t1, t2, b1, n_cycles=64), b1, **KW,
                      settings=MiracleSettings(search=search))
    assert rel(out["t1"], t1).max() < 1e-4 and rel(out["t2"], t2).max() < 1e-4
    assert out["t1"].dtype == np.float32 and out["rounds"].dtype == np.int32
    assert (out["rounds"] > 1).all() and (out["rounds"] < 200).all()


def test_miracle_recovers_noise_free_12pc():
    # 12 cycles, the seed protocol: within 0.1 % wherever the aliased configurations
    # F_{p +- 12} ~ ((p - r)/q)^11 are negligible, which covers brain tissue (WM, GM).
    t1, t2, b1 = tissue_box(400, seed=1)
    t1 = np.r_[t1, WM[0], 1.4, 0.8, 2.0]
    t2 = np.r_[t2, WM[1], 0.08, 0.05, 0.1]
    b1 = np.r_[b1, 1.0, 0.8, 1.2, 0.9]
    _, (p, q, r) = bssfp.miracle_terms(t1, t2, b1, **KW)
    small_alias = ((p - r) / q) ** 11 < 1e-4
    assert small_alias.mean() > 0.6 and small_alias[-4:].all()
    out = fit_miracle(features(t1, t2, b1), b1, **KW)
    err = np.maximum(rel(out["t1"], t1), rel(out["t2"], t2))
    assert err[small_alias].max() < 1e-3
    assert err[-4].max() < 2e-4  # white matter: ~0.01 %


def test_12pc_bias_is_aliasing_at_short_t1_long_t2():
    # T1/T2 = 400/150 ms at B1 0.7: the 12-cycle fit is biased (measured ~17 % in T2), the
    # same voxel with 64 cycles is exact: the model, not the search, limits 12 cycles there.
    args = (np.array([0.4]), np.array([0.15]), np.array([0.7]))
    out12 = fit_miracle(features(*args), args[2], **KW)
    out64 = fit_miracle(features(*args, n_cycles=64), args[2], **KW)
    assert rel(out12["t2"], 0.15)[0] > 0.05
    assert rel(out64["t2"], 0.15)[0] < 1e-4 and rel(out64["t1"], 0.4)[0] < 1e-4


@pytest.mark.parametrize("search", ["full", "warm"])
def test_vectorised_equals_per_voxel(search):
    t1 = np.array([WM[0], 1.6, 0.5])
    t2 = np.array([WM[1], 0.11, 0.03])
    b1 = np.array([1.0, 0.8, 1.25])
    theta = np.array([0.0, 0.0, 1.3])
    f = np.stack([features(t1[:2], t2[:2], b1[:2])[0], features(t1[:2], t2[:2], b1[:2])[1],
                  features(t1[2], t2[2], b1[2], theta[2], n_cycles=6)])
    settings = MiracleSettings(search=search)
    out = fit_miracle(f, b1, **KW, settings=settings)
    for i in range(3):
        t1_v, t2_v, k = fit_miracle_voxel(f[i], b1[i], **KW, settings=settings)
        assert k == out["rounds"][i]
        np.testing.assert_allclose([out["t1"][i], out["t2"][i]], [t1_v, t2_v], rtol=1e-6)


def test_full_and_warm_search_agree():
    t1, t2, b1 = tissue_box(200, seed=3)
    f = features(t1, t2, b1)
    full = fit_miracle(f, b1, **KW, settings=MiracleSettings(search="full"))
    warm = fit_miracle(f, b1, **KW, settings=MiracleSettings(search="warm"))
    # same fixed point; the full-bracket result is resolved to ~tol in T2 and ~20 tol in T1
    assert np.abs(full["t2"] - warm["t2"]).max() < 1e-5
    assert np.abs(full["t1"] - warm["t1"]).max() < 1e-4


def test_magnitude_and_complex_features_give_the_same_maps():
    t1, t2, b1 = tissue_box(20, seed=4)
    f = features(t1, t2, b1, theta=np.linspace(-2, 2, 20))
    a = fit_miracle(f, b1, **KW)
    b = fit_miracle(np.abs(f), b1, **KW)
    for k in ("t1", "t2", "rounds"):
        np.testing.assert_array_equal(a[k], b[k])


def test_background_and_bad_voxels_give_zero_without_nan():
    f = np.zeros((4, 5, 3), np.complex128)
    f[0, 0] = features(*WM)
    f[0, 1] = features(*WM)
    f[0, 1, 1] = np.nan  # non-finite
    f[0, 2] = [0.0, 0.0, 0.7]  # f0 = 0
    f[0, 3] = [0.3, 0.5, 0.5]  # f0 = f1
    f[1, 0] = features(*WM)  # masked out below
    f[1, 1] = features(*WM)  # B1 = 0
    f[1, 2] = features(*WM)  # B1 = NaN
    f[1, 3] = [0.0, 0.9, 0.1]  # f-1 = 0: T2 driven to the lower bound, finite
    b1 = np.ones((4, 5))
    b1[1, 1], b1[1, 2] = 0.0, np.nan
    mask = np.ones((4, 5), bool)
    mask[1, 0] = False
    out = fit_miracle(f, b1, **KW, mask=mask)
    for k in ("t1", "t2", "rounds"):
        assert out[k].shape == (4, 5) and np.isfinite(out[k]).all()
    fitted = np.zeros((4, 5), bool)
    fitted[0, 0] = fitted[1, 3] = True
    assert (out["t1"][~fitted] == 0).all() and (out["t2"][~fitted] == 0).all()
    assert (out["rounds"][~fitted] == 0).all()
    assert rel(out["t1"][0, 0], WM[0]) < 1e-3 and rel(out["t2"][0, 0], WM[1]) < 1e-3
    assert 0 <= out["t2"][1, 3] < 1e-3 and LOWER_MIN > 0


def test_b1_none_means_nominal_and_broadcasts():
    f = features(np.full((2, 3), WM[0]), np.full((2, 3), WM[1]))
    a = fit_miracle(f, None, **KW)
    b = fit_miracle(f, 1.0, **KW)
    np.testing.assert_array_equal(a["t1"], b["t1"])
    assert rel(a["t2"], WM[1]).max() < 1e-3


def test_invalid_arguments_raise():
    f = features(*WM)[None]
    with pytest.raises(ValueError):
        fit_miracle(f[..., :2], **KW)
    with pytest.raises(ValueError):
        fit_miracle(f, flip_angle=FA, tr=0.0)
    with pytest.raises(ValueError):
        MiracleSettings(search="brent")
    with pytest.raises(ValueError):
        MiracleSettings(bounds=(5.0, 1.0))


def _theta_sweep_error(n_cycles, search="full"):
    theta = np.linspace(-0.9 * np.pi, 0.9 * np.pi, 73)
    out = fit_miracle(features(*WM, 1.0, theta, n_cycles=n_cycles), 1.0, **KW,
                      settings=MiracleSettings(search=search))
    return max(rel(out["t1"], WM[0]).max(), rel(out["t2"], WM[1]).max())


def test_off_resonance_bias_at_6_and_4_cycles():
    # max relative error over theta in [-0.9 pi, 0.9 pi] at T1/T2 = 939/62 ms; measured:
    # 12 cycles 0.013 %, 6 cycles 4.8 % (T1 3.7 %), 4 cycles 40 % (T1 35 %); seed: ~4-5 %
    # at 6 and ~35-40 % at 4 cycles.
    e12, e6, e4 = (_theta_sweep_error(n) for n in (12, 6, 4))
    assert e12 < 5e-3
    assert 0.02 < e6 < 0.08
    assert 0.25 < e4 < 0.5
    assert e4 > 5 * e6 > 5 * e12
