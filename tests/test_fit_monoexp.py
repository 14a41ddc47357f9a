"""Mono-exponential T2 / T2* estimators: exactness, noise, options and bad voxels."""

import numpy as np
import pytest

from qmriprep.fit.monoexp import R2_MAX, T2_MAX, T2_MIN, fit_monoexp
from qmriprep.physics.exponential import monoexp

METHODS = ("loglinear", "nlls", "varpro")
TE_MESE = np.arange(1, 17) * 0.010  # 16 echoes, 10..160 ms
TE_MEGRE = 0.003 + 0.006 * np.arange(8)  # 8 echoes, 3..45 ms


def _volume(rng, n, t2_range, shape=None):
    t2 = rng.uniform(*t2_range, n)
    m0 = rng.uniform(500.0, 3000.0, n)
    if shape is not None:
        t2, m0 = t2.reshape(shape), m0.reshape(shape)
    return t2, m0


def _rel(a, b):
    return np.abs(np.asarray(a, np.float64) / b - 1.0)


@pytest.mark.parametrize("method", METHODS)
def test_noise_free_mese_exact(method):
    rng = np.random.default_rng(0)
    t2, m0 = _volume(rng, 6 * 7 * 8, (0.020, 0.300), (6, 7, 8))
    sig = monoexp(m0[..., None], t2[..., None], TE_MESE)
    out = fit_monoexp(sig, TE_MESE, method=method)
    assert set(out) == {"t2", "r2", "m0", "rmse"}
    for v in out.values():
        assert v.shape == (6, 7, 8) and v.dtype == np.float32
    assert _rel(out["t2"], t2).max() < 1e-4
    assert _rel(out["m0"], m0).max() < 1e-4
    assert _rel(out["r2"], 1 / t2).max() < 1e-4
    assert (out["rmse"] < 1e-4 * m0).all()


@pytest.mark.parametrize("method", METHODS)
def test_noise_free_megre_t2star_exact(method):
    rng = np.random.default_rng(1)
    t2s, m0 = _volume(rng, 500, (0.010, 0.100))
    sig = monoexp(m0[:, None], t2s[:, None], TE_MEGRE).astype(np.float32)
    out = fit_monoexp(sig, TE_MEGRE, method=method)
    assert _rel(out["t2"], t2s).max() < 1e-4
    assert _rel(out["m0"], m0).max() < 1e-4


def test_noise_snr50_median_error_and_methods_agree():
    rng = np.random.default_rng(2)
    t2, m0 = _volume(rng, 20000, (0.020, 0.300))
    sig = monoexp(m0[:, None], t2[:, None], TE_MESE)
    sig = sig + rng.normal(0.0, 1.0, sig.shape) * (m0[:, None] / 50.0)  # SNR 50 at TE = 0
    res = {m: fit_monoexp(sig, TE_MESE, method=m) for m in METHODS}
    for m in METHODS:
        assert np.median(_rel(res[m]["t2"], t2)) < 0.025, m
        assert np.median(_rel(res[m]["m0"], m0)) < 0.015, m
        assert np.isfinite(res[m]["t2"]).all()
    # NLLS and VarPro minimise the same cost: same minimiser
    assert np.median(_rel(res["nlls"]["t2"], res["varpro"]["t2"])) < 1e-5
    assert np.percentile(_rel(res["nlls"]["t2"], res["varpro"]["t2"]), 99) < 1e-3
    # the least-squares fits are at least as good as log-linear on average
    assert np.mean(_rel(res["varpro"]["t2"], t2)) <= np.mean(_rel(res["loglinear"]["t2"], t2))


@pytest.mark.parametrize("method", METHODS)
def test_drop_first_echo(method):
    rng = np.random.default_rng(3)
    t2, m0 = _volume(rng, 300, (0.030, 0.200))
    sig = monoexp(m0[:, None], t2[:, None], TE_MESE)
    sig[:, 0] *= 0.7  # stimulated-echo / imperfect refocusing deficit on echo 1
    kept = fit_monoexp(sig, TE_MESE, method=method)
    dropped = fit_monoexp(sig, TE_MESE, method=method, drop_first_echo=True)
    assert np.median(_rel(kept["t2"], t2)) > 0.01
    assert _rel(dropped["t2"], t2).max() < 1e-4
    assert _rel(dropped["m0"], m0).max() < 1e-4  # still M0 at TE = 0


