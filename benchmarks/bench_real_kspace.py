"""Reconstruction of the real undersampled brain k-space (issue 4): timings and no-reference measures.

    python benchmarks/bench_real_kspace.py [--presets fast] [--max-epochs E] [--steps S]
        [--seed-steps 1] [--threads 2] [--figure benchmarks/figures/real_kspace.png] [--json out.json]

Data: ``../shared/data/real/kspace/cartesian_ksp.npy`` (SigPy MRI tutorial, BSD-3): 8 coils,
one 2-D slice 230 x 180, Poisson-disc undersampled (R ~ 8) with a 24 x 24 fully sampled
centre; no reference. In the recon conventions ``y (1, 1, 8, 230, 180)``, mask
``(1, 1, 230, 180)``.

Stages, each timed (wall and process CPU s): ESPIRiT (:func:`~qmriprep.recon.coils.estimate_coils`),
zero-filled ``E^H y``, CG-SENSE (the pipeline's ``CGSENSE_LAMBDA``/``CGSENSE_ITER``), ZSSSL
training (:func:`~qmriprep.recon.zsssl.train_zsssl`, a preset of
:data:`~qmriprep.recon.pipeline.PRESETS`, its schedule optionally shortened by ``--max-epochs``
and ``--steps`` per epoch) and inference. Measures per image:

- ``background_artifact_ratio`` and ``tenengrad_sharpness`` (:mod:`qmriprep.recon.metrics`),
  with one object mask for all images (Otsu of the zero-filled image);
- data consistency: ``||M (E x - y)|| / ||M y||`` on all acquired points and on those outside
  the fully sampled centre (where zero-filling loses most).

The ``seed`` preset (the paper's network and 300 x 25 training steps) is not trained to the end
on a CPU: ``--seed-steps N`` times ``N`` training steps of it and extrapolates to its full
schedule. The figure shows the mask and the magnitudes with one window, plus a zoomed row.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qmriprep.recon import metrics  # noqa: E402
from qmriprep.recon.coils import calibration_region, estimate_coils  # noqa: E402
from qmriprep.recon.io import load_kspace_array  # noqa: E402
from qmriprep.recon.pipeline import CGSENSE_ITER, CGSENSE_LAMBDA, PRESETS  # noqa: E402
from qmriprep.recon.sense import SenseOp, cg_sense, zero_filled  # noqa: E402
from qmriprep.recon.zsssl import ReconSettings, reconstruct, train_zsssl  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "kspace" / "cartesian_ksp.npy"
ZOOM = (slice(60, 140), slice(40, 120))  # rows, columns of the zoomed row of the figure


def dc_residual(x, y, maps, mask, where=None) -> float:
    """``||W (E x - y)|| / ||W y||`` with ``W`` the acquired points (or ``where``, a subset)."""
    sel = torch.as_tensor(mask if where is None else where, dtype=torch.float32)
    yw = torch.as_tensor(y) * sel[:, :, None]
    r = SenseOp(torch.as_tensor(maps), sel).forward(torch.as_tensor(x)) - yw
    return float(r.norm() / yw.norm())


def outside_calibration(mask: np.ndarray) -> np.ndarray:
    """The acquired points of ``mask (1, 1, H, W)`` outside its fully sampled centre block."""
    h, w = mask.shape[-2:]
    ch, cw = calibration_region(mask)
    out = mask.copy()
    out[..., h // 2 - ch // 2: h // 2 - ch // 2 + ch, w // 2 - cw // 2: w // 2 - cw // 2 + cw] = 0
    return out


def measures(images: dict, y, maps, mask) -> dict:
    """No-reference measures and data-consistency residuals of each image (module docstring)."""
    obj, _ = metrics.object_mask_otsu(np.abs(images["zero-filled"]))
    periphery = outside_calibration(mask)
    return {name: {"background_artifact_ratio": metrics.background_artifact_ratio(x, obj),
                   "tenengrad_sharpness": metrics.tenengrad_sharpness(x),
                   "dc_residual": dc_residual(x, y, maps, mask),
                   "dc_residual_outside_calib": dc_residual(x, y, maps, mask, periphery)}
            for name, x in images.items()}


def timed(fn, *args, **kw):
    """``(fn(*args, **kw), (wall s, process CPU s))``: CPU time counts all threads and is less
    sensitive than wall time to other jobs on a shared machine."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kw)
    return out, (time.perf_counter() - t0, time.process_time() - c0)


def seed_step_time(y, maps, mask, steps: int) -> dict:
    """Seconds per training step of the ``seed`` preset, extrapolated to its full schedule."""
    s = ReconSettings(**{**PRESETS["seed"], "max_epochs": 1, "steps_per_epoch": steps})
    _, hist = train_zsssl(y, maps, mask, s)
    full = ReconSettings(**PRESETS["seed"])
    per_step = hist["seconds"] / steps  # includes one validation pass, amortised over the steps
    return {"steps_timed": steps, "seconds_per_step": per_step,
            "full_schedule_steps": full.max_epochs * full.steps_per_epoch,
            "full_schedule_hours": per_step * full.max_epochs * full.steps_per_epoch / 3600}


