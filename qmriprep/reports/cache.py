"""Report figures kept when nothing they show has changed.

The report is rebuilt at every run (date, settings, resources), but drawing its figures again from
unchanged maps took 2 of the 12 s of a no-op demo rerun and 13 of 24 s at 1 mm. Every call that
makes figures (:meth:`FigureCache.call`) is keyed on its name, the SHA256 of every file it reads, its
other arguments, the figures folder and the source of the report code. The store is a folder of
the work directory (the subject's output folder, figures included, is replaced whole when a run
publishes it): per key, the result as JSON and a copy of its figures, which a later build with
the same key copies back instead of loading maps and drawing. :meth:`FigureCache.prune` removes
the keys a build did not use.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from pathlib import Path

import numpy as np

from ..utils.files import sha256_file

_HERE = Path(__file__).parent


def _code_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(_HERE.glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


_CODE = _code_digest()


def _feed(digest, value, own: Path) -> None:
    """Add ``value`` to ``digest``: files by content (those under ``own``, the figures folder, by
    name: they are outputs), arrays by bytes, containers item by item."""
    if isinstance(value, (str, os.PathLike)) and os.path.isfile(value) and own not in Path(value).parents:
        digest.update(f"file:{Path(value).name}:{sha256_file(value)};".encode())
    elif isinstance(value, np.ndarray):
        digest.update(f"array:{value.dtype}:{value.shape};".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, dict):
        for k in sorted(value, key=str):
            _feed(digest, str(k), own)
            _feed(digest, value[k], own)
    elif isinstance(value, (list, tuple)):
        digest.update(f"seq:{len(value)};".encode())
        for item in value:
            _feed(digest, item, own)
    else:
        digest.update(f"{type(value).__name__}:{value!r};".encode())


class FigureCache:
    """The figure store of one subject for one report build (thread-safe)."""

    def __init__(self, fig_dir, store):
        self.fig_dir, self.folder = Path(fig_dir), Path(store)
        self._used: set[str] = set()
        self._lock = threading.Lock()

    def call(self, name: str, make, args: tuple, *, key=None, encode=None, decode=None):
        """``make(*args)``, or its recorded result with its figures copied back. ``key``: what
        the result depends on, if not ``args``; ``encode``/``decode`` turn the result into
        ``(JSON-able value, [figure paths in the figures folder])`` and back (default: paths and
        tuples of them)."""
        digest = hashlib.sha256(f"{_CODE};{name};{self.fig_dir};".encode())
        _feed(digest, args if key is None else key, self.fig_dir)
        key = digest.hexdigest()
        with self._lock:
            self._used.add(key)
        recorded = self._restore(key)
        if recorded is not None:
            return (decode or _decode)(recorded["value"])
        result = make(*args)
        value, figures = (encode or _encode)(result)
        self._store(key, value, [Path(f) for f in figures])
        return result

    def _restore(self, key: str) -> dict | None:
        """The entry of ``key`` with its figures copied into the figures folder, or None."""
        try:
            recorded = json.loads((self.folder / f"{key}.json").read_text())
            copies = {name: self.folder / key / name for name in recorded["figures"]}
            if any(sha256_file(copies[n]) != digest for n, digest in recorded["figures"].items()):
                return None
            self.fig_dir.mkdir(parents=True, exist_ok=True)
            for name, copy in copies.items():
                shutil.copyfile(copy, self.fig_dir / name)
            return recorded
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _store(self, key: str, value, figures: list[Path]) -> None:
        """Record ``value`` and copies of ``figures`` (all in the figures folder, else nothing)."""
        if not all(f.is_file() and f.parent == self.fig_dir for f in figures):
            return
        try:
            text = json.dumps({"value": value, "figures": {f.name: sha256_file(f) for f in figures}},
                              default=_plain)
            (self.folder / key).mkdir(parents=True, exist_ok=True)
            for f in figures:
                shutil.copyfile(f, self.folder / key / f.name)
            tmp = self.folder / f"{key}.{threading.get_ident()}.tmp"
            tmp.write_text(text)
            os.replace(tmp, self.folder / f"{key}.json")
        except (OSError, TypeError, ValueError):
            pass

    def prune(self) -> None:
        """Remove the keys this build did not use (their figures were redrawn or are gone)."""
        if self.folder.is_dir():
            for entry in self.folder.glob("*.json"):
                if entry.stem not in self._used:
                    entry.unlink(missing_ok=True)
                    shutil.rmtree(self.folder / entry.stem, ignore_errors=True)


def _plain(value):
    """numpy scalars as Python numbers (for :func:`json.dumps`)."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _encode(result):
    """Paths (alone or in a tuple with JSON-able values) and the figure files among them."""
    items = result if isinstance(result, tuple) else (result,)
    figures = [str(i) for i in items if isinstance(i, Path)]
    value = [{"path": str(i)} if isinstance(i, Path) else i for i in items]
    return {"tuple": isinstance(result, tuple), "items": value}, figures


def _decode(value):
    items = [Path(i["path"]) if isinstance(i, dict) and set(i) == {"path"} else i for i in value["items"]]
    return tuple(items) if value["tuple"] else items[0]
