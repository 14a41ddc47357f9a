"""Checks on the image data of a collection, before any processing starts.

:func:`check_collection_data` reads every image of a collection (one volume at a time, so a
large series never sits in memory at once) and raises an :class:`~qmriprep.errors.InputError`
naming the file for: an empty or unreadable file, the wrong number of dimensions or volumes,
images of one series on different grids, a volume mostly NaN/inf, all zeros or constant, a
and a TB1map whose values contradict its ``Units`` (median
far from 1 as a fraction) or are negative; a few NaN/inf voxels are reported for masking, a
series whose images are all identical is warned about.
:func:`check_b1_overlap` accepts a B1+ map on another grid (it is resampled) but not one whose
field of view misses the target.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import nibabel as nb
import numpy as np

from ..errors import InputError
from .sidecars import relpath

LOGGER = logging.getLogger("qmriprep")
#: collections whose images are aligned to the first one's grid by the workflow (weighted images:
#: a clinical T2w TSE has its own grid), so they need not share it
ALIGNED_KINDS = ("weighted",)
#: largest difference (mm) between affines of images that must share a grid
AFFINE_TOLERANCE = 1e-3


def _load(path: Path, name: str):
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise InputError(name, "is a broken or self-referencing symbolic link")
    if not path.is_file():
        raise InputError(name, "does not exist")
    if path.stat().st_size == 0:
        raise InputError(name, "is empty (0 bytes)")
    try:
        img = nb.load(str(path), keep_file_open=True)  # volume-by-volume reads of a .gz stay linear
    except Exception as exc:  # nibabel raises many types for a damaged header
        raise InputError(name, f"cannot be read as NIfTI ({exc})") from exc
    return img


def _spatial_shape(img, name: str, n_points: int | None) -> tuple[tuple[int, ...], int]:
    """(3-D grid, number of volumes); trailing singleton axes are ignored."""
    shape = tuple(int(s) for s in img.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) not in (3, 4):
        raise InputError(name, f"has {len(shape)} dimensions {tuple(img.shape)}; expected a 3-D "
                         "volume" + (f" or 4-D with {n_points} volumes" if n_points and n_points > 1 else ""))
    return shape[:3], (shape[3] if len(shape) == 4 else 1)


def _volumes(img, grid: tuple[int, ...], n_vols: int):
    """The volumes of ``img`` one at a time (a 4-D file is sliced, not loaded whole)."""
    if len(img.shape) == 4:
        for v in range(n_vols):
            yield np.asanyarray(img.dataobj[..., v])
    else:
        data = np.asanyarray(img.dataobj).reshape(grid + (n_vols,))
        for v in range(n_vols):
            yield data[..., v]


#: phase in radians lies in [-pi, 2 pi] (a little slack for rounding)
PHASE_LIMIT = np.pi + 0.05
#: a volume with more than this share of NaN/inf voxels is refused; fewer are set to 0 (masked)
MAX_NONFINITE = 0.5
#: plausible median B1+ (fraction of nominal) over the non-zero voxels of a TB1map
B1_PLAUSIBLE = (0.2, 5.0)


def _check_values(img, name: str, grid: tuple[int, ...], n_vols: int, *,
                  is_phase: bool = False, constant_ok: bool = False) -> tuple[int, list[str]]:
    """(non-finite voxels, a digest per volume); InputError for a volume that is mostly NaN/inf,
    all zeros (not phase), constant (not phase, unless ``constant_ok``), or phase outside radians."""
    import hashlib

    bad_total, digests = 0, []
    try:
        for v, vol in enumerate(_volumes(img, grid, n_vols)):
            where = f" in volume {v + 1}" if n_vols > 1 else ""
            finite = np.isfinite(vol) if np.issubdtype(vol.dtype, np.inexact) else np.ones(vol.shape, bool)
            bad = int(vol.size - np.count_nonzero(finite))
            if bad > MAX_NONFINITE * vol.size:
                raise InputError(name, f"has {bad} NaN or infinite voxels of {vol.size}{where}; "
                                 "a few are masked, most of an image cannot be")
            bad_total += bad
            values = vol[finite] if bad else vol
            if not is_phase and not np.any(values):
                raise InputError(name, f"is all zeros{where}")
            if not (is_phase or constant_ok) and values.size > 1 and values.min() == values.max():
                raise InputError(name, f"has the same value ({values.flat[0]:.6g}) in every "
                                 f"voxel{where}: not an image")
            if is_phase and values.size and (values.min() < -PHASE_LIMIT or values.max() > 2 * PHASE_LIMIT):
                raise InputError(name, f"phase values span {values.min():.4g} to {values.max():.4g}{where}; "
                                 "BIDS phase images must be in radians (convert e.g. scanner units "
                                 "-4096..4095 or degrees first)")
            digests.append(hashlib.sha1(np.ascontiguousarray(vol).tobytes()).hexdigest())
    except InputError:
        raise
    except Exception as exc:  # truncated or corrupt data block
        raise InputError(name, f"image data cannot be read ({exc})") from exc
    return bad_total, digests


def check_b1_values(img, name: str, scale: float, units: str) -> None:
    """A ready-made TB1map's values agree with its ``Units`` (median B1+ over the non-zero
    voxels near 1 as a fraction) and are not negative (a few negative voxels are masked)."""
    data = np.asanyarray(img.dataobj).astype(np.float64) * scale
    values = data[np.isfinite(data) & (data != 0)]
    if values.size == 0:
        return
    negative = np.count_nonzero(values < 0)
    if negative > 0.01 * values.size:
        raise InputError(name, f"{negative} of {values.size} non-zero voxels are negative; B1+ is a "
                         "positive fraction (or percent) of the nominal flip angle")
    median = float(np.median(values[values > 0])) if negative < values.size else 0.0
    lo, hi = B1_PLAUSIBLE
    if not lo <= median <= hi:
        other = "a fraction ('fraction')" if scale != 1 else "percent ('percent')"
        raise InputError(name, f"median B1+ over the non-zero voxels is {median / scale:.4g} "
                         f"{units}, i.e. {median:.4g} of the nominal flip angle (expected about 1, "
                         f"{lo:g} to {hi:g}): the values look like {other}; fix Units in the sidecar")


def expected_volumes(collection) -> int | None:
    """Volumes each file of ``collection`` must hold: 1 for one file per protocol point, else
    the number of points (a single 4-D file holding the series; every bSSFP part)."""
    protocol = collection.protocol
    n_points = getattr(protocol, "n_points", None)
    if n_points is None:
        return None
    if collection.kind == "bSSFP" or (len(collection.files) == 1 and n_points > 1):
        return n_points
    return 1


def check_collection_data(collection) -> dict:
    """Raise :class:`InputError` for the first problem in the images of ``collection``; return
    ``{path: number of NaN/inf voxels}`` of the files that have a few (to be masked)."""
    if collection.kind == "kspace":
        from ..recon.pipeline import check_calibration, load_collection

        check_calibration(load_collection(collection.files))
        return {}
    root = getattr(collection, "root", None)
    n_vols_expected = expected_volumes(collection)
    reference, digests, nonfinite = None, [], {}
    files = [(f, "_part-phase_" in Path(f).name) for f in collection.files]
    files += [(f, True) for f in collection.phase_files]
    for path, is_phase in files:
        name = relpath(path, root)
        img = _load(path, name)
        grid, n_vols = _spatial_shape(img, name, n_vols_expected)
        if n_vols_expected is not None and n_vols != n_vols_expected:
            want = ("a 3-D volume" if n_vols_expected == 1
                    else f"{n_vols_expected} volumes (one per protocol point)")
            raise InputError(name, f"has {n_vols} volumes {tuple(img.shape)}; expected {want} "
                             f"for this {collection.kind} collection")
        if reference is None:
            reference = (name, grid, img.affine)
        elif collection.kind not in ALIGNED_KINDS:
            _same_grid(collection.kind, name, grid, img.affine, reference)
        bad, volume_digests = _check_values(img, name, grid, n_vols, is_phase=is_phase,
                                            constant_ok=collection.kind == "TB1map")
        if bad:
            nonfinite[Path(path)] = bad
        if not is_phase:
            digests += volume_digests
        if collection.kind == "TB1map":
            check_b1_values(img, name, collection.protocol.scale, collection.protocol.units)
    if len(digests) > 1 and len(set(digests)) == 1:
        LOGGER.warning("%s: all %d images of this %s collection are identical: the series carries "
                       "no contrast, its maps will be meaningless (at their bounds)", reference[0],
                       len(digests), collection.kind)
    return nonfinite


def _same_grid(kind, name, grid, affine, reference) -> None:
    ref_name, ref_grid, ref_affine = reference
    if grid != ref_grid:
        raise InputError(name, f"has grid {grid} but {ref_name} has {ref_grid}; the images "
                         f"of one {kind} collection must share a grid")
    if not np.allclose(affine, ref_affine, atol=AFFINE_TOLERANCE):
        raise InputError(name, f"has a different affine (position/orientation) from "
                         f"{ref_name}; the images of one {kind} collection must share a grid")


def _corners(img) -> np.ndarray:
    """World coordinates (mm) of the 8 outer corners of the voxel grid."""
    shape = np.asarray(img.shape[:3], dtype=float)
    idx = np.array(list(itertools.product(*[(-0.5, s - 0.5) for s in shape])))
    return nb.affines.apply_affine(img.affine, idx)


def check_b1_overlap(b1_img, target_img, *, b1_name: str | None = None) -> float:
    """Fraction of the target's bounding box (world coordinates) covered by the B1+ map's.

    A different grid is fine (the map is resampled); no overlap at all is an
    :class:`InputError` naming the B1+ file. Accepts images or paths.
    """
    if isinstance(b1_img, (str, Path)):
        b1_name = b1_name or str(b1_img)
        b1_img = _load(b1_img, b1_name)
    if isinstance(target_img, (str, Path)):
        target_img = _load(target_img, str(target_img))
    b1_name = b1_name or b1_img.get_filename() or "B1+ map"
    b_lo, b_hi = _corners(b1_img).min(0), _corners(b1_img).max(0)
    t_lo, t_hi = _corners(target_img).min(0), _corners(target_img).max(0)
    overlap = np.clip(np.minimum(b_hi, t_hi) - np.maximum(b_lo, t_lo), 0, None)
    size = np.maximum(t_hi - t_lo, 1e-9)
    fraction = float(np.prod(overlap / size))
    if fraction <= 0:
        target_name = target_img.get_filename() or "the target"
        raise InputError(b1_name, "field of view does not overlap the image it should correct "
                         f"({target_name}): B1+ map spans {np.round(b_lo, 1).tolist()} to "
                         f"{np.round(b_hi, 1).tolist()} mm, target {np.round(t_lo, 1).tolist()} "
                         f"to {np.round(t_hi, 1).tolist()} mm")
    return fraction
