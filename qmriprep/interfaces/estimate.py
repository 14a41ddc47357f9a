"""The foreground (brain) mask of a collection; the estimators themselves run through
:class:`qmriprep.interfaces.fit.FitMaps`."""

from __future__ import annotations

import os

import numpy as np
from nipype.interfaces.base import (BaseInterfaceInputSpec, File, InputMultiObject, SimpleInterface,
                                    TraitedSpec)

from ..utils.images import load_series, save_like


class _ForegroundMaskInputSpec(BaseInterfaceInputSpec):
    in_files = InputMultiObject(File(exists=True), mandatory=True,
                                desc="volumes of one collection; their mean drives the mask")


class _ForegroundMaskOutputSpec(TraitedSpec):
    out_mask = File(desc="brain / foreground mask")
    out_reference = File(desc="mean of the input volumes (reference image)")


class ForegroundMask(SimpleInterface):
    """Foreground (brain) mask of a collection (:func:`qmriprep.fit.mask.foreground_mask`)."""

    input_spec = _ForegroundMaskInputSpec
    output_spec = _ForegroundMaskOutputSpec

    def _run_interface(self, runtime):
        from ..fit.mask import foreground_mask

        data, ref = load_series(self.inputs.in_files)
        mean = data.mean(-1)
        mask = foreground_mask(mean, voxel_size_mm=ref.header.get_zooms()[:3])
        self._results["out_mask"] = save_like(mask, ref, os.path.join(runtime.cwd, "mask.nii.gz"),
                                              dtype=np.uint8)
        self._results["out_reference"] = save_like(mean, ref, os.path.join(runtime.cwd, "ref.nii.gz"))
        return runtime
