"""Report figures kept in a work-dir store when nothing they show changed (qmriprep.reports.cache)."""

import re
import shutil

import nibabel as nb
import numpy as np

from qmriprep.reports import ReportContext, analysis, build_report


def _map(folder, name, data, units="s"):
    folder.mkdir(parents=True, exist_ok=True)
    nb.Nifti1Image(data.astype(np.float32), np.eye(4)).to_filename(folder / f"{name}.nii.gz")
    (folder / f"{name}.json").write_text(f'{{"Units": "{units}"}}')


def _page(root, store):
    html = build_report(root, ReportContext("01", figure_store=store)).read_text()
    return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", "DATE", html)


def test_unchanged_maps_are_not_drawn_again_changed_ones_are(tmp_path, monkeypatch):
    root, store = tmp_path / "out", tmp_path / "work" / "report-figures"
    anat = root / "sub-01" / "anat"
    ramp = np.linspace(0.01, 0.2, 8 * 9 * 5).reshape(8, 9, 5)
    _map(anat, "sub-01_desc-a_T2map", ramp)
    _map(anat, "sub-01_desc-b_T2map", ramp[::-1])
    first = _page(root, store)
    mosaic = root / "sub-01" / "figures" / "sub-01_desc-a_T2map_mosaic.png"
    drawn = mosaic.read_bytes()

    shutil.rmtree(root / "sub-01" / "figures")  # a run publishes the subject folder whole
    calls = []
    real = analysis.analyse_map
    monkeypatch.setattr(analysis, "analyse_map", lambda image, *a: calls.append(image.path.name)
                        or real(image, *a))
    assert _page(root, store) == first  # same page, no map analysed again
    assert calls == [] and mosaic.read_bytes() == drawn

    _map(anat, "sub-01_desc-b_T2map", 2 * ramp)  # one map changed
    second = _page(root, store)
    assert calls == ["sub-01_desc-b_T2map.nii.gz"]
    assert second != first and mosaic.read_bytes() == drawn


def test_without_a_store_everything_is_drawn(tmp_path, monkeypatch):
    anat = tmp_path / "sub-01" / "anat"
    _map(anat, "sub-01_desc-a_T2map", np.linspace(0.01, 0.2, 60).reshape(4, 5, 3))
    calls = []
    real = analysis.analyse_map
    monkeypatch.setattr(analysis, "analyse_map", lambda image, *a: calls.append(1) or real(image, *a))
    for _ in range(2):
        build_report(tmp_path, ReportContext("01"))
    assert len(calls) == 2
