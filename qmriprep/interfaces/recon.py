"""Nipype interfaces over :mod:`qmriprep.recon.pipeline`: coil estimation and reconstruction."""

from __future__ import annotations

import logging
import os

import numpy as np
from nipype.interfaces.base import (BaseInterfaceInputSpec, File, InputMultiObject, OutputMultiObject,
                                    SimpleInterface, TraitedSpec, isdefined, traits)

from .. import estimators

LOGGER = logging.getLogger("nipype.interface")


class _EstimateCoilsInputSpec(BaseInterfaceInputSpec):
    in_files = InputMultiObject(File(exists=True), mandatory=True,
                                desc="ISMRMRD k-space files of one collection, in series order")


class _EstimateCoilsOutputSpec(TraitedSpec):
    out_file = File(desc="coil sensitivities (S, N, H, W) as .npy")
    acceleration = traits.List(traits.Float, desc="acceleration per contrast")


class EstimateCoils(SimpleInterface):
    """ESPIRiT coil sensitivities of a k-space collection (:func:`qmriprep.recon.pipeline.coil_maps`)."""

    input_spec = _EstimateCoilsInputSpec
    output_spec = _EstimateCoilsOutputSpec
    #: memory in copies of the zero-filled k-space (workflows.memory; measured 0.7 GB for 0.32 GB)
    reads_kspace = True

    def _run_interface(self, runtime):
        from ..recon.pipeline import coil_maps, load_collection

        col = load_collection(self.inputs.in_files)
        out = os.path.join(runtime.cwd, "coil_maps.npy")
        np.save(out, coil_maps(col))
        self._results["out_file"] = out
        self._results["acceleration"] = col.acceleration
        return runtime


class _ReconstructInputSpec(BaseInterfaceInputSpec):
    in_files = InputMultiObject(File(exists=True), mandatory=True,
                                desc="ISMRMRD k-space files of one collection, in series order")
    coil_file = File(exists=True, mandatory=True, desc="coil sensitivities from EstimateCoils")
    method = traits.Str(mandatory=True, desc="a registered reconstruction (qmriprep.estimators)")
    settings = traits.Dict(desc="ZSSSL settings (qmriprep.recon.zsssl.ReconSettings fields)")
    init_model = File(exists=True, desc="saved ZSSSL model to start training from (transfer)")
    num_threads = traits.Int(1, usedefault=True, desc="torch threads")


class _ReconstructOutputSpec(TraitedSpec):
    out_files = OutputMultiObject(File(exists=True), desc="magnitude image per contrast")
    model_file = File(desc="trained ZSSSL model (.pt)")
    meta = traits.Dict(desc="sidecar fields of the reconstructed images")


class Reconstruct(SimpleInterface):
    """Joint reconstruction of the contrasts of a collection (:func:`qmriprep.recon.pipeline.reconstruct`)."""

    input_spec = _ReconstructInputSpec
    output_spec = _ReconstructOutputSpec
    #: complex128 copies of the zero-filled k-space at the peak (workflows.memory): measured 1.3
    #: (CG-SENSE) and 2.2 (ZS-SSL) on 12 slices of 149 x 186, 8 coils, 8 echoes (0.32 GB)
    mem_copies = 3.0
    reads_kspace = True

    def _run_interface(self, runtime):
        import torch

        from ..recon.pipeline import load_collection, reconstruct, save_images
        from ..recon.zsssl import ReconSettings

        torch.set_num_threads(self.inputs.num_threads)

        col = load_collection(self.inputs.in_files)
        maps = np.load(self.inputs.coil_file)
        settings = ReconSettings(**self.inputs.settings) if isdefined(self.inputs.settings) else None
        init = self.inputs.init_model if isdefined(self.inputs.init_model) else None
        learned = estimators.reconstruction(self.inputs.method).learned
        model_path = os.path.join(runtime.cwd, "model.pt") if learned else None
        images, info = reconstruct(col, maps, self.inputs.method, settings=settings, init=init,
                                   model_path=model_path, log=LOGGER.info)
        self._results["out_files"] = save_images(images, col, runtime.cwd)
        if model_path:
            self._results["model_file"] = model_path
        self._results["meta"] = _jsonable(info)
        return runtime


def _jsonable(value):
    """Sidecar-safe copy (numpy scalars to Python, NaN to None)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
