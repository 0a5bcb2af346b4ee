"""huntbook in Jupyter: :func:`init`, the :class:`QueryTime` widget, rich display and friendly errors.

::

    import huntbook as hb
    from huntbook import notebook
    notebook.init()                      # df.hb, TI verdicts in colour, huntbook errors as one line
    qt = notebook.QueryTime("last 7 days")
    qt                                   # shows the widget: quick ranges and start/end pickers (UTC)
    qp.process.host_processes(host_name="WS01", start=qt, end=qt)
    qp.process.host_processes(host_name="WS01", **qt.params)

:func:`init` registers the ``df.hb`` accessor, an HTML formatter for DataFrames (TI result and roll-up
frames get coloured severities; frames a QueryProvider returned show the query's name, row count and
text; every other frame keeps pandas' own HTML), and an exception handler that shows a
:class:`~huntbook.errors.HuntbookError` as one line with its hint instead of a traceback (``%tb`` still
prints the traceback). Every value from the data is HTML-escaped. Progress bars are ``tqdm.auto`` bars,
which are ipywidgets in a Jupyter kernel.

This module is imported only in notebooks; it needs the ``notebook`` extra (IPython, ipywidgets).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from huntbook.errors import HuntbookError, MissingExtraError, ParameterError

try:
    import ipywidgets as widgets
    from IPython import get_ipython
except ImportError as exc:  # pragma: no cover - the notebook extra is in the test extra
    raise MissingExtraError("huntbook.notebook", "notebook", missing=exc.name) from exc

import pandas as pd

from huntbook import accessor  # noqa: F401  (registers df.hb)
from huntbook.queries import parse_time, parse_timespan
from huntbook.report import SEVERITY_COLOURS, Table, esc
from huntbook.ti import RESULT_COLUMNS, ROLLUP_COLUMNS, Result

__all__ = ["DISPLAY_ROWS", "QUICK_RANGES", "QueryTime", "frame_html", "friendly_error", "init", "ti_html"]

#: Rows of a TI frame shown in a notebook cell (the caption says how many there are).
DISPLAY_ROWS = 200
#: The quick ranges of :class:`QueryTime`, label -> span back from now.
QUICK_RANGES: dict[str, timedelta] = {
    "last 1 hour": timedelta(hours=1),
    "last 24 hours": timedelta(days=1),
    "last 7 days": timedelta(days=7),
    "last 30 days": timedelta(days=30),
}
_CUSTOM = "custom"


# ---------------------------------------------------------------------------------------------------------
# Display


def _is_ti_frame(frame: pd.DataFrame) -> bool:
    columns = set(frame.columns)
    return set(RESULT_COLUMNS[:7]) <= columns or set(ROLLUP_COLUMNS) <= columns


def _severity_badge(value: object) -> str:
    level = str(value) if value is not None else ""
    colour = SEVERITY_COLOURS.get(level)
    if colour is None:
        return esc(value)
    return (
        f'<span style="background:{colour};color:#fff;padding:0 7px;border-radius:9px;'
        f'font-weight:600">{esc(level)}</span>'
    )


def ti_html(frame: pd.DataFrame, max_rows: int = DISPLAY_ROWS) -> str:
    """A TI result (:func:`huntbook.ti.lookup`) or roll-up frame as HTML: severities as coloured
    badges, answers that are not ``ok`` greyed, ``raw`` left out, every value escaped."""
    columns = [c for c in frame.columns if c != "raw"]
    shown = frame.head(max(max_rows, 0))
    head = "".join(f'<th style="text-align:left">{esc(c)}</th>' for c in columns)
    body = []
    for record in shown[columns].to_dict("records"):
        muted = "status" in record and record["status"] != "ok"
        style = ' style="color:#8c959f"' if muted else ""
        cells = "".join(
            f"<td>{_severity_badge(v) if c == 'severity' else esc(v)}</td>" for c, v in record.items()
        )
        body.append(f"<tr{style}>{cells}</tr>")
    note = " (raw answers in the frame's raw column)" if "raw" in frame.columns else ""
    caption = esc(Table.caption(len(shown), len(frame)) + note)
    return (
        f'<div class="huntbook-ti"><p style="color:#59636e;margin:2px 0">{caption}</p>'
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def frame_html(frame: pd.DataFrame) -> str | None:
    """A DataFrame's HTML in a notebook: :func:`ti_html` for TI frames; pandas' HTML under the query's
    name, row count and folded text for a QueryProvider's result; pandas' HTML for any other frame."""
    if _is_ti_frame(frame):
        return ti_html(frame)
    table: str | None = cast(Any, frame)._repr_html_()  # pandas' own notebook HTML
    name, query = frame.attrs.get("query_name"), frame.attrs.get("query")
    if not isinstance(name, str) or table is None:
        return table
    folded = ""
    if isinstance(query, str):
        folded = f"<details><summary>query</summary><pre>{esc(query)}</pre></details>"
    rows = esc(Table.caption(len(frame), len(frame)))
    return f"<div class='huntbook-query'><p>{rows} from <code>{esc(name)}</code></p>{folded}{table}</div>"


def _result_html(result: Result) -> str:
    return ti_html(pd.DataFrame([result.as_row()], columns=RESULT_COLUMNS))


def friendly_error(error: HuntbookError) -> str:
    """One line for a huntbook error: its class, where, what and the hint (``"ParameterError: ..."``)."""
    where = f"{error.where}: " if error.where else ""
    hint = f" \N{EM DASH} {error.hint}" if error.hint else ""
    return f"{type(error).__name__}: {where}{error.message}{hint}"


def _show_error(
    shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: int | None = None
) -> list[str]:
    """IPython custom exception handler: the friendly line as the cell's error output."""
    sys.last_type, sys.last_value, sys.last_traceback = etype, value, tb  # for %tb and %debug
    setattr(sys, "last_exc", value)  # noqa: B010  (Python 3.12+ reads this one)
    line = friendly_error(value) if isinstance(value, HuntbookError) else f"{etype.__name__}: {value}"
    stb = [f"\x1b[1;31m{line}\x1b[0m \x1b[2m(%tb shows the traceback)\x1b[0m"]
    shell._showtraceback(etype, value, stb)  # the kernel's error output; a terminal prints it
    return stb


