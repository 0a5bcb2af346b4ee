"""What every chart shares: checked inputs, text that is never markup, UTC times, colours, time bins.

Everything from the data is attacker-controlled, so: titles, labels and axis texts are ``PlainText``
models (Bokeh would otherwise read ``$$...$$`` in a string as TeX and fetch MathJax); hover tooltips are
``[(label, "@{hN}")]`` pairs over columns with internal names, holding display text made here (Bokeh puts
both into the DOM as text); and no HTML template or ``{safe}`` format is ever used.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from bokeh.models import FixedTicker, HoverTool, PlainText, Range1d
from bokeh.models.annotations import LegendItem, Title
from bokeh.palettes import Category10_10, Category20_20, Turbo256
from bokeh.plotting import figure

from huntbook.errors import DataError
from huntbook.report import cell_text

__all__ = [
    "MISSING",
    "add_hover",
    "bin_count",
    "bin_step",
    "columns_of",
    "display_texts",
    "duration_text",
    "group_codes",
    "hover_data",
    "legend_item",
    "new_figure",
    "palette",
    "plain",
    "require",
    "row_axis",
    "rows_of",
    "short",
    "tag",
    "utc_ms",
]

MISSING = "(missing)"  # the label of a missing group / category value
_TOOLS = "xpan,xwheel_zoom,box_zoom,reset,save"

# candidate time bins, in ms, with their labels
_STEPS: tuple[tuple[float, str], ...] = tuple(
    (seconds * 1000.0, label)
    for seconds, label in (
        (0.001, "1 ms"), (0.01, "10 ms"), (0.1, "100 ms"),
        (1, "1 s"), (2, "2 s"), (5, "5 s"), (10, "10 s"), (15, "15 s"), (30, "30 s"),
        (60, "1 min"), (120, "2 min"), (300, "5 min"), (600, "10 min"), (900, "15 min"), (1800, "30 min"),
        (3600, "1 h"), (7200, "2 h"), (10800, "3 h"), (21600, "6 h"), (43200, "12 h"),
        (86400, "1 day"), (2 * 86400, "2 days"), (7 * 86400, "7 days"), (14 * 86400, "14 days"),
        (30 * 86400, "30 days"), (91 * 86400, "91 days"), (365 * 86400, "365 days"),
    )
)  # fmt: skip


def plain(text: object) -> PlainText:
    """A Bokeh text model shown verbatim: no TeX, no HTML."""
    return PlainText(text=str(text))


def require(frame: Any, columns: Iterable[str | None], where: str) -> pd.DataFrame:
    """``frame`` itself when it is a DataFrame holding every named column; DataError otherwise."""
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"needs a pandas DataFrame, got {type(frame).__name__}", where=where)
    missing = [c for c in columns if c is not None and c not in frame.columns]
    if missing:
        present = ", ".join(map(str, list(frame.columns)[:25]))
        raise DataError(
            f"column(s) not in the frame: {', '.join(map(repr, missing))}",
            where=where,
            hint=f"columns present: {present}",
        )
    return frame


def columns_of(value: str | Sequence[str] | None) -> list[str]:
    """A column argument as a list (``None`` -> ``[]``)."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def utc_ms(values: pd.Series, where: str) -> np.ndarray:
    """Milliseconds since the epoch (UTC; naive times are read as UTC), NaN where there is no time."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        raise DataError(
            f"holds numbers ({values.dtype}), not times",
            where=where,
            hint="convert epoch numbers first, e.g. pd.to_datetime(df[col], unit='s', utc=True)",
        )
    try:
        times = pd.to_datetime(values, utc=True, format="mixed")
    except (ValueError, TypeError) as exc:
        raise DataError(f"holds values that are not times ({exc})", where=where) from None
    stamps = times.to_numpy(dtype="datetime64[ns]")
    out = stamps.astype("int64").astype("float64") / 1e6
    out[np.isnat(stamps)] = np.nan
    return out


def display_texts(values: pd.Series) -> list[str]:
    """The text a reader sees for each value (empty when missing, ISO for times)."""
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(values):
        text = values.dt.strftime("%Y-%m-%d %H:%M:%S.%f")
        return [t if isinstance(t, str) else "" for t in text.tolist()]
    return [cell_text(v) for v in values.tolist()]


def palette(n: int) -> list[str]:
    """``n`` distinct colours (Category10/20, then samples of Turbo)."""
    if n <= 10:
        return list(Category10_10[: max(n, 1)])
    if n <= 20:
        return list(Category20_20[:n])
    return [Turbo256[int(i)] for i in np.linspace(0, 255, n)]


def new_figure(title: str, subtitle: str | None = None, **options: Any) -> figure:
    """A figure with a plain-text title and subtitle, huntbook's tools, and no Bokeh logo."""
    options.setdefault("tools", _TOOLS)
    wheel = next((t for t in ("xwheel_zoom", "wheel_zoom") if t in options["tools"].split(",")), None)
    if wheel:
        options.setdefault("active_scroll", wheel)
    options.setdefault("sizing_mode", "stretch_width")
    fig = figure(**options)
    fig.title = Title(text=plain(title), text_font_size="13px")
    if subtitle:
        fig.add_layout(Title(text=plain(subtitle), text_font_style="italic", text_color="#555555"), "above")
    fig.toolbar.logo = None
    return fig


