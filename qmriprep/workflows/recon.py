"""Undersampled k-space to images (``rec-<method>``) to maps, for one k-space collection."""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from ..interfaces.bids import DerivativesDataSink
from ..interfaces.recon import EstimateCoils, Reconstruct
from ..provenance import RECONSTRUCTION_REFERENCES, RECONSTRUCTIONS

_LABEL = {"zsssl": "zero-shot self-supervised learning (ZS-SSL) [@zsssl; @ssdu] of an unrolled network "
                   "(a residual CNN shared by the unrolls alternating with conjugate-gradient data "
                   "consistency, contrasts as channels), trained on the scan itself with "
                   "memory-efficient learning [@fujita2025]",
          "cgsense": "CG-SENSE [@cgsense] with Tikhonov regularisation",
          "zerofilled": "zero-filling (coil-combined inverse FFT)"}


def init_recon_wf(*, suffix: str, methods, output_dir: str, sources, init_maps_wf, settings=None,
                  init_model: str | None = None, omp_nthreads: int = 1, name: str = "recon_wf"):
    """Coil estimation, joint reconstruction by each of ``methods``, then the maps of ``suffix``.

    .. workflow::

        from qmriprep.workflows.multiecho import init_multiecho_wf
        from qmriprep.workflows.recon import init_recon_wf
        wf = init_recon_wf(
            suffix="MESE", methods=["cgsense"], output_dir=".",
            sources=["bids:raw:sourcedata/kspace/sub-01/anat/sub-01_echo-1_MESE.h5"],
            init_maps_wf=lambda name: init_multiecho_wf(
                kind="MESE", echo_times=[0.01, 0.02], methods=["varpro"], output_dir=".",
                sources=[], name=name))

    Parameters: ``suffix`` (MESE | MEGRE | VFA | DESS), ``methods`` (zsssl, cgsense, zerofilled),
    ``sources`` (BIDS URIs of the k-space files), ``init_maps_wf(name)`` building the map workflow
    of ``suffix`` (inputs ``in_files``, ``source_files``, ``b1``, ``b1_reference``), ZSSSL
    ``settings`` (dict of :class:`~qmriprep.recon.zsssl.ReconSettings` fields) and ``init_model``
    (warm start); ``omp_nthreads``: torch threads of a reconstruction (the scheduler reserves them).

    Inputs: ``in_files`` (k-space files in series order), ``source_files``, ``b1``, ``b1_reference``.
    Outputs: ``out_files`` (every derivative written).
    """
    workflow = pe.Workflow(name=name)
    workflow.__desc__ = (
        f"The undersampled multi-coil k-space of the {suffix} series (ISMRMRD [@ismrmrd]) was "
        "reconstructed with coil sensitivities estimated by ESPIRiT [@espirit] (SigPy [@sigpy]), all "
        "contrasts jointly, by " + "; by ".join(_LABEL[m] for m in methods)
        + ". Parameter maps were estimated from the magnitude of each reconstruction."
    )
    fields = ["in_files", "source_files", "b1", "b1_reference"]
    inputnode = pe.Node(niu.IdentityInterface(fields=fields), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=["out_files"]), name="outputnode")
    coils = pe.Node(EstimateCoils(), name="coils")
    workflow.connect(inputnode, "in_files", coils, "in_files")
    merge = pe.Node(niu.Merge(2 * len(methods)), name="merge", run_without_submitting=True)
    for i, method in enumerate(methods):
        recon = pe.Node(Reconstruct(method=method, num_threads=omp_nthreads), name=f"recon_{method}",
                        n_procs=omp_nthreads)
        if method == "zsssl" and settings:
            recon.inputs.settings = dict(settings)
        if method == "zsssl" and init_model:
            recon.inputs.init_model = init_model
        ds_rec = pe.MapNode(DerivativesDataSink(
            base_directory=output_dir, reconstruction=method, compress=True, dismiss_entities=("part",),
            Sources=list(sources), SkullStripped=False, Units="arbitrary",
            ReconstructionAlgorithm=RECONSTRUCTIONS[method],
            ReconstructionReference=RECONSTRUCTION_REFERENCES[method]),
            iterfield=["in_file", "source_file"], name=f"ds_rec_{method}", run_without_submitting=True)
        maps_wf = init_maps_wf(f"maps_{method}_wf")
        flatten = pe.Node(niu.Function(function=_flatten, input_names=["lists"], output_names=["out"]),
                          name=f"flatten_{method}", run_without_submitting=True)
        meta_out = (recon, "meta")
        if method == "zsssl":
            keep_model = pe.Node(niu.Function(function=publish_model, output_names=["meta"]),
                                 name="keep_model", run_without_submitting=True)
            keep_model.inputs.output_dir = output_dir
            workflow.connect([(recon, keep_model, [("model_file", "model_file"), ("meta", "meta")]),
                              (inputnode, keep_model, [("source_files", "source_files")])])
            meta_out = (keep_model, "meta")
        workflow.connect([
            (inputnode, recon, [("in_files", "in_files")]),
            (coils, recon, [("out_file", "coil_file")]),
            (recon, ds_rec, [("out_files", "in_file")]),
            (meta_out[0], ds_rec, [(meta_out[1], "meta_dict")]),
            (inputnode, ds_rec, [("source_files", "source_file")]),
            (recon, maps_wf, [("out_files", "inputnode.in_files")]),
            (ds_rec, maps_wf, [("out_file", "inputnode.source_files")]),
            (ds_rec, flatten, [("out_file", "lists")]),
            (flatten, merge, [("out", f"in{2 * i + 1}")]),
            (maps_wf, merge, [("outputnode.out_files", f"in{2 * i + 2}")]),
        ])
        if "b1" in maps_wf.get_node("inputnode").inputs.copyable_trait_names():
            workflow.connect(inputnode, "b1", maps_wf, "inputnode.b1")
            workflow.connect(inputnode, "b1_reference", maps_wf, "inputnode.b1_reference")
    workflow.connect(merge, "out", outputnode, "out_files")
    return workflow


def publish_model(model_file, meta, source_files, output_dir):
    """Copy the trained ZSSSL model to ``sub-<l>[/ses-<l>]/models/<name>_rec-zsssl_<suffix>.pt``
    (for ``--recon-init`` transfer) and name it in the sidecar fields ``meta``."""
    import re
    import shutil
    from pathlib import Path

    first = Path(source_files[0])
    stem = re.sub(r"_(echo|flip)-[0-9]+", "", first.name.split(".")[0])
    head, suffix = stem.rsplit("_", 1)
    ses = re.search(r"_(ses-[a-zA-Z0-9]+)", head)
    rel = Path(head.split("_")[0]) / (ses.group(1) if ses else "") / "models" / f"{head}_rec-zsssl_{suffix}.pt"
    dest = Path(output_dir) / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model_file, dest)
    return {**meta, "ModelFile": rel.as_posix()}


def _flatten(lists):
    """One flat list of paths from a MapNode's list (of lists)."""
    out = []
    for item in lists:
        out.extend(item if isinstance(item, list) else [item])
    return out
