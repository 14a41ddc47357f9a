"""Decide what will be processed, check it, and say so before any workflow is built."""

from __future__ import annotations

import logging

LOGGER = logging.getLogger("qmriprep")
#: kinds whose estimates use a B1+ map (flip angles enter the model)
B1_USERS = ("VFA", "bSSFP", "DESS")


def plan_subjects(layout, subjects, config) -> dict:
    """``{subject: [Collection, ...]}`` for the run; raises :class:`~qmriprep.errors.InputError`.

    Every supported collection's files are loaded and checked (shapes, affines, NaN, empty
    volumes) and every B1+ map's field of view against its target, so bad input stops the run
    before anything is written.
    """
    from ..bids.collections import find_collections
    from ..bids.validate import check_b1_overlap, check_collection_data

    ex, b1_source = config.execution, config.workflow.b1_source
    plans = {}
    for subject in subjects:
        sessions = ex.session_label or [None]
        collections = []
        for session in sessions:
            collections += find_collections(layout, subject, session=session,
                                            bids_filters=ex.bids_filters or None)
        for col in collections:
            if b1_source not in ("auto", "none") and col.b1 is not None and col.b1.kind != b1_source:
                _prefer_b1(col, collections, b1_source)
            if col.supported and col.series_kind in B1_USERS and (col.b1 is None or b1_source == "none"):
                _missing_b1(col, config)
            if col.supported:
                check_collection_data(col)
                if col.b1 is not None and b1_source != "none" and col.kind != "kspace":
                    check_b1_overlap(col.b1.files[0], col.files[0], b1_name=col.b1.relpaths()[0])
            LOGGER.log(25, "sub-%s | %s", subject, col.describe().replace("\n", "\n    "))
        plans[subject] = collections
    return plans


def _missing_b1(col, config) -> None:
    """No B1+ map: an error in ``--strict`` mode, else a warning (B1 = 1 is assumed)."""
    from ..errors import InputError

    why = "--b1-source none" if config.workflow.b1_source == "none" else "no B1+ map found"
    if config.workflow.strict and config.workflow.b1_source != "none":
        raise InputError(col.relpaths()[0], f"{why} for this {col.series_kind} series (--strict): add a "
                         "TB1map/TB1TFL/TB1AFI/TB1DAM with IntendedFor, or run without --strict")
    LOGGER.warning("sub-%s | %s: %s; the nominal flip angle is assumed (B1 = 1); the sidecars and "
                   "the report say so", col.subject, col.name, why)


def _prefer_b1(col, collections, kind) -> None:
    """Honour ``--b1-source KIND`` when the subject has such a map in the same session."""
    candidates = [c for c in collections if c.kind == kind and c.session == col.session]
    if candidates:
        col.b1, col.b1_reason = candidates[0], f"--b1-source {kind}"


def decision(col) -> dict:
    """What the report says about one collection."""
    return {"kind": col.kind, "name": col.name, "files": col.relpaths(),
            "status": "processed" if col.supported else "found, not yet processed",
            "reason": col.reason,
            "b1": (f"{col.b1.name} ({col.b1_reason})" if col.b1 is not None
                   else f"none ({col.b1_reason or 'no B1+ map found'}): B1 = 1 assumed")
            if col.series_kind in B1_USERS else ""}
