"""Run time of a first run and of a no-op rerun (same work and output folders), and peak memory.

    python benchmarks/bench_resources.py OUT_DIR [--dataset demo|wholebrain] [--modalities MOD ...]
                                         [QMRIPREP OPTIONS]

``demo`` is the README demo (``python -m qmriprep.synth --demo`` and the options of
``scripts/demo.sh``); ``wholebrain`` a 1 mm phantom (``--downsample 1``) of ``--modalities`` (default MESE); the peak of
each node is in the run's ``resources.tsv``. Peak RSS is
sampled from /proc every 0.2 s over the qmriprep process and all its descendants (sum: what the
run needs at once) and per process (largest single process). Prints a Markdown table row.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

DEMO_OPTS = ["--nprocs", "2", "--omp-nthreads", "1", "--estimators", "mese:varpro,loglinear",
             "vfa:nlls,linear", "--recon", "zsssl", "cgsense", "--recon-epochs", "10", "--recon-steps", "10",
             "--nn-no-noise-match"]


def _children(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc/<pid>/task/*/children)."""
    todo, found = [pid], []
    while todo:
        p = todo.pop()
        found.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                todo += [int(c) for c in task.read_text().split()]
            except OSError:
                pass
    return found


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def measure(argv: list[str]) -> dict:
    """Wall time, peak summed RSS and peak single-process RSS (MB) of ``argv``."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    peak_sum = peak_one = 0.0
    while proc.poll() is None:
        rss = [_rss_mb(p) for p in _children(proc.pid)]
        peak_sum, peak_one = max(peak_sum, sum(rss)), max(peak_one, max(rss, default=0.0))
        time.sleep(0.2)
    if proc.returncode:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode})")
    return {"seconds": time.monotonic() - start, "peak_sum_mb": peak_sum, "peak_one_mb": peak_one}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--dataset", choices=["demo", "wholebrain"], default="demo")
    ap.add_argument("--modalities", nargs="+", default=["MESE"], help="wholebrain: collections to simulate")
    args, extra = ap.parse_known_args()  # the rest goes to qmriprep
    bids = args.out / "bids"
    synth = [sys.executable, "-m", "qmriprep.synth", "--overwrite", str(bids)]
    if args.dataset == "demo":
        subprocess.run([*synth[:3], "--demo", *synth[3:]], check=True)
        opts = DEMO_OPTS
    else:
        subprocess.run([*synth, "--downsample", "1", "--modalities", *args.modalities], check=True)
        opts = ["--nprocs", "2", "--omp-nthreads", "1"]
    cli = [sys.executable, "-m", "qmriprep.cli.run", str(bids), str(args.out / "derivatives"), "participant",
           "-w", str(args.out / "work"), *opts, *extra]
    first = measure(cli)
    again = measure(cli)
    load = os.getloadavg()[0]
    print(f"| {args.dataset} | {first['seconds']:.0f} s | {again['seconds']:.1f} s | "
          f"{100 * again['seconds'] / first['seconds']:.1f} % | {first['peak_sum_mb']:.0f} MB | "
          f"{first['peak_one_mb']:.0f} MB | {load:.1f} |")


if __name__ == "__main__":
    main()
