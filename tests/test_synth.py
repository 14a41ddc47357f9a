"""Synthetic phantom and BIDS dataset: truth, signals, BIDS structure, noise, motion."""

import json

import nibabel as nb
import numpy as np
import pytest

from qmriprep.physics.b1 import afi_signals, dam_signals, tfl_famp
from qmriprep.physics.exponential import monoexp
from qmriprep.physics.spgr import spgr
from qmriprep.synth import PROTOCOL, TISSUES, DatasetSpec, demo_dataset, make_phantom, write_dataset
from qmriprep.synth.__main__ import main

SMALL = {"downsample": 8, "n_slices": 4}


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("synth") / "clean", DatasetSpec(**SMALL))


@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("synth") / "noisy",
                         DatasetSpec(snr=50, seed=3, modalities=("MESE", "TB1TFL"), **SMALL))


def load(root, rel):
    return nb.load(root / rel)


def truth(root, suffix):
    return np.asarray(load(root, f"derivatives/truth/sub-01/anat/sub-01_{suffix}.nii.gz").dataobj)


def test_phantom_tissue_values_and_grid():
    small = make_phantom(**SMALL)
    assert small.shape[2] == 4 and 15 <= small.shape[0] <= 25 and 18 <= small.shape[1] <= 30
    assert np.allclose(small.zooms, 8.0)
    ph = make_phantom(downsample=4, n_slices=8)
    assert np.allclose(ph.zooms, 4.0)
    for label, tissue in ((2, "GM"), (3, "WM")):
        sel = ph.pure & (ph.labels == label)
        assert sel.sum() > 20
        for name in ("t1", "t2", "t2star", "pd"):
            expected = TISSUES[tissue][name]
            assert np.median(getattr(ph, name)[sel]) == pytest.approx(expected, rel=0.06)
    assert np.all(ph.t2star[ph.mask] <= ph.t2[ph.mask]) and np.all(ph.t2[ph.mask] < ph.t1[ph.mask])
    assert np.all(ph.t1[~ph.mask] == 0) and np.all(ph.labels[~ph.mask] == 0)
    b1 = ph.b1[ph.pd > 0.3]
    assert 0.75 < b1.min() and b1.max() < 1.3 and b1.max() - b1.min() > 0.2


def test_phantom_affine_and_slab_are_consistent():
    full = make_phantom(downsample=8)
    slab = make_phantom(**SMALL)
    k0 = (full.shape[2] - 4) // 2
    assert np.array_equal(slab.pd, full.pd[..., k0:k0 + 4])
    assert np.allclose(slab.centres, full.centres[..., k0:k0 + 4, :])
    assert np.allclose(full.affine[:3, :3], 8 * np.eye(3))

    def centroid(ph):  # block averaging keeps the tissue centroid (up to within-block moments)
        w = (ph.gm + ph.wm + ph.csf)[..., None]
        return (ph.centres * w).sum((0, 1, 2)) / w.sum()

    other = make_phantom(downsample=5, crop=False, texture=0)
    assert other.shape == (40, 47, 38)
    assert np.allclose(centroid(full), centroid(other), atol=0.2)
    coarse = slab.coarsen(2)
    assert np.allclose(coarse.centres[0, 0, 0], slab.centres[:2, :2, :2].reshape(-1, 3).mean(0))
    assert np.allclose(centroid(coarse), centroid(slab), atol=0.2)
    assert coarse.pd.sum() * 8 == pytest.approx(slab.pd.sum(), rel=1e-5)


def test_dataset_is_bids_with_inherited_metadata(clean):
    bids = pytest.importorskip("bids")
    desc = json.loads((clean / "dataset_description.json").read_text())
    assert desc["BIDSVersion"] == "1.9.0" and desc["DatasetType"] == "raw"
    layout = bids.BIDSLayout(clean, validate=False)
    assert len(layout.get(suffix="MESE", extension=".nii.gz")) == len(PROTOCOL["MESE"]["EchoTime"])
    n_megre = len(layout.get(suffix="MEGRE", extension=".nii.gz"))
    assert n_megre == len(PROTOCOL["MEGRE"]["EchoTime"])
    vfa = layout.get(suffix="VFA", extension=".nii.gz")
    assert [f.get_metadata()["FlipAngle"] for f in vfa] == PROTOCOL["VFA"]["FlipAngle"]
    assert all(f.get_metadata()["RepetitionTimeExcitation"] == 0.015 for f in vfa)
    assert "RepetitionTimeExcitation" not in json.loads(
        (clean / "sub-01/anat/sub-01_flip-1_VFA.json").read_text())
    famp = layout.get(suffix="TB1TFL", acquisition="famp", extension=".nii.gz")[0].get_metadata()
    assert famp["IntendedFor"][0] == "bids::sub-01/anat/sub-01_flip-1_VFA.nii.gz"
    assert famp["MagneticFieldStrength"] == 3
    afi = layout.get(suffix="TB1AFI", extension=".nii.gz")
    assert {f.entities["acquisition"] for f in afi} == {"tr1", "tr2"}
    te = layout.get(suffix="MESE", echo=3, extension=".nii.gz")[0].get_metadata()["EchoTime"]
    assert te == pytest.approx(0.03)


