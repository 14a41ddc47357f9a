"""Conventional estimators: arrays in, dict of float32 arrays out (pure core, no file IO).

- :func:`monoexp.fit_monoexp`: T2 / T2* (log-linear, NLLS, VarPro; drop-first-echo, offset)
- :func:`despot1.fit_vfa`: VFA T1 (linear DESPOT1, NLLS) with B1+ correction
- :mod:`b1`: DAM / AFI / TFL B1+ maps, normalised-convolution smoothing, median filter
- :func:`mask.foreground_mask`: Otsu-based foreground mask
- :func:`qdess.fit_qdess`: qDESS T2 from the two DESS echoes (Sveinsson 2017)
"""

from .b1 import b1_from_afi, b1_from_dam, b1_from_tfl, median_filter_b1, smooth_b1
from .despot1 import fit_vfa
from .mask import foreground_mask
from .monoexp import fit_monoexp
from .qdess import fit_qdess

__all__ = [
    "b1_from_afi",
    "b1_from_dam",
    "b1_from_tfl",
    "fit_monoexp",
    "fit_qdess",
    "fit_vfa",
    "foreground_mask",
    "median_filter_b1",
    "smooth_b1",
]
