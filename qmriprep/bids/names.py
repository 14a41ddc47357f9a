"""BIDS file names: split ``sub-01_ses-a_desc-x_T1map.nii.gz`` into entities, suffix and extension,
and build a name back.

The one parser of file names in qmriprep (sidecar inheritance, the reports, the group table).
Entities keep their short keys (``sub``, ``ses``, ``acq``...) and their order in the name.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path


@dataclass(frozen=True)
class BidsName:
    """A parsed file name: ``entities`` in file order, ``suffix`` (``""`` if the name has
    none) and ``extension`` (from the first dot of the last part, e.g. ``.nii.gz``)."""

    entities: dict[str, str]
    suffix: str
    extension: str = ""

    def without(self, *keys: str) -> BidsName:
        """The same name without the entities ``keys`` (e.g. ``"echo", "flip"``)."""
        return replace(self, entities={k: v for k, v in self.entities.items() if k not in keys})


def parse_name(path: str | Path) -> BidsName:
    """Entities, suffix and extension of a BIDS file name (a path's folders are ignored).

    The last ``_``-separated part holds the suffix and extension; a last part with a ``-``
    (``sub-01_ses-a.json``) is an entity and the name has no suffix. Parts of the name that are
    neither an entity nor the suffix are ignored; a repeated entity keeps its last value.
    """
    *parts, last = Path(path).name.split("_")
    last, dot, extension = last.partition(".")
    if "-" in last:
        parts.append(last)
        last = ""
    entities = dict(p.split("-", 1) for p in parts if "-" in p)
    return BidsName(entities, last, dot + extension)


def build_name(entities: dict[str, str], suffix: str = "", extension: str = "") -> str:
    """``key-value`` parts joined by ``_`` in the given order, then ``_suffix`` (if any) and
    the extension (with its dot): ``build_name({"sub": "01"}, "T1map", ".nii.gz")``."""
    parts = [f"{k}-{v}" for k, v in entities.items()] + ([suffix] if suffix else [])
    return "_".join(parts) + extension
