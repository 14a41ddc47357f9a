"""Figures for the per-subject report: slice mosaics and histograms of parameter maps.

Pure plotting on arrays: callers load images and pass numpy arrays, voxel sizes and a
:class:`Display` (range, colormap, unit label).  Pixels are drawn by :mod:`.raster` (Pillow,
matplotlib colour maps only), so figures can be written from any thread or process, fast, and
the same input always gives the same PNG bytes.

Display ranges are fixed per BIDS suffix (physiological ranges in SI units from
:mod:`qmriprep.suffixes`, scaled to the sidecar's ``Units``) so maps from different subjects and
runs look alike in the reports; maps of unknown kind, signal-like maps (M0) and fit-quality maps
(RMSE) use robust percentiles instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .. import suffixes
from . import raster

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


def montage(data: np.ndarray, mask: np.ndarray, n_slices: int = 8) -> tuple[list, list, int]:
    """Slices of a 3D map (RAS) cut along :func:`slice_axis`, cropped to the mask's bounding box:
    ``(tiles, labels, axis)`` with each tile's rows running top-down (anterior or superior up)."""
    data = np.asarray(data, dtype=np.float32)
    mask = np.asarray(mask, dtype=bool)
    axis = slice_axis(data.shape)
    slices = choose_slices(mask, axis, n_slices)
    box = _crop_box(mask, axis)
    tiles = [np.take(data[box], index, axis=axis).T[::-1] for index in slices]
    return tiles, [f"{'xyz'[axis]}={index}" for index in slices], axis


def voxel_aspect(zooms: tuple[float, ...], axis: int) -> float:
    """Height/width of one voxel of a slice orthogonal to ``axis`` (for ``imshow(aspect=...)``)."""
    zooms = tuple(zooms[:3]) + (1.0,) * (3 - len(zooms[:3]))
    first, second = (a for a in range(3) if a != axis)
    return float(zooms[second] / zooms[first]) if zooms[first] else 1.0


def plot_mosaic(
    data: np.ndarray,
    mask: np.ndarray,
    zooms: tuple[float, ...],
    display: Display,
    out_file: str | Path,
    *,
    title: str = "",
    n_slices: int = 6,
    ncols: int = 6,
) -> Path:
    """Write a PNG mosaic of slices of a 3D map (RAS orientation expected) with a colour bar.

    ``mask`` chooses which slices to show and crops the in-plane field of view; the map itself is
    drawn unmasked.  Non-finite voxels are drawn black.  2D-ish volumes ``(nx, ny, 1)`` give a
    single panel.  One image of tiled slices (``ncols`` per row) in one axes: fast to draw.
    """
    tiles, labels, axis = montage(data, mask, n_slices)
    return plot_tiles(tiles, labels, out_file, display=display,
                      grid=Grid(ncols, voxel_aspect(zooms, axis)), title=title)


def _grid(tiles: list[np.ndarray], ncols: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Tiles (same-shape or not) on one NaN canvas, ``ncols`` per row, 1-voxel gaps; their corners."""
    height = max(t.shape[0] for t in tiles)
    width = max(t.shape[1] for t in tiles)
    ncols = max(1, min(ncols, len(tiles)))
    nrows = int(np.ceil(len(tiles) / ncols))
    canvas = np.full((nrows * (height + 1) - 1, ncols * (width + 1) - 1), np.nan, np.float32)
    corners = []
    for i, tile in enumerate(tiles):
        r, c = divmod(i, ncols)
        y, x = r * (height + 1), c * (width + 1)
        canvas[y:y + tile.shape[0], x:x + tile.shape[1]] = tile
        corners.append((y, x))
    return canvas, corners


@dataclass(frozen=True)
class Grid:
    """How tiles are laid out: ``ncols`` per row, voxel ``aspect`` (height/width), ``row_px`` high."""

    ncols: int = 8
    aspect: float = 1.0
    row_px: int = raster.ROW_PX


def plot_tiles(tiles, labels, out_file, *, display: Display | None = None, grid: Grid = Grid(),
               title: str = "", overlays=None) -> Path:
    """Write 2-D ``tiles`` (rows top-down) side by side as one PNG, each with its label.

    With a ``display``, one range, colour map and a colour bar with its units; without, each tile
    is scaled to its own 1st-99th percentiles in grey (images in arbitrary units). ``overlays``:
    boolean tiles painted red (e.g. edges of another image).
    """
    ncols = grid.ncols
    if display is None:
        tiles = [_unit_scaled(t) for t in tiles]
    canvas, corners = _grid([np.asarray(t, np.float32) for t in tiles], ncols)
    rows = max(t.shape[0] for t in tiles)
    vmin, vmax = (display.vmin, display.vmax) if display is not None else (0.0, 1.0)
    cmap = display.cmap if display is not None else "gray"
    rgb = raster.colour(canvas, vmin, vmax, cmap)
    if overlays is not None:
        painted, _ = _grid([np.asarray(o, np.float32) for o in overlays], ncols)
        rgb[painted > 0.5] = (255, 40, 40)
    picture = raster.enlarge(rgb, rows, grid.aspect, grid.row_px)
    scale_x = picture.width / canvas.shape[1]
    scale_y = picture.height / canvas.shape[0]
    head = 16 if title else 0
    bar = raster.BAR_PX if display is not None else 0
    page = Image.new("RGB", (picture.width + bar, picture.height + head), raster.BACKGROUND)
    page.paste(picture, (0, head))
    draw = ImageDraw.Draw(page)
    for (y, x), text in zip(corners, labels):
        if text:
            raster.label(draw, (int(x * scale_x) + 3, int(y * scale_y) + head + 2), text)
    if title:
        draw.text((4, 2), title[:140], fill=raster.TEXT, font=raster.font(11))
    if display is not None:
        page.paste(raster.colour_bar(picture.height, vmin, vmax, cmap, display.units),
                   (picture.width, head))
    return raster.save(page, out_file)


def _unit_scaled(tile: np.ndarray) -> np.ndarray:
    """A tile scaled to [0, 1] by its 1st and 99th percentiles of finite values."""
    tile = np.asarray(tile, dtype=np.float32)
    finite = tile[np.isfinite(tile)]
    if finite.size == 0:
        return tile
    lo, hi = np.percentile(finite, [1, 99])
    return (tile - lo) / (hi - lo if hi > lo else 1.0)


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
    edges = np.linspace(display.vmin, display.vmax, bins + 1)
    values = {name: np.asarray(v, dtype=np.float64).ravel() for name, v in groups.items()}
    return raster.histogram_png(values, edges, display.units, title, out_file)
