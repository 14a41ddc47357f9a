"""The run plan of one subject: what is processed, by which estimators, with which B1+ map, why.

Decided once, here, from the discovered collections and the run settings (``--estimators``,
``--b1-source``, ``--b1-registration``, ``--strict``); frozen; then read unchanged by the
workflows (graph), the sidecars, the methods text and the report.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .. import estimators
from ..errors import InputError
from .b1choice import choose_b1
from .collection import Collection
from .metadata import B1_KINDS

LOGGER = logging.getLogger("qmriprep")


@dataclass(frozen=True)
class B1Decision:
    """The B1+ map correcting a collection (None: B1 = 1 assumed), how it is brought to the
    collection's grid (``rigid`` | ``header``; None without a map) and why."""

    map: Collection | None
    registration: str | None
    reason: str

    def describe(self) -> str:
        if self.map is None:
            return f"none ({self.reason}): B1 = 1 assumed"
        return f"{self.map.name} ({self.reason}; {self.registration} alignment)"


@dataclass(frozen=True)
class CollectionPlan:
    """One collection with its chosen estimators and B1+ decision (None: no estimator takes B1+)."""

    collection: Collection
    estimators: tuple[str, ...] = ()
    b1: B1Decision | None = None

    @property
    def processed(self) -> bool:
        return self.collection.supported

    def describe(self) -> str:
        """Lines for the log: the collection, its estimators and B1+ decision."""
        lines = [self.collection.describe()]
        if self.processed and self.estimators:
            lines.append(f"  estimators: {', '.join(self.estimators)}")
        if self.b1 is not None:
            lines.append(f"  B1+: {self.b1.describe()}")
        return "\n".join(lines)

    def decision(self) -> dict:
        """What the report says about the collection."""
        c = self.collection
        return {"kind": c.kind, "name": c.name, "files": c.relpaths(),
                "status": "processed" if c.supported else "found, not yet processed",
                "reason": c.reason, "b1": self.b1.describe() if self.b1 is not None else ""}


@dataclass(frozen=True)
class SubjectPlan:
    """Everything processed for one subject, in report order."""

    subject: str
    collections: tuple[CollectionPlan, ...]

    @property
    def sessions(self) -> list[str] | None:
        return sorted({p.collection.session for p in self.collections if p.collection.session}) or None

    def processed(self) -> list[CollectionPlan]:
        return [p for p in self.collections if p.processed]


def plan_subject(subject: str, collections: list[Collection], workflow) -> SubjectPlan:
    """Resolve estimators and B1+ maps of every collection; ``workflow``: the run's
    :class:`~qmriprep.config.Workflow` settings. Raises :class:`InputError` under ``--strict``
    when a collection whose estimators take B1+ has no B1+ map."""
    b1s = [c for c in collections if c.kind in B1_KINDS]
    plans = []
    for col in collections:
        chosen = _estimators(col, workflow)
        takes_b1 = any(estimators.get(col.series_kind, n).takes_b1 for n in chosen)
        b1 = decide_b1(col, b1s, workflow) if takes_b1 and col.supported else None
        if b1 is not None and b1.map is None:
            _missing_b1(col, b1, workflow)
        plans.append(CollectionPlan(col, tuple(chosen), b1))
    return SubjectPlan(subject, tuple(plans))


def _estimators(col: Collection, workflow) -> list[str]:
    """The estimators run on ``col``: the user's choice for its kind, else the kind's only one."""
    kind = col.series_kind
    if kind.lower() in estimators.choices():
        return list(workflow.estimators.get(kind.lower(), estimators.default_estimators()[kind.lower()]))
    return [e.name for e in estimators.estimators(kind)]


def decide_b1(col: Collection, b1s: list[Collection], workflow) -> B1Decision:
    """The B1+ map of ``col``: ``--b1-source none`` -> none; a kind -> that kind in the same
    session if there is one; otherwise :func:`~.b1choice.choose_b1`'s choice."""
    source = workflow.b1_source
    if source == "none":
        return B1Decision(None, None, "--b1-source none")
    chosen, reason = choose_b1(col, b1s)
    if source != "auto" and (chosen is None or chosen.kind != source):
        same = [c for c in b1s if c.kind == source and c.session == col.session]
        if same:
            chosen, reason = same[0], f"--b1-source {source}"
    if chosen is None:
        return B1Decision(None, None, reason)
    # a scanner TB1map has no magnitude image to register: scanner coordinates only
    return B1Decision(chosen, "header" if chosen.kind == "TB1map" else workflow.b1_registration, reason)


def _missing_b1(col: Collection, b1: B1Decision, workflow) -> None:
    """No B1+ map: an error in ``--strict`` mode (unless ``--b1-source none``), else a warning."""
    if workflow.strict and workflow.b1_source != "none":
        raise InputError(col.relpaths()[0], f"no B1+ map found for this {col.series_kind} series "
                         "(--strict): add a TB1map/TB1TFL/TB1AFI/TB1DAM with IntendedFor, or run "
                         "without --strict")
    LOGGER.warning("sub-%s | %s: %s; the nominal flip angle is assumed (B1 = 1); the sidecars and "
                   "the report say so", col.subject, col.name,
                   "--b1-source none" if workflow.b1_source == "none" else "no B1+ map found")
