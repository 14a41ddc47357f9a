"""qDESS T2 mapping (Sveinsson et al. 2017) from the two echoes of a DESS acquisition."""

from __future__ import annotations

import math

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from ..interfaces.estimate import ForegroundMask
from .b1 import b1_meta, b1_percent_output, b1_transform_output, connect_b1_to_target
from .estimate import FitInputs, citations_of, connect_estimators, sources_of
from .outputs import connect_ds_maps, mask_spec


def init_dess_wf(*, item, config, output_dir: str, name: str = "dess_wf"):
    """T2 map from DESS echoes S1 (FISP) and S2 (PSIF) by the analytic qDESS ratio.

    Parameters: ``item`` (:class:`~qmriprep.bids.plan.CollectionPlan` of the two echoes or their
    raw k-space; protocol: TE, TR, angle in rad, spoiler amplitude and duration), run ``config``
    (``dess.t1``: the assumed T1 in s), ``output_dir`` (derivatives root).

    Inputs: ``in_files`` (echo 1, echo 2), ``source_files``, ``b1``, ``b1_reference``.
    Outputs: ``mask``, ``reference``, ``out_files``.
    """
    p, b1, t1 = item.collection.protocol, item.b1, config.dess.t1
    sources, b1_sources = sources_of(item, config)
    has_b1 = b1 is not None and b1.map is not None
    workflow = pe.Workflow(name=name)
    spoiler = (p.spoiler_gradient_amplitude is not None and p.spoiler_gradient_duration is not None)
    workflow.__desc__ = (
        f"T2 maps were estimated from the double-echo steady-state (DESS) echoes (TR "
        f"{1e3 * p.tr:g} ms, TE {1e3 * p.echo_times[0]:g} ms, flip angle {math.degrees(p.flip_angle):g} deg) "
        f"with the analytic qDESS signal ratio {citations_of('DESS', item.estimators)}, assuming T1 = {t1:g} s"
        + (" and diffusion D = 1.25e-9 m^2/s during the spoiler" if spoiler
           else " and neglecting diffusion (the spoiler gradient was not given)")
        + (", with flip angles corrected by the B1+ map." if has_b1 else ".")
    )
    inputnode = pe.Node(niu.IdentityInterface(fields=["in_files", "source_files", "b1", "b1_reference"]),
                        name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=["mask", "reference", "out_files"]), name="outputnode")
    mask = pe.Node(ForegroundMask(), name="mask")
    workflow.connect([
        (inputnode, mask, [("in_files", "in_files")]),
        (mask, outputnode, [("out_mask", "mask"), ("out_reference", "reference")]),
    ])
    outputs = [(mask, "out_mask", mask_spec(item, sources))]
    b1_out = None
    if has_b1:
        b1_out = connect_b1_to_target(workflow, inputnode=inputnode, fixed=(mask, "out_reference"),
                                      mode=b1.registration, label="dess")
        outputs.append(b1_percent_output(workflow, b1_out, label="dess", b1_sources=b1_sources))
        outputs.append(b1_transform_output(workflow, label="dess", b1=b1,
                                           to=item.collection.series_kind, b1_sources=b1_sources))
    meta = {"EchoTime": list(p.echo_times), "RepetitionTimeExcitation": p.tr,
            "FlipAngle": round(math.degrees(p.flip_angle), 6), "AssumedT1": t1,
            "SpoilerGradientAmplitude": p.spoiler_gradient_amplitude,
            "SpoilerGradientDuration": p.spoiler_gradient_duration, **b1_meta(b1, b1_sources)}
    outputs += connect_estimators(workflow, kind="DESS", names=item.estimators, protocol=p, config=config,
                                  inputs=FitInputs((inputnode, "in_files"), (mask, "out_mask"), b1_out,
                                                   tuple(sources + b1_sources), meta))
    connect_ds_maps(workflow, inputnode=inputnode, outputnode=outputnode, outputs=outputs,
                    output_dir=output_dir)
    return workflow
