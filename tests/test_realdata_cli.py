"""Real qMRLab data through the whole ``qmriprep`` command line, checked against qmrpy.

The four qMRLab playground datasets in ``../shared/data/real/qmrlab`` (see its README; skipped
with a reason when absent) are written as one small BIDS dataset, one subject per protocol:

========  ====================================================  ======================
subject   files                                                 from
========  ====================================================  ======================
sub-01    ``anat/sub-01_echo-<1..30>_MESE`` (TE 12.8..384 ms)     ``mono_t2``
sub-02    ``anat/sub-02_flip-<1,2>_VFA`` (3/20 deg, TR 15 ms),    ``vfa_t1``,
          ``fmap/sub-02_TB1map`` (Units ``fraction``)             ``vfa_t1_B1map``
sub-03    ``fmap/sub-03_flip-<1,2>_TB1DAM`` (60/120 deg)          ``b1_dam``
sub-04    ``fmap/sub-04_acq-tr<1,2>_TB1AFI`` (60 deg, 20/100 ms)  ``b1_afi``
========  ====================================================  ======================

The protocol comes from each JSON's ``volume_ids`` and ``config`` fields. The CLI runs once for
all subjects (module-scoped fixture); the tests then check the exit code,
the derivatives, finite values in the written masks, physiological ranges, and agreement with
the peer implementation qmrpy on the same voxels.

Measured when this module was written (|ours / qmrpy - 1| on the same voxels; the asserted
tolerances leave a margin of 10x or more):

- T2 (MESE, 30 echoes), 300 random voxels of the app's mask (4,824 voxels; it covers 3,056 of
  the 3,060 of qMRLab's shipped mask), flat decays excluded (4 %: qmrpy's T2 runs away, ours
  is clipped at 10 s): VarPro median 2.8e-7, 95th percentile 5.2e-6; NLLS 1.0e-6 / 1.2e-5.
  Median T2 110 ms (107 ms in the shipped mask); 86.5 % of the mask in 20-300 ms (the rest is
  CSF and scalp).
- T1 (VFA 3/20 deg, TR 15 ms), 400 random voxels of the app's mask (6,629 voxels), qmrpy given
  the B1+ map the app used (``desc-vfa_TB1map``: the scanner map smoothed with 8 mm FWHM and
  brought onto the VFA grid; median 0.8 % from the raw map): linear and NLLS (two angles:
  the same interpolating solution) median 4e-8, max 1.2e-7. Median T1 1.17 s, 98.3 % in
  0.3-5 s. Series alignment is off (``--align-series never``): with the default, the 3 deg
  flip is rigidly aligned to the 20 deg one (one slice, different contrast; found 0.1 mm and
  0.24 deg) and resampled with cubic B-splines, which changes T1 by a median 0.7 % (95th
  percentile 21 %, at the edges) compared with a voxelwise fit of the raw images.
- B1+ (raw ``desc-dam`` / ``desc-afi`` maps, percent / 100) in the foreground mask of the first
  image: DAM (2,614 voxels) median 2.2e-8, max 9e-8; AFI (6,239 valid of 6,343) median 2.5e-8,
  max 9e-8 (float32 rounding). Median B1 0.956 (DAM) and 0.965 (AFI).

The CLI run for the four subjects took 38 s wall time on 2 shared cores (whole module ~45 s).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.realdata

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
QMRLAB = REAL / "qmrlab"
NEEDED = ("mono_t2", "mono_t2_mask", "vfa_t1", "vfa_t1_B1map", "b1_dam", "b1_afi")
SCANNER = {"MagneticFieldStrength": 3, "Manufacturer": "qMRLab playground data"}


def _rel(a, b):
    return np.abs(np.asarray(a, np.float64) / np.asarray(b, np.float64) - 1.0)


def _load(name):
    import nibabel as nb

    img = nb.load(QMRLAB / f"{name}.nii.gz")
    meta_file = QMRLAB / f"{name}.json"
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    return img, meta


def _save(root, rel, data, affine, sidecar):
    import nibabel as nb

    path = root / f"{rel}.nii.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nb.Nifti1Image(np.asarray(data, np.float32), affine)
    img.set_qform(affine, 1)
    img.set_sform(affine, 1)
    img.header.set_xyzt_units("mm", "sec")
    img.to_filename(path)
    (root / f"{rel}.json").write_text(json.dumps({**SCANNER, **sidecar}, indent=2))
    return path


def _split(root, name, stems_and_sidecars):
    """Write each volume of ``<name>.nii.gz`` as a 3-D BIDS image with its sidecar."""
    img, _ = _load(name)
    data = np.asanyarray(img.dataobj).astype(np.float32)
    assert data.shape[3] == len(stems_and_sidecars), name
    return [_save(root, stem, data[..., k], img.affine, sc)
            for k, (stem, sc) in enumerate(stems_and_sidecars)]


def write_realdata_bids(root: Path) -> Path:
    """The BIDS dataset of the module docstring, protocol taken from the qMRLab JSON files."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(json.dumps({
        "Name": "qMRLab playground data (MIT licence, see ../shared/data/real/qmrlab/LICENSE)",
        "BIDSVersion": "1.9.0", "DatasetType": "raw"}))
    (root / "participants.tsv").write_text("participant_id\n" + "".join(
        f"sub-0{i}\n" for i in range(1, 5)))

    # sub-01: multi-echo spin echo, echo times (s) from volume_ids
    _, meta = _load("mono_t2")
    tes = [v["EchoTime"] for v in meta["volume_ids"]]
    _split(root, "mono_t2", [(f"sub-01/anat/sub-01_echo-{i}_MESE",
                              {"EchoTime": te, "PulseSequenceType": "Multi-echo spin echo"})
                             for i, te in enumerate(tes, 1)])

    # sub-02: VFA (flip angles in deg from volume_ids, TR from config) + scanner B1+ map
    _, meta = _load("vfa_t1")
    assert "repetition_time: 0.015" in meta["config"]
    fas = [v["FlipAngle"] for v in meta["volume_ids"]]
    vfa = _split(root, "vfa_t1", [(f"sub-02/anat/sub-02_flip-{i}_VFA",
                                   {"FlipAngle": fa, "RepetitionTimeExcitation": 0.015,
                                    "PulseSequenceType": "SPGR", "SpoilingState": True})
                                  for i, fa in enumerate(fas, 1)])
    b1img, _ = _load("vfa_t1_B1map")
    _save(root, "sub-02/fmap/sub-02_TB1map", np.asanyarray(b1img.dataobj), b1img.affine,
          {"Units": "fraction", "IntendedFor": [
              f"bids::sub-02/anat/{p.name}" for p in vfa]})

    # sub-03: double angle method
    _, meta = _load("b1_dam")
    fas = [v["FlipAngle"] for v in meta["volume_ids"]]
    assert fas == [60.0, 120.0]
    _split(root, "b1_dam", [(f"sub-03/fmap/sub-03_flip-{i}_TB1DAM",
                             {"FlipAngle": fa, "PulseSequenceType": "SPGR"})
                            for i, fa in enumerate(fas, 1)])

    # sub-04: actual flip angle imaging
    _, meta = _load("b1_afi")
    trs = [v["RepetitionTimeExcitation"] for v in meta["volume_ids"]]
    assert trs == [0.02, 0.1] and "flip_angle: 60" in meta["config"]
    _split(root, "b1_afi", [(f"sub-04/fmap/sub-04_acq-tr{i}_TB1AFI",
                             {"FlipAngle": 60.0, "RepetitionTimeExcitation": tr,
                              "PulseSequenceType": "AFI"})
                            for i, tr in enumerate(trs, 1)])
    return root


