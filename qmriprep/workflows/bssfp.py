"""Phase-cycled bSSFP relaxometry (seed 003): T1, T2 (and off-resonance) from MIRACLE and networks."""

from __future__ import annotations

import math

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from ..interfaces.bssfp import ComplexSeries, FourierConfigurations, MiracleFit
from ..interfaces.estimate import ForegroundMask
from ..provenance import map_meta
from .b1 import NO_B1, connect_b1_to_target
from .outputs import MapSpec, connect_ds_maps


def init_bssfp_wf(*, phase_increments, flip_angle: float, repetition_time: float, echo_time,
                  parts: str, estimators, output_dir: str, sources, b1_registration=None,
                  b1_sources=(), align: bool = False, gibbs: bool = False, b1_median_mm: float = 0.0,
                  network_options=None, name: str = "bssfp_wf"):
    """T1 and T2 maps from a pc-bSSFP series by MIRACLE and by networks trained for the protocol.

    .. workflow::

        import math
        from qmriprep.workflows.bssfp import init_bssfp_wf
        wf = init_bssfp_wf(phase_increments=[math.pi * (2 * j - 1) / 12 for j in range(1, 13)],
                           flip_angle=math.radians(15), repetition_time=0.0048, echo_time=0.0024,
                           parts="magphase", estimators=["miracle"], output_dir=".",
                           sources=["bids:raw:sub-01/anat/sub-01_part-mag_bSSFP.nii.gz"])

    Parameters: the protocol (``phase_increments`` and ``flip_angle`` in rad, ``repetition_time``
    and ``echo_time`` in s), ``parts`` (magphase | realimag), ``estimators`` (miracle, svnn, pinn,
    svnncomplex, pinncomplex), ``b1_registration`` (rigid | header | None: B1 = 1 assumed),
    ``align`` the phase cycles, ``gibbs`` ringing removal, ``b1_median_mm`` filter width,
    ``network_options`` (training settings for :class:`~qmriprep.interfaces.nn.TrainNetwork`).

    Inputs: ``in_files`` (the two 4-D parts), ``source_files``, ``b1``, ``b1_reference``.
    Outputs: ``mask``, ``reference``, ``out_files``.
    """
    npc = len(phase_increments)
    workflow = pe.Workflow(name=name)
    workflow.__desc__ = (
        f"T1 and T2 were estimated from the {npc}-cycle phase-cycled bSSFP series (TR "
        f"{1e3 * repetition_time:g} ms, flip angle {math.degrees(flip_angle):g} deg)"
        + (" after rigid alignment of every cycle's magnitude to the middle cycle, the same transform "
           "resampling the real and imaginary parts [@simpleitk]" if align else "")
        + ". The voxel's common phase was removed, the Fourier configurations F-1, F0, F+1 were "
        "computed by a DFT over the phase cycles"
        + (", cleared of Gibbs ringing [@gibbs]" if gibbs else "")
        + " and normalised per voxel [@pcbssfp]. "
        + (f"The B1+ map was brought to the bSSFP space ({b1_registration})"
           + (f" and median filtered ({b1_median_mm:g} mm). " if b1_median_mm else ". ") if b1_registration
           else "No B1+ map was available: the nominal flip angle was assumed (B1 = 1). ")
        + f"Estimators: {', '.join(estimators)} [@miracle; @pcbssfp]."
    )
    inputnode = pe.Node(niu.IdentityInterface(fields=["in_files", "source_files", "b1", "b1_reference"]),
                        name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=["mask", "reference", "out_files"]),
                         name="outputnode")
    series = pe.Node(ComplexSeries(parts=parts, align=align), name="series")
    mask = pe.Node(ForegroundMask(), name="mask")
    configs = pe.Node(FourierConfigurations(phase_increments=list(phase_increments), gibbs=gibbs),
                      name="configs")
    workflow.connect([
        (inputnode, series, [("in_files", "in_files")]),
        (series, mask, [("out_reference", "in_files")]),
        (series, configs, [("out_file", "in_file")]),
        (mask, configs, [("out_mask", "mask_file")]),
        (mask, outputnode, [("out_mask", "mask")]),
        (series, outputnode, [("out_reference", "reference")]),
    ])
    protocol_meta = {"RFPhaseIncrement": [round(math.degrees(p), 6) for p in phase_increments],
                     "FlipAngle": round(math.degrees(flip_angle), 6),
                     "RepetitionTimeExcitation": repetition_time}
    b1_out, b1_meta = None, NO_B1  # (node, output) of the B1+ map on the bSSFP grid
    if b1_registration:
        b1_out, b1_meta = connect_b1_to_target(workflow, inputnode=inputnode,
                                               fixed=(series, "out_reference"), mode=b1_registration,
                                               b1_sources=b1_sources, label="ssfp",
                                               median_mm=b1_median_mm)
    all_sources = list(sources) + list(b1_sources)
    outputs = [
        (mask, "out_mask", MapSpec("mask", "mask", desc="bssfpbrain",
                                   meta={"Type": "Brain", "Sources": list(sources)})),
        (configs, "out_magnitude", MapSpec("configurations", "bSSFP", desc="configurations", meta={
            "Sources": list(sources), "Description": "normalised |F-1|, |F0|, |F+1| (volumes 1-3)",
            **protocol_meta})),
    ]
    for est in estimators:
        fit = _estimator_node(est, flip_angle, repetition_time, phase_increments, echo_time,
                              network_options or {}, workflow)
        workflow.connect([(configs, fit, [("out_file", "in_file")]),
                          (mask, fit, [("out_mask", "mask_file")])])
        if b1_out is not None:
            workflow.connect(*b1_out, fit, "b1_file")
        extra = {**protocol_meta, **b1_meta}
        runtime_meta = None if est == "miracle" else "meta"
        for field, suffix in (("t1", "T1map"), ("t2", "T2map")):
            outputs.append((fit, field, MapSpec(f"{field}_{est}", suffix, desc=est,
                                                meta=map_meta(suffix, "bSSFP", est, all_sources, **extra),
                                                runtime_meta=runtime_meta)))
        if est.endswith("complex"):
            outputs.append((fit, "off_resonance", MapSpec(
                f"offres_{est}", "fieldmap", desc=est, datatype="fmap", runtime_meta=runtime_meta,
                meta=map_meta("fieldmap", "bSSFP", est, all_sources, **extra))))
    connect_ds_maps(workflow, inputnode=inputnode, outputnode=outputnode, outputs=outputs,
                    output_dir=output_dir)
    return workflow


def _estimator_node(est, flip_angle, tr, phase_increments, echo_time, options, workflow):
    """The fit node of one estimator (networks: with their protocol-matched training node)."""
    if est == "miracle":
        return pe.Node(MiracleFit(flip_angle=flip_angle, repetition_time=tr), name="fit_miracle")
    from ..interfaces.nn import NetworkFit, TrainNetwork

    train = pe.Node(TrainNetwork(estimator=est, flip_angle=flip_angle, repetition_time=tr,
                                 echo_time=echo_time or tr / 2,
                                 phase_increments=list(phase_increments), **options),
                    name=f"train_{est}")
    fit = pe.Node(NetworkFit(repetition_time=tr), name=f"fit_{est}")
    workflow.connect([(train, fit, [("model_file", "model_file"), ("provenance", "provenance")])])
    return fit
