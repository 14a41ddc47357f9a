"""Variable flip angle T1 mapping with B1+ correction."""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from ..interfaces.estimate import ForegroundMask, VFAFit
from ..interfaces.registration import AlignSeries
from ..provenance import map_meta
from .b1 import NO_B1, b1_percent_output, connect_b1_to_target
from .outputs import MapSpec, connect_ds_maps


def init_vfa_wf(*, flip_angles, repetition_time: float, methods, output_dir: str, sources,
                align: float | None = 0.25, b1_registration: str | None = "rigid", b1_sources=(),
                name: str = "vfa_wf"):
    """T1 and M0 maps from a variable flip angle SPGR series, corrected with a B1+ map.

    .. workflow::

        from qmriprep.workflows.vfa import init_vfa_wf
        wf = init_vfa_wf(flip_angles=[3, 20], repetition_time=0.015, methods=["nlls"],
                         output_dir=".", sources=["bids:raw:sub-01/anat/sub-01_flip-1_VFA.nii.gz"])

    Parameters: nominal ``flip_angles`` (deg), ``repetition_time`` (s), ``methods`` (nlls, linear),
    ``align``: rigidly align the flip angles to the middle one, ignoring motions below this many
    voxels (None: no alignment), ``b1_registration``
    (rigid | header | None: no B1 map, B1 = 1 assumed), ``b1_sources`` (BIDS URIs).

    Inputs: ``in_files``, ``source_files``, ``b1`` (fraction, B1 grid), ``b1_reference``.
    Outputs: ``mask``, ``reference``, ``out_files``.
    """
    workflow = pe.Workflow(name=name)
    b1_text = ("with flip angles corrected by the B1+ map, brought into the VFA space by "
               + ("rigid registration of its magnitude image [@simpleitk]" if b1_registration == "rigid"
                  else "its scanner coordinates") if b1_registration
               else "assuming the nominal flip angles (no B1+ map was available)")
    workflow.__desc__ = (
        f"T1 maps were estimated from the spoiled gradient-echo series at flip angles "
        f"{', '.join(f'{a:g}' for a in flip_angles)} deg (TR {1e3 * repetition_time:g} ms) "
        + ("after rigid alignment of the flip-angle volumes to the middle one [@simpleitk] "
           + (f"(motions under {align:g} voxel left uncorrected) " if align else "")
           if align is not None else "")
        + f"by {', '.join(methods)} fitting of the SPGR signal equation [@despot1], {b1_text}."
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

    outputs = [(mask, "out_mask", MapSpec("mask", "mask", desc="vfabrain",
                                          meta={"Type": "Brain", "Sources": list(sources)}))]
    b1_out, b1_meta = None, NO_B1
    if b1_registration:
        b1_out, b1_meta = connect_b1_to_target(workflow, inputnode=inputnode, fixed=(mask, "out_reference"),
                                               mode=b1_registration, b1_sources=b1_sources, label="vfa")
        outputs.append(b1_percent_output(workflow, b1_out, label="vfa", b1_sources=b1_sources))
    for method in methods:
        fit = pe.Node(VFAFit(flip_angles=list(flip_angles), repetition_time=repetition_time,
                             method=method), name=f"fit_{method}")
        workflow.connect([(series, fit, [("files", "in_files")]),
                          (mask, fit, [("out_mask", "mask_file")])])
        if b1_out is not None:
            workflow.connect(*b1_out, fit, "b1_file")
        extra = {"FlipAngle": list(flip_angles), "RepetitionTimeExcitation": repetition_time, **b1_meta}
        for field, suffix, desc in (("t1", "T1map", method), ("r1", "R1map", method),
                                    ("m0", "M0map", f"{method}T1"), ("rmse", "T1mapRMSE", method)):
            outputs.append((fit, field, MapSpec(
                f"{field}_{method}", suffix, desc=desc,
                meta=map_meta(suffix, "VFA", method, list(sources) + list(b1_sources), **extra))))
    workflow.connect(mask, "out_mask", outputnode, "mask")
    workflow.connect(mask, "out_reference", outputnode, "reference")
    connect_ds_maps(workflow, inputnode=inputnode, outputnode=outputnode, outputs=outputs,
                    output_dir=output_dir)
    return workflow
