"""User-facing options of the in-silico networks: the run configuration's ``nn`` section."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .insilico import matched_snr, noise_sigma, signal_level, snap_snr
from .train import TrainSettings
from .weights import ModelSource


@dataclass
class NetworkOptions:
    """Training data and cache of the pc-bSSFP networks; ``0`` / ``""`` mean "the trainer's
    default" (:data:`qmriprep.nn.train.DEFAULTS`, the default cache folder).

    ``distribution``: ``uniform`` | ``extended`` | ``invivo`` (:data:`qmriprep.nn.insilico.BOUNDS`);
    ``snr``: training noise level (0: matched to the series with ``noise_match``, else noise-free);
    ``noise_match``: train for the series' measured noise (:func:`matched_training`);
    ``retrain``: ignore shipped and cached weights.
    """

    n_samples: int = 0
    max_epochs: int = 0
    distribution: str = "uniform"
    snr: float = 0.0
    noise_match: bool = True
    cache_dir: str = ""
    retrain: bool = False


def matched_training(options: NetworkOptions, protocol, sigma: float | None, level: float | None) -> dict:
    """Training noise for a series with noise ``sigma`` and median configuration norm ``level``
    in the brain (signal units; :func:`qmriprep.nn.insilico.matched_snr`): ``snr`` (seed
    definition, the :func:`~qmriprep.nn.insilico.snap_snr` grid; None: noise-free), ``series_snr``
    (unsnapped) and ``training_noise_sigma`` (that training noise in the series' signal units)."""
    if options.snr:
        fixed = {"snr": float(options.snr)}
        if not (sigma and level):
            return fixed
    elif not (options.noise_match and sigma and level and math.isfinite(level)):
        return {"snr": None}
    m0 = float(level) / signal_level(protocol)
    series = matched_snr(float(sigma), float(level), protocol)
    train = float(options.snr) if options.snr else snap_snr(series)
    return {"snr": train, "series_snr": round(series, 2),
            "training_noise_sigma": None if train is None else noise_sigma(train) * m0}


def network_settings(options: NetworkOptions, *, seed: int = 0, device: str = "cpu",
                     snr: float | None = None) -> tuple[TrainSettings, ModelSource]:
    """What :func:`qmriprep.nn.weights.get_model` takes (``training``, ``source``) for these options
    (``snr``: the training SNR chosen by :func:`matched_training`, default ``options.snr``)."""
    training = TrainSettings(distribution=options.distribution, snr=snr or options.snr or None, seed=seed,
                             device=device,
                             n_samples=options.n_samples or None, max_epochs=options.max_epochs or None)
    return training, ModelSource(cache_dir=options.cache_dir or None, retrain=options.retrain)