@pytest.mark.parametrize("method", ["nlls", "varpro"])
def test_offset_recovers_noise_floor(method):
    rng = np.random.default_rng(4)
    t2, m0 = _volume(rng, 400, (0.020, 0.150))
    floor = 40.0
    sig = monoexp(m0[:, None], t2[:, None], TE_MESE, floor)
    plain = fit_monoexp(sig, TE_MESE, method=method)
    out = fit_monoexp(sig, TE_MESE, method=method, offset=True)
    assert set(out) == {"t2", "r2", "m0", "rmse", "offset"}
    assert np.median(_rel(plain["t2"], t2)) > 0.01  # the floor biases T2 without the offset term
    assert _rel(out["t2"], t2).max() < 1e-4
    assert _rel(out["m0"], m0).max() < 1e-4
    assert np.abs(out["offset"] - floor).max() < 1e-2 * floor
    # with noise (SNR 50): the offset term removes the bias (at the price of a larger
    # spread: a third parameter) and finds the floor
    noisy = sig + rng.normal(0.0, 1.0, sig.shape) * (m0[:, None] / 50.0)
    plain = fit_monoexp(noisy, TE_MESE, method=method)
    out = fit_monoexp(noisy, TE_MESE, method=method, offset=True)
    assert abs(np.median(out["t2"] / t2 - 1)) < 0.02 < np.median(plain["t2"] / t2 - 1)
    assert np.median(_rel(out["t2"], t2)) < 0.10
    assert abs(np.median(out["offset"]) - floor) < 0.1 * floor


def test_offset_nlls_matches_varpro():
    rng = np.random.default_rng(5)
    t2, m0 = _volume(rng, 2000, (0.020, 0.150))
    sig = monoexp(m0[:, None], t2[:, None], TE_MESE, 30.0)
    sig = sig + rng.normal(0.0, 1.0, sig.shape) * (m0[:, None] / 50.0)
    a = fit_monoexp(sig, TE_MESE, method="nlls", offset=True)
    b = fit_monoexp(sig, TE_MESE, method="varpro", offset=True)
    assert np.median(_rel(a["t2"], b["t2"])) < 1e-5


@pytest.mark.parametrize("method", METHODS)
def test_bad_voxels_give_zero_and_never_nan(method):
    rng = np.random.default_rng(6)
    t2, m0 = _volume(rng, 10, (0.030, 0.200))
    sig = monoexp(m0[:, None], t2[:, None], TE_MESE)
    sig[0] = 0.0  # background
    sig[1, 3] = np.nan
    sig[2, 5] = np.inf
    sig[3] = -sig[3]  # negative
    sig[4] = 0.0
    sig[4, 0] = 100.0  # a single positive echo
    sig[5] = rng.normal(0.0, 5.0, TE_MESE.size)  # pure noise: fitted or zero, but finite
    sig[6] = 1e30  # absurd scale: finite output
    offset = method != "loglinear"
    with np.errstate(all="ignore"):
        out = fit_monoexp(sig, TE_MESE, method=method, offset=offset)
    for k, v in out.items():
        assert np.isfinite(v).all(), k
        assert (v[:5] == 0).all(), k
    in_range = (out["t2"] >= T2_MIN * 0.999) & (out["t2"] <= T2_MAX * 1.001)
    assert ((out["t2"] == 0) | in_range).all()
    assert _rel(out["t2"][7:], t2[7:]).max() < 1e-3


def test_mask_and_defaults():
    rng = np.random.default_rng(7)
    t2, m0 = _volume(rng, 4 * 5 * 3, (0.030, 0.200), (4, 5, 3))
    sig = monoexp(m0[..., None], t2[..., None], TE_MESE)
    mask = np.zeros((4, 5, 3), bool)
    mask[1:3, 1:4] = True
    out = fit_monoexp(sig, TE_MESE, mask=mask)
    assert (out["t2"][~mask] == 0).all() and (out["m0"][~mask] == 0).all()
    assert _rel(out["t2"][mask], t2[mask]).max() < 1e-4
    # a 2-D mask broadcast over the third axis
    out2 = fit_monoexp(sig, TE_MESE, mask=mask[:, :, :1])
    assert (out2["t2"][:, :, 1:][~mask[:, :, 1:]] == 0).all()


def test_long_and_short_t2_are_clipped():
    te = TE_MESE
    fast = monoexp(1000.0, 1e-5, te) + 1e-3 * np.arange(1, 17)
    sig = np.stack([monoexp(1000.0, 100.0, te), fast])
    out = fit_monoexp(sig, te, method="varpro")
    assert out["t2"][0] == pytest.approx(T2_MAX, rel=1e-6)
    assert out["r2"][0] == pytest.approx(1 / T2_MAX, rel=1e-6)
    assert np.isfinite(out["t2"]).all() and (out["r2"] <= R2_MAX * 1.001).all()


def test_single_voxel_and_float32_input():
    sig = monoexp(1000.0, 0.08, TE_MESE).astype(np.float32)
    out = fit_monoexp(sig, TE_MESE)
    assert out["t2"].shape == ()
    assert float(out["t2"]) == pytest.approx(0.08, rel=1e-4)


def test_argument_errors():
    sig = np.ones((2, 16))
    with pytest.raises(ValueError):
        fit_monoexp(sig, TE_MESE, method="bogus")
    with pytest.raises(ValueError):
        fit_monoexp(sig, TE_MESE, method="loglinear", offset=True)
    with pytest.raises(ValueError):
        fit_monoexp(sig, TE_MESE[:5])
