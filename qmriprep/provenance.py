"""Sidecar provenance of every output: units, algorithm, reference, sources.

Everything comes from the estimator registry (:mod:`qmriprep.estimators`: algorithm text and
citation keys), the suffix table (:mod:`qmriprep.suffixes`: units) and the bibliography
(:mod:`qmriprep.estimators.citations`: citable text).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from . import suffixes
from .estimators.citations import references
from .utils.files import atomic_write_text

#: what BIDS has no place for, ignored by the validator (``.bidsignore``, gitignore syntax; a
#: trailing ``/`` would leave the folder itself reported): the reports and their figures, logs
#: and crash files, trained models, the group level, the pc-bSSFP configurations and the images
#: reconstructed from DESS k-space (no bSSFP or DESS suffix in BIDS) and the transforms to the
#: template (no transforms in BIDS 1.10)
BIDSIGNORE = ("*.html", "logs", "group", "figures", "log", "models", "*_bSSFP.*", "*_DESS.*",
              "*_xfm.*")
#: the derivatives' README (BIDS recommends one)
README = """# qmriprep derivatives

Quantitative MRI maps estimated by qmriprep, one folder per subject (`sub-<label>/anat`,
`sub-<label>/fmap`), each map with a JSON sidecar (units, algorithm, references, sources).
Methods text to quote: `logs/CITATION.md` (references in `logs/CITATION.bib`); reports:
`sub-<label>.html`; group tables: `group/`. Files BIDS has no place for are listed in
`.bidsignore`.
"""


def bids_uris(files, bids_dir) -> list[str]:
    """``bids:raw:<relative path>`` URIs of raw files (BIDS 1.8 ``Sources``)."""
    root = Path(bids_dir).absolute()
    out = []
    for f in files:
        try:
            out.append("bids:raw:" + Path(f).absolute().relative_to(root).as_posix())
        except ValueError:
            out.append(Path(f).absolute().as_uri())
    return out


def map_meta(suffix: str, estimator, sources, *, desc: str = "", **extra) -> dict:
    """Sidecar of one map of ``estimator`` (an :class:`~qmriprep.estimators.Estimator`);
    ``desc``: what follows the estimator name in the file's ``desc`` (``RMSE``, ``SD``, ``T2`` ...)."""
    quality = next((key for key in suffixes.QUALITY if desc.endswith(key)), None)
    meta = {
        "Description": (f"{suffixes.QUALITY_TEXT[quality]} of the {estimator.name} fit" if quality
                        else f"{suffix} estimated by {estimator.name}"),
        "Units": suffixes.units(suffix, desc),
        "EstimationAlgorithm": estimator.algorithm,
        "EstimationReference": references(estimator.citations),
        "Sources": list(sources),
        "SkullStripped": False,
    }
    meta.update(extra)
    return meta


def reconstruction_meta(method, sources) -> dict:
    """Sidecar fields of the images of a :class:`~qmriprep.estimators.Reconstruction`."""
    return {"Description": f"magnitude image reconstructed by {method.name}",
            "Sources": list(sources), "SkullStripped": False, "Units": "arbitrary",
            "ReconstructionAlgorithm": method.algorithm,
            "ReconstructionReference": references(method.citations)}


def container(environ=os.environ) -> dict:
    """BIDS ``GeneratedBy.Container`` of this run: ``Type`` (apptainer, docker or none) and, in a
    container, ``Tag`` (the image) and ``Version`` (qmriprep's image version, from the Dockerfile)."""
    version = environ.get("QMRIPREP_DOCKER_TAG", "")  # set by our Dockerfile only
    image = environ.get("APPTAINER_NAME") or environ.get("SINGULARITY_NAME")
    if environ.get("APPTAINER_CONTAINER") or environ.get("SINGULARITY_CONTAINER"):
        found = {"Type": "apptainer", "Tag": image or Path(environ.get("APPTAINER_CONTAINER")
                                                             or environ["SINGULARITY_CONTAINER"]).name}
    elif version:
        found = {"Type": "docker", "Tag": f"qmriprep/qmriprep:{version}"}
    else:
        return {"Type": "none"}
    return {**found, **({"Version": version} if version else {})}


