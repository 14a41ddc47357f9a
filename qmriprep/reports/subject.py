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

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from string import Template

from .. import __version__
from ..utils.files import atomic_write_text
from .analysis import SUPPORT_SUFFIXES, analyse_map, find_images, sort_key
from .html import esc as _esc, render_markdown, table as _table
from .sections import config_html, decisions_html, errors_html, map_html


@dataclass(frozen=True)
class ReportContext:
    """What the report shows besides the maps.

    ``subject`` may be given with or without ``sub-``; ``sessions`` (labels, with or without
    ``ses-``) restricts the maps shown, ``None`` for all.  ``decisions`` lists the collections
    found and what was done with them (dicts with ``kind``, ``files``, ``status``, ``reason``,
    ``b1``); ``boilerplate`` is the Markdown methods text; ``config_file`` the run's TOML
    settings; ``errors`` the error or crash messages (strings, or paths of text crash files).
    """

    subject: str
    sessions: Sequence[str] | None = None
    decisions: Sequence[dict] = ()
    boilerplate: str = ""
    config_file: str | os.PathLike | None = None
    errors: Sequence = ()
    version: str = __version__


def build_report(output_dir, context: ReportContext) -> Path:
    """Write ``output_dir/sub-<label>.html`` and its figures; return the page's path."""
    output_dir = Path(output_dir)
    label = str(context.subject).removeprefix("sub-")
    subject_dir = output_dir / f"sub-{label}"
    images = find_images(subject_dir) if subject_dir.is_dir() else []
    if context.sessions is not None:
        keep = {str(s).removeprefix("ses-") for s in context.sessions}
        images = [i for i in images if i.entities.get("ses") in keep | {None}]
    supports = [i for i in images if i.suffix in SUPPORT_SUFFIXES]
    maps = sorted((i for i in images if i.suffix not in SUPPORT_SUFFIXES), key=sort_key)
    reports = [analyse_map(m, supports, subject_dir / "figures") for m in maps]
    found_sessions = sorted({i.entities["ses"] for i in images if "ses" in i.entities})
    shown = context.sessions if context.sessions is not None else found_sessions
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    summary = _table(None, [
        ["Subject", _esc(label)],
        ["Sessions", _esc(", ".join(str(s) for s in shown) or "none (single session)")],
        ["qmriprep version", _esc(context.version)],
        ["Date", _esc(date)],
        ["Parameter maps", str(len(reports))],
        ["Masks and segmentations", "<br>".join(f"<code>{_esc(s.path.name)}</code>"
                                                 for s in supports) or "none"],
    ])
    maps_html = [map_html(rep, output_dir, f"map-{i}") for i, rep in enumerate(reports)]
    if not reports:
        maps_html = [f"<p>No parameter maps were found under <code>{_esc(subject_dir)}</code>."
                     "</p>"]
    sections = [
        ("summary", "Summary", "\n".join(["", summary, "<h3>Collections</h3>",
                                          decisions_html(context.decisions), ""])),
        ("maps", "Parameter maps", "\n".join(["", *maps_html, ""])),
        ("methods", "Methods", render_markdown(context.boilerplate)
         if context.boilerplate.strip() else "<p>No methods description was provided.</p>"),
        ("settings", "Settings", config_html(context.config_file)),
        ("errors", "Errors", errors_html(context.errors)),
    ]
    return _write_page(output_dir / f"sub-{label}.html", sections, label, context.version, date)


def _write_page(out_file: Path, sections, label: str, version: str, date: str) -> Path:
    """Fill the page template with the ``(anchor, heading, html)`` sections; write it atomically."""
    template = Template(resources.files("qmriprep").joinpath("data/report.html.tpl").read_text())
    page = template.substitute(
        title=_esc(f"qmriprep report: sub-{label}"), version=_esc(version), date=_esc(date),
        nav="".join(f'<a href="#{a}">{_esc(t)}</a>' for a, t, _ in sections),
        body="\n".join(f'<section id="{a}"><h2>{t}</h2>{html}</section>'
                       for a, t, html in sections))
    return atomic_write_text(out_file, page)  # no half-written page on a crash
