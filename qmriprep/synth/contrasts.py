"""Noise-free volumes of every collection of the synthetic dataset, with their sidecar fields.

Each collection is the project's signal model (:mod:`qmriprep.physics`) of the phantom's truth
maps under :data:`PROTOCOL` (BIDS units: s, deg); see :mod:`.dataset` for the list and the noise.
A volume is ``(entity, sidecar fields, array)``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from ..physics.b1 import afi_signals, dam_signals, tfl_famp
from ..physics.exponential import monoexp
from ..physics.spgr import spgr
from . import bssfp
from . import kspace as synth_kspace
from .phantom import Phantom, slab_start

#: scanner fields of every sidecar
SCANNER = {"MagneticFieldStrength": 3, "Manufacturer": "Siemens",
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
_PER_FILE = ("EchoTime", "FlipAngle", "RepetitionTimeExcitation")


def volumes(mod, grid: Phantom):
    """Noise-free volumes of collection ``mod`` on ``grid`` (VFA: :func:`vfa_volumes`)."""
    return _SIMULATE[mod](grid, PROTOCOL[mod])


def vfa_volumes(grid: Phantom, *, full, n_slices, motion):
    """VFA flips (sidecars hold FlipAngle only: the rest is in /VFA.json); moved flips are
    simulated on all slices of ``full``, moved, then cut to the slab (``_motion`` holds the
    transform)."""
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


def complete_volumes(mod, grid: Phantom):
    """Noise-free volumes with complete sidecars (VFA: TR included, no motion)."""
    if mod != "VFA":
        return volumes(mod, grid)
    p = PROTOCOL["VFA"]
    return [(e, _meta(p, RepetitionTimeExcitation=p["RepetitionTimeExcitation"], **m), s)
            for e, m, s in vfa_volumes(grid, full=None, n_slices=None, motion={})]


def _meta(p, **extra):
    return {**SCANNER, **{k: v for k, v in p.items() if k not in _PER_FILE}, **extra}


def _multiecho(grid: Phantom, p, time):
    te = np.asarray(p["EchoTime"])
    sig = monoexp(grid.pd[..., None], grid.safe(time)[..., None], te)
    meta = _meta(p, **{k: p[k] for k in ("FlipAngle", "RepetitionTimeExcitation")})
    return [(f"echo-{i + 1}", {**meta, "EchoTime": t}, sig[..., i])
            for i, t in enumerate(p["EchoTime"])]


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


def _move(volume, affine, centre, rotation=(0, 0, 0), translation=(0, 0, 0)):
    """Image of the object moved by ``x -> R (x - c) + c + t`` (linear interpolation)."""
    rot = Rotation.from_euler("xyz", rotation, degrees=True).as_matrix()
    c, t = np.asarray(centre), np.asarray(translation, float)
    world = np.eye(4)
    world[:3, :3], world[:3, 3] = rot, c + t - rot @ c
    pull = np.linalg.inv(affine) @ np.linalg.inv(world) @ affine  # output voxel -> input voxel
    img = ndimage.affine_transform(volume, pull[:3, :3], pull[:3, 3], order=1, mode="constant")
    return img.astype(np.float32), world.round(6).tolist()