# ------------------------------------------------------------------------------ one CLI run
@pytest.fixture(scope="module")
def run(tmp_path_factory):
    missing = [n for n in NEEDED if not (QMRLAB / f"{n}.nii.gz").is_file()]
    if missing:
        pytest.skip(f"real qMRLab data not found ({', '.join(missing)} missing in {QMRLAB}): "
                    "these tests need ../shared/data/real next to the repository")
    pytest.importorskip("nibabel")
    from qmriprep.cli.run import main

    tmp = tmp_path_factory.mktemp("realdata_cli")
    bids = write_realdata_bids(tmp / "bids")
    out, work = tmp / "out", tmp / "work"
    code = main([str(bids), str(out), "participant", "-w", str(work), "--nprocs", "2",
                 "--omp-nthreads", "1", "--estimators", "mese:varpro,nlls", "vfa:linear,nlls",
                 "--align-series", "never"])
    return {"code": code, "bids": bids, "out": out}


def _map(run, rel):
    import nibabel as nb

    path = run["out"] / f"{rel}.nii.gz"
    assert path.is_file(), f"{rel} not written"
    return np.asanyarray(nb.load(path).dataobj).astype(np.float64)


def _raw(run, rel):
    import nibabel as nb

    return np.asanyarray(nb.load(run["bids"] / f"{rel}.nii.gz").dataobj).astype(np.float64)


