"""One Nipype interface for every conventional estimator: load, call the core function, save.

The core function is named by the estimator's registry declaration (``"module:function"``) and
called as ``core(series, protocol, b1=..., mask=..., **options)`` with the protocol rebuilt in SI
units (and ``affine=`` the series' affine for a core that declares that parameter); the
interface's outputs are the declared map fields (set per node, like Nipype's ``Function``
interface) and ``meta``, the sidecar fields the core returned under ``"meta"`` (after the series'
noise fields ``noise_meta``).
"""

from __future__ import annotations

import inspect
import os

import numpy as np
from nipype.interfaces.base import (BaseInterfaceInputSpec, DynamicTraitedSpec, File, InputMultiObject,
                                    SimpleInterface, isdefined, traits)

from ..utils.images import load_series, optional_mask, optional_volume, save_like


class _FitMapsInputSpec(BaseInterfaceInputSpec):
    in_files = InputMultiObject(File(exists=True), mandatory=True,
                                desc="the series (3-D volumes in series order, or one 4-D file)")
    core = traits.Str(mandatory=True, desc="core function, 'package.module:function'")
    protocol = traits.Dict(mandatory=True, desc="protocol fields in SI units (s, rad)")
    protocol_type = traits.Str(mandatory=True, desc="protocol dataclass, 'package.module:Class'")
    options = traits.Dict(desc="keyword arguments of the core function (settings)")
    b1_file = File(exists=True, desc="B1+ map (fraction of nominal) on the same grid; absent: B1 = 1")
    mask_file = File(exists=True, desc="voxels to fit")
    noise_sigma = traits.Float(desc="measured noise sigma, passed to the core as noise_sigma "
                                    "(estimators writing standard-deviation maps)")
    noise_meta = traits.Dict(desc="sidecar fields of the series' noise (NoiseSigma, NoiseMethod, SNR)")
    noise_basis_file = File(exists=True, desc="the components each voxel of a denoised series kept "
                                              "(qmriprep.fit.denoise.NoiseBasis), passed as noise_basis")
    scale_file = File(exists=True, desc="per-voxel level the data were normalised by (pc-bSSFP: the "
                                        "configurations' norm), passed to the core as scale")


class FitMaps(SimpleInterface):
    """Parameter maps of one estimator (outputs: the fields named at construction)."""

    input_spec = _FitMapsInputSpec
    output_spec = DynamicTraitedSpec
    #: float64 copies of the series at the peak (workflows.memory); measured at 1 mm whole brain:
    #: VFA NLLS 4.8, DESS 2.7, MEGRE VarPro 1.4 (benchmarks/RESULTS.md, issue 12)
    mem_copies = 5.0

    def __init__(self, outputs=(), **inputs):
        super().__init__(**inputs)
        self._fields = tuple(outputs)

    def _outputs(self):
        base = super()._outputs()
        for name in self._fields:
            base.add_trait(name, File())
        base.add_trait("meta", traits.Dict())
        return base

    def _run_interface(self, runtime):
        from ..estimators import resolve

        data, ref = _load(self.inputs.in_files)
        protocol = resolve(self.inputs.protocol_type)(**self.inputs.protocol)
        options = dict(self.inputs.options) if self.inputs.options else {}
        if isdefined(self.inputs.noise_sigma):
            options["noise_sigma"] = self.inputs.noise_sigma
        if isdefined(self.inputs.noise_basis_file):
            from ..fit.denoise import NoiseBasis
            options["noise_basis"] = NoiseBasis.load(self.inputs.noise_basis_file)
        if isdefined(self.inputs.scale_file):
            options["scale"] = optional_volume(self.inputs.scale_file)
        core = resolve(self.inputs.core)
        if "affine" in inspect.signature(core).parameters:  # cores that work in anatomical planes
            options["affine"] = ref.affine
        res = core(data, protocol, b1=optional_volume(self.inputs.b1_file),
                   mask=optional_mask(self.inputs.mask_file), **options)
        for key in self._fields:
            flags = np.asarray(res[key]).dtype in (np.bool_, np.uint8)  # masks stay masks
            self._results[key] = save_like(res[key], ref, os.path.join(runtime.cwd, f"{key}.nii.gz"),
                                           dtype=np.uint8 if flags else np.float32)
        noise = dict(self.inputs.noise_meta) if isdefined(self.inputs.noise_meta) else {}
        self._results["meta"] = {**noise, **res.get("meta", {})}
        return runtime


def _load(files):
    """The series as an array with the series on the last axis: float64, or complex as stored."""
    import nibabel as nib

    files = list(files)
    if len(files) == 1:
        img = nib.load(files[0])
        if img.ndim == 4 and np.iscomplexobj(np.empty(0, img.get_data_dtype())):
            return np.asanyarray(img.dataobj), img
    return load_series(files)
