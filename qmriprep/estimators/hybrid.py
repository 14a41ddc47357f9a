"""Maps from clinical weighted images (seed 002): a U-Net trained by ``qmriprep-hybrid train``
with low-resolution labels, with (``hybrid``) or without (``supervised``) the physics-based edge
loss, applied by ``qmriprep ... --hybrid-model MODEL_DIR`` (:mod:`..nn.hybrid`).

A model folder holds ``model.pt`` (weights) and ``model.json`` (its SHA256, the estimator name,
training settings and curves, the input contrasts and the protocol it assumes, in SI units).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .names import HYBRID, SUPERVISED
from .spec import Estimator, Output, register

LOGGER = logging.getLogger("qmriprep")

KIND = "weighted"
MODEL_FILE, META_FILE = "model.pt", "model.json"


@dataclass
class WeightedSettings:
    """Config section ``weighted``: the model folder applied to T1w/T2w pairs ("": none)."""

    model: str = ""


def estimator_name(edge_weight: float) -> str:
    """``hybrid`` with the edge loss, ``supervised`` without."""
    return HYBRID if edge_weight > 0 else SUPERVISED


def read_model_meta(model_dir) -> dict:
    """``model.json`` of a model folder, its weights' SHA256 checked; an InputError otherwise."""
    from ..utils.files import sha256_file

    folder = Path(model_dir)
    meta_file, weights = folder / META_FILE, folder / MODEL_FILE
    for f in (meta_file, weights):
        if not f.is_file():
            raise InputError(f, "missing: not a model folder written by qmriprep-hybrid train")
    try:
        meta = json.loads(meta_file.read_text())
        expected = meta["SHA256"]
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(meta_file, f"not a qmriprep-hybrid model description ({err})") from None
    if "SDCalibration" not in meta or "TrainingRange" not in meta:
        raise InputError(meta_file, "model has no standard-deviation head or training range (written by an "
                                    "earlier qmriprep): train it again with qmriprep-hybrid train")
    if sha256_file(weights) != expected:
        raise InputError(weights, f"SHA256 differs from {META_FILE} (corrupted or replaced weights)")
    return meta


def check_protocol(meta: dict, protocol, files) -> None:
    """An InputError naming the image of ``files`` (T1w, T2w[, FLAIR]) whose protocol differs from
    the model's."""
    from ..bids.weighted import WeightedProtocol

    protocol.check_matches(WeightedProtocol(**meta["Protocol"]), files, "protocol does not match the --hybrid-model")


def fit_weighted(series, protocol, *, b1=None, mask=None, model="", affine=None, **_):
    """T1, T2 and M0 of stacked weighted images ``series`` (X, Y, Z, C) by the model in folder
    ``model`` (config ``weighted.model``); with the images' ``affine`` the voxels are put in the RAS
    order the model was trained in (sagittal slices) and the maps back in the stored order, and a
    voxel size unlike every training subject's (> 25 % on an axis) is warned about."""
    import numpy as np
    import torch

    from ..nn.hybrid import HybridSettings, nets_from, predict
    from ..utils.orientation import from_ras, to_ras

    meta = read_model_meta(model)
    check_protocol(meta, protocol, [Path(model) / META_FILE])
    # a model written before ensembles has no "members": it is one network
    settings = HybridSettings(**{"members": 1, **meta["Settings"], "scales": tuple(meta["Settings"]["scales"])})
    state = torch.load(Path(model) / MODEL_FILE, map_location="cpu", weights_only=True)
    nets = nets_from(state, len(meta["Contrasts"]), settings)
    ras = (lambda a: a) if affine is None else (lambda a: to_ras(a, affine))  # noqa: E731
    images = np.moveaxis(ras(np.asarray(series, np.float32)), -1, 0)
    inside = np.ones(images.shape[1:], bool) if mask is None else ras(np.asarray(mask, bool))
    maps = predict(nets, images[:len(meta["Contrasts"])], settings, mask=inside,
                   sd_calibration=meta["SDCalibration"])
    outside = np.zeros_like(inside)
    for key, (low, high) in zip(("t1", "t2", "m0"), meta["TrainingRange"]):
        outside |= inside & ((maps[key] < low) | (maps[key] > high))
    maps["out_of_range"] = outside.astype(np.uint8)
    if affine is not None:
        maps = {k: from_ras(v, affine) for k, v in maps.items()}
    return {**maps, "meta": {"ModelSHA256": meta["SHA256"], "TrainingSettings": meta["Settings"],
                             "TrainingSubjects": meta.get("TrainingSubjects", []),
                             "InputContrasts": list(meta["Contrasts"]), "SDCalibration": meta["SDCalibration"],
                             "TrainingRange": meta["TrainingRange"], "EnsembleSize": settings.members,
                             "OutOfRangeVoxels": int(outside.sum()),
                             **voxel_size_note(meta, affine)}}


