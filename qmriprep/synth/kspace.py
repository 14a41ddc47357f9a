"""Multi-coil raw k-space of the phantom (ISMRMRD, ``sourcedata/kspace``) and the DESS images.

Per image (one echo or flip angle) the coil images are ``S_n exp(i phi) x``: ``x`` the noise-free
signal-model image of :mod:`.dataset` (MESE ``monoexp``, VFA ``spgr`` without motion, DESS
``dess_signals``), ``phi`` the smooth receiver phase of :func:`.bssfp.receiver_phase` (common to
all contrasts), ``S_n`` a head array (:func:`coil_maps`: ``coils`` loops on a cylinder of radius
:data:`COIL_RADIUS_MM` around the brain centre, at evenly spaced angles, alternately
:data:`COIL_Z_MM` above and below the centre, so sensitivities vary along every axis as a real
head array's do; ``1/r`` fall-off and each loop's phase, as ``sigpy.mri.birdcage_maps``), in
world coordinates (mm, independent of the slab), normalised to ``sum_n |S_n|^2 = 1`` (no receive bias: the coil combination ``sum_n conj(S_n) y_n`` is
``exp(i phi) x``). k-space is the centred unitary FFT of the coil images over ``(X, Y)`` per
slice (MESE, 2-D multi-slice) or over ``(X, Y, Z)`` (VFA, DESS, 3-D), readout along X.

Noise: complex Gaussian, ``sigma`` on the real and imaginary parts of every coil's k-space
sample, ``sigma = mean |x| over pure WM of the collection's first image / snr``: with unitary
FFTs and normalised coils the fully sampled coil combination has the noise of the NIfTI images.
Each image draws from ``default_rng([seed, crc32(its sourcedata path)])``.

Sampling (:func:`qmriprep.recon.masks.variable_density_mask`): MESE ``"lines"`` over ``Y``,
the same for every echo and slice (all echoes of an echo train share the phase encode); VFA and
DESS ``"poisson"`` over ``(Y, Z)``, a different pattern per flip angle (separate scans), the
same for both DESS echoes (one scan). Calibration ``min(calib, min(phase-encode sizes) // 2)``
(24 for 48 lines or more), which the mask helper shrinks to half of the acquired points at high
acceleration (e.g. 3 lines for 48 lines at R = 8: too small for ESPIRiT, see
:mod:`qmriprep.recon.coils`). At least ``MIN_CALIB`` central lines (2-D) and, for a 3-D slab
thinner than ``2 MIN_CALIB`` partitions, a centred block of ``MIN_CALIB`` lines (or the whole
axis) are always acquired, so qmriprep accepts the calibration (the sidecar's acceleration is
then below the requested one). The MESE
images of a dataset with MESE k-space have its ``mese_echoes`` echoes (the same series).

Files (``<p>`` = ``sub-<l>[_ses-<l>]``, mirroring ``anat``):

- ``sourcedata/kspace/<folder>/anat/<p>_echo-<i>_MESE.h5``, ``<p>_flip-<i>_VFA.h5``,
  ``<p>_echo-<i>_DESS.h5``, each with a JSON sidecar (BIDS metadata of the header);
- truth: ``derivatives/truth/<folder>/kspace/<p>_rec-fullysampled_<entity>_<SUFFIX>.h5`` (the
  same noisy k-space, every phase encode) and
  ``derivatives/truth/<folder>/anat/<p>_rec-truth_<entity>_<SUFFIX>.nii.gz`` (magnitude of the
  noise-free coil combination).

DESS (also the ``DESS`` NIfTI modality): :data:`DESS_PROTOCOL`, a knee-qDESS-like protocol
(TR 20 ms, TE 6 ms, 25 deg; spoiler 20 mT/m for 1.5 ms, an assumed value of the order of
Sveinsson et al. 2017). Echo 2 (PSIF) is read TE before the next pulse; its ``EchoTime`` is
``2 TR - TE`` (time since the excitation that forms it, as scanners report it).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np

from ..bids.protocols import DESSProtocol
from ..physics.dess import dess_signals
from ..recon.coils import MIN_CALIB
from ..recon.fft import centred_fft
from ..recon.io import header_metadata, write_kspace
from ..recon.masks import acceleration as mask_acceleration
from ..recon.masks import variable_density_mask
from .bssfp import receiver_phase
from .files import save_nifti

_TE, _TR = 0.006, 0.020
#: DESS sidecar fields (BIDS units: s, deg, T/m)
DESS_PROTOCOL = {"EchoTime": [_TE, round(2 * _TR - _TE, 6)], "RepetitionTimeExcitation": _TR,
                 "FlipAngle": 25, "SpoilerGradientAmplitude": 0.02,
                 "SpoilerGradientDuration": 0.0015, "PulseSequenceType": "DESS",
                 "ScanningSequence": "GR", "SequenceVariant": "SS"}
#: contrasts with raw k-space and their layout
LAYOUTS = {"MESE": "2d", "VFA": "3d", "DESS": "3d"}
#: head-array geometry of :func:`coil_maps` (mm from the brain centre)
COIL_RADIUS_MM = 110.0
COIL_Z_MM = 40.0
#: settings of ``DatasetSpec(kspace=...)`` (``snr`` None: the dataset's)
DEFAULTS = {"contrasts": ("MESE", "VFA", "DESS"), "acceleration": 8.0, "coils": 8,
            "mese_echoes": 8, "calib": 24, "snr": None}


def dess_volumes(grid, p=DESS_PROTOCOL):
    """Noise-free DESS echoes ``[(entity, per-file sidecar, array)]`` of the phantom ``grid``."""
    tr = p["RepetitionTimeExcitation"]
    protocol = DESSProtocol(tuple(p["EchoTime"]), tr, np.deg2rad(p["FlipAngle"]),
                            p["SpoilerGradientAmplitude"], p["SpoilerGradientDuration"])
    s1, s2 = dess_signals(grid.pd, grid.safe("t1"), grid.safe("t2"), protocol, b1=grid.b1)
    meta = {"RepetitionTimeExcitation": tr, "FlipAngle": p["FlipAngle"]}
    return [(f"echo-{i + 1}", {**meta, "EchoTime": t}, np.where(grid.mask, s, 0).astype(np.float32))
            for i, (t, s) in enumerate(zip(p["EchoTime"], (s1, s2)))]


def check_settings(kspace, snr):
    """``kspace`` (None, True or a dict of :data:`DEFAULTS` keys) as a complete dict or None."""
    if kspace is None or kspace is False:
        return None
    given = {} if kspace is True else dict(kspace)
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"kspace: unknown settings {unknown}; use {', '.join(DEFAULTS)}")
    out = {**DEFAULTS, **given}
    out["contrasts"] = tuple(out["contrasts"])
    bad = sorted(set(out["contrasts"]) - set(LAYOUTS))
    if bad or not out["contrasts"]:
        raise ValueError(f"kspace: contrasts {bad} not simulated; choose from {', '.join(LAYOUTS)}")
    if not float(out["acceleration"]) >= 1:
        raise ValueError(f"kspace: acceleration must be >= 1, got {out['acceleration']}")
    if not 1 <= int(out["mese_echoes"]) <= 16 or int(out["coils"]) < 1 or int(out["calib"]) < 1:
        raise ValueError("kspace: need 1 <= mese_echoes <= 16, coils >= 1 and calib >= 1")
    out["snr"] = snr if out["snr"] is None else float(out["snr"])
    if out["snr"] is not None and not out["snr"] > 0:
        raise ValueError(f"kspace: snr must be positive, got {out['snr']}")
    out.update(acceleration=float(out["acceleration"]), coils=int(out["coils"]),
               mese_echoes=int(out["mese_echoes"]), calib=int(out["calib"]))
    return out


def coil_maps(grid, n_coils=8):
    """Normalised head-array sensitivities ``(N, X, Y, Z)`` complex64 on the phantom's grid."""
    xyz = grid.centres - np.asarray(grid.fields.centre)
    out = []
    for c in range(n_coils):
        angle = 2 * np.pi * c / n_coils
        pos = np.array([COIL_RADIUS_MM * np.cos(angle), COIL_RADIUS_MM * np.sin(angle),
                        COIL_Z_MM * (1 if c % 2 else -1)])
        d = xyz - pos
        phase = np.arctan2(d[..., 0], -d[..., 1]) - angle
        out.append(COIL_RADIUS_MM / np.linalg.norm(d, axis=-1) * np.exp(1j * phase))
    maps = np.stack(out)
    return (maps / np.sqrt(np.sum(np.abs(maps) ** 2, 0))).astype(np.complex64)


