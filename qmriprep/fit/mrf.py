"""MR fingerprinting by dictionary matching in an SVD subspace (Ma 2013; McGivney 2014).

1. **Dictionary** (:func:`dictionary_grid`, :func:`simulate_dictionary`): FISP series of every
   ``(T1, T2[, B1])`` of a grid by :func:`qmriprep.physics.epg.fisp_signal`. T1 and T2 are
   geometric (log-spaced) between their bounds with a relative step (``0.03``: each value 3 %
   above the previous); entries with ``T2 > T1`` are left out; the optional B1 axis lists
   fractions of the nominal flip angle (empty: B1 = 1).
2. **Subspace** (:func:`subspace`): the right singular vectors ``Phi`` (``T x r``) of the
   dictionary (rows: entries, columns: frames). The rank ``r`` is the smallest whose singular
   values hold ``rank_energy`` of the total, energy measured as the **sum of the squared singular
   values** (``rank_measure="squares"``, the signal power: the fraction of the dictionary's squared
   Frobenius norm that the subspace keeps) or as the **sum of the singular values**
   (``rank_measure="values"``); ``rank`` > 0 fixes it. The seed (Gao et al.) kept 6 coefficients
   "to reach 95 % power in singular values" without saying which; on our schedule 95 % of the
   squares gives 2-3 coefficients and matches worse, 95 % of the values about 6-8.
3. **Matching** (:func:`match`): data and atoms projected on ``Phi``; for each voxel the atom
   with the largest normalised inner product ``|<y, c_n>| / (|y| |c_n|)`` (the match quality),
   ``M0 = |<y, c_n>| / |c_n|^2`` (the projection scale), voxels ``chunk`` at a time. Complex data
   are first rotated by their least-squares phase ``angle(sum_k y_k^2) / 2`` (the dictionary is
   real: FISP with RF phase 0), so the search is one real matrix product; magnitude data (real,
   never negative) are matched against the magnitude dictionary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..physics.epg import fisp_signal
from .mrf_sd import matching_sd
from .mrfmatch import GridSearch, match, project


@dataclass
class MRFSettings:
    """Dictionary and matching settings (config section ``mrf``; SI units, relative steps)."""

    t1_range: list = field(default_factory=lambda: [0.05, 5.0])
    t2_range: list = field(default_factory=lambda: [0.005, 2.0])
    t1_step: float = 0.03
    t2_step: float = 0.03
    b1_values: list = field(default_factory=list)
    b1_step: float = 0.025
    rank_energy: float = 0.95
    rank_measure: str = "values"
    rank: int = 0
    search: str = "grid"
    strides: list = field(default_factory=lambda: [16, 4, 1])
    chunk: int = 2048


def settings_from(options: dict) -> MRFSettings:
    """:class:`MRFSettings` of a dict (e.g. the config section; keys that are not settings are
    ignored)."""
    names = MRFSettings.__dataclass_fields__
    return MRFSettings(**{k: list(v) if isinstance(v, (list, tuple)) else v for k, v in options.items()
                          if k in names})


@dataclass(frozen=True)
class Dictionary:
    """Simulated atoms ``(N, T)`` (float32) with their ``t1``, ``t2``, ``b1`` (``N``) and their
    position on the grid, ``grid`` ``(N, 3)``: T1, T2 and B1 indices."""

    atoms: torch.Tensor
    t1: torch.Tensor
    t2: torch.Tensor
    b1: torch.Tensor
    grid: torch.Tensor


@dataclass(frozen=True)
class Subspace:
    """``phi`` ``(T, r)``; the atoms' coefficients ``coef`` ``(N, r)`` and their norms."""

    phi: torch.Tensor
    coef: torch.Tensor
    norms: torch.Tensor
    singular_values: torch.Tensor

    @property
    def rank(self) -> int:
        return self.phi.shape[1]


def geometric(lo: float, hi: float, step: float) -> np.ndarray:
    """``lo, lo (1 + step), ...`` up to ``hi`` (included when it falls on the grid)."""
    n = int(math.floor(math.log(hi / lo) / math.log1p(step) + 1e-9)) + 1
    return lo * (1 + step) ** np.arange(n)


def dictionary_grid(settings: MRFSettings) -> tuple[np.ndarray, ...]:
    """``(t1, t2, b1, grid)`` of every entry of the T1 x T2 (x B1) grid without ``T2 > T1``;
    ``grid`` ``(N, 3)`` holds each entry's T1, T2 and B1 indices."""
    t1s = geometric(*settings.t1_range, settings.t1_step)
    t2s = geometric(*settings.t2_range, settings.t2_step)
    b1s = np.asarray(settings.b1_values or (1.0,), dtype=float)
    idx = np.stack([a.ravel() for a in np.meshgrid(*(np.arange(len(v)) for v in (t1s, t2s, b1s)),
                                                   indexing="ij")], 1)
    t1, t2, b1 = t1s[idx[:, 0]], t2s[idx[:, 1]], b1s[idx[:, 2]]
    keep = t2 <= t1
    return t1[keep], t2[keep], b1[keep], idx[keep]


