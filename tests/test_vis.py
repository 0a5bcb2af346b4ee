"""huntbook.vis: offline Bokeh charts, checked in Python and in real headless Chromium.

Each chart is built from the demo's real outputs (LocalStore tables, proctree.build, timeseries.anomalies,
enrich.geoip) with attacker-controlled values planted in them, saved with vis.save, opened from file://
with the network blocked, and checked: no JS errors or CSP violations, no request, glyphs painted
(coloured pixels on the canvases), the document holds the right number of points, hover tooltips show
the payloads as text, and no script runs. Screenshots go to test-artifacts/vis/.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from bokeh.models.annotations import Title

import huntbook as hb
from huntbook import vis
from huntbook.errors import DataError
from huntbook.store import LocalStore
from huntbook.testing.browser import BOKEH_IDLE, Browser, Page, browser_skip_reason

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "vis"
PAYLOAD = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>javascript:window.__pwned=1'
TEX = "$$\\alpha^2$$"  # Bokeh would typeset (and fetch MathJax for) this if it were not plain text
T0 = pd.Timestamp("2026-10-05", tz="UTC")
GROUP = f"attacker {TEX} {PAYLOAD}"  # a group label from the data

# -- JavaScript run in the page -------------------------------------------------------------------------
# page coordinates of row `index` of the data source named `name` (x/y: a field or fields to average)
LOCATE = """
const [name, index, xf, yf] = arguments;
const col = (d, f) => (d instanceof Map ? d.get(f) : d[f]);
const at = (d, f) => typeof f === "number" ? f
  : Array.isArray(f) ? f.reduce((a, k) => a + col(d, k)[index], 0) / f.length : col(d, f)[index];
const visit = (view, out) => {
  out.push(view);
  for (const c of (view.child_views ?? [])) visit(c, out);
  return out;
};
const roots = Bokeh.index.roots ? [...Bokeh.index.roots] : Object.values(Bokeh.index);
for (const root of roots) for (const view of visit(root, [])) {
  if (!view.renderer_views) continue;
  for (const rv of view.renderer_views.values()) {
    const ds = rv.model.data_source;
    if (!ds || ds.name !== name) continue;
    const r = view.canvas_view.el.getBoundingClientRect();
    const {x_scale, y_scale} = view.frame;
    return [r.left + x_scale.compute(at(ds.data, xf)), r.top + y_scale.compute(at(ds.data, yf))];
  }
}
return null;
"""
# rows in all data sources called `name`, and the sum of one of their columns
DOC_ROWS = """
const [name, column] = arguments;
let rows = 0, total = 0;
for (const doc of Bokeh.documents) for (const m of doc.all_models) {
  if (m.data === undefined || !(m.name === name || String(m.name).startsWith(name + "."))) continue;
  const values = m.data instanceof Map ? m.data.get(column) : m.data[column];
  rows += values.length;
  for (const v of values) if (!Number.isNaN(Number(v))) total += Number(v);
}
return [rows, total];
"""
TAGS = "return Bokeh.documents[0].roots()[0].tags[0].huntbook"
TOOLTIPS = """
const out = [];
const visit = (root) => {
  for (const el of root.querySelectorAll('.bk-tooltip-content')) out.push(el);
  for (const el of root.querySelectorAll('*')) if (el.shadowRoot) visit(el.shadowRoot);
};
visit(document);
return out.map((el) => [el.textContent, el.querySelectorAll('img, script, iframe, a[href]').length]);
"""
VISIBLE = """
const name = arguments[0];
const out = [];
for (const m of Bokeh.documents[0].all_models)
  if (m.data_source !== undefined && m.data_source.name === name) out.push(m.visible);
return out;
"""
# the data field each renderer of source `name` takes its y from
Y_FIELDS = """
const out = [];
for (const m of Bokeh.documents[0].all_models)
  if (m.data_source !== undefined && m.data_source.name === arguments[0]) out.push(m.glyph.y.field);
return out;
"""


# -- data -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    """The demo's network sessions, logons and process events (2 days, scale 0.2) from a LocalStore."""
    root = tmp_path_factory.mktemp("vis-demo")
    hb.demo.generate(root / "data", days=2, scale=0.2)
    store = LocalStore(root / "store")
    store.ingest(root / "data")
    con = store.connect()
    return {
        name: con.sql(f"SELECT * FROM {name} ORDER BY TimeGenerated").df()
        for name in ("network_sessions", "authentication", "process_events")
    }


