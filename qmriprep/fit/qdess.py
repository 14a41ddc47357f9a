"""qDESS T2 from the two DESS echoes (Sveinsson et al. 2017, Magn Reson Imaging 38:63).

Inverts ``|S2/S1| = k exp(-2 (TR - TE)/T2 - c1)`` (:mod:`qmriprep.physics.dess`)::

    T2 = -2 (TR - TE) / (ln(|S2/S1| / k) + c1),

with ``k`` and ``c1`` from an *assumed* T1 (default 1.2 s, cartilage; 1.0 s for meniscus),
the diffusion coefficient D (default 1.25e-9 m^2/s) and ``dk = gamma G Tg`` of the spoiler.
Without spoiler information (the protocol's spoiler amplitude or duration None) ``dk = 0``:
no diffusion correction (T2 is then biased low where diffusion matters; the pipeline warns).
A wrong assumed T1 biases T2: true T1 0.8 s read with 1.2 s gives -6.5 to -15 % for T2
20-50 ms at 20 deg (TR 20 ms), less at larger flip angles (tests/test_fit_qdess.py).

Conventions: voxels outside ``mask``, with ``S1 <= 0`` or ``S2 <= 0`` (magnitudes; complex
inputs are taken in magnitude), a non-finite input, a non-positive/non-finite T1 or B1, or a
non-negative denominator (``|S2/S1| >= k exp(-c1)``, i.e. T2 infinite or negative) get
``T2 = 0`` and ``valid = False``, never NaN or inf. Finite T2 above ``t2_max`` (default 2 s,
beyond any tissue; free water is ~2-3 s and poorly determined by the ratio there) is clipped
to ``t2_max`` and stays valid. float64 inside, float32 out.
"""

from __future__ import annotations

import numpy as np

from ..physics.dess import DIFFUSION, ratio_terms

T2_MAX = 2.0  # s


def fit_qdess(s1, s2, protocol, *, t1=1.2, diffusion: float = DIFFUSION, b1=None, mask=None,
              t2_max: float = T2_MAX) -> dict:
    """T2 map from the FISP (``s1``) and PSIF (``s2``) images, same shape.

    ``protocol``: a :class:`~qmriprep.bids.protocols.DESSProtocol` (SI: ``echo_times[0]`` the TE
    of S1 and ``tr`` in s, ``flip_angle`` in rad, spoiler amplitude in T/m and duration in s,
    either None: no diffusion term); ``t1`` (s) scalar or map and ``b1`` (fraction of nominal)
    map, both broadcastable to the images; ``mask`` bool, broadcastable; ``diffusion`` in m^2/s.

    Returns ``{"t2": float32 (s), "valid": bool}`` shaped like ``s1``.
    """
    te, tr = protocol.echo_times[0], protocol.tr
    if not 0 <= te < tr:
        raise ValueError(f"need 0 <= TE < TR, got TE={te}, TR={tr}")
    s1 = np.asarray(s1)
    s2 = np.asarray(s2)
    if s1.shape != s2.shape:
        raise ValueError(f"s1 {s1.shape} and s2 {s2.shape} must have the same shape")
    shape = s1.shape

    def flat(a, dtype=np.float64):
        return np.broadcast_to(np.asarray(a, dtype=dtype), shape).ravel()

    s1 = np.abs(s1).ravel() if np.iscomplexobj(s1) else flat(s1)
    s2 = np.abs(s2).ravel() if np.iscomplexobj(s2) else flat(s2)
    t1 = flat(t1)
    b1 = flat(1.0 if b1 is None else b1)

    ok = np.isfinite(s1) & np.isfinite(s2) & (s1 > 0) & (s2 > 0)
    ok &= np.isfinite(t1) & (t1 > 0) & np.isfinite(b1) & (b1 > 0)
    if mask is not None:
        ok &= flat(mask, bool)

    t2 = np.zeros(s1.size)
    k, c1 = ratio_terms(t1[ok], protocol, diffusion=diffusion, b1=b1[ok])
    with np.errstate(divide="ignore", invalid="ignore"):
        den = np.log(s2[ok] / s1[ok] / k) + c1
        t2_ok = -2.0 * (tr - te) / den
    good = np.isfinite(t2_ok) & (den < 0) & (t2_ok > 0)
    t2[ok] = np.where(good, np.minimum(t2_ok, t2_max), 0.0)
    ok[ok] = good
    return {"t2": t2.astype(np.float32).reshape(shape), "valid": ok.reshape(shape)}
