"""huntbook.report: self-contained, escaped HTML and Markdown."""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from huntbook.report import Report, Table, md_esc

# Attacker-controlled strings as they could appear in log data.
PAYLOADS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(2)>',
    "</td></tr></table><script>alert(3)</script>",
    "' onmouseover='alert(4)",
    "</details><iframe src=//evil.example>",
    "</code></pre><svg onload=alert(5)>",
    "<!-- comment --><style>body{display:none}</style>",
    "&lt;already-escaped&gt; & ampersand",
]

ALLOWED = {  # tag -> attributes the report itself may write
    "html": {"lang"},
    "head": set(),
    "meta": {"charset", "http-equiv", "content", "name"},
    "title": set(),
    "style": set(),
    "body": set(),
    "header": set(),
    "h1": set(),
    "h2": set(),
    "p": {"class"},
    "nav": set(),
    "ol": set(),
    "li": set(),
    "a": {"href"},
    "main": set(),
    "section": {"id"},
    "br": set(),
    "dl": {"class"},
    "dt": set(),
    "dd": set(),
    "div": {"class"},
    "table": {"class"},
    "thead": set(),
    "tbody": set(),
    "tr": set(),
    "th": set(),
    "td": set(),
    "details": set(),
    "summary": set(),
    "pre": set(),
    "code": set(),
    "footer": set(),
    "script": set(),
}


