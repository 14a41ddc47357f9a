"""A collection: the set of images (or raw k-space files) one estimator consumes, and why.

Shared by image discovery (:mod:`.collections`), raw k-space discovery (:mod:`.kspace`), the
B1+ choice (:mod:`.b1choice`) and the run plan (:mod:`.plan`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import metadata as md
from .layout import SHORT
from .protocols import Protocol
from .sidecars import Sidecar, relpath

#: entity that walks the images of a series, per kind
SERIES_ENTITY = {"MESE": "echo", "MEGRE": "echo", "DESS": "echo", "VFA": "flip", "TB1DAM": "flip",
                 "TB1AFI": "acquisition", "TB1TFL": "acquisition", "bSSFP": "part", "TB1map": None,
                 "MRF": None}
#: entity order in collection names (others follow alphabetically)
_ENTITY_ORDER = ("task", "acquisition", "ceagent", "reconstruction", "direction", "run")
#: entities that do not separate collections (they walk a series or name the subject)
NOT_GROUPING = {"subject", "session", "suffix", "extension", "datatype", "part", "echo", "flip"}


@dataclass(eq=False)
class Collection:
    """One set of images an estimator consumes, its checked protocol, and why.

    ``files`` are ordered along the series (echoes by EchoTime, flips by FlipAngle, DAM by
    angle, AFI ``tr1, tr2``, TFL ``anat, famp``, bSSFP parts ``mag, phase`` or ``real, imag``);
    ``metadata[i]`` is the merged sidecar of ``files[i]``; ``phase_files`` are ``part-phase``
    images in the same order. ``protocol`` is ``None`` for raw k-space and for a not-yet-
    processed collection whose metadata has a problem (``reason`` says which).
    """

    kind: str
    subject: str
    session: str | None
    entities: dict[str, Any]
    files: tuple[Path, ...]
    metadata: list[dict]
    protocol: Protocol | None
    supported: bool
    reason: str
    phase_files: tuple[Path, ...] = ()
    root: Path | None = None
    sidecars: tuple[Sidecar, ...] = field(default=(), repr=False)
    #: files with a few NaN/inf voxels -> their number (set by the data checks) and the copies
    #: the workflow reads instead, those voxels set to 0 in every file (set before the run)
    nonfinite: dict = field(default_factory=dict, repr=False)
    masked_copies: dict = field(default_factory=dict, repr=False)

    @property
    def input_files(self) -> tuple[Path, ...]:
        """What the workflow reads: ``files``, or their masked copies."""
        return tuple(Path(self.masked_copies.get(Path(f), f)) for f in self.files)

    @property
    def name(self) -> str:
        """BIDS-like name, e.g. ``sub-01_ses-1_acq-fast_MESE`` (k-space: ``..._MESE_kspace``)."""
        parts = [f"sub-{self.subject}"] + ([f"ses-{self.session}"] if self.session else [])
        parts += [f"{SHORT.get(k, k)}-{v}" for k, v in ordered(self.entities) if k != "suffix"]
        tail = [self.entities.get("suffix", "kspace"), "kspace"] if self.kind == "kspace" else [self.kind]
        return "_".join(parts + tail)

    @property
    def series_kind(self) -> str:
        """The image kind the collection's maps come from (for raw k-space: its suffix)."""
        return str(self.entities.get("suffix")) if self.kind == "kspace" else self.kind

    def relpaths(self) -> list[str]:
        return [relpath(f, self.root) for f in self.files]

    def describe(self) -> str:
        """A few lines for logs and the report: what, with what protocol, processed or not, why."""
        status = "will be processed" if self.supported else "found, not yet processed"
        lines = [f"{self.name}: {md.describe_protocol(self.protocol)}; {status}",
                 "  files: " + _abridged(self.relpaths())]
        if self.phase_files:
            lines.append("  phase: " + _abridged([relpath(f, self.root) for f in self.phase_files]))
        lines.append(f"  why: {self.reason}")
        return "\n".join(lines)


def _abridged(names: list[str]) -> str:
    return ", ".join(names if len(names) <= 4 else [names[0], f"... ({len(names)} files) ...", names[-1]])


def ordered(entities: dict) -> list[tuple[str, Any]]:
    rank = {k: i for i, k in enumerate(_ENTITY_ORDER)}
    return sorted(entities.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0]))


def series_index(ents: dict, key: str | None) -> int:
    """The integer value of entity ``key`` (``echo``, ``flip``) in ``ents``; 0 if absent."""
    v = ents.get(key) if key else None
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0
