"""Group level: one tidy TSV with summary statistics of every map of every subject.

Which suffixes are summarised comes from :func:`qmriprep.suffixes.group_suffixes`.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np

from .. import suffixes
from ..bids.names import parse_name
from ..errors import InputError
from ..utils.files import atomic_write

_MAP = re.compile(r"^sub-[^/]+?_(?:" + "|".join(map(re.escape, suffixes.group_suffixes()))
                  + r")\.nii(\.gz)?$")
COLUMNS = ("subject", "session", "acquisition", "reconstruction", "run", "desc", "suffix", "units",
           "n_voxels", "mean", "median", "p25", "p75", "p05", "p95", "file")
#: TSV column of each entity (``n/a`` when the name lacks it)
_ENTITY_COLUMNS = {"session": "ses", "acquisition": "acq", "reconstruction": "rec", "run": "run",
                   "desc": "desc"}


def summarize_map(path: Path) -> dict:
    """Statistics of a map over its non-zero finite voxels (maps are 0 outside their mask)."""
    data = np.asarray(nib.load(path).dataobj, dtype=np.float64)
    values = data[np.isfinite(data) & (data != 0)]
    stats = dict.fromkeys(("mean", "median", "p25", "p75", "p05", "p95"), "n/a")
    if values.size:
        p05, p25, p50, p75, p95 = np.percentile(values, [5, 25, 50, 75, 95])
        stats = {"mean": values.mean(), "median": p50, "p25": p25, "p75": p75, "p05": p05, "p95": p95}
        stats = {k: f"{v:.6g}" for k, v in stats.items()}
    return {"n_voxels": int(values.size), **stats}


def _row(path: Path, output_dir: Path) -> dict:
    """The TSV row of one map: entities from its name, units from its sidecar, statistics."""
    name = parse_name(path)
    sidecar = path.with_name(path.name.split(".")[0] + ".json")
    units = json.loads(sidecar.read_text()).get("Units", "") if sidecar.exists() else ""
    return {"subject": name.entities.get("sub"),
            **{col: name.entities.get(key, "n/a") for col, key in _ENTITY_COLUMNS.items()},
            "suffix": name.suffix, "units": units, **summarize_map(path),
            "file": path.relative_to(output_dir).as_posix()}


def write_group_summary(output_dir) -> Path:
    """Write ``<output_dir>/group/qmriprep_maps.tsv`` (one row per map file); returns its path."""
    output_dir = Path(output_dir)
    files = sorted(p for p in output_dir.glob("sub-*/**/*.nii*") if _MAP.match(p.name))
    if not files:
        raise InputError(output_dir, "no qmriprep parameter maps found: run the participant level first")
    rows = [_row(path, output_dir) for path in files]
    out = output_dir / "group" / "qmriprep_maps.tsv"

    def write(tmp):  # a temporary file of its own: concurrent group runs do not interleave
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS, delimiter="\t")
            writer.writeheader()
            writer.writerows(rows)

    return atomic_write(out, write)