class Collector(HTMLParser):
    """Every element, attribute and text node of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        (self.scripts if self._in_script else self.text).append(data)


def parse(page: str) -> Collector:
    collector = Collector()
    collector.feed(page)
    collector.close()
    return collector


def csp_of(found: Collector) -> str:
    (csp,) = [
        a["content"]
        for t, a in found.tags
        if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"
    ]
    assert csp is not None
    return csp


def hostile_report() -> Report:
    frame = pd.DataFrame({p: [p, f"x{p}y", 1] for p in PAYLOADS[:4]} | {"plain": ["a", "b", "c"]})
    report = Report(PAYLOADS[0], subtitle=PAYLOADS[1])
    report.add(PAYLOADS[2], text=PAYLOADS[3] + "\n\n" + PAYLOADS[4], table=frame, query=PAYLOADS[5])
    report.add(PAYLOADS[6], facts={PAYLOADS[7]: PAYLOADS[0], "list": PAYLOADS[:2]}, query=["a", PAYLOADS[4]])
    return report


def test_html_escapes_every_value_from_the_data() -> None:
    page = hostile_report().to_html()
    found = parse(page)
    unexpected = [(t, a) for t, a in found.tags if t not in ALLOWED or not set(a) <= ALLOWED[t]]
    assert unexpected == []
    assert [t for t, _ in found.tags].count("script") == 1  # only the report's own sort script
    assert page.lower().count("<script") == 1
    assert "onerror=" not in " ".join(str(a) for _, a in found.tags)
    assert not any(a.get("href", "#").lstrip("#s").strip("0123456789") for t, a in found.tags if t == "a")
    text = "".join(found.text)
    for payload in PAYLOADS:  # every payload survives as text, character for character
        assert payload in text, payload


def test_html_is_self_contained_and_allows_only_its_own_script() -> None:
    page = hostile_report().to_html()
    found = parse(page)
    attributes = [a for _, a in found.tags]
    assert not any("src" in a for a in attributes)  # no script, image or frame loaded from anywhere
    assert all(str(a["href"]).startswith("#") for a in attributes if "href" in a)
    assert not any(t in ("link", "img", "iframe", "object") for t, _ in found.tags)
    csp = csp_of(found)
    assert "default-src 'none'" in csp
    (script,) = found.scripts
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp


def test_report_without_tables_allows_no_script() -> None:
    report = Report("t")
    report.add("s", text="no table here")
    page = report.to_html()
    assert "<script" not in page
    assert "script-src 'none'" in csp_of(parse(page))


def test_row_cap_says_how_many_rows_are_shown() -> None:
    frame = pd.DataFrame({"n": range(250), "v": ["x"] * 250})
    report = Report("t")
    report.add("capped", table=frame)
    report.add("smaller cap", table=frame, max_rows=5)
    report.add("small", table=frame.head(3))
    report.add("empty", table=frame.head(0))
    page = report.to_html()
    assert "showing 200 of 250 rows" in page
    assert "showing 5 of 250 rows" in page
    assert '<p class="rows">3 rows</p>' in page
    assert "no rows" in page
    bodies = re.findall(r"<tbody>(.*?)</tbody>", page, re.S)
    assert [b.count("<tr>") for b in bodies] == [200, 5, 3, 0]
    markdown = report.to_markdown()
    assert "_showing 200 of 250 rows_" in markdown and "_showing 5 of 250 rows_" in markdown


def test_report_wide_row_cap() -> None:
    report = Report("t", max_rows=10)
    report.add("capped", table=pd.DataFrame({"n": range(11)}))
    assert "showing 10 of 11 rows" in report.to_html()
    assert Table.caption(1, 1) == "1 row"


def test_missing_values_are_empty_cells() -> None:
    frame = pd.DataFrame(
        {
            "s": pd.Series(["a", None, pd.NA], dtype="object"),
            "f": [1.5, float("nan"), 2.0],
            "t": pd.to_datetime(["2026-10-05T01:02:03Z", None, "2026-10-06T00:00:00Z"]),
        }
    )
    report = Report("t")
    report.add("gaps", table=frame)
    rows = re.findall(r"<tr>(.*?)</tr>", report.to_html())[1:]
    assert rows[1] == "<td></td><td></td><td></td>"
    assert rows[0] == "<td>a</td><td>1.5</td><td>2026-10-05T01:02:03+00:00</td>"


def markdown_cells(line: str) -> list[str]:
    """Split a Markdown table row on unescaped pipes."""
    assert line.startswith("| ") and line.endswith(" |")
    return [c.strip() for c in re.split(r"(?<!\\)\|", line[2:-2])]


def test_markdown_table_shape_and_escaping() -> None:
    frame = pd.DataFrame(
        {"a|b": ["x|y", "line1\nline2", "<script>alert(1)</script>"], "c": ["*bold*", "`c`", "_u_"]}
    )
    report = Report("Case | 42", subtitle="sub")
    report.add("Table", table=frame)
    lines = report.to_markdown().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| "))
    table = lines[start : start + 5]
    assert [len(markdown_cells(line)) for line in (table[0], *table[2:])] == [2, 2, 2, 2]
    assert table[1] == "| --- | --- |"
    assert markdown_cells(table[0]) == ["a\\|b", "c"]
    assert markdown_cells(table[2]) == ["x\\|y", "\\*bold\\*"]
    assert markdown_cells(table[3]) == ["line1<br>line2", "\\`c\\`"]
    assert markdown_cells(table[4]) == ["&lt;script&gt;alert(1)&lt;/script&gt;", "\\_u\\_"]
    assert lines[0] == "# Case \\| 42"
    assert "<script" not in report.to_markdown()


def test_markdown_escapes_text_facts_and_fences_queries() -> None:
    report = Report("t")
    report.add("s", text="# not a heading\n\n- not a list <b>", facts={"k|": "v\nw"}, query="SELECT '```'")
    markdown = report.to_markdown()
    assert "\\# not a heading" in markdown
    assert "\\- not a list &lt;b&gt;" in markdown
    assert "- **k\\|:** v<br>w" in markdown
    assert "````\nSELECT '```'\n````" in markdown  # a fence longer than any backtick run inside
    assert md_esc("1.0") == "1.0"  # numbers in cells stay as they are
    assert md_esc("1. item", block=True) == "\\1. item"


def test_sections_keep_order_and_link_from_the_contents() -> None:
    report = Report("t")
    for title in ("first", "second", "third"):
        report.add(title, text=title)
    page = report.to_html()
    assert page.index(">first</h2>") < page.index(">second</h2>") < page.index(">third</h2>")
    assert '<a href="#s2">second</a>' in page and '<section id="s2">' in page
    md = report.to_markdown()
    assert md.index("## first") < md.index("## second") < md.index("## third")


def test_save_by_suffix(tmp_path: Path) -> None:
    report = Report("Saved")
    report.add("s", table=pd.DataFrame({"a": [1]}))
    html_path = report.save(tmp_path / "out" / "r.html")
    md_path = report.save(tmp_path / "r.MD")
    assert html_path == tmp_path / "out" / "r.html"
    assert html_path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert md_path.read_text(encoding="utf-8").startswith("# Saved\n")
    with pytest.raises(ValueError, match=r"\.txt"):
        report.save(tmp_path / "r.txt")
    assert not (tmp_path / "r.txt").exists()


def test_import_is_light() -> None:
    code = "import sys, huntbook.report; print([m for m in ('pandas', 'duckdb') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
