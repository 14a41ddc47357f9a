"""Phase-cycled bSSFP images of the phantom (the pc-bSSFP input convention of qmriprep).

Every collection ``acq-pc<N>`` holds ``N`` phase cycles on the 4th axis with the seed's grid of
RF phase increments ``phi_j = 180 (2j - 1) / N`` deg, ``j = 1..N`` (0 is never on the grid), and
the seed's protocol (:data:`PROTOCOL`: TR 4.8 ms, TE 2.4 ms, 15 deg). The complex signal is

    S_j = bssfp_signal(T1, T2, B1, theta; M0 = PD) * exp(i phi_rx)

with :func:`qmriprep.physics.bssfp.bssfp_signal` (the one signal model), ``theta = 2 pi df TR``
from the phantom's off-resonance ``df`` (Hz, ``derivatives/truth/.../fmap/*_fieldmap``) and a
smooth receiver phase ``phi_rx`` (:func:`receiver_phase`, rad, the same for every phase cycle and
collection), which a pipeline must remove (e.g. the common-phase removal before the DFT).

Parts (``bssfp_parts``): ``magphase`` writes ``part-mag`` (``|S|``) and ``part-phase``
(``angle S`` in rad, wrapped to ``[-pi, pi)``); ``realimag`` writes ``part-real`` and
``part-imag``; ``mag`` writes ``part-mag`` only.

Noise (``snr``): complex Gaussian, i.i.d. on the real and imaginary parts of every phase-cycle
image, as in the seed's training: ``sigma = 0.074 m0_ref / (sqrt(2) SNR)``. The seed defines
``0.074 / (sqrt(2) SNR)`` for signals of ``M0 = 1``; the phantom's M0 is the water fraction
(PD, 1 = pure water, white matter about 0.69), so ``m0_ref`` = mean PD over the white-matter
reference region (pure WM) rescales it: a white-matter voxel has exactly the seed's relative
noise at that SNR, purer-water voxels (GM, CSF) a higher SNR. One complex draw per collection
(seeded by ``(seed, crc32 of the collection name)``) feeds all its parts, so ``magphase`` and
``realimag`` datasets of the same seed hold the same noisy complex data. ``mag`` is Rician.
"""

from __future__ import annotations

import math
import zlib

import numpy as np

from ..bids.protocols import BSSFPProtocol
from ..physics.bssfp import bssfp_signal

#: sidecar fields of every pc-bSSFP collection (BIDS units: s, deg); ``RFPhaseIncrement`` is
#: added per collection (:func:`phase_increments`)
PROTOCOL = {"RepetitionTimeExcitation": 0.0048, "EchoTime": 0.0024, "FlipAngle": 15,
            "PulseSequenceType": "Phase-cycled balanced SSFP", "ScanningSequence": "GR",
            "SequenceVariant": "NONE"}
#: values of ``bssfp_parts`` and the ``part-`` images each writes, in order
PARTS = {"magphase": ("mag", "phase"), "realimag": ("real", "imag"), "mag": ("mag",)}
#: signal level of the seed's noise definition at M0 = 1: ``sigma = SEED_LEVEL / (sqrt(2) SNR)``
SEED_LEVEL = 0.074
#: receiver phase (rad) ``offset + gradient . (x - c)`` at world position ``x`` (mm) relative to
#: the brain centre ``c``, plus a Gaussian bump ``bump_amplitude`` of width ``bump_width`` (mm)
#: centred at ``c + bump_offset``
RECEIVER_PHASE = {"offset": 0.9, "gradient": (0.012, -0.009, 0.006),
                  "bump_amplitude": 0.6, "bump_width": 45.0, "bump_offset": (20.0, -25.0, 10.0)}
_BELOW_PI = float(np.nextafter(np.float32(np.pi), np.float32(0)))  # largest float32 < pi


def phase_increments(n_cycles):
    """The seed's grid of RF phase increments in degrees: ``180 (2j - 1) / N``, ``j = 1..N``."""
    return [180.0 * (2 * j - 1) / n_cycles for j in range(1, n_cycles + 1)]


def acq_label(n_cycles):
    """``acq-`` label of the collection with ``n_cycles`` phase cycles (``pc12``)."""
    return f"pc{n_cycles}"


def entities(n_cycles, parts="magphase"):
    """File entities of one collection, e.g. ``['acq-pc12_part-mag', 'acq-pc12_part-phase']``."""
    return [f"acq-{acq_label(n_cycles)}_part-{p}" for p in PARTS[parts]]


def receiver_phase(grid):
    """Smooth receiver phase (rad) of :data:`RECEIVER_PHASE` at the voxel centres of ``grid``."""
    p = RECEIVER_PHASE
    d = grid.centres - np.asarray(grid.fields.centre)
    r2 = np.sum((d - np.asarray(p["bump_offset"])) ** 2, -1) / p["bump_width"] ** 2
    bump = np.exp(-0.5 * r2)
    return p["offset"] + d @ np.asarray(p["gradient"]) + p["bump_amplitude"] * bump


