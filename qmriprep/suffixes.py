"""What each derivative suffix qmriprep writes is: its sidecar units, how it is shown, where it goes.

The one table of map suffixes. Sidecars (``Units``), the report (section order, display range and
colormap, the unit assumed when a sidecar gives none) and the group table (which suffixes it
summarises) all read it. Display ranges are in SI units (s, 1/s, B1+ as a fraction).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Suffix:
    """One derivative suffix: BIDS sidecar ``Units``, fixed display range (or robust), colormap
    (``None``: from the data, diverging for signed maps), whether the group table summarises it
    and whether it has a fixed place in the report's section order."""

    units: str
    display: tuple[float, float] | None = None
    cmap: str | None = "viridis"
    group: bool = True
    ranked: bool = True


#: every map suffix; the ranked ones in report order (all others follow alphabetically)
SUFFIXES: dict[str, Suffix] = {
    "T1map": Suffix("s", (0.0, 3.0)),
    "R1map": Suffix("1/s", (0.0, 2.0)),
    "T2map": Suffix("s", (0.0, 0.2)),
    "R2map": Suffix("1/s", (0.0, 40.0)),
    "T2starmap": Suffix("s", (0.0, 0.12)),
    "R2starmap": Suffix("1/s", (0.0, 60.0)),
    "M0map": Suffix("arbitrary", None, "gray"),
    "PDmap": Suffix("arbitrary", None, "gray", group=False),
    "S0map": Suffix("arbitrary", None, "gray", group=False),
    "TB1map": Suffix("percent", (0.6, 1.4), "coolwarm"),
    "RB1map": Suffix("percent", (0.6, 1.4), "coolwarm", group=False),
    "fieldmap": Suffix("Hz", None, None, group=False, ranked=False),
}

#: fit-quality maps, named ``desc-<estimator><key>_<suffix of the fitted map>`` (BIDS has no
#: suffix for them): root-mean-square residual (signal units) and, for MRF, the normalised inner
#: product of the data with the matched atom (1 = perfect)
QUALITY: dict[str, Suffix] = {
    "RMSE": Suffix("arbitrary", None, "magma", group=False, ranked=False),
    "Match": Suffix("1", (0.9, 1.0), "magma", group=False, ranked=False),
}
#: what each :data:`QUALITY` map is (sidecar ``Description``)
QUALITY_TEXT = {"RMSE": "root-mean-square residual (signal units)",
                "Match": "normalised inner product of the data with the matched dictionary atom"}


def units(suffix: str, desc: str = "") -> str:
    """Sidecar ``Units`` of ``suffix`` (``arbitrary`` for suffixes without physical units); a
    ``desc`` ending in a :data:`QUALITY` key gives that quality map's units."""
    spec = next((q for key, q in QUALITY.items() if desc.endswith(key)), SUFFIXES.get(suffix))
    return spec.units if spec else "arbitrary"


def group_suffixes() -> tuple[str, ...]:
    """Suffixes the group table summarises, in report order."""
    return tuple(s for s, spec in SUFFIXES.items() if spec.group)


def report_order() -> tuple[str, ...]:
    """Suffixes with a fixed place in the report, in that order."""
    return tuple(s for s, spec in SUFFIXES.items() if spec.ranked)
