"""Phase-cycled bSSFP relaxometry (seed 003): T1, T2 (and off-resonance) from MIRACLE and networks."""

from __future__ import annotations

import math

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from ..interfaces.bssfp import ComplexSeries, ConfigurationNoise, FourierConfigurations
from ..interfaces.estimate import ForegroundMask
from .b1 import b1_meta, b1_transform_output, connect_b1_to_target
from .estimate import FitInputs, citations_of, connect_estimators, sources_of
from .noise import denoised
from .outputs import MapSpec, connect_ds_maps, mask_spec


def init_bssfp_wf(*, item, config, output_dir: str, name: str = "bssfp_wf"):
    """T1 and T2 maps from a pc-bSSFP series by MIRACLE and by networks trained for the protocol.

    Parameters: ``item`` (:class:`~qmriprep.bids.plan.CollectionPlan` of the two 4-D parts, its
    estimators and B1+ decision), run ``config`` (``bssfp`` section: Gibbs removal, B1+ median
    filter; ``workflow.align_series == "always"`` aligns the cycles; ``nn``: network training),
    ``output_dir`` (derivatives root).

    Inputs: ``in_files`` (the two 4-D parts), ``source_files``, ``b1``, ``b1_reference``.
    Outputs: ``mask``, ``reference``, ``out_files``.
    """
    p, b1, opts = item.collection.protocol, item.b1, config.bssfp
    align = config.workflow.align_series == "always"
    sources, b1_sources = sources_of(item, config)
    has_b1 = b1 is not None and b1.map is not None
    workflow = pe.Workflow(name=name)
    workflow.__desc__ = (
        f"T1 and T2 were estimated from the {len(p.phase_increments)}-cycle phase-cycled bSSFP series (TR "
        f"{1e3 * p.tr:g} ms, flip angle {math.degrees(p.flip_angle):g} deg)"
        + (" after rigid alignment of every cycle's magnitude to the middle cycle, the same transform "
           "resampling the real and imaginary parts [@simpleitk]" if align else "")
        + ". The voxel's common phase was removed, the Fourier configurations F-1, F0, F+1 were "
        "computed by a DFT over the phase cycles"
        + (", cleared of Gibbs ringing [@gibbs]" if opts.gibbs else "")
        + " and normalised per voxel [@birk2025]. "
        + (f"The B1+ map was brought to the bSSFP space ({b1.registration})"
           + (f" and median filtered ({opts.b1_median_mm:g} mm). " if opts.b1_median_mm else ". ")
           if has_b1 else "No B1+ map was used: the nominal flip angle was assumed (B1 = 1). ")
        + f"Estimators: {', '.join(item.estimators)} {citations_of('bSSFP', item.estimators)}."
    )
    inputnode = pe.Node(niu.IdentityInterface(fields=["in_files", "source_files", "b1", "b1_reference"]),
                        name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=["mask", "reference", "out_files"]),
                         name="outputnode")
    series = pe.Node(ComplexSeries(parts="realimag" if "real" in p.parts else "magphase", align=align),
                     name="series")
    mask = pe.Node(ForegroundMask(), name="mask")
    configs = pe.Node(FourierConfigurations(phase_increments=list(p.phase_increments), gibbs=opts.gibbs),
                      name="configs")
    workflow.connect([
        (inputnode, series, [("in_files", "in_files")]),
        (series, mask, [("out_reference", "in_files")]),
        (mask, configs, [("out_mask", "mask_file")]),
        (mask, outputnode, [("out_mask", "mask")]),
        (series, outputnode, [("out_reference", "reference")]),
    ])
    cycles = denoised(workflow, kind="bSSFP", series=(series, "out_file"), mask=(mask, "out_mask"),
                      config=config, port="out_file")
    workflow.connect(*cycles, configs, "in_file")
    noise = configuration_noise(workflow, cycles[0], p.phase_increments)
    protocol_meta = {"RFPhaseIncrement": [round(math.degrees(x), 6) for x in p.phase_increments],
                     "FlipAngle": round(math.degrees(p.flip_angle), 6), "RepetitionTimeExcitation": p.tr}
    b1_out = None
    if has_b1:
        b1_out = connect_b1_to_target(workflow, inputnode=inputnode, fixed=(series, "out_reference"),
                                      mode=b1.registration, label="ssfp", median_mm=opts.b1_median_mm)
    outputs = [
        (mask, "out_mask", mask_spec(item, sources)),
        (configs, "out_magnitude", MapSpec("configurations", "bSSFP", desc="configurations", meta={
            "Sources": list(sources), "Description": "normalised |F-1|, |F0|, |F+1| (volumes 1-3)",
            **protocol_meta})),
    ]
    if has_b1:
        outputs.append(b1_transform_output(workflow, label="ssfp", b1=b1, to=item.collection.series_kind,
                                           b1_sources=b1_sources))
    meta = {**protocol_meta, **b1_meta(b1, b1_sources, opts.b1_median_mm)}
    outputs += connect_estimators(workflow, kind="bSSFP", names=item.estimators, protocol=p, config=config,
                                  inputs=FitInputs((configs, "out_file"), (mask, "out_mask"), b1_out,
                                                   tuple(sources + b1_sources), meta,
                                                   acquired=(series, "out_file"), scale=(configs, "out_norm"),
                                                   data_noise=noise))
    outputs += [(series, "out_reference", MapSpec(  # BIDS: a fieldmap comes with its magnitude
        f"magnitude_{spec.desc}", "magnitude", desc=spec.desc, datatype="fmap", meta={
            "Sources": list(sources), "SkullStripped": False,
            "Description": "mean magnitude over the phase cycles, the "
            f"anatomical reference of desc-{spec.desc}_fieldmap"}))
        for _, _, spec in list(outputs) if spec.suffix == "fieldmap"]
    connect_ds_maps(workflow, inputnode=inputnode, outputnode=outputnode, outputs=outputs,
                    output_dir=output_dir)
    return workflow


def configuration_noise(workflow, cycles, phase_increments):
    """The ``configuration_noise`` node (:class:`ConfigurationNoise`) when ``cycles`` is the
    ``denoise`` node (MP-PCA of the cycles), else None."""
    if cycles is not workflow.get_node("denoise"):
        return None
    node = pe.Node(ConfigurationNoise(phase_increments=list(phase_increments)), name="configuration_noise")
    workflow.connect([(cycles, node, [("out_file", "in_file"), ("noise_basis", "noise_basis")]),
                      (workflow.get_node("noise"), node, [("sigma", "noise_sigma")])])
    return node
