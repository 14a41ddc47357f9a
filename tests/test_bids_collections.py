"""Discovery, grouping, B1+ choice and input errors of ``qmriprep.bids.collections``."""

import logging
import math

import pytest
from bidsfiles import (afi, b1map, bids_name, dam, megre, mese, tfl, vfa, write_dataset, write_json,
                       write_nifti)

from qmriprep.bids import find_collections, list_subjects, load_layout
from qmriprep.bids.metadata import MultiEchoProtocol, VFAProtocol
from qmriprep.errors import InputError


def planned(colls, **workflow):
    """``{name: B1Decision}`` of the run plan of ``colls`` (default settings unless given)."""
    from qmriprep.bids.plan import plan_subject
    from qmriprep.config import Workflow

    plan = plan_subject("01", list(colls), Workflow(**workflow))
    return {p.collection.name: p for p in plan.collections}


def by_name(colls):
    return {c.name: c for c in colls}


@pytest.fixture(scope="module")
def rich(tmp_path_factory):
    """One subject with every kind, two sessions, acq/run variants and inherited metadata."""
    root = tmp_path_factory.mktemp("rich")
    images = {**mese(ses="1", acq="fast"), **mese(ses="1", acq="slow", tes=(0.02, 0.01, 0.04)),
              **megre(ses="1", run=1), **megre(ses="1", run=2),
              **vfa(ses="1", tr=None), **tfl(ses="1"), **afi(ses="1"),
              **vfa(ses="2"), **dam(ses="2"),
              bids_name("01", "T1w", ses="1"): {},
              bids_name("01", "DESS", ses="1", echo=1): {"EchoTime": 0.005},
              bids_name("01", "DESS", ses="1", echo=2): {"EchoTime": 0.035}}
    write_dataset(root, images, extra={
        "VFA.json": {"RepetitionTimeExcitation": 0.018},
        "DESS.json": {"RepetitionTimeExcitation": 0.02, "FlipAngle": 25},
        "bSSFP.json": {"RepetitionTimeExcitation": 0.005, "FlipAngle": 30, "RFPhaseIncrement": [45, 135, 225, 315]},
        "sourcedata/kspace/sub-01/ses-1/anat/sub-01_ses-1_acq-fast_flip-1_MTS.h5": "not really ismrmrd",
        "sourcedata/kspace/sub-01/ses-1/anat/sub-01_ses-1_acq-fast_flip-2_MTS.h5": "not really ismrmrd"})
    for part in ("mag", "phase"):
        write_nifti(root / f"{bids_name('01', 'bSSFP', ses='1', part=part)}.nii.gz", shape=(4, 4, 3, 4))
    write_dataset(root, mese(sub="02"))
    return root


@pytest.fixture(scope="module")
def rich_colls(rich):
    return by_name(find_collections(rich, "01"))


def test_every_kind_is_found_and_grouped(rich_colls):
    assert sorted(rich_colls) == sorted([
        "sub-01_ses-1_acq-fast_MESE", "sub-01_ses-1_acq-slow_MESE", "sub-01_ses-1_run-1_MEGRE",
        "sub-01_ses-1_run-2_MEGRE", "sub-01_ses-1_VFA", "sub-01_ses-1_TB1TFL", "sub-01_ses-1_TB1AFI",
        "sub-01_ses-1_bSSFP", "sub-01_ses-1_DESS", "sub-01_ses-1_acq-fast_MTS_kspace",
        "sub-01_ses-2_VFA", "sub-01_ses-2_TB1DAM"])
    fast = rich_colls["sub-01_ses-1_acq-fast_MESE"]
    assert fast.session == "1" and fast.subject == "01" and fast.entities == {"acquisition": "fast"}
    assert fast.supported and fast.protocol == MultiEchoProtocol((0.01, 0.02, 0.03))
    assert "3 images with suffix MESE in ses-1 sharing acq-fast, ordered by EchoTime" in fast.reason


def test_echoes_are_ordered_by_echo_time_not_by_name(rich_colls):
    slow = rich_colls["sub-01_ses-1_acq-slow_MESE"]
    assert [f.name for f in slow.files] == ["sub-01_ses-1_acq-slow_echo-2_MESE.nii.gz",
                                            "sub-01_ses-1_acq-slow_echo-1_MESE.nii.gz",
                                            "sub-01_ses-1_acq-slow_echo-3_MESE.nii.gz"]
    assert slow.protocol.echo_times == (0.01, 0.02, 0.04)
    assert [m["EchoTime"] for m in slow.metadata] == [0.01, 0.02, 0.04]