def root_sum_of_squares(clean, maps, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude ``sqrt(sum_c |S_c x + sigma n_c|^2)`` of a series ``clean`` ``(X, Y, Z, n)`` received
    by coils ``maps`` ``(N, X, Y, Z)`` with complex Gaussian noise ``sigma`` per real channel (its
    background is a central chi with 2N degrees of freedom)."""
    total = np.zeros(np.shape(clean))
    for sens in maps:
        noise = rng.standard_normal((2,) + total.shape)
        total += np.abs(sens[..., None] * clean + sigma * (noise[0] + 1j * noise[1])) ** 2
    return np.sqrt(total)


def _mask(mod, shape, settings, key):
    """Acquired phase encodes: ``(Y,)`` lines (2-D) or ``(Y, Z)`` (3-D)."""
    ny, nz = shape[1:]
    seed = zlib.crc32(key.encode())
    if LAYOUTS[mod] == "2d":
        calib = min(settings["calib"], ny // 2)
        lines = variable_density_mask((ny, shape[0]), settings["acceleration"], calib=calib,
                                      kind="lines", seed=seed)[:, 0]
        return _calibrated(lines, (min(ny, MIN_CALIB),), seed)
    calib = min(settings["calib"], min(ny, nz) // 2)
    mask = variable_density_mask((ny, nz), settings["acceleration"], calib=calib,
                                 kind="poisson", seed=seed)
    return _calibrated(mask, tuple(n if n < 2 * MIN_CALIB else MIN_CALIB for n in (ny, nz)), seed)


def _calibrated(mask, block, seed):
    """``mask`` with its centred ``block`` acquired (what qmriprep needs to estimate coils) and
    as many points as before where possible: random points outside the block are dropped."""
    mask = mask.copy()
    n_target = int(mask.sum())
    centre = tuple(slice(n // 2 - b // 2, n // 2 - b // 2 + b) for n, b in zip(mask.shape, block))
    inside = np.zeros_like(mask)
    inside[centre] = True
    mask[centre] = True
    extra = np.flatnonzero(mask & ~inside)
    surplus = min(int(mask.sum()) - n_target, extra.size)
    if surplus > 0:
        rng = np.random.default_rng(seed)
        mask.flat[rng.choice(extra, surplus, replace=False)] = False
    return mask


def write_session(root, grid, folder, prefix, volumes, settings, *, seed, record):
    """Write the k-space files of one session and their truth; add what was done to ``record``.

    ``folder`` (``sub-<l>[/ses-<l>]``) and ``prefix`` (``sub-<l>[_ses-<l>]``) place the files
    under ``root``; ``volumes``: contrast -> ``[(entity, complete BIDS sidecar, noise-free
    image)]``; ``settings``: :func:`check_settings`; noise relative to the phantom's
    :meth:`~qmriprep.synth.phantom.Phantom.noise_reference` (pure WM).
    """
    root, folder = Path(root), Path(folder)
    ref = grid.noise_reference()
    maps = coil_maps(grid, settings["coils"]) * np.exp(1j * receiver_phase(grid))[None]
    rec = record.setdefault("kspace", {"settings": {**settings, "contrasts": list(settings[
        "contrasts"])}, "coils": f"head array, radius {COIL_RADIUS_MM} mm, z +-{COIL_Z_MM} mm, "
                                   "normalised; receiver phase of synth.bssfp", "noise_sigma": {}, "acceleration": {}})
    truth = root / "derivatives" / "truth" / folder
    for mod in settings["contrasts"]:
        vols = volumes[mod][:settings["mese_echoes"]] if mod == "MESE" else volumes[mod]
        snr, layout = settings["snr"], LAYOUTS[mod]
        sigma = None if snr is None else float(np.mean(np.abs(vols[0][2])[ref]) / snr)
        axes = (1, 2) if layout == "2d" else (1, 2, 3)
        mask = None
        for entity, meta, clean in vols:
            rel = (Path("sourcedata") / "kspace" / folder / "anat" /
                   f"{prefix}_{entity}_{mod}.h5").as_posix()
            if mask is None or mod == "VFA":
                mask = _mask(mod, grid.shape, settings, f"{seed}:{rel}")
            coil_images = maps * clean[None]
            ksp = centred_fft(coil_images, axes)
            if sigma is not None:
                rng = np.random.default_rng([seed, zlib.crc32(rel.encode())])
                ksp += sigma * (rng.standard_normal(ksp.shape) + 1j * rng.standard_normal(ksp.shape))
                rec["noise_sigma"][rel] = sigma
            meta = {**meta, "MRAcquisitionType": layout.upper()}
            _write(root / rel, ksp, mask, grid.affine, layout, meta)
            rec["acceleration"][rel] = round(mask_acceleration(mask), 4)
            full = np.ones_like(mask)
            _write(truth / "kspace" / f"{prefix}_rec-fullysampled_{entity}_{mod}.h5", ksp, full,
                   grid.affine, layout, meta)
            combined = np.abs(np.sum(maps.conj() * coil_images, 0))
            save_nifti(truth / "anat" / f"{prefix}_rec-truth_{entity}_{mod}.nii.gz", combined,
                       grid.affine, {"Description": "magnitude of the noise-free coil "
                                                    "combination sum conj(S) y", **meta})


def _write(path, ksp, mask, affine, layout, meta):
    write_kspace(path, ksp, mask=mask, affine=affine, layout=layout, metadata=meta)
    sidecar = {**meta, **header_metadata(path),
               "ParallelReductionFactorInPlane": round(mask_acceleration(mask), 4)}
    path.with_suffix(".json").write_text(json.dumps(sidecar, indent=2) + "\n")

