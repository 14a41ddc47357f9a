"""Raw Cartesian k-space in ISMRMRD files (``sourcedata/kspace``) to the arrays of :mod:`qmriprep.recon`.

One file holds one image (one echo, one flip angle): an ISMRMRD dataset (group ``dataset``,
XML header + one acquisition per acquired readout line). The sampling mask is whatever
phase-encode points the file holds. Layouts:

- ``"3d"``: k-space ``(N, X, Y, Z)``, ``X`` readout, ``Y``/``Z`` phase encodes 1/2
  (``kspace_encode_step_1/2``); read as 2-D problems along the readout: the centred unitary
  inverse FFT along ``X`` gives ``S = X`` problems of ``H = Y``, ``W = Z``, mask ``(1, Y, Z)``;
- ``"2d"`` (multi-slice): k-space ``(N, X, Y, S)``, ``Y`` phase encode, ``idx.slice`` the slice;
  read as ``(S, N, H = Y, W = X)``, mask ``(S, Y, X)``.

Geometry: ``read_dir``, ``phase_dir``, ``slice_dir`` are the unit columns of the NIfTI affine
(image axes X, Y, Z) in ISMRMRD's patient LPS frame (``diag(-1, -1, 1)`` times RAS); ``position``
is the centre of the field of view (voxel index ``(n - 1)/2``; 2-D: of each slice, whose
positions give the slice spacing); without directions (all zero, as in many simulated and
converted files) the affine is axis-aligned (:data:`NO_GEOMETRY`, in the metadata as
``GeometryFallback``); ``fieldOfView_mm`` is matrix times voxel size (2-D: the slice
thickness). Positions and directions are float32 in the file, as NIfTI's sform, so an affine of
float32 values reads back exactly. Readout oversampling (``encodedSpace.x > reconSpace.x``) is
removed by cropping the centre of the readout after the inverse FFT.

Header metadata in BIDS units <-> the XML header: :mod:`.ismrmrd_header`. Transforms along the
readout: the centred unitary FFT of :mod:`.fft`.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from pathlib import Path

import h5py
import numpy as np
from ismrmrd import constants as C
from ismrmrd import xsd
from ismrmrd.hdf5 import acquisition_dtype, acquisition_header_dtype

from ..errors import InputError
from .coils import calibration_region
from .fft import centred_fft
from .ismrmrd_header import header_to_metadata, metadata_to_header

LAYOUTS = ("2d", "3d")
LOGGER = logging.getLogger("qmriprep")
#: recorded (sidecars, log) when the acquisitions carry no read/phase/slice directions
_WARNED: set = set()
NO_GEOMETRY = ("the acquisition headers carry no geometry (read/phase/slice directions are zero): "
               "axis-aligned affine from the encoded field of view, centred on the first position")
_LPS = np.diag([-1.0, -1.0, 1.0])
#: acquisitions that are not image data (skipped on reading)
_NOT_IMAGING = (C.ACQ_IS_NOISE_MEASUREMENT, C.ACQ_IS_NAVIGATION_DATA, C.ACQ_IS_PHASECORR_DATA,
                C.ACQ_IS_HPFEEDBACK_DATA, C.ACQ_IS_DUMMYSCAN_DATA, C.ACQ_IS_RTFEEDBACK_DATA,
                C.ACQ_IS_SURFACECOILCORRECTIONSCAN_DATA, C.ACQ_IS_PARALLEL_CALIBRATION,
                C.ACQ_IS_PHASE_STABILIZATION_REFERENCE, C.ACQ_IS_PHASE_STABILIZATION)


@dataclasses.dataclass
class KspaceScan:
    """One image's k-space as 2-D problems (see the module docstring for the arrangement)."""

    kspace: np.ndarray  # (S, N, H, W) complex64, zero where not acquired
    mask: np.ndarray  # (S or 1, H, W) float32 0/1
    affine: np.ndarray  # 4x4 RAS of the image volume
    shape: tuple  # (X, Y, Z) of the image volume
    layout: str
    metadata: dict
    path: Path | None = None

    def to_volume(self, images):
        """``(S, H, W)`` images (one per 2-D problem) -> the ``(X, Y, Z)`` volume of ``affine``."""
        images = np.asarray(images)
        if images.shape != (self.kspace.shape[0],) + self.kspace.shape[2:]:
            raise ValueError(f"images {images.shape} do not match the scan's 2-D problems "
                             f"{(self.kspace.shape[0],) + self.kspace.shape[2:]}")
        return images if self.layout == "3d" else images.transpose(2, 1, 0)


