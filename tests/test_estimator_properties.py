"""Every conventional estimator on random valid protocols and random signals (seeded; hypothesis is
not installed): outputs finite everywhere, non-negative relaxation times, rates and M0, on the
input grid (DEVELOPERS.md, "Estimator outputs"), background and series constant in time included."""

from __future__ import annotations

import numpy as np
import pytest

from qmriprep import estimators
from qmriprep.bids import metadata as md

GRID = (5, 4, 3)
#: conventional (not learned, not stochastic) estimators of the image kinds
CASES = [(e.kind, e.name) for e in estimators.estimators()
         if e.core and not e.learned and not e.stochastic and e.kind in ("MESE", "MEGRE", "VFA", "bSSFP", "DESS")]


def _sidecar(i, values, ents):
    return md.Sidecar(f"sub-01/anat/sub-01_{i}.json", values, ents, {})


def _protocol(kind, rng):
    if kind in ("MESE", "MEGRE"):
        n = int(rng.integers(2, 9))
        tes = np.sort(rng.uniform(0.001, 0.15, n)) + np.arange(n) * 1e-4
        scs = [_sidecar(i, {"EchoTime": float(t)}, {"echo": str(i + 1)}) for i, t in enumerate(tes)]
    elif kind == "VFA":
        flips = np.sort(rng.choice(np.arange(2, 60), int(rng.integers(2, 6)), replace=False))
        tr = float(rng.uniform(0.004, 0.05))
        scs = [_sidecar(i, {"FlipAngle": int(a), "RepetitionTimeExcitation": tr}, {"flip": str(i + 1)})
               for i, a in enumerate(flips)]
    elif kind == "DESS":
        tr = float(rng.uniform(0.01, 0.04))
        te = float(rng.uniform(0.002, tr / 2))
        meta = {"RepetitionTimeExcitation": tr, "FlipAngle": float(rng.uniform(5, 60))}
        scs = [_sidecar(i, {**meta, "EchoTime": t}, {"echo": str(i + 1)}) for i, t in enumerate((te, 2 * tr - te))]
    else:  # bSSFP
        n = int(rng.integers(4, 13))
        incs = [float(x) for x in (np.arange(n) + 0.5) * 360.0 / n]
        meta = {"FlipAngle": float(rng.uniform(5, 60)), "RepetitionTimeExcitation": float(rng.uniform(0.003, 0.01)),
                "RFPhaseIncrement": incs}
        meta["EchoTime"] = meta["RepetitionTimeExcitation"] / 2
        return md.build_protocol(kind, [_sidecar(0, meta, {"part": "real"}), _sidecar(1, meta, {"part": "imag"})],
                                 n_volumes=n)
    return md.build_protocol(kind, scs)


def _series(kind, protocol, rng):
    n = protocol.n_points if kind != "bSSFP" else 3  # bSSFP cores take the configurations F-1, F0, F+1
    scale = 10.0 ** rng.uniform(-3, 4)
    data = rng.uniform(0, scale, GRID + (n,))
    data[0] = 0  # background
    data[1, 0] = scale  # constant across the series
    if kind == "bSSFP":
        return data * np.exp(1j * rng.uniform(-np.pi, np.pi, data.shape))
    return data


@pytest.mark.parametrize("kind,name", CASES, ids=[f"{k}-{n}" for k, n in CASES])
def test_random_protocols_and_signals_give_finite_maps_in_bounds(kind, name):
    est = estimators.get(kind, name)
    core = estimators.resolve(est.core)
    rng = np.random.default_rng(sum(map(ord, kind + name)))
    for _ in range(4):
        protocol = _protocol(kind, rng)
        series = _series(kind, protocol, rng)
        b1 = rng.uniform(0.5, 1.5, GRID) if est.takes_b1 else None
        out = core(series, protocol, b1=b1, mask=None)
        for output in est.outputs:
            values = np.asarray(out[output.field])
            assert values.shape == GRID, (output.field, values.shape)
            assert np.isfinite(values).all(), (kind, name, output.field, protocol)
            if output.field in ("t1", "t2", "r1", "r2", "m0"):
                assert (values >= 0).all(), (kind, name, output.field, values.min(), protocol)
