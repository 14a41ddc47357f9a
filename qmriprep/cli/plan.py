"""Decide what will be processed, check it, and say so before any workflow is built."""

from __future__ import annotations

import logging

LOGGER = logging.getLogger("qmriprep")


def plan_subjects(layout, subjects, config) -> dict:
    """``{subject: SubjectPlan}`` for the run; raises :class:`~qmriprep.errors.InputError`.

    Every processed collection's files are loaded and checked (shapes, affines, NaN, empty
    volumes) and every B1+ map's field of view against its target, so bad input stops the run
    before anything is written.
    """
    from ..bids.collections import find_collections
    from ..bids.plan import plan_subject
    from ..bids.validate import check_b1_overlap, check_collection_data

    ex = config.execution
    plans = {}
    for subject in subjects:
        collections = []
        for session in ex.session_label or [None]:
            collections += find_collections(layout, subject, session=session,
                                            bids_filters=ex.bids_filters or None)
        plan = plan_subject(subject, collections, config.workflow)
        if config.weighted.model:
            plan = add_weighted(plan, layout, config)
        for item in plan.collections:
            col = item.collection
            if item.processed:
                _check_labels(col)
                _note_nonfinite(col, check_collection_data(col))
                if item.b1 is not None and item.b1.map is not None and col.kind != "kspace":
                    check_b1_overlap(item.b1.map.files[0], col.files[0], b1_name=item.b1.map.relpaths()[0])
            LOGGER.log(25, "sub-%s | %s", subject, item.describe().replace("\n", "\n    "))
        plans[subject] = plan
    return plans


def _check_labels(col) -> None:
    """Every entity of the collection's files is a BIDS label (derivative names are built from them)."""
    from ..bids.layout import check_label
    from ..bids.names import parse_name
    from ..bids.sidecars import relpath

    for path in (*col.files, *col.phase_files):
        for key, value in parse_name(path).entities.items():
            check_label(value, key, relpath(path, col.root))


def _note_nonfinite(col, nonfinite: dict) -> None:
    """A few NaN/inf voxels: warn, say so in the collection's reason (the report), mask them."""
    from ..bids.sidecars import relpath

    if not nonfinite:
        return
    col.nonfinite = dict(nonfinite)
    what = ", ".join(f"{n} in {relpath(p, col.root)}" for p, n in nonfinite.items())
    LOGGER.warning("sub-%s | %s: NaN or infinite voxels (%s) are set to 0 in every image of the "
                   "collection (masked)", col.subject, col.name, what)
    col.reason += f"; NaN/inf voxels ({what}) set to 0 and masked"


def add_weighted(plan, layout, config):
    """The plan with the subject's T1w/T2w pairs to which ``--hybrid-model`` applies (each checked
    against the model's protocol and contrasts: InputError); none is a warning, not an error."""
    from dataclasses import replace
    from pathlib import Path

    from ..bids.collection import Collection
    from ..bids.plan import CollectionPlan
    from ..bids.weighted import find_weighted
    from ..errors import InputError
    from ..estimators.hybrid import KIND, check_protocol, read_model_meta
    from ..utils.images import off_grid

    meta = read_model_meta(config.weighted.model)
    root, items = Path(layout.root), []
    sessions = config.execution.session_label or [None]
    for wset in (w for ses in sessions for w in find_weighted(root, plan.subject, ses)):
        files = [f.relative_to(root) for f in wset["files"][:len(meta["Contrasts"])]]
        protocol = wset["protocol"] if "FLAIR" in meta["Contrasts"] else wset["protocol"].without_flair()
        check_protocol(meta, protocol, files)
        moved = off_grid(wset["files"][:len(files)])
        if moved is not None and config.workflow.align_series == "never":
            raise InputError(files[moved], "is not on the T1w image's grid, and --align-series never leaves "
                                           "it so (resample it, or let qmriprep align it)")
        if len(files) < len(meta["Contrasts"]):
            raise InputError(files[0], f"the --hybrid-model needs {', '.join(meta['Contrasts'])}")
        col = Collection(KIND, plan.subject, wset["session"], {k: v for k, v in wset["entities"].items()
                                                               if k not in ("ses", "acq")},
                         wset["files"][:len(files)], [], protocol, True,
                         f"{' + '.join(meta['Contrasts'])} with the protocol of the --hybrid-model "
                         f"({meta['Estimator']}, SHA256 {meta['SHA256'][:12]})", root=root)
        items.append(CollectionPlan(col, (meta["Estimator"],)))
    if not items:
        LOGGER.warning("sub-%s: no T1w/T2w pair for --hybrid-model", plan.subject)
    return replace(plan, collections=plan.collections + tuple(items))