def simulate_dictionary(protocol, settings: MRFSettings) -> Dictionary:
    """The FISP dictionary of ``protocol`` on the grid of ``settings`` (float64 EPG, float32 kept)."""
    t1, t2, b1, grid = dictionary_grid(settings)
    with single_thread():  # small element-wise kernels: threads only add contention
        atoms = fisp_signal(t1, t2, protocol, b1=b1).float()
    return Dictionary(atoms, *(torch.as_tensor(a, dtype=torch.float32) for a in (t1, t2, b1)),
                      torch.as_tensor(grid, dtype=torch.long))


class single_thread:
    """Run torch on one thread inside the block (the number of threads is restored after)."""

    def __enter__(self):
        self.n = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.n)


def choose_rank(singular_values, energy: float, measure: str = "values") -> int:
    """Smallest ``r`` whose first singular values hold ``energy`` (0-1) of the total: sum of the
    values (``"values"``) or of their squares (``"squares"``, the signal power)."""
    if measure not in ("values", "squares"):
        raise ValueError(f"rank_measure must be 'values' or 'squares', got {measure!r}")
    if not 0 < energy <= 1:
        raise ValueError(f"rank_energy must be in (0, 1], got {energy}")
    s = torch.as_tensor(singular_values, dtype=torch.float64)
    w = s if measure == "values" else s * s
    frac = torch.cumsum(w, 0) / w.sum()
    return int(torch.searchsorted(frac, torch.tensor([energy - 1e-12], dtype=torch.float64))[0]) + 1


def subspace(atoms: torch.Tensor, settings: MRFSettings) -> Subspace:
    """Temporal subspace of the atoms (rank by ``settings``) and the atoms' coefficients."""
    d = atoms.double()
    gram = d.T @ d  # (T, T): eigenvectors = right singular vectors, eigenvalues = s^2
    evals, evecs = torch.linalg.eigh(gram)
    order = torch.argsort(evals, descending=True)
    s = evals[order].clamp_min(0).sqrt()
    r = settings.rank or choose_rank(s, settings.rank_energy, settings.rank_measure)
    phi = evecs[:, order[:r]]
    phi = phi * torch.sign(phi.sum(0, keepdim=True) + 1e-30)  # deterministic signs
    coef = (d @ phi).float()
    return Subspace(phi.float(), coef, coef.norm(dim=1), s.float())


def fit_mrf_matching(series, protocol, *, b1=None, mask=None, settings: MRFSettings | None = None,
                     dictionary: tuple[Dictionary, Subspace] | None = None, sigma=None) -> dict[str, np.ndarray]:
    """T1, T2 (s), M0, match ``quality`` and ``rmse`` maps of an MRF series ``(..., T)``; with the
    series' noise ``sigma`` also ``t1_sd``, ``t2_sd``, ``m0_sd`` (:func:`~.mrf_sd.matching_sd`).

    ``b1`` (a map, fraction): the dictionary gets a B1 axis covering the map (``b1_step``,
    unless ``b1_values`` is set) and each voxel is matched among the atoms of the B1 level
    nearest its map value. ``rmse``: root mean square over the frames of the data minus
    ``M0 x`` the matched atom (its component outside the subspace included).
    """
    prep = prepare(series, protocol, b1=b1, mask=mask, settings=settings, dictionary=dictionary)
    return maps_from(project(prep.x, prep.sub.phi), prep, sigma)


@dataclass(frozen=True)
class Prepared:
    """What matching needs of one series: the masked voxels ``x`` ``(V, T)``, where they are
    (``keep``), their B1 values (or None), the settings, dictionary and subspace."""

    x: torch.Tensor
    keep: np.ndarray
    b1: np.ndarray | None
    settings: MRFSettings
    dic: Dictionary
    sub: Subspace


def prepare(series, protocol, *, b1=None, mask=None, settings: MRFSettings | None = None,
            dictionary: tuple[Dictionary, Subspace] | None = None) -> Prepared:
    """The voxels of ``series`` in ``mask`` and the dictionary and subspace to match them with."""
    settings = settings or MRFSettings()
    series = np.asarray(series)
    spatial = series.shape[:-1]
    keep = np.ones(spatial, bool) if mask is None else np.asarray(mask, bool) & np.ones(spatial, bool)
    b1v = None if b1 is None else np.asarray(b1)[keep]
    if b1 is not None and not settings.b1_values and dictionary is None:
        settings = replace(settings, b1_values=b1_levels(b1v, settings.b1_step))
    x = torch.as_tensor(series[keep])
    dic, sub = dictionary or build(protocol, settings, magnitude=is_magnitude(x))
    return Prepared(x, keep, b1v, settings, dic, sub)


