"""Multi-echo relaxometry: T2 from MESE, T2* from MEGRE."""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from ..interfaces.estimate import ForegroundMask
from .estimate import FitInputs, citations_of, connect_estimators, sources_of
from .outputs import connect_ds_maps, mask_spec


def init_multiecho_wf(*, item, config, output_dir: str, name: str = "multiecho_wf"):
    """Mono-exponential T2 (MESE) or T2* (MEGRE) maps, one set per chosen estimator.

    Parameters: ``item`` (:class:`~qmriprep.bids.plan.CollectionPlan` of the echoes or of their
    raw k-space), run ``config`` (options of the ``multiecho`` section), ``output_dir``
    (derivatives root).

    Inputs: ``in_files`` (echoes, in echo order), ``source_files`` (same, for naming).
    Outputs: ``mask``, ``reference``, and ``out_files`` (derivatives written).
    """
    kind, p, opts = item.collection.series_kind, item.collection.protocol, config.multiecho
    label = "T2" if kind == "MESE" else "T2*"
    sources, _ = sources_of(item, config)
    workflow = pe.Workflow(name=name)
    workflow.__desc__ = (
        f"{label} maps were estimated from the {len(p.echo_times)}-echo {kind} series "
        f"(echo times {1e3 * min(p.echo_times):.1f}-{1e3 * max(p.echo_times):.1f} ms) with a mono-exponential "
        f"model S = M0 exp(-TE/{label}) by {', '.join(item.estimators)} fitting"
        + (" excluding the first echo" if opts.drop_first_echo else "")
        + (" with a constant noise-floor offset" if opts.fit_offset else "")
        + f" inside a foreground mask {citations_of(kind, item.estimators)}."
    )
    inputnode = pe.Node(niu.IdentityInterface(fields=["in_files", "source_files"]), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=["mask", "reference", "out_files"]),
                         name="outputnode")
    mask = pe.Node(ForegroundMask(), name="mask")
    workflow.connect([
        (inputnode, mask, [("in_files", "in_files")]),
        (mask, outputnode, [("out_mask", "mask"), ("out_reference", "reference")]),
    ])
    meta = {"EchoTime": list(p.echo_times), "DropFirstEcho": opts.drop_first_echo,
            "NoiseFloorOffset": opts.fit_offset}
    outputs = [(mask, "out_mask", mask_spec(item, sources))]
    outputs += connect_estimators(workflow, kind=kind, names=item.estimators, protocol=p, config=config,
                                  inputs=FitInputs((inputnode, "in_files"), (mask, "out_mask"),
                                                   sources=tuple(sources), meta=meta))
    connect_ds_maps(workflow, inputnode=inputnode, outputnode=outputnode, outputs=outputs,
                    output_dir=output_dir)
    return workflow
