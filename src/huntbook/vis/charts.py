"""Time and matrix charts: event timeline, durations, values over time, matrix, anomalies, linked table.

Every chart draws every row it is given or an aggregate that says so in its subtitle (and in its
``tags``: ``{"huntbook": {"events": ..., "drawn": ..., "mode": ...}}``); rows that cannot be drawn (no
time, no value) are counted there too. Nothing is dropped silently.
"""

from __future__ import annotations

import heapq
import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from bokeh.layouts import column
from bokeh.models import (
    BoxSelectTool,
    ColumnDataSource,
    LayoutDOM,
    LinearColorMapper,
    LogColorMapper,
    Range1d,
    TapTool,
)
from bokeh.models.annotations import ColorBar, Label, Legend, Span
from bokeh.models.widgets import DataTable, StringFormatter, TableColumn
from bokeh.palettes import Viridis256
from bokeh.plotting import figure
from bokeh.transform import transform

from huntbook.errors import DataError
from huntbook.timeseries import DEFAULT_THRESHOLD
from huntbook.vis._base import (
    MISSING,
    add_hover,
    bin_step,
    columns_of,
    display_texts,
    duration_text,
    group_codes,
    hover_data,
    legend_item,
    new_figure,
    palette,
    plain,
    require,
    row_axis,
    rows_of,
    short,
    tag,
    utc_ms,
)

__all__ = ["anomalies", "durations", "linked", "matrix", "timeline", "values"]

_EVENTS = "huntbook.events"  # name of the per-event data source of a timeline (linked() finds it)
_BIG = 20_000  # above this many glyphs, draw squares without outline (circles are 3x slower to paint)
_DEFAULT_HOVER = 4  # columns shown by default beside the time and the groups
_UNITS = {"s": 1000.0, "ms": 1.0}  # duration units -> milliseconds


def _height(rows: int, height: int | None) -> int:
    return height if height is not None else int(min(900, max(240, 110 + 42 * rows)))


def _points_style(n: int) -> dict[str, Any]:
    if n > _BIG:
        return {"marker": "square", "size": 5, "line_color": None, "fill_alpha": 0.6}
    return {"marker": "circle", "size": 7, "line_alpha": 0.9, "fill_alpha": 0.55}


def _default_hover(frame: pd.DataFrame, used: Sequence[str]) -> list[str]:
    others = [c for c in frame.columns if c not in used]
    return [*used, *others[:_DEFAULT_HOVER]]


def _missing_note(count: int, what: str) -> str:
    return f"; {count:,} {what} not drawn" if count else ""


def _group_colors(codes_field: str, n: int) -> Any:
    mapper = LinearColorMapper(palette=palette(n), low=-0.5, high=n - 0.5)
    return transform(codes_field, mapper)


def _marker_times(markers: Mapping[str, Any] | Sequence[Any] | None) -> list[tuple[str, float]]:
    if markers is None:
        return []
    if isinstance(markers, Mapping):
        labels, times = [str(k) for k in markers], list(markers.values())
    else:
        times = list(markers)
        labels = []
    ms = utc_ms(pd.Series(times, dtype=object), "timeline: markers")
    if np.isnan(ms).any():
        raise DataError("a marker has no usable time", where="timeline: markers", hint="{'label': time, ...}")
    if not labels:
        labels = [pd.Timestamp(m, unit="ms", tz="UTC").isoformat() for m in ms]
    return list(zip(labels, ms.tolist(), strict=True))


def _add_markers(fig: figure, markers: list[tuple[str, float]], top: float) -> None:
    if not markers:
        return
    for label, ms in markers:
        fig.add_layout(Span(location=ms, dimension="height", line_color="#d62728", line_dash="dashed"))
        fig.add_layout(
            Label(
                x=ms, y=top, text=plain(short(label)), x_offset=4, text_font_size="10px", text_color="#d62728"
            )
        )
    data: dict[str, Any] = {
        "x": [m for _, m in markers],
        "y": [top] * len(markers),
        "m0": [label for label, _ in markers],
        "m1": display_texts(pd.Series(pd.to_datetime([m for _, m in markers], unit="ms", utc=True))),
    }
    renderer = fig.scatter(
        "x", "y", source=ColumnDataSource(data), marker="inverted_triangle", size=11, color="#d62728"
    )
    add_hover(fig, [renderer], [("marker", "m0"), ("time (UTC)", "m1")])