def _attacker_rows(frame: pd.DataFrame, column: str, group_column: str, n: int = 3) -> pd.DataFrame:
    """``frame`` plus ``n`` copies of its first row, hours apart, in their own group, holding the payload."""
    planted = pd.concat([frame.iloc[[0]]] * n, ignore_index=True)
    planted["TimeGenerated"] = [T0 + pd.Timedelta(hours=6 + 12 * i) for i in range(n)]
    planted[column] = PAYLOAD
    planted[group_column] = GROUP
    return pd.concat([frame, planted], ignore_index=True)


@dataclass
class Case:
    """A chart to check in the browser: how to build it, what its document must hold, where to hover."""

    build: Callable[[dict[str, pd.DataFrame]], Any]
    rows: Callable[[Page, Any], None]  # asserts on the document's data
    hover: (
        tuple[str, Callable[[Any], int], Any, Any] | None
    )  # source name, index finder, x field(s), y field(s)


def _source(chart: Any, name: str) -> Any:
    return chart.select_one({"name": name})


def _titles(chart: Any) -> str:
    """The texts of a chart's titles and subtitles, joined."""
    return " | ".join(t.text.text for t in chart.select({"type": Title}))


def _first(chart: Any, name: str, column: str, value: str) -> int:
    return list(_source(chart, name).data[column]).index(value)


def _timeline(d: dict[str, pd.DataFrame]) -> Any:
    procs = _attacker_rows(d["process_events"], "TargetProcessCommandLine", "DvcHostname")
    procs.loc[5, "TimeGenerated"] = pd.NaT  # counted, not drawn
    return vis.timeline(
        procs,
        group_by="DvcHostname",
        hover=["TargetProcessName", "TargetProcessCommandLine"],
        markers={f"alert {PAYLOAD}": T0 + pd.Timedelta(hours=25)},
    )


def _timeline_rows(page: Page, chart: Any) -> None:
    info = page.evaluate(TAGS)
    rows, _ = page.evaluate(DOC_ROWS, "huntbook.events", "x")
    assert (
        info["mode"] == "points"
        and rows == info["drawn"] == info["events"] - 1 == chart.tags[0]["huntbook"]["drawn"]
    )


def _aggregated(d: dict[str, pd.DataFrame]) -> Any:
    conns = d["network_sessions"]
    many = pd.concat([conns] * 20, ignore_index=True)  # 59k events, more than max_points
    many["TimeGenerated"] = many["TimeGenerated"] + pd.to_timedelta(np.arange(len(many)) % 600, unit="s")
    many = _attacker_rows(many, "DstHostname", "NetworkApplicationProtocol")
    return vis.timeline(many, group_by="NetworkApplicationProtocol", max_points=20_000, max_bins=200)


def _aggregated_rows(page: Page, chart: Any) -> None:
    info = page.evaluate(TAGS)
    _, total = page.evaluate(DOC_ROWS, "huntbook.bins", "count")
    assert info["mode"] == "aggregated" and total == info["events"] == 59_323


def _durations(d: dict[str, pd.DataFrame]) -> Any:
    conns = _attacker_rows(d["network_sessions"], "DstHostname", "NetworkApplicationProtocol")
    conns.loc[conns.index[:4], "NetworkDuration"] = np.nan  # no end: diamonds
    conns.loc[conns.index[-3:], "NetworkDuration"] = 3 * 3600 * 1000.0  # the attacker's long sessions
    return vis.durations(
        conns,
        "TimeGenerated",
        "NetworkDuration",
        group_by="NetworkApplicationProtocol",
        hover=["DstHostname"],
        unit="ms",  # ASIM's NetworkDuration
    )


def _durations_rows(page: Page, chart: Any) -> None:
    spans, _ = page.evaluate(DOC_ROWS, "huntbook.spans", "left")
    open_spans, _ = page.evaluate(DOC_ROWS, "huntbook.open_spans", "left")
    info = page.evaluate(TAGS)
    assert open_spans == info["open_ended"] >= 4
    assert spans + open_spans == info["events"] == 2966 + 3


