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
    flip_angle = traits.Float(desc="nominal flip angle (deg): DAM first angle, AFI, TFL")
    repetition_times = traits.List(traits.Float, desc="AFI TR1, TR2 (s)")
    scale = traits.Float(1.0, usedefault=True, desc="TB1map: factor to a fraction (0.01 for percent)")
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
        kind, a = self.inputs.kind, np.deg2rad(self.inputs.flip_angle or 0.0)
        if kind == "TB1DAM":
            res = fb1.b1_from_dam(data, a)
        elif kind == "TB1AFI":
            res = fb1.b1_from_afi(data, *self.inputs.repetition_times, a)
        elif kind == "TB1TFL":
            res = fb1.b1_from_tfl(data[..., 1], a)
        else:
            b1 = data[..., 0] * self.inputs.scale
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
