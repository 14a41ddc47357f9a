"""Two costs of Nipype and niworkflows removed from qmriprep's runs (:func:`install`).

Measured on a 1 mm whole-brain run (MEGRE, VFA, DAM, 12-cycle bSSFP, DESS): of a 60 s no-op
rerun, 22 s went to hashing input files and 20 s to recompressing derivatives, all in the main
process (``benchmarks/RESULTS.md``, issue 12).

- Content hashes (Nipype's ``hash_method = content``) are remembered for the process, keyed on
  the file's device, inode, size and modification time (ns): Nipype hashes a file again for
  every node that reads it (the 0.4 GB bSSFP series by each of its nodes), in 8 kB reads. The
  digest is the same MD5 of the same bytes.
- A derivative already gzip-compressed without a file name or time stamp in its gzip header (as
  nibabel writes it) is copied byte for byte: niworkflows decompresses and recompresses every
  ``.nii.gz`` at level 9 to drop those two fields (nipreps/fmriprep#1480), about 0.2 s per 1 mm
  map for files 1-2 % smaller. Other files keep niworkflows' copy.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import stat

from ..utils.files import file_digest

_GZIP_MAGIC = b"\x1f\x8b"
_FNAME = 0x08


def install() -> None:
    """Put :func:`hash_infile` and :func:`copy_derivative` in place (idempotent; workers forked
    afterwards inherit them)."""
    from nipype.interfaces.base import specs
    from niworkflows.interfaces import bids

    if getattr(specs.hash_infile, "__module__", "") != __name__:
        hash_infile.original = specs.hash_infile
        specs.hash_infile = hash_infile
    if getattr(bids._copy_any, "__module__", "") != __name__:  # noqa: SLF001
        copy_derivative.original = bids._copy_any  # noqa: SLF001
        bids._copy_any = copy_derivative  # noqa: SLF001


def hash_infile(afile, chunk_len=8192, crypto=hashlib.md5, raise_notfound=False):
    """Nipype's ``hash_infile`` (MD5 of the file's bytes), computed once per file version."""
    try:
        st = os.stat(afile)
    except OSError:
        st = None
    if crypto is not hashlib.md5 or st is None or not stat.S_ISREG(st.st_mode):
        return hash_infile.original(afile, chunk_len=chunk_len, crypto=crypto, raise_notfound=raise_notfound)
    return _md5(os.path.realpath(afile), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=8192)
def _md5(path: str, dev: int, ino: int, size: int, mtime_ns: int) -> str:
    return file_digest(path, "md5")


def copy_derivative(src, dst) -> bool:
    """Copy ``src`` to ``dst`` as is when both are ``.gz`` and ``src``'s gzip header holds no
    file name and no time stamp; else niworkflows' ``_copy_any``."""
    src, dst = os.fspath(src), os.fspath(dst)
    if src.endswith(".gz") and dst.endswith(".gz") and _plain_gzip(src):
        if os.path.lexists(dst):
            os.unlink(dst)
        shutil.copyfile(src, dst)
        return True
    return copy_derivative.original(src, dst)


def _plain_gzip(path: str) -> bool:
    with open(path, "rb") as fp:
        head = fp.read(8)
    return len(head) == 8 and head[:2] == _GZIP_MAGIC and not head[3] & _FNAME and head[4:8] == b"\0\0\0\0"
