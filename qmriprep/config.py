"""One settings object for a run, in sections, saved as TOML next to every run.

``Config`` is a plain dataclass tree (no module-level global state): the CLI fills it, workflows
read it, and ``Config.to_toml``/``Config.from_toml`` make a run reproducible with
``--config-file``.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import tomli_w

#: estimators available per collection kind; the first is the default
ESTIMATORS = {
    "mese": ("varpro", "nlls", "loglinear"),
    "megre": ("varpro", "nlls", "loglinear"),
    "vfa": ("nlls", "linear"),
    "bssfp": ("miracle", "svnn", "pinn", "svnncomplex", "pinncomplex"),
    "dess": ("qdess",),
}
DEFAULT_ESTIMATORS = {kind: [methods[0]] for kind, methods in ESTIMATORS.items()}
DEFAULT_ESTIMATORS["bssfp"] = list(ESTIMATORS["bssfp"])  # the seed's comparison, side by side


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
    """Scientific choices: estimators and their options."""

    estimators: dict = field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_ESTIMATORS.items()})
    drop_first_echo: bool = False
    fit_offset: bool = False
    b1_source: str = "auto"
    b1_registration: str = "rigid"
    b1_fwhm_mm: float = 8.0
    align_series: str = "auto"
    strict: bool = False
    bssfp_gibbs: bool = False
    b1_median_mm: float = 0.0
    device: str = "cpu"
    nn_samples: int = 0
    nn_max_epochs: int = 0
    nn_distribution: str = "uniform"
    nn_snr: float = 0.0
    nn_cache_dir: str = ""
    retrain: bool = False
    dess_t1: float = 1.2
    recon: list = field(default_factory=lambda: ["zsssl", "cgsense"])
    recon_preset: str = "fast"
    recon_unrolls: int = 0
    recon_features: int = 0
    recon_blocks: int = 0
    recon_cg_iter: int = 0
    recon_max_epochs: int = 0
    recon_patience: int = 0
    recon_steps: int = 0
    recon_mel: bool = True
    recon_init: str = ""


@dataclass
class Nipype:
    """Execution resources."""

    nprocs: int = 1
    omp_nthreads: int = 1
    mem_gb: float = 0.0
    plugin: str = "MultiProc"


@dataclass
class Seeds:
    """Random seeds, recorded so that a run can be repeated exactly."""

    random_seed: int = 0


@dataclass
class Config:
    """All settings of one run."""

    execution: Execution = field(default_factory=Execution)
    workflow: Workflow = field(default_factory=Workflow)
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

    def update(self, sections: dict) -> None:
        """Overwrite fields from a ``{section: {key: value}}`` mapping (unknown keys are errors)."""
        for name, values in sections.items():
            section = getattr(self, name, None)
            if section is None or not isinstance(values, dict):
                raise KeyError(f"unknown configuration section [{name}]")
            known = {f.name for f in fields(section)}
            for key, value in values.items():
                if key not in known:
                    raise KeyError(f"unknown setting {name}.{key}")
                setattr(section, key, value)

    @classmethod
    def from_toml(cls, path: str | Path) -> "Config":
        config = cls()
        config.update(tomllib.loads(Path(path).read_text()))
        return config
