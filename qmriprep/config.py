"""One settings object for a run, in sections, saved as TOML next to every run.

``Config`` is a plain dataclass tree (no module-level global state): the CLI fills it (each
option's destination is its path here, e.g. ``--nn-epochs`` -> ``nn.max_epochs``), workflows
read it, and ``Config.to_toml``/``Config.from_toml`` make a run reproducible with
``--config-file``. Sections that configure a core component reuse its settings dataclass
(``multiecho``, ``dess``: :mod:`qmriprep.estimators`; ``nn``: :class:`~qmriprep.nn.options.NetworkOptions`;
``scan_cnn``: :class:`~qmriprep.nn.scancnn.ScanCNNSettings`; ``noise``:
:class:`~qmriprep.fit.denoise.DenoiseSettings`; ``recon.zsssl``:
:class:`~qmriprep.recon.zsssl.ReconSettings`), so each setting is declared once.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import tomli_w

from . import estimators
from .estimators.dess import DESSSettings
from .estimators.hybrid import WeightedSettings
from .estimators.multiecho import MultiEchoSettings
from .fit.denoise import DenoiseSettings
from .fit.mrf import MRFSettings
from .nn.subspacecnn import SubspaceCNNSettings
from .nn.options import NetworkOptions
from .nn.scancnn import ScanCNNSettings
from .recon.pipeline import PRESETS
from .recon.zsssl import ReconSettings


@dataclass
class Execution:
    """Where data come from and go, and which part of the dataset is processed."""

    bids_dir: str = ""
    output_dir: str = ""
    work_dir: str = ""
    participant_label: list[str] = field(default_factory=list)
    session_label: list[str] = field(default_factory=list)
    bids_filters: dict = field(default_factory=dict)
    skip_bids_validation: bool = False
    boilerplate_only: bool = False
    stop_on_first_crash: bool = False
    reports_only: bool = False
    log_level: int = 25
    run_uuid: str = ""
    version: str = ""


@dataclass
class Workflow:
    """Which estimators run, and how B1+ maps and series are brought together."""

    estimators: dict = field(default_factory=estimators.default_estimators)
    b1_source: str = "auto"
    b1_registration: str = "rigid"
    b1_fwhm_mm: float = 8.0
    align_series: str = "auto"
    strict: bool = False
    device: str = "cpu"


@dataclass
class BSSFP:
    """pc-bSSFP preprocessing: Gibbs-ringing removal, median filter of the B1+ map (mm; 0: off)."""

    gibbs: bool = False
    b1_median_mm: float = 0.0


def _fast() -> ReconSettings:
    return dataclasses.replace(ReconSettings(), **PRESETS["fast"])


@dataclass
class Recon:
    """Reconstructions of raw k-space: methods, the ZS-SSL preset it started from, its settings
    (the preset's, then every option the user set) and a model to start training from (given,
    or the shipped one when ``pretrained`` is on)."""

    methods: list = field(default_factory=lambda: [r.name for r in estimators.reconstructions()
                                                   if r.default])
    preset: str = "fast"
    init: str = ""
    #: start ZS-SSL from the shipped network when one fits (recon.pipeline.SHIPPED_INIT): off by
    #: default, its gain was measured on the phantom it was trained on, not on real anatomy
    pretrained: bool = False
    zsssl: ReconSettings = field(default_factory=_fast)

    def apply_preset(self, name: str) -> None:
        """Reset the ZS-SSL settings to preset ``name`` (seed and device kept)."""
        self.preset = name
        self.zsssl = dataclasses.replace(ReconSettings(), **PRESETS[name],
                                         seed=self.zsssl.seed, device=self.zsssl.device)


@dataclass
class Nipype:
    """Execution resources."""

    nprocs: int = 1
    omp_nthreads: int = 1
    mem_gb: float = 0.0
    # --use-plugin: Nipype plugin settings {"plugin": name, "plugin_args": {...}}; empty: MultiProc
    # with nprocs processes (Linear for one)
    plugin: dict = field(default_factory=dict)


@dataclass
class Seeds:
    """Random seeds, recorded so that a run can be repeated exactly."""

    random_seed: int = 0


@dataclass
class Config:
    """All settings of one run."""

    execution: Execution = field(default_factory=Execution)
    workflow: Workflow = field(default_factory=Workflow)
    multiecho: MultiEchoSettings = field(default_factory=MultiEchoSettings)
    bssfp: BSSFP = field(default_factory=BSSFP)
    dess: DESSSettings = field(default_factory=DESSSettings)
    mrf: MRFSettings = field(default_factory=MRFSettings)
    mrf_cnn: SubspaceCNNSettings = field(default_factory=SubspaceCNNSettings)
    nn: NetworkOptions = field(default_factory=NetworkOptions)
    scan_cnn: ScanCNNSettings = field(default_factory=ScanCNNSettings)
    noise: DenoiseSettings = field(default_factory=DenoiseSettings)
    recon: Recon = field(default_factory=Recon)
    weighted: WeightedSettings = field(default_factory=WeightedSettings)
    nipype: Nipype = field(default_factory=Nipype)
    seeds: Seeds = field(default_factory=Seeds)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_toml(self, path: str | Path) -> Path:
        """Write the settings as TOML (parents created)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(tomli_w.dumps(self.to_dict()))
        return path

    def section(self, path: str | None):
        """The settings object at dotted ``path`` (``"recon.zsssl"``), or None for None."""
        obj = None if path is None else self
        for name in (path or "").split(".") if path else ():
            obj = getattr(obj, name)
        return obj

    def set(self, path: str, value) -> None:
        """Set the setting at dotted ``path`` (``"nn.max_epochs"``); unknown paths are KeyErrors."""
        *head, key = path.split(".")
        target = self.section(".".join(head)) if head else None
        if target is None or not dataclasses.is_dataclass(target) or key not in _names(target):
            raise KeyError(f"unknown setting {path}")
        setattr(target, key, value)

    def update(self, sections: dict, prefix: str = "") -> None:
        """Overwrite settings from a nested ``{section: {key: value}}`` mapping (TOML)."""
        for key, value in sections.items():
            path = f"{prefix}{key}"
            current = self.section(prefix.rstrip(".")) if prefix else self
            if isinstance(value, dict) and dataclasses.is_dataclass(getattr(current, key, None)):
                self.update(value, f"{path}.")
            elif not prefix:
                raise KeyError(f"unknown configuration section [{key}]")
            else:
                self.set(path, value)

    @classmethod
    def from_toml(cls, path: str | Path) -> "Config":
        config = cls()
        config.update(tomllib.loads(Path(path).read_text()))
        return config


def _names(obj) -> set[str]:
    return {f.name for f in fields(obj)}
