"""B1+ (transmit field) maps: closed-form estimators and spatial regularisation.

All maps are fractions of the nominal flip angle (1 = nominal); BIDS ``TB1map`` in percent is
a shell concern. Forward models of the sequences are in :mod:`qmriprep.physics.b1`.

- DAM (Insko & Bolinger 1993, JMR A 103:82): ``S(a) ~ sin(B1 a)``, ``S(2a) ~ sin(2 B1 a)``
  for ``TR >> T1``, so ``B1 = arccos(S(2a) / (2 S(a))) / a``. With magnitude images this is
  unambiguous for ``B1 a < 90 deg``.
- AFI (Yarnykh 2007, MRM 57:192): ``r = S2/S1``, ``n = TR2/TR1``,
  ``B1 = arccos((r n - 1)/(n - r)) / a`` (first order in ``TR/T1``: a small bias for finite
  TRs: at TR1/TR2 = 20/100 ms, a = 60 deg and T1 = 1 s, -0.24 % at B1 = 1 and -0.47 % at
  B1 = 1.3; it halves when T1 doubles).
- TFL (Chung et al. 2010, MRM 64:439): the Siemens ``famp`` image holds ten times the
  actual flip angle in degrees: ``B1 = famp / (10 a_nom[deg])``.

Each estimator returns ``{"b1": float32 map, "valid": bool map}``; invalid voxels (non-finite
or non-positive signal, arccos argument outside [-1, 1]) have ``b1 = 0``. Maps are then
regularised with :func:`smooth_b1` (Gaussian normalised convolution, fills the invalid
voxels) or :func:`median_filter_b1`.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

DEFAULT_FWHM_MM = 8.0
"""Default smoothing of B1+ maps. The transmit field varies on the scale of the RF wavelength
in tissue (about 12 cm at 3 T, 26 cm at 1.5 T), so an 8 mm FWHM Gaussian (2-4 voxels of a
typical 2-4 mm B1 map) removes voxel noise and fills small holes without biasing the field
itself; the hMRI toolbox and qMRLab's ``filter_map`` smooth B1 maps on the same scale."""


def _result(b1, valid):
    valid = valid & np.isfinite(b1)
    return {"b1": np.where(valid, b1, 0.0).astype(np.float32), "valid": valid}


def b1_from_dam(signal, flip_angle):
    """Double angle method: ``signal[..., 0] = S(a)``, ``signal[..., 1] = S(2a)``; a in rad."""
    signal = np.asarray(signal, dtype=np.float64)
    if signal.shape[-1:] != (2,):
        raise ValueError("DAM signal must have a last axis of 2: [S(a), S(2a)]")
    s1, s2 = signal[..., 0], signal[..., 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        arg = s2 / (2.0 * s1)
        valid = np.isfinite(s1) & np.isfinite(s2) & (s1 > 0) & (np.abs(arg) <= 1.0)
        b1 = np.arccos(np.where(valid, arg, 1.0)) / float(flip_angle)
    return _result(b1, valid)


def b1_from_afi(signal, tr1, tr2, flip_angle):
    """Actual flip angle imaging: ``signal[..., 0] = S(TR1)``, ``signal[..., 1] = S(TR2)``."""
    signal = np.asarray(signal, dtype=np.float64)
    if signal.shape[-1:] != (2,):
        raise ValueError("AFI signal must have a last axis of 2: [S(TR1), S(TR2)]")
    n = float(tr2) / float(tr1)
    s1, s2 = signal[..., 0], signal[..., 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = s2 / s1
        arg = (r * n - 1.0) / (n - r)
        valid = np.isfinite(s1) & np.isfinite(s2) & (s1 > 0) & (s2 >= 0)
        valid &= np.isfinite(arg) & (np.abs(arg) <= 1.0)
        b1 = np.arccos(np.where(valid, arg, 1.0)) / float(flip_angle)
    return _result(b1, valid)


def b1_from_tfl(famp, flip_angle):
    """Siemens TFL B1 map: ``B1 = famp / (10 a_nom[deg])``, flip_angle (nominal) in rad."""
    famp = np.asarray(famp, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(famp) & (famp > 0)
    b1 = np.where(valid, famp, 0.0) / (10.0 * np.degrees(float(flip_angle)))
    return _result(b1, valid)


def _sigma_vox(voxel_size_mm, fwhm_mm, ndim):
    vs = np.broadcast_to(np.asarray(voxel_size_mm, dtype=np.float64), (ndim,))
    return fwhm_mm / (2.0 * np.sqrt(2.0 * np.log(2.0))) / vs


def smooth_b1(b1, valid, voxel_size_mm, fwhm_mm=DEFAULT_FWHM_MM, mask=None):
    """Gaussian normalised convolution of a B1 map (Knutsson & Westin 1993, CVPR).

    ``B1_s = (G * (B1 valid)) / (G * valid)``: only valid voxels contribute, so invalid
    voxels and holes are filled from their neighbourhood and the edges are not pulled to 0.
    Voxels with no valid neighbour within the kernel get the median of the valid voxels
    (1 when none is valid). Returns a float32 map; 0 outside ``mask`` when one is given.
    ``voxel_size_mm`` is a scalar or one size per axis.
    """
    b1 = np.asarray(b1, dtype=np.float64)
    w = np.asarray(valid, dtype=bool) & np.isfinite(b1) & (b1 > 0)
    if mask is not None:
        mask = np.broadcast_to(np.asarray(mask, dtype=bool), b1.shape)
        w &= mask
    vals = np.where(w, b1, 0.0)
    sigma = _sigma_vox(voxel_size_mm, fwhm_mm, b1.ndim)
    num = ndimage.gaussian_filter(vals, sigma, mode="constant", cval=0.0)
    den = ndimage.gaussian_filter(w.astype(np.float64), sigma, mode="constant", cval=0.0)
    fill = float(np.median(b1[w])) if w.any() else 1.0
    out = np.where(den > 1e-6, num / np.where(den > 1e-6, den, 1.0), fill)
    if mask is not None:
        out = np.where(mask, out, 0.0)
    return out.astype(np.float32)


def median_filter_b1(b1, size=3):
    """3-D median filter of a B1 map (window ``size`` voxels, one or per axis; singleton axes
    left alone)."""
    b1 = np.nan_to_num(np.asarray(b1, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    per_axis = np.broadcast_to(np.asarray(size, dtype=int), (b1.ndim,))
    sizes = [min(int(s), n) if n > 1 else 1 for s, n in zip(per_axis, b1.shape)]
    return ndimage.median_filter(b1, size=sizes, mode="nearest").astype(np.float32)
