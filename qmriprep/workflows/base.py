"""Top-level graphs: one sub-workflow per subject, one per planned collection inside it."""

from __future__ import annotations

from copy import deepcopy
from pathlib import Path

from nipype.pipeline import engine as pe

from ..bids.metadata import B1_KINDS
from .b1 import init_b1_wf
from .bssfp import init_bssfp_wf
from .dess import init_dess_wf
from .memory import declare_memory
from .mrf import init_mrf_wf
from .multiecho import init_multiecho_wf
from .recon import init_recon_wf
from .vfa import init_vfa_wf
from .weighted import init_weighted_wf

#: the map workflow of each image kind (k-space collections: of their images' suffix)
MAP_WORKFLOWS = {"MESE": init_multiecho_wf, "MEGRE": init_multiecho_wf, "VFA": init_vfa_wf,
                 "bSSFP": init_bssfp_wf, "DESS": init_dess_wf, "MRF": init_mrf_wf, "weighted": init_weighted_wf}


def init_qmriprep_wf(*, plans: dict, config, staging_dir: str, name: str = "qmriprep_wf"):
    """All subjects: ``plans`` maps a subject label to its :class:`~qmriprep.bids.plan.SubjectPlan`."""
    workflow = pe.Workflow(name=name)
    for subject, plan in plans.items():
        single_subject_wf = init_single_subject_wf(plan=plan, config=config, staging_dir=staging_dir)
        single_subject_wf.config["execution"]["crashdump_dir"] = str(log_dir(config, subject))
        for node in single_subject_wf._get_all_nodes():  # noqa: SLF001 (nipype: per-node config)
            node.config = deepcopy(single_subject_wf.config)
        workflow.add_nodes([single_subject_wf])
    return workflow


def init_single_subject_wf(*, plan, config, staging_dir: str, name=None):
    """Every processed collection of one subject, with B1+ maps wired to what the plan says they
    correct. ``staging_dir``: where derivatives are written before the run moves them."""
    workflow = pe.Workflow(name=name or f"sub_{plan.subject}_wf")
    workflow.__desc__ = (
        "Results included in this manuscript come from quantitative MRI processing performed with "
        f"*qmriprep* {config.execution.version} [@qmriprep], based on *Nipype* [@nipype] and the BIDS "
        "standard [@bids]."
    )
    b1_wfs = {}
    for item in (p for p in plan.processed() if p.collection.kind in B1_KINDS):
        b1_wfs[id(item.collection)] = wf = init_b1_wf(item=item, config=config, output_dir=staging_dir,
                                                      name=_wf_name(item.collection))
        _set_inputs(wf, item.collection.input_files, item.collection.files)
        declare_memory(wf, item.collection, config.nipype.mem_gb)
        workflow.add_nodes([wf])
    for item in (p for p in plan.processed() if p.collection.kind not in B1_KINDS):
        col = item.collection
        init_maps = MAP_WORKFLOWS[col.series_kind]

        def maps_wf(name, item=item, init_maps=init_maps):
            return init_maps(item=item, config=config, output_dir=staging_dir, name=name)

        wf = (init_recon_wf(item=item, config=config, output_dir=staging_dir, init_maps_wf=maps_wf,
                            name=_wf_name(col)) if col.kind == "kspace" else maps_wf(_wf_name(col)))
        _set_inputs(wf, col.input_files, col.files)
        declare_memory(wf, col, config.nipype.mem_gb)
        workflow.add_nodes([wf])
        if item.b1 is not None and item.b1.map is not None:
            workflow.connect([(b1_wfs[id(item.b1.map)], wf, [("outputnode.b1", "inputnode.b1"),
                                                             ("outputnode.reference", "inputnode.b1_reference")])])
    return workflow


def _set_inputs(wf, files, sources) -> None:
    """``files``: what the nodes read (masked copies of files with NaN voxels); ``sources``:
    the BIDS files the derivatives name."""
    inputnode = wf.get_node("inputnode")
    inputnode.inputs.in_files = [str(f) for f in files]
    inputnode.inputs.source_files = [str(f) for f in sources]


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


def log_dir(config, subject) -> Path:
    """Where a run writes one subject's settings and crash files."""
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
