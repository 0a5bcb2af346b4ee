"""huntbook.report: self-contained, escaped HTML and Markdown."""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

import huntbook.report as report_module
from huntbook.entities import Alert, IpAddress, Process
from huntbook.errors import DataError, MissingExtraError
from huntbook.report import (
    DEFAULT_MAX_ROWS,
    PAGE_ROWS,
    SEVERITIES,
    Chart,
    Entities,
    Finding,
    Findings,
    Report,
    Table,
    md_esc,
)
from huntbook.testing.browser import Browser, Page, browser_skip_reason

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
    "h3": set(),
    "span": {"class"},
    "ul": {"class"},
    "figure": {"class"},
    "figcaption": set(),
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
    "template": set(),
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
    report = Report("t", max_rows=200)
    report.add("capped", table=frame)
    report.add("smaller cap", table=frame, max_rows=5)
    report.add("small", table=frame.head(3))
    report.add("empty", table=frame.head(0))
    page = report.to_html()
    assert "showing 200 of 250 rows (50 left out)" in page
    assert "showing 5 of 250 rows (245 left out)" in page
    assert '<p class="rows">3 rows</p>' in page
    assert "no rows" in page
    bodies = re.findall(r"<tbody>(.*?)</tbody>", page, re.S)
    assert [b.count("<tr>") for b in bodies] == [200, 5, 3, 0]
    markdown = report.to_markdown()
    assert (
        "_showing 200 of 250 rows (50 left out)_" in markdown
        and "_showing 5 of 250 rows (245 left out)_" in markdown
    )


def test_report_wide_row_cap() -> None:
    report = Report("t", max_rows=10)
    report.add("capped", table=pd.DataFrame({"n": range(11)}))
    assert "showing 10 of 11 rows (1 left out)" in report.to_html()
    assert Table.caption(1, 1) == "1 row"


def test_default_cap_is_ten_thousand_rows_and_the_rest_is_counted() -> None:
    assert DEFAULT_MAX_ROWS == 10_000
    frame = pd.DataFrame({"n": range(10_007)})
    report = Report("t")
    report.add("big", table=frame)
    page = report.to_html()
    (body,) = re.findall(r"<tbody>(.*?)</tbody>", page, re.S)
    assert body.count("<tr>") == 10_000 and "<td>9999</td>" in body and "<td>10000</td>" not in body
    assert "showing 10,000 of 10,007 rows (7 left out)" in page
    assert "_showing 10,000 of 10,007 rows (7 left out)_" in report.to_markdown()


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
    with pytest.raises(DataError, match=r"\.txt"):
        report.save(tmp_path / "r.txt")
    assert not (tmp_path / "r.txt").exists()


def test_import_is_light() -> None:
    code = "import sys, huntbook.report; print([m for m in ('pandas', 'duckdb') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------------------
# Findings, charts, entities, ATT&CK

XSS = [
    "<script>window.__pwned=1</script>",
    '<img src=x onerror="window.__pwned=1">',
    "javascript:window.__pwned=1",
]


class FakeEmbed:
    """What huntbook.vis.embed returns: a root element and raw scripts (a shared library + its own)."""

    LIBRARY = "window.__lib=(window.__lib||0)+1;"

    def __init__(self, name: str) -> None:
        self.div = f'<div id="{name}" data-root-id="{name}" style="display: contents;"></div>'
        self.scripts = [
            self.LIBRARY,
            f"document.getElementById('{name}').textContent='drawn {name}';"
            "var s='</script><script>window.__pwned=1</script><!--';",  # a data string a chart might hold
        ]


