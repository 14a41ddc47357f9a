#!/usr/bin/env python
"""Peer side of ``bench_bssfp_peer.py``: run ``ssfp.planet`` (PLANET) in the ssfp venv.

Runs with the interpreter of a separate virtual environment that has ``ssfp`` 1.2 and
``numpy<2`` (see ``benchmarks/README_peer.md``); it never imports qmriprep. Usage::

    /tmp/ssfpvenv/bin/python benchmarks/peer_planet.py WORKDIR [--chunk 20000]

Reads from ``WORKDIR``: ``signal.npy`` (complex, ``(N, n_cycles)`` phase-cycle signals),
``alpha.npy`` (``(N,)`` actual flip angle in rad, i.e. B1 x nominal), ``pcs.npy`` (RF
phase increments, rad) and ``params.json`` (``{"tr": s, "t1_guess": s}``).
Writes ``planet_t1.npy``, ``planet_t2.npy`` (s), ``planet_df.npy`` (Hz, PLANET's sign
convention), ``planet_m0.npy`` and ``planet_timing.json``.

Two work-arounds, both local to this process (ssfp and ellipsinator stay unmodified):

* ellipsinator 0.3's ``_fit_ellipse_process_params`` does ``assert np.iscomplex(x)`` on the
  whole array, which raises "truth value of an array ... is ambiguous" for more than one
  point; ``ssfp.planet`` always passes the complex data alone. We therefore fit the ellipses
  ourselves with the form it accepts, ``fast_guaranteed_ellipse_estimate(x.real, x.imag)``
  (the same function PLANET calls), and hand the coefficients to ``planet`` by replacing the
  module attribute ``ssfp.planet.ellipse_fit`` with a function returning them.
* ``planet`` drops voxels whose ellipse fit failed (all-zero coefficients) but then uses the
  full per-voxel ``alpha`` array, a shape mismatch; fitting first lets us pass only the
  voxels with a valid fit (the others are reported as failures, T1 = T2 = NaN).

The timing covers the ellipse fit plus ``planet`` (everything PLANET does), not file I/O or
interpreter start-up.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import ssfp
from ellipsinator import fast_guaranteed_ellipse_estimate

# ``ssfp/__init__`` re-exports the function ``planet``, shadowing the module of that name
planet_module = sys.modules["ssfp.planet"]


def planet_chunk(signal, alpha, tr, pcs, t1_guess):
    """PLANET on ``(n, n_cycles)`` signals; returns m0, t1, t2, df (NaN where the fit failed)."""
    n = signal.shape[0]
    out = [np.full(n, np.nan) for _ in range(4)]
    nonzero = np.abs(signal).sum(-1) > 0
    coefs = np.zeros((n, 6))
    if nonzero.any():
        coefs[nonzero] = fast_guaranteed_ellipse_estimate(
            np.ascontiguousarray(signal[nonzero].real), np.ascontiguousarray(signal[nonzero].imag))
    ok = nonzero & np.isfinite(coefs).all(-1) & (np.abs(coefs).sum(-1) > 0)
    if not ok.any():
        return out, int(n)
    planet_module.ellipse_fit = lambda _I: coefs[ok]  # the data planet would fit = signal[ok]
    with np.errstate(all="ignore"):
        m0, t1, t2, df = ssfp.planet(signal[ok], alpha[ok], tr, T1_guess=t1_guess, pcs=pcs)
    for o, v in zip(out, (m0, t1, t2, df)):
        o[ok] = v
    return out, int(n - ok.sum())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workdir", type=Path)
    ap.add_argument("--chunk", type=int, default=20_000, help="voxels per call (memory: ~50 kB per voxel)")
    args = ap.parse_args(argv)
    wd = args.workdir
    signal = np.load(wd / "signal.npy").astype(np.complex128)
    alpha = np.load(wd / "alpha.npy").astype(np.float64)
    pcs = np.load(wd / "pcs.npy").astype(np.float64)
    params = json.loads((wd / "params.json").read_text())
    n = signal.shape[0]
    res = [np.empty(n) for _ in range(4)]
    failed = 0
    c0, t0 = time.process_time(), time.perf_counter()
    for s in range(0, n, args.chunk):
        sl = slice(s, s + args.chunk)
        out, nf = planet_chunk(signal[sl], alpha[sl], float(params["tr"]), pcs, params.get("t1_guess"))
        failed += nf
        for r, o in zip(res, out):
            r[sl] = o
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    for name, r in zip(("m0", "t1", "t2", "df"), res):
        np.save(wd / f"planet_{name}.npy", r)
    info = {"seconds": seconds, "cpu_seconds": cpu, "voxels": n, "ellipse_fit_failures": failed, "chunk": args.chunk,
            "numpy": np.__version__, "ssfp": getattr(ssfp, "__version__", None), "python": sys.version.split()[0]}
    try:
        from importlib.metadata import version
        info["ssfp"] = version("ssfp")
        info["ellipsinator"] = version("ellipsinator")
    except Exception:  # noqa: BLE001 - versions are informative only
        pass
    (wd / "planet_timing.json").write_text(json.dumps(info, indent=1))
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
