"""huntbook.notebook: init(), display, friendly errors, the QueryTime widget; docs/notebooks executed."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

pytest.importorskip("ipywidgets", reason="the notebook extra (ipywidgets, IPython) is not installed")

from IPython.core.interactiveshell import InteractiveShell

from huntbook import notebook
from huntbook.errors import ParameterError
from huntbook.notebook import QueryTime, friendly_error
from huntbook.queries import parse_time
from huntbook.report import SEVERITY_COLOURS
from huntbook.ti import RESULT_COLUMNS, Result

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "docs" / "notebooks").glob("*.ipynb"))
NOW = datetime(2026, 10, 8, 12, 34, 56, tzinfo=UTC)
XSS = '<img src=x onerror="window.__pwned=1">'


@pytest.fixture
def shell() -> Iterator[Any]:
    ip = InteractiveShell.instance()
    notebook.init(ip)
    yield ip
    ip.set_custom_exc((), None)
    ip.display_formatter.formatters["text/html"].pop(pd.DataFrame, None)
    ip.display_formatter.formatters["text/html"].pop(Result, None)


def html_of(shell: Any, value: object) -> str:
    data, _ = shell.display_formatter.format(value)
    return str(data.get("text/html", ""))


def ti_frame() -> pd.DataFrame:
    rows = [
        ("local_feeds", "203.0.113.66", "ipv4", "ok", "high", f"in feed: {XSS}", "feed.csv", '{"x": 1}'),
        ("virustotal", "203.0.113.66", "ipv4", "no_key", "", "no API key", "", ""),
        ("local_feeds", "evil.example", "dns", "ok", "low", "seen once", "", ""),
    ]
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


# ---------------------------------------------------------------------------------------------------------
# init and display


def test_init_registers_the_accessor_and_turns_off_mathjax(shell: Any) -> None:
    frame = pd.DataFrame({"CommandLine": ["powershell -enc SQBFAFgA"]})
    assert hasattr(frame, "hb") and frame.hb.decode("CommandLine").loc[0, "text"] == "IEX"
    assert pd.get_option("display.html.use_mathjax") is False


def test_ti_frames_show_coloured_escaped_severities(shell: Any) -> None:
    page = html_of(shell, ti_frame())
    assert (
        f"background:{SEVERITY_COLOURS['high']}" in page and f"background:{SEVERITY_COLOURS['low']}" in page
    )
    assert XSS not in page and "&lt;img src=x onerror=&quot;window.__pwned=1&quot;&gt;" in page
    assert "<th" in page and ">raw<" not in page and '{"x": 1}' not in page  # raw is left out
    assert "3 rows (raw answers in the frame&#x27;s raw column)" in page
    assert page.count('<tr style="color:#8c959f">') == 1  # the no_key answer is greyed
    rollup = notebook.ti_html(pd.DataFrame(columns=["ioc"]))  # any frame renders; a rollup is detected
    assert "no rows" in rollup
    from huntbook.ti import rollup as ti_rollup

    assert f"background:{SEVERITY_COLOURS['high']}" in html_of(shell, ti_rollup(ti_frame()))
    one = Result("local_feeds", "203.0.113.66", "ipv4", "ok", "medium", "s", "", "")
    assert f"background:{SEVERITY_COLOURS['medium']}" in html_of(shell, one)


def test_query_results_show_their_query_and_other_frames_stay_pandas(shell: Any) -> None:
    plain = pd.DataFrame({"a": [XSS]})
    assert html_of(shell, plain) == plain._repr_html_()
    result = plain.copy()
    result.attrs.update(query_name="process.host_processes", query=f"SELECT '{XSS}'")
    page = html_of(shell, result)
    assert page.startswith(
        "<div class='huntbook-query'><p>1 row from <code>process.host_processes</code></p>"
    )
    assert "<details><summary>query</summary><pre>SELECT &#x27;&lt;img src=x" in page
    assert XSS not in page


def test_a_huntbook_error_is_one_friendly_line(shell: Any, capsys: pytest.CaptureFixture[str]) -> None:
    result = shell.run_cell("from huntbook.queries import parse_time\nparse_time('soon', name='start')")
    out = capsys.readouterr().out
    assert result.success is False and isinstance(result.error_in_exec, ParameterError)
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out
    assert "ParameterError: start='soon' (str) is not a time \N{EM DASH} use a datetime" in lines[0]
    assert "Traceback" not in out and "parse_time(" not in out
    assert sys.last_value is result.error_in_exec
    shell.run_cell("%tb")  # the full traceback is still there
    assert "Traceback" in capsys.readouterr().out
    other = shell.run_cell("1 / 0")  # other errors keep IPython's traceback
    assert isinstance(other.error_in_exec, ZeroDivisionError) and "Traceback" in capsys.readouterr().out


def test_friendly_error_names_where_and_hint() -> None:
    error = ParameterError("is not a time", where="start", hint="use an ISO string")
    assert friendly_error(error) == "ParameterError: start: is not a time \N{EM DASH} use an ISO string"


def test_init_outside_ipython_sets_up_pandas_only() -> None:
    code = (
        "from huntbook import notebook; import pandas as pd; notebook.init(); "
        "print(hasattr(pd.DataFrame(), 'hb'), pd.get_option('display.html.use_mathjax'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]


# ---------------------------------------------------------------------------------------------------------
# QueryTime


def picked(qt: QueryTime) -> tuple[datetime, datetime]:
    return qt.start, qt.end


def test_query_time_quick_ranges_and_custom_edits() -> None:
    qt = QueryTime("last 7 days", now=NOW)
    end = NOW.replace(second=0)
    assert picked(qt) == (end - timedelta(days=7), end)
    assert qt.params == {"start": end - timedelta(days=7), "end": end}
    assert qt.range.options[-1] == "custom" and qt.range.value == "last 7 days"
    qt.range.value = "last 1 hour"  # computed from the real clock
    assert qt.end - qt.start == timedelta(hours=1) and abs(qt.end - datetime.now(UTC)) < timedelta(minutes=2)
    qt.start_picker.value = datetime(2026, 10, 5, 8, 0)
    assert qt.range.value == "custom" and qt.start == datetime(2026, 10, 5, 8, 0, tzinfo=UTC)
    qt.set_range("2026-10-05T00:00:00+02:00", "2026-10-06")
    assert picked(qt) == (datetime(2026, 10, 4, 22, tzinfo=UTC), datetime(2026, 10, 6, tzinfo=UTC))
    assert qt.range.value == "custom"
    assert "2026-10-04 22:00:00 .. 2026-10-06 00:00:00 UTC" in repr(qt)


def test_query_time_spans_and_explicit_bounds() -> None:
    qt = QueryTime("12h", now=NOW)
    assert qt.range.value == "last 12h" and qt.end - qt.start == timedelta(hours=12)
    qt = QueryTime(start="2026-10-05", end="2026-10-08", now=NOW)
    assert picked(qt) == (datetime(2026, 10, 5, tzinfo=UTC), datetime(2026, 10, 8, tzinfo=UTC))
    qt = QueryTime(start="-2d", now=NOW)  # the end defaults to now
    assert qt.end == NOW.replace(second=0) and qt.start == NOW.replace(second=0) - timedelta(days=2)
    with pytest.raises(ParameterError, match="span"):
        QueryTime("fortnight")


def test_query_time_is_a_start_and_end_for_parse_time() -> None:
    qt = QueryTime(start="2026-10-05T06:00:00Z", end="2026-10-05T18:00:00Z")
    assert parse_time(qt, name="start") == datetime(2026, 10, 5, 6, tzinfo=UTC)
    assert parse_time(qt, name="end") == datetime(2026, 10, 5, 18, tzinfo=UTC)
    assert qt.huntbook_time("start_time") == qt.start and qt.huntbook_time("EndTime") == qt.end


def test_query_time_refuses_an_empty_or_reversed_range() -> None:
    qt = QueryTime(start="2026-10-06", end="2026-10-05")
    with pytest.raises(ParameterError, match="is not before its end") as caught:
        parse_time(qt, name="start")
    assert caught.value.where == "QueryTime"
    qt.start_picker.value = None
    with pytest.raises(ParameterError, match="QueryTime has no start"):
        qt.params  # noqa: B018


def test_parse_time_reads_any_object_with_huntbook_time() -> None:
    class Fixed:
        def huntbook_time(self, name: str) -> str:
            return "2026-10-05T00:00:00Z" if name == "start" else "garbage"

    assert parse_time(Fixed(), name="start") == datetime(2026, 10, 5, tzinfo=UTC)
    with pytest.raises(ParameterError, match="end='garbage'"):
        parse_time(Fixed(), name="end")


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Any:
    import huntbook as hb

    folder = tmp_path_factory.mktemp("case")
    hb.demo.generate(folder / "evidence", days=2, scale=0.05)
    store = hb.LocalStore(folder / "store")
    store.ingest([folder / "evidence" / "windows"], progress=False)
    return hb.QueryProvider("local", store=store)


def test_query_time_runs_catalogue_queries(provider: Any) -> None:
    import huntbook as hb

    everything = provider.process.host_processes(host_name="SRV01", start=hb.demo.START, end="2027-01-01")
    assert len(everything) > 20
    cut = everything["TimeGenerated"].sort_values().iloc[len(everything) // 2].to_pydatetime()
    qt = QueryTime(start=hb.demo.START, end=cut)
    by_widget = provider.process.host_processes(host_name="SRV01", start=qt, end=qt)
    by_params = provider.process.host_processes(host_name="SRV01", **qt.params)
    expected = everything[everything["TimeGenerated"] < cut]
    assert 0 < len(by_widget) < len(everything)
    assert sorted(by_widget["EventKey"]) == sorted(by_params["EventKey"]) == sorted(expected["EventKey"])
    rendered = provider.process.host_processes(host_name="SRV01", start=qt, end=qt, print_query=True)
    assert cut.strftime("%Y-%m-%d %H:%M:%S") in rendered


# ---------------------------------------------------------------------------------------------------------
# In a real kernel: widget progress bars, friendly errors, and the docs notebooks


def run_notebook(nb: Any, folder: Path, allow_errors: bool = False) -> Any:
    from nbclient import NotebookClient

    client = NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        allow_errors=allow_errors,
        resources={"metadata": {"path": str(folder)}},
    )
    return client.execute()


def test_in_a_kernel_progress_bars_are_widgets_and_errors_one_line(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(
        cells=[
            new_code_cell(
                "from huntbook import notebook\nfrom huntbook._progress import progress_bar\n"
                "notebook.init()\nbar = progress_bar(True, total=3)\n"
                "import ipywidgets, tqdm.notebook\n"
                "print(isinstance(bar, tqdm.notebook.tqdm_notebook),\n"
                "      isinstance(bar.container, ipywidgets.HBox))\n"
                "bar.close()"
            ),
            new_code_cell("from huntbook.queries import parse_time\nparse_time('soon', name='start')"),
        ]
    )
    nbformat.validate(nb)
    run_notebook(nb, tmp_path, allow_errors=True)
    first, second = nb.cells
    stream = "".join(o.get("text", "") for o in first.outputs if o.output_type == "stream")
    assert stream.split() == ["True", "True"]  # a tqdm.notebook bar: an ipywidgets HBox
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in first.outputs)
    (error,) = [o for o in second.outputs if o.output_type == "error"]
    assert error.ename == "ParameterError" and len(error.traceback) == 1
    assert "start='soon' (str) is not a time" in error.traceback[0]


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS, "docs/notebooks/ has no notebook"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_docs_notebook_runs_clean(path: Path, tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code), "store notebooks without outputs"
    started = datetime.now(UTC)
    run_notebook(nb, tmp_path)
    seconds = (datetime.now(UTC) - started).total_seconds()
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert errors == []
    assert all(c.execution_count is not None for c in code)
    stderr = [o.text for c in code for o in c.outputs if o.output_type == "stream" and o.name == "stderr"]
    assert not any("Traceback" in text or "Warning" in text for text in stderr), stderr
    assert seconds < 60, f"{path.name} took {seconds:.0f} s"
    print(f"{path.name}: {len(code)} code cells in {seconds:.1f} s")
