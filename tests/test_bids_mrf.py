"""The MRF protocol reader: SI units, and one clear error per bad sidecar naming file and field."""

import math

import pytest

from qmriprep.bids import metadata as md
from qmriprep.bids.protocols import MRFProtocol
from qmriprep.errors import InputError

NAME = "sub-01/anat/sub-01_MRF.json"


def _sidecar(**values):
    base = {"FlipAngle": [10.0, 20.0, 30.0], "RepetitionTimeExcitation": [0.012, 0.013, 0.012],
            "EchoTime": 0.002, "InversionTime": 0.02}
    base.update(values)
    return md.Sidecar(NAME, {k: v for k, v in base.items() if v is not None}, {}, {})


def test_reads_si_units():
    p = md.build_protocol("MRF", [_sidecar()], n_volumes=3)
    assert isinstance(p, MRFProtocol) and p.n_points == 3
    assert p.flip_angles == pytest.approx((math.radians(10), math.radians(20), math.radians(30)))
    assert p.repetition_times == (0.012, 0.013, 0.012) and p.inversion_time == 0.02
    assert "3 frames" in md.describe_protocol(p)


def test_a_single_tr_applies_to_every_frame_and_inversion_is_optional():
    p = md.build_protocol("MRF", [_sidecar(RepetitionTimeExcitation=0.01, InversionTime=None)],
                          n_volumes=3)
    assert p.repetition_times == (0.01,) * 3 and p.inversion_time is None


@pytest.mark.parametrize("values, n, words", [
    ({"FlipAngle": [10.0, 20.0]}, 3, "FlipAngle has 2 values but the MRF series has 3 frames"),
    ({"RepetitionTimeExcitation": [0.01] * 4}, 3, "RepetitionTimeExcitation has 4 values"),
    ({"RepetitionTimeExcitation": [0.01, 0.0, 0.01]}, 3, "must be positive"),
    ({"RepetitionTimeExcitation": [12.0, 12.0, 12.0]}, 3, "looks like milliseconds"),
    ({"FlipAngle": [10.0, 200.0, 30.0]}, 3, "FlipAngle 200 deg is outside 0-180"),
    ({"FlipAngle": [10.0, -5.0, 30.0]}, 3, "outside 0-180"),
    ({"FlipAngle": 20.0}, 3, "FlipAngle must be a list of numbers"),
    ({"EchoTime": None}, 3, "EchoTime is missing"),
    ({"EchoTime": 0.02}, 3, "must be shorter than the shortest"),
    ({"InversionTime": -1.0}, 3, "InversionTime = -1 must be positive"),
    ({"RepetitionTimeExcitation": None}, 3, "RepetitionTimeExcitation is missing"),
    ({}, 1, "1 volume"),
])
def test_bad_sidecars_name_the_file_and_field(values, n, words):
    with pytest.raises(InputError) as err:
        md.build_protocol("MRF", [_sidecar(**values)], n_volumes=n)
    assert NAME in str(err.value) and words in str(err.value)