def _values_frame(d: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return _attacker_rows(d["network_sessions"], "DstHostname", "NetworkApplicationProtocol")


def _values(d: dict[str, pd.DataFrame]) -> Any:
    conns = _values_frame(d)
    return vis.values(conns, "SrcBytes", group_by="NetworkApplicationProtocol", hover=["DstHostname"])


def _values_rows(page: Page, chart: Any) -> None:
    rows, total = page.evaluate(DOC_ROWS, "huntbook.values", "y")
    assert rows == page.evaluate(TAGS)["events"] == 2966 + 3
    assert total == pytest.approx(float(_values_frame(_DEMO[0])["SrcBytes"].sum()))


def _matrix(d: dict[str, pd.DataFrame]) -> Any:
    conns = d["network_sessions"].copy()
    conns.loc[conns.index[:300], "SrcIpAddr"] = PAYLOAD
    return vis.matrix(conns, "SrcIpAddr", "NetworkApplicationProtocol", max_categories=12)


def _matrix_rows(page: Page, chart: Any) -> None:
    cells, total = page.evaluate(DOC_ROWS, "huntbook.cells", "sum")
    assert total == page.evaluate(TAGS)["events"] and cells == chart.tags[0]["huntbook"]["cells"]


def _proctree(d: dict[str, pd.DataFrame]) -> Any:
    procs = d["process_events"]
    tree = hb.proctree.build(procs[procs["DvcHostname"].isin(["SRV01.corp.local", "WS01.corp.local"])])
    tree.loc[tree["depth"] == 1, "TargetProcessCommandLine"] = PAYLOAD
    return vis.proctree(tree)


def _proctree_rows(page: Page, chart: Any) -> None:
    info = page.evaluate(TAGS)
    drawn = sum(page.evaluate(DOC_ROWS, f"huntbook.depth{k}", "x")[0] for k in range(info["depth"] + 1))
    assert drawn == info["events"] == info["drawn"]


def _world(d: dict[str, pd.DataFrame]) -> Any:
    pytest.importorskip("geoip2fast")
    enrich = pytest.importorskip("huntbook.enrich")
    ips = ["8.8.8.8", "1.1.1.1", "9.9.9.9", "77.88.8.8", "185.220.101.1", "203.0.113.5", "8.8.4.4"]
    geo = enrich.geoip(ips)
    city = {  # as a city .mmdb would add them
        "8.8.8.8": (37.4, -122.1, "Mountain View"),
        "1.1.1.1": (-33.9, 151.2, "Sydney"),
        "9.9.9.9": (37.8, -122.4, PAYLOAD),
        "77.88.8.8": (55.7, 37.6, "Moscow"),
        "185.220.101.1": (52.5, 13.4, "Berlin"),
        "8.8.4.4": (37.4, -122.1, "Mountain View"),
    }
    known = geo["ip"].map(city)
    geo["latitude"] = [v[0] if isinstance(v, tuple) else np.nan for v in known]
    geo["longitude"] = [v[1] if isinstance(v, tuple) else np.nan for v in known]
    geo["city"] = [v[2] if isinstance(v, tuple) else None for v in known]
    return vis.world_map(geo)


def _world_rows(page: Page, chart: Any) -> None:
    places, located = page.evaluate(DOC_ROWS, "huntbook.places", "x")[0], page.evaluate(TAGS)["located"]
    countries = page.evaluate(DOC_ROWS, "huntbook.countries", "amount")
    assert (places, located) == (5, 6)
    assert (
        countries[0] == len(vis.countries()) and countries[1] == 6
    )  # US 3, AU, RU, DE; 203.0.113.5 has none


def _graph_frame(d: dict[str, pd.DataFrame]) -> pd.DataFrame:
    conns = d["network_sessions"].copy()
    conns.loc[conns.index[0], "DstIpAddr"] = PAYLOAD
    return conns


def _graph(d: dict[str, pd.DataFrame]) -> Any:
    return vis.graph(_graph_frame(d), "SrcIpAddr", "DstIpAddr", hover=["NetworkApplicationProtocol"])


def _graph_rows(page: Page, chart: Any) -> None:
    nodes = page.evaluate(DOC_ROWS, "huntbook.nodes", "x")[0]
    conns = _graph_frame(_DEMO[0])
    assert nodes == page.evaluate(TAGS)["nodes"] == len(set(conns["SrcIpAddr"]) | set(conns["DstIpAddr"]))


def _anomalies(d: dict[str, pd.DataFrame]) -> Any:
    hourly = hb.timeseries.summarize(d["network_sessions"], value_column="SrcBytes", freq="1h")
    scored = hb.timeseries.anomalies(hourly, period=12)
    return vis.anomalies(
        scored.rename(columns={"SrcBytes": PAYLOAD}), threshold=hb.timeseries.DEFAULT_THRESHOLD
    )


def _anomalies_rows(page: Page, chart: Any) -> None:
    info = page.evaluate(TAGS)
    assert page.evaluate(DOC_ROWS, "huntbook.series", "x")[0] == info["points"] == 48
    spikes = page.evaluate(DOC_ROWS, "huntbook.spikes", "x")[0]
    assert spikes == info["spikes"] >= 1  # the exfiltration hour


def _linked(d: dict[str, pd.DataFrame]) -> Any:
    logons = _attacker_rows(d["authentication"], "TargetUsername", "EventType")
    logons = logons.rename(columns={"SrcIpAddr": PAYLOAD})  # a field name from the data: a table header
    chart = vis.timeline(logons, group_by="EventType")
    return vis.linked(chart, logons, columns=["TimeGenerated", "EventType", "TargetUsername", PAYLOAD])


def _linked_rows(page: Page, chart: Any) -> None:
    assert page.evaluate(DOC_ROWS, "huntbook.events", "x")[0] == page.evaluate(TAGS)["events"]


_DEMO: list[dict[str, pd.DataFrame]] = []  # the demo frames, for checks that recompute from the input


def _at(
    name: str, column: str, text: str, x: Any = "x", y: Any = "y"
) -> tuple[str, Callable[[Any], int], Any, Any]:
    """Hover on the first row of source ``name`` whose ``column`` holds ``text``."""

    def index(chart: Any) -> int:
        return next(i for i, v in enumerate(_source(chart, name).data[column]) if text in v)

    return name, index, x, y


def _topmost(name: str) -> tuple[str, Callable[[Any], int], Any, Any]:
    return name, lambda chart: int(np.argmax(_source(chart, name).data["y"])), "x", "y"


CASES: dict[str, Case] = {
    "timeline": Case(_timeline, _timeline_rows, _at("huntbook.events", "h1", PAYLOAD)),
    "timeline_aggregated": Case(
        _aggregated, _aggregated_rows, _at("huntbook.bins", "h0", GROUP, ["left", "right"], ["bottom", "top"])
    ),
    "durations": Case(_durations, _durations_rows, _at("huntbook.spans", "h0", PAYLOAD, ["left", "right"])),
    "values": Case(_values, _values_rows, _at("huntbook.values.0", "h0", PAYLOAD)),  # group 0: the attacker
    "matrix": Case(_matrix, _matrix_rows, _at("huntbook.cells", "xl", PAYLOAD)),
    "proctree": Case(_proctree, _proctree_rows, _topmost("huntbook.depth1")),
    "world_map": Case(_world, _world_rows, _at("huntbook.places", "q1", PAYLOAD)),
    "graph": Case(_graph, _graph_rows, _at("huntbook.nodes", "n0", PAYLOAD)),
    "anomalies": Case(_anomalies, _anomalies_rows, _topmost("huntbook.series")),
    "linked": Case(_linked, _linked_rows, None),
}


@pytest.fixture(scope="module")
def charts(demo: dict[str, pd.DataFrame]) -> dict[str, Any]:
    _DEMO[:] = [demo]
    built = {}
    for name, case in CASES.items():
        try:
            built[name] = case.build(demo)
        except pytest.skip.Exception:
            continue
    return built


@pytest.fixture(scope="module")
def saved(charts: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, bool], Path]:
    """``saved(name, csp)``: the chart's page written once by vis.save (and a copy without its CSP)."""
    folder = tmp_path_factory.mktemp("vis-pages")
    done: dict[tuple[str, bool], Path] = {}

    def page_file(name: str, csp: bool = True) -> Path:
        if name not in charts:
            pytest.skip(f"{name}: its input could not be built here")
        if (name, csp) not in done:
            path = vis.save(charts[name], folder / f"{name}.html")
            if not csp:
                html = path.read_text(encoding="utf-8")
                bare = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html)
                assert bare != html
                path = folder / f"{name}-nocsp.html"
                path.write_text(bare, encoding="utf-8")
            done[(name, csp)] = path
        return done[(name, csp)]

    return page_file


