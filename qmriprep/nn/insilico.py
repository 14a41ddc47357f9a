"""Protocol-matched in-silico training data for the pc-bSSFP networks (seed 003).

Signals come from the one model :func:`qmriprep.physics.bssfp.bssfp_signal` and the features
from :func:`qmriprep.physics.bssfp.fourier_features` (phase removal, DFT over the phase cycles,
normalisation); nothing here re-derives the formula.

Parameter distributions (SI units, s; ``T1 < T2`` rejected in all of them):

``uniform``
    T1 ~ U[0.36, 2.08], T2 ~ U[0.02, 0.12] (brain tissue range of the seed, mean +- 2 SD).
``extended``
    T1 ~ U[0.36, 5.0], T2 ~ U[0.02, 2.5] (adds long, fluid-like relaxation times).
``invivo``
    What a 3 T brain holds, on the box T1 [0.3, 5.0], T2 [0.02, 2.5] (:data:`INVIVO_MIXTURE`):
    white matter 42 %, grey matter 33 %, CSF 5 %, each component an equal mixture of the two
    studies' tissue means with a 10 % (T1) / 12 % (T2) spread (regional variation, texture);
    WM T1/T2 1.084/0.069 s (Stanisz et al. 2005, MRM 54:507) and 0.832/0.0796 s (Wansapura et al.
    1999, JMRI 9:531), GM 1.820/0.099 s and 1.331/0.110 s (same), CSF 4.16/1.8 s (T1: Rooney et
    al. 2007, MRM 57:308; T2 as the phantom's). Partial volumes (10 % WM/GM, 5 % GM/CSF) mix the
    relaxation *rates* with a uniform fraction; 5 % is log-uniform over the whole box for support.
    Networks of the ``extended`` and ``invivo`` boxes estimate ``log T1``, ``log T2``
    (:data:`LOG_OUTPUTS`), so that the relative error counts in CSF as in white matter.
B1 ~ U[0.7, 1.3]; the off-resonance phase per TR ``theta ~ U[-0.9 pi, 0.9 pi]`` for complex
networks and 0 for magnitude networks. Optional noise (per batch, see :func:`add_noise`):
complex Gaussian on every phase-cycle image with ``sigma = 0.074 / (sqrt(2) SNR)`` (M0 = 1),
added before the features are formed. Samples are split 0.6 / 0.2 / 0.2 (train/val/test).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from ..bids.protocols import BSSFPProtocol
from ..physics.bssfp import bssfp_signal, normalise, remove_common_phase
from ..physics.bssfp import configurations as raw_configurations

DISTRIBUTIONS = ("uniform", "extended", "invivo")
#: (T1 low, T1 high), (T2 low, T2 high) of each distribution, s
BOUNDS = {
    "uniform": ((0.36, 2.08), (0.02, 0.12)),
    "extended": ((0.36, 5.0), (0.02, 2.5)),
    "invivo": ((0.3, 5.0), (0.02, 2.5)),
}
#: distributions whose networks estimate log T1, log T2 (boxes spanning more than a decade)
LOG_OUTPUTS = {"uniform": False, "extended": True, "invivo": True}
B1_RANGE = (0.7, 1.3)
THETA_MAX = 0.9 * math.pi
NOISE_SCALE = 0.074  # mean signal level the seed's SNR refers to (M0 = 1)
SPLIT = (0.6, 0.2, 0.2)
#: tissue -> (weight, [(T1, T2) of each study], (relative SD of T1, of T2)) of the ``invivo`` prior (s)
INVIVO_MIXTURE = {
    "WM": (0.42, [(1.084, 0.069), (0.832, 0.0796)], (0.10, 0.12)),
    "GM": (0.33, [(1.820, 0.099), (1.331, 0.110)], (0.10, 0.12)),
    "CSF": (0.05, [(4.16, 1.8)], (0.08, 0.12)),
}
#: partial-volume pairs of the ``invivo`` prior and their weights; the rest is log-uniform
INVIVO_PARTIAL = ((("WM", "GM"), 0.10), (("GM", "CSF"), 0.05))


@dataclass(frozen=True)
class Protocol:
    """bSSFP protocol in SI units: flip angle (rad), TR and TE (s), RF phase increments (rad)."""

    flip_angle: float
    tr: float
    te: float
    phase_increments: tuple[float, ...]

    def __post_init__(self):
        object.__setattr__(self, "phase_increments", tuple(float(p) for p in self.phase_increments))
        if not (0 < self.flip_angle < math.pi and self.tr > 0 and 0 <= self.te <= self.tr
                and len(self.phase_increments) >= 3):
            raise ValueError(f"invalid bSSFP protocol (need 0 < FA < pi, TR > 0, 0 <= TE <= TR, "
                             f">= 3 phase cycles): {self}")

    @property
    def n_cycles(self) -> int:
        return len(self.phase_increments)

    def rounded(self, digits: int = 6) -> dict:
        """JSON-friendly dict, rounded so equal protocols from different sidecars compare equal."""
        return {"flip_angle": round(self.flip_angle, digits), "tr": round(self.tr, digits + 3),
                "te": round(self.te, digits + 3),
                "phase_increments": [round(math.remainder(p, 2 * math.pi), digits)
                                     for p in self.phase_increments]}

    def as_dict(self) -> dict:
        return {"flip_angle": self.flip_angle, "tr": self.tr, "te": self.te,
                "phase_increments": list(self.phase_increments)}


def seed_phase_increments(n_cycles: int) -> tuple[float, ...]:
    """The seed's phase-cycle grid ``phi_j = pi (2j - 1) / N``, j = 1..N."""
    return tuple(math.pi * (2 * j - 1) / n_cycles for j in range(1, n_cycles + 1))


