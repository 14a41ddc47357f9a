"""HTML of the report's sections: collection decisions, one parameter map, errors, settings."""

from __future__ import annotations

import os
from pathlib import Path

from .analysis import MapReport, fmt
from .html import details, esc as _esc, fname, table as _table


def decisions_html(decisions, html_keys=()) -> str:
    """Table of the collections found and what was done with each, with a tally; the values of
    ``html_keys`` are HTML already."""
    if not decisions:
        return "<p>No collection decisions were recorded.</p>"
    known = ["kind", "name", "status", "files", "reason", "estimators", "protocol", "b1"]
    present = {k for d in decisions for k in d}
    columns = [k for k in known if k in present or k in ("kind", "status")]
    columns += sorted(present - set(known))
    rows = []
    for d in decisions:
        row = []
        for key in columns:
            value = d.get(key, "")
            if key in html_keys:
                cell = str(value)
            elif key == "files" and isinstance(value, (list, tuple)):
                cell = "<br>".join(fname(Path(str(f)).name) for f in value[:3]) + (
                    f"<br>... {len(value)} files" if len(value) > 3 else "")
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
    """One map's card: name, units, median, mosaic with colour bar; histogram, statistics per
    region, provenance and notes folded."""
    img, side = rep.image, rep.image.sidecar
    meta = [f"Units: <b>{_esc(rep.units or 'unknown')}</b>"]
    if rep.stats and rep.stats[0][1].get("n"):
        meta.append(f"median {fmt(rep.stats[0][1]['median'])} in the {_esc(rep.stats[0][0])}")
    if rep.supports:
        meta.append("Statistics within: " + ", ".join(fname(s) for s in rep.supports))
    if rep.notes:
        meta.append(f'<span class="note">{len(rep.notes)} note(s)</span>')
    parts = [f'<section id="{anchor}" class="card"><h4>{_esc(img.suffix or "image")} '
             f'<small><code>{_esc(img.stem)}</code></small></h4>',
             '<p class="meta">' + " &middot; ".join(meta) + "</p>"]
    if rep.mosaic is not None:
        parts.append(_figure(rep.mosaic, output_dir, f"Slices of {img.stem}"))
    more = [f"<p class=\"meta\">File: {fname(img.path.relative_to(output_dir).as_posix())}</p>"]
    for key in ("EstimationAlgorithm", "EstimationReference", "Description"):
        if side.get(key):
            more.append(f'<p class="meta">{key}: {_esc(side[key])}</p>')
    if rep.histogram is not None:
        more.append(_figure(rep.histogram, output_dir, f"Histogram of {img.stem}"))
    more.append(_stats_table(rep))
    if side.get("Sources"):
        sources = side["Sources"] if isinstance(side["Sources"], list) else [side["Sources"]]
        more.append("<p>Sources:</p><ul>" + "".join(f"<li>{fname(s)}</li>" for s in sources)
                    + "</ul>")
    if rep.notes:
        more.append("<ul>" + "".join(f'<li class="note">{_esc(n)}</li>' for n in rep.notes)
                    + "</ul>")
    parts.append(details("Histogram, statistics per region, provenance", "".join(more)))
    return "\n".join(parts) + "</section>"


def _figure(path: Path, output_dir: Path, alt: str) -> str:
    rel = Path(os.path.relpath(path, output_dir)).as_posix()
    return f'<figure><img src="{_esc(rel)}" alt="{_esc(alt)}" loading="lazy"></figure>'


def _stats_table(rep: MapReport) -> str:
    if not rep.stats:
        return ""
    rows = []
    for region, s in rep.stats:
        if s["n"]:
            rows.append([_esc(region), s["n"], fmt(s["median"]),
                         f"{fmt(s['q1'])} &ndash; {fmt(s['q3'])}",
                         f"{fmt(s['p5'])} &ndash; {fmt(s['p95'])}"])
        else:
            rows.append([_esc(region), 0, "&ndash;", "&ndash;", "&ndash;"])
    u = _esc(rep.units)
    return _table(["Region", "Voxels", f"Median ({u})", f"IQR ({u})",
                   f"5th &ndash; 95th percentile ({u})"], rows, numeric=(1, 2, 3, 4))


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
