"""Build and run the workflow, then publish derivatives, dataset description and reports."""

from __future__ import annotations

import logging
import os
import shutil
from importlib import resources
from pathlib import Path

from ..errors import EXIT_PROCESSING
from ..provenance import methods_text, update_methods, write_dataset_description
from ..utils.files import atomic_write_text
from ..utils.images import finite_copies
from ..workflows.base import log_dir
from .nipype_costs import install as install_nipype_costs
from .resources import NodeResources, enable_monitor, monitor_folder

LOGGER = logging.getLogger("qmriprep")


def run_workflow(config, plans) -> int:
    """Run all subjects; publish those that finished; returns the exit code.

    Each subject is locked for the run (a second run on it is refused), staged, and published
    whole by directory renames (:mod:`.outputs`); SIGTERM/SIGINT stop the run with exit 1.
    """
    from .outputs import SubjectLocks, open_staging
    from .processes import Interrupted, interruptible, stop_workers

    ex = config.execution
    output_dir = Path(ex.output_dir)
    with SubjectLocks(output_dir, plans, ex.run_uuid), interruptible() as cleanups:
        staging, lock = open_staging(output_dir, ex.run_uuid)
        cleanups.append(lambda: shutil.rmtree(staging, ignore_errors=True))
        try:
            return _run_and_publish(config, plans, staging)
        except Interrupted as sig:
            stop_workers()
            LOGGER.error("stopped by %s: subjects not yet published were not written (their "
                         "crash files and settings are in sub-<label>/log/%s)", sig, ex.run_uuid)
            return EXIT_PROCESSING
        finally:
            os.close(lock)
            shutil.rmtree(staging, ignore_errors=True)


def _run_and_publish(config, plans, staging: Path) -> int:
    ex = config.execution
    output_dir = Path(ex.output_dir)
    workflow = _build(config, plans, staging)
    LOGGER.log(25, "running %d subject(s) in %s (work dir %s)", len(plans), output_dir, ex.work_dir)
    failed = False
    resources = NodeResources()
    install_nipype_costs()
    if not enable_monitor():
        LOGGER.warning("psutil is missing: peak memory per node is not recorded")
    try:
        with monitor_folder(ex.work_dir, ex.run_uuid):
            workflow.run(**_plugin(config.nipype, _StatusCallback(resources)))
    except Exception as err:  # noqa: BLE001 (nipype raises RuntimeError for failed nodes)
        failed = True
        LOGGER.error("processing failed: %s", str(err).splitlines()[0] if str(err) else type(err).__name__)
    code = 0
    for subject in plans:
        resources.write(log_dir(config, subject), subject)
        crashes = sorted(log_dir(config, subject).glob("crash-*"))
        errors = [c.read_text(errors="replace") for c in crashes]
        if crashes or (failed and ex.stop_on_first_crash):
            LOGGER.error("sub-%s failed; nothing published (crash files in %s)", subject,
                         log_dir(config, subject))
            code = EXIT_PROCESSING
        else:
            _publish(staging, output_dir, subject, config, plans[subject])
            LOGGER.log(25, "sub-%s: derivatives written to %s", subject, output_dir / f"sub-{subject}")
        report = _report(config, subject, plans[subject], errors)
        LOGGER.log(25, "sub-%s: report at %s", subject, report)
    if failed and code == 0:
        code = EXIT_PROCESSING
    write_dataset_description(output_dir, ex.bids_dir, ex.version)
    update_methods(output_dir)  # the As run section of every published subject
    return code


def _build(config, plans, staging: Path):
    """The Nipype graph (nipype configured first), with settings saved per subject."""
    from nipype import config as ncfg
    from nipype import logging as nlogging

    from ..workflows.base import init_qmriprep_wf

    ex = config.execution
    # before the graph is built: nodes copy the configuration when they are created
    ncfg.update_config({
        "execution": {"crashfile_format": "txt", "stop_on_first_crash": ex.stop_on_first_crash,
                      "remove_unnecessary_outputs": False, "hash_method": "content",
                      "parameterize_dirs": False},
        "logging": {"workflow_level": "INFO" if ex.log_level < 25 else "WARNING",
                    "interface_level": "INFO" if ex.log_level < 20 else "WARNING"},
    })
    nlogging.update_logging(ncfg)
    for plan in plans.values():  # a few NaN voxels: the nodes read copies with them masked
        for item in plan.processed():
            col = item.collection
            if col.nonfinite:
                col.masked_copies = finite_copies(col.files, Path(ex.work_dir) / "inputs" / ex.run_uuid / col.name)
    workflow = init_qmriprep_wf(plans=plans, config=config, staging_dir=str(staging))
    workflow.base_dir = ex.work_dir
    _set_node_resources(workflow, config.nipype.omp_nthreads)
    for subject in plans:
        logs = log_dir(config, subject)
        logs.mkdir(parents=True, exist_ok=True)
        config.to_toml(logs / "qmriprep.toml")
    write_boilerplate(config, plans, workflow)
    return workflow


