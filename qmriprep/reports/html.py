"""Small HTML helpers of the report: escaping, tables, Markdown-ish paragraphs and lists."""

from __future__ import annotations

import html
import re


def esc(value) -> str:
    return html.escape(str(value))


def table(headers, rows, numeric=()) -> str:
    """An HTML table; headers and cells are HTML already (escape them first)."""
    head = ("<thead><tr>" + "".join(f"<th>{h}</th>" for h in headers) + "</tr></thead>"
            if headers else "")
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
                         for i, c in enumerate(row)) + "</tr>"
        for row in rows)
    return f"<table>{head}<tbody>{body}</tbody></table>"


def _inline(text: str) -> str:
    text = esc(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])", r"<em>\1</em>", text)


def render_markdown(text: str) -> str:
    """Paragraphs, ``#`` headings and ``-``/``*`` lists of Markdown-ish text; citation keys
    such as ``[@deoni2003]`` are kept verbatim."""
    out = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = [ln.strip() for ln in block.strip().splitlines() if ln.strip()]
        if not lines:
            continue
        if all(re.match(r"[-*+] ", ln) for ln in lines):
            out.append("<ul>" + "".join(f"<li>{_inline(ln[2:])}</li>" for ln in lines) + "</ul>")
        elif lines[0].startswith("#"):
            level = min(len(lines[0]) - len(lines[0].lstrip("#")) + 2, 6)
            out.append(f"<h{level}>{_inline(lines[0].lstrip('#').strip())}</h{level}>")
            if lines[1:]:
                out.append(f"<p>{_inline(' '.join(lines[1:]))}</p>")
        else:
            out.append(f"<p>{_inline(' '.join(lines))}</p>")
    return "\n".join(out)


def fname(name) -> str:
    """A file name that wraps only after underscores (never at its hyphens)."""
    return f'<code class="fname">{esc(name).replace("_", "_<wbr>")}</code>'


def details(summary: str, body: str, *, open_: bool = False, anchor: str = "") -> str:
    """A collapsible block (``<details>``) with an HTML ``summary`` line."""
    ident = f' id="{esc(anchor)}"' if anchor else ""
    return (f'<details{ident}{" open" if open_ else ""}><summary>{summary}</summary>'
            f"{body}</details>")
