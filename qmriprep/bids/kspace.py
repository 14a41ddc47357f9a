"""Raw k-space collections: ISMRMRD files under ``sourcedata/kspace/`` (ARCHITECTURE.md).

One ``.h5`` file per image the reconstruction produces, named like that image and mirroring the
raw tree (``sourcedata/kspace/sub-01/anat/sub-01_echo-1_MESE.h5``). Files group like images
(suffix and every entity but ``echo``/``flip``/``part``). The protocol comes from each file's
ISMRMRD header (:func:`qmriprep.recon.io.header_metadata`, BIDS units) merged with an optional
JSON sidecar beside it (inheritance as for images); a field given by both must agree. The
collection's :attr:`~.collection.Collection.protocol` is then the one of the image suffix
(MESE/MEGRE echoes, VFA flip angles, DESS echoes) and the maps are estimated from the
reconstructed images.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import InputError
from . import metadata as md
from .collection import NOT_GROUPING, SERIES_ENTITY, Collection, series_index
from .layout import passes
from .sidecars import Sidecar, relpath, resolve_sidecar, sidecar_name

LOGGER = logging.getLogger(__name__)

#: image suffixes whose k-space qmriprep reconstructs (then estimates their maps)
RECON_SUFFIXES = ("MESE", "MEGRE", "VFA", "DESS")
#: relative tolerance between a header value and the same field in a JSON sidecar
#: (headers store ms with limited precision)
AGREEMENT = 1e-3
_SERIES = {k: SERIES_ENTITY[k] for k in RECON_SUFFIXES}


def kspace_collections(root: Path, subject: str, session: str | None, query: dict,
                       images: list) -> list:
    """Collections of ``sub-<subject>``'s raw k-space; ``images`` are its image collections
    (a k-space series must cover every image of the matching raw series)."""
    from bids.layout import parse_file_entities

    groups: dict[tuple, list] = {}
    for path in sorted((root / "sourcedata" / "kspace" / f"sub-{subject}").rglob("*.h5")):
        ents = dict(parse_file_entities(str(path)))
        if session is not None and str(ents.get("session")) != session:
            continue
        if not passes(ents, query):
            continue
        gents = {k: str(v) for k, v in ents.items() if k not in NOT_GROUPING}
        gents["suffix"] = str(ents.get("suffix"))
        groups.setdefault((ents.get("session"), tuple(sorted(gents.items()))), []).append((path, ents))
    return [_collection(root, subject, ses, dict(gents), members, images)
            for (ses, gents), members in groups.items()]


def _collection(root, subject, session, gents, members, images):
    suffix = gents["suffix"]
    members.sort(key=lambda m: (series_index(m[1], _SERIES.get(suffix)), m[0].name))
    files = tuple(p for p, _ in members)
    n = len(files)
    what = f"{n} raw k-space file{'s' if n > 1 else ''} (ISMRMRD) for {suffix} under sourcedata/kspace"
    if suffix not in RECON_SUFFIXES:
        scs = [Sidecar(sidecar_name(p, root), resolve_sidecar(root, p)[0], e) for p, e in members]
        return Collection("kspace", subject, session, gents, files, [dict(s.values) for s in scs],
                          None, False, f"{what}; found, not processed (qmriprep reconstructs "
                          f"{', '.join(RECON_SUFFIXES)})", root=root, sidecars=tuple(scs))
    _check_series(root, suffix, members, images, session, gents)
    scs = [_merged_sidecar(root, p, e) for p, e in members]
    protocol = md.build_protocol(suffix, scs)
    reason = (f"{what}, ordered by {_SERIES[suffix]} index; reconstructed, then "
              f"{suffix} maps estimated from the reconstructed images")
    return Collection("kspace", subject, session, gents, files, [dict(s.values) for s in scs],
                      protocol, True, reason, root=root, sidecars=tuple(scs))


def _check_series(root, suffix, members, images, session, gents) -> None:
    """Series indices 1..n without gaps, and one k-space file per image of the raw series."""
    key = _SERIES[suffix]
    have = [series_index(e, key) for _, e in members]
    first = relpath(members[0][0], root)
    if len(members) > 1 and 0 in have:
        raise InputError(first, f"{len(members)} k-space files of one {suffix} series need "
                         f"{key}- entities (1..{len(members)})")
    if len(members) > 1 and sorted(have) != list(range(1, len(members) + 1)):
        missing = sorted(set(range(1, max(have) + 1)) - set(have))
        raise InputError(first, f"the {suffix} k-space series has {key} indices {sorted(have)}: "
                         f"no k-space file for {', '.join(f'{key}-{i}' for i in missing) or 'some'}")
    wanted = {k: v for k, v in gents.items() if k != "suffix"}
    for col in images:
        if col.kind != suffix or col.session != session or dict(col.entities) != wanted:
            continue
        raw = {series_index(_file_entities(f), key) for f in col.files}
        missing = sorted(raw - set(have))
        if missing:
            raise InputError(relpath(col.files[0], root),
                             f"the raw {suffix} series has {key}-{missing[0]} but "
                             f"sourcedata/kspace has no k-space file for it "
                             f"(found {', '.join(p.name for p, _ in members)})")


def _file_entities(path) -> dict:
    from bids.layout import parse_file_entities

    return dict(parse_file_entities(str(path)))


def _merged_sidecar(root: Path, path: Path, ents: dict) -> Sidecar:
    """The ISMRMRD header's metadata, completed by the JSON sidecar; disagreements are errors."""
    from ..recon.io import header_metadata

    header = header_metadata(path)
    values, origins = resolve_sidecar(root, path)
    for key, hval in header.items():
        if key not in values:
            continue
        jval = values[key]
        if _disagree(hval, jval):
            raise InputError(origins.get(key, sidecar_name(path, root)),
                             f"{key} = {jval} disagrees with the ISMRMRD header of "
                             f"{relpath(path, root)} ({key} = {hval})")
    merged = {**values, **header}
    where = {**origins, **dict.fromkeys(header, relpath(path, root))}
    return Sidecar(sidecar_name(path, root), merged, ents, where)


def _disagree(a, b) -> bool:
    numbers = (int, float)
    if isinstance(a, bool) or isinstance(b, bool) or not (isinstance(a, numbers) and isinstance(b, numbers)):
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
            return any(_disagree(x, y) for x, y in zip(a, b))
        return a != b
    return abs(a - b) > AGREEMENT * max(abs(a), abs(b), 1e-12)
