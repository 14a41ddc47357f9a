"""MR fingerprinting: T1, T2 and M0 maps from a FISP MRF series."""

from __future__ import annotations

import math

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from ..interfaces.estimate import ForegroundMask
from ..interfaces.mrf import MeanMagnitude
from .b1 import b1_meta, b1_percent_output, b1_transform_output, b1_text, connect_b1_to_target
from .estimate import FitInputs, citations_of, connect_estimators, sources_of
from .outputs import connect_ds_maps, mask_spec


def init_mrf_wf(*, item, config, output_dir: str, name: str = "mrf_wf"):
    """T1, T2 and M0 maps of one MRF series, one set per chosen estimator.

    Parameters: ``item`` (:class:`~qmriprep.bids.plan.CollectionPlan` of the series), run
    ``config`` (section ``mrf``: dictionary grid and subspace rank), ``output_dir``
    (derivatives root).

    Inputs: ``in_files`` (the 4-D series), ``source_files``, ``b1`` (fraction, B1 grid),
    ``b1_reference``. Outputs: ``mask``, ``reference`` (mean magnitude), ``out_files``.
    """
    p, b1, opts = item.collection.protocol, item.b1, config.mrf
    sources, b1_sources = sources_of(item, config)
    degrees = [round(math.degrees(a), 4) for a in p.flip_angles]
    workflow = pe.Workflow(name=name)
    workflow.__desc__ = (
        f"T1, T2 and M0 maps were estimated from the {p.n_points}-frame FISP MR fingerprinting series "
        f"(flip angles {min(degrees):g}-{max(degrees):g} deg, TR {1e3 * min(p.repetition_times):.3g}-"
        f"{1e3 * max(p.repetition_times):.3g} ms, TE {1e3 * p.echo_time:.3g} ms"
        + (f", inversion {1e3 * p.inversion_time:.3g} ms before the first frame"
           if p.inversion_time is not None else "")
        + f") by {', '.join(item.estimators)} {citations_of('MRF', item.estimators)}: a dictionary "
        f"of FISP signals simulated by extended phase graphs on a T1 x T2 grid "
        f"({100 * opts.t1_step:g} % and {100 * opts.t2_step:g} % steps), compressed to the SVD "
        f"subspace holding {100 * opts.rank_energy:g} % of the sum of "
        + ("singular values" if opts.rank_measure == "values" else "squared singular values")
        + f", inside a foreground mask, {b1_text(b1, 'MRF')}."
    )
    inputnode = pe.Node(niu.IdentityInterface(fields=["in_files", "source_files", "b1", "b1_reference"]),
                        name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=["mask", "reference", "out_files"]),
                         name="outputnode")
    reference = pe.Node(MeanMagnitude(), name="reference")
    mask = pe.Node(ForegroundMask(), name="mask")
    workflow.connect([(inputnode, reference, [("in_files", "in_files")]),
                      (reference, mask, [("out_file", "in_files")]),
                      (mask, outputnode, [("out_mask", "mask"), ("out_reference", "reference")])])
    outputs = [(mask, "out_mask", mask_spec(item, sources))]
    b1_out = None
    if b1 is not None and b1.map is not None:
        b1_out = connect_b1_to_target(workflow, inputnode=inputnode, fixed=(mask, "out_reference"),
                                      mode=b1.registration, label="mrf")
        outputs.append(b1_percent_output(workflow, b1_out, label="mrf", b1_sources=b1_sources))
        outputs.append(b1_transform_output(workflow, label="mrf", b1=b1,
                                           to=item.collection.series_kind, b1_sources=b1_sources))
    trs = list(p.repetition_times)  # BIDS RepetitionTimeExcitation is one number: a schedule apart
    meta = {"FlipAngle": degrees, **({"RepetitionTimeExcitation": trs[0]} if len(set(trs)) == 1
                                     else {"RepetitionTimeSchedule": trs}),
            "EchoTime": p.echo_time, "InversionTime": p.inversion_time, **b1_meta(b1, b1_sources)}
    outputs += connect_estimators(workflow, kind="MRF", names=item.estimators, protocol=p, config=config,
                                  inputs=FitInputs((inputnode, "in_files"), (mask, "out_mask"), b1_out,
                                                   tuple(sources + b1_sources), meta))
    connect_ds_maps(workflow, inputnode=inputnode, outputnode=outputnode, outputs=outputs,
                    output_dir=output_dir)
    return workflow