def _qmrpy():
    return pytest.importorskip("qmrpy", reason="qmrpy (extra 'peers') not importable")


def _subset(mask, n, seed=0):
    idx = np.argwhere(mask)
    rng = np.random.default_rng(seed)
    return [tuple(i) for i in idx[rng.choice(len(idx), min(n, len(idx)), replace=False)]]


def test_exit_code_and_outputs(run):
    assert run["code"] == 0
    for sub in ("01", "02", "03", "04"):
        assert (run["out"] / f"sub-{sub}.html").is_file()
        assert not list((run["out"] / f"sub-{sub}" / "log").rglob("crash-*"))
    assert (run["out"] / "dataset_description.json").is_file()


def test_mese_t2(run):
    from qmriprep.fit.monoexp import T2_MAX

    mask = _map(run, "sub-01/anat/sub-01_acq-mese_desc-brain_mask") > 0
    assert mask.sum() > 1000
    shipped = np.asanyarray(_load("mono_t2_mask")[0].dataobj) > 0
    assert (mask & shipped).sum() > 0.9 * shipped.sum()  # the app's mask covers qMRLab's
    t2 = {m: _map(run, f"sub-01/anat/sub-01_desc-{m}_T2map") for m in ("varpro", "nlls")}
    for m, v in t2.items():
        m0 = _map(run, f"sub-01/anat/sub-01_desc-{m}T2_M0map")
        assert np.isfinite(v).all() and np.isfinite(m0).all()
        assert (v[~mask] == 0).all()
        inside = v[mask]
        assert (inside > 0).mean() > 0.99, m
        assert 0.05 < np.median(inside) < 0.15, m  # brain T2 at 3 T, seconds
        assert np.mean((inside > 0.02) & (inside < 0.3)) > 0.8, m  # rest: CSF, scalp
        assert 0.05 < np.median(v[shipped]) < 0.12
    _qmrpy()
    from qmrpy.models.t2.mono_t2 import T2Mono

    _, meta = _load("mono_t2")
    te = np.array([v["EchoTime"] for v in meta["volume_ids"]])
    data = np.stack([_raw(run, f"sub-01/anat/sub-01_echo-{i}_MESE")
                     for i in range(1, len(te) + 1)], -1)
    vox = _subset(mask, 300)
    model = T2Mono(te_ms=te * 1000.0)
    q = np.array([model.fit(data[i])["t2_ms"] / 1000.0 for i in vox])
    for m, tol_median, tol_p95 in (("varpro", 3e-6, 1e-4), ("nlls", 1e-5, 2e-4)):
        ours = np.array([t2[m][i] for i in vox])
        ok = (ours > 0) & (ours < T2_MAX * 0.999) & (q < T2_MAX)  # flat decays excluded
        assert ok.mean() > 0.9, m
        d = _rel(ours[ok], q[ok])
        assert np.median(d) < tol_median, (m, np.median(d))
        assert np.percentile(d, 95) < tol_p95, (m, np.percentile(d, 95))


