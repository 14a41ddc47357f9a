"""FISP EPG against closed forms: the FISP steady state, SPGR when T2 -> 0, inversion recovery."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from qmriprep.physics.epg import fisp_signal


def _protocol(angles_deg, trs, te=0.0, ti=None):
    n = len(angles_deg)
    trs = list(trs) if np.ndim(trs) else [trs] * n
    return SimpleNamespace(flip_angles=[math.radians(a) for a in angles_deg], repetition_times=trs,
                           echo_time=te, inversion_time=ti)


def _fisp_steady_state(t1, t2, a, tr):
    """Unbalanced SSFP-FID (FISP) steady state right after the pulse, written here from
    Gyngell 1988 / Haenicke & Vogel 2003 (independent of the EPG code)."""
    e1, e2, ca = math.exp(-tr / t1), math.exp(-tr / t2), math.cos(a)
    p = 1 - e1 * ca - e2 ** 2 * (e1 - ca)
    q = e2 * (1 - e1) * (1 + ca)
    return math.tan(a / 2) * (1 - (e1 - ca) * (1 - e2 ** 2) / math.sqrt(p * p - q * q))


@pytest.mark.parametrize("t1, t2, fa, tr", [(0.3, 0.05, 60, 0.02), (0.6, 0.1, 30, 0.012),
                                            (0.8, 0.3, 90, 0.015), (0.4, 0.2, 12, 0.01)])
def test_fisp_reaches_the_closed_form_steady_state(t1, t2, fa, tr):
    n = int(40 * t1 / tr)  # 40 T1: converged far below 1e-5
    sim = fisp_signal([t1], [t2], _protocol([fa] * n, tr))[0, -1].item()
    assert sim == pytest.approx(_fisp_steady_state(t1, t2, math.radians(fa), tr), abs=1e-5)


def test_vectorised_entries_and_b1_equal_single_runs():
    proto = _protocol(list(10 + 50 * np.abs(np.sin(np.arange(120) / 25))), 0.01, te=0.002, ti=0.02)
    t1, t2, b1 = [0.5, 1.2, 2.0], [0.05, 0.1, 0.4], [0.8, 1.0, 1.15]
    together = fisp_signal(t1, t2, proto, b1=b1, chunk=2)
    for i in range(3):
        scaled = _protocol([math.degrees(a) * b1[i] for a in proto.flip_angles], 0.01, te=0.002, ti=0.02)
        alone = fisp_signal([t1[i]], [t2[i]], scaled)
        torch.testing.assert_close(together[i], alone[0], rtol=0, atol=1e-12)


def test_short_t2_is_spgr():
    """T2 << TR: no transverse coherence survives, every frame is the SPGR recursion."""
    t1, tr, a = 0.9, 0.01, math.radians(20)
    sim = fisp_signal([t1], [1e-5], _protocol([20] * 400, tr))[0].numpy()
    e1 = math.exp(-tr / t1)
    mz, expect = 1.0, []
    for _ in range(400):
        expect.append(mz * math.sin(a))
        mz = mz * math.cos(a) * e1 + 1 - e1
    np.testing.assert_allclose(sim, expect, atol=1e-12)
    assert sim[-1] == pytest.approx(math.sin(a) * (1 - e1) / (1 - e1 * math.cos(a)), rel=1e-9)


def test_inversion_and_echo_time_of_the_first_frame():
    t1, t2, ti, te = 1.1, 0.08, 0.3, 0.004
    sim = fisp_signal([t1], [t2], _protocol([90, 0, 0], 0.01, te=te, ti=ti))[0].numpy()
    assert sim[0] == pytest.approx((1 - 2 * math.exp(-ti / t1)) * math.exp(-te / t2), rel=1e-12)
    assert sim[1] == pytest.approx(0.0, abs=1e-15)  # dephased by the gradient, never refocused


def test_spin_echo_of_a_90_180_pair_decays_with_t2_only():
    """90 - shift - 180 - shift: F+1 becomes F-1 and shifts back to F0 (Hahn's spin echo)."""
    t2, tr = 0.05, 0.01
    sim = fisp_signal([1.0], [t2], _protocol([90, 180, 0], tr))[0].numpy()
    assert sim[1] == pytest.approx(0.0, abs=1e-15)
    assert abs(sim[2]) == pytest.approx(math.exp(-2 * tr / t2), rel=1e-12)
    free = fisp_signal([1e12], [1e12], _protocol([90, 180, 0], tr))[0].numpy()
    assert abs(free[2]) == pytest.approx(1.0, rel=1e-9)


def test_float32_matches_float64():
    proto = _protocol(list(10 + 50 * np.abs(np.sin(np.arange(300) / 60))), 0.012, te=0.002, ti=0.02)
    t1, t2 = torch.linspace(0.2, 3.0, 50), torch.linspace(0.02, 1.0, 50)
    torch.testing.assert_close(fisp_signal(t1, t2, proto, dtype=torch.float32).double(),
                               fisp_signal(t1, t2, proto), atol=2e-5, rtol=0)
