"""One collection of k-space files through coil estimation and reconstruction (no Nipype).

The Nipype interfaces in :mod:`qmriprep.interfaces.recon` are thin wrappers around these
functions, which tests and benchmarks call directly:

- :func:`load_collection`: the ISMRMRD files of one collection (one per contrast), checked to
  share a grid, stacked as ``y (S, C, N, H, W)`` and ``mask (S|1, C, H, W)``;
- :func:`coil_maps`: ESPIRiT (or, for small calibration regions, low-resolution) sensitivities per
  slice;
- :func:`reconstruct`: ``zerofilled`` | ``cgsense`` | ``zsssl`` images ``(S, C, H, W)`` and a
  provenance record (acceleration, settings, epochs, weights SHA256, seconds);
- :func:`save_images`: magnitude volumes, one NIfTI per contrast, on the scan's grid.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..estimators.names import CGSENSE, ZEROFILLED, ZSSSL

METHODS = (ZSSSL, CGSENSE, ZEROFILLED)
#: Tikhonov weight of CG-SENSE, relative to the largest eigenvalue of E^H E (1 with ESPIRiT maps
#: normalised to sum |S|^2 = 1 and a unitary FFT), and its iterations
CGSENSE_LAMBDA = 1e-2
CGSENSE_ITER = 30
#: ZSSSL settings (:class:`~qmriprep.recon.zsssl.ReconSettings` fields) by preset: ``seed`` is
#: the paper's set-up (a GPU job); ``fast`` a smaller network and at most 750 steps for CPUs
#: (benchmarks/RESULTS.md: 37 % lower image NRMSE than CG-SENSE at R = 8 on the 2 mm 3-D VFA
#: phantom, about 270 s of training on one CPU thread; 100 steps were not enough to beat it);
#: ``quick`` the ``fast`` network for 100 steps from 16x the paper's learning rate down a cosine
#: (RESULTS, issue 14). Both reconstruct a series of 6 or more contrasts sampled alike in its
#: contrast subspace (:mod:`.subspace`); there ``quick`` was 26-35 % below CG-SENSE's NRMSE at R = 8
#: on real-anatomy and multi-exponential 230 x 180 x 8-echo slice sets (3 seeds each) in 104-158 s
#: on 2 cores, ``fast`` 27 % in 701 s; without a subspace ``quick`` is weak (10 % at R = 4), so
#: ``fast`` stays the default. ``seed`` does not use the subspace (the paper did not).
PRESETS = {
    "seed": {},
    "fast": {"n_unrolls": 5, "cg_iter": 6, "features": 32, "blocks": 5, "max_epochs": 30,
             "patience": 6, "steps_per_epoch": 25, "batch": 2, "subspace": True},
}
PRESETS["quick"] = {**PRESETS["fast"], "lr": 8e-3, "max_epochs": 20, "steps_per_epoch": 5, "patience": 20,
                    "schedule": "cosine"}

#: ZS-SSL start networks shipped in ``qmriprep/data/weights`` (seed 000's transfer): number of
#: contrasts -> (file, SHA256 of the weights). Pre-trained on synthetic 8-echo slice sets by
#: ``benchmarks/pretrain_zsssl.py`` (``fast`` architecture); used by the workflow when the
#: collection and the settings match, the user asked for it (``--recon-pretrained``) and gave no ``--recon-init``
SHIPPED_INIT = {8: ("zsssl_fast_8.pt", "874b9eec2c171f63db1ccb6fbb1eabb293b65381af3c44b8518d010f79e944e0")}


def shipped_init(n_contrasts: int, settings) -> str | None:
    """The shipped start network for ``n_contrasts`` if its architecture is ``settings``' (its
    features, blocks, unrolls and CG iterations), else None."""
    from importlib import resources

    entry = SHIPPED_INIT.get(int(n_contrasts))
    fast = PRESETS["fast"]
    if entry is None or any(getattr(settings, k) != fast[k] for k in ("features", "blocks", "n_unrolls", "cg_iter")):
        return None
    return str(resources.files("qmriprep").joinpath("data/weights", entry[0]))


@dataclass
class KspaceCollection:
    """The k-space of one collection, contrasts stacked (recon conventions)."""

    y: np.ndarray          # (S, C, N, H, W) complex64
    mask: np.ndarray       # (S|1, C, H, W) float32
    scans: list            # one qmriprep.recon.io.KspaceScan per contrast (kspace dropped)
    files: list[str]

    @property
    def acceleration(self) -> list[float]:
        """Acquired fraction of k-space, inverted, per contrast."""
        per = self.mask.reshape(self.mask.shape[0], self.mask.shape[1], -1).mean(axis=(0, 2))
        return [float(1.0 / a) if a > 0 else float("inf") for a in per]


def load_collection(files) -> KspaceCollection:
    """Read and stack the k-space files of one collection; InputError when they disagree."""
    from .io import read_kspace

    files = [str(f) for f in files]
    scans = [read_kspace(f) for f in files]
    ref = scans[0]
    for f, s in zip(files[1:], scans[1:]):
        for what, a, b in (("k-space shape (slices, coils, ky, kz|kx)", s.kspace.shape, ref.kspace.shape),
                           ("layout (2d/3d)", s.layout, ref.layout), ("image grid", tuple(s.shape), tuple(ref.shape))):
            if a != b:
                raise InputError(f, f"{what} is {a} but {Path(files[0]).name} has {b}; the k-space files "
                                 "of one collection must share the acquisition geometry")
        if not np.allclose(s.affine, ref.affine, atol=1e-3):
            raise InputError(f, f"its geometry (position/orientation) differs from {Path(files[0]).name}")
    y = np.stack([s.kspace for s in scans], axis=1).astype(np.complex64)
    mask = np.stack([np.broadcast_to(s.mask, (s.mask.shape[0],) + s.kspace.shape[-2:]) for s in scans], axis=1)
    for s in scans:  # the stacked copy is the one kept; the scans keep only the shape
        s.kspace = np.broadcast_to(np.zeros((), s.kspace.dtype), s.kspace.shape)
    return KspaceCollection(y, mask.astype(np.float32), scans, files)


def coil_description(col: KspaceCollection) -> str:
    """How :func:`coil_maps` estimates this collection's sensitivities (for the sidecars)."""
    from .coils import ESPIRIT_MIN_CALIB, coil_method

    calib = check_calibration(col)
    if coil_method(calib) == "espirit":
        return f"ESPIRiT (sigpy) from the {calib[0]}x{calib[1]} calibration region"
    return (f"low-resolution maps from the {calib[0]}x{calib[1]} calibration region (too small for "
            f"ESPIRiT, < {ESPIRIT_MIN_CALIB})")