def write_kspace(path, kspace, *, mask, affine, layout="3d", metadata=None):
    """Write the acquired lines of ``kspace`` as an ISMRMRD file; return its path.

    ``kspace``: ``(N, X, Y, Z)`` (3-D) or ``(N, X, Y, S)`` (2-D multi-slice), centred (DC at
    index ``n // 2``); ``mask``: acquired phase encodes ``(Y, Z)`` (3-D), ``(Y,)`` or ``(Y, S)``
    (2-D); ``affine``: 4x4 RAS of the ``(X, Y, Z)`` image; ``metadata``: BIDS fields.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    kspace = np.asarray(kspace, np.complex64)
    if kspace.ndim != 4:
        raise ValueError(f"kspace must be (coils, X, Y, Z or slices), got {kspace.shape}")
    n, nx, ny, nz = kspace.shape
    mask = np.asarray(mask, bool)
    if layout == "2d" and mask.ndim == 1:
        mask = np.repeat(mask[:, None], nz, 1)
    if mask.shape != (ny, nz):
        raise ValueError(f"mask {mask.shape} must be {(ny, nz)} (or ({ny},) for 2d)")
    if not mask.any():
        raise ValueError("mask selects no phase encodes")
    affine = np.asarray(affine, float)
    zooms = np.linalg.norm(affine[:3, :3], axis=0)
    dirs = (_LPS @ affine[:3, :3]) / zooms
    # acquisition order: slice/partition outer, phase encode 1 inner
    zs, ys = np.nonzero(mask.T)
    head = np.zeros(ys.size, acquisition_header_dtype)
    head["version"] = 1
    head["scan_counter"] = np.arange(ys.size)
    head["number_of_samples"] = nx
    head["available_channels"] = head["active_channels"] = n
    head["channel_mask"] = _channel_mask(n)
    head["center_sample"] = nx // 2
    head["read_dir"], head["phase_dir"], head["slice_dir"] = dirs.T
    centre = np.array([(nx - 1) / 2, (ny - 1) / 2, (nz - 1) / 2])
    idx = head["idx"]
    idx["kspace_encode_step_1"] = ys
    if layout == "3d":
        idx["kspace_encode_step_2"] = zs
        head["position"] = _LPS @ (affine[:3, :3] @ centre + affine[:3, 3])
    else:
        idx["slice"] = zs
        ijk = np.stack([np.full(zs.size, centre[0]), np.full(zs.size, centre[1]), zs], 1)
        head["position"] = (ijk @ affine[:3, :3].T + affine[:3, 3]) @ _LPS.T
    head["flags"] = _flags(ys, zs, mask, layout)
    data = np.empty(ys.size, object)
    for i, (y, z) in enumerate(zip(ys, zs)):
        data[i] = np.ascontiguousarray(kspace[:, :, y, z]).view(np.float32).ravel()
    acq = np.zeros(ys.size, acquisition_dtype)
    acq["head"] = head
    acq["data"] = data
    acq["traj"] = [np.zeros(0, np.float32)] * ys.size
    xml = xsd.ToXML(metadata_to_header(kspace.shape, zooms, layout, mask, dict(metadata or {})))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        grp = f.create_group("dataset")
        grp.create_dataset("xml", data=[xml.encode()], dtype=h5py.special_dtype(vlen=bytes))
        grp.create_dataset("data", data=acq, maxshape=(None,), dtype=acquisition_dtype)
    return path


def _channel_mask(n):
    words = np.zeros(16, np.uint64)
    for c in range(n):
        words[c // 64] |= np.uint64(1) << np.uint64(c % 64)
    return words


def _flags(ys, zs, mask, layout):
    """FIRST/LAST_IN_SLICE (2-D), LAST_IN_MEASUREMENT, and PARALLEL_CALIBRATION_AND_IMAGING for
    lines in the fully sampled centre block (:func:`~qmriprep.recon.coils.calibration_region`)."""
    def bit(flag):
        return np.uint64(1) << np.uint64(flag - 1)

    def inside(i, n, c):
        return (i >= n // 2 - c // 2) & (i < n // 2 - c // 2 + c)

    ny, nz = mask.shape
    if layout == "3d":
        ch, cw = calibration_region(mask, 0)
        in_calib = inside(ys, ny, ch) & inside(zs, nz, cw)
    else:
        in_calib = inside(ys, ny, calibration_region(mask.all(1)[:, None], 0)[0])
    flags = np.zeros(ys.size, np.uint64)
    flags[in_calib] |= bit(C.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING)
    if layout == "2d":
        first = np.r_[True, zs[1:] != zs[:-1]]
        last = np.r_[zs[1:] != zs[:-1], True]
        flags[first] |= bit(C.ACQ_FIRST_IN_SLICE)
        flags[last] |= bit(C.ACQ_LAST_IN_SLICE)
    flags[-1] |= bit(C.ACQ_LAST_IN_MEASUREMENT)
    return flags


# --- reading ---

def _open_header(f, path):
    """(group, parsed XML header) of the ISMRMRD dataset in the open HDF5 file ``f``."""
    names = ["dataset"] if "dataset" in f else [k for k in f if isinstance(f[k], h5py.Group)
                                                and "xml" in f[k]]
    if not names or "xml" not in f[names[0]]:
        raise InputError(path, "no ISMRMRD dataset in this HDF5 file (expected a group "
                               "'dataset' with an 'xml' header)")
    grp = f[names[0]]
    xml = grp["xml"][0]
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            hdr = xsd.CreateFromDocument(xml if isinstance(xml, bytes) else str(xml).encode())
    except Exception as err:  # xsdata raises several parser errors
        raise InputError(path, f"unreadable ISMRMRD XML header ({err})") from None
    for w in caught:  # xsdata keeps a value it cannot convert as text, with a warning
        if "convert" in str(w.message):
            what = " ".join(str(w.message).replace("Failed to convert value for", "").split())
            raise InputError(path, f"ISMRMRD XML header: {what.replace('`', '')}")
    return grp, hdr


def _check_hdf5(path):
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "k-space file not found")
    if not h5py.is_hdf5(path):
        raise InputError(path, "not an HDF5 file (raw k-space must be ISMRMRD .h5)")
    return path


def header_metadata(path) -> dict:
    """BIDS metadata of an ISMRMRD file's XML header (no data read)."""
    path = _check_hdf5(path)
    with h5py.File(path, "r") as f:
        _, hdr = _open_header(f, path)
    return _header_metadata(path, hdr)


