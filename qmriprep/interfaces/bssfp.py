"""Nipype interfaces of the pc-bSSFP pipeline: complex series, configurations, their noise after
denoising, B1 filter."""

from __future__ import annotations

import json
import os

import numpy as np
from nipype.interfaces.base import (BaseInterfaceInputSpec, File, InputMultiObject, SimpleInterface,
                                    TraitedSpec, isdefined, traits)

from ..utils.images import load_volume, optional_mask, save_like


def _load4d(path):
    import nibabel as nib

    img = nib.load(path)
    return np.asanyarray(img.dataobj), img


class _ComplexSeriesInputSpec(BaseInterfaceInputSpec):
    in_files = InputMultiObject(File(exists=True), mandatory=True,
                                desc="4-D parts: [mag, phase (rad)] or [real, imag]")
    parts = traits.Enum("magphase", "realimag", mandatory=True)
    align = traits.Bool(True, usedefault=True, desc="rigidly align the cycles to the middle one")
    seed = traits.Int(0, usedefault=True)


class _ComplexSeriesOutputSpec(TraitedSpec):
    out_file = File(desc="complex64 4-D series, cycles aligned")
    out_reference = File(desc="mean magnitude over cycles (reference image)")
    out_motion = File(desc="JSON: per-cycle translation (mm) and rotation (deg)")


class ComplexSeries(SimpleInterface):
    """Complex phase-cycle images from their parts, aligned (:mod:`qmriprep.registration.complex`)."""

    input_spec = _ComplexSeriesInputSpec
    output_spec = _ComplexSeriesOutputSpec
    #: float64 copies of the series at the peak (workflows.memory): 2.7 measured at 1 mm
    mem_copies = 3.0

    def _run_interface(self, runtime):
        from ..fit.fourier import complex_from_parts
        from ..registration.complex import align_complex_series
        from ..registration.rigid import motion_parameters

        (first, ref), (second, _) = (_load4d(f) for f in self.inputs.in_files)
        series = complex_from_parts(first.astype(float), second.astype(float), self.inputs.parts)
        motion = []
        if self.inputs.align and series.shape[-1] > 1:
            series, transforms = align_complex_series(series, ref.affine, seed=self.inputs.seed)
            for k, matrix in enumerate(transforms):
                shift, rot = motion_parameters(matrix)
                motion.append({"cycle": k + 1, "translation_mm": np.round(shift, 3).tolist(),
                               "rotation_deg": np.round(rot, 3).tolist()})
        out = lambda name: os.path.join(runtime.cwd, name)  # noqa: E731
        self._results["out_file"] = save_like(series, ref, out("complex.nii.gz"), dtype=np.complex64)
        self._results["out_reference"] = save_like(np.abs(series).mean(-1), ref, out("reference.nii.gz"))
        with open(out("motion.json"), "w") as fh:
            json.dump(motion, fh, indent=1)
        self._results["out_motion"] = out("motion.json")
        return runtime


class _ConfigurationsInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="complex 4-D phase-cycle series")
    phase_increments = traits.List(traits.Float, mandatory=True, desc="RF phase increments (rad)")
    gibbs = traits.Bool(True, usedefault=True, desc="Gibbs-ringing removal of the configurations")
    mask_file = File(exists=True)


class _ConfigurationsOutputSpec(TraitedSpec):
    out_file = File(desc="complex64 (x, y, z, 3): normalised F-1, F0, F+1")
    out_magnitude = File(desc="|F-1|, |F0|, |F+1| (derivative)")
    out_norm = File(desc="per-voxel norm the configurations were divided by (float32)")


class FourierConfigurations(SimpleInterface):
    """Normalised Fourier configurations F-1, F0, F+1 (:func:`qmriprep.fit.fourier.fourier_configurations`)."""

    input_spec = _ConfigurationsInputSpec
    output_spec = _ConfigurationsOutputSpec
    #: float64 copies of the series at the peak (workflows.memory): 4.0 measured at 1 mm
    mem_copies = 4.5

    def _run_interface(self, runtime):
        from ..fit.fourier import fourier_configurations

        series, ref = _load4d(self.inputs.in_file)
        mask = optional_mask(self.inputs.mask_file)
        feats, norm = fourier_configurations(series, self.inputs.phase_increments, gibbs=self.inputs.gibbs,
                                             mask=mask, return_norm=True)
        out = lambda name: os.path.join(runtime.cwd, name)  # noqa: E731
        self._results["out_file"] = save_like(feats, ref, out("configurations.nii.gz"), dtype=np.complex64)
        self._results["out_magnitude"] = save_like(np.abs(feats), ref, out("configurations_mag.nii.gz"))
        self._results["out_norm"] = save_like(norm, ref, out("configurations_norm.nii.gz"))
        return runtime


class _ConfigurationNoiseInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="the (denoised) complex 4-D phase-cycle series")
    noise_basis = File(desc="its NoiseBasis (.npz) from the Denoise node; undefined: not denoised")
    phase_increments = traits.List(traits.Float, mandatory=True, desc="RF phase increments (rad)")
    noise_sigma = traits.Float(mandatory=True, desc="noise sigma of the acquired series")


class _ConfigurationNoiseOutputSpec(TraitedSpec):
    noise_basis = File(desc="the noise of |F-1|, |F0|, |F+1| (3-channel NoiseBasis, .npz); undefined "
                            "when the series was not denoised")
    training_sigma = traits.Float(desc="the i.i.d. noise of the cycles giving the configuration "
                                       "magnitudes their median variance in the mask (noise_sigma "
                                       "when not denoised): what noise-matched networks train for")


class ConfigurationNoise(SimpleInterface):
    """The noise of the configurations of a denoised series
    (:func:`qmriprep.fit.fourier.configuration_noise`), for SD maps and network training."""

    input_spec = _ConfigurationNoiseInputSpec
    output_spec = _ConfigurationNoiseOutputSpec
    mem_copies = 3.0  # the series and the rows of its magnitudes' basis

    def _run_interface(self, runtime):
        from ..fit.denoise import NoiseBasis
        from ..fit.fourier import configuration_noise, iid_equivalent_sigma

        self._results["training_sigma"] = self.inputs.noise_sigma
        if not isdefined(self.inputs.noise_basis):
            return runtime
        series, _ = _load4d(self.inputs.in_file)
        basis = configuration_noise(NoiseBasis.load(self.inputs.noise_basis), series, self.inputs.phase_increments)
        self._results["training_sigma"] = iid_equivalent_sigma(self.inputs.noise_sigma, basis)
        self._results["noise_basis"] = basis.save(os.path.join(runtime.cwd, "configuration_noise.npz"))
        return runtime


class _MedianFilterB1InputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="B1+ map (fraction)")
    size_mm = traits.Float(10.0, usedefault=True, desc="median filter width (mm)")


class _MedianFilterB1OutputSpec(TraitedSpec):
    out_file = File()


class MedianFilterB1(SimpleInterface):
    """3-D median filter of a B1+ map (:func:`qmriprep.fit.b1.median_filter_b1`)."""

    input_spec = _MedianFilterB1InputSpec
    output_spec = _MedianFilterB1OutputSpec

    def _run_interface(self, runtime):
        from ..fit.b1 import median_filter_b1

        b1, img = load_volume(self.inputs.in_file)
        size = [max(1, int(round(self.inputs.size_mm / z))) for z in img.header.get_zooms()[:3]]
        self._results["out_file"] = save_like(median_filter_b1(b1, size=size), img,
                                              os.path.join(runtime.cwd, "b1_median.nii.gz"))
        return runtime
