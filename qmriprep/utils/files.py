"""File writing that never leaves a half-written file, and file hashes (the one implementation)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Callable


def atomic_write(path, writer: Callable[[str], object]) -> Path:
    """Call ``writer(tmp_path)`` then rename the temporary file onto ``path`` (parents created).

    The temporary file sits in the destination folder (same file system, so the rename is atomic)
    and gets the permissions a plain ``open`` would give; it is removed if ``writer`` fails.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes[-2:]) or ".tmp"  # writers that look at the extension see it
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        writer(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_text(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def file_digest(path, algorithm: str = "sha256") -> str:
    """Hex digest of a file by ``algorithm`` (a :func:`hashlib.new` name), read in 1 MiB blocks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_file(path) -> str:
    """SHA256 hex digest of a file."""
    return file_digest(path)


def content_sha256(arrays: dict) -> str:
    """SHA256 of named arrays or tensors (a torch ``state_dict``): names, dtypes, shapes and values
    in name order, so the same weights always give the same hash, whatever file holds them (a
    saved file also holds timings)."""
    import numpy as np

    h = hashlib.sha256()
    for name in sorted(arrays):
        value = arrays[name]
        if hasattr(value, "detach"):  # a torch tensor, without importing torch here
            value = value.detach().cpu().contiguous().numpy()
        value = np.ascontiguousarray(value)
        h.update(f"{name}|{value.dtype.str}|{value.shape}|".encode())
        h.update(value.tobytes())
    return h.hexdigest()
