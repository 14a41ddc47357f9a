"""T1, T2 and M0 maps from clinical weighted images (T1w MPRAGE, T2w TSE) by a trained U-Net."""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from ..interfaces.estimate import ForegroundMask
from ..interfaces.registration import AlignSeries
from ..utils.images import off_grid
from .estimate import FitInputs, citations_of, connect_estimators, sources_of
from .outputs import MapSpec, connect_ds_maps
from .vfa import AUTO_MIN_MOTION


def init_weighted_wf(*, item, config, output_dir: str, name: str = "weighted_wf"):
    """Maps of one T1w/T2w pair by the ``--hybrid-model`` (estimator ``hybrid`` or ``supervised``,
    as the model was trained).

    Parameters: ``item`` (:class:`~qmriprep.bids.plan.CollectionPlan` of the pair), run ``config``
    (section ``weighted``: the model folder), ``output_dir`` (derivatives root).

    Inputs: ``in_files`` (T1w, T2w[, FLAIR]), ``source_files`` (same, for naming). Images on another
    grid than the T1w's are aligned rigidly to it and resampled on its grid (``AlignSeries``,
    motions under 0.25 voxel left out); images on its grid are used as they are.
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
    images = pe.Node(niu.IdentityInterface(fields=["files"]), name="images")
    if off_grid(col.files) is None:
        workflow.connect(inputnode, "in_files", images, "files")
    else:  # the planner refused this under --align-series never
        workflow.__desc__ += (" The other images were first aligned rigidly to the T1-weighted image and "
                              "resampled on its grid [@simpleitk].")
        align = pe.Node(AlignSeries(reference_index=0, min_displacement=AUTO_MIN_MOTION), name="align_to_t1w")
        workflow.connect([(inputnode, align, [("in_files", "in_files")]),
                          (align, images, [("out_files", "files")])])
    mask = pe.Node(ForegroundMask(), name="mask")
    workflow.connect([
        (images, mask, [("files", "in_files")]),
        (mask, outputnode, [("out_mask", "mask"), ("out_reference", "reference")]),
    ])
    outputs = [(mask, "out_mask", MapSpec("mask", "mask", desc="weightedbrain",
                                          meta={"Type": "Brain", "Sources": list(sources)}))]
    outputs += connect_estimators(workflow, kind=kind, names=item.estimators, protocol=col.protocol,
                                  config=config, inputs=FitInputs((images, "files"), (mask, "out_mask"),
                                                                  sources=tuple(sources)))
    connect_ds_maps(workflow, inputnode=inputnode, outputnode=outputnode, outputs=outputs,
                    output_dir=output_dir)
    return workflow
