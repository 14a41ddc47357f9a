"""Mono-exponential decay: multi-echo spin echo (T2) and gradient echo (T2*).

``S(TE) = M0 exp(-TE / T2) + offset``  (Carr & Purcell 1954; Meiboom & Gill 1958)
"""

from __future__ import annotations

from . import xp


def monoexp(m0, t2, te, offset=0.0):
    """Echo signal ``M0 exp(-TE/T2) + offset``; all inputs broadcast (TE, T2 in s).

    For a volume, pass ``m0[..., None]``, ``t2[..., None]`` and ``te`` of shape ``(n_echo,)``.
    """
    return m0 * xp(m0, t2, te).exp(-te / t2) + offset
