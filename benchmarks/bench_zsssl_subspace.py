"""ZS-SSL in the contrast subspace (issue 14): image NRMSE / SSIM and training time, beside CG-SENSE.

    python benchmarks/bench_zsssl_subspace.py [--data phantom real multiexp] [--r 4 8] [--preset quick] [--threads 2]
                                              [--methods cgsense zsssl "zsssl subspace"] [--seed 0]
                                              [--set max_epochs=20 'schedule="cosine"']

Three kinds of 230 x 180 x 8-echo slice sets (8 coils, SNR 50, line masks with 24 calibration
lines shared by the echoes, ESPIRiT maps from the undersampled data), scored against the noise-free
truth in the brain:

- ``phantom``: ``bench_zsssl_speed.slice_set`` (mono-exponential echoes of the 1 mm phantom);
- ``real``: ``pretrain_zsssl.real_slice_set`` (real anatomy: qMRLab's MESE slice, VarPro fit);
- ``multiexp``: the phantom with echoes that are *not* mono-exponential, so that the data's
  subspace is not the model's: myelin water (15 % of WM, 5 % of GM, T2 15 ms) and an odd/even echo
  modulation of +-8 % varying across the field of view (as stimulated echoes of a CPMG train with
  imperfect refocusing do);
- ``megre``: the phantom as a multi-echo gradient echo (complex echoes, T2*, TE 3-24 ms, the
  phantom's off-resonance): the phase evolution across echoes raises the subspace's rank.

For each: CG-SENSE (``recon.pipeline``: lambda 1e-2, 30 iterations), ZSSSL with the preset
without the subspace (``subspace`` off) and with it, both through ``recon.pipeline.reconstruct``
as a run calls it; one process, the runs one after the other, ``--threads`` torch threads.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import bench_zsssl_speed as B  # noqa: E402
import pretrain_zsssl as P  # noqa: E402


def _slice_set_with(echoes, r: float) -> dict:
    """``bench_zsssl_speed.slice_set`` with ``echoes(pd, t2, te)`` in place of the mono-exponential model."""
    import qmriprep.physics.exponential as X

    mono, X.monoexp = X.monoexp, echoes
    try:
        return B.slice_set(r=r)
    finally:
        X.monoexp = mono


def multiexp_set(r: float) -> dict:
    """The phantom slice set with the non-mono-exponential echoes described in the docstring."""

    def echoes(pd, t2, te):
        h, w = pd.shape[:2]
        yy, xx = np.mgrid[:h, :w]
        across = (np.sin(2 * np.pi * xx / w) * np.cos(np.pi * yy / h))[..., None, None]
        myelin = np.where((t2 > 0.06) & (t2 < 0.075), 0.15, np.where((t2 >= 0.075) & (t2 < 0.12), 0.05, 0.0))
        odd_even = np.where(np.arange(te.size) % 2 == 0, 1.0, -1.0)
        return (pd * ((1 - myelin) * np.exp(-te / np.maximum(t2, 1e-3)) + myelin * np.exp(-te / 0.015))
                * (1 + 0.08 * across * odd_even))

    return _slice_set_with(echoes, r)


METHODS = ("cgsense", "zsssl", "zsssl subspace")


def megre_set(r: float) -> dict:
    """The phantom slice set as a multi-echo gradient echo: complex echoes
    ``pd exp(-TE/T2*) exp(i 2 pi df TE)`` at TE 3-24 ms with the phantom's off-resonance ``df``
    (+-28 Hz, 1st-99th percentile: up to 4 rad of phase at the last echo)."""
    from qmriprep.synth.phantom import make_phantom

    ph = make_phantom(downsample=1, crop=False, n_slices=1, seed=0)   # slice_set's phantom
    df, t2s = ph.off_resonance[..., None], ph.safe("t2star")[..., None]

    def echoes(pd, _t2, te):
        te = 0.3 * te                      # slice_set's 10-80 ms -> 3-24 ms
        return pd * np.exp(-te / t2s) * np.exp(2j * np.pi * df * te)

    return _slice_set_with(echoes, r)


def run(data: str, r: float, preset: str, methods=METHODS, seed: int = 0, changes=None) -> dict:
    from qmriprep.recon.coils import estimate_coils
    from qmriprep.recon.pipeline import PRESETS, KspaceCollection, reconstruct
    from qmriprep.recon.zsssl import ReconSettings

    d = {"phantom": B.slice_set, "real": P.real_slice_set, "multiexp": multiexp_set, "megre": megre_set}[data](r=r)
    col = KspaceCollection(d["y"], d["mask"], scans=[SimpleNamespace(metadata={})], files=[data])
    maps = estimate_coils(d["y"], d["mask"]).astype(np.complex64)
    settings = dataclasses.replace(ReconSettings(), **{**PRESETS[preset], **(changes or {})}, seed=seed)
    out = {}
    for name, method, st in (("cgsense", "cgsense", None),
                             ("zsssl", "zsssl", dataclasses.replace(settings, subspace=False)),
                             ("zsssl subspace", "zsssl", dataclasses.replace(settings, subspace=True))):
        if name not in methods:
            continue
        t = time.perf_counter()
        images, info = reconstruct(col, maps, method, settings=st, log=lambda *_: None)
        out[name] = {**B.scores(images, d), "seconds": round(time.perf_counter() - t, 1),
                     "rank": (info.get("ContrastSubspace") or {}).get("Rank")}
        print(data, r, name, json.dumps(out[name]), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="+", default=["phantom", "real", "multiexp"])
    ap.add_argument("--r", nargs="+", type=float, default=[4.0, 8.0])
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0, help="ZSSSL's random seed (splits, weights)")
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    ap.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                    help="ReconSettings fields over the preset's (JSON values), e.g. max_epochs=20 schedule='\"cosine\"'")
    args = ap.parse_args()
    changes = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    torch.set_num_threads(args.threads)
    rows = []
    for data in args.data:
        for r in args.r:
            res = run(data, r, args.preset, [*set(args.methods) | {"cgsense"}], args.seed, changes)
            base = res["cgsense"]["nrmse"]
            for name, v in res.items():
                rows.append(f"| {data} | {r:g} | {name} | {v['rank'] or ''} | {v['nrmse']:.4f} "
                            f"({100 * (v['nrmse'] / base - 1):+.1f} %) | {v['ssim']:.3f} | {v['seconds']} |")
    print("| data | R | method | rank | NRMSE (vs CG-SENSE) | SSIM | seconds |\n|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
