"""MPRAGE and TSE signal models against independent simulations (Bloch recursion, EPG)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from qmriprep.physics.mprage import MPRAGEProtocol, mprage_signal
from qmriprep.physics.tse import FLAIRProtocol, TSEProtocol, flair_signal, tse_signal

#: seed 002's MPRAGE (TR 1900 ms, TI 900 ms, 9 deg) with a 176-pulse train of 7.1 ms spacing
MPRAGE = MPRAGEProtocol(tr_prep=1.9, inversion_time=0.9, tr=0.0071, flip_angle=math.radians(9),
                        n_readout=176)
TSE = TSEProtocol(tr=7.01, echo_time=0.093, echo_train_length=16, echo_spacing=0.093 / 8)


def _bloch_mprage(m0, t1, p: MPRAGEProtocol, n_cycles=40):
    """Pulse-by-pulse longitudinal recursion (ideal spoiling) until the steady state; the signal
    of the centre pulse of the last cycle."""
    mz, a = m0, p.flip_angle
    relax = lambda m, t: m0 + (m - m0) * math.exp(-t / t1)  # noqa: E731
    for _ in range(n_cycles):
        mz = relax(-p.inversion_efficiency * mz, p.time_before)
        for k in range(p.n_readout):
            if k == p.centre:
                signal = mz * math.sin(a)
            mz = relax(mz * math.cos(a), p.tr)
        mz = relax(mz, p.time_after)
    return signal


@pytest.mark.parametrize("t1", [0.85, 1.35, 4.3])
@pytest.mark.parametrize("eta", [1.0, 0.96])
def test_mprage_closed_form_matches_bloch_recursion(t1, eta):
    p = MPRAGEProtocol(**{**MPRAGE.__dict__, "inversion_efficiency": eta})
    expected = _bloch_mprage(0.8, t1, p)
    assert mprage_signal(0.8, t1, p) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_mprage_torch_matches_numpy_and_differentiates():
    t1 = torch.tensor([0.6, 0.85, 1.35, 4.3], dtype=torch.float64, requires_grad=True)
    s = mprage_signal(torch.ones(4, dtype=torch.float64), t1, MPRAGE)
    np.testing.assert_allclose(s.detach().numpy(), mprage_signal(1.0, t1.detach().numpy(), MPRAGE))
    s.sum().backward()
    assert torch.isfinite(t1.grad).all() and (t1.grad != 0).all()
    # WM brighter than GM brighter than CSF on a T1-weighted MPRAGE
    assert s[1] > s[2] > s[3]


def test_mprage_rejects_a_train_that_does_not_fit():
    with pytest.raises(ValueError, match="does not fit"):
        MPRAGEProtocol(tr_prep=1.0, inversion_time=0.9, tr=0.0071, flip_angle=0.15, n_readout=176)


def _rot(alpha, phi):
    """EPG rotation (Weigel 2015, JMRI 41:266, eq. 15) of the state vector (F+, F-, Z)."""
    c, s, e = math.cos(alpha / 2) ** 2, math.sin(alpha / 2) ** 2, np.exp(1j * phi)
    return np.array([[c, e ** 2 * s, -1j * e * math.sin(alpha)],
                     [np.conj(e) ** 2 * s, c, 1j * np.conj(e) * math.sin(alpha)],
                     [-0.5j * np.conj(e) * math.sin(alpha), 0.5j * e * math.sin(alpha), math.cos(alpha)]])


def _epg_tse(m0, t1, t2, p: TSEProtocol, refocus=math.pi, n_tr=6):
    """CPMG echo train by extended phase graphs (90x, then refocusing about y every ESP, a crusher
    at the end of the train; for FLAIR an ideal crushed inversion ``TI`` before the 90x), repeated
    until steady state; the echo at ``TE_eff``."""
    n = 2 * p.echo_train_length + 4
    state = np.zeros((3, n), complex)
    state[2, 0] = m0
    exc, ref = _rot(math.pi / 2, 0.0), _rot(refocus, math.pi / 2)
    k_eff = round(p.echo_time / p.echo_spacing)

    def relax(st, t):
        st[:2] *= math.exp(-t / t2)
        st[2] *= math.exp(-t / t1)
        st[2, 0] += m0 * (1 - math.exp(-t / t1))

    def shift(st):
        st[0, 1:], st[1, :-1] = st[0, :-1].copy(), st[1, 1:].copy()
        st[0, 0] = np.conj(st[1, 0])

    for _ in range(n_tr):
        if isinstance(p, FLAIRProtocol):
            state[:2], state[2] = 0, -state[2]
            relax(state, p.inversion_time)
        state = exc @ state
        for k in range(1, p.echo_train_length + 1):
            relax(state, p.echo_spacing / 2)
            shift(state)
            state = ref @ state
            relax(state, p.echo_spacing / 2)
            shift(state)
            if k == k_eff:
                echo = abs(state[0, 0])
        state[:2] = 0  # crusher: no transverse coherence survives to the next TR
        relax(state, p.recovery_time)
    return echo


@pytest.mark.parametrize("t1,t2", [(0.85, 0.07), (1.35, 0.09), (4.3, 1.8)])
def test_tse_model_matches_epg_with_ideal_refocusing(t1, t2):
    """Within 1 %: the model's only approximation is Mz = 0 at the end of the train."""
    expected = _epg_tse(0.7, t1, t2, TSE)
    assert tse_signal(0.7, t1, t2, TSE) == pytest.approx(expected, rel=0.01)


def test_tse_model_is_t2_weighted_and_torch_differentiable():
    t2 = torch.tensor([0.07, 0.09, 1.8], dtype=torch.float64, requires_grad=True)
    s = tse_signal(torch.tensor([0.69, 0.8, 1.0], dtype=torch.float64),
                   torch.tensor([0.85, 1.35, 4.3], dtype=torch.float64), t2, TSE)
    s.sum().backward()
    assert s[2] > s[1] > s[0] and (t2.grad > 0).all()


def test_tse_rejects_a_train_longer_than_tr():
    with pytest.raises(ValueError, match="does not fit"):
        TSEProtocol(tr=0.1, echo_time=0.093, echo_train_length=16, echo_spacing=0.0116)


FLAIR = FLAIRProtocol(tr=9.0, echo_time=0.09, echo_train_length=16, echo_spacing=0.0113,
                      inversion_time=2.5)


@pytest.mark.parametrize("t1,t2", [(0.85, 0.07), (1.35, 0.09), (4.3, 1.8)])
def test_flair_model_matches_epg_with_an_inversion(t1, t2):
    """An ideal inversion TI before each CPMG train (EPG, steady state); CSF (T1 4.3 s) nulled."""
    expected = _epg_tse(0.7, t1, t2, FLAIR)
    assert flair_signal(0.7, t1, t2, FLAIR) == pytest.approx(expected, rel=0.01, abs=1e-3)
    if t1 > 4:
        assert flair_signal(0.7, t1, t2, FLAIR) < 0.05 * flair_signal(0.7, 0.85, 0.07, FLAIR)


def test_flair_rejects_an_inversion_that_does_not_fit():
    with pytest.raises(ValueError, match="FLAIR echo train .* does not fit"):
        FLAIRProtocol(tr=2.5, echo_time=0.09, echo_train_length=16, echo_spacing=0.0113, inversion_time=2.4)
    with pytest.raises(ValueError, match="inversion time"):
        FLAIRProtocol(tr=9.0, echo_time=0.09, echo_train_length=16, echo_spacing=0.0113, inversion_time=0)
