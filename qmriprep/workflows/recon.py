"""Raw k-space to parameter maps: coils, reconstruction by each method, then the maps of the
images' suffix, for one k-space collection."""

from __future__ import annotations

from dataclasses import asdict

from nipype.interfaces import utility as niu
from nipype.interfaces.base import isdefined
from nipype.pipeline import engine as pe

from .. import estimators
from ..interfaces.bids import DerivativesDataSink
from ..interfaces.recon import EstimateCoils, Reconstruct
from ..provenance import reconstruction_meta
from ..recon.subspace import MIN_CONTRASTS
from .estimate import sources_of


def init_recon_wf(*, item, config, output_dir: str, init_maps_wf, name: str = "recon_wf"):
    """Coil estimation, joint reconstruction by each of ``config.recon.methods``, then the maps.

    Parameters: ``item`` (:class:`~qmriprep.bids.plan.CollectionPlan` of a k-space collection),
    run ``config`` (``recon`` section: methods, ZS-SSL settings, a model to start from;
    ``nipype.omp_nthreads``: torch threads of a reconstruction, reserved by the scheduler),
    ``init_maps_wf(name)`` building the map workflow of the images' suffix (inputs ``in_files``,
    ``source_files``, ``b1``, ``b1_reference``).

    Inputs: ``in_files`` (k-space files in series order), ``source_files``, ``b1``, ``b1_reference``.
    Outputs: ``out_files`` (every derivative written).
    """
    methods = [estimators.reconstruction(m) for m in config.recon.methods]
    sources, _ = sources_of(item, config)
    workflow = pe.Workflow(name=name)
    workflow.__desc__ = (
        f"The undersampled multi-coil k-space of the {item.collection.series_kind} series (ISMRMRD "
        "[@ismrmrd]) was reconstructed, all contrasts jointly, by " + "; by ".join(m.label for m in methods)
        + ". Coil sensitivities came from the fully sampled k-space centre: by ESPIRiT [@espirit] "
        "(SigPy [@sigpy]) when it spans at least 12 lines in both directions, else as low-resolution "
        "maps (the Hann-windowed centre's coil images divided by their root-sum-of-squares); which "
        "one each series got is listed under *As run*. Parameter maps were estimated from the "
        "magnitude of each reconstruction."
    )
    fields = ["in_files", "source_files", "b1", "b1_reference"]
    inputnode = pe.Node(niu.IdentityInterface(fields=fields), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=["out_files"]), name="outputnode")
    coils = pe.Node(EstimateCoils(), name="coils")
    workflow.connect(inputnode, "in_files", coils, "in_files")
    merge = pe.Node(niu.Merge(2 * len(methods)), name="merge", run_without_submitting=True)
    for i, method in enumerate(methods):
        recon = _recon_node(method, config, len(item.collection.files))
        if method.learned and not config.recon.init and isdefined(recon.inputs.init_model):
            workflow.__desc__ += (f" {method.label} training started from a network qmriprep ships, "
                                  "pre-trained the same way on synthetic k-space of other slices "
                                  "and subjects (transfer, as in [@yaman2022]).")
        if method.learned and config.recon.zsssl.subspace and len(item.collection.files) >= MIN_CONTRASTS:
            workflow.__desc__ += (" When every contrast was sampled at the same k-space points, the "
                                  "network reconstructed the coefficient images of the series' contrast "
                                  "subspace [@huang2012; @tamir2017]: the left singular vectors of the "
                                  "calibration data whose eigenvalues exceed twice the noise eigenvalue "
                                  "(the rank each series got is listed under *As run*).")
        ds_rec = pe.MapNode(DerivativesDataSink(
            base_directory=output_dir, reconstruction=method.name, compress=True, dismiss_entities=("part",),
            **reconstruction_meta(method, sources)),
            iterfield=["in_file", "source_file"], name=f"ds_rec_{method.name}", run_without_submitting=True)
        maps_wf = init_maps_wf(f"maps_{method.name}_wf")
        flatten = pe.Node(niu.Function(function=_flatten, input_names=["lists"], output_names=["out"]),
                          name=f"flatten_{method.name}", run_without_submitting=True)
        meta_out = (recon, "meta")
        if method.learned:
            meta_out = _publish_model(workflow, recon, inputnode, method, output_dir)
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


def _recon_node(method, config, n_contrasts: int):
    """The reconstruction node of ``method`` with its settings and start model: ``--recon-init``,
    else with ``--recon-pretrained`` the shipped network for ``n_contrasts`` when it fits
    (:func:`~qmriprep.recon.pipeline.shipped_init`), else none."""
    threads = config.nipype.omp_nthreads
    recon = pe.Node(Reconstruct(method=method.name, num_threads=threads), name=f"recon_{method.name}",
                    n_procs=threads)
    if method.settings:
        recon.inputs.settings = asdict(config.section(method.settings))
    if method.learned:
        from ..recon.pipeline import shipped_init

        start = config.recon.init or (shipped_init(n_contrasts, config.recon.zsssl)
                                      if config.recon.pretrained else None)
        if start:
            recon.inputs.init_model = start
    return recon


def _publish_model(workflow, recon, inputnode, method, output_dir):
    """Write the trained model as ``sub-<l>/models/<name>_rec-<method>_<suffix>.pt`` (for
    ``--recon-init`` transfer) through the sink; returns the ``(node, output)`` of the images'
    sidecar fields, completed with ``ModelFile``."""
    ds_model = pe.Node(DerivativesDataSink(base_directory=output_dir, reconstruction=method.name,
                                           datatype="models", dismiss_entities=("echo", "flip", "part")),
                       name=f"ds_model_{method.name}", run_without_submitting=True)
    model_meta = pe.Node(niu.Function(function=_with_model_file, output_names=["meta"]),
                         name=f"model_meta_{method.name}", run_without_submitting=True)
    model_meta.inputs.output_dir = output_dir
    workflow.connect([
        (recon, ds_model, [("model_file", "in_file")]),
        (inputnode, ds_model, [("source_files", "source_file")]),
        (recon, model_meta, [("meta", "meta")]),
        (ds_model, model_meta, [("out_file", "model_file")]),
    ])
    return model_meta, "meta"


def _with_model_file(meta, model_file, output_dir):
    """``meta`` with ``ModelFile``: the published model's path relative to the derivatives root."""
    from pathlib import Path

    return {**meta, "ModelFile": Path(model_file).relative_to(output_dir).as_posix()}


def _flatten(lists):
    """One flat list of paths from a MapNode's list (of lists)."""
    out = []
    for item in lists:
        out.extend(item if isinstance(item, list) else [item])
    return out
