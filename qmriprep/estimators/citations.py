"""Citable text of BibTeX keys, read from ``data/boilerplate.bib`` (the one bibliography).

Sidecars carry ``EstimationReference`` as "Authors. Journal Year;Volume:Pages. doi:..." built
from the keys an estimator declares; the methods text cites the same keys as ``[@key]``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

_ENTRY = re.compile(r"@\w+\{([^,]+),(.*?)\n\}", re.S)
_FIELD = re.compile(r"(\w+)\s*=\s*\{((?:[^{}]|\{(?:[^{}]|\{[^{}]*\})*\})*)\}")
_ACCENT = re.compile(r"\{?\\[`'^\"~=.uvHckr]\{?\\?(\w)\}?\}?")


@lru_cache(maxsize=1)
def bibliography() -> dict[str, dict[str, str]]:
    """``{key: {field: value}}`` of every entry of ``data/boilerplate.bib``."""
    text = resources.files("qmriprep").joinpath("data/boilerplate.bib").read_text()
    return {key.strip(): {f.lower(): _plain(v) for f, v in _FIELD.findall(body)}
            for key, body in _ENTRY.findall(text)}


def _plain(value: str) -> str:
    """LaTeX accents and braces removed: ``B{\\"o}rnert`` -> ``Bornert``."""
    return re.sub(r"[{}]", "", _ACCENT.sub(r"\1", value)).replace("---", "-").replace("--", "-")


def _authors(field: str) -> str:
    """``Surname Initials`` of up to three authors, then ``et al.``."""
    names = [a.strip() for a in field.split(" and ") if a.strip()]
    short = []
    for name in names[:3]:
        if name == "others":
            continue
        surname, _, given = name.partition(",")
        short.append(f"{surname.strip()} {''.join(g[0] for g in given.replace('.', ' ').split())}".strip())
    return ", ".join(short) + (" et al." if len(names) > 3 or "others" in names else "")


def reference(key: str) -> str:
    """Citable text of one BibTeX key (KeyError if the bibliography lacks it)."""
    e = bibliography()[key]
    where = e.get("journal") or e.get("booktitle") or e.get("note", "")
    vol = f";{e['volume']}" if "volume" in e else ""
    pages = f":{e['pages']}" if "pages" in e else ""
    parts = (_authors(e.get("author", "")), e.get("title", "") if "author" not in e or not where else "",
             f"{where} {e.get('year', '')}{vol}{pages}".strip(), f"doi:{e['doi']}" if "doi" in e else "")
    return " ".join(p if p.endswith(".") else p + "." for p in parts if p)


def references(keys) -> str:
    """Citable text of several keys, space separated."""
    return " ".join(reference(k) for k in keys)


def cite(keys) -> str:
    """Pandoc citation of several keys: ``[@a; @b]``."""
    return "[" + "; ".join(f"@{k}" for k in keys) + "]" if keys else ""
