"""Sidecar provenance of every output: units, algorithm, reference, sources.

Everything comes from the estimator registry (:mod:`qmriprep.estimators`: algorithm text and
citation keys), the suffix table (:mod:`qmriprep.suffixes`: units) and the bibliography
(:mod:`qmriprep.estimators.citations`: citable text).
"""

from __future__ import annotations

from pathlib import Path

from . import suffixes
from .estimators.citations import references


def bids_uris(files, bids_dir) -> list[str]:
    """``bids:raw:<relative path>`` URIs of raw files (BIDS 1.8 ``Sources``)."""
    root = Path(bids_dir).absolute()
    out = []
    for f in files:
        try:
            out.append("bids:raw:" + Path(f).absolute().relative_to(root).as_posix())
        except ValueError:
            out.append(Path(f).absolute().as_uri())
    return out


def map_meta(suffix: str, estimator, sources, **extra) -> dict:
    """Sidecar of one map of ``estimator`` (an :class:`~qmriprep.estimators.Estimator`)."""
    meta = {
        "Units": suffixes.units(suffix),
        "EstimationAlgorithm": estimator.algorithm,
        "EstimationReference": references(estimator.citations),
        "Sources": list(sources),
        "SkullStripped": False,
    }
    meta.update(extra)
    return meta


def reconstruction_meta(method, sources) -> dict:
    """Sidecar fields of the images of a :class:`~qmriprep.estimators.Reconstruction`."""
    return {"Sources": list(sources), "SkullStripped": False, "Units": "arbitrary",
            "ReconstructionAlgorithm": method.algorithm,
            "ReconstructionReference": references(method.citations)}
