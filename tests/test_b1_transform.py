"""The B1+ registration is a derivative (``from-<B1>_to-<series>_mode-image_xfm.txt``) and the
report's registration view shows that transform, not a registration of its own."""

import json

import nibabel as nb
import numpy as np
import pytest

from qmriprep.cli.run import main
from qmriprep.registration.itk import load_transform
from qmriprep.synth.dataset import DatasetSpec, write_dataset

SHIFT_MM = np.array([10.0, 0.0, 0.0])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny VFA + TFL dataset whose TFL images lie 10 mm off in their headers (as if the subject
    moved between the scans), run with rigid B1+ registration."""
    root = tmp_path_factory.mktemp("xfm")
    bids = write_dataset(root / "bids", DatasetSpec(downsample=4, n_slices=12, modalities=("VFA", "TB1TFL")))
    for path in (bids / "sub-01" / "fmap").glob("*_TB1TFL.nii.gz"):
        img = nb.load(path)
        affine = img.affine.copy()
        affine[:3, 3] += SHIFT_MM
        nb.Nifti1Image(np.asanyarray(img.dataobj), affine, img.header).to_filename(path)
    out = root / "out"
    code = main([str(bids), str(out), "participant", "-w", str(root / "work"), "--nprocs", "2",
                 "--omp-nthreads", "1", "--estimators", "vfa:linear", "--b1-registration", "rigid"])
    return code, out


def test_the_transform_is_written_and_finds_the_shift(run):
    code, out = run
    assert code == 0
    xfm = out / "sub-01" / "anat" / "sub-01_from-TB1TFL_to-VFA_mode-image_xfm.txt"
    matrix = load_transform(xfm)  # fixed (VFA) -> moving (TFL) points, RAS mm
    assert np.allclose(matrix[:3, :3], np.eye(3), atol=0.03)
    assert np.abs(matrix[:3, 3] - SHIFT_MM).max() < 1.5, matrix[:3, 3]
    meta = json.loads(xfm.with_suffix(".json").read_text())
    assert meta["Alignment"] == "rigid" and any("TB1TFL" in s for s in meta["Sources"])


def test_the_report_shows_the_written_registration(run):
    _, out = run
    html = (out / "sub-01.html").read_text()
    vfa = html.split("<h2>sub-01_VFA</h2>")[1].split('<section id="col-')[0]
    assert "sub-01_VFA_b1reg.png" in vfa
    from PIL import Image

    with Image.open(out / "sub-01" / "figures" / "sub-01_VFA_b1reg.png") as image:
        width, height = image.size
    assert width > 1.5 * height  # two panels: scanner coordinates, then the registration
