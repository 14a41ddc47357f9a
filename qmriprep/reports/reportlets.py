"""The reportlets of one collection (listed in :mod:`.spec`): ``(page, group) -> HTML``, ``""``
when there is nothing to show."""

from __future__ import annotations

import os
from pathlib import Path

from ..bids.names import parse_name
from .analysis import fmt
from .collect import Group, Page, estimator_of
from .curves import curve_svg
from .html import esc, fname, table
from .sections import map_html
from . import views


def _img(page: Page, path, alt: str) -> str:
    rel = Path(os.path.relpath(path, page.output_dir)).as_posix()
    return f'<figure><img src="{esc(rel)}" alt="{esc(alt)}" loading="lazy"></figure>'


def _safe(page: Page, make, *args):
    """A view that failed becomes a note, never a lost report; through the page's figure cache."""
    try:
        if page.cache is not None:
            return page.cache.call(make.__name__, make, args), None
        return make(*args), None
    except Exception as exc:  # noqa: BLE001 - any failure is shown, not raised
        return None, f"{type(exc).__name__}: {exc}"


def decision(page: Page, group: Group) -> str:
    """Status, reason, estimators, protocol, B1+ decision and files of the collection."""
    d = group.decision
    rows = [["Status", f'<span class="status-{esc(str(d.get("status", "")).split()[0])}">'
                       f'{esc(d.get("status", ""))}</span>'],
            ["Why", esc(d.get("reason", ""))]]
    for key, title in (("estimators", "Estimators"), ("protocol", "Protocol"), ("b1", "B1+")):
        if d.get(key):
            rows.append([title, esc(d[key])])
    noise = {(i.entities.get("rec"), i.sidecar.get("NoiseSigma"), i.sidecar.get("SNR"),
              i.sidecar.get("NoiseMethod")) for i in group.maps if "NoiseSigma" in i.sidecar}
    for rec, sigma, snr, method in sorted(noise, key=str):
        rows.append([f"Noise{esc(f' (rec-{rec})' if rec else '')}",
                     f"&sigma; = {fmt(float(sigma))}, SNR = "
                     f"{fmt(float(snr)) if isinstance(snr, (int, float)) else esc(snr)} "
                     f"({esc(method or '')})"])
    coils = {s.sidecar.get("CoilSensitivities") for s in group.series} - {None}
    if coils:
        rows.append(["Coil sensitivities", esc("; ".join(sorted(coils)))])
    files = d.get("files") or []
    rows.append(["Files", f"{len(files)}: " + ", ".join(fname(Path(str(f)).name)
                                                        for f in files[:4])
                 + (" ..." if len(files) > 4 else "")])
    return table(None, rows)


def inputs(page: Page, group: Group) -> str:
    """Central slice of every image of the series (k-space: shown with the reconstructions)."""
    item = group.item
    if item is None or group.kind == "kspace" or not item.collection.files:
        return ""
    col = item.collection
    labels = [Path(str(f)).name.split("_")[-2] if "_" in Path(str(f)).name else str(i + 1)
              for i, f in enumerate(col.files)]
    out = page.fig_dir / f"{col.name}_inputs.png"
    path, error = _safe(page, views.series_inputs, col.files, labels, out)
    if error:
        return f'<p class="note">Inputs could not be drawn ({esc(error)}).</p>'
    return _img(page, path, f"inputs of {col.name}") if path else ""


def reconstruction(page: Page, group: Group) -> str:
    """Zero-filled vs each reconstruction, sampling mask and coil maps (k-space collections)."""
    if group.kind != "kspace" or group.item is None:
        return ""
    firsts = {}
    for image in sorted(group.series, key=lambda i: i.path.name):
        method = image.entities.get("rec")
        if method and method not in firsts and image.entities.get("desc") is None:
            firsts[method] = image.path
    out = page.fig_dir / f"{group.item.collection.name}_recon.png"
    result, error = _safe(page, views.kspace, group.item.collection.files, firsts, out)
    if result is None:
        return f'<p class="note">The raw k-space could not be shown ({esc(error or "unreadable")}).</p>'
    path, how = result
    return (_img(page, path, f"reconstructions of {group.name}")
            + f'<p class="meta">First contrast, central slice. Coil sensitivities: {esc(how)}.</p>')


def registration(page: Page, group: Group) -> str:
    """Edges of the B1+ reference over the series' first image, before and after alignment."""
    item = group.item
    b1 = getattr(item, "b1", None)
    if b1 is None or b1.map is None or group.kind == "kspace":
        return ""
    out = page.fig_dir / f"{item.collection.name}_b1reg.png"
    xfm = _b1_transform(page, item) if b1.registration == "rigid" else None
    path, error = _safe(page, views.registration, item.collection.files[0], b1.map.files[0], xfm, out)
    if error:
        return f'<p class="note">Registration check failed ({esc(error)}).</p>'
    return (_img(page, path, f"B1+ registration of {group.name}")
            + f'<p class="meta">{esc(b1.describe())}; edges of <code>'
              f"{esc(Path(str(b1.map.files[0])).name)}</code> over the first image.</p>")


