"""Noise of each collection's acquired series and its optional MP-PCA denoising (graph only)."""

from __future__ import annotations

from nipype.pipeline import engine as pe

from ..interfaces.noise import Denoise, EstimateNoise


def connect_noise(workflow, *, series, mask):
    """The ``noise`` node (:class:`EstimateNoise`) of ``series`` (``(node, output)``) in ``mask``,
    made once per workflow; outputs ``sigma``, ``meta`` (NoiseSigma, NoiseMethod, SNR) and
    ``background``."""
    if workflow.get_node("noise") is not None:
        return workflow.get_node("noise")
    noise = pe.Node(EstimateNoise(), name="noise")
    workflow.connect([(series[0], noise, [(series[1], "in_files")]),
                      (mask[0], noise, [(mask[1], "mask_file")])])
    return noise


def denoised(workflow, *, kind: str, series, mask, config, port="out_files"):
    """``(node, output)`` of the series to fit: the ``denoise`` node's when the ``noise`` config
    section applies to ``kind`` (``auto``: only when the noise came from a noise-only background,
    so that noise-free or skull-stripped data are never smoothed by a PCA that mistook signal for
    noise), else ``series`` itself. ``port``: ``out_files`` (a list) or ``out_file`` (one file)."""
    if not config.noise.applies_to(kind):
        return series
    noise = connect_noise(workflow, series=series, mask=mask)
    node = pe.Node(Denoise(require_background=config.noise.denoise == "auto"), name="denoise")
    workflow.connect([(series[0], node, [(series[1], "in_files")]),
                      (mask[0], node, [(mask[1], "mask_file")]),
                      (noise, node, [("sigma", "noise_sigma"), ("meta", "noise_meta"),
                                     ("background", "background")])])
    return node, port


def noise_meta_source(workflow):
    """``(node, "meta")`` carrying the noise sidecar fields: the ``denoise`` node when there is
    one (it adds ``Denoising``), else the ``noise`` node."""
    node = workflow.get_node("denoise")
    return (node if node is not None else workflow.get_node("noise")), "meta"


def denoise_text(kind: str, config) -> str:
    """Methods sentence on denoising (empty when the series is not denoised)."""
    if not config.noise.applies_to(kind):
        return ""
    when = ("Where that noise came from a noise-only background (sidecar field Denoising), the "
            if config.noise.denoise == "auto" else "The ")
    return (f" {when}series was denoised before fitting by Marchenko-Pastur PCA of 5x5x5-voxel patches "
            "inside the mask, thresholded at the measured noise [@veraart2016]; standard deviations "
            "of the fits to it propagate that noise through each voxel's kept components and add the "
            "signal variance the denoiser removed (first order).")
