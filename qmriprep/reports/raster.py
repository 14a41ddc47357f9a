"""Report figures drawn straight into pixels with Pillow: tiled slices with a colour bar, and
histograms.

A mosaic is one array of slices coloured through a matplotlib colour map and enlarged by whole
pixels (nearest neighbour), with text drawn by Pillow's bundled font: about 20 ms a figure,
where a matplotlib figure of subplots took 0.5-1 s (measured in ``benchmarks/report_speed.py``).
PNG files carry no date or version, so the same input gives the same bytes.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: pixels of the tallest tile row (tiles are enlarged by whole pixels up to this height)
ROW_PX = 120
#: width of the colour-bar band right of the tiles
BAR_PX = 78
BACKGROUND, TEXT = (0, 0, 0), (255, 255, 255)
#: line colours of the histogram groups (matplotlib's tab10)
GROUP_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]


@lru_cache(maxsize=4)
def font(size: int = 11) -> ImageFont.ImageFont:
    """Pillow's bundled scalable font (no system fonts needed)."""
    return ImageFont.load_default(size=size)


@lru_cache(maxsize=32)
def _lut(cmap: str) -> np.ndarray:
    """256 RGB entries of a matplotlib colour map."""
    from matplotlib import colormaps

    return (colormaps[cmap](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)


def colour(values: np.ndarray, vmin: float, vmax: float, cmap: str) -> np.ndarray:
    """RGB uint8 image of ``values`` in ``[vmin, vmax]`` (clipped); NaN is black."""
    scaled = (np.asarray(values, np.float64) - vmin) / (vmax - vmin if vmax > vmin else 1.0)
    index = np.clip(np.nan_to_num(scaled, nan=0.0) * 255, 0, 255).round().astype(np.uint8)
    rgb = _lut(cmap)[index]
    rgb[~np.isfinite(values)] = BACKGROUND
    return rgb


def enlarge(rgb: np.ndarray, rows: int, aspect: float, row_px: int = ROW_PX) -> Image.Image:
    """``rgb`` enlarged so ``rows`` pixel rows become about ``row_px``; ``aspect`` = voxel
    height / width."""
    factor = max(1, int(row_px // max(rows * aspect, 1)))
    size = (rgb.shape[1] * factor, max(1, int(round(rgb.shape[0] * factor * aspect))))
    return Image.fromarray(rgb).resize(size, Image.Resampling.NEAREST)


def label(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, size: int = 11) -> None:
    """White text on a black box (readable on any image)."""
    box = draw.textbbox(xy, text, font=font(size))
    draw.rectangle((box[0] - 2, box[1] - 1, box[2] + 2, box[3] + 1), fill=BACKGROUND)
    draw.text(xy, text, fill=TEXT, font=font(size))


def colour_bar(height: int, vmin: float, vmax: float, cmap: str, units: str) -> Image.Image:
    """A vertical colour bar with three tick labels, its units above."""
    band = Image.new("RGB", (BAR_PX, height), BACKGROUND)
    top, bottom = 20, max(height - 8, 36)
    ramp = np.linspace(vmax, vmin, bottom - top)[:, None].repeat(12, axis=1)
    band.paste(Image.fromarray(colour(ramp, vmin, vmax, cmap)), (6, top))
    draw = ImageDraw.Draw(band)
    draw.text((4, 3), units[:12], fill=TEXT, font=font(10))
    for value, y in ((vmax, top), ((vmin + vmax) / 2, (top + bottom) // 2), (vmin, bottom)):
        draw.line((18, y, 22, y), fill=TEXT)
        draw.text((24, y - 6), f"{value + 0.0:.3g}", fill=TEXT, font=font(10))
    return band


def save(image: Image.Image, out_file) -> Path:
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    image.save(out_file, format="PNG", optimize=False, compress_level=6)
    return out_file


def histogram_png(groups: dict[str, np.ndarray], edges: np.ndarray, units: str, title: str,
                  out_file) -> Path:
    """Histogram of each group's values over ``edges`` (first group filled, with its median)."""
    width, height, left, bottom, top = 420, 170, 46, 30, 20 if title else 8
    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    counts = {name: np.histogram(np.clip(v, edges[0], edges[-1]), bins=edges)[0]
              for name, v in groups.items() if np.size(v)}
    peak = max((int(c.max()) for c in counts.values()), default=0) or 1
    plot_w, plot_h = width - left - 10, height - bottom - top
    x_of = lambda value: left + (value - edges[0]) / (edges[-1] - edges[0]) * plot_w  # noqa: E731
    y_of = lambda count: top + plot_h - count / peak * plot_h  # noqa: E731
    for i, (name, count) in enumerate(counts.items()):
        rgb = GROUP_COLOURS[i % len(GROUP_COLOURS)]
        points = [(x_of(edges[0]), y_of(0))]
        for j, c in enumerate(count):
            points += [(x_of(edges[j]), y_of(c)), (x_of(edges[j + 1]), y_of(c))]
        points.append((x_of(edges[-1]), y_of(0)))
        if i == 0:
            draw.polygon(points, fill=tuple(int(255 - 0.35 * (255 - v)) for v in rgb))
            median = float(np.median(groups[name]))
            draw.line((x_of(median), top, x_of(median), top + plot_h), fill=(0, 0, 0), width=1)
        draw.line(points, fill=rgb, width=1)
        draw.text((left + 6, top + 2 + 12 * i), f"{name} (n={int(count.sum())})", fill=rgb,
                  font=font(10))
    draw.rectangle((left, top, left + plot_w, top + plot_h), outline=(120, 120, 120))
    for value in (edges[0], (edges[0] + edges[-1]) / 2, edges[-1]):
        x = x_of(value)
        draw.text((x, top + plot_h + 3), f"{value:.3g}", fill=(0, 0, 0), font=font(10),
                  anchor="ma")
    draw.text((left + plot_w / 2, height - 2), units, fill=(0, 0, 0), font=font(10), anchor="md")
    draw.text((4, top), f"{peak}", fill=(0, 0, 0), font=font(10))
    draw.text((4, top + plot_h - 10), "0", fill=(0, 0, 0), font=font(10))
    if not counts:
        draw.text((width / 2, height / 2), "no voxels", fill=(0, 0, 0), font=font(11), anchor="mm")
    if title:
        draw.text((width / 2, 3), title[:70], fill=(0, 0, 0), font=font(11), anchor="ma")
    return save(image, out_file)
