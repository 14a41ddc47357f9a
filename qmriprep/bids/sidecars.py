"""BIDS sidecars: read JSON, apply the inheritance principle, remember where each field came from.

Separate from the protocol builders (:mod:`.metadata`) because discovery (:mod:`.collections`)
and the data checks (:mod:`.validate`) need it too. :func:`resolve_sidecar` applies inheritance
by itself, for files pybids does not index and to name where an inherited value came from, so
errors can point at the JSON that set a field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from .names import parse_name


@dataclass(frozen=True)
class Sidecar:
    """Merged metadata of one image and where it came from.

    ``name`` is the image's own sidecar path relative to the dataset root (named in errors even
    when it does not exist); ``origins`` maps a field to the JSON file that set it.
    """

    name: str
    values: Mapping[str, Any]
    entities: Mapping[str, Any] = field(default_factory=dict)
    origins: Mapping[str, str] = field(default_factory=dict)

    def where(self, key: str) -> str:
        return self.origins.get(key, self.name)


def relpath(path: str | Path, root: Path | None) -> str:
    """``path`` relative to ``root`` when it lies below it (error messages name files this way)."""
    path = Path(path)
    if root is not None:
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            pass
    return str(path)


_JSON_TYPES = {list: "array", str: "string", int: "number", float: "number", bool: "boolean",
               type(None): "null"}


def read_json(path: Path, root: Path | None = None) -> dict:
    """A JSON object from ``path``; an InputError naming the file otherwise."""
    name = relpath(path, root)
    if Path(path).is_symlink() and not Path(path).exists():
        raise InputError(name, "is a broken or self-referencing symbolic link")
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(name, f"cannot be read ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise InputError(name, f"is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise InputError(name, f"is not a JSON object (found a JSON {_JSON_TYPES.get(type(data), 'value')}); "
                         "a sidecar holds key-value pairs: {\"EchoTime\": 0.01, ...}")
    return data


def sidecar_name(image: Path, root: Path | None = None) -> str:
    """The image's own sidecar path, relative to ``root``."""
    image = Path(image)
    return relpath(image.with_name(image.name.split(".", 1)[0] + ".json"), root)


def resolve_sidecar(root: str | Path, image: str | Path) -> tuple[dict, dict[str, str]]:
    """Metadata of ``image`` by the BIDS inheritance principle, and each field's source.

    Every JSON on the path from ``root`` down to the image's folder whose suffix matches and
    whose entities are a subset of the image's applies; deeper and more specific files win.
    Returns ``(values, origins)`` with ``origins[field]`` the source path relative to ``root``.
    """
    root, image = Path(root), Path(image)
    parsed = parse_name(image)
    ents, suffix = parsed.entities, parsed.suffix
    rel_parts = image.parent.relative_to(root).parts
    values: dict = {}
    origins: dict[str, str] = {}
    for depth in range(len(rel_parts) + 1):
        level = root.joinpath(*rel_parts[:depth])
        found = []
        for js in level.glob(f"*{suffix}.json"):
            jname = parse_name(js)
            if jname.suffix == suffix and all(ents.get(k) == v for k, v in jname.entities.items()):
                found.append((len(jname.entities), js.name, js))
        for _, _, js in sorted(found):
            data = read_json(js, root)
            values.update(data)
            origins.update(dict.fromkeys(data, relpath(js, root)))
    return values, origins