def test_top_level_sidecar_is_inherited(rich_colls):
    vfa1 = rich_colls["sub-01_ses-1_VFA"]
    assert vfa1.protocol == VFAProtocol((math.radians(3), math.radians(15)), 0.018)
    assert vfa1.sidecars[0].where("RepetitionTimeExcitation") == "VFA.json"
    # ses-2 sidecars set their own TR, which wins over the top-level file
    assert rich_colls["sub-01_ses-2_VFA"].protocol.tr == 0.015


def test_b1_series_order_and_protocols(rich_colls):
    afi_c, tfl_c, dam_c = (rich_colls[f"sub-01_ses-{s}_{k}"] for s, k in
                           (("1", "TB1AFI"), ("1", "TB1TFL"), ("2", "TB1DAM")))
    assert [f.name.split("_")[2] for f in afi_c.files] == ["acq-tr1", "acq-tr2"]
    assert afi_c.protocol.n == pytest.approx(5)
    assert [f.name.split("_")[2] for f in tfl_c.files] == ["acq-anat", "acq-famp"]
    assert afi_c.entities == tfl_c.entities == {}
    assert dam_c.protocol.flip_angle == pytest.approx(math.pi / 3)


def test_b1_fallback_prefers_kind_within_the_session(rich_colls):
    plans = planned(rich_colls.values())
    vfa1, vfa2 = plans["sub-01_ses-1_VFA"], plans["sub-01_ses-2_VFA"]
    assert vfa1.b1.map is rich_colls["sub-01_ses-1_TB1TFL"]
    assert "preferred kind (TB1map > TB1TFL > TB1AFI > TB1DAM) of 2 B1+ maps in sub-01 ses-1" in vfa1.b1.reason
    assert vfa2.b1.map is rich_colls["sub-01_ses-2_TB1DAM"]
    assert vfa2.b1.reason.startswith("the only B1+ map in sub-01 ses-2")
    assert "B1+: sub-01_ses-1_TB1TFL" in vfa1.describe()


def test_bssfp_and_not_yet_processed_kinds_are_recognised(rich_colls):
    bssfp = rich_colls["sub-01_ses-1_bSSFP"]
    assert bssfp.supported and bssfp.protocol.parts == ("mag", "phase")
    assert bssfp.protocol.phase_increments == pytest.approx(tuple(math.pi * (2 * j - 1) / 4 for j in range(1, 5)))
    dess = rich_colls["sub-01_ses-1_DESS"]
    assert dess.supported and dess.protocol.echo_times == (0.005, 0.035)
    assert dess.protocol.spoiler_gradient_amplitude is None
    ks = rich_colls["sub-01_ses-1_acq-fast_MTS_kspace"]
    assert ks.kind == "kspace" and not ks.supported and ks.protocol is None
    assert [f.name for f in ks.files] == ["sub-01_ses-1_acq-fast_flip-1_MTS.h5",
                                          "sub-01_ses-1_acq-fast_flip-2_MTS.h5"]
    assert "raw k-space" in ks.reason and "not processed" in ks.reason


def test_session_and_filters_narrow_the_search(rich):
    assert {c.name for c in find_collections(rich, "sub-01", session="ses-2")} == {
        "sub-01_ses-2_VFA", "sub-01_ses-2_TB1DAM"}
    colls = by_name(find_collections(rich, "01", session="1", bids_filters={
        "mese": {"acquisition": "fast"}, "MEGRE": {"run": 2}, "tb1tfl": {"acq": "nonexistent"},
        "kspace": {"acquisition": None}}))
    assert "sub-01_ses-1_acq-slow_MESE" not in colls and "sub-01_ses-1_acq-fast_MESE" in colls
    assert "sub-01_ses-1_run-1_MEGRE" not in colls and "sub-01_ses-1_run-2_MEGRE" in colls
    assert "sub-01_ses-1_TB1TFL" not in colls
    assert not any(c.kind == "kspace" for c in colls.values())
    assert planned(colls.values())["sub-01_ses-1_VFA"].b1.map.kind == "TB1AFI"


def test_unknown_suffix_is_ignored_with_a_log_line(rich, caplog):
    with caplog.at_level(logging.INFO, logger="qmriprep.bids"):
        find_collections(rich, "01", session="1", bids_filters={"vfa": {"run": 9}})
    assert "ignoring sub-01/ses-1/anat/sub-01_ses-1_T1w.nii.gz: suffix 'T1w' is not a qMRI collection" in caplog.text


