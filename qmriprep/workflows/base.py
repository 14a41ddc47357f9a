"""Top-level graphs: one sub-workflow per subject, one per collection inside it."""

from __future__ import annotations

import math
from copy import deepcopy

from nipype.pipeline import engine as pe

from ..provenance import bids_uris
from ..bids.b1choice import B1_CONSUMERS
from .b1 import init_b1_wf
from .bssfp import init_bssfp_wf
from .dess import init_dess_wf
from .multiecho import init_multiecho_wf
from .recon import init_recon_wf
from .vfa import init_vfa_wf

B1_KINDS = ("TB1DAM", "TB1AFI", "TB1TFL", "TB1map")
#: ``--align-series auto``: VFA motions below this many voxels are registration noise, not motion
AUTO_MIN_MOTION = 0.25


def init_qmriprep_wf(*, plans: dict, config, staging_dir: str, name: str = "qmriprep_wf"):
    """All subjects: ``plans`` maps a subject label to its list of collections."""
    workflow = pe.Workflow(name=name)
    for subject, collections in plans.items():
        single_subject_wf = init_single_subject_wf(
            subject=subject, collections=collections, config=config, staging_dir=staging_dir)
        single_subject_wf.config["execution"]["crashdump_dir"] = str(_log_dir(config, subject))
        for node in single_subject_wf._get_all_nodes():  # noqa: SLF001 (nipype: per-node config)
            node.config = deepcopy(single_subject_wf.config)
        workflow.add_nodes([single_subject_wf])
    return workflow


def init_single_subject_wf(*, subject: str, collections, config, staging_dir: str, name=None):
    """Every processed collection of one subject, with B1+ maps wired to the VFA series they correct.

    Parameters: ``subject`` label, its ``collections`` (:func:`qmriprep.bids.collections.find_collections`),
    the run ``config`` and the ``staging_dir`` derivatives are written to before the run moves them.
    """
    workflow = pe.Workflow(name=name or f"sub_{subject}_wf")
    workflow.__desc__ = (
        "Results included in this manuscript come from quantitative MRI processing performed with "
        f"*qmriprep* {config.execution.version} [@qmriprep], based on *Nipype* [@nipype] and the BIDS "
        "standard [@bids]."
    )
    wcfg, bids_dir = config.workflow, config.execution.bids_dir
    b1_wfs = {}
    for col in (c for c in collections if c.supported and c.kind in B1_KINDS):
        b1_wf = _b1_wf(col, wcfg, bids_dir, staging_dir)
        b1_wf.get_node("inputnode").inputs.in_files = [str(f) for f in col.files]
        b1_wf.get_node("inputnode").inputs.source_files = [str(f) for f in col.files]
        b1_wfs[id(col)] = b1_wf
        workflow.add_nodes([b1_wf])
    for col in (c for c in collections if c.supported and c.kind not in B1_KINDS):
        sources = bids_uris(col.files, bids_dir)
        b1_col, b1_mode = _b1_choice(col, wcfg) if col.series_kind in B1_CONSUMERS else (None, None)
        b1_sources = bids_uris(b1_col.files, bids_dir) if b1_col else ()

        def maps_wf(name, col=col, sources=sources, b1_mode=b1_mode, b1_sources=b1_sources):
            return _init_maps_wf(col, config, staging_dir, sources, b1_mode, b1_sources, name)

        if col.kind == "kspace":
            wf = init_recon_wf(suffix=col.series_kind, methods=wcfg.recon, output_dir=staging_dir,
                               sources=sources, init_maps_wf=maps_wf, settings=recon_settings(config),
                               init_model=wcfg.recon_init or None,
                               omp_nthreads=config.nipype.omp_nthreads, name=_wf_name(col))
        else:
            wf = maps_wf(_wf_name(col))
        wf.get_node("inputnode").inputs.in_files = [str(f) for f in col.files]
        wf.get_node("inputnode").inputs.source_files = [str(f) for f in col.files]
        workflow.add_nodes([wf])
        if b1_col is not None:
            workflow.connect([(b1_wfs[id(b1_col)], wf, [("outputnode.b1", "inputnode.b1"),
                                                        ("outputnode.reference", "inputnode.b1_reference")])])
    return workflow