def check_calibration(col: KspaceCollection) -> tuple[int, int]:
    """Size of the fully sampled k-space centre every slice and contrast shares (InputError
    without one: ESPIRiT needs it, and qmriprep has no calibration-free fallback)."""
    from .coils import calibration_region

    try:
        return calibration_region(col.mask.min(axis=(0, 1)) > 0)
    except ValueError as exc:
        raise InputError(col.files[0], str(exc)) from exc


def coil_maps(col: KspaceCollection) -> np.ndarray:
    """Sensitivities ``(S, N, H, W)`` from the calibration region (InputError without one)."""
    from .coils import estimate_coils

    check_calibration(col)
    maps = estimate_coils(col.y, col.mask)
    return np.asarray(maps, dtype=np.complex64)


def reconstruct(col: KspaceCollection, maps: np.ndarray, method: str, *, settings=None,
                init: str | None = None, model_path: str | None = None, log=None):
    """Images ``(S, C, H, W)`` complex and a provenance dict for ``method``.

    ``settings``: :class:`qmriprep.recon.zsssl.ReconSettings` (ZSSSL); ``init``: a saved model
    to start from (transfer); ``model_path``: where the trained ZSSSL model is saved.
    """
    import torch

    from .sense import cg_sense, zero_filled
    from .zsssl import ReconSettings

    if method not in METHODS:
        raise ValueError(f"unknown reconstruction {method!r}; choose from {', '.join(METHODS)}")
    t0 = time.perf_counter()
    info = {"ReconstructionMethod": method, "Acceleration": [round(a, 3) for a in col.acceleration],
            "CoilSensitivities": coil_description(col), "NumberOfCoils": int(col.y.shape[2])}
    if col.scans[0].metadata.get("GeometryFallback"):  # recorded in the sidecars
        info["GeometryFallback"] = col.scans[0].metadata["GeometryFallback"]
    if method in (ZEROFILLED, CGSENSE):
        y, s, m = (torch.from_numpy(np.ascontiguousarray(a)) for a in (col.y, maps, col.mask))
        with torch.no_grad():
            x = (zero_filled(y, s, m) if method == ZEROFILLED
                 else cg_sense(y, s, m, lam=CGSENSE_LAMBDA, max_iter=CGSENSE_ITER))
        if method == CGSENSE:
            info.update(TikhonovLambda=CGSENSE_LAMBDA, Iterations=CGSENSE_ITER)
        images = x.numpy()
    else:
        images, more = _zsssl(col, maps, settings or ReconSettings(), init, model_path, log)
        info.update(more)
    info["ReconstructionSeconds"] = round(time.perf_counter() - t0, 2)
    return images, info


