"""Derivative writers: one :class:`~qmriprep.interfaces.bids.DerivativesDataSink` per output map."""

from __future__ import annotations

from dataclasses import dataclass, field

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from ..interfaces.bids import DerivativesDataSink

#: B1+ registrations moving the target's field of view by under this many voxels are treated as
#: registration noise (different contrast and resolution) and replaced by the scanner coordinates
B1_MIN_MOTION = 0.25


def listify(value):
    """``[value]`` (a Nipype connection function)."""
    return [value]


@dataclass(frozen=True)
class MapSpec:
    """One derivative: the workflow field it comes from, its BIDS name parts and sidecar."""

    field: str
    suffix: str
    desc: str | None = None
    datatype: str = "anat"
    meta: dict = field(default_factory=dict)
    #: name of a node output holding more sidecar fields known only at run time (or None)
    runtime_meta: str | None = None
    #: gzip the file (images); False for text (transforms)
    compress: bool = True


def mask_spec(item, sources) -> MapSpec:
    """The foreground mask the maps of ``item`` (a :class:`~qmriprep.bids.plan.CollectionPlan`)
    were fitted in: ``acq-<kind>[<acq label>]_desc-brain_mask``, so that ``desc="brain"`` finds
    every mask and ``acq`` tells the collections apart (e.g. ``acq-mese``, ``acq-bssfppc12``)."""
    col = item.collection
    label = col.series_kind.lower() + str(col.entities.get("acquisition") or "")
    return MapSpec("mask", "mask", desc="brain", meta={
        "acquisition": label, "Type": "Brain", "Sources": list(sources),
        "SpatialReference": sources[0] if sources else "orig",  # the grid of the collection
        "Description": f"foreground mask the {col.series_kind} maps were fitted in (maps are 0 outside)"})


def init_ds_maps_wf(*, output_dir: str, maps: list[MapSpec], name: str = "ds_maps_wf"):
    """Write each map in ``maps`` as a BIDS derivative named after ``inputnode.source_files``.

    Inputs: ``source_files`` (raw files the maps derive from) and one field per map.
    Outputs: ``out_files`` (the derivative paths, in the order of ``maps``).
    """
    workflow = pe.Workflow(name=name)
    meta_fields = [f"{m.field}_meta" for m in maps if m.runtime_meta]
    inputnode = pe.Node(niu.IdentityInterface(fields=["source_files"] + [m.field for m in maps]
                                              + meta_fields), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=["out_files"]), name="outputnode")
    merge = pe.Node(niu.Merge(len(maps)), name="merge", run_without_submitting=True)
    for i, spec in enumerate(maps):
        ds = pe.Node(DerivativesDataSink(base_directory=output_dir, suffix=spec.suffix, desc=spec.desc,
                                         datatype=spec.datatype, compress=spec.compress,
                                         dismiss_entities=("echo", "flip", "part", "inv", "mt"),
                                         **spec.meta),
                     name=f"ds_{spec.field}", run_without_submitting=True)
        workflow.connect([
            (inputnode, ds, [("source_files", "source_file"), (spec.field, "in_file")]),
            (ds, merge, [("out_file", f"in{i + 1}")]),
        ])
        if spec.runtime_meta:
            workflow.connect(inputnode, f"{spec.field}_meta", ds, "meta_dict")
    workflow.connect(merge, "out", outputnode, "out_files")
    return workflow


def connect_ds_maps(workflow, *, inputnode, outputnode, outputs, output_dir: str):
    """Add a ``ds_maps_wf`` writing ``outputs`` — ``(node, node_output, MapSpec)`` triples — named
    after ``inputnode.source_files``; its paths go to ``outputnode.out_files``."""
    ds_maps_wf = init_ds_maps_wf(output_dir=output_dir, maps=[spec for _, _, spec in outputs],
                                 name="ds_maps_wf")
    workflow.connect([
        (inputnode, ds_maps_wf, [("source_files", "inputnode.source_files")]),
        (ds_maps_wf, outputnode, [("outputnode.out_files", "out_files")]),
    ])
    for node, out, spec in outputs:
        workflow.connect(node, out, ds_maps_wf, f"inputnode.{spec.field}")
        if spec.runtime_meta:
            workflow.connect(node, spec.runtime_meta, ds_maps_wf, f"inputnode.{spec.field}_meta")
    return ds_maps_wf
