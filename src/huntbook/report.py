"""Self-contained HTML and Markdown reports.

A :class:`Report` is a title and a list of :class:`Section` objects; a section is a title and a list of
blocks (:class:`Text`, :class:`Facts`, :class:`Table`, :class:`Query`). Each block renders itself to HTML
and to Markdown, so new kinds of content (charts, process trees) are new :class:`Block` classes::

    report = Report("Case 42", subtitle="SRV01, 2026-10-05 .. 2026-10-12")
    report.add("Logons from 203.0.113.66", text="...", table=df, query=sql, facts={"Account": "jsmith"})
    report.save("case-42.html")  # or .md

The HTML is one file with inline CSS and a tiny inline sort script, no external resource, and a
Content-Security-Policy that allows exactly that script: it opens offline and nothing from the data can
run. Every value from the data (titles, cells, column names, queries, facts) is HTML-escaped; the
Markdown escapes ``|``, newlines, HTML and Markdown syntax in the same places.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from huntbook._types import PathLike

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DEFAULT_MAX_ROWS",
    "Block",
    "Facts",
    "Query",
    "Report",
    "Section",
    "Table",
    "Text",
    "cell_text",
    "esc",
    "md_esc",
]

DEFAULT_MAX_ROWS = 200

# ---------------------------------------------------------------------------------------------------------
# Single values


def cell_text(value: object) -> str:
    """The display text of a value: empty when missing (None, NaN, NaT, NA), ISO for times, else ``str``."""
    if _missing(value):
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, list | tuple):
        return ", ".join(cell_text(v) for v in value)
    return str(value)


def _missing(value: object) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, NaT
    except (TypeError, ValueError):  # pandas.NA, arrays
        return type(value).__name__ == "NAType"


def esc(value: object) -> str:
    """:func:`cell_text`, HTML-escaped (quotes too): safe in element content and in attribute values."""
    return html.escape(cell_text(value), quote=True)


_MD_INLINE = re.compile(r"([\\`*_\[\]|~])")
_MD_BLOCK_START = re.compile(r"^(\s*)([#>+=-]|\d+[.)](?=\s|$))")


def md_esc(value: object, *, block: bool = False) -> str:
    """:func:`cell_text` for inline Markdown: HTML, emphasis/code/link syntax and ``|`` escaped, newlines
    as ``<br>``. ``block=True`` (text that starts a paragraph) also escapes a heading/list/quote start."""
    text = _MD_INLINE.sub(r"\\\1", html.escape(cell_text(value), quote=False))
    if block:
        text = _MD_BLOCK_START.sub(r"\1\\\2", text)
    return "<br>".join(text.splitlines())


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]


# ---------------------------------------------------------------------------------------------------------
# Blocks


class Block(ABC):
    """One piece of a section. ``scripts``: inline scripts the block needs (each is included once and
    allowed by hash in the page's Content-Security-Policy)."""

    scripts: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def to_html(self) -> str:
        """This block as an HTML fragment, every value from the data escaped."""

    @abstractmethod
    def to_markdown(self) -> str:
        """This block as Markdown, every value from the data escaped."""


@dataclass
class Text(Block):
    """Plain text (blank lines separate paragraphs); never interpreted as HTML or Markdown."""

    text: str

    def to_html(self) -> str:
        return "".join(
            "<p>" + "<br>".join(esc(line) for line in p.splitlines()) + "</p>" for p in _paragraphs(self.text)
        )

    def to_markdown(self) -> str:
        return "\n\n".join(md_esc(_one_line(p), block=True) for p in _paragraphs(self.text))


@dataclass
class Facts(Block):
    """A few key facts, as a definition list."""

    facts: Mapping[str, object]

    def to_html(self) -> str:
        items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in self.facts.items())
        return f'<dl class="facts">{items}</dl>'

    def to_markdown(self) -> str:
        return "\n".join(f"- **{md_esc(k)}:** {md_esc(v)}" for k, v in self.facts.items())


@dataclass
class Query(Block):
    """The query text that produced a section's content, folded away."""

    text: str
    label: str = "Query"

    def to_html(self) -> str:
        return (
            f"<details><summary>{esc(self.label)}</summary><pre><code>{esc(self.text)}</code></pre></details>"
        )

    def to_markdown(self) -> str:
        longest = max((len(run) for run in re.findall("`+", self.text)), default=0)
        fence = "`" * max(3, longest + 1)  # a fence no backtick run in the text can close
        return (
            f"<details><summary>{md_esc(self.label)}</summary>\n\n{fence}\n{self.text}\n{fence}\n\n</details>"
        )