def _zsssl(col: KspaceCollection, maps: np.ndarray, settings, init: str | None, model_path: str | None,
           log) -> tuple[np.ndarray, dict]:
    """ZSSSL images ``(S, C, H, W)`` and their provenance; the network reconstructs the
    coefficients of the collection's contrast subspace (:mod:`.subspace`) when
    :func:`_subspace_for` gives one, else the contrasts; ``init``: a saved model to start from."""
    from .zsssl import load_model, reconstruct as infer, save_model, train_zsssl

    log = log or print
    start, meta = load_model(init, settings.device) if init else (None, None)
    subspace = _subspace_for(col, settings, start, meta)
    settings = replace(settings, subspace=subspace is not None)  # what the saved model is
    y, mask, warm = col.y, col.mask, None
    if subspace is not None:
        y, mask = subspace.project(col.y), np.ascontiguousarray(col.mask[:, :subspace.rank])
        log(f"contrast subspace: {col.y.shape[1]} contrasts reconstructed as {subspace.rank} coefficient images")
    if start is not None:
        n_model = start.hparams["n_contrasts"]
        warm = f"{Path(init).name} (sha256 {meta['sha256'][:12]})"
        if n_model != y.shape[1]:  # a model of another series: no transfer, say so
            start, warm = None, f"not used: {Path(init).name} has {n_model} contrasts, this collection {y.shape[1]}"
            log(f"--recon-init {warm}; training from scratch")
        else:  # the transferred CNN sets the architecture (unrolls and CG may differ)
            settings = replace(settings, features=start.hparams["features"], blocks=start.hparams["blocks"])
    model, history = train_zsssl(y, maps, mask, settings, init=start, log=log)
    images = infer(model, y, maps, mask)
    images = images.numpy() if hasattr(images, "numpy") else np.asarray(images)
    val, mu = history.get("val_loss") or [], history.get("mu") or []
    info = dict(Settings=settings.as_dict(), EpochsRun=history.get("epochs"),
                BestEpoch=history.get("best_epoch"), BestValidationLoss=min(val) if val else None,
                LearnedMu=mu[history["best_epoch"]] if mu and history.get("best_epoch", -1) >= 0 else None,
                RandomSeed=settings.seed, TrainingSeconds=round(history.get("seconds", 0.0), 2),
                TrainingStopped=history.get("stopped"), WarmStart=warm,
                ContrastSubspace=subspace.describe() if subspace is not None else None)
    if model_path:
        info["WeightsSHA256"] = save_model(model_path, model, settings, history)
    return (subspace.expand(images) if subspace is not None else images), info


def _subspace_for(col: KspaceCollection, settings, start, meta):
    """The contrast subspace ZSSSL works in: with a start model, the one of the model's rank when
    it was trained in a subspace (else none: it reconstructs contrasts); without, the data's when
    ``settings.subspace``."""
    from .subspace import contrast_subspace

    if start is not None:
        if not meta["settings"].get("subspace"):
            return None
        return contrast_subspace(col.y, col.mask, check_calibration(col), rank=start.hparams["n_contrasts"])
    return contrast_subspace(col.y, col.mask, check_calibration(col)) if settings.subspace else None


def save_images(images: np.ndarray, col: KspaceCollection, out_dir, prefix: str = "rec") -> list[str]:
    """Magnitude of each contrast as a NIfTI volume on the scan grid; returns the paths."""
    import nibabel as nb

    out_dir = Path(out_dir)
    paths = []
    for c, scan in enumerate(col.scans):
        volume = np.abs(scan.to_volume(images[:, c])).astype(np.float32)
        img = nb.Nifti1Image(volume, scan.affine)
        img.set_qform(scan.affine, code=1)  # scanner coordinates (the sinks would rewrite others)
        img.set_sform(scan.affine, code=1)
        img.header.set_xyzt_units("mm")
        path = out_dir / f"{prefix}_{c + 1:02d}.nii.gz"
        nb.save(img, path)
        paths.append(str(path.absolute()))
    return paths