def write_dataset_description(output_dir, bids_dir, version: str) -> Path:
    """BIDS-derivatives ``dataset_description.json`` (``GeneratedBy`` with the version and how it
    ran, ``DatasetLinks.raw`` relative to the output folder) and the ``.bidsignore`` beside it."""
    output_dir = Path(output_dir)
    try:
        raw = Path(os.path.relpath(Path(bids_dir).absolute(), output_dir.absolute())).as_posix()
    except ValueError:  # another drive
        raw = Path(bids_dir).absolute().as_uri()
    generated_by = {"Name": "qmriprep", "Version": version,
                    "CodeURL": "https://github.com/qmriprep/qmriprep", "Container": container()}
    desc = {"Name": "qmriprep outputs", "BIDSVersion": "1.10.0", "DatasetType": "derivative",
            "GeneratedBy": [generated_by], "DatasetLinks": {"raw": raw},
            "HowToAcknowledge": "Cite qmriprep and the methods in logs/CITATION.md."}
    output_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output_dir / ".bidsignore", "\n".join(BIDSIGNORE) + "\n")
    atomic_write_text(output_dir / "README.md", README)
    return atomic_write_text(output_dir / "dataset_description.json", json.dumps(desc, indent=2) + "\n")


#: heading of the methods section written from the published sidecars after a run
AS_RUN = "## As run"
#: runtime sidecar fields that the planned methods text cannot know: (field, what it tells)
RUNTIME_FIELDS = (("CoilSensitivities", "coil sensitivities"), ("NetworkSource", "network weights"),
                  ("GeometryFallback", "geometry"), ("ContrastSubspace", "contrast subspace"))


def as_run(output_dir, subject: str | None = None) -> list[str]:
    """One Markdown bullet per subject, series and decision made while running (coil maps of
    each k-space series, shipped/cached/trained network weights ...), read from the published
    sidecars (:data:`RUNTIME_FIELDS`); only ``subject``'s when given."""
    facts: dict[tuple, set] = {}
    for sidecar in sorted(Path(output_dir).glob(f"sub-{subject or '*'}/**/*.json")):
        try:
            meta = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict):
            for key, what in _runtime_facts(sidecar, meta):
                facts.setdefault(key, set()).add(what)
    return [f"- {sub}, {kind}{' ' + series if series else ''} ({', '.join(sorted(w for w in whats if w))}): "
            f"{label}: {text}." for (sub, kind, series, label, text), whats in sorted(facts.items())]


def _runtime_facts(sidecar: Path, meta: dict):
    """``((subject, series kind, entities, label, text), rec-<method> or desc)`` per runtime field."""
    from .bids.names import parse_name

    name = parse_name(sidecar)
    ents = name.entities
    series = " ".join(f"{k}-{ents[k]}" for k in ("ses", "acq", "run") if k in ents)
    what = f"rec-{ents['rec']}" if "rec" in ents else ents.get("desc", "")
    kind = name.suffix if meta.get("ReconstructionMethod") else _collection_of(meta)
    for key, label in RUNTIME_FIELDS:
        if meta.get(key):
            text = str(meta[key]["Description"] if isinstance(meta[key], dict) else meta[key])
            if key == "NetworkSource" and meta.get("NetworkWeightsSHA256"):
                text += f" (SHA256 {meta['NetworkWeightsSHA256'][:12]})"
            yield (f"sub-{ents.get('sub')}", kind, series, label, text), what


def _collection_of(meta: dict) -> str:
    """The raw series kind a map derives from (the suffix of its first ``Sources`` file)."""
    src = meta.get("Sources") or [""]
    return Path(str(src[0] if isinstance(src, list) else src)).name.split(".")[0].rsplit("_", 1)[-1]


def methods_text(output_dir, subject: str | None = None) -> str:
    """The planned methods text of ``logs/CITATION.md`` plus an :data:`AS_RUN` section of
    ``subject``'s published sidecars (every subject's when None)."""
    path = Path(output_dir) / "logs" / "CITATION.md"
    planned = path.read_text().split(f"\n{AS_RUN}\n")[0].rstrip() if path.exists() else ""
    facts = as_run(output_dir, subject)
    return planned + (f"\n\n{AS_RUN}\n\n" + "\n".join(facts) if facts else "") + "\n"


def update_methods(output_dir) -> Path | None:
    """Rewrite ``logs/CITATION.md`` with the *As run* section of every published subject (after
    a run; one pass over the sidecars)."""
    path = Path(output_dir) / "logs" / "CITATION.md"
    return atomic_write_text(path, methods_text(output_dir)) if path.exists() else None
