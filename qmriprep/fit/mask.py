"""Foreground (head/brain) mask from one magnitude image.

1. Threshold: Otsu (1979, IEEE SMC 9:62) on the log intensities of the median-filtered
   image (the median steadies the histogram; the log makes the two classes, Rician noise
   and tissue, comparable in spread and keeps shaded tissue, e.g. under a weak B1+, in the
   foreground); the unfiltered image is thresholded, so small objects keep their corners.
2. Clean-up with scipy.ndimage: opening (cuts noise specks and thin bridges), largest
   connected component, conditional dilation back into the thresholded mask (undoes the
   erosion of the opening), closing and hole filling, in 3-D and slice by slice so that
   single-slice volumes (nx, ny, 1) are handled.

The same recipe as ``dipy``'s ``median_otsu``, written out so that it also behaves on tiny
and single-slice volumes.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

OPEN_RADIUS_MM = 2.0
CLOSE_RADIUS_MM = 3.0


def otsu_threshold(values, nbins=256):
    """Threshold maximising the between-class variance of a 1-D sample."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0 or values.min() == values.max():
        return float(values.min()) if values.size else 0.0
    hist, edges = np.histogram(values, bins=nbins)
    centers = 0.5 * (edges[:-1] + edges[1:])
    w0 = np.cumsum(hist).astype(np.float64)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centers)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(centers[int(np.argmax(between[:-1]))])


def _ball(radius_vox, shape):
    """Ellipsoidal structuring element, flat along singleton axes."""
    r = [int(rv) if n > 1 else 0 for rv, n in zip(radius_vox, shape)]
    grids = np.ogrid[tuple(slice(-ri, ri + 1) for ri in r)]
    d = sum((g / max(ri, 1)) ** 2 for g, ri in zip(grids, r))
    return d <= 1.0


def _fill_holes(m):
    m = ndimage.binary_fill_holes(m)
    if m.ndim == 3:  # slice-wise too: holes touching the z border in thin volumes
        for k in range(m.shape[2]):
            m[:, :, k] = ndimage.binary_fill_holes(m[:, :, k])
    return m


def _largest_component(m):
    lab, n = ndimage.label(m)
    if n <= 1:
        return m
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return lab == int(np.argmax(sizes))


def foreground_mask(volume, *, voxel_size_mm=None):
    """Boolean foreground mask of a 2-D or 3-D magnitude image (4-D: mean over last axis).

    ``voxel_size_mm`` (scalar or per axis; None = 1 mm) sets the opening/closing radii
    (``OPEN_RADIUS_MM``, ``CLOSE_RADIUS_MM``). Steps that would empty the mask (tiny
    volumes) are skipped. Non-finite values count as background.
    """
    v = np.asarray(volume, dtype=np.float64)
    if v.ndim == 4:
        v = v.mean(-1)
    v = np.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0)
    v = np.abs(v)
    if not np.any(v > 0):
        return np.zeros(v.shape, dtype=bool)
    vs = 1.0 if voxel_size_mm is None else voxel_size_mm
    vs = np.broadcast_to(np.asarray(vs, dtype=np.float64), (v.ndim,))
    med = ndimage.median_filter(v, size=[3 if n >= 3 else 1 for n in v.shape], mode="nearest")
    pos = med[med > 0]
    if pos.size == 0:
        pos = v[v > 0]
    thr = np.exp(otsu_threshold(np.log(pos)))  # log: robust to shading and bright fat/vessels
    m = v > thr  # the median only picks the threshold: thresholding it would erode corners
    if not m.any():  # uniform image
        m = v > 0
    ball = _ball(np.maximum(1, np.round(OPEN_RADIUS_MM / vs)), v.shape)
    opened = ndimage.binary_opening(m, structure=ball)
    if opened.any():
        # largest opened component, then given back the thresholded voxels within the
        # opening radius (conditional dilation): the opening cuts bridges and specks but
        # must not erode corners of small objects
        m = m & ndimage.binary_dilation(_largest_component(opened), structure=ball)
    m = _largest_component(m)
    pad = [(int(np.round(CLOSE_RADIUS_MM / s)) + 1 if n > 1 else 0,) * 2
           for s, n in zip(vs, v.shape)]
    closed = ndimage.binary_closing(
        np.pad(m, pad), structure=_ball(np.maximum(1, np.round(CLOSE_RADIUS_MM / vs)), v.shape)
    )
    m = closed[tuple(slice(p[0], p[0] + n) for p, n in zip(pad, v.shape))]
    return _fill_holes(m)
