"""Per-subject HTML report, assembled from the derivatives qmriprep wrote.

:func:`build_report` reads ``output_dir/sub-<label>/`` (every NIfTI with its JSON sidecar),
computes summary statistics inside the brain mask (and per tissue when a ``_dseg`` is present),
writes one mosaic and one histogram per map under ``sub-<label>/figures/`` and the page
``output_dir/sub-<label>.html`` (the fMRIPrep convention).  The page refers to the figures by
relative paths and loads nothing from the network, so it opens from disk and survives copying
the derivatives folder elsewhere.

A file that cannot be read is listed with the reason instead of stopping the report.
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from string import Template

import nibabel as nb
import numpy as np

from . import figures
from .html import esc as _esc, render_markdown, table as _table

#: supporting images: used for statistics, not shown as maps
_SUPPORT_SUFFIXES = ("mask", "dseg", "probseg")
#: order of map sections; other suffixes follow alphabetically
_SUFFIX_ORDER = ("T1map", "R1map", "T2map", "R2map", "T2starmap", "R2starmap", "M0map",
                 "PDmap", "S0map", "TB1map", "RB1map")
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


def parse_name(path: Path) -> tuple[dict, str]:
    """BIDS entities and suffix of a file name (``sub-01_desc-x_T1map.nii.gz``)."""
    stem = re.sub(r"\.nii(\.gz)?$", "", Path(path).name)
    parts = stem.split("_")
    suffix = parts[-1] if "-" not in parts[-1] else ""
    entities = dict(p.split("-", 1) for p in parts if "-" in p)
    return entities, suffix


def find_images(subject_dir: Path) -> list[Image]:
    """Every NIfTI under a subject's derivatives folder (figures excluded), with its sidecar."""
    found = []
    for path in sorted(subject_dir.rglob("*.nii*")):
        if "figures" in path.relative_to(subject_dir).parts or not re.search(r"\.nii(\.gz)?$",
                                                                          path.name):
            continue
        entities, suffix = parse_name(path)
        image = Image(path, entities, suffix)
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


def pick_support(image: Image, candidates: list[Image], suffix: str) -> Image | None:
    """The mask or dseg that fits a map best: same session, most shared entities."""
    best, best_score = None, None
    for cand in candidates:
        if cand.suffix != suffix:
            continue
        if "ses" in cand.entities and cand.entities["ses"] != image.entities.get("ses"):
            continue
        score = sum(1 if cand.entities.get(k) == image.entities.get(k) else -1
                    for k in _MATCH_ENTITIES if k in cand.entities or k in image.entities)
        score += 2 * (suffix == "mask" and cand.entities.get("desc") == "brain")
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
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    try:
        ornt = nb.orientations.io_orientation(img.affine)
        if not np.isfinite(ornt).all():
            return arrays, zooms
        new_zooms = [1.0] * 3
        for old, (new, _) in enumerate(ornt):
            new_zooms[int(new)] = zooms[old]
        return [nb.orientations.apply_orientation(a, ornt) for a in arrays], tuple(new_zooms)
    except Exception:  # noqa: BLE001 - a degenerate affine keeps voxel order
        return arrays, zooms


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


def _sort_key(image: Image) -> tuple:
    rank = (_SUFFIX_ORDER.index(image.suffix) if image.suffix in _SUFFIX_ORDER
            else len(_SUFFIX_ORDER))
    desc = image.entities.get("desc", "")
    quality = figures.is_fit_quality(image.suffix, desc)
    base = re.sub("(?i)rmse|residual", "", desc)
    return (image.entities.get("ses", ""), rank, image.suffix, base, quality, image.path.name)