def voxel_size_note(meta: dict, affine) -> dict:
    """``{"VoxelSizeWarning": text}`` (also logged) when the images' RAS voxel size differs by more
    than 25 % on an axis from every training subject's (``VoxelSize`` in model.json); else ``{}``."""
    import numpy as np

    from ..utils.orientation import ras_voxel_size

    trained = meta.get("VoxelSize")
    if affine is None or not trained:
        return {}
    mine = np.array(ras_voxel_size(affine))
    if any(np.all(np.abs(mine / np.array(t) - 1) <= 0.25) for t in trained):
        return {}
    text = (f"voxel size {' x '.join(f'{z:.3g}' for z in mine)} mm (RAS) differs from the training subjects' "
            f"({'; '.join(' x '.join(f'{z:.3g}' for z in t) for t in trained)} mm): the U-Net sees "
            "structures at another scale than it learned")
    LOGGER.warning("%s", text)
    return {"VoxelSizeWarning": text}


_SD = ("Standard deviation of the {} estimate: a second U-Net head (on the maps' detached features) "
       "predicting the log-variance of the residual to the low-resolution labels (Gaussian negative "
       "log-likelihood), for an ensemble (EnsembleSize > 1) combined with the spread of its members' maps, "
       "scaled per map so that 68.27 % of the held-out training slices' residuals lie "
       "within +-1 SD (SDCalibration): an uncertainty relative to the labels, blind to their blur and bias")
_OUT = (Output("t1", "T1map"), Output("t2", "T2map"), Output("m0", "M0map"),
        *(Output(f"{k}_sd", s, desc="SD", description=_SD.format(k.upper()))
          for k, s in (("t1", "T1map"), ("t2", "T2map"), ("m0", "M0map"))),
        Output("out_of_range", "mask", desc="OutOfRange", description=(
            "1 where the T1, T2 or M0 estimate lies outside the 0.1-99.9 percentile range of the training "
            "labels in the brain (TrainingRange): an extrapolation")))
_NET = ("A 2-D U-Net (or the mean of an ensemble of EnsembleSize U-Nets trained from successive random seeds) "
        "mapping slices of the T1-weighted MPRAGE and T2-weighted TSE images (and of the "
        "FLAIR image, InputContrasts, when the model was trained with one; each divided "
        "by its 99th percentile) to T1, T2 and M0, trained with an L1 loss to low-resolution label maps")
_CITES = ("qiu2021", "ronneberger2015", "deichmann2000", "lakshminarayanan2017")
for _name, _how in ((HYBRID, " plus an L1 loss between the Sobel edge maps of the acquired weighted images "
                     "and of those synthesised from the predicted maps by the MPRAGE and TSE signal models, "
                     "each scaled by its closed-form least-squares factor"), (SUPERVISED, " only")):
    register(Estimator(kind=KIND, name=_name, core=f"{__name__}:fit_weighted", settings=KIND,
                       choosable=False, citations=_CITES, outputs=_OUT,
                       algorithm=_NET + _how))