def hostile_findings() -> Findings:
    frame = pd.DataFrame({XSS[0]: [XSS[1], XSS[2]], "n": [1, 2]})
    frame.attrs["query"] = f"SELECT '{XSS[0]}' -- recorded by the QueryProvider"
    findings = Findings()
    findings.add(
        XSS[0],
        severity="high",
        summary=f"{XSS[1]}\n\n{XSS[2]}",
        facts={XSS[2]: XSS[0], "where": XSS[1]},
        techniques=["T1059.001", XSS[0]],
        entities=[
            Alert(XSS[0], category=XSS[1]),
            Process("WS01", 4242, name="powershell.exe", command_line=XSS[1]),
            IpAddress("203.0.113.66"),
            Alert(XSS[2]),
        ],
        notes=[XSS[2], f"line one\n{XSS[1]}"],
    ).add_table(frame, title=XSS[1]).add_chart(FakeEmbed("c1"), title=XSS[2])
    findings.add("Second", severity="low").add_table(frame.head(1), query=XSS[2]).add_chart(FakeEmbed("c2"))
    return findings


def test_findings_report_escapes_every_value() -> None:
    report = Report.from_findings(hostile_findings(), XSS[1], subtitle=XSS[2])
    page = report.to_html()
    found = parse(page)
    unexpected = [(t, a) for t, a in found.tags if t not in ALLOWED or not set(a) <= ALLOWED[t]]
    assert [
        (t, a) for t, a in unexpected if not (t == "div" and set(a) == {"id", "data-root-id", "style"})
    ] == []
    assert not any(t in ("img", "iframe", "link") for t, _ in found.tags)
    assert all(str(a["href"]).startswith("#s") for t, a in found.tags if t == "a")
    text = "".join(found.text)
    for payload in XSS:
        assert text.count(payload) >= 5, payload  # titles, cells, facts, entities, notes, ...
    assert "SELECT '<script>window.__pwned=1</script>' -- recorded by the QueryProvider" in text
    markdown = report.to_markdown()
    prose = re.sub(r"^(`{3,})\n.*?\n\1$", "", markdown, flags=re.S | re.M)  # queries are fenced code
    assert prose.count("```") == 0 and "<script" not in prose and "<img" not in prose
    assert "_chart: javascript:window.\\_\\_pwned=1 (see the HTML report)_" in markdown


def test_chart_scripts_are_allowed_by_hash_once_and_cannot_end_their_element() -> None:
    page = Report.from_findings(hostile_findings(), "t").to_html()
    found = parse(page)
    csp = csp_of(found)
    assert "'unsafe-eval'" not in csp and "'unsafe-inline'" not in csp.split("script-src")[1]
    # the table script, the shared library once, and each chart's own script
    assert len(found.scripts) == 4 and found.scripts.count(FakeEmbed.LIBRARY) == 1
    for script in found.scripts:
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in csp
    assert page.lower().count("</script") == 4  # "<script" inside a script string is inert
    chart = next(s for s in found.scripts if "drawn c1" in s)
    assert "<\\/script><script>window.__pwned=1<\\/script><\\!--" in chart


def test_chart_refuses_markup_that_is_not_an_empty_div() -> None:
    bad = FakeEmbed("c")
    bad.div = '<div id="c"><img src=x onerror="window.__pwned=1"></div>'
    with pytest.raises(DataError, match=r"<img>") as caught:
        Chart(bad, title="t")
    assert caught.value.where == "Chart('t').div" and "vis.embed" in str(caught.value.hint)
    bad.div = '<div id="c" onclick="x()"></div>'
    with pytest.raises(DataError, match="attribute onclick"):
        Chart(bad)
    bad.div = "<div>text</div>"
    with pytest.raises(DataError, match="text"):
        Chart(bad)


