"""The training loop of every learned estimator (pc-bSSFP MLPs, the ZS-SSL / SSL / SL unrolled network).

An epoch is a sequence of optimiser steps ``loss = step_loss(...)``, ``loss.backward()``, optional
gradient-norm clipping, ``optimizer.step()`` (Adam by default, Kingma & Ba, ICLR 2015): either
``steps_per_epoch`` calls of a closure ``step_loss()``, or one call ``step_loss(batch)`` per batch
of ``batches()`` (drawn afresh every epoch). After it, the validation loss is evaluated (eval
mode, no gradients). Early stopping (Prechelt, Neural Networks: Tricks of the Trade, 1998): the
score is the validation loss, or the epoch's training loss without validation data; training
stops after ``patience`` epochs without a new best score and the best state is restored.

Learning-rate schedules, applied after each epoch ``e`` of ``E = max_epochs``:

- ``constant``;
- ``cosine`` (Loshchilov & Hutter, ICLR 2017): ``lr_e = lr_min + (lr - lr_min) (1 + cos(pi e / E)) / 2``;
- ``plateau``: ``lr <- max(lr_min, lr_decay * lr)`` after ``decay_patience`` epochs without a new
  best score.

Progress (:class:`qmriprep.utils.progress.Progress`): the first epoch, then one line every ~10 s
and the end, on the terminal: epoch, training and validation loss, the best so far, elapsed time
and the time left at most (until ``max_epochs`` or the time budget); named by ``Hooks.progress``.

Randomness: callers draw from explicit :class:`torch.Generator` s, and run code that uses torch's
global generator (weight initialisation) under :func:`seeded`, which leaves the caller's state
untouched.
"""

from __future__ import annotations

import copy
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch

from ..utils.progress import Progress

SCHEDULES = ("constant", "cosine", "plateau")


