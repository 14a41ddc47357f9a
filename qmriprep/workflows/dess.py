"""qDESS T2 mapping (Sveinsson et al. 2017) from the two echoes of a DESS acquisition."""

from __future__ import annotations

import math

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from ..interfaces.estimate import ForegroundMask, QDessFit
from ..provenance import map_meta
from .b1 import NO_B1, b1_percent_output, connect_b1_to_target
from .outputs import MapSpec, connect_ds_maps


def init_dess_wf(*, protocol, output_dir: str, sources, assumed_t1: float = 1.2,
                 b1_registration: str | None = None, b1_sources=(), name: str = "dess_wf"):
    """T2 map from DESS echoes S1 (FISP) and S2 (PSIF) by the analytic qDESS ratio.

    .. workflow::

        from qmriprep.bids.protocols import DESSProtocol
        from qmriprep.workflows.dess import init_dess_wf
        wf = init_dess_wf(protocol=DESSProtocol((0.005, 0.035), 0.02, 0.4363, 0.03, 0.001),
                          output_dir=".", sources=["bids:raw:sub-01/anat/sub-01_echo-1_DESS.nii.gz"])

    Parameters: ``protocol`` (:class:`~qmriprep.bids.protocols.DESSProtocol`: TE, TR, angle in
    rad, spoiler amplitude and duration), ``assumed_t1`` (s), ``b1_registration`` (rigid | header
    | None: B1 = 1 assumed), ``b1_sources``.

    Inputs: ``in_files`` (echo 1, echo 2), ``source_files``, ``b1``, ``b1_reference``.
    Outputs: ``mask``, ``reference``, ``out_files``.
    """
    p = protocol
    workflow = pe.Workflow(name=name)
    spoiler = (p.spoiler_gradient_amplitude is not None and p.spoiler_gradient_duration is not None)
    workflow.__desc__ = (
        f"T2 maps were estimated from the double-echo steady-state (DESS) echoes (TR "
        f"{1e3 * p.tr:g} ms, TE {1e3 * p.echo_times[0]:g} ms, flip angle {math.degrees(p.flip_angle):g} deg) "
        f"with the analytic qDESS signal ratio [@qdess], assuming T1 = {assumed_t1:g} s"
        + (" and diffusion D = 1.25e-9 m^2/s during the spoiler" if spoiler
           else " and neglecting diffusion (the spoiler gradient was not given)")
        + (", with flip angles corrected by the B1+ map." if b1_registration else ".")
    )
    inputnode = pe.Node(niu.IdentityInterface(fields=["in_files", "source_files", "b1", "b1_reference"]),
                        name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=["mask", "reference", "out_files"]), name="outputnode")
    mask = pe.Node(ForegroundMask(), name="mask")
    fit = pe.Node(QDessFit(repetition_time=p.tr, echo_time=p.echo_times[0],
                           flip_angle=math.degrees(p.flip_angle), t1=assumed_t1,
                           spoiler_amplitude=p.spoiler_gradient_amplitude,
                           spoiler_duration=p.spoiler_gradient_duration), name="fit_qdess")
    workflow.connect([
        (inputnode, mask, [("in_files", "in_files")]),
        (inputnode, fit, [("in_files", "in_files")]),
        (mask, fit, [("out_mask", "mask_file")]),
        (mask, outputnode, [("out_mask", "mask"), ("out_reference", "reference")]),
    ])
    outputs = [(mask, "out_mask", MapSpec("mask", "mask", desc="dessbrain",
                                          meta={"Type": "Brain", "Sources": list(sources)}))]
    b1_meta = NO_B1
    if b1_registration:
        b1_out, b1_meta = connect_b1_to_target(workflow, inputnode=inputnode, fixed=(mask, "out_reference"),
                                               mode=b1_registration, b1_sources=b1_sources, label="dess")
        workflow.connect(*b1_out, fit, "b1_file")
        outputs.append(b1_percent_output(workflow, b1_out, label="dess", b1_sources=b1_sources))
    extra = {"EchoTime": list(p.echo_times), "RepetitionTimeExcitation": p.tr,
             "FlipAngle": round(math.degrees(p.flip_angle), 6), "AssumedT1": assumed_t1,
             "SpoilerGradientAmplitude": p.spoiler_gradient_amplitude,
             "SpoilerGradientDuration": p.spoiler_gradient_duration, **b1_meta}
    all_sources = list(sources) + list(b1_sources)
    for field, suffix in (("t2", "T2map"), ("r2", "R2map")):
        outputs.append((fit, field, MapSpec(f"{field}_qdess", suffix, desc="qdess",
                                            meta=map_meta(suffix, "DESS", "qdess", all_sources, **extra))))
    connect_ds_maps(workflow, inputnode=inputnode, outputnode=outputnode, outputs=outputs,
                    output_dir=output_dir)
    return workflow