_SORT_SCRIPT = (
    "document.querySelectorAll('table.sortable th').forEach(function(th){"
    "th.addEventListener('click',function(){"
    "var t=th.closest('table'),b=t.tBodies[0],i=Array.prototype.indexOf.call(th.parentNode.children,th),"
    "d=th.dataset.dir==='asc'?'desc':'asc';th.dataset.dir=d;"
    "var r=Array.prototype.slice.call(b.rows);"
    "r.sort(function(x,y){var p=x.cells[i].textContent,q=y.cells[i].textContent,"
    "m=parseFloat(p),n=parseFloat(q),"
    "c=(isFinite(p)&&isFinite(q)&&!isNaN(m)&&!isNaN(n))?m-n:p.localeCompare(q);return d==='asc'?c:-c;});"
    "r.forEach(function(row){b.appendChild(row);});});});"
)


@dataclass
class Table(Block):
    """A DataFrame, capped at ``max_rows`` rows and saying so; click a column header to sort (HTML)."""

    frame: pd.DataFrame
    max_rows: int = DEFAULT_MAX_ROWS

    scripts: ClassVar[tuple[str, ...]] = (_SORT_SCRIPT,)

    def _rows(self) -> tuple[list[str], list[tuple[object, ...]], int]:
        columns = [cell_text(c) for c in self.frame.columns]
        shown = self.frame.head(max(self.max_rows, 0))
        return columns, list(shown.itertuples(index=False, name=None)), len(self.frame)

    @staticmethod
    def caption(shown: int, total: int) -> str:
        """``"12 rows"``, ``"showing 200 of 5,123 rows"`` or ``"no rows"``."""
        if total == 0:
            return "no rows"
        if shown == total:
            return f"{total:,} row{'' if total == 1 else 's'}"
        return f"showing {shown:,} of {total:,} rows"

    def to_html(self) -> str:
        columns, rows, total = self._rows()
        caption = f'<p class="rows">{esc(self.caption(len(rows), total))}</p>'
        if not columns:
            return caption
        head = "".join(f"<th>{esc(c)}</th>" for c in columns)
        body = "".join("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in row) + "</tr>" for row in rows)
        return (
            f'{caption}<div class="scroll"><table class="sortable"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>"
        )

    def to_markdown(self) -> str:
        columns, rows, total = self._rows()
        caption = f"_{self.caption(len(rows), total)}_"
        if not columns:
            return caption
        lines = [
            "| " + " | ".join(md_esc(c) for c in columns) + " |",
            "|" + "|".join(" --- " for _ in columns) + "|",
            *("| " + " | ".join(md_esc(v) for v in row) + " |" for row in rows),
        ]
        return caption + "\n\n" + "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# Sections and the report


@dataclass
class Section:
    """A titled part of a report: its blocks in order."""

    title: str
    blocks: list[Block] = field(default_factory=list)

    def append(self, block: Block) -> Section:
        """Add a block at the end; returns the section."""
        self.blocks.append(block)
        return self


_CSS = """
:root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#fff;--head:#f6f8fa;--accent:#0969da}
*{box-sizing:border-box}
body{margin:0 auto;max-width:1200px;padding:24px;font:14px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;
color:var(--fg);background:var(--bg)}
h1{font-size:26px;margin:0 0 4px}
h2{font-size:19px;margin:32px 0 8px;padding-bottom:4px;border-bottom:1px solid var(--line)}
.subtitle{color:var(--muted);margin:0 0 16px}
nav ol{margin:8px 0 0;padding-left:20px;color:var(--muted)}
a{color:var(--accent)}
.scroll{overflow:auto;max-height:640px;border:1px solid var(--line);border-radius:6px}
table{border-collapse:collapse;width:100%;font-size:12.5px}
th,td{padding:4px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top;
white-space:pre-wrap;word-break:break-word;max-width:640px}
th{position:sticky;top:0;background:var(--head);cursor:pointer;user-select:none}
tbody tr:nth-child(even){background:#fafbfc}
.rows{color:var(--muted);font-size:12px;margin:4px 0}
dl.facts{display:grid;grid-template-columns:max-content auto;gap:2px 16px;margin:8px 0}
dl.facts dt{font-weight:600}
dl.facts dd{margin:0;word-break:break-all}
details{margin:8px 0}
summary{cursor:pointer;color:var(--muted)}
pre{background:var(--head);padding:8px;border-radius:6px;white-space:pre-wrap;word-break:break-word;font-size:12px}
footer{margin-top:40px;color:var(--muted);font-size:12px}
"""


def _csp_source(script: str) -> str:
    return (
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii") + "'"
    )


class Report:
    """A report: a title, an optional subtitle and sections; renders to one HTML page or Markdown."""

    def __init__(self, title: str, subtitle: str | None = None, *, max_rows: int = DEFAULT_MAX_ROWS) -> None:
        self.title = title
        self.subtitle = subtitle
        self.max_rows = max_rows
        self.sections: list[Section] = []

    def __repr__(self) -> str:
        return f"Report({self.title!r}, sections={len(self.sections)})"

    def add(
        self,
        title: str,
        *,
        text: str | None = None,
        table: pd.DataFrame | None = None,
        query: str | Iterable[str] | None = None,
        facts: Mapping[str, object] | None = None,
        max_rows: int | None = None,
    ) -> Section:
        """Add a section: the text, the facts, the table (at most ``max_rows`` rows), then the query text
        that produced it (several queries are shown one after the other). Returns the section."""
        section = Section(title)
        if text:
            section.append(Text(text))
        if facts:
            section.append(Facts(dict(facts)))
        if table is not None:
            section.append(Table(table, self.max_rows if max_rows is None else max_rows))
        if query:
            section.append(Query(query if isinstance(query, str) else "\n\n".join(query)))
        self.sections.append(section)
        return section

    def _scripts(self) -> list[str]:
        scripts: dict[str, None] = {}
        for section in self.sections:
            for block in section.blocks:
                scripts.update(dict.fromkeys(block.scripts))
        return list(scripts)

    def to_html(self) -> str:
        """The whole report as one self-contained HTML page."""
        scripts = self._scripts()
        allowed = " ".join(_csp_source(s) for s in scripts) or "'none'"
        csp = f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src {allowed}"
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{html.escape(csp)}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{esc(self.title)}</title>",
            f"<style>{_CSS}</style></head><body>",
            f"<header><h1>{esc(self.title)}</h1>",
        ]
        if self.subtitle:
            parts.append(f'<p class="subtitle">{esc(self.subtitle)}</p>')
        if len(self.sections) > 1:
            items = "".join(
                f'<li><a href="#s{i}">{esc(s.title)}</a></li>' for i, s in enumerate(self.sections, 1)
            )
            parts.append(f"<nav><ol>{items}</ol></nav>")
        parts.append("</header><main>")
        for i, section in enumerate(self.sections, 1):
            parts.append(f'<section id="s{i}"><h2>{esc(section.title)}</h2>')
            parts.extend(block.to_html() for block in section.blocks)
            parts.append("</section>")
        parts.append("</main><footer>Generated by huntbook.</footer>")
        parts.extend(f"<script>{s}</script>" for s in scripts)
        parts.append("</body></html>\n")
        return "\n".join(parts)

    def to_markdown(self) -> str:
        """The report as GitHub-flavoured Markdown."""
        parts = [f"# {md_esc(_one_line(self.title))}"]
        if self.subtitle:
            parts.append(f"_{md_esc(_one_line(self.subtitle))}_")
        for section in self.sections:
            parts.append(f"## {md_esc(_one_line(section.title))}")
            parts.extend(block.to_markdown() for block in section.blocks)
        return "\n\n".join(parts) + "\n"

    def save(self, path: PathLike) -> Path:
        """Write HTML (``.html``/``.htm``) or Markdown (``.md``/``.markdown``) by suffix; return the path."""
        target = Path(path)
        suffix = target.suffix.lower()
        if suffix in (".html", ".htm"):
            content = self.to_html()
        elif suffix in (".md", ".markdown"):
            content = self.to_markdown()
        else:
            raise ValueError(f"{target}: unknown report format {suffix!r}; use .html or .md")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
        return target
