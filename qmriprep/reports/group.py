"""Group level: one tidy table of every map of every subject, per tissue, natively and in a template.

For each subject (and session) one reference map (:data:`REFERENCE_ORDER`) is registered to the
template (:mod:`qmriprep.registration.template`: nilearn's MNI152, rigid then affine). Every map
(suffixes of :func:`qmriprep.suffixes.group_suffixes`; fit-quality and SD maps left out) is then
summarised in its native space within its own mask (the nonzero voxels) and per tissue (the
template's GM/WM/CSF labels pulled back), and, resampled to the template and written beside it as
``space-<template>`` derivative, per template tissue and per ROI of an optional atlas. Rows:
``group/qmriprep_maps.tsv`` (data dictionary ``qmriprep_maps.json``), subjects far from the group
flagged (robust z-score of their median), and a page ``group/qmriprep_group.html``.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from pathlib import Path

import nibabel as nib
import numpy as np

from .. import suffixes
from ..bids.names import build_name, parse_name
from ..errors import InputError
from ..registration import TEMPLATE
from ..utils.files import atomic_write, atomic_write_text

LOGGER = logging.getLogger("qmriprep")
COLUMNS = ("subject", "session", "map", "method", "acquisition", "reconstruction", "run", "space",
           "region", "units", "n_voxels", "mean", "median", "sd", "p25", "p75", "iqr", "robust_z",
           "outlier", "file")
#: maps registered to the template, first found first (contrast closest to the T1w template first)
REFERENCE_ORDER = ("T1map", "R1map", "M0map", "T2map", "R2map", "T2starmap", "R2starmap", "TB1map")
#: robust z-scores beyond this flag a subject (with at least :data:`MIN_SUBJECTS` in the group)
OUTLIER_Z = 3.5
MIN_SUBJECTS = 3
_ENTITY_COLUMNS = {"session": "ses", "acquisition": "acq", "reconstruction": "rec", "run": "run"}
_STATS = ("mean", "median", "sd", "p25", "p75", "iqr")
_ORDER = ("sub", "ses", "acq", "rec", "run", "space", "desc")


def is_group_map(path: Path) -> bool:
    """A native map the table summarises: a group suffix, not a fit-quality or SD map."""
    name = parse_name(path)
    desc = name.entities.get("desc", "")
    return (bool(re.search(r"\.nii(\.gz)?$", path.name)) and name.suffix in suffixes.group_suffixes()
            and "space" not in name.entities
            and not any(desc.endswith(k) for k in (*suffixes.QUALITY, "SD")))


def find_maps(output_dir: Path) -> dict[tuple, list[Path]]:
    """The group maps of each ``(subject, session)``."""
    found: dict[tuple, list[Path]] = {}
    for path in sorted(output_dir.glob("sub-*/**/*.nii*")):
        if is_group_map(path):
            ents = parse_name(path).entities
            found.setdefault((ents.get("sub"), ents.get("ses")), []).append(path)
    return found


def summarize(values: np.ndarray) -> dict:
    """Voxel count, mean, median, SD, quartiles and IQR (``n/a`` without voxels)."""
    values = np.asarray(values, np.float64)
    if not values.size:
        return {"n_voxels": 0, **dict.fromkeys(_STATS, "n/a")}
    p25, p50, p75 = np.percentile(values, [25, 50, 75])
    stats = dict(zip(_STATS, (values.mean(), p50, values.std(), p25, p75, p75 - p25)))
    return {"n_voxels": int(values.size), **{k: float(f"{v:.6g}") for k, v in stats.items()}}


def _reference(maps: list[Path]) -> Path:
    rank = {s: i for i, s in enumerate(REFERENCE_ORDER)}
    return min(maps, key=lambda p: (rank.get(parse_name(p).suffix, len(rank)),
                                    "rec" in parse_name(p).entities, p.name))


def space_name(path: Path, space: str) -> Path:
    """``path`` with ``space-<space>`` among its entities (BIDS order)."""
    name = parse_name(path)
    ents = {**name.entities, "space": space}
    keys = [k for k in _ORDER if k in ents] + [k for k in ents if k not in _ORDER]
    return path.with_name(build_name({k: ents[k] for k in keys}, name.suffix, ".nii.gz"))


def _regions(labels: np.ndarray | None, names: dict[int, str], valid: np.ndarray) -> dict:
    regions = {"brain": valid}
    if labels is not None:
        regions.update({name: valid & (labels == k) for k, name in names.items()})
    return regions


def _rows(path: Path, data: np.ndarray, regions: dict, *, space: str, output_dir: Path) -> list[dict]:
    name = parse_name(path)
    sidecar = path.with_name(path.name.split(".")[0] + ".json")
    units = json.loads(sidecar.read_text()).get("Units", "") if sidecar.exists() else ""
    common = {"subject": name.entities.get("sub"), "map": name.suffix,
              "method": name.entities.get("desc", "n/a"), "space": space, "units": units,
              **{col: name.entities.get(key, "n/a") for col, key in _ENTITY_COLUMNS.items()},
              "file": path.relative_to(output_dir).as_posix()}
    return [{**common, "region": region, **summarize(data[mask])} for region, mask in regions.items()]


class _Subject:
    """One subject's (session's) registration and the rows of its maps."""

    def __init__(self, maps: list[Path], template, atlas, output_dir: Path):
        from ..registration.itk import save_transform
        from ..registration.template import register_affine

        self.template, self.atlas, self.output_dir = template, atlas, output_dir
        ref = _reference(maps)
        self.transform = register_affine(nib.load(ref), template.image)
        self.xfm = xfm = ref.with_name(build_name({k: v for k, v in parse_name(ref).entities.items()
                                        if k in ("sub", "ses")} | {"from": "native", "to": TEMPLATE,
                                                                     "mode": "image"}, "xfm", ".txt"))
        save_transform(self.transform, xfm)
        LOGGER.log(25, "%s: %s registered to %s", xfm.parent.parent.name, ref.name, TEMPLATE)

    def rows(self, path: Path, spaces) -> list[dict]:
        from ..registration.template import TISSUES, labels_in_native, resample_map

        img = nib.load(path)
        data = np.nan_to_num(np.asarray(img.dataobj, np.float32))
        rows = []
        if "native" in spaces:
            labels = labels_in_native(self.template, img, self.transform)
            rows += _rows(path, data, _regions(labels, TISSUES, data != 0), space="native",
                          output_dir=self.output_dir)
        if TEMPLATE in spaces:
            out = space_name(path, TEMPLATE)
            mni = resample_map(img, self.template.image, self.transform)
            atomic_write(out, mni.to_filename)
            _write_sidecar(path, out, self.template.resolution, self.output_dir, self.xfm)
            values = np.asarray(mni.dataobj)
            regions = _regions(self.template.labels, TISSUES, (values != 0) & self.template.mask)
            if self.atlas is not None:
                regions.update({n: (values != 0) & (self.atlas[0] == k) for k, n in self.atlas[1].items()})
            rows += _rows(out, values, regions, space=TEMPLATE, output_dir=self.output_dir)
        return rows


def _write_sidecar(native: Path, out: Path, resolution: int, output_dir: Path, xfm: Path) -> None:
    """The native map's sidecar, with its space and the files it came from (``bids::`` URIs)."""
    sidecar = native.with_name(native.name.split(".")[0] + ".json")
    meta = json.loads(sidecar.read_text()) if sidecar.exists() else {}
    meta.update({"Sources": [f"bids::{p.relative_to(output_dir).as_posix()}" for p in (native, xfm)],
                 "SpatialReference": f"{TEMPLATE}: nilearn's MNI152 template at {resolution} mm",
                 "Description": "the native map resampled to the template: affine registration "
                                "(SimpleITK), linear interpolation normalised by the map's mask"})
    atomic_write_text(out.with_name(out.name.split(".")[0] + ".json"), json.dumps(meta, indent=2) + "\n")


