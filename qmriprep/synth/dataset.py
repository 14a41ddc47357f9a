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
- ``MRF`` (not in the default :data:`MODALITIES`): a 4-D FISP fingerprinting series of
  ``mrf_frames`` frames, optionally undersampled frame by frame (:mod:`.mrf`);
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
import functools
import json
import os
import re
import shutil
import zlib
from pathlib import Path

import numpy as np

from .. import __version__
from . import bssfp
from . import mrf as synth_mrf
from . import kspace as synth_kspace
from . import weighted as synth_weighted
from .contrasts import PROTOCOL, SCANNER, complete_volumes, vfa_volumes, volumes
from .files import save_nifti, write_json
from .phantom import LABELS, TISSUES, Phantom, make_phantom

MODALITIES = ("MESE", "MEGRE", "VFA", "TB1DAM", "TB1AFI", "TB1TFL")
#: every modality write_dataset can simulate (bSSFP only on request)
ALL_MODALITIES = MODALITIES + ("bSSFP", "DESS", "MRF", "weighted")
#: rigid motion of ``motion=True``: flip index -> rotation (deg about x, y, z), translation (mm)
DEFAULT_MOTION = {2: {"rotation": (0.0, 1.0, 2.0), "translation": (1.5, -1.0, 0.5)}}
_LABEL = re.compile(r"^[a-zA-Z0-9]+$")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What :func:`write_dataset` simulates; checked and normalised on construction.

    ``subjects``/``sessions``: labels, ``sub-``/``ses-`` prefixes dropped (subject ``i`` is the
    phantom of seed ``seed + i``, the same in every session; None: no session level). ``snr``:
    see the module docstring (None: noise-free). ``downsample``: voxel size in mm (integer factor
    of the 1 mm MNI grid); ``n_slices``: central axial slices kept (None: all). ``modalities``:
    of :data:`ALL_MODALITIES`. ``b1_downsample``: the B1 grid is this many times coarser.
    ``motion``: None, True (:data:`DEFAULT_MOTION`) or ``{flip_index: {"rotation": deg xyz,
    "translation": mm}}``, the VFA flip moved rigidly about the brain centre (kept as that dict,
    ``{}`` for none). ``bssfp_cycles``: phase cycles of each bSSFP collection (``acq-pc<N>``),
    ``bssfp_parts``: ``"magphase"``, ``"realimag"`` or ``"mag"`` (checked when ``"bSSFP"`` is in
    ``modalities``). ``kspace``: None, True or a dict of :data:`.kspace.DEFAULTS` keys
    (contrasts, acceleration, coils, ...), kept complete (:func:`.kspace.check_settings`).
    """

    subjects: tuple[str, ...] = ("01",)
    sessions: tuple[str, ...] | None = None
    snr: float | None = None
    downsample: int = 4
    n_slices: int | None = None
    seed: int = 0
    modalities: tuple[str, ...] = MODALITIES
    b1_downsample: int = 2
    motion: dict | bool | None = None
    bssfp_cycles: tuple[int, ...] = (12,)
    bssfp_parts: str = "magphase"
    kspace: dict | bool | None = None
    mrf_frames: int = synth_mrf.N_FRAMES
    mrf_undersampling: float = 1.0
    warp_mm: float = 0.0           # per-subject smooth deformation (:func:`.weighted.deform`)
    label_thickness: float = 3.5   # slice thickness (mm) of the "weighted" modality's label maps
    label_noise: float = 0.0       # relative noise of those label maps (:mod:`.weighted`)
    flair: bool = False            # the "weighted" modality with a FLAIR image

    def __post_init__(self):
        put = functools.partial(object.__setattr__, self)
        put("subjects", tuple(_label(s, "sub") for s in self.subjects))
        put("sessions", tuple(_label(s, "ses") for s in self.sessions) if self.sessions else None)
        put("modalities", tuple(self.modalities))
        unknown = sorted(set(self.modalities) - set(ALL_MODALITIES))
        if unknown or not self.modalities:
            raise ValueError(f"unknown modalities {unknown}; choose from {', '.join(ALL_MODALITIES)}")
        if not 0 <= self.label_noise < 1:
            raise ValueError(f"label_noise must be in [0, 1), got {self.label_noise}")
        if "bSSFP" in self.modalities:
            cycles, parts = bssfp.check(self.bssfp_cycles, self.bssfp_parts)
            put("bssfp_cycles", cycles)
            put("bssfp_parts", parts)
        put("motion", _check_motion(self.motion, len(PROTOCOL["VFA"]["FlipAngle"])))
        if self.snr is not None and not self.snr > 0:
            raise ValueError(f"snr must be positive or None, got {self.snr}")
        put("kspace", synth_kspace.check_settings(self.kspace, self.snr))


def write_dataset(out_dir, spec: DatasetSpec | None = None, *, overwrite=False):
    """Write the BIDS dataset (and ``derivatives/truth``) of :class:`DatasetSpec` ``spec``
    (default: ``DatasetSpec()``); return its path.

    ``overwrite`` replaces a previous synthetic dataset; any other non-empty ``out_dir`` is
    refused. The dataset is written beside ``out_dir`` and renamed into place when complete.
    """
    spec = DatasetSpec() if spec is None else spec
    out_dir = Path(out_dir).absolute()
    _check_target(out_dir, overwrite)
    tmp = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write_top(tmp, spec)
        for i, sub in enumerate(spec.subjects):
            full = make_phantom(downsample=spec.downsample, n_slices=None, seed=spec.seed + i)
            full = synth_weighted.deform(full, spec.warp_mm, spec.seed + i)
            for ses in spec.sessions or (None,):
                _write_session(tmp, full, spec, sub, ses)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _write_session(root, full: Phantom, spec: DatasetSpec, sub, ses):
    anat = full.slab(spec.n_slices)
    b1grid = anat.coarsen(spec.b1_downsample)
    prefix = f"sub-{sub}" + (f"_ses-{ses}" if ses else "")
    folder = Path(f"sub-{sub}") / (f"ses-{ses}" if ses else "")
    record = {"seed": spec.seed, "snr": spec.snr, "noise_sigma": {}, "motion": {},
              "grid": {"anat": _grid(anat), "b1": _grid(b1grid)}}
    n_flips = len(PROTOCOL["VFA"]["FlipAngle"]) if "VFA" in spec.modalities else 0
    cycles = spec.bssfp_cycles if "bSSFP" in spec.modalities else ()
    names = [f"flip-{k}_VFA" for k in range(1, n_flips + 1)]
    names += [f"{e}_bSSFP" for n in cycles for e in bssfp.entities(n, spec.bssfp_parts)]
    names += ["MRF"] if "MRF" in spec.modalities else []
    b1_targets = [f"bids::{(folder / 'anat' / f'{prefix}_{n}.nii.gz').as_posix()}" for n in names]
    for mod in spec.modalities:
        grid, dtype = (b1grid, "fmap") if mod.startswith("TB1") else (anat, "anat")
        if mod == "MRF":
            synth_mrf.write(root, grid, (folder / dtype / f"{prefix}_MRF.nii.gz").as_posix(), spec, record)
            continue
        if mod == "weighted":  # T1w (MPRAGE), T2w (TSE) and derivatives/lowres labels
            synth_weighted.write(root, grid, folder, prefix, spec, record, _add_noise)
            continue
        if mod == "bSSFP":
            stem = f"{(folder / dtype).as_posix()}/{prefix}"
            for rel, meta, data in bssfp.files(grid, stem, cycles, spec.bssfp_parts, snr=spec.snr,
                                               seed=spec.seed, ref=grid.noise_reference(),
                                               record=record):
                save_nifti(root / rel, data, grid.affine, {**SCANNER, **meta})
            continue
        if mod == "VFA":
            vols = vfa_volumes(grid, full=full, n_slices=spec.n_slices, motion=spec.motion)
            for k, (_, meta, _) in enumerate(vols, 1):
                if k in spec.motion:
                    record["motion"][f"{prefix}_flip-{k}_VFA"] = meta.pop("_motion")
        else:
            vols = volumes(mod, grid)
        if mod == "MESE" and spec.kspace and "MESE" in spec.kspace["contrasts"]:
            vols = vols[:spec.kspace["mese_echoes"]]  # the image series the k-space files have
        snr, ref = spec.snr, grid.noise_reference()
        sigma = None if snr is None else float(np.mean(vols[0][2][ref]) / snr)
        for entity, meta, clean in vols:
            rel = (folder / dtype / f"{prefix}_{entity}_{mod}.nii.gz").as_posix()
            data = clean
            if snr is not None and entity == "acq-famp":  # a flip-angle map: its own scale
                sigma = float(np.mean(clean[ref]) / snr)
            if sigma is not None:
                rng = np.random.default_rng([spec.seed, zlib.crc32(rel.encode())])
                data = _add_noise(clean, sigma, rng, rician=entity != "acq-famp")
                record["noise_sigma"][rel] = sigma
            if dtype == "fmap" and b1_targets:
                meta = {**meta, "IntendedFor": b1_targets}
            save_nifti(root / rel, data, grid.affine, meta)
    if spec.kspace:
        clean = {m: complete_volumes(m, anat) for m in spec.kspace["contrasts"]}
        synth_kspace.write_session(root, anat, folder, prefix, clean, spec.kspace, seed=spec.seed,
                                   record=record)
    _write_truth(root / "derivatives" / "truth", anat, folder, prefix, record)


def _add_noise(clean, sigma, rng, rician=True):
    if rician:
        n = rng.standard_normal((2,) + clean.shape)
        return np.hypot(clean + sigma * n[0], sigma * n[1]).astype(np.float32)
    noisy = clean + sigma * rng.standard_normal(clean.shape)
    return np.where(clean > 0, np.maximum(noisy, 0), 0).astype(np.float32)


def _write_truth(root, ph: Phantom, folder, prefix, record):
    units = {"T1map": "s", "T2map": "s", "T2starmap": "s", "M0map": "arbitrary", "TB1map": "1"}
    desc = {"M0map": "proton density as the fraction of pure water (amplitude of MESE/MEGRE)",
            "TB1map": "B1+ as a fraction of the nominal flip angle (1 = nominal), not percent"}
    anat = root / folder / "anat"
    for suffix, data in ph.maps().items():
        meta = {"Units": units[suffix], **({"Description": desc[suffix]} if suffix in desc else {})}
        save_nifti(anat / f"{prefix}_{suffix}.nii.gz", data, ph.affine, meta)
    save_nifti(anat / f"{prefix}_dseg.nii.gz", ph.labels, ph.affine, None)
    (anat / f"{prefix}_dseg.tsv").write_text(
        "index\tname\n" + "".join(f"{k}\t{v}\n" for k, v in LABELS.items() if k))
    for name in ("GM", "WM", "CSF"):
        save_nifti(anat / f"{prefix}_label-{name}_probseg.nii.gz", getattr(ph, name.lower()),
                   ph.affine, None)
    save_nifti(anat / f"{prefix}_desc-brain_mask.nii.gz", ph.mask.astype(np.uint8), ph.affine,
               {"Description": "voxels with any water (M0map > 0)"})
    save_nifti(anat / f"{prefix}_desc-pure_mask.nii.gz", ph.pure.astype(np.uint8), ph.affine,
               {"Description": "one tissue fills more than 90 % of the voxel"})
    save_nifti(root / folder / "fmap" / f"{prefix}_fieldmap.nii.gz", ph.off_resonance, ph.affine,
               {"Units": "Hz", "Description": "off-resonance frequency (in the bSSFP signals only, "
                                               "as theta = 2 pi df TR)"})
    write_json(root / folder / f"{prefix}_simulation.json",
               {**record, "tissues": TISSUES, "fields": _fields_dict(ph.fields)})


def _write_top(root, spec: DatasetSpec):
    root.mkdir(parents=True)
    gen = [{"Name": "qmriprep.synth", "Version": __version__}]
    write_json(root / "dataset_description.json", {
        "Name": "qmriprep synthetic qMRI brain phantom", "BIDSVersion": "1.9.0",
        "DatasetType": "raw",
        "License": "Simulated data free to use; anatomy from the MNI ICBM152 2009a template, "
                   "keep its copyright notice (see README)",
        "Authors": ["qmriprep.synth"], "GeneratedBy": gen,
        "HowToAcknowledge": "Cite the MNI ICBM152 2009a template "
                            "(Fonov et al. 2011, NeuroImage 54:313)."})
    write_json(root / "derivatives" / "truth" / "dataset_description.json", {
        "Name": "Ground truth of the qmriprep synthetic phantom", "BIDSVersion": "1.9.0",
        "DatasetType": "derivative", "GeneratedBy": gen,
        "SourceDatasets": [
            {"URL": "https://www.bic.mni.mcgill.ca/ServicesAtlases/ICBM152NLin2009"}]})
    (root / "participants.tsv").write_text(
        "participant_id\n" + "".join(f"sub-{s}\n" for s in spec.subjects))
    write_json(root / "participants.json", {"participant_id": {"Description": "synthetic subject"}})
    (root / ".bidsignore").write_text("*_bSSFP.*\n*_DESS.*\nsourcedata/\n"
                                      + ("*_MRF.*\n" if "MRF" in spec.modalities else ""))
    if "VFA" in spec.modalities:
        vfa = PROTOCOL["VFA"]
        write_json(root / "VFA.json",
                   {**SCANNER, **{k: v for k, v in vfa.items() if k != "FlipAngle"}})
    (root / "README").write_text(_README.format(settings=json.dumps(_settings(spec), default=str)))


def _settings(spec: DatasetSpec):
    """The settings line of the README (no session level: ``"sessions": [null]``)."""
    out = dict(subjects=list(spec.subjects), sessions=list(spec.sessions or [None]), snr=spec.snr,
               downsample=spec.downsample, n_slices=spec.n_slices, seed=spec.seed,
               modalities=spec.modalities, b1_downsample=spec.b1_downsample, motion=spec.motion)
    if "bSSFP" in spec.modalities:
        out.update(bssfp_cycles=spec.bssfp_cycles, bssfp_parts=spec.bssfp_parts)
    if spec.kspace:
        out["kspace"] = spec.kspace
    if "MRF" in spec.modalities:
        out.update(mrf_frames=spec.mrf_frames, mrf_undersampling=spec.mrf_undersampling)
    return out


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
