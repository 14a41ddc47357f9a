"""VFA / DESPOT1 T1 estimators: exactness with B1 correction, noise, bad voxels, clipping."""

import numpy as np
import pytest

from qmriprep.fit.despot1 import T1_MAX, fit_vfa
from qmriprep.physics.spgr import spgr

TR = 0.015
PROTOCOLS = {
    "2fa": np.deg2rad([3.0, 20.0]),
    "3fa": np.deg2rad([4.0, 12.0, 25.0]),
    "4fa": np.deg2rad([3.0, 8.0, 15.0, 25.0]),
}


def _tissue(rng, n, shape=None):
    t1 = rng.uniform(0.5, 4.0, n)
    m0 = rng.uniform(500.0, 3000.0, n)
    b1 = rng.uniform(0.7, 1.3, n)
    if shape is not None:
        t1, m0, b1 = (v.reshape(shape) for v in (t1, m0, b1))
    return t1, m0, b1


def _rel(a, b):
    return np.abs(np.asarray(a, np.float64) / b - 1.0)


@pytest.mark.parametrize("method", ["linear", "nlls"])
@pytest.mark.parametrize("proto", sorted(PROTOCOLS))
def test_noise_free_exact_with_b1(method, proto):
    fa = PROTOCOLS[proto]
    rng = np.random.default_rng(0)
    t1, m0, b1 = _tissue(rng, 5 * 6 * 7, (5, 6, 7))
    sig = spgr(m0[..., None], t1[..., None], fa, TR, b1[..., None])
    out = fit_vfa(sig, fa, TR, b1=b1, method=method)
    assert set(out) == {"t1", "r1", "m0", "rmse"}
    for v in out.values():
        assert v.shape == (5, 6, 7) and v.dtype == np.float32
    assert _rel(out["t1"], t1).max() < 1e-5
    assert _rel(out["r1"], 1 / t1).max() < 1e-5
    assert _rel(out["m0"], m0).max() < 1e-5
    assert (out["rmse"] < 1e-5 * m0).all()
    # ignoring B1 is wrong: the correction is really applied
    assert np.median(_rel(fit_vfa(sig, fa, TR, method=method)["t1"], t1)) > 0.05


def test_noise_snr50_median_error():
    rng = np.random.default_rng(1)
    t1, m0, b1 = _tissue(rng, 20000)
    for proto, fa in PROTOCOLS.items():
        sig = spgr(m0[:, None], t1[:, None], fa, TR, b1[:, None])
        sigma = sig.max(1, keepdims=True) / 50.0  # SNR 50 at the brightest angle
        noisy = sig + rng.normal(0.0, 1.0, sig.shape) * sigma
        lin = fit_vfa(noisy, fa, TR, b1=b1, method="linear")
        nl = fit_vfa(noisy, fa, TR, b1=b1, method="nlls")
        for out in (lin, nl):
            assert np.isfinite(out["t1"]).all()
            assert (out["t1"] > 0).mean() > 0.99
            ok = out["t1"] > 0
            assert np.median(_rel(out["t1"][ok], t1[ok])) < 0.05, proto
        ok = (lin["t1"] > 0) & (nl["t1"] > 0)
        if fa.size == 2:  # two points, two parameters: both fits interpolate exactly
            assert np.median(_rel(lin["t1"][ok], nl["t1"][ok])) < 1e-6
        else:  # NLLS is not worse than the noise-distorting linearisation
            err_nl = np.median(_rel(nl["t1"][ok], t1[ok]))
            assert err_nl <= np.median(_rel(lin["t1"][ok], t1[ok])) * 1.02


@pytest.mark.parametrize("method", ["linear", "nlls"])
def test_bad_voxels_give_zero(method):
    fa = PROTOCOLS["3fa"]
    rng = np.random.default_rng(2)
    t1, m0, b1 = _tissue(rng, 12)
    sig = spgr(m0[:, None], t1[:, None], fa, TR, b1[:, None])
    sig[0] = 0.0
    sig[1, 1] = np.nan
    sig[2] = -sig[2]
    sig[3, 2] = np.inf
    b1 = b1.copy()
    b1[4] = 0.0
    b1[5] = np.nan
    sig[6] = sig[6, ::-1] * np.array([1.0, 0.01, 0.001])  # nonsense decreasing signal
    with np.errstate(all="ignore"):
        out = fit_vfa(sig, fa, TR, b1=b1, method=method)
    for k, v in out.items():
        assert np.isfinite(v).all(), k
        assert (v[:6] == 0).all(), k
    assert _rel(out["t1"][7:], t1[7:]).max() < 1e-5


def test_slope_outside_unit_interval_is_undefined():
    fa = PROTOCOLS["2fa"]
    # S(20 deg) >> S(3 deg) beyond any T1 (slope >= 1) and S(20) ~ 0 (slope <= 0)
    sig = np.array([[10.0, 1000.0], [100.0, 0.5]])
    out = fit_vfa(sig, fa, TR, method="linear")
    assert (out["t1"] == 0).all() and (out["m0"] == 0).all()


def test_long_t1_clipped_and_mask_and_scalar_b1():
    fa = PROTOCOLS["2fa"]
    sig = spgr(1000.0, np.array([40.0, 1.0, 1.0]), fa[None, :].T, TR).T  # T1 = 40 s, 1 s, 1 s
    out = fit_vfa(sig, fa, TR, b1=1.0, mask=np.array([True, True, False]))
    assert out["t1"][0] == pytest.approx(T1_MAX)
    assert out["m0"][0] > 0
    assert out["t1"][1] == pytest.approx(1.0, rel=1e-5)
    assert out["t1"][2] == 0


def test_b1_map_broadcast_over_slices():
    fa = PROTOCOLS["2fa"]
    rng = np.random.default_rng(3)
    b1 = rng.uniform(0.8, 1.2, (4, 5, 1))
    t1 = np.full((4, 5, 3), 1.2)
    sig = spgr(1000.0, t1[..., None], fa, TR, b1[..., None])
    out = fit_vfa(sig, fa, TR, b1=b1)
    assert _rel(out["t1"], t1).max() < 1e-5


def test_argument_errors():
    with pytest.raises(ValueError):
        fit_vfa(np.ones((3, 2)), PROTOCOLS["3fa"], TR)
    with pytest.raises(ValueError):
        fit_vfa(np.ones((3, 2)), PROTOCOLS["2fa"], TR, method="bogus")
    with pytest.raises(ValueError):
        fit_vfa(np.ones((3, 2)), PROTOCOLS["2fa"], 0.0)
