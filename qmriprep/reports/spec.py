"""The report's specification: which reportlets make the page, in which order (the NiPreps
way: a report is assembled from a spec of reportlets, not written by hand).

Each reportlet is a function ``(page, group) -> HTML`` returning ``""`` when it has nothing to
show (for instance no training curve): the summary reportlets get ``group=None``; the collection
reportlets run once per collection of the plan. Adding a view to every collection is one line
here and one function in :mod:`.reportlets`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import reportlets, summary


@dataclass(frozen=True)
class Reportlet:
    """One block of the page: its anchor suffix, heading and maker."""

    key: str
    title: str
    make: Callable
    folded: bool = False  #: collapsed (``<details>`` closed) when the page opens


SUMMARY = (
    Reportlet("overview", "Overview", summary.overview),
    Reportlet("warnings", "Warnings", summary.warnings),
    Reportlet("collections", "Collections: found, used and why", summary.collections),
    Reportlet("qc", "Quality control: every map per region", summary.qc_table),
    Reportlet("resources", "Resources: time and peak memory per step", summary.resources, folded=True),
)

COLLECTION = (
    Reportlet("decision", "What was done and why", reportlets.decision),
    Reportlet("inputs", "Inputs", reportlets.inputs),
    Reportlet("reconstruction", "Reconstructions, sampling mask and coil maps",
              reportlets.reconstruction),
    Reportlet("registration", "B1+ registration check", reportlets.registration),
    Reportlet("maps", "Parameter maps", reportlets.maps),
    Reportlet("differences", "Method against method", reportlets.differences),
    Reportlet("uncertainty", "Uncertainty and fit quality", reportlets.uncertainty, folded=True),
    Reportlet("training", "Training curves", reportlets.training, folded=True),
)
