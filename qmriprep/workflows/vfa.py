"""Variable flip angle T1 mapping with B1+ correction."""

from __future__ import annotations

import math

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from ..interfaces.estimate import ForegroundMask
from ..interfaces.registration import AlignSeries
from .b1 import b1_meta, b1_percent_output, b1_transform_output, b1_text, connect_b1_to_target
from .estimate import FitInputs, citations_of, connect_estimators, sources_of
from .outputs import connect_ds_maps, mask_spec

#: ``--align-series auto``: VFA motions below this many voxels are registration noise, not motion
AUTO_MIN_MOTION = 0.25


def init_vfa_wf(*, item, config, output_dir: str, name: str = "vfa_wf"):
    """T1 and M0 maps from a variable flip angle SPGR series, corrected with its planned B1+ map.

    Parameters: ``item`` (:class:`~qmriprep.bids.plan.CollectionPlan` of the flip angles or of
    their raw k-space: images reconstructed from one scan share their grid and are not aligned),
    run ``config`` (``workflow.align_series``), ``output_dir`` (derivatives root).

    Inputs: ``in_files``, ``source_files``, ``b1`` (fraction, B1 grid), ``b1_reference``.
    Outputs: ``mask``, ``reference``, ``out_files``.
    """
    p, b1 = item.collection.protocol, item.b1
    align = (None if item.collection.kind == "kspace"
             else {"auto": AUTO_MIN_MOTION, "always": 0.0}.get(config.workflow.align_series))
    sources, b1_sources = sources_of(item, config)
    degrees = [round(math.degrees(a), 6) for a in p.flip_angles]
    workflow = pe.Workflow(name=name)
    workflow.__desc__ = (
        f"T1 maps were estimated from the spoiled gradient-echo series at flip angles "
        f"{', '.join(f'{a:g}' for a in degrees)} deg (TR {1e3 * p.tr:g} ms) "
        + ("after rigid alignment of the flip-angle volumes to the middle one [@simpleitk] "
           + (f"(motions under {align:g} voxel left uncorrected) " if align else "")
           if align is not None else "")
        + f"by {', '.join(item.estimators)} fitting of the SPGR signal equation "
        f"{citations_of('VFA', item.estimators)}, {b1_text(b1, 'VFA')}."
    )
    inputnode = pe.Node(niu.IdentityInterface(fields=["in_files", "source_files", "b1", "b1_reference"]),
                        name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=["mask", "reference", "out_files"]),
                         name="outputnode")
    series = pe.Node(niu.IdentityInterface(fields=["files"]), name="series")
    if align is not None:
        align_series = pe.Node(AlignSeries(min_displacement=align), name="align_series")
        workflow.connect([(inputnode, align_series, [("in_files", "in_files")]),
                          (align_series, series, [("out_files", "files")])])
    else:
        workflow.connect(inputnode, "in_files", series, "files")
    mask = pe.Node(ForegroundMask(), name="mask")
    workflow.connect(series, "files", mask, "in_files")
    outputs = [(mask, "out_mask", mask_spec(item, sources))]
    b1_out = None
    if b1 is not None and b1.map is not None:
        b1_out = connect_b1_to_target(workflow, inputnode=inputnode, fixed=(mask, "out_reference"),
                                      mode=b1.registration, label="vfa")
        outputs.append(b1_percent_output(workflow, b1_out, label="vfa", b1_sources=b1_sources))
        outputs.append(b1_transform_output(workflow, label="vfa", b1=b1,
                                           to=item.collection.series_kind, b1_sources=b1_sources))
    meta = {"FlipAngle": degrees, "RepetitionTimeExcitation": p.tr, **b1_meta(b1, b1_sources)}
    outputs += connect_estimators(workflow, kind="VFA", names=item.estimators, protocol=p, config=config,
                                  inputs=FitInputs((series, "files"), (mask, "out_mask"), b1_out,
                                                   tuple(sources + b1_sources), meta))
    workflow.connect(mask, "out_mask", outputnode, "mask")
    workflow.connect(mask, "out_reference", outputnode, "reference")
    connect_ds_maps(workflow, inputnode=inputnode, outputnode=outputnode, outputs=outputs,
                    output_dir=output_dir)
    return workflow