def init(shell: Any = None, *, friendly_errors: bool = True, mathjax: bool = False) -> None:
    """Set up the running IPython (or ``shell``) for huntbook; outside IPython only ``df.hb`` and pandas.

    Registers the ``df.hb`` accessor (always), the DataFrame/TI-result HTML formatters
    (:func:`frame_html`), and with ``friendly_errors`` the one-line display of huntbook errors.
    ``mathjax=False`` stops pandas' HTML from typesetting ``$...$`` in log data (PowerShell variables)
    as formulas. Calling it again is harmless.
    """
    shell = shell if shell is not None else get_ipython()
    pd.set_option("display.html.use_mathjax", mathjax)
    if shell is None:
        return
    formatter = shell.display_formatter.formatters["text/html"]
    formatter.for_type(pd.DataFrame, frame_html)
    formatter.for_type(Result, _result_html)
    if friendly_errors:
        shell.set_custom_exc((HuntbookError,), _show_error)


# ---------------------------------------------------------------------------------------------------------
# QueryTime


def _minute(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


class QueryTime(widgets.HBox):  # type: ignore[misc]
    """A time range for catalogue queries: a quick-range menu and start/end pickers, in UTC.

    Pass it as ``start=qt, end=qt`` (a datetime parameter whose name contains ``end`` takes the end,
    any other takes the start) or as ``**qt.params``. Choosing a quick range sets the pickers to that
    span ending now (to the minute); editing a picker switches the menu to ``custom``. ``span`` is a
    label of :data:`QUICK_RANGES` or a timespan (``"12h"``, a ``timedelta``); ``start``/``end`` set a
    custom range instead (anything :func:`huntbook.queries.parse_time` reads).
    """

    def __init__(
        self,
        span: str | timedelta = "last 24 hours",
        *,
        start: Any = None,
        end: Any = None,
        now: datetime | None = None,
    ) -> None:
        ranges = dict(QUICK_RANGES)
        label = span if isinstance(span, str) and span in ranges else None
        if label is None:
            delta = parse_timespan(span, name="span")
            label = f"last {span}" if isinstance(span, str) else f"last {delta}"
            ranges[label] = delta
        self._ranges = ranges
        self._updating = False
        self.range = widgets.Dropdown(
            options=[*ranges, _CUSTOM], value=label, description="Time range", layout={"width": "260px"}
        )
        self.start_picker = widgets.NaiveDatetimePicker(description="start (UTC)")
        self.end_picker = widgets.NaiveDatetimePicker(description="end (UTC)")
        super().__init__([self.range, self.start_picker, self.end_picker])
        self.range.observe(self._range_chosen, names="value")
        self.start_picker.observe(self._picker_edited, names="value")
        self.end_picker.observe(self._picker_edited, names="value")
        if start is not None or end is not None:
            now_utc = _minute(now or datetime.now(UTC))
            self.set_range(
                parse_time(start, now_utc, name="start") if start is not None else now_utc - ranges[label],
                parse_time(end, now_utc, name="end") if end is not None else now_utc,
            )
        else:
            self._apply(label, now)

    # -- state -------------------------------------------------------------------------------------------
    def _apply(self, label: str, now: datetime | None = None) -> None:
        end = _minute(now or datetime.now(UTC))
        self._set_pickers(end - self._ranges[label], end)

    def _set_pickers(self, start: datetime, end: datetime) -> None:
        self._updating = True
        try:
            self.start_picker.value = start.astimezone(UTC).replace(tzinfo=None)
            self.end_picker.value = end.astimezone(UTC).replace(tzinfo=None)
        finally:
            self._updating = False

    def _range_chosen(self, change: Mapping[str, Any]) -> None:
        if change["new"] != _CUSTOM:
            self._apply(change["new"])

    def _picker_edited(self, change: Mapping[str, Any]) -> None:
        if not self._updating:
            self.range.value = _CUSTOM

    def set_range(self, start: Any, end: Any) -> QueryTime:
        """Set a custom range (anything :func:`huntbook.queries.parse_time` reads); returns the widget."""
        now = datetime.now(UTC)
        self._set_pickers(parse_time(start, now, name="start"), parse_time(end, now, name="end"))
        self._updating = True
        try:
            self.range.value = _CUSTOM
        finally:
            self._updating = False
        return self

    # -- values ------------------------------------------------------------------------------------------
    def _picked(self, picker: Any, name: str) -> datetime:
        if picker.value is None:
            raise ParameterError(f"QueryTime has no {name}", where=name, hint="pick a date and time")
        return picker.value.replace(tzinfo=UTC)  # type: ignore[no-any-return]

    @property
    def start(self) -> datetime:
        """The start of the range (UTC)."""
        return self._picked(self.start_picker, "start")

    @property
    def end(self) -> datetime:
        """The end of the range (UTC)."""
        return self._picked(self.end_picker, "end")

    @property
    def params(self) -> dict[str, datetime]:
        """``{"start": ..., "end": ...}`` for ``**qt.params``; the start must be before the end."""
        start, end = self.start, self.end
        if start >= end:
            raise ParameterError(
                f"QueryTime start {start.isoformat()} is not before its end {end.isoformat()}",
                where="QueryTime",
                hint="pick an earlier start or a later end",
            )
        return {"start": start, "end": end}

    def huntbook_time(self, name: str) -> datetime:
        """The end for a parameter whose name contains ``end``, else the start (read by ``parse_time``)."""
        return self.params["end" if "end" in name.lower() else "start"]

    def __repr__(self) -> str:
        start, end = self.start_picker.value, self.end_picker.value
        return f"QueryTime({start} .. {end} UTC, {self.range.value!r})"
