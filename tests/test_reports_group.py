"""Tests of the group table (qmriprep.reports.group), the template space and the suffix table.

Maps of known values per tissue are made on the template grid itself (6 mm, fast), moved by a
known affine (a subject lying elsewhere in the scanner), and summarised: registration must find
the motion and the per-tissue medians must come back, natively and in the template space.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nb
import numpy as np
import pytest

from qmriprep import suffixes
from qmriprep.errors import InputError
from qmriprep.registration import TEMPLATE
from qmriprep.registration.itk import load_transform
from qmriprep.registration.template import TISSUES, load_template
from qmriprep.reports import figures
from qmriprep.reports.analysis import Image, sort_key
from qmriprep.reports.group import COLUMNS, is_group_map, space_name, write_group_summary

GROUP_SET = {"T1map", "T2map", "T2starmap", "R1map", "R2map", "R2starmap", "M0map", "TB1map"}
#: T1 (s) per template tissue (the phantom's values)
T1 = {"GM": 1.35, "WM": 0.85, "CSF": 4.3}
RES = 6
#: each subject's T1 scale: a spread within the group, and sub-04 far from it
FACTOR = {"01": 1.0, "02": 1.02, "03": 1.5}


def _motion(deg, shift, scale=1.0):
    a = np.deg2rad(deg)
    m = np.eye(4)
    m[:3, :3] = scale * np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    m[:3, 3] = shift
    return m


def _subject(root: Path, label: str, motion: np.ndarray, factor: float = 1.0) -> None:
    """T1 map (and a fit-quality map) of the template's tissues, its world moved by ``motion``."""
    tpl = load_template(RES)
    t1 = np.zeros(tpl.labels.shape, np.float32)
    for k, name in TISSUES.items():
        t1[tpl.labels == k] = factor * T1[name]
    anat = root / f"sub-{label}" / "anat"
    anat.mkdir(parents=True)
    for name, data in ((f"sub-{label}_desc-nlls_T1map", t1), (f"sub-{label}_desc-nllsRMSE_T1map", t1 / 100)):
        nb.Nifti1Image(data, motion @ tpl.image.affine).to_filename(anat / f"{name}.nii.gz")
        (anat / f"{name}.json").write_text(json.dumps({"Units": "s"}))


def _rows(path: Path) -> list[dict]:
    with path.open() as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


