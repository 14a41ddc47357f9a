"""Write a synthetic qMRI BIDS dataset from the phantom, with the truth maps as a derivative.

Every image is the project's signal model (:mod:`qmriprep.physics`) of the phantom's truth maps:

- ``MESE``  ``monoexp(M0, T2, TE)`` and ``MEGRE`` ``monoexp(M0, T2*, TE)``: ideal mono-exponential
  decay (no T1 saturation, no stimulated echoes), so the fitted amplitude equals ``M0map``;
- ``VFA``   ``spgr(M0, T1, B1 a, TR)``;
- ``bSSFP`` (not in the default :data:`MODALITIES`): phase-cycled bSSFP, ``acq-pc<N>`` per entry
  of ``bssfp_cycles``, parts ``part-mag``/``part-phase`` (or real/imag, or mag only), 4-D, from
  ``bssfp_signal`` with the off-resonance field and a receiver phase (:mod:`.bssfp`);
- ``DESS`` (not in the default :data:`MODALITIES`): ``dess_signals``, echo-1 and echo-2
  (:data:`.kspace.DESS_PROTOCOL`);
- ``TB1DAM`` ``dam_signals``, ``TB1AFI`` ``afi_signals`` (on the B1 grid), ``TB1TFL``: ``acq-anat``
  an SPGR image with a long TR (8 deg readout), ``acq-famp`` ``tfl_famp`` at the nominal 80 deg
  preparation (the famp sidecar's ``FlipAngle``), 0 outside the head.

B1 maps are simulated on a grid ``b1_downsample`` times coarser covering the same field of view.
Noise (``snr``): for each collection, ``sigma = mean(noise-free first volume over pure WM) / snr``;
magnitude images get Rician noise ``|S + sigma (n1 + i n2)|``, the famp image (not a magnitude)
Gaussian noise inside the head; bSSFP complex noise at the seed's level (:mod:`.bssfp`). Each
file (bSSFP: each collection) draws from its own generator seeded by ``(seed, crc32 of its
path)``, so a dataset is reproducible and files do not depend on which others are written.

Raw multi-coil k-space (``kspace``: MESE, VFA, DESS as ISMRMRD files in ``sourcedata/kspace``,
with fully sampled k-space and coil-combined truth images in ``derivatives/truth``): see
:mod:`.kspace`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import zlib
from pathlib import Path

import nibabel as nb
import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from .. import __version__
from ..physics.b1 import afi_signals, dam_signals, tfl_famp
from ..physics.exponential import monoexp
from ..physics.spgr import spgr
from . import bssfp
from . import kspace as synth_kspace
from .phantom import LABELS, TISSUES, Phantom, make_phantom, slab_start

MODALITIES = ("MESE", "MEGRE", "VFA", "TB1DAM", "TB1AFI", "TB1TFL")
#: every modality write_dataset can simulate (bSSFP only on request)
ALL_MODALITIES = MODALITIES + ("bSSFP", "DESS")
_SCANNER = {"MagneticFieldStrength": 3, "Manufacturer": "Siemens",
            "ManufacturersModelName": "qmriprep.synth digital phantom",
            "ImagingFrequency": 123.25, "MRAcquisitionType": "3D"}
#: acquisition protocol (BIDS units: s, deg)
PROTOCOL = {
    "MESE": {"EchoTime": [round(0.010 * i, 3) for i in range(1, 17)],
             "RepetitionTimeExcitation": 3.0, "FlipAngle": 90, "RefocusingFlipAngle": 180,
             "PulseSequenceType": "Multi-echo spin echo", "ScanningSequence": "SE",
             "SequenceVariant": "SK"},
    "MEGRE": {"EchoTime": [round(0.003 + 0.005 * i, 3) for i in range(8)],
              "RepetitionTimeExcitation": 0.05, "FlipAngle": 15,
              "PulseSequenceType": "Multi-echo gradient echo", "ScanningSequence": "GR",
              "SequenceVariant": "SP"},
    "VFA": {"FlipAngle": [3, 8, 15, 20], "RepetitionTimeExcitation": 0.015,
            "PulseSequenceType": "SPGR", "ScanningSequence": "GR", "SequenceVariant": "SP",
            "SpoilingState": True},
    "TB1DAM": {"FlipAngle": [60, 120], "RepetitionTimeExcitation": 10.0,
               "PulseSequenceType": "SPGR", "ScanningSequence": "GR"},
    "TB1AFI": {"FlipAngle": 60, "RepetitionTimeExcitation": [0.020, 0.100],
               "PulseSequenceType": "AFI", "ScanningSequence": "GR", "SpoilingState": True},
    "TB1TFL": {"FlipAngle": {"anat": 8, "famp": 80}, "RepetitionTimePreparation": 5.0,
               "PulseSequenceType": "tfl_b1map", "ScanningSequence": "GR"},
    "bSSFP": bssfp.PROTOCOL,  # + RFPhaseIncrement per collection (bssfp.phase_increments)
    "DESS": synth_kspace.DESS_PROTOCOL,
}
#: rigid motion of ``motion=True``: flip index -> rotation (deg about x, y, z), translation (mm)
DEFAULT_MOTION = {2: {"rotation": (0.0, 1.0, 2.0), "translation": (1.5, -1.0, 0.5)}}
_LABEL = re.compile(r"^[a-zA-Z0-9]+$")
_PER_FILE = ("EchoTime", "FlipAngle", "RepetitionTimeExcitation")


def write_dataset(out_dir, *, subjects=("01",), sessions=None, snr=None, downsample=4,
                  n_slices=None, seed=0, modalities=MODALITIES, b1_downsample=2, motion=None,
                  bssfp_cycles=(12,), bssfp_parts="magphase", kspace=None, overwrite=False):
    """Write a BIDS dataset (and ``derivatives/truth``) of the phantom; return its path.

    ``subjects``/``sessions``: labels (subject ``i`` is the phantom of seed ``seed + i``, the same
    in every session). ``snr``: see the module docstring (None: noise-free). ``motion``: None,
    True (:data:`DEFAULT_MOTION`) or ``{flip_index: {"rotation": deg xyz, "translation": mm}}``,
    the VFA flip moved rigidly about the brain centre. ``bssfp_cycles``: phase cycles of each
    bSSFP collection (``acq-pc<N>``), ``bssfp_parts``: ``"magphase"``, ``"realimag"`` or
    ``"mag"`` (when ``"bSSFP"`` is in ``modalities``). ``kspace``: None, True or a dict of
    :data:`.kspace.DEFAULTS` keys (contrasts, acceleration, coils, ...). ``overwrite`` replaces a previous
    synthetic dataset; any other non-empty ``out_dir`` is refused. The dataset is written
    beside ``out_dir`` and renamed into place when complete.
    """
    out_dir = Path(out_dir).absolute()
    subjects = [_label(s, "sub") for s in subjects]
    sessions = [None] if not sessions else [_label(s, "ses") for s in sessions]
    modalities = tuple(modalities)
    unknown = sorted(set(modalities) - set(ALL_MODALITIES))
    if unknown or not modalities:
        raise ValueError(f"unknown modalities {unknown}; choose from {', '.join(ALL_MODALITIES)}")
    pc = bssfp.check(bssfp_cycles, bssfp_parts) if "bSSFP" in modalities else None
    motion = _check_motion(motion, len(PROTOCOL["VFA"]["FlipAngle"]))
    if snr is not None and not snr > 0:
        raise ValueError(f"snr must be positive or None, got {snr}")
    kspace = synth_kspace.check_settings(kspace, snr)
    _check_target(out_dir, overwrite)
    settings = dict(subjects=subjects, sessions=sessions, snr=snr, downsample=downsample,
                    n_slices=n_slices, seed=seed, modalities=modalities,
                    b1_downsample=b1_downsample, motion=motion)
    if pc:
        settings.update(bssfp_cycles=pc[0], bssfp_parts=pc[1])
    if kspace:
        settings["kspace"] = kspace
    tmp = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write_top(tmp, subjects, modalities, settings)
        for i, sub in enumerate(subjects):
            full = make_phantom(downsample=downsample, n_slices=None, seed=seed + i)
            for ses in sessions:
                _write_session(tmp, full, sub, ses, modalities, snr=snr, n_slices=n_slices,
                               seed=seed, b1_downsample=b1_downsample, motion=motion, pc=pc,
                               kspace=kspace)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _write_session(root, full, sub, ses, modalities, *, snr, n_slices, seed, b1_downsample,
                   motion, pc=None, kspace=None):
    anat = full.slab(n_slices)
    b1grid = anat.coarsen(b1_downsample)
    prefix = f"sub-{sub}" + (f"_ses-{ses}" if ses else "")
    folder = Path(f"sub-{sub}") / (f"ses-{ses}" if ses else "")
    record = {"seed": seed, "snr": snr, "noise_sigma": {}, "motion": {},
              "grid": {"anat": _grid(anat), "b1": _grid(b1grid)}}
    n_flips = len(PROTOCOL["VFA"]["FlipAngle"]) if "VFA" in modalities else 0
    names = [f"flip-{k}_VFA" for k in range(1, n_flips + 1)]
    names += [f"{e}_bSSFP" for n in (pc[0] if pc else ()) for e in bssfp.entities(n, pc[1])]
    b1_targets = [f"bids::{(folder / 'anat' / f'{prefix}_{n}.nii.gz').as_posix()}" for n in names]
    for mod in modalities:
        grid, dtype = (b1grid, "fmap") if mod.startswith("TB1") else (anat, "anat")
        if mod == "bSSFP":
            for rel, meta, data in bssfp.files(grid, folder / dtype, prefix, *pc, snr=snr,
                                               seed=seed, ref=_wm(grid), record=record):
                _save(root / rel, data, grid.affine, {**_SCANNER, **meta})
            continue
        if mod == "VFA":
            vols = _vfa(grid, full=full, n_slices=n_slices, motion=motion)
            for k, (_, meta, _) in enumerate(vols, 1):
                if k in motion:
                    record["motion"][f"{prefix}_flip-{k}_VFA"] = meta.pop("_motion")
        else:
            vols = _SIMULATE[mod](grid, PROTOCOL[mod])
        sigma = None if snr is None else float(np.mean(vols[0][2][_wm(grid)]) / snr)
        for entity, meta, clean in vols:
            rel = (folder / dtype / f"{prefix}_{entity}_{mod}.nii.gz").as_posix()
            data = clean
            if snr is not None and entity == "acq-famp":  # a flip-angle map: its own scale
                sigma = float(np.mean(clean[_wm(grid)]) / snr)
            if sigma is not None:
                rng = np.random.default_rng([seed, zlib.crc32(rel.encode())])
                data = _add_noise(clean, sigma, rng, rician=entity != "acq-famp")
                record["noise_sigma"][rel] = sigma
            if dtype == "fmap" and b1_targets:
                meta = {**meta, "IntendedFor": b1_targets}
            _save(root / rel, data, grid.affine, meta)
    if kspace:
        clean = {m: _complete_volumes(m, anat) for m in kspace["contrasts"]}
        synth_kspace.write_session(root, anat, folder, prefix, clean, kspace, seed=seed,
                                   ref=_wm(anat), record=record, save=_save)
    _write_truth(root / "derivatives" / "truth", anat, folder, prefix, record)


# --- one function per collection: noise-free volumes as a list of (entity, sidecar, array) ---

def _meta(p, **extra):
    return {**_SCANNER, **{k: v for k, v in p.items() if k not in _PER_FILE}, **extra}


def _multiecho(grid: Phantom, p, time):
    te = np.asarray(p["EchoTime"])
    sig = monoexp(grid.pd[..., None], grid.safe(time)[..., None], te)
    meta = _meta(p, **{k: p[k] for k in ("FlipAngle", "RepetitionTimeExcitation")})
    return [(f"echo-{i + 1}", {**meta, "EchoTime": t}, sig[..., i])
            for i, t in enumerate(p["EchoTime"])]


def _vfa(grid: Phantom, *, full, n_slices, motion):
    """VFA flips (sidecars hold FlipAngle only: the rest is in /VFA.json); moved flips are
    simulated on all slices, moved, then cut to the slab (``_motion`` holds the transform)."""
    p = PROTOCOL["VFA"]
    tr = p["RepetitionTimeExcitation"]
    out = []
    for k, fa in enumerate(p["FlipAngle"], 1):
        meta = {"FlipAngle": fa}
        if k in motion:
            still = spgr(full.pd, full.safe("t1"), np.deg2rad(fa), tr, full.b1)
            img, world = _move(still, full.affine, full.fields.centre, **motion[k])
            k0 = slab_start(full.shape[2], n_slices)
            sig = img[..., k0:k0 + grid.shape[2]]
            meta["_motion"] = {**motion[k], "world_matrix": world}
        else:
            sig = spgr(grid.pd, grid.safe("t1"), np.deg2rad(fa), tr, grid.b1)
        out.append((f"flip-{k}", meta, sig))
    return out


def _dam(grid: Phantom, p):
    tr = p["RepetitionTimeExcitation"]
    sig = dam_signals(grid.pd, grid.safe("t1"), np.deg2rad(p["FlipAngle"][0]), tr, grid.b1)
    return [(f"flip-{i + 1}", _meta(p, FlipAngle=a, RepetitionTimeExcitation=tr), sig[..., i])
            for i, a in enumerate(p["FlipAngle"])]


def _afi(grid: Phantom, p):
    trs = p["RepetitionTimeExcitation"]
    sig = afi_signals(grid.pd, grid.safe("t1"), np.deg2rad(p["FlipAngle"]), *trs, grid.b1)
    return [(f"acq-tr{i + 1}", _meta(p, FlipAngle=p["FlipAngle"], RepetitionTimeExcitation=tr),
             sig[..., i]) for i, tr in enumerate(trs)]


def _tfl(grid: Phantom, p):
    fa = p["FlipAngle"]
    anat = spgr(grid.pd, grid.safe("t1"), np.deg2rad(fa["anat"]), p["RepetitionTimePreparation"],
                grid.b1)
    head = (grid.gm + grid.wm + grid.csf) > 0.1
    famp = np.where(head, tfl_famp(np.deg2rad(fa["famp"]), grid.b1), 0)
    return [("acq-anat", _meta(p, FlipAngle=fa["anat"]), anat),
            ("acq-famp", _meta(p, FlipAngle=fa["famp"]), famp)]


_SIMULATE = {"MESE": lambda g, p: _multiecho(g, p, "t2"),
             "MEGRE": lambda g, p: _multiecho(g, p, "t2star"),
             "DESS": lambda g, p: [(e, _meta(p, **m), s) for e, m, s in
                                   synth_kspace.dess_volumes(g, p)],
             "TB1DAM": _dam, "TB1AFI": _afi, "TB1TFL": _tfl}


def _complete_volumes(mod, grid):
    """Noise-free volumes with complete sidecars (VFA: TR included, no motion)."""
    if mod != "VFA":
        return _SIMULATE[mod](grid, PROTOCOL[mod])
    p = PROTOCOL["VFA"]
    return [(e, _meta(p, RepetitionTimeExcitation=p["RepetitionTimeExcitation"], **m), s)
            for e, m, s in _vfa(grid, full=None, n_slices=None, motion={})]


def _move(volume, affine, centre, rotation=(0, 0, 0), translation=(0, 0, 0)):
    """Image of the object moved by ``x -> R (x - c) + c + t`` (linear interpolation)."""
    rot = Rotation.from_euler("xyz", rotation, degrees=True).as_matrix()
    c, t = np.asarray(centre), np.asarray(translation, float)
    world = np.eye(4)
    world[:3, :3], world[:3, 3] = rot, c + t - rot @ c
    pull = np.linalg.inv(affine) @ np.linalg.inv(world) @ affine  # output voxel -> input voxel
    img = ndimage.affine_transform(volume, pull[:3, :3], pull[:3, 3], order=1, mode="constant")
    return img.astype(np.float32), world.round(6).tolist()


def _add_noise(clean, sigma, rng, rician=True):
    if rician:
        n = rng.standard_normal((2,) + clean.shape)
        return np.hypot(clean + sigma * n[0], sigma * n[1]).astype(np.float32)
    noisy = clean + sigma * rng.standard_normal(clean.shape)
    return np.where(clean > 0, np.maximum(noisy, 0), 0).astype(np.float32)


def _wm(grid):
    """Reference region of the noise level: pure WM (else WM-labelled, else all water)."""
    for m in (grid.pure & (grid.labels == 3), grid.labels == 3, grid.mask):
        if m.sum() >= 5:
            return m
    return np.ones(grid.shape, bool)


def _save(path, data, affine, meta):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nb.Nifti1Image(np.asarray(data, np.float32), affine)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(affine, 1)
    img.set_sform(affine, 1)
    img.to_filename(path)
    if meta is not None:
        _json(path.with_name(path.name.replace(".nii.gz", ".json")), meta)


def _json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")


def _write_truth(root, ph: Phantom, folder, prefix, record):
    units = {"T1map": "s", "T2map": "s", "T2starmap": "s", "M0map": "arbitrary", "TB1map": "1"}
    desc = {"M0map": "proton density as the fraction of pure water (amplitude of MESE/MEGRE)",
            "TB1map": "B1+ as a fraction of the nominal flip angle (1 = nominal), not percent"}
    anat = root / folder / "anat"
    for suffix, data in ph.maps().items():
        meta = {"Units": units[suffix], **({"Description": desc[suffix]} if suffix in desc else {})}
        _save(anat / f"{prefix}_{suffix}.nii.gz", data, ph.affine, meta)
    _save(anat / f"{prefix}_dseg.nii.gz", ph.labels, ph.affine, None)
    (anat / f"{prefix}_dseg.tsv").write_text(
        "index\tname\n" + "".join(f"{k}\t{v}\n" for k, v in LABELS.items() if k))
    for name in ("GM", "WM", "CSF"):
        _save(anat / f"{prefix}_label-{name}_probseg.nii.gz", getattr(ph, name.lower()),
              ph.affine, None)
    _save(anat / f"{prefix}_desc-brain_mask.nii.gz", ph.mask.astype(np.uint8), ph.affine,
          {"Description": "voxels with any water (M0map > 0)"})
    _save(anat / f"{prefix}_desc-pure_mask.nii.gz", ph.pure.astype(np.uint8), ph.affine,
          {"Description": "one tissue fills more than 90 % of the voxel"})
    _save(root / folder / "fmap" / f"{prefix}_fieldmap.nii.gz", ph.off_resonance, ph.affine,
          {"Units": "Hz", "Description": "off-resonance frequency (in the bSSFP signals only, "
                                     "as theta = 2 pi df TR)"})
    _json(root / folder / f"{prefix}_simulation.json",
          {**record, "tissues": TISSUES, "fields": _fields_dict(ph.fields)})


def _write_top(root, subjects, modalities, settings):
    root.mkdir(parents=True)
    gen = [{"Name": "qmriprep.synth", "Version": __version__}]
    _json(root / "dataset_description.json", {
        "Name": "qmriprep synthetic qMRI brain phantom", "BIDSVersion": "1.9.0",
        "DatasetType": "raw",
        "License": "Simulated data free to use; anatomy from the MNI ICBM152 2009a template, "
                   "keep its copyright notice (see README)",
        "Authors": ["qmriprep.synth"], "GeneratedBy": gen,
        "HowToAcknowledge": "Cite the MNI ICBM152 2009a template "
                            "(Fonov et al. 2011, NeuroImage 54:313)."})
    _json(root / "derivatives" / "truth" / "dataset_description.json", {
        "Name": "Ground truth of the qmriprep synthetic phantom", "BIDSVersion": "1.9.0",
        "DatasetType": "derivative", "GeneratedBy": gen,
        "SourceDatasets": [
            {"URL": "https://www.bic.mni.mcgill.ca/ServicesAtlases/ICBM152NLin2009"}]})
    (root / "participants.tsv").write_text(
        "participant_id\n" + "".join(f"sub-{s}\n" for s in subjects))
    _json(root / "participants.json", {"participant_id": {"Description": "synthetic subject"}})
    (root / ".bidsignore").write_text("*_bSSFP.*\n*_DESS.*\nsourcedata/\n")
    if "VFA" in modalities:
        vfa = PROTOCOL["VFA"]
        _json(root / "VFA.json",
              {**_SCANNER, **{k: v for k, v in vfa.items() if k != "FlipAngle"}})
    (root / "README").write_text(_README.format(settings=json.dumps(settings, default=str)))


def _check_target(out_dir, overwrite):
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir}: exists and is not a folder")
    if not out_dir.exists() or not any(out_dir.iterdir()):
        return
    desc = out_dir / "dataset_description.json"
    ours = False
    if desc.is_file():
        try:
            ours = any(g.get("Name") == "qmriprep.synth"
                       for g in json.loads(desc.read_text()).get("GeneratedBy", []))
        except (ValueError, AttributeError):
            ours = False
    if not overwrite:
        raise FileExistsError(f"{out_dir}: not empty; choose an empty folder or pass "
                              "overwrite=True (--overwrite) to replace a previous synthetic "
                              "dataset")
    if not ours:
        raise FileExistsError(f"{out_dir}: not empty and not a qmriprep.synth dataset; "
                              "refusing to delete it even with overwrite")


def _check_motion(motion, n_flips):
    if motion is None or motion is False:
        return {}
    if motion is True:
        motion = DEFAULT_MOTION
    out = {}
    for k, v in dict(motion).items():
        if not 1 <= int(k) <= n_flips:
            raise ValueError(f"motion: flip index {k} outside 1..{n_flips}")
        extra = set(v) - {"rotation", "translation"}
        if extra:
            raise ValueError(f"motion: unknown keys {sorted(extra)} (use rotation, translation)")
        out[int(k)] = {"rotation": [float(a) for a in v.get("rotation", (0, 0, 0))],
                       "translation": [float(a) for a in v.get("translation", (0, 0, 0))]}
    return out


def _label(s, prefix):
    s = str(s).removeprefix(f"{prefix}-")
    if not _LABEL.match(s):
        raise ValueError(f"{prefix} label {s!r} must be alphanumeric")
    return s


def _grid(ph):
    return {"shape": list(ph.shape), "zooms_mm": list(ph.zooms),
            "affine": np.round(ph.affine, 6).tolist()}


def _fields_dict(fields):
    return json.loads(json.dumps(dataclasses.asdict(fields), default=float))


_README = """\
qmriprep synthetic qMRI brain phantom
=====================================

