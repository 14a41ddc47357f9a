"""The subspace CNN's SD calibration: its error variance over the voxel-wise bound, from held-out
voxels, recovers a known error variance (linear model with a correlated and an independent part)."""

import dataclasses

import numpy as np
import pytest
import torch

from qmriprep.fit.mrf import MRFSettings, prepare
from qmriprep.nn.subspacecnn_sd import MIN_VOXELS, variance_factor
from qmriprep.physics.epg import fisp_signal
from qmriprep.synth.mrf import fisp_schedule, protocol_of


def _noise(shape, gen, is_complex):
    z = torch.randn(shape + ((2,) if is_complex else ()), generator=gen, dtype=torch.float64)
    return torch.view_as_complex(z) if is_complex else z


@pytest.mark.parametrize("is_complex", [False, True])
def test_variance_factor_recovers_the_error_variance_of_the_averaged_outputs(is_complex):
    """Outputs ``c + a z + b w_A`` and ``c + a z + b w_B`` (``c`` the series' subspace coefficients,
    ``z``, ``w`` of the full-series noise covariance): the maps' coefficients, their mean, err by
    ``a^2 + b^2 / 2`` times the bound; the inputs are fitted to each half's noisy frames (a short
    schedule: the series outside the subspace leaks into them)."""
    protocol = protocol_of(fisp_schedule(120))
    settings = dataclasses.replace(MRFSettings(), t1_range=[0.3, 3.0], t2_range=[0.02, 0.4], t1_step=0.04,
                                   t2_step=0.04)
    rng = np.random.default_rng(3)
    n = 20000
    t1, t2 = rng.uniform(0.6, 2.0, n), rng.uniform(0.04, 0.15, n)
    clean = fisp_signal(t1, t2, protocol).numpy()
    if is_complex:
        clean = clean * np.exp(1j * rng.uniform(-np.pi, np.pi, n))[:, None]
    prep = prepare(clean, protocol, settings=settings)
    phi = prep.sub.phi.double()
    dtype = torch.complex128 if is_complex else torch.float64
    c = prep.x.to(dtype) @ phi.to(dtype)
    sigma = 0.2 * float(c.abs().norm(dim=1).mean()) / np.sqrt(phi.shape[1])
    gen = torch.Generator().manual_seed(0)
    inputs = []
    for half in (slice(0, None, 2), slice(1, None, 2)):  # least-squares coefficients of each half
        frames = prep.x[:, half].to(dtype) + sigma * _noise((n, phi[half].shape[0]), gen, is_complex)
        inputs.append(frames @ torch.linalg.pinv(phi[half]).T.to(dtype))
    a, b = 0.5, 0.6
    common = a * sigma * _noise(c.shape, gen, is_complex)
    outputs = [c + common + b * sigma * _noise(c.shape, gen, is_complex) for _ in range(2)]
    held = np.ones(n, bool)
    factor = variance_factor(inputs, outputs, sigma, prep, held)
    expected = a ** 2 + b ** 2 / 2
    for name in ("t1", "t2", "m0"):
        assert factor[name] == pytest.approx(expected, rel=0.15), (name, factor)
    assert factor["voxels"] > 0.95 * n
    overstated = variance_factor(inputs, outputs, 3 * sigma, prep, held)  # noise larger than the data's
    assert {overstated[k] for k in ("t1", "t2", "m0")} == {1.0}
    few = variance_factor(inputs, outputs, sigma, prep, np.arange(n) < MIN_VOXELS - 1)
    assert {few[k] for k in ("t1", "t2", "m0")} == {1.0}
