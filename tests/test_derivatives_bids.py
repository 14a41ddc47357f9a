"""The derivatives are valid BIDS (bids-validator-deno), pybids finds maps and masks, the methods
text says what ran, and the group level agrees with the truth natively and in the template space.

One tiny 2-subject run (8 mm, MESE, MEGRE, VFA, TFL B1+, DESS and 4x undersampled MESE k-space
reconstructed by CG-SENSE and a two-epoch ZS-SSL, whose model is published under ``models/``).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qmriprep.cli.run import main
from qmriprep.provenance import AS_RUN, container, methods_text
from qmriprep.registration import TEMPLATE
from qmriprep.reports.group import write_group_summary
from qmriprep.synth import DatasetSpec, write_dataset

pytestmark = pytest.mark.e2e
TINY_ZSSSL = ["--recon-epochs", "2", "--recon-steps", "2", "--recon-features", "8", "--recon-blocks", "1",
              "--recon-unrolls", "2", "--recon-cg-iter", "4"]
#: issues that mean a file BIDS cannot place (or a name it cannot parse), even as warnings
NAME_CODES = {"NOT_INCLUDED", "ALL_FILENAME_RULES_HAVE_ISSUES", "FILENAME_MISMATCH", "ENTITY_NOT_IN_RULE"}


def _validator() -> str | None:
    exe = Path(sys.executable).with_name("bids-validator-deno")
    return str(exe) if exe.exists() else shutil.which("bids-validator-deno")


def _validate(folder: Path) -> list[dict]:
    exe = _validator()
    if exe is None:
        pytest.skip("bids-validator-deno is not installed (pip install -e '.[test]')")
    proc = subprocess.run([exe, str(folder), "--json"], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NO_COLOR": "1"})
    return json.loads(proc.stdout)["issues"]["issues"]


def _bad(issues: list[dict]) -> list[str]:
    return [f"{i['code']} {i.get('location')} {i.get('subCode') or ''}" for i in issues
            if i["severity"] == "error" or i["code"] in NAME_CODES]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("bidsout")
    bids = write_dataset(root / "bids", DatasetSpec(
        subjects=("01", "02"), downsample=8, b1_downsample=1,
        modalities=("MESE", "MEGRE", "VFA", "TB1TFL", "DESS"), kspace={"contrasts": ("MESE",), "acceleration": 4}))
    out = root / "out"
    code = main([str(bids), str(out), "participant", "-w", str(root / "work"), "--nprocs", "2",
                 "--omp-nthreads", "1", "--recon", "cgsense", "zsssl", *TINY_ZSSSL])
    return bids, out, code


@pytest.fixture(scope="module")
def participant_issues(run):
    return _validate(run[1])  # before the group level adds its files


@pytest.fixture(scope="module")
def group(run, participant_issues):
    bids, out, _ = run
    assert main([str(bids), str(out), "group", "--template-resolution", "4", "-w", str(out.parent / "gw")]) == 0
    truth = bids / "derivatives" / "truth"
    write_group_summary(truth, resolution=4)  # the true maps, summarised the same way
    return {name: list(csv.DictReader((folder / "group" / "qmriprep_maps.tsv").read_text().splitlines(),
                                      delimiter="\t"))
            for name, folder in (("out", out), ("truth", truth))}


def test_participant_derivatives_are_valid_bids(run, participant_issues):
    _, out, code = run
    assert code == 0
    assert _bad(participant_issues) == []
    assert (out / ".bidsignore").exists() and (out / "README.md").exists()
    assert list(out.glob("sub-01/models/*.pt")), "the ZS-SSL model is published (and ignored)"


def test_group_derivatives_are_valid_bids(run, group):
    out = run[1]
    assert list(out.glob(f"sub-02/anat/sub-02_space-{TEMPLATE}_desc-nlls_T1map.nii.gz"))
    assert _bad(_validate(out)) == []


def test_pybids_finds_maps_masks_and_b1_maps(run):
    from bids import BIDSLayout
    from bids.layout import Query

    bids, out, _ = run
    layout = BIDSLayout(bids, derivatives=str(out), validate=False)
    deriv = layout.derivatives["qmriprep"]
    masks = deriv.get(desc="brain", suffix="mask", extension=".nii.gz", subject="01")
    assert {m.entities["acquisition"] for m in masks} == {"mese", "megre", "vfa", "dess"}
    assert {m.entities.get("reconstruction") for m in masks} == {None, "cgsense", "zsssl"}
    native = {"space": Query.NONE, "extension": ".nii.gz"}
    assert len(deriv.get(suffix="T2map", desc="varpro", reconstruction=Query.NONE, **native)) == 2
    assert len(deriv.get(suffix="T2map", desc="varpro", reconstruction="cgsense", **native)) == 2
    assert deriv.get(suffix="TB1map", datatype="fmap", desc="vfa", subject="02", extension=".nii.gz")
    rmse = deriv.get(suffix="T1map", desc="nllsRMSE", subject="01", extension=".json")[0]
    assert rmse.get_dict()["Units"] == "arbitrary"


def test_dataset_description_links_and_container(run):
    bids, out, _ = run
    desc = json.loads((out / "dataset_description.json").read_text())
    assert (out / desc["DatasetLinks"]["raw"]).resolve() == bids.resolve()  # relative: moves with both
    assert desc["GeneratedBy"][0]["Container"] == container()
    assert container({}) == {"Type": "none"}
    assert container({"QMRIPREP_DOCKER_TAG": "1.2"}) == {"Type": "docker", "Tag": "qmriprep/qmriprep:1.2",
                                                         "Version": "1.2"}
    assert container({"APPTAINER_CONTAINER": "/x/q.sif", "APPTAINER_NAME": "q.sif",
                      "QMRIPREP_DOCKER_TAG": "1.2"}) == {"Type": "apptainer", "Tag": "q.sif", "Version": "1.2"}


def test_methods_text_says_what_each_series_got(run):
    _, out, _ = run
    text = (out / "logs" / "CITATION.md").read_text()
    planned, as_run = text.split(f"\n{AS_RUN}\n")
    assert "ESPIRiT [@espirit]" in planned and "low-resolution" in planned  # the rule, both ways
    for sub in ("01", "02"):
        coils = json.loads((out / f"sub-{sub}" / "anat" / f"sub-{sub}_rec-cgsense_echo-1_MESE.json")
                           .read_text())["CoilSensitivities"]
        line = next(ln for ln in as_run.splitlines() if ln.startswith(f"- sub-{sub}, MESE"))
        assert coils in line and "rec-cgsense" in line and "rec-zsssl" in line
    mine = methods_text(out, "02")
    assert "sub-02" in mine and "sub-01" not in mine.split(AS_RUN)[1]


@pytest.mark.parametrize("suffix, method, tol", [("T1map", "nlls", 0.03), ("T2map", "varpro", 0.03),
                                                 ("T2starmap", "varpro", 0.03)])
def test_group_native_tissue_medians_match_the_truth(run, group, suffix, method, tol):
    """Noise-free maps: per subject, the native GM and WM medians of the table equal the true map's
    median over the same voxels (the template's labels pulled back by the subject's transform)."""
    import nibabel as nb
    import numpy as np

    from qmriprep.registration.itk import load_transform
    from qmriprep.registration.template import TISSUES, labels_in_native, load_template

    bids, out, _ = run
    for sub in ("01", "02"):
        est_img = nb.load(out / f"sub-{sub}" / "anat" / f"sub-{sub}_desc-{method}_{suffix}.nii.gz")
        xfm = next((out / f"sub-{sub}").glob(f"*/sub-{sub}_from-native_to-{TEMPLATE}_mode-image_xfm.txt"))
        labels = labels_in_native(load_template(4), est_img, load_transform(xfm))
        truth = np.asarray(nb.load(bids / "derivatives" / "truth" / f"sub-{sub}" / "anat" /
                                   f"sub-{sub}_{suffix}.nii.gz").dataobj)
        defined = np.asarray(est_img.dataobj) != 0
        for label, tissue in TISSUES.items():
            if tissue == "CSF":
                continue
            row = next(r for r in group["out"] if (r["subject"], r["map"], r["method"], r["space"], r["region"],
                                                   r["reconstruction"]) == (sub, suffix, method, "native", tissue, "n/a"))
            expected = np.median(truth[defined & (labels == label)])
            assert float(row["median"]) == pytest.approx(expected, rel=tol), (sub, tissue)


# template space: 5 % as documented in RESULTS (4 mm template grid, interpolation across the
# tissue borders); a clean-clone CI run under load measured 3.0 % for WM T1 of one subject
@pytest.mark.parametrize("suffix, method, tol", [("T1map", "nlls", 0.05), ("T2map", "varpro", 0.05),
                                                 ("T2starmap", "varpro", 0.05)])
def test_group_template_tissue_medians_match_the_truth(group, suffix, method, tol):
    """In the template space, per subject, the GM and WM medians of the estimate equal those of the
    true map registered and summarised the same way."""
    space = TEMPLATE
    est = {(r["subject"], r["region"]): float(r["median"]) for r in group["out"]
           if (r["map"], r["method"], r["space"], r["reconstruction"]) == (suffix, method, space, "n/a")}
    truth = {(r["subject"], r["region"]): float(r["median"]) for r in group["truth"]
             if (r["map"], r["space"]) == (suffix, space)}
    for sub in ("01", "02"):
        for tissue in ("GM", "WM"):
            assert est[sub, tissue] == pytest.approx(truth[sub, tissue], rel=tol), (sub, tissue)
