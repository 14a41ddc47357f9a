"""Undersampling masks and ZS-SSL splits (qmriprep.recon.masks)."""

import numpy as np
import pytest

from qmriprep.recon.masks import acceleration, variable_density_mask, zsssl_splits


@pytest.mark.parametrize("shape", [(40, 48), (64, 64), (256, 256)])
@pytest.mark.parametrize("R", [4, 8, 12])
def test_poisson_mask_hits_requested_acceleration(shape, R):
    mask = variable_density_mask(shape, R, kind="poisson", seed=3)
    assert mask.shape == shape and mask.dtype == bool
    assert abs(acceleration(mask) / R - 1) < 0.05


@pytest.mark.parametrize("shape", [(128, 96), (256, 256)])
@pytest.mark.parametrize("R", [4, 8, 12])
def test_line_mask_hits_requested_acceleration_with_whole_rows(shape, R):
    mask = variable_density_mask(shape, R, kind="lines", seed=1)
    assert abs(acceleration(mask) / R - 1) < 0.05
    assert np.all(mask.all(axis=1) | ~mask.any(axis=1))  # every row fully in or out


def test_calibration_region_is_fully_sampled():
    mask = variable_density_mask((64, 64), 4, calib=12, kind="poisson", seed=0)
    assert mask[26:38, 26:38].all()
    lines = variable_density_mask((128, 64), 4, calib=12, kind="lines", seed=0)
    assert lines[58:70].all()
    # the sampling density falls off away from the centre
    assert mask[16:48, 16:48].mean() > mask.mean() > mask[:8].mean()


def test_masks_are_reproducible_by_seed():
    for kind in ("poisson", "lines"):
        a = variable_density_mask((48, 40), 8, kind=kind, seed=7)
        assert np.array_equal(a, variable_density_mask((48, 40), 8, kind=kind, seed=7))
        assert not np.array_equal(a, variable_density_mask((48, 40), 8, kind=kind, seed=8))


def test_acceleration_counts_all_dims():
    mask = np.zeros((2, 10, 10), bool)
    mask[0, :5] = True
    assert acceleration(mask) == pytest.approx(4.0)


def _check_partition(mask, s, n_pairs, val_fraction=0.2, loss_fraction=0.4):
    omega = mask.astype(bool)
    assert s.gamma.shape == omega.shape
    assert s.theta.shape == s.lam.shape == (n_pairs,) + omega.shape
    for theta, lam in zip(s.theta, s.lam):
        assert not (theta & lam).any() and not (theta & s.gamma).any() and not (lam & s.gamma).any()
        assert np.array_equal(theta | lam | s.gamma, omega)
    axes = (-2, -1)
    n_omega = omega.sum(axis=axes)
    assert np.allclose(s.gamma.sum(axis=axes) / n_omega, val_fraction, atol=0.01)
    n_rest = n_omega - s.gamma.sum(axis=axes)
    assert np.allclose(s.lam.sum(axis=(-2, -1)) / n_rest, loss_fraction, atol=0.01)


def test_splits_partition_omega_with_leading_dims():
    masks = np.stack([[variable_density_mask((32, 36), 4, calib=8, seed=10 * s + c) for c in range(3)]
                      for s in range(2)])  # (S, C, H, W)
    s = zsssl_splits(masks, n_pairs=5, seed=1)
    _check_partition(masks, s, 5)
    # the contrasts get their own selections
    assert not np.array_equal(s.lam[0, 0, 0], s.lam[0, 0, 1])
    # 2-D mask, other fractions
    single = masks[0, 0]
    s2 = zsssl_splits(single, n_pairs=3, val_fraction=0.1, loss_fraction=0.3, seed=2)
    _check_partition(single, s2, 3, 0.1, 0.3)


def test_split_centre_block_is_always_in_theta():
    mask = variable_density_mask((32, 32), 4, calib=8, seed=0)
    s = zsssl_splits(mask[None], n_pairs=10, centre=(4, 6), seed=0)
    assert s.theta[:, 0, 14:18, 13:19].all()
    assert not s.gamma[0, 14:18, 13:19].any() and not s.lam[:, 0, 14:18, 13:19].any()


def test_splits_of_line_masks_are_pointwise_and_seeded():
    mask = variable_density_mask((64, 48), 4, calib=8, kind="lines", seed=0)
    s = zsssl_splits(mask, n_pairs=2, seed=5)
    _check_partition(mask, s, 2)
    acquired_rows = mask.any(axis=1)
    partial = s.lam[0][acquired_rows].any(axis=1) & ~s.lam[0][acquired_rows].all(axis=1)
    assert partial.any()  # points, not whole rows
    again = zsssl_splits(mask, n_pairs=2, seed=5)
    assert np.array_equal(again.lam, s.lam) and np.array_equal(again.gamma, s.gamma)
    assert not np.array_equal(zsssl_splits(mask, n_pairs=2, seed=6).lam, s.lam)


def test_gaussian_split_prefers_the_centre():
    mask = np.ones((64, 64), bool)
    ky, kx = np.mgrid[:64, :64] - 32
    radius = np.hypot(ky, kx)
    kw = dict(n_pairs=1, val_fraction=0.0, loss_fraction=0.1, seed=0)
    uni = zsssl_splits(mask, kind="uniform", **kw)
    gau = zsssl_splits(mask, kind="gaussian", **kw)
    _check_partition(mask, gau, 1, 0.0, 0.1)
    assert radius[gau.lam[0]].mean() < 0.85 * radius[uni.lam[0]].mean()
    with pytest.raises(ValueError):
        zsssl_splits(mask, kind="poisson")
