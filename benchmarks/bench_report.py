"""Subject-report writing time and size, before (the report of commit c95d71d) and after (this
tree), on the same existing qmriprep output, interleaved so both see the same machine load.

    git archive c95d71d qmriprep | tar -x -C /tmp/oldq     # the baseline package
    python benchmarks/bench_report.py BIDS_DIR OUTPUT_DIR --baseline /tmp/oldq [--repeats 2]

The output is copied twice (the original is left alone); each report is rebuilt from scratch
(figures folder removed) in a fresh Python process, so imports are counted as in a run. The
"after" report gets the run's plan (collections, estimators, B1+ choice) as ``qmriprep`` gives
it. Prints seconds, figure count, figure megabytes and the ratio before/after.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

AFTER = """
import sys
from qmriprep.bids.collections import find_collections
from qmriprep.bids.layout import load_layout
from qmriprep.bids.plan import plan_subject
from qmriprep.config import Config
from qmriprep.reports.subject import ReportContext, build_report
cfg = Config()
cfg.workflow.estimators = {"mese": ["varpro", "loglinear"], "vfa": ["nlls", "linear"]}
plan = plan_subject("01", find_collections(load_layout(sys.argv[1]), "01"), cfg.workflow)
build_report(sys.argv[2], ReportContext("01", plan=plan, nprocs=int(sys.argv[3]),
             decisions=[i.decision() for i in plan.collections]))
"""
BEFORE = """
import sys
from qmriprep.reports.subject import ReportContext, build_report
build_report(sys.argv[2], ReportContext("01"))
"""


def _run(code: str, bids: str, out: Path, pythonpath: str | None, nprocs: int) -> dict:
    shutil.rmtree(out / "sub-01" / "figures", ignore_errors=True)
    env = dict(os.environ, **({"PYTHONPATH": pythonpath} if pythonpath else {}))
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, bids, str(out), str(nprocs)], check=True, env=env,
                   cwd=tempfile.gettempdir())
    seconds = time.perf_counter() - start
    figures = list((out / "sub-01" / "figures").glob("*.png"))
    return {"s": seconds, "n": len(figures), "mb": sum(f.stat().st_size for f in figures) / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bids")
    parser.add_argument("output")
    parser.add_argument("--baseline", required=True, help="folder holding the baseline qmriprep/")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--nprocs", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_report_"))
    copies = {}
    for name in ("before", "after"):
        copies[name] = work / name
        shutil.copytree(args.output, copies[name], ignore=shutil.ignore_patterns("figures"))
    results = {"before": [], "after": []}
    for _ in range(args.repeats):
        results["before"].append(_run(BEFORE, args.bids, copies["before"], args.baseline, 1))
        results["after"].append(_run(AFTER, args.bids, copies["after"], None, args.nprocs))
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for name, runs in results.items():
        best = min(runs, key=lambda r: r["s"])
        print(f"{name:6s}: best {best['s']:.1f} s of {[round(r['s'], 1) for r in runs]}, "
              f"{best['n']} figures, {best['mb']:.1f} MB")
    ratio = min(r["s"] for r in results["before"]) / min(r["s"] for r in results["after"])
    print(f"before/after: {ratio:.1f}x faster")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
