"""Synthetic FISP MR fingerprinting series of the phantom (``anat/sub-<l>_MRF.nii.gz``).

Schedule (:func:`fisp_schedule`, generated here, no random numbers): an inversion ``TI`` before
the first frame, then flip angles in half-sine lobes of different heights above a 5 deg floor
(the sinusoidal FISP pattern of Jiang et al. 2015) and TRs varying smoothly about 12 ms;
``TE`` 2 ms. Series (:func:`mrf_series`): ``M0 x`` :func:`qmriprep.physics.epg.fisp_signal`
of the phantom's T1, T2 and B1+ (the flip angles scaled by B1+).

Noise: ``sigma = mean |noise-free series| over pure white matter / snr``. Fully sampled series
are real (phase-corrected, signed: negative after the inversion) with Gaussian noise. With
``undersampling`` R > 1, each frame of each axial slice keeps its own random ``1/R`` of the
phase-encoding lines (the central ``CENTRE_LINES`` always), weighted by the inverse of their
sampling probability (density compensation: ``R`` for the random lines, 1 for the centre), and is
zero-filled back to a complex image, as single-interleaf MRF is: incoherent aliasing that differs
frame to frame and is zero on average over frames. Noise is then complex, added before the
undersampling (it is sampled with the data).
"""

from __future__ import annotations

import math

import numpy as np

#: lobe heights (deg) of the flip-angle pattern, one lobe per quarter of the frames
LOBES = (60.0, 35.0, 70.0, 25.0)
#: phase-encoding lines always kept at the centre of k-space when undersampling
CENTRE_LINES = 4
#: default number of frames
N_FRAMES = 400


def fisp_schedule(n_frames: int = N_FRAMES, *, echo_time: float = 0.002,
                  inversion_time: float = 0.02) -> dict:
    """Sidecar fields (BIDS units: deg, s) of the FISP schedule with ``n_frames`` frames."""
    t = np.arange(n_frames)
    lobe = np.minimum(t * len(LOBES) // n_frames, len(LOBES) - 1)
    length = n_frames / len(LOBES)
    phase = (t - lobe * length) / length
    fa = 5.0 + np.asarray(LOBES)[lobe] * np.sin(np.pi * phase)
    tr = 0.012 + 0.0015 * np.sin(2 * np.pi * t / 157.0) + 0.0008 * np.sin(2 * np.pi * t / 41.0)
    return {"FlipAngle": [round(float(a), 4) for a in fa],
            "RepetitionTimeExcitation": [round(float(x), 6) for x in tr],
            "EchoTime": echo_time, "InversionTime": inversion_time,
            "PulseSequenceType": "MR fingerprinting (FISP)", "ScanningSequence": "GR",
            "SequenceVariant": "SS"}


def protocol_of(meta: dict):
    """The :class:`~qmriprep.bids.protocols.MRFProtocol` (SI) of schedule fields ``meta``."""
    from ..bids.protocols import MRFProtocol

    return MRFProtocol(tuple(math.radians(a) for a in meta["FlipAngle"]),
                       tuple(meta["RepetitionTimeExcitation"]), meta["EchoTime"],
                       meta.get("InversionTime"))


def clean_series(grid, meta: dict) -> np.ndarray:
    """Noise-free ``M0 x`` FISP series of the phantom ``grid``: ``shape + (T,)`` float32."""
    from ..fit.mrf import single_thread
    from ..physics.epg import fisp_signal

    mask = grid.mask
    out = np.zeros(grid.shape + (len(meta["FlipAngle"]),), np.float32)
    with single_thread():
        sig = fisp_signal(grid.t1[mask], grid.t2[mask], protocol_of(meta), b1=grid.b1[mask]).numpy()
    out[mask] = grid.pd[mask][:, None] * sig
    return out


def mrf_series(grid, meta: dict, *, snr: float | None, rng: np.random.Generator,
               undersampling: float = 1.0) -> tuple[np.ndarray, float | None]:
    """``(series, sigma)``: real with Gaussian noise, or complex and aliased when
    ``undersampling`` > 1 (module docstring); ``sigma`` None without noise."""
    clean = clean_series(grid, meta)
    sigma = None
    if snr is not None:
        ref = grid.noise_reference()
        sigma = float(np.mean(np.abs(clean[ref])) / snr)
    if undersampling <= 1:
        if sigma is None:
            return clean, None
        return (clean + sigma * rng.standard_normal(clean.shape)).astype(np.float32), sigma
    data = clean.astype(np.complex64)
    if sigma is not None:
        data += (sigma * (rng.standard_normal(clean.shape)
                          + 1j * rng.standard_normal(clean.shape))).astype(np.complex64)
    return undersample(data, undersampling, rng), sigma


def undersample(series: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    """Density-compensated zero-filled images of ``series`` (x, y, z, T) keeping per frame a random
    ``1/factor`` of the phase-encoding lines (axis y, weight ``factor``) plus the central
    :data:`CENTRE_LINES` (weight 1)."""
    ny, n_frames = series.shape[1], series.shape[-1]
    k = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(series, axes=(0, 1)), axes=(0, 1), norm="ortho"),
                        axes=(0, 1))
    weight = np.where(rng.random((n_frames, ny)) < 1.0 / factor, float(factor), 0.0)
    centre = ny // 2
    weight[:, max(centre - CENTRE_LINES // 2, 0): centre + (CENTRE_LINES + 1) // 2] = 1.0
    k *= weight.T[None, :, None, :]
    img = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=(0, 1)), axes=(0, 1), norm="ortho"),
                          axes=(0, 1))
    return img.astype(np.complex64)


def save_complex(path, data: np.ndarray, affine) -> None:
    """A complex64 NIfTI (``save_nifti`` writes float32 only)."""
    import nibabel as nb

    path.parent.mkdir(parents=True, exist_ok=True)
    img = nb.Nifti1Image(np.asarray(data, np.complex64), affine)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(affine, 1)
    img.set_sform(affine, 1)
    img.to_filename(path)


def write(root, grid, rel: str, spec, record: dict) -> None:
    """The MRF series of ``grid`` at ``root / rel`` (``spec``: a :class:`.dataset.DatasetSpec`,
    its ``snr``, ``seed``, ``mrf_frames``, ``mrf_undersampling``), its sidecar (with the scanner
    fields of :data:`.contrasts.SCANNER`) and its noise level in ``record``."""
    import zlib
    from pathlib import Path

    from .contrasts import SCANNER
    from .files import save_nifti, write_json

    meta = fisp_schedule(spec.mrf_frames)
    rng = np.random.default_rng([spec.seed, zlib.crc32(rel.encode())])
    data, sigma = mrf_series(grid, meta, snr=spec.snr, rng=rng, undersampling=spec.mrf_undersampling)
    path = Path(root) / rel
    if np.iscomplexobj(data):
        save_complex(path, data, grid.affine)
        write_json(path.with_name(path.name.replace(".nii.gz", ".json")), {**SCANNER, **meta})
    else:
        save_nifti(path, data, grid.affine, {**SCANNER, **meta})
    if sigma is not None:
        record["noise_sigma"][rel] = sigma
    if spec.mrf_undersampling > 1:
        record["mrf_undersampling"] = spec.mrf_undersampling
