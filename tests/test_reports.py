"""Tests of the per-subject HTML report (qmriprep.reports)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nibabel as nb
import numpy as np
import pytest

from qmriprep.reports import ReportContext, build_report
from qmriprep.reports.figures import display_for
from qmriprep.reports.html import render_markdown
from qmriprep.reports.analysis import fmt

SHAPE = (10, 12, 6)
AFFINE = np.diag([2.0, 2.0, 3.0, 1.0])

DECISIONS = [
    {"kind": "VFA", "name": "vfa-main", "files": ["sub-01/anat/sub-01_flip-1_VFA.nii.gz",
                              "sub-01/anat/sub-01_flip-2_VFA.nii.gz"],
     "status": "processed", "reason": "two flip angles share TR", "b1": "sub-01_TB1map"},
    {"kind": "MEGRE", "files": ["sub-01/anat/sub-01_echo-1_MEGRE.nii.gz"],
     "status": "found, not yet processed", "reason": "single echo: no T2* fit possible"},
]
BOILERPLATE = """# Methods

T1 maps were estimated with DESPOT1 [@deoni2003], corrected for B1+ <inhomogeneity>.

T2 maps were fitted by *variable projection* [@golub2003]."""


def _write(folder: Path, name: str, data, units=None, affine=AFFINE, **sidecar):
    folder.mkdir(parents=True, exist_ok=True)
    nb.Nifti1Image(np.asarray(data), affine).to_filename(folder / f"{name}.nii.gz")
    if units is not None:
        sidecar["Units"] = units
    if sidecar:
        (folder / f"{name}.json").write_text(json.dumps(sidecar))


def _mask(shape=SHAPE):
    mask = np.zeros(shape, np.uint8)
    mask[2:-2, 2:-2, slice(1, -1) if shape[2] > 2 else slice(None)] = 1
    return mask


def _fake_derivatives(root: Path) -> dict:
    """A tiny qmriprep output folder; returns {stem: (data, mask, units)} of the maps shown."""
    rng = np.random.default_rng(42)
    anat, fmap = root / "sub-01" / "anat", root / "sub-01" / "fmap"
    mask = _mask()
    _write(anat, "sub-01_desc-brain_mask", mask)
    dseg = mask.copy()
    dseg[5:] *= 2  # 1 = grey, 2 = white matter
    _write(anat, "sub-01_dseg", dseg.astype(np.uint8))
    (anat / "sub-01_dseg.tsv").write_text("index\tname\n1\tgrey matter\n2\twhite matter\n")
    maps = {
        "sub-01_desc-despot1_T1map": (rng.uniform(0.8, 1.6, SHAPE), "s"),
        "sub-01_desc-varpro_T2map": (rng.uniform(0.04, 0.1, SHAPE), "s"),
        "sub-01_desc-varprormse_T2map": (rng.uniform(0.0, 0.02, SHAPE), "a.u."),
        "sub-01_desc-despot1_M0map": (rng.uniform(500, 1500, SHAPE), "a.u."),
        "sub-01_desc-mystery_Fancymap": (rng.normal(0, 5, SHAPE), "Hz"),  # unknown suffix
    }
    expected = {}
    for stem, (data, units) in maps.items():
        data = (data * mask).astype(np.float32)
        data[3, 3, 2] = 0.0  # a failed fit inside the mask: left out of the statistics
        _write(anat, stem, data, units, EstimationAlgorithm="test", Sources=["bids:raw:x"])
        expected[stem] = (data, mask, units)
    b1 = rng.uniform(85, 115, SHAPE).astype(np.float32)
    _write(fmap, "sub-01_TB1map", b1, "percent")
    expected["sub-01_TB1map"] = (b1, mask, "percent")
    # a 2D-ish map (nx, ny, 1) with its own mask
    mask2d = _mask((8, 9, 1))
    t2s = (rng.uniform(0.02, 0.05, (8, 9, 1)) * mask2d).astype(np.float32)
    _write(anat, "sub-01_acq-2d_desc-brain_mask", mask2d)
    _write(anat, "sub-01_acq-2d_desc-monoexp_T2starmap", t2s, "s")
    expected["sub-01_acq-2d_desc-monoexp_T2starmap"] = (t2s, mask2d, "s")
    (anat / "sub-01_desc-broken_T1map.nii.gz").write_bytes(b"not a nifti file")
    return expected


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("derivatives")
    expected = _fake_derivatives(root)
    config = root / "config.toml"
    config.write_text('[execution]\nbids_dir = "/data"\n[seeds]\nmaster = 1234\n')
    html_file = build_report(root, ReportContext("sub-01", decisions=DECISIONS,
                                                 boilerplate=BOILERPLATE, config_file=config,
                                                 errors=None, version="9.9.9"))
    # file names may wrap after underscores (<wbr>); the tests read them whole
    return root, html_file, html_file.read_text().replace("<wbr>", ""), expected


def _section(html: str, stem: str) -> str:
    sections = [s for s in html.split('<section id="map-') if f"<code>{stem}</code>" in s]
    assert len(sections) == 1, stem
    return sections[0]


def test_report_written_next_to_subject_folder(report):
    root, html_file, html, _ = report
    assert html_file == root / "sub-01.html"
    assert "sub-01" in html and "9.9.9" in html


def test_every_referenced_figure_exists_and_nothing_is_fetched(report):
    root, _, html, expected = report
    sources = re.findall(r'src="([^"]+)"', html)
    assert len(sources) == 2 * len(expected)  # one mosaic and one histogram per map
    for src in sources:
        assert not Path(src).is_absolute()
        assert (root / src).is_file(), src
        assert src.startswith("sub-01/figures/")
    assert not re.search(r'(src|href)="(https?:)?//', html)


def test_every_map_named_with_units_and_median(report):
    _, _, html, expected = report
    for stem, (data, mask, units) in expected.items():
        section = _section(html, stem)
        values = data[(mask > 0) & (data != 0)]
        assert f"Units: <b>{units}</b>" in section
        assert f'<td class="num">{fmt(np.median(values))}</td>' in section, stem
        assert f'<td class="num">{values.size}</td>' in section, stem


def test_per_tissue_statistics_from_dseg(report):
    _, _, html, expected = report
    data, mask, _ = expected["sub-01_desc-despot1_T1map"]
    section = _section(html, "sub-01_desc-despot1_T1map")
    dseg = mask.copy()
    dseg[5:] *= 2
    for label, name in ((1, "grey matter"), (2, "white matter")):
        values = data[(dseg == label) & (data != 0)]
        row = re.search(rf"<td>{name}</td>(.*?)</tr>", section).group(1)
        assert f">{fmt(np.median(values))}<" in row


def test_decisions_table_and_boilerplate(report):
    _, _, html, _ = report
    assert "<th>Kind</th><th>Name</th><th>Status</th><th>Files</th>" in html
    assert "vfa-main" in html
    assert "found, not yet processed" in html and "single echo: no T2* fit possible" in html
    assert "sub-01_flip-2_VFA.nii.gz" in html and "sub-01_TB1map" in html
    assert "<p>T1 maps were estimated with DESPOT1 [@deoni2003], corrected for B1+ " \
           "&lt;inhomogeneity&gt;.</p>" in html
    assert "<em>variable projection</em> [@golub2003]" in html


def test_settings_and_no_errors(report):
    _, _, html, _ = report
    assert "master = 1234" in html
    assert "No errors to report" in html


def test_unreadable_file_noted_not_fatal(report):
    _, _, html, _ = report
    assert "could not be read" in _section(html, "sub-01_desc-broken_T1map")


def test_errors_are_listed(tmp_path):
    html = build_report(tmp_path, ReportContext("01", errors=["Node t1_fit crashed: <ValueError>",
                                                              "second problem"])).read_text()
    assert "No errors to report" not in html
    assert "Node t1_fit crashed: &lt;ValueError&gt;" in html and "second problem" in html
    assert "No parameter maps were found" in html


def test_b1_on_another_grid_uses_resampled_mask(tmp_path):
    anat = tmp_path / "sub-02" / "ses-a" / "anat"
    _write(anat, "sub-02_ses-a_desc-brain_mask", _mask())
    _write(tmp_path / "sub-02" / "ses-a" / "fmap", "sub-02_ses-a_TB1map",
           np.full((5, 6, 3), 0.9, np.float32), "fraction", affine=np.diag([4.0, 4, 6, 1]))
    _write(tmp_path / "sub-02" / "ses-b" / "anat", "sub-02_ses-b_T1map",
           np.ones(SHAPE, np.float32), "s")
    html = build_report(tmp_path, ReportContext("02", sessions=["ses-a"])).read_text()
    section = _section(html, "sub-02_ses-a_TB1map")
    assert "resampled (nearest neighbour)" in section and '<td class="num">0.9</td>' in section
    assert "ses-b_T1map" not in html  # sessions restricts the maps shown


def test_figures_are_deterministic(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    for root in (first, second):
        _write(root / "sub-03" / "anat", "sub-03_T2map",
               np.linspace(0, 0.2, 4 * 5 * 3, dtype=np.float32).reshape(4, 5, 3), "s")
        build_report(root, ReportContext("03"))
    for name in ("sub-03_T2map_mosaic.png", "sub-03_T2map_histogram.png"):
        assert ((first / "sub-03/figures" / name).read_bytes()
                == (second / "sub-03/figures" / name).read_bytes())


def test_display_range_follows_sidecar_units():
    values = np.array([90.0, 100.0, 110.0])
    assert (display_for("TB1map", None, "percent", values).vmin,
            display_for("TB1map", None, "percent", values).vmax) == (60.0, 140.0)
    assert display_for("TB1map", None, "fraction", values / 100).vmax == pytest.approx(1.4)
    assert display_for("T1map", "despot1", "ms", values).vmax == pytest.approx(3000.0)
    rmse = display_for("T2map", "varprormse", "a.u.", values)
    assert rmse.cmap == "magma" and not rmse.fixed


def test_render_markdown_paragraphs_lists_and_citations():
    out = render_markdown("## Title\n\nFirst [@key2020] **bold**.\nSame paragraph.\n\n- a\n- b")
    assert "<h4>Title</h4>" in out
    assert "<p>First [@key2020] <strong>bold</strong>. Same paragraph.</p>" in out
    assert "<ul><li>a</li><li>b</li></ul>" in out


def test_training_curve_is_drawn_from_the_sidecar():
    from qmriprep.reports.curves import curve_svg

    side = {"TrainingCurve": {"epoch": [1, 2, 3], "train_loss": [0.5, 0.2, 0.1], "val_loss": [0.4, 0.3, 0.35]},
            "TrainingBestEpoch": 2, "TrainingStopped": "patience"}
    svg = curve_svg(side)
    assert svg.count("<polyline") == 2 and "stroke-dasharray" in svg and "patience" in svg
    assert curve_svg({}) == "" and curve_svg({"TrainingCurve": {"epoch": []}}) == ""


def test_statistics_use_the_mask_of_the_maps_own_collection():
    from pathlib import Path

    from qmriprep.reports.analysis import Image, pick_support

    def img(name, suffix, sources, **ents):
        return Image(Path(name), {"sub": "01", **ents}, suffix, {"Sources": sources})

    mese = [f"bids:raw:sub-01/anat/sub-01_echo-{i}_MESE.nii.gz" for i in (1, 2)]
    megre = [f"bids:raw:sub-01/anat/sub-01_echo-{i}_MEGRE.nii.gz" for i in (1, 2)]
    masks = [img("dess.nii.gz", "mask", ["bids:raw:sub-01/anat/sub-01_echo-1_DESS.nii.gz"], desc="dessbrain"),
             img("megre.nii.gz", "mask", megre, desc="megrebrain"),
             img("mese.nii.gz", "mask", mese, desc="mesebrain")]
    t2star = img("t2s.nii.gz", "T2starmap", megre, desc="varpro")
    assert pick_support(t2star, masks, "mask").path.name == "megre.nii.gz"
    assert pick_support(img("t2.nii.gz", "T2map", mese, desc="varpro"), masks, "mask").path.name == "mese.nii.gz"
    b1 = img("b1.nii.gz", "TB1map", ["bids:raw:sub-01/fmap/sub-01_TB1TFL.nii.gz"], desc="tfl")
    assert pick_support(b1, masks, "mask") is None  # no mask of its own: nonzero voxels
    generic = img("brain.nii.gz", "mask", [], desc="brain")
    assert pick_support(b1, masks + [generic], "mask") is generic
    # qmriprep's own names: acq-<kind>_desc-brain_mask; another collection's mask is not generic
    named = [img(f"{k}.nii.gz", "mask", src, acq=k, desc="brain") for k, src in (("megre", megre), ("mese", mese))]
    assert pick_support(t2star, named, "mask").path.name == "megre.nii.gz"
    assert pick_support(b1, named, "mask") is None


def test_tissue_classes_from_a_t1_map_recover_the_compartments():
    from qmriprep.reports.tissues import classify_t1

    rng = np.random.default_rng(0)
    truth = rng.choice([1, 2, 3], size=(20, 20, 10), p=[0.45, 0.4, 0.15])  # GM, WM, CSF
    t1 = np.choose(truth - 1, [1.3, 0.8, 4.0]) * rng.normal(1.0, 0.05, truth.shape)
    mask = np.ones(truth.shape, bool)
    mask[0] = False
    labels = classify_t1(t1, mask)
    assert (labels[~mask] == 0).all()
    assert np.mean(labels[mask] == truth[mask]) > 0.98


def test_derivatives_are_grouped_by_the_first_source_and_b1_by_its_target():
    from qmriprep.reports.analysis import Image
    from qmriprep.reports.collect import group_images

    def img(name, suffix, sources, **ents):
        return Image(Path(name), {"sub": "01", **ents}, suffix,
                     {"Sources": [f"bids:raw:{s}" for s in sources]})

    vfa = [f"sub-01/anat/sub-01_flip-{i}_VFA.nii.gz" for i in (1, 2)]
    tfl = ["sub-01/fmap/sub-01_acq-anat_TB1TFL.nii.gz", "sub-01/fmap/sub-01_acq-famp_TB1TFL.nii.gz"]
    entries = [({"kind": "VFA", "name": "sub-01_VFA", "files": vfa}, None),
               ({"kind": "TB1TFL", "name": "sub-01_TB1TFL", "files": tfl}, None)]
    t1 = img("t1.nii.gz", "T1map", vfa + tfl, desc="nlls")  # B1+ files come second
    rmse = img("rmse.nii.gz", "T1map", vfa, desc="nllsRMSE")
    b1_used = img("b1vfa.nii.gz", "TB1map", tfl, desc="vfa")
    b1 = img("b1.nii.gz", "TB1map", tfl, desc="tfl")
    mask = img("mask.nii.gz", "mask", vfa, acq="vfa", desc="brain")
    stray = img("x.nii.gz", "T2map", ["sub-01/anat/other.nii.gz"])
    groups, rest = group_images([t1, rmse, b1_used, b1, mask, stray], entries)
    assert groups[0].maps == [t1] and groups[0].quality == [rmse] and groups[0].b1 == [b1_used]
    assert groups[0].masks == [mask] and groups[1].maps == [b1] and rest == [stray]
