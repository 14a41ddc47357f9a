"""Noise level of one series: sigma per real channel, the method used, and the SNR in the mask.

Two estimators, chosen per series by what the data hold:

* ``background``: pure-noise voxels outside the (dilated) foreground. Complex data: the real and
  imaginary parts are Gaussian, ``sigma = sqrt(mean(Re^2 + Im^2) / 2)``, used when their
  mean-to-RMS ratio is a Gaussian's (``sqrt(2/pi)``). Magnitude data: the root sum of squares of
  ``N`` receive channels of noise, a central chi with ``2N`` degrees of freedom (Rayleigh for
  ``N = 1``; Constantinides et al. 1997, MRM 38:852; Aja-Fernandez et al. 2009, MRI 27:1397), whose
  moments give ``N`` twice: from the mean-to-RMS ratio ``E[M] / sqrt(E[M^2]) =
  Gamma(N + 1/2) / (Gamma(N) sqrt(N))`` and from the shape ``E[M^4] / E[M^2]^2 = (N + 1) / N``;
  when they agree (an effective, non-integer ``N`` is allowed: parallel imaging) ``sigma =
  sqrt(mean(M^2) / (2N))`` per real channel, the noise of the combined magnitude where the signal
  is well above it. Both kinds must also be white: the correlation of neighbouring background
  magnitudes (along each axis) at most :data:`MAX_CORRELATION`, which a ghost of the head in the
  background fails (a 10 % Nyquist ghost: 0.55, with chi-like moments) and smooth parallel-imaging
  noise maps pass (0.04 for +-40 %). A background that fails these tests (zero-filled
  skull-stripped images, tight fields of view, ghosts, interpolated images) is not used.
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
from scipy.optimize import brentq
from scipy.special import gammaln

from .mask import foreground_mask

MIN_BACKGROUND = 2000   # voxels (per volume) for the background estimate
RATIO_TOLERANCE = 0.03  # accepted relative departure of the mean/RMS ratio from pure noise
SHAPE_TOLERANCE = 0.15  # accepted relative disagreement of the two moment estimates of N (pure
                        # noise: below 8 % with 2000 voxels, 1 % with 200,000; RESULTS)
MAX_CORRELATION = 0.1   # of neighbouring background magnitudes (white noise: 0; a 5 % ghost: 0.14)
MAX_CHANNELS = 64       # receive channels of a magnitude background
MAX_VALUES = 4_000_000  # background values the moments are computed from
PATCH = 5               # MP-PCA patch side (voxels)
MAX_PATCHES = 4000      # patches sampled for the MP-PCA estimate (evenly spaced)


@dataclass(frozen=True)
class NoiseEstimate:
    """``sigma``: noise std per real channel (signal units); ``method``: how; ``snr``: see module."""

    sigma: float
    method: str
    snr: float
    channels: float | None = None  # receive channels N of a magnitude background (noncentral chi)


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
    sigma, channels = background_sigma(data, fg, is_complex=is_complex)
    if is_complex:
        method = "background: sqrt(mean(Re^2+Im^2)/2) outside the dilated foreground"
    else:
        method = (f"background: central chi of N = {channels} channels (from its moments), "
                  "sqrt(mean(M^2)/(2N)) outside the dilated foreground")
    if sigma is None:
        sigma = mppca_sigma(data, fg)
        method = ("MP-PCA (Veraart 2016) of 5x5x5 patches in the foreground"
                  + (", real and imaginary parts" if is_complex else ", real values"))
    first = mag[..., 0][fg]
    snr = float(np.median(first) / sigma) if first.size and sigma > 0 else float("nan")
    return NoiseEstimate(sigma=float(sigma), method=method, snr=snr, channels=channels)


def background_sigma(data, foreground, *, is_complex) -> tuple[float | None, float | None]:
    """``(sigma, N)`` from pure-noise background voxels (``N`` the receive channels of a magnitude,
    None for complex data), or ``(None, None)`` when the background is not noise."""
    bg = ~ndimage.binary_dilation(foreground, iterations=3) if foreground.any() else None
    if bg is None or bg.sum() < MIN_BACKGROUND or neighbour_correlation(np.abs(data), bg) > MAX_CORRELATION:
        return None, None
    vals = data[bg]
    vals = np.concatenate([vals.real, vals.imag], -1) if is_complex else np.abs(vals)
    vals = vals[np.isfinite(vals).all(-1)].ravel()
    vals = vals[::max(1, vals.size // MAX_VALUES)].astype(np.float64)  # evenly spaced, bounded memory
    m2 = np.mean(vals ** 2)
    if not m2 > 0:
        return None, None
    ratio = np.mean(np.abs(vals)) / np.sqrt(m2)
    if is_complex:
        ok = abs(ratio / np.sqrt(2.0 / np.pi) - 1.0) <= RATIO_TOLERANCE
        return (float(np.sqrt(m2)), None) if ok else (None, None)
    n = chi_channels(ratio, np.mean(vals ** 4) / m2 ** 2)
    return (float(np.sqrt(m2 / (2.0 * n))), n) if n else (None, None)


def neighbour_correlation(mag, region) -> float:
    """The largest, over the three axes, correlation of ``mag`` ``(x, y, z, n)`` between
    neighbouring voxels both in ``region`` (at most :data:`MAX_VALUES` pairs per axis)."""
    worst = 0.0
    for axis in range(3):
        m, r = np.moveaxis(mag, axis, 0), np.moveaxis(region, axis, 0)
        both = r[:-1] & r[1:]
        a, b = m[:-1][both].ravel(), m[1:][both].ravel()
        step = max(1, a.size // MAX_VALUES)
        a, b = a[::step].astype(np.float64), b[::step].astype(np.float64)
        if a.size > 2 and a.std() > 0 and b.std() > 0:
            worst = max(worst, float(np.corrcoef(a, b)[0, 1]))
    return worst


def _chi_ratio(n):
    """``E[M] / sqrt(E[M^2])`` of a central chi with ``2n`` degrees of freedom."""
    return float(np.exp(gammaln(n + 0.5) - gammaln(n)) / np.sqrt(n))


def chi_channels(ratio: float, shape: float) -> float | None:
    """Channels ``N`` of central-chi noise from its mean-to-RMS ``ratio`` and ``shape``
    ``E[M^4] / E[M^2]^2`` (module docstring), or None when the two disagree or ``N`` is out of
    1-:data:`MAX_CHANNELS` (not noise)."""
    if not _chi_ratio(1) * (1 - RATIO_TOLERANCE) <= ratio < _chi_ratio(MAX_CHANNELS) or not shape > 1:
        return None
    n = 1.0 if ratio <= _chi_ratio(1) else brentq(lambda x: _chi_ratio(x) - ratio, 1.0, MAX_CHANNELS)
    return round(n, 3) if abs(1.0 / (shape - 1.0) / n - 1.0) <= SHAPE_TOLERANCE else None


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
