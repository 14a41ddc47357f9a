"""Cartesian undersampling masks and the ZS-SSL / SSDU splits of an acquired set (seed 000).

Masks are boolean numpy arrays ``(..., H, W)`` (``H`` first phase encode, ``W`` readout or second
phase encode, see :mod:`qmriprep.recon`). Every random choice uses ``np.random.default_rng(seed)``
and an exact count (weighted sampling without replacement), so a seed gives one mask and the
achieved acceleration is the requested one up to rounding.

Splits (Yaman et al., ZS-SSL, ICLR 2022; SSDU, MRM 2020): the acquired set ``Omega`` is cut into
a self-validation set ``Gamma`` (``val_fraction`` of ``Omega``) and, from ``Omega \\ Gamma``,
``K`` pairs of a loss set ``Lambda_k`` (``loss_fraction`` of ``Omega \\ Gamma``) and a
data-consistency set ``Theta_k`` (the rest). A small central block of k-space is kept in every
``Theta_k``. Points are selected point-wise even for masks of whole lines, as in SSDU.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

MASK_KINDS = ("poisson", "lines")
SPLIT_KINDS = ("uniform", "gaussian")
#: width of the Gaussian k-space weighting, in units of the matrix size (SSDU: size / 4)
GAUSSIAN_WIDTH = 0.25
#: share of the acquired points that the calibration region may take at most
MAX_CALIB_SHARE = 0.5


def _centre_slice(n: int, width: int) -> slice:
    """Indices of the ``width`` central k-space positions of an axis of length ``n`` (DC at n//2)."""
    start = n // 2 - width // 2
    return slice(max(start, 0), min(start + width, n))


def _weighted_pick(rng: np.random.Generator, weights: np.ndarray, n: int) -> np.ndarray:
    """``n`` distinct indices drawn without replacement with probabilities ``∝ weights``."""
    if n <= 0:
        return np.zeros(0, dtype=int)
    return rng.choice(weights.size, size=n, replace=False, p=weights / weights.sum())


def _centred_coords(shape: tuple[int, ...]) -> list[np.ndarray]:
    """Per axis, the k-space coordinate relative to the centre, normalised to [-1, 1)."""
    return [(np.arange(n) - n // 2) / (n / 2) for n in shape]


def variable_density_mask(shape: tuple[int, int], acceleration: float, *, calib: int = 24,
                          kind: str = "poisson", seed: int = 0) -> np.ndarray:
    """Boolean ``(H, W)`` variable-density mask with ``round(H W / R)`` acquired points.

    ``"lines"``: whole rows (phase-encode lines along ``H``); ``calib`` central rows always
    acquired, the other ``round(H / R) - calib`` rows drawn without replacement with density
    ``∝ exp(-k^2 / (2 s^2))`` (``k`` in [-1, 1), ``s = 0.5``) plus a uniform floor of 0.1.
    ``"poisson"``: a 2-D variable-density random pattern (the Gaussian density above over both
    axes; not a true Poisson-disc), with a ``calib x calib`` fully sampled centre.

    The calibration region is shrunk when it would take more than half of the acquired points
    (e.g. ``R = 12`` on 40 rows); the achieved ``acceleration(mask)`` is then still ``R``.
    """
    if kind not in MASK_KINDS:
        raise ValueError(f"kind must be one of {MASK_KINDS}, got {kind!r}")
    if acceleration < 1:
        raise ValueError(f"acceleration must be >= 1, got {acceleration}")
    h, w = shape
    rng = np.random.default_rng(seed)
    density = [np.exp(-c ** 2 / (2 * 0.5 ** 2)) + 0.1 for c in _centred_coords((h, w))]
    mask = np.zeros((h, w), dtype=bool)
    if kind == "lines":
        n_lines = max(int(round(h / acceleration)), 1)
        c = min(calib, int(n_lines * MAX_CALIB_SHARE))
        rows = np.zeros(h, dtype=bool)
        rows[_centre_slice(h, c)] = True
        free = np.flatnonzero(~rows)
        rows[free[_weighted_pick(rng, density[0][free], n_lines - rows.sum())]] = True
        mask[rows] = True
        return mask
    n_points = max(int(round(h * w / acceleration)), 1)
    c = min(calib, int(np.sqrt(n_points * MAX_CALIB_SHARE)))
    mask[_centre_slice(h, c), _centre_slice(w, c)] = True
    free = np.flatnonzero(~mask)
    weights = np.outer(density[0], density[1]).ravel()[free]
    mask.ravel()[free[_weighted_pick(rng, weights, n_points - mask.sum())]] = True
    return mask


def acceleration(mask: np.ndarray) -> float:
    """Achieved acceleration ``mask.size / n_acquired`` (over all dims of ``mask``)."""
    mask = np.asarray(mask)
    return mask.size / max(int(np.count_nonzero(mask)), 1)


class Splits(NamedTuple):
    """ZS-SSL partition of ``Omega``: ``gamma`` ``(..., H, W)``; ``theta``, ``lam`` ``(K, ..., H, W)``.

    ``Gamma``, ``Theta_k`` and ``Lambda_k`` are disjoint and ``Theta_k | Lambda_k | Gamma == Omega``.
    """

    gamma: np.ndarray
    theta: np.ndarray
    lam: np.ndarray


def _selection_weights(shape: tuple[int, int], kind: str) -> np.ndarray:
    """Per-point selection weights ``(H, W)``: 1 (uniform) or a Gaussian centred in k-space."""
    if kind == "uniform":
        return np.ones(shape)
    ky, kx = _centred_coords(shape)
    s = 2 * GAUSSIAN_WIDTH  # coordinates span [-1, 1): width in matrix units times 2
    return np.exp(-ky[:, None] ** 2 / (2 * s ** 2) - kx[None, :] ** 2 / (2 * s ** 2)) + 1e-12


def zsssl_splits(mask: np.ndarray, *, n_pairs: int = 25, val_fraction: float = 0.2,
                 loss_fraction: float = 0.4, centre: tuple[int, int] = (4, 4), seed: int = 0,
                 kind: str = "uniform") -> Splits:
    """Split the acquired set of ``mask`` ``(..., H, W)`` into ``Gamma`` and ``K`` pairs.

    Per leading index independently: ``Gamma`` = ``round(val_fraction |Omega|)`` points, then for
    each ``k`` ``Lambda_k`` = ``round(loss_fraction |Omega \\ Gamma|)`` points of
    ``Omega \\ Gamma``, ``Theta_k`` = the rest. The ``centre`` block of k-space is never picked
    (always in ``Theta_k``). ``kind="gaussian"`` weights the selection by a Gaussian of width
    ``GAUSSIAN_WIDTH`` x matrix size centred in k-space (SSDU's alternative). A mask shared by
    slices should be passed with a singleton dim (e.g. ``(1, C, H, W)``): the output has
    ``K`` times its size.
    """
    if kind not in SPLIT_KINDS:
        raise ValueError(f"kind must be one of {SPLIT_KINDS}, got {kind!r}")
    omega = np.asarray(mask).astype(bool)
    h, w = omega.shape[-2:]
    rng = np.random.default_rng(seed)
    protected = np.zeros((h, w), dtype=bool)
    protected[_centre_slice(h, centre[0]), _centre_slice(w, centre[1])] = True
    weights = _selection_weights((h, w), kind).ravel()
    flat = omega.reshape(-1, h * w)
    gamma = np.zeros_like(flat)
    lam = np.zeros((n_pairs,) + flat.shape, dtype=bool)
    for i, acquired in enumerate(flat):
        free = np.flatnonzero(acquired & ~protected.ravel())
        n_gamma = min(int(round(val_fraction * acquired.sum())), free.size)
        picked = free[_weighted_pick(rng, weights[free], n_gamma)]
        gamma[i, picked] = True
        free = np.setdiff1d(free, picked, assume_unique=True)
        n_lam = min(int(round(loss_fraction * (acquired.sum() - n_gamma))), free.size)
        for k in range(n_pairs):
            lam[k, i, free[_weighted_pick(rng, weights[free], n_lam)]] = True
    theta = flat & ~gamma & ~lam
    return Splits(gamma.reshape(omega.shape), theta.reshape((n_pairs,) + omega.shape),
                  lam.reshape((n_pairs,) + omega.shape))
