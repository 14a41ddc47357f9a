"""Noise estimation, MP-PCA denoising and Cramer-Rao SD maps on the brain phantom (issue 11).

    python benchmarks/bench_noise.py [--downsample 2] [--slices 40] [--cost]

1. Noise estimate / true sigma: MESE, VFA (Rician magnitude), MESE from 8 coils (root sum of
   squares), MESE with a Nyquist ghost and 12-cycle pc-bSSFP (complex), whole field of view,
   skull-stripped (zero outside the brain) and a tight box inside the brain (``--estimates``: only
   this table).
2. Median relative error of T2 (MESE, VarPro), T2* (MEGRE, VarPro) and T1 (VFA, NLLS, true B1+)
   in pure WM and GM, with and without MP-PCA denoising (thresholds from the measured sigma, as
   in the pipeline), at SNR 30 and 50 (synth definition:
   mean first volume in pure WM / sigma; Rician noise).
   pc-bSSFP (12 complex cycles, MIRACLE) likewise.
3. Calibration: fraction of tissue voxels whose truth lies within the fit +- its Cramer-Rao SD
   (MESE, MEGRE, VFA estimators; qDESS T2 with T1 assumed, so only where T1 is right).
4. ``--cost``: on the 1 mm whole-brain phantom (16-echo MESE), time of noise estimation,
   denoising and SD maps as ratios of the VarPro fit time measured in the same run;
   ``--cost-bssfp [--cost-cycles 12]``: the same for a pc-bSSFP series as ratios of the MIRACLE fit
   (MIRACLE's alias correction, MP-PCA
   of the complex cycles, the configurations' noise basis, MIRACLE's SD through it, and one
   network's SD rescaled to it, :func:`qmriprep.fit.uncertainty.denoised_network_sd`).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from qmriprep.fit.denoise import denoise_mppca
from qmriprep.fit.despot1 import fit_vfa
from qmriprep.fit.monoexp import fit_monoexp
from qmriprep.fit.noise import estimate_noise
from qmriprep.fit.uncertainty import monoexp_sd, spgr_sd
from qmriprep.synth import bssfp, contrasts
from qmriprep.synth.contrasts import PROTOCOL
from qmriprep.synth.kspace import coil_maps, root_sum_of_squares
from qmriprep.synth.phantom import make_phantom


def noisy_magnitude(ph, mod, snr, seed):
    clean = np.stack([v[2] for v in contrasts.complete_volumes(mod, ph)], -1)
    sigma = float(np.mean(clean[..., 0][ph.noise_reference()]) / snr)
    rng = np.random.default_rng(seed)
    n = rng.standard_normal((2,) + clean.shape)
    return np.hypot(clean + sigma * n[0], sigma * n[1]), sigma


def coil_magnitude(ph, snr, seed, coils=8):
    """MESE received by ``coils`` head-array coils, root sum of squares (sigma per real channel)."""
    clean = np.stack([v[2] for v in contrasts.complete_volumes("MESE", ph)], -1)
    sigma = float(np.mean(clean[..., 0][ph.noise_reference()]) / snr)
    return root_sum_of_squares(clean, coil_maps(ph, coils), sigma, np.random.default_rng(seed)), sigma


def ghosted(data, amplitude=0.1):
    """A Nyquist ghost: the image shifted by half the field of view along y, at ``amplitude``."""
    return np.hypot(data, amplitude * np.roll(data, data.shape[1] // 2, axis=1))


def noisy_complex(ph, snr, seed, n_cycles=12):
    sig = bssfp.clean_signal(ph, n_cycles)
    sigma = bssfp.noise_sigma(np.mean(ph.pd[ph.noise_reference()]), snr)
    n = np.random.default_rng(seed).standard_normal((2,) + sig.shape)
    return sig + sigma * (n[0] + 1j * n[1]), sigma


def views(ph, data):
    idx = np.argwhere(ph.mask)
    mid, half = (idx.min(0) + idx.max(0)) // 2, (idx.max(0) - idx.min(0)) // 4
    box = tuple(slice(m - h, m + h) for m, h in zip(mid[:2], half[:2])) + (slice(None),)
    return {"full FOV": (data, None), "skull-stripped": (data * ph.mask[..., None], ph.mask),
            "tight FOV": (data[box], None)}


def noise_table(ph):
    print("\n## 1. noise estimate / true sigma")
    print("| series | SNR | view | estimate / truth | method |\n|---|---|---|---|---|")
    for snr in (30, 50):
        for name, (data, sigma, cplx) in {
                "MESE (magnitude)": (*noisy_magnitude(ph, "MESE", snr, 1), False),
                "VFA (magnitude)": (*noisy_magnitude(ph, "VFA", snr, 2), False),
                "MESE, 8 coils (root sum of squares)": (*coil_magnitude(ph, snr, 4), False),
                "MESE, 10 % Nyquist ghost": (ghosted(noisy_magnitude(ph, "MESE", snr, 5)[0]),
                                             noisy_magnitude(ph, "MESE", snr, 5)[1], False),
                "pc-bSSFP 12 (complex)": (*noisy_complex(ph, snr, 3), True)}.items():
            for view, (d, mask) in views(ph, data).items():
                est = estimate_noise(d, is_complex=cplx, mask=mask)
                how = est.method.split(":")[0][:40] + (f" (N = {est.channels})" if est.channels else "")
                print(f"| {name} | {snr} | {view} | {est.sigma / sigma:.3f} | {how} |")


def tissue(ph):
    return {"WM": ph.pure & (ph.labels == 3), "GM": ph.pure & (ph.labels == 2)}


def fit_kind(ph, mod, data, sigma, method, basis=None):
    if mod == "VFA":
        p = PROTOCOL["VFA"]
        fa, tr = np.deg2rad(p["FlipAngle"]), p["RepetitionTimeExcitation"]
        maps = fit_vfa(data, fa, tr, b1=ph.b1, method=method, mask=ph.mask)
        return maps, "t1", spgr_sd(maps, fa, tr, sigma, ph.mask, ph.b1, basis), ph.t1
    te = np.asarray(PROTOCOL[mod]["EchoTime"])
    maps = fit_monoexp(data, te, method=method, mask=ph.mask)
    return maps, "t2", monoexp_sd(maps, te, sigma, ph.mask, basis), ph.t2 if mod == "MESE" else ph.t2star


def median_error(est, truth, where):
    return 100 * np.median(np.abs(est[where] - truth[where]) / truth[where])


def accuracy_and_calibration(ph):
    print("\n## 2-3. median |error| (%) in pure WM / GM without and with MP-PCA; calibration")
    print("| series | estimator | SNR | WM none | WM mppca | GM none | GM mppca | "
          "within +-1 SD (param) | within +-1 SD (M0) | within (mppca) |\n|---|---|---|---|---|---|---|---|---|---|")
    regions, brain = tissue(ph), ph.labels > 0
    for mod, methods in (("MESE", ("varpro", "nlls", "loglinear")), ("MEGRE", ("varpro", "nlls", "loglinear")),
                         ("VFA", ("nlls", "linear"))):
        for snr in (30, 50):
            data, sigma = noisy_magnitude(ph, mod, snr, 10 + snr)
            den, basis = denoise_mppca(data, ph.mask, sigma=estimate_noise(data, is_complex=False).sigma,
                                       return_basis=True)
            for method in methods:
                maps, key, sd, truth = fit_kind(ph, mod, data, sigma, method)
                dmaps, _, dsd, _ = fit_kind(ph, mod, den, sigma, method, basis)
                errs = [median_error(m[key], truth, regions[r]) for r in ("WM", "GM") for m in (maps, dmaps)]
                cov = np.mean(np.abs(maps[key] - truth)[brain] <= sd[f"{key}_sd"][brain])
                cov_m0 = np.mean(np.abs(maps["m0"] - ph.pd)[brain] <= sd["m0_sd"][brain])
                cov_d = np.mean(np.abs(dmaps[key] - truth)[brain] <= dsd[f"{key}_sd"][brain])
                print(f"| {mod} | {method} | {snr} | " + " | ".join(f"{e:.2f}" for e in errs)
                      + f" | {100 * cov:.1f} % | {100 * cov_m0:.1f} % | {100 * cov_d:.1f} % |", flush=True)


def bssfp_denoising(ph):
    """MIRACLE T1/T2 from 12 complex phase cycles (B1+ and off-resonance of the phantom)."""
    from qmriprep.fit.fourier import fourier_configurations
    from qmriprep.fit.miracle import fit_miracle

    p = bssfp.PROTOCOL
    inc = np.deg2rad(bssfp.phase_increments(12))
    print("\n## 2b. pc-bSSFP 12 cycles, MIRACLE: median |error| (%) without / with MP-PCA of the cycles")
    print("| SNR | WM T1 none | WM T1 mppca | WM T2 none | WM T2 mppca | GM T1 none | GM T1 mppca "
          "| GM T2 none | GM T2 mppca |\n|---|---|---|---|---|---|---|---|---|")
    regions = tissue(ph)
    for snr in (30, 50):
        data, _ = noisy_complex(ph, snr, 20 + snr)
        row = {}
        sigma = estimate_noise(data, is_complex=True).sigma  # thresholds as in the pipeline
        for label, series in (("none", data), ("mppca", denoise_mppca(data, ph.mask, sigma=sigma))):
            conf = fourier_configurations(series, inc, gibbs=False, mask=ph.mask)
            row[label] = fit_miracle(conf, ph.b1, flip_angle=np.deg2rad(p["FlipAngle"]),
                                     tr=p["RepetitionTimeExcitation"], mask=ph.mask)
        cells = [median_error(row[d][k], getattr(ph, k), regions[r])
                 for r in ("WM", "GM") for k in ("t1", "t2") for d in ("none", "mppca")]
        print(f"| {snr} | " + " | ".join(f"{c:.2f}" for c in cells) + " |", flush=True)


def dess_calibration(ph):
    """qDESS T2 Cramer-Rao SD: fraction of tissue voxels with the truth within +-1 SD."""
    from qmriprep.bids.protocols import DESSProtocol
    from qmriprep.fit.qdess import fit_qdess
    from qmriprep.fit.uncertainty import dess_sd
    from qmriprep.synth.kspace import DESS_PROTOCOL as P, dess_volumes

    protocol = DESSProtocol(tuple(P["EchoTime"]), P["RepetitionTimeExcitation"], np.deg2rad(P["FlipAngle"]),
                            P["SpoilerGradientAmplitude"], P["SpoilerGradientDuration"])
    clean = np.stack([v[2] for v in dess_volumes(ph)], -1).astype(np.float64)
    brain, t1 = ph.labels > 0, float(np.median(ph.t1[ph.pure & (ph.labels == 3)]))
    print("\n## 3b. qDESS T2 (true B1+, assumed T1 = the WM T1): within +-1 SD, by tissue")
    print("| SNR | all tissue | WM | GM | CSF |\n|---|---|---|---|---|")
    for snr in (30, 50):
        sigma = float(np.mean(clean[..., 0][ph.noise_reference()]) / snr)
        rng = np.random.default_rng(snr)
        n = rng.standard_normal((2,) + clean.shape)
        data = np.hypot(clean + sigma * n[0], sigma * n[1])
        t2 = fit_qdess(data[..., 0], data[..., 1], protocol, t1=t1, b1=ph.b1, mask=ph.mask)["t2"]
        sd = dess_sd(t2, data[..., 0], protocol, sigma, ph.mask, t1=t1, b1=ph.b1)["t2_sd"]
        within = np.abs(t2 - ph.t2) <= sd
        cells = [within[brain].mean()] + [within[ph.labels == k].mean() for k in (3, 2, 1)]
        print(f"| {snr} | " + " | ".join(f"{100 * c:.1f} %" for c in cells) + " |")


def cost():
    print("\n## 4. cost on the 1 mm whole-brain phantom (16-echo MESE)")
    ph = make_phantom(downsample=1, crop=True)
    data, sigma = noisy_magnitude(ph, "MESE", 30, 0)
    te = np.asarray(PROTOCOL["MESE"]["EchoTime"])
    clock = {}
    t = time.perf_counter()
    est = estimate_noise(data, is_complex=False)
    clock["noise estimate"] = time.perf_counter() - t
    t = time.perf_counter()
    maps = fit_monoexp(data, te, method="varpro", mask=ph.mask)
    clock["VarPro fit (baseline)"] = time.perf_counter() - t
    t = time.perf_counter()
    monoexp_sd(maps, te, est.sigma, ph.mask)
    clock["Cramer-Rao SD maps"] = time.perf_counter() - t
    t = time.perf_counter()
    denoise_mppca(data, ph.mask, sigma=est.sigma)
    clock["MP-PCA denoising"] = time.perf_counter() - t
    print(f"grid {ph.shape}, {int(ph.mask.sum())} voxels in the mask, sigma estimate / truth "
          f"{est.sigma / sigma:.3f}")
    cost_table(clock, "VarPro fit (baseline)")


def cost_table(clock: dict, baseline: str):
    """Seconds per step and their ratio to the ``baseline`` step, as a Markdown table."""
    print(f"| step | seconds | x {baseline.split(' (')[0]} |\n|---|---|---|")
    for k, v in clock.items():
        print(f"| {k} | {v:.1f} | {v / clock[baseline]:.2f} |")


def cost_bssfp(n_cycles: int):
    """Whole-brain cost of the pc-bSSFP noise steps and of MIRACLE's alias correction, as ratios
    of the MIRACLE fit without it."""
    from qmriprep.estimators.bssfp import fit_miracle
    from qmriprep.fit.fourier import configuration_noise, fourier_configurations
    from qmriprep.fit.miracle import fit_miracle as miracle_core
    from qmriprep.fit.uncertainty import denoised_network_sd, miracle_sd
    from qmriprep.nn.insilico import seed_protocol

    print(f"\n## 4b. cost on the 1 mm whole-brain phantom ({n_cycles}-cycle pc-bSSFP)")
    ph = make_phantom(downsample=1, crop=True)
    protocol = seed_protocol(n_cycles)
    data, sigma = noisy_complex(ph, 30, 0, n_cycles)
    clock, t = {}, time.perf_counter()

    def lap(name):
        nonlocal t
        clock[name], t = time.perf_counter() - t, time.perf_counter()

    est = estimate_noise(data, is_complex=True, mask=ph.mask)
    lap("noise estimate")
    den, basis = denoise_mppca(data, ph.mask, sigma=est.sigma, return_basis=True)
    lap("MP-PCA denoising (with the basis)")
    feats, norm = fourier_configurations(den, protocol.phase_increments, gibbs=False, mask=ph.mask, return_norm=True)
    lap("configurations")
    noise = configuration_noise(basis, den, protocol.phase_increments)
    lap("configuration noise basis")
    miracle_core(feats, ph.b1, flip_angle=protocol.flip_angle, tr=protocol.tr, mask=ph.mask)
    lap("MIRACLE fit (baseline)")
    fit = fit_miracle(feats, protocol, b1=ph.b1, mask=ph.mask)
    lap(f"MIRACLE estimator: fit and alias correction ({fit['meta']['AliasCorrectedVoxels']} voxels)")
    sd = {"sigma": est.sigma, "norm": norm, "mask": ph.mask}
    miracle_sd(fit["t1"], fit["t2"], ph.b1, protocol, **sd)
    lap("MIRACLE SD, i.i.d. noise")
    miracle_sd(fit["t1"], fit["t2"], ph.b1, protocol, basis=noise, **sd)
    lap("MIRACLE SD through the basis")
    heads = {**fit, "t1_sd": 0.05 * fit["t1"], "t2_sd": 0.05 * fit["t2"]}  # a network's estimate stands in
    denoised_network_sd(heads, ph.b1, protocol, sigma=est.sigma, training_sigma=est.sigma, norm=norm,
                        basis=noise, mask=ph.mask)
    lap("one network's SD rescaled")
    print(f"grid {ph.shape}, {int(ph.mask.sum())} voxels in the mask, {basis.vectors.shape[-1]} basis columns, "
          f"sigma estimate / truth {est.sigma / sigma:.3f}")
    cost_table(clock, "MIRACLE fit (baseline)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--downsample", type=int, default=2)
    parser.add_argument("--slices", type=int, default=40)
    parser.add_argument("--cost", action="store_true", help="only the whole-brain cost")
    parser.add_argument("--cost-bssfp", action="store_true", help="only the whole-brain pc-bSSFP cost")
    parser.add_argument("--cost-cycles", type=int, default=12, help="phase cycles of --cost-bssfp")
    parser.add_argument("--calibration", action="store_true", help="only tables 2-3 (errors and SD coverage)")
    parser.add_argument("--estimates", action="store_true", help="only table 1 (noise estimates)")
    args = parser.parse_args()
    if args.cost:
        return cost()
    if args.cost_bssfp:
        return cost_bssfp(args.cost_cycles)
    ph = make_phantom(downsample=args.downsample, crop=True, n_slices=args.slices)
    print(f"phantom {ph.shape}, {int(ph.mask.sum())} voxels with water")
    if args.calibration:
        return accuracy_and_calibration(ph)
    if args.estimates:
        return noise_table(ph)
    noise_table(ph)
    bssfp_denoising(ph)
    dess_calibration(ph)
    accuracy_and_calibration(ph)


if __name__ == "__main__":
    main()
