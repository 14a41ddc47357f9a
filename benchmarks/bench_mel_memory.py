"""Peak memory and time of one training step of the unrolled network, with and without MEL.

    python benchmarks/bench_mel_memory.py [--batch 1] [--contrasts 4] [--coils 8] [--size 128]
        [--unrolls 10] [--cg-iter 10] [--features 64] [--blocks 15] [--threads 1]

One step = forward (``x0 = E^H y``, ``unrolls`` x (CNN, ``cg-iter`` CG iterations)) + k-space
loss ``0.5 ||y - y^||_2/||y||_2 + 0.5 ||y - y^||_1/||y||_1`` + backward, float32/complex64 on
random coil maps (normalised, ``sum_n |S_n|^2 = 1``), a random 1/4 sampling mask and a random
image. Each mode runs in a fresh subprocess, warmed up by one step on an 8x8 problem (lazy
initialisation of torch kernels and modules is not counted); memory is the increase of the peak resident set
size over the resident set size just before the step (``ru_maxrss`` after minus
``/proc/self/statm`` before; Linux), plus ``torch.cuda.max_memory_allocated`` over the
allocation before the step when a GPU is present. MEL = per-unroll checkpointing of the CNN and
the implicit-backward CG layer (:mod:`qmriprep.recon.mel`); both modes compute the same loss.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qmriprep.recon.sense import SenseOp  # noqa: E402
from qmriprep.recon.unrolled import UnrolledNet  # noqa: E402

MB = 2.0 ** 20


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _kspace_loss(y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    diff = torch.view_as_real(y_hat - y)
    ref = torch.view_as_real(y)
    return 0.5 * diff.norm() / ref.norm() + 0.5 * diff.abs().sum() / ref.abs().sum()


def _problem(b: int, c: int, n: int, s: int, device: torch.device):
    """Normalised random coil maps, a 1/4 random mask and the k-space of a random image."""
    gen = torch.Generator().manual_seed(0)
    maps = torch.randn(b, n, s, s, dtype=torch.complex64, generator=gen)
    maps = maps / (maps.abs() ** 2).sum(dim=1, keepdim=True).sqrt()
    mask = (torch.rand(b, c, s, s, generator=gen) < 0.25).float()
    x = torch.randn(b, c, s, s, dtype=torch.complex64, generator=gen)
    maps, mask, x = maps.to(device), mask.to(device), x.to(device)
    return SenseOp(maps, mask).forward(x), maps, mask


def _step(model: UnrolledNet, y: torch.Tensor, maps: torch.Tensor, mask: torch.Tensor) -> float:
    """Forward, loss, backward; returns the loss."""
    loss = _kspace_loss(SenseOp(maps, mask).forward(model(y, maps, mask)), y)
    loss.backward()
    return float(loss)


def run_step(args: argparse.Namespace, mel: bool) -> dict:
    """Build the model, warm up on an 8x8 problem (lazy initialisation), measure one step."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    model = UnrolledNet(args.contrasts, n_unrolls=args.unrolls, cg_iter=args.cg_iter,
                        features=args.features, blocks=args.blocks, mel=mel).to(device)
    _step(model, *_problem(1, args.contrasts, 2, 8, device))
    model.zero_grad(set_to_none=True)
    y, maps, mask = _problem(args.batch, args.contrasts, args.coils, args.size, device)
    gc.collect()
    rss_before, cuda_before = _rss_bytes(), 0
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        cuda_before = torch.cuda.memory_allocated()
    t0 = time.perf_counter()
    loss = _step(model, y, maps, mask)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    result = {"mode": "MEL" if mel else "plain", "peak_mb": (_peak_rss_bytes() - rss_before) / MB,
              "seconds": seconds, "loss": loss}
    if device.type == "cuda":
        result["cuda_peak_mb"] = (torch.cuda.max_memory_allocated() - cuda_before) / MB
    return result


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--contrasts", type=int, default=4)
    p.add_argument("--coils", type=int, default=8)
    p.add_argument("--size", type=int, default=128, help="H = W")
    p.add_argument("--unrolls", type=int, default=10)
    p.add_argument("--cg-iter", type=int, default=10)
    p.add_argument("--features", type=int, default=64)
    p.add_argument("--blocks", type=int, default=15)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (shared machine)")
    p.add_argument("--worker", choices=("plain", "mel"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(run_step(args, mel=args.worker == "mel")))
        return
    settings = {k: v for k, v in vars(args).items() if k != "worker"}
    print("settings:", ", ".join(f"{k}={v}" for k, v in settings.items()),
          f"| torch {torch.__version__}, cuda={torch.cuda.is_available()}")
    cli = [f"--{k.replace('_', '-')}={v}" for k, v in settings.items()]
    results = []
    for mode in ("plain", "mel"):
        out = subprocess.run([sys.executable, __file__, *cli, f"--worker={mode}"],
                             check=True, capture_output=True, text=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    cuda = "cuda_peak_mb" in results[0]
    print("\n| mode | peak RSS increase (MB) |" + (" CUDA peak (MB) |" if cuda else "")
          + " step (s) | memory ratio | time ratio | loss |")
    print("|---|---:|" + ("---:|" if cuda else "") + "---:|---:|---:|---:|")
    base = results[0]
    for r in results:
        cuda_col = f" {r['cuda_peak_mb']:.0f} |" if cuda else ""
        print(f"| {r['mode']} | {r['peak_mb']:.0f} |{cuda_col} {r['seconds']:.2f} | "
              f"{r['peak_mb'] / base['peak_mb']:.2f} | {r['seconds'] / base['seconds']:.2f} | "
              f"{r['loss']:.6f} |")


if __name__ == "__main__":
    main()