@dataclass(frozen=True)
class LoopSettings:
    """Optimiser, epochs, early stopping and learning-rate schedule of :func:`fit`."""

    max_epochs: int
    patience: int
    lr: float
    steps_per_epoch: int = 1          # calls of ``step_loss()`` per epoch (without ``batches``)
    schedule: str = "constant"        # one of SCHEDULES
    min_lr: float = 1e-5              # floor of the cosine and plateau schedules
    lr_decay: float = 0.5             # plateau factor (1: no decay)
    decay_patience: int | None = None  # plateau epochs; default max(3, patience // 4)
    grad_clip: float | None = None    # cap of the gradient norm of every step
    time_budget_s: float | None = None  # stop once the clock passes this (after an epoch)

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose one of {SCHEDULES}")

    @property
    def plateau_patience(self) -> int:
        return max(3, self.patience // 4) if self.decay_patience is None else self.decay_patience


@dataclass
class Hooks:
    """Optional per-epoch callbacks of :func:`fit`.

    ``log(record)`` gets each epoch's record; ``extras()`` returns values added to it (e.g. a
    learned parameter); ``stop_when(history)`` ends training with the current weights (its run
    time is excluded from the clock); ``progress``: the name in the progress lines (None: none).
    """

    log: Callable[[dict], object] | None = None
    extras: Callable[[], dict] | None = None
    stop_when: Callable[[History], bool] | None = None
    progress: str | None = "training"


@dataclass
class History:
    """Per-epoch records (``epoch`` from 1, ``train_loss``, ``val_loss`` (None without
    validation), ``seconds``, ``cpu_seconds``, ``lr`` and the extras), the best epoch (index into
    ``records``, -1 if none), its score, why training stopped (``max_epochs`` | ``patience`` |
    ``time_budget`` | ``target``) and the total wall and CPU seconds."""

    records: list = field(default_factory=list)
    best_epoch: int = -1
    best_loss: float = math.inf
    stopped: str = "max_epochs"
    seconds: float = 0.0
    cpu_seconds: float = 0.0

    def column(self, key: str) -> list:
        return [r[key] for r in self.records]

    @property
    def since_best(self) -> int:
        """Epochs run since the best one (all of them when none was best)."""
        return len(self.records) - 1 - self.best_epoch


class Stopwatch:
    """Wall and CPU seconds since creation, less the time spent in :meth:`paused` blocks."""

    def __init__(self):
        self._wall0, self._cpu0 = time.perf_counter(), time.process_time()
        self._paused_wall = self._paused_cpu = 0.0

    def wall(self) -> float:
        return time.perf_counter() - self._wall0 - self._paused_wall

    def cpu(self) -> float:
        return time.process_time() - self._cpu0 - self._paused_cpu

    @contextmanager
    def paused(self):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self._paused_wall += time.perf_counter() - wall
            self._paused_cpu += time.process_time() - cpu


@contextmanager
def seeded(seed: int):
    """Run the block with torch's global generator seeded by ``torch.manual_seed(seed)`` (the
    same streams), restoring the caller's CPU generator state afterwards (``fork_rng``)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _epoch(model, opt, step_loss, batches, settings: LoopSettings) -> float:
    """One epoch of optimiser steps; the mean step loss, weighted by the batch sizes."""
    model.train()
    jobs = ((b, len(b)) for b in batches()) if batches is not None else \
        ((None, 1) for _ in range(settings.steps_per_epoch))
    total = weight = 0
    for batch, n in jobs:
        loss = step_loss() if batches is None else step_loss(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if settings.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        opt.step()
        total += float(loss.detach()) * n
        weight += n
    return total / max(weight, 1)


def _set_lr(opt, settings: LoopSettings, epoch: int, decay: bool) -> None:
    """The schedule's rate after ``epoch``; ``decay``: a plateau decay is due."""
    for g in opt.param_groups:
        if settings.schedule == "cosine":
            frac = min(1.0, epoch / settings.max_epochs)
            g["lr"] = settings.min_lr + 0.5 * (settings.lr - settings.min_lr) * (1 + math.cos(math.pi * frac))
        elif decay:
            g["lr"] = max(settings.min_lr, g["lr"] * settings.lr_decay)


def _stop(hist: History, settings: LoopSettings, clock: Stopwatch, hooks: Hooks) -> str | None:
    if hist.since_best >= settings.patience:
        return "patience"
    if settings.time_budget_s is not None and hist.records[-1]["seconds"] >= settings.time_budget_s:
        return "time_budget"
    if hooks.stop_when is not None:
        with clock.paused():
            if hooks.stop_when(hist):
                return "target"
    return None


def _report(progress: Progress | None, hist: History, settings: LoopSettings, final: bool) -> None:
    """A progress line: the epoch's losses, the best score, the time left at most."""
    if progress is None or not hist.records:
        return
    rec = hist.records[-1]
    val = "" if rec["val_loss"] is None else f", validation {rec['val_loss']:.4g}"
    best = f"best {hist.best_loss:.4g} at epoch {hist.best_epoch + 1}"
    if final:
        progress.update(rec["epoch"], f"stopped ({hist.stopped}), {best}", final=True)
        return
    left = (time.perf_counter() - progress.t0) / rec["epoch"] * (settings.max_epochs - rec["epoch"])
    if settings.time_budget_s is not None:
        left = min(left, max(0.0, settings.time_budget_s - rec["seconds"]))
    progress.update(rec["epoch"], f"loss {rec['train_loss']:.4g}{val} ({best})", left_s=left,
                    at_most=True)


def fit(model: torch.nn.Module, step_loss: Callable[..., torch.Tensor], settings: LoopSettings, *,
        batches: Callable[[], Iterable] | None = None, val_loss: Callable[[], float] | None = None,
        hooks: Hooks | None = None, optimizer: torch.optim.Optimizer | None = None,
        clock: Stopwatch | None = None) -> History:
    """Train ``model`` in place (see the module docstring) and return its :class:`History`.

    ``step_loss``: ``step_loss()`` (``steps_per_epoch`` times per epoch), or ``step_loss(batch)``
    for every batch of ``batches()``; ``val_loss()``: the validation loss; ``optimizer``: default
    ``Adam(model.parameters(), lr)``; ``clock``: a :class:`Stopwatch` started earlier (e.g. before
    the data were made) for the records and the time budget. The best state is loaded at the end
    unless ``hooks.stop_when`` stopped training; the model is left in eval mode.
    """
    hooks, clock = hooks or Hooks(), clock or Stopwatch()
    opt = optimizer or torch.optim.Adam(model.parameters(), lr=settings.lr)
    hist, best_state, since_decay = History(), None, 0
    progress = Progress(hooks.progress, settings.max_epochs, unit="epochs") if hooks.progress else None
    for epoch in range(1, settings.max_epochs + 1):
        train_loss = _epoch(model, opt, step_loss, batches, settings)
        model.eval()
        with torch.no_grad():
            val = val_loss() if val_loss is not None else None
        extra = hooks.extras() if hooks.extras is not None else {}
        score, decay = train_loss if val is None else val, False
        if score < hist.best_loss:
            hist.best_loss, hist.best_epoch, since_decay = score, epoch - 1, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            since_decay += 1
            decay = (settings.schedule == "plateau" and since_decay >= settings.plateau_patience
                     and settings.lr_decay < 1)
            since_decay = 0 if decay else since_decay
        _set_lr(opt, settings, epoch, decay)
        hist.records.append(dict(epoch=epoch, train_loss=train_loss, val_loss=val, seconds=clock.wall(),
                                 cpu_seconds=clock.cpu(), lr=opt.param_groups[0]["lr"], **extra))
        if hooks.log is not None:
            hooks.log(hist.records[-1])
        stopped = _stop(hist, settings, clock, hooks)
        if stopped:
            hist.stopped = stopped
            break
        if epoch < settings.max_epochs:
            _report(progress, hist, settings, final=False)
    _report(progress, hist, settings, final=True)
    if best_state is not None and hist.stopped != "target":
        model.load_state_dict(best_state)
    model.eval()
    hist.seconds, hist.cpu_seconds = clock.wall(), clock.cpu()
    return hist