def maps_from(coef: torch.Tensor, prep: Prepared, sigma=None, sd_factor: dict | None = None) -> dict[str, np.ndarray]:
    """Maps (module docstring) of subspace coefficients ``(V, r)`` of the voxels of ``prep``;
    ``rmse`` against ``prep.x``; SD maps when the noise ``sigma`` is given (``sd_factor``: see
    :func:`~.mrf_sd.matching_sd`)."""
    x, dic = prep.x, prep.dic
    total = (x.abs() ** 2).sum(1).float() if x.is_complex() else (x.float() ** 2).sum(1)
    with single_thread():  # small kernels: threads only add contention on a shared machine
        found = match_by_b1(coef, dic, prep.sub, prep.b1, prep.settings)
    atom, m0 = prep.sub.coef[found["index"]], found["m0"]
    data = project(x, prep.sub.phi)  # |x - m0 e^{i phi} a|^2, phase phi optimal
    inner = (data * atom.to(data.dtype)).sum(1).abs()
    resid = total - 2 * m0 * inner + m0 ** 2 * (atom ** 2).sum(1)
    out = {"t1": dic.t1[found["index"]], "t2": dic.t2[found["index"]], "m0": found["m0"],
           "quality": found["quality"], "rmse": (resid.clamp_min(0) / x.shape[-1]).sqrt()}
    if sigma is not None:
        out.update(matching_sd(found["index"], found["m0"], dic, prep.sub, float(sigma), b1_free=prep.b1 is None,
                               factor=sd_factor))
    maps = {}
    for key, v in out.items():
        full = np.zeros(prep.keep.shape, np.float32)
        full[prep.keep] = np.nan_to_num(v.numpy(), nan=0.0, posinf=0.0, neginf=0.0)
        maps[key] = full
    return maps


def b1_levels(b1, step: float) -> tuple[float, ...]:
    """B1 axis covering the values of a B1 map (fractions) in steps of ``step``, clipped to
    [0.3, 2]; ``(1.0,)`` for an empty map."""
    b1 = np.asarray(b1, float)
    b1 = b1[np.isfinite(b1) & (b1 > 0)]
    if b1.size == 0:
        return (1.0,)
    lo = max(math.floor(np.percentile(b1, 0.5) / step), math.ceil(0.3 / step))
    hi = min(math.ceil(np.percentile(b1, 99.5) / step), math.floor(2.0 / step))
    return tuple(round(k * step, 6) for k in range(lo, max(hi, lo) + 1))


def is_magnitude(x: torch.Tensor) -> bool:
    """Real data without negative values: a magnitude series."""
    return not x.is_complex() and bool(x.numel()) and bool((x >= 0).all())


def build(protocol, settings: MRFSettings, *, magnitude: bool = False) -> tuple[Dictionary, Subspace]:
    """Dictionary and subspace of ``protocol`` (of the magnitude atoms for magnitude data)."""
    dic = simulate_dictionary(protocol, settings)
    if magnitude:
        dic = Dictionary(dic.atoms.abs(), dic.t1, dic.t2, dic.b1, dic.grid)
    return dic, subspace(dic.atoms, settings)


def match_by_b1(coef, dic: Dictionary, sub: Subspace, b1, settings: MRFSettings) -> dict:
    """Match over all atoms (B1 axis included), or, with a B1 map, within each voxel's nearest
    B1 level; by ``settings.search`` (``grid``: coarse-to-fine per B1 level, or ``exhaustive``)."""
    levels = torch.unique(dic.b1)
    nearest = torch.zeros(coef.shape[0], dtype=torch.long)
    if b1 is not None:
        nearest = torch.argmin((torch.as_tensor(b1, dtype=torch.float32)[:, None] - levels).abs(), 1)
    elif len(levels) > 1:  # no map: B1 is matched too, over the whole dictionary
        return match(coef, sub.coef, chunk=settings.chunk)
    out = {k: torch.zeros(coef.shape[0], dtype=torch.long if k == "index" else torch.float32)
           for k in ("index", "m0", "quality", "score")}
    for j, level in enumerate(levels):
        rows, atoms = nearest == j, torch.nonzero(dic.b1 == level).ravel()
        if not rows.any():
            continue
        if settings.search == "grid":
            found = GridSearch(sub.coef[atoms], dic.grid[atoms, :2], strides=settings.strides)(coef[rows])
        elif settings.search == "exhaustive":
            found = match(coef[rows], sub.coef[atoms], chunk=settings.chunk)
        else:
            raise ValueError(f"search must be 'grid' or 'exhaustive', got {settings.search!r}")
        found["index"] = atoms[found["index"]]
        for k, v in found.items():
            out[k][rows] = v
    return out