def add_hover(
    fig: figure,
    renderers: Sequence[Any],
    rows: Sequence[tuple[str, str]],
    *,
    mode: Literal["mouse", "hline", "vline"] = "mouse",
) -> HoverTool:
    """Add a hover tool that shows ``(label, source column)`` rows as text, for those renderers."""
    tool = HoverTool(
        renderers=list(renderers),
        tooltips=[(str(label), "@{" + column + "}") for label, column in rows],
        mode=mode,
    )
    fig.add_tools(tool)
    return tool


def hover_data(
    frame: pd.DataFrame, columns: Sequence[str], prefix: str = "h"
) -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
    """Display-text columns for the hover, under internal names (``h0``, ``h1`` ...), and their rows."""
    data: dict[str, list[str]] = {}
    rows: list[tuple[str, str]] = []
    for i, name in enumerate(columns):
        key = f"{prefix}{i}"
        data[key] = display_texts(frame[name])
        rows.append((str(name), key))
    return data, rows


def legend_item(label: str, *renderers: Any, index: int | None = None) -> LegendItem:
    """A legend entry with a plain label, for these renderers (``index``: the row whose look it shows)."""
    drawn: list[Any] = list(renderers)
    return LegendItem(label=short(label), renderers=drawn, index=index)


def short(label: str, limit: int = 40) -> str:
    """An axis label cut to ``limit`` characters (the hover shows the whole value)."""
    return label if len(label) <= limit else label[: limit - 1] + "…"


def row_axis(fig: figure, labels: Sequence[str], axis: str = "y") -> None:
    """Positions 0..n-1 of a numeric axis labelled with plain texts, cut to 40 characters: on ``"y"``
    label 0 is the top row (see :func:`rows_of`), on ``"x"`` the leftmost column."""
    n = len(labels)
    where = (lambda i: float(n - 1 - i)) if axis == "y" else float
    target = fig.yaxis if axis == "y" else fig.xaxis
    target.ticker = FixedTicker(ticks=list(range(n)), minor_ticks=[])
    target.major_label_overrides = {where(i): plain(short(label)) for i, label in enumerate(labels)}
    rng = Range1d(start=-0.6, end=n - 0.4, bounds=(-0.6, n - 0.4))
    if axis == "y":
        fig.y_range = rng
        fig.ygrid.grid_line_color = None
    else:
        fig.x_range = rng
        fig.xgrid.grid_line_color = None


def tag(fig: Any, **info: Any) -> None:
    """Record what a chart shows (counts, mode) in its ``tags``, readable in Python and in the page."""
    fig.tags = [{"huntbook": info}]


def bin_count(low_ms: float, high_ms: float, step: float) -> int:
    """How many ``step``-wide bins, aligned on multiples of ``step``, cover ``low_ms .. high_ms``."""
    return int(math.floor(high_ms / step) - math.floor(low_ms / step)) + 1


def bin_step(low_ms: float, high_ms: float, max_bins: int) -> tuple[float, str, int]:
    """The smallest round bin width (1 s, 5 min, 1 h ...) whose aligned bins cover ``low_ms .. high_ms``
    in at most ``max_bins`` bins: (width in ms, its label, the number of bins)."""
    for step, label in _STEPS:
        bins = bin_count(low_ms, high_ms, step)
        if bins <= max_bins:
            return step, label, bins
    days = math.floor((high_ms - low_ms) / max(max_bins - 1, 1) / 86_400_000) + 1
    while bin_count(low_ms, high_ms, days * 86_400_000.0) > max_bins:
        days += 1
    return days * 86_400_000.0, f"{days} days", bin_count(low_ms, high_ms, days * 86_400_000.0)


def group_codes(frame: pd.DataFrame, columns: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Each row's group number and the group labels, sorted (several columns are joined by " / ";
    missing values are labelled ``(missing)``). No columns: one group labelled ``""``."""
    if not columns:
        return np.zeros(len(frame), dtype="int64"), [""]
    codes_list, texts_list = [], []
    for column in columns:
        codes, uniques = pd.factorize(frame[column], use_na_sentinel=True)
        texts = [t or MISSING for t in display_texts(pd.Series(uniques))] + [MISSING]
        codes_list.append(np.where(codes < 0, len(texts) - 1, codes))
        texts_list.append(texts)
    if len(columns) == 1:
        key, labels = codes_list[0], texts_list[0]
    else:
        key, combos = pd.factorize(pd.MultiIndex.from_arrays(codes_list))
        labels = [" / ".join(texts_list[j][c] for j, c in enumerate(combo)) for combo in combos]
    distinct, inverse = np.unique(np.asarray(labels, dtype=object), return_inverse=True)
    used = inverse[key]
    present, compact = np.unique(used, return_inverse=True)  # drop labels no row has
    return compact.astype("int64"), [str(distinct[i]) for i in present]


def rows_of(codes: np.ndarray, n: int) -> np.ndarray:
    """The y position of each group number on a :func:`row_axis` (group 0 on top)."""
    return (n - 1 - codes).astype("float64")


def duration_text(ms: float) -> str:
    """A span of time for people: ``2 h 5 min``, ``3.2 s``."""
    if not math.isfinite(ms):
        return ""
    seconds = ms / 1000.0
    if seconds < 60:
        return f"{seconds:.3g} s"
    parts = []
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min"), (1, "s")):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{int(count)} {unit}")
    return " ".join(parts[:2])
