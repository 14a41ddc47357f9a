"""ISMRMRD k-space files: round trips (2-D, 3-D) and clear errors for bad input."""

import h5py
import ismrmrd
import numpy as np
import pytest

from qmriprep.errors import InputError
from qmriprep.recon.fft import centred_fft
from qmriprep.recon.io import header_metadata, kspace_size, load_kspace_array, read_kspace, write_kspace
from qmriprep.recon.masks import variable_density_mask

META = {"EchoTime": 0.006, "RepetitionTimeExcitation": 0.02, "FlipAngle": 25,
        "SpoilerGradientAmplitude": 0.02, "SpoilerGradientDuration": 0.0015,
        "MagneticFieldStrength": 3}
# oblique-free but permuted, flipped and anisotropic, with half-mm offsets
AFFINE = np.array([[0, 0, -2.0, 10], [3, 0, 0, -20.5], [0, 1.5, 0, 7], [0, 0, 0, 1]])


def _kspace(shape, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def test_round_trip_3d(tmp_path):
    k = _kspace((4, 10, 12, 8))
    mask = variable_density_mask((12, 8), 2, calib=4, seed=1)
    path = write_kspace(tmp_path / "a.h5", k, mask=mask, affine=AFFINE, layout="3d", metadata=META)
    scan = read_kspace(path)
    assert scan.layout == "3d" and scan.shape == (10, 12, 8)
    assert scan.kspace.shape == (10, 4, 12, 8) and scan.mask.shape == (1, 12, 8)
    np.testing.assert_array_equal(scan.mask[0], mask)
    np.testing.assert_array_equal(scan.affine, AFFINE)
    hybrid = centred_fft(k * mask, (1,), inverse=True).transpose(1, 0, 2, 3)
    np.testing.assert_allclose(scan.kspace, hybrid, atol=1e-5)
    for key, val in META.items():
        assert scan.metadata[key] == pytest.approx(val)
    assert scan.metadata["MRAcquisitionType"] == "3D"
    assert scan.metadata["ParallelReductionFactorInPlane"] == pytest.approx(2.0)
    assert header_metadata(path)["EchoTime"] == pytest.approx(0.006)
    assert kspace_size(path) == (4, 10 * 12 * 8)  # coils, values per coil zero-filled, from headers
    vol = scan.to_volume(np.arange(10 * 12 * 8).reshape(10, 12, 8))
    assert vol.shape == (10, 12, 8)
    # the ismrmrd library reads the file; centre lines carry the calibration flag
    with ismrmrd.Dataset(str(path), mode="r") as dset:
        assert dset.number_of_acquisitions() == mask.sum()
        flags = [dset.read_acquisition(i).is_flag_set(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING)
                 for i in range(mask.sum())]
    assert 16 <= sum(flags) < mask.sum()


def test_round_trip_2d(tmp_path):
    k = _kspace((3, 10, 12, 5))
    lines = variable_density_mask((12, 10), 3, calib=4, kind="lines", seed=2)[:, 0]
    path = write_kspace(tmp_path / "b.h5", k, mask=lines, affine=AFFINE, layout="2d", metadata=META)
    scan = read_kspace(path)
    assert scan.layout == "2d" and scan.kspace.shape == (5, 3, 12, 10)
    assert kspace_size(path) == (3, 10 * 12 * 5)  # coils, matrix x slices
    np.testing.assert_array_equal(scan.affine, AFFINE)
    np.testing.assert_array_equal(scan.mask, np.broadcast_to(lines[None, :, None], (5, 12, 10)))
    ref = (k * lines[None, None, :, None]).transpose(3, 0, 2, 1)
    np.testing.assert_allclose(scan.kspace, ref, atol=1e-5)
    images = centred_fft(scan.kspace, (2, 3), inverse=True)[:, 0]
    expected = centred_fft(k * lines[None, None, :, None], (1, 2), inverse=True)[0]
    np.testing.assert_allclose(scan.to_volume(images), expected, atol=1e-5)
    assert scan.metadata["MRAcquisitionType"] == "2D"


def _rewrite(path, edit):
    with h5py.File(path, "r+") as f:
        acq = f["dataset/data"][:]
        edit(f, acq)


def _good(tmp_path, name="g.h5"):
    mask = np.ones((6, 4), bool)
    return write_kspace(tmp_path / name, _kspace((2, 8, 6, 4)), mask=mask, affine=np.eye(4),
                        layout="3d", metadata=META)


def _set_data(f, acq):
    del f["dataset/data"]
    f["dataset"].create_dataset("data", data=acq, maxshape=(None,), dtype=acq.dtype)


def test_bad_files(tmp_path):
    cases = {}
    p = tmp_path / "text.h5"
    p.write_text("not hdf5")
    cases[p] = "not an HDF5 file"
    p = tmp_path / "empty.h5"
    h5py.File(p, "w").close()
    cases[p] = "no ISMRMRD dataset"

    p = _good(tmp_path, "channels.h5")
    def channels(f, acq):  # noqa: E306
        acq["head"]["active_channels"][3] = 1
        acq["data"][3] = acq["data"][3][:16]
        _set_data(f, acq)
    _rewrite(p, channels)
    cases[p] = "channel count differs"

    p = _good(tmp_path, "header_channels.h5")
    with h5py.File(p, "r+") as f:
        xml = f["dataset/xml"][0].decode().replace("<receiverChannels>2<", "<receiverChannels>4<")
        f["dataset/xml"][0] = xml.encode()
    cases[p] = "receiverChannels = 4"

    p = _good(tmp_path, "matrix.h5")
    with h5py.File(p, "r+") as f:  # header matrix smaller than the data
        xml = f["dataset/xml"][0].decode()
        f["dataset/xml"][0] = xml.replace("<y>6</y>", "<y>4</y>").replace(
            "<maximum>5</maximum>", "<maximum>3</maximum>").encode()
    cases[p] = "outside the header's limits"

    p = _good(tmp_path, "zeros.h5")
    def zeros(f, acq):  # noqa: E306
        for i in range(acq.size):
            acq["data"][i] = np.zeros_like(acq["data"][i])
        _set_data(f, acq)
    _rewrite(p, zeros)
    cases[p] = "all acquisitions are zero"

    p = _good(tmp_path, "nan.h5")
    def nan(f, acq):  # noqa: E306
        acq["data"][0][0] = np.nan
        _set_data(f, acq)
    _rewrite(p, nan)
    cases[p] = "NaN"

    p = _good(tmp_path, "radial.h5")
    with h5py.File(p, "r+") as f:
        f["dataset/xml"][0] = f["dataset/xml"][0].decode().replace(
            ">cartesian<", ">radial<").encode()
    cases[p] = "non-Cartesian"

    p = _good(tmp_path, "noacq.h5")
    with h5py.File(p, "r+") as f:
        del f["dataset/data"]
    cases[p] = "no acquisitions"

    for path, problem in cases.items():
        with pytest.raises(InputError, match=problem) as err:
            read_kspace(path)
        assert str(path) in str(err.value)


def test_npy_arrays(tmp_path):
    k = _kspace((3, 8, 6))
    k[:, ::2] = 0
    np.save(tmp_path / "k.npy", k)
    ksp, mask = load_kspace_array(tmp_path / "k.npy")
    assert ksp.shape == (3, 8, 6) and mask.shape == (8, 6)
    assert mask.sum() == 4 * 6 and not mask[0].any()
    np.save(tmp_path / "flat.npy", k[0])
    with pytest.raises(InputError, match="missing coil dimension") as err:
        load_kspace_array(tmp_path / "flat.npy")
    assert "flat.npy" in str(err.value)


@pytest.mark.parametrize("layout", ["3d", "2d"])
def test_no_geometry_falls_back_to_an_axis_aligned_affine(tmp_path, layout):
    """Acquisitions without read/phase/slice directions (simulated, converted files): an
    axis-aligned affine of the encoded voxel size, recorded as GeometryFallback, not a crash."""
    k = _kspace((2, 10, 12, 8))
    mask = np.ones((12, 8), bool) if layout == "3d" else np.ones(12, bool)
    path = write_kspace(tmp_path / "a.h5", k, mask=mask, affine=AFFINE, layout=layout, metadata=META)
    with h5py.File(path, "r+") as f:
        acqs = f["dataset/data"][:]
        for key in ("read_dir", "phase_dir", "slice_dir", "position"):
            acqs["head"][key] = 0
        f["dataset/data"][:] = acqs
    scan = read_kspace(path)
    np.testing.assert_allclose(np.abs(np.diag(scan.affine)[:3]), [3.0, 1.5, 2.0])
    assert np.count_nonzero(scan.affine[:3, :3]) == 3 and abs(np.linalg.det(scan.affine)) > 0
    assert "no geometry" in scan.metadata["GeometryFallback"]


def test_header_value_that_is_not_a_number(tmp_path):
    path = write_kspace(tmp_path / "a.h5", _kspace((2, 10, 12, 8)), mask=np.ones((12, 8), bool),
                        affine=AFFINE, layout="3d", metadata=META)
    with h5py.File(path, "r+") as f:
        xml = f["dataset/xml"][0].decode().replace("<TE>6.0</TE>", "<TE>abc</TE>")
        assert "abc" in xml
        del f["dataset/xml"]
        f["dataset"].create_dataset("xml", data=[xml.encode()], dtype=h5py.special_dtype(vlen=bytes))
    for reader in (header_metadata, read_kspace):
        with pytest.raises(InputError, match=r"a.h5: ISMRMRD XML header: sequenceParametersType.TE abc is not a valid float"):
            reader(path)
