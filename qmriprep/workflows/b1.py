"""B1+ mapping: DAM, AFI, TFL, or a scanner TB1map, to a smooth fraction-of-nominal map."""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from ..interfaces.b1 import B1Map, ScaleImage
from ..provenance import map_meta
from .outputs import MapSpec, connect_ds_maps

_LABEL = {"TB1DAM": "double-angle", "TB1AFI": "actual flip angle imaging (AFI)",
          "TB1TFL": "turbo-FLASH (TFL)", "TB1map": "scanner-provided"}


def init_b1_wf(*, kind: str, output_dir: str, sources, flip_angle: float = 0.0,
               repetition_times=(), scale: float = 1.0, fwhm_mm: float = 8.0,
               name: str = "b1_wf"):
    """B1+ map (fraction of nominal) on its native grid, smoothed and hole-filled.

    .. workflow::

        from qmriprep.workflows.b1 import init_b1_wf
        wf = init_b1_wf(kind="TB1DAM", flip_angle=60.0, output_dir=".",
                        sources=["bids:raw:sub-01/fmap/sub-01_flip-1_TB1DAM.nii.gz"])

    Parameters: ``kind`` (TB1DAM | TB1AFI | TB1TFL | TB1map), nominal ``flip_angle`` (deg),
    AFI ``repetition_times`` (s), TB1map ``scale`` to a fraction, smoothing ``fwhm_mm``.

    Inputs: ``in_files`` (ordered as the collection defines), ``source_files``.
    Outputs: ``b1`` (smoothed fraction), ``reference`` (magnitude in B1 space), ``out_files``.
    Writes ``desc-<kind>_TB1map`` (raw estimate) and ``desc-<kind>smooth_TB1map``, in percent.
    """
    workflow = pe.Workflow(name=name)
    workflow.__desc__ = (
        f"A B1+ map was computed from the {_LABEL[kind]} acquisition "
        + ("[@dam]" if kind == "TB1DAM" else "[@afi]" if kind == "TB1AFI" else "[@tfl]" if kind == "TB1TFL" else "")
        + f" and smoothed with a {fwhm_mm:g} mm FWHM Gaussian kernel by normalised convolution, "
        "which also fills voxels where the estimate is undefined."
    )
    inputnode = pe.Node(niu.IdentityInterface(fields=["in_files", "source_files"]), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=["b1", "reference", "out_files"]),
                         name="outputnode")
    b1map = pe.Node(B1Map(kind=kind, flip_angle=flip_angle, repetition_times=list(repetition_times),
                          scale=scale, fwhm_mm=fwhm_mm), name="b1map")
    raw_pct = pe.Node(ScaleImage(factor=100.0), name="raw_pct")
    smooth_pct = pe.Node(ScaleImage(factor=100.0), name="smooth_pct")
    label = kind[3:].lower() if kind != "TB1map" else "scanner"
    meta = map_meta("TB1map", kind, "", sources)
    workflow.connect([
        (inputnode, b1map, [("in_files", "in_files")]),
        (b1map, raw_pct, [("out_raw", "in_file")]),
        (b1map, smooth_pct, [("out_b1", "in_file")]),
        (b1map, outputnode, [("out_b1", "b1"), ("out_reference", "reference")]),
    ])
    connect_ds_maps(workflow, inputnode=inputnode, outputnode=outputnode, output_dir=output_dir, outputs=[
        (raw_pct, "out_file", MapSpec("raw", "TB1map", desc=label, datatype="fmap", meta=meta)),
        (smooth_pct, "out_file", MapSpec("smooth", "TB1map", desc=f"{label}smooth", datatype="fmap",
                                         meta={**meta, "SmoothingFWHM": fwhm_mm})),
    ])
    return workflow


def connect_b1_to_target(workflow, *, inputnode, fixed, mode: str, b1_sources, label: str,
                         median_mm: float = 0.0):
    """Bring ``inputnode.b1`` (fraction, B1 grid) onto the grid of ``fixed`` = ``(node, field)``.

    ``mode``: ``rigid`` (register ``inputnode.b1_reference`` to the target's reference) or
    ``header`` (scanner coordinates only); ``median_mm`` adds a median filter. Returns
    ``((node, field) of the B1+ map on the target grid, sidecar fields saying how)``.
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
    out = (first, "out")
    if median_mm:
        from ..interfaces.bssfp import MedianFilterB1

        median = pe.Node(MedianFilterB1(size_mm=median_mm), name="b1_median")
        workflow.connect(first, "out", median, "in_file")
        out = (median, "out_file")
    meta = {"B1Correction": f"B1+ map ({mode} alignment" + (f", {median_mm:g} mm median)" if median_mm else ")"),
            "B1Sources": list(b1_sources)}
    return out, meta


def b1_percent_output(workflow, b1_out, *, label: str, b1_sources):
    """The B1+ map as used (percent) as one ``connect_ds_maps`` output of ``desc-<label>``."""
    pct = pe.Node(ScaleImage(factor=100.0), name="b1_pct")
    workflow.connect(*b1_out, pct, "in_file")
    return (pct, "out_file", MapSpec("b1", "TB1map", desc=label, meta={
        "Units": "percent", "Sources": list(b1_sources),
        "Description": f"the smoothed B1+ map on the {label.upper()} grid, as used to correct the flip angles"}))


#: sidecar field of maps computed without a B1+ map
NO_B1 = {"B1Correction": "none: B1 = 1 assumed (no B1+ map found)"}