def test_unknown_participant_and_session(rich):
    layout = load_layout(rich)
    assert list_subjects(layout) == ["01", "02"]
    assert list_subjects(layout, ["sub-02"]) == ["02"]
    with pytest.raises(InputError, match=rf"participant 'xx' not found in {rich}; available: 01, 02"):
        list_subjects(layout, "xx")
    with pytest.raises(InputError, match="participant 'xx' not found"):
        find_collections(layout, "xx")
    with pytest.raises(InputError, match="session '3' not found for sub-01 .*available: 1, 2"):
        find_collections(layout, "01", session="3")
    with pytest.raises(InputError, match="BIDS filter key 'T1w' is not a collection kind"):
        find_collections(layout, "01", bids_filters={"T1w": {}})


def test_intended_for_wins_in_both_forms(tmp_path):
    target = bids_name("01", "VFA", flip=1)
    root = write_dataset(tmp_path, {**vfa(), **b1map(), **dam(), **afi(), **tfl()})
    write_json(root / "sub-01/fmap/sub-01_flip-1_TB1DAM.json",
               {"FlipAngle": 60, "IntendedFor": [f"bids::{target}.nii.gz"]})
    write_json(root / "sub-01/fmap/sub-01_acq-famp_TB1TFL.json",
               {"FlipAngle": 8, "IntendedFor": "anat/sub-01_flip-1_MESE.nii.gz"})
    colls = by_name(find_collections(root, "01"))
    v = planned(colls.values())["sub-01_VFA"].b1
    assert v.map is colls["sub-01_TB1DAM"]
    assert v.reason == f"IntendedFor in sub-01/fmap/sub-01_flip-1_TB1DAM.json names {target}.nii.gz"
    # the relative form: afi claims the VFA too, and wins over DAM by preference
    write_json(root / "sub-01/fmap/sub-01_acq-tr2_TB1AFI.json", {
        "FlipAngle": 60, "RepetitionTimeExcitation": 0.1, "IntendedFor": ["anat/sub-01_flip-2_VFA.nii.gz"]})
    v = planned(find_collections(root, "01"))["sub-01_VFA"].b1
    assert v.map.kind == "TB1AFI" and "2 B1+ maps name it, chose the preferred kind" in v.reason


def test_nearest_acquisition_time_and_no_b1(tmp_path):
    root = write_dataset(tmp_path, {**vfa(), **b1map(), **dam(), **vfa(sub="02")})
    for rel, t in (("sub-01/anat/sub-01_flip-1_VFA.json", "10:00:00"),
                   ("sub-01/fmap/sub-01_TB1map.json", "08:00:00.5"),
                   ("sub-01/fmap/sub-01_flip-1_TB1DAM.json", "10:05:00")):
        meta = __import__("json").loads((root / rel).read_text())
        write_json(root / rel, {**meta, "AcquisitionTime": t})
    v = planned(find_collections(root, "01"))["sub-01_VFA"].b1
    assert v.map.kind == "TB1DAM" and v.reason.startswith("nearest in AcquisitionTime (300 s apart)")
    v2 = planned(find_collections(root, "02"))["sub-02_VFA"].b1
    assert v2.map is None and v2.reason.startswith("no B1+ map in sub-02")


def test_validating_layout_misses_bssfp_and_globbing_finds_it(tmp_path):
    root = write_dataset(tmp_path, {**mese()}, extra={
        "bSSFP.json": {"RepetitionTimeExcitation": 0.005, "FlipAngle": 30, "RFPhaseIncrement": [0, 90, 180, 270]}})
    write_nifti(root / f"{bids_name('01', 'bSSFP', part='mag')}.nii.gz", shape=(4, 4, 3, 4))
    layout = load_layout(root, validate=True)
    assert not layout.get(suffix="bSSFP", extension=".nii.gz")
    bssfp = by_name(find_collections(layout, "01"))["sub-01_bSSFP"]
    assert bssfp.protocol.n_points == 4 and bssfp.metadata[0]["FlipAngle"] == 30


def test_megre_phase_images_pair_with_echoes(tmp_path):
    images = {bids_name("01", "MEGRE", echo=e, part=p): {"EchoTime": 0.003 * e}
              for e in (1, 2) for p in ("mag", "phase")}
    images[bids_name("01", "MEGRE", echo=1, part="real")] = {"EchoTime": 0.003}
    c = find_collections(write_dataset(tmp_path, images), "01")[0]
    assert [f.name for f in c.files] == ["sub-01_echo-1_part-mag_MEGRE.nii.gz", "sub-01_echo-2_part-mag_MEGRE.nii.gz"]
    assert [f.name for f in c.phase_files] == ["sub-01_echo-1_part-phase_MEGRE.nii.gz",
                                               "sub-01_echo-2_part-phase_MEGRE.nii.gz"]
    assert "with 2 part-phase images" in c.reason