def kspace_size(path) -> tuple[int, int]:
    """``(coils, values per coil)`` of the file's k-space once zero-filled (encoded matrix x
    slices), from its XML header and first acquisition header (no data read)."""
    path = _check_hdf5(path)
    with h5py.File(path, "r") as f:
        grp, hdr = _open_header(f, path)
        coils = int(grp["data"][0]["head"]["active_channels"]) if grp["data"].size else 1
    enc = hdr.encoding[0]
    ms, lim = enc.encodedSpace.matrixSize, enc.encodingLimits
    slices = lim.slice.maximum + 1 if lim.slice is not None and lim.slice.maximum is not None else 1
    return coils, int(ms.x) * int(ms.y) * max(int(ms.z or 1), 1) * int(slices)


def _header_metadata(path, hdr) -> dict:
    try:
        return header_to_metadata(hdr)
    except (TypeError, ValueError, AttributeError) as err:
        raise InputError(path, f"ISMRMRD XML header: a value is missing or not a number ({err})") from None


def read_kspace(path) -> KspaceScan:
    """Read an ISMRMRD file as :class:`KspaceScan` (checks: see :func:`_check_lines`)."""
    path = _check_hdf5(path)
    with h5py.File(path, "r") as f:
        grp, hdr = _open_header(f, path)
        if "data" not in grp or grp["data"].size == 0:
            raise InputError(path, "no acquisitions in the ISMRMRD dataset")
        acqs = grp["data"][:]
    enc = hdr.encoding[0]
    if enc.trajectory != xsd.trajectoryType.CARTESIAN:
        raise InputError(path, f"non-Cartesian trajectory ({enc.trajectory.value}); only "
                               "Cartesian k-space is supported")
    head = acqs["head"]
    keep = np.ones(head.size, bool)
    for flag in _NOT_IMAGING:
        keep &= (head["flags"] & (np.uint64(1) << np.uint64(flag - 1))) == 0
    head, data = head[keep], acqs["data"][keep]
    if head.size == 0:
        raise InputError(path, "no imaging acquisitions (only noise/calibration/navigator data)")
    if np.any(head["trajectory_dimensions"] > 0):
        raise InputError(path, "acquisitions carry a trajectory (non-Cartesian); only "
                               "Cartesian k-space is supported")
    layout = "3d" if enc.encodedSpace.matrixSize.z > 1 else "2d"
    n, nx, ny, nz = _check_lines(path, hdr, head, data, layout)
    iy = head["idx"]["kspace_encode_step_1"].astype(int)
    iz = head["idx"]["kspace_encode_step_2" if layout == "3d" else "slice"].astype(int)
    grid = np.zeros((n, nx, ny, nz), np.complex64)
    count = np.zeros((ny, nz), np.int32)
    lines = np.stack([d.view(np.complex64).reshape(n, nx) for d in data])
    if not np.isfinite(lines.view(np.float32)).all():
        raise InputError(path, "k-space data contain NaN or infinite values")
    if not np.any(lines):
        raise InputError(path, "all acquisitions are zero")
    for y, z, line in zip(iy, iz, lines):  # repeated lines (averages) are averaged
        grid[:, :, y, z] += line
        count[y, z] += 1
    grid /= np.maximum(count, 1)
    acquired = count > 0
    rx = enc.reconSpace.matrixSize.x
    hybrid = centred_fft(grid, (1,), inverse=True)
    if rx < nx:  # readout oversampling
        hybrid = hybrid[:, nx // 2 - rx // 2: nx // 2 - rx // 2 + rx]
    affine, fallback = _affine(path, hdr, head, layout, iz, nz, rx)
    meta = {**_header_metadata(path, hdr), "ParallelReductionFactorInPlane": round(float(acquired.size / acquired.sum()), 4)}
    if fallback:
        meta["GeometryFallback"] = NO_GEOMETRY
    if layout == "3d":
        ksp = hybrid.transpose(1, 0, 2, 3)  # (X, N, Y, Z)
        mask = acquired[None].astype(np.float32)
        shape = (rx, ny, nz)
    else:
        ksp = centred_fft(hybrid, (1,)).transpose(3, 0, 2, 1)  # (S, N, Y, X)
        mask = np.repeat(acquired.T[:, :, None], rx, 2).astype(np.float32)
        shape = (rx, ny, nz)
    return KspaceScan(np.ascontiguousarray(ksp, np.complex64), mask, affine, shape, layout, meta,
                      path)


def _check_lines(path, hdr, head, data, layout):
    """Readout length, channels and encode indices consistent with each other and the header."""
    enc = hdr.encoding[0]
    ms = enc.encodedSpace.matrixSize
    sysinfo = hdr.acquisitionSystemInformation
    samples, chans = np.unique(head["number_of_samples"]), np.unique(head["active_channels"])
    if samples.size > 1:
        raise InputError(path, f"readout length differs between acquisitions ({samples.tolist()})")
    if chans.size > 1:
        raise InputError(path, f"channel count differs between acquisitions ({chans.tolist()})")
    nx, n = int(samples[0]), int(chans[0])
    if nx != ms.x:
        raise InputError(path, f"readout length {nx} differs from the header's encoded matrix "
                               f"size x = {ms.x}")
    if sysinfo is not None and sysinfo.receiverChannels and sysinfo.receiverChannels != n:
        raise InputError(path, f"{n} channels in the data but receiverChannels = "
                               f"{sysinfo.receiverChannels} in the header")
    if any(d.size != 2 * n * nx for d in data):
        raise InputError(path, "an acquisition holds fewer or more samples than its header says")
    rs = enc.reconSpace.matrixSize
    if (rs.y, rs.z) != (ms.y, ms.z) or rs.x > ms.x:
        raise InputError(path, f"reconSpace matrix {(rs.x, rs.y, rs.z)} differs from the encoded "
                               f"{(ms.x, ms.y, ms.z)} in the phase encodes (partial Fourier or "
                               "zero-filled interpolation are not supported)")
    lim = enc.encodingLimits
    nz = ms.z if layout == "3d" else (lim.slice.maximum + 1 if lim.slice else 1)
    idx = head["idx"]
    checks = [("kspace_encode_step_1", ms.y, lim.kspace_encoding_step_1),
              ("kspace_encode_step_2" if layout == "3d" else "slice", nz,
               lim.kspace_encoding_step_2 if layout == "3d" else lim.slice)]
    if layout == "2d":
        checks.append(("kspace_encode_step_2", 1, None))
    for name, size, limit in checks:
        top = size - 1 if limit is None else min(size - 1, limit.maximum)
        bad = idx[name] > top
        if bad.any():
            raise InputError(path, f"{name} index {int(idx[name][bad].max())} outside the header's "
                                   f"limits (0..{top}; encoded matrix {(ms.x, ms.y, ms.z)})")
    return n, nx, int(ms.y), int(nz)


def _affine(path, hdr, head, layout, iz, nz, rx):
    """RAS affine of the image volume from the acquisition geometry (module docstring)."""
    fov = hdr.encoding[0].reconSpace.fieldOfView_mm
    ms = hdr.encoding[0].reconSpace.matrixSize
    dirs = np.stack([head["read_dir"][0], head["phase_dir"][0], head["slice_dir"][0]], 1)
    dirs = _LPS @ dirs.astype(float)
    fallback = abs(np.linalg.det(dirs)) < 0.5  # zero or degenerate directions: no geometry
    if fallback:
        dirs = np.eye(3)
        if Path(path).parent not in _WARNED:  # once per folder, not per file
            _WARNED.add(Path(path).parent)
            LOGGER.warning("%s (and the other files of its folder): %s", path, NO_GEOMETRY)
    m = np.zeros((3, 3))
    m[:, 0] = dirs[:, 0] * fov.x / ms.x
    m[:, 1] = dirs[:, 1] * fov.y / ms.y
    pos = head["position"].astype(float) @ _LPS.T
    centre = np.array([(rx - 1) / 2, (ms.y - 1) / 2, (nz - 1) / 2])
    if layout == "3d":
        m[:, 2] = dirs[:, 2] * fov.z / ms.z
        origin = pos[0] - m @ centre
    else:
        first = np.array([pos[np.flatnonzero(iz == s)[0]] if np.any(iz == s) else np.nan * pos[0]
                          for s in range(nz)])
        missing = np.flatnonzero(np.isnan(first[:, 0]))
        if missing.size:
            raise InputError(path, f"slice {int(missing[0])} has no acquisitions (its position "
                                   "is unknown)")
        m[:, 2] = (first[-1] - first[0]) / (nz - 1) if nz > 1 else dirs[:, 2] * fov.z
        if fallback or np.linalg.norm(m[:, 2]) < 1e-6:  # slices at one position: the thickness
            m[:, 2] = dirs[:, 2] * fov.z
        origin = first[0] - m[:, :2] @ centre[:2]
    affine = np.eye(4)
    affine[:3, :3], affine[:3, 3] = m, origin
    return affine, fallback


def load_kspace_array(source, *, path=None) -> tuple[np.ndarray, np.ndarray]:
    """A plain complex k-space array ``(N, H, W)`` (``.npy`` path or array) and its mask.

    The mask ``(H, W)`` is where any coil is non-zero (the acquired points).
    """
    name = path or (source if isinstance(source, (str, Path)) else "<array>")
    try:
        ksp = np.load(source) if isinstance(source, (str, Path)) else np.asarray(source)
    except (OSError, ValueError) as err:
        raise InputError(name, f"not a readable .npy array ({err})") from None
    if ksp.ndim != 3:
        what = "missing coil dimension" if ksp.ndim == 2 else f"{ksp.ndim} dimensions"
        raise InputError(name, f"{what}: expected (coils, ky, kz) complex, got shape "
                               f"{ksp.shape}")
    if not np.iscomplexobj(ksp):
        raise InputError(name, f"k-space array is {ksp.dtype}, expected complex")
    if not np.isfinite(ksp).all():
        raise InputError(name, "k-space array contains NaN or infinite values")
    mask = np.any(ksp != 0, axis=0)
    if not mask.any():
        raise InputError(name, "all k-space values are zero")
    return ksp.astype(np.complex64), mask
