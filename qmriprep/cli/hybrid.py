"""``qmriprep-hybrid train BIDS_DIR MODEL_DIR --labels DERIV_DIR``: train the weighted-image U-Net.

Every subject (or those of ``--participant-label``) with a T1w/T2w pair (:mod:`..bids.weighted`)
and ``T1map``, ``T2map``, ``M0map`` labels in ``DERIV_DIR`` (any resolution; resampled to the
weighted grid, trilinear) is a training subject; one without labels is skipped with a warning.
FLAIR is a third input when every training subject has one (``--no-flair``: never); the model
then needs it, and its protocol, in every subject it is applied to.
The model folder (``model.pt`` and ``model.json``: SHA256, estimator, settings, curves, assumed
protocol) is written to a temporary folder and renamed into place when complete. Exit codes as
``qmriprep``: 65 bad input, 2 bad command line, 1 anything unforeseen.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from dataclasses import replace
from pathlib import Path

from ..errors import EXIT_INPUT, EXIT_PROCESSING, InputError

LOGGER = logging.getLogger("qmriprep")


def build_parser() -> argparse.ArgumentParser:
    from ..estimators.names import HYBRID, SUPERVISED
    from ..nn.hybrid import HybridSettings
    from .parser import positive_int

    d = HybridSettings()
    p = argparse.ArgumentParser(prog="qmriprep-hybrid", description="T1, T2, M0 maps from clinical "
                                "weighted images (MPRAGE, TSE): train a model with low-resolution labels.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a model and write it to MODEL_DIR")
    t.add_argument("bids_dir", type=Path, help="BIDS dataset with T1w (MPRAGE) and T2w (TSE) images")
    t.add_argument("model_dir", type=Path, help="new folder for the model (must not exist or be empty)")
    t.add_argument("--labels", required=True, type=Path, metavar="DERIV_DIR",
                   help="BIDS derivatives folder with T1map, T2map, M0map of the training subjects")
    t.add_argument("--participant-label", nargs="+", metavar="LABEL", default=None,
                   help="training subjects (default: every subject with weighted images and labels)")
    t.add_argument("--loss", choices=(HYBRID, SUPERVISED), default=HYBRID,
                   help=f"{HYBRID}: labels + physics-based edge loss (default); {SUPERVISED}: labels only")
    t.add_argument("--edge-weight", type=float, default=d.edge_weight, help="lambda of the edge loss")
    for flag, key, kind in (("--epochs", "max_epochs", int), ("--steps-per-epoch", "steps_per_epoch", int),
                            ("--patience", "patience", int), ("--width", "width", int),
                            ("--batch-size", "batch_size", int), ("--lr", "lr", float),
                            ("--time-budget", "time_budget_s", float), ("--seed", "seed", int)):
        t.add_argument(flag, dest=key, type=kind, default=getattr(d, key), help=f"default {getattr(d, key)}")
    t.add_argument("--ensemble", dest="members", type=positive_int, default=d.members, metavar="N",
                   help=f"train N networks (seeds SEED..SEED+N-1, one time budget); maps are their mean, the SD "
                        f"includes their spread (default {d.members})")
    t.add_argument("--no-flair", action="store_true",
                   help="T1w and T2w only, even when every training subject has a FLAIR image")
    t.add_argument("--nthreads", type=int, default=2, help="torch threads (default 2)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(message)s", datefmt="%H:%M:%S")
    try:
        return _train(args)
    except InputError as err:
        LOGGER.error("%s", err)
        return EXIT_INPUT
    except Exception as err:  # noqa: BLE001 (one line for users)
        LOGGER.error("%s (%s)", (str(err).splitlines() or [""])[0], type(err).__name__)
        return EXIT_PROCESSING


def _settings(args):
    from ..estimators.names import SUPERVISED
    from ..nn.hybrid import HybridSettings

    keys = ("max_epochs", "steps_per_epoch", "patience", "width", "batch_size", "lr", "time_budget_s", "seed",
            "members")
    return replace(HybridSettings(), edge_weight=0.0 if args.loss == SUPERVISED else args.edge_weight,
                   **{k: getattr(args, k) for k in keys})


def _train(args) -> int:
    import torch

    from ..nn.hybrid import train

    settings = _settings(args)
    bids_dir, model_dir = args.bids_dir.absolute(), args.model_dir.absolute()
    for folder in (bids_dir, args.labels):
        if not folder.is_dir():
            raise InputError(folder, "is not a folder")
    if model_dir.exists() and any(model_dir.iterdir()):
        raise InputError(model_dir, "exists and is not empty (choose a new model folder)")
    sets = training_sets(bids_dir, args.labels.absolute(), args.participant_label)
    contrasts = _contrasts(sets, args.no_flair)
    protocol = sets[0][1]["protocol"]
    protocol = protocol if "FLAIR" in contrasts else protocol.without_flair()
    for subject, wset, _ in sets[1:]:
        wset["protocol"].check_matches(protocol, wset["files"], f"protocol differs from sub-{sets[0][0]}'s")
    torch.set_num_threads(args.nthreads)
    vols = [load_volumes(w["files"][:len(contrasts)], labels, bids_dir) for _, w, labels in sets]
    LOGGER.info("training on %d subjects (%s), %s loss", len(sets), ", ".join(s for s, _, _ in sets), args.loss)
    nets, record = train(vols, (protocol.mprage, protocol.tse), settings)  # progress lines: nn.loop
    write_model(model_dir, nets, {**record, "TrainingSubjects": [s for s, _, _ in sets], "Orientation": "RAS",
                                   "VoxelSize": [voxel_size(w["files"][0]) for _, w, _ in sets]},
                protocol=protocol, contrasts=contrasts)
    LOGGER.info("model written to %s (%.0f s of training, %s)", model_dir, record["seconds"], record["stopped"])
    return 0


def training_sets(bids_dir: Path, labels_dir: Path, participants) -> list[tuple]:
    """``[(subject, weighted set, labels)]``; subjects without labels are skipped with a warning."""
    from ..bids.weighted import find_labels, find_weighted

    subjects = [s.removeprefix("sub-") for s in participants] if participants else sorted(
        p.name[4:] for p in bids_dir.glob("sub-*") if p.is_dir())
    out = []
    for subject in subjects:
        if not (bids_dir / f"sub-{subject}").is_dir():
            raise InputError(bids_dir, f"sub-{subject} not found")
        for wset in find_weighted(bids_dir, subject):
            labels = find_labels(labels_dir, subject, wset["session"])
            if labels is None:
                LOGGER.warning("sub-%s: no T1map, T2map and M0map in %s; skipped", subject, labels_dir)
                continue
            out.append((subject, wset, labels))
    if not out:
        raise InputError(labels_dir, "no training subject has T1w and T2w images and T1map, T2map and "
                                     "M0map labels")
    return out


def _contrasts(sets, no_flair: bool) -> tuple[str, ...]:
    """T1w, T2w, and FLAIR when every training subject has one (and not ``no_flair``)."""
    flair = not no_flair and all(w["protocol"].flair is not None for _, w, _ in sets)
    return ("T1w", "T2w", "FLAIR") if flair else ("T1w", "T2w")


def voxel_size(image) -> list[float]:
    """Voxel size (mm) of an image in RAS axis order."""
    import nibabel as nb

    from ..utils.orientation import ras_voxel_size

    return [round(z, 4) for z in ras_voxel_size(nb.load(image).affine)]


def load_volumes(files, labels: dict, root: Path):
    """:class:`~..nn.hybrid.Volumes` of weighted ``files`` (on the T1w's grid, else aligned to it) and
    ``labels`` resampled to it,
    in RAS voxel order (the U-Net's slices are then sagittal whatever the stored order)."""
    import nibabel as nb
    import numpy as np
    from nibabel.processing import resample_from_to

    from ..nn.hybrid import Volumes
    from ..registration import rigid
    from ..utils.images import off_grid
    from ..utils.orientation import to_ras
    from ..workflows.vfa import AUTO_MIN_MOTION

    imgs = [nb.load(f) for f in files]
    moved = off_grid(imgs)
    if moved is not None:  # as the apply workflow does (workflows/weighted.py)
        LOGGER.info("%s: not on the T1w image's grid; aligned rigidly to it and resampled",
                    Path(files[moved]).relative_to(root))
        imgs = rigid.align_series(imgs, reference_index=0, min_displacement=AUTO_MIN_MOTION)[0]
    maps = [np.asarray(resample_from_to(nb.load(labels[s]), imgs[0], order=1, mode="nearest").dataobj)
            for s in ("T1map", "T2map", "M0map")]
    ras = lambda arrays: np.moveaxis(to_ras(np.stack(arrays, -1), imgs[0].affine), -1, 0)  # noqa: E731
    return Volumes(ras([np.asarray(i.dataobj, np.float32) for i in imgs]),
                   np.nan_to_num(ras(maps)).clip(min=0).astype(np.float32))


def write_model(model_dir: Path, nets, record: dict, *, protocol, contrasts) -> Path:
    """``model.pt`` and ``model.json`` in ``model_dir``, written beside it and renamed into place."""
    import torch

    from .. import __version__
    from ..bids.weighted import WeightedProtocol
    from ..estimators.hybrid import META_FILE, MODEL_FILE, estimator_name
    from ..nn.hybrid import state_of
    from ..utils.files import sha256_file

    tmp = model_dir.parent / f".{model_dir.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        torch.save(state_of(nets), tmp / MODEL_FILE)
        settings = record.pop("settings")
        meta = {"Name": "qmriprep-hybrid model", "Version": __version__,
                "Estimator": estimator_name(settings["edge_weight"]), "SHA256": sha256_file(tmp / MODEL_FILE),
                "Contrasts": list(contrasts), "Protocol": WeightedProtocol.as_dict(protocol),
                "ProtocolDescription": protocol.describe(), "Settings": settings, **record}
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        if model_dir.exists():
            model_dir.rmdir()  # empty (checked before training)
        os.replace(tmp, model_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return model_dir


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
