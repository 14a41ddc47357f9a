"""The output folder: checked before any work, one lock per subject, staging and atomic publishing.

- :func:`check_folder`: the output (and work) folder can be made and written: not a file, not
  under a file, not read-only, not a path longer than the file system allows.
- :class:`SubjectLocks`: an exclusive ``fcntl`` lock per subject (``<output>/.qmriprep-locks/
  sub-<l>.lock``) held for the whole run, so a second run on the same subject is refused; the
  kernel releases it when the process ends, however it ends.
- :func:`open_staging`: this run's ``.qmriprep-staging-<run>/`` (locked while the run lives);
  stale staging folders of dead runs are removed first, after putting back a subject folder a run
  killed between the two renames of :func:`publish_subject` had moved away.
- :func:`publish_subject`: the staged ``sub-<l>/`` (derivatives, this run's logs, older logs and
  the folders of sessions this run did not process, hard-linked) gets a completion marker and
  replaces the published ``sub-<l>/`` by directory renames: a subject is visible whole or not at
  all, and a rerun replaces the old folder instead of mixing old and new files.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import shutil
import signal
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from ..errors import InputError
from ..utils.files import atomic_write_text

LOGGER = logging.getLogger("qmriprep")

STAGING_PREFIX = ".qmriprep-staging-"
NEW_PREFIX = ".qmriprep-new-"  # a staging folder before it is locked and renamed
#: file in a published subject folder: the run that wrote it finished (JSON: run, version, time)
MARKER = ".qmriprep-complete"
LOCK_DIR = ".qmriprep-locks"
#: room kept below the file system's path limit for the derivative names inside the folder
NAME_ROOM = 200


def check_folder(path, what: str = "output folder") -> None:
    """InputError unless ``path`` is (or can be made) a writable folder with room for file names."""
    path = Path(path)
    limit = _limit(path, "PC_PATH_MAX", 4096)
    if len(os.fsencode(str(path))) + NAME_ROOM > limit:
        raise InputError(_short(path), f"the {what} path is {len(str(path))} characters long; the "
                         f"file system allows {limit} for a whole path, and file names need about "
                         f"{NAME_ROOM} more")
    name_max = _limit(path, "PC_NAME_MAX", 255)
    for part in path.parts:
        if len(os.fsencode(part)) > name_max:
            raise InputError(_short(path), f"the {what} path has a folder name of {len(part)} "
                             f"characters; the file system allows {name_max}")
    for parent in (path, *path.parents):
        if os.path.islink(parent) and not os.path.exists(parent):
            raise InputError(parent, f"is a broken or self-referencing symbolic link (in the {what} path)")
        if not os.path.exists(parent):
            continue
        if not parent.is_dir():
            where = (f"is a file, not a {what}" if parent == path
                     else f"is a file, so the {what} {_short(path)} cannot be made under it")
            raise InputError(parent, f"{where}; give a folder")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise InputError(parent, f"is not writable (permission denied); choose another {what}")
        return


def _limit(path: Path, name: str, default: int) -> int:
    for parent in (path, *path.parents):
        if os.path.exists(parent):
            try:
                return int(os.pathconf(parent, name))
            except (OSError, ValueError):
                return default
    return default


def _short(path: Path) -> str:
    text = str(path)
    return text if len(text) <= 120 else f"{text[:60]}...{text[-40:]}"


class SubjectLocks:
    """Exclusive non-blocking locks on ``<output>/.qmriprep-locks/sub-<l>.lock`` for the run."""

    def __init__(self, output_dir, subjects, run_uuid: str):
        self.folder = Path(output_dir) / LOCK_DIR
        self.subjects, self.run_uuid, self._fds = list(subjects), run_uuid, []

    def __enter__(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            for subject in self.subjects:
                self._fds.append(self._lock(subject))
        except BaseException:
            self.release()
            raise
        return self

    def _lock(self, subject: str) -> int:
        path = self.folder / f"sub-{subject}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            holder = path.read_text(errors="replace").strip() or "unknown"
            raise InputError(path.parent.parent / f"sub-{subject}", "is being processed by another "
                             f"qmriprep run ({holder}); wait for it to finish or use another output "
                             "folder") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}, run {self.run_uuid}".encode())
        return fd

    def release(self) -> None:
        for fd in self._fds:
            os.close(fd)  # closing the descriptor releases the lock
        self._fds = []

    def __exit__(self, *exc):
        self.release()


def open_staging(output_dir, run_uuid: str) -> tuple[Path, int]:
    """Remove stale staging folders, then make and lock this run's; returns (folder, lock fd)."""
    output_dir = Path(output_dir)
    for stale in sorted(output_dir.glob(f"{STAGING_PREFIX}*")):
        if stale.is_dir() and _unlocked(stale):
            _recover(stale, output_dir)
            shutil.rmtree(stale, ignore_errors=True)
            LOGGER.warning("removed %s, left by an earlier run that did not finish", stale.name)
    for fresh in output_dir.glob(f"{NEW_PREFIX}*"):  # a run killed while making its staging folder
        if time.time() - fresh.stat().st_mtime > 600 and _unlocked(fresh):
            shutil.rmtree(fresh, ignore_errors=True)
    # made and locked under another name, then renamed: a staging folder is never seen unlocked
    fresh = output_dir / f"{NEW_PREFIX}{run_uuid}"
    fresh.mkdir(parents=True, exist_ok=True)
    fd = os.open(fresh / ".lock", os.O_RDWR | os.O_CREAT, 0o666)
    fcntl.flock(fd, fcntl.LOCK_EX)
    staging = output_dir / f"{STAGING_PREFIX}{run_uuid}"
    os.replace(fresh, staging)
    return staging, fd


