"""Noise level of one series: sigma per real channel, the method used, and the SNR in the mask.

Two estimators, chosen per series by what the data hold:

* ``background``: pure-noise voxels outside the (dilated) foreground. Complex data: the real and
  imaginary parts are Gaussian, ``sigma = sqrt(mean(Re^2 + Im^2) / 2)``. Magnitude data: Rayleigh
  (Rician with no signal; one receive channel, the noncentral-chi case with N = 1), whose second
  moment is ``E[M^2] = 2 sigma^2`` (Gudbjartsson & Patz 1995, MRM 34:910), so
  ``sigma = sqrt(mean(M^2) / 2)``. Used only when the background has enough voxels and looks like
  noise: its mean-to-RMS ratio must match Gaussian/Rayleigh noise (``sqrt(pi)/2`` for a
  magnitude), which zero-filled skull-stripped images and tight fields of view fail.
* ``mppca``: Marchenko-Pastur PCA (Veraart et al. 2016, NeuroImage 142:394) of non-overlapping
  5x5x5 patches (5x5xN for N < 5 slices) inside the foreground, batched: the eigenvalues of each
  patch's covariance are split into signal and noise by the Marchenko-Pastur law with dipy's
  classifier (``dipy.denoise.localpca``), the patch noise variance is the mean of the noise
  eigenvalues, and sigma the median over patches. Complex series are split into their real and imaginary
  parts (twice the channels); real series are used as they are (a signed, phase-corrected series
  such as an MRF one keeps its sign: folding it would shrink the noise where the signal crosses
  zero). Needs no background; in a magnitude image its Rician bias is small where the tissue SNR
  is above about 3. Series longer than the patch (MRF) take the patch's Gram matrix (below).

``SNR`` is the median, over the mask, of the first volume's magnitude divided by sigma (the
synthetic datasets' definition: mean first volume in white matter / sigma).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .mask import foreground_mask

#: mean/RMS of pure noise: |N(0, s^2)| for one real channel, Rayleigh for a magnitude
_NOISE_RATIO = {True: np.sqrt(2.0 / np.pi), False: np.sqrt(np.pi) / 2.0}
MIN_BACKGROUND = 2000   # voxels (per volume) for the background estimate
RATIO_TOLERANCE = 0.03  # accepted relative departure of the mean/RMS ratio from pure noise
PATCH = 5               # MP-PCA patch side (voxels)
MAX_PATCHES = 4000      # patches sampled for the MP-PCA estimate (evenly spaced)


@dataclass(frozen=True)
class NoiseEstimate:
    """``sigma``: noise std per real channel (signal units); ``method``: how; ``snr``: see module."""

    sigma: float
    method: str
    snr: float


def estimate_noise(series, *, is_complex, mask=None) -> NoiseEstimate:
    """Noise of a series shaped ``(x, y, z, n)`` (or one volume): background, else MP-PCA.

    ``mask``: the foreground (None: :func:`qmriprep.fit.mask.foreground_mask` of the mean
    magnitude). The background is the complement of the foreground dilated by 3 voxels.
    """
    data = np.asarray(series)
    if data.ndim == 3:
        data = data[..., None]
    mag = np.abs(data)
    fg = foreground_mask(mag.mean(-1)) if mask is None else np.asarray(mask, bool)
    sigma = background_sigma(data, fg, is_complex=is_complex)
    method = ("background: sqrt(mean(Re^2+Im^2)/2) outside the dilated foreground" if is_complex
              else "background: Rayleigh second moment sqrt(mean(M^2)/2) outside the dilated "
                   "foreground")
    if sigma is None:
        sigma = mppca_sigma(data, fg)
        method = ("MP-PCA (Veraart 2016) of 5x5x5 patches in the foreground"
                  + (", real and imaginary parts" if is_complex else ", real values"))
    first = mag[..., 0][fg]
    snr = float(np.median(first) / sigma) if first.size and sigma > 0 else float("nan")
    return NoiseEstimate(sigma=float(sigma), method=method, snr=snr)


def background_sigma(data, foreground, *, is_complex):
    """Sigma from pure-noise background voxels, or None when the background is not noise."""
    bg = ~ndimage.binary_dilation(foreground, iterations=3) if foreground.any() else None
    if bg is None or bg.sum() < MIN_BACKGROUND:
        return None
    vals = data[bg]
    vals = np.concatenate([vals.real, vals.imag], -1) if is_complex else np.abs(vals)
    vals = vals[np.isfinite(vals).all(-1)]
    rms = np.sqrt(np.mean(vals ** 2))
    if not rms > 0:
        return None
    ratio = np.mean(np.abs(vals)) / rms
    if abs(ratio / _NOISE_RATIO[is_complex] - 1.0) > RATIO_TOLERANCE:
        return None
    return float(rms) if is_complex else float(rms / np.sqrt(2.0))


def _patch_starts(mask, size):
    """Corners of non-overlapping patches of shape ``size`` (3 sides) lying wholly inside ``mask``."""
    full = ndimage.binary_erosion(mask, structure=np.ones(size), border_value=0)
    off = np.asarray(size) // 2
    grid = np.zeros_like(mask)
    grid[tuple(slice(o, None, n) for o, n in zip(off, size))] = True
    centres = np.argwhere(full & grid)
    return centres - off


def mppca_sigma(data, mask, *, patch=PATCH, max_patches=MAX_PATCHES):
    """Median MP-PCA sigma over patches in ``mask`` (complex: real and imaginary stacked)."""
    x = np.concatenate([data.real, data.imag], -1) if np.iscomplexobj(data) else data
    size = tuple(min(patch, n) for n in x.shape[:3])  # a single slice: 5 x 5 x 1
    starts = _patch_starts(mask, size)
    if len(starts) == 0:
        starts = _patch_starts(np.ones_like(mask), size)
    max_patches = max(200, min(max_patches, max_patches * 32 // x.shape[-1]))  # long series (MRF)
    starts = starts[np.linspace(0, len(starts) - 1, min(len(starts), max_patches)).astype(int)]
    offs = np.stack(np.meshgrid(*[np.arange(n) for n in size], indexing="ij"), -1).reshape(-1, 3)
    idx = starts[:, None, :] + offs[None]
    patches = x[idx[..., 0], idx[..., 1], idx[..., 2]].astype(np.float64)  # (p, voxels, channels)
    return float(np.sqrt(np.median(mp_variance(patches))))


def mp_variance(patches):
    """Noise variance of each patch ``(p, voxels, channels)`` by the Marchenko-Pastur criterion.

    dipy's ``_pca_classifier``, vectorised: ascending eigenvalues ``L`` of the centred
    covariance; the noise components are ``L[:c+1]`` for the largest ``c`` with
    ``L[c] - L[0] <= 4 sqrt((c+1)/n) mean(L[:c+1])``; the variance is their mean. When the
    channels ``m`` outnumber the voxels ``n`` (MRF series) the roles swap: the voxels' Gram matrix
    over ``m`` is an ``n``-variable covariance of ``m`` samples, whose noise eigenvalues have mean
    ``sigma^2`` (the ``m``-channel covariance's non-zero ones have mean ``m sigma^2 / (n - 1)``);
    its zero eigenvalue (centring) is dropped.
    """
    n, m = patches.shape[1:]
    centred = patches - patches.mean(1, keepdims=True)
    if m > n:
        return mp_classify(np.linalg.eigvalsh(np.einsum("pvi,pwi->pvw", centred, centred) / m)[:, 1:], m)
    cov = np.einsum("pvi,pvj->pij", centred, centred) / n
    return mp_classify(np.linalg.eigvalsh(cov), n)


def mp_classify(lam, n):
    """Noise variance from ascending eigenvalues ``lam`` (p, channels) of ``n``-voxel patches."""
    if lam.shape[1] > n - 1:
        lam = lam[:, -(n - 1):]
    running = np.cumsum(lam, 1) / np.arange(1, lam.shape[1] + 1)
    c = np.arange(lam.shape[1])
    r = lam - lam[:, :1] - 4.0 * np.sqrt((c + 1.0) / n) * running
    last = lam.shape[1] - 1 - np.argmax((r <= 0)[:, ::-1], axis=1)
    return running[np.arange(len(lam)), last]
