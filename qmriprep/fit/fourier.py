"""From pc-bSSFP images to normalised Fourier configurations (F-1, F0, F+1) per voxel.

Steps (seed 003; :mod:`qmriprep.physics.bssfp` holds the per-voxel maths): remove each voxel's
common phase (this also removes the constant receiver phase), DFT over the phase cycles, optional
Gibbs-ringing removal on the magnitude and phase of each configuration image (Kellner et al.
2016, MRM 76:1574, via dipy), then per-voxel normalisation.
"""

from __future__ import annotations

import numpy as np

from ..physics.bssfp import ORDERS, configurations, normalise, remove_common_phase
from .denoise import NoiseBasis

CHUNK = 1 << 16  # voxels per batch of the configuration noise basis


def complex_from_parts(first, second, parts: str):
    """Complex images from ``("mag", "phase")`` (phase in rad) or ``("real", "imag")`` data."""
    if parts == "magphase":
        return np.asarray(first) * np.exp(1j * np.asarray(second))
    if parts == "realimag":
        return np.asarray(first) + 1j * np.asarray(second)
    raise ValueError(f"unknown parts {parts!r}: expected 'magphase' or 'realimag'")


def phase_is_radians(phase, tol=0.05) -> bool:
    """True when phase values lie in ``[-pi, 2 pi]`` (radians), within a small tolerance."""
    finite = np.asarray(phase)[np.isfinite(phase)]
    return finite.size == 0 or (finite.min() >= -np.pi - tol and finite.max() <= 2 * np.pi + tol)


def _degibbs(volume):
    """Gibbs-ringing removal of a 3-D real volume, slice by slice along the last axis."""
    from dipy.denoise.gibbs import gibbs_removal

    vol = np.ascontiguousarray(volume, dtype=np.float64)
    if min(vol.shape[:2]) < 8:  # too small for the local sub-voxel shifts
        return vol
    return gibbs_removal(vol, slice_axis=2, inplace=False, num_processes=1)


def fourier_configurations(images, phase_increments, *, gibbs=True, mask=None, return_norm=False):
    """Normalised ``(F-1, F0, F+1)`` of complex pc-bSSFP ``images`` ``(x, y, z, n_cycles)``.

    Returns complex64 ``(x, y, z, 3)``; voxels outside ``mask`` or without signal are 0.
    ``return_norm``: also the per-voxel norm they were divided by (float32, the signal level
    the noise of the normalised configurations is relative to).
    """
    images = np.asarray(images, dtype=np.complex128)
    valid = np.isfinite(images).all(-1) & (np.abs(images).sum(-1) > 0)
    if mask is not None:
        valid &= np.asarray(mask, dtype=bool)
    signal = np.where(valid[..., None], images, 0)
    modes = configurations(remove_common_phase(signal), np.asarray(phase_increments, dtype=float))
    if gibbs and modes.ndim == 4:
        mag = np.stack([_degibbs(np.abs(modes[..., k])) for k in range(modes.shape[-1])], -1)
        pha = np.stack([_degibbs(np.angle(modes[..., k])) for k in range(modes.shape[-1])], -1)
        modes = mag * np.exp(1j * pha)
    features = np.where(valid[..., None], normalise(modes), 0).astype(np.complex64)
    if not return_norm:
        return features
    return features, np.where(valid, np.sqrt(np.sum(np.abs(modes) ** 2, -1)), 0).astype(np.float32)


def configuration_noise(basis: NoiseBasis, series, phase_increments, orders=ORDERS) -> NoiseBasis:
    """The noise of the configuration magnitudes ``|F_p|`` of an MP-PCA denoised complex series.

    ``basis``: the series' :class:`~qmriprep.fit.denoise.NoiseBasis` (channels: the real then the
    imaginary parts of the ``N`` cycles), ``series`` the denoised ``(x, y, z, N)`` series. To first
    order ``|F_p|`` moves along its own phase ``psi_p``: ``d|F_p| = m_p . dS`` with
    ``m_p = (cos(p phi_j - psi_p), -sin(p phi_j - psi_p)) / N`` (real, imaginary channels; ``F_p =
    (1/N) sum_j S_j exp(i p phi_j)``, so the common-phase removal does not change it). With
    ``sqrt(N) m_p`` orthonormal (uniform cycling) the magnitudes' covariance over ``sigma^2 / N``
    is ``k W W^T + f (I - W W^T)``, ``W = sqrt(N) m U``: returned as a 3-channel basis of the same
    voxels (:func:`qmriprep.fit.uncertainty.crb_sd`); without denoising it would be the identity.
    """
    phi = np.asarray(phase_increments, np.float64)
    n = phi.size
    p = np.asarray(orders, np.float64)
    raw = np.asarray(configurations(np.asarray(series)[basis.mask].astype(np.complex128), phi, orders))
    vectors = np.zeros((raw.shape[0], p.size, basis.vectors.shape[-1]), np.float16)
    for start in range(0, raw.shape[0], CHUNK):
        part = slice(start, start + CHUNK)
        angle = p[None, :, None] * phi[None, None, :] - np.angle(raw[part])[:, :, None]  # (v, orders, N)
        rows = np.concatenate([np.cos(angle), -np.sin(angle)], -1) / np.sqrt(n)
        vectors[part] = np.einsum("voc,vck->vok", rows, basis.vectors[part].astype(np.float64))
    return NoiseBasis(basis.mask, vectors, basis.patch_voxels, basis.dropped, basis.kept_noise)


def iid_equivalent_sigma(sigma: float, basis: NoiseBasis) -> float:
    """The i.i.d. noise of the cycles giving the configuration magnitudes (``basis`` of
    :func:`configuration_noise`) their median variance in the mask: ``sigma sqrt(median g)``, ``g``
    the voxel's mean variance over ``sigma^2 / N``; what noise-matched networks train for."""
    gain = float(np.median(basis.variance().mean(-1))) if basis.mask.any() else 1.0
    return float(sigma) * float(np.sqrt(gain))
