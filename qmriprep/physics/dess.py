"""Double echo in steady state (DESS / qDESS): FISP (S1, S+) and PSIF (S2, S-) magnitudes.

Sequence: RF ``a`` every ``TR``, one unbalanced spoiler (amplitude ``G``, duration ``Tg``) per
TR; S1 is read ``TE`` after the pulse, S2 ``TE`` before the next one.

S1 (exact without diffusion and with ideal intra-voxel dephasing; Haenicke & Vogel 2003,
MRM 49:771; Gyngell 1988, Magn Reson Imaging 6:415)::

    S1 = M0 tan(a/2) [1 - (E1 - cos a) r] exp(-TE/T2),
    r  = (1 - E2^2) / sqrt(p^2 - q^2),  p = 1 - E1 cos a - E2^2 (E1 - cos a),
    q  = E2 (1 - E1) (1 + cos a),        E1 = exp(-TR/T1), E2 = exp(-TR/T2).

S2 through the ratio of Sveinsson et al. 2017 ("A simple analytic method for estimating T2 in
the knee from DESS", Magn Reson Imaging 38:63), with ``dk = gamma G Tg``::

    S2 = S1 k exp(-2 (TR - TE)/T2 - c1),
    k  = sin^2(a/2) (1 + exp(-TR/T1 - TR dk^2 D)) / (1 - cos a exp(-TR/T1 - TR dk^2 D)),
    c1 = (TR - Tg/3) dk^2 D,

``a = B1 * flip_angle``. SI units: s, rad, T/m, m^2/s; B1 a fraction of nominal.

Honesty note: S1 ignores diffusion and S2 is Sveinsson's *approximation*, exactly the model
that :func:`qmriprep.fit.qdess.fit_qdess` inverts, so synthetic data from it test the
estimator's inversion, not the approximation. For D = 0 the exact PSIF, refocused TE before the
next pulse, is ``M0 tan(a/2) [1 - (1 - E1 cos a) r] exp(TE/T2)``; the approximate S2 is 0.6-4 %
below it for cartilage-like tissue (T1 0.8-1.5 s, T2 20-100 ms, TR 20 ms, 15-35 deg), which
biases the fitted T2 by +0.6 to +3.4 % (EPG comparison in ``tests/test_physics_dess.py``).
"""

from __future__ import annotations

from . import xp

GAMMA = 267.52218744e6  # rad/s/T, proton gyromagnetic ratio (CODATA 2018)
DIFFUSION = 1.25e-9  # m^2/s, Sveinsson et al. 2017 default for cartilage


def spoiler_dephasing(spoiler_amplitude, spoiler_duration) -> float:
    """``dk = gamma G Tg`` in rad/m; 0 (no diffusion weighting) when either is None."""
    if spoiler_amplitude is None or spoiler_duration is None:
        return 0.0
    return GAMMA * float(spoiler_amplitude) * float(spoiler_duration)


def ratio_terms(t1, protocol, *, diffusion=DIFFUSION, b1=None):
    """Sveinsson's ``(k, c1)`` of ``|S2/S1| = k exp(-2 (TR - TE)/T2 - c1)`` (equations above);
    no diffusion term (``c1 = 0``) when the spoiler is None (:func:`spoiler_dephasing`).

    ``protocol``: a :class:`~qmriprep.bids.protocols.DESSProtocol` (SI: ``tr`` s, ``flip_angle``
    rad, ``spoiler_gradient_amplitude`` T/m, ``spoiler_gradient_duration`` s).
    """
    tr, flip_angle = protocol.tr, protocol.flip_angle
    ns = xp(t1, flip_angle, b1)
    dk = spoiler_dephasing(protocol.spoiler_gradient_amplitude, protocol.spoiler_gradient_duration)
    tg = 0.0 if dk == 0.0 else float(protocol.spoiler_gradient_duration)
    a = flip_angle if b1 is None else b1 * flip_angle
    bd = dk * dk * diffusion
    e = ns.exp(-tr / t1 - tr * bd)
    k = ns.sin(a / 2) ** 2 * (1 + e) / (1 - ns.cos(a) * e)
    c1 = (tr - tg / 3.0) * bd
    return k, c1


def dess_signals(m0, t1, t2, protocol, *, diffusion=DIFFUSION, b1=None):
    """DESS magnitudes ``(S1, S2)``; array inputs broadcast, numpy or torch alike.

    ``protocol``: a :class:`~qmriprep.bids.protocols.DESSProtocol` (SI), S1 read at
    ``echo_times[0]``; a spoiler amplitude or duration of None: ``dk = 0``, no diffusion term.
    """
    te, tr, flip_angle = protocol.echo_times[0], protocol.tr, protocol.flip_angle
    ns = xp(m0, t1, t2, flip_angle, b1)
    if not 0 <= te < tr:
        raise ValueError(f"need 0 <= TE < TR, got TE={te}, TR={tr}")
    a = flip_angle if b1 is None else b1 * flip_angle
    e1 = ns.exp(-tr / t1)
    e2 = ns.exp(-tr / t2)
    ca = ns.cos(a)
    p = 1 - e1 * ca - e2 * e2 * (e1 - ca)
    q = e2 * (1 - e1) * (1 + ca)
    r = (1 - e2 * e2) / ns.sqrt(p * p - q * q)
    s1 = m0 * ns.tan(a / 2) * (1 - (e1 - ca) * r) * ns.exp(-te / t2)
    k, c1 = ratio_terms(t1, protocol, diffusion=diffusion, b1=b1)
    s2 = s1 * k * ns.exp(-2 * (tr - te) / t2 - c1)
    return s1, s2
