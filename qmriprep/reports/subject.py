"""Per-subject HTML report, assembled from the derivatives qmriprep wrote and the run's plan.

:func:`build_report` reads ``output_dir/sub-<label>/`` (every NIfTI with its JSON sidecar), sorts
the derivatives into the plan's collections (:mod:`.collect`), computes every map's statistics
inside its collection's mask (and per tissue when a ``_dseg`` is present, :mod:`.analysis`),
and assembles the page from the reportlets listed in :mod:`.spec`: a summary first (overview,
warnings, the collections found and used and why, a quality-control table of every map), then
one collapsible section per collection (inputs, reconstructions, B1+ registration, maps,
method-against-method differences, uncertainty and fit quality, training curves). Figures go
to ``sub-<label>/figures/``; the page is ``output_dir/sub-<label>.html`` (the fMRIPrep
convention), refers to the figures by relative paths and loads nothing from the network.

A file or view that cannot be read or drawn is noted instead of stopping the report.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from string import Template

from .. import __version__
from ..utils.files import atomic_write_text
from . import spec, tissues
from .analysis import SUPPORT_SUFFIXES, analyse_cached, find_images, sort_key
from .cache import FigureCache
from .collect import Page, group_images, is_out_of_range
from .html import details, esc as _esc, render_markdown
from .sections import config_html, errors_html


@dataclass(frozen=True)
class ReportContext:
    """What the report shows besides the maps.

    ``subject`` may be given with or without ``sub-``; ``sessions`` (labels, with or without
    ``ses-``) restricts the maps shown, ``None`` for all.  ``decisions`` lists the collections
    found and what was done with them (dicts with ``kind``, ``files``, ``status``, ``reason``,
    ``b1``), or ``plan`` the run's frozen plan (which gives them, with estimators, protocols
    and the B1+ choice); ``boilerplate`` is the Markdown methods text; ``config_file`` the run's TOML
    settings; ``errors`` the error or crash messages (strings, or paths of text crash files).
    """

    subject: str
    sessions: Sequence[str] | None = None
    decisions: Sequence[dict] = ()
    boilerplate: str = ""
    config_file: str | os.PathLike | None = None
    errors: Sequence = ()
    version: str = __version__
    plan: object = None  #: the subject's frozen :class:`~qmriprep.bids.plan.SubjectPlan`
    nprocs: int = 1  #: threads drawing figures
    #: folder keeping figures for the next build (:mod:`.cache`; in the work dir), None: draw all
    figure_store: str | os.PathLike | None = None


def build_report(output_dir, context: ReportContext) -> Path:
    """Write ``output_dir/sub-<label>.html`` and its figures; return the page's path."""
    output_dir = Path(output_dir)
    label = str(context.subject).removeprefix("sub-")
    subject_dir = output_dir / f"sub-{label}"
    images = find_images(subject_dir) if subject_dir.is_dir() else []
    if context.sessions is not None:
        keep = {str(s).removeprefix("ses-") for s in context.sessions}
        images = [i for i in images if i.entities.get("ses") in keep | {None}]
    supports = [i for i in images if i.suffix in SUPPORT_SUFFIXES and not is_out_of_range(i)]
    groups, rest = group_images(sorted(images, key=sort_key), _entries(context))
    rest = [i for i in rest if i.suffix not in SUPPORT_SUFFIXES]
    todo = [i for g in groups for i in g.images()] + rest
    fig_dir = subject_dir / "figures"
    found = sorted({i.entities["ses"] for i in images if "ses" in i.entities})
    shown = [g for g in groups if g.images() or g.series]
    if not any(i.suffix == "dseg" for i in supports):
        dseg = tissues.from_groups(groups, fig_dir, label)
        supports += [dseg] if dseg is not None else []
    cache = FigureCache(fig_dir, context.figure_store) if context.figure_store else None
    with ThreadPoolExecutor(max(1, context.nprocs)) as pool:  # numpy, PIL and ITK free the GIL
        reports = dict(zip([i.path for i in todo],
                           pool.map(lambda i: analyse_cached(cache, i, supports, fig_dir), todo)))
        page = Page(output_dir, fig_dir, context, reports, groups, rest,
                    sessions=[str(s) for s in (context.sessions if context.sessions is not None
                                               else found)],
                    date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), cache=cache)
        bodies = list(pool.map(lambda g: _blocks(page, spec.COLLECTION, g, g.anchor), shown))
    if cache is not None:
        cache.prune()
    sections = [("summary", "Summary", _blocks(page, spec.SUMMARY, None, "summary"))]
    sections += [(g.anchor, g.name, body) for g, body in zip(shown, bodies)]
    if rest:
        sections.append(("other", "Other maps", spec.reportlets.cards(page, rest)))
    if not todo:
        sections.append(("maps", "Parameter maps", "<p>No parameter maps were found under "
                         f"<code>{_esc(subject_dir)}</code>.</p>"))
    sections += [
        ("methods", "Methods", render_markdown(context.boilerplate)
         if context.boilerplate.strip() else "<p>No methods description was provided.</p>"),
        ("settings", "Settings", config_html(context.config_file)),
        ("errors", "Errors", errors_html(context.errors)),
    ]
    return _write_page(output_dir / f"sub-{label}.html", sections, label, context.version,
                       page.date)


def _entries(context: ReportContext) -> list:
    """``(decision, CollectionPlan or None)`` per collection: from the plan when there is one
    (with its estimators and protocol), else the decisions given."""
    if context.plan is None:
        return [(dict(d), None) for d in context.decisions]
    from ..bids.metadata import describe_protocol

    return [({**item.decision(), "estimators": ", ".join(item.estimators),
              "protocol": describe_protocol(item.collection.protocol)}, item)
            for item in context.plan.collections]


def _blocks(page: Page, reportlets, group, anchor: str) -> str:
    """The reportlets of one section, each under its heading (folded ones collapsed)."""
    parts = []
    for r in reportlets:
        try:
            body = r.make(page, group)
        except Exception as exc:  # noqa: BLE001 - one broken view must not lose the report
            body = f'<p class="note">{_esc(r.title)} could not be made ({_esc(exc)}).</p>'
        if body:
            parts.append(details(f"<h3>{_esc(r.title)}</h3>", body, open_=not r.folded,
                                 anchor=f"{anchor}-{r.key}"))
    return "\n".join(parts)


def _write_page(out_file: Path, sections, label: str, version: str, date: str) -> Path:
    """Fill the page template with the ``(anchor, heading, html)`` sections; write it atomically."""
    template = Template(resources.files("qmriprep").joinpath("data/report.html.tpl").read_text())
    page = template.substitute(
        title=_esc(f"qmriprep report: sub-{label}"), version=_esc(version), date=_esc(date),
        nav="".join(f'<li><a href="#{a}">{_esc(t)}</a></li>' for a, t, _ in sections),
        body="\n".join(f'<section id="{a}" class="top"><h2>{_esc(t)}</h2>{html}</section>'
                       for a, t, html in sections))
    return atomic_write_text(out_file, page)  # no half-written page on a crash