def _set_node_resources(workflow, threads: int) -> None:
    """Every processing node reserves ``threads`` (= ``--omp-nthreads``) of MultiProc's
    ``--nprocs`` slots, so processes x threads never exceed ``--nprocs``. Nodes run in the main
    process (sinks, merges) are not monitored: their RSS would be the main process's, and the
    monitor's two CPU samples cost 0.2 s per node (most of a no-op rerun)."""
    for node in workflow._get_all_nodes():
        if node.run_without_submitting:
            node.interface.resource_monitor = False
        elif node.n_procs < threads:
            node.n_procs = threads


def _plugin(ny, status_callback=None) -> dict:
    """``workflow.run`` arguments: the ``--use-plugin`` settings if given (a cluster plugin waits
    for its jobs), else Linear for one process or MultiProc whose workers die with this process."""
    from .environment import login_name
    from .multiproc import ResumingMultiProc

    plugin_args = {"status_callback": status_callback or _progress}
    name = ny.plugin.get("plugin", "MultiProc")
    if name != "MultiProc":
        login_name()  # nipype's SLURM/SGE plugins name jobs after $LOGNAME (unset under --cleanenv)
        return {"plugin": name, "plugin_args": {**ny.plugin.get("plugin_args", {}), **plugin_args}}
    plugin_args.update(ny.plugin.get("plugin_args", {}))
    if ny.nprocs <= 1 and not ny.plugin:
        return {"plugin": "Linear", "plugin_args": plugin_args}
    plugin_args.setdefault("n_procs", ny.nprocs)
    plugin_args.setdefault("raise_insufficient", False)
    if ny.mem_gb:
        plugin_args.setdefault("memory_gb", ny.mem_gb)
    return {"plugin": ResumingMultiProc(plugin_args)}


class _StatusCallback:
    """Nipype's status callback: progress lines, and each finished node's time and peak memory
    (a class, not a closure: nodes run in the main process pickle the callback with themselves)."""

    def __init__(self, resources: NodeResources):
        self.resources = resources

    def __call__(self, node, status) -> None:
        _progress(node, status)
        if status == "end":
            self.resources.record(node)


def _progress(node, status) -> None:
    """Which subject and step is running, visible without ``-v``. MapNode items (``_<name><i>``,
    no hierarchy: they printed empty ``|  | done`` lines) are left to their MapNode."""
    if "." not in node.fullname:
        return
    if status in ("start", "end") and not node.name.startswith(("ds_", "merge", "b1_first")):
        parts = node.fullname.split(".")
        subject = next((p for p in parts if p.startswith("sub_")), "")
        step = ".".join(p for p in parts[1:] if not p.startswith("sub_"))
        LOGGER.log(25, "%s | %s %s", subject.replace("sub_", "sub-").replace("_wf", ""), step,
                   "started" if status == "start" else "done")


def _publish(staging: Path, output_dir: Path, subject: str, config, plan) -> None:
    """Replace the subject's published folder by the staged one (:func:`.outputs.publish_subject`)."""
    from .outputs import publish_subject

    sessions = config.execution.session_label or None
    publish_subject(staging, output_dir, subject, run_uuid=config.execution.run_uuid,
                    sessions=sessions and plan.sessions)


def write_boilerplate(config, plans, workflow=None) -> Path:
    """Methods text (Markdown with citation keys) and its BibTeX, in ``<output>/logs``."""
    from ..workflows.base import collect_boilerplate, init_qmriprep_wf

    if workflow is None:
        staging = Path(config.execution.output_dir) / ".qmriprep-staging"
        workflow = init_qmriprep_wf(plans=plans, config=config, staging_dir=str(staging))
    logs = Path(config.execution.output_dir) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    text = collect_boilerplate(workflow)
    atomic_write_text(logs / "CITATION.md", text + "\n")
    atomic_write_text(logs / "CITATION.bib",
                      resources.files("qmriprep").joinpath("data/boilerplate.bib").read_text())
    LOGGER.log(25, "methods boilerplate written to %s", logs / "CITATION.md")
    return logs / "CITATION.md"


def write_reports(config, plans) -> int:
    """``--reports-only``: rewrite each subject's report from its published derivatives, with the
    settings and crash files of its latest run (nothing is processed)."""
    output_dir = Path(config.execution.output_dir)
    for subject, plan in plans.items():
        runs = sorted((output_dir / f"sub-{subject}" / "log").glob("*/qmriprep.toml"))
        logs = runs[-1].parent if runs else log_dir(config, subject)
        errors = [c.read_text(errors="replace") for c in sorted(logs.glob("crash-*"))]
        LOGGER.log(25, "sub-%s: report at %s", subject, _report(config, subject, plan, errors, logs))
    return 0


def _report(config, subject, plan, errors, logs: Path | None = None) -> Path:
    """The subject's report; ``logs``: the run's log folder (settings), default this run's."""
    from ..reports.subject import ReportContext, build_report

    work = config.execution.work_dir
    context = ReportContext(
        subject, sessions=plan.sessions, decisions=[item.decision() for item in plan.collections],
        boilerplate=methods_text(config.execution.output_dir, subject),
        config_file=(logs or log_dir(config, subject)) / "qmriprep.toml", errors=errors,
        version=config.execution.version, plan=plan, nprocs=config.nipype.nprocs,
        figure_store=Path(work) / "report-figures" / f"sub-{subject}" if work else None)
    return build_report(config.execution.output_dir, context)
