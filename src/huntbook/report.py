"""Self-contained HTML and Markdown reports.

A :class:`Report` is a title and a list of :class:`Section` objects; a section is a title and a list of
blocks (:class:`Text`, :class:`Facts`, :class:`Table`, :class:`Query`, :class:`Chart`, :class:`Entities`,
:class:`Attack`, :class:`Notes`, :class:`Links`). Each block renders itself to HTML and to Markdown::

    report = Report("Case 42", subtitle="SRV01, 2026-10-05 .. 2026-10-12")
    report.add("Logons from 203.0.113.66", text="...", table=df, query=sql, facts={"Account": "jsmith"})
    report.save("case-42.html")  # or .md

Hunts that produce :class:`Finding` objects (a title, a severity, a summary, tables with the queries
that produced them, charts, entities, ATT&CK techniques, notes) report them in one call::

    findings = Findings()
    findings.add("Password spray", severity="high", techniques=["T1110.003"]).add_table(spray, query=sql)
    Report.from_findings(findings, "Case 42").save("case-42.html")

The HTML is one file with inline CSS and inline scripts (the table pager/sorter, and the BokehJS code of
charts), no external resource, and a Content-Security-Policy that allows exactly those scripts by their
sha256 hashes (BokehJS needs no ``'unsafe-eval'``; only a chart with ``CustomJS`` or WebGL adds it): it
opens offline and nothing from the data can run. Every value from the data (titles,
cells, column names, queries, facts, entity fields) is HTML-escaped and stays in the page as text; the
table script moves existing rows and writes only ``textContent``. The Markdown escapes ``|``, newlines,
HTML and Markdown syntax in the same places.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from huntbook._types import PathLike
from huntbook.entities import Entity
from huntbook.errors import DataError, HuntbookError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DEFAULT_MAX_ROWS",
    "PAGE_ROWS",
    "SEVERITIES",
    "SEVERITY_COLOURS",
    "Attack",
    "Block",
    "Chart",
    "ChartEmbed",
    "Entities",
    "Evidence",
    "Facts",
    "Finding",
    "Findings",
    "Links",
    "Notes",
    "Query",
    "Report",
    "Section",
    "Table",
    "Text",
    "build",
    "cell_text",
    "esc",
    "json_value",
    "md_esc",
]

#: Rows of one table written into a report; beyond that the caption says how many were left out.
DEFAULT_MAX_ROWS = 10_000
#: Rows per page of a table in the HTML report (the pager and filter box appear above that).
PAGE_ROWS = 50
#: Severity of a finding, lowest first: the scale of TI verdicts (``huntbook.ti.SEVERITIES``).
SEVERITIES = ("info", "low", "medium", "high")
#: Background colour of each severity's badge (white text on it), in the report and the notebook.
SEVERITY_COLOURS = {"info": "#59636e", "low": "#1a7f37", "medium": "#9a6700", "high": "#cf222e"}

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


def plural(count: int, noun: str, plural: str | None = None) -> str:
    """``plural(1, "row")`` is ``1 row``, ``plural(2, "entity", "entities")`` is ``2 entities``."""
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"


def _check_severity(severity: str, where: str) -> str:
    level = severity.strip().lower()
    if level not in SEVERITIES:
        raise DataError(
            f"unknown severity {severity!r}", where=where, hint=f"use one of {', '.join(SEVERITIES)}"
        )
    return level


# ---------------------------------------------------------------------------------------------------------
# Tables of rows (shared by Table, Entities, Attack and the findings overview)

_TABLE_SCRIPT = (
    "(function(){var PAGE=" + str(PAGE_ROWS) + ",coll=new Intl.Collator(undefined,{numeric:true});"
    "function num(n){return n.toLocaleString('en-US');}"
    "function make(tag,cls,text){var e=document.createElement(tag);if(cls)e.className=cls;"
    "if(text)e.textContent=text;return e;}"
    "document.querySelectorAll('table.sortable').forEach(function(table){"
    "var body=table.tBodies[0];if(!body)return;"
    "var rows=Array.prototype.slice.call(body.rows),rest=body.querySelector('template');"
    "if(rest){rows=rows.concat(Array.prototype.slice.call(rest.content.children));rest.remove();}"
    "var all=rows.length,shown=rows,page=0,bar=null,box,prev,next,info,"
    "low=new Map(rows.map(function(r){return [r,r.textContent.toLowerCase()];}));"
    "function draw(){if(!bar){body.replaceChildren.apply(body,rows);return;}"
    "var pages=Math.max(1,Math.ceil(shown.length/PAGE));page=Math.max(0,Math.min(page,pages-1));"
    "var first=page*PAGE,last=Math.min(first+PAGE,shown.length);"
    "body.replaceChildren.apply(body,shown.slice(first,last));"
    "info.textContent=shown.length?'rows '+num(first+1)+'\\u2013'+num(last)+' of '+num(shown.length)"
    "+(shown.length<all?' matching (of '+num(all)+')':''):'no matching rows';"
    "prev.disabled=page===0;next.disabled=page>=pages-1;}"
    "function filter(){var q=box.value.toLowerCase();"
    "shown=q?rows.filter(function(r){return low.get(r).indexOf(q)>=0;}):rows;draw();}"
    "if(all>PAGE){bar=make('div','pager');box=make('input','filter');box.type='search';"
    "box.placeholder='filter rows';box.setAttribute('aria-label','filter rows');"
    "prev=make('button','prev','\\u2039 prev');next=make('button','next','next \\u203a');"
    "prev.type=next.type='button';info=make('span','pageinfo');"
    "box.addEventListener('input',function(){page=0;filter();});"
    "prev.addEventListener('click',function(){page--;draw();});"
    "next.addEventListener('click',function(){page++;draw();});"
    "bar.append(box,prev,info,next);var at=table.closest('.scroll')||table;"
    "at.parentNode.insertBefore(bar,at);"
    "draw();}"
    "var heads=table.querySelectorAll('thead th');heads.forEach(function(th,i){"
    "th.addEventListener('click',function(){var dir=th.dataset.dir==='asc'?'desc':'asc';"
    "heads.forEach(function(h){delete h.dataset.dir;});th.dataset.dir=dir;"
    "var keyed=rows.map(function(r,k){var c=r.cells[i],s=c?c.textContent:'',t=s.trim();"
    "return {r:r,s:s,n:t===''?NaN:Number(t),k:k};});"
    "keyed.sort(function(a,b){var x=!isNaN(a.n),y=!isNaN(b.n),"
    "c=x&&y?a.n-b.n:x!==y?(x?-1:1):coll.compare(a.s,b.s);"
    "return (dir==='asc'?c:-c)||a.k-b.k;});"
    "rows=keyed.map(function(e){return e.r;});if(bar)filter();else draw();});});});})();"
)


def _rows_caption(shown: int, total: int) -> str:
    if total == 0:
        return "no rows"
    if shown == total:
        return plural(total, "row")
    return f"showing {shown:,} of {total:,} rows ({total - shown:,} left out)"


def _grid_html(
    columns: Sequence[object], rows: Sequence[Sequence[object]], caption: str, title: str | None = None
) -> str:
    heading = f"<h3>{esc(title)}</h3>" if title else ""
    caption_html = f'<p class="rows">{esc(caption)}</p>'
    if not columns:
        return heading + caption_html
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    lines = ["<tr>" + "".join(f"<td>{esc(v)}</td>" for v in row) + "</tr>" for row in rows]
    body = "".join(lines[:PAGE_ROWS])
    if len(lines) > PAGE_ROWS:  # the other pages: parsed but not laid out until the pager shows them
        body += "<template>" + "".join(lines[PAGE_ROWS:]) + "</template>"
    return (
        f'{heading}{caption_html}<div class="scroll"><table class="sortable"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _grid_markdown(
    columns: Sequence[object], rows: Sequence[Sequence[object]], caption: str, title: str | None = None
) -> str:
    heading = f"### {md_esc(_one_line(title))}\n\n" if title else ""
    caption = md_esc(_one_line(caption))
    if not columns:
        return f"{heading}_{caption}_"
    lines = [
        "| " + " | ".join(md_esc(c) for c in columns) + " |",
        "|" + "|".join(" --- " for _ in columns) + "|",
        *("| " + " | ".join(md_esc(v) for v in row) + " |" for row in rows),
    ]
    return f"{heading}_{caption}_\n\n" + "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# Blocks


class Block(ABC):
    """One piece of a section. ``scripts``: inline scripts every block of this class needs; a block whose
    scripts depend on its content overrides :meth:`page_scripts`. Each script is included once and allowed
    by its hash in the page's Content-Security-Policy."""

    scripts: ClassVar[tuple[str, ...]] = ()

    def page_scripts(self) -> tuple[str, ...]:
        """The inline scripts this block needs in the page, in order."""
        return self.scripts

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
class Notes(Block):
    """A bulleted list of free notes (plain text)."""

    notes: Sequence[str]

    def to_html(self) -> str:
        items = "".join(
            "<li>" + "<br>".join(esc(line) for line in str(note).strip().splitlines()) + "</li>"
            for note in self.notes
        )
        return f'<ul class="notes">{items}</ul>'

    def to_markdown(self) -> str:
        return "\n".join(f"- {md_esc(_one_line(str(note)))}" for note in self.notes)