def seed_protocol(n_cycles: int = 12) -> Protocol:
    """The seed's 3 T protocol: TR 4.8 ms, TE 2.4 ms, FA 15 deg on the seed phase grid."""
    return Protocol(math.radians(15.0), 4.8e-3, 2.4e-3, seed_phase_increments(n_cycles))


def as_protocol(obj) -> Protocol:
    """A :class:`Protocol` from itself, a mapping, or an object such as
    :class:`qmriprep.bids.protocols.BSSFPProtocol` (whose ``te`` resolves a missing echo time)."""
    if isinstance(obj, Protocol):
        return obj
    if isinstance(obj, Mapping):
        obj = BSSFPProtocol(tuple(obj["phase_increments"]), float(obj["tr"]), float(obj["flip_angle"]),
                            obj.get("te", obj.get("echo_time")))
    return Protocol(float(obj.flip_angle), float(obj.tr), float(obj.te), tuple(obj.phase_increments))


def _tissue(name: str, m: int, g) -> tuple[torch.Tensor, torch.Tensor]:
    """``m`` (T1, T2) draws of one :data:`INVIVO_MIXTURE` tissue: a study picked at random, then
    a log-normal spread around its means."""
    _, studies, (r1, r2) = INVIVO_MIXTURE[name]
    means = torch.tensor(studies, dtype=torch.float64)[torch.randint(len(studies), (m,), generator=g)]
    return (means[:, 0] * torch.exp(r1 * torch.randn(m, generator=g, dtype=torch.float64)),
            means[:, 1] * torch.exp(r2 * torch.randn(m, generator=g, dtype=torch.float64)))


def _invivo(m: int, box, g) -> tuple[torch.Tensor, torch.Tensor]:
    """``m`` draws of the ``invivo`` prior (before the box is enforced)."""
    (t1lo, t1hi), (t2lo, t2hi) = box
    names = list(INVIVO_MIXTURE)
    weights = [w for w, *_ in INVIVO_MIXTURE.values()] + [w for _, w in INVIVO_PARTIAL]
    comp = torch.multinomial(torch.tensor(weights + [1 - sum(weights)]), m, replacement=True, generator=g)
    t1 = torch.exp(math.log(t1lo) + math.log(t1hi / t1lo) * torch.rand(m, generator=g, dtype=torch.float64))
    t2 = torch.exp(math.log(t2lo) + math.log(t2hi / t2lo) * torch.rand(m, generator=g, dtype=torch.float64))
    for k, name in enumerate(names):
        sel = comp == k
        t1[sel], t2[sel] = _tissue(name, int(sel.sum()), g)
    for k, ((a, b), _) in enumerate(INVIVO_PARTIAL, start=len(names)):
        sel, n = comp == k, int((comp == k).sum())
        (a1, a2), (b1, b2) = _tissue(a, n, g), _tissue(b, n, g)
        f = torch.rand(n, generator=g, dtype=torch.float64)
        t1[sel], t2[sel] = 1 / (f / a1 + (1 - f) / b1), 1 / (f / a2 + (1 - f) / b2)
    return t1, t2


