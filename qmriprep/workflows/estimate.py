"""Estimator nodes built from the registry, and the maps they write.

Every collection workflow (multi-echo, VFA, pc-bSSFP, DESS) prepares its series, mask and B1+
map, then hands them here: one node per chosen estimator (a trainer and an applying node for
learned ones), wired to the inputs the declaration asks for, and one
:class:`~qmriprep.workflows.outputs.MapSpec` per declared output.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from nipype.pipeline import engine as pe

from .. import estimators
from ..estimators.citations import cite
from ..provenance import bids_uris, map_meta
from .noise import connect_noise, denoise_text, denoised, noise_meta_source
from .outputs import MapSpec

#: methods sentence on the noise measurement (fit/noise.py)
NOISE_TEXT = (" The noise standard deviation of the series was measured from the background (Rayleigh "
              "or Gaussian second moment) or, without a noise-only background, by Marchenko-Pastur "
              "PCA [@veraart2016].")
SD_TEXT = (" Per-voxel standard deviations (desc-<estimator>SD maps) are, for model fits, Cramer-Rao bounds "
           "from that noise with the Jacobian of the signal model by automatic differentiation, and for "
           "networks their calibrated variance outputs (each map's sidecar Description says which).")


@dataclass(frozen=True)
class FitInputs:
    """Where the estimators of one collection find their inputs: ``(node, output)`` pairs of the
    series, the mask and the B1+ map on the series grid (None: B1 = 1), the BIDS URIs of the
    sources and the sidecar fields every map of the collection shares."""

    data: tuple
    mask: tuple
    b1: tuple | None = None
    sources: tuple[str, ...] = ()
    meta: dict = field(default_factory=dict)
    #: the acquired series when ``data`` is derived from it (pc-bSSFP configurations): the noise
    #: is measured there and the collection workflow denoises it; None: ``data`` is the series,
    #: measured and (``noise`` config section) denoised here
    acquired: tuple | None = None
    #: per-voxel level ``data`` was normalised by (pc-bSSFP: the configurations' norm), for
    #: estimators whose SD maps need the noise relative to it; None: ``data`` is not normalised
    scale: tuple | None = None
    #: the noise of ``data`` when it derives from a denoised series: a node with outputs
    #: ``noise_basis`` (NoiseBasis file) and ``training_sigma`` (the i.i.d. noise networks train
    #: for); None: the ``denoise`` node's basis (when ``data`` is its output) and the measured sigma
    data_noise: object | None = None


def connect_estimators(workflow, *, kind: str, names, protocol, config, inputs: FitInputs) -> list:
    """Add the fit nodes of ``names`` (estimators of ``kind``); returns ``(node, output, MapSpec)``."""
    outputs = []
    noise = connect_noise(workflow, series=inputs.acquired or inputs.data, mask=inputs.mask)
    data = inputs.data if inputs.acquired else denoised(workflow, kind=kind, series=inputs.data,
                                                        mask=inputs.mask, config=config)
    meta = noise_meta_source(workflow)
    basis = ((inputs.data_noise, "noise_basis") if inputs.data_noise is not None
             else (data[0], "noise_basis") if data[0] is workflow.get_node("denoise") else None)
    has_sd = any(o.desc.endswith("SD") for n in names for o in estimators.get(kind, n).outputs)
    workflow.__desc__ = ((workflow.__desc__ or "") + NOISE_TEXT + denoise_text(kind, config)
                         + (SD_TEXT if has_sd else ""))
    for name in names:
        est = estimators.get(kind, name)
        fit = fit_node(workflow, est, protocol, config)
        workflow.connect([(data[0], fit, [(data[1], "in_files")]),
                          (inputs.mask[0], fit, [(inputs.mask[1], "mask_file")])])
        connect_noise_to(workflow, noise, meta, fit, est, inputs)
        if (basis is not None and "noise_basis_file" in fit.inputs.copyable_trait_names()
                and any(o.desc.endswith("SD") for o in est.outputs)):
            workflow.connect(*basis, fit, "noise_basis_file")
        if est.takes_b1 and inputs.b1 is not None:
            workflow.connect(*inputs.b1, fit, "b1_file")
        for out in est.outputs:
            outputs.append((fit, out.field, MapSpec(
                f"{out.field}_{name}", out.suffix, desc=f"{name}{out.desc}", datatype=out.datatype,
                meta=map_meta(out.suffix, est, inputs.sources, desc=out.desc, **inputs.meta,
                              **({"Description": out.description} if out.description else {})),
                runtime_meta="meta")))
    return outputs


def connect_noise_to(workflow, noise, meta, fit, est, inputs: FitInputs):
    """The series' noise fields (``meta``: ``(node, output)``) go to every map's sidecar (node
    input ``noise_meta``); its sigma and the data's level (``inputs.scale``) to estimators writing
    SD maps; the training sigma (``inputs.data_noise``'s, else sigma), level and mask to
    noise-matched trainers (``train_<name>``)."""
    if "noise_meta" in fit.inputs.copyable_trait_names():
        workflow.connect(*meta, fit, "noise_meta")
    if any(o.desc.endswith("SD") for o in est.outputs) and "noise_sigma" in fit.inputs.copyable_trait_names():
        workflow.connect(noise, "sigma", fit, "noise_sigma")
    train = workflow.get_node(f"train_{est.name}") if est.learned else None
    training = (noise, "sigma") if inputs.data_noise is None else (inputs.data_noise, "training_sigma")
    ports = {"noise_sigma": training, "scale_file": inputs.scale, "mask_file": inputs.mask}
    for node, names in ((fit, ("scale_file",)), (train, tuple(ports))):
        for name in names:
            if node is not None and ports[name] is not None and name in node.inputs.copyable_trait_names():
                workflow.connect(*ports[name], node, name)


def fit_node(workflow, est, protocol, config):
    """The node computing ``est``'s maps (learned: with the node getting its trained model)."""
    sections = (est.settings,) if isinstance(est.settings, str) else est.settings or ()
    options = dict(est.options)
    for path in sections:
        options.update(asdict(config.section(path)))
    proto = {"protocol": asdict(protocol),
             "protocol_type": f"{type(protocol).__module__}:{type(protocol).__qualname__}"}
    node = estimators.resolve(est.node)
    run = {"seed": config.seeds.random_seed, "device": config.workflow.device}
    if not est.learned:
        return pe.Node(node(outputs=[o.field for o in est.outputs], core=est.core,
                            options={**options, **(run if est.stochastic else {})}, **proto),
                       name=f"fit_{est.name}")
    train = pe.Node(estimators.resolve(est.trainer)(options={**options, **run}, **proto),
                    name=f"train_{est.name}")
    fit = pe.Node(node(**proto), name=f"fit_{est.name}")
    workflow.connect([(train, fit, [("model_file", "model_file"), ("provenance", "provenance")])])
    return fit


def citations_of(kind: str, names) -> str:
    """``[@a; @b]`` citing every reference of the estimators ``names`` of ``kind`` once."""
    keys = dict.fromkeys(k for n in names for k in estimators.get(kind, n).citations)
    return cite(list(keys))


def sources_of(item, config) -> tuple[list[str], list[str]]:
    """BIDS URIs of a planned collection's files and of its B1+ map's files (empty without)."""
    bids_dir = config.execution.bids_dir
    b1 = item.b1.map if item.b1 is not None else None
    return bids_uris(item.collection.files, bids_dir), bids_uris(b1.files, bids_dir) if b1 else []
