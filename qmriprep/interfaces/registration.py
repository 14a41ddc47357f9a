"""Nipype interfaces for rigid alignment and resampling (core: :mod:`qmriprep.registration.rigid`,
transform files: :mod:`qmriprep.registration.itk`).

Transforms are written as ITK text files (``AffineTransform_double_3_3``, LPS, fixed -> moving
points), readable by ANTs and ITK. List outputs stay lists even with one element.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
from nipype.interfaces.base import (BaseInterfaceInputSpec, File, InputMultiObject,
                                    SimpleInterface, TraitedSpec, isdefined, traits)

from ..registration import itk, rigid


def _names(files, suffix):
    """``<stem><suffix>`` per file, with the position added when stems repeat."""
    stems = [Path(f).name.removesuffix(".gz").removesuffix(".nii") for f in files]
    unique = len(set(stems)) == len(stems)
    return [f"{s}{suffix}" if unique else f"{s}_{i:03d}{suffix}" for i, s in enumerate(stems)]


def _float32(img):
    """``img`` with float32 voxels (scaling applied), same geometry and header."""
    out = nib.Nifti1Image(np.asarray(img.dataobj, dtype=np.float32), img.affine, img.header)
    out.set_data_dtype(np.float32)
    return out


def _first_volume(img):
    return img.slicer[..., 0] if img.ndim == 4 else img


class _AlignSeriesInputSpec(BaseInterfaceInputSpec):
    in_files = InputMultiObject(File(exists=True), mandatory=True,
                                desc="3D volumes of one series, or a single 4D file")
    reference_index = traits.Int(desc="volume the others are aligned to (default: the middle one)")
    metric = traits.Enum("mattes", "correlation", usedefault=True, desc="similarity metric")
    order = traits.Enum(3, 1, usedefault=True, desc="interpolation: 3 cubic B-spline, 1 linear")
    seed = traits.Int(0, usedefault=True, desc="metric sampling seed")
    min_displacement = traits.Float(0.0, usedefault=True,
                                    desc="motions below this many voxels (at the FOV corners) are ignored")


class _AlignSeriesOutputSpec(TraitedSpec):
    out_files = traits.List(File(exists=True), desc="aligned series, laid out as the input")
    out_transforms = traits.List(File(exists=True), desc="ITK transform per volume")
    out_report = File(exists=True, desc="JSON: motion parameters per volume")


class AlignSeries(SimpleInterface):
    """Rigidly align every volume of a series to one of them (:func:`rigid.align_series`)."""

    input_spec = _AlignSeriesInputSpec
    output_spec = _AlignSeriesOutputSpec

    def _run_interface(self, runtime):
        files = list(self.inputs.in_files)
        imgs = [nib.load(f) for f in files]
        four_d = len(imgs) == 1 and imgs[0].ndim == 4
        vols = list(nib.four_to_three(imgs[0])) if four_d else imgs
        ref_i = self.inputs.reference_index if isdefined(self.inputs.reference_index) else None
        settings = rigid.RigidSettings(metric=self.inputs.metric, seed=self.inputs.seed)
        aligned, xfms = rigid.align_series(vols, reference_index=ref_i, settings=settings,
                                           order=self.inputs.order,
                                           min_displacement=self.inputs.min_displacement)
        ref_i = len(vols) // 2 if ref_i is None else ref_i % len(vols)
        cwd = Path(runtime.cwd)
        sources = files
        if four_d:
            data = np.stack([np.asarray(a.dataobj, dtype=np.float32) for a in aligned], -1)
            aligned = [nib.Nifti1Image(data, imgs[0].affine, imgs[0].header)]
            sources = [f"{files[0]}[{i}]" for i in range(len(vols))]
        out_files = [str(cwd / n) for n in _names(files, "_aligned.nii.gz")]
        for img, path in zip(aligned, out_files):
            _float32(img).to_filename(path)
        stem = _names(files[:1], "")[0]
        xfm_files = [str(itk.save_transform(m, cwd / f"{stem}_vol-{i:03d}_xfm.txt"))
                     for i, m in enumerate(xfms)]
        center = rigid.image_center(vols[ref_i])
        volumes = rigid.motion_table(xfms, center=center)
        for row, src in zip(volumes, sources):
            row["source"] = str(src)
        report = {"reference_index": ref_i, "metric": self.inputs.metric,
                  "center_ras_mm": center.round(3).tolist(), "volumes": volumes}
        (cwd / "motion.json").write_text(json.dumps(report, indent=2))
        self._results.update(out_files=out_files, out_transforms=xfm_files,
                             out_report=str(cwd / "motion.json"))
        return runtime


class _RegisterToReferenceInputSpec(BaseInterfaceInputSpec):
    moving = File(exists=True, mandatory=True, desc="image in the source space (first volume used)")
    fixed = File(exists=True, mandatory=True, desc="target reference image (defines the grid)")
    apply_to = InputMultiObject(File(exists=True),
                                desc="images in the moving space (default: moving)")
    mode = traits.Enum("rigid", "header", usedefault=True,
                       desc="rigid: register; header: identity (scanner coordinates only)")
    metric = traits.Enum("mattes", "correlation", usedefault=True, desc="similarity metric")
    order = traits.Enum(1, 3, 0, usedefault=True, desc="interpolation order of the resampling")
    fixed_mask = File(exists=True, desc="limit the metric to this mask (on the fixed grid)")
    seed = traits.Int(0, usedefault=True, desc="metric sampling seed")
    min_displacement = traits.Float(0.0, usedefault=True,
                                    desc="registrations moving no FOV corner by this many voxels "
                                         "(of the coarser image) are registration noise: use the "
                                         "header instead")


class _RegisterToReferenceOutputSpec(TraitedSpec):
    out_files = traits.List(File(exists=True), desc="apply_to resampled on the fixed grid")
    out_transform = File(exists=True, desc="ITK transform, fixed -> moving points")


class RegisterToReference(SimpleInterface):
    """Bring images (e.g. a B1+ map) onto a target grid by rigid registration or headers."""

    input_spec = _RegisterToReferenceInputSpec
    output_spec = _RegisterToReferenceOutputSpec

    def _run_interface(self, runtime):
        moving = _first_volume(nib.load(self.inputs.moving))
        fixed = _first_volume(nib.load(self.inputs.fixed))
        matrix = np.eye(4)
        if self.inputs.mode == "rigid":
            mask = nib.load(self.inputs.fixed_mask) if isdefined(self.inputs.fixed_mask) else None
            settings = rigid.RigidSettings(metric=self.inputs.metric, seed=self.inputs.seed)
            matrix = rigid.register_rigid(moving, fixed, settings, fixed_mask=mask)
            coarser = max(min(img.header.get_zooms()[:3]) for img in (moving, fixed))
            if rigid.is_negligible(matrix, fixed, self.inputs.min_displacement, voxel_mm=coarser):
                matrix = np.eye(4)
        cwd = Path(runtime.cwd)
        stem = _names([self.inputs.moving], "")[0]
        xfm = itk.save_transform(matrix, cwd / f"{stem}_to-fixed_xfm.txt")
        sources = list(self.inputs.apply_to) if isdefined(self.inputs.apply_to) else []
        sources = sources or [self.inputs.moving]
        out_files = [str(cwd / n) for n in _names(sources, "_resampled.nii.gz")]
        for src, path in zip(sources, out_files):
            out = rigid.resample_to(nib.load(src), fixed, transform=matrix, order=self.inputs.order)
            out.to_filename(path)
        self._results.update(out_files=out_files, out_transform=str(xfm))
        return runtime
