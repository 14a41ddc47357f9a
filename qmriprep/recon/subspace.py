"""Contrast subspace of a multi-contrast k-space collection (echoes, flip angles).

The contrast curves of a series (a multi-echo decay, a flip-angle series) span few dimensions:
images ``x_c = sum_k Phi[c, k] a_k`` with an orthonormal ``Phi`` of ``K < C`` columns (temporal
subspace: Liang, ISBI 2007; Huang et al., MRM 2012; Tamir et al., MRM 2017). The basis comes from
the data: the left singular vectors of the calibration region's samples arranged as a
``C x (coils x points)`` matrix. Its rank keeps the components whose eigenvalue
``lambda_k = s_k^2`` exceeds :data:`SIGNAL_FACTOR` times the noise eigenvalue, estimated as the
median of the smaller half of the eigenvalues (noise spreads evenly over the ``C`` components;
signal concentrates in the first few).

When every contrast is sampled at the same k-space points (one mask: a multi-echo train shares its
phase encodes), ``sum_c ||y_c - E x_c||^2 = ||Phi^H y - E a||^2 + ||(I - Phi Phi^H) y||^2`` (``E``
acts alike on every contrast, ``Phi`` mixes contrasts only), so reconstructing the ``K``
coefficient images from the projected k-space ``Phi^H y`` *is* the subspace-constrained
reconstruction: ``K / C`` of the FFTs, CNN channels and memory, and the noise outside the
subspace removed. With masks that differ between contrasts the identity fails: no subspace.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .coils import calibration_block

#: a component is signal when its eigenvalue exceeds this multiple of the noise eigenvalue
SIGNAL_FACTOR = 2.0
#: fewer contrasts than this are reconstructed as they are (too few eigenvalues to tell noise)
MIN_CONTRASTS = 6


@dataclass(frozen=True)
class ContrastSubspace:
    """An orthonormal contrast basis ``basis (C, K)`` and the eigenvalues it was chosen from."""

    basis: np.ndarray
    eigenvalues: np.ndarray

    @property
    def rank(self) -> int:
        return int(self.basis.shape[1])

    def project(self, y: np.ndarray) -> np.ndarray:
        """``(S, C, ...) -> (S, K, ...)``: ``Phi^H`` applied along the contrast axis."""
        return np.einsum("ck,sc...->sk...", self.basis.conj(), y).astype(y.dtype, copy=False)

    def expand(self, coefficients: np.ndarray) -> np.ndarray:
        """``(S, K, ...) -> (S, C, ...)``: images ``Phi a`` from coefficient images ``a``."""
        return np.einsum("ck,sk...->sc...", self.basis, coefficients).astype(coefficients.dtype, copy=False)

    def describe(self) -> dict:
        """Provenance for the sidecars."""
        lam = self.eigenvalues / self.eigenvalues.sum()
        return {"Description": f"{self.rank} coefficient images for {self.basis.shape[0]} contrasts",
                "Rank": self.rank, "Contrasts": int(self.basis.shape[0]),
                "EigenvalueFractions": [round(float(v), 6) for v in lam],
                "Method": "SVD of the calibration region; components with eigenvalue above "
                          f"{SIGNAL_FACTOR:g} x the noise eigenvalue (median of the smaller half)"}


def shares_one_mask(mask: np.ndarray) -> bool:
    """Whether every contrast of ``mask (S|1, C, H, W)`` samples the same k-space points."""
    return bool(np.array_equal(np.broadcast_to(mask[:, :1] > 0, mask.shape), mask > 0))


def contrast_subspace(y: np.ndarray, mask: np.ndarray, calibration: tuple[int, int],
                      rank: int | None = None) -> ContrastSubspace | None:
    """The subspace of ``y (S, C, N, H, W)`` from its centred ``calibration`` block ``(cH, cW)``,
    or None when it would not help: fewer than :data:`MIN_CONTRASTS` contrasts, contrasts sampled
    at different points, or every component above the noise (rank ``C``). ``rank``: that many
    components instead of those above the noise (a network trained in a subspace of that rank)."""
    n_contrasts = y.shape[1]
    if (n_contrasts < MIN_CONTRASTS and rank is None) or not shares_one_mask(mask):
        return None
    block = calibration_block(y, calibration)
    samples = np.moveaxis(block, 1, 0).reshape(n_contrasts, -1).astype(np.complex128)
    u, s, _ = np.linalg.svd(samples, full_matrices=False)
    eigenvalues = s ** 2
    noise = float(np.median(eigenvalues[n_contrasts // 2:]))
    if rank is None:
        rank = max(int(np.sum(eigenvalues > SIGNAL_FACTOR * noise)), 1)
    if rank >= n_contrasts:
        return None
    basis = u[:, :rank] * np.exp(-1j * np.angle(u[np.argmax(np.abs(u[:, :rank]), axis=0), np.arange(rank)]))
    return ContrastSubspace(basis.astype(np.complex64), eigenvalues)
