"""In-silico data, losses, training loop, weights files and the network cache."""

import json
import math
import shutil

import numpy as np
import pytest
import torch

from qmriprep.bids.protocols import BSSFPProtocol
from qmriprep.nn.insilico import (BOUNDS, Protocol, add_noise, as_protocol, make_dataset, noise_sigma,
                                  sample_parameters, seed_phase_increments, seed_protocol)
from qmriprep.nn.mlp import BSSFPNet, features_from_configurations
from qmriprep.nn.train import TrainSettings, pinn_loss, svnn_loss, train
from qmriprep.nn.weights import (SHIPPED_DIR, ModelSource, WeightsError, cache_key, find_shipped, get_model,
                                 load_model, protocols_match, read_manifest, save_model)
from qmriprep.utils.files import content_sha256, sha256_file

TINY = dict(n_samples=3000, max_epochs=4, batch_size=256, lr=3e-3)


def test_seed_protocol_and_conversion():
    p = seed_protocol(4)
    assert p.phase_increments == pytest.approx(tuple(k * math.pi / 4 for k in (1, 3, 5, 7)))
    assert p.tr == 4.8e-3 and p.te == 2.4e-3 and p.flip_angle == pytest.approx(math.radians(15))

    q = as_protocol(BSSFPProtocol(seed_phase_increments(6), 5e-3, 0.3, echo_time=None))
    assert q.te == 2.5e-3 and q.n_cycles == 6
    assert as_protocol(p.as_dict()) == p
    with pytest.raises(ValueError):
        Protocol(0.3, 5e-3, 6e-3, seed_phase_increments(4))  # TE > TR
    # increments equal mod 2 pi match; a different TR does not
    shifted = Protocol(p.flip_angle, p.tr, p.te, [x - 2 * math.pi for x in p.phase_increments])
    other_tr = Protocol(p.flip_angle, 5e-3, p.te, p.phase_increments)
    assert protocols_match(p, shifted) and not protocols_match(p, other_tr)


@pytest.mark.parametrize("distribution", ["uniform", "extended", "invivo"])
def test_distributions(distribution):
    g = torch.Generator().manual_seed(1)
    s = sample_parameters(20000, distribution, complex_net=True, generator=g)
    (t1lo, t1hi), (t2lo, t2hi) = BOUNDS[distribution]
    assert (s["t1"] > s["t2"]).all()
    assert s["t1"].min() >= t1lo and s["t1"].max() <= t1hi and s["t2"].min() >= t2lo and s["t2"].max() <= t2hi
    assert s["b1"].min() >= 0.7 and s["b1"].max() <= 1.3
    assert s["theta"].abs().max() <= 0.9 * math.pi and s["theta"].abs().max() > 0.85 * math.pi
    assert (sample_parameters(10, distribution, generator=g)["theta"] == 0).all()
    if distribution == "invivo":  # white matter (Stanisz / Wansapura), grey matter, CSF; full support
        near_wm = (s["t1"] > 0.7) & (s["t1"] < 1.3) & (s["t2"] > 0.055) & (s["t2"] < 0.095)
        csf = (s["t1"] > 3.0) & (s["t2"] > 1.0)
        assert near_wm.float().mean() > 0.35 and 0.03 < csf.float().mean() < 0.08
        assert s["t2"].min() < 0.025 and ((s["t1"] > 2.2) & (s["t1"] < 3.0)).any()


def test_dataset_split_reproducible_and_uses_the_physics():
    p = seed_protocol(6)
    a, b = make_dataset(p, 1000, complex_net=True, seed=3), make_dataset(p, 1000, complex_net=True, seed=3)
    assert torch.equal(a.signal, b.signal) and torch.equal(a.split["val"], b.split["val"])
    assert [len(a.split[k]) for k in ("train", "val", "test")] == [600, 200, 200]
    assert len(torch.cat(list(a.split.values())).unique()) == 1000
    from qmriprep.bids.protocols import BSSFPProtocol
    from qmriprep.physics.bssfp import bssfp_signal, fourier_features

    q = a.params
    ref = bssfp_signal(q["t1"].double(), q["t2"].double(), q["b1"].double(), q["theta"].double(),
                       BSSFPProtocol(p.phase_increments, p.tr, p.flip_angle, p.te))
    ref = fourier_features(ref, p.phase_increments)
    assert torch.allclose(a.configurations.to(torch.complex128), ref, atol=1e-5)
    assert torch.allclose(a.configurations[:, 1].imag, torch.zeros(1000), atol=1e-5)  # F0 real


