"""The estimator registry: what one estimator or reconstruction method *is*, declared once.

An :class:`Estimator` says which collection kind it maps, its name (``--estimators KIND:NAME``
and ``desc-<name>``), the core function or Nipype interface that computes it, the maps it writes
(:class:`Output`: BIDS suffix, hence units via :mod:`qmriprep.suffixes`), its algorithm text and
citation keys (``data/boilerplate.bib``), whether it takes a B1+ map, whether it is learned, and
the configuration section holding its settings. The CLI choices, config defaults, interface
inputs, workflow nodes, sidecars, methods text, report and tests are derived from these
declarations. This module imports nothing else of qmriprep: anything may read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module
from typing import Any


#: ``Output.description`` of a Cramer-Rao standard-deviation map (``.format(parameter)``)
CRB = ("Standard deviation of the {} estimate: Cramer-Rao lower bound sigma sqrt((J^T J)^-1) from the "
       "noise sigma measured on the series (NoiseSigma) and the Jacobian J of the signal model at the "
       "fitted parameters (automatic differentiation)")


@dataclass(frozen=True)
class Output:
    """One map an estimator writes: the fit node's output ``field`` saved as ``suffix``.

    The file is named ``desc-<estimator name><desc>`` (e.g. ``desc-varproT2_M0map``);
    ``description`` is its sidecar ``Description`` (e.g. how a ``desc="SD"`` map was computed).
    """

    field: str
    suffix: str
    desc: str = ""
    datatype: str = "anat"
    description: str = ""


@dataclass(frozen=True)
class Estimator:
    """One estimator of one collection kind (see the module docstring).

    ``core`` (``"module:function"``) is called by :class:`qmriprep.interfaces.fit.FitMaps` as
    ``core(series, protocol, b1=..., mask=..., **options, **settings)`` and returns a dict of
    arrays holding every ``outputs`` field. Learned estimators name instead a ``trainer``
    interface (inputs ``protocol``, ``options``; outputs ``model_file``, ``provenance``) and a
    ``node`` interface applying the model. ``settings``: the :class:`~qmriprep.config.Config`
    section (dotted path), or a tuple of sections, passed to the trainer (learned) or as keyword
    arguments to ``core``. ``stochastic``: ``core`` also takes the run's ``seed`` and ``device``.
    A core may return a ``"meta"`` dict: sidecar fields known only at run time. A core writing
    standard-deviation maps (outputs with ``desc`` ending in ``SD``) is also given ``noise_sigma``,
    the noise measured on the series (:func:`qmriprep.fit.noise.estimate_noise`).
    """

    kind: str
    name: str
    algorithm: str
    citations: tuple[str, ...]
    outputs: tuple[Output, ...]
    core: str = ""
    node: Any = "qmriprep.interfaces.fit:FitMaps"
    trainer: Any = None
    options: dict = field(default_factory=dict)
    settings: str | tuple[str, ...] | None = None
    takes_b1: bool = False
    learned: bool = False
    stochastic: bool = False
    default: bool = False
    choosable: bool = True

    @property
    def key(self) -> tuple[str, str]:
        return self.kind, self.name


@dataclass(frozen=True)
class Reconstruction:
    """One reconstruction of undersampled k-space, written as ``rec-<name>`` images.

    ``label`` completes the methods text ("... reconstructed by <label>"); ``settings`` is the
    config section of its settings (None: none); ``learned`` methods publish their model.
    """

    name: str
    algorithm: str
    citations: tuple[str, ...]
    label: str
    default: bool = False
    settings: str | None = None
    learned: bool = False


_ESTIMATORS: dict[tuple[str, str], Estimator] = {}
_RECONSTRUCTIONS: dict[str, Reconstruction] = {}


def register(item: Estimator | Reconstruction, *, replace: bool = False):
    """Add a declaration (an error if the name is taken, unless ``replace``); returns it."""
    table, key = ((_RECONSTRUCTIONS, item.name) if isinstance(item, Reconstruction)
                  else (_ESTIMATORS, item.key))
    if key in table and not replace:
        raise ValueError(f"{key} is already registered")
    table[key] = item
    return item


def unregister(item: Estimator | Reconstruction) -> None:
    """Remove a declaration (tests registering a toy estimator clean up with this)."""
    if isinstance(item, Reconstruction):
        _RECONSTRUCTIONS.pop(item.name, None)
    else:
        _ESTIMATORS.pop(item.key, None)


def estimators(kind: str | None = None) -> list[Estimator]:
    """Declared estimators (of one kind), in declaration order."""
    return [e for e in _ESTIMATORS.values() if kind is None or e.kind == kind]


def get(kind: str, name: str) -> Estimator:
    """The declaration of ``name`` for ``kind``; KeyError naming the choices otherwise."""
    try:
        return _ESTIMATORS[(kind, name)]
    except KeyError:
        raise KeyError(f"no estimator {name!r} for {kind}; choose from "
                       f"{', '.join(e.name for e in estimators(kind))}") from None


def choices() -> dict[str, tuple[str, ...]]:
    """``{kind in lower case: (names...)}`` of the estimators a user chooses on the command line."""
    out: dict[str, tuple[str, ...]] = {}
    for e in _ESTIMATORS.values():
        if e.choosable:
            out[e.kind.lower()] = out.get(e.kind.lower(), ()) + (e.name,)
    return out


def default_estimators() -> dict[str, list[str]]:
    """``{kind in lower case: [names]}`` run when the user chooses none (declared ``default``)."""
    return {kind: [n for n in names if get(_kind(kind), n).default] or [names[0]]
            for kind, names in choices().items()}


def _kind(lower: str) -> str:
    return next(e.kind for e in _ESTIMATORS.values() if e.kind.lower() == lower)


def kind_of(lower: str) -> str:
    """The collection kind spelled as in BIDS (``bssfp`` -> ``bSSFP``)."""
    return _kind(lower)


def b1_kinds() -> frozenset[str]:
    """Collection kinds with an estimator taking a B1+ map."""
    return frozenset(e.kind for e in _ESTIMATORS.values() if e.takes_b1)


def reconstructions() -> list[Reconstruction]:
    """Declared reconstruction methods, in declaration order."""
    return list(_RECONSTRUCTIONS.values())


def reconstruction(name: str) -> Reconstruction:
    try:
        return _RECONSTRUCTIONS[name]
    except KeyError:
        raise KeyError(f"no reconstruction {name!r}; choose from "
                       f"{', '.join(_RECONSTRUCTIONS)}") from None


def resolve(target):
    """The object named by ``"package.module:attribute"`` (objects are returned as they are)."""
    if not isinstance(target, str):
        return target
    module, _, attr = target.partition(":")
    return getattr(import_module(module), attr)
