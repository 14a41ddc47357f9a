"""MP-PCA denoising (Veraart et al. 2016, NeuroImage 142:394) of a series, batched over voxels.

For every voxel of the mask, the ``5x5x5`` patch around it (series on the channel axis; complex
series as real and imaginary channels) is centred and decomposed; the Marchenko-Pastur
classifier of :func:`qmriprep.fit.noise.mp_classify` gives the patch noise variance, components
with eigenvalues below ``tau = (1 + sqrt(channels / voxels))^2 variance`` are dropped (dipy's
``genpca`` threshold) and the centre voxel is rebuilt from the kept ones (Veraart's centre-voxel
estimate; dipy averages overlapping patches instead). The patch means and covariances of all
voxels come from box filters of the channels and their products (``C = <x x^T> - <x><x>^T``),
slab by slab, and the eigen-decompositions are batched: dipy's voxel loop takes about 0.7 ms
a voxel, 15-20 min on a brain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import uniform_filter

from ..utils.progress import Progress
from .noise import mp_classify

PATCH = 5
SLAB = 6  # output slices per slab


@dataclass(frozen=True)
class NoiseBasis:
    """The components each denoised voxel kept: ``vectors`` ``(V, channels, P)`` (float16, zero
    columns pad to the largest ``P``) for the voxels of ``mask`` in C order; ``patch_voxels`` the
    patch size ``n``; ``dropped`` ``(V,)`` the signal variance per dropped direction the denoiser
    removed, over ``sigma^2``: ``max(d - (n - 1)/n, 0)`` with ``d`` the mean dropped eigenvalue over
    ``sigma^2`` (those of pure noise average ``(n - 1)/n``; the excess is signal, whose loss is a bias
    of the centre voxel); ``kept_noise`` ``(V,)`` the noise variance per kept direction over
    ``sigma^2``: the kept eigenvectors are estimated from the noisy patch and lean towards its noise,
    so the noise energy the dropped directions lack is in them: ``max((m (n - 1)/n - (m - P) d) / P
    + 1/n, 1)`` for ``m`` channels and ``P`` kept (1 for independent directions). The denoised
    voxel's error then has covariance ``sigma^2 (k U U^T + f (I - U U^T))``, ``k = kept_noise``,
    ``f = 1/n + dropped`` (the kept projection, the patch mean and the removed signal), to first
    order (:func:`qmriprep.fit.uncertainty.crb_sd`)."""

    mask: np.ndarray
    vectors: np.ndarray
    patch_voxels: int
    dropped: np.ndarray
    kept_noise: np.ndarray

    def at(self, where) -> tuple[np.ndarray, np.ndarray]:
        """The covariance over ``sigma^2`` of the voxels ``where`` (a bool array inside ``mask``)
        as ``V V^T + f I``: ``V = sqrt(k - f) U`` ``(n, channels, P)`` and ``f`` ``(n,)``, float32."""
        where = np.asarray(where, bool)
        if np.any(where & ~self.mask):
            raise ValueError("NoiseBasis.at: voxels outside the denoised mask have no kept components")
        index = (np.cumsum(self.mask.ravel()) - 1)[np.flatnonzero(where.ravel())]
        floor = 1.0 / self.patch_voxels + self.dropped[index].astype(np.float32)
        gain = np.sqrt(np.clip(self.kept_noise[index] - floor, 0, None))
        return self.vectors[index].astype(np.float32) * gain[:, None, None], floor

    def variance(self) -> np.ndarray:
        """``(V, channels)`` error variance of each channel over ``sigma^2``:
        ``k |U_c|^2 + f (1 - |U_c|^2)`` (the diagonal of the covariance above)."""
        kept = np.square(self.vectors, dtype=np.float32).sum(-1)
        floor = 1.0 / self.patch_voxels + self.dropped[:, None]
        return self.kept_noise[:, None] * kept + floor * (1.0 - kept)

    def channels(self, index) -> "NoiseBasis":
        """The basis restricted to the channels ``index`` (e.g. a fit that drops the first echo)."""
        return NoiseBasis(self.mask, self.vectors[:, index, :], self.patch_voxels, self.dropped, self.kept_noise)

    def save(self, path) -> str:
        np.savez(path, mask=self.mask, vectors=self.vectors, patch_voxels=self.patch_voxels,
                 dropped=self.dropped, kept_noise=self.kept_noise)
        return str(path)

    @classmethod
    def load(cls, path) -> "NoiseBasis":
        with np.load(path) as f:
            return cls(f["mask"], f["vectors"], int(f["patch_voxels"]), f["dropped"], f["kept_noise"])


def denoise_mppca(series, mask=None, *, sigma=None, patch=PATCH, return_basis=False):
    """Denoised copy of ``series`` ``(x, y, z, n)`` (real or complex); voxels outside ``mask``
    are returned unchanged (progress lines by slab). Magnitude (real) series are clipped at 0 as in
    dipy. ``sigma``: the measured noise (per real channel) sets every patch's threshold instead of
    its own MP estimate (dipy's ``genpca(sigma=...)``). ``return_basis``: also the
    :class:`NoiseBasis` of the mask's voxels (for the SD maps of fits to the denoised series)."""
    data = np.asarray(series)
    is_complex = np.iscomplexobj(data)
    x = np.concatenate([data.real, data.imag], -1) if is_complex else data.astype(np.float64)
    x = x.astype(np.float64)
    mask = np.ones(x.shape[:3], bool) if mask is None else np.asarray(mask, bool)
    size = [min(patch, n if n % 2 else n - 1) for n in x.shape[:3]]
    half = size[2] // 2
    out = x.copy()
    order = np.full(mask.shape, -1)
    order[mask] = np.arange(int(mask.sum()))
    kept = []
    nz = x.shape[2]
    progress = Progress("MP-PCA denoising", nz, unit="slices")
    for z0 in range(0, nz, SLAB):
        z1 = min(z0 + SLAB, nz)
        if not mask[..., z0:z1].any():
            continue
        lo, hi = max(z0 - half, 0), min(z1 + half, nz)
        inner = mask[..., lo:hi].copy()
        inner[..., :z0 - lo] = False
        inner[..., z1 - lo:] = False
        out[..., lo:hi, :][inner], *terms = _denoise_voxels(x[..., lo:hi, :], inner, size, sigma)
        if return_basis:
            kept.append((order[..., lo:hi][inner], *terms))
        progress.update(z1, final=z1 == nz)
    if is_complex:
        n = data.shape[-1]
        out = (out[..., :n] + 1j * out[..., n:]).astype(data.dtype)
    else:
        out = np.clip(out, 0, None).astype(data.dtype if data.dtype.kind == "f" else np.float64)
    return (out, _basis(mask, kept, x.shape[-1], int(np.prod(size)))) if return_basis else out


def _basis(mask, kept, channels: int, patch_voxels: int) -> NoiseBasis:
    """:class:`NoiseBasis` from the slabs' ``(voxel order, vectors, dropped, kept_noise)``."""
    width = max([v.shape[-1] for _, v, _, _ in kept] + [1])
    vectors = np.zeros((int(mask.sum()), channels, width), np.float16)
    dropped, kept_noise = np.zeros(int(mask.sum()), np.float32), np.ones(int(mask.sum()), np.float32)
    for where, v, d, k in kept:
        vectors[where, :, :v.shape[-1]] = v
        dropped[where], kept_noise[where] = d, k
    return NoiseBasis(mask, vectors, patch_voxels, dropped, kept_noise)


def _denoise_voxels(x, where, size, sigma=None):
    """Denoised channels of the voxels ``where`` of the slab ``x``, the kept eigenvectors
    ``(voxels, channels, P)`` (P: the most any of them kept; the others' extra columns zero), the
    removed signal variance per dropped direction and the noise variance per kept direction, both
    over the noise (:class:`NoiseBasis`)."""
    channels = x.shape[-1]
    n = int(np.prod(size))
    box = lambda v: uniform_filter(v, size=size, mode="reflect")[where]  # noqa: E731
    mean = np.stack([box(x[..., c]) for c in range(channels)], -1)
    cov = np.empty(mean.shape + (channels,))
    for a in range(channels):
        for b in range(a, channels):
            cov[:, a, b] = cov[:, b, a] = box(x[..., a] * x[..., b]) - mean[:, a] * mean[:, b]
    lam, vecs = np.linalg.eigh(cov)
    var = mp_classify(lam, n) if sigma is None else np.full(len(lam), float(sigma) ** 2)
    keep = lam >= (1 + np.sqrt(channels / n)) ** 2 * var[:, None]
    kept = vecs * keep[:, None, :]
    coef = np.einsum("vc,vck->vk", x[where] - mean, kept)
    width = int(keep.sum(1).max()) if keep.size else 0  # eigh: ascending, so the kept are last
    n_kept = keep.sum(1)
    d = np.where(keep, 0.0, lam).sum(1) / np.maximum(channels - n_kept, 1) / np.where(var > 0, var, np.inf)
    dropped = np.where(var > 0, d - (n - 1) / n, 0.0).clip(0, None)
    kept_noise = ((channels * (n - 1) / n - (channels - n_kept) * d) / np.maximum(n_kept, 1) + 1 / n).clip(1, None)
    return (np.einsum("vk,vck->vc", coef, kept) + mean, kept[:, :, channels - width:], dropped,
            np.where((var > 0) & (n_kept > 0), kept_noise, 1.0))


@dataclass
class DenoiseSettings:
    """Config section ``noise``: ``denoise`` is ``mppca``, ``none`` or ``auto`` (MP-PCA for the
    series kinds in :data:`AUTO_KINDS`, where it lowered the map errors in the benchmark)."""

    denoise: str = "auto"

    def applies_to(self, kind: str) -> bool:
        """Whether a ``kind`` series (``MESE``, ``VFA``, ``bSSFP``, ...) is denoised."""
        return kind in DENOISABLE and (self.denoise == "mppca"
                                       or (self.denoise == "auto" and kind in AUTO_KINDS))


#: series kinds MP-PCA runs on: enough volumes for a patch PCA (not the 2 DESS echoes)
DENOISABLE = frozenset({"MESE", "MEGRE", "VFA", "bSSFP"})
#: kinds denoised by default: it lowered the median T2, T2* and T1 errors in WM and GM at SNR 30
#: and 50 (benchmarks/bench_noise.py, bench_bssfp_noise.py --denoise; RESULTS.md); pc-bSSFP
#: networks then train for the noise of the denoised configurations
AUTO_KINDS = frozenset({"MESE", "MEGRE", "VFA", "bSSFP"})