def timeline(
    data: pd.DataFrame,
    time_column: str = "TimeGenerated",
    group_by: str | Sequence[str] | None = None,
    hover: Sequence[str] | None = None,
    markers: Mapping[str, Any] | Sequence[Any] | None = None,
    title: str | None = None,
    max_points: int = 200_000,
    *,
    max_bins: int = 2_000,
    height: int | None = None,
) -> figure:
    """Events on a time axis, one row per group (``group_by``: a column or several), hover with the
    ``hover`` columns (default: the time, the groups and the next few columns), ``markers`` as dashed
    reference lines (``{"label": time}`` or a list of times).

    Up to ``max_points`` events every event is drawn. Above, events are counted per time bin and group
    (at most ``max_bins`` round bins: 1 s, 5 min, 1 h ...) and drawn as bars; the subtitle says
    "1,000,000 events in 577 bins of 5 min (aggregated)". Events without a time are counted in the
    subtitle. Returns a Bokeh figure.
    """
    groups = columns_of(group_by)
    frame = require(data, [time_column, *groups, *(hover or [])], "timeline")
    if frame.empty:
        raise DataError("is empty", where="timeline", hint="nothing to draw")
    ms = utc_ms(frame[time_column], f"timeline: {time_column}")
    marks = _marker_times(markers)
    keep = np.flatnonzero(~np.isnan(ms))
    without_time = len(frame) - len(keep)
    if not len(keep):
        raise DataError("no event has a time", where=f"timeline: {time_column}")
    codes, labels = group_codes(frame.iloc[keep], groups)
    x = ms[keep]
    n_rows = len(labels)
    heading = title if title is not None else f"Timeline: {len(frame):,} events"
    if title is None and groups:
        heading += f" by {' / '.join(groups)}"
    if len(keep) <= max_points:
        step = 0.0
        subtitle = f"{len(keep):,} events, each one drawn"
    else:
        step, step_label, bins = bin_step(float(x.min()), float(x.max()), max_bins)
        subtitle = (
            f"{len(keep):,} events in {bins:,} bins of {step_label}{' per group' if n_rows > 1 else ''}"
            f" (aggregated: more than max_points={max_points:,})"
        )
    fig = new_figure(
        heading,
        subtitle + _missing_note(without_time, "without a time"),
        x_axis_type="datetime",
        height=_height(n_rows, height),
    )
    fig.xaxis.axis_label = plain(f"{time_column} (UTC)")
    row_axis(fig, labels)
    fig.yaxis.visible = bool(groups)
    info = {"chart": "timeline", "events": len(frame), "without_time": without_time}
    if not step:
        shown = _default_hover(frame, [time_column, *groups]) if hover is None else list(hover)
        _draw_events(fig, frame.iloc[keep], keep, x, codes, n_rows, shown)
        tag(fig, **info, mode="points", drawn=len(keep))
    else:
        drawn = _draw_bins(fig, x, codes, labels, step, step_label, bins, grouped=bool(groups))
        tag(fig, **info, mode="aggregated", drawn=drawn, bins=bins, bin_ms=step)
    if marks:  # room above the top row for the marker labels
        fig.y_range = Range1d(start=-0.6, end=n_rows + 0.2, bounds=(-0.6, n_rows + 0.2))
        _add_markers(fig, marks, n_rows - 0.15)
    return fig


def _draw_events(
    fig: figure,
    rows: pd.DataFrame,
    positions: np.ndarray,
    x: np.ndarray,
    codes: np.ndarray,
    n_rows: int,
    shown: Sequence[str],
) -> None:
    """One point per event, jittered within its group's row; box select and tap select events."""
    texts, tips = hover_data(rows, shown)
    jitter = np.random.default_rng(0).uniform(-0.3, 0.3, len(x))
    source = ColumnDataSource(
        {"x": x, "y": rows_of(codes, n_rows) + jitter, "group": codes, "row": positions, **texts},
        name=_EVENTS,
    )
    renderer: Any = fig.scatter(
        "x", "y", source=source, color=_group_colors("group", n_rows), **_points_style(len(x))
    )
    add_hover(fig, [renderer], tips)
    fig.add_tools(BoxSelectTool(dimensions="width", renderers=[renderer]), TapTool(renderers=[renderer]))


