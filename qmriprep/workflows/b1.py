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