def test_finding_section_order_and_severity() -> None:
    frame = pd.DataFrame({"a": [1]})
    frame.attrs["query"] = "SELECT 1 AS a"
    finding = Finding("Spray", severity="HIGH", summary="story", facts={"k": "v"}, techniques=["T1110.003"])
    finding.add_table(frame).add_table(frame, query="explicit", title="second").add_note("n1")
    finding.entities.append(IpAddress("203.0.113.66"))
    section = finding.section()
    assert finding.severity == "high" and section.severity == "high"
    kinds = [type(b).__name__ for b in section.blocks]
    assert kinds == ["Text", "Facts", "Attack", "Table", "Query", "Table", "Query", "Entities", "Notes"]
    queries = [b.text for b in section.blocks if isinstance(b, report_module.Query)]
    assert queries == ["SELECT 1 AS a", "explicit"]  # the recorded query by default
    report = Report("t")
    report.add_finding(finding)
    page = report.to_html()
    assert '<h2>Spray <span class="sev sev-high">high</span></h2>' in page
    assert "## Spray (severity: high)" in report.to_markdown()
    with pytest.raises(DataError, match="unknown severity 'urgent'") as caught:
        Finding("x", severity="urgent")
    assert caught.value.where == "Finding('x').severity"


def test_severities_are_the_ti_scale() -> None:
    from huntbook.ti import SEVERITIES as TI_SEVERITIES

    assert TI_SEVERITIES == SEVERITIES


def test_overview_and_summary_rank_by_severity() -> None:
    findings = Findings()
    for title, level in (("a", "low"), ("b", "high"), ("c", "info"), ("d", "high")):
        findings.add(title, severity=level, techniques=["T1059.001"] if title == "d" else [])
    assert findings.summary()[["title", "severity"]].values.tolist() == [
        ["b", "high"],
        ["d", "high"],
        ["a", "low"],
        ["c", "info"],
    ]
    report = findings.report("Case")
    assert [s.title for s in report.sections] == ["Overview", "a", "b", "c", "d"]
    overview = report.sections[0].blocks[0].to_markdown().splitlines()
    assert overview[0] == "_4 findings_"
    assert [markdown_cells(line)[:2] for line in overview[4:]] == [
        ["high", "b"],
        ["high", "d"],
        ["low", "a"],
        ["info", "c"],
    ]
    assert report_module.build(findings, overview=False).sections[0].title == "a"


def test_entities_table_has_type_key_and_fields() -> None:
    process = Process("WS01.corp.local", 4242, name="C:\\Windows\\cmd.exe", command_line="cmd /c whoami")
    block = Entities([process, IpAddress("203.0.113.66"), process])
    lines = block.to_markdown().splitlines()
    assert lines[0] == "_2 entities_"
    assert markdown_cells(lines[2]) == ["type", "key", "fields"]
    first = markdown_cells(lines[4])
    assert first[:2] == ["Process", md_esc(process.key)]
    assert "host: host:ws01.corp.local" in first[2] and "command\\_line: cmd /c whoami" in first[2]
    assert markdown_cells(lines[5])[:2] == ["IpAddress", "ip:203.0.113.66"]
    with pytest.raises(DataError, match="not an entity: str"):
        Entities(["203.0.113.66"]).to_html()  # type: ignore[list-item]


def test_attack_names_come_from_enrich() -> None:
    enrich = pytest.importorskip("huntbook.enrich")
    block = report_module.Attack(["attack.t1059.001", "T1059.001", "T9999.999"])
    rows, caption = block.rows()
    expected = enrich.attack(["T1059.001"]).iloc[0]
    assert rows[0] == ("T1059.001", expected["name"], expected["tactics"])
    assert rows[1] == ("T9999.999", "", "")
    assert caption == "2 techniques; 1 not found in ATT&CK"


def test_attack_falls_back_to_bare_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(ids: object) -> object:
        raise MissingExtraError("ATT&CK look-up", "attack")

    enrich = pytest.importorskip("huntbook.enrich")
    monkeypatch.setattr(enrich, "attack", missing)
    rows, caption = report_module.Attack(["T1059.001"]).rows()
    assert rows == [("T1059.001", "", "")]
    assert caption.startswith("1 technique; names unavailable: ") and "huntbook[attack]" in caption


# ---------------------------------------------------------------------------------------------------------
# In a real headless Chromium

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    reason = browser_skip_reason()
    if reason:
        pytest.skip(reason)
    with Browser(height=1000) as session:
        yield session