_SAFE_HREF = re.compile(r"(?i)^(?:https?://|[^:/?#\s][^:?#\s]*(?:[?#]\S*)?$)")


@dataclass
class Links(Block):
    """A list of links: (text, href) pairs. An href is a relative path (``investigations/host.html``)
    or an http(s) URL; anything else (``javascript:``, ``data:``) is refused. Both are escaped."""

    links: Sequence[tuple[str, str]]

    def __post_init__(self) -> None:
        for text, href in self.links:
            if not _SAFE_HREF.match(str(href)):
                raise DataError(
                    f"unsafe link {href!r}",
                    where=f"Links({text!r})",
                    hint="use a relative path or an http(s) URL",
                )

    def to_html(self) -> str:
        items = "".join(f'<li><a href="{esc(href)}">{esc(text)}</a></li>' for text, href in self.links)
        return f'<ul class="links">{items}</ul>'

    def to_markdown(self) -> str:
        def target(href: str) -> str:
            return str(href).replace(" ", "%20").replace("(", "%28").replace(")", "%29")

        return "\n".join(f"- [{md_esc(_one_line(text))}]({target(href)})" for text, href in self.links)


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


@dataclass
class Table(Block):
    """A DataFrame, capped at ``max_rows`` rows and saying so. In HTML, more than :data:`PAGE_ROWS` rows
    are paged with a filter box (the rows after the first page wait in a ``<template>``, so a big table
    loads fast), and a click on a column header sorts; all of it works offline."""

    frame: pd.DataFrame
    max_rows: int = DEFAULT_MAX_ROWS
    title: str | None = None

    scripts: ClassVar[tuple[str, ...]] = (_TABLE_SCRIPT,)

    def _rows(self) -> tuple[list[str], list[tuple[object, ...]], int]:
        columns = [cell_text(c) for c in self.frame.columns]
        shown = self.frame.head(max(self.max_rows, 0))
        return columns, list(shown.itertuples(index=False, name=None)), len(self.frame)

    @staticmethod
    def caption(shown: int, total: int) -> str:
        """``"12 rows"``, ``"showing 200 of 5,123 rows (4,923 left out)"`` or ``"no rows"``."""
        return _rows_caption(shown, total)

    def to_html(self) -> str:
        columns, rows, total = self._rows()
        return _grid_html(columns, rows, self.caption(len(rows), total), self.title)

    def to_markdown(self) -> str:
        columns, rows, total = self._rows()
        return _grid_markdown(columns, rows, self.caption(len(rows), total), self.title)


