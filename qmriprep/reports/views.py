"""Images the report draws besides the maps: a series' inputs, method-vs-method differences,
B1+ registration overlays and k-space reconstructions (zero-filled, CG-SENSE, ZS-SSL) with the
sampling mask and coil maps. Each function loads what it needs, writes one PNG of tiles and
returns its path (or None when there is nothing to draw).
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nb
import numpy as np

from . import figures

#: tiles per row in the comparison figures
NCOLS = 6


def canonical(path_or_img) -> nb.Nifti1Image:
    """A 3-D RAS+ image (first volume; magnitude of complex data)."""
    img = nb.load(str(path_or_img)) if isinstance(path_or_img, (str, Path)) else path_or_img
    data = np.asanyarray(img.dataobj)
    data = np.abs(data) if np.iscomplexobj(data) else data
    data = data.reshape(data.shape[:3] + (-1,))[..., 0] if data.ndim > 3 else data
    data = data.reshape(data.shape + (1,) * (3 - data.ndim)).astype(np.float32)
    return nb.as_closest_canonical(nb.Nifti1Image(data, img.affine))


def middle(img: nb.Nifti1Image) -> tuple[np.ndarray, float]:
    """The central slice along :func:`figures.slice_axis` (rows top-down) and its voxel aspect."""
    data = np.asanyarray(img.dataobj)
    axis = figures.slice_axis(data.shape)
    tile = np.take(data, data.shape[axis] // 2, axis=axis).T[::-1]
    return tile, figures.voxel_aspect(img.header.get_zooms(), axis)


def series_inputs(files, labels, out_file) -> Path | None:
    """Central slice of each image of a series (at most :data:`NCOLS` * 2, evenly picked)."""
    files = list(files)
    if not files:
        return None
    picks = np.unique(np.linspace(0, len(files) - 1, min(len(files), 2 * NCOLS)).round().astype(int))
    tiles, aspect = [], 1.0
    for i in picks:
        tile, aspect = middle(canonical(files[i]))
        tiles.append(tile)
    return figures.plot_tiles(tiles, [labels[i] for i in picks], out_file,
                              grid=figures.Grid(NCOLS, aspect))


def difference(reference: Path, other: Path, mask: np.ndarray | None, units: str,
               out_file) -> tuple[Path, dict] | None:
    """Mosaic of ``other - reference`` (same grid) and its summary in the mask: median
    difference and median absolute difference relative to the reference's median (%)."""
    a, b = canonical(reference), canonical(other)
    if a.shape != b.shape or not np.allclose(a.affine, b.affine, atol=1e-3):
        return None
    da, db = np.asanyarray(a.dataobj), np.asanyarray(b.dataobj)
    inside = (da != 0) & (db != 0) & np.isfinite(da) & np.isfinite(db)
    if mask is not None and mask.shape == inside.shape:
        inside &= mask
    if not inside.any():
        return None
    diff = np.where(inside, db - da, np.nan).astype(np.float32)
    bound = float(np.percentile(np.abs(diff[inside]), 99)) or 1.0
    display = figures.Display(-bound, bound, "RdBu_r", units, False)
    tiles, labels, axis = figures.montage(diff, inside, 6)
    path = figures.plot_tiles(tiles, labels, out_file, display=display, grid=figures.Grid(
        aspect=figures.voxel_aspect(a.header.get_zooms(), axis)))
    ref_median = float(np.median(np.abs(da[inside]))) or 1.0
    return path, {"median": float(np.median(diff[inside])),
                  "mad_percent": 100.0 * float(np.median(np.abs(diff[inside]))) / ref_median,
                  "n": int(inside.sum())}


def mask_of(path: Path | None, like: Path) -> np.ndarray | None:
    """A mask file as booleans in the canonical orientation of ``like`` (None if grids differ)."""
    if path is None:
        return None
    mask, ref = canonical(path), canonical(like)
    if mask.shape != ref.shape:
        return None
    return np.asanyarray(mask.dataobj) > 0


def registration(target: Path, moving: Path, transform: Path | None, out_file) -> Path:
    """The target's central slice with the edges of the B1+ reference image brought by the
    scanner coordinates (before) and, given the ``transform`` file the workflow wrote
    (``..._from-<B1>_to-<series>_mode-image_xfm.txt``), by that registration."""
    from ..registration import itk, rigid

    fixed, moving_img = canonical(target), canonical(moving)
    base = _scaled(np.asanyarray(fixed.dataobj))
    steps = [("scanner coordinates", np.eye(4))]
    if transform is not None:
        steps.append(("rigid registration", itk.load_transform(transform)))
    tiles, edges, labels, aspect = [], [], [], 1.0
    for name, matrix in steps:
        onto = np.asanyarray(rigid.resample_to(moving_img, fixed, transform=matrix).dataobj)
        tile, aspect = middle(nb.Nifti1Image(base, fixed.affine))
        edge, _ = middle(nb.Nifti1Image(_edges(onto).astype(np.float32), fixed.affine))
        tiles.append(tile)
        edges.append(edge)
        labels.append(name)
    return figures.plot_tiles(tiles, labels, out_file, grid=figures.Grid(2, aspect, 240),
                              overlays=edges)


def kspace(files, recons: dict, out_file) -> tuple[Path, str] | None:
    """Central slice of the first contrast: zero-filled (root-sum-of-squares of the coils), each
    reconstruction in ``recons`` (``{method: first image}``), the sampling mask and the coil
    sensitivities; and the coil-map method. None when the raw files cannot be read."""
    from ..recon.fft import centred_fft
    from ..recon.pipeline import coil_description, coil_maps, load_collection

    try:
        col = load_collection(files)
        maps = coil_maps(col)
        how = coil_description(col)
    except Exception:  # noqa: BLE001 - the report shows what it can
        return None
    scan = col.scans[0]
    coils = centred_fft(col.y[:, 0], axes=(-2, -1), inverse=True)
    volumes = {"zero-filled": np.sqrt((np.abs(coils) ** 2).sum(axis=1))}
    tiles, labels, aspect = [], [], 1.0
    for name, volume in volumes.items():
        tile, aspect = middle(canonical(nb.Nifti1Image(scan.to_volume(volume), scan.affine)))
        tiles.append(tile)
        labels.append(name)
    for name, path in recons.items():
        tile, aspect = middle(canonical(path))
        tiles.append(tile)
        labels.append(name)
    mask = np.broadcast_to(col.mask[:, 0], volumes["zero-filled"].shape)
    tile, _ = middle(canonical(nb.Nifti1Image(scan.to_volume(mask.astype(np.float32)), scan.affine)))
    tiles.append(tile)
    labels.append(f"sampling mask (R = {col.acceleration[0]:.3g})")
    for c in range(min(maps.shape[1], 2 * NCOLS - len(tiles))):
        tile, _ = middle(canonical(nb.Nifti1Image(scan.to_volume(np.abs(maps[:, c])), scan.affine)))
        tiles.append(tile)
        labels.append(f"coil {c + 1}")
    return figures.plot_tiles(tiles, labels, out_file, grid=figures.Grid(NCOLS, aspect)), how


def _scaled(data: np.ndarray) -> np.ndarray:
    hi = float(np.percentile(data, 99)) or 1.0
    return np.clip(data / hi, 0, 1)


def _edges(data: np.ndarray) -> np.ndarray:
    """Voxels on the boundary of the image's foreground (above 20 % of its 99th percentile)."""
    from scipy import ndimage

    fg = data > 0.2 * (float(np.percentile(data, 99)) or 1.0)
    return fg & ~ndimage.binary_erosion(fg)