def test_vfa_t1(run):
    mask = _map(run, "sub-02/anat/sub-02_acq-vfa_desc-brain_mask") > 0
    assert mask.sum() > 2000
    b1 = _map(run, "sub-02/fmap/sub-02_desc-vfa_TB1map") / 100.0  # percent -> fraction
    scanner = _raw(run, "sub-02/fmap/sub-02_TB1map")
    assert 0.5 < np.median(b1[mask]) < 1.5
    # the scanner map is passed through (Units fraction -> written in percent), smoothed, and
    # brought onto the VFA grid by its header (same grid here: unchanged)
    raw_out = _map(run, "sub-02/fmap/sub-02_desc-scanner_TB1map") / 100.0
    smooth = _map(run, "sub-02/fmap/sub-02_desc-scannersmooth_TB1map") / 100.0
    assert np.allclose(raw_out, scanner, rtol=1e-6, atol=0)
    assert np.allclose(b1[mask], smooth[mask], rtol=1e-6, atol=0)
    ok = mask & (scanner > 0)
    assert np.median(_rel(b1[ok], scanner[ok])) < 0.05  # 8 mm smoothing: measured 0.8 %
    t1 = {m: _map(run, f"sub-02/anat/sub-02_desc-{m}_T1map") for m in ("linear", "nlls")}
    for m, v in t1.items():
        assert np.isfinite(v).all() and (v[~mask] == 0).all()
        inside = v[mask]
        assert (inside > 0).mean() > 0.99, m
        assert 0.8 < np.median(inside) < 2.0, m  # brain T1 at 3 T, seconds
        assert np.mean((inside > 0.3) & (inside < 5.0)) > 0.95, m
    _qmrpy()
    from qmrpy.models.t1.vfa_t1 import T1VFA

    fa = [3.0, 20.0]
    data = np.stack([_raw(run, f"sub-02/anat/sub-02_flip-{i}_VFA") for i in (1, 2)], -1)
    vox = _subset(mask & (t1["linear"] > 0) & (b1 > 0), 400)
    q = np.array([T1VFA(fa, 15.0, float(b1[i])).fit(data[i])["t1_ms"] / 1000.0 for i in vox])
    for m in ("linear", "nlls"):
        d = _rel([t1[m][i] for i in vox], q)
        assert np.median(d) < 1e-6, (m, np.median(d))
        assert d.max() < 2e-6, (m, d.max())


@pytest.mark.parametrize("sub,kind", [("03", "dam"), ("04", "afi")])
def test_b1(run, sub, kind):
    raw = _map(run, f"sub-{sub}/fmap/sub-{sub}_desc-{kind}_TB1map") / 100.0
    smooth = _map(run, f"sub-{sub}/fmap/sub-{sub}_desc-{kind}smooth_TB1map") / 100.0
    sidecar = run["out"] / f"sub-{sub}/fmap/sub-{sub}_desc-{kind}_TB1map.json"
    meta = json.loads(sidecar.read_text())
    assert meta["Units"] == "percent"
    assert np.isfinite(raw).all() and np.isfinite(smooth).all()
    from qmriprep.fit.mask import foreground_mask

    suffix = "TB1DAM" if kind == "dam" else "TB1AFI"
    first = "flip-1" if kind == "dam" else "acq-tr1"
    second = "flip-2" if kind == "dam" else "acq-tr2"
    data = np.stack([_raw(run, f"sub-{sub}/fmap/sub-{sub}_{e}_{suffix}")
                     for e in (first, second)], -1)
    head = foreground_mask(data[..., 0])
    ok = head & (raw > 0)
    assert ok.sum() > 0.95 * head.sum()
    assert 0.8 < np.median(raw[ok]) < 1.2
    assert np.mean((raw[ok] > 0.5) & (raw[ok] < 1.5)) > 0.95
    assert np.mean((smooth[head] > 0.5) & (smooth[head] < 1.5)) > 0.95
    _qmrpy()
    if kind == "dam":
        from qmrpy.models.b1.dam import B1DAM

        q = B1DAM(alpha_deg=60.0).fit_image(data)["b1_raw"]
    else:
        from qmrpy.models.b1.afi import B1AFI

        q = B1AFI(nom_fa_deg=60.0, tr1_ms=20.0, tr2_ms=100.0).fit_image(data)["b1_raw"]
    d = _rel(raw[ok], q[ok])
    assert np.median(d) < 1e-6, np.median(d)
    assert d.max() < 1e-6, d.max()