@pytest.fixture(scope="module")
def browser() -> Any:
    reason = browser_skip_reason()
    if reason:
        pytest.skip(reason)
    with Browser(width=1280, height=900) as session:
        yield session


def _canvas_colour(page: Page, shot: Path) -> float:
    """Share of the canvases' pixels that are coloured (glyphs; axes, text and grid are grey)."""
    from PIL import Image

    image = np.asarray(Image.open(shot).convert("RGB")).astype("int16")
    rects = {tuple(round(v) for v in page.evaluate(
        "const r = arguments[0].getBoundingClientRect(); return [r.left, r.top, r.width, r.height]", el
    )) for el in page.query_deep("canvas")}  # fmt: skip
    scroll = page.evaluate("return [window.scrollX, window.scrollY]")
    coloured = area = 0
    for left, top, width, height in rects:
        x0, y0 = left + scroll[0], top + scroll[1]
        crop = image[y0 : y0 + height, x0 : x0 + width]
        coloured += int(((crop.max(axis=2) - crop.min(axis=2)) > 60).sum())
        area += crop.shape[0] * crop.shape[1]
    return coloured / max(area, 1)


def _hover_texts(
    page: Page, chart: Any, hover: tuple[str, Callable[[Any], int], Any, Any]
) -> list[list[Any]]:
    name, index_of, xf, yf = hover
    where = page.evaluate(LOCATE, name, index_of(chart), xf, yf)
    assert where is not None, f"no data source {name!r} in the page"
    page.move_mouse(where[0] + 40, where[1] + 40)
    page.move_mouse(*where)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        shown = [t for t in page.evaluate(TOOLTIPS) if t[0].strip()]
        if shown:
            return shown
        time.sleep(0.05)
    raise AssertionError(f"no tooltip at {where}")


