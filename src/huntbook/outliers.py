"""Outlying rows: which events are unusual, and because of which fields.

:func:`find` scores every row by how rare its values are, column by column (numpy and pandas only,
no model to fit or tune), and says which fields made it stand out:

* a categorical column (text, booleans, numbers with at most ``max_categories`` distinct values)
  scores a value by its surprisal ``-log2(share of rows with that value)``;
* a numeric column scores a value by its two-sided empirical tail probability,
  ``-log2(2 * min(share of rows <= x, share of rows >= x))``: the extremes of either side score high.

Each column's contribution is its surprisal *above the column's average* (its entropy for a categorical
column, ``1/ln 2`` bits for a numeric one), never below 0, so columns whose values are all different
(ids, timestamps) do not drown the others. ``outlier_score`` is the sum over the columns, in bits:
higher = more unusual; a row of only common values scores 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from huntbook.errors import DataError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["find"]

_NUMERIC_MEAN_BITS = 1.4426950408889634  # E[-log2 U] for U uniform on (0, 1]


def _default_columns(frame: pd.DataFrame) -> list[str]:
    """Every column except times and near-unique text (keys, ids)."""
    import pandas as pd

    chosen = []
    n = len(frame)
    for column in frame.columns:
        series = frame[column]
        if pd.api.types.is_datetime64_any_dtype(series) or pd.api.types.is_timedelta64_dtype(series):
            continue
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            chosen.append(column)
            continue
        try:
            distinct = series.nunique(dropna=False)
        except TypeError:  # unhashable cells (lists, dicts)
            continue
        if n < 20 or distinct <= 0.5 * n:
            chosen.append(column)
    return chosen


def _categorical(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(excess bits, count of rows with the same value) per row."""
    import numpy as np
    import pandas as pd

    codes, _ = pd.factorize(series, use_na_sentinel=False)
    counts = np.bincount(codes)
    share = counts / len(series)
    bits = -np.log2(share)
    entropy = float((share * bits).sum())
    return np.maximum(bits[codes] - entropy, 0.0), counts[codes]


def _numeric(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(excess bits, tail share in percent, signed: negative = low side) per row; NaN scores 0."""
    import numpy as np

    values = series.astype("float64")
    valid = values.notna().to_numpy()
    n = int(valid.sum())
    excess = np.zeros(len(series))
    tail = np.full(len(series), np.nan)
    if n == 0:
        return excess, tail
    low = values.rank(method="max").to_numpy()[valid] / n  # share of rows <= x
    high = (n - values.rank(method="min").to_numpy()[valid] + 1) / n  # share of rows >= x
    p = np.minimum(1.0, 2 * np.minimum(low, high))
    excess[valid] = np.maximum(-np.log2(p) - _NUMERIC_MEAN_BITS, 0.0)
    tail[valid] = np.where(low <= high, -low, high) * 100
    return excess, tail


def find(
    events: pd.DataFrame,
    columns: Sequence[str] | None = None,
    *,
    max_categories: int = 20,
    reasons: int = 3,
) -> pd.DataFrame:
    """Score how unusual each row is; returns the rows with ``outlier_score`` and ``outlier_reason``.

    ``columns``: the columns to judge (default: every column except date/time columns and text
    columns with more distinct values than half the rows). ``outlier_score`` is in bits, higher =
    more unusual (module docstring). ``outlier_reason`` names the ``reasons`` columns that added most,
    e.g. ``LogonType=9 (2 of 5000 rows); SrcBytes=8.1e+09 (top 0.02%)``; empty for unremarkable rows.
    Rows keep their order and index: sort by ``outlier_score`` to read the strangest first.

    Example::

        scored = outliers.find(logons, ["TargetUsername", "LogonType", "IpAddress"])
        scored.nlargest(20, "outlier_score")[["outlier_score", "outlier_reason"]]
    """
    import numpy as np
    import pandas as pd

    if not isinstance(events, pd.DataFrame):
        raise DataError(
            f"outliers.find needs a pandas DataFrame, got {type(events).__name__}",
            hint="pass one row per event",
        )
    chosen = _default_columns(events) if columns is None else list(columns)
    for column in chosen:
        if column not in events.columns:
            raise DataError(
                f"no column {column!r}",
                where=column,
                hint=f"columns are: {', '.join(map(str, events.columns))}",
            )
    if not chosen and len(events):
        raise DataError("no column to judge", where="columns", hint="pass columns=[...]")
    out = events.copy()
    n = len(events)
    if n == 0:
        out["outlier_score"] = pd.Series(dtype="float64")
        out["outlier_reason"] = pd.Series(dtype=object)
        return out
    excess = np.zeros((n, len(chosen)))
    values: list[np.ndarray] = []
    notes: list[np.ndarray] = []  # per column: rows with the same value, or the signed tail percentage
    numeric_columns: list[bool] = []
    for j, column in enumerate(chosen):
        series = events[column]
        numeric = bool(pd.api.types.is_numeric_dtype(series)) and not pd.api.types.is_bool_dtype(series)
        numeric = numeric and series.nunique() > max_categories
        try:
            excess[:, j], note = _numeric(series) if numeric else _categorical(series)
        except TypeError as exc:
            raise DataError(
                f"column {column!r} holds unhashable values ({exc})",
                where=column,
                hint="leave it out of columns",
            ) from exc
        values.append(series.to_numpy(dtype=object))
        notes.append(note)
        numeric_columns.append(numeric)
    out["outlier_score"] = excess.sum(axis=1)
    top = np.argsort(-excess, axis=1, kind="stable")[:, :reasons]
    reason = np.full(n, "", dtype=object)
    for row in np.flatnonzero(out["outlier_score"].to_numpy() > 0):
        parts = []
        for j in top[row]:
            if excess[row, j] <= 0:
                break
            shown = str(values[j][row])[:80]
            if numeric_columns[j]:
                tail = notes[j][row]
                parts.append(f"{chosen[j]}={shown} ({'bottom' if tail < 0 else 'top'} {abs(tail):.3g}%)")
            else:
                parts.append(f"{chosen[j]}={shown} ({int(notes[j][row])} of {n} rows)")
        reason[row] = "; ".join(parts)
    out["outlier_reason"] = reason
    return out
