"""T1, T2 and M0 maps from clinical weighted images (T1w MPRAGE, T2w TSE) by a trained U-Net."""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from ..interfaces.estimate import ForegroundMask
from .estimate import FitInputs, citations_of, connect_estimators, sources_of
from .outputs import MapSpec, connect_ds_maps


def init_weighted_wf(*, item, config, output_dir: str, name: str = "weighted_wf"):
    """Maps of one T1w/T2w pair by the ``--hybrid-model`` (estimator ``hybrid`` or ``supervised``,
    as the model was trained).

    Parameters: ``item`` (:class:`~qmriprep.bids.plan.CollectionPlan` of the pair), run ``config``
    (section ``weighted``: the model folder), ``output_dir`` (derivatives root).

    Inputs: ``in_files`` (T1w, T2w[, FLAIR]), ``source_files`` (same, for naming).
    Outputs: ``mask``, ``reference``, and ``out_files`` (derivatives written).
    """
    col, kind = item.collection, item.collection.series_kind
    sources, _ = sources_of(item, config)
    workflow = pe.Workflow(name=name)
    workflow.__desc__ = (
        f"T1, T2 and M0 maps were estimated from the {' and '.join(f.name.split('_')[-1].split('.')[0] for f in col.files)} "
        f"images ({col.protocol.describe()}) by a 2-D U-Net trained with low-resolution label maps "
        f"{citations_of(kind, item.estimators)} ({item.estimators[0]} training loss)."
    )
    inputnode = pe.Node(niu.IdentityInterface(fields=["in_files", "source_files"]), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=["mask", "reference", "out_files"]), name="outputnode")
    mask = pe.Node(ForegroundMask(), name="mask")
    workflow.connect([
        (inputnode, mask, [("in_files", "in_files")]),
        (mask, outputnode, [("out_mask", "mask"), ("out_reference", "reference")]),
    ])
    outputs = [(mask, "out_mask", MapSpec("mask", "mask", desc="weightedbrain",
                                          meta={"Type": "Brain", "Sources": list(sources)}))]
    outputs += connect_estimators(workflow, kind=kind, names=item.estimators, protocol=col.protocol,
                                  config=config, inputs=FitInputs((inputnode, "in_files"), (mask, "out_mask"),
                                                                  sources=tuple(sources)))
    connect_ds_maps(workflow, inputnode=inputnode, outputnode=outputnode, outputs=outputs,
                    output_dir=output_dir)
    return workflow
