"""What a subject has, with what protocol, what corrects what, and why.

A *collection* is the set of images one estimator needs: the echoes of a MESE or MEGRE series,
the flip angles of a VFA series, the two images of a B1+ map (DAM, AFI, TFL) or a ready-made
TB1map, the parts of a phase-cycled bSSFP, the two DESS echoes, or the raw k-space files under
``sourcedata/kspace/``. Images group by suffix and by every entity except the one that walks
the series (``echo-``, ``flip-``, ``part-``, and for TB1AFI/TB1TFL the ``acq-`` role
``tr1``/``tr2`` or ``anat``/``famp``): a different ``acq-``, ``run-``, ``rec-`` or ``ses-``
makes a separate collection. Every decision is written in :attr:`Collection.reason`, which the report shows.

File discovery uses pybids (``BIDSLayout(validate=False)`` indexes every suffix, including
bSSFP and DESS, and ``get_metadata`` applies sidecar inheritance). A layout built with
``validate=True`` (checked with pybids 0.22) drops what the BIDS schema does not allow: bSSFP,
DESS, and a single 4-D MESE/MEGRE file without ``echo-``; no layout indexes ``sourcedata/``.
Such files are found by globbing the subject folder, their entities parsed with
``bids.layout.parse_file_entities`` and their metadata resolved by
:func:`qmriprep.bids.sidecars.resolve_sidecar` (same inheritance rules).

Opening the dataset and filters live in :mod:`.layout` (``load_layout`` and ``list_subjects``
stay importable from here), the :class:`~.collection.Collection` record in :mod:`.collection`;
which B1+ map corrects what is decided once, in :mod:`.plan`.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from ..errors import InputError
from . import metadata as md
from .collection import NOT_GROUPING, SERIES_ENTITY, Collection, ordered, series_index
from .kspace import kspace_collections
from .layout import SHORT, check_filters, list_subjects, load_layout, passes, strip_prefix
from .sidecars import Sidecar, relpath, resolve_sidecar, sidecar_name

LOGGER = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".nii.gz", ".nii")
#: ``acq-`` labels (label or its ending) that mark the two images of AFI and TFL, in order
ACQ_ROLES = {"TB1AFI": ("tr1", "tr2"), "TB1TFL": ("anat", "famp")}
BSSFP_PARTS = ("mag", "phase", "real", "imag")
#: kinds whose ``part-phase`` images ride along with the magnitude series
PHASE_KINDS = frozenset({"MESE", "MEGRE", "VFA", "DESS"})
# ---------------------------------------------------------------------------- discovery
def find_collections(bids_dir_or_layout, subject: str, *, session: str | None = None,
                     bids_filters: dict | None = None) -> list[Collection]:
    """Every qMRI collection of ``subject`` (optionally one ``session``), B1+ maps assigned.

    ``bids_filters`` narrows each kind like fMRIPrep's ``--bids-filter-file``, keyed by kind:
    ``{"mese": {"acquisition": "fast"}, "vfa": {"run": [1, 2]}, "tb1tfl": {"session": None}}``.
    """
    layout = (load_layout(bids_dir_or_layout) if isinstance(bids_dir_or_layout, (str, Path))
              else bids_dir_or_layout)
    from bids.layout import parse_file_entities

    root = Path(layout.root)
    subject = list_subjects(layout, strip_prefix(subject, "sub-"))[0]
    session = None if session is None else strip_prefix(session, "ses-")
    if session is not None:
        sessions = sorted({str(s) for s in layout.get_sessions(subject=subject)}
                          | {p.name[4:] for p in (root / f"sub-{subject}").glob("ses-*") if p.is_dir()})
        if session not in sessions:
            raise InputError(None, f"session '{session}' not found for sub-{subject} in {root}; "
                             f"available: {', '.join(sessions) or 'none'}")
    filters = check_filters(bids_filters)
    indexed = {str(Path(f)) for f in layout.get(subject=subject, extension=list(IMAGE_EXTENSIONS),
                                                 return_type="filename")}
    on_disk = {str(p) for ext in IMAGE_EXTENSIONS for p in (root / f"sub-{subject}").rglob(f"*{ext}")}

    groups: dict[tuple, dict[str, list]] = {}
    for path in sorted(indexed | on_disk):
        rel = relpath(path, root)
        ents = dict(parse_file_entities(path))
        kind = ents.get("suffix")
        if kind not in SERIES_ENTITY:
            LOGGER.info("ignoring %s: suffix %r is not a qMRI collection qmriprep reads", rel, kind)
            continue
        if session is not None and str(ents.get("session")) != session:
            continue
        if not passes(ents, filters.get(kind, {})):
            LOGGER.info("ignoring %s: excluded by the BIDS filter for %s", rel, kind.lower())
            continue
        part = ents.get("part")
        slot = "files"
        if kind == "bSSFP":
            if part not in (None, *BSSFP_PARTS):
                LOGGER.info("ignoring %s: part-%s is not one of %s", rel, part, BSSFP_PARTS)
                continue
        elif part == "phase" and kind in PHASE_KINDS:
            slot = "phase"
        elif part not in (None, "mag"):
            LOGGER.info("ignoring %s: part-%s images of %s are not used", rel, part, kind)
            continue
        if path not in indexed:
            LOGGER.debug("%s is not indexed by pybids; read by name", rel)
        key = (kind, ents.get("session"), _group_entities(kind, ents, rel))
        groups.setdefault(key, {"files": [], "phase": []})[slot].append((Path(path), ents))

    colls = [_safe_build(kind, subject, ses, dict(gents), members, layout, indexed)
             for (kind, ses, gents), members in groups.items()]
    colls += kspace_collections(root, subject, session, filters.get("kspace", {}), colls)
    rank = {k: i for i, k in enumerate(md.KINDS)}
    colls.sort(key=lambda c: (c.session or "", rank[c.kind], c.name))
    for c in colls:
        LOGGER.info("%s", c.describe())
    return colls


def _group_entities(kind: str, ents: dict, rel: str) -> tuple:
    """The entities that separate collections of ``kind`` (as a hashable sorted tuple)."""
    out = {k: str(v) for k, v in ents.items() if k not in NOT_GROUPING}
    if kind in ACQ_ROLES:
        label = out.pop("acquisition", "")
        role = _role(kind, ents)
        if role is None:
            raise InputError(rel, f"{kind} needs acq-{' or acq-'.join(ACQ_ROLES[kind])} "
                             f"(found {'acq-' + label if label else 'no acq- entity'})")
        prefix = label[: -len(ACQ_ROLES[kind][role])]
        if prefix:
            out["acquisition"] = prefix
    return tuple(sorted(out.items()))


def _role(kind: str, ents: dict) -> int | None:
    """Index of the AFI/TFL role its ``acq-`` label ends with (``tr1``=0, ``tr2``=1, ...)."""
    label = str(ents.get("acquisition", "")).lower()
    return next((i for i, r in enumerate(ACQ_ROLES[kind]) if label.endswith(r)), None)


def _sidecar(path: Path, ents: dict, root: Path, layout, indexed: set[str]) -> Sidecar:
    values, origins = resolve_sidecar(root, path)
    if str(path) in indexed:
        values = dict(layout.get_metadata(str(path)))
    return Sidecar(sidecar_name(path, root), values, ents, origins)


def _order(kind: str, members: list, scs: list[Sidecar]) -> list[int]:
    """Series order: echoes by EchoTime, flips by FlipAngle, AFI/TFL by role, bSSFP by part."""
    def number(sc, key):
        v = sc.values.get(key)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.inf

    ent = SERIES_ENTITY[kind]
    if kind in ACQ_ROLES:
        keys = [(_role(kind, ents),) for _, ents in members]
    elif kind == "bSSFP":
        keys = [(BSSFP_PARTS.index(ents.get("part") or "mag"),) for _, ents in members]
    else:
        field_ = {"echo": "EchoTime", "flip": "FlipAngle"}.get(ent)
        keys = [(number(sc, field_) if field_ else 0, series_index(ents, ent))
                for sc, (_, ents) in zip(scs, members)]
    return sorted(range(len(members)), key=lambda i: keys[i])


def _check_members(kind: str, members: list, root: Path) -> None:
    ent = SERIES_ENTITY[kind]
    seen: dict[tuple, Path] = {}
    for path, ents in members:
        sig = tuple(sorted((k, str(v)) for k, v in ents.items() if k != "extension"))
        if sig in seen:
            raise InputError(relpath(path, root), f"duplicates {relpath(seen[sig], root)} "
                             "(same entities; keep one of .nii / .nii.gz)")
        seen[sig] = path
    if ent in ("echo", "flip") and len(members) > 1:
        without = [p for p, e in members if e.get(ent) is None]
        if without:
            raise InputError(relpath(without[0], root), f"has no {ent}- entity but other {kind} "
                             f"images of this collection do")


def _build(kind, subject, session, gents, members, layout, indexed) -> Collection:
    root = Path(layout.root)
    files = members["files"]
    if not files:
        raise InputError(relpath(members["phase"][0][0], root),
                         f"part-phase {kind} images without the magnitude (part-mag) images")
    _check_members(kind, files, root)
    scs = [_sidecar(p, e, root, layout, indexed) for p, e in files]
    order = _order(kind, files, scs)
    files, scs = [files[i] for i in order], [scs[i] for i in order]
    n_volumes = None
    if kind in ("bSSFP", "MRF"):
        import nibabel as nb

        try:
            shape = nb.load(files[0][0]).shape
        except Exception as exc:
            raise InputError(relpath(files[0][0], root), f"cannot be read as NIfTI ({exc})") from exc
        n_volumes = shape[3] if len(shape) > 3 else 1
    protocol = md.build_protocol(kind, scs, n_volumes=n_volumes)
    phase = _phase_files(kind, members["phase"], len(files), root, layout, indexed)

    ent = SERIES_ENTITY[kind]
    how = {"echo": "EchoTime", "flip": "FlipAngle", "part": "part (mag, phase / real, imag)"}.get(ent)
    if kind in ACQ_ROLES:
        how = "acq- role (" + ", ".join(ACQ_ROLES[kind]) + ")"
    sharing = " ".join(f"{SHORT.get(k, k)}-{v}" for k, v in ordered(gents))
    reason = (f"{len(files)} image{'s' if len(files) > 1 else ''} with suffix {kind}"
              + (f" in ses-{session}" if session else "") + (f" sharing {sharing}" if sharing else "")
              + (f", ordered by {how}" if how and len(files) > 1 else "")
              + (f", with {len(phase)} part-phase images" if phase else ""))
    supported = kind in md.SUPPORTED
    if kind == "bSSFP" and set(protocol.parts) == {"mag"}:
        supported = False
        reason += ("; magnitude only: found, not processed (the Fourier configurations need the "
                   "phase: add part-phase or part-real/part-imag images)")
    elif not supported:
        reason += "; found, not yet processed"
    return Collection(kind, subject, session, gents, tuple(p for p, _ in files),
                      [dict(sc.values) for sc in scs], protocol, supported, reason,
                      phase_files=phase, root=root, sidecars=tuple(scs))


def _safe_build(kind, subject, session, gents, members, layout, indexed) -> Collection:
    """Build; a problem in a not-yet-processed kind is recorded instead of stopping the run."""
    try:
        return _build(kind, subject, session, gents, members, layout, indexed)
    except InputError as err:
        if kind in md.SUPPORTED:
            raise
        LOGGER.warning("%s (found, not yet processed; ignored)", err)
        files = tuple(p for p, _ in members["files"] + members["phase"])
        return Collection(kind, subject, session, gents, files, [], None, False,
                          f"found, not yet processed; its input has a problem: {err}",
                          root=Path(layout.root))


def _phase_files(kind, phase, n_mag, root, layout, indexed) -> tuple[Path, ...]:
    if not phase:
        return ()
    _check_members(kind, phase, root)
    scs = [_sidecar(p, e, root, layout, indexed) for p, e in phase]
    if len(phase) != n_mag:
        raise InputError(scs[0].name, f"{len(phase)} part-phase {kind} images but {n_mag} "
                         "magnitude images; they must pair up")
    return tuple(phase[i][0] for i in _order(kind, phase, scs))
