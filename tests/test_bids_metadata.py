"""Required sidecar fields, SI conversion and sanity checks of ``qmriprep.bids.metadata``."""

import math

import pytest

from qmriprep.bids import metadata as md
from qmriprep.errors import InputError


def sc(name, entities=None, origins=None, **values):
    return md.Sidecar(f"sub-01/anat/sub-01_{name}.json", values, entities or {}, origins or {})


def raises(fn, *args, match, **kwargs):
    with pytest.raises(InputError, match=match) as info:
        fn(*args, **kwargs)
    return str(info.value)


# ------------------------------------------------------------------------------ multi-echo
def test_mese_echo_times_in_seconds():
    p = md.build_protocol("MESE", [sc("echo-1_MESE", EchoTime=0.01), sc("echo-2_MESE", EchoTime=0.02),
                                   sc("echo-3_MESE", EchoTime=0.03, RepetitionTime=2.0)])
    assert p == md.MultiEchoProtocol((0.01, 0.02, 0.03), 2.0, None)
    assert p.n_points == 3


def test_missing_echo_time_names_file_and_field():
    msg = raises(md.build_protocol, "MESE", [sc("echo-1_MESE", EchoTime=0.01), sc("echo-2_MESE")],
                 match="EchoTime is missing")
    assert msg == "sub-01/anat/sub-01_echo-2_MESE.json: EchoTime is missing (required for MESE)"


def test_echo_time_in_milliseconds_is_an_error():
    msg = raises(md.build_protocol, "MEGRE", [sc("echo-1_MEGRE", EchoTime=5), sc("echo-2_MEGRE", EchoTime=10)],
                 match="looks like milliseconds")
    assert msg.startswith("sub-01/anat/sub-01_echo-1_MEGRE.json: EchoTime = 5")


def test_duplicated_echo_times_are_an_error():
    msg = raises(md.build_protocol, "MESE", [sc("echo-1_MESE", EchoTime=0.01), sc("echo-2_MESE", EchoTime=0.01)],
                 match="duplicated")
    assert "sub-01_echo-2_MESE.json: EchoTime = 0.01 is duplicated (also in sub-01/anat/sub-01_echo-1_MESE.json)" in msg


@pytest.mark.parametrize("value, problem", [(0, "must be positive"), (-0.01, "must be positive"),
                                            ("10ms", "is not a number"), (True, "is not a number")])
def test_bad_echo_time_values(value, problem):
    msg = raises(md.build_protocol, "MESE", [sc("echo-1_MESE", EchoTime=value), sc("echo-2_MESE", EchoTime=0.02)],
                 match=problem)
    assert "sub-01_echo-1_MESE.json: EchoTime" in msg


def test_single_echo_is_not_a_series():
    raises(md.build_protocol, "MEGRE", [sc("MEGRE", EchoTime=0.01)], match="at least 2 echoes")


def test_single_4d_file_with_echo_time_list():
    p = md.build_protocol("MESE", [sc("MESE", EchoTime=[0.01, 0.02, 0.04])])
    assert p.echo_times == (0.01, 0.02, 0.04)
    raises(md.build_protocol, "MESE", [sc("MESE", EchoTime=[0.02, 0.01])], match="must be ascending")


def test_contradictory_repetition_time_across_echoes():
    raises(md.build_protocol, "MESE", [sc("echo-1_MESE", EchoTime=0.01, RepetitionTime=2.0),
                                       sc("echo-2_MESE", EchoTime=0.02, RepetitionTime=3.0)],
           match="RepetitionTime = 3 contradicts")


# -------------------------------------------------------------------------------------- VFA
def test_vfa_degrees_to_radians_and_tr_excitation_preferred():
    p = md.build_protocol("VFA", [sc("flip-1_VFA", FlipAngle=3, RepetitionTimeExcitation=0.015, RepetitionTime=5),
                                  sc("flip-2_VFA", FlipAngle=15, RepetitionTimeExcitation=0.015, RepetitionTime=5)])
    assert p.flip_angles == pytest.approx((math.radians(3), math.radians(15)))
    assert p.tr == 0.015


def test_vfa_falls_back_to_repetition_time():
    p = md.build_protocol("VFA", [sc("flip-1_VFA", FlipAngle=3, RepetitionTime=0.02),
                                  sc("flip-2_VFA", FlipAngle=20, RepetitionTime=0.02)])
    assert p.tr == 0.02


def test_vfa_missing_tr_names_both_fields():
    msg = raises(md.build_protocol, "VFA", [sc("flip-1_VFA", FlipAngle=3), sc("flip-2_VFA", FlipAngle=15)],
                 match="RepetitionTimeExcitation or RepetitionTime is missing")
    assert msg.startswith("sub-01/anat/sub-01_flip-1_VFA.json")


def test_vfa_contradictory_tr_names_both_files():
    msg = raises(md.build_protocol, "VFA", [sc("flip-1_VFA", FlipAngle=3, RepetitionTimeExcitation=0.015),
                                            sc("flip-2_VFA", FlipAngle=15, RepetitionTimeExcitation=0.02)],
                 match="contradicts")
    assert msg.startswith("sub-01/anat/sub-01_flip-2_VFA.json: RepetitionTimeExcitation = 0.02")
    assert "sub-01_flip-1_VFA.json" in msg