def _init_maps_wf(col, config, staging_dir, sources, b1_mode, b1_sources, name):
    """The map workflow of one image collection (or of the images reconstructed from k-space)."""
    wcfg, kind, p = config.workflow, col.series_kind, col.protocol
    if kind in ("MESE", "MEGRE"):
        return init_multiecho_wf(kind=kind, echo_times=list(p.echo_times),
                                 methods=wcfg.estimators[kind.lower()], output_dir=staging_dir,
                                 sources=sources, drop_first_echo=wcfg.drop_first_echo,
                                 fit_offset=wcfg.fit_offset, name=name)
    if kind == "bSSFP":
        return init_bssfp_wf(phase_increments=list(p.phase_increments), flip_angle=p.flip_angle,
                             repetition_time=p.tr, echo_time=p.echo_time,
                             parts="realimag" if "real" in p.parts else "magphase",
                             estimators=wcfg.estimators["bssfp"], output_dir=staging_dir,
                             sources=sources, b1_registration=b1_mode, b1_sources=b1_sources,
                             align=wcfg.align_series == "always", gibbs=wcfg.bssfp_gibbs,
                             b1_median_mm=wcfg.b1_median_mm, network_options=network_options(config),
                             name=name)
    if kind == "DESS":
        return init_dess_wf(protocol=p, output_dir=staging_dir, sources=sources,
                            assumed_t1=wcfg.dess_t1, b1_registration=b1_mode, b1_sources=b1_sources,
                            name=name)
    # VFA; images reconstructed from one k-space scan share their grid: no alignment
    align = None if col.kind == "kspace" else {"auto": AUTO_MIN_MOTION, "always": 0.0}.get(wcfg.align_series)
    return init_vfa_wf(flip_angles=[round(math.degrees(a), 6) for a in p.flip_angles],
                       repetition_time=p.tr, methods=wcfg.estimators["vfa"], output_dir=staging_dir,
                       sources=sources, align=align, b1_registration=b1_mode, b1_sources=b1_sources,
                       name=name)


def recon_settings(config) -> dict:
    """ZSSSL settings of the run: the preset, then every option the user set, and the seed."""
    from ..recon.pipeline import PRESETS

    wcfg = config.workflow
    settings = dict(PRESETS[wcfg.recon_preset])
    for key, value in (("n_unrolls", wcfg.recon_unrolls), ("features", wcfg.recon_features),
                       ("blocks", wcfg.recon_blocks), ("cg_iter", wcfg.recon_cg_iter),
                       ("max_epochs", wcfg.recon_max_epochs), ("patience", wcfg.recon_patience),
                       ("steps_per_epoch", wcfg.recon_steps)):
        if value:
            settings[key] = value
    settings.update(mel=wcfg.recon_mel, seed=config.seeds.random_seed, device=wcfg.device)
    return settings


def _b1_choice(col, wcfg):
    """The B1+ collection correcting ``col`` and how it is brought to ``col``'s space."""
    b1_col = col.b1 if wcfg.b1_source != "none" else None
    if b1_col is None:
        return None, None
    return b1_col, "header" if b1_col.kind == "TB1map" else wcfg.b1_registration


def network_options(config) -> dict:
    """Training settings of the in-silico networks (only those the user set)."""
    wcfg = config.workflow
    options = {"device": wcfg.device, "seed": config.seeds.random_seed, "retrain": wcfg.retrain,
               "distribution": wcfg.nn_distribution}
    for key, value in (("n_samples", wcfg.nn_samples), ("max_epochs", wcfg.nn_max_epochs),
                       ("snr", wcfg.nn_snr), ("cache_dir", wcfg.nn_cache_dir)):
        if value:
            options[key] = value
    return options


def _b1_wf(col, wcfg, bids_dir, staging_dir):
    p = col.protocol
    kwargs = {}
    if col.kind in ("TB1DAM", "TB1AFI", "TB1TFL"):
        kwargs["flip_angle"] = round(math.degrees(p.flip_angle), 6)
    if col.kind == "TB1AFI":
        kwargs["repetition_times"] = (p.tr1, p.tr2)
    if col.kind == "TB1map":
        kwargs["scale"] = p.scale
    return init_b1_wf(kind=col.kind, output_dir=staging_dir, sources=bids_uris(col.files, bids_dir),
                      fwhm_mm=wcfg.b1_fwhm_mm, name=_wf_name(col), **kwargs)


def _wf_name(col) -> str:
    """``<kind>[_ses<s>][_acq<a>][_run<r>]_wf``: unique per collection, a valid node name."""
    parts = [col.kind.lower()] if col.kind != "kspace" else [col.series_kind.lower(), "kspace"]
    if col.session:
        parts.append(f"ses{col.session}")
    for key in ("acquisition", "reconstruction", "run"):
        value = (col.entities or {}).get(key)
        if value not in (None, ""):
            parts.append(f"{key[:3]}{value}")
    return "_".join(parts) + "_wf"


def _log_dir(config, subject):
    from pathlib import Path

    return Path(config.execution.output_dir) / f"sub-{subject}" / "log" / config.execution.run_uuid


def collect_boilerplate(workflow) -> str:
    """The ``__desc__`` paragraphs of a workflow tree, in graph order, de-duplicated."""
    seen, paragraphs = set(), []

    def visit(wf):
        desc = getattr(wf, "__desc__", None)
        if desc and desc not in seen:
            seen.add(desc)
            paragraphs.append(desc)
        for node in wf._graph.nodes():  # noqa: SLF001 (nipype exposes no public iterator)
            if isinstance(node, pe.Workflow):
                visit(node)

    visit(workflow)
    return "\n\n".join(paragraphs)
