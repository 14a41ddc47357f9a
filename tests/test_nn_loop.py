"""The shared training loop (qmriprep.nn.loop): early stopping, best weights, schedules, seeding, time."""

import math
import time

import pytest
import torch

from qmriprep.nn.insilico import seed_protocol
from qmriprep.nn.loop import Hooks, LoopSettings, Stopwatch, fit, seeded
from qmriprep.nn.options import NetworkOptions, network_settings
from qmriprep.nn.train import TrainSettings, train
from qmriprep.nn.weights import ModelSource


class Scalar(torch.nn.Module):
    """One weight ``w``; the step loss ``(w - 3)^2`` pulls it towards 3."""

    def __init__(self, w=0.0):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(float(w)))

    def loss(self, *_):
        return (self.w - 3.0) ** 2


def scripted(values):
    """A validation loss returning ``values`` one epoch after the other."""
    it = iter(values)
    return lambda: next(it)


def test_early_stopping_stops_after_patience_epochs_without_improvement():
    model = Scalar()
    val = [3.0, 2.0, 1.0, 1.5, 1.2, 1.1, 0.5, 0.1]
    hist = fit(model, model.loss, LoopSettings(max_epochs=8, patience=3, lr=0.1), val_loss=scripted(val))
    assert hist.stopped == "patience" and len(hist.records) == 6
    assert hist.best_epoch == 2 and hist.best_loss == 1.0 and hist.since_best == 3
    assert hist.column("val_loss") == val[:6] and hist.column("epoch") == [1, 2, 3, 4, 5, 6]


def test_best_weights_are_restored_and_a_target_keeps_the_current_ones():
    model = Scalar()
    hooks = Hooks(extras=lambda: {"w": float(model.w.detach())})
    hist = fit(model, model.loss, LoopSettings(max_epochs=5, patience=10, lr=0.1),
               val_loss=scripted([5.0, 1.0, 4.0, 3.0, 2.0]), hooks=hooks)
    ws = hist.column("w")
    assert len(set(ws)) == 5 and hist.best_epoch == 1 and hist.stopped == "max_epochs"
    assert float(model.w.detach()) == ws[1] != ws[-1] and not model.training
    model = Scalar()
    hooks = Hooks(extras=lambda: {"w": float(model.w.detach())}, stop_when=lambda h: len(h.records) == 3)
    hist = fit(model, model.loss, LoopSettings(max_epochs=5, patience=10, lr=0.1),
               val_loss=scripted([5.0, 1.0, 4.0]), hooks=hooks)
    assert hist.stopped == "target" and float(model.w.detach()) == hist.records[-1]["w"]


def test_without_validation_the_training_loss_decides_and_batches_weight_it():
    model = Scalar()
    sizes = []

    def step(batch):
        sizes.append(len(batch))
        return model.loss() * len(batch)

    hist = fit(model, step, LoopSettings(max_epochs=3, patience=1, lr=0.0),
               batches=lambda: [torch.arange(3), torch.arange(1)])
    # lr 0: w stays 0, per-sample-weighted mean of 9 * 3 (3 samples) and 9 * 1 (1 sample)
    assert sizes == [3, 1, 3, 1] and hist.column("train_loss") == [(27 * 3 + 9) / 4] * 2
    assert hist.column("val_loss") == [None, None] and hist.stopped == "patience" and hist.best_epoch == 0
    calls = []
    fit(model, lambda: calls.append(1) or model.loss(), LoopSettings(max_epochs=2, patience=5, lr=0.1,
                                                                     steps_per_epoch=4))
    assert len(calls) == 8


def test_cosine_and_plateau_schedules():
    model = Scalar()
    s = LoopSettings(max_epochs=4, patience=10, lr=0.1, schedule="cosine", min_lr=0.01)
    lrs = fit(model, model.loss, s).column("lr")
    assert lrs == pytest.approx([0.01 + 0.045 * (1 + math.cos(math.pi * e / 4)) for e in (1, 2, 3, 4)])
    assert lrs[-1] == pytest.approx(0.01)
    s = LoopSettings(max_epochs=6, patience=10, lr=0.1, schedule="plateau", decay_patience=2, min_lr=0.02)
    model = Scalar()
    hist = fit(model, model.loss, s, val_loss=scripted([1.0, 2.0, 2.0, 2.0, 2.0, 0.5]))
    assert hist.column("lr") == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    with pytest.raises(ValueError, match="schedule"):
        LoopSettings(max_epochs=1, patience=1, lr=0.1, schedule="step")


