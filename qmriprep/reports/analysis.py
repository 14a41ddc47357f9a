"""What the report says about one map: its sidecar, statistics in the mask and per tissue, figures.

:func:`find_images` lists a subject's derivatives (NIfTI with their JSON sidecars);
:func:`analyse_map` computes a map's statistics inside the best-matching brain mask (and per
tissue of a ``_dseg``) and writes its mosaic and histogram. Problems become notes on the map.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nb
import numpy as np

from .. import suffixes
from ..bids.names import parse_name
from ..utils.files import sha256_file
from ..utils.orientation import ras_zooms, to_ras
from . import figures

#: supporting images: used for statistics, not shown as maps
SUPPORT_SUFFIXES = ("mask", "dseg", "probseg")
#: labels of a ``_dseg`` without a ``_dseg.tsv`` (sMRIPrep/fMRIPrep convention)
_DEFAULT_TISSUES = {1: "GM", 2: "WM", 3: "CSF"}
#: entities whose agreement makes a mask or dseg a better match for a map
_MATCH_ENTITIES = ("acq", "rec", "run", "space", "res")


@dataclass
class Image:
    """A NIfTI file of the derivatives with its parsed name and sidecar."""

    path: Path
    entities: dict
    suffix: str
    sidecar: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    @property
    def stem(self) -> str:
        return re.sub(r"\.nii(\.gz)?$", "", self.path.name)


@dataclass
class MapReport:
    """What the report shows for one map: statistics per region, figures and notes."""

    image: Image
    units: str = ""
    stats: list = field(default_factory=list)  #: [(region, {n, median, q1, q3, p5, p95})]
    mosaic: Path | None = None
    histogram: Path | None = None
    notes: list = field(default_factory=list)
    supports: list = field(default_factory=list)  #: names of the mask and dseg used


def find_images(subject_dir: Path) -> list[Image]:
    """Every NIfTI under a subject's derivatives folder (figures excluded), with its sidecar."""
    found = []
    for path in sorted(subject_dir.rglob("*.nii*")):
        if "figures" in path.relative_to(subject_dir).parts or not re.search(r"\.nii(\.gz)?$",
                                                                          path.name):
            continue
        name = parse_name(path)
        image = Image(path, name.entities, name.suffix)
        sidecar = path.with_name(image.stem + ".json")
        if sidecar.exists():
            try:
                image.sidecar = json.loads(sidecar.read_text())
            except (OSError, ValueError) as exc:
                image.notes.append(f"sidecar {sidecar.name} could not be read ({exc})")
        found.append(image)
    return found


