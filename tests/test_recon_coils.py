"""Calibration region and ESPIRiT coil maps (sigpy) on synthetic birdcage coils."""

import numpy as np
import pytest
import torch
from sigpy.mri import birdcage_maps

from qmriprep.errors import InputError
from qmriprep.recon.coils import calibration_region, espirit_maps, estimate_coils
from qmriprep.recon.fft import centred_fft


def test_calibration_region():
    mask = np.zeros((32, 20), bool)
    mask[16 - 5:16 - 5 + 10, 10 - 4:10 - 4 + 8] = True
    mask[::4] = True  # lines elsewhere do not enlarge the centred block
    assert calibration_region(mask) == (10, 8)
    lines = np.zeros((2, 32, 20), bool)
    lines[:, 12:20] = True
    lines[1, 11] = True  # intersection over leading dims
    assert calibration_region(lines) == (8, 20)
    hole = mask.copy()
    hole[16, 10] = False
    with pytest.raises(InputError, match="no fully sampled calibration region") as err:
        calibration_region(hole, 8, path="x.h5")
    assert "x.h5" in str(err.value) and "ESPIRiT" in str(err.value)


def _phantom(h=40, w=32, n=8):
    yy, xx = np.mgrid[:h, :w]
    obj = (((yy - h / 2) / (0.4 * h)) ** 2 + ((xx - w / 2) / (0.4 * w)) ** 2) < 1
    x = obj * (1 + 0.5 * np.sin(xx / 3)) * np.exp(0.03j * yy)
    maps = birdcage_maps((n, h, w), r=1.5)
    maps /= np.sqrt(np.sum(np.abs(maps) ** 2, 0))
    return x, maps, obj


def test_espirit_reproduces_coil_combination():
    x, maps, obj = _phantom()
    k = centred_fft(maps * x, (1, 2))
    mask = np.zeros(x.shape, bool)
    mask[20 - 6:20 + 6, 16 - 6:16 + 6] = True
    mask |= np.random.default_rng(0).random(x.shape) < 0.25
    est = espirit_maps(k * mask, kernel=6)
    assert est.shape == maps.shape and np.isfinite(est).all()
    comb = np.abs(np.sum(est.conj() * maps * x, 0))  # up to the ESPIRiT phase
    err = np.abs(comb - np.abs(x))[obj] / np.abs(x)[obj]
    assert np.median(err) < 0.01 and err.max() < 0.05


def test_estimate_coils_slices_and_torch():
    x, maps, _ = _phantom(32, 24, 4)
    k = centred_fft(maps * x, (1, 2))
    y = np.stack([np.stack([k, 0.5 * k]), np.zeros((2,) + k.shape)])  # (S=2, C=2, N, H, W)
    mask = np.zeros((1, 2, 32, 24))
    mask[..., 10:22, 6:18] = 1
    out = estimate_coils(torch.from_numpy(y * mask[:, :, None]).to(torch.complex64),
                         torch.from_numpy(mask))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 4, 32, 24)
    assert torch.isfinite(torch.view_as_real(out)).all()
    assert out[1].abs().max() == 0 and out[0].abs().max() > 0.1
    with pytest.raises(InputError, match="calibration"):
        estimate_coils(y[:, 0], np.zeros((32, 24)))