def load_atlas(path, template) -> tuple[np.ndarray, dict[int, str]]:
    """ROI labels of an atlas in the template space (nearest neighbour onto the template grid)
    and their names (``index``/``name`` TSV beside it, else ``ROI <n>``)."""
    from ..registration.rigid import resample_to

    path = Path(path)
    try:
        img = nib.load(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable atlas is bad input
        raise InputError(path, f"not a readable NIfTI atlas ({exc})") from exc
    labels = np.rint(np.asarray(resample_to(img, template.image, order=0).dataobj)).astype(np.int32)
    tsv = path.with_name(path.name.split(".")[0] + ".tsv")
    names = {int(k): f"ROI {k}" for k in np.unique(labels) if k > 0}
    if tsv.exists():
        try:
            with tsv.open() as fh:
                names.update({int(r["index"]): r["name"] for r in csv.DictReader(fh, delimiter="\t")
                              if int(r["index"]) in names})
        except (KeyError, ValueError, TypeError) as exc:
            raise InputError(tsv, f"needs tab-separated index and name columns ({exc})") from exc
    return labels, names


def flag_outliers(rows: list[dict]) -> None:
    """``robust_z`` of each row's median among the subjects sharing its map, method, entities,
    space and region, ``(median - group median) / (1.4826 MAD)``; ``outlier`` beyond
    :data:`OUTLIER_Z` (``n/a`` with fewer than :data:`MIN_SUBJECTS` subjects)."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        key = tuple(row[c] for c in ("session", "map", "method", "acquisition", "reconstruction",
                                     "run", "space", "region"))
        groups.setdefault(key, []).append(row)
    for members in groups.values():
        medians = np.array([r["median"] for r in members if r["median"] != "n/a"], float)
        mad = 1.4826 * np.median(np.abs(medians - np.median(medians))) if medians.size else 0.0
        for r in members:
            if len(medians) < MIN_SUBJECTS or r["median"] == "n/a" or mad == 0:
                r["robust_z"], r["outlier"] = "n/a", "n/a"
                continue
            r["robust_z"] = float(f"{(r['median'] - np.median(medians)) / mad:.3g}")
            r["outlier"] = abs(r["robust_z"]) > OUTLIER_Z


def write_group_summary(output_dir, *, spaces=("native", TEMPLATE), resolution: int = 2,
                        atlas=None) -> Path:
    """Write ``<output_dir>/group/qmriprep_maps.tsv`` (+ ``.json``, ``qmriprep_group.html``) and
    the ``space-<template>`` maps; returns the TSV's path."""
    from ..registration.template import load_template
    from .grouppage import DATA_DICTIONARY, write_group_page

    output_dir = Path(output_dir)
    found = find_maps(output_dir)
    if not found:
        raise InputError(output_dir, "no qmriprep parameter maps found: run the participant level first")
    template = load_template(resolution)
    roi = load_atlas(atlas, template) if atlas else None
    rows = []
    for maps in found.values():
        subject = _Subject(maps, template, roi, output_dir)
        for path in maps:
            rows += subject.rows(path, spaces)
    flag_outliers(rows)
    out = output_dir / "group" / "qmriprep_maps.tsv"

    def write(tmp):  # a temporary file of its own: concurrent group runs do not interleave
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS, delimiter="\t")
            writer.writeheader()
            writer.writerows({k: ("n/a" if r.get(k) is None else r.get(k)) for k in COLUMNS} for r in rows)

    atomic_write_text(out.with_suffix(".json"), json.dumps(DATA_DICTIONARY, indent=2) + "\n")
    write_group_page(rows, output_dir / "group" / "qmriprep_group.html")
    return atomic_write(out, write)
