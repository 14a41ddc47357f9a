"""Clinical weighted images with low-resolution label maps (seed 002): MPRAGE T1w, TSE T2w and
(``flair``) FLAIR.

``T1w`` is :func:`~qmriprep.physics.mprage.mprage_signal`, ``T2w``
:func:`~qmriprep.physics.tse.tse_signal` and ``FLAIR`` :func:`~qmriprep.physics.tse.flair_signal`
of the phantom's M0 (PD), T1 and T2 (B1+ = 1), at the phantom's grid (1 mm with ``downsample=1``),
with Rician noise at the dataset's SNR (in each image's WM). The label maps
a site would have (``T1map``, ``T2map``, ``M0map``) are written to ``derivatives/lowres`` on a
grid ``label_thickness`` mm thick along the last (slice) axis: each thick voxel averages the 1 mm
voxels it covers (fractions of voxels at its edges) with the partial-volume rule of
:mod:`.phantom` (``PD`` averaged, rates ``PD``-weighted); training resamples them back. With
``label_noise`` > 0 each thick voxel is multiplied by ``1 + label_noise N(0, 1)`` (independent per
map and voxel): labels that are fits of noisy data, as a site's are.

:func:`deform` gives every subject its own anatomy: a smooth random displacement field (Gaussian
filtered noise, ``warp_mm`` root-mean-square) and a random scaling of up to 4 % per axis.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..physics.mprage import MPRAGEProtocol, mprage_signal
from ..physics.tse import FLAIRProtocol, TSEProtocol, flair_signal, tse_signal
from .files import save_nifti, write_json

#: seed 002's MPRAGE (TR 1900 ms, TI 900 ms, 9 deg; 176 readout pulses of 7.1 ms spacing assumed)
MPRAGE = MPRAGEProtocol(tr_prep=1.9, inversion_time=0.9, tr=0.0071, flip_angle=math.radians(9),
                        n_readout=176)
#: seed 002's TSE (TR 7010 ms, TE 93 ms; echo train of 16 echoes, 11.6 ms spacing assumed)
TSE = TSEProtocol(tr=7.01, echo_time=0.093, echo_train_length=16, echo_spacing=0.093 / 8)
#: a clinical 3 T FLAIR (TR 9000 ms, TI 2500 ms: CSF of T1 4.3 s near its null, TE 90 ms, 16 echoes)
FLAIR = FLAIRProtocol(tr=9.0, echo_time=0.09, echo_train_length=16, echo_spacing=0.09 / 8,
                      inversion_time=2.5)
#: the echo time of the MPRAGE readout (sidecar only; not in the model)
MPRAGE_TE = 0.00293
LABELS_FOLDER = "lowres"


def sidecars(mprage: MPRAGEProtocol = MPRAGE, tse: TSEProtocol = TSE,
             flair: FLAIRProtocol = FLAIR) -> dict[str, dict]:
    """BIDS sidecar fields (s, deg) of the three protocols, by suffix."""
    return {
        "T1w": {"PulseSequenceType": "MPRAGE", "MRAcquisitionType": "3D",
                "RepetitionTimePreparation": mprage.tr_prep, "InversionTime": mprage.inversion_time,
                "RepetitionTimeExcitation": mprage.tr, "FlipAngle": math.degrees(mprage.flip_angle),
                "EchoTrainLength": mprage.n_readout, "EchoTime": MPRAGE_TE},
        "T2w": {"PulseSequenceType": "TSE", "MRAcquisitionType": "3D", "RepetitionTime": tse.tr,
                "EchoTime": tse.echo_time, "EchoTrainLength": tse.echo_train_length,
                "EchoSpacing": tse.echo_spacing, "FlipAngle": 180.0},
        "FLAIR": {"PulseSequenceType": "TSE", "ScanningSequence": "SE_IR", "MRAcquisitionType": "3D",
                  "RepetitionTime": flair.tr, "InversionTime": flair.inversion_time,
                  "EchoTime": flair.echo_time, "EchoTrainLength": flair.echo_train_length,
                  "EchoSpacing": flair.echo_spacing, "FlipAngle": 180.0},
    }


def deform(ph, warp_mm: float, seed: int):
    """The phantom resampled through a smooth random deformation (module docstring)."""
    if warp_mm <= 0:
        return ph
    rng = np.random.default_rng([seed, 2])
    shape = np.array(ph.shape)
    coarse = [ndimage.gaussian_filter(rng.standard_normal(tuple(-(-shape // 4))), 3.0) for _ in range(3)]
    disp = [ndimage.zoom(c / max(c.std(), 1e-12) * warp_mm, shape / np.array(c.shape), order=1)
            for c in coarse]
    centre = (shape - 1) / 2
    scale = 1 + rng.uniform(-0.04, 0.04, 3)
    idx = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij", sparse=True)
    coords = [centre[i] + (idx[i] - centre[i]) * scale[i] + disp[i][tuple(slice(0, n) for n in shape)]
              for i in range(3)]
    arrays = {f: ndimage.map_coordinates(getattr(ph, f), coords, order=1, mode="constant")
              for f in ("gm", "wm", "csf", "pd", "t1", "t2", "t2star")}
    return dataclasses.replace(ph, **{k: v.astype(np.float32) for k, v in arrays.items()})


def lowres_maps(ph, thickness: float):
    """``({"T1map", "T2map", "M0map"}, affine)`` on slices ``thickness`` mm thick (last axis)."""
    nz, dz = ph.shape[2], ph.zooms[2]
    step = thickness / dz
    edges = np.arange(0, nz + 1e-6, step)  # whole slabs only (a thinner remainder is dropped)
    pd = _slab_mean(ph.pd, edges)
    out = {"M0map": pd}
    for suffix, name in (("T1map", "t1"), ("T2map", "t2")):
        rate = _slab_mean(np.where(ph.mask, ph.pd / ph.safe(name), 0), edges)
        out[suffix] = np.where(pd > 0, pd / np.where(rate > 0, rate, 1), 0).astype(np.float32)
    affine = ph.affine @ np.diag([1.0, 1.0, step, 1.0])
    affine[:3, 3] = ph.affine[:3, :3] @ [0, 0, (step - 1) / 2] + ph.affine[:3, 3]
    return out, affine


def _slab_mean(a, edges):
    """Mean of ``a`` over ``[edges[k], edges[k+1])`` along the last axis, fractions at the edges."""
    cum = np.concatenate([np.zeros(a.shape[:2] + (1,)), np.cumsum(a, axis=2, dtype=np.float64)], 2)
    lo, frac = np.floor(edges).astype(int), edges - np.floor(edges)
    hi = np.minimum(lo + 1, a.shape[2])
    at = cum[..., lo] + frac * (cum[..., hi] - cum[..., lo])
    return (np.diff(at, axis=2) / np.diff(edges)).astype(np.float32)


def write(root: Path, ph, folder: Path, prefix: str, spec, record: dict, add_noise) -> None:
    """``T1w``, ``T2w`` (and ``FLAIR``) of phantom ``ph`` (noise ``add_noise(clean, sigma, rng)`` at
    ``spec.snr``) and the low-resolution labels."""
    m0, meta, t1, t2 = ph.pd, sidecars(), ph.safe("t1"), ph.safe("t2")
    images = {"T1w": mprage_signal(m0, t1, MPRAGE), "T2w": tse_signal(m0, t1, t2, TSE)}
    if spec.flair:
        images["FLAIR"] = flair_signal(m0, t1, t2, FLAIR)
    ref = ph.noise_reference()
    for suffix, clean in images.items():
        rel = (folder / "anat" / f"{prefix}_{suffix}.nii.gz").as_posix()
        data = clean.astype(np.float32)
        if spec.snr is not None:
            sigma = float(np.mean(clean[ref]) / spec.snr)
            data = add_noise(clean, sigma, np.random.default_rng([spec.seed, zlib.crc32(rel.encode())]))
            record["noise_sigma"][rel] = sigma
        save_nifti(root / rel, data, ph.affine, meta[suffix])
    labels, affine = lowres_maps(ph, spec.label_thickness)
    if spec.label_noise > 0:
        rng = np.random.default_rng([spec.seed, zlib.crc32(prefix.encode()), 3])
        labels = {k: (v * (1 + spec.label_noise * rng.standard_normal(v.shape))).clip(min=0).astype(np.float32)
                  for k, v in labels.items()}
    deriv = root / "derivatives" / LABELS_FOLDER
    if not (deriv / "dataset_description.json").exists():
        write_json(deriv / "dataset_description.json", {
            "Name": f"Low-resolution label maps ({spec.label_thickness:g} mm slices) of the synthetic phantom",
            "BIDSVersion": "1.9.0", "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "qmriprep.synth"}]})
    units = {"T1map": "s", "T2map": "s", "M0map": "arbitrary"}
    for suffix, data in labels.items():
        save_nifti(deriv / folder / "anat" / f"{prefix}_{suffix}.nii.gz", data, affine,
                   {"Units": units[suffix], "Description": f"truth averaged over {spec.label_thickness:g} mm "
                                                          "slices (partial-volume rule)"
                                                          + (f", times 1 + {spec.label_noise:g} N(0, 1)"
                                                             if spec.label_noise > 0 else "")})