def test_file_names_are_valid_bids(clean):
    validator = pytest.importorskip("bids_validator").BIDSValidator()
    files = [p for p in clean.rglob("*") if p.is_file() and "derivatives" not in p.parts
             and p.name != ".bidsignore"]
    bad = [str(p) for p in files if not validator.is_bids("/" + p.relative_to(clean).as_posix())]
    assert not bad


def test_noise_free_signals_equal_the_physics_of_the_truth(clean):
    m0, t2, t2s, t1, b1 = (truth(clean, s)
                           for s in ("M0map", "T2map", "T2starmap", "T1map", "TB1map"))
    inside = m0 > 0
    t2, t2s = np.where(inside, t2, 1), np.where(inside, t2s, 1)
    for i, te in enumerate(PROTOCOL["MESE"]["EchoTime"][::5]):
        img = np.asarray(load(clean, f"sub-01/anat/sub-01_echo-{5 * i + 1}_MESE.nii.gz").dataobj)
        assert np.allclose(img[inside], monoexp(m0, t2, te)[inside], rtol=1e-5, atol=1e-7)
    img = np.asarray(load(clean, "sub-01/anat/sub-01_echo-8_MEGRE.nii.gz").dataobj)
    model = monoexp(m0, t2s, PROTOCOL["MEGRE"]["EchoTime"][7])
    assert np.allclose(img[inside], model[inside], rtol=1e-5)
    for k, fa in enumerate(PROTOCOL["VFA"]["FlipAngle"]):
        img = np.asarray(load(clean, f"sub-01/anat/sub-01_flip-{k + 1}_VFA.nii.gz").dataobj)
        model = spgr(m0, np.where(inside, t1, 1), np.deg2rad(fa), 0.015, b1)
        assert np.allclose(img, model, rtol=1e-5, atol=1e-7)
    assert np.all(img[~inside] == 0)


def test_b1_collections_on_the_coarser_grid_cover_the_same_fov(clean):
    anat = load(clean, "sub-01/anat/sub-01_flip-1_VFA.nii.gz")
    ph = make_phantom(**SMALL).coarsen(2)
    t1 = ph.safe("t1")
    expected = {
        "flip-2_TB1DAM": dam_signals(ph.pd, t1, np.deg2rad(60), 10.0, ph.b1)[..., 1],
        "acq-tr2_TB1AFI": afi_signals(ph.pd, t1, np.deg2rad(60), 0.02, 0.1, ph.b1)[..., 1],
    }
    for name, model in expected.items():
        img = load(clean, f"sub-01/fmap/sub-01_{name}.nii.gz")
        assert np.allclose(img.header.get_zooms(), 2 * np.array(anat.header.get_zooms()))
        assert np.allclose(img.affine, ph.affine)
        assert np.allclose(np.asarray(img.dataobj), model, rtol=1e-5, atol=1e-7)
        # first and last voxel boxes of the two grids start/end at the same place (same FOV)
        corner = img.affine @ [-0.5, -0.5, -0.5, 1]
        assert np.allclose(corner, anat.affine @ [-0.5, -0.5, -0.5, 1])
        far = np.array(img.shape) * 2 - np.array(anat.shape)
        assert np.all((far >= 0) & (far <= 1))
    famp = np.asarray(load(clean, "sub-01/fmap/sub-01_acq-famp_TB1TFL.nii.gz").dataobj)
    head = famp > 0
    assert np.allclose(famp[head], tfl_famp(np.deg2rad(80), ph.b1)[head], rtol=1e-5)


def test_snr_sets_the_noise_level_in_white_matter(noisy):
    sim = json.loads((noisy / "derivatives/truth/sub-01/sub-01_simulation.json").read_text())
    sigma = sim["noise_sigma"]["sub-01/anat/sub-01_echo-1_MESE.nii.gz"]
    m0 = truth(noisy, "M0map")
    wm = (truth(noisy, "dseg") == 3) & (truth(noisy, "desc-pure_mask") > 0)
    clean1 = monoexp(m0, np.where(m0 > 0, truth(noisy, "T2map"), 1), 0.01)
    assert np.mean(clean1[wm]) / sigma == pytest.approx(50, rel=1e-4)
    noisy_echoes = [np.asarray(load(noisy, f"sub-01/anat/sub-01_echo-{i}_MESE.nii.gz").dataobj)
                    for i in range(1, 4)]
    resid = np.concatenate([(e - monoexp(m0, np.where(m0 > 0, truth(noisy, "T2map"), 1), te))[wm]
                            for e, te in zip(noisy_echoes, (0.01, 0.02, 0.03))])
    assert resid.std() == pytest.approx(sigma, rel=0.15)
    background = np.concatenate([e[m0 == 0] for e in noisy_echoes])  # Rayleigh distributed
    assert background.mean() == pytest.approx(sigma * np.sqrt(np.pi / 2), rel=0.1)
    assert "sub-01/fmap/sub-01_acq-famp_TB1TFL.nii.gz" in sim["noise_sigma"]


