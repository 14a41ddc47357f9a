"""Dictionary matching of MRF subspace coefficients: exhaustive, or coarse-to-fine on the grid.

Both return, per voxel, the atom with the largest ``|<y, c_n>| / |c_n|`` (``y``: the voxel's
coefficients after :func:`remove_phase`, ``c_n``: the atom's), its ``score`` (that value), the
projection scale ``m0 = score / |c_n|`` and the ``quality`` ``score / |y|`` (1: a perfect match).

*Exhaustive* (:func:`match`): every atom, ``chunk`` voxels at a time (one matrix product each).
*Coarse-to-fine* (:class:`GridSearch`): the dictionary is a T1 x T2 grid (one B1 level), and a
fingerprint's correlation with the atoms varies smoothly across it. Step 1 matches against
the coarse grid (every ``stride``-th T1 and T2 value, about ``N / stride^2`` atoms); step 2
against the ``(2 stride + 1)^2`` fine atoms around the coarse winner. It finds the exhaustive
winner unless the correlation surface has a second, separate peak that wins on the fine grid
only; ``benchmarks/bench_mrf.py`` measures how often the two searches disagree.
"""

from __future__ import annotations

import torch


def project(series, phi: torch.Tensor) -> torch.Tensor:
    """Coefficients ``(V, r)`` of series ``(V, T)`` (real or complex) on ``phi`` ``(T, r)``."""
    x = torch.as_tensor(series)
    if x.is_complex():
        return x.to(torch.complex64) @ phi.to(torch.complex64)
    return x.float() @ phi


def remove_phase(coef: torch.Tensor) -> torch.Tensor:
    """Real coefficients of complex ones rotated by their least-squares phase ``angle(sum y^2)/2``
    (defined modulo pi: the sign is left to the ``|<y, c>|`` of the matching)."""
    if not coef.is_complex():
        return coef
    phase = 0.5 * torch.angle((coef * coef).sum(1, keepdim=True))
    return (coef * torch.exp(-1j * phase)).real


def _result(coef, index, score, norms) -> dict[str, torch.Tensor]:
    ynorm = coef.abs().norm(dim=1) if coef.is_complex() else coef.norm(dim=1)
    m0 = score / norms[index].clamp_min(1e-30)
    quality = torch.where(ynorm > 0, score / ynorm.clamp_min(1e-30), torch.zeros_like(score))
    return {"index": index, "m0": m0, "quality": quality, "score": score}


def match(coef: torch.Tensor, atoms: torch.Tensor, *, chunk: int = 8192) -> dict[str, torch.Tensor]:
    """Exhaustive matching of coefficients ``(V, r)`` against atoms' coefficients ``(N, r)``."""
    y = remove_phase(coef)
    norms = atoms.norm(dim=1)
    unit = (atoms / norms.clamp_min(1e-30)[:, None]).T.contiguous()  # (r, N)
    index = torch.empty(y.shape[0], dtype=torch.long)
    score = torch.empty(y.shape[0])
    for i in range(0, y.shape[0], chunk):
        s = (y[i:i + chunk] @ unit).abs_()
        score[i:i + chunk], index[i:i + chunk] = s.max(dim=1)
    return _result(coef, index, score, norms)


class GridSearch:
    """Coarse-to-fine matching on a T1 x T2 grid (module docstring).

    ``atoms``: coefficients ``(N, r)``; ``grid``: their T1 and T2 indices ``(N, 2)`` (one B1
    level). ``strides``: the levels, coarse to fine; level ``l`` searches the atoms on its stride
    within ``strides[l - 1]`` grid steps (in T1 and in T2) of the previous level's winner. The
    first level is matched in chunks of ``chunk`` voxels (scores stay in the CPU cache); the
    others voxel group by voxel group (all voxels sharing a winner: one small matrix product).
    """

    def __init__(self, atoms: torch.Tensor, grid: torch.Tensor, *, strides=(16, 4, 1)):
        self.norms = atoms.norm(dim=1)
        self.unit = atoms / self.norms.clamp_min(1e-30)[:, None]
        self.strides = tuple(int(s) for s in strides)
        if self.strides[-1] != 1 or any(a < b for a, b in zip(self.strides, self.strides[1:])):
            raise ValueError(f"strides must decrease to 1, got {strides}")
        shape = (int(grid[:, 0].max()) + 1, int(grid[:, 1].max()) + 1)
        lut = torch.full(shape, -1, dtype=torch.long)
        lut[grid[:, 0], grid[:, 1]] = torch.arange(atoms.shape[0])
        on = [(grid[:, 0] % s == 0) & (grid[:, 1] % s == 0) for s in self.strides]
        self.first = torch.nonzero(on[0]).ravel()
        self.first_unit = self.unit[self.first].T.contiguous()
        self.tables = []  # per refining level: {previous winner (atom): candidate atoms}
        for level in range(1, len(self.strides)):
            step, reach = self.strides[level], self.strides[level - 1]
            offsets = torch.arange(-(reach // step) * step, reach + 1, step)
            table = {}
            for atom in torch.nonzero(on[level - 1]).ravel().tolist():
                i1, i2 = grid[atom, 0] + offsets, grid[atom, 1] + offsets
                i1, i2 = i1[(i1 >= 0) & (i1 < shape[0])], i2[(i2 >= 0) & (i2 < shape[1])]
                cand = torch.unique(lut[i1[:, None], i2[None, :]].ravel())
                cand = cand[cand >= 0]
                table[atom] = (cand, self.unit[cand].T.contiguous())
            self.tables.append(table)
            on[level] = on[level] | on[level - 1]

    def __call__(self, coef: torch.Tensor, *, chunk: int = 2048) -> dict[str, torch.Tensor]:
        y = remove_phase(coef).contiguous()
        index = torch.empty(y.shape[0], dtype=torch.long)
        score = torch.empty(y.shape[0])
        for i in range(0, y.shape[0], chunk):
            s = (y[i:i + chunk] @ self.first_unit).abs_()
            score[i:i + chunk], k = s.max(dim=1)
            index[i:i + chunk] = self.first[k]
        for table in self.tables:  # voxels sorted by winner: each group a contiguous block
            order = torch.argsort(index)
            ys, found, best = y[order], torch.empty_like(index), torch.empty_like(score)
            winners, counts = torch.unique_consecutive(index[order], return_counts=True)
            start = 0
            for atom, n in zip(winners.tolist(), counts.tolist()):
                cand, unit_t = table[atom]
                best[start:start + n], k = (ys[start:start + n] @ unit_t).abs_().max(dim=1)
                found[start:start + n] = cand[k]
                start += n
            index[order], score[order] = found, best
        return _result(coef, index, score, self.norms)
