"""The summary reportlets: overview, warnings, the collections found and used (from the frozen
plan), and the quality-control table of every map per region with noise, uncertainty and
out-of-range columns read from the sidecars (``NoiseSigma``, ``SNR``, ``OutOfRangeVoxels``,
``desc-*SD`` maps)."""

from __future__ import annotations

from pathlib import Path

from .analysis import fmt
from .collect import Group, Page, counterpart
from .html import esc, fname, table
from .sections import decisions_html


def overview(page: Page, group=None) -> str:
    """Subject, sessions, version, date and counts."""
    ctx = page.context
    n_maps = sum(len(g.maps) for g in page.groups)
    rows = [["Subject", esc(page.context.subject)],
            ["Sessions", esc(", ".join(page.sessions) or "none (single session)")],
            ["qmriprep version", esc(ctx.version)], ["Date", esc(page.date)],
            ["Collections", f"{sum(1 for g in page.groups if g.images())} with maps, "
                            f"{len(page.groups)} found"],
            ["Parameter maps", str(n_maps)],
            ["Errors", f'<a href="#errors">{len(ctx.errors or ())}</a>']]
    return table(None, rows)


def collections(page: Page, group=None) -> str:
    """What was found, what was used and why (one row per collection of the plan)."""
    rows = []
    for g in page.groups:
        link = f'<a href="#{g.anchor}">{esc(g.name)}</a>' if g.images() else esc(g.name)
        rows.append({**g.decision, "name": link})
    return decisions_html(rows, html_keys=("name",))


def warnings(page: Page, group=None) -> str:
    """Decisions to know about (B1+ assumed nominal, coil-map fallback, collections not
    processed), out-of-range voxels, map notes and errors."""
    items = []
    for g in page.groups:
        d = g.decision
        if "not" in str(d.get("status", "")):
            items.append(f"{esc(g.name)}: not processed ({esc(d.get('reason', ''))})")
        if "B1 = 1 assumed" in str(d.get("b1", "")):
            items.append(f"{esc(g.name)}: no B1+ correction, the nominal flip angle is assumed "
                         f"({esc(d['b1'])})")
        for how in sorted({s.sidecar.get("CoilSensitivities") for s in g.series} - {None}):
            if "low-resolution" in how:
                items.append(f"{esc(g.name)}: coil sensitivities are {esc(how)}")
        for image in g.images():
            rep = page.report(image)
            flagged = image.sidecar.get("OutOfRangeVoxels")
            if flagged:
                items.append(f'<a href="#map-{esc(image.stem)}">{fname(image.stem)}</a>: '
                             f"{int(flagged)} voxel(s) outside the estimator's range")
            for note in (rep.notes if rep else []):
                if "outside the display range" in note or "could not" in note or "failed" in note:
                    items.append(f'<a href="#map-{esc(image.stem)}">{fname(image.stem)}</a>: {esc(note)}')
    if page.context.errors:
        items.append(f'<a href="#errors">{len(page.context.errors)} error(s)</a> were reported')
    if not items:
        return '<p class="ok">Nothing to warn about.</p>'
    return '<ul class="warnings">' + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def _median(rep, region: str) -> str:
    for name, s in rep.stats:
        if name == region and s.get("n"):
            return f"{fmt(s['median'])} <small>[{fmt(s['q1'])}, {fmt(s['q3'])}]</small>"
    return "&ndash;"


def qc_table(page: Page, group=None) -> str:
    """Median [IQR] of every map in its collection's mask and per tissue, with the mask's voxel
    count, the median of its standard-deviation map, the sidecar's noise level and SNR, and
    the voxels outside the estimator's range; one block of rows per collection."""
    tissues = []
    for rep in page.reports.values():
        for name, _ in rep.stats[1:]:
            if name not in tissues:
                tissues.append(name)
    headers = ["Map", "Units", "Voxels", "Median [IQR] in mask",
               *(f"Median [IQR] {esc(t)}" for t in tissues),
               "SD map median", "Noise &sigma;", "SNR", "Out of range", "Mask"]
    body = []
    for g in page.groups + [Group("other", {"name": "other maps"}, maps=page.rest)]:
        rows = [_qc_row(page, g, image, tissues) for image in g.maps + g.b1]
        rows = [r for r in rows if r]
        if rows:
            body.append(f'<tr class="group"><th colspan="{len(headers)}">{esc(g.name)}</th></tr>')
            body += ["<tr>" + "".join(f'<td class="num">{c}</td>' if 2 <= i < len(headers) - 1
                                      else f"<td>{c}</td>" for i, c in enumerate(r)) + "</tr>"
                     for r in rows]
    if not body:
        return "<p>No parameter maps.</p>"
    head = "".join(f"<th>{h}</th>" for h in headers)
    return (f'<div class="scroll"><table class="qc"><thead><tr>{head}</tr></thead><tbody>'
            + "".join(body) + "</tbody></table></div>")


def _short(stem: str) -> str:
    """A file stem without its ``sub-``/``ses-`` entities."""
    return "_".join(p for p in stem.split("_") if not p.startswith(("sub-", "ses-")))


def _qc_row(page: Page, g: Group, image, tissues) -> list | None:
    rep = page.report(image)
    if rep is None:
        return None
    sd = counterpart(image, g.sd)
    sd_rep = page.report(sd) if sd is not None else None
    side, stats = image.sidecar, dict(rep.stats)
    first = rep.stats[0] if rep.stats else (None, {})
    return [f'<a href="#map-{esc(image.stem)}"><code class="fname">{esc(_short(image.stem))}'
            "</code></a>", esc(rep.units), first[1].get("n", 0), _median(rep, first[0]),
            *(_median(rep, t) if t in stats else "&ndash;" for t in tissues),
            _median(sd_rep, sd_rep.stats[0][0]) if sd_rep and sd_rep.stats else "&ndash;",
            _num(side.get("NoiseSigma")), _num(side.get("SNR")),
            _num(side.get("OutOfRangeVoxels")),
            ", ".join(f'<code class="fname">{esc(_short(s.split(".nii")[0]))}</code>'
                      for s in rep.supports) or "nonzero voxels"]


def _num(value) -> str:
    if value is None:
        return "&ndash;"
    try:
        return fmt(float(value))
    except (TypeError, ValueError):
        return esc(value)


def resources(page: Page, group=None) -> str:
    """Peak memory and time of the run's nodes (``resources.tsv`` in its log folder), largest
    peak first: which step needs the memory a job must request."""
    from ..cli.resources import RESOURCES_FILE

    config_file = getattr(page.context, "config_file", None)
    path = config_file and Path(config_file).parent / RESOURCES_FILE
    if not path or not path.is_file():
        return ""
    rows = [line.split("\t") for line in path.read_text().splitlines()[1:] if line.count("\t") == 3]
    total = sum(float(r[1]) for r in rows)
    shown = [[f"<code>{esc(n)}</code>", esc(s), esc(m), esc(e)] for n, s, m, e in rows[:12]]
    return (f"<p>{len(rows)} steps, {total:.0f} s of node time in all; the largest peaks "
            f"(resident memory of the step's process, sampled each second) beside the memory the "
            f"step declared to the scheduler (its estimate from the size of the series):</p>"
            + table(["Step", "Seconds", "Peak RSS (GB)", "Estimate (GB)"], shown, numeric=(1, 2, 3))
            + f'<p>All steps: <code class="fname">{esc(str(path))}</code></p>')