def theta(grid, tr=PROTOCOL["RepetitionTimeExcitation"]):
    """Off-resonance phase per TR (rad), ``2 pi df TR``."""
    return 2 * np.pi * grid.off_resonance.astype(np.float64) * tr


def clean_signal(grid, n_cycles, *, with_receiver_phase=True):
    """Noise-free complex signals ``(x, y, z, n_cycles)`` of the phantom ``grid``."""
    p = PROTOCOL
    tr = p["RepetitionTimeExcitation"]
    protocol = BSSFPProtocol(tuple(np.deg2rad(phase_increments(n_cycles))), tr,
                             math.radians(p["FlipAngle"]), p["EchoTime"])
    sig = bssfp_signal(grid.safe("t1"), grid.safe("t2"), grid.b1, theta(grid, tr), protocol,
                       m0=grid.pd)
    if with_receiver_phase:
        sig = sig * np.exp(1j * receiver_phase(grid))[..., None]
    return sig


def noise_sigma(m0_ref, snr):
    """Noise std of the real and of the imaginary part: ``0.074 m0_ref / (sqrt(2) SNR)``."""
    return SEED_LEVEL * float(m0_ref) / (math.sqrt(2) * snr)


def wrap(phase):
    """Phase wrapped to ``[-pi, pi)`` and stored as float32 values in that interval."""
    out = (np.mod(np.asarray(phase, np.float64) + np.pi, 2 * np.pi) - np.pi).astype(np.float32)
    return np.clip(out, -_BELOW_PI, _BELOW_PI)


def split(signal, parts="magphase"):
    """The part images of complex ``signal``: ``[(part, float32 array), ...]``."""
    maker = {"mag": np.abs, "phase": lambda s: wrap(np.angle(s)), "real": np.real, "imag": np.imag}
    return [(p, np.asarray(maker[p](signal), np.float32)) for p in PARTS[parts]]


def simulate(grid, n_cycles, parts="magphase", *, sigma=None, rng=None):
    """Images of one collection: ``[(entity, sidecar fields, float32 array), ...]``.

    ``sigma``: complex Gaussian noise level (:func:`noise_sigma`), drawn from ``rng``.
    """
    sig = clean_signal(grid, n_cycles)
    if sigma is not None:
        n = rng.standard_normal((2,) + sig.shape)
        sig = sig + sigma * (n[0] + 1j * n[1])
    meta = {**PROTOCOL, "RFPhaseIncrement": phase_increments(n_cycles)}
    return [(ent, {**meta, "Units": "rad"} if part == "phase" else meta, data)
            for ent, (part, data) in zip(entities(n_cycles, parts), split(sig, parts))]


def files(grid, stem, cycles, parts="magphase", *, snr=None, seed=0, ref=None, record=None):
    """Yield ``(relative path, sidecar fields, array)`` of every collection of ``cycles``.

    ``stem`` (e.g. ``sub-01/anat/sub-01[_ses-x]``) starts the file names; ``ref`` is the
    white-matter mask of ``m0_ref``; ``record`` (the simulation record) gets the receiver phase,
    ``m0_ref`` and per-file ``noise_sigma``.
    """
    ref = np.ones(grid.shape, bool) if ref is None else ref
    m0_ref = float(np.mean(grid.pd[ref]))
    sigma = None if snr is None else noise_sigma(m0_ref, snr)
    if record is not None:
        record["bssfp"] = {"receiver_phase": RECEIVER_PHASE, "m0_ref": m0_ref,
                           "noise": "complex Gaussian, noise_sigma on real and imaginary parts",
                           "theta": "2 pi df TR, df the fieldmap (Hz)"}
    for n in cycles:
        name = f"{stem}_acq-{acq_label(n)}_bSSFP"
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        for entity, meta, data in simulate(grid, n, parts, sigma=sigma, rng=rng):
            rel = f"{stem}_{entity}_bSSFP.nii.gz"
            if sigma is not None and record is not None:
                record.setdefault("noise_sigma", {})[rel] = sigma
            yield rel, meta, data


def check(cycles, parts):
    """Validated ``(cycles tuple, parts)``; cycles are distinct integers >= 4 (what pc-bSSFP relaxometry needs)."""
    if parts not in PARTS:
        raise ValueError(f"bssfp_parts must be one of {', '.join(PARTS)}, got {parts!r}")
    cycles = tuple(int(n) for n in ([cycles] if isinstance(cycles, int) else cycles))
    if not cycles or any(n < 4 for n in cycles) or len(set(cycles)) != len(cycles):
        raise ValueError(f"bssfp_cycles must be distinct integers >= 4, got {list(cycles)}")
    return cycles, parts