# ------------------------------------------------------------------------------- HTML
def _decisions_html(decisions) -> str:
    if not decisions:
        return "<p>No collection decisions were recorded.</p>"
    known = ["kind", "name", "status", "files", "reason", "b1"]
    present = {k for d in decisions for k in d}
    columns = [k for k in known if k in present or k in ("kind", "status")]
    columns += sorted(present - set(known))
    rows = []
    for d in decisions:
        row = []
        for key in columns:
            value = d.get(key, "")
            if key == "files" and isinstance(value, (list, tuple)):
                cell = "<br>".join(f"<code>{_esc(Path(str(f)).name)}</code>" for f in value)
            elif key == "status":
                cls = "status-" + (str(value).split(",")[0].split()[0] if value else "none")
                cell = f'<span class="{_esc(cls)}">{_esc(value)}</span>'
            else:
                cell = _esc(", ".join(map(str, value)) if isinstance(value, (list, tuple))
                            else value)
            row.append(cell)
        rows.append(row)
    counts = {}
    for d in decisions:
        counts[d.get("status", "unknown")] = counts.get(d.get("status", "unknown"), 0) + 1
    tally = ", ".join(f"{n} {s}" for s, n in counts.items())
    headers = [_esc({"b1": "B1+ map"}.get(c, c.capitalize())) for c in columns]
    return f"<p>{len(decisions)} collection(s): {_esc(tally)}.</p>" + _table(headers, rows)


def _map_html(rep: MapReport, output_dir: Path, anchor: str) -> str:
    img, side = rep.image, rep.image.sidecar
    meta = [f"File: <code>{_esc(img.path.relative_to(output_dir).as_posix())}</code>",
            f"Units: <b>{_esc(rep.units or 'unknown')}</b>"]
    for key in ("EstimationAlgorithm", "EstimationReference"):
        if side.get(key):
            meta.append(f"{key}: {_esc(side[key])}")
    if rep.supports:
        meta.append("Statistics within: " + ", ".join(f"<code>{_esc(s)}</code>"
                                                      for s in rep.supports))
    parts = [f'<section id="{anchor}"><h3>{_esc(img.suffix or "image")} '
             f'<small><code>{_esc(img.stem)}</code></small></h3>',
             '<p class="meta">' + " &middot; ".join(meta) + "</p>"]
    for fig, what in ((rep.mosaic, "Slices"), (rep.histogram, "Histogram")):
        if fig is not None:
            rel = Path(os.path.relpath(fig, output_dir)).as_posix()
            parts.append(f'<figure><img src="{_esc(rel)}" alt="{what} of {_esc(img.stem)}">'
                         "</figure>")
    if rep.stats:
        rows = []
        for region, s in rep.stats:
            if s["n"]:
                rows.append([_esc(region), s["n"], fmt(s["median"]),
                             f"{fmt(s['q1'])} &ndash; {fmt(s['q3'])}",
                             f"{fmt(s['p5'])} &ndash; {fmt(s['p95'])}"])
            else:
                rows.append([_esc(region), 0, "&ndash;", "&ndash;", "&ndash;"])
        u = _esc(rep.units)
        parts.append(_table(["Region", "Voxels", f"Median ({u})", f"IQR ({u})",
                             f"5th &ndash; 95th percentile ({u})"], rows, numeric=(1, 2, 3, 4)))
    if side.get("Sources"):
        sources = side["Sources"] if isinstance(side["Sources"], list) else [side["Sources"]]
        parts.append("<details><summary>Sources</summary><ul>"
                     + "".join(f"<li><code>{_esc(s)}</code></li>" for s in sources)
                     + "</ul></details>")
    if rep.notes:
        parts.append("<ul>" + "".join(f'<li class="note">{_esc(n)}</li>' for n in rep.notes)
                     + "</ul>")
    return "\n".join(parts) + "</section>"


def _errors_html(errors) -> str:
    if not errors:
        return '<p class="ok">No errors to report.</p>'
    items = []
    for err in errors:
        text = str(err)
        if isinstance(err, os.PathLike) and Path(err).is_file():
            try:
                text = f"{Path(err).name}:\n{Path(err).read_text(errors='replace')}"
            except OSError:
                pass
        items.append(f'<li><pre class="error">{_esc(text)}</pre></li>')
    return f"<p>{len(items)} error(s) were reported.</p><ol>{''.join(items)}</ol>"