def sample_parameters(n: int, distribution: str = "uniform", *, complex_net: bool = False,
                      generator: torch.Generator | None = None, dtype=torch.float32) -> dict:
    """``n`` draws of ``t1, t2, b1, theta`` (1-D tensors) from a named distribution."""
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"unknown distribution {distribution!r}; choose one of {DISTRIBUTIONS}")
    (t1lo, t1hi), (t2lo, t2hi) = BOUNDS[distribution]
    g = generator

    def uni(m, lo, hi):
        return lo + (hi - lo) * torch.rand(m, generator=g, dtype=torch.float64)

    t1s, t2s, have = [], [], 0
    while have < n:
        m = 2 * (n - have) + 16
        if distribution == "invivo":
            t1, t2 = _invivo(m, BOUNDS[distribution], g)
        else:
            t1, t2 = uni(m, t1lo, t1hi), uni(m, t2lo, t2hi)
        ok = (t1 > t2) & (t1 >= t1lo) & (t1 <= t1hi) & (t2 >= t2lo) & (t2 <= t2hi)
        t1s.append(t1[ok]), t2s.append(t2[ok])
        have += int(ok.sum())
    t1, t2 = torch.cat(t1s)[:n], torch.cat(t2s)[:n]
    b1 = uni(n, *B1_RANGE)
    theta = uni(n, -THETA_MAX, THETA_MAX) if complex_net else torch.zeros(n, dtype=torch.float64)
    return {k: v.to(dtype) for k, v in dict(t1=t1, t2=t2, b1=b1, theta=theta).items()}


def simulate(protocol, t1, t2, b1, theta) -> torch.Tensor:
    """Complex phase-cycle signals ``(..., n_cycles)`` (M0 = 1) of the protocol."""
    p = as_protocol(protocol)
    t1 = torch.as_tensor(t1)
    return bssfp_signal(t1, t2, b1, theta, p)


def noise_sigma(snr: float | None) -> float:
    """Per-component noise SD ``0.074 / (sqrt(2) SNR)``; 0 for ``snr`` None or inf."""
    return 0.0 if snr is None or math.isinf(snr) else NOISE_SCALE / (math.sqrt(2) * snr)


def signal_level(protocol, n: int = 20_000, seed: int = 0) -> float:
    """Median over the ``invivo`` prior (a brain's T1, T2, B1+ and off-resonance) of the
    configurations' norm ``sqrt(|F-1|^2 + |F0|^2 + |F+1|^2)`` at M0 = 1: the level a series'
    median norm in the brain (the scale the pipeline normalises by) corresponds to. The norm does
    not depend on off-resonance, which moves the level of single phase cycles by bands; the
    ``invivo`` prior stands for the data whatever prior a network is trained on."""
    prm = sample_parameters(n, "invivo", complex_net=True, generator=torch.Generator().manual_seed(seed),
                            dtype=torch.float64)
    feats = _raw_configurations(protocol, simulate(protocol, prm["t1"], prm["t2"], prm["b1"], prm["theta"]))
    return float(torch.sqrt((feats.abs() ** 2).sum(-1)).median())


def matched_snr(sigma: float, level: float, protocol) -> float:
    """The series' SNR in the seed's definition, ``0.074 M0 / (sqrt(2) sigma)``, with ``M0`` the
    series' median configuration norm in the brain ``level`` (signal units) over
    :func:`signal_level`; ``sigma``: noise SD per real channel (signal units)."""
    m0 = level / signal_level(protocol)
    return NOISE_SCALE * m0 / (math.sqrt(2) * sigma) if sigma > 0 else math.inf


def snap_snr(snr: float) -> float | None:
    """``snr`` rounded to the grid ``2^(k/4)`` (3 significant digits; None for inf or > 1000):
    networks are trained, cached and shipped for these levels (at most 9 % away)."""
    if not math.isfinite(snr) or snr > 1000:
        return None
    return float(f"{2 ** (round(4 * math.log2(max(snr, 1.0))) / 4):.3g}")


def add_noise(signal: torch.Tensor, snr: float | None, generator: torch.Generator | None = None):
    """Complex Gaussian noise on every phase-cycle image (real and imaginary SD ``noise_sigma``)."""
    sigma = noise_sigma(snr)
    if sigma == 0:
        return signal
    real = torch.randn(signal.shape, generator=generator, dtype=signal.real.dtype)
    imag = torch.randn(signal.shape, generator=generator, dtype=signal.real.dtype)
    return signal + sigma * torch.complex(real, imag)


def _raw_configurations(protocol, signal: torch.Tensor) -> torch.Tensor:
    """``(F-1, F0, F+1)`` of the signals before the per-voxel normalisation."""
    phi = torch.tensor(as_protocol(protocol).phase_increments, dtype=torch.float64, device=signal.device)
    return raw_configurations(remove_common_phase(signal), phi)


def configurations(protocol, signal: torch.Tensor) -> torch.Tensor:
    """Normalised ``(F-1, F0, F+1)`` of the signals (the physics module's pipeline)."""
    return normalise(_raw_configurations(protocol, torch.as_tensor(signal)))