def test_noise_level():
    assert noise_sigma(None) == 0 and noise_sigma(math.inf) == 0
    assert noise_sigma(25) == pytest.approx(0.074 / (math.sqrt(2) * 25))
    s = torch.zeros(200000, 4, dtype=torch.complex64)
    n = add_noise(s, 25, torch.Generator().manual_seed(0))
    assert n.real.std().item() == pytest.approx(noise_sigma(25), rel=0.01)
    assert n.imag.std().item() == pytest.approx(noise_sigma(25), rel=0.01)


@pytest.mark.parametrize("complex_net", [False, True])
def test_pinn_loss_is_zero_for_the_true_parameters(complex_net):
    p = seed_protocol(4 if complex_net else 12)
    d = make_dataset(p, 500, complex_net=complex_net, seed=0)
    x = features_from_configurations(d.configurations, d.params["b1"], complex_net)
    net = BSSFPNet(complex_net)
    net.set_input_stats(x)
    keys = ["t1", "t2"] + (["theta"] if complex_net else [])
    truth = torch.stack([d.params[k] for k in keys], -1)
    assert pinn_loss(net, x, p, params=truth).item() < 1e-9
    assert pinn_loss(net, x, p, params=truth * 1.1).item() > 1e-4
    assert pinn_loss(net, x, p).item() > 1e-3  # untrained network


def test_svnn_loss_scaled():
    net = BSSFPNet(False, low=[0.0, 0.0], high=[2.0, 0.1])
    assert torch.allclose(net.scale(torch.tensor([[1.0, 0.05]])), torch.tensor([[0.5, 0.5]]))
    x = torch.zeros(3, 4)
    assert svnn_loss(net, x, net(x)).item() < 1e-12


@pytest.mark.parametrize("estimator", ["svnn", "pinn"])
def test_short_training_lowers_the_loss_and_is_deterministic(estimator):
    p = seed_protocol(12)
    logs = []
    m1 = train(p, estimator, settings=TrainSettings(seed=5, **TINY), log=logs.append)
    m2 = train(p, estimator, settings=TrainSettings(seed=5, **TINY))
    assert len(m1.curve) == 4 and logs == m1.curve
    assert {"epoch", "train_loss", "val_loss", "seconds"} <= set(m1.curve[0])
    assert m1.curve[-1]["train_loss"] < m1.curve[0]["train_loss"]
    assert m1.val_loss == min(r["val_loss"] for r in m1.curve)  # best weights kept
    for a, b in zip(m1.net.state_dict().values(), m2.net.state_dict().values()):
        assert torch.equal(a, b)
    assert m1.settings["seed"] == 5 and m1.settings["estimator"] == estimator


def test_early_stopping_time_budget_and_noise():
    p = seed_protocol(12)
    m = train(p, "svnn", settings=TrainSettings(snr=25, seed=0, time_budget_s=0.0, **TINY))
    assert len(m.curve) == 1 and m.settings["stopped"] == "time_budget" and m.settings["snr"] == 25
    fast = TrainSettings(patience=1, lr=10.0, n_samples=2000, max_epochs=30, batch_size=256)
    m = train(p, "svnn", settings=fast)
    assert m.settings["stopped"] == "patience" and len(m.curve) < 30


def test_save_load_round_trip_and_tamper(tmp_path):
    p = seed_protocol(12)
    m = train(p, "svnn", settings=TrainSettings(**TINY))
    sha = save_model(m, tmp_path / "m.pt")
    assert sha == sha256_file(tmp_path / "m.pt")
    back = load_model(tmp_path / "m.pt", sha256=sha)
    x = torch.rand(10, 3) + 0.1
    np.testing.assert_array_equal(back.predict(x, 1.0)["t1"], m.predict(x, 1.0)["t1"])
    assert back.protocol == p and back.settings["n_samples"] == TINY["n_samples"]
    raw = bytearray((tmp_path / "m.pt").read_bytes())
    raw[-100] ^= 0xFF
    (tmp_path / "m.pt").write_bytes(bytes(raw))
    with pytest.raises(WeightsError, match="SHA256 mismatch"):
        load_model(tmp_path / "m.pt", sha256=sha)
    with pytest.raises(WeightsError, match="not found"):
        load_model(tmp_path / "missing.pt")


