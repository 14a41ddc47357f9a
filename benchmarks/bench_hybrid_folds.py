"""Cross-validation summary of ``bench_hybrid.py`` runs (issue 10): mean +- SD over held-out subjects.

    python benchmarks/bench_hybrid_folds.py WORK_DIR [WORK_DIR ...]

Each ``WORK_DIR`` is a finished ``bench_hybrid.py`` run (its ``results.json``: one row per held-out
subject, method and map), e.g. three folds on the same data with ``--held-out 01 02``, ``03 04``
and the default ``05 06``. Prints per map and method the mean and SD over the subjects of every
metric, and for hybrid vs supervised on how many subjects the hybrid model is better (MPE, HFEN
and the band errors lower; PSNR and SSIM higher).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ACCURACY = ("MPE", "PSNR", "SSIM", "HFEN", "MPE_edge", "MPE_inside")
KEYS = ACCURACY + ("in1SD", "in1SD_labels", "out_of_range")
HIGHER_IS_BETTER = {"PSNR", "SSIM"}


def load(folders) -> list[dict]:
    rows = []
    for folder in folders:
        rows += json.loads((Path(folder) / "results.json").read_text())
    return rows


def summary(rows) -> str:
    subjects = sorted({r["subject"] for r in rows})
    lines = [f"{len(subjects)} held-out subjects ({', '.join(subjects)}); mean +- SD over subjects", "",
             "| map | method | " + " | ".join(KEYS) + " |", "|---|---|" + "---|" * len(KEYS)]
    for m in ("T1map", "T2map"):
        for method in ("interpolated labels", "supervised", "hybrid"):
            sel = [r for r in rows if r["map"] == m and r["method"] == method]
            cells = []
            for k in KEYS:
                v = np.array([r.get(k, np.nan) for r in sel], float)
                cells.append("-" if np.isnan(v).all() else f"{v.mean():.4g} +- {v.std(ddof=1):.2g}")
            lines.append(f"| {m} | {method} | " + " | ".join(cells) + " |")
    lines += ["", "hybrid better than supervised (subjects):"]
    for m in ("T1map", "T2map"):
        by = {(r["method"], r["subject"]): r for r in rows if r["map"] == m}
        wins = []
        for k in ACCURACY:
            better = [(by["hybrid", s][k] > by["supervised", s][k]) == (k in HIGHER_IS_BETTER) for s in subjects]
            wins.append(f"{k} {sum(better)}/{len(subjects)}")
        lines.append(f"  {m}: " + ", ".join(wins))
    return "\n".join(lines)


if __name__ == "__main__":
    print(summary(load(sys.argv[1:])))
