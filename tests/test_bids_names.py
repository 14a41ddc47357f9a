"""Tests of the one BIDS file-name parser (qmriprep.bids.names)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qmriprep.bids import metadata, sidecars
from qmriprep.bids.names import BidsName, build_name, parse_name


@pytest.mark.parametrize(("name", "entities", "suffix", "extension"), [
    ("sub-01_ses-a_acq-x_desc-varpro_T2map.nii.gz",
     {"sub": "01", "ses": "a", "acq": "x", "desc": "varpro"}, "T2map", ".nii.gz"),
    ("sub-01/ses-a/anat/sub-01_ses-a_T1map.json", {"sub": "01", "ses": "a"}, "T1map", ".json"),
    ("sub-01_ses-a.json", {"sub": "01", "ses": "a"}, "", ".json"),  # no suffix
    ("sub-01_ses-a", {"sub": "01", "ses": "a"}, "", ""),
    ("T1w.json", {}, "T1w", ".json"),  # top-level inherited sidecar
    ("dataset_description.json", {}, "description", ".json"),
    ("sub-01_desc-a.b_T1map.nii.gz", {"sub": "01", "desc": "a.b"}, "T1map", ".nii.gz"),
    ("sub-01_acq-x_rec-zsssl_MESE.h5", {"sub": "01", "acq": "x", "rec": "zsssl"}, "MESE", ".h5"),
    ("sub-01_extra_T1map.nii", {"sub": "01"}, "T1map", ".nii"),  # stray part ignored
    ("sub-01_T1mapRMSE", {"sub": "01"}, "T1mapRMSE", ""),
    ("sub-01_acq-a-b_dseg.tsv", {"sub": "01", "acq": "a-b"}, "dseg", ".tsv"),
])
def test_parse_name(name, entities, suffix, extension):
    parsed = parse_name(name)
    assert parsed == BidsName(entities, suffix, extension)
    assert list(parsed.entities) == list(entities)  # file order kept


def test_parse_name_takes_paths():
    assert parse_name(Path("/data/sub-02/fmap/sub-02_run-2_TB1map.nii.gz")) == BidsName(
        {"sub": "02", "run": "2"}, "TB1map", ".nii.gz")


def test_build_name_round_trip_and_order():
    name = "sub-01_ses-a_acq-x_run-1_echo-3_desc-b_MESE.nii.gz"
    parsed = parse_name(name)
    assert build_name(parsed.entities, parsed.suffix, parsed.extension) == name
    assert build_name({"sub": "01"}) == "sub-01"
    assert build_name({"sub": "01", "ses": "a"}, "", ".json") == "sub-01_ses-a.json"


def test_without_strips_echo_and_flip_and_rebuilds():
    """What publishing a recon model needs: drop echo/flip, keep sub and ses, add rec."""
    for source in ("sub-01_ses-2_acq-fast_echo-1_MESE.h5", "sub-01_ses-2_acq-fast_flip-12_MESE.h5"):
        name = parse_name(source).without("echo", "flip")
        assert (name.entities["sub"], name.entities["ses"], name.suffix) == ("01", "2", "MESE")
        assert (build_name({**name.entities, "rec": "zsssl"}, name.suffix, ".pt")
                == "sub-01_ses-2_acq-fast_rec-zsssl_MESE.pt")
    assert parse_name("sub-01_echo-1_MEGRE.nii").without("flip").entities == {"sub": "01",
                                                                              "echo": "1"}


def test_sidecars_use_the_one_parser():
    assert sidecars.parse_name is parse_name and metadata.parse_name is parse_name


def test_resolve_sidecar_inherits_by_parsed_names(tmp_path):
    anat = tmp_path / "sub-01" / "anat"
    anat.mkdir(parents=True)
    (tmp_path / "T2map.json").write_text('{"Units": "s", "A": 1}')
    (tmp_path / "acq-x_T2map.json").write_text('{"A": 2}')
    (tmp_path / "acq-y_T2map.json").write_text('{"A": 3}')  # other acquisition: not inherited
    (tmp_path / "sub-01_ses-a.json").write_text('{"A": 4}')  # no suffix: not a T2map sidecar
    (anat / "sub-01_acq-x_T2map.json").write_text('{"B": 5}')
    values, origins = sidecars.resolve_sidecar(tmp_path, anat / "sub-01_acq-x_T2map.nii.gz")
    assert values == {"Units": "s", "A": 2, "B": 5}
    assert origins["A"] == "acq-x_T2map.json" and origins["B"] == "sub-01/anat/sub-01_acq-x_T2map.json"
