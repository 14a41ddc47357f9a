"""Nipype's MultiProc plugin, made to end with the run and to resume fast.

- Workers start from a fork server (:data:`WORKER_PRELOAD` imported there once), not by forking
  the main process (unless the server's socket has no home, :func:`_fork_server_possible`): a
  fork copies the main process's threads' locks (torch's and ITK's thread pools, used by the main
  process before the run, e.g. in a test session or a notebook) in whatever state they are, and a
  worker can block on one forever.
- Workers ask the kernel for SIGKILL when their parent dies (:func:`.processes.die_with_parent`);
  the fork server ends with the main process, so a main process killed by a timeout, the OOM
  killer or ``kill -9`` leaves no worker computing on.
- Cached nodes are taken off the graph without holding a process slot: Nipype's MultiProc counts a
  cached node against ``n_procs`` until its next poll, so a rerun walks the graph ``n_procs`` nodes
  per ``poll_sleep_duration`` (2 s by default; about 150 s of a no-op demo rerun of 280 nodes).
  Here every ready node is checked once (Nipype keeps each node's input hash), cached ones are
  finished at once, repeatedly while that frees more, before the usual submission; and nodes run
  in the main process (sinks) are followed at once by those they make ready, not a poll later.
- The objects that exist when the run starts (the workflow, torch, ...) are frozen out of the
  garbage collector (:func:`gc.freeze`): Nipype calls :func:`gc.collect` after every node it runs
  in the main process, which otherwise scans them all (0.2 s each, 45 s of a no-op demo rerun).
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from nipype.pipeline.engine import MapNode
from nipype.pipeline.plugins.multiproc import MultiProcPlugin

from .processes import worker_init

WORKER_PRELOAD = ("numpy", "torch", "nibabel", "nipype.pipeline.engine", "qmriprep.interfaces.fit",
                  "qmriprep.interfaces.recon", "qmriprep.interfaces.nn", "qmriprep.cli.worker_start")
"""Modules the fork server imports once, so that each worker starts without importing them (and
:mod:`.worker_start`: no traceback from a worker whose start a stopping run cut short)."""

LOGGER = logging.getLogger("qmriprep")
POLL_SECONDS = 0.5
"""``poll_sleep_duration`` of this plugin: how often the main process looks for finished nodes
(Nipype's default, 2 s, adds up to 2 s to every step of the graph; cluster plugins keep it, so
as not to query the scheduler more often)."""


class ResumingMultiProc(MultiProcPlugin):
    """MultiProc with workers that die with the run and cached nodes skipped without a slot."""

    def __init__(self, plugin_args=None):
        super().__init__(plugin_args=plugin_args)
        self.pool.shutdown(wait=False)  # no worker started yet: pools start them on first submit
        self.pool = ProcessPoolExecutor(max_workers=self.processors, initializer=worker_init,
                                        initargs=(self._cwd, os.getpid()),
                                        mp_context=_worker_context())
        self._not_cached: set[int] = set()

    def run(self, graph, config, updatehash=False):
        execution = {**config["execution"], "poll_sleep_duration": POLL_SECONDS}
        gc.collect()
        gc.freeze()
        try:
            return super().run(graph, {**config, "execution": execution}, updatehash=updatehash)
        finally:
            gc.unfreeze()

    def _send_procs_to_workers(self, updatehash=False, graph=None):
        """Finish cached nodes, then submit; again while nodes finished here (cached ones, or
        ones run in this process) make more nodes ready, not one graph level per poll."""
        while True:
            finished = np.count_nonzero(self.proc_done & ~self.proc_pending)
            if not updatehash:
                while self._finish_cached(graph):
                    pass
            super()._send_procs_to_workers(updatehash=updatehash, graph=graph)
            if np.count_nonzero(self.proc_done & ~self.proc_pending) == finished:
                return

    def _finish_cached(self, graph) -> int:
        """Finish every ready node whose results are cached and up to date; how many."""
        ready = np.flatnonzero(~self.proc_done & (self.depidx.sum(axis=0) == 0).__array__())
        finished = 0
        for jobid in ready:
            if jobid in self._not_cached or isinstance(self.procs[jobid], MapNode):
                continue
            self.proc_done[jobid] = self.proc_pending[jobid] = True  # as Nipype sets them to check
            if self._local_hash_check(jobid, graph):
                finished += 1
            else:
                self.proc_done[jobid] = self.proc_pending[jobid] = False
                self._not_cached.add(jobid)
        return finished


def _worker_context():
    """The fork-server context, with :data:`WORKER_PRELOAD` (used when the server first starts);
    plain fork when the server's socket cannot have a short, writable, lasting home (below)."""
    if not _fork_server_possible(tempfile.gettempdir()):
        return multiprocessing.get_context("fork")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(WORKER_PRELOAD))
    return context


#: bytes multiprocessing adds to the temporary folder's path for the server's socket
_SOCKET_NAME_BYTES = len("/pymp-12345678/listener-12345678")


def _fork_server_possible(temp_dir: str) -> bool:
    """Whether the fork server's socket (``<temp>/pymp-<8 chars>/listener-<8 chars>``) can live in
    ``temp_dir``: writable, a path short enough for a Unix socket (108 bytes), and not the current
    folder, Python's last resort when no temporary folder is writable (a read-only container,
    where it is the run's monitor folder, removed before multiprocessing removes its own)."""
    if len(os.fsencode(temp_dir)) + _SOCKET_NAME_BYTES >= 108:
        LOGGER.debug("workers forked: the temporary folder's path is too long for a socket")
        return False
    if not os.access(temp_dir, os.W_OK) or os.path.samefile(temp_dir, os.getcwd()):
        LOGGER.debug("workers forked: no writable temporary folder for the fork server's socket")
        return False
    return True