Simulated by qmriprep.synth, settings:
{settings}

Anatomy: the MNI ICBM152 2009a nonlinear symmetric template as bundled with nilearn
(Fonov et al. 2011, NeuroImage 54:313; Copyright (C) 1993-2009 Louis Collins, McConnell Brain
Imaging Centre, Montreal Neurological Institute, McGill University; used with attribution as
its licence asks).

Every image is a qmriprep.physics signal model of the truth maps in derivatives/truth
(T1map, T2map, T2starmap in s; M0map; TB1map as a fraction; dseg, probseg, masks and an
off-resonance fieldmap in Hz). MESE/MEGRE are ideal mono-exponential decays (their amplitude is
M0map); VFA is SPGR with the B1+ field; TB1DAM/TB1AFI/TB1TFL are simulated on a coarser grid
covering the same field of view. bSSFP (acq-pc<N>: N phase cycles on the 4th axis) is
bssfp_signal of M0map, T1, T2, B1+ and theta = 2 pi df TR (fieldmap) times a smooth receiver
phase (simulation.json); phase in rad. The famp image of TB1TFL is 10 x the actual flip angle in
degrees, relative to the nominal preparation angle in its sidecar FlipAngle (80).
RepetitionTimeExcitation of VFA is given once, in /VFA.json (BIDS inheritance). DESS (echo-1
FISP, echo-2 PSIF) is dess_signals (Sveinsson 2017 ratio) of M0map, T1, T2 and B1+.

Raw k-space (when simulated): multi-coil ISMRMRD files under sourcedata/kspace, one per image,
named like it; the fully sampled k-space (rec-fullysampled) and the noise-free coil-combined
images (rec-truth) are in derivatives/truth (see qmriprep.synth.kspace).

Noise: per collection, sigma = (mean noise-free first volume in pure white matter) / SNR; Rician
on magnitude images, Gaussian inside the head on famp; bSSFP complex Gaussian with
sigma = 0.074 m0_ref / (sqrt(2) SNR), m0_ref the mean M0map of pure white matter. Per-file
noise levels and any simulated motion are listed in
derivatives/truth/sub-*/[ses-*/]*_simulation.json.
"""
