"""Nipype's file hashing and niworkflows' derivative copy, made cheap (qmriprep.cli.nipype_costs):
same hashes, same bytes where it matters."""

import gzip
import os

import nibabel as nb
import numpy as np
from nipype.utils.filemanip import hash_infile as nipype_hash_infile

from qmriprep.cli import nipype_costs


def test_hashes_are_nipypes_and_follow_changes(tmp_path):
    nipype_costs.install()
    path = tmp_path / "a.bin"
    path.write_bytes(os.urandom(3_000_000))
    assert nipype_costs.hash_infile(str(path)) == nipype_hash_infile(str(path))
    path.write_bytes(os.urandom(3_000_000))  # same size, new content and time stamp
    os.utime(path, ns=(1, 2))
    assert nipype_costs.hash_infile(str(path)) == nipype_hash_infile(str(path))
    assert nipype_costs.hash_infile(str(tmp_path / "missing")) is None
    from nipype.interfaces.base import specs

    assert specs.hash_infile is nipype_costs.hash_infile


def test_nibabel_gzip_is_copied_as_is_others_by_niworkflows(tmp_path):
    nipype_costs.install()
    src = tmp_path / "map.nii.gz"
    nb.Nifti1Image(np.arange(24, dtype=np.float32).reshape(2, 3, 4), np.eye(4)).to_filename(src)
    dst = tmp_path / "out" / "sub-01_T1map.nii.gz"
    dst.parent.mkdir()
    nipype_costs.copy_derivative(src, dst)
    assert dst.read_bytes() == src.read_bytes()

    named = tmp_path / "named.nii.gz"  # a gzip header with the file name and a time stamp
    with open(named, "wb") as raw, gzip.GzipFile("named.nii", "wb", 6, raw, mtime=12345) as gz:
        gz.write(gzip.decompress(src.read_bytes()))
    nipype_costs.copy_derivative(named, dst)
    head = dst.read_bytes()[:8]
    assert not head[3] & 0x08 and head[4:8] == b"\0\0\0\0"  # niworkflows stripped both
    assert gzip.decompress(dst.read_bytes()) == gzip.decompress(src.read_bytes())
