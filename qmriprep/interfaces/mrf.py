"""The reference image of an MRF series: the mean magnitude over its frames (complex or real)."""

from __future__ import annotations

import os

import numpy as np
from nipype.interfaces.base import BaseInterfaceInputSpec, File, InputMultiObject, SimpleInterface, TraitedSpec

from ..utils.images import save_like


class _MeanMagnitudeInputSpec(BaseInterfaceInputSpec):
    in_files = InputMultiObject(File(exists=True), mandatory=True, desc="the 4-D series (one file)")


class _MeanMagnitudeOutputSpec(TraitedSpec):
    out_file = File(desc="mean |signal| over the frames (3-D)")


class MeanMagnitude(SimpleInterface):
    """Mean magnitude over the 4th axis, read frame by frame (complex data keep their modulus)."""

    input_spec = _MeanMagnitudeInputSpec
    output_spec = _MeanMagnitudeOutputSpec

    def _run_interface(self, runtime):
        import nibabel as nib

        img = nib.load(self.inputs.in_files[0])
        n = img.shape[3] if img.ndim > 3 else 1
        total = np.zeros(img.shape[:3])
        for t in range(n):
            total += np.abs(np.asanyarray(img.dataobj[..., t] if img.ndim > 3 else img.dataobj))
        self._results["out_file"] = save_like(total / n, img, os.path.join(runtime.cwd, "mean.nii.gz"))
        return runtime
