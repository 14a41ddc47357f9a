"""MRF dictionary, subspace rank and matching: noise-free recovery within one dictionary step."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from qmriprep.fit.mrf import (MRFSettings, b1_levels, build, choose_rank, dictionary_grid,
                              fit_mrf_matching, geometric, settings_from)
from qmriprep.fit.mrfmatch import GridSearch, match
from qmriprep.physics.epg import fisp_signal
from qmriprep.synth.mrf import fisp_schedule, protocol_of

STEP = 0.05
SETTINGS = MRFSettings(t1_range=[0.1, 4.0], t2_range=[0.01, 2.0], t1_step=STEP, t2_step=STEP)


@pytest.fixture(scope="module")
def protocol():
    """The synthetic schedule (400 frames; with 160, T2 near 0.3 s is matched up to 7 % off)."""
    return protocol_of(fisp_schedule())


@pytest.fixture(scope="module")
def dictionary(protocol):
    return build(protocol, SETTINGS)


def _truth(n, seed=0):
    rng = np.random.default_rng(seed)
    t1 = np.exp(rng.uniform(np.log(0.3), np.log(3.0), n))
    t2 = np.exp(rng.uniform(np.log(0.02), np.log(0.3), n))
    return t1, t2


def _within_one_step(est, truth, step=STEP):
    return np.abs(np.log(est / truth)) <= math.log1p(step) + 1e-6


def test_rank_criterion_sum_of_values_or_of_squares():
    s = [10.0, 5.0, 3.0, 1.0, 1.0]  # sum 20; squares 100, 25, 9, 1, 1 (sum 136)
    assert choose_rank(s, 0.75, "values") == 2  # (10 + 5) / 20 = 0.75 exactly
    assert choose_rank(s, 0.9, "values") == 3  # 18/20 = 0.9
    assert choose_rank(s, 0.9, "squares") == 2  # 125/136 = 0.919
    assert choose_rank(s, 0.95, "squares") == 3  # 134/136
    with pytest.raises(ValueError):
        choose_rank(s, 0.9, "energy")


def test_grid_is_geometric_and_leaves_out_t2_above_t1():
    assert geometric(1.0, 2.0, 1.0).tolist() == [1.0, 2.0]
    t1, t2, b1, grid = dictionary_grid(dataclasses.replace(SETTINGS, b1_values=[0.9, 1.1]))
    assert np.all(t2 <= t1) and set(np.unique(b1)) == {0.9, 1.1}
    assert len(t1) == len(grid) and grid.shape[1] == 3
    assert b1_levels([0.81, 1.0, 1.19], 0.05) == (0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15, 1.2)
    assert settings_from({"t1_range": (0.2, 3.0), "seed": 1}).t1_range == [0.2, 3.0]


def test_subspace_is_orthonormal_and_keeps_the_chosen_energy(dictionary):
    _, sub = dictionary
    r = sub.rank
    torch.testing.assert_close(sub.phi.T @ sub.phi, torch.eye(r), atol=1e-5, rtol=0)
    s = sub.singular_values.double()
    assert s[:r].sum() / s.sum() >= 0.95 > s[:r - 1].sum() / s.sum()


@pytest.mark.parametrize("search", ["grid", "exhaustive"])
def test_noise_free_matching_recovers_t1_t2_within_one_step(protocol, dictionary, search):
    t1, t2 = _truth(400)
    m0 = np.linspace(0.5, 1.5, 400)
    series = m0[:, None] * fisp_signal(t1, t2, protocol).numpy()
    out = fit_mrf_matching(series, protocol, settings=dataclasses.replace(SETTINGS, search=search),
                           dictionary=dictionary)
    assert _within_one_step(out["t1"], t1).all() and _within_one_step(out["t2"], t2).all()
    assert np.median(np.abs(out["m0"] / m0 - 1)) < 0.02
    assert out["quality"].min() > 0.999


def test_complex_data_with_any_phase_match_like_real_data(protocol, dictionary):
    t1, t2 = _truth(100, seed=1)
    real = fisp_signal(t1, t2, protocol).numpy()
    phase = np.exp(1j * np.random.default_rng(2).uniform(-np.pi, np.pi, (100, 1)))
    a = fit_mrf_matching(real, protocol, settings=SETTINGS, dictionary=dictionary)
    b = fit_mrf_matching(real * phase, protocol, settings=SETTINGS, dictionary=dictionary)
    for key in ("t1", "t2"):
        np.testing.assert_array_equal(a[key], b[key])
    np.testing.assert_allclose(a["m0"], b["m0"], rtol=1e-4)


def test_magnitude_data_are_matched_against_the_magnitude_dictionary(protocol):
    t1, t2 = _truth(60, seed=3)
    series = np.abs(fisp_signal(t1, t2, protocol).numpy())
    out = fit_mrf_matching(series, protocol, settings=SETTINGS)
    assert _within_one_step(out["t1"], t1).all() and _within_one_step(out["t2"], t2).all()


def test_b1_map_selects_the_b1_level_of_each_voxel(protocol):
    t1, t2 = _truth(80, seed=4)
    b1 = np.random.default_rng(5).uniform(0.8, 1.2, 80)
    series = fisp_signal(t1, t2, protocol, b1=b1).numpy()
    settings = dataclasses.replace(SETTINGS, t1_range=[0.25, 3.5], t2_range=[0.015, 0.35], b1_step=0.04)
    with_map = fit_mrf_matching(series, protocol, b1=b1, settings=settings)
    without = fit_mrf_matching(series, protocol, settings=settings)
    err = [np.median(np.abs(np.log(o["t2"] / t2))) for o in (with_map, without)]
    assert err[0] < math.log1p(STEP) and err[0] < err[1] / 2
    assert _within_one_step(with_map["t1"], t1, 2 * STEP).all()


def test_grid_search_finds_the_exhaustive_winner_in_noise(protocol, dictionary):
    dic, sub = dictionary
    t1, t2 = _truth(2000, seed=6)
    clean = torch.as_tensor(fisp_signal(t1, t2, protocol).numpy(), dtype=torch.float32) @ sub.phi
    noisy = clean + 0.01 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    fast = GridSearch(sub.coef, dic.grid[:, :2])(noisy)
    full = match(noisy, sub.coef)
    agree = (fast["index"] == full["index"]).float().mean().item()
    assert agree > 0.97, agree
    assert torch.all(fast["score"] <= full["score"] + 1e-5)


def test_mask_and_zero_voxels_give_zeros(protocol, dictionary):
    series = np.zeros((3, 2, len(protocol.flip_angles)))
    series[0, 0] = fisp_signal([1.0], [0.08], protocol).numpy()[0]
    mask = np.zeros((3, 2), bool)
    mask[:2] = True
    out = fit_mrf_matching(series, protocol, mask=mask, settings=SETTINGS, dictionary=dictionary)
    for key, v in out.items():
        assert v.shape == (3, 2) and v.dtype == np.float32 and np.isfinite(v).all()
        assert np.all(v[~mask] == 0), key
    assert out["t1"][0, 0] == pytest.approx(1.0, rel=STEP) and out["m0"][1, 1] == 0


def test_subspace_cnn_is_seeded_and_keeps_the_mask(protocol):
    from qmriprep.nn.subspacecnn import SubspaceCNNSettings, train

    rng = np.random.default_rng(7)
    t1 = np.full((12, 10, 2), 1.0)
    t1[:6] = 0.7
    t2 = np.where(t1 > 0.8, 0.08, 0.05)
    clean = fisp_signal(t1.ravel(), t2.ravel(), protocol).numpy().reshape(t1.shape + (-1,))
    series = clean + 0.02 * rng.standard_normal(clean.shape)
    mask = np.ones(t1.shape, bool)
    mask[0] = False
    cnn = SubspaceCNNSettings(width=8, blocks=1, max_epochs=3, steps_per_epoch=2, patience=5)
    small = dataclasses.replace(SETTINGS, t1_range=[0.4, 1.5], t2_range=[0.03, 0.15])
    a, rec = train(series, protocol, mask=mask, settings=small, cnn=cnn, seed=3)
    b, _ = train(series, protocol, mask=mask, settings=small, cnn=cnn, seed=3)
    for key in ("t1", "t2", "m0"):
        np.testing.assert_array_equal(a[key], b[key])
        assert np.isfinite(a[key]).all() and np.all(a[key][~mask] == 0)
    assert rec["TrainingEpochs"] == 3 and rec["RandomSeed"] == 3
    assert len(rec["TrainingCurve"]["val_loss"]) == 3 and rec["IdentityValidationLoss"] > 0
    assert np.median(np.abs(np.log(a["t1"][mask] / t1[mask]))) < 0.2


def test_matching_sd_is_calibrated_and_includes_the_grid_quantisation(protocol, dictionary):
    """Complex series with a random phase: about 68 % of T1, T2 and M0 within +-1 SD where the
    noise dominates; noise-free, the SD is the grid's quantisation (spacing / sqrt 12)."""
    rng = np.random.default_rng(7)
    t1, t2 = _truth(2000, seed=7)
    t2 = np.minimum(t2, 0.5 * t1)
    clean = fisp_signal(t1, t2, protocol).numpy() * np.exp(1j * rng.uniform(-np.pi, np.pi, t1.size))[:, None]
    sigma = float(np.abs(clean).mean())
    noisy = clean + sigma * (rng.standard_normal(clean.shape) + 1j * rng.standard_normal(clean.shape))
    fit = fit_mrf_matching(noisy, protocol, settings=SETTINGS, dictionary=dictionary, sigma=sigma)
    for key, truth in (("t1", t1), ("t2", t2), ("m0", 1.0)):
        assert 0.62 < np.mean(np.abs(fit[key] - truth) <= fit[f"{key}_sd"]) < 0.76, key
    exact = fit_mrf_matching(clean, protocol, settings=SETTINGS, dictionary=dictionary, sigma=1e-9)
    floor = exact["t1"] * STEP / math.sqrt(12)
    np.testing.assert_allclose(exact["t1_sd"], floor, rtol=0.06)
    assert "t1_sd" not in fit_mrf_matching(clean[:5], protocol, settings=SETTINGS, dictionary=dictionary)
