"""Synthetic pc-bSSFP collections: files, sidecars, discovery, signal model, parts and noise."""

import json
import math

import nibabel as nb
import numpy as np
import pytest

from qmriprep.bids.b1choice import choose_b1
from qmriprep.bids.collections import find_collections
from qmriprep.bids.metadata import B1_KINDS
from qmriprep.bids.protocols import BSSFPProtocol
from qmriprep.physics.bssfp import bssfp_signal, remove_common_phase
from qmriprep.synth import MODALITIES, DatasetSpec, make_phantom, write_dataset
from qmriprep.synth import bssfp as synth_bssfp
from qmriprep.synth.__main__ import main

SMALL = {"downsample": 8, "n_slices": 4}
CYCLES = (12, 6, 4)
TR, TE, FA = 0.0048, 0.0024, 15


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """Noise-free mag/phase at 12, 6 and 4 cycles with two B1+ maps, written by the CLI."""
    out = tmp_path_factory.mktemp("pc") / "clean"
    assert main([str(out), "--downsample", "8", "--slices", "4", "--modalities", "bSSFP",
                 "TB1TFL", "TB1DAM", "--bssfp-cycles", *map(str, CYCLES)]) == 0
    return out


@pytest.fixture(scope="module")
def realimag(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("pc") / "ri",
                         DatasetSpec(modalities=("bSSFP",), bssfp_parts="realimag", **SMALL))


@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
    """The same complex noise (seed 3, SNR 25) written as real/imag and as magnitude only."""
    base = tmp_path_factory.mktemp("pc")
    kw = dict(modalities=("bSSFP",), snr=25, seed=3, bssfp_cycles=(12,), **SMALL)
    return (write_dataset(base / "ri", DatasetSpec(bssfp_parts="realimag", **kw)),
            write_dataset(base / "mag", DatasetSpec(bssfp_parts="mag", **kw)))


def data(root, rel):
    return np.asarray(nb.load(root / rel).dataobj, np.float64)


def truth(root, suffix, folder="anat"):
    return data(root, f"derivatives/truth/sub-01/{folder}/sub-01_{suffix}.nii.gz")


def model(root, increments_deg):
    """bssfp_signal of the truth maps (M0, T1, T2, B1+, fieldmap), without receiver phase."""
    m0, t1, t2, b1 = (truth(root, s) for s in ("M0map", "T1map", "T2map", "TB1map"))
    t1, t2 = np.where(m0 > 0, t1, 1), np.where(m0 > 0, t2, 1)
    theta = 2 * np.pi * truth(root, "fieldmap", "fmap") * TR
    return bssfp_signal(t1, t2, b1, theta, BSSFPProtocol(tuple(np.deg2rad(increments_deg)), TR,
                                                        math.radians(FA), TE), m0=m0), m0 > 0


def test_files_sidecars_and_b1_intended_for(clean):
    assert "bSSFP" not in MODALITIES  # the default dataset is unchanged (the demo adds bSSFP)
    famp = json.loads((clean / "sub-01/fmap/sub-01_acq-famp_TB1TFL.json").read_text())
    for n in CYCLES:
        for part in ("mag", "phase"):
            rel = f"sub-01/anat/sub-01_acq-pc{n}_part-{part}_bSSFP"
            img = nb.load(clean / f"{rel}.nii.gz")
            assert img.shape[3] == n and img.shape[:3] == make_phantom(**SMALL).shape
            meta = json.loads((clean / f"{rel}.json").read_text())
            assert meta["RFPhaseIncrement"] == pytest.approx([180 * (2 * j - 1) / n
                                                              for j in range(1, n + 1)])
            assert (meta["RepetitionTimeExcitation"], meta["EchoTime"], meta["FlipAngle"]) == \
                (TR, TE, FA)
            assert meta["MagneticFieldStrength"] == 3
            assert meta.get("Units") == ("rad" if part == "phase" else None)
            assert f"bids::{rel}.nii.gz" in famp["IntendedFor"]
    assert "*_bSSFP.*" in (clean / ".bidsignore").read_text()


def test_discovered_as_bssfp_with_protocol_and_b1(clean, realimag, noisy):
    found = find_collections(clean, "01")
    colls = [c for c in found if c.kind == "bSSFP"]
    b1s = [c for c in found if c.kind in B1_KINDS]
    assert sorted(c.entities["acquisition"] for c in colls) == ["pc12", "pc4", "pc6"]
    for c in colls:
        n = int(c.entities["acquisition"][2:])
        p = c.protocol
        assert p.phase_increments == pytest.approx(np.deg2rad(synth_bssfp.phase_increments(n)))
        assert (p.tr, p.echo_time, p.parts) == (TR, TE, ("mag", "phase"))
        assert p.flip_angle == pytest.approx(math.radians(FA))
        assert [f.name for f in c.files] == [f"sub-01_acq-pc{n}_part-{x}_bSSFP.nii.gz"
                                             for x in ("mag", "phase")]
        b1, reason = choose_b1(c, b1s)
        assert b1 is not None and b1.kind == "TB1TFL"  # both maps name it: preferred kind
        assert reason.startswith("IntendedFor")
    for root, parts in ((realimag, ("real", "imag")), (noisy[1], ("mag",))):
        (c,) = find_collections(root, "01")
        assert c.kind == "bSSFP" and c.protocol.parts == parts and c.protocol.n_points == 12