# ------------------------------------------------------------------------------- errors
def test_missing_field_of_a_processed_kind_stops_with_file_and_field(tmp_path):
    images = mese()
    images[bids_name("01", "MESE", echo=2)] = {}
    with pytest.raises(InputError) as info:
        find_collections(write_dataset(tmp_path, images), "01")
    assert str(info.value) == "sub-01/anat/sub-01_echo-2_MESE.json: EchoTime is missing (required for MESE)"


def test_dess_with_one_echo_is_an_error_naming_the_file(tmp_path):
    images = {**mese(), bids_name("01", "DESS", echo=1): {"EchoTime": 0.005}}
    with pytest.raises(InputError, match=r"sub-01_echo-1_DESS.json: DESS needs 2 images"):
        find_collections(write_dataset(tmp_path, images), "01")


@pytest.mark.parametrize("images, match", [
    ({bids_name("01", "TB1AFI", acq="long"): {}}, r"sub-01_acq-long_TB1AFI.nii.gz: TB1AFI needs acq-tr1 or acq-tr2"),
    ({**mese(tes=(0.01, 0.02)), bids_name("01", "MESE"): {"EchoTime": 0.03}},
     r"sub-01/anat/sub-01_MESE.nii.gz: has no echo- entity"),
    ({bids_name("01", "MEGRE", echo=1, part="phase"): {"EchoTime": 0.01}}, "part-phase MEGRE images without"),
    ({**tfl()} | {bids_name("01", "TB1TFL", acq="famp"): {}}, r"sub-01_acq-famp_TB1TFL.json: FlipAngle is missing"),
])
def test_grouping_errors_name_the_file(tmp_path, images, match):
    with pytest.raises(InputError, match=match):
        find_collections(write_dataset(tmp_path, images), "01")


def test_nii_and_nii_gz_duplicates(tmp_path):
    root = write_dataset(tmp_path, mese())
    write_nifti(root / "sub-01/anat/sub-01_echo-1_MESE.nii")
    with pytest.raises(InputError, match="duplicates sub-01/anat/sub-01_echo-1_MESE"):
        find_collections(root, "01")


def test_not_a_bids_folder(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_layout(tmp_path / "nope")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(InputError, match="file.txt: is not a directory"):
        load_layout(tmp_path / "file.txt")
    with pytest.raises(InputError, match="is not a BIDS dataset: dataset_description.json is missing"):
        load_layout(tmp_path)
    write_json(tmp_path / "dataset_description.json", {"Name": "x", "BIDSVersion": "1.9.0"})
    with pytest.raises(InputError, match="is not a BIDS dataset: no sub-<label> folders"):
        load_layout(tmp_path)


def test_invalid_json_sidecar_is_named(tmp_path):
    root = write_dataset(tmp_path, mese())
    write_json(root / "sub-01/anat/sub-01_echo-2_MESE.json", '{"EchoTime": 0.02,')
    with pytest.raises(InputError, match="sub-01/anat/sub-01_echo-2_MESE.json: is not valid JSON"):
        load_layout(root)
    write_json(root / "dataset_description.json", "not json")
    with pytest.raises(InputError, match="dataset_description.json: is not valid JSON"):
        load_layout(root)


def test_layout_database_is_reused(tmp_path):
    root = write_dataset(tmp_path / "ds", mese())
    load_layout(root, database_dir=tmp_path / "db")
    assert (tmp_path / "db/layout_index.sqlite").is_file()
    layout = load_layout(root, database_dir=tmp_path / "db")
    assert find_collections(layout, "01")[0].protocol.n_points == 3


def test_magnitude_only_bssfp_is_reported_not_processed(tmp_path):
    root = tmp_path / "ds"
    write_dataset(root, {}, extra={
        "bSSFP.json": {"RepetitionTimeExcitation": 0.005, "FlipAngle": 30,
                       "RFPhaseIncrement": [45, 135, 225, 315]}})
    write_nifti(root / f"{bids_name('01', 'bSSFP', part='mag')}.nii.gz", shape=(4, 4, 3, 4))
    bssfp = by_name(find_collections(load_layout(root), "01"))["sub-01_bSSFP"]
    assert not bssfp.supported and "magnitude only" in bssfp.reason and "phase" in bssfp.reason
