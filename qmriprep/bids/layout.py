"""Open a BIDS dataset, list its subjects, and read ``--bids-filter-file`` queries.

What runs before any collection is found; apart from :mod:`.collections` (module size) and
used by the CLI through the names :mod:`.collections` re-exports.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import InputError
from .metadata import KINDS
from .sidecars import read_json

#: pybids entity names and their short forms in BIDS file names
SHORT = {"acquisition": "acq", "ceagent": "ce", "reconstruction": "rec", "direction": "dir",
         "session": "ses", "subject": "sub", "inversion": "inv", "mtransfer": "mt"}
LONG = {v: k for k, v in SHORT.items()}


def strip_prefix(label: str, prefix: str) -> str:
    """``label`` without ``prefix`` (``sub-01`` -> ``01``)."""
    label = str(label)
    return label[len(prefix):] if label.startswith(prefix) else label


def load_layout(bids_dir: str | Path, *, validate: bool = False, database_dir: str | Path | None = None):
    """A pybids ``BIDSLayout`` of ``bids_dir``; an :class:`InputError` if it is not a BIDS dataset."""
    root = Path(bids_dir).expanduser()
    if not root.exists():
        raise InputError(root, "does not exist")
    if not root.is_dir():
        raise InputError(root, "is not a directory (expected a BIDS dataset folder)")
    if not (root / "dataset_description.json").is_file():
        raise InputError(root, "is not a BIDS dataset: dataset_description.json is missing")
    read_json(root / "dataset_description.json", root.parent)
    if not any(p.is_dir() for p in root.glob("sub-*")):
        raise InputError(root, "is not a BIDS dataset: no sub-<label> folders")
    from bids import BIDSLayout

    root = root.resolve()
    try:
        return BIDSLayout(str(root), validate=validate,
                          database_path=None if database_dir is None else str(database_dir))
    except Exception as exc:  # noqa: BLE001 (pybids fails on a bad sidecar in many ways)
        bad = re.search(r"filename='([^']+)'", str(exc))
        if bad:
            read_json(Path(bad.group(1)), root)  # raises the precise InputError
        for path in sorted(root.rglob("*.json")):  # a JSON array, a symlink loop, ...
            if not {"derivatives", "sourcedata"} & set(path.relative_to(root).parts):
                read_json(path, root)
        raise InputError(root, f"cannot be indexed ({type(exc).__name__}: {exc})") from exc


def list_subjects(layout, participant_label: str | list[str] | None = None) -> list[str]:
    """Subject labels to process: all, or ``participant_label`` (with or without ``sub-``)."""
    root = Path(layout.root)
    available = sorted(set(layout.get_subjects())
                       | {p.name[4:] for p in root.glob("sub-*") if p.is_dir()})
    if not participant_label:
        if not available:
            raise InputError(root, "has no sub-<label> folders")
        return [check_label(lb, "sub", root / f"sub-{lb}") for lb in available]
    labels = [participant_label] if isinstance(participant_label, str) else list(participant_label)
    labels = list(dict.fromkeys(strip_prefix(lb, "sub-") for lb in labels))
    missing = [lb for lb in labels if lb not in available]
    if missing:
        which = ", ".join(f"'{lb}'" for lb in missing)
        raise InputError(None, f"participant{'s' if len(missing) > 1 else ''} {which} not found "
                         f"in {root}; available: {', '.join(available) or 'none'}")
    return [check_label(lb, "sub", root / f"sub-{lb}") for lb in labels]


_LABEL = re.compile(r"[A-Za-z0-9]+")


def check_label(label: str, key: str, path) -> str:
    """``label`` if it is a BIDS label (ASCII letters and digits only), else an InputError
    naming ``path``: other characters change or vanish in output names (two could merge)."""
    if not _LABEL.fullmatch(str(label)):
        raise InputError(path, f"the {key}- label {label!r} is not a BIDS label (ASCII letters and "
                         "digits only); rename the file or folder")
    return label


def check_filters(bids_filters: dict | None) -> dict[str, dict]:
    """fMRIPrep-style ``--bids-filter-file`` content keyed by kind (lower case)."""
    known = {k.lower(): k for k in KINDS}
    out = {}
    for key, query in (bids_filters or {}).items():
        if key.lower() not in known:
            raise InputError(None, f"BIDS filter key '{key}' is not a collection kind; "
                             f"use one of: {', '.join(sorted(known))}")
        if not isinstance(query, dict):
            raise InputError(None, f"BIDS filter '{key}' must map entities to values")
        out[known[key.lower()]] = {LONG.get(k, k): v for k, v in query.items()}
    return out


def _same(a: Any, b: Any) -> bool:
    sa, sb = str(a), str(b)
    return sa == sb or (sa.isdigit() and sb.isdigit() and int(sa) == int(sb))


def passes(entities: dict, query: dict) -> bool:
    """``None``: entity absent; ``"*"``: present; list: any of; else equal."""
    for key, want in query.items():
        have = entities.get(key)
        if want is None:
            ok = have is None
        elif want == "*":
            ok = have is not None
        elif isinstance(want, (list, tuple)):
            ok = have is not None and any(_same(have, w) for w in want)
        else:
            ok = have is not None and _same(have, want)
        if not ok:
            return False
    return True