def test_noise_free_images_are_the_signal_model_times_a_receiver_phase(clean):
    phantom = make_phantom(**SMALL)
    rx = synth_bssfp.receiver_phase(phantom)
    assert np.ptp(rx[phantom.mask]) > 0.5  # a real, spatially varying phase to remove
    for n in CYCLES:
        rel = f"sub-01/anat/sub-01_acq-pc{n}_part-{{}}_bSSFP.nii.gz"
        mag, phase = data(clean, rel.format("mag")), data(clean, rel.format("phase"))
        assert phase.min() >= -np.pi and phase.max() < np.pi
        increments = json.loads((clean / rel.format("mag").replace(".nii.gz", ".json"))
                                .read_text())["RFPhaseIncrement"]
        sig, inside = model(clean, increments)
        assert np.allclose(mag, np.abs(sig), rtol=1e-5, atol=1e-8)
        assert np.all(mag[~inside] == 0)
        # after removing the receiver phase, the phase is the model's, cycle by cycle
        resid = np.angle(np.exp(1j * (phase - np.angle(sig) - rx[..., None])))
        assert np.abs(resid[inside]).max() < 1e-4
        # the receiver phase is common to all cycles: the common-phase removal cancels it
        common = remove_common_phase(mag * np.exp(1j * phase))
        assert np.allclose(common[inside], remove_common_phase(sig)[inside], rtol=1e-5, atol=1e-7)
    # the off-resonance is really in the signal: theta spans a good part of a band
    theta = 2 * np.pi * truth(clean, "fieldmap", "fmap") * TR
    assert np.ptp(theta[inside]) > 0.5


def test_realimag_equals_the_complex_signal(realimag):
    rel = "sub-01/anat/sub-01_acq-pc12_part-{}_bSSFP.nii.gz"
    cplx = data(realimag, rel.format("real")) + 1j * data(realimag, rel.format("imag"))
    sig, inside = model(realimag, synth_bssfp.phase_increments(12))
    rx = synth_bssfp.receiver_phase(make_phantom(**SMALL))
    assert np.allclose(cplx, sig * np.exp(1j * rx)[..., None], rtol=1e-5, atol=1e-7)


def test_noise_level_and_parts_share_one_draw(noisy):
    ri, mag_only = noisy
    sim = json.loads((ri / "derivatives/truth/sub-01/sub-01_simulation.json").read_text())
    rel = "sub-01/anat/sub-01_acq-pc12_part-{}_bSSFP.nii.gz"
    sigma = sim["noise_sigma"][rel.format("real")]
    assert sim["noise_sigma"][rel.format("imag")] == sigma
    m0 = truth(ri, "M0map")
    wm = (truth(ri, "dseg") == 3) & (truth(ri, "desc-pure_mask") > 0)
    m0_ref = m0[wm].mean()
    assert sim["bssfp"]["m0_ref"] == pytest.approx(m0_ref, rel=1e-5)
    assert sigma == pytest.approx(0.074 * m0_ref / (math.sqrt(2) * 25), rel=1e-5)
    real, imag = data(ri, rel.format("real")), data(ri, rel.format("imag"))
    sig, _ = model(ri, synth_bssfp.phase_increments(12))
    clean = sig * np.exp(1j * synth_bssfp.receiver_phase(make_phantom(**SMALL)))[..., None]
    for resid in (real - clean.real, imag - clean.imag):
        assert resid.mean() == pytest.approx(0, abs=0.05 * sigma)
        assert resid.std() == pytest.approx(sigma, rel=0.05)
    # magnitude-only is the magnitude of the same noisy complex data (Rician)
    assert np.allclose(data(mag_only, rel.format("mag")), np.hypot(real, imag), rtol=1e-5,
                       atol=1e-7)
    assert not (mag_only / rel.format("phase")).exists()


def test_bad_bssfp_settings(tmp_path):
    with pytest.raises(ValueError, match="distinct integers"):
        write_dataset(tmp_path / "a", DatasetSpec(modalities=("bSSFP",), bssfp_cycles=(6, 6), **SMALL))
    with pytest.raises(ValueError, match="bssfp_parts"):
        write_dataset(tmp_path / "b", DatasetSpec(modalities=("bSSFP",), bssfp_parts="complex", **SMALL))
    assert not list(tmp_path.iterdir())
