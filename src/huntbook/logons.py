"""Logon analytics on the ``authentication`` table: failure bursts, spraying, brute force, rare logons.

Pure functions, DataFrame in, DataFrame out. Columns default to huntbook's ASIM names
(``TimeGenerated``, ``EventType``, ``EventResult``, ``TargetUsername``, ``SrcIpAddr``, ``SrcHostname``,
``LogonType``, ``DvcHostname``, ``TargetSessionId``); for another schema pass ``columns=`` mapping those
names to yours. Without an ``EventResult`` column the result is derived from a Windows ``EventID``
(4624 success, 4625 failure, 4648 attempt), so Sentinel's ``SecurityEvent`` works as it is::

    logons.spray(security_events, columns=logons.SECURITY_EVENT)

``EventResult`` holds ``Success``, ``Failure`` or ``NA`` (4648, a logon with explicit credentials: the
attempt is logged, not its outcome). A logon's *source* is its ``SrcIpAddr``, else ``SrcHostname``;
local addresses (``127.0.0.1``, ``::1``, ``-``) count as no address.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from huntbook.errors import DataError

__all__ = ["SECURITY_EVENT", "brute_force", "failures", "rare_logons", "sessions_with_processes", "spray"]

_DEFAULTS = {
    "TimeGenerated": "TimeGenerated",
    "EventType": "EventType",
    "EventResult": "EventResult",
    "TargetUsername": "TargetUsername",
    "SrcIpAddr": "SrcIpAddr",
    "SrcHostname": "SrcHostname",
    "LogonType": "LogonType",
    "DvcHostname": "DvcHostname",
    "TargetSessionId": "TargetSessionId",
}
_RESULT_BY_ID = {4624: "Success", 4625: "Failure", 4648: "NA", 4634: "Success", 4647: "Success"}
_TYPE_BY_ID = {4624: "Logon", 4625: "Logon", 4648: "Logon", 4634: "Logoff", 4647: "Logoff"}
#: ``columns=`` for Microsoft Sentinel's ``SecurityEvent`` table (the result comes from ``EventID``).
SECURITY_EVENT = {
    "TargetUsername": "Account",
    "SrcIpAddr": "IpAddress",
    "SrcHostname": "WorkstationName",
    "DvcHostname": "Computer",
    "TargetSessionId": "TargetLogonId",
    "EventResult": "EventResult",
    "EventID": "EventID",
}
_NO_ADDRESS = {"", "-", "::1", "127.0.0.1", "0.0.0.0", "::"}  # noqa: S104 - values to ignore, not a bind


def _frame(
    auth: pd.DataFrame,
    columns: Mapping[str, str] | None,
    required: Sequence[str],
    optional: Sequence[str],
    what: str,
) -> pd.DataFrame:
    """The columns an analysis needs, renamed to the ASIM names, times as UTC; the input is not touched."""
    if not isinstance(auth, pd.DataFrame):
        raise DataError(f"{what} needs a pandas DataFrame, got {type(auth).__name__}")
    names = {**_DEFAULTS, **(columns or {})}
    names.update({c: c for c in (*required, *optional) if c not in names})
    from_event_id = (
        names["EventResult"] not in auth.columns and names.get("EventID", "EventID") in auth.columns
    )
    missing = [
        names[c]
        for c in required
        if names[c] not in auth.columns and not (c == "EventResult" and from_event_id)
    ]
    if missing:
        raise DataError(
            f"missing column(s) {', '.join(map(repr, missing))}",
            where=what,
            hint="map your schema's names with columns={'TargetUsername': 'your_column', ...}",
        )
    out = pd.DataFrame(index=auth.index)
    for name in (*required, *optional):
        out[name] = auth[names[name]] if names[name] in auth.columns else pd.Series(pd.NA, index=auth.index)
    if from_event_id:  # Windows event ids (Sentinel SecurityEvent, raw 4624/4625 ...): derive the result
        event_id = pd.to_numeric(auth[names.get("EventID", "EventID")], errors="coerce")
        out["EventResult"] = event_id.map(_RESULT_BY_ID).astype("string")
        out["EventType"] = event_id.map(_TYPE_BY_ID).astype("string")
    if "TimeGenerated" in out:
        times = out["TimeGenerated"]
        try:
            text = not pd.api.types.is_datetime64_any_dtype(times) and not pd.api.types.is_numeric_dtype(
                times
            )
            times = pd.to_datetime(times, utc=True, format="mixed") if text else times
        except (ValueError, TypeError):
            raise DataError(
                "cannot be read as timestamps", where=f"{what}: {names['TimeGenerated']}"
            ) from None
        if not pd.api.types.is_datetime64_any_dtype(times):
            raise DataError(
                f"is not a time column ({times.dtype})", where=f"{what}: {names['TimeGenerated']}"
            )
        out["TimeGenerated"] = (
            times.dt.tz_localize("UTC") if times.dt.tz is None else times.dt.tz_convert("UTC")
        )
    return out


def _source(frame: pd.DataFrame) -> pd.Series:
    """SrcIpAddr unless empty or local, else SrcHostname."""
    ip = frame["SrcIpAddr"].astype("string").str.strip()
    ip = ip.where(~ip.isin(_NO_ADDRESS))
    host = frame["SrcHostname"].astype("string").str.strip()
    return ip.fillna(host.where(~host.isin(_NO_ADDRESS)))


def _is(frame: pd.DataFrame, column: str, values: Sequence[str]) -> pd.Series:
    wanted = {v.lower() for v in values}
    return frame[column].astype("string").str.lower().isin(wanted).fillna(False).astype(bool)


def _names(values: pd.Series) -> list[str]:
    """The distinct values, sorted case-insensitively (a list: one cell per group)."""
    return sorted({str(v) for v in values.dropna()}, key=str.lower)


def _account_key(names: pd.Series) -> pd.Series:
    """Bare lower-case user name: ``CORP\\jsmith``, ``jsmith@corp.local`` and ``JSmith`` all match."""
    bare = names.astype("string").str.lower().str.rsplit("\\", n=1).str[-1]
    return bare.str.split("@", n=1).str[0]


def failures(
    auth: pd.DataFrame,
    freq: str = "1h",
    *,
    by: str | Sequence[str] = "DvcHostname",
    min_failures: int = 10,
    columns: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Bursts of failed logons: time bins (``freq``) with at least ``min_failures`` failures per ``by`` group.

    Columns: the ``by`` columns, ``TimeGenerated`` (bin start), ``failures``, ``accounts`` and
    ``sources`` (distinct counts), ``first``, ``last``, ``account_list`` (the accounts). Most failures first.

    >>> auth = pd.DataFrame({"TimeGenerated": pd.Timestamp("2024-01-01", tz="UTC"), "EventResult": "Failure",
    ...                      "TargetUsername": [f"u{i}" for i in range(12)], "DvcHostname": "SRV01"})
    >>> failures(auth)["failures"].tolist()
    [12]
    """
    keys = [by] if isinstance(by, str) else list(by)
    base = ["TimeGenerated", "EventResult", "TargetUsername"]
    frame = _frame(
        auth, columns, [*base, *(k for k in keys if k not in base)], ["SrcIpAddr", "SrcHostname"], "failures"
    )
    try:
        step = pd.Timedelta(freq if freq[:1].isdigit() else f"1{freq}")
    except (ValueError, TypeError):
        raise DataError(f"bad freq {freq!r}", where="failures", hint="use e.g. '1h', '10min'") from None
    failed = frame[_is(frame, "EventResult", ["Failure"]) & frame["TimeGenerated"].notna()].copy()
    failed["_source"] = _source(failed)
    failed["_bin"] = failed["TimeGenerated"].dt.floor(step)
    grouped = failed.groupby([*keys, "_bin"], dropna=False)
    out = grouped.agg(
        failures=("TimeGenerated", "size"),
        accounts=("TargetUsername", "nunique"),
        sources=("_source", "nunique"),
        first=("TimeGenerated", "min"),
        last=("TimeGenerated", "max"),
        account_list=("TargetUsername", _names),
    ).reset_index()
    out = out.rename(columns={"_bin": "TimeGenerated"})
    out = out[out["failures"] >= min_failures]
    return out.sort_values(["failures", "TimeGenerated"], ascending=[False, True]).reset_index(drop=True)


