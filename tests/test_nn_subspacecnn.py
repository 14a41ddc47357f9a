"""The subspace CNN's L2 loss in the coefficient domain equals the loss on the frames."""

import dataclasses

import numpy as np
import pytest
import torch

from qmriprep.fit.mrf import MRFSettings, prepare
from qmriprep.nn.subspacecnn import SubspaceCNN, SubspaceCNNSettings, _coefficients, _loss, _slices
from qmriprep.physics.epg import fisp_signal
from qmriprep.synth.mrf import fisp_schedule, protocol_of


def _frame_loss(model, prep, scale, where, keep, box, is_complex, power=2):
    """Mean squared (``power`` 1: absolute) error of each half's frames against the other half's
    predicted series."""
    data, _ = _slices(prep, SubspaceCNNSettings(), scale, 0)
    x = prep.x / scale
    total = 0.0
    for src, dst in ((0, 1), (1, 0)):
        frames = torch.zeros(keep.shape + (x[:, dst::2].shape[1],), dtype=x.dtype)
        frames[torch.as_tensor(keep)] = x[:, dst::2]
        frames = frames[box].permute(2, 0, 1, 3)[where]
        coef = _coefficients(model(data.inputs[src]).permute(0, 2, 3, 1)[where], is_complex)
        diff = coef @ prep.sub.phi[dst::2].T.to(coef.dtype) - frames
        diff = torch.view_as_real(diff) if diff.is_complex() else diff
        total = total + (diff.abs() ** power).mean()
    return total / 2


@pytest.mark.parametrize("is_complex", [False, True])
def test_coefficient_domain_l2_equals_the_frame_domain_loss(is_complex):
    protocol = protocol_of(fisp_schedule(120))
    settings = dataclasses.replace(MRFSettings(), t1_step=0.1, t2_step=0.1)
    rng = np.random.default_rng(0)
    t1 = rng.uniform(0.5, 2.0, (10, 9, 3))
    t2 = rng.uniform(0.03, 0.2, t1.shape)
    series = fisp_signal(t1.ravel(), t2.ravel(), protocol).numpy().reshape(t1.shape + (-1,))
    if is_complex:
        series = series * np.exp(1j * rng.uniform(-3, 3, t1.shape))[..., None]
        series = series + 0.05 * (rng.standard_normal(series.shape) + 1j * rng.standard_normal(series.shape))
    else:
        series = series + 0.05 * rng.standard_normal(series.shape)
    mask = np.ones(t1.shape, bool)
    mask[0] = False
    prep = prepare(series, protocol, mask=mask, settings=settings)
    data, (keep, box) = _slices(prep, SubspaceCNNSettings(), 0.3, 0)
    assert data.frames is None  # the L2 loss keeps no frames
    torch.manual_seed(0)
    model = SubspaceCNN(data.inputs[0].shape[1], 8, 1)
    torch.nn.init.normal_(model.net[-1].weight, std=0.1)  # not the identity
    for where in (data.train, data.held):
        ours = _loss(model, data, where, "l2")
        direct = _frame_loss(model, prep, 0.3, where, keep, box, is_complex)
        assert float(ours) == pytest.approx(float(direct), rel=1e-5)
        g_ours = torch.autograd.grad(ours, model.net[-1].weight)[0]
        g_direct = torch.autograd.grad(direct, model.net[-1].weight)[0]
        assert float((g_ours - g_direct).norm() / g_direct.norm()) < 1e-5
    l1, _ = _slices(prep, SubspaceCNNSettings(loss="l1"), 0.3, 0)  # the seed's loss, on the frames
    assert float(_loss(model, l1, l1.train, "l1")) == pytest.approx(
        float(_frame_loss(model, prep, 0.3, l1.train, keep, box, is_complex, power=1)), rel=1e-5)
