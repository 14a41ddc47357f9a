"""Foreground mask on synthetic blobs, degenerate volumes and (when present) real data."""

from pathlib import Path

import numpy as np
import pytest

from qmriprep.fit.mask import foreground_mask, otsu_threshold

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "qmrlab"


def _dice(a, b):
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def _blob(shape, radii, rng, snr=20.0, shading=True):
    grids = np.meshgrid(*[np.arange(n) - (n - 1) / 2 for n in shape], indexing="ij")
    r2 = sum((g / r) ** 2 for g, r in zip(grids, radii))
    truth = r2 <= 1.0
    img = np.where(truth, 100.0, 0.0)
    if shading:  # B1/coil shading and a darker interior "ventricle"
        img *= 1.0 + 0.4 * grids[0] / shape[0]
        img[r2 < 0.05] *= 0.3
    noise = rng.normal(0, 100.0 / snr, shape) + 1j * rng.normal(0, 100.0 / snr, shape)
    return np.abs(img + noise), truth  # Rician background, like a magnitude image


def test_otsu_two_levels():
    v = np.r_[np.full(100, 1.0), np.full(100, 10.0)]
    assert 1.0 <= otsu_threshold(v) < 10.0
    assert otsu_threshold(np.ones(5)) == 1.0


def test_blob_3d():
    rng = np.random.default_rng(0)
    img, truth = _blob((40, 44, 30), (15, 17, 11), rng)
    m = foreground_mask(img, voxel_size_mm=(1.0, 1.0, 1.5))
    assert m.dtype == bool and m.shape == img.shape
    assert _dice(m, truth) > 0.95
    assert m[20, 22, 15]  # interior dark spot filled


def test_blob_single_slice_and_4d():
    rng = np.random.default_rng(1)
    img, truth = _blob((60, 50, 1), (22, 18, 1e9), rng)
    m = foreground_mask(img)
    assert m.shape == (60, 50, 1)
    assert _dice(m, truth) > 0.95
    assert m[30, 25, 0]
    echoes = np.stack([img * np.exp(-k * 0.1) for k in range(4)], -1)
    assert _dice(foreground_mask(echoes), truth) > 0.95


def test_tiny_and_degenerate_volumes():
    rng = np.random.default_rng(2)
    img, truth = _blob((8, 8, 8), (3, 3, 3), rng, snr=50.0, shading=False)
    m = foreground_mask(img)
    assert _dice(m, truth) > 0.8
    assert not foreground_mask(np.zeros((6, 6, 6))).any()
    nan = img.copy()
    nan[0, 0, 0] = np.nan
    nan[1, 1, 1] = np.inf
    m = foreground_mask(nan)
    assert not m[0, 0, 0] and not m[1, 1, 1]
    assert foreground_mask(np.ones((5, 5, 1))).all()  # uniform: everything is foreground


@pytest.mark.realdata
def test_real_mono_t2_mask():
    if not REAL.is_dir():
        pytest.skip(f"{REAL} not found: real-data tests need ../shared/data/real")
    nib = pytest.importorskip("nibabel")
    img = np.asanyarray(nib.load(REAL / "mono_t2.nii.gz").dataobj)
    ref = np.asanyarray(nib.load(REAL / "mono_t2_mask.nii.gz").dataobj) > 0
    m = foreground_mask(img[..., 0])
    # the shipped mask is a brain region inside the head: ours (head foreground) contains it
    assert (m & ref).sum() / ref.sum() > 0.97
    assert 0.3 < m.mean() < 0.8
    for name in ("vfa_t1", "b1_dam", "b1_afi"):
        vol = np.asanyarray(nib.load(REAL / f"{name}.nii.gz").dataobj)[..., 0]
        m = foreground_mask(vol)
        assert 0.2 < m.mean() < 0.8, name
        # the mask is one blob holding the bright voxels
        assert vol[m].mean() > 5 * vol[~m].mean(), name
