"""The group page (``group/qmriprep_group.html``) and the data dictionary of the group table.

One section per map and method: per space, a table of each subject's median [IQR] per region
(subjects far from the group in red, :func:`qmriprep.reports.group.flag_outliers`) and a strip
plot of the subjects' medians per region.
"""

from __future__ import annotations

import base64
import html
import io

from .. import suffixes
from ..utils.files import atomic_write_text

#: BIDS data dictionary of ``group/qmriprep_maps.tsv``
DATA_DICTIONARY = {
    "subject": {"Description": "subject label"},
    "session": {"Description": "session label (n/a without sessions)"},
    "map": {"Description": "BIDS suffix of the map (T1map, T2map, ...)"},
    "method": {"Description": "desc entity: the estimator (and the collection of an M0 map)"},
    "acquisition": {"Description": "acq entity of the map (n/a without)"},
    "reconstruction": {"Description": "rec entity: k-space reconstruction the map came from"},
    "run": {"Description": "run entity (n/a without)"},
    "space": {"Description": "native (the map's own grid) or the template of the resampled map"},
    "region": {"Description": "brain (all voxels of the map's mask), a tissue of the template "
                              "(GM, WM, CSF: probability >= 0.5, pulled back to native grids) or "
                              "an ROI of the atlas given with --atlas"},
    "units": {"Description": "Units of the map's sidecar"},
    "n_voxels": {"Description": "voxels of the region with a defined (nonzero, finite) value"},
    "mean": {"Description": "mean over the region", "Units": "as units"},
    "median": {"Description": "median over the region", "Units": "as units"},
    "sd": {"Description": "standard deviation over the region", "Units": "as units"},
    "p25": {"Description": "25th percentile", "Units": "as units"},
    "p75": {"Description": "75th percentile", "Units": "as units"},
    "iqr": {"Description": "interquartile range p75 - p25", "Units": "as units"},
    "robust_z": {"Description": "(median - median over subjects) / (1.4826 x median absolute "
                                "deviation) among subjects with the same map, method, entities, "
                                "space and region; n/a with fewer than 3 subjects"},
    "outlier": {"Description": "True when |robust_z| > 3.5", "Levels": {"True": "far from the group",
                                                                         "False": "within the group"}},
    "file": {"Description": "the map, relative to the derivatives folder"},
}


def _strip_plot(rows: list[dict], regions: list[str]) -> str:
    """A PNG (data URI) of the subjects' medians per region, outliers in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.2 + 0.8 * len(regions), 2.4), dpi=80)
    for i, region in enumerate(regions):
        pts = [r for r in rows if r["region"] == region and r["median"] != "n/a"]
        ax.scatter([i] * len(pts), [r["median"] for r in pts], s=18,
                   c=["crimson" if r["outlier"] is True else "steelblue" for r in pts])
    ax.set_xticks(range(len(regions)), regions)
    ax.set_ylabel(f"median ({rows[0]['units'] or 'a.u.'})")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _table(rows: list[dict], regions: list[str]) -> str:
    subjects = sorted({(r["subject"], r["session"]) for r in rows})
    head = "".join(f"<th>{html.escape(g)}</th>" for g in regions)
    body = []
    for sub, ses in subjects:
        cells = []
        for region in regions:
            r = next((r for r in rows if (r["subject"], r["session"], r["region"]) == (sub, ses, region)), None)
            if r is None or r["median"] == "n/a":
                cells.append("<td>n/a</td>")
                continue
            cls = ' class="outlier"' if r["outlier"] is True else ""
            cells.append(f"<td{cls}>{r['median']:.4g} [{r['iqr']:.3g}] n={r['n_voxels']}</td>")
        label = f"sub-{sub}" + ("" if ses in (None, "n/a") else f" ses-{ses}")
        body.append(f"<tr><th>{html.escape(label)}</th>{''.join(cells)}</tr>")
    return f"<table><tr><th>subject</th>{head}</tr>{''.join(body)}</table>"


def write_group_page(rows: list[dict], path) -> None:
    """``path``: one section per map and method, one table and strip plot per space."""
    sections, contents = [], []
    order = suffixes.report_order()
    keys = sorted({(r["map"], r["method"], r["acquisition"], r["reconstruction"]) for r in rows},
                  key=lambda k: (order.index(k[0]) if k[0] in order else len(order), k))
    for i, key in enumerate(keys):
        mine = [r for r in rows if (r["map"], r["method"], r["acquisition"], r["reconstruction"]) == key]
        title = html.escape(" ".join([key[0]] + [f"{k}-{v}" for k, v in zip(("desc", "acq", "rec"), key[1:])
                                                 if v != "n/a"]))
        contents.append(f"<a href='#m{i}'>{title}</a>")
        parts = [f"<h2 id='m{i}'>{title}</h2>"]
        for space in sorted({r["space"] for r in mine}, key=lambda sp: (sp != "native", sp)):
            these = [r for r in mine if r["space"] == space]
            regions = list(dict.fromkeys(r["region"] for r in these))
            parts.append(f"<h3>{html.escape(space)}</h3><div class='row'>{_table(these, regions)}"
                         f"<img alt='medians per region' src='{_strip_plot(these, regions)}'></div>")
        sections.append("<section>" + "".join(parts) + "</section>")
    flagged = sum(r["outlier"] is True for r in rows)
    page = f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>qmriprep group</title>
<style>body{{font-family:sans-serif;margin:1em 2em}} table{{border-collapse:collapse;font-size:90%}}
td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}} .outlier{{background:#fdd;color:#900}}
.row{{display:flex;gap:1em;align-items:flex-start;flex-wrap:wrap}}</style></head><body>
<h1>qmriprep group summary</h1>
<p>{len({(r['subject'], r['session']) for r in rows})} subject(s)/session(s), {len(keys)} map(s);
median [IQR] and voxel count per region; {flagged} value(s) far from the group (|robust z| &gt; 3.5,
in red). Table: <code>qmriprep_maps.tsv</code> (columns in <code>qmriprep_maps.json</code>).</p>
<p class="contents">{' &middot; '.join(contents)}</p>
{''.join(sections)}</body></html>
"""
    atomic_write_text(path, page)