def test_flip_angle_above_180_is_an_error():
    raises(md.build_protocol, "VFA", [sc("flip-1_VFA", FlipAngle=3, RepetitionTime=0.02),
                                      sc("flip-2_VFA", FlipAngle=200, RepetitionTime=0.02)],
           match="sub-01_flip-2_VFA.json: FlipAngle = 200 is above 180 deg")


def test_vfa_tr_in_milliseconds_is_an_error():
    raises(md.build_protocol, "VFA", [sc("flip-1_VFA", FlipAngle=3, RepetitionTime=15),
                                      sc("flip-2_VFA", FlipAngle=15, RepetitionTime=15)],
           match="RepetitionTime = 15 looks like milliseconds")


def test_duplicated_flip_angles_are_an_error():
    raises(md.build_protocol, "VFA", [sc("flip-1_VFA", FlipAngle=15, RepetitionTime=0.02),
                                      sc("flip-2_VFA", FlipAngle=15, RepetitionTime=0.02)],
           match="FlipAngle = 15 is duplicated")


def test_inherited_value_error_names_the_source_file():
    origins = {"RepetitionTimeExcitation": "VFA.json"}
    msg = raises(md.build_protocol, "VFA", [sc("flip-1_VFA", None, origins, FlipAngle=3, RepetitionTimeExcitation=20),
                                            sc("flip-2_VFA", None, origins, FlipAngle=15, RepetitionTimeExcitation=20)],
                 match="milliseconds")
    assert msg.startswith("VFA.json: RepetitionTimeExcitation = 20")


# ------------------------------------------------------------------------------------ B1+
def test_dam_second_angle_twice_the_first():
    p = md.build_protocol("TB1DAM", [sc("flip-1_TB1DAM", FlipAngle=60), sc("flip-2_TB1DAM", FlipAngle=120.5)])
    assert p.flip_angle == pytest.approx(math.radians(60))
    assert p.flip_angles[1] == pytest.approx(math.radians(120))
    msg = raises(md.build_protocol, "TB1DAM", [sc("flip-1_TB1DAM", FlipAngle=60), sc("flip-2_TB1DAM", FlipAngle=90)],
                 match="must be twice")
    assert msg.startswith("sub-01/anat/sub-01_flip-2_TB1DAM.json: FlipAngle = 90 deg")


def test_dam_needs_two_images():
    raises(md.build_protocol, "TB1DAM", [sc("flip-1_TB1DAM", FlipAngle=60)], match="TB1DAM needs 2 images")


def test_afi_protocol_and_tr_order():
    tr1 = sc("acq-tr1_TB1AFI", {"acquisition": "tr1"}, FlipAngle=60, RepetitionTimeExcitation=0.02)
    tr2 = sc("acq-tr2_TB1AFI", {"acquisition": "tr2"}, FlipAngle=60, RepetitionTimeExcitation=0.1)
    p = md.build_protocol("TB1AFI", [tr1, tr2])
    assert (p.tr1, p.tr2, p.n) == (0.02, 0.1, pytest.approx(5.0))
    assert p.flip_angle == pytest.approx(math.pi / 3)
    msg = raises(md.build_protocol, "TB1AFI", [tr2, tr1], match="must be longer")
    assert msg.startswith("sub-01/anat/sub-01_acq-tr1_TB1AFI.json: RepetitionTimeExcitation")


def test_afi_missing_flip_angle():
    raises(md.build_protocol, "TB1AFI", [sc("acq-tr1_TB1AFI", RepetitionTimeExcitation=0.02),
                                         sc("acq-tr2_TB1AFI", RepetitionTimeExcitation=0.1)],
           match="sub-01_acq-tr1_TB1AFI.json: FlipAngle is missing")


def test_tfl_reads_famp_flip_angle():
    p = md.build_protocol("TB1TFL", [sc("acq-anat_TB1TFL", FlipAngle=5), sc("acq-famp_TB1TFL", FlipAngle=8)])
    assert p.flip_angle == pytest.approx(math.radians(8))
    raises(md.build_protocol, "TB1TFL", [sc("acq-anat_TB1TFL"), sc("acq-famp_TB1TFL")],
           match="sub-01_acq-famp_TB1TFL.json: FlipAngle is missing")


@pytest.mark.parametrize("units, scale", [("percent", 0.01), ("%", 0.01), ("fraction", 1.0), ("a.u.", 1.0)])
def test_b1map_units_scale(units, scale):
    assert md.build_protocol("TB1map", [sc("TB1map", Units=units)]).scale == scale


def test_b1map_units_missing_or_unknown():
    raises(md.build_protocol, "TB1map", [sc("TB1map")], match="TB1map.json: Units is missing")
    raises(md.build_protocol, "TB1map", [sc("TB1map", Units="deg")], match="Units = 'deg' is not supported")


