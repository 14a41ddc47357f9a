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
        for item in plan.collections:
            col = item.collection
            if item.processed:
                check_collection_data(col)
                if item.b1 is not None and item.b1.map is not None and col.kind != "kspace":
                    check_b1_overlap(item.b1.map.files[0], col.files[0], b1_name=item.b1.map.relpaths()[0])
            LOGGER.log(25, "sub-%s | %s", subject, item.describe().replace("\n", "\n    "))
        plans[subject] = plan
    return plans