# -- in the browser ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(CASES))
def test_chart_renders_offline(
    name: str, browser: Browser, charts: dict[str, Any], saved: Callable[[str, bool], Path]
) -> None:
    path = saved(name, True)
    chart, case = charts[name], CASES[name]
    page = browser.open(path, wait_for=BOKEH_IDLE)
    page.settle()
    shot = page.screenshot(ARTIFACTS / f"{name}.png")
    assert page.errors() == []
    assert page.network_requests() == []
    assert page.evaluate("return document.querySelector('meta[http-equiv=Content-Security-Policy]') !== null")
    assert _canvas_colour(page, shot) > 0.002, "nothing coloured was painted"
    case.rows(page, chart)
    if case.hover:
        tips = _hover_texts(page, chart, case.hover)
        assert any(PAYLOAD in text for text, _ in tips), tips
        assert all(elements == 0 for _, elements in tips)
        page.screenshot(ARTIFACTS / f"{name}-hover.png", full_page=False)
    assert page.evaluate("return window.__pwned") is None
    assert page.errors() == [] and page.network_requests() == []


@pytest.mark.parametrize("name", ["timeline", "matrix", "world_map"])  # the same hover tool as the others
def test_payloads_stay_text_without_csp(
    name: str, browser: Browser, charts: dict[str, Any], saved: Callable[[str, bool], Path]
) -> None:
    """The same pages with their Content-Security-Policy removed: escaping alone keeps the payloads inert."""
    path = saved(name, False)
    page = browser.open(path, wait_for=BOKEH_IDLE)
    tips = _hover_texts(page, charts[name], CASES[name].hover)  # type: ignore[arg-type]
    assert any(PAYLOAD in text for text, _ in tips)
    assert all(elements == 0 for _, elements in tips)
    assert page.query_deep("img[src='x']") == []
    assert page.evaluate("return window.__pwned") is None
    assert page.errors() == []


def test_linked_selection_and_table(
    browser: Browser, charts: dict[str, Any], saved: Callable[[str, bool], Path]
) -> None:
    chart = charts["linked"]
    bare = saved("linked", False)  # no CSP: the table's own escaping is what is tested
    page = browser.open(bare, wait_for=BOKEH_IDLE)
    page.settle()
    cells = page.texts_deep(".slick-cell")
    assert len(cells) > 20 and all("&lt;" not in c for c in cells)  # rows rendered, values not double-escaped
    assert PAYLOAD in page.texts_deep(".slick-column-name")  # the header shows the field name as text
    assert (
        page.query_deep(".slick-cell img, .slick-cell script, .slick-header img, .slick-header script") == []
    )
    assert page.evaluate("return window.__pwned") is None
    # drag a time window (T0+5h .. T0+31h) with the box-select tool: its events get selected
    x = np.asarray(_source(chart, "huntbook.events").data["x"])
    left = (T0 + pd.Timedelta(hours=5)).value / 1e6
    right = (T0 + pd.Timedelta(hours=31)).value / 1e6
    expected = int(((x >= left) & (x <= right)).sum())
    assert expected > 3
    start = page.evaluate(LOCATE, "huntbook.events", 0, left, 0.0)
    end = page.evaluate(LOCATE, "huntbook.events", 0, right, 0.0)
    page.drag((start[0], start[1]), (end[0], end[1]))
    page.settle()
    selected = page.evaluate(
        "return Bokeh.documents[0].get_model_by_name('huntbook.events').selected.indices.length"
    )
    assert abs(selected - expected) <= 2  # the window's edges are a pixel wide
    assert len(page.query_deep(".slick-cell.selected")) > 0  # the table highlights the selected rows
    page.screenshot(ARTIFACTS / "linked-selected.png")
    assert page.errors() == [] and page.network_requests() == []


