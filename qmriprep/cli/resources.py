"""Time and peak memory of every workflow node, from Nipype's resource monitor (psutil samples the
resident set size of each node's process and children about once a second): recorded as nodes
finish and written to each subject's log folder as ``resources.tsv``, which the report summarises."""

from __future__ import annotations

import contextlib
import logging
import shutil
from pathlib import Path

from ..utils.files import atomic_write_text

LOGGER = logging.getLogger("qmriprep")
#: the table in each subject's log folder (columns: node, seconds, peak_rss_gb, estimate_gb: the
#: memory the node declared, :mod:`qmriprep.workflows.memory`)
RESOURCES_FILE = "resources.tsv"


class _UnmonitoredNodes(logging.Filter):
    """Drop Nipype's end-of-run warning for each node run unmonitored in the main process
    (``execute._set_node_resources``): it is expected, not a problem to report."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Could not retrieve profiling information")


def enable_monitor() -> bool:
    """Switch Nipype's resource monitor on (worker processes inherit it); False without psutil."""
    from nipype import config

    config.enable_resource_monitor()
    workflow_logger = logging.getLogger("nipype.workflow")
    if not any(isinstance(f, _UnmonitoredNodes) for f in workflow_logger.filters):
        workflow_logger.addFilter(_UnmonitoredNodes())
    return bool(config.resource_monitor)


@contextlib.contextmanager
def monitor_folder(work_dir, run_uuid: str):
    """Run (and start workers) inside ``<work>/resource-monitor-<run>``, removed afterwards:
    Nipype's monitor leaves one sample file per node in the process's working directory, which
    must not be the user's (it may be read-only, and nothing may be written outside work/output)."""
    folder = Path(work_dir) / f"resource-monitor-{run_uuid}"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with contextlib.chdir(folder):
            yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def node_subject(fullname: str) -> str:
    """The subject label of a node (``qmriprep_wf.sub_01_wf.mese_wf.fit`` -> ``01``), or ``""``."""
    part = next((p for p in fullname.split(".") if p.startswith("sub_")), "")
    return part.removeprefix("sub_").removesuffix("_wf")


class NodeResources:
    """Rows ``(node, seconds, peak RSS in GB, declared estimate in GB)`` of the nodes that
    finished, per subject."""

    def __init__(self):
        self.rows: dict[str, list[tuple[str, float, float, float]]] = {}

    def __getstate__(self) -> dict:
        return {"rows": {}}  # pickled with the nodes (see execute._StatusCallback): rows stay here

    def record(self, node) -> None:
        """Read the finished node's runtime (a MapNode: its items, summed time and largest peak)."""
        try:
            runtime = node.result.runtime
        except Exception:  # noqa: BLE001 (no result file: nothing to record)
            return
        runtimes = [r for r in (runtime if isinstance(runtime, list) else [runtime]) if r is not None]
        peaks = [float(getattr(r, "mem_peak_gb", 0.0) or 0.0) for r in runtimes]
        seconds = sum(float(getattr(r, "duration", 0.0) or 0.0) for r in runtimes)
        step = ".".join(p for p in node.fullname.split(".")[1:] if not p.startswith("sub_"))
        self.rows.setdefault(node_subject(node.fullname), []).append(
            (step, seconds, max(peaks, default=0.0), float(getattr(node, "mem_gb", 0.0) or 0.0)))

    def write(self, folder: Path, subject: str) -> Path | None:
        """``folder/resources.tsv`` for ``subject``, largest peak (then longest) first; None if nothing ran."""
        rows = sorted(self.rows.get(subject, []), key=lambda r: (-r[2], -r[1]))
        if not rows:
            return None
        lines = ["node\tseconds\tpeak_rss_gb\testimate_gb"] + [f"{n}\t{s:.2f}\t{m:.3f}\t{e:.2f}"
                                                             for n, s, m, e in rows]
        path = Path(folder) / RESOURCES_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, "\n".join(lines) + "\n")
        LOGGER.log(25, "sub-%s: peak memory %.2f GB (%s); per node in %s", subject, rows[0][2],
                   rows[0][0], path)
        return path
