"""pc-bSSFP network inference on a whole brain against this CPU's fp32 matrix-multiply limit.

    python benchmarks/bench_inference.py [--voxels 1500000] [--threads 2] [--repeat 3]

Times, in one run (best of ``--repeat``, wall and CPU seconds; ratios to the GEMM in both): ``TrainedModel.predict`` of the
shipped complex SVNN (6-256-256-3, ReLU) and magnitude SVNN (4-64-64-2) on ``--voxels`` random
configurations (all of it: normalisation, features, network, outputs); the bare ``net.mlp`` on
the same inputs in the same chunks; and a large fp32 GEMM (2048 x 2048 x 2048, the best this CPU
does with torch's BLAS). The network's floating-point work is ``2 sum(n_in n_out)`` per voxel
(multiply-adds of the three layers; biases and ReLU are not counted), ~1.36e5 flop for the
complex net, ~2.0e11 per 1.5 M voxels: the time at the GEMM rate is the practical limit.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qmriprep.nn.train import PREDICT_CHUNK  # noqa: E402
from qmriprep.nn.weights import SHIPPED_DIR, load_model  # noqa: E402


def best(fn, repeat):
    """(best wall s, CPU s of that run)."""
    runs = []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        runs.append((time.perf_counter() - wall, time.process_time() - cpu))
    return min(runs)


def mlp_flop(mlp) -> int:
    return sum(2 * m.in_features * m.out_features for m in mlp if isinstance(m, torch.nn.Linear))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--voxels", type=int, default=1_500_000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    F = (rng.standard_normal((args.voxels, 3)) + 1j * rng.standard_normal((args.voxels, 3))).astype(np.complex64)
    b1 = rng.uniform(0.8, 1.2, args.voxels).astype(np.float32)

    a = torch.randn(2048, 2048)
    gemm_wall, gemm_cpu = best(lambda: torch.mm(a, a), args.repeat)
    gemm_rate, gemm_cpu_rate = 2 * 2048 ** 3 / gemm_wall, 2 * 2048 ** 3 / gemm_cpu
    rows = [("fp32 GEMM 2048^3", gemm_wall, gemm_cpu, 2 * 2048 ** 3)]
    for name, fname, data in (("complex SVNN", "bssfp_svnncomplex_12.pt", F),
                              ("magnitude SVNN", "bssfp_svnn_12.pt", np.abs(F))):
        model = load_model(SHIPPED_DIR / fname)
        flop = mlp_flop(model.net.mlp) * args.voxels
        wall, cpu = best(lambda: model.predict(data, b1), args.repeat)
        rows.append((f"{name} predict ({model.net.mlp[0].in_features}-...-"
                     f"{model.net.mlp[-1].out_features}), {args.voxels:,} voxels", wall, cpu, flop))
        x = torch.randn(args.voxels, model.net.mlp[0].in_features)

        def bare():
            with torch.inference_mode():
                for s in range(0, args.voxels, PREDICT_CHUNK):
                    model.net.mlp(x[s:s + PREDICT_CHUNK])

        wall, cpu = best(bare, args.repeat)
        rows.append((f"{name} bare MLP, same chunks", wall, cpu, flop))

    print(f"\n## Network inference, {args.threads} threads, torch {torch.__version__}, "
          f"load average {os.getloadavg()[0]:.1f} at the end\n")
    print("| what | wall (s) | CPU (s) | GFLOP/s (wall) | time at the GEMM rate (s) | x that limit, "
          "wall / CPU |")
    print("|---|---|---|---|---|---|")
    for name, wall, cpu, flop in rows:
        print(f"| {name} | {wall:.3f} | {cpu:.2f} | {flop / wall / 1e9:.1f} | {flop / gemm_rate:.3f} | "
              f"{wall * gemm_rate / flop:.2f} / {cpu * gemm_cpu_rate / flop:.2f} |")
    cmd = " ".join(sys.argv[1:] if argv is None else argv)
    print(f"\n    OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']} python benchmarks/bench_inference.py {cmd}")


if __name__ == "__main__":
    main()
