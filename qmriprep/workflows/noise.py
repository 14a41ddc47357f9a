"""Noise of each collection's acquired series and its optional MP-PCA denoising (graph only)."""

from __future__ import annotations

from nipype.pipeline import engine as pe

from ..interfaces.noise import Denoise, EstimateNoise


def connect_noise(workflow, *, series, mask, denoised_too=False):
    """An ``EstimateNoise`` node measuring ``series`` (``(node, output)``) in ``mask``; its
    outputs ``sigma`` and ``meta`` (NoiseSigma, NoiseMethod, SNR; ``Denoising`` when the
    estimators fit a denoised copy) feed the estimators."""
    noise = pe.Node(EstimateNoise(denoised=denoised_too), name="noise")
    workflow.connect([(series[0], noise, [(series[1], "in_files")]),
                      (mask[0], noise, [(mask[1], "mask_file")])])
    return noise


def denoised(workflow, *, kind: str, series, mask, config):
    """``(node, output)`` of the series to fit: ``series`` MP-PCA denoised inside ``mask`` when
    the ``noise`` config section applies to ``kind``, else ``series`` itself."""
    if not config.noise.applies_to(kind):
        return series
    node = pe.Node(Denoise(), name="denoise")
    workflow.connect([(series[0], node, [(series[1], "in_files")]),
                      (mask[0], node, [(mask[1], "mask_file")])])
    return node, "out_file"


def denoise_text(kind: str, config) -> str:
    """Methods sentence on denoising (empty when the series is not denoised)."""
    if not config.noise.applies_to(kind):
        return ""
    return (" The series was denoised by Marchenko-Pastur PCA of 5x5x5-voxel patches inside the "
            "mask before fitting [@veraart2016].")