def _draw_bins(
    fig: figure,
    x: np.ndarray,
    codes: np.ndarray,
    labels: Sequence[str],
    step: float,
    step_label: str,
    bins: int,
    *,
    grouped: bool,
) -> int:
    """Event counts per aligned time bin and group, as bars in each group's row; returns the events
    counted (every one: the bars' counts add up to ``len(x)``)."""
    n_rows = len(labels)
    origin = math.floor(x.min() / step) * step
    position = np.floor((x - origin) / step).astype("int64")
    counts = np.bincount(codes * bins + position, minlength=n_rows * bins)
    where = np.flatnonzero(counts)
    group, slot = where // bins, where % bins
    count = counts[where]
    left = origin + slot * step
    bottom = rows_of(group, n_rows) - 0.4
    source = ColumnDataSource(
        {
            "left": left,
            "right": left + step,
            "bottom": bottom,
            "top": bottom + 0.15 + 0.65 * count / count.max(),  # the smallest count still shows
            "group": group,
            "count": count,
            "h0": [labels[g] for g in group.tolist()],
            "h1": display_texts(pd.Series(pd.to_datetime(left, unit="ms", utc=True))),
            "h2": [f"{c:,}" for c in count.tolist()],
        },
        name="huntbook.bins",
    )
    renderer = fig.quad(
        "left", "right", "top", "bottom", source=source, color=_group_colors("group", n_rows), line_alpha=0.3
    )
    tips = [("group", "h0")] if grouped else []
    add_hover(fig, [renderer], [*tips, (f"bin ({step_label}) from", "h1"), ("events", "h2")])
    return int(count.sum())