@runtime_checkable
class ChartEmbed(Protocol):
    """What :class:`Chart` embeds: a chart's root element and the raw JavaScript that draws it
    (``huntbook.vis.embed(chart)`` returns one)."""

    @property
    def div(self) -> str: ...

    @property
    def scripts(self) -> Sequence[str]: ...


_DIV_ATTRIBUTE = re.compile(r"id|class|style|data-[a-z0-9-]+")


class _DivCheck(HTMLParser):
    """Finds anything in a chart's root markup that is not an empty ``<div>`` with plain attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "div":
            self.problems.append(f"<{tag}>")
        self.problems += [f"attribute {name}" for name, _ in attrs if not _DIV_ATTRIBUTE.fullmatch(name)]

    def handle_endtag(self, tag: str) -> None:
        if tag != "div":
            self.problems.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.problems.append("text")

    def handle_comment(self, data: str) -> None:
        self.problems.append("a comment")

    def unknown_decl(self, data: str) -> None:
        self.problems.append("a declaration")


@dataclass
class Chart(Block):
    """A chart: ``embed`` has ``.div`` (the chart's root element, empty ``<div>`` markup) and ``.scripts``
    (raw JavaScript: the BokehJS library and the document's script); a Bokeh object is embedded with
    ``huntbook.vis.embed``. The scripts are allowed by hash in the page's CSP; Markdown gets a note."""

    embed: Any
    title: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.embed, ChartEmbed):
            from huntbook.vis import embed  # Bokeh is heavy: loaded only for a chart

            self.embed = embed(self.embed)
        check = _DivCheck()
        check.feed(str(self.embed.div))
        check.close()
        if check.problems:
            raise DataError(
                f"a chart's div must be empty <div> markup, found {', '.join(check.problems[:3])}",
                where=f"Chart({self.title!r}).div",
                hint="pass the output of huntbook.vis.embed(chart)",
            )

    def page_scripts(self) -> tuple[str, ...]:
        return tuple(str(s) for s in self.embed.scripts)

    @property
    def needs_eval(self) -> bool:
        """The chart compiles JavaScript at run time (Bokeh ``CustomJS``, WebGL): its page must allow
        ``'unsafe-eval'``. huntbook's own charts do not."""
        return bool(getattr(self.embed, "needs_eval", False))

    def to_html(self) -> str:
        caption = f"<figcaption>{esc(self.title)}</figcaption>" if self.title else ""
        return f'<figure class="chart">{caption}{self.embed.div}</figure>'

    def to_markdown(self) -> str:
        return f"_chart: {md_esc(_one_line(self.title or 'untitled'))} (see the HTML report)_"


@dataclass
class Entities(Block):
    """Entities (``huntbook.entities`` objects) as a table: type, key and their fields."""

    entities: Sequence[Entity]

    _COLUMNS: ClassVar[tuple[str, ...]] = ("type", "key", "fields")
    scripts: ClassVar[tuple[str, ...]] = (_TABLE_SCRIPT,)

    def _rows(self) -> list[tuple[str, str, str]]:
        rows = []
        for item in dict.fromkeys(self.entities):  # each entity once, in order
            if not isinstance(item, Entity):
                raise DataError(
                    f"not an entity: {type(item).__name__}",
                    where="Entities",
                    hint="pass huntbook.entities objects (hb.IpAddress(...), Entity.from_frame(...))",
                )
            fields = "\n".join(
                f"{name}: {value.key if isinstance(value, Entity) else cell_text(value)}"
                for name, value in item.as_dict().items()
                if not _missing(value)
            )
            rows.append((item.entity_type, item.key, fields))
        return rows

    def to_html(self) -> str:
        rows = self._rows()
        return _grid_html(self._COLUMNS, rows, plural(len(rows), "entity", "entities"))

    def to_markdown(self) -> str:
        rows = self._rows()
        return _grid_markdown(self._COLUMNS, rows, plural(len(rows), "entity", "entities"))


def _technique_id(text: object) -> str:
    """``"attack.t1059.001"`` (a Sigma tag) or ``" t1059.001"`` -> ``"T1059.001"``."""
    value = cell_text(text).strip().upper()
    return value.removeprefix("ATTACK.")


def _attack_names(ids: Sequence[str]) -> tuple[dict[str, tuple[str, str]], str | None]:
    """technique id -> (name, tactics) from ``huntbook.enrich.attack``; or why names are unavailable."""
    try:
        from huntbook.enrich import attack  # pandas and the ATT&CK data: loaded only for an ATT&CK block

        frame = attack(list(ids))
    except (ImportError, AttributeError, HuntbookError) as exc:  # module, function or data missing
        return {}, str(exc) or type(exc).__name__
    names: dict[str, tuple[str, str]] = {}
    for row in frame.to_dict("records"):
        if row.get("found", True) is not False and cell_text(row.get("name")):
            technique = _technique_id(row.get("technique_id"))
            names[technique] = (cell_text(row["name"]), cell_text(row.get("tactics")))
    return names, None


@dataclass
class Attack(Block):
    """MITRE ATT&CK techniques: id, name and tactics (names from ``huntbook.enrich.attack``; without it,
    or for an unknown id, the bare id and a note saying why)."""

    techniques: Sequence[str]

    _COLUMNS: ClassVar[tuple[str, ...]] = ("technique", "name", "tactics")
    scripts: ClassVar[tuple[str, ...]] = (_TABLE_SCRIPT,)

    def __post_init__(self) -> None:
        self._resolved: tuple[list[tuple[str, str, str]], str] | None = None

    def rows(self) -> tuple[list[tuple[str, str, str]], str]:
        """(technique, name, tactics) rows and the caption; looked up once."""
        if self._resolved is None:
            ids = list(dict.fromkeys(_technique_id(t) for t in self.techniques if cell_text(t).strip()))
            names, problem = _attack_names(ids) if ids else ({}, None)
            rows = [(t, *names.get(t, ("", ""))) for t in ids]
            caption = plural(len(ids), "technique")
            if problem:
                caption += f"; names unavailable: {problem}"
            elif len(names) < len(ids):
                caption += f"; {len(ids) - len(names):,} not found in ATT&CK"
            self._resolved = (rows, caption)
        return self._resolved

    def to_html(self) -> str:
        return _grid_html(self._COLUMNS, *self.rows())

    def to_markdown(self) -> str:
        return _grid_markdown(self._COLUMNS, *self.rows())


@dataclass
class _Overview(Block):
    """The findings at a glance, most severe first."""

    findings: Sequence[Finding]

    scripts: ClassVar[tuple[str, ...]] = (_TABLE_SCRIPT,)

    def _rows(self) -> list[tuple[object, ...]]:
        ranked = sorted(self.findings, key=lambda f: -SEVERITIES.index(f.severity))
        return [
            (f.severity, f.title, ", ".join(f.techniques), len(f.tables), len(f.entities)) for f in ranked
        ]

    _COLUMNS: ClassVar[tuple[str, ...]] = ("severity", "finding", "ATT&CK", "tables", "entities")

    def to_html(self) -> str:
        rows = self._rows()
        return _grid_html(self._COLUMNS, rows, plural(len(rows), "finding"))

    def to_markdown(self) -> str:
        rows = self._rows()
        return _grid_markdown(self._COLUMNS, rows, plural(len(rows), "finding"))


# ---------------------------------------------------------------------------------------------------------
# Findings


@dataclass
class Evidence:
    """A table in a finding and the query that produced it (by default the query a huntbook
    QueryProvider recorded in ``frame.attrs["query"]``)."""

    frame: pd.DataFrame
    query: str | None = None
    title: str | None = None
    max_rows: int | None = None

    def __post_init__(self) -> None:
        if self.query is None:
            recorded = getattr(self.frame, "attrs", {}).get("query")
            self.query = recorded if isinstance(recorded, str) else None


@dataclass
class Finding:
    """What a hunt found: a title, a severity (:data:`SEVERITIES`), a summary, key facts, tables with
    their queries, charts, entities, ATT&CK technique ids and free notes."""

    title: str
    severity: str = "info"
    summary: str = ""
    facts: Mapping[str, object] = field(default_factory=dict)
    tables: list[Evidence] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    entities: list[Entity] = field(default_factory=list)
    techniques: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.severity = _check_severity(self.severity, f"Finding({self.title!r}).severity")
        self.tables = [t if isinstance(t, Evidence) else Evidence(t) for t in self.tables]
        self.charts = [c if isinstance(c, Chart) else Chart(c) for c in self.charts]
        self.entities = list(self.entities)
        self.techniques = [self.techniques] if isinstance(self.techniques, str) else list(self.techniques)
        self.notes = [self.notes] if isinstance(self.notes, str) else list(self.notes)

    def add_table(
        self,
        frame: pd.DataFrame,
        query: str | None = None,
        *,
        title: str | None = None,
        max_rows: int | None = None,
    ) -> Finding:
        """Add a table and the query that produced it; returns the finding (calls chain)."""
        self.tables.append(Evidence(frame, query, title, max_rows))
        return self

    def add_chart(self, chart: Any, title: str | None = None) -> Finding:
        """Add a chart (``huntbook.vis.embed(...)`` output or a Bokeh object); returns the finding."""
        self.charts.append(chart if isinstance(chart, Chart) else Chart(chart, title))
        return self

    def add_note(self, note: str) -> Finding:
        """Add a free note; returns the finding."""
        self.notes.append(note)
        return self

    def section(self, max_rows: int = DEFAULT_MAX_ROWS) -> Section:
        """This finding as a report section: summary, facts, techniques, tables and their queries,
        charts, entities, notes."""
        section = Section(self.title, severity=self.severity)
        if self.summary:
            section.append(Text(self.summary))
        if self.facts:
            section.append(Facts(dict(self.facts)))
        if self.techniques:
            section.append(Attack(self.techniques))
        for table in self.tables:
            cap = max_rows if table.max_rows is None else table.max_rows
            section.append(Table(table.frame, cap, table.title))
            if table.query:
                section.append(Query(table.query))
        for chart in self.charts:
            section.append(chart)
        if self.entities:
            section.append(Entities(self.entities))
        if self.notes:
            section.append(Notes(self.notes))
        return section


class Findings(list[Finding]):
    """The findings of a hunt, in the order they were found; optionally a title and subtitle, the queries
    that ran (``queries``: dicts with query, parameters, rows, seconds, text) and free ``notes`` (parts
    skipped or failed). Renders in Jupyter, saves as HTML/Markdown/JSON (:meth:`save`)."""

    def __init__(
        self, findings: Iterable[Finding] = (), *, title: str | None = None, subtitle: str | None = None
    ) -> None:
        super().__init__(findings)
        self.title = title
        self.subtitle = subtitle
        self.queries: list[dict[str, Any]] = []
        self.notes: list[str] = []

    def add(self, title: str, **details: Any) -> Finding:
        """Append ``Finding(title, **details)`` and return it."""
        finding = Finding(title, **details)
        self.append(finding)
        return finding

    def summary(self) -> pd.DataFrame:
        """One row per finding: title, severity, techniques, tables, entities; most severe first."""
        import pandas as pd

        frame = pd.DataFrame(
            [
                {
                    "title": f.title,
                    "severity": f.severity,
                    "techniques": list(f.techniques),
                    "tables": len(f.tables),
                    "entities": len(f.entities),
                }
                for f in self
            ],
            columns=["title", "severity", "techniques", "tables", "entities"],
        )
        rank = frame["severity"].map(SEVERITIES.index)
        return frame.iloc[rank.sort_values(ascending=False, kind="stable").index].reset_index(drop=True)

    def report(self, title: str | None = None, subtitle: str | None = None, **options: Any) -> Report:
        """:meth:`Report.from_findings` of these findings, then a "Notes" section (the notes) and a
        "Queries run" section (each query's name, parameters, rows and seconds, and its text)."""
        report = Report.from_findings(
            self, title or self.title or "huntbook findings", subtitle or self.subtitle, **options
        )
        if self.notes:
            report.sections.append(Section("Notes", [Notes(self.notes)]))
        if self.queries:
            import pandas as pd

            runs = pd.DataFrame(
                [
                    {
                        "query": q.get("query"),
                        "parameters": ", ".join(
                            f"{k}={cell_text(v)}" for k, v in q.get("parameters", {}).items()
                        ),
                        "rows": q.get("rows"),
                        "seconds": q.get("seconds"),
                    }
                    for q in self.queries
                ],
                columns=["query", "parameters", "rows", "seconds"],
            )
            section = Section("Queries run", [Table(runs)])
            for q in self.queries:
                if q.get("text"):
                    section.append(Query(str(q["text"]), label=str(q.get("query") or "Query")))
            report.sections.append(section)
        return report

    def to_dict(self, max_rows: int = DEFAULT_MAX_ROWS) -> dict[str, Any]:
        """The findings as JSON-safe data: title, subtitle, each finding (title, severity, summary, facts,
        tables as records with their query, chart titles, entities, techniques, notes), notes, queries.
        Times are ISO text; missing values are None."""
        return {
            "title": self.title,
            "subtitle": self.subtitle,
            "findings": [
                {
                    "title": f.title,
                    "severity": f.severity,
                    "summary": f.summary,
                    "facts": {str(k): json_value(v) for k, v in f.facts.items()},
                    "tables": [
                        {
                            "title": t.title,
                            "query": t.query,
                            "rows": len(t.frame),
                            "columns": [cell_text(c) for c in t.frame.columns],
                            "records": [
                                {cell_text(k): json_value(v) for k, v in row.items()}
                                for row in t.frame.head(max_rows).to_dict("records")
                            ],
                        }
                        for t in f.tables
                    ],
                    "charts": [c.title for c in f.charts],
                    "entities": [
                        {
                            "type": e.entity_type,
                            "key": e.key,
                            **{k: json_value(v) for k, v in e.as_dict().items()},
                        }
                        for e in dict.fromkeys(f.entities)
                    ],
                    "techniques": list(f.techniques),
                    "notes": list(f.notes),
                }
                for f in self
            ],
            "notes": list(self.notes),
            "queries": [{k: json_value(v) for k, v in q.items()} for q in self.queries],
        }

    def to_json(self, indent: int | None = 2, max_rows: int = DEFAULT_MAX_ROWS) -> str:
        """:meth:`to_dict` as JSON text."""
        import json

        return json.dumps(self.to_dict(max_rows), indent=indent, ensure_ascii=False)

    def to_html(self) -> str:
        """The findings as one self-contained HTML page (:meth:`report`)."""
        return self.report().to_html()

    def to_markdown(self) -> str:
        """The findings as Markdown (:meth:`report`)."""
        return self.report().to_markdown()

    def _repr_html_(self) -> str:
        """Jupyter: the report's HTML in a sandboxed frame (its scripts and CSP stay inside)."""
        page = html.escape(self.to_html(), quote=True)
        style = "width:100%;height:640px;border:0"
        return f'<iframe sandbox="allow-scripts" style="{style}" srcdoc="{page}"></iframe>'

    def save(self, path: PathLike) -> Path:
        """Write HTML (``.html``/``.htm``), Markdown (``.md``/``.markdown``) or JSON (``.json``) by suffix."""
        target = Path(path)
        if target.suffix.lower() != ".json":
            return self.report().save(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.to_json() + "\n", encoding="utf-8")
        return target


def json_value(value: object) -> Any:
    """A JSON-safe value: None for missing, ISO text for times, seconds for timespans, lists and dicts
    walked, else str (a config ``Secret`` shows its reference, never the value)."""
    if _missing(value):  # None, NaN, NaT, NA
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Entity):
        return value.key
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_value(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if type(value).__name__ in ("datetime64", "timedelta64"):
        import pandas as pd

        stamp: Any = value
        return json_value(pd.Timestamp(stamp) if "date" in type(stamp).__name__ else pd.Timedelta(stamp))
    if hasattr(value, "tolist") and not isinstance(value, str | bytes):  # numpy arrays and scalars
        return json_value(value.tolist())
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    return cell_text(value)


# ---------------------------------------------------------------------------------------------------------
# Sections and the report


@dataclass
class Section:
    """A titled part of a report: its blocks in order, and a severity badge for a finding."""

    title: str
    blocks: list[Block] = field(default_factory=list)
    severity: str | None = None

    def __post_init__(self) -> None:
        if self.severity is not None:
            self.severity = _check_severity(self.severity, f"Section({self.title!r}).severity")

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
h3{font-size:15px;margin:16px 0 4px}
.subtitle{color:var(--muted);margin:0 0 16px}
nav ol{margin:8px 0 0;padding-left:20px;color:var(--muted)}
a{color:var(--accent)}
.scroll{overflow:auto;max-height:640px;border:1px solid var(--line);border-radius:6px}
table{border-collapse:collapse;width:100%;font-size:12.5px}
th,td{padding:4px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top;
white-space:pre-wrap;word-break:break-word;max-width:640px}
th{position:sticky;top:0;background:var(--head);cursor:pointer;user-select:none}
th[data-dir=asc]::after{content:" \\25B2"}
th[data-dir=desc]::after{content:" \\25BC"}
tbody tr:nth-child(even){background:#fafbfc}
.rows{color:var(--muted);font-size:12px;margin:4px 0}
.pager{display:flex;gap:8px;align-items:center;margin:4px 0;font-size:12px;color:var(--muted)}
.pager input{flex:0 1 260px;padding:2px 6px;border:1px solid var(--line);border-radius:4px;font:inherit}
.pager button{padding:1px 8px;border:1px solid var(--line);border-radius:4px;background:var(--head);
font:inherit;cursor:pointer}
.pager button:disabled{opacity:.4;cursor:default}
dl.facts{display:grid;grid-template-columns:max-content auto;gap:2px 16px;margin:8px 0}
dl.facts dt{font-weight:600}
dl.facts dd{margin:0;word-break:break-all}
ul.notes{margin:8px 0;padding-left:20px}
figure.chart{margin:12px 0}
figcaption{font-weight:600;margin-bottom:4px}
.sev{display:inline-block;margin-left:8px;padding:0 8px;border-radius:10px;color:#fff;font-size:12px;
font-weight:600;vertical-align:middle}
details{margin:8px 0}
summary{cursor:pointer;color:var(--muted)}
pre{background:var(--head);padding:8px;border-radius:6px;white-space:pre-wrap;word-break:break-word;font-size:12px}
footer{margin-top:40px;color:var(--muted);font-size:12px}
""" + "".join(f".sev-{name}{{background:{colour}}}\n" for name, colour in SEVERITY_COLOURS.items())

_SCRIPT_END = re.compile(r"</(script)", re.IGNORECASE)


def _script_safe(script: str) -> str:
    """A script's text that cannot end its ``<script>`` element early (``</script`` -> ``<\\/script``,
    ``<!--`` -> ``<\\!--``, which mean the same inside JavaScript strings, regexes and comments)."""
    return _SCRIPT_END.sub(r"<\\/\1", script).replace("<!--", "<\\!--")


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

    def add_finding(self, finding: Finding) -> Section:
        """Add a finding as a section (:meth:`Finding.section`); returns the section."""
        section = finding.section(self.max_rows)
        self.sections.append(section)
        return section

    @classmethod
    def from_findings(
        cls,
        findings: Iterable[Finding],
        title: str,
        subtitle: str | None = None,
        *,
        max_rows: int = DEFAULT_MAX_ROWS,
        overview: bool = True,
    ) -> Report:
        """A report of findings: an overview table (most severe first, with ``overview=True``), then one
        section per finding in the order given."""
        items = list(findings)
        report = cls(title, subtitle, max_rows=max_rows)
        if overview and items:
            report.sections.append(Section("Overview", [_Overview(items)]))
        for finding in items:
            report.add_finding(finding)
        return report

    def _scripts(self) -> list[str]:
        scripts: dict[str, None] = {}
        for section in self.sections:
            for block in section.blocks:
                scripts.update(dict.fromkeys(_script_safe(s) for s in block.page_scripts()))
        return list(scripts)

    def to_html(self) -> str:
        """The whole report as one self-contained HTML page."""
        scripts = self._scripts()
        allowed = " ".join(_csp_source(s) for s in scripts) or "'none'"
        if any(isinstance(b, Chart) and b.needs_eval for s in self.sections for b in s.blocks):
            allowed += " 'unsafe-eval'"
        csp = (
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
            f"script-src {allowed}; base-uri 'none'; form-action 'none'"
        )
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
            level = section.severity
            badge = f' <span class="sev sev-{level}">{level}</span>' if level else ""
            parts.append(f'<section id="s{i}"><h2>{esc(section.title)}{badge}</h2>')
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
            badge = f" (severity: {section.severity})" if section.severity else ""
            parts.append(f"## {md_esc(_one_line(section.title))}{badge}")
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
            raise DataError(f"unknown report format {suffix!r}", where=str(target), hint="use .html or .md")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
        return target


def build(
    findings: Iterable[Finding], title: str = "huntbook report", subtitle: str | None = None, **options: Any
) -> Report:
    """A report of findings, :meth:`Report.from_findings`: ``hb.report.build(findings).save("case.html")``."""
    return Report.from_findings(findings, title, subtitle, **options)
