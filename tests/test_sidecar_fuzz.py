"""Sidecar parsing fuzzed: any value of any field gives a protocol or an InputError naming the
file, never another exception (a traceback for the user)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qmriprep.bids import metadata as md
from qmriprep.errors import InputError

#: a valid collection per kind: (entities, sidecar) per image, and the volumes of one file
VALID = {
    "MESE": ([({"echo": str(i)}, {"EchoTime": 0.01 * i, "RepetitionTimeExcitation": 3.0,
                                  "FlipAngle": 90}) for i in (1, 2, 3)], None),
    "MEGRE": ([({"echo": str(i)}, {"EchoTime": 0.003 * i}) for i in (1, 2, 3)], None),
    "VFA": ([({"flip": str(i)}, {"FlipAngle": a, "RepetitionTimeExcitation": 0.015})
             for i, a in enumerate((3, 8, 15, 20), 1)], None),
    "TB1DAM": ([({"flip": "1"}, {"FlipAngle": 60}), ({"flip": "2"}, {"FlipAngle": 120})], None),
    "TB1AFI": ([({"acquisition": "tr1"}, {"FlipAngle": 60, "RepetitionTimeExcitation": 0.02}),
                ({"acquisition": "tr2"}, {"FlipAngle": 60, "RepetitionTimeExcitation": 0.1})], None),
    "TB1TFL": ([({"acquisition": "anat"}, {"FlipAngle": 8}), ({"acquisition": "famp"}, {"FlipAngle": 80})],
               None),
    "TB1map": ([({}, {"Units": "percent"})], None),
    "bSSFP": ([({"part": p}, {"FlipAngle": 15, "RepetitionTimeExcitation": 0.0048, "EchoTime": 0.0024,
                              "RFPhaseIncrement": [45.0, 135.0, 225.0, 315.0]}) for p in ("mag", "phase")], 4),
    "DESS": ([({"echo": str(i)}, {"EchoTime": te, "RepetitionTimeExcitation": 0.02, "FlipAngle": 25,
                                  "SpoilerGradientAmplitude": 0.02, "SpoilerGradientDuration": 0.0015})
              for i, te in ((1, 0.006), (2, 0.034))], None),
}
#: values a converter or a hand-edited sidecar may hold
GARBAGE = [None, "", "abc", "12", True, [], [1, "x"], {}, {"value": 1}, float("nan"), float("inf"),
           -1, 0, 1e-9, 1e9, 3, [0.01], [0.01, 0.02, 0.03], 10 ** 400 // 10 ** 399]


def _sidecars(kind, changes):
    images, _ = VALID[kind]
    out = []
    for i, (ents, values) in enumerate(images):
        values = dict(values)
        for (index, key), value in changes.items():
            if index == i:
                if value is None:
                    values.pop(key, None)
                else:
                    values[key] = value
        out.append(md.Sidecar(f"sub-01/anat/sub-01_{i}_{kind}.json", values, ents, {}))
    return out


@pytest.mark.parametrize("kind", sorted(VALID))
def test_valid_protocols_parse(kind):
    assert md.build_protocol(kind, _sidecars(kind, {}), n_volumes=VALID[kind][1]) is not None


@pytest.mark.parametrize("kind", sorted(VALID))
def test_any_field_value_gives_a_protocol_or_an_input_error(kind):
    rng = np.random.default_rng(sum(map(ord, kind)))
    images, n_volumes = VALID[kind]
    keys = sorted({k for _, v in images for k in v})
    outcomes = {"ok": 0, "error": 0}
    for _ in range(300):
        n_changes = int(rng.integers(1, 3))
        changes = {(int(rng.integers(len(images))), keys[int(rng.integers(len(keys)))]):
                   GARBAGE[int(rng.integers(len(GARBAGE)))] for _ in range(n_changes)}
        try:
            protocol = md.build_protocol(kind, _sidecars(kind, changes), n_volumes=n_volumes)
        except InputError as err:
            assert err.path and "sub-01_" in err.path, err
            outcomes["error"] += 1
            continue
        outcomes["ok"] += 1
        for value in vars(protocol).values() if hasattr(protocol, "__dict__") else ():
            for v in np.ravel(np.asarray(value, dtype=object)):
                if isinstance(v, float):
                    assert math.isfinite(v) and v >= 0, (changes, protocol)
    assert outcomes["error"] > 50, outcomes  # the fuzzing does reach the checks