def test_time_budget_is_honoured_and_stop_when_time_is_not_counted():
    model = Scalar()

    def slow():
        time.sleep(0.03)
        return model.loss()

    budget = 0.1
    hist = fit(model, slow, LoopSettings(max_epochs=100, patience=100, lr=0.01, time_budget_s=budget))
    secs = hist.column("seconds")
    assert hist.stopped == "time_budget" and secs[-1] >= budget > secs[-2] and len(secs) < 10

    def waiting(_):
        time.sleep(0.2)
        return False

    hist = fit(model, model.loss, LoopSettings(max_epochs=3, patience=10, lr=0.01), hooks=Hooks(stop_when=waiting))
    assert hist.seconds < 0.2 and hist.stopped == "max_epochs"


def test_stopwatch_pause():
    clock = Stopwatch()
    with clock.paused():
        time.sleep(0.05)
    assert clock.wall() < 0.04


def test_seeded_gives_manual_seed_streams_and_restores_the_global_state():
    state = torch.get_rng_state()
    with seeded(7):
        a = torch.rand(5)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(7)
    assert torch.equal(torch.rand(5), a)


def test_same_seed_same_network_and_the_global_generator_is_untouched():
    p = seed_protocol(12)
    tiny = dict(n_samples=2000, max_epochs=2, batch_size=256)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = train(p, "svnn", False, TrainSettings(seed=4, snr=30, **tiny))
    assert torch.equal(torch.get_rng_state(), state)
    b = train(p, "svnn", False, TrainSettings(seed=4, snr=30, **tiny))
    c = train(p, "svnn", False, TrainSettings(seed=5, snr=30, **tiny))
    sa, sb, sc = (m.net.state_dict() for m in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["mlp.0.weight"], sc["mlp.0.weight"])
    assert [r["val_loss"] for r in a.curve] == [r["val_loss"] for r in b.curve]


def test_network_options_give_the_trainer_defaults_when_unset():
    training, source = network_settings(NetworkOptions(), seed=3, device="cpu")
    assert training == TrainSettings(seed=3) and not training.overrides()
    assert source == ModelSource()
    opts = NetworkOptions(n_samples=5000, max_epochs=7, distribution="invivo", snr=25.0, cache_dir="/c",
                          retrain=True)
    training, source = network_settings(opts)
    assert training.overrides() == {"n_samples": 5000, "max_epochs": 7}
    assert (training.distribution, training.snr, training.seed) == ("invivo", 25.0, 0)
    assert source == ModelSource(cache_dir="/c", retrain=True)
    hp = training.resolved("svnn", False)
    assert hp["max_epochs"] == 7 and hp["batch_size"] == 1024 and hp["decay_patience"] == 6


def _progress_lines(caplog, **kwargs):
    from qmriprep.utils import progress

    model = Scalar()

    def slow():
        time.sleep(0.02)
        return model.loss()

    with caplog.at_level(progress.LEVEL, logger=progress.LOGGER.name):
        caplog.clear()
        fit(model, slow, LoopSettings(max_epochs=20, patience=100, lr=0.1), val_loss=lambda: 1.0, **kwargs)
    return [r.getMessage() for r in caplog.records if r.name == progress.LOGGER.name]


def test_a_long_training_reports_progress_lines_without_flooding(caplog, monkeypatch):
    from qmriprep.utils import progress

    monkeypatch.setattr(progress, "EVERY_S", 0.1)  # a line every 0.1 s: ~ every 5th epoch
    lines = _progress_lines(caplog, hooks=Hooks(progress="ZS-SSL training"))
    assert 4 <= len(lines) <= 8, lines
    assert lines[0].startswith("ZS-SSL training 1/20 epochs: loss 9, validation 1 (best 1 at epoch 1)")
    assert all("elapsed, at most" in line and "s left)" in line for line in lines[:-1])
    assert lines[-1].startswith("ZS-SSL training 20/20 epochs: stopped (max_epochs), best 1 at epoch 1")
    assert "left" not in lines[-1]
    monkeypatch.setattr(progress, "EVERY_S", 10.0)  # the default: a short training, two lines
    assert len(_progress_lines(caplog)) == 2
    assert _progress_lines(caplog, hooks=Hooks(progress=None)) == []
