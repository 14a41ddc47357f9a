"""The shipped ZS-SSL start network (seed 000's transfer), and its effect on time to quality.

    python benchmarks/pretrain_zsssl.py pretrain OUT.pt [--steps 120] [--init MODEL.pt] [--supervised]
    python benchmarks/pretrain_zsssl.py finetune MODEL.pt|scratch [--r 4] [--steps 20] [--data phantom|real]

``pretrain``: ZS-SSL (``fast`` preset, Adam lr 2e-3, 10 steps per epoch, 2 torch threads) on a
multi-slice collection of 8-echo slice sets of the 1 mm phantom taken away from the test slice
(:data:`TRAINING_SLICES`: subjects/seeds 1-10, axial offsets -30..+30 mm from the centre, R = 4
and 8, SNR 50; the slice sets of ``bench_zsssl_speed.slice_set``).
``qmriprep/data/weights/zsssl_fast_8.pt`` was made in two runs: ``pretrain A.pt --slices 6``
(120 steps, 1283 s on 2 cores), then ``pretrain B.pt --init A.pt`` (120 steps on all ten, 791 s).

``--supervised``: image loss against the noise-free truth of each slice set instead of ZS-SSL (the
transfer network of seed 000 trained with labels; not shipped: see RESULTS.md, issue 14).

``finetune``: on the benchmark's test slice (seed 0, central slice; none of the training slices),
CG-SENSE, then the start network as it is, then after ``--steps`` ZS-SSL steps (lr 5e-4 from the
shipped network, the benchmark's 2e-3 from scratch): image NRMSE / SSIM against the truth.
``--data real``: the same on real anatomy (:func:`real_slice_set`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import bench_zsssl_speed as B  # noqa: E402

#: (seed, axial offset in mm from the centre, acceleration) of the pre-training slice sets
TRAINING_SLICES = [(1, -20, 4), (2, 15, 4), (3, -8, 8), (4, 25, 4), (5, 10, 8), (6, -30, 4),
                   (7, 20, 8), (8, -15, 8), (9, 30, 4), (10, -25, 8)]


def slice_data(seed: int, offset: int, r: float) -> dict:
    """``bench_zsssl_speed.slice_set`` at ``offset`` axial slices from the centre of phantom ``seed``."""
    import qmriprep.synth.phantom as P

    full = P.make_phantom(downsample=1, crop=False, n_slices=None, seed=seed)
    k = full.shape[2] // 2 + offset
    one = P.Phantom(affine=full.affine.copy(), fields=full.fields,
                    **{f: getattr(full, f)[..., k:k + 1] for f in P._ARRAYS})  # noqa: SLF001
    real = P.make_phantom
    P.make_phantom = lambda **_: one
    try:
        return B.slice_set(r=r, seed=seed)
    finally:
        P.make_phantom = real


def coil_combined(coil_images: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """``sum_n conj(S_n) x_n / sum_n |S_n|^2`` of ``(S, E, N, H, W)`` images with maps ``(S, N, H, W)``:
    the truth in the frame (phase) of the estimated coil maps."""
    s = maps[:, None]
    return (np.sum(np.conj(s) * coil_images, axis=2)
            / np.maximum(np.sum(np.abs(s) ** 2, axis=2), 1e-6)).astype(np.complex64)


def pretrain(out: Path, steps: int, slices: int, init: str | None = None, supervised: bool = False) -> None:
    from qmriprep.recon.coils import estimate_coils
    from qmriprep.recon.zsssl import save_model, train_sl, train_zsssl

    sets = [slice_data(*s) for s in TRAINING_SLICES[:slices]]
    y = np.concatenate([d["y"] for d in sets])
    mask = np.concatenate([d["mask"] for d in sets])
    maps = np.concatenate([estimate_coils(d["y"], d["mask"]) for d in sets]).astype(np.complex64)
    st = B.settings({"lr": 2e-3, "steps_per_epoch": 10, "max_epochs": steps // 10, "patience": 1000})
    t = time.perf_counter()
    if supervised:
        x_ref = coil_combined(np.concatenate([d["coil_truth"] for d in sets]), maps)
        model, hist = train_sl([(y, maps, mask, x_ref)], st, init=init, log=print)
    else:
        model, hist = train_zsssl(y, maps, mask, st, init=init, log=print)
    print(f"pre-training {time.perf_counter() - t:.0f} s; sha256 {save_model(out, model, st, hist)}")


def real_slice_set(r: float, snr: float = 50.0, coils: int = 8, seed: int = 0, shape=(180, 230)) -> dict:
    """A slice set from real anatomy instead of the phantom: qMRLab's multi-echo spin-echo brain
    slice (87 x 107, ``../shared/data/real/qmrlab/mono_t2``), its VarPro fit in the brain mask
    giving noise-free echoes 1-8 (``M0 exp(-TE/T2)``, TE 12.8-102 ms; the acquired images carry
    their own noise, which no reconstruction should be scored against), zero-padded to
    ``shape``; sigpy's birdcage coil maps, a random linear receiver phase, complex noise (SNR
    ``snr`` in the mask's first echo) and the line masks of :func:`bench_zsssl_speed.slice_set`."""
    import nibabel as nib
    import sigpy.mri as sm

    from qmriprep.recon.fft import centred_fft
    from qmriprep.recon.masks import variable_density_mask

    real = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "qmrlab"
    from qmriprep.fit.monoexp import fit_monoexp

    meta = json.loads((real / "mono_t2.json").read_text())
    te = np.array([v["EchoTime"] for v in meta["volume_ids"]])
    brain = np.asarray(nib.load(real / "mono_t2_mask.nii.gz").dataobj)[..., 0] > 0
    fit = fit_monoexp(np.asarray(nib.load(real / "mono_t2.nii.gz").dataobj, np.float64)[:, :, 0], te,
                      method="varpro", mask=brain)
    echoes = np.where(brain[..., None], fit["m0"][..., None] * np.exp(-te[:8] / np.maximum(fit["t2"], 1e-3)[..., None]), 0)
    h, w = shape
    box = (slice((h - echoes.shape[0]) // 2, (h - echoes.shape[0]) // 2 + echoes.shape[0]),
           slice((w - echoes.shape[1]) // 2, (w - echoes.shape[1]) // 2 + echoes.shape[1]))
    img = np.zeros((8, h, w))
    img[(slice(None),) + box] = echoes.transpose(2, 0, 1)
    mask2d = np.zeros((h, w), bool)
    mask2d[box] = brain
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w] / max(h, w)
    phase = np.exp(1j * (rng.uniform(-2, 2) * yy + rng.uniform(-2, 2) * xx + rng.uniform(-np.pi, np.pi)))
    maps = sm.birdcage_maps((coils, h, w)) * phase
    ksp = centred_fft(maps[None] * img[:, None], (-2, -1))
    sigma = float(np.mean(img[0][mask2d]) / snr)
    ksp = ksp + sigma * (rng.standard_normal(ksp.shape) + 1j * rng.standard_normal(ksp.shape))
    mask = np.broadcast_to(variable_density_mask((h, w), r, calib=24, kind="lines", seed=seed),
                           (1, 8, h, w)).astype(np.float32)
    return {"y": (ksp[None] * mask[:, :, None]).astype(np.complex64), "mask": mask,
            "truth": img[None].astype(np.float32), "brain": mask2d}


def finetune(start: str, r: float, steps: int, data: str = "phantom", lr: float | None = None) -> dict:
    from qmriprep.recon.coils import estimate_coils
    from qmriprep.recon.sense import cg_sense
    from qmriprep.recon.zsssl import load_model, reconstruct, train_zsssl

    d = B.slice_set(r=r) if data == "phantom" else real_slice_set(r=r)
    maps = estimate_coils(d["y"], d["mask"]).astype(np.complex64)
    with torch.no_grad():
        x = cg_sense(*(torch.from_numpy(np.ascontiguousarray(a)) for a in (d["y"], maps, d["mask"])),
                     lam=1e-2, max_iter=30)
    out = {"cgsense": B.scores(x.numpy(), d)}
    init = None
    if start != "scratch":
        init, _ = load_model(start)
        out["start network"] = B.scores(reconstruct(init, d["y"], maps, d["mask"]), d)
    st = B.settings({"lr": lr or (2e-3 if init is None else 5e-4), "steps_per_epoch": 5,
                     "max_epochs": max(steps // 5, 1), "patience": 1000})
    t = time.perf_counter()
    model, _ = train_zsssl(d["y"], maps, d["mask"], st, init=init)
    out[f"{steps} steps"] = {**B.scores(reconstruct(model, d["y"], maps, d["mask"]), d),
                             "train_s": round(time.perf_counter() - t, 1)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["pretrain", "finetune"])
    ap.add_argument("model", help="pretrain: output file; finetune: start model or 'scratch'")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--r", type=float, default=4.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--slices", type=int, default=len(TRAINING_SLICES), help="pretrain: first N slice sets")
    ap.add_argument("--init", help="pretrain: continue from this model")
    ap.add_argument("--lr", type=float, help="finetune: learning rate (default 2e-3 from scratch, 5e-4 from a model)")
    ap.add_argument("--data", choices=["phantom", "real"], default="phantom",
                    help="finetune: the phantom's test slice or real MESE images (real_slice_set)")
    ap.add_argument("--supervised", action="store_true",
                    help="pretrain: image loss against the noise-free truth instead of ZS-SSL")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.mode == "pretrain":
        pretrain(Path(args.model), args.steps or 120, args.slices, args.init, args.supervised)
    else:
        print(json.dumps(finetune(args.model, args.r, args.steps or 20, args.data, args.lr), indent=1))


if __name__ == "__main__":
    main()