@pytest.fixture(scope="module")
def group(tmp_path_factory):
    root = tmp_path_factory.mktemp("group")
    motions = {"01": np.eye(4), "02": _motion(10, (8, -6, 5)), "03": _motion(-6, (-5, 4, -8), 1.05)}
    for label, motion in motions.items():
        _subject(root, label, motion, factor=FACTOR[label])
    atlas = load_template(RES).image.affine
    halves = np.zeros(load_template(RES).labels.shape, np.int16)
    halves[: halves.shape[0] // 2], halves[halves.shape[0] // 2:] = 1, 2  # x < 0: right
    nb.Nifti1Image(halves, atlas).to_filename(root / "atlas.nii.gz")
    (root / "atlas.tsv").write_text("index\tname\n1\tright\n2\tleft\n")
    out = write_group_summary(root, resolution=RES, atlas=root / "atlas.nii.gz")
    return root, motions, _rows(out)


def test_group_table_is_tidy_with_a_data_dictionary(group):
    root, motions, rows = group
    assert tuple(rows[0]) == COLUMNS
    assert set(json.loads((root / "group" / "qmriprep_maps.json").read_text())) == set(COLUMNS)
    assert {r["map"] for r in rows} == {"T1map"} and {r["method"] for r in rows} == {"nlls"}  # no RMSE
    assert {r["space"] for r in rows} == {"native", TEMPLATE}
    assert {r["region"] for r in rows if r["space"] == "native"} == {"brain", "GM", "WM", "CSF"}
    assert {r["region"] for r in rows if r["space"] == TEMPLATE} == {"brain", "GM", "WM", "CSF", "left", "right"}
    assert len(rows) == len(motions) * (4 + 6)
    page = (root / "group" / "qmriprep_group.html").read_text()
    assert "sub-03" in page and 'class="outlier"' in page and "data:image/png;base64," in page


def test_registration_finds_each_subjects_position(group):
    root, motions, _ = group
    corners = np.array([[x, y, z, 1.0] for x in (-60, 60) for y in (-80, 50) for z in (-40, 60)])
    for label, motion in motions.items():
        xfm = root / f"sub-{label}" / "anat" / f"sub-{label}_from-native_to-{TEMPLATE}_mode-image_xfm.txt"
        found = load_transform(xfm)  # template points -> subject points
        err = np.abs((corners @ found.T - corners @ motion.T)[:, :3]).max()
        assert err < RES / 2, (label, err)  # under half a template voxel at the corners of the brain
        assert (root / f"sub-{label}" / "anat" / f"sub-{label}_space-{TEMPLATE}_desc-nlls_T1map.nii.gz").exists()


@pytest.mark.parametrize("space", ["native", TEMPLATE])
def test_tissue_medians_match_the_truth_in_both_spaces(group, space):
    _, _, rows = group
    for r in rows:
        if r["space"] == space and r["region"] in ("GM", "WM"):  # CSF: mostly partial volume at 6 mm
            truth = T1[r["region"]] * FACTOR[r["subject"]]
            # template space: linear interpolation across tissue borders on a 6 mm grid
            assert float(r["median"]) == pytest.approx(truth, rel=0.02 if space == "native" else 0.05), r
            assert int(r["n_voxels"]) > 20


def test_the_subject_far_from_the_group_is_flagged(group):
    _, _, rows = group
    flagged = {r["subject"] for r in rows if r["outlier"] == "True"}
    assert flagged == {"03"}
    assert all(float(r["robust_z"]) > 3.5 for r in rows if r["subject"] == "03" and r["region"] == "WM")


def test_which_maps_the_group_table_takes(tmp_path):
    names = {"sub-01_desc-nlls_T1map.nii.gz": True, "sub-01_desc-nllsRMSE_T1map.nii.gz": False,
             "sub-01_desc-varproSD_T2map.nii.gz": False, "sub-01_desc-matchingMatch_T1map.nii.gz": False,
             f"sub-01_space-{TEMPLATE}_desc-nlls_T1map.nii.gz": False, "sub-01_acq-mese_desc-brain_mask.nii.gz": False,
             "sub-01_desc-tfl_TB1map.nii.gz": True, "sub-01_desc-nlls_T1map.json": False}
    assert {n: is_group_map(Path(n)) for n in names} == names
    assert space_name(Path("a/sub-01_ses-1_rec-x_desc-nlls_T1map.nii.gz"), "MNI").name == \
        "sub-01_ses-1_rec-x_space-MNI_desc-nlls_T1map.nii.gz"


def test_group_suffix_set_is_unchanged():
    assert set(suffixes.group_suffixes()) == GROUP_SET


def test_group_table_without_maps_is_an_input_error(tmp_path):
    anat = tmp_path / "sub-01" / "anat"
    anat.mkdir(parents=True)
    nb.Nifti1Image(np.ones((4, 4, 2), np.float32), np.eye(4)).to_filename(anat / "sub-01_desc-nllsRMSE_T1map.nii.gz")
    with pytest.raises(InputError):
        write_group_summary(tmp_path)


def test_report_order_ranks_the_table_then_sorts_the_rest_alphabetically():
    names = ["sub-01_fieldmap", "sub-01_VFA", "sub-01_T1mapRMSE", "sub-01_TB1map", "sub-01_R1map",
             "sub-01_DESS", "sub-01_M0map", "sub-01_T1map", "sub-01_ses-a_T2map"]
    images = [Image(Path(f"{n}.nii.gz"), {"ses": "a"} if "ses-a" in n else {}, n.split("_")[-1])
              for n in names]
    assert [i.suffix for i in sorted(images, key=sort_key)] == [
        "T1map", "R1map", "M0map", "TB1map", "DESS", "T1mapRMSE", "VFA", "fieldmap", "T2map"]


def test_report_units_and_colours_from_the_table():
    values = np.array([-3.0, 1.0, 2.0, 3.0])
    assert figures.infer_units("M0map", None, values) == ("a.u.", True)
    assert figures.infer_units("Fancymap", None, values) == ("a.u.", True)
    assert figures.infer_units("R2starmap", None, values) == ("1/s", True)
    assert figures.infer_units("TB1map", None, values * 50) == ("percent", True)
    assert figures.infer_units("TB1map", None, values / 2) == ("fraction", True)
    assert figures.display_for("M0map", None, "a.u.", abs(values)).cmap == "gray"
    assert figures.display_for("fieldmap", None, "Hz", values).cmap == "RdBu_r"  # signed data
    r2s = figures.display_for("R2starmap", None, "1/ms", values)
    assert (r2s.vmin, r2s.vmax, r2s.cmap, r2s.fixed) == (0.0, pytest.approx(0.06), "viridis", True)


def test_a_bad_atlas_is_an_input_error(group, tmp_path):
    from qmriprep.reports.group import load_atlas

    tpl = load_template(RES)
    nb.Nifti1Image(np.ones(tpl.labels.shape, np.int16), tpl.image.affine).to_filename(tmp_path / "a.nii.gz")
    (tmp_path / "a.tsv").write_text("label\tregion\n1\tall\n")
    with pytest.raises(InputError, match="index and name"):
        load_atlas(tmp_path / "a.nii.gz", tpl)
    (tmp_path / "b.nii.gz").write_text("not a nifti")
    with pytest.raises(InputError, match="not a readable NIfTI"):
        load_atlas(tmp_path / "b.nii.gz", tpl)