def _unlocked(staging: Path) -> bool:
    """True when no live run holds the staging folder's lock (a run that died never releases)."""
    try:
        fd = os.open(staging / ".lock", os.O_RDWR)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _recover(stale: Path, output_dir: Path) -> None:
    """Put back a subject folder a killed publish left in the staging folder (complete ones only)."""
    for old in sorted(stale.glob(".old-sub-*")):
        subject_dir = output_dir / old.name.removeprefix(".old-")
        new = stale / subject_dir.name
        candidate = new if (new / MARKER).is_file() else old
        if not subject_dir.exists() and (candidate / MARKER).is_file():
            os.replace(candidate, subject_dir)
            LOGGER.warning("restored %s from an interrupted publish", subject_dir.name)


@contextmanager
def _signals_blocked():
    sigs = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def publish_subject(staging: Path, output_dir: Path, subject: str, *, run_uuid: str,
                    sessions=None) -> Path:
    """Replace ``<output>/sub-<l>`` by the staged folder (module docstring); returns its path.

    ``sessions``: labels this run processed (None: no session level or all of them); the
    published folders of other sessions are kept.
    """
    src, dest = staging / f"sub-{subject}", output_dir / f"sub-{subject}"
    src.mkdir(parents=True, exist_ok=True)
    if dest.is_dir():
        done = {f"ses-{s}" for s in sessions} if sessions else None
        for entry in dest.iterdir():
            keep = entry.name == "log" or (done is not None and entry.name.startswith("ses-")
                                           and entry.name not in done)
            if keep and not (src / entry.name).exists():
                _link_tree(entry, src / entry.name)
    atomic_write_text(src / MARKER, json.dumps({
        "run": run_uuid, "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}) + "\n")
    old = staging / f".old-sub-{subject}"
    with _signals_blocked():
        if dest.exists():
            os.replace(dest, old)
        os.replace(src, dest)
    shutil.rmtree(old, ignore_errors=True)
    return dest


def _link_tree(src: Path, dest: Path) -> None:
    """Hard-linked copy of a file or folder (a plain copy across file systems)."""
    def link(a, b):
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    if src.is_dir():
        shutil.copytree(src, dest, copy_function=link, symlinks=True)
    else:
        link(src, dest)
