"""Nipype interfaces over the conventional estimators in :mod:`qmriprep.fit`."""

from __future__ import annotations

import os

import numpy as np
from nipype.interfaces.base import (BaseInterfaceInputSpec, File, InputMultiObject, SimpleInterface,
                                    TraitedSpec, traits)

from ..utils.images import load_series, optional_mask, optional_volume, save_like


class _MonoExpFitInputSpec(BaseInterfaceInputSpec):
    in_files = InputMultiObject(File(exists=True), mandatory=True, desc="echoes, in echo order")
    echo_times = traits.List(traits.Float, mandatory=True, desc="echo times (s)")
    method = traits.Enum("varpro", "nlls", "loglinear", usedefault=True)
    drop_first_echo = traits.Bool(False, usedefault=True)
    offset = traits.Bool(False, usedefault=True, desc="fit a constant noise-floor offset")
    mask_file = File(exists=True, desc="voxels to fit")


class _MonoExpFitOutputSpec(TraitedSpec):
    t2 = File(desc="T2 or T2* (s)")
    r2 = File(desc="R2 or R2* (1/s)")
    m0 = File(desc="signal at TE = 0")
    rmse = File(desc="root-mean-square residual")


class MonoExpFit(SimpleInterface):
    """Mono-exponential T2 / T2* fit of a multi-echo series (:func:`qmriprep.fit.monoexp.fit_monoexp`)."""

    input_spec = _MonoExpFitInputSpec
    output_spec = _MonoExpFitOutputSpec

    def _run_interface(self, runtime):
        from ..fit.monoexp import fit_monoexp

        data, ref = load_series(self.inputs.in_files)
        mask = optional_mask(self.inputs.mask_file)
        res = fit_monoexp(data, np.asarray(self.inputs.echo_times), method=self.inputs.method,
                          drop_first_echo=self.inputs.drop_first_echo, offset=self.inputs.offset,
                          mask=mask)
        for key in ("t2", "r2", "m0", "rmse"):
            self._results[key] = save_like(res[key], ref, os.path.join(runtime.cwd, f"{key}.nii.gz"))
        return runtime


class _VFAFitInputSpec(BaseInterfaceInputSpec):
    in_files = InputMultiObject(File(exists=True), mandatory=True, desc="SPGR volumes, one per angle")
    flip_angles = traits.List(traits.Float, mandatory=True, desc="nominal flip angles (deg)")
    repetition_time = traits.Float(mandatory=True, desc="TR (s)")
    b1_file = File(exists=True, desc="B1+ map (fraction of nominal) on the same grid")
    method = traits.Enum("nlls", "linear", usedefault=True)
    mask_file = File(exists=True, desc="voxels to fit")


class _VFAFitOutputSpec(TraitedSpec):
    t1 = File(desc="T1 (s)")
    r1 = File(desc="R1 (1/s)")
    m0 = File(desc="equilibrium magnetisation")
    rmse = File(desc="root-mean-square residual")


class VFAFit(SimpleInterface):
    """Variable flip angle T1 fit with B1+ correction (:func:`qmriprep.fit.despot1.fit_vfa`)."""

    input_spec = _VFAFitInputSpec
    output_spec = _VFAFitOutputSpec

    def _run_interface(self, runtime):
        from ..fit.despot1 import fit_vfa

        data, ref = load_series(self.inputs.in_files)
        mask = optional_mask(self.inputs.mask_file)
        b1 = optional_volume(self.inputs.b1_file)
        res = fit_vfa(data, np.deg2rad(self.inputs.flip_angles), self.inputs.repetition_time,
                      b1=b1, method=self.inputs.method, mask=mask)
        for key in ("t1", "r1", "m0", "rmse"):
            self._results[key] = save_like(res[key], ref, os.path.join(runtime.cwd, f"{key}.nii.gz"))
        return runtime


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


class _QDessFitInputSpec(BaseInterfaceInputSpec):
    in_files = InputMultiObject(File(exists=True), mandatory=True, desc="DESS echoes S1 (FISP), S2 (PSIF)")
    repetition_time = traits.Float(mandatory=True, desc="TR (s)")
    echo_time = traits.Float(mandatory=True, desc="TE of the first echo (s)")
    flip_angle = traits.Float(mandatory=True, desc="nominal flip angle (deg)")
    spoiler_amplitude = traits.Either(None, traits.Float, usedefault=True, desc="spoiler gradient (T/m)")
    spoiler_duration = traits.Either(None, traits.Float, usedefault=True, desc="spoiler duration (s)")
    t1 = traits.Float(1.2, usedefault=True, desc="assumed T1 (s)")
    b1_file = File(exists=True, desc="B1+ map (fraction of nominal) on the same grid")
    mask_file = File(exists=True, desc="voxels to fit")


class _QDessFitOutputSpec(TraitedSpec):
    t2 = File(desc="T2 (s)")
    r2 = File(desc="R2 (1/s)")


class QDessFit(SimpleInterface):
    """qDESS T2 from the two DESS echoes (:func:`qmriprep.fit.qdess.fit_qdess`, Sveinsson 2017)."""

    input_spec = _QDessFitInputSpec
    output_spec = _QDessFitOutputSpec

    def _run_interface(self, runtime):
        from ..fit.qdess import fit_qdess

        data, ref = load_series(self.inputs.in_files)
        if data.shape[-1] != 2:
            raise ValueError(f"qDESS needs 2 echoes, got {data.shape[-1]} volumes")
        res = fit_qdess(data[..., 0], data[..., 1], tr=self.inputs.repetition_time,
                        te=self.inputs.echo_time, flip_angle=np.deg2rad(self.inputs.flip_angle),
                        spoiler_amplitude=self.inputs.spoiler_amplitude,
                        spoiler_duration=self.inputs.spoiler_duration, t1=self.inputs.t1,
                        b1=optional_volume(self.inputs.b1_file), mask=optional_mask(self.inputs.mask_file))
        t2 = res["t2"]
        r2 = np.where(t2 > 0, 1.0 / np.where(t2 > 0, t2, 1.0), 0.0)
        self._results["t2"] = save_like(t2, ref, os.path.join(runtime.cwd, "t2.nii.gz"))
        self._results["r2"] = save_like(r2, ref, os.path.join(runtime.cwd, "r2.nii.gz"))
        return runtime
