"""BIDS-App argument parser (BIDS-Apps and fMRIPrep conventions)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .. import __version__
from .. import estimators


def _path_exists(value: str) -> Path:
    path = Path(value).expanduser().absolute()
    if not path.exists():
        raise argparse.ArgumentTypeError(f"path does not exist: {path}")
    return path


def _label(value: str) -> str:
    return value[4:] if value.startswith(("sub-", "ses-")) else value


def _estimator(value: str) -> tuple[str, list[str]]:
    """``KIND:METHOD[,METHOD...]``, e.g. ``mese:varpro,nlls`` or ``vfa:all``."""
    choices = estimators.choices()
    kind, _, methods = value.partition(":")
    kind = kind.lower()
    if kind not in choices or not methods:
        raise argparse.ArgumentTypeError(
            f"'{value}': expected KIND:METHOD[,METHOD] with KIND one of {', '.join(choices)}")
    chosen = list(choices[kind]) if methods == "all" else methods.split(",")
    unknown = sorted(set(chosen) - set(choices[kind]))
    if unknown:
        raise argparse.ArgumentTypeError(
            f"'{value}': unknown method(s) {', '.join(unknown)} for {kind}; "
            f"choose from {', '.join(choices[kind])} or 'all'")
    return kind, chosen


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {value!r}")
    return number


def _absolute(value: str) -> str:
    return str(Path(value).expanduser().absolute())


def _existing(value: str) -> str:
    return str(_path_exists(value))


def _read_file(value: str, load, error, kind: str):
    """``(path, content)`` of a settings file; an argparse error naming the file if ``load`` fails."""
    path = _path_exists(value)
    try:
        return path, load(path.read_text())
    except error as err:
        raise argparse.ArgumentTypeError(f"{path}: not valid {kind} ({err})") from None


def _filter_file(value: str) -> dict:
    path, filters = _read_file(value, json.loads, json.JSONDecodeError, "JSON")
    if not isinstance(filters, dict):
        raise argparse.ArgumentTypeError(f"{path}: the filter file must hold a JSON object")
    return filters


def _plugin_file(value: str) -> dict:
    """``{"plugin": name, "plugin_args": {...}}`` from a YAML (or JSON) file, as fMRIPrep reads it."""
    import yaml
    from nipype.pipeline import plugins

    path, settings = _read_file(value, yaml.safe_load, yaml.YAMLError, "YAML")
    if not isinstance(settings, dict) or not isinstance(settings.get("plugin"), str) \
            or not isinstance(settings.get("plugin_args", {}), dict) or set(settings) - {"plugin", "plugin_args"}:
        raise argparse.ArgumentTypeError(f"{path}: needs 'plugin: <name>' and optionally a "
                                         "'plugin_args' mapping, nothing else")
    if not hasattr(plugins, f"{settings['plugin']}Plugin"):
        raise argparse.ArgumentTypeError(f"{path}: {settings['plugin']!r} is not a Nipype plugin "
                                         "(e.g. SLURM, SLURMGraph, SGE, PBS, MultiProc)")
    return {"plugin": settings["plugin"], "plugin_args": settings.get("plugin_args", {})}


def build_parser() -> argparse.ArgumentParser:
    """The qmriprep command line. Options that set a run setting have its config path as
    destination (``--nn-epochs`` -> ``nn.max_epochs``) and no default: given options override
    the ``--config-file`` settings, which override the defaults of :class:`qmriprep.config.Config`."""
    parser = argparse.ArgumentParser(
        prog="qmriprep",
        description="qmriprep: quantitative MRI maps (T1, T2, T2*, M0, B1+) from a BIDS dataset.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter, argument_default=argparse.SUPPRESS,
    )
    parser.add_argument("bids_dir", type=_path_exists, help="the root of the input BIDS dataset")
    parser.add_argument("output_dir", type=Path, help="where derivatives and reports are written")
    parser.add_argument("analysis_level", choices=["participant", "group"],
                        help="participant: maps per subject; group: one TSV summary of all subjects")
    parser.add_argument("--version", action="version", version=f"qmriprep v{__version__}")
    _filtering(parser.add_argument_group("BIDS filtering"))
    _resources(parser.add_argument_group("Resources"))
    _estimation(parser.add_argument_group("Estimation"))
    _networks(parser.add_argument_group("In-silico networks (pc-bSSFP)"))
    _scancnn(parser.add_argument_group("Scan-specific CNN (mese:scancnn, megre:scancnn)"))
    _kspace(parser.add_argument_group("Undersampled k-space (sourcedata/kspace/*.h5)"))
    parser.add_argument_group("Maps from weighted images (T1w MPRAGE + T2w TSE)").add_argument(
        "--hybrid-model", dest="weighted.model", type=_existing, metavar="MODEL_DIR",
        help="apply this model (qmriprep-hybrid train) to every subject with T1w and T2w images; its "
             "protocol must match their sidecars")
    g = parser.add_argument_group("Workflow")
    g.add_argument("--config-file", type=_path_exists, metavar="FILE", default=None,
                   help="TOML settings of an earlier run (as saved in its log folder); options given "
                        "on the command line take precedence")
    g.add_argument("--boilerplate-only", "--boilerplate_only", dest="execution.boilerplate_only",
                   action="store_true", help="write the methods boilerplate and exit")
    g.add_argument("--reports-only", "--reports_only", dest="execution.reports_only",
                   action="store_true", help="rewrite the subject reports from the derivatives already "
                                             "in the output folder (nothing is processed) and exit")
    g.add_argument("--stop-on-first-crash", dest="execution.stop_on_first_crash", action="store_true",
                   help="stop at the first failing node instead of running what can run")
    g.add_argument("-v", "--verbose", dest="verbose_count", action="count", default=0,
                   help="more log output (-vv for debugging)")
    _group(parser.add_argument_group("Group level"))
    return parser


def _filtering(g) -> None:
    g.add_argument("--participant-label", "--participant_label", dest="execution.participant_label",
                   nargs="+", type=_label, metavar="LABEL",
                   help="subjects to process (with or without 'sub-'); default all")
    g.add_argument("--session-label", dest="execution.session_label", nargs="+", type=_label,
                   metavar="LABEL", help="sessions to process (with or without 'ses-'); default all")
    g.add_argument("--bids-filter-file", dest="execution.bids_filters", type=_filter_file, metavar="FILE",
                   help="JSON of pybids filters per collection kind, e.g. {\"vfa\": {\"acquisition\": \"hr\"}}")
    g.add_argument("--skip-bids-validation", "--skip_bids_validation", dest="execution.skip_bids_validation",
                   action="store_true",
                   help="do not run the BIDS validator (the structure checks qmriprep needs always run)")


def _resources(g) -> None:
    g.add_argument("-w", "--work-dir", dest="execution.work_dir", type=_absolute, default=_absolute("work"),
                   help="working directory (intermediate results; reused by reruns)")
    g.add_argument("--nprocs", "--n-cpus", dest="nipype.nprocs", type=positive_int, metavar="N",
                   help="maximum number of processes (default: all CPUs)")
    g.add_argument("--omp-nthreads", dest="nipype.omp_nthreads", type=positive_int, metavar="N",
                   help="threads per process for numpy/torch (default: min(8, nprocs))")
    g.add_argument("--mem", "--mem-gb", dest="nipype.mem_gb", type=float, metavar="GB",
                   help="memory limit for the scheduler, in GB")
    g.add_argument("--use-plugin", dest="nipype.plugin", type=_plugin_file, metavar="FILE",
                   help="Nipype plugin settings (YAML: plugin: SLURM, plugin_args: {sbatch_args: ...}) "
                        "to run the nodes as cluster jobs; qmriprep waits for them and then publishes")
    g.add_argument("--device", dest="workflow.device",
                   help="torch device for learned estimators (cpu, cuda, cuda:1; default cpu)")
    g.add_argument("--random-seed", dest="seeds.random_seed", type=int, metavar="SEED",
                   help="seed of every random choice (recorded in the sidecars)")


def _estimation(g) -> None:
    choices = estimators.choices()
    defaults = estimators.default_estimators()
    g.add_argument("--estimators", nargs="+", type=_estimator, metavar="KIND:METHODS",
                   help="methods per collection kind, e.g. mese:varpro,nlls megre:loglinear vfa:all; "
                        + "; ".join(f"{k}: {', '.join(v)} (default {', '.join(defaults[k])})"
                                    for k, v in choices.items()))
    g.add_argument("--drop-first-echo", dest="multiecho.drop_first_echo", action="store_true",
                   help="exclude the first echo of MESE/MEGRE fits (stimulated-echo contamination)")
    g.add_argument("--fit-offset", dest="multiecho.fit_offset", action="store_true",
                   help="fit a constant noise-floor offset in multi-echo fits")
    g.add_argument("--b1-source", dest="workflow.b1_source",
                   choices=["auto", "TB1map", "TB1TFL", "TB1AFI", "TB1DAM", "none"],
                   help="which B1+ collection corrects VFA, pc-bSSFP and DESS (auto: IntendedFor, else "
                        "nearest in session; none: B1 = 1 assumed). Default auto")
    g.add_argument("--b1-registration", dest="workflow.b1_registration", choices=["rigid", "header"],
                   help="bring B1+ maps to the target by rigid registration or scanner coordinates only "
                        "(default rigid)")
    g.add_argument("--b1-fwhm", dest="workflow.b1_fwhm_mm", type=float, metavar="MM",
                   help="Gaussian smoothing of B1+ maps (mm FWHM; 0 disables; default 8)")
    g.add_argument("--align-series", dest="workflow.align_series", choices=["auto", "always", "never"],
                   help="rigid alignment of volumes within a collection. auto (default): VFA flip angles, "
                        "ignoring motions under 0.25 voxel (registration noise between contrasts); echo "
                        "trains and pc-bSSFP cycles not (banding confounds the registration of single "
                        "cycles); a T2w/FLAIR on another grid than its T1w (--hybrid-model) in auto and "
                        "always. always: VFA and pc-bSSFP, every estimated motion. never: none (a "
                        "weighted set on two grids is then an error)")
    g.add_argument("--strict", dest="workflow.strict", action="store_true",
                   help="treat a missing B1+ map (for VFA or pc-bSSFP) as an error instead of "
                        "assuming B1 = 1 with a warning")
    g.add_argument("--b1-median", dest="bssfp.b1_median_mm", type=float, metavar="MM",
                   help="3-D median filter of the B1+ map on the pc-bSSFP grid (mm; the seed used 13 mm). "
                        "Off by default: B1+ maps are already smoothed (--b1-fwhm), and the extra "
                        "median costs about 0.8 %% T1 accuracy on the noise-free phantom")
    g.add_argument("--gibbs", dest="bssfp.gibbs", action="store_true",
                   help="Gibbs-ringing removal (dipy) of the pc-bSSFP Fourier configurations, as the "
                        "seed paper did in vivo; off by default because it also blurs edges of data "
                        "without ringing (3 %% median T1/T2 error on a noise-free phantom)")
    g.add_argument("--denoise", dest="noise.denoise", choices=["auto", "mppca", "none"],
                   help="MP-PCA denoising (Veraart 2016) of the echoes, flip angles and complex "
                        "pc-bSSFP cycles before fitting. auto (default): MESE, MEGRE, VFA and "
                        "pc-bSSFP series whose noise came from a noise-only background (where it "
                        "lowered the map errors: benchmarks/RESULTS.md); mppca: every series of "
                        "3 or more volumes; none: off")
    g.add_argument("--dess-t1", dest="dess.t1", type=float, metavar="S",
                   help="T1 assumed by the qDESS T2 estimate (s; Sveinsson 2017 used 1.2 for cartilage)")


def _networks(g) -> None:
    g.add_argument("--nn-samples", dest="nn.n_samples", type=int, metavar="N",
                   help="simulated training samples (default: the trainer's, tuned for speed)")
    g.add_argument("--nn-epochs", dest="nn.max_epochs", type=int, metavar="N", help="maximum training epochs")
    g.add_argument("--nn-distribution", dest="nn.distribution", choices=["uniform", "extended", "invivo"],
                   help="T1/T2 distribution of the training data (default uniform)")
    g.add_argument("--nn-snr", dest="nn.snr", type=float, metavar="SNR",
                   help="train with noise at this SNR (seed definition; default: the SNR measured on "
                        "the series, see --nn-no-noise-match)")
    g.add_argument("--nn-no-noise-match", dest="nn.noise_match", action="store_false",
                   help="train noise-free instead of at the series' measured noise level")
    g.add_argument("--nn-cache-dir", dest="nn.cache_dir", type=_absolute, metavar="DIR",
                   help="where trained networks are cached (default: <work-dir>/networks)")
    g.add_argument("--retrain", dest="nn.retrain", action="store_true",
                   help="train the networks again even if shipped or cached weights match")


def _scancnn(g) -> None:
    from ..nn.scancnn import LOSSES

    g.add_argument("--scancnn-loss", dest="scan_cnn.loss", choices=LOSSES,
                   help="data term between acquired and synthesised echoes (default l2; see "
                        "benchmarks/RESULTS.md for the comparison)")
    g.add_argument("--scancnn-epochs", dest="scan_cnn.max_epochs", type=positive_int, metavar="N",
                   help="maximum training epochs on the scan (default 2000; training stops earlier "
                        "when the held-out echo error stops falling)")
    g.add_argument("--scancnn-time-budget", dest="scan_cnn.time_budget_s", type=float, metavar="S",
                   help="stop each scan's training after this many seconds (default 270; 0: no limit)")


def _kspace(g) -> None:
    from ..recon.pipeline import PRESETS

    names = [r.name for r in estimators.reconstructions()]
    default = [r.name for r in estimators.reconstructions() if r.default]
    g.add_argument("--recon", dest="recon.methods", nargs="+", choices=names,
                   help="reconstructions of each k-space collection, each written as rec-<method> "
                        f"images with its own maps (default: {' '.join(default)})")
    g.add_argument("--recon-preset", dest="recon.preset", choices=sorted(PRESETS),
                   help="ZSSSL network and training size. seed: the paper's (10 unrolls, 15 residual "
                        "blocks of 64 features, up to 300 epochs; a GPU job); fast (default): a smaller "
                        "network and shorter training that runs on CPUs; quick: the fast network for 100 "
                        "steps from a high learning rate, minutes per slice set; best for multi-echo series "
                        "(contrast subspace; see benchmarks/RESULTS.md)")
    for flag, key, what in (("--recon-unrolls", "n_unrolls", "unrolls"),
                            ("--recon-features", "features", "CNN features"),
                            ("--recon-blocks", "blocks", "CNN residual blocks"),
                            ("--recon-cg-iter", "cg_iter", "CG iterations per data consistency"),
                            ("--recon-epochs", "max_epochs", "maximum epochs"),
                            ("--recon-patience", "patience", "epochs without improvement before stopping"),
                            ("--recon-steps", "steps_per_epoch", "training steps per epoch")):
        g.add_argument(flag, dest=f"recon.zsssl.{key}", type=int, metavar="N",
                       help=f"ZSSSL {what} (overrides the preset)")
    g.add_argument("--recon-time-budget", dest="recon.zsssl.time_budget_s", type=float, metavar="S",
                   help="stop ZSSSL training after the epoch that passes S seconds (keeping the "
                        "best self-validation state); default: no limit")
    g.add_argument("--no-mel", dest="recon.zsssl.mel", action="store_false",
                   help="plain backpropagation instead of memory-efficient learning (same gradients, "
                        "several times the memory)")
    g.add_argument("--no-recon-subspace", dest="recon.zsssl.subspace", action="store_false",
                   help="ZSSSL reconstructs every contrast instead of the coefficients of the series' "
                        "contrast subspace (on by default in the fast and quick presets for series of "
                        "6 or more contrasts sampled alike; see qmriprep.recon.subspace)")
    g.add_argument("--recon-init", dest="recon.init", type=_existing, metavar="MODEL",
                   help="start ZSSSL training from this saved model (transfer from another scan); "
                        "default: from scratch")
    g.add_argument("--recon-pretrained", dest="recon.pretrained", action="store_true",
                   help="start ZSSSL from the network qmriprep ships for 8-contrast series with the "
                        "fast preset's architecture (pre-trained on synthetic phantom slices: faster "
                        "on phantom-like data, no gain measured on real anatomy)")


def _group(g) -> None:
    from ..registration import TEMPLATE

    g.add_argument("--output-spaces", dest="output_spaces", nargs="+", choices=["native", TEMPLATE],
                   default=["native", TEMPLATE],
                   help="spaces of the group table: native (each map's grid, tissues of the template "
                        f"pulled back) and {TEMPLATE} (nilearn's MNI152 template, offline; the maps "
                        "are registered affinely and written as space-<template> derivatives)")
    g.add_argument("--template-resolution", dest="template_resolution", type=positive_int, default=2,
                   metavar="MM", help="voxel size of the template space (mm)")
    g.add_argument("--atlas", dest="atlas", type=_existing, default=None, metavar="NIFTI",
                   help="ROI atlas in the template space (integer labels; names from an index/name "
                        "TSV beside it) summarised as extra regions of the group table")