def test_proctree_buttons_collapse_levels(
    browser: Browser, charts: dict[str, Any], saved: Callable[[str, bool], Path]
) -> None:
    page = browser.open(saved("proctree", True), wait_for=BOKEH_IDLE)
    buttons = {b.text: b for b in page.query_deep("button")}
    assert {"depth ≤ 0", "all levels"} <= set(buttons)
    assert page.evaluate(VISIBLE, "huntbook.depth1") == [True, True]
    page.evaluate("arguments[0].click()", buttons["depth ≤ 0"])
    page.settle()
    assert page.evaluate(VISIBLE, "huntbook.depth0") == [True, True]
    assert page.evaluate(VISIBLE, "huntbook.depth1") == [False, False]
    assert page.evaluate(Y_FIELDS, "huntbook.depth0") == ["y_0", "y_0"]  # the roots close up, one per row
    roots = _source(charts["proctree"], "huntbook.depth0").data["y_0"]
    assert sorted(roots) == [-i for i in reversed(range(len(roots)))]
    page.screenshot(ARTIFACTS / "proctree-collapsed.png")
    page.evaluate("arguments[0].click()", buttons["all levels"])
    page.settle()
    assert page.evaluate(VISIBLE, "huntbook.depth2") == [True, True]
    assert page.evaluate(Y_FIELDS, "huntbook.depth2") == ["y", "y"]
    assert page.errors() == []


def test_browser_harness_sees_errors_and_requests(browser: Browser, tmp_path: Path) -> None:
    """The harness's own alarms work: a page with an error and a remote image is caught."""
    page_file = tmp_path / "bad.html"
    page_file.write_text(
        "<html><body><img src='https://example.invalid/x.png'><script>undefinedFunction()</script></body></html>"
    )
    page = browser.open(page_file)
    time.sleep(0.3)
    assert any("undefinedFunction" in e for e in page.errors())
    assert any("example.invalid" in u for u in page.network_requests())


# -- in Python --------------------------------------------------------------------------------------------
def _events(n: int, groups: int = 3, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "TimeGenerated": T0 + pd.to_timedelta(rng.uniform(0, 86_400, n), unit="s"),
            "host": rng.choice([f"h{i}" for i in range(groups)], n),
            "bytes": rng.integers(0, 10_000, n),
        }
    )


