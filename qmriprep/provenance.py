"""Sidecar provenance of every output: units, algorithm, reference, sources.

One table of what each estimator is and where it comes from, used by the workflows (sidecars)
and the methods boilerplate (``data/boilerplate.bib`` keys in brackets).
"""

from __future__ import annotations

from pathlib import Path

UNITS = {
    "T1map": "s", "T2map": "s", "T2starmap": "s",
    "R1map": "1/s", "R2map": "1/s", "R2starmap": "1/s",
    "M0map": "arbitrary", "TB1map": "percent", "fieldmap": "Hz",
    "T1mapRMSE": "arbitrary", "T2mapRMSE": "arbitrary", "T2starmapRMSE": "arbitrary",
}

ALGORITHMS = {
    ("MESE", "loglinear"): "Mono-exponential T2 fit S = M0 exp(-TE/T2): weighted log-linear least squares (weights S^2)",
    ("MESE", "nlls"): "Mono-exponential T2 fit S = M0 exp(-TE/T2): non-linear least squares (vectorised Levenberg-Marquardt)",
    ("MESE", "varpro"): "Mono-exponential T2 fit S = M0 exp(-TE/T2): variable projection (M0 in closed form, 1-D search over R2)",
    ("VFA", "linear"): "Variable flip angle T1, linear DESPOT1 (S/sin a vs S/tan a), B1+ corrected flip angles",
    ("VFA", "nlls"): "Variable flip angle T1, non-linear least squares on the SPGR equation, B1+ corrected flip angles",
    ("TB1DAM", ""): "Double angle method: B1 = arccos(S(2a) / (2 S(a))) / a",
    ("TB1AFI", ""): "Actual flip angle imaging: B1 = arccos((r n - 1)/(n - r)) / a, r = S2/S1, n = TR2/TR1",
    ("TB1TFL", ""): "Siemens turbo-FLASH B1 map: B1 = famp / (10 a_nominal)",
    ("TB1map", ""): "B1+ map provided by the scanner, resampled",
}
ALGORITHMS.update({("MEGRE", m): v.replace("T2", "T2*").replace("R2", "R2*")
                   for (k, m), v in list(ALGORITHMS.items()) if k == "MESE"})
_NET = ("multilayer perceptron trained in silico for this protocol on the pc-bSSFP signal model, "
        "input: normalised Fourier configurations F-1, F0, F+1 and B1+")
ALGORITHMS.update({
    ("bSSFP", "miracle"): "MIRACLE: alternating golden-section searches for T2 and T1 on the "
                          "configuration ratios of pc-bSSFP (magnitudes of F-1, F0, F+1)",
    ("bSSFP", "svnn"): f"SVNN (supervised) {_NET} magnitudes",
    ("bSSFP", "pinn"): f"PINN (physics-informed, self-supervised) {_NET} magnitudes",
    ("bSSFP", "svnncomplex"): f"SVNN (supervised) {_NET} real and imaginary parts; also off-resonance",
    ("bSSFP", "pinncomplex"): f"PINN (physics-informed, self-supervised) {_NET} real and imaginary "
                              "parts; also off-resonance",
})

ALGORITHMS[("DESS", "qdess")] = ("qDESS: T2 = -2 (TR - TE) / (ln(|S2/S1| / k) + c1) from the FISP (S1) and PSIF (S2) "
                                 "echoes, k and c1 from the assumed T1, flip angle and spoiler diffusion term")
#: reconstructions of undersampled k-space (rec-<method> images; maps from them cite both)
RECONSTRUCTIONS = {
    "zerofilled": "zero-filled: coil-combined inverse FFT E^H y with ESPIRiT sensitivities",
    "cgsense": "CG-SENSE: conjugate gradient on (E^H E + lambda I) x = E^H y, ESPIRiT sensitivities",
    "zsssl": "ZS-SSL: scan-specific zero-shot self-supervised unrolled network (residual CNN + CG data "
             "consistency), k-space split into data-consistency / loss / self-validation sets, "
             "memory-efficient learning",
}
RECONSTRUCTION_REFERENCES = {
    "zerofilled": "Uecker M et al. Magn Reson Med 2014;71:990 (ESPIRiT).",
    "cgsense": "Pruessmann KP et al. Magn Reson Med 2001;46:638. Uecker M et al. Magn Reson Med 2014;71:990 (ESPIRiT).",
    "zsssl": "Yaman B et al. ICLR 2022 (ZS-SSL). Yaman B et al. Magn Reson Med 2020;84:3172 (SSDU). "
             "Fujita N et al. PLOS ONE 2025, doi:10.1371/journal.pone.0324496 (qMRI with MEL).",
}

REFERENCES = {
    "MESE": "Meiboom S, Gill D. Rev Sci Instrum 1958;29:688. Golub G, Pereyra V. SIAM J Numer Anal 1973;10:413 (VarPro).",
    "MEGRE": "Chavhan GB et al. Radiographics 2009;29:1433. Golub G, Pereyra V. SIAM J Numer Anal 1973;10:413 (VarPro).",
    "VFA": "Fram EK et al. Magn Reson Imaging 1987;5:201. Deoni SCL et al. Magn Reson Med 2003;49:515.",
    "TB1DAM": "Insko EK, Bolinger L. J Magn Reson A 1993;103:82.",
    "TB1AFI": "Yarnykh VL. Magn Reson Med 2007;57:192.",
    "TB1TFL": "Chung S et al. Magn Reson Med 2010;64:439.",
    "TB1map": "",
    "DESS": "Sveinsson B et al. Magn Reson Imaging 2017;38:63.",
    "bSSFP": "Nguyen D, Bieri O. Magn Reson Med 2017;78:518 (MIRACLE). "
             "In silico trained SVNN/PINN for pc-bSSFP multi-parametric relaxometry (qmriprep seed 003).",
}


def bids_uris(files, bids_dir) -> list[str]:
    """``bids:raw:<relative path>`` URIs of raw files (BIDS 1.8 ``Sources``)."""
    root = Path(bids_dir).absolute()
    out = []
    for f in files:
        try:
            out.append("bids:raw:" + Path(f).absolute().relative_to(root).as_posix())
        except ValueError:
            out.append(Path(f).absolute().as_uri())
    return out


def map_meta(suffix: str, kind: str, method: str, sources: list[str], **extra) -> dict:
    """Sidecar of one parameter map."""
    meta = {
        "Units": UNITS.get(suffix, "arbitrary"),
        "EstimationAlgorithm": ALGORITHMS[(kind, method)],
        "EstimationReference": REFERENCES[kind],
        "Sources": list(sources),
        "SkullStripped": False,
    }
    meta.update(extra)
    return meta