def durations(
    data: pd.DataFrame,
    start: str,
    end: str,
    group_by: str | Sequence[str] | None = None,
    hover: Sequence[str] | None = None,
    *,
    unit: str = "s",
    title: str | None = None,
    max_spans: int = 50_000,
    height: int | None = None,
) -> figure:
    """Spans from ``start`` to ``end`` as bars, one row per group; overlapping spans of a group are put
    side by side in lanes. ``end`` is a time column, or a duration column: timedelta, or numbers in
    ``unit`` (``"s"``, as Zeek's ``duration``; ``"ms"``, as ASIM's ``NetworkDuration``). Spans with no
    end are drawn as a diamond at their start; rows with no start are counted in the subtitle. More than
    ``max_spans`` spans: DataError (filter first, or use :func:`timeline`, which aggregates)."""
    groups = columns_of(group_by)
    frame = require(data, [start, end, *groups, *(hover or [])], "durations")
    if frame.empty:
        raise DataError("is empty", where="durations")
    begin = utc_ms(frame[start], f"durations: {start}")
    ends = frame[end]
    if pd.api.types.is_timedelta64_dtype(ends):
        finish = begin + ends.dt.total_seconds().to_numpy(dtype="float64") * 1000.0
    elif pd.api.types.is_numeric_dtype(ends) and not pd.api.types.is_bool_dtype(ends):
        scale = _UNITS.get(unit)
        if scale is None:
            raise DataError(f"unknown unit {unit!r}", where="durations: unit", hint="use 's' or 'ms'")
        numbers = pd.to_numeric(ends, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        finish = begin + numbers * scale
    else:
        finish = utc_ms(ends, f"durations: {end}")
    keep = np.flatnonzero(~np.isnan(begin))
    if not len(keep):
        raise DataError("no span has a start time", where=f"durations: {start}")
    if len(keep) > max_spans:
        raise DataError(
            f"{len(keep):,} spans are more than max_spans={max_spans:,}",
            where="durations",
            hint="filter the rows, raise max_spans, or use vis.timeline() (it aggregates honestly)",
        )
    b, f = begin[keep], finish[keep]
    open_ended = np.isnan(f)
    backwards = int(np.sum(f < b))
    left, right = np.fmin(b, f), np.fmax(b, f)
    left[open_ended], right[open_ended] = b[open_ended], b[open_ended]
    codes, labels = group_codes(frame.iloc[keep], groups)
    n_rows = len(labels)
    lane, lanes = _lanes(codes, left, right)
    lane_height = 0.8 / lanes[codes]
    y = rows_of(codes, n_rows) - 0.4 + lane_height * (lane + 0.5)
    shown = [start, end, *groups] if hover is None else list(hover)
    texts, rows = hover_data(frame.iloc[keep], shown)
    data_columns = {
        "left": left,
        "right": right,
        "y": y,
        "height": lane_height * 0.85,
        "group": codes,
        "row": keep,
        "d0": [
            "(no end)" if o else duration_text(v)
            for v, o in zip((right - left).tolist(), open_ended.tolist(), strict=True)
        ],
        **texts,
    }
    notes = [f"{len(keep):,} spans, each one drawn"]
    if open_ended.any():
        notes.append(f"{int(open_ended.sum()):,} without an end (diamonds)")
    if backwards:
        notes.append(f"{backwards:,} ending before they start (drawn end to start)")
    subtitle = "; ".join(notes) + _missing_note(len(frame) - len(keep), "without a start")
    heading = title if title is not None else f"Durations: {start} to {end}"
    fig = new_figure(heading, subtitle, x_axis_type="datetime", height=_height(n_rows, height))
    fig.xaxis.axis_label = plain("time (UTC)")
    row_axis(fig, labels)
    if not groups:
        fig.yaxis.visible = False
    colors = _group_colors("group", n_rows)
    closed = ColumnDataSource(
        {k: np.asarray(v)[~open_ended] for k, v in data_columns.items()}, name="huntbook.spans"
    )
    renderers: list[Any] = [
        fig.hbar(
            y="y", left="left", right="right", height="height", source=closed, color=colors, fill_alpha=0.6
        )
    ]
    if open_ended.any():
        opened = ColumnDataSource(
            {k: np.asarray(v)[open_ended] for k, v in data_columns.items()}, name="huntbook.open_spans"
        )
        renderers.append(fig.scatter("left", "y", source=opened, marker="diamond", size=10, color=colors))
    add_hover(fig, renderers, [*rows, ("duration", "d0")])
    tag(
        fig,
        chart="durations",
        mode="spans",
        events=len(frame),
        drawn=len(keep),
        open_ended=int(open_ended.sum()),
        without_time=len(frame) - len(keep),
    )
    return fig


def _lanes(
    codes: np.ndarray, left: np.ndarray, right: np.ndarray, limit: int = 12
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy lanes so that spans of a group do not overlap (at most ``limit`` lanes, then shared)."""
    lane = np.zeros(len(codes), dtype="int64")
    lanes = np.ones(int(codes.max()) + 1, dtype="int64")
    order = np.lexsort((left, codes))
    current, free = -1, list[tuple[float, int]]()  # free: heap of (end, lane) per group
    used = 0
    for i in order.tolist():
        if codes[i] != current:
            current, free, used = int(codes[i]), [], 0
        if free and free[0][0] <= left[i]:
            _, chosen = heapq.heappop(free)
        elif used < limit:
            chosen, used = used, used + 1
        else:
            _, chosen = heapq.heappop(free)
        lane[i] = chosen
        heapq.heappush(free, (float(right[i]), chosen))
        lanes[current] = max(lanes[current], used)
    return lane, lanes


def _numbers(values: pd.Series, where: str) -> np.ndarray:
    if pd.api.types.is_bool_dtype(values) or not (
        pd.api.types.is_numeric_dtype(values)
        or values.dtype == object
        or pd.api.types.is_string_dtype(values)
    ):
        raise DataError(f"is not numeric ({values.dtype})", where=where)
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan, copy=True)
    if len(numbers) and np.isnan(numbers).all() and values.notna().any():
        raise DataError(f"holds no numbers ({values.dtype})", where=where)
    numbers[np.isinf(numbers)] = np.nan
    return numbers


def values(
    data: pd.DataFrame,
    value_column: str,
    time_column: str = "TimeGenerated",
    group_by: str | Sequence[str] | None = None,
    hover: Sequence[str] | None = None,
    *,
    title: str | None = None,
    max_points: int = 200_000,
    max_bins: int = 2_000,
    height: int | None = None,
) -> figure:
    """A numeric column over time, one line per group (click a legend entry to hide it). Up to
    ``max_points`` values each one is drawn; above, each group's values are summarised per time bin (a
    min-max band and the mean), and the subtitle says so. Rows without a time or a number are counted."""
    groups = columns_of(group_by)
    frame = require(data, [value_column, time_column, *groups, *(hover or [])], "values")
    if frame.empty:
        raise DataError("is empty", where="values")
    numbers = _numbers(frame[value_column], f"values: {value_column}")
    ms = utc_ms(frame[time_column], f"values: {time_column}")
    keep = np.flatnonzero(~np.isnan(ms) & ~np.isnan(numbers))
    if not len(keep):
        raise DataError("no row has both a time and a number", where=f"values: {value_column}")
    dropped = len(frame) - len(keep)
    codes, labels = group_codes(frame.iloc[keep], groups)
    x, y = ms[keep], numbers[keep]
    colors = palette(len(labels))
    aggregated = len(keep) > max_points
    if aggregated:
        step, step_label, bins = bin_step(float(x.min()), float(x.max()), max_bins)
        subtitle = (
            f"{len(keep):,} values in {bins:,} bins of {step_label}: min-max band and mean per bin"
            f" (aggregated: more than max_points={max_points:,})"
        )
    else:
        subtitle = f"{len(keep):,} values, each one drawn"
    subtitle += _missing_note(dropped, "rows without a time or a number")
    heading = title if title is not None else f"{value_column} over time"
    fig = new_figure(heading, subtitle, x_axis_type="datetime", height=height or 380)
    fig.xaxis.axis_label = plain(f"{time_column} (UTC)")
    fig.yaxis.axis_label = plain(short(value_column))
    items, hovered = [], []
    shown = [time_column, value_column, *groups] if hover is None else list(hover)
    rows: list[tuple[str, str]] = []  # the tooltip: the same columns in every group's source
    drawn = 0
    for g, label in enumerate(labels):
        members = np.flatnonzero(codes == g)
        members = members[np.argsort(x[members], kind="stable")]
        color = colors[g]
        if not aggregated:
            texts, rows = hover_data(frame.iloc[keep[members]], shown)
            src = ColumnDataSource(
                {"x": x[members], "y": y[members], "row": keep[members], **texts}, name=f"huntbook.values.{g}"
            )
            line = fig.line("x", "y", source=src, color=color, line_width=1.5)
            dots = fig.scatter("x", "y", source=src, color=color, **_points_style(len(keep)))
            drawn += len(members)
        else:
            origin = math.floor(x.min() / step) * step
            table = pd.DataFrame({"bin": np.floor((x[members] - origin) / step), "v": y[members]})
            summary = table.groupby("bin")["v"].agg(["min", "max", "mean", "count"])
            left = origin + summary.index.to_numpy() * step
            src = ColumnDataSource(
                {
                    "x": left + step / 2,
                    "lo": summary["min"].to_numpy(),
                    "hi": summary["max"].to_numpy(),
                    "y": summary["mean"].to_numpy(),
                    "count": summary["count"].to_numpy(),
                    "b0": display_texts(pd.Series(pd.to_datetime(left, unit="ms", utc=True))),
                    "b1": [f"{c:,}" for c in summary["count"].tolist()],
                    "b2": [
                        f"{a:.6g} / {m:.6g} / {b:.6g}"
                        for a, m, b in summary[["min", "mean", "max"]].itertuples(index=False)
                    ],
                    "b3": [label] * len(summary),
                },
                name=f"huntbook.bins.{g}",
            )
            fig.varea("x", "lo", "hi", source=src, fill_color=color, fill_alpha=0.25)
            line = fig.line("x", "y", source=src, color=color, line_width=1.5)
            dots = fig.scatter("x", "y", source=src, color=color, size=4)
            rows = [
                *([("group", "b3")] if groups else []),
                (f"bin ({step_label}) from", "b0"),
                ("values", "b1"),
                ("min / mean / max", "b2"),
            ]
            drawn += int(summary["count"].sum())
        hovered.append(dots)
        items.append(legend_item(label or value_column, line, dots))
    add_hover(fig, hovered, rows)
    if groups:
        legend = Legend(items=items, click_policy="hide", location="top_left")
        fig.add_layout(legend, "right")
    tag(
        fig,
        chart="values",
        mode="aggregated" if aggregated else "points",
        events=len(frame),
        drawn=drawn,
        without_value=dropped,
    )
    return fig


def _categories(texts: pd.Series, weights: pd.Series, limit: int) -> tuple[pd.Series, list[str], int]:
    """Labels with all but the ``limit`` heaviest folded into one "(N others)" label; the kept order."""
    totals = weights.groupby(texts).sum().sort_values(ascending=False, kind="stable")
    if len(totals) <= limit:
        return texts, list(totals.index), 0
    kept = list(totals.index[: limit - 1])
    folded = len(totals) - len(kept)
    other = f"({folded:,} others)"
    while other in kept:
        other = f"({other})"
    return texts.where(texts.isin(kept), other), [*kept, other], folded


def matrix(
    data: pd.DataFrame,
    x: str,
    y: str,
    value: str | None = None,
    *,
    title: str | None = None,
    max_categories: int = 50,
    height: int | None = None,
) -> figure:
    """A matrix of ``x`` by ``y`` values (e.g. source by destination): the number of rows of each pair,
    or the sum of ``value``. Each axis keeps its ``max_categories`` heaviest values and sums the rest into
    one "(N others)" row or column, which the subtitle reports."""
    frame = require(data, [x, y, value], "matrix")
    if frame.empty:
        raise DataError("is empty", where="matrix")
    weights = pd.Series(
        _numbers(frame[value], f"matrix: {value}") if value else np.ones(len(frame)), index=frame.index
    )
    no_value = int(weights.isna().sum())
    weights = weights.fillna(0.0)
    xs = pd.Series(display_texts(frame[x]), index=frame.index).replace("", MISSING)
    ys = pd.Series(display_texts(frame[y]), index=frame.index).replace("", MISSING)
    xs, x_factors, x_folded = _categories(xs, weights, max_categories)
    ys, y_factors, y_folded = _categories(ys, weights, max_categories)
    cells = (
        pd.DataFrame({"x": xs, "y": ys, "w": weights})
        .groupby(["x", "y"], sort=False)["w"]
        .agg(["sum", "count"])
    )
    cells = cells.reset_index()
    what = value or "events"
    notes = [f"{len(frame):,} rows in {len(cells):,} cells ({what})"]
    for axis, folded, factors in ((x, x_folded, x_factors), (y, y_folded, y_factors)):
        if folded:
            notes.append(
                f"{axis}: {len(factors) - 1} values shown, {folded:,} more summed in {factors[-1]!r}"
            )
    if no_value:
        notes.append(f"{no_value:,} rows without a {value} counted as 0")
    positive = cells["sum"][cells["sum"] > 0]
    low, high = (float(positive.min()), float(positive.max())) if len(positive) else (0.0, 1.0)
    log = bool(len(positive) == len(cells) and low > 0 and high / low > 50)
    colors = list(reversed(Viridis256))
    mapper = (LogColorMapper if log else LinearColorMapper)(
        palette=colors, low=low if log else 0.0, high=high
    )
    fig = new_figure(
        title if title is not None else f"{y} by {x}",
        "; ".join(notes),
        height=height or int(min(1000, max(380, 240 + 26 * len(y_factors)))),
        tools="pan,wheel_zoom,box_zoom,reset,save",
        x_axis_location="above",
    )
    column_of = {f: i for i, f in enumerate(x_factors)}
    row_of = {f: i for i, f in enumerate(y_factors)}
    src = ColumnDataSource(
        {
            "x": cells["x"].map(column_of).to_numpy(dtype="float64"),
            "y": rows_of(cells["y"].map(row_of).to_numpy(), len(y_factors)),
            "xl": cells["x"].tolist(),
            "yl": cells["y"].tolist(),
            "sum": cells["sum"].to_numpy(),
            "c0": [f"{v:,.6g}" for v in cells["sum"].tolist()],
            "c1": [f"{v:,}" for v in cells["count"].tolist()],
        },
        name="huntbook.cells",
    )
    cell = fig.rect("x", "y", 1, 1, source=src, fill_color=transform("sum", mapper), line_color="white")
    if len(cells) <= 400:
        fig.text(
            "x",
            "y",
            text="c0",
            source=src,
            text_align="center",
            text_baseline="middle",
            text_font_size="9px",
            text_color="#222222",
        )
    add_hover(fig, [cell], [(x, "xl"), (y, "yl"), (what, "c0"), ("rows", "c1")])
    fig.add_layout(ColorBar(color_mapper=mapper, width=10, title=plain(what)), "right")
    fig.xaxis.major_label_orientation = 0.9
    row_axis(fig, x_factors, "x")
    row_axis(fig, y_factors, "y")
    tag(
        fig,
        chart="matrix",
        events=len(frame),
        cells=len(cells),
        total=float(weights.sum()),
        folded_x=x_folded,
        folded_y=y_folded,
    )
    return fig


def _first_column(frame: pd.DataFrame, skip: Sequence[str], *, times: bool) -> str:
    for name in frame.columns:
        if name in skip:
            continue
        dtype = frame[name].dtype
        is_time = isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype)
        is_number = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
        if (times and is_time) or (not times and is_number):
            return str(name)
    kind = "datetime" if times else "numeric"
    raise DataError(
        f"no {kind} column", where="anomalies", hint=f"pass {'time' if times else 'value'}_column="
    )


_SCORED = ("expected", "residual", "score", "anomaly")


@dataclass(frozen=True)
class _Series:
    """One scored series' arrays, and the half-width of its expected band."""

    ms: np.ndarray
    numbers: np.ndarray
    expected: np.ndarray
    score: np.ndarray
    times_text: list[str]
    half_band: float

    def columns(self, members: np.ndarray) -> dict[str, Any]:
        return {
            "x": self.ms[members],
            "y": self.numbers[members],
            "e": self.expected[members],
            "lo": self.expected[members] - self.half_band,
            "hi": self.expected[members] + self.half_band,
            "a0": [self.times_text[i] for i in members.tolist()],
            "a1": [f"{v:,.6g}" for v in self.numbers[members].tolist()],
            "a2": [f"{v:,.6g}" for v in self.expected[members].tolist()],
            "a3": [f"{v:+.2f}" for v in self.score[members].tolist()],
        }


def anomalies(
    frame: pd.DataFrame,
    time_column: str | None = None,
    value_column: str | None = None,
    *,
    by: str | Sequence[str] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    title: str | None = None,
    height: int | None = None,
) -> LayoutDOM:
    """A scored series from :func:`huntbook.timeseries.anomalies`: the values, the expected baseline with
    its band (expected ± ``threshold`` robust sigmas: pass the threshold you scored with), spikes (red
    triangles) and dips (orange). With ``by``, one chart per series, stacked with a shared time axis."""
    groups = columns_of(by)
    require(frame, [time_column, value_column, *groups], "anomalies")
    missing = [c for c in ("expected", "score", "anomaly") if c not in frame.columns]
    if missing:
        raise DataError(
            f"is not a scored series (no {', '.join(missing)})",
            where="anomalies",
            hint="score it with huntbook.timeseries.anomalies() first",
        )
    time_column = time_column or _first_column(frame, groups, times=True)
    value_column = value_column or _first_column(frame, [*groups, time_column, *_SCORED], times=False)
    ms = utc_ms(frame[time_column], f"anomalies: {time_column}")
    numbers = _numbers(frame[value_column], f"anomalies: {value_column}")
    expected = _numbers(frame["expected"], "anomalies: expected")
    score = _numbers(frame["score"], "anomalies: score")
    residual = (
        _numbers(frame["residual"], "anomalies: residual") if "residual" in frame else numbers - expected
    )
    flag = pd.to_numeric(frame["anomaly"], errors="coerce").fillna(0).to_numpy()
    codes, labels = group_codes(frame, groups)
    times_text = display_texts(frame[time_column])
    charts: list[figure] = []
    totals = {"spikes": 0, "dips": 0, "points": 0}
    for g, label in enumerate(labels):
        rows = np.flatnonzero((codes == g) & ~np.isnan(ms))
        rows = rows[np.argsort(ms[rows], kind="stable")]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.abs(residual[rows] / score[rows])
        ratio = ratio[np.isfinite(ratio) & (ratio > 0)]
        sigma = float(np.median(ratio)) if len(ratio) else 0.0
        spikes, dips = rows[flag[rows] > 0], rows[flag[rows] < 0]
        totals["spikes"] += len(spikes)
        totals["dips"] += len(dips)
        totals["points"] += len(rows)

        subtitle = (
            f"{len(rows):,} bins; {len(spikes):,} spikes and {len(dips):,} dips; "
            f"band: expected ± {threshold:g} sigma (sigma {sigma:.4g})"
        )
        heading = title if title is not None else f"Anomalies of {value_column}"
        fig = new_figure(
            heading + (f": {label}" if groups else ""), subtitle, x_axis_type="datetime", height=height or 320
        )
        fig.yaxis.axis_label = plain(short(value_column))
        series = _Series(ms, numbers, expected, score, times_text, threshold * sigma)
        src = ColumnDataSource(series.columns(rows), name="huntbook.series")
        band = fig.varea("x", "lo", "hi", source=src, fill_color="#999999", fill_alpha=0.25)
        base = fig.line("x", "e", source=src, color="#555555", line_dash="dashed")
        line = fig.line("x", "y", source=src, color="#1f77b4", line_width=1.5)
        dots = fig.scatter("x", "y", source=src, color="#1f77b4", size=3)
        rows_shown = [("time (UTC)", "a0"), (value_column, "a1"), ("expected", "a2"), ("score", "a3")]
        legend = [
            legend_item(value_column, line, dots),
            legend_item("expected", base),
            legend_item(f"expected ± {threshold:g} sigma", band),
        ]
        hovered = [dots]
        for members, marker, color, name in (
            (spikes, "triangle", "#d62728", "spike"),
            (dips, "inverted_triangle", "#ff7f0e", "dip"),
        ):
            if len(members):
                flagged = fig.scatter(
                    "x",
                    "y",
                    source=ColumnDataSource(series.columns(members), name=f"huntbook.{name}s"),
                    marker=marker,
                    size=12,
                    color=color,
                )
                hovered.append(flagged)
                legend.append(legend_item(f"{name}s", flagged))
        add_hover(fig, hovered, rows_shown)
        fig.add_layout(Legend(items=legend, location="top_left", click_policy="hide"), "right")
        if charts:
            fig.x_range = charts[0].x_range
        charts.append(fig)
    result: LayoutDOM = charts[0] if len(charts) == 1 else column(*charts, sizing_mode="stretch_width")
    tag(result, chart="anomalies", series=len(charts), events=len(frame), **totals)
    return result


def linked(
    timeline_chart: figure,
    table_frame: pd.DataFrame,
    columns: Sequence[str] | None = None,
    *,
    height: int = 280,
) -> LayoutDOM:
    """The timeline above a table of the same events that share its selection: select a time window on
    the timeline (box select) or click events, and their rows are highlighted in the table; select rows
    and their events are highlighted. ``table_frame``: the frame the timeline was drawn from (or the
    same rows with other columns); ``columns``: the ones to show (default all). The table's columns are
    added to the timeline's data source."""
    events = timeline_chart.select_one({"name": _EVENTS}) if isinstance(timeline_chart, LayoutDOM) else None
    if not isinstance(events, ColumnDataSource):
        raise DataError(
            "needs a timeline() chart that draws each event (this one is aggregated or not a timeline)",
            where="linked",
            hint="filter the events or raise max_points so that each event is drawn",
        )
    info = timeline_chart.tags[0]["huntbook"]
    shown = (
        list(table_frame.columns)
        if columns is None and isinstance(table_frame, pd.DataFrame)
        else list(columns or [])
    )
    frame = require(table_frame, shown, "linked")
    if len(frame) != info["events"]:
        raise DataError(
            f"table_frame has {len(frame):,} rows, the timeline {info['events']:,} events",
            where="linked",
            hint="pass the frame the timeline was drawn from",
        )
    rows = np.asarray(events.data["row"])
    picked = frame.iloc[rows]
    table_columns = []
    for i, name in enumerate(shown):
        key = f"t{i}"
        events.data[key] = display_texts(picked[name])
        # SlickGrid writes column titles as HTML: escape them (cell values are set as text)
        table_columns.append(
            TableColumn(field=key, title=html.escape(str(name)), formatter=StringFormatter())
        )
    table = DataTable(
        source=events,
        columns=table_columns,
        height=height,
        sizing_mode="stretch_width",
        index_position=None,
        scroll_to_selection=True,
        name="huntbook.table",
    )
    selector = next((t for t in timeline_chart.tools if isinstance(t, BoxSelectTool)), None)
    if selector is not None:  # dragging on the timeline selects a time window
        timeline_chart.toolbar.active_drag = selector
    layout = column(timeline_chart, table, sizing_mode="stretch_width")
    tag(layout, chart="linked", events=info["events"], rows=len(rows))
    return layout