def test_import_is_cheap_and_bokeh_free() -> None:
    probe = (
        "import sys, huntbook.vis as v; v.PlotAccessor;"
        "print(sorted(m for m in ('bokeh', 'networkx') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_timeline_draws_every_event_up_to_max_points() -> None:
    frame = _events(5_000)
    frame.loc[[3, 7], "TimeGenerated"] = pd.NaT
    chart = vis.timeline(frame, group_by="host", max_points=5_000)
    info = chart.tags[0]["huntbook"]
    data = _source(chart, "huntbook.events").data
    assert info == {"chart": "timeline", "mode": "points", "events": 5000, "drawn": 4998, "without_time": 2}
    assert len(data["x"]) == 4998 and set(data["row"]) == set(range(5000)) - {3, 7}
    assert "4,998 events, each one drawn; 2 without a time not drawn" in _titles(chart)


def test_timeline_aggregates_honestly_above_max_points() -> None:
    frame = _events(60_000, groups=4)
    frame.loc[[0, 1, 2], "TimeGenerated"] = pd.NaT
    chart = vis.timeline(frame, group_by="host", max_points=10_000, max_bins=500)
    info = chart.tags[0]["huntbook"]
    counts = np.asarray(_source(chart, "huntbook.bins").data["count"])
    assert info["mode"] == "aggregated" and counts.sum() + info["without_time"] == 60_000
    assert info["bins"] == 288 and info["bin_ms"] == 300_000  # 1 day: 5 min bins (2 min would be 720 > 500)
    per_group = pd.Series(frame["host"][frame["TimeGenerated"].notna()]).value_counts().sort_index()
    labels = _source(chart, "huntbook.bins").data["h0"]
    summed = pd.Series(counts).groupby(pd.Series(labels)).sum().sort_index()
    assert summed.tolist() == per_group.tolist()
    assert (
        "59,997 events in 288 bins of 5 min per group (aggregated: more than max_points=10,000)"
        in _titles(chart)
    )


@pytest.mark.parametrize("low_ms", [0.0, 1_234.5, 1.79e12 + 0.25])
@pytest.mark.parametrize(
    "span_ms", [0.0, 1.0, 999.0, 59_000.0, 3_600_000.0, 86_400_000.0 * 2, 86_400_000.0 * 5000]
)
@pytest.mark.parametrize("max_bins", [1, 10, 2_000])
def test_bin_step_is_the_smallest_round_step_that_fits(low_ms: float, span_ms: float, max_bins: int) -> None:
    from huntbook.vis._base import _STEPS, bin_count, bin_step

    step, _, bins = bin_step(low_ms, low_ms + span_ms, max_bins)
    assert bins == bin_count(low_ms, low_ms + span_ms, step) <= max_bins
    assert (
        np.floor(low_ms / step) * step <= low_ms
        and (np.floor(low_ms / step) + bins) * step > low_ms + span_ms
    )
    smaller = [s for s, _ in _STEPS if s < step]
    assert not smaller or bin_count(low_ms, low_ms + span_ms, smaller[-1]) > max_bins


def test_durations_lanes_do_not_overlap() -> None:
    start = T0 + pd.to_timedelta([0, 10, 20, 100, 105, 0], unit="min")
    frame = pd.DataFrame({"start": start, "secs": [3600, 3600, 60, 60, 60, 30], "g": list("aaaaab")})
    chart = vis.durations(frame, "start", "secs", group_by="g")
    data = _source(chart, "huntbook.spans").data
    rows = pd.DataFrame({"left": data["left"], "right": data["right"], "y": data["y"], "g": data["group"]})
    for _, lane in rows.groupby(["g", "y"]):
        lane = lane.sort_values("left")
        assert (lane["left"].to_numpy()[1:] >= lane["right"].to_numpy()[:-1]).all()
    assert rows[rows["g"] == 0]["y"].nunique() == 3  # three spans of 'a' overlap at 00:20
    assert data["d0"][0] == "1 h"


def test_matrix_folds_the_long_tail_into_one_labelled_row() -> None:
    frame = pd.DataFrame({"src": [f"10.0.0.{i % 10}" for i in range(100)], "dst": ["a", "b"] * 50})
    chart = vis.matrix(frame, "src", "dst", max_categories=4)
    data = _source(chart, "huntbook.cells").data
    assert sum(data["sum"]) == 100 and "(7 others)" in set(data["xl"])
    labels = chart.xaxis[0].major_label_overrides  # the heaviest three, then the rest
    assert getattr(labels[3.0], "text", None) == "(7 others)" and len(labels) == 4


def test_world_map_counts_and_reports_unknown_codes() -> None:
    geo = pd.DataFrame({"ip": ["a", "b", "c", "d"], "country_code": ["us", "US", "EU", None]})
    chart = vis.world_map(geo)
    info = chart.tags[0]["huntbook"]
    assert (info["countries"], info["unknown_country"]) == (1, 2)
    data = _source(chart, "huntbook.countries").data
    assert data["g2"][list(data["g1"]).index("US")] == "2"
    assert "EU (1)" in _titles(chart)


def test_world_outline_covers_countries_and_the_antimeridian() -> None:
    known = vis.countries()
    assert len(known) > 230 and known["code"].str.fullmatch(r"[A-Z]{2}|").all()
    assert {"US", "RU", "CN", "SG", "HK", "XK", "FJ"} <= set(known["code"])
    from huntbook.vis.maps import _world

    russia = next(c for c in _world()["countries"] if c["code"] == "RU")
    xs = [v for polygon in russia["polygons"] for v in polygon[0][0::2]]
    assert max(xs) > 180 and min(xs) < -180  # drawn past both edges, never across the map


@pytest.mark.parametrize(
    "call",
    [
        lambda f: vis.timeline(f, time_column="nope"),
        lambda f: vis.timeline(f, time_column="bytes"),
        lambda f: vis.timeline(f.iloc[:0]),
        lambda f: vis.values(f, "host"),
        lambda f: vis.durations(f, "TimeGenerated", "bytes", max_spans=10),
        lambda f: vis.anomalies(f),
        lambda f: vis.linked(vis.timeline(f, max_points=10), f),
        lambda f: vis.linked(vis.timeline(f), f.iloc[:5]),
        lambda f: vis.graph(f, "host", "bytes", max_nodes=3),
        lambda f: vis.world_map(f),
        lambda f: vis.proctree(f),
        lambda f: vis.timeline([1, 2, 3]),  # type: ignore[arg-type]
    ],
)
def test_bad_input_is_a_data_error_naming_the_place(call: Callable[[pd.DataFrame], Any]) -> None:
    with pytest.raises(DataError) as caught:
        call(_events(50))
    assert caught.value.where


def test_charts_do_not_modify_their_input(demo: dict[str, pd.DataFrame]) -> None:
    conns = demo["network_sessions"].head(500)
    before = conns.copy(deep=True)
    vis.timeline(conns, group_by="DstIpAddr")
    vis.durations(conns, "TimeGenerated", "NetworkDuration")
    vis.values(conns, "SrcBytes", group_by="NetworkProtocol")
    vis.matrix(conns, "SrcIpAddr", "DstIpAddr", value="SrcBytes")
    vis.graph(conns, "SrcIpAddr", "DstIpAddr")
    pd.testing.assert_frame_equal(conns, before)


def test_save_is_one_offline_file_with_a_strict_csp(tmp_path: Path) -> None:
    import bokeh

    chart = vis.timeline(_events(200), group_by="host", title=f"<b>{TEX}</b>")
    path = vis.save(chart, tmp_path / "t.html")
    html = path.read_text(encoding="utf-8")
    part = vis.embed(chart)
    assert "<title>&lt;b&gt;$$\\alpha^2$$&lt;/b&gt;</title>" in html
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    assert csp is not None
    policy = csp.group(1).replace("&#x27;", "'")
    assert "default-src 'none'" in policy and "unsafe-eval" not in policy and "unsafe-inline'; img" in policy
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    assert (
        scripts[:-1] == part.scripts[:-1] and len(scripts) == len(part.scripts) >= 2
    )  # the document's ids differ
    for script in scripts:
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy
    # nothing refers to the network: no src/href attribute, no stylesheet link, no Bokeh CDN ...
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", html)
    assert "cdn.bokeh.org" not in html and "@import" not in html
    # ... and the only URLs are inert strings inside BokehJS itself, byte for byte the installed bundle
    library = (Path(bokeh.__file__).parent / "server" / "static" / "js" / "bokeh.min.js").read_text(
        encoding="utf-8"
    )
    outside = html
    for script in part.scripts[:-1]:
        outside = outside.replace(script, "")
    assert library in part.scripts[0]
    assert not re.search(r"https?://", outside.replace("http-equiv", ""))


def test_embed_gives_raw_scripts_for_another_page() -> None:
    part = vis.embed(vis.matrix(_events(100), "host", "bytes"))
    assert part.div.startswith("<div") and "<script" not in "".join(part.scripts)
    assert part.scripts[0].lstrip().startswith("/* BEGIN bokeh.min.js */")
    assert part.hashes == [
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in part.scripts
    ]
    assert part.needs_eval is False
    from bokeh.models import CustomJS
    from bokeh.plotting import figure

    custom = figure()
    custom.js_on_event("tap", CustomJS(code="1"))
    assert vis.embed(custom).needs_eval is True


def test_plot_accessor_draws_from_its_frame() -> None:
    frame = _events(300)
    plot = vis.PlotAccessor(frame)
    assert plot.timeline(group_by="host").tags == vis.timeline(frame, group_by="host").tags
    assert plot.matrix("host", "bytes").tags[0]["huntbook"]["events"] == 300
    assert plot.values("bytes").tags[0]["huntbook"]["drawn"] == 300


def test_tags_are_json_for_the_page() -> None:
    chart = vis.timeline(_events(100))
    assert json.loads(json.dumps(chart.tags)) == chart.tags