def spray(
    auth: pd.DataFrame,
    *,
    min_accounts: int = 5,
    attempts: Sequence[str] = ("Failure", "NA"),
    columns: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Password spraying: one source trying many accounts on a host.

    Counts logon attempts (``EventResult`` in ``attempts``: failures and 4648 explicit-credential
    logons) per source and target host (``DvcHostname``); keeps sources that tried at least
    ``min_accounts`` distinct accounts. ``succeeded`` lists the accounts with a successful logon from
    that source on that host after its first attempt: the spray worked for them. Columns: ``source``,
    ``DvcHostname``, ``accounts``, ``attempts``, ``failures``, ``first``, ``last``, ``account_list`` (list
    of the accounts tried), ``succeeded`` (list). Most accounts first.

    >>> auth = pd.DataFrame({"TimeGenerated": pd.Timestamp("2024-01-01", tz="UTC"), "EventResult": "Failure",
    ...                      "TargetUsername": [f"u{i}" for i in range(6)], "SrcIpAddr": "203.0.113.9",
    ...                      "DvcHostname": "SRV01"})
    >>> spray(auth)[["source", "accounts"]].values.tolist()
    [['203.0.113.9', 6]]
    """
    frame = _frame(
        auth,
        columns,
        ["TimeGenerated", "EventResult", "TargetUsername"],
        ["SrcIpAddr", "SrcHostname", "DvcHostname"],
        "spray",
    )
    frame["source"] = _source(frame)
    frame["_fail"] = _is(frame, "EventResult", ["Failure"])
    tried = frame[_is(frame, "EventResult", attempts) & frame["source"].notna()]
    keys = ["source", "DvcHostname"]
    out = (
        tried.groupby(keys, dropna=False)
        .agg(
            accounts=("TargetUsername", "nunique"),
            attempts=("TargetUsername", "size"),
            failures=("_fail", "sum"),
            first=("TimeGenerated", "min"),
            last=("TimeGenerated", "max"),
            account_list=("TargetUsername", _names),
        )
        .reset_index()
    )
    out = out[out["accounts"] >= min_accounts]
    ok = frame[_is(frame, "EventResult", ["Success"]) & frame["source"].notna()]
    ok = ok[["source", "DvcHostname", "TimeGenerated", "TargetUsername"]].merge(
        out[[*keys, "first"]], on=keys, how="inner"
    )
    won = ok[ok["TimeGenerated"] >= ok["first"]].groupby(keys, dropna=False)["TargetUsername"].agg(_names)
    out = out.merge(won.rename("succeeded").reset_index(), on=keys, how="left")
    out["succeeded"] = [v if isinstance(v, list) else [] for v in out["succeeded"]]
    return out.sort_values(["accounts", "attempts"], ascending=False).reset_index(drop=True)


def brute_force(
    auth: pd.DataFrame,
    *,
    min_failures: int = 5,
    within: str | pd.Timedelta = "1h",
    columns: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Brute force: many failed logons for one account on one host, and whether a success followed.

    Columns: ``TargetUsername``, ``DvcHostname``, ``failures``, ``sources`` (distinct), ``source_list``,
    ``first``, ``last``, ``succeeded`` (a successful logon of the same account on the host between the
    first failure and ``within`` after the last; ``CORP\\jsmith`` and ``jsmith@corp.local`` are the same
    account) and ``success_time`` (the first such). Most failures first.

    >>> t = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(range(7), unit="s")
    >>> auth = pd.DataFrame({"TimeGenerated": t, "EventResult": ["Failure"] * 6 + ["Success"],
    ...                      "TargetUsername": "CORP\\\\admin", "DvcHostname": "DC01"})
    >>> brute_force(auth)[["failures", "succeeded"]].values.tolist()
    [[6, True]]
    """
    frame = _frame(
        auth,
        columns,
        ["TimeGenerated", "EventResult", "TargetUsername"],
        ["SrcIpAddr", "SrcHostname", "DvcHostname"],
        "brute_force",
    )
    frame["_source"] = _source(frame)
    keys = ["TargetUsername", "DvcHostname"]
    failed = frame[_is(frame, "EventResult", ["Failure"]) & frame["TargetUsername"].notna()]
    out = (
        failed.groupby(keys, dropna=False)
        .agg(
            failures=("TimeGenerated", "size"),
            sources=("_source", "nunique"),
            source_list=("_source", _names),
            first=("TimeGenerated", "min"),
            last=("TimeGenerated", "max"),
        )
        .reset_index()
    )
    out = out[out["failures"] >= min_failures]
    try:
        window = pd.Timedelta(within)
    except (ValueError, TypeError):
        raise DataError(f"bad within {within!r}", where="brute_force", hint="use e.g. '1h'") from None
    match = ["_account", "_host"]
    out = out.assign(
        _account=_account_key(out["TargetUsername"]), _host=out["DvcHostname"].astype("string").str.lower()
    )
    ok = frame[_is(frame, "EventResult", ["Success"])]
    ok = pd.DataFrame(
        {
            "_account": _account_key(ok["TargetUsername"]),
            "_host": ok["DvcHostname"].astype("string").str.lower(),
            "success_time": ok["TimeGenerated"],
        }
    )
    ok = ok.merge(out[[*keys, *match, "first", "last"]], on=match, how="inner")
    ok = ok[(ok["success_time"] >= ok["first"]) & (ok["success_time"] <= ok["last"] + window)]
    first_ok = ok.groupby(keys, dropna=False)["success_time"].min().reset_index()
    out = out.drop(columns=match).merge(first_ok, on=keys, how="left")
    out["succeeded"] = out["success_time"].notna()
    columns_out = [*keys, "failures", "sources", "source_list", "first", "last", "succeeded", "success_time"]
    return out[columns_out].sort_values(["failures", "last"], ascending=[False, True]).reset_index(drop=True)


def rare_logons(
    auth: pd.DataFrame,
    *,
    features: Sequence[str] = ("LogonType", "source"),
    min_history: int = 10,
    max_share: float = 0.05,
    columns: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Successful logons whose logon type or source is rare for that account.

    For each account with at least ``min_history`` successful logons, each value of each feature
    (``LogonType``, ``source``, or any other column) seen in at most ``max_share`` of its logons is
    reported: ``TargetUsername``, ``feature``, ``value``, ``count``, ``total``, ``share``, ``first``,
    ``last``. Rarest first.

    >>> auth = pd.DataFrame({"TimeGenerated": pd.Timestamp("2024-01-01", tz="UTC"), "EventResult": "Success",
    ...                      "EventType": "Logon", "TargetUsername": "CORP\\\\jsmith",
    ...                      "LogonType": [2] * 40 + [10], "SrcIpAddr": ["10.0.0.5"] * 41})
    >>> rare_logons(auth)[["feature", "value"]].values.tolist()
    [['LogonType', '10']]
    """
    plain = [f for f in features if f not in ("source", *_DEFAULTS)]
    frame = _frame(
        auth,
        columns,
        ["TimeGenerated", "EventResult", "TargetUsername"],
        ["EventType", "SrcIpAddr", "SrcHostname", "LogonType"],
        "rare_logons",
    )
    for name in plain:
        if name not in auth.columns:
            raise DataError(f"missing column {name!r}", where="rare_logons", hint="check features=")
        frame[name] = auth[name]
    frame["source"] = _source(frame)
    logon = frame["EventType"].isna() | _is(frame, "EventType", ["Logon"])
    ok = frame[_is(frame, "EventResult", ["Success"]) & logon & frame["TargetUsername"].notna()]
    totals = ok.groupby("TargetUsername").size()
    ok = ok[ok["TargetUsername"].map(totals) >= min_history]
    parts = []
    for feature in features:
        if feature not in ok:
            raise DataError(f"unknown feature {feature!r}", where="rare_logons")
        values = ok[["TargetUsername", "TimeGenerated"]].assign(value=ok[feature].astype("string"))
        values = values[values["value"].notna()]
        counts = (
            values.groupby(["TargetUsername", "value"])
            .agg(
                count=("TimeGenerated", "size"), first=("TimeGenerated", "min"), last=("TimeGenerated", "max")
            )
            .reset_index()
        )
        counts.insert(1, "feature", feature)
        parts.append(counts)
    columns_out = ["TargetUsername", "feature", "value", "count", "total", "share", "first", "last"]
    if not parts:
        return pd.DataFrame({c: [] for c in columns_out})
    out = pd.concat(parts, ignore_index=True)
    out["total"] = out["TargetUsername"].map(totals).astype("int64")
    out["share"] = out["count"] / out["total"]
    out = out[out["share"] <= max_share]
    out["value"] = out["value"].astype(str)
    return out[columns_out].sort_values(["share", "first"]).reset_index(drop=True)


def sessions_with_processes(
    auth: pd.DataFrame,
    processes: pd.DataFrame,
    *,
    columns: Mapping[str, str] | None = None,
    process_columns: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Processes joined to the logon session they ran in: same host and logon id, latest logon before.

    ``processes`` is a ``process_events`` frame (``DvcHostname``, ``TargetUserSessionId``,
    ``TimeGenerated``; map others with ``process_columns``). Logon ids and host names are compared
    case-insensitively. Returns the process rows (only those with a matching successful logon) plus
    ``LogonTime``, ``LogonType``, ``LogonSource``, ``LogonUsername`` and ``LogonSessionId``.

    >>> t = pd.Timestamp("2024-01-01", tz="UTC")
    >>> auth = pd.DataFrame({"TimeGenerated": [t], "EventType": "Logon", "EventResult": "Success",
    ...                      "TargetUsername": "CORP\\\\jsmith", "DvcHostname": "SRV01", "LogonType": 10,
    ...                      "TargetSessionId": "0x3e7aa", "SrcIpAddr": "203.0.113.66"})
    >>> procs = pd.DataFrame({"TimeGenerated": [t + pd.Timedelta("1min")], "DvcHostname": "srv01",
    ...                       "TargetUserSessionId": "0x3E7AA", "TargetProcessName": "cmd.exe"})
    >>> sessions_with_processes(auth, procs)[["TargetProcessName", "LogonSource"]].values.tolist()
    [['cmd.exe', '203.0.113.66']]
    """
    logons = _frame(
        auth,
        columns,
        ["TimeGenerated", "EventResult", "TargetUsername", "DvcHostname", "TargetSessionId"],
        ["EventType", "LogonType", "SrcIpAddr", "SrcHostname"],
        "sessions_with_processes",
    )
    pnames = {
        "TimeGenerated": "TimeGenerated",
        "DvcHostname": "DvcHostname",
        "TargetUserSessionId": "TargetUserSessionId",
    }
    pnames.update(process_columns or {})
    if not isinstance(processes, pd.DataFrame):
        raise DataError(f"processes must be a pandas DataFrame, got {type(processes).__name__}")
    missing = [v for v in pnames.values() if v not in processes.columns]
    if missing:
        raise DataError(
            f"missing column(s) {', '.join(map(repr, missing))}",
            where="sessions_with_processes: processes",
            hint="map names with process_columns={'TargetUserSessionId': 'your_column', ...}",
        )
    is_logon = logons["EventType"].isna() | _is(logons, "EventType", ["Logon"])
    logons = logons[is_logon & _is(logons, "EventResult", ["Success"])]
    left = pd.DataFrame(
        {
            "LogonTime": logons["TimeGenerated"],
            "LogonType": logons["LogonType"],
            "LogonSource": _source(logons),
            "LogonUsername": logons["TargetUsername"],
            "LogonSessionId": logons["TargetSessionId"],
            "_host": logons["DvcHostname"].astype("string").str.lower(),
            "_sid": logons["TargetSessionId"].astype("string").str.lower(),
        }
    ).dropna(subset=["LogonTime", "_host", "_sid"])
    ptimes = processes[pnames["TimeGenerated"]]
    if not pd.api.types.is_datetime64_any_dtype(ptimes):
        ptimes = pd.to_datetime(ptimes, utc=True, format="mixed")
    if ptimes.dt.tz is None:
        ptimes = ptimes.dt.tz_localize("UTC")
    right = processes.copy()
    right["_t"] = ptimes.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    right["_host"] = processes[pnames["DvcHostname"]].astype("string").str.lower()
    right["_sid"] = processes[pnames["TargetUserSessionId"]].astype("string").str.lower()
    right["_row"] = np.arange(len(right))
    right = right.dropna(subset=["_t", "_host", "_sid"]).sort_values("_t")
    left["_t"] = left["LogonTime"].astype("datetime64[ns, UTC]")
    left = left.sort_values("_t")
    joined = pd.merge_asof(
        right,
        left.drop(columns=["LogonTime"]).assign(LogonTime=left["LogonTime"]),
        on="_t",
        by=["_host", "_sid"],
        direction="backward",
    )
    joined = joined[joined["LogonTime"].notna()].sort_values("_row")
    return joined.drop(columns=["_t", "_host", "_sid", "_row"]).reset_index(drop=True)
