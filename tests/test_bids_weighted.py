"""Weighted-image protocols from sidecars as converters write them (qmriprep.bids.weighted)."""

from __future__ import annotations

import json
import math

import pytest

from qmriprep.bids.sidecars import Sidecar
from qmriprep.bids.weighted import _sidecar, mprage_protocol
from qmriprep.errors import InputError
from qmriprep.synth.weighted import MPRAGE, sidecars

NAME = "sub-01/anat/sub-01_T1w.json"


def _mprage(**changes) -> Sidecar:
    values = {**sidecars()["T1w"], **changes}
    return Sidecar(NAME, {k: v for k, v in values.items() if v is not None}, {}, {})


def test_bids_fields_give_the_protocol():
    assert mprage_protocol(_mprage()) == MPRAGE


def test_siemens_repetition_time_is_the_preparation_time():
    """dcm2niix on a Siemens MPRAGE: RepetitionTime (DICOM 0018,0080) = inversion to inversion."""
    sc = _mprage(RepetitionTimePreparation=None, RepetitionTime=MPRAGE.tr_prep)
    assert mprage_protocol(sc) == MPRAGE


def test_ge_philips_repetition_time_is_the_excitation_spacing():
    sc = _mprage(RepetitionTimeExcitation=None, RepetitionTime=MPRAGE.tr)
    assert mprage_protocol(sc) == MPRAGE


def test_bids_field_wins_over_repetition_time():
    sc = _mprage(RepetitionTime=MPRAGE.tr_prep * 2)
    assert mprage_protocol(sc).tr_prep == MPRAGE.tr_prep


def test_scanner_sidecar_without_excitation_time_names_field_reading_and_remedy():
    """What dcm2niix writes for a Siemens MPRAGE: no RepetitionTimeExcitation anywhere."""
    sc = _mprage(RepetitionTimePreparation=None, RepetitionTimeExcitation=None, RepetitionTime=2.3)
    with pytest.raises(InputError) as err:
        mprage_protocol(sc)
    text = str(err.value)
    assert text.startswith(NAME) and "RepetitionTimeExcitation is missing" in text
    assert "RepetitionTime 2.3 s was read as RepetitionTimePreparation" in text
    assert "dataset-level T1w.json" in text


def test_wrong_reading_shows_in_the_timing_error():
    """A RepetitionTime shorter than TI read as the pulse spacing, but too long for the train."""
    sc = _mprage(RepetitionTimeExcitation=None, RepetitionTime=0.5 * MPRAGE.inversion_time)
    with pytest.raises(InputError, match="timing does not fit.*read as RepetitionTimeExcitation"):
        mprage_protocol(sc)


def test_dataset_level_sidecar_supplies_the_missing_field(tmp_path):
    """The remedy the message gives: one T1w.json at the root, applied by inheritance."""
    anat = tmp_path / "sub-01" / "anat"
    anat.mkdir(parents=True)
    (anat / "sub-01_T1w.nii.gz").write_bytes(b"")
    scanner = {k: v for k, v in sidecars()["T1w"].items()
               if k not in ("RepetitionTimePreparation", "RepetitionTimeExcitation")}
    (anat / "sub-01_T1w.json").write_text(json.dumps({**scanner, "RepetitionTime": MPRAGE.tr_prep}))
    (tmp_path / "T1w.json").write_text(json.dumps({"RepetitionTimeExcitation": MPRAGE.tr}))
    protocol = mprage_protocol(_sidecar(tmp_path, anat / "sub-01_T1w.nii.gz"))
    assert math.isclose(protocol.tr, MPRAGE.tr) and math.isclose(protocol.tr_prep, MPRAGE.tr_prep)


def test_number_shots_gives_the_readout_pulses():
    assert mprage_protocol(_mprage(EchoTrainLength=None, NumberShots=MPRAGE.n_readout)) == MPRAGE
    assert mprage_protocol(_mprage(EchoTrainLength=1, NumberShots=[88, 88])) == MPRAGE


def test_centric_number_shots_is_refused_naming_the_ordering():
    with pytest.raises(InputError, match=r"NumberShots = \[0, 176\].*linear ordering, \[88, 88\]"):
        mprage_protocol(_mprage(NumberShots=[0, 176]))


def test_dicom_echo_train_length_of_a_gradient_echo_is_not_taken_for_the_pulses():
    """dcm2niix copies DICOM EchoTrainLength, 1 for an MPRAGE's gradient-echo readout."""
    with pytest.raises(InputError) as err:
        mprage_protocol(_mprage(EchoTrainLength=1))
    assert str(err.value).startswith(NAME) and "EchoTrainLength = 1 cannot be" in str(err.value)
    assert "NumberShots" in str(err.value)


def test_an_sd_map_beside_the_labels_is_never_taken_as_a_label(tmp_path):
    """``desc-nllsSD`` sorts before ``desc-nlls`` (``S`` < ``_``); qmriprep writes both side by side."""
    from qmriprep.bids.weighted import find_labels

    anat = tmp_path / "sub-01" / "anat"
    anat.mkdir(parents=True)
    for desc in ("nlls", "nllsSD"):
        for suffix in ("T1map", "T2map", "M0map"):
            (anat / f"sub-01_desc-{desc}_{suffix}.nii.gz").touch()
    found = find_labels(tmp_path, "01")
    assert {k: p.name for k, p in found.items()} == {s: f"sub-01_desc-nlls_{s}.nii.gz"
                                                     for s in ("T1map", "T2map", "M0map")}
    for suffix in ("T1map", "T2map", "M0map"):
        (anat / f"sub-01_desc-nlls_{suffix}.nii.gz").unlink()
    assert find_labels(tmp_path, "01") is None  # SD maps alone are not labels
