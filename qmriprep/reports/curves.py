"""Training curves of learned estimators as inline SVG (no extra files, no plotting library).

Any sidecar holding ``TrainingCurve`` — ``{"epoch": [...], "train_loss": [...], "val_loss": [...]}``
(:func:`qmriprep.nn.scancnn._record` writes it) — gets a log-scale plot of its losses, with the
epoch whose state was kept (``TrainingBestEpoch``) marked.
"""

from __future__ import annotations

import math

from .html import esc

WIDTH, HEIGHT, PAD = 420, 160, 32
COLOURS = {"train_loss": "#1f77b4", "val_loss": "#d62728"}


def _points(xs, ys, x_range, y_range) -> str:
    (x0, x1), (y0, y1) = x_range, y_range
    sx = (WIDTH - 2 * PAD) / max(x1 - x0, 1e-12)
    sy = (HEIGHT - 2 * PAD) / max(y1 - y0, 1e-12)
    return " ".join(f"{PAD + (x - x0) * sx:.1f},{HEIGHT - PAD - (y - y0) * sy:.1f}" for x, y in zip(xs, ys))


def curve_svg(sidecar: dict) -> str:
    """``<figure>`` with the training and held-out losses of ``sidecar`` (empty without a curve)."""
    curve = sidecar.get("TrainingCurve")
    if not isinstance(curve, dict) or not curve.get("epoch"):
        return ""
    epochs = curve["epoch"]
    series = {k: [math.log10(v) if v and v > 0 else None for v in curve.get(k) or []] for k in COLOURS}
    values = [v for s in series.values() for v in s if v is not None]
    if not values:
        return ""
    xr, yr = (min(epochs), max(epochs)), (min(values), max(values))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'role="img" aria-label="training curve">',
             f'<rect x="{PAD}" y="{PAD}" width="{WIDTH - 2 * PAD}" height="{HEIGHT - 2 * PAD}" '
             'fill="none" stroke="#999"/>']
    for key, ys in series.items():
        pts = [(x, y) for x, y in zip(epochs, ys) if y is not None]
        if pts:
            parts.append(f'<polyline fill="none" stroke="{COLOURS[key]}" stroke-width="1.5" points="'
                         + _points(*zip(*pts), xr, yr) + '"/>')
    best = sidecar.get("TrainingBestEpoch")
    if best in epochs:
        x = _points([best], [yr[0]], xr, yr).split(",")[0]
        parts.append(f'<line x1="{x}" x2="{x}" y1="{PAD}" y2="{HEIGHT - PAD}" stroke="#2ca02c" '
                     'stroke-dasharray="4 3"/>')
    parts.append(f'<text x="{PAD}" y="{HEIGHT - 8}" font-size="11">epoch {xr[0]}&#8211;{xr[1]}; '
                 f'log10 loss {yr[0]:.2f}&#8211;{yr[1]:.2f}</text></svg>')
    caption = (f"Training curve: loss (blue), held-out error (red), kept epoch {esc(best)} (green); "
               f"stopped by {esc(sidecar.get('TrainingStopped', '?'))}")
    return "<figure>" + "".join(parts) + f"<figcaption>{caption}</figcaption></figure>"
