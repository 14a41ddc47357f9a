"""Nipype interface computing a B1+ map (fraction of nominal) from any supported B1 collection."""

from __future__ import annotations

import os

import numpy as np
from nipype.interfaces.base import (BaseInterfaceInputSpec, File, InputMultiObject, SimpleInterface,
                                    TraitedSpec, traits)

from ..utils.images import load_series, save_like


class _B1MapInputSpec(BaseInterfaceInputSpec):
    kind = traits.Enum("TB1DAM", "TB1AFI", "TB1TFL", "TB1map", mandatory=True)
    in_files = InputMultiObject(File(exists=True), mandatory=True,
                                desc="DAM [a, 2a]; AFI [TR1, TR2]; TFL [anat, famp]; TB1map [map]")
    protocol = traits.Dict(mandatory=True, desc="the collection's protocol fields in SI units: nominal "
                           "flip_angle (rad; DAM: the first angle), AFI tr1, tr2 (s), TB1map scale to "
                           "a fraction (0.01 for percent)")
    fwhm_mm = traits.Float(8.0, usedefault=True, desc="smoothing / hole-filling kernel (0: none)")


class _B1MapOutputSpec(TraitedSpec):
    out_b1 = File(desc="B1+ as a fraction of nominal, smoothed and hole-filled")
    out_raw = File(desc="B1+ fraction before smoothing (0 where undefined)")
    out_valid = File(desc="voxels where the estimate was defined")
    out_reference = File(desc="magnitude image in the B1 map's space (for registration)")


class B1Map(SimpleInterface):
    """B1+ from DAM, AFI or TFL data, or a scanner TB1map passed through (:mod:`qmriprep.fit.b1`)."""

    input_spec = _B1MapInputSpec
    output_spec = _B1MapOutputSpec

    def _run_interface(self, runtime):
        from ..fit import b1 as fb1

        data, ref = load_series(self.inputs.in_files)
        kind, p = self.inputs.kind, self.inputs.protocol
        if kind == "TB1DAM":
            res = fb1.b1_from_dam(data, p["flip_angle"])
        elif kind == "TB1AFI":
            res = fb1.b1_from_afi(data, p["tr1"], p["tr2"], p["flip_angle"])
        elif kind == "TB1TFL":
            res = fb1.b1_from_tfl(data[..., 1], p["flip_angle"])
        else:
            b1 = data[..., 0] * p["scale"]
            res = {"b1": b1, "valid": np.isfinite(b1) & (b1 > 0)}
        smooth = res["b1"]
        if self.inputs.fwhm_mm > 0:
            smooth = fb1.smooth_b1(res["b1"], res["valid"], ref.header.get_zooms()[:3],
                                   fwhm_mm=self.inputs.fwhm_mm)
        out = lambda name: os.path.join(runtime.cwd, name)  # noqa: E731
        self._results["out_b1"] = save_like(smooth, ref, out("b1.nii.gz"))
        self._results["out_raw"] = save_like(res["b1"], ref, out("b1_raw.nii.gz"))
        self._results["out_valid"] = save_like(res["valid"], ref, out("valid.nii.gz"), dtype=np.uint8)
        self._results["out_reference"] = save_like(data[..., 0], ref, out("reference.nii.gz"))
        return runtime


class _ScaleImageInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True)
    factor = traits.Float(mandatory=True)


class _ScaleImageOutputSpec(TraitedSpec):
    out_file = File()


class ScaleImage(SimpleInterface):
    """Multiply an image by a constant (unit conversion at the output boundary, e.g. to percent)."""

    input_spec = _ScaleImageInputSpec
    output_spec = _ScaleImageOutputSpec

    def _run_interface(self, runtime):
        import nibabel as nib

        img = nib.load(self.inputs.in_file)
        data = np.asarray(img.dataobj, dtype=np.float64) * self.inputs.factor
        self._results["out_file"] = save_like(data, img, os.path.join(runtime.cwd, "scaled.nii.gz"))
        return runtime