def test_cache_round_trip(tmp_path):
    p = Protocol(math.radians(20), 5e-3, 2.5e-3, seed_phase_increments(8))  # no shipped weights
    msgs = []
    m1, prov1 = get_model(p, "svnn", False, TrainSettings(**TINY), ModelSource(tmp_path), log=msgs.append)
    assert prov1["source"] == "trained" and any("training" in s for s in msgs)
    assert {"weights_sha256", "training_settings", "seed", "final_val_loss", "training_seconds"} <= set(prov1)
    m2, prov2 = get_model(p, "svnn", False, TrainSettings(**TINY), ModelSource(tmp_path))
    assert prov2["source"] == "cache" and prov2["weights_sha256"] == prov1["weights_sha256"]
    # another seed or estimator is another key
    base = cache_key(p, estimator="svnn", complex_net=False)
    assert cache_key(p, estimator="svnn", complex_net=False, seed=1) != base
    assert cache_key(p, estimator="pinn", complex_net=False) != base
    # a tampered cache file is a clear error, retrain replaces it
    pt = next(tmp_path.glob("*.pt"))
    pt.write_bytes(pt.read_bytes() + b"x")
    with pytest.raises(WeightsError, match="SHA256 mismatch"):
        get_model(p, "svnn", False, TrainSettings(**TINY), ModelSource(tmp_path))
    m3, prov3 = get_model(p, "svnn", False, TrainSettings(**TINY), ModelSource(tmp_path, retrain=True))
    assert prov3["source"] == "trained"
    assert get_model(p, "svnn", False, TrainSettings(**TINY), ModelSource(tmp_path))[1]["source"] == "cache"


def test_shipped_weights_are_verified(tmp_path):
    manifest = read_manifest()
    if not manifest.get("models"):
        pytest.fail("no shipped weights: run scripts/train_shipped_weights.py")
    entry = manifest["models"][0]
    assert find_shipped(entry["protocol"], entry["estimator"], entry["complex_net"]) is not None
    ship = tmp_path / "weights"
    ship.mkdir()
    shutil.copy(SHIPPED_DIR / entry["file"], ship / entry["file"])
    (ship / "manifest.json").write_text(json.dumps({"models": [entry]}))
    source = ModelSource(tmp_path / "cache", shipped_dir=ship)
    model, prov = get_model(entry["protocol"], entry["estimator"], entry["complex_net"], source=source)
    assert prov["source"] == "shipped" and prov["file_sha256"] == entry["sha256"]
    assert prov["weights_sha256"] == content_sha256(model.net.state_dict())
    with open(ship / entry["file"], "ab") as fh:
        fh.write(b"tampered")
    with pytest.raises(WeightsError, match="SHA256 mismatch"):
        get_model(entry["protocol"], entry["estimator"], entry["complex_net"], source=source)


def test_few_cycle_pinn_complex_is_warm_started(tmp_path):
    p = Protocol(math.radians(20), 5e-3, 2.5e-3, seed_phase_increments(4))  # nothing shipped
    msgs = []
    model, prov = get_model(p, "pinn", True, TrainSettings(**TINY), ModelSource(tmp_path), log=msgs.append)
    assert any("warm start" in m for m in msgs)
    assert model.settings["init"].startswith("pinncomplex 6 cycles (sha256 ")
    assert len(list(tmp_path.glob("bssfp_pinncomplex_*.pt"))) == 2  # the 6-cycle helper is cached too
    again, prov2 = get_model(p, "pinn", True, TrainSettings(**TINY), ModelSource(tmp_path))
    assert prov2["source"] == "cache" and prov2["weights_sha256"] == prov["weights_sha256"]
