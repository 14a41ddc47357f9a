"""pc-bSSFP networks: architecture, features, inference, and the accuracy of the SHIPPED weights."""

import math

import numpy as np
import pytest
import torch

from qmriprep.nn.insilico import (WM_T1, WM_T2, configurations, grid_cod, seed_protocol, simulate,
                                  sweep_errors)
from qmriprep.nn.mlp import BSSFPNet, features_from_configurations
from qmriprep.nn.weights import SHIPPED_DIR, ModelSource, get_model, read_manifest

#: the seed's accuracy targets for the complex networks: max relative error over the
#: off-resonance sweep at T1/T2 = 0.939/0.062 s (T1 and T2), per number of phase cycles
SWEEP_TARGET = {12: 0.01, 6: 0.015, 4: 0.035}


def test_architectures_match_the_seed():
    mag, cpx = BSSFPNet(False), BSSFPNet(True)
    assert mag.layers == (4, 64, 64, 2) and cpx.layers == (6, 256, 256, 3)
    # the seed reports 4610 and 68355 trainable parameters
    assert mag.n_parameters() == 4610 and cpx.n_parameters() == 68355
    assert mag(torch.zeros(7, 4)).shape == (7, 2) and cpx(torch.zeros(5, 6)).shape == (5, 3)
    assert [type(m).__name__ for m in cpx.mlp] == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]


def test_outputs_stay_in_range_and_stats_are_buffers():
    net = BSSFPNet(True, low=[0.36, 0.02, -0.9 * math.pi], high=[2.08, 0.12, 0.9 * math.pi])
    x = torch.randn(1000, 6) * 10
    net.set_input_stats(x)
    y = net(x)
    assert (y[:, 0] >= 0.36).all() and (y[:, 0] <= 2.08).all()
    assert (y[:, 2].abs() <= 0.9 * math.pi + 1e-6).all()
    sd = net.state_dict()
    for name in ("in_mean", "in_std", "out_low", "out_high"):
        assert name in sd
    assert torch.allclose(sd["in_mean"], x.mean(0)) and torch.allclose(sd["in_std"], x.std(0))
    assert torch.allclose(net.zscore(x).mean(0), torch.zeros(6), atol=1e-5)


def test_features_from_configurations():
    F = torch.tensor([[-0.6 + 0.1j, 0.7 + 0.0j, 0.3 - 0.2j]])
    mag = features_from_configurations(F, 0.9, complex_input=False)
    assert torch.allclose(mag, torch.tensor([[abs(-0.6 + 0.1j), 0.7, abs(0.3 - 0.2j), 0.9]]))
    cpx = features_from_configurations(F, torch.tensor([1.1]), complex_input=True)
    assert torch.allclose(cpx, torch.tensor([[-0.6, 0.7, 0.3, -0.1, -0.2, 1.1]]))
    # magnitudes are accepted by magnitude networks only
    assert features_from_configurations(F.abs(), 1.0, False).shape == (1, 4)
    with pytest.raises(ValueError):
        features_from_configurations(F.abs(), 1.0, True)


def _shipped(name):
    entry = {e["name"]: e for e in read_manifest().get("models", [])}.get(name)
    if entry is None:
        pytest.fail(f"shipped weights {name} missing from {SHIPPED_DIR}: "
                    "run scripts/train_shipped_weights.py")
    return entry


@pytest.mark.parametrize("estimator", ["svnn", "pinn"])
def test_shipped_magnitude_networks_reach_the_seed_cod(estimator, tmp_path):
    _shipped(f"{estimator}_12")
    model, prov = get_model(seed_protocol(12), estimator, False, source=ModelSource(tmp_path))
    assert prov["source"] == "shipped" and len(prov["weights_sha256"]) == 64
    assert not list(tmp_path.iterdir())  # nothing trained, nothing cached
    c = grid_cod(model)
    assert c["t1"] >= 0.999 and c["t2"] >= 0.999, c


@pytest.mark.parametrize("estimator", ["svnn", "pinn"])
@pytest.mark.parametrize("n_cycles", [12, 6, 4])
def test_shipped_complex_networks_are_robust_to_off_resonance(estimator, n_cycles, tmp_path):
    _shipped(f"{estimator}complex_{n_cycles}")
    model, prov = get_model(seed_protocol(n_cycles), estimator, True, source=ModelSource(tmp_path))
    assert prov["source"] == "shipped"
    err = sweep_errors(model)
    target = SWEEP_TARGET[n_cycles]
    assert err["t1"] <= target and err["t2"] <= target, err


def test_predict_shapes_chunks_and_invalid_voxels():
    torch.manual_seed(0)
    p = seed_protocol(12)
    from qmriprep.nn.train import TrainedModel

    net = BSSFPNet(True)
    model = TrainedModel(net, p, {})
    t1 = torch.full((4, 5), WM_T1)
    F = configurations(p, simulate(p, t1, torch.full_like(t1, WM_T2), torch.ones_like(t1),
                                   torch.zeros_like(t1)))
    F = F.numpy()
    F[0, 0] = 0  # background
    F[0, 1, 0] = np.nan
    out = model.predict(F * 3.0, np.ones((4, 5)), chunk=3)  # any scaling: renormalised
    ref = model.predict(F, 1.0)
    assert set(out) == {"t1", "t2", "theta", "out_of_range"} and out["t1"].shape == (4, 5)
    assert out["t1"].dtype == np.float32 and out["out_of_range"].dtype == bool
    np.testing.assert_allclose(out["t1"], ref["t1"], rtol=1e-5)
    assert out["t1"][0, 0] == 0 and out["t1"][0, 1] == 0 and (out["t1"][1:] > 0).all()
    with pytest.raises(ValueError):
        model.predict(np.abs(F), 1.0)
