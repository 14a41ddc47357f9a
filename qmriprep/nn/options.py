"""User-facing options of the in-silico networks: the run configuration's ``nn`` section."""

from __future__ import annotations

from dataclasses import dataclass

from .train import TrainSettings
from .weights import ModelSource


@dataclass
class NetworkOptions:
    """Training data and cache of the pc-bSSFP networks; ``0`` / ``""`` mean "the trainer's
    default" (:data:`qmriprep.nn.train.DEFAULTS`, noise-free training, the default cache folder).

    ``distribution``: ``uniform`` | ``extended`` | ``invivo`` (:data:`qmriprep.nn.insilico.BOUNDS`);
    ``snr``: training noise level; ``retrain``: ignore shipped and cached weights.
    """

    n_samples: int = 0
    max_epochs: int = 0
    distribution: str = "uniform"
    snr: float = 0.0
    cache_dir: str = ""
    retrain: bool = False


def network_settings(options: NetworkOptions, *, seed: int = 0,
                     device: str = "cpu") -> tuple[TrainSettings, ModelSource]:
    """What :func:`qmriprep.nn.weights.get_model` takes (``training``, ``source``) for these options."""
    training = TrainSettings(distribution=options.distribution, snr=options.snr or None, seed=seed, device=device,
                             n_samples=options.n_samples or None, max_epochs=options.max_epochs or None)
    return training, ModelSource(cache_dir=options.cache_dir or None, retrain=options.retrain)
