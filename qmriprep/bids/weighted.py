"""Clinical weighted images (T1w MPRAGE, T2w TSE, optional FLAIR) and their protocols (seed 002).

A *weighted* collection is one ``T1w`` image with the ``T2w`` (and ``FLAIR``) image sharing its
entities (``acq-`` aside) in the same ``anat`` folder. Its protocol (SI) comes from the sidecars:

- T1w (MPRAGE, :class:`~qmriprep.physics.mprage.MPRAGEProtocol`): ``RepetitionTimePreparation``
  (inversion to inversion), ``InversionTime`` (inversion to the centre of k-space),
  ``RepetitionTimeExcitation`` (readout pulse spacing), ``FlipAngle`` (deg), the readout pulses
  per inversion (:func:`mprage_pulses`: ``NumberShots`` as for MP2RAGE, else ``EchoTrainLength``;
  linear ordering); a converter's plain
  ``RepetitionTime`` stands in for the one of the two repetition times it is, by its size
  (:func:`scanner_repetition_time`);
- T2w (TSE, :class:`~qmriprep.physics.tse.TSEProtocol`): ``RepetitionTimeExcitation`` or
  ``RepetitionTime``, ``EchoTime`` (effective), ``EchoTrainLength``, and ``EchoSpacing`` (s, not a
  BIDS field; when absent ``2 EchoTime / EchoTrainLength``, i.e. linear ordering);
- FLAIR (inversion-recovery TSE, :class:`~qmriprep.physics.tse.FLAIRProtocol`): the TSE fields and
  ``InversionTime``. Optional: a FLAIR whose sidecar lacks a field is left out of the set with a
  warning (a model trained with FLAIR then refuses the subject, naming the field).

Label maps of training subjects (``T1map``, ``T2map``, ``M0map``) are found in a BIDS derivatives
folder and resampled (trilinear, nibabel) to the weighted grid.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..physics.mprage import MPRAGEProtocol
from ..physics.tse import FLAIRProtocol, TSEProtocol
from .names import parse_name
from .sidecars import Sidecar, relpath, resolve_sidecar, sidecar_name

LOGGER = logging.getLogger("qmriprep")
CONTRASTS = ("T1w", "T2w", "FLAIR")
LABEL_SUFFIXES = ("T1map", "T2map", "M0map")
#: sidecar field of each protocol field (messages about a protocol that does not match a model)
FIELDS = {"mprage": {"tr_prep": "RepetitionTimePreparation", "inversion_time": "InversionTime",
                     "tr": "RepetitionTimeExcitation", "flip_angle": "FlipAngle (rad)",
                     "n_readout": "readout pulses (NumberShots)", "inversion_efficiency": "inversion efficiency"},
          "tse": {"tr": "RepetitionTime", "echo_time": "EchoTime", "echo_train_length": "EchoTrainLength",
                  "echo_spacing": "EchoSpacing"}}
FIELDS["flair"] = {**FIELDS["tse"], "inversion_time": "InversionTime"}
#: protocol part of each contrast
PARTS = {"mprage": "T1w", "tse": "T2w", "flair": "FLAIR"}


@dataclass(frozen=True)
class WeightedProtocol:
    """The MPRAGE, TSE and (optional) FLAIR protocols of a weighted collection (dicts are accepted
    and converted)."""

    mprage: MPRAGEProtocol
    tse: TSEProtocol
    flair: FLAIRProtocol | None = None

    def __post_init__(self):
        for name, cls in (("mprage", MPRAGEProtocol), ("tse", TSEProtocol), ("flair", FLAIRProtocol)):
            value = getattr(self, name)
            if isinstance(value, dict):
                object.__setattr__(self, name, cls(**value))

    @property
    def n_points(self) -> int:
        """Images of the collection (each file one volume)."""
        return 2 if self.flair is None else 3

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def mismatch(self, other: WeightedProtocol, rtol: float = 1e-3) -> tuple[str, str] | None:
        """``("T1w", "T1w RepetitionTimePreparation is 2.3, the model assumes 1.9")``: the contrast and
        text of the first field differing from ``other`` by more than ``rtol`` (or of a FLAIR
        ``other`` has and this lacks), or None. A FLAIR only this collection has is not compared."""
        for part, contrast in PARTS.items():
            if getattr(other, part) is None:
                continue
            if getattr(self, part) is None:
                return "T1w", f"no {contrast} image (the model assumes one)"
            mine, theirs = dataclasses.asdict(getattr(self, part)), dataclasses.asdict(getattr(other, part))
            for key, value in mine.items():
                if not math.isclose(value, theirs[key], rel_tol=rtol):
                    return contrast, f"{contrast} {FIELDS[part][key]} is {value:g}, the model assumes {theirs[key]:g}"
        return None

    def check_matches(self, reference: WeightedProtocol, files, context: str) -> None:
        """An InputError ``"<image>: <context>: <mismatch>"`` naming the image (of ``files``: T1w,
        T2w[, FLAIR]) whose protocol differs from ``reference``; nothing when they match."""
        found = self.mismatch(reference)
        if found:
            image = next((f for f in files if parse_name(f).suffix == found[0]), files[0])
            raise InputError(image, f"{context}: {found[1]}")

    def describe(self) -> str:
        m, t = self.mprage, self.tse
        return (f"MPRAGE TR_prep/TI/TR = {1e3 * m.tr_prep:.0f}/{1e3 * m.inversion_time:.0f}/"
                f"{1e3 * m.tr:.1f} ms, {math.degrees(m.flip_angle):.3g} deg, {m.n_readout} pulses; "
                f"TSE TR/TE = {1e3 * t.tr:.0f}/{1e3 * t.echo_time:.0f} ms, ETL {t.echo_train_length}"
                + ("" if (f := self.flair) is None else
                   f"; FLAIR TR/TI/TE = {1e3 * f.tr:.0f}/{1e3 * f.inversion_time:.0f}/"
                   f"{1e3 * f.echo_time:.0f} ms, ETL {f.echo_train_length}"))

    def without_flair(self) -> WeightedProtocol:
        return dataclasses.replace(self, flair=None)


#: fewer readout pulses per inversion than an MPRAGE has (an ``EchoTrainLength`` below is DICOM's echoes)
MIN_MPRAGE_PULSES = 16
#: how to supply a field a scanner did not write
INHERIT_HINT = ("add it to the sidecar, or once to a dataset-level {suffix}.json, which BIDS inheritance "
                "applies to every subject")


def _number(sc: Sidecar, key: str, what: str, *, integer=False, fallback: str | None = None,
            note: str = "") -> float:
    v = sc.values.get(key, sc.values.get(fallback) if fallback else None)
    if v is None:
        hint = INHERIT_HINT.format(suffix=parse_name(sc.name).suffix)
        note = f"; {note}" if note else ""
        raise InputError(sc.name, f"{key} is missing (the {what} model of --hybrid-model needs it{note}); {hint}")
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 or not math.isfinite(v):
        raise InputError(sc.where(key), f"{key} = {v!r} must be a positive number")
    if integer and int(v) != v:
        raise InputError(sc.where(key), f"{key} = {v!r} must be a whole number")
    return float(v)


def scanner_repetition_time(sc: Sidecar) -> tuple[str, str] | None:
    """``(BIDS field, note)`` that an MPRAGE sidecar's plain ``RepetitionTime`` stands for when the
    BIDS field is absent, or None. Converters copy DICOM (0018,0080), whose meaning for an MPRAGE
    depends on the vendor: longer than ``InversionTime`` it is the inversion-to-inversion time
    (Siemens; dcm2niix), shorter it is the readout pulse spacing (GE, Philips)."""
    tr, ti = sc.values.get("RepetitionTime"), sc.values.get("InversionTime")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in (tr, ti)):
        return None
    field = "RepetitionTimePreparation" if tr > ti else "RepetitionTimeExcitation"
    if field in sc.values:
        return None
    return field, f"RepetitionTime {tr:g} s was read as {field}, being {'longer' if tr > ti else 'shorter'} " \
                   f"than InversionTime {ti:g} s"


def mprage_pulses(sc: Sidecar) -> int:
    """Readout pulses per inversion of an MPRAGE: BIDS ``NumberShots`` (as for MP2RAGE; a number, or
    ``[before, after]`` the centre of k-space, which must be linear ordering: ``before = n // 2``),
    else ``EchoTrainLength`` when it is at least :data:`MIN_MPRAGE_PULSES` (converters copy DICOM's
    echoes per excitation there, 1 for a gradient-echo readout)."""
    shots = sc.values.get("NumberShots")
    if isinstance(shots, list) and len(shots) == 2 and all(isinstance(v, int) and v >= 0 for v in shots):
        n = sum(shots)
        if n < 1 or shots[0] != n // 2:
            raise InputError(sc.where("NumberShots"), f"NumberShots = {shots} (pulses before and after the "
                             "centre of k-space): the MPRAGE model assumes linear ordering, "
                             f"[{n // 2}, {n - n // 2}]")
        return n
    if shots is not None:
        return int(_number(sc, "NumberShots", "MPRAGE", integer=True))
    n = int(_number(sc, "EchoTrainLength", "MPRAGE", integer=True,
                    note="or NumberShots, the readout pulses per inversion"))
    if n < MIN_MPRAGE_PULSES:
        raise InputError(sc.where("EchoTrainLength"), f"EchoTrainLength = {n} cannot be the readout pulses per "
                         "inversion of an MPRAGE (converters write the echoes per excitation there); give "
                         f"NumberShots (BIDS), the readout pulses per inversion; "
                         + INHERIT_HINT.format(suffix="T1w"))
    return n


def mprage_protocol(sc: Sidecar) -> MPRAGEProtocol:
    """The MPRAGE protocol of a T1w sidecar (SI); an InputError naming the field otherwise. A plain
    ``RepetitionTime`` stands in for one of the two BIDS repetition times
    (:func:`scanner_repetition_time`; logged)."""
    f = lambda key, **kw: _number(sc, key, "MPRAGE", **kw)  # noqa: E731
    scanner = scanner_repetition_time(sc)
    tr_kw = {k: {"fallback": "RepetitionTime" if scanner and scanner[0] == k else None,
                 "note": scanner[1] if scanner else ""}
             for k in ("RepetitionTimePreparation", "RepetitionTimeExcitation")}
    fields = dict(tr_prep=f("RepetitionTimePreparation", **tr_kw["RepetitionTimePreparation"]),
                  inversion_time=f("InversionTime"),
                  tr=f("RepetitionTimeExcitation", **tr_kw["RepetitionTimeExcitation"]),
                  flip_angle=math.radians(f("FlipAngle")), n_readout=mprage_pulses(sc))
    if scanner:
        LOGGER.info("%s: %s", sc.name, scanner[1])
    try:
        return MPRAGEProtocol(**fields)
    except ValueError as err:
        raise InputError(sc.name, f"{err}" + (f" ({scanner[1]})" if scanner else "")) from None


def tse_protocol(sc: Sidecar, flair: bool = False) -> TSEProtocol:
    """The TSE protocol of a T2w sidecar (the FLAIR protocol of a FLAIR sidecar with ``flair``)
    (SI); an InputError naming the field otherwise."""
    f = lambda key, **kw: _number(sc, key, "FLAIR" if flair else "TSE", **kw)  # noqa: E731
    te, etl = f("EchoTime"), int(f("EchoTrainLength", integer=True))
    fields = dict(tr=f("RepetitionTimeExcitation", fallback="RepetitionTime"), echo_time=te,
                  echo_train_length=etl,
                  echo_spacing=f("EchoSpacing") if "EchoSpacing" in sc.values else 2 * te / etl)
    try:
        return FLAIRProtocol(**fields, inversion_time=f("InversionTime")) if flair else TSEProtocol(**fields)
    except ValueError as err:
        raise InputError(sc.name, str(err)) from None


def find_weighted(root: str | Path, subject: str, session: str | None = None) -> list[dict]:
    """The weighted sets of a subject: ``{"files": (T1w, T2w[, FLAIR]), "protocol", "entities",
    "session"}``, one per T1w image with a matching T2w (a T1w without one is logged and skipped)."""
    root = Path(root)
    out = []
    for t1w in sorted((root / f"sub-{subject}").rglob(f"sub-{subject}*_T1w.nii*")):
        name = parse_name(t1w)
        if session is not None and name.entities.get("ses") != session:
            continue
        others = [_partner(t1w, name, s) for s in CONTRASTS[1:]]
        if others[0] is None:
            LOGGER.warning("%s: no T2w image with the same entities; not used by --hybrid-model",
                           relpath(t1w, root))
            continue
        scs = [_sidecar(root, p) for p in (t1w, others[0])]
        protocol = WeightedProtocol(mprage_protocol(scs[0]), tse_protocol(scs[1]),
                                    _flair_protocol(root, others[1]))
        out.append({"files": (t1w, others[0]) + ((others[1],) if protocol.flair else ()),
                    "entities": {k: v for k, v in name.entities.items() if k != "sub"},
                    "session": name.entities.get("ses"), "protocol": protocol})
    return out


def _flair_protocol(root: Path, flair: Path | None) -> FLAIRProtocol | None:
    """The FLAIR protocol, or None without a FLAIR or with a sidecar lacking a field (warned)."""
    if flair is None:
        return None
    try:
        return tse_protocol(_sidecar(root, flair), flair=True)
    except InputError as err:
        LOGGER.warning("%s; the FLAIR image is not used", err)
        return None


def _sidecar(root: Path, image: Path) -> Sidecar:
    values, origins = resolve_sidecar(root, image)
    return Sidecar(sidecar_name(image, root), values, {}, origins)


def _partner(t1w: Path, name, suffix: str) -> Path | None:
    """The image of ``suffix`` beside ``t1w`` with the same entities (any ``acq-``)."""
    want = {k: v for k, v in name.entities.items() if k != "acq"}
    for p in sorted(t1w.parent.glob(f"*_{suffix}.nii*")):
        if {k: v for k, v in parse_name(p).entities.items() if k != "acq"} == want:
            return p
    return None


def find_labels(deriv_dir: str | Path, subject: str, session: str | None = None) -> dict | None:
    """``{suffix: path}`` of the T1map, T2map, M0map of a subject in a derivatives folder (the
    first in name order when several ``desc-`` exist; never an SD map, ``desc-<est>SD`` as
    qmriprep writes them beside its maps), or None when any is missing."""
    base = Path(deriv_dir) / f"sub-{subject}"
    found = {}
    for suffix in LABEL_SUFFIXES:
        hits = sorted(p for p in base.rglob(f"sub-{subject}*_{suffix}.nii*")
                      if (session is None or parse_name(p).entities.get("ses") == session)
                      and not parse_name(p).entities.get("desc", "").endswith("SD"))
        if not hits:
            return None
        found[suffix] = hits[0]
    return found
