"""Noise of a series (:func:`qmriprep.fit.noise.estimate_noise`) and its MP-PCA denoising
(:func:`qmriprep.fit.denoise.denoise_mppca`); complex series are recognised by their data type."""

from __future__ import annotations

import os

import numpy as np
from nipype.interfaces.base import (BaseInterfaceInputSpec, File, InputMultiObject, SimpleInterface,
                                    TraitedSpec, traits)

from ..utils.images import optional_mask, save_like
from .fit import _load

#: sidecar ``Denoising`` of maps fitted to a denoised series
DENOISED = ("MP-PCA (Veraart 2016, 5x5x5 patches) of the series before fitting; NoiseSigma is that of "
            "the acquired series, so Cramer-Rao SD maps overstate the spread of these maps")


class _NoiseInputSpec(BaseInterfaceInputSpec):
    in_files = InputMultiObject(File(exists=True), mandatory=True,
                                desc="the series (3-D volumes in series order, or one 4-D file)")
    mask_file = File(exists=True, desc="foreground; absent: computed")


class _EstimateNoiseInputSpec(_NoiseInputSpec):
    denoised = traits.Bool(False, usedefault=True,
                           desc="the estimators fit an MP-PCA denoised copy (recorded in the sidecar)")


class _EstimateNoiseOutputSpec(TraitedSpec):
    sigma = traits.Float(desc="noise standard deviation per real channel (signal units)")
    meta = traits.Dict(desc="sidecar fields NoiseSigma, NoiseMethod, SNR")


class EstimateNoise(SimpleInterface):
    """Sigma, method and SNR of one acquired series."""

    input_spec = _EstimateNoiseInputSpec
    output_spec = _EstimateNoiseOutputSpec

    def _run_interface(self, runtime):
        from ..fit.noise import estimate_noise

        data, _ = _load(self.inputs.in_files)
        est = estimate_noise(data, is_complex=np.iscomplexobj(data),
                             mask=optional_mask(self.inputs.mask_file))
        self._results["sigma"] = est.sigma
        self._results["meta"] = {"NoiseSigma": est.sigma, "NoiseMethod": est.method,
                                 "SNR": None if np.isnan(est.snr) else round(est.snr, 2)}
        if self.inputs.denoised:
            self._results["meta"]["Denoising"] = DENOISED
        return runtime


class _DenoiseOutputSpec(TraitedSpec):
    out_file = File(desc="denoised 4-D series (complex64 for a complex series, else float32)")


class Denoise(SimpleInterface):
    """MP-PCA denoised series inside the mask (outside: unchanged)."""

    input_spec = _NoiseInputSpec
    output_spec = _DenoiseOutputSpec

    def _run_interface(self, runtime):
        from ..fit.denoise import denoise_mppca

        data, ref = _load(self.inputs.in_files)
        out = denoise_mppca(data, optional_mask(self.inputs.mask_file))
        dtype = np.complex64 if np.iscomplexobj(out) else np.float32
        self._results["out_file"] = save_like(out, ref, os.path.join(runtime.cwd, "denoised.nii.gz"),
                                              dtype=dtype)
        return runtime