# --------------------------------------------------------------------- not yet processed
def test_bssfp_protocol_and_volume_count():
    mag = sc("part-mag_bSSFP", {"part": "mag"}, RFPhaseIncrement=[0, 90, 180, 270], FlipAngle=30,
             RepetitionTimeExcitation=0.005, EchoTime=0.0025)
    phase = sc("part-phase_bSSFP", {"part": "phase"}, **mag.values)
    p = md.build_protocol("bSSFP", [mag, phase], n_volumes=4)
    assert p.phase_increments == pytest.approx((0, math.pi / 2, math.pi, 3 * math.pi / 2))
    assert p.parts == ("mag", "phase") and p.n_points == 4
    raises(md.build_protocol, "bSSFP", [mag], n_volumes=6, match="RFPhaseIncrement has 4 values but the image has 6")
    raises(md.build_protocol, "bSSFP", [sc("part-mag_bSSFP", RFPhaseIncrement=90, FlipAngle=30,
                                           RepetitionTime=0.005)], match="must be a list")


def test_dess_protocol():
    common = {"RepetitionTimeExcitation": 0.02, "FlipAngle": 25, "SpoilerGradientAmplitude": 0.02,
              "SpoilerGradientDuration": 0.001}
    p = md.build_protocol("DESS", [sc("echo-1_DESS", EchoTime=0.005, **common),
                                   sc("echo-2_DESS", EchoTime=0.035, **common)])
    assert p.echo_times == (0.005, 0.035) and p.spoiler_gradient_duration == 0.001
    raises(md.build_protocol, "DESS", [sc("echo-1_DESS", EchoTime=0.005, **common)], match="DESS needs 2 images")


def test_describe_protocol_in_readable_units():
    assert md.describe_protocol(md.MultiEchoProtocol((0.01, 0.02))) == "2 echoes, TE = 10, 20 ms"
    assert "3, 15 deg" in md.describe_protocol(md.VFAProtocol((math.radians(3), math.radians(15)), 0.015))


def test_protocols_validate_on_construction():
    with pytest.raises(ValueError):
        md.VFAProtocol((0.2, 0.1), 0.015)
    with pytest.raises(ValueError):
        md.AFIProtocol(1.0, 0.1, 0.02)


# ---------------------------------------------------------------------------- inheritance
def test_resolve_sidecar_inheritance_and_origins(tmp_path):
    from bidsfiles import write_json, write_nifti

    img = write_nifti(tmp_path / "sub-01/anat/sub-01_acq-fast_flip-1_VFA.nii.gz")
    write_json(tmp_path / "VFA.json", {"RepetitionTimeExcitation": 0.015, "FlipAngle": 1})
    write_json(tmp_path / "acq-slow_VFA.json", {"RepetitionTimeExcitation": 0.5})  # other acq: ignored
    write_json(tmp_path / "sub-01/sub-01_acq-fast_VFA.json", {"Manufacturer": "x"})
    write_json(tmp_path / "sub-01/anat/sub-01_acq-fast_flip-1_VFA.json", {"FlipAngle": 3})
    write_json(tmp_path / "sub-01/anat/sub-01_acq-fast_flip-1_MESE.json", {"EchoTime": 1})  # other suffix
    values, origins = md.resolve_sidecar(tmp_path, img)
    assert values == {"RepetitionTimeExcitation": 0.015, "FlipAngle": 3, "Manufacturer": "x"}
    assert origins["RepetitionTimeExcitation"] == "VFA.json"
    assert origins["FlipAngle"] == "sub-01/anat/sub-01_acq-fast_flip-1_VFA.json"


def test_invalid_json_names_the_file(tmp_path):
    from bidsfiles import write_json, write_nifti

    img = write_nifti(tmp_path / "sub-01/anat/sub-01_echo-1_MESE.nii.gz")
    write_json(tmp_path / "sub-01/anat/sub-01_echo-1_MESE.json", "{EchoTime: 0.01")
    with pytest.raises(InputError, match="sub-01/anat/sub-01_echo-1_MESE.json: is not valid JSON"):
        md.resolve_sidecar(tmp_path, img)


def test_multiecho_tr_from_repetition_time_excitation():
    p = md.build_protocol("MESE", [sc("echo-1_MESE", EchoTime=0.01, RepetitionTimeExcitation=3.0, FlipAngle=90),
                                   sc("echo-2_MESE", EchoTime=0.02, RepetitionTimeExcitation=3.0, FlipAngle=90)])
    assert p.repetition_time == 3.0 and p.flip_angle == pytest.approx(math.pi / 2)


def test_split_modules_keep_the_old_import_paths():
    """sidecars/protocols/layout were split out of metadata and collections."""
    from qmriprep.bids import collections, layout, protocols, sidecars

    for name in ("Sidecar", "resolve_sidecar", "read_json", "sidecar_name", "parse_name"):
        assert getattr(md, name) is getattr(sidecars, name)
    for name in ("Protocol", "MultiEchoProtocol", "VFAProtocol", "DAMProtocol", "AFIProtocol",
                 "TFLProtocol", "B1MapProtocol", "BSSFPProtocol", "DESSProtocol"):
        assert getattr(md, name) is getattr(protocols, name)
    assert collections.load_layout is layout.load_layout
    assert collections.list_subjects is layout.list_subjects
