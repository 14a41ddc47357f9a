"""Bad input through the CLI: one clear message naming the file, exit 65, nothing written."""

import shutil

import nibabel as nib
import numpy as np
import pytest

from badinputs import edit_json

from qmriprep.cli.run import main
from qmriprep.errors import EXIT_INPUT, EXIT_PROCESSING
from qmriprep.synth.dataset import DatasetSpec, write_dataset


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("bad") / "bids",
                         DatasetSpec(downsample=8, n_slices=4, modalities=("MESE", "VFA", "TB1DAM")))


@pytest.fixture
def bids(pristine, tmp_path):
    return shutil.copytree(pristine, tmp_path / "bids")


def _run(bids, tmp_path, *extra):
    out = tmp_path / "out"
    code = main([str(bids), str(out), "participant", "-w", str(tmp_path / "work"),
                 "--nprocs", "1", *extra])
    return code, out


def _no_derivatives(out):
    return not out.exists() or not [p for p in out.rglob("*.nii*")]




def test_not_a_bids_folder(tmp_path, capsys):
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "scan.nii.gz").write_bytes(b"")
    code, out = _run(folder, tmp_path)
    assert code == EXIT_INPUT
    assert "plain" in capsys.readouterr().out
    assert _no_derivatives(out)


def test_unknown_participant(bids, tmp_path, capsys):
    code, out = _run(bids, tmp_path, "--participant-label", "99")
    assert code == EXIT_INPUT
    msg = capsys.readouterr().out
    assert "'99' not found" in msg and "01" in msg
    assert _no_derivatives(out)


def test_output_inside_input(bids, tmp_path, capsys):
    code = main([str(bids), str(bids / "derivatives" / "qmriprep"), "participant"])
    assert code == EXIT_INPUT
    assert "must not be the input BIDS folder or inside it" in capsys.readouterr().out


def test_missing_echo_time(bids, tmp_path, capsys):
    sidecar = bids / "sub-01" / "anat" / "sub-01_echo-3_MESE.json"
    edit_json(sidecar, EchoTime=None)
    code, out = _run(bids, tmp_path)
    assert code == EXIT_INPUT
    msg = capsys.readouterr().out
    assert "sub-01_echo-3_MESE.json" in msg and "EchoTime" in msg
    assert _no_derivatives(out)


def test_missing_flip_angle(bids, tmp_path, capsys):
    edit_json(bids / "sub-01" / "anat" / "sub-01_flip-2_VFA.json", FlipAngle=None)
    code, out = _run(bids, tmp_path)
    assert code == EXIT_INPUT
    msg = capsys.readouterr().out
    assert "sub-01_flip-2_VFA" in msg and "FlipAngle" in msg
    assert _no_derivatives(out)


def _replace_image(path, data):
    img = nib.load(path)
    nib.save(nib.Nifti1Image(data.astype(np.float32), img.affine), path)


def test_echoes_with_different_shapes(bids, tmp_path, capsys):
    path = bids / "sub-01" / "anat" / "sub-01_echo-2_MESE.nii.gz"
    _replace_image(path, np.asarray(nib.load(path).dataobj)[:-1])
    code, out = _run(bids, tmp_path)
    assert code == EXIT_INPUT
    assert "sub-01_echo" in capsys.readouterr().out
    assert _no_derivatives(out)


def test_all_zero_volume(bids, tmp_path, capsys):
    path = bids / "sub-01" / "anat" / "sub-01_flip-3_VFA.nii.gz"
    _replace_image(path, np.zeros(nib.load(path).shape))
    code, out = _run(bids, tmp_path)
    assert code == EXIT_INPUT
    msg = capsys.readouterr().out
    assert "sub-01_flip-3_VFA.nii.gz" in msg and "zero" in msg
    assert _no_derivatives(out)


def test_a_few_nan_voxels_are_masked_with_a_warning(bids, tmp_path, capsys):
    """NaN voxels (as converters and masked exports write) are set to 0 in every image of the
    collection, which the foreground mask leaves out (without alignment, whose interpolation
    would bring neighbouring signal in): finite maps, a warning, the reason in the report."""
    path = bids / "sub-01" / "anat" / "sub-01_flip-3_VFA.nii.gz"
    data = np.asarray(nib.load(path).dataobj, dtype=float)
    centre = tuple(s // 2 for s in data.shape)
    data[centre] = np.nan
    data[0, 0, 0] = np.inf
    _replace_image(path, data)
    code, out = _run(bids, tmp_path, "--estimators", "mese:loglinear", "--align-series", "never")
    msg = capsys.readouterr().out
    assert code == 0
    assert "NaN or infinite voxels (2 in sub-01/anat/sub-01_flip-3_VFA.nii.gz)" in msg
    t1 = nib.load(next(out.glob("sub-01/anat/*_T1map.nii.gz"))).get_fdata()
    assert np.isfinite(t1).all() and t1[centre] == 0
    assert "set to 0 and masked" in (out / "sub-01.html").read_text()


def test_b1_map_outside_the_target_field_of_view(bids, tmp_path, capsys):
    for path in (bids / "sub-01" / "fmap").glob("*_TB1DAM.nii.gz"):
        img = nib.load(path)
        affine = img.affine.copy()
        affine[:3, 3] += 500.0  # half a metre away: no overlap with the VFA volume
        nib.save(nib.Nifti1Image(np.asarray(img.dataobj), affine), path)
    code, out = _run(bids, tmp_path)
    assert code == EXIT_INPUT
    assert "TB1DAM" in capsys.readouterr().out
    assert _no_derivatives(out)


def test_empty_file(bids, tmp_path, capsys):
    (bids / "sub-01" / "anat" / "sub-01_echo-1_MESE.nii.gz").write_bytes(b"")
    code, out = _run(bids, tmp_path)
    assert code == EXIT_INPUT
    assert "sub-01_echo-1_MESE.nii.gz" in capsys.readouterr().out
    assert _no_derivatives(out)


def test_crash_during_processing_publishes_nothing(bids, tmp_path, monkeypatch, capsys):
    """A failing node: exit 1, crash file in the log, no derivative of that subject."""
    import qmriprep.fit.despot1 as despot1

    def broken(*args, **kwargs):
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(despot1, "fit_vfa", broken)
    code, out = _run(bids, tmp_path)
    assert code == EXIT_PROCESSING
    assert _no_derivatives(out)
    assert not list(out.glob(".qmriprep-staging*"))
    crashes = list((out / "sub-01" / "log").glob("*/crash-*"))
    assert crashes and "simulated failure" in crashes[0].read_text()
    assert "simulated failure" in (out / "sub-01.html").read_text()
