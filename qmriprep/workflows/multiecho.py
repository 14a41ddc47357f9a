"""Multi-echo relaxometry: T2 from MESE, T2* from MEGRE."""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from ..interfaces.estimate import ForegroundMask, MonoExpFit
from ..provenance import map_meta
from .outputs import MapSpec, connect_ds_maps

_NAMES = {"MESE": ("T2map", "R2map", "T2"), "MEGRE": ("T2starmap", "R2starmap", "T2star")}


def init_multiecho_wf(*, kind: str, echo_times, methods, output_dir: str, sources,
                      drop_first_echo: bool = False, fit_offset: bool = False,
                      name: str = "multiecho_wf"):
    """Mono-exponential T2 (MESE) or T2* (MEGRE) maps, one set per estimator.

    .. workflow::

        from qmriprep.workflows.multiecho import init_multiecho_wf
        wf = init_multiecho_wf(kind="MESE", echo_times=[0.01, 0.02, 0.03], methods=["varpro"],
                               output_dir=".", sources=["bids:raw:sub-01/anat/sub-01_echo-1_MESE.nii.gz"])

    Parameters: ``kind`` (MESE | MEGRE), ``echo_times`` (s), ``methods`` (varpro, nlls, loglinear),
    ``output_dir`` (derivatives root), ``sources`` (BIDS URIs of the echoes).

    Inputs: ``in_files`` (echoes, in echo order), ``source_files`` (same, for naming).
    Outputs: ``mask``, ``reference``, and ``out_files`` (derivatives written).
    """
    tmap, rmap, label = _NAMES[kind]
    workflow = pe.Workflow(name=name)
    workflow.__desc__ = (
        f"{label.replace('star', '*')} maps were estimated from the {len(echo_times)}-echo {kind} series "
        f"(echo times {1e3 * min(echo_times):.1f}-{1e3 * max(echo_times):.1f} ms) with a mono-exponential "
        f"model S = M0 exp(-TE/{label.replace('star', '*')}) by {', '.join(methods)} fitting"
        + (" excluding the first echo" if drop_first_echo else "")
        + (" with a constant noise-floor offset" if fit_offset else "")
        + " inside a foreground mask [@varpro]."
    )
    inputnode = pe.Node(niu.IdentityInterface(fields=["in_files", "source_files"]), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=["mask", "reference", "out_files"]),
                         name="outputnode")
    mask = pe.Node(ForegroundMask(), name="mask")
    outputs = [(mask, "out_mask", MapSpec("mask", "mask", desc=f"{kind.lower()}brain",
                                          meta={"Type": "Brain", "Sources": list(sources)}))]
    for method in methods:
        fit = pe.Node(MonoExpFit(echo_times=list(echo_times), method=method,
                                 drop_first_echo=drop_first_echo, offset=fit_offset),
                      name=f"fit_{method}")
        workflow.connect([(inputnode, fit, [("in_files", "in_files")]),
                          (mask, fit, [("out_mask", "mask_file")])])
        extra = {"EchoTime": list(echo_times), "DropFirstEcho": drop_first_echo,
                 "NoiseFloorOffset": fit_offset}
        for field, suffix, desc in (("t2", tmap, method), ("r2", rmap, method),
                                    ("m0", "M0map", f"{method}{label}"),
                                    ("rmse", f"{tmap}RMSE", method)):
            outputs.append((fit, field, MapSpec(f"{field}_{method}", suffix, desc=desc,
                                                meta=map_meta(suffix, kind, method, sources, **extra))))
    workflow.connect([
        (inputnode, mask, [("in_files", "in_files")]),
        (mask, outputnode, [("out_mask", "mask"), ("out_reference", "reference")]),
    ])
    connect_ds_maps(workflow, inputnode=inputnode, outputnode=outputnode, outputs=outputs,
                    output_dir=output_dir)
    return workflow
