"""A digital brain phantom with known T1, T2, T2*, M0 (PD), B1+ and off-resonance maps.

Anatomy: the MNI ICBM152 2009a nonlinear symmetric template shipped with nilearn (Fonov et al.
2011, NeuroImage 54:313), read offline through ``nilearn.datasets.load_mni152_gm_template``,
``load_mni152_wm_template`` and ``load_mni152_brain_mask`` at 1 mm. CSF is the brain mask minus
grey and white matter. The probabilities are block-averaged by ``downsample``, so voxels at tissue
boundaries hold partial volumes, as in a real acquisition at that voxel size.

Tissue values at 3 T (seconds; PD as the water fraction of pure water):

====== ===== ===== ===== =====
tissue T1    T2    T2*   PD
====== ===== ===== ===== =====
WM     0.85  0.070 0.053 0.69
GM     1.35  0.090 0.066 0.80
CSF    4.30  1.80  0.50  1.00
====== ===== ===== ===== =====

T1 and T2 of WM and GM lie within the 3 T literature range (Wansapura et al. 1999, JMRI 9:531;
Stanisz et al. 2005, MRM 54:507); T2* from Peters et al. 2007 (MRI 25:748); PD from in-vivo
water content (Neeb et al. 2006, NeuroImage 31:1156); CSF T1 and T2 near free water at body
temperature (Rooney et al. 2007, MRM 57:308); CSF T2* is an assumption (bounded by T2 and B0
inhomogeneity).

Partial volume (fast exchange, one compartment per voxel): ``PD = sum_i f_i PD_i`` and every rate
``R = 1/T`` is the water-weighted mean ``sum_i f_i PD_i R_i / PD``. Each voxel is therefore one
mono-exponential / SPGR compartment, so signals simulated from these maps are fitted exactly by
the project's models. A smooth random texture (a few percent, ``texture``) makes the maps vary
within a tissue. Coarser grids (:meth:`Phantom.coarsen`) apply the same rule to blocks.

Fields are analytic functions of the world position (mm), so every grid samples the same field:
B1+ (fraction of nominal) is a centre-bright bump, about 0.8 at the edge of the brain and 1.2 in
its centre as at 3 T, with a weak left-right gradient; off-resonance (Hz) is a linear shim residual
plus lobes over the frontal sinus and the ear canals.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
from scipy import ndimage

#: tissue values at 3 T, SI units (see the module docstring for the references)
TISSUES = {
    "WM": {"t1": 0.85, "t2": 0.070, "t2star": 0.053, "pd": 0.69},
    "GM": {"t1": 1.35, "t2": 0.090, "t2star": 0.066, "pd": 0.80},
    "CSF": {"t1": 4.30, "t2": 1.80, "t2star": 0.50, "pd": 1.00},
}
#: labels of :attr:`Phantom.labels` (BIDS dseg)
LABELS = {0: "background", 1: "CSF", 2: "GM", 3: "WM"}
#: a voxel is "pure" when one tissue fills more than this fraction of it
PURE_FRACTION = 0.9
_TIMES = ("t1", "t2", "t2star")


@dataclasses.dataclass(frozen=True)
class Fields:
    """Smooth B1+ (fraction) and off-resonance (Hz) fields as functions of world position (mm)."""

    centre: tuple  # brain centroid (mm)
    b1_offset: tuple = (0.0, 0.0, 0.0)  # bump centre relative to the brain centre (mm)
    b1_width: tuple = (55.0, 65.0, 60.0)  # Gaussian widths (mm)
    b1_peak: float = 1.22
    b1_floor: float = 0.72
    b1_gradient: tuple = (0.0008, 0.0, 0.0)  # per mm
    df_gradient: tuple = (0.15, 0.3, -0.2)  # Hz per mm
    df_lobes: tuple = (  # (offset from centre in mm, width mm, amplitude Hz)
        ((0.0, 65.0, -30.0), 18.0, 90.0),  # frontal sinus
        ((-60.0, 5.0, -35.0), 15.0, 45.0),  # ear canals
        ((60.0, 5.0, -35.0), 15.0, 45.0),
    )

    def b1(self, xyz):
        """B1+ as a fraction of nominal at world points ``xyz`` (..., 3)."""
        d = xyz - np.asarray(self.centre) - np.asarray(self.b1_offset)
        bump = np.exp(-0.5 * np.sum((d / np.asarray(self.b1_width)) ** 2, -1))
        lin = (xyz - np.asarray(self.centre)) @ np.asarray(self.b1_gradient)
        return np.clip(self.b1_floor + (self.b1_peak - self.b1_floor) * bump + lin, 0.5, 1.5)

    def off_resonance(self, xyz):
        """Off-resonance frequency (Hz) at world points ``xyz`` (..., 3)."""
        d = xyz - np.asarray(self.centre)
        df = d @ np.asarray(self.df_gradient)
        for offset, width, amp in self.df_lobes:
            r2 = np.sum((d - np.asarray(offset)) ** 2, -1) / width**2
            df = df + amp * np.exp(-0.5 * r2)
        return df


@dataclasses.dataclass
class Phantom:
    """Tissue fractions, parameter maps (SI units) and fields on one voxel grid.

    ``t1``, ``t2``, ``t2star`` are in s and 0 where ``pd`` is 0 (no water); ``pd`` is the M0 map
    (1 = pure water); ``b1`` a fraction of nominal; ``off_resonance`` in Hz; ``labels`` 0 bg,
    1 CSF, 2 GM, 3 WM by largest fraction; ``pure`` where one tissue fills > 90 % of the voxel.
    """

    affine: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    pd: np.ndarray
    t1: np.ndarray
    t2: np.ndarray
    t2star: np.ndarray
    fields: Fields

    @property
    def shape(self):
        return self.pd.shape

    @property
    def zooms(self):
        """Voxel size in mm."""
        return tuple(float(z) for z in np.linalg.norm(self.affine[:3, :3], axis=0))

    @property
    def centres(self):
        """World coordinates (mm) of the voxel centres, shape ``shape + (3,)``."""
        ijk = np.stack(np.meshgrid(*[np.arange(n) for n in self.shape], indexing="ij"), -1)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    @functools.cached_property
    def b1(self):
        return self.fields.b1(self.centres).astype(np.float32)

    @functools.cached_property
    def off_resonance(self):
        return self.fields.off_resonance(self.centres).astype(np.float32)

    @property
    def labels(self):
        bg = 1 - (self.gm + self.wm + self.csf)
        return np.argmax(np.stack([bg, self.csf, self.gm, self.wm]), 0).astype(np.uint8)

    @property
    def pure(self):
        return np.max(np.stack([self.csf, self.gm, self.wm]), 0) > PURE_FRACTION

    @property
    def mask(self):
        """Voxels with any water (where the truth maps are defined)."""
        return self.pd > 0

    def noise_reference(self):
        """Reference region of the noise level: pure WM (else WM-labelled, else all water)."""
        for m in (self.pure & (self.labels == 3), self.labels == 3, self.mask):
            if m.sum() >= 5:
                return m
        return np.ones(self.shape, bool)

    def maps(self):
        """Truth maps by BIDS suffix: T1map, T2map, T2starmap (s), M0map, TB1map (fraction)."""
        return {"T1map": self.t1, "T2map": self.t2, "T2starmap": self.t2star,
                "M0map": self.pd, "TB1map": self.b1}

    def safe(self, name):
        """A relaxation time with 1 s where there is no water (signals there are 0 anyway)."""
        return np.where(self.mask, getattr(self, name), np.float32(1.0))

    def slab(self, n_slices):
        """The ``n_slices`` central axial slices (last axis), affine shifted accordingly."""
        nz = self.shape[2]
        if n_slices is None or n_slices >= nz:
            return self
        if n_slices < 1:
            raise ValueError(f"n_slices must be >= 1, got {n_slices}")
        k0 = slab_start(nz, n_slices)
        affine = self.affine.copy()
        affine[:3, 3] = self.affine[:3, :3] @ [0, 0, k0] + self.affine[:3, 3]
        cut = {f: getattr(self, f)[..., k0:k0 + n_slices] for f in _ARRAYS}
        return Phantom(affine=affine, fields=self.fields, **cut)

    def coarsen(self, factor):
        """The phantom on a grid ``factor`` times coarser covering the same field of view.

        Blocks of ``factor**3`` voxels (padded with background at the far edges) are merged with
        the partial-volume rule of the module docstring; fields are sampled at the new centres.
        """
        factor = int(factor)
        if factor == 1:
            return self
        pd = _block_mean(self.pd, factor)
        out = {f: _block_mean(getattr(self, f), factor) for f in ("gm", "wm", "csf")}
        for name in _TIMES:
            rate = np.where(self.mask, 1 / self.safe(name), 0)
            out[name] = _rate_to_time(_block_mean(self.pd * rate, factor), pd)
        affine = self.affine @ _scaling(factor, np.zeros(3))
        return Phantom(affine=affine, pd=pd, fields=self.fields, **out)


_ARRAYS = ("gm", "wm", "csf", "pd", "t1", "t2", "t2star")


def slab_start(nz, n_slices):
    """First slice of the ``n_slices`` central slices of ``nz`` (0 for None or too many)."""
    return 0 if n_slices is None or n_slices >= nz else (nz - n_slices) // 2


def make_phantom(*, downsample=4, crop=True, n_slices=None, seed=0, texture=0.03):
    """Build the brain phantom on an MNI grid of ``downsample`` mm isotropic voxels.

    Parameters
    ----------
    downsample : int
        Integer factor of the 1 mm MNI grid (4 gives 4 mm voxels).
    crop : bool
        Crop to the brain's bounding box plus one voxel (else the whole template grid).
    n_slices : int or None
        Keep only this many central axial slices.
    seed : int
        Seeds the texture and small subject-to-subject changes of the B1+ field.
    texture : float
        Relative standard deviation of the smooth within-tissue variation of PD and of each rate.
    """
    downsample = int(downsample)
    if downsample < 1:
        raise ValueError(f"downsample must be a positive integer, got {downsample}")
    frac, affine, centre = _grid(downsample, bool(crop))
    rng = np.random.default_rng(seed)
    fields = _fields(centre, rng)
    pd, times = _mix(frac, rng, texture, sigma_vox=10.0 / downsample)
    ph = Phantom(affine=affine.copy(), pd=pd, fields=fields, **frac, **times)
    return ph.slab(n_slices)


def _mix(frac, rng, texture, sigma_vox):
    """PD and relaxation times of the partial-volume mixture, with a smooth texture."""
    names = {"gm": "GM", "wm": "WM", "csf": "CSF"}
    water = {k: frac[k] * TISSUES[t]["pd"] for k, t in names.items()}
    pd = sum(water.values())

    def tex():
        if texture <= 0:
            return 1.0
        g = ndimage.gaussian_filter(rng.standard_normal(pd.shape), sigma_vox, mode="reflect")
        return np.exp(texture * g / max(g.std(), 1e-12))

    times = {}
    for name in _TIMES:
        rate = sum(water[k] / TISSUES[t][name] for k, t in names.items())
        times[name] = _rate_to_time(rate * tex(), pd)
    pd = (pd * tex()).astype(np.float32)
    return pd, times


def _rate_to_time(weighted_rate_sum, pd):
    """``pd / sum(f PD R)``, 0 where there is no water."""
    ok = pd > 0
    out = np.zeros(pd.shape, np.float32)
    out[ok] = pd[ok] / weighted_rate_sum[ok]
    return out


@functools.lru_cache(maxsize=8)
def _grid(downsample, crop):
    """Tissue fractions on the ``downsample`` grid, its affine and the brain centre (cached)."""
    gm, wm, csf, affine1 = _templates()
    brain = gm + wm + csf
    if crop:
        lo, hi = _bbox(brain > 0.01)
        lo, hi = lo - downsample, hi + downsample
    else:
        lo, hi = np.zeros(3, int), np.array(gm.shape)
    size = -(-(hi - lo) // downsample) * downsample
    frac = {n: _block_mean(_extract(a, lo, size), downsample) for n, a in
            (("gm", gm), ("wm", wm), ("csf", csf))}
    for a in frac.values():
        a.setflags(write=False)
    centre = tuple(affine1[:3, :3] @ np.argwhere(brain > 0.5).mean(0) + affine1[:3, 3])
    return frac, affine1 @ _scaling(downsample, lo), centre


@functools.lru_cache(maxsize=1)
def _templates():
    """1 mm GM, WM, CSF probabilities and their affine (cached for the process)."""
    from nilearn import datasets

    gm_img = datasets.load_mni152_gm_template(resolution=1)
    gm = np.clip(np.asarray(gm_img.dataobj, np.float32), 0, 1)
    wm_img = datasets.load_mni152_wm_template(resolution=1)
    wm = np.clip(np.asarray(wm_img.dataobj, np.float32), 0, 1)
    mask = np.asarray(datasets.load_mni152_brain_mask(resolution=1).dataobj) > 0
    total = gm + wm
    scale = np.where(total > 1, 1 / np.maximum(total, 1e-6), 1).astype(np.float32)
    gm, wm = gm * scale, wm * scale
    csf = np.where(mask, np.clip(1 - gm - wm, 0, 1), 0).astype(np.float32)
    for a in (gm, wm, csf):
        a.setflags(write=False)
    return gm, wm, csf, np.asarray(gm_img.affine, float)


def _fields(centre, rng):
    return Fields(
        centre=centre,
        b1_offset=tuple(rng.normal(0, 6.0, 3)),
        b1_gradient=(0.0008 + rng.normal(0, 2e-4), rng.normal(0, 2e-4), 0.0),
    )


def _bbox(mask):
    idx = np.argwhere(mask)
    return idx.min(0), idx.max(0) + 1


def _extract(a, lo, size):
    """``a[lo:lo+size]`` with zeros beyond the array."""
    out = np.zeros(tuple(size), a.dtype)
    src_lo = np.maximum(lo, 0)
    src_hi = np.minimum(lo + size, a.shape)
    dst_lo = src_lo - lo
    dst_hi = dst_lo + (src_hi - src_lo)
    out[tuple(slice(s, e) for s, e in zip(dst_lo, dst_hi))] = \
        a[tuple(slice(s, e) for s, e in zip(src_lo, src_hi))]
    return out


def _block_mean(a, f):
    """Mean over ``f x f x f`` blocks, padding the far edges with zeros to a multiple of ``f``."""
    if f == 1:
        return a
    size = -(-np.array(a.shape) // f) * f
    a = _extract(a, np.zeros(3, int), size)
    nx, ny, nz = size // f
    return a.reshape(nx, f, ny, f, nz, f).mean((1, 3, 5), dtype=np.float64).astype(np.float32)


def _scaling(f, lo):
    """Voxel-index map of a grid ``f`` times coarser whose first block starts at index ``lo``."""
    m = np.diag([f, f, f, 1.0])
    m[:3, 3] = np.asarray(lo, float) + (f - 1) / 2
    return m
