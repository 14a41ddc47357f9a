"""B1+ mapping: DAM, AFI, TFL, or a scanner TB1map, to a smooth fraction-of-nominal map."""

from __future__ import annotations

from dataclasses import asdict

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from .. import estimators
from ..estimators.citations import cite
from ..interfaces.b1 import B1Map, ScaleImage
from ..provenance import map_meta
from .estimate import sources_of
from .outputs import MapSpec, connect_ds_maps

_LABEL = {"TB1DAM": "double-angle", "TB1AFI": "actual flip angle imaging (AFI)",
          "TB1TFL": "turbo-FLASH (TFL)", "TB1map": "scanner-provided"}


def init_b1_wf(*, item, config, output_dir: str, name: str = "b1_wf"):
    """B1+ map (fraction of nominal) on its native grid, smoothed and hole-filled.

    Parameters: ``item`` (:class:`~qmriprep.bids.plan.CollectionPlan` of a TB1DAM, TB1AFI,
    TB1TFL or TB1map collection; its protocol gives the nominal angle in rad, the AFI TRs in s,
    the TB1map scale to a fraction), run ``config`` (``workflow.b1_fwhm_mm`` smoothing).

    Inputs: ``in_files`` (ordered as the collection defines), ``source_files``.
    Outputs: ``b1`` (smoothed fraction), ``reference`` (magnitude in B1 space), ``out_files``.
    Writes ``desc-<method>_TB1map`` (raw estimate) and ``desc-<method>smooth_TB1map``, in percent.
    """
    col, fwhm_mm = item.collection, config.workflow.b1_fwhm_mm
    est = estimators.estimators(col.kind)[0]
    sources, _ = sources_of(item, config)
    workflow = pe.Workflow(name=name)
    workflow.__desc__ = (
        f"A B1+ map was computed from the {_LABEL[col.kind]} acquisition {cite(est.citations)}".rstrip()
        + f" and smoothed with a {fwhm_mm:g} mm FWHM Gaussian kernel by normalised convolution, "
        "which also fills voxels where the estimate is undefined."
    )
    inputnode = pe.Node(niu.IdentityInterface(fields=["in_files", "source_files"]), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=["b1", "reference", "out_files"]),
                         name="outputnode")
    b1map = pe.Node(B1Map(kind=col.kind, protocol=asdict(col.protocol), fwhm_mm=fwhm_mm), name="b1map")
    workflow.connect([
        (inputnode, b1map, [("in_files", "in_files")]),
        (b1map, outputnode, [("out_b1", "b1"), ("out_reference", "reference")]),
    ])
    outputs = []
    for out in est.outputs:  # maps in percent, as BIDS TB1map
        pct = pe.Node(ScaleImage(factor=100.0), name=f"{out.field[4:]}_pct")
        workflow.connect(b1map, out.field, pct, "in_file")
        meta = map_meta(out.suffix, est, sources, **({"SmoothingFWHM": fwhm_mm} if out.desc else {}))
        outputs.append((pct, "out_file", MapSpec(out.field[4:], out.suffix, desc=f"{est.name}{out.desc}",
                                                 datatype=out.datatype, meta=meta)))
    connect_ds_maps(workflow, inputnode=inputnode, outputnode=outputnode, output_dir=output_dir,
                    outputs=outputs)
    return workflow


def connect_b1_to_target(workflow, *, inputnode, fixed, mode: str, label: str, median_mm: float = 0.0):
    """Bring ``inputnode.b1`` (fraction, B1 grid) onto the grid of ``fixed`` = ``(node, field)``.

    ``mode``: ``rigid`` (register ``inputnode.b1_reference`` to the target's reference) or
    ``header`` (scanner coordinates only); ``median_mm`` adds a median filter. Returns the
    ``(node, field)`` of the B1+ map on the target grid.
    """
    from ..interfaces.registration import RegisterToReference
    from .outputs import B1_MIN_MOTION, listify

    to_target = pe.Node(RegisterToReference(mode=mode, order=1, min_displacement=B1_MIN_MOTION),
                        name=f"b1_to_{label}")
    first = pe.Node(niu.Select(index=0), name="b1_first", run_without_submitting=True)
    workflow.connect([
        (inputnode, to_target, [("b1_reference", "moving"), (("b1", listify), "apply_to")]),
        (fixed[0], to_target, [(fixed[1], "fixed")]),
        (to_target, first, [("out_files", "inlist")]),
    ])
    if not median_mm:
        return first, "out"
    from ..interfaces.bssfp import MedianFilterB1

    median = pe.Node(MedianFilterB1(size_mm=median_mm), name="b1_median")
    workflow.connect(first, "out", median, "in_file")
    return median, "out_file"


def b1_meta(b1, b1_sources, median_mm: float = 0.0) -> dict:
    """Sidecar fields saying how the planned B1+ decision ``b1`` corrected a map."""
    if b1 is None or b1.map is None:
        why = b1.reason if b1 is not None and b1.reason.startswith("--b1-source") else "no B1+ map found"
        return {"B1Correction": f"none: B1 = 1 assumed ({why})"}
    return {"B1Correction": f"B1+ map ({b1.registration} alignment"
                            + (f", {median_mm:g} mm median)" if median_mm else ")"),
            "B1Sources": list(b1_sources)}


def b1_text(b1, label: str) -> str:
    """Methods text on the B1+ correction of a ``label`` series (planned decision ``b1``)."""
    if b1 is None or b1.map is None:
        return ("assuming the nominal flip angles (B1+ correction disabled by --b1-source none)"
                if b1 is not None and b1.reason.startswith("--b1-source")
                else "assuming the nominal flip angles (no B1+ map was available)")
    how = ("rigid registration of its magnitude image [@simpleitk]" if b1.registration == "rigid"
           else "its scanner coordinates")
    return f"with flip angles corrected by the B1+ map, brought into the {label} space by {how}"


def b1_percent_output(workflow, b1_out, *, label: str, b1_sources):
    """The B1+ map as used (percent) as one ``connect_ds_maps`` output of ``desc-<label>``."""
    pct = pe.Node(ScaleImage(factor=100.0), name="b1_pct")
    workflow.connect(*b1_out, pct, "in_file")
    return (pct, "out_file", MapSpec("b1", "TB1map", desc=label, datatype="fmap", meta={
        "Units": "percent", "Sources": list(b1_sources), "SkullStripped": False,
        "Description": f"the smoothed B1+ map on the {label.upper()} grid, as used to correct the flip angles"}))


def b1_transform_output(workflow, *, label: str, b1, to: str, b1_sources):
    """The transform that brought the B1+ map onto the ``to`` grid (node ``b1_to_<label>`` of
    :func:`connect_b1_to_target`) as one ``connect_ds_maps`` output:
    ``from-<B1 kind>_to-<to>_mode-image_xfm.txt`` (ITK text, fixed -> moving points; identity
    for ``header`` alignment), which the report shows and users can apply again."""
    return (workflow.get_node(f"b1_to_{label}"), "out_transform", MapSpec(
        f"xfm_{label}", "xfm", meta={"from": b1.map.kind, "to": to, "mode": "image",
                                     "Sources": list(b1_sources), "Alignment": b1.registration},
        compress=False))

