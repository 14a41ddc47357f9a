"""Tests of the group table (qmriprep.reports.group) and of the suffix table it reads."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nb
import numpy as np
import pytest

from qmriprep import suffixes
from qmriprep.errors import InputError
from qmriprep.reports import figures
from qmriprep.reports.analysis import Image, sort_key
from qmriprep.reports.group import COLUMNS, write_group_summary

GROUP_SET = {"T1map", "T2map", "T2starmap", "R1map", "R2map", "R2starmap", "M0map", "TB1map"}


def _map(folder: Path, name: str, value: float, units: str | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    data = np.zeros((4, 4, 2), np.float32)
    data[1:3, 1:3] = value
    data[1, 1, 0] = np.nan  # not finite: left out
    nb.Nifti1Image(data, np.eye(4)).to_filename(folder / f"{name}.nii.gz")
    if units is not None:
        (folder / f"{name}.json").write_text(json.dumps({"Units": units}))


def test_group_suffix_set_is_unchanged():
    assert set(suffixes.group_suffixes()) == GROUP_SET


def test_group_table_rows(tmp_path):
    anat = tmp_path / "sub-01" / "ses-b" / "anat"
    for suffix in sorted(GROUP_SET):
        _map(anat, f"sub-01_ses-b_acq-x_run-2_desc-fit_{suffix}", 2.0, suffixes.units(suffix))
    for other in ("T1mapRMSE", "PDmap", "S0map", "RB1map", "fieldmap", "mask", "dseg", "MESE"):
        _map(anat, f"sub-01_ses-b_{other}", 1.0, "s")
    _map(tmp_path / "sub-02" / "anat", "sub-02_T1map", 1.5)  # no sidecar: no units
    _map(tmp_path / ".staging" / "sub-03" / "anat", "sub-03_T1map", 1.0)  # not a subject folder
    out = write_group_summary(tmp_path)
    assert out == tmp_path / "group" / "qmriprep_maps.tsv"
    with out.open() as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert tuple(rows[0]) == COLUMNS
    assert {r["suffix"] for r in rows if r["subject"] == "01"} == GROUP_SET
    assert len(rows) == len(GROUP_SET) + 1
    first = next(r for r in rows if r["suffix"] == "T1map" and r["subject"] == "01")
    assert (first["session"], first["acquisition"], first["reconstruction"], first["run"],
            first["desc"], first["units"]) == ("b", "x", "n/a", "2", "fit", "s")
    assert (first["n_voxels"], first["mean"], first["p05"]) == ("7", "2", "2")
    assert first["file"] == "sub-01/ses-b/anat/sub-01_ses-b_acq-x_run-2_desc-fit_T1map.nii.gz"
    second = rows[-1]
    assert (second["subject"], second["session"], second["units"], second["median"]) == (
        "02", "n/a", "", "1.5")


def test_group_table_without_maps_is_an_input_error(tmp_path):
    _map(tmp_path / "sub-01" / "anat", "sub-01_T1mapRMSE", 1.0)
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
