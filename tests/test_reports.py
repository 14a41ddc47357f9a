"""Per-subject HTML report built from a derivatives folder."""

import json
import re

import nibabel as nib
import numpy as np

from qmriprep.reports.subject import build_report


def _write(path, data, meta=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.float32), np.diag([2.0, 2.0, 2.0, 1.0])), path)
    if meta is not None:
        path.with_name(path.name.replace(".nii.gz", ".json")).write_text(json.dumps(meta))


def _derivatives(tmp_path):
    anat = tmp_path / "sub-01" / "anat"
    mask = np.zeros((12, 12, 6), bool)
    mask[2:10, 2:10, 1:5] = True
    rng = np.random.default_rng(0)
    t1 = np.where(mask, rng.uniform(0.8, 1.6, mask.shape), 0)
    _write(anat / "sub-01_desc-vfabrain_mask.nii.gz", mask, {"Type": "Brain"})
    _write(anat / "sub-01_desc-nlls_T1map.nii.gz", t1, {"Units": "s", "EstimationAlgorithm": "NLLS"})
    flat = np.where(mask[..., 2:3], 0.08, 0)  # a single-slice map
    _write(tmp_path / "sub-01" / "anat" / "sub-01_acq-slice_desc-varpro_T2map.nii.gz", flat,
           {"Units": "s"})
    return t1[mask]


def test_report_lists_maps_units_medians_decisions_and_boilerplate(tmp_path):
    values = _derivatives(tmp_path)
    decisions = [{"kind": "VFA", "files": ["sub-01/anat/sub-01_flip-1_VFA.nii.gz"],
                  "status": "processed", "reason": "4 images with suffix VFA", "b1": "sub-01_TB1TFL"}]
    html = build_report(tmp_path, "01", decisions=decisions,
                        boilerplate="T1 maps were estimated [@despot1].").read_text()
    assert "desc-nlls_T1map" in html and "T2map" in html
    assert f"{np.median(values):.3g}" in html or f"{np.median(values):.4g}" in html
    assert "4 images with suffix VFA" in html and "sub-01_TB1TFL" in html
    assert "T1 maps were estimated" in html
    assert "No errors to report" in html
    for src in re.findall(r'src="([^"]+)"', html):
        if not src.startswith("data:"):
            assert (tmp_path / src).exists(), src


def test_report_lists_errors(tmp_path):
    _derivatives(tmp_path)
    html = build_report(tmp_path, "01", errors=["Node fit_nlls failed: simulated"]).read_text()
    assert "simulated" in html and "No errors to report" not in html