def summarize(values: np.ndarray) -> dict:
    """Voxel count, median, quartiles and 5th/95th percentiles of ``values``."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        return {"n": 0}
    p5, q1, median, q3, p95 = np.percentile(values, [5, 25, 50, 75, 95])
    return {"n": int(values.size), "median": float(median), "q1": float(q1), "q3": float(q3),
            "p5": float(p5), "p95": float(p95)}


def fmt(value: float) -> str:
    """How numbers appear in the report: four significant digits (``f"{v:.4g}"``)."""
    return f"{value:.4g}"


def _sources(image: Image) -> set[str]:
    src = image.sidecar.get("Sources") or []
    return set([src] if isinstance(src, str) else src)


def pick_support(image: Image, candidates: list[Image], suffix: str) -> Image | None:
    """The mask or dseg of the map's own collection (one sharing a ``Sources`` file with it, e.g.
    ``acq-mese_desc-brain_mask`` for a MESE T2 map); else a generic one (``desc-brain`` or no
    ``desc``, with the map's ``acq``); same session; ties broken by the most shared entities.
    None when no candidate belongs to the map (e.g. a B1+ map: statistics over its nonzero voxels)."""
    best, best_score = None, None
    for cand in candidates:
        if cand.suffix != suffix:
            continue
        if "ses" in cand.entities and cand.entities["ses"] != image.entities.get("ses"):
            continue
        own = bool(_sources(image) & _sources(cand))
        generic = (cand.entities.get("desc") in (None, "brain")
                   and cand.entities.get("acq") == image.entities.get("acq"))
        if not (own or generic):
            continue
        score = 100 * own + sum(1 if cand.entities.get(k) == image.entities.get(k) else -1
                                for k in _MATCH_ENTITIES if k in cand.entities or k in image.entities)
        if best_score is None or score > best_score:
            best, best_score = cand, score
    return best


def _load_3d(path: Path, notes: list) -> nb.Nifti1Image:
    """Load a NIfTI as a float32 3D image (first volume of 4D data, 2D padded to 3D)."""
    img = nb.load(str(path))
    data = np.asanyarray(img.dataobj)
    if np.iscomplexobj(data):
        notes.append("complex data: showing the magnitude")
        data = np.abs(data)
    data = data.astype(np.float32)
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim > 3:
        notes.append(f"{data.ndim}D image of shape {data.shape}: showing the first volume")
        data = data.reshape(data.shape[:3] + (-1,))[..., 0]
    data = data.reshape(data.shape + (1,) * (3 - data.ndim))
    return nb.Nifti1Image(data, img.affine)


def _on_grid(support: Image, target: nb.Nifti1Image, notes: list) -> np.ndarray | None:
    """A mask/dseg's data on the grid of ``target`` (nearest neighbour if grids differ)."""
    try:
        img = _load_3d(support.path, [])
        if img.shape != target.shape or not np.allclose(img.affine, target.affine, atol=1e-3):
            from nibabel.processing import resample_from_to

            img = resample_from_to(img, target, order=0)
            notes.append(f"{support.path.name} resampled (nearest neighbour) to the map's grid")
        return np.rint(np.asanyarray(img.dataobj)).astype(np.int32)
    except Exception as exc:  # noqa: BLE001 - any unreadable support file is reported
        notes.append(f"{support.path.name} could not be used ({exc})")
        return None


def _to_ras(arrays: list[np.ndarray], img: nb.Nifti1Image) -> tuple[list[np.ndarray], tuple]:
    """Arrays reoriented to the closest RAS axes of ``img``, and the reordered voxel sizes."""
    return ([to_ras(a, img.affine) for a in arrays],
            ras_zooms(img.header.get_zooms(), img.affine))


def _tissue_names(dseg: Image, labels: np.ndarray) -> dict[int, str]:
    tsv = dseg.path.with_name(dseg.stem + ".tsv")
    if tsv.exists():
        try:
            with tsv.open() as handle:
                rows = list(csv.DictReader(handle, delimiter="\t"))
            return {int(r["index"]): r.get("name") or r.get("abbreviation") or r["index"]
                    for r in rows if r.get("index", "").strip().lstrip("-").isdigit()}
        except (OSError, ValueError, KeyError):
            pass
    present = {int(v) for v in np.unique(labels) if v > 0}
    if present <= set(_DEFAULT_TISSUES):
        return {k: _DEFAULT_TISSUES[k] for k in sorted(present)}
    return {k: f"label {k}" for k in sorted(present)}


def analyse_map(image: Image, supports: list[Image], fig_dir: Path) -> MapReport:
    """Statistics and figures for one map; problems become notes, never exceptions."""
    report = MapReport(image, notes=list(image.notes))
    try:
        img = _load_3d(image.path, report.notes)
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # noqa: BLE001 - unreadable files are listed, not fatal
        report.notes.append(f"could not be read ({type(exc).__name__}: {exc})")
        return report

    mask_img = pick_support(image, supports, "mask")
    mask = None if mask_img is None else _on_grid(mask_img, img, report.notes)
    region = "brain mask"
    if mask is not None and not mask.any():
        report.notes.append(f"{mask_img.path.name} does not overlap this map")
        mask = None
    if mask is None:
        mask = np.isfinite(data) & (data != 0)
        region = "nonzero voxels"
        report.notes.append("no usable brain mask: statistics over all nonzero voxels")
    else:
        report.supports.append(mask_img.path.name)
    mask = mask > 0
    dseg_img = pick_support(image, supports, "dseg")
    dseg = None if dseg_img is None else _on_grid(dseg_img, img, report.notes)
    if dseg is not None:
        report.supports.append(dseg_img.path.name)

    valid = mask & np.isfinite(data) & (data != 0)
    undefined = int(mask.sum() - valid.sum())
    if undefined:
        report.notes.append(f"{undefined} voxel(s) in the {region} are 0 or not finite "
                            "(fit undefined) and are left out of the statistics")
    values = data[valid]
    units, assumed = figures.infer_units(image.suffix, image.sidecar.get("Units"), values)
    if assumed:
        report.notes.append(f"the sidecar gives no Units: assumed {units}")
    report.units = units
    report.stats.append((region, summarize(values)))
    groups = {region: values}
    if dseg is not None:
        for label, name in _tissue_names(dseg_img, dseg).items():
            groups[name] = data[valid & (dseg == label)]
            report.stats.append((name, summarize(groups[name])))

    display = figures.display_for(image.suffix, image.entities.get("desc"), units, values)
    if display.fixed and values.size:
        outside = float(np.mean((values < display.vmin) | (values > display.vmax)))
        if outside > 0.2:
            report.notes.append(
                f"{outside:.0%} of the voxels lie outside the display range "
                f"[{fmt(display.vmin)}, {fmt(display.vmax)}] {units}: check the units")
    (data_ras, mask_ras), zooms = _to_ras([data, mask], img)
    title = f"{image.suffix} ({image.stem})"
    try:
        report.mosaic = figures.plot_mosaic(data_ras, mask_ras, zooms, display,
                                            fig_dir / f"{image.stem}_mosaic.png")
        report.histogram = figures.plot_histogram(groups, display,
                                                  fig_dir / f"{image.stem}_histogram.png",
                                                  title=title)
    except Exception as exc:  # noqa: BLE001 - a failed figure must not lose the report
        report.notes.append(f"figure failed ({type(exc).__name__}: {exc})")
    return report


def analyse_cached(cache, image: Image, supports: list[Image], fig_dir: Path) -> MapReport:
    """:func:`analyse_map` through the report's :class:`~.cache.FigureCache` (None: no cache):
    keyed on the map's content, sidecar and notes and on the content of the masks and
    segmentations it may use."""
    if cache is None:
        return analyse_map(image, supports, fig_dir)

    def encode(r: MapReport):
        figs = [p for p in (r.mosaic, r.histogram) if p is not None]
        return ({"units": r.units, "stats": r.stats, "notes": r.notes, "supports": r.supports,
                 "mosaic": r.mosaic and str(r.mosaic), "histogram": r.histogram and str(r.histogram)}, figs)

    def decode(v: dict) -> MapReport:
        return MapReport(image, units=v["units"], stats=[tuple(s) for s in v["stats"]], notes=v["notes"],
                         supports=v["supports"], mosaic=v["mosaic"] and Path(v["mosaic"]),
                         histogram=v["histogram"] and Path(v["histogram"]))

    key = (image.path, image.sidecar, image.notes, [(s.path.name, sha256_file(s.path)) for s in supports])
    return cache.call("analyse_map", analyse_map, (image, supports, fig_dir), key=key,
                      encode=encode, decode=decode)


def sort_key(image: Image) -> tuple:
    """Where a map goes in the report: by session, suffix rank, then its fit-quality maps."""
    order = suffixes.report_order()
    rank = order.index(image.suffix) if image.suffix in order else len(order)
    desc = image.entities.get("desc", "")
    quality = figures.is_fit_quality(image.suffix, desc)
    base = re.sub("(?i)rmse|residual", "", desc)
    return (image.entities.get("ses", ""), rank, image.suffix, base, quality, image.path.name)
