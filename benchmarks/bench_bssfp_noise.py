"""Noise-matched pc-bSSFP networks on the brain phantom (issue 11): accuracy, SD calibration.

The phantom of :mod:`qmriprep.synth.phantom` (2 mm voxels, 24 central slices, seed 0) is
simulated as the synthetic datasets do it (:func:`qmriprep.synth.bssfp.clean_signal`: B1+ field,
off-resonance, receiver phase; complex Gaussian noise of the seed's definition, ``sigma = 0.074
m0_ref / (sqrt(2) SNR)`` with ``m0_ref`` the mean PD of pure white matter), then the Fourier
configurations are formed as the pipeline does (:func:`qmriprep.fit.fourier.fourier_configurations`,
no Gibbs removal: the default of ``--gibbs``; optionally after MP-PCA, ``--denoise``). Every estimator gets the same configurations and the true B1+ map.

Estimators: MIRACLE (the pipeline's, :func:`qmriprep.estimators.bssfp.fit_miracle`), the networks as shipped today (``uniform``,
noise-free, ``--nn-distribution uniform --nn-snr 0``) and the noise-matched networks (``invivo``
prior, trained at the series' SNR measured from the data: :func:`qmriprep.fit.noise.estimate_noise`
on the complex series and the median configuration norm in the brain as the pipeline does,
:func:`qmriprep.nn.insilico.matched_snr`, snapped to the
grid of :func:`~qmriprep.nn.insilico.snap_snr`). Reported per tissue (pure WM, pure GM): median
absolute relative error of T1 and T2 (%), the fraction of voxels whose truth lies within +-1
network SD (pure WM and GM together, and the whole brain without CSF), and the out-of-range count.

Usage::

    python benchmarks/bench_bssfp_noise.py [--snr 30 50 100] [--cycles 12 4]
        [--nets svnn pinn svnncomplex pinncomplex] [--cache DIR] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from qmriprep.fit.fourier import fourier_configurations
from qmriprep.fit.uncertainty import denoised_network_sd
from qmriprep.estimators.bssfp import fit_miracle
from qmriprep.nn.insilico import matched_snr, seed_protocol, snap_snr
from qmriprep.nn.train import TrainSettings
from qmriprep.nn.weights import ModelSource, get_model
from qmriprep.synth import bssfp as sb
from qmriprep.synth.phantom import make_phantom

TISSUES = {"WM": 3, "GM": 2}


def phantom_data(n_cycles, snr, seed=0, denoise=False):
    """Configurations, B1, truth and masks of the noisy phantom series; sigma true and measured."""
    ph = make_phantom(downsample=2, n_slices=24, seed=0)
    sig = sb.clean_signal(ph, n_cycles)
    sigma = sb.noise_sigma(float(np.mean(ph.pd[ph.noise_reference()])), snr)
    rng = np.random.default_rng([seed, n_cycles, int(snr)])
    n = rng.standard_normal((2,) + sig.shape)
    sig = sig + sigma * (n[0] + 1j * n[1])
    brain = ph.mask & (ph.pd > 0.3)
    from qmriprep.fit.noise import estimate_noise
    est = estimate_noise(sig, is_complex=True, mask=None)
    measured, method = float(est.sigma), est.method
    protocol = seed_protocol(n_cycles)
    noise, measured_iid = None, measured
    if denoise:  # as the pipeline: threshold at the measured sigma, the magnitudes' noise basis
        from qmriprep.fit.denoise import denoise_mppca
        from qmriprep.fit.fourier import configuration_noise, iid_equivalent_sigma
        sig, basis = denoise_mppca(sig, brain, sigma=measured, return_basis=True)
        noise = configuration_noise(basis, sig, protocol.phase_increments)
        measured_iid = iid_equivalent_sigma(measured, noise)
    F, norm = fourier_configurations(sig, protocol.phase_increments, mask=brain, gibbs=False,  # pipeline default
                                     return_norm=True)
    masks = {t: brain & ph.pure & (ph.labels == lab) for t, lab in TISSUES.items()}
    masks["brain"] = brain & (ph.labels != 1)
    level = float(np.median(norm[brain]))
    return dict(F=F, norm=norm, b1=ph.b1, t1=ph.t1, t2=ph.t2, masks=masks, sigma=sigma, measured=measured,
                method=method, level=level, protocol=protocol, noise=noise,
                measured_iid=measured_iid, series_snr=matched_snr(measured_iid, level, protocol))


def crb_row(d, n_cycles, snr, seed=0):
    """The Cramer-Rao bound of an unbiased voxel-wise estimator from the full complex series (T1,
    T2, M0, receiver phase and off-resonance unknown, B1+ known; :func:`qmriprep.fit.uncertainty.crb_sd`),
    as the median absolute error it implies (0.674 SD) at the truth, per tissue."""
    from qmriprep.bids.protocols import BSSFPProtocol
    from qmriprep.fit.uncertainty import crb_sd
    from qmriprep.physics.bssfp import bssfp_signal

    ph = make_phantom(downsample=2, n_slices=24, seed=0)
    pr = d["protocol"]
    proto = BSSFPProtocol(pr.phase_increments, pr.tr, pr.flip_angle, pr.te)

    def model(t1, t2, m0, phase, theta, b1):
        return bssfp_signal(t1, t2, b1, theta, proto, m0=m0) * torch.exp(1j * phase)[:, None]

    m = d["masks"]["WM"] | d["masks"]["GM"]
    params = {"t1": ph.t1, "t2": ph.t2, "m0": ph.pd, "phase": np.zeros(ph.shape), "theta": sb.theta(ph)}
    sd = crb_sd(model, params, d["sigma"], m, fixed={"b1": ph.b1})
    return {p: 0.674 * sd[p] for p in ("t1", "t2")}


def errors(res, d):
    """Median absolute relative error (%) of T1, T2 per tissue."""
    return {(p, t): 100 * float(np.median(np.abs(res[p][d["masks"][t]] / d[p][d["masks"][t]] - 1)))
            for p in ("t1", "t2") for t in TISSUES}


def coverage(res, d, region):
    """Fraction (%) of voxels of ``region`` (``tissue``: pure WM and GM; ``brain``; ``unflagged``:
    the brain outside the estimator's out-of-range mask) whose truth lies within +-1 SD."""
    m = d["masks"]["WM"] | d["masks"]["GM"] if region == "tissue" else d["masks"]["brain"]
    if region == "unflagged" and "out_of_range" in res:
        m = m & (res["out_of_range"] == 0)
    return {p: 100 * float(np.mean(np.abs(res[p][m] - d[p][m]) <= res[f"{p}_sd"][m])) for p in ("t1", "t2")}


def network(name, d, training, cache):
    """A network's maps on ``d``; on a denoised series its SD as the pipeline gives it
    (:func:`qmriprep.fit.uncertainty.denoised_network_sd`)."""
    est, cpx = name.replace("complex", ""), name.endswith("complex")
    t0 = time.perf_counter()
    model, prov = get_model(d["protocol"], est, cpx, training, ModelSource(cache_dir=cache))
    F = d["F"] if cpx else np.abs(d["F"])
    res = model.predict(F, d["b1"])
    if d["noise"] is not None and training.snr:
        sd = denoised_network_sd(res, d["b1"], d["protocol"], sigma=d["measured"],
                                 training_sigma=d["measured_iid"] * d["series_snr"] / training.snr, norm=d["norm"],
                                 basis=d["noise"], mask=d["masks"]["brain"])
        res = {**res, **sd}
    return res, prov, time.perf_counter() - t0


def row(label, res, d, extra=""):
    e = errors(res, d)
    cells = [f"{e[(p, t)]:.1f}" for p in ("t1", "t2") for t in TISSUES]
    if "t1_sd" in res:
        cw, cb, cu = (coverage(res, d, r) for r in ("tissue", "brain", "unflagged"))
        cells += [f"{cw['t1']:.0f} / {cw['t2']:.0f}", f"{cb['t1']:.0f} / {cb['t2']:.0f} ({cu['t1']:.0f} / {cu['t2']:.0f})",
                  str(int(res["out_of_range"][d["masks"]["brain"]].sum())) if "out_of_range" in res else "-"]
    else:
        cells += ["", "", ""]
    print(f"| {label} | " + " | ".join(cells) + f" | {extra} |", flush=True)
    return e


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--snr", type=float, nargs="+", default=[30, 50, 100])
    ap.add_argument("--cycles", type=int, nargs="+", default=[12, 4])
    ap.add_argument("--nets", nargs="*", default=["svnn", "pinn", "svnncomplex", "pinncomplex"])
    ap.add_argument("--cache", default="/tmp/qmriprep-bench-noise")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-today", action="store_true", help="skip the noise-free uniform networks")
    ap.add_argument("--samples", type=int, default=None, help="training samples (default: the trainer's)")
    ap.add_argument("--epochs", type=int, default=None, help="training epochs (default: the trainer's)")
    ap.add_argument("--priors", nargs="*", default=["uniform", "invivo"], help="training distributions")
    ap.add_argument("--denoise", action="store_true", help="MP-PCA (qmriprep.fit.denoise) before the fits")
    ap.add_argument("--snr-factor", type=float, default=1.0,
                    help="train at this multiple of the matched SNR (after denoising: that of the i.i.d. "
                         "noise equivalent to the configurations', as the pipeline does)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    for n_cycles in args.cycles:
        for snr in args.snr:
            d = phantom_data(n_cycles, snr, denoise=args.denoise)
            train_snr = snap_snr(args.snr_factor * d["series_snr"])
            print(f"\n### {n_cycles} cycles, SNR {snr:g}{' (MP-PCA denoised)' if args.denoise else ''}: sigma {d['sigma']:.3g}, measured {d['measured']:.3g} "
                  f"({d['method']}), matched training SNR {train_snr}; "
                  f"{', '.join(f'{k} {int(v.sum())}' for k, v in d['masks'].items())} voxels\n")
            print("| estimator | T1 WM % | T1 GM % | T2 WM % | T2 GM % | within 1 SD WM+GM T1/T2 % "
                  "| within 1 SD brain T1/T2 % (unflagged) | out of range | notes |")
            print("|---|---|---|---|---|---|---|---|---|")
            t0 = time.perf_counter()
            mir = fit_miracle(d["F"], d["protocol"], b1=d["b1"], mask=d["masks"]["brain"],
                              noise_sigma=d["measured"], scale=d["norm"], noise_basis=d["noise"])
            base = row("MIRACLE", mir, d, f"{time.perf_counter() - t0:.1f} s")
            bound = crb_row(d, n_cycles, snr)
            row("Cramer-Rao bound (0.674 SD)", {p: d[p] + bound[p] for p in ("t1", "t2")}, d, "unbiased, voxel-wise")
            for name in args.nets:
                variants = [] if args.no_today else [("uniform, noise-free", TrainSettings(seed=0))]
                variants += [(f"{dist}, SNR {train_snr}", TrainSettings(
                    distribution=dist, snr=train_snr, seed=0, n_samples=args.samples, max_epochs=args.epochs))
                    for dist in args.priors]
                for label, training in variants:
                    res, prov, sec = network(name, d, training, args.cache)
                    e = row(f"{name} ({label})", res, d,
                            f"{prov['source']} ({prov['training_seconds']:.0f} s training)")
                    ratio = {k: e[k] / base[k] for k in e}
                    print("|  ratio to MIRACLE | " + " | ".join(f"{ratio[(p, t)]:.2f}" for p in ("t1", "t2")
                                                                    for t in TISSUES) + " | | | | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
