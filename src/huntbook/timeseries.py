"""Time series: regular counts from events, STL anomalies (spikes and dips), anomaly periods, beaconing.

Pure functions, DataFrame in, DataFrame out::

    hourly = timeseries.summarize(conns, time_column="TimeGenerated", value_column="SrcBytes")
    scored = timeseries.anomalies(hourly)          # + expected, residual, score, anomaly (1 / -1 / 0)
    timeseries.periods(scored)                     # start, end, kind: plug straight into queries
    timeseries.beacons(conns)                      # most beacon-like src/dst/port pairs first

``anomalies`` decomposes each series with statsmodels' STL (the ``ml`` extra) around a daily period,
adds a weekly profile when the series spans three weeks or more, and refits three times with outliers
pulled in to a bound (starting from a same-hour median), so one spike cannot bend the baseline. Scores
are residuals over a robust scale (median absolute deviation), corrected for the share of each point
the fit itself absorbs: a score of 5 is a 5-sigma departure, above (spike) or below (dip) what was
expected. Default threshold 3.9.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from huntbook.errors import DataError, MissingExtraError

__all__ = ["DEFAULT_THRESHOLD", "anomalies", "beacons", "periods", "summarize"]

DEFAULT_THRESHOLD = 3.9
_SEASONAL = 25  # STL seasonal smoother span in periods: a stable daily shape, still free to drift
_PASSES = 3
_INNER = 1  # STL inner-loop iterations per pass (the passes iterate too; statsmodels default: 5)
_CLEAN_SHARE = 0.8  # residuals beyond threshold * this share are pulled in before the next pass
_MAD_SIGMA = 1.4826


def _groups(by: str | Sequence[str] | None) -> list[str]:
    if by is None:
        return []
    return [by] if isinstance(by, str) else list(by)


def _require(frame: Any, columns: Sequence[str], what: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{what} needs a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"missing column(s) {', '.join(map(repr, missing))}",
            where=what,
            hint=f"columns present: {', '.join(map(str, frame.columns[:20]))}",
        )


def _as_time(values: pd.Series, column: str, what: str) -> pd.Series:
    """A UTC datetime Series (naive values are read as UTC); DataError when not time-like."""
    if pd.api.types.is_datetime64_any_dtype(values):
        out = values
    elif pd.api.types.is_numeric_dtype(values):
        raise DataError(
            "is numeric, not a time",
            where=f"{what}: {column}",
            hint="convert epoch seconds with pd.to_datetime(df[col], unit='s', utc=True)",
        )
    else:
        try:
            out = pd.to_datetime(values, utc=True, format="mixed")
        except (ValueError, TypeError) as exc:
            raise DataError(
                f"cannot be read as timestamps ({exc})", where=f"{what}: {column}", hint="pass datetimes"
            ) from None
    if out.dt.tz is None:
        out = out.dt.tz_localize("UTC")
    utc: pd.Series = out.dt.tz_convert("UTC")
    return utc


def summarize(
    events: pd.DataFrame,
    time_column: str = "TimeGenerated",
    value_column: str | None = None,
    freq: str = "1h",
    by: str | Sequence[str] | None = None,
) -> pd.DataFrame:
    """A regular series from events: event counts (or sums of ``value_column``) per ``freq`` bin.

    Every bin between the first and the last event is present, empty bins hold 0; with ``by``, every
    group gets the same bins. Rows without a time are left out. Columns: the ``by`` columns,
    ``time_column`` (bin start, UTC) and ``count`` (or ``value_column``).

    >>> events = pd.DataFrame({"TimeGenerated": pd.to_datetime(["2024-01-01 00:10", "2024-01-01 02:30"])})
    >>> summarize(events)["count"].tolist()
    [1, 0, 1]
    """
    keys = _groups(by)
    _require(events, [time_column, *keys, *([value_column] if value_column else [])], "summarize")
    times = _as_time(events[time_column], time_column, "summarize")
    try:
        step = pd.Timedelta(freq if freq[:1].isdigit() else f"1{freq}")
    except (ValueError, TypeError):
        raise DataError(
            f"bad freq {freq!r}", where="summarize", hint="use e.g. '1h', '15min', '1D'"
        ) from None
    out_name = value_column or "count"
    frame = pd.DataFrame({k: events[k] for k in keys})
    frame["_bin"] = times.dt.floor(step)
    if value_column:
        values = events[value_column]
        if not pd.api.types.is_numeric_dtype(values):
            values = pd.to_numeric(values, errors="coerce")
        frame["_v"] = values.astype("float64").fillna(0.0)
    else:
        frame["_v"] = 1
    frame = frame[frame["_bin"].notna()]
    if frame.empty:
        return pd.DataFrame(
            {**{k: [] for k in keys}, time_column: pd.DatetimeIndex([], tz="UTC"), out_name: []}
        )
    bins = pd.date_range(frame["_bin"].min(), frame["_bin"].max(), freq=step, name=time_column)
    if not keys:
        total = frame.groupby("_bin")["_v"].sum().reindex(bins, fill_value=0)
        return total.rename(out_name).reset_index()
    sums = frame.groupby([*keys, "_bin"], dropna=False)["_v"].sum().rename(out_name).reset_index()
    grid = sums[keys].drop_duplicates().merge(pd.DataFrame({"_bin": bins}), how="cross")
    full = grid.merge(sums, on=[*keys, "_bin"], how="left").fillna({out_name: 0})
    full[out_name] = full[out_name].astype(sums[out_name].dtype)
    result: pd.DataFrame = full.rename(columns={"_bin": time_column})
    return result


# -- anomalies ---------------------------------------------------------------------------------------------


def _stl() -> Any:
    try:
        from statsmodels.tsa.seasonal import STL
    except ImportError as exc:
        raise MissingExtraError("hb.timeseries.anomalies", "ml", missing=exc.name or "statsmodels") from None
    return STL


def _mad(values: np.ndarray, *, fallback: bool = False) -> float:
    """Robust standard deviation: the scaled MAD (``fallback``: else the mean absolute deviation)."""
    if not values.size:
        return 0.0
    deviation = np.abs(values - np.median(values))
    mad = float(_MAD_SIGMA * np.median(deviation))
    return mad or (float(1.2533 * np.mean(deviation)) if fallback else 0.0)


def _nanmedian_rows(table: np.ndarray) -> np.ndarray:
    """Median over the last axis, ignoring NaN (np.nanmedian, without its slow masked-array path)."""
    ordered = np.sort(table, axis=-1)  # NaN sort last
    valid = np.maximum((~np.isnan(table)).sum(axis=-1), 1)
    low = np.take_along_axis(ordered, ((valid - 1) // 2)[..., None], axis=-1)[..., 0]
    high = np.take_along_axis(ordered, (valid // 2)[..., None], axis=-1)[..., 0]
    medians: np.ndarray = (low + high) / 2
    return medians


def _weekly_profile(resid: np.ndarray, slots: int, start: int, stop: int) -> np.ndarray:
    """Median residual per slot of the week (and its neighbour slots), from ``resid[start:stop]``, tiled.

    Pooling each slot with its two neighbours triples the sample, so a few weeks do not overfit.
    """
    core = resid[start:stop]
    weeks = -(-core.size // slots)
    grid = np.full(weeks * slots, np.nan)
    grid[: core.size] = core
    table = grid.reshape(weeks, slots)
    pooled = np.concatenate([np.roll(table, 1, axis=1), table, np.roll(table, -1, axis=1)], axis=0)
    profile = _nanmedian_rows(pooled.T)
    phase = (np.arange(resid.size) - start) % slots
    tiled: np.ndarray = profile[phase]
    return tiled


def _fit(stl: Any, values: np.ndarray, period: int) -> np.ndarray:
    """STL residuals; the smoothers are evaluated every ~10% of their span and interpolated (as in
    Cleveland et al. 1990), which is several times faster and changes the fit very little."""
    jump = max(1, period // 8)
    fitted = stl(
        values,
        period=period,
        seasonal=_SEASONAL,
        robust=False,
        seasonal_jump=max(1, _SEASONAL // 8),
        trend_jump=jump,
        low_pass_jump=jump,
    ).fit(inner_iter=_INNER)
    resid: np.ndarray = np.asarray(fitted.resid)
    return resid


def _expected(stl: Any, values: np.ndarray, period: int, weekly: bool) -> np.ndarray:
    """STL trend + season (+ the weekly profile of what is left), with the edges padded by one cycle."""
    n = values.size
    cycle = 7 * period if weekly else period
    pad = cycle if n >= 3 * cycle else 0
    padded = np.concatenate([values[:pad], values, values[n - pad :]]) if pad else values
    fit = padded - _fit(stl, padded, period)
    if weekly:
        fit = fit + _weekly_profile(padded - fit, 7 * period, pad, pad + n)
    expected: np.ndarray = fit[pad : pad + n]
    return expected


def _leverage(n: int, period: int, weekly: bool) -> float:
    """How much of a point the fit absorbs (hat value): STL is linear, so fit a unit impulse."""
    return _impulse_share(min(n, 4 * _SEASONAL * period), period) + (
        # a median of three slots a week (a median needs ~pi/2 times the sample of a mean)
        (np.pi / 2) / (3 * max(1, n // (7 * period))) if weekly else 0.0
    )


@functools.lru_cache(maxsize=64)
def _impulse_share(n: int, period: int) -> float:
    impulse = np.zeros(n)  # the spans matter, not the length: n is capped by the caller
    impulse[n // 2] = 1.0
    share = float(1.0 - _fit(_stl(), impulse, period)[n // 2])
    return min(max(share, 0.0), 0.9)


def _same_phase_median(values: np.ndarray, period: int, cycles: int = 7) -> np.ndarray:
    """Each bin's median over the same phase of the nearest ``cycles`` cycles (a centred window)."""
    rows = -(-values.size // period)
    half = cycles // 2
    table = np.full((rows + 2 * half, period), np.nan)
    table.reshape(-1)[half * period : half * period + values.size] = values
    windows = np.lib.stride_tricks.sliding_window_view(table, cycles, axis=0)
    medians: np.ndarray = _nanmedian_rows(windows).reshape(-1)[: values.size]
    return medians


def _score_one(values: np.ndarray, period: int, weekly: bool, threshold: float) -> tuple[np.ndarray, ...]:
    """expected, residual, score for one regular series (NaN = missing bin, never scored)."""
    stl = _stl()
    missing = np.isnan(values)
    filled = pd.Series(values).interpolate(limit_direction="both").to_numpy()
    # a first robust guess: each bin against the median of the same phase over nearby cycles
    local = _same_phase_median(filled, period)
    limit = threshold * _CLEAN_SHARE
    tolerance = 1e-9 * max(1.0, float(np.nanmedian(np.abs(filled))))  # float noise of a flat fit
    first_bound = max(limit * _mad(filled - local), tolerance)
    work = local + np.clip(filled - local, -first_bound, first_bound)
    expected = local
    cleaned = missing.copy()
    for _ in range(_PASSES):
        expected = _expected(stl, work, period, weekly)
        resid = filled - expected
        bound = max(limit * _mad(resid[~missing]), tolerance)
        cleaned = missing | (np.abs(resid - np.median(resid[~missing])) > bound)
        # outliers are pulled in to the bound (not dropped), so a wrong guess can still move the next fit
        work = np.where(missing, expected, expected + np.clip(resid, -bound, bound))
    resid = filled - expected
    # outliers barely shaped the last fit (scored leave-one-out, in effect): put the others on that footing
    loo = np.where(cleaned, resid, resid / (1.0 - min(_leverage(values.size, period, weekly), 0.9)))
    kept = loo[~cleaned]
    centre = float(np.median(kept)) if kept.size else 0.0
    scale = _mad(kept, fallback=True)
    if scale > tolerance:
        score = (loo - centre) / scale
    else:  # constant apart from the point itself: any departure is infinitely surprising
        score = np.sign(loo - centre) * np.where(np.abs(loo - centre) <= tolerance, 0.0, np.inf)
    score = np.where(missing, np.nan, score)
    resid = np.where(missing, np.nan, resid)
    return expected, resid, score


def _default_column(frame: pd.DataFrame, skip: Sequence[str], *, want_time: bool) -> str:
    for name in frame.columns:
        if name in skip:
            continue
        dtype = frame[name].dtype
        is_time = pd.api.types.is_datetime64_any_dtype(dtype)
        if want_time and is_time:
            return str(name)
        if (
            not want_time
            and not is_time
            and pd.api.types.is_numeric_dtype(dtype)
            and not pd.api.types.is_bool_dtype(dtype)
        ):
            return str(name)
    kind = "datetime" if want_time else "numeric"
    raise DataError(
        f"no {kind} column found",
        where="anomalies",
        hint=f"pass {'time_column' if want_time else 'value_column'}= explicitly",
    )


def _grid(ns: np.ndarray, where: str) -> tuple[pd.Timedelta, np.ndarray]:
    """Step and grid position of sorted int64-ns times; DataError if irregular."""
    diffs = np.diff(ns)
    if (diffs == 0).any():
        raise DataError(
            "has duplicate timestamps", where=where, hint="aggregate first: timeseries.summarize()"
        )
    step = int(np.min(diffs))
    offsets = ns - ns[0]
    if (offsets % step).any():
        raise DataError(
            "is not a regular series (timestamps off a fixed step)",
            where=where,
            hint="bin the events first: timeseries.summarize(events, freq='1h')",
        )
    return pd.Timedelta(step, unit="ns"), offsets // step


def anomalies(
    series: pd.DataFrame,
    time_column: str | None = None,
    value_column: str | None = None,
    *,
    period: int | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    by: str | Sequence[str] | None = None,
    weekly: bool | None = None,
) -> pd.DataFrame:
    """Score a regular series (from :func:`summarize`) for spikes and dips.

    Adds ``expected`` (STL baseline), ``residual`` (value - expected), ``score`` (robust z-score) and
    ``anomaly``: 1 for a spike (score > threshold), -1 for a dip (score < -threshold), 0 otherwise.
    ``period``: bins per season, default one day (24 for hourly bins). ``weekly``: add a weekly profile,
    default when the series spans three weeks of a daily period. Missing bins (gaps on the grid, NaN
    values) are interpolated for the fit and never flagged; a constant series has no anomalies. With
    ``by``, each group is its own series. Rows keep their order; the input is not modified.

    >>> hours = pd.date_range("2024-01-01", periods=24 * 14, freq="h")
    >>> counts = 100 + 50 * np.sin(np.arange(hours.size) * 2 * np.pi / 24)
    >>> counts[200] += 400
    >>> scored = anomalies(pd.DataFrame({"TimeGenerated": hours, "count": counts}))
    >>> scored.loc[scored["anomaly"] != 0, "TimeGenerated"].tolist() == [hours[200]]
    True
    """
    keys = _groups(by)
    if not isinstance(series, pd.DataFrame):
        raise DataError(f"anomalies needs a pandas DataFrame, got {type(series).__name__}")
    if series.empty:
        raise DataError("is empty", where="anomalies", hint="summarize() some events first")
    time_column = time_column or _default_column(series, keys, want_time=True)
    value_column = value_column or _default_column(series, [*keys, time_column], want_time=False)
    _require(series, [time_column, value_column, *keys], "anomalies")
    if not threshold > 0:
        raise DataError(f"threshold must be positive, got {threshold!r}", where="anomalies")
    times = _as_time(series[time_column], time_column, "anomalies")
    if times.isna().any():
        row = times.index[times.isna()][0]
        raise DataError("has missing timestamps (NaT)", where=f"anomalies: {time_column}, row {row}")
    values = series[value_column]
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        raise DataError(f"is not numeric ({values.dtype})", where=f"anomalies: {value_column}")
    values = values.astype("float64")
    if np.isinf(values.to_numpy()).any():
        raise DataError(
            "has infinite values", where=f"anomalies: {value_column}", hint="replace them with NaN"
        )

    stamps = times.to_numpy(dtype="datetime64[ns]").astype("int64")
    numbers = values.to_numpy(dtype="float64")
    columns = {name: np.full(len(series), np.nan) for name in ("expected", "residual", "score")}
    grouper = keys[0] if len(keys) == 1 else keys
    groups: list[tuple[Any, np.ndarray]] = (
        [((), np.arange(len(series)))]
        if not keys
        else [
            (k, np.asarray(v)) for k, v in series.groupby(grouper, dropna=False, sort=False).indices.items()
        ]
    )
    for name, members in groups:
        where = f"anomalies: series {name!r}" if keys else "anomalies"
        rows = members[np.argsort(stamps[members], kind="stable")]
        step, position = (
            _grid(stamps[rows], where) if len(rows) > 1 else (pd.Timedelta(0), np.zeros(1, "int64"))
        )
        n = int(position[-1]) + 1
        bins_per_day = pd.Timedelta(days=1) / step if step > pd.Timedelta(0) else 0.0
        season = period or (
            int(bins_per_day) if bins_per_day >= 2 and float(bins_per_day).is_integer() else 0
        )
        if season < 2:
            raise DataError(
                f"cannot infer a seasonal period from a step of {step}",
                where=where,
                hint="pass period= (bins per season)",
            )
        if n < 2 * season + 1:
            raise DataError(
                f"is too short: {n} bins, STL needs more than two periods of {season}",
                where=where,
                hint="use a longer range, smaller bins or a shorter period=",
            )
        use_weekly = (n >= 3 * 7 * season) if weekly is None else weekly
        if use_weekly and n < 2 * 7 * season:
            raise DataError(f"is too short for weekly=True ({n} bins)", where=where)
        grid = np.full(n, np.nan)
        grid[position] = numbers[rows]
        if np.isnan(grid).all():
            raise DataError("has no values", where=where)
        fitted = _score_one(grid, season, use_weekly and season == round(bins_per_day), threshold)
        for column, result in zip(("expected", "residual", "score"), fitted, strict=True):
            columns[column][rows] = result[position]
    score = columns["score"]
    flags = np.sign(score) * (np.abs(score) > threshold)
    out = series.copy()
    for column, result in columns.items():
        out[column] = result
    out["anomaly"] = np.nan_to_num(flags).astype("int64")
    return out


def periods(
    result: pd.DataFrame,
    time_column: str | None = None,
    *,
    by: str | Sequence[str] | None = None,
    freq: str | None = None,
) -> pd.DataFrame:
    """Anomalous bins of :func:`anomalies` merged into time ranges.

    One row per run of consecutive bins of the same kind: ``start`` (first bin), ``end`` (end of the last
    bin), ``kind`` (``spike`` / ``dip``), ``bins`` and ``peak_score`` (largest absolute score), plus the
    ``by`` columns. ``start``/``end`` plug straight into catalogue queries. The bin width is the series'
    smallest step (``freq`` overrides it, e.g. for a one-row series).

    >>> hours = pd.date_range("2024-01-01", periods=4, freq="h")
    >>> scored = pd.DataFrame({"TimeGenerated": hours, "score": [0, 6, 7, 0], "anomaly": [0, 1, 1, 0]})
    >>> periods(scored)[["start", "end", "kind"]].values.tolist()[0][2]
    'spike'
    """
    keys = _groups(by)
    _require(result, ["anomaly", "score", *keys], "periods")
    time_column = time_column or _default_column(result, keys, want_time=True)
    columns = [*keys, "start", "end", "kind", "bins", "peak_score"]
    frame = pd.DataFrame({k: result[k] for k in keys})
    frame["_t"] = _as_time(result[time_column], time_column, "periods")
    frame["_a"] = result["anomaly"].to_numpy()
    frame["_s"] = result["score"].abs().to_numpy()
    frame = frame.sort_values([*keys, "_t"], kind="stable")
    frame["_g"] = frame.groupby(keys, dropna=False, sort=False).ngroup() if keys else 0
    step = frame.groupby("_g")["_t"].diff().groupby(frame["_g"]).transform("min")
    if freq is not None:
        step[:] = pd.Timedelta(freq if freq[:1].isdigit() else f"1{freq}")
    step = step.fillna(step.min() if step.notna().any() else pd.Timedelta(0))
    flagged = frame[frame["_a"] != 0]
    if flagged.empty:
        return pd.DataFrame({c: [] for c in columns})
    prev = frame.groupby("_g")["_a"].shift()
    gap = frame.groupby("_g")["_t"].diff()
    new_run = (frame["_a"] != prev) | (gap != step)
    frame["_run"] = new_run.cumsum()
    frame["_step"] = step
    runs = frame.loc[frame["_a"] != 0].groupby("_run", sort=False)
    agg = runs.agg(
        **{k: (k, "first") for k in keys},
        start=("_t", "min"),
        last=("_t", "max"),
        step=("_step", "first"),
        kind=("_a", "first"),
        bins=("_t", "size"),
        peak_score=("_s", "max"),
    )
    agg["end"] = agg["last"] + agg["step"]
    agg["kind"] = agg["kind"].map({1: "spike", -1: "dip"})
    return agg[columns].sort_values([*keys, "start"]).reset_index(drop=True)


# -- beaconing ---------------------------------------------------------------------------------------------

_ALIASES = {
    "src": ("SrcIpAddr", "id.orig_h", "id_orig_h", "src_ip", "SourceIp"),
    "dst": ("DstIpAddr", "id.resp_h", "id_resp_h", "dest_ip", "DestinationIp"),
    "port": ("DstPortNumber", "id.resp_p", "id_resp_p", "dest_port", "DestinationPort"),
    "time": ("TimeGenerated", "ts", "timestamp", "_time"),
    "bytes": ("SrcBytes", "orig_bytes", "bytes_out"),
}


def _pick(frame: pd.DataFrame, given: str | None, role: str, required: bool) -> str | None:
    if given is not None:
        _require(frame, [given], "beacons")
        return given
    for name in _ALIASES[role]:
        if name in frame.columns:
            return name
    if required:
        raise DataError(
            f"no {role} column found (tried {', '.join(_ALIASES[role])})",
            where="beacons",
            hint=f"pass {role}= with the column name",
        )
    return None


def _beacon_times(values: pd.Series, column: str) -> np.ndarray:
    """Seconds since the epoch as float64 (Zeek ``ts`` epoch floats are accepted as they are)."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.astype("float64").to_numpy()
    times = _as_time(values, column, "beacons")
    return times.to_numpy(dtype="datetime64[ns]").astype("int64").astype("float64") / 1e9 + np.where(
        times.isna().to_numpy(), np.nan, 0.0
    )


def beacons(
    connections: pd.DataFrame,
    src: str | None = None,
    dst: str | None = None,
    time_column: str | None = None,
    *,
    port: str | bool | None = None,
    bytes_column: str | bool | None = None,
    min_connections: int = 10,
    min_interval: float = 1.0,
    top: int | None = None,
) -> pd.DataFrame:
    """Rank source/destination(/port) pairs by how regularly they talk: implants beacon on a timer.

    Columns default to ASIM ``network_sessions`` names and fall back to Zeek conn (``id.orig_h``,
    ``id.resp_h``, ``id.resp_p``, ``ts``, ``orig_bytes``; also with ``_``); pass names for proxy logs.
    ``port=False`` / ``bytes_column=False`` ignore those columns. One row per pair with at least
    ``min_connections`` connections and a median interval of ``min_interval`` seconds or more:
    ``connections``, ``first``, ``last``, ``median_interval`` (s), ``interval_jitter`` (robust
    coefficient of variation of the intervals: MAD/median), ``interval_score`` (1 = a perfect clock),
    ``size_jitter`` and ``size_score`` (the same for bytes sent), ``score`` (interval and size
    regularity weighted 2:1, damped for few connections). Most beacon-like first.

    >>> t = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(np.arange(0, 3600, 60), unit="s")
    >>> conns = pd.DataFrame({"TimeGenerated": t, "SrcIpAddr": "10.0.0.5", "DstIpAddr": "198.51.100.7"})
    >>> beacons(conns)[["median_interval", "interval_score"]].iloc[0].tolist()
    [60.0, 1.0]
    """
    if not isinstance(connections, pd.DataFrame):
        raise DataError(f"beacons needs a pandas DataFrame, got {type(connections).__name__}")
    src_col = _pick(connections, src, "src", True)
    dst_col = _pick(connections, dst, "dst", True)
    time_col = _pick(connections, time_column, "time", True)
    port_col = (
        None if port is False else _pick(connections, port if isinstance(port, str) else None, "port", False)
    )
    bytes_col = (
        None
        if bytes_column is False
        else _pick(connections, bytes_column if isinstance(bytes_column, str) else None, "bytes", False)
    )
    assert src_col and dst_col and time_col
    keys = [src_col, dst_col, *([port_col] if port_col else [])]
    frame = pd.DataFrame({k: connections[k] for k in keys})
    frame["_t"] = _beacon_times(connections[time_col], time_col)
    if bytes_col:
        frame["_b"] = pd.to_numeric(connections[bytes_col], errors="coerce").astype("float64")
    frame = frame.dropna(subset=[*keys, "_t"])
    columns = [
        *keys,
        "connections",
        "first",
        "last",
        "median_interval",
        "interval_jitter",
        "interval_score",
        "size_jitter",
        "size_score",
        "score",
    ]
    if frame.empty:
        return pd.DataFrame({c: [] for c in columns})
    frame["_g"] = frame.groupby(keys, sort=False).ngroup()
    frame = frame.sort_values(["_g", "_t"], kind="stable")
    counts = frame.groupby("_g")["_t"].size()
    frame = frame[frame["_g"].map(counts) >= max(min_connections, 3)]
    if frame.empty:
        return pd.DataFrame({c: [] for c in columns})
    g = frame["_g"].to_numpy()
    t = frame["_t"].to_numpy()
    same = np.r_[False, g[1:] == g[:-1]]
    gaps = pd.DataFrame({"_g": g[same], "dt": np.diff(t)[same[1:]]})
    per = gaps.groupby("_g")["dt"]
    median = per.median()
    mad = (gaps["dt"] - gaps["_g"].map(median)).abs().groupby(gaps["_g"]).median() * _MAD_SIGMA
    stats = frame.groupby("_g").agg(
        **{k: (k, "first") for k in keys}, first=("_t", "min"), last=("_t", "max")
    )
    stats["connections"] = counts.reindex(stats.index)
    stats["median_interval"] = median
    stats["interval_jitter"] = mad / median.where(median > 0)
    stats["interval_score"] = (1.0 - stats["interval_jitter"]).clip(lower=0.0).fillna(0.0)
    if bytes_col:
        bytes_per = frame.groupby("_g")["_b"]
        bmed = bytes_per.median()
        bmad = (frame["_b"] - frame["_g"].map(bmed)).abs().groupby(frame["_g"]).median() * _MAD_SIGMA
        stats["size_jitter"] = bmad / bmed.where(bmed > 0)
        stats.loc[(bmed == 0) & (bmad == 0), "size_jitter"] = 0.0
        stats["size_score"] = (1.0 - stats["size_jitter"]).clip(lower=0.0)
    else:
        stats["size_jitter"] = np.nan
        stats["size_score"] = np.nan
    regularity = np.where(
        stats["size_score"].notna(),
        (2 * stats["interval_score"] + stats["size_score"].fillna(0.0)) / 3,
        stats["interval_score"],
    )
    stats["score"] = regularity * (1.0 - 1.0 / np.sqrt(stats["connections"] - 1))
    stats = stats[stats["median_interval"] >= min_interval]
    stats["first"] = pd.to_datetime(stats["first"], unit="s", utc=True)
    stats["last"] = pd.to_datetime(stats["last"], unit="s", utc=True)
    stats = stats.sort_values(["score", "connections"], ascending=False)
    stats = stats[columns].reset_index(drop=True)
    return stats.head(top) if top else stats
