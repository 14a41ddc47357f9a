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

from ..errors import EXIT_INPUT, InputError

LOGGER = logging.getLogger("qmriprep")


def main(argv=None) -> int:
    """Run qmriprep; returns the exit code (0 success, 65 bad input, 1 processing failure)."""
    from .parser import build_parser

    opts = build_parser().parse_args(argv)
    _setup_logging(opts.verbose_count)
    try:
        config = _build_config(opts)
        _set_threads(config.nipype.omp_nthreads)
        if opts.analysis_level == "group":
            from ..workflows.group import write_group_summary

            out = write_group_summary(config.execution.output_dir)
            LOGGER.log(25, "group summary written to %s", out)
            return 0
        return _run_participants(config)
    except InputError as err:
        LOGGER.error("%s", err)
        return EXIT_INPUT


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
    """Settings from ``--config-file`` (if any), then the options given on the command line."""
    from .. import __version__
    from ..config import Config

    config = Config.from_toml(opts.config_file) if opts.config_file else Config()
    ex, wf, ny = config.execution, config.workflow, config.nipype
    bids_dir, output_dir = Path(opts.bids_dir).absolute(), Path(opts.output_dir).absolute()
    if output_dir == bids_dir or bids_dir in output_dir.parents:
        raise InputError(output_dir, "the output folder must not be the input BIDS folder or inside it")
    ex.bids_dir, ex.output_dir = str(bids_dir), str(output_dir)
    ex.work_dir = str(Path(opts.work_dir).absolute())
    wf.nn_cache_dir = wf.nn_cache_dir or str(Path(ex.work_dir) / "networks")
    ex.version, ex.run_uuid = __version__, _run_uuid()  # a repeated run gets its own log folder
    ex.participant_label = opts.participant_label or ex.participant_label
    ex.session_label = opts.session_label or ex.session_label
    ex.bids_filters = opts.bids_filter_file or ex.bids_filters
    ex.log_level = 25 - 5 * opts.verbose_count if opts.verbose_count < 2 else logging.DEBUG
    ex.skip_bids_validation |= opts.skip_bids_validation
    ex.boilerplate_only |= opts.boilerplate_only
    ex.stop_on_first_crash |= opts.stop_on_first_crash
    for kind, methods in opts.estimators:
        wf.estimators[kind] = methods
    wf.drop_first_echo |= opts.drop_first_echo
    wf.strict |= opts.strict
    wf.bssfp_gibbs |= opts.gibbs
    wf.retrain |= opts.retrain
    wf.fit_offset |= opts.fit_offset
    wf.recon_mel = wf.recon_mel and not opts.no_mel
    for key, value in (("b1_source", opts.b1_source), ("b1_registration", opts.b1_registration),
                       ("b1_fwhm_mm", opts.b1_fwhm), ("align_series", opts.align_series),
                       ("b1_median_mm", opts.b1_median), ("nn_samples", opts.nn_samples),
                       ("nn_max_epochs", opts.nn_epochs), ("nn_distribution", opts.nn_distribution),
                       ("nn_snr", opts.nn_snr),
                       ("nn_cache_dir", str(opts.nn_cache_dir.absolute()) if opts.nn_cache_dir else None),
                       ("device", opts.device if opts.device != "cpu" else None),
                       ("recon", opts.recon), ("recon_preset", opts.recon_preset),
                       ("recon_unrolls", opts.recon_unrolls), ("recon_features", opts.recon_features),
                       ("recon_blocks", opts.recon_blocks), ("recon_cg_iter", opts.recon_cg_iter),
                       ("recon_max_epochs", opts.recon_max_epochs), ("recon_patience", opts.recon_patience),
                       ("recon_steps", opts.recon_steps), ("dess_t1", opts.dess_t1),
                       ("recon_init", str(opts.recon_init) if opts.recon_init else None)):
        if value is not None:
            setattr(wf, key, value)
    ny.nprocs = opts.nprocs or (ny.nprocs if opts.config_file else os.cpu_count() or 1)
    ny.omp_nthreads = opts.omp_nthreads or min(8, ny.nprocs)
    ny.mem_gb = opts.mem or ny.mem_gb
    if opts.random_seed is not None:
        config.seeds.random_seed = opts.random_seed
    return config


def _run_uuid() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}_{uuid.uuid4().hex[:8]}"


def _run_participants(config) -> int:
    from ..bids.collections import load_layout, list_subjects
    from .execute import run_workflow, write_boilerplate
    from .plan import plan_subjects

    ex = config.execution
    layout = load_layout(ex.bids_dir, validate=not ex.skip_bids_validation)
    subjects = list_subjects(layout, ex.participant_label or None)
    plans = plan_subjects(layout, subjects, config)  # raises InputError before anything is written
    if not any(c.supported for cols in plans.values() for c in cols):
        raise InputError(ex.bids_dir, "no collection qmriprep can process was found "
                                      f"for participant(s) {', '.join(subjects)}")
    if ex.boilerplate_only:
        write_boilerplate(config, plans)
        return 0
    return run_workflow(config, plans)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
