"""Worker processes that end with the run, and SIGTERM/SIGINT as a clean stop.

- :class:`Interrupted`: raised in the main thread by SIGTERM/SIGINT while the workflow runs (a
  ``BaseException``, so Nipype's ``except Exception`` does not swallow it); the run removes its
  staging folder, publishes nothing more and exits 1 with a message.
- :func:`worker_init`: a MultiProc worker (:mod:`.multiproc`) asks the kernel for SIGKILL when its
  parent dies (``prctl(PR_SET_PDEATHSIG)``, Linux). Workers start from multiprocessing's fork
  server, a child of the main process that exits when its "alive" pipe has no writer left; each
  worker closes the copy of the pipe it inherits, so the main process holds the only one and a
  main process killed by a timeout, the OOM killer or ``kill -9`` leaves no worker computing on.
- :func:`stop_workers`: end the children of this process (after an interrupt).
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import threading
from contextlib import contextmanager

from ..errors import EXIT_PROCESSING

LOGGER = logging.getLogger("qmriprep")
_PR_SET_PDEATHSIG = 1


class Interrupted(BaseException):
    """The run received SIGTERM or SIGINT."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


@contextmanager
def interruptible(grace: float = 20.0):
    """SIGTERM and SIGINT raise :class:`Interrupted` in the main thread while inside; yields a list
    of clean-up callables. Should a library swallow the exception (seen once in ~50 runs: the run
    went on), a timer ends the run ``grace`` s after the signal: clean-ups, workers stopped, exit 1."""
    cleanups: list = []
    if threading.current_thread() is not threading.main_thread():
        yield cleanups
        return

    def handler(signum, frame):
        timer = threading.Timer(grace, _force_exit, args=(signum, cleanups))
        timer.daemon = True
        timer.start()
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield cleanups
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _force_exit(signum: int, cleanups: list) -> None:
    """The end of a run that did not stop by itself after a signal (see :func:`interruptible`)."""
    for cleanup in cleanups:
        try:
            cleanup()
        except Exception:  # noqa: BLE001 (best effort: the process ends anyway)
            pass
    stop_workers(timeout=1.0)
    LOGGER.error("stopped by %s (forced after the run did not stop by itself): subjects not yet "
                 "published were not written", signal.Signals(signum).name)
    logging.shutdown()
    os._exit(EXIT_PROCESSING)


def die_with_parent(main_pid: int) -> None:
    """In a child: SIGKILL when its parent dies (Linux; elsewhere nothing), or now if the run's
    main process ``main_pid`` (the parent, or the fork server's parent) has died already."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # not Linux
        return
    if not _running(main_pid):  # the main process died before prctl
        os._exit(1)


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (Linux ``/proc``)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def worker_init(cwd: str, main_pid: int) -> None:
    """A MultiProc worker's start: die with the run, leave SIGINT to the main process."""
    from nipype.pipeline.plugins.multiproc import process_initializer

    die_with_parent(main_pid)
    _release_fork_server()
    # workers leave SIGINT to the main process, which stops them (stop_workers) with SIGTERM
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    process_initializer(cwd)


def _release_fork_server() -> None:
    """Close this worker's end of the fork server's "alive" pipe (multiprocessing hands it to
    every child so that children may start processes too; ours do not), so that the server, and
    through :func:`die_with_parent` this worker, end when the main process does."""
    from multiprocessing import forkserver

    server = forkserver._forkserver
    if getattr(server, "_forkserver_alive_fd", None) is not None:
        os.close(server._forkserver_alive_fd)
        server._forkserver_alive_fd = None


def stop_workers(timeout: float = 5.0) -> int:
    """Terminate this process's multiprocessing children (SIGKILL after ``timeout`` s); count."""
    # the pool reports each future its stopped workers leave unfinished, with a traceback
    logging.getLogger("concurrent.futures").disabled = True
    children = multiprocessing.active_children()
    for child in children:
        child.terminate()
    for child in children:
        child.join(timeout)
        if child.is_alive():
            child.kill()
            child.join(1.0)
    return len(children)