def test_seed_makes_noise_reproducible(noisy, tmp_path):
    again = write_dataset(tmp_path / "again", DatasetSpec(snr=50, seed=3, modalities=("MESE",), **SMALL))
    other = write_dataset(tmp_path / "other", DatasetSpec(snr=50, seed=4, modalities=("MESE",), **SMALL))
    rel = "sub-01/anat/sub-01_echo-2_MESE.nii.gz"
    a, b, c = (np.asarray(load(r, rel).dataobj) for r in (noisy, again, other))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_motion_moves_the_vfa_flip_rigidly(tmp_path):
    motion = {2: {"rotation": (0, 0, 3), "translation": (4, -3, 0)}}
    root = write_dataset(tmp_path / "moved",
                         DatasetSpec(modalities=("VFA",), downsample=8, motion=motion))
    sim = json.loads((root / "derivatives/truth/sub-01/sub-01_simulation.json").read_text())
    world = np.array(sim["motion"]["sub-01_flip-2_VFA"]["world_matrix"])
    moved = load(root, "sub-01/anat/sub-01_flip-2_VFA.nii.gz")
    m0, t1, b1 = (truth(root, s) for s in ("M0map", "T1map", "TB1map"))
    t1 = np.where(m0 > 0, t1, 1)
    still = spgr(m0, t1, np.deg2rad(PROTOCOL["VFA"]["FlipAngle"][1]), 0.015, b1)

    def com(d):
        ijk = np.argwhere(np.ones(d.shape, bool))
        mean_ijk = (ijk * d.reshape(-1, 1)).sum(0) / d.sum()
        return moved.affine[:3, :3] @ mean_ijk + moved.affine[:3, 3]

    # the flip-2 image is the unmoved flip-2 model moved by the recorded transform
    assert np.allclose(com(np.asarray(moved.dataobj)), (world @ np.r_[com(still), 1])[:3], atol=0.1)
    assert not np.allclose(np.asarray(moved.dataobj), still, atol=1e-3)
    assert np.allclose(np.asarray(load(root, "sub-01/anat/sub-01_flip-1_VFA.nii.gz").dataobj),
                       spgr(m0, t1, np.deg2rad(3), 0.015, b1), rtol=1e-5, atol=1e-7)


def test_refuses_a_non_empty_folder(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty"):
        write_dataset(tmp_path / "mine", DatasetSpec(modalities=("TB1DAM",), **SMALL))
    with pytest.raises(FileExistsError, match="not a qmriprep.synth dataset"):
        write_dataset(tmp_path / "mine", DatasetSpec(modalities=("TB1DAM",), **SMALL), overwrite=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    out = tmp_path / "ds"
    assert main([str(out), "--downsample", "8", "--slices", "2", "--modalities", "TB1DAM"]) == 0
    assert "TB1DAM" in capsys.readouterr().out
    assert main([str(out), "--downsample", "8", "--slices", "2", "--modalities", "TB1AFI"]) == 2
    assert main([str(out), "--downsample", "8", "--slices", "2", "--modalities", "TB1AFI",
                 "--overwrite"]) == 0
    assert not list(out.rglob("*TB1DAM*")) and list(out.rglob("*TB1AFI*"))
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


def test_sessions_and_subjects_layout(tmp_path):
    root = write_dataset(tmp_path / "ses", DatasetSpec(subjects=("01", "sub-02"), sessions=("a", "b"),
                                                       modalities=("TB1DAM",), **SMALL))
    assert (root / "sub-02/ses-b/fmap/sub-02_ses-b_flip-1_TB1DAM.json").is_file()
    assert (root / "derivatives/truth/sub-02/ses-a/anat/sub-02_ses-a_T1map.nii.gz").is_file()
    assert (root / "participants.tsv").read_text().split() == ["participant_id", "sub-01", "sub-02"]
    with pytest.raises(ValueError, match="alphanumeric"):
        write_dataset(tmp_path / "bad", DatasetSpec(subjects=("0_1",), **SMALL))


@pytest.mark.e2e
def test_demo_dataset_size(tmp_path):
    root = demo_dataset(tmp_path / "demo")
    img = load(root, "sub-01/anat/sub-01_echo-1_MESE.nii.gz")
    assert img.shape == (39, 48, 16)
    assert load(root, "sub-01/fmap/sub-01_acq-famp_TB1TFL.nii.gz").shape == (20, 24, 8)
