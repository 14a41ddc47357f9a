"""HTML of the report's sections: collection decisions, one parameter map, errors, settings."""

from __future__ import annotations

import os
from pathlib import Path

from .analysis import MapReport, fmt
from .curves import curve_svg
from .html import esc as _esc, table as _table


def decisions_html(decisions) -> str:
    """Table of the collections found and what was done with each, with a tally."""
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


def map_html(rep: MapReport, output_dir: Path, anchor: str) -> str:
    """One map's section: file, units, figures, statistics per region, sources and notes."""
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
    parts.append(curve_svg(side))
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


def errors_html(errors) -> str:
    """The errors reported (a crash file's path shows the file's text)."""
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


def config_html(config_file) -> str:
    """The run's settings file, verbatim."""
    if config_file is None:
        return "<p>No configuration file was recorded.</p>"
    try:
        text = Path(config_file).read_text(errors="replace")
    except OSError as exc:
        return f'<p class="note">{_esc(config_file)} could not be read ({_esc(exc)}).</p>'
    return f"<p>From <code>{_esc(config_file)}</code>:</p><pre>{_esc(text)}</pre>"
