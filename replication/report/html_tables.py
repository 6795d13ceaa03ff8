"""The suite's Markdown tables (``figures/<profile>/tables/*.md``) as standalone HTML pages.

Snakemake's HTML report shows an HTML result in place and offers any other file (Markdown included) as
a download, so the workflow's report entries are these pages. The Markdown the report builders write is
a subset: ``#`` headings, paragraphs, and pipe tables (``| a | b |`` with a ``|:--|--:|`` alignment row,
as ``pandas.DataFrame.to_markdown`` writes them); inline ``code`` spans and ``**bold**`` are kept.

Standard library only, so the workflow runs it as a script without loading torch:

    python replication/report/html_tables.py figures/evidence/tables/claims.md figures/evidence/tables/claims.html
"""

from __future__ import annotations

import html
import re
import sys
from pathlib import Path

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; font-size: 13px; margin: 1em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em 0; }
th, td { border: 1px solid #ccc; padding: 3px 6px; vertical-align: top; }
th { background: #f0f0f0; position: sticky; top: 0; }
tr:nth-child(even) td { background: #fafafa; }
td.right, th.right { text-align: right; } td.center, th.center { text-align: center; }
code { background: #f4f4f4; padding: 0 2px; }
td.verdict-exact, td.verdict-reproduced { background: #e3f4e1 !important; }
td.verdict-not-reproduced { background: #fbe3e1 !important; }
td.verdict-inconclusive { background: #fdf5d9 !important; }
"""

_ALIGN = re.compile(r"^\s*\|?\s*:?-{1,}:?\s*(\|\s*:?-{1,}:?\s*)*\|?\s*$")


def _inline(text: str) -> str:
    """Escape ``text`` for HTML, keeping `code` spans and **bold**."""
    parts = re.split(r"(`[^`]*`)", text)
    out = []
    for part in parts:
        if len(part) >= 2 and part.startswith("`") and part.endswith("`"):
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
        else:
            out.append(re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html.escape(part)))
    return "".join(out)


def _cells(line: str) -> list[str]:
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|") and not line.endswith("\\|"):
        line = line[:-1]
    cells = re.split(r"(?<!\\)\|", line)
    return [cell.strip().replace("\\|", "|") for cell in cells]


def _alignments(line: str) -> list[str]:
    aligns = []
    for cell in _cells(line):
        if cell.startswith(":") and cell.endswith(":"):
            aligns.append("center")
        elif cell.endswith(":"):
            aligns.append("right")
        else:
            aligns.append("")
    return aligns


def _verdict_class(header: str, value: str) -> str:
    if header.strip().lower() != "verdict":
        return ""
    return "verdict-" + re.sub(r"[^a-z]+", "-", value.strip().lower()).strip("-")


def _table(lines: list[str]) -> str:
    header = _cells(lines[0])
    aligns = _alignments(lines[1]) if len(lines) > 1 and _ALIGN.match(lines[1]) else [""] * len(header)
    body = lines[2:] if len(lines) > 1 and _ALIGN.match(lines[1]) else lines[1:]

    def cls(*names: str) -> str:
        names = tuple(n for n in names if n)
        return f' class="{" ".join(names)}"' if names else ""

    rows = ["<tr>" + "".join(f"<th{cls(aligns[i] if i < len(aligns) else '')}>{_inline(h)}</th>"
                             for i, h in enumerate(header)) + "</tr>"]
    for line in body:
        cells = _cells(line)
        rows.append("<tr>" + "".join(
            f"<td{cls(aligns[i] if i < len(aligns) else '', _verdict_class(header[i] if i < len(header) else '', c))}>"
            f"{_inline(c)}</td>" for i, c in enumerate(cells)) + "</tr>")
    return "<table>\n<thead>" + rows[0] + "</thead>\n<tbody>\n" + "\n".join(rows[1:]) + "\n</tbody>\n</table>"


def markdown_to_html(text: str, title: str = "") -> str:
    """A standalone HTML page of ``text`` (headings, paragraphs, pipe tables)."""
    blocks: list[str] = []
    lines = text.splitlines()
    index = 0
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            blocks.append(f"<p>{_inline(' '.join(paragraph))}</p>")
            paragraph.clear()

    while index < len(lines):
        line = lines[index]
        stripped = line.strip()
        if not stripped:
            flush()
            index += 1
        elif stripped.startswith("|"):
            flush()
            table = []
            while index < len(lines) and lines[index].strip().startswith("|"):
                table.append(lines[index])
                index += 1
            blocks.append(_table(table))
        elif (heading := re.match(r"^(#{1,6})\s+(.*)$", stripped)) is not None:
            flush()
            level = len(heading.group(1))
            blocks.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
            title = title or heading.group(2)
            index += 1
        elif stripped.startswith(("- ", "* ")):
            flush()
            items = []
            while index < len(lines) and lines[index].strip().startswith(("- ", "* ")):
                items.append(f"<li>{_inline(lines[index].strip()[2:])}</li>")
                index += 1
            blocks.append("<ul>" + "".join(items) + "</ul>")
        else:
            paragraph.append(stripped)
            index += 1
    flush()
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
            + "\n".join(blocks) + "\n</body></html>\n")


def convert(markdown_path: str | Path, html_path: str | Path) -> Path:
    """Write ``html_path`` from ``markdown_path`` (atomically: a temporary file, then a rename)."""
    source, target = Path(markdown_path), Path(html_path)
    page = markdown_to_html(source.read_text(encoding="utf-8"), title=source.stem)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(target)
    return target


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python replication/report/html_tables.py TABLE.md TABLE.html")
    convert(sys.argv[1], sys.argv[2])
