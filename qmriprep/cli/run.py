"""``qmriprep`` entry point: parse, check the input, build the graph, run it, publish the results.

Derivatives are written to a staging folder inside the output folder and moved into place only
when a subject's workflow finished, so a crash or bad input leaves no partial derivative.
"""

from __future__ import annotations

import logging
import os
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

from ..errors import EXIT_INPUT, EXIT_PROCESSING, InputError
from .environment import private_caches

LOGGER = logging.getLogger("qmriprep")


def main(argv=None) -> int:
    """Run qmriprep; returns the exit code (0 success, 65 bad input or a subject another run is
    processing, 1 processing failure or interruption, 2 bad command line)."""
    from .parser import build_parser

    opts = build_parser().parse_args(argv)
    _setup_logging(opts.verbose_count)
    try:
        private_caches(_work_dir(opts))
        config = _build_config(opts)
        _set_threads(config.nipype.omp_nthreads)
        if opts.analysis_level == "group":
            from ..reports.group import write_group_summary

            out = write_group_summary(config.execution.output_dir, spaces=opts.output_spaces,
                                      resolution=opts.template_resolution, atlas=opts.atlas)
            LOGGER.log(25, "group summary written to %s", out)
            return 0
        return _run_participants(config)
    except InputError as err:
        LOGGER.error("%s", err)
        return EXIT_INPUT
    except KeyboardInterrupt:
        LOGGER.error("interrupted; nothing of this run was published")
        return EXIT_PROCESSING
    except Exception as err:  # noqa: BLE001 (one line for users; the traceback with -v)
        _unexpected(err, opts.verbose_count)
        return EXIT_PROCESSING


def _work_dir(opts) -> str:
    """The work folder of the command line (``-w``, default ``./work``); an InputError unless it is
    (or can be made) a writable folder."""
    from .outputs import check_folder

    work = getattr(opts, "execution.work_dir")
    check_folder(work, "work folder")
    return work


def _unexpected(err: Exception, verbose: int) -> None:
    """Log an error qmriprep did not foresee in one line (with its traceback under ``-v``)."""
    if isinstance(err, OSError) and err.strerror:
        what = f"{err.filename}: {err.strerror}" if err.filename else err.strerror
    else:
        what = (str(err).splitlines() or [""])[0]
    LOGGER.error("%s (%s)%s", what, type(err).__name__, "" if verbose else "; run with -v for details",
                 exc_info=bool(verbose))


def _setup_logging(verbose: int) -> None:
    level = 25 - 5 * verbose if verbose < 2 else logging.DEBUG  # 25: progress lines only
    logging.addLevelName(25, "IMPORTANT")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s | %(levelname)s | %(message)s", "%H:%M:%S"))
    LOGGER.handlers[:] = [handler]
    LOGGER.setLevel(level)
    LOGGER.propagate = False


def _set_threads(n: int) -> None:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    # idle OpenMP threads sleep instead of spinning: 10x faster on a loaded (shared) node
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    torch.set_num_threads(n)


def _build_config(opts):
    """Settings from ``--config-file`` (if any), then the options given on the command line.

    Every option whose destination is a config path (``nn.max_epochs``) is set there; a
    ``--recon-preset`` is applied before the single ZS-SSL options, which override it.
    """
    from .. import __version__
    from ..config import Config
    from .outputs import check_folder

    config = Config.from_toml(opts.config_file) if opts.config_file else Config()
    ex, ny = config.execution, config.nipype
    bids_dir, output_dir = Path(opts.bids_dir).absolute(), Path(opts.output_dir).absolute()
    if output_dir == bids_dir or bids_dir in output_dir.parents:
        raise InputError(output_dir, "the output folder must not be the input BIDS folder or inside it")
    check_folder(output_dir)
    given = {k: v for k, v in vars(opts).items() if "." in k}
    if "recon.preset" in given:
        config.recon.apply_preset(given.pop("recon.preset"))
    for path, value in given.items():
        config.set(path, value)
    chosen = {}
    for kind, methods in getattr(opts, "estimators", []):  # a kind given twice: both lists, in order
        chosen[kind] = list(dict.fromkeys(chosen.get(kind, []) + list(methods)))
    config.workflow.estimators.update(chosen)
    ex.bids_dir, ex.output_dir = str(bids_dir), str(output_dir)
    check_folder(ex.work_dir, "work folder")
    config.nn.cache_dir = config.nn.cache_dir or str(Path(ex.work_dir) / "networks")
    ex.version, ex.run_uuid = __version__, _run_uuid()  # a repeated run gets its own log folder
    ex.log_level = 25 - 5 * opts.verbose_count if opts.verbose_count < 2 else logging.DEBUG
    if "nipype.nprocs" not in given and not opts.config_file:
        ny.nprocs = os.cpu_count() or 1
    if "nipype.omp_nthreads" not in given:
        ny.omp_nthreads = min(8, ny.nprocs)
    # run-wide choices the ZS-SSL settings carry (decided here once, recorded in the TOML)
    config.recon.zsssl.seed, config.recon.zsssl.device = config.seeds.random_seed, config.workflow.device
    return config


def _run_uuid() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}_{uuid.uuid4().hex[:8]}"


def _run_participants(config) -> int:
    from ..bids.collections import load_layout, list_subjects
    from .execute import run_workflow, write_boilerplate, write_reports
    from .plan import plan_subjects

    ex = config.execution
    layout = load_layout(ex.bids_dir, validate=not ex.skip_bids_validation)
    subjects = list_subjects(layout, ex.participant_label or None)
    plans = plan_subjects(layout, subjects, config)  # raises InputError before anything is written
    if not any(plan.processed() for plan in plans.values()):
        raise InputError(ex.bids_dir, "no collection qmriprep can process was found "
                                      f"for participant(s) {', '.join(subjects)}")
    if ex.boilerplate_only:
        write_boilerplate(config, plans)
        return 0
    if ex.reports_only:
        return write_reports(config, plans)
    return run_workflow(config, plans)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