def test_hostile_report_runs_no_script_in_the_browser(browser: Browser, tmp_path: Path) -> None:
    report = Report.from_findings(hostile_findings(), XSS[0], subtitle=XSS[1])
    report.add(XSS[2], text=XSS[0], facts={XSS[1]: XSS[2]}, table=pd.DataFrame({"v": XSS}), query=XSS[1])
    page = browser.open(report.save(tmp_path / "hostile.html"))
    assert page.errors() == []
    assert page.evaluate("return typeof window.__pwned") == "undefined"
    assert page.evaluate("return document.querySelectorAll('img, iframe, a[href^=javascript]').length") == 0
    assert page.evaluate("return document.scripts.length") == 4  # the report's own scripts only
    visible = str(page.evaluate("return document.body.innerText"))
    for payload in XSS:
        assert visible.count(payload) >= 5, payload
    assert page.evaluate("return document.title") == XSS[0]
    # the chart scripts ran (allowed by hash): the shared library once, each chart drew itself
    drawn = "return [window.__lib, document.getElementById('c1').textContent]"
    assert page.evaluate(drawn) == [1, "drawn c1"]
    assert page.network_requests() == []
    page.screenshot(ARTIFACTS / "report-hostile.png")


def first_cells(page: Page) -> tuple[str, list[str]]:
    """The pager's text and the first cell of every row on the page."""
    info = page.evaluate("return document.querySelector('.pageinfo').textContent")
    cells = page.evaluate(
        "return [...document.querySelectorAll('tbody tr')].map(r => r.cells[0].textContent)"
    )
    return str(info), [str(c) for c in cells]


