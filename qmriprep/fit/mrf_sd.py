"""Standard deviations of MRF dictionary matching: the Cramer-Rao bound in the subspace and the
quantisation of the dictionary grid.

Matching estimates T1, T2, M0 (and a phase) from a voxel's ``r`` subspace coefficients
``y = M0 e^{i phase} c(T1, T2) + n``; ``phi`` has orthonormal columns, so the projected noise keeps
the series' ``sigma`` per real channel. The atoms are real, so the phase decouples and the Fisher
information of ``(T1, T2, M0)`` is ``J^T J / sigma^2`` with ``J = [M0 dc/dT1, M0 dc/dT2, c]``
(``r x 3``; a fourth column ``M0 dc/dB1`` when B1+ is matched too, i.e. without a map) (Kay 1993,
ch. 3). The derivatives are finite differences between the matched atom's neighbours on the
dictionary grid (central where both exist, else one-sided). The estimate is also quantised to
the grid: ``SD^2 = CRB^2 + delta^2 / 12`` with ``delta`` the local grid spacing of T1 or T2, and
for M0 ``+ sum_k (M0 <c, dc/dk> / |c|^2)^2 delta_k^2 / 12`` (the scale of a neighbouring atom).
"""

from __future__ import annotations

import torch


def _lookup(grid: torch.Tensor) -> torch.Tensor:
    """Atom index at each (T1, T2, B1) grid position, -1 where the grid has no atom (T2 > T1)."""
    lut = torch.full(tuple(int(n) + 3 for n in grid.max(0).values), -1, dtype=torch.long)
    lut[grid[:, 0] + 1, grid[:, 1] + 1, grid[:, 2] + 1] = torch.arange(grid.shape[0])
    return lut  # padded by one on each side: neighbours of edge atoms read -1


def _along(axis: int, index, values, coef, grid, lut):
    """``(dc/dv, spacing)`` of the atoms ``index`` along grid ``axis`` (``values``: the parameter)."""
    pos = grid[index] + 1
    step = torch.zeros(3, dtype=torch.long)
    step[axis] = 1
    plus, minus = (lut[tuple((pos + s * step).T)] for s in (1, -1))
    hi = torch.where(plus >= 0, plus, index)
    lo = torch.where(minus >= 0, minus, index)
    dv = values[hi] - values[lo]
    ok = dv != 0
    deriv = (coef[hi] - coef[lo]) / torch.where(ok, dv, 1.0)[:, None]
    spacing = torch.where((plus >= 0) & (minus >= 0), dv / 2, dv)
    return deriv * ok[:, None], spacing


def _jacobian(index, m0, dic, sub, b1_free: bool):
    """``J`` ``(V, r, p)`` (columns T1, T2, M0, then B1 when it is matched too) at atoms ``index``
    with scales ``m0``, its T1/T2 columns and the grid spacings of T1 and T2."""
    coef = sub.coef.double()
    m0 = m0.double()
    lut = _lookup(dic.grid)
    params = [("t1", 0, dic.t1.double()), ("t2", 1, dic.t2.double())]
    if b1_free and torch.unique(dic.b1).numel() > 1:
        params.append(("b1", 2, dic.b1.double()))
    cols, spacing = [], {}
    for name, axis, values in params:
        deriv, spacing[name] = _along(axis, index, values, coef, dic.grid, lut)
        cols.append(m0[:, None] * deriv)
    return torch.stack(cols[:2] + [coef[index]] + cols[2:], -1), cols, spacing


def sensitivity(index, m0, dic, sub, *, b1_free: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The linearised estimator ``(J^T J)^-1 J^T`` ``(V, p, r)`` at the matched atoms (a coefficient
    error ``e``, rotated to the voxel's phase, moves the estimates by ``rows @ e``; its covariance
    ``sigma^2 rows rows^T`` is the bound) and where it exists ``(V,)``."""
    jac, _, _ = _jacobian(index, m0, dic, sub, b1_free)
    inv, info = torch.linalg.inv_ex(jac.transpose(1, 2) @ jac)
    rows = inv @ jac.transpose(1, 2)
    return rows, (info == 0) & torch.isfinite(rows).flatten(1).all(1) & (m0 > 0)


def matching_sd(index, m0, dic, sub, sigma: float, *, b1_free: bool = False,
                factor: dict | None = None) -> dict[str, torch.Tensor]:
    """``t1_sd``, ``t2_sd``, ``m0_sd`` ``(V,)`` of voxels matched to atoms ``index`` with scales ``m0``
    (:mod:`qmriprep.fit.mrf`: ``dic`` the dictionary, ``sub`` its subspace); 0 where ``J^T J`` is
    singular or the voxel has no signal. ``factor``: per parameter, the ratio of the estimator's
    error variance to the bound (e.g. a denoiser's, :mod:`qmriprep.nn.subspacecnn_sd`; default 1),
    applied to the bound before the quantisation is added."""
    jac, cols, spacing = _jacobian(index, m0, dic, sub, b1_free)
    inv, info = torch.linalg.inv_ex(jac.transpose(1, 2) @ jac)
    var = sigma ** 2 * torch.diagonal(inv, dim1=1, dim2=2)
    ok = (info == 0) & torch.isfinite(var).all(1) & (var >= 0).all(1) & (m0 > 0)
    atom = jac[:, :, 2]
    quantised = {name: spacing[name] ** 2 / 12 for name in ("t1", "t2")}
    # a T1/T2 off by delta moves the projection scale by -M0 <c, dc> / |c|^2 delta
    quantised["m0"] = sum(((atom * cols[k]).sum(1) / (atom * atom).sum(1).clamp_min(1e-30)) ** 2 * quantised[name]
                          for k, name in enumerate(("t1", "t2")))
    out = {}
    for k, name in enumerate(("t1", "t2", "m0")):
        v = var[:, k] * (factor or {}).get(name, 1.0) + quantised[name]
        out[f"{name}_sd"] = torch.where(ok, v.clamp_min(0).sqrt(), torch.zeros_like(v)).float()
    return out