def figure(path: Path, mask, images: dict) -> None:
    """Mask and magnitudes (one window: 0 .. 99.5th percentile of CG-SENSE), zoomed row below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    mags = {k: np.abs(v[0, 0]) for k, v in images.items()}
    vmax = float(np.percentile(mags["CG-SENSE"], 99.5))
    cols = len(mags) + 1
    fig, ax = plt.subplots(2, cols, figsize=(3.0 * cols, 7.2))
    ax[0, 0].imshow(mask[0, 0], cmap="gray", interpolation="nearest")
    ax[0, 0].set_title(f"mask (R = {mask.size / mask.sum():.1f})")
    h, w = mask.shape[-2:]
    c = (slice(h // 2 - 32, h // 2 + 32), slice(w // 2 - 32, w // 2 + 32))
    ax[1, 0].imshow(mask[0, 0][c], cmap="gray", interpolation="nearest")
    ax[1, 0].set_title("mask centre (64 x 64)")
    for j, (name, mag) in enumerate(mags.items(), 1):
        ax[0, j].imshow(mag, cmap="gray", vmin=0, vmax=vmax)
        ax[0, j].add_patch(Rectangle((ZOOM[1].start, ZOOM[0].start), ZOOM[1].stop - ZOOM[1].start,
                                     ZOOM[0].stop - ZOOM[0].start, fill=False, color="y", lw=1))
        ax[0, j].set_title(name)
        ax[1, j].imshow(mag[ZOOM], cmap="gray", vmin=0, vmax=vmax, interpolation="nearest")
        ax[1, j].set_title(f"{name} (zoom)")
    for a in ax.flat:
        a.set_xticks([])
        a.set_yticks([])
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["fast"], choices=sorted(PRESETS))
    p.add_argument("--max-epochs", type=int, help="override the presets' max_epochs")
    p.add_argument("--steps", type=int, help="override the presets' steps_per_epoch")
    p.add_argument("--seed-steps", type=int, default=1,
                   help="time this many steps of the seed preset (0: skip)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--figure", type=Path, default=Path(__file__).parent / "figures" / "real_kspace.png")
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    if not DATA.is_file():
        sys.exit(f"{DATA} not found (needs ../shared/data/real next to the repository)")

    ksp, acquired = load_kspace_array(DATA)
    y, mask = ksp[None, None], acquired[None, None].astype(np.float32)
    print(f"k-space {ksp.shape}, R = {mask.size / mask.sum():.2f}, calibration "
          f"{calibration_region(mask)}")
    res = {"threads": a.threads, "acceleration": float(mask.size / mask.sum()), "seconds": {}}
    maps, res["seconds"]["espirit"] = timed(estimate_coils, y, mask)
    yt, st, mt = (torch.from_numpy(v) for v in (y, maps, mask))
    with torch.no_grad():
        zf, res["seconds"]["zero-filled"] = timed(zero_filled, yt, st, mt)
        cs, res["seconds"]["cg-sense"] = timed(cg_sense, yt, st, mt, lam=CGSENSE_LAMBDA,
                                               max_iter=CGSENSE_ITER)
    images = {"zero-filled": zf.numpy(), "CG-SENSE": cs.numpy()}
    res["presets"] = {}
    for name in a.presets:
        override = {k: v for k, v in (("max_epochs", a.max_epochs), ("steps_per_epoch", a.steps))
                    if v is not None}
        settings = ReconSettings(**{**PRESETS[name], **override})
        (model, hist), train_t = timed(train_zsssl, y, maps, mask, settings,
                                       log=lambda line: print(f"  {name} {line}", flush=True))
        x, infer_t = timed(reconstruct, model, y, maps, mask)
        images[f"ZSSSL {name}"] = x
        res["presets"][name] = {"settings": settings.as_dict(), "train_seconds": train_t,
                                "inference_seconds": infer_t, "epochs": hist["epochs"],
                                "best_epoch": hist["best_epoch"],
                                "best_val_loss": min(hist["val_loss"]),
                                "mu": hist["mu"][hist["best_epoch"]]}
    if a.seed_steps:
        res["seed_preset_timing"] = seed_step_time(y, maps, mask, a.seed_steps)
    res["measures"] = measures(images, y, maps, mask)
    figure(a.figure, mask, images)
    res["figure"] = str(a.figure)
    print(json.dumps(res, indent=1, default=str))
    if a.json:
        a.json.write_text(json.dumps(res, indent=1, default=str))
    return res


if __name__ == "__main__":
    main()
