"""qDESS T2 from the FISP (S1) and PSIF (S2) echoes of a DESS acquisition (Sveinsson 2017)."""

from __future__ import annotations

from dataclasses import dataclass

from .names import QDESS
from .spec import CRB, Estimator, Output, register


@dataclass
class DESSSettings:
    """Options of the qDESS fit (config section ``dess``): the assumed T1 (s)."""

    t1: float = 1.2


def fit_qdess(series, protocol, *, b1=None, mask=None, t1=1.2, noise_sigma=None, **_):
    """T2 and R2 = 1/T2 (0 where undefined) from the two echoes on the last axis, and their
    Cramer-Rao SDs (``noise_sigma`` None: no noise measured, SD 0)."""
    import numpy as np

    from ..fit.qdess import fit_qdess as qdess
    from ..fit.uncertainty import dess_sd

    if series.shape[-1] != 2:
        raise ValueError(f"qDESS needs 2 echoes, got {series.shape[-1]} volumes")
    t2 = qdess(series[..., 0], series[..., 1], protocol, t1=t1, b1=b1, mask=mask)["t2"]
    sd = dess_sd(t2, series[..., 0], protocol, noise_sigma or 0.0, mask, t1=t1, b1=b1)
    return {"t2": t2, "r2": np.where(t2 > 0, 1.0 / np.where(t2 > 0, t2, 1.0), 0.0), **sd}


register(Estimator(
    kind="DESS", name=QDESS, default=True, takes_b1=True, core=f"{__name__}:fit_qdess", settings="dess",
    algorithm="qDESS: T2 = -2 (TR - TE) / (ln(|S2/S1| / k) + c1) from the FISP (S1) and PSIF (S2) "
              "echoes, k and c1 from the assumed T1, flip angle and spoiler diffusion term",
    citations=("sveinsson2017",), outputs=(
        Output("t2", "T2map"), Output("r2", "R2map"),
        Output("t2_sd", "T2map", desc="SD", description=CRB.format("T2") + "; the assumed T1 held fixed"),
        Output("r2_sd", "R2map", desc="SD", description=CRB.format("R2") + "; the assumed T1 held fixed"))))