def test_big_table_pages_filters_and_sorts_in_the_browser(browser: Browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    rows = 5_000
    frame = pd.DataFrame(
        {
            "n": range(rows),
            "word": [f"w{i % 7}" for i in range(rows)],
            "text": [f"event {i} " * 4 for i in range(rows)],
        }
    )
    report = Report("Big")
    report.add("5,000 rows", table=frame.sample(frac=1.0, random_state=1))  # shuffled
    path = report.save(tmp_path / "big.html")
    size = path.stat().st_size
    assert size < 1_000_000, f"a 5,000-row table made a {size:,}-byte report"
    page = browser.open(path)
    assert page.errors() == []
    click = lambda selector: page.driver.find_element(By.CSS_SELECTOR, selector).click()  # noqa: E731

    info, first = first_cells(page)
    assert info == "rows 1–50 of 5,000" and len(first) == PAGE_ROWS
    click("button.next")
    info, second = first_cells(page)
    assert info == "rows 51–100 of 5,000" and len(second) == PAGE_ROWS and not set(first) & set(second)
    click("button.prev")
    assert first_cells(page)[1] == first
    click("thead th")
    assert first_cells(page)[1] == [str(i) for i in range(50)]  # numeric order, ascending
    click("thead th")
    assert first_cells(page)[1] == [str(i) for i in range(4999, 4949, -1)]  # 4999 first: numbers, not text
    page.driver.find_element(By.CSS_SELECTOR, "input.filter").send_keys("w3")
    matching = frame[frame["word"] == "w3"]["n"].sort_values(ascending=False)
    info, filtered = first_cells(page)
    assert info == f"rows 1–50 of {len(matching):,} matching (of 5,000)"
    assert filtered == [str(n) for n in matching.head(50)]
    for _ in range(len(matching) // PAGE_ROWS):
        click("button.next")
    _, last = first_cells(page)
    assert last == [str(n) for n in matching.iloc[(len(matching) // PAGE_ROWS) * PAGE_ROWS :]]
    assert page.driver.find_element(By.CSS_SELECTOR, "button.next").get_attribute("disabled") == "true"
    assert page.errors() == []
    page.screenshot(ARTIFACTS / "report-big-table.png", full_page=False)
    print(f"5,000-row report: {size:,} bytes ({size / rows:.0f} bytes per row)")


def test_a_table_over_the_cap_says_so_and_loads_one_page(browser: Browser, tmp_path: Path) -> None:
    frame = pd.DataFrame({f"c{i}": [f"value {i}-{n}" for n in range(12_000)] for i in range(10)})
    report = Report("Capped")
    report.add("12,000 rows", table=frame)
    path = report.save(tmp_path / "capped.html")
    page = browser.open(path)
    assert page.errors() == []
    caption = page.evaluate("return document.querySelector('p.rows').textContent")
    assert caption == "showing 10,000 of 12,000 rows (2,000 left out)"
    assert page.evaluate("return document.querySelector('.pageinfo').textContent") == "rows 1–50 of 10,000"
    assert page.evaluate("return document.querySelectorAll('tr').length") == PAGE_ROWS + 1  # the rest waits
    loaded = page.evaluate("return performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd")
    print(f"10,000 x 10 table: {path.stat().st_size:,} bytes, DOMContentLoaded after {loaded:.0f} ms")


def bokeh_chart() -> object:
    """A real Bokeh chart with a hover tool (huntbook.vis.embed makes its Embed)."""
    pytest.importorskip("bokeh")
    from bokeh.plotting import figure

    chart = figure(title="events per hour", width=500, height=250, tools="pan,wheel_zoom,reset,hover")
    chart.line([0, 1, 2, 3], [3, 1, 4, 1])
    return chart


def test_bokeh_chart_draws_under_the_strict_csp(browser: Browser, tmp_path: Path) -> None:
    from huntbook.testing.browser import BOKEH_IDLE

    findings = Findings()
    findings.add("Traffic", severity="medium").add_chart(bokeh_chart(), title="events per hour")
    path = findings.report("Chart").save(tmp_path / "chart.html")
    csp = csp_of(parse(path.read_text(encoding="utf-8")))
    assert "unsafe-eval" not in csp  # BokehJS needs none: the chart draws below without it
    page = browser.open(path, wait_for=BOKEH_IDLE)
    figures = "return Object.values(Bokeh.index).filter(v => v.model.type === 'Figure').length"
    assert page.evaluate(figures) == 1
    assert page.query_deep("canvas")
    assert page.errors() == []
    assert page.network_requests() == []
    page.screenshot(ARTIFACTS / "report-bokeh-chart.png")
    print(f"report with one Bokeh chart: {path.stat().st_size:,} bytes")


def test_a_chart_that_compiles_javascript_gets_unsafe_eval() -> None:
    compiling = FakeEmbed("c")
    compiling.needs_eval = True  # type: ignore[attr-defined]
    report = Report("t")
    report.add("plain", text="x")
    report.sections[0].append(Chart(FakeEmbed("d")))
    assert "'unsafe-eval'" not in report.to_html()
    report.sections[0].append(Chart(compiling))
    assert "'unsafe-eval'" in csp_of(parse(report.to_html())).split("script-src")[1]


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from huntbook import demo

    # days=2 is too short for the demo's STL step (more than two daily periods): 3 days
    return demo.run(tmp_path_factory.mktemp("demo"), days=3, scale=0.2, progress=False)


@pytest.mark.slow
def test_demo_report_opens_offline_without_errors(browser: Browser, demo_report: Path) -> None:
    page = browser.open(demo_report)
    assert page.errors() == []
    assert page.network_requests() == []
    assert str(page.evaluate("return document.querySelector('h1').textContent")).startswith("huntbook demo")
    assert page.evaluate("return document.querySelectorAll('table.sortable').length") >= 5
    counts = page.evaluate(
        "return [...document.querySelectorAll('table.sortable tbody')].map(b => b.rows.length)"
    )
    assert all(0 <= c <= PAGE_ROWS for c in counts) and sum(counts) > 0
    page.screenshot(ARTIFACTS / "report-demo.png")
    print(f"demo report (3 days, scale 0.2): {demo_report.stat().st_size:,} bytes")
