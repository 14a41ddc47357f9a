"""Imported by the fork server only (it is in :data:`.multiproc.WORKER_PRELOAD`): a worker whose
start is cut short because the run stopped (SIGTERM or SIGINT while the main process was handing
it its task pipe) exits without printing a traceback into the run's log.

The fork server runs each new worker's start under ``sys.excepthook``; a start that finds its
pipe from the main process closed (``EOFError``, ``OSError``) is that case, and is silent; any
other error is printed as before."""

from __future__ import annotations

import sys

_DEFAULT_HOOK = sys.excepthook


def quiet_cut_start(kind, value, traceback) -> None:
    """``sys.excepthook``: silent for a closed pipe from the main process, else the default."""
    if issubclass(kind, (EOFError, OSError)):
        return
    _DEFAULT_HOOK(kind, value, traceback)


sys.excepthook = quiet_cut_start
