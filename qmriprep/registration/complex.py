"""Rigid alignment of a complex image series (pc-bSSFP phase cycles).

The magnitude images drive the registration (:func:`~qmriprep.registration.rigid.register_rigid`
to the reference cycle); the same transform resamples the real and imaginary parts, so the
complex signal of every cycle lands on the reference grid without touching its phase.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np

from .rigid import RigidSettings, register_rigid, resample_to


def _volume(data, affine):
    return nib.Nifti1Image(np.ascontiguousarray(data, dtype=np.float32), affine)


def align_complex_series(series, affine, *, reference_index=None, metric="mattes", seed=0):
    """Align the volumes of a complex 4-D array ``(x, y, z, n)``; returns ``(aligned, transforms)``.

    ``transforms[k]`` maps reference points to points of volume ``k`` (identity for the
    reference, which is returned untouched).
    """
    series = np.asarray(series)
    n = series.shape[-1]
    ref = n // 2 if reference_index is None else reference_index
    settings = RigidSettings(metric=metric, seed=seed)
    fixed = _volume(np.abs(series[..., ref]), affine)
    aligned, transforms = np.empty_like(series, dtype=np.complex64), []
    for k in range(n):
        if k == ref:
            aligned[..., k], matrix = series[..., k], np.eye(4)
        else:
            matrix = register_rigid(_volume(np.abs(series[..., k]), affine), fixed, settings)
            parts = [np.asarray(resample_to(_volume(part, affine), fixed, transform=matrix,
                                            order=1).dataobj) for part in (series[..., k].real,
                                                                           series[..., k].imag)]
            aligned[..., k] = parts[0] + 1j * parts[1]
        transforms.append(matrix)
    return aligned, transforms
