"""Figures for the per-subject report: slice mosaics and histograms of parameter maps.

Pure plotting on arrays: callers load images and pass numpy arrays, voxel sizes and a
:class:`Display` (range, colormap, unit label).  Matplotlib is used through its object API with
the Agg canvas (no ``pyplot``, no global backend switch), so figures can be written from any
thread or process, and the same input always gives the same PNG bytes.

Display ranges are fixed per BIDS suffix (physiological ranges in SI units from
:mod:`qmriprep.suffixes`, scaled to the sidecar's ``Units``) so maps from different subjects and
runs look alike in the reports; maps of unknown kind, signal-like maps (M0) and fit-quality maps
(RMSE) use robust percentiles instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .. import suffixes

#: resolution of every report figure (dots per inch)
DPI = 80
#: PNG metadata written with every figure (no version or date: deterministic bytes)
_PNG_METADATA = {"Software": None}

#: how the report writes a unit taken from the suffix table
_UNIT_LABELS = {"arbitrary": "a.u."}

#: factor from the SI unit to a sidecar unit (lower-case keys)
_UNIT_SCALE = {
    "s": 1.0,
    "ms": 1e3,
    "us": 1e6,
    "1/s": 1.0,
    "s-1": 1.0,
    "hz": 1.0,
    "1/ms": 1e-3,
    "ms-1": 1e-3,
    "khz": 1e-3,
    "percent": 100.0,
    "%": 100.0,
    "pct": 100.0,
}


@dataclass(frozen=True)
class Display:
    """How one map is drawn: value range, colormap and the unit label on the colorbar."""

    vmin: float
    vmax: float
    cmap: str
    units: str
    fixed: bool  #: True if the range is the suffix's fixed physiological range


def is_fit_quality(suffix: str, desc: str | None) -> bool:
    """Whether a map is a goodness-of-fit map (RMSE, residual, chi-square)."""
    text = f"{desc or ''} {suffix}".lower()
    return any(word in text for word in ("rmse", "residual", "chi2", "chisq", "fitquality"))


def infer_units(suffix: str, units: str | None, values: np.ndarray) -> tuple[str, bool]:
    """Units of a map and whether they were assumed (sidecar without ``Units``).

    The unit assumed is the suffix table's; a B1+ map (percent in the table) is taken as percent
    when its median exceeds 10, else as a fraction.
    """
    if units:
        return str(units), False
    assumed = suffixes.units(suffix)
    if assumed == "percent":
        median = float(np.median(values)) if values.size else 1.0
        return ("percent" if median > 10 else "fraction"), True
    return _UNIT_LABELS.get(assumed, assumed), True


def robust_range(values: np.ndarray) -> tuple[float, float, bool]:
    """Percentile range of ``values`` and whether it is symmetric about zero (signed data)."""
    if values.size == 0:
        return 0.0, 1.0, False
    lo, hi = (float(v) for v in np.percentile(values, [1, 99]))
    if lo < 0 < hi and min(-lo, hi) > 0.05 * max(-lo, hi):
        bound = float(np.percentile(np.abs(values), 99))
        return -bound, bound, True
    vmin, vmax = (0.0, hi) if lo >= 0 else ((lo, 0.0) if hi <= 0 else (lo, hi))
    if vmax <= vmin:
        pad = abs(vmin) * 0.1 or 1.0
        vmin, vmax = vmin - pad, vmax + pad
    return vmin, vmax, False


def display_for(suffix: str, desc: str | None, units: str, values: np.ndarray) -> Display:
    """Display settings for a map of ``suffix`` in ``units``, given its in-mask ``values``."""
    if is_fit_quality(suffix, desc):
        _, hi, _ = robust_range(np.abs(values))
        return Display(0.0, hi, "magma", units, False)
    spec = suffixes.SUFFIXES.get(suffix)
    fixed, cmap = (spec.display, spec.cmap) if spec else (None, None)
    scale = _UNIT_SCALE.get(units.strip().lower())
    if fixed is not None and scale is None and units.strip().lower() == "fraction":
        scale = 1.0
    if fixed is not None and scale is not None:
        return Display(fixed[0] * scale, fixed[1] * scale, cmap, units, True)
    vmin, vmax, signed = robust_range(values)
    return Display(vmin, vmax, cmap or ("RdBu_r" if signed else "gray"), units, False)


def choose_slices(mask: np.ndarray, axis: int, n_slices: int) -> list[int]:
    """Up to ``n_slices`` evenly spaced slice indices along ``axis`` covering the mask."""
    size = mask.shape[axis]
    other = tuple(a for a in range(mask.ndim) if a != axis)
    occupied = np.flatnonzero(mask.any(axis=other)) if mask.any() else np.arange(size)
    first, last = int(occupied[0]), int(occupied[-1])
    if last - first + 1 <= n_slices:
        return list(range(first, last + 1))
    # leave out the outermost slices of the mask, which show little
    margin = (last - first) / (n_slices + 1) / 2
    picks = np.linspace(first + margin, last - margin, n_slices)
    return sorted({int(round(p)) for p in picks})


def slice_axis(shape: tuple[int, ...]) -> int:
    """Axis to cut along: the singleton axis of a 2D-ish volume, else the last (axial in RAS)."""
    singletons = [axis for axis, size in enumerate(shape[:3]) if size == 1]
    return singletons[0] if singletons else 2


def _crop_box(mask: np.ndarray, axis: int, pad: int = 2) -> tuple[slice, ...]:
    """Bounding box of the mask in the plane orthogonal to ``axis`` (full extent if empty)."""
    box = []
    for a in range(3):
        if a == axis or not mask.any():
            box.append(slice(None))
            continue
        other = tuple(b for b in range(3) if b != a)
        idx = np.flatnonzero(mask.any(axis=other))
        box.append(slice(max(int(idx[0]) - pad, 0), int(idx[-1]) + pad + 1))
    return tuple(box)


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, out_file: Path) -> Path:
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_file, format="png", dpi=DPI, metadata=_PNG_METADATA)
    return out_file


def plot_mosaic(
    data: np.ndarray,
    mask: np.ndarray,
    zooms: tuple[float, ...],
    display: Display,
    out_file: str | Path,
    *,
    title: str = "",
    n_slices: int = 8,
    ncols: int = 4,
) -> Path:
    """Write a PNG mosaic of slices of a 3D map (RAS orientation expected) with a colorbar.

    ``mask`` chooses which slices to show and crops the in-plane field of view; the map itself is
    drawn unmasked.  Non-finite voxels are drawn black.  2D-ish volumes ``(nx, ny, 1)`` give a
    single panel.
    """
    data = np.asarray(data, dtype=np.float32)
    mask = np.asarray(mask, dtype=bool)
    axis = slice_axis(data.shape)
    slices = choose_slices(mask, axis, n_slices)
    box = _crop_box(mask, axis)
    data, mask = data[box], mask[box]
    in_plane = [a for a in range(3) if a != axis]
    zooms = tuple(zooms[:3]) + (1.0,) * (3 - len(zooms[:3]))
    aspect = float(zooms[in_plane[1]] / zooms[in_plane[0]]) if zooms[in_plane[0]] else 1.0

    nrows = int(np.ceil(len(slices) / max(ncols, 1)))
    ncols = int(np.ceil(len(slices) / nrows))  # balanced rows: 6 slices give 2 x 3
    panel = 1.6
    fig = _new_figure(panel * ncols + 0.9, panel * nrows + (0.3 if title else 0.0))
    fig.patch.set_facecolor("black")
    cmap = _colormap(display.cmap)
    image = None
    for i, index in enumerate(slices):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        plane = np.take(data, index, axis=axis).T  # rows = second in-plane axis (A or S)
        image = ax.imshow(
            plane, cmap=cmap, vmin=display.vmin, vmax=display.vmax, origin="lower",
            aspect=aspect, interpolation="nearest",
        )
        ax.set_axis_off()
        ax.text(0.02, 0.02, f"{'xyz'[axis]}={index}", color="white", fontsize=7,
                transform=ax.transAxes, va="bottom")
    fig.subplots_adjust(left=0.01, right=1 - 0.9 / fig.get_figwidth(), bottom=0.02,
                        top=1 - (0.3 / fig.get_figheight() if title else 0.02),
                        wspace=0.02, hspace=0.02)
    if title:
        fig.suptitle(title, color="white", fontsize=9)
    cax = fig.add_axes((1 - 0.75 / fig.get_figwidth(), 0.1, 0.12 / fig.get_figwidth(), 0.8))
    bar = fig.colorbar(image, cax=cax, extend="both")
    bar.set_label(display.units, color="white", fontsize=8)
    bar.ax.tick_params(colors="white", labelsize=7)
    return _save(fig, out_file)


def _colormap(name: str):
    from matplotlib import colormaps

    return colormaps[name].with_extremes(bad="black")


def plot_histogram(
    groups: dict[str, np.ndarray],
    display: Display,
    out_file: str | Path,
    *,
    title: str = "",
    bins: int = 60,
) -> Path:
    """Write a PNG histogram of the values in each group (e.g. brain mask, GM, WM, CSF).

    Bins span the display range; values outside it are counted in the end bins, so a map in
    the wrong units shows up as two spikes at the edges rather than an empty plot.
    """
    fig = _new_figure(5.0, 2.4)
    ax = fig.add_subplot(1, 1, 1)
    edges = np.linspace(display.vmin, display.vmax, bins + 1)
    drawn = 0
    for i, (name, values) in enumerate(groups.items()):
        values = np.clip(np.asarray(values, dtype=np.float64), edges[0], edges[-1])
        if values.size == 0:
            continue
        drawn += 1
        style = {"histtype": "stepfilled", "alpha": 0.35} if i == 0 else {"histtype": "step"}
        ax.hist(values, bins=edges, label=f"{name} (n={values.size})", linewidth=1.2, **style)
        if i == 0:
            ax.axvline(float(np.median(values)), color="k", linestyle="--", linewidth=1,
                       label="median")
    ax.set_xlim(edges[0], edges[-1])
    ax.set_xlabel(display.units, fontsize=8)
    ax.set_ylabel("voxels", fontsize=8)
    ax.tick_params(labelsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    if drawn:
        ax.legend(fontsize=7, frameon=False)
    else:
        ax.text(0.5, 0.5, "no voxels", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    return _save(fig, out_file)