@dataclass
class InSilicoData:
    """Simulated samples: parameters, complex signals and (noise-free) configurations, split."""

    protocol: Protocol
    params: dict
    signal: torch.Tensor          # (n, n_cycles) complex, noise-free
    configurations: torch.Tensor  # (n, 3) complex, noise-free
    split: dict                   # name -> index tensor

    def subset(self, name: str) -> dict:
        idx = self.split[name]
        return {"params": {k: v[idx] for k, v in self.params.items()}, "signal": self.signal[idx],
                "configurations": self.configurations[idx]}


def make_dataset(protocol, n_samples: int = 400_000, *, distribution: str = "uniform",
                 complex_net: bool = False, seed: int = 0, split: Sequence[float] = SPLIT,
                 dtype=torch.float32) -> InSilicoData:
    """Draw, simulate and split ``n_samples`` in-silico samples (deterministic given ``seed``)."""
    p = as_protocol(protocol)
    g = torch.Generator().manual_seed(int(seed))
    params = sample_parameters(n_samples, distribution, complex_net=complex_net, generator=g,
                               dtype=dtype)
    signal = simulate(p, params["t1"], params["t2"], params["b1"], params["theta"])
    perm = torch.randperm(n_samples, generator=g)
    n_train = int(round(split[0] * n_samples))
    n_val = int(round(split[1] * n_samples))
    parts = {"train": perm[:n_train], "val": perm[n_train:n_train + n_val],
             "test": perm[n_train + n_val:]}
    return InSilicoData(p, params, signal, configurations(p, signal), parts)


def grid_parameters(n: int = 200, distribution: str = "uniform", dtype=torch.float32) -> dict:
    """The seed's ``n x n`` linear (T1, T2) test grid at B1 = 1, theta = 0 (T1 < T2 dropped)."""
    (t1lo, t1hi), (t2lo, t2hi) = BOUNDS[distribution]
    t1, t2 = torch.meshgrid(torch.linspace(t1lo, t1hi, n, dtype=torch.float64),
                            torch.linspace(t2lo, t2hi, n, dtype=torch.float64), indexing="ij")
    ok = t1 > t2
    t1, t2 = t1[ok], t2[ok]
    return {k: v.to(dtype) for k, v in dict(t1=t1, t2=t2, b1=torch.ones_like(t1),
                                            theta=torch.zeros_like(t1)).items()}


# --- in-silico validation (the seed's test sets) -------------------------------------------------

#: white matter at 3 T used for the seed's off-resonance sweep (s)
WM_T1, WM_T2 = 0.939, 0.062


def cod(pred, true) -> float:
    """Coefficient of determination ``1 - sum (p - t)^2 / sum (t - mean t)^2``."""
    pred, true = torch.as_tensor(pred, dtype=torch.float64), torch.as_tensor(true, dtype=torch.float64)
    return float(1 - ((pred - true) ** 2).sum() / ((true - true.mean()) ** 2).sum())


def grid_cod(model, n: int = 200, *, snr: float | None = None, seed: int = 0) -> dict:
    """CoD of T1 and T2 of ``model.predict`` on the ``n x n`` grid (B1 1, theta 0), optionally
    with one noise draw at ``snr``."""
    p = as_protocol(model.protocol)
    g = grid_parameters(n)
    sig = simulate(p, g["t1"], g["t2"], g["b1"], g["theta"])
    if snr:
        sig = add_noise(sig, snr, torch.Generator().manual_seed(seed))
    out = model.predict(configurations(p, sig), g["b1"])
    return {"t1": cod(out["t1"], g["t1"]), "t2": cod(out["t2"], g["t2"])}


def offresonance_sweep(protocol, n: int = 181, t1: float = WM_T1, t2: float = WM_T2) -> dict:
    """Parameters and configurations of the sweep ``theta in [-0.9 pi, 0.9 pi]`` at fixed T1, T2."""
    p = as_protocol(protocol)
    theta = torch.linspace(-THETA_MAX, THETA_MAX, n, dtype=torch.float64)
    t1s, t2s, b1 = torch.full_like(theta, t1), torch.full_like(theta, t2), torch.ones_like(theta)
    return {"t1": t1s, "t2": t2s, "b1": b1, "theta": theta,
            "configurations": configurations(p, simulate(p, t1s, t2s, b1, theta))}


def sweep_errors(model, n: int = 181, t1: float = WM_T1, t2: float = WM_T2) -> dict:
    """Largest relative errors of T1 and T2 over the off-resonance sweep (fractions)."""
    s = offresonance_sweep(model.protocol, n, t1, t2)
    out = model.predict(s["configurations"], s["b1"])
    return {"t1": float(abs(out["t1"] / t1 - 1).max()), "t2": float(abs(out["t2"] / t2 - 1).max())}