def _b1_transform(page: Page, item) -> Path | None:
    """The B1+ transform the workflow wrote for the collection of ``item`` (None if absent)."""
    col, keys = item.collection, ("sub", "ses", "acq", "rec", "run")
    want = {k: v for k, v in parse_name(col.files[0]).entities.items() if k in keys}
    pattern = f"*_from-{item.b1.map.kind}_to-{col.series_kind}_mode-image_xfm.txt"
    for path in sorted(Path(page.fig_dir).parent.rglob(pattern)):
        if {k: v for k, v in parse_name(path).entities.items() if k in keys} == want:
            return path
    return None


def cards(page: Page, images) -> str:
    cards = []
    for image in images:
        rep = page.report(image)
        if rep is not None:
            cards.append(map_html(rep, page.output_dir, f"map-{image.stem}"))
    return '<div class="cards">' + "\n".join(cards) + "</div>" if cards else ""


def maps(page: Page, group: Group) -> str:
    """A card per parameter map (mosaic with colour bar and units; statistics folded)."""
    return cards(page, group.maps + group.b1)


def uncertainty(page: Page, group: Group) -> str:
    """Standard-deviation maps and fit-quality (RMSE) maps."""
    return cards(page, group.sd + group.quality)


def training(page: Page, group: Group) -> str:
    """Training curves of the learned estimators and reconstructions of the collection."""
    seen, parts = set(), []
    for image in group.maps + group.series:
        curve = curve_svg(image.sidecar)
        key = (estimator_of(image), image.entities.get("rec"), str(image.sidecar.get("TrainingCurve")))
        if curve and key not in seen:
            seen.add(key)
            parts.append(f"<h5>{fname(image.stem)}</h5>{curve}")
        elif not curve and "EpochsRun" in image.sidecar and key not in seen:
            seen.add(key)  # e.g. ZS-SSL: a summary of the training, no per-epoch curve recorded
            side = image.sidecar
            parts.append(f'<p class="meta">{esc(side.get("ReconstructionMethod") or estimator_of(image))}: '
                         f"{esc(side['EpochsRun'])} epochs, kept epoch {esc(side.get('BestEpoch', '?'))} "
                         f"(held-out loss {esc(side.get('BestValidationLoss', '?'))}); no per-epoch "
                         "curve in the sidecar.</p>")
    return "\n".join(parts)


def differences(page: Page, group: Group) -> str:
    """Each method's map minus the first method's, per suffix (and per reconstruction)."""
    rows, figs = [], []
    for other, ref, what in _pairs(group):
        mask = views.mask_of(_mask_path(page, ref), ref.path)
        units = page.report(ref).units if page.report(ref) else ""
        out = page.fig_dir / f"{other.stem}_minus_{estimator_of(ref)}{ref.entities.get('rec', '')}.png"
        result, _ = _safe(page, views.difference, ref.path, other.path, mask, units, out)
        if not result:
            continue
        path, stats = result
        label = f"{other.suffix}: {what}"
        rows.append([esc(label), fmt(stats["median"]), f"{stats['mad_percent']:.3g}", stats["n"]])
        figs.append(f"<h5>{esc(label)} ({esc(units)})</h5>" + _img(page, path, label))
    if not rows:
        return ""
    return table(["Difference", "Median", "Median |difference| (% of reference)", "Voxels"], rows,
                 numeric=(1, 2, 3)) + "\n".join(figs)


def _pairs(group: Group):
    """``(other, reference, label)``: estimators against the first of the same suffix and
    reconstruction; reconstructions against the first for the same estimator."""
    by_key = {}
    for image in group.maps:
        by_key.setdefault((image.suffix, image.entities.get("rec"), image.entities.get("acq")),
                          []).append(image)
    for (suffix, rec, _), images in by_key.items():
        if suffix in ("M0map", "TB1map"):
            continue
        for other in images[1:]:
            yield other, images[0], f"{estimator_of(other)} − {estimator_of(images[0])}" + (
                f" (rec-{rec})" if rec else "")
    recs = sorted({i.entities.get("rec") for i in group.maps} - {None})
    for image in group.maps:
        if image.entities.get("rec") in recs[1:] and image.suffix not in ("M0map", "TB1map"):
            ref = next((i for i in group.maps if i.entities.get("rec") == recs[0]
                        and i.suffix == image.suffix and estimator_of(i) == estimator_of(image)
                        and i.entities.get("acq") == image.entities.get("acq")), None)
            if ref is not None:
                yield image, ref, f"rec-{image.entities['rec']} − rec-{recs[0]} ({estimator_of(image)})"


def _mask_path(page: Page, image):
    rep = page.report(image)
    if rep is None or not rep.supports:
        return None
    path = image.path.with_name(rep.supports[0])
    return path if path.exists() else None
