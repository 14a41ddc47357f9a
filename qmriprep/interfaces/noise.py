"""Noise of a series (:func:`qmriprep.fit.noise.estimate_noise`) and its MP-PCA denoising
(:func:`qmriprep.fit.denoise.denoise_mppca`); complex series are recognised by their data type."""

from __future__ import annotations

import os

import numpy as np
from nipype.interfaces.base import (BaseInterfaceInputSpec, File, InputMultiObject, OutputMultiObject,
                                    SimpleInterface, TraitedSpec, isdefined, traits)

from ..utils.images import optional_mask, save_like
from .fit import _load

#: sidecar ``Denoising`` of maps fitted to a denoised series
DENOISED = ("MP-PCA (Veraart 2016, 5x5x5 patches, threshold from NoiseSigma) of the series before "
            "fitting; NoiseSigma is that of the acquired series, and the SD maps propagate it through "
            "each voxel's kept components (with the noise they absorbed) and add the signal the "
            "denoiser removed (first order)")


class _NoiseInputSpec(BaseInterfaceInputSpec):
    in_files = InputMultiObject(File(exists=True), mandatory=True,
                                desc="the series (3-D volumes in series order, or one 4-D file)")
    mask_file = File(exists=True, desc="foreground; absent: computed")


class _EstimateNoiseOutputSpec(TraitedSpec):
    sigma = traits.Float(desc="noise standard deviation per real channel (signal units)")
    meta = traits.Dict(desc="sidecar fields NoiseSigma, NoiseMethod, SNR")
    background = traits.Bool(desc="sigma came from a noise-only background (not from the PCA)")


class EstimateNoise(SimpleInterface):
    """Sigma, method and SNR of one acquired series."""

    input_spec = _NoiseInputSpec
    output_spec = _EstimateNoiseOutputSpec
    #: float64 copies of the series at the peak (workflows.memory): 2.1 (MEGRE) measured at 1 mm
    mem_copies = 2.5

    def _run_interface(self, runtime):
        from ..fit.noise import estimate_noise

        data, _ = _load(self.inputs.in_files)
        est = estimate_noise(data, is_complex=np.iscomplexobj(data),
                             mask=optional_mask(self.inputs.mask_file))
        self._results["sigma"] = est.sigma
        self._results["meta"] = {"NoiseSigma": est.sigma, "NoiseMethod": est.method,
                                 "SNR": None if np.isnan(est.snr) else round(est.snr, 2)}
        if est.channels is not None:
            self._results["meta"]["NoiseChannels"] = est.channels
        self._results["background"] = est.method.startswith("background")
        return runtime


class _DenoiseInputSpec(_NoiseInputSpec):
    noise_sigma = traits.Float(mandatory=True, desc="measured noise (threshold of every patch)")
    noise_meta = traits.Dict(desc="the series' noise sidecar fields, passed on")
    background = traits.Bool(True, usedefault=True, desc="the noise came from a noise-only background")
    require_background = traits.Bool(False, usedefault=True,
                                     desc="denoise only when it did (--denoise auto)")


class _DenoiseOutputSpec(TraitedSpec):
    out_files = OutputMultiObject(File(), desc="the series to fit: one denoised 4-D file (complex64 "
                                               "for a complex series, else float32) or the input")
    out_file = File(desc="the first of out_files (a 4-D series in one file)")
    meta = traits.Dict(desc="noise_meta, with Denoising when the series was denoised")
    noise_basis = File(desc="the components each voxel kept (qmriprep.fit.denoise.NoiseBasis, .npz); "
                            "undefined when the series was not denoised")


class Denoise(SimpleInterface):
    """MP-PCA denoised series inside the mask (outside: unchanged), or the series itself when
    ``require_background`` and the noise had no background to come from."""

    input_spec = _DenoiseInputSpec
    output_spec = _DenoiseOutputSpec
    #: float64 copies of the series at the peak (workflows.memory): dipy's MP-PCA patches; measured
    #: 3.05 GB for a 0.55 GB whole-brain 16-echo series (benchmarks/RESULTS.md, issue 12)
    mem_copies = 5.0

    def _run_interface(self, runtime):
        from ..fit.denoise import denoise_mppca

        meta = dict(self.inputs.noise_meta) if isdefined(self.inputs.noise_meta) else {}
        if self.inputs.require_background and not self.inputs.background:
            self._results.update(out_files=list(self.inputs.in_files), out_file=self.inputs.in_files[0],
                                 meta=meta)
            return runtime
        data, ref = _load(self.inputs.in_files)
        out, basis = denoise_mppca(data, optional_mask(self.inputs.mask_file), sigma=self.inputs.noise_sigma,
                                   return_basis=True)  # the fits' SD maps propagate the noise through it
        self._results["noise_basis"] = basis.save(os.path.join(runtime.cwd, "noise_basis.npz"))
        dtype = np.complex64 if np.iscomplexobj(out) else np.float32
        path = save_like(out, ref, os.path.join(runtime.cwd, "denoised.nii.gz"), dtype=dtype)
        self._results.update(out_files=[path], out_file=path, meta={**meta, "Denoising": DENOISED})
        return runtime