def _config_html(config_file) -> str:
    if config_file is None:
        return "<p>No configuration file was recorded.</p>"
    try:
        text = Path(config_file).read_text(errors="replace")
    except OSError as exc:
        return f'<p class="note">{_esc(config_file)} could not be read ({_esc(exc)}).</p>'
    return f"<p>From <code>{_esc(config_file)}</code>:</p><pre>{_esc(text)}</pre>"


def build_report(output_dir, subject, *, sessions=None, decisions=None, boilerplate="",
                 config_file=None, errors=None, version="0.1.0") -> Path:
    """Write ``output_dir/sub-<label>.html`` and its figures; return the page's path.

    ``subject`` may be given with or without ``sub-``; ``sessions`` (labels, with or without
    ``ses-``) restricts the maps shown, default all.  ``decisions`` lists the collections found
    and what was done with them (dicts with ``kind``, ``files``, ``status``, ``reason``, ``b1``);
    ``boilerplate`` is the Markdown methods text; ``config_file`` the run's TOML settings;
    ``errors`` the error or crash messages (strings, or paths of text crash files).
    """
    output_dir = Path(output_dir)
    label = str(subject).removeprefix("sub-")
    subject_dir = output_dir / f"sub-{label}"
    fig_dir = subject_dir / "figures"
    images = find_images(subject_dir) if subject_dir.is_dir() else []
    if sessions is not None:
        keep = {str(s).removeprefix("ses-") for s in sessions}
        images = [i for i in images if i.entities.get("ses") in keep | {None}]
    supports = [i for i in images if i.suffix in _SUPPORT_SUFFIXES]
    maps = sorted((i for i in images if i.suffix not in _SUPPORT_SUFFIXES), key=_sort_key)
    reports = [analyse_map(m, supports, fig_dir) for m in maps]
    found_sessions = sorted({i.entities["ses"] for i in images if "ses" in i.entities})
    shown = sessions if sessions is not None else found_sessions

    nav = [("summary", "Summary")]
    summary = _table(None, [
        ["Subject", _esc(label)],
        ["Sessions", _esc(", ".join(str(s) for s in shown) or "none (single session)")],
        ["qmriprep version", _esc(version)],
        ["Date", _esc(datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))],
        ["Parameter maps", str(len(reports))],
        ["Masks and segmentations", "<br>".join(f"<code>{_esc(s.path.name)}</code>"
                                                 for s in supports) or "none"],
    ])
    body = ['<section id="summary"><h2>Summary</h2>', summary,
            "<h3>Collections</h3>", _decisions_html(decisions), "</section>"]

    nav.append(("maps", "Parameter maps"))
    body.append('<section id="maps"><h2>Parameter maps</h2>')
    if not reports:
        body.append(f"<p>No parameter maps were found under <code>{_esc(subject_dir)}</code>."
                    "</p>")
    for i, rep in enumerate(reports):
        body.append(_map_html(rep, output_dir, f"map-{i}"))
    body.append("</section>")

    for anchor, heading, content in (
        ("methods", "Methods", render_markdown(boilerplate) if boilerplate.strip()
         else "<p>No methods description was provided.</p>"),
        ("settings", "Settings", _config_html(config_file)),
        ("errors", "Errors", _errors_html(errors)),
    ):
        nav.append((anchor, heading))
        body.append(f'<section id="{anchor}"><h2>{heading}</h2>{content}</section>')

    template = Template(resources.files("qmriprep").joinpath("data/report.html.tpl").read_text())
    page = template.substitute(
        title=_esc(f"qmriprep report: sub-{label}"), version=_esc(version),
        date=_esc(datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        nav="".join(f'<a href="#{a}">{_esc(t)}</a>' for a, t in nav),
        body="\n".join(body))
    out_file = output_dir / f"sub-{label}.html"
    output_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(out_file.name + ".tmp")  # no half-written page on a crash
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out_file)
    return out_file
