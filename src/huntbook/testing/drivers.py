"""The contract every data-source driver passes, ours or a third party's (pytest), and local servers.

**Data.** :func:`contract_frames` builds deterministic ASIM-shaped tables (every column of
:data:`huntbook.schema.TABLES`): ``process_events`` with ``rows`` (25,000) rows on :data:`BULK_HOST`
for the paging test plus hand-written rows, ``authentication``, ``network_sessions``, ``dns``,
``alerts`` and ``events``. One row of each hunted table holds :data:`INJECTION` (``x' OR 1=1 --``) as
host name, account and command line; others hold ``%``, ``_``, ``"``, ``\\`` and ``|`` in values, and
their look-alikes (``50%_done`` beside ``50Xydone``). Rows before :data:`WINDOW` and exactly at its end
check half-open time windows. :func:`expected` computes with pandas what a hunt must return.

**The suite.** Subclass :class:`DriverContract` in a test module and give the hooks; every test of
the base class then runs against the driver::

    from huntbook.testing.drivers import DriverContract, CANARY_SECRET

    class TestSplunkContract(DriverContract):
        @pytest.fixture(autouse=True)
        def _server(self, splunk_loopback):       # your fixture, loaded with contract_frames()
            self.url = splunk_loopback.url

        def provider(self, **options):            # options: extra QueryProvider keywords
            return QueryProvider("splunk", url=self.url, token="good", config=Config(), **options)

        def bad_auth_provider(self):              # the same, with CANARY_SECRET as the secret
            return QueryProvider("splunk", url=self.url, token=CANARY_SECRET, config=Config())

        def slow_query(self):                     # native text that runs longer than 1 second
            return "| makeresults count=1000000000 | stats count"

        def server_error_query(self):             # native text the server fails on
            return "| nosuchcommand"

Optional hooks: :meth:`DriverContract.broken_provider` (a provider whose server is unreachable:
connection failure -> :class:`DriverError`), :meth:`DriverContract.bad_auth_provider` (return
None and the auth test is skipped with the reason in :attr:`DriverContract.no_auth_reason`),
:meth:`DriverContract.count_query` (native text returning a row; default ``SELECT 1 AS n`` or KQL
``print n = 1``), :meth:`DriverContract.native_language` (the language of those native queries)
and :attr:`DriverContract.column_names` (for catalogues returning the source's own field names,
e.g. ECS: each ASIM column's name in the results, renamed back before comparing).

The tests: the catalogue lists :data:`COMMON_HUNTS`; ``process.host_processes``,
``process.command_line_search``, ``authentication.failed_logons``, ``authentication.logons_from_ip``,
``network.ip_connections`` and ``authentication.password_spray`` over :data:`WINDOW` return exactly the
rows :func:`expected` computes; :data:`INJECTION` and the ``%``/``_``/``"``/``\\``/``|`` values match
their own rows only; the 25,000-row host comes back whole; :meth:`~DriverContract.slow_query` with
``timeout=1`` raises :class:`QueryTimeoutError` promptly; bad credentials raise :class:`DriverError`
and :data:`CANARY_SECRET` appears in no message or log record; a failing query raises an error that
names it.

**Local servers** for the tests of the built-in drivers: :class:`PostgresServer` (the machine's
``initdb``/``pg_ctl``, as an unprivileged user, on 127.0.0.1), :class:`KustoServer` (``duckdb-kql
serve`` on 127.0.0.1, behind an optional bearer-token gate), :func:`write_store` (a LocalStore
folder holding the frames) and :func:`spark_session` (pyspark ``local[2]``, shared).

Importing this module needs pytest and pandas.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd
import pytest

import huntbook.formats  # before huntbook.store: works around an import cycle in huntbook/__init__
import huntbook.normalize  # noqa: F401
from huntbook.errors import DriverError, HuntbookError, QueryTimeoutError
from huntbook.schema import TABLES
from huntbook.store import CATALOG_VERSION, LocalStore
from huntbook.testing.loopback import LoopbackRequest, LoopbackServer, Reply

if TYPE_CHECKING:
    from huntbook.session import QueryProvider

__all__ = [
    "BULK_HOST",
    "CANARY_SECRET",
    "COMMON_HUNTS",
    "HOSTILE_PATTERNS",
    "INJECTION",
    "WINDOW",
    "DriverContract",
    "KustoServer",
    "PostgresServer",
    "arrow_table",
    "comparable",
    "contract_frames",
    "expected",
    "spark_session",
    "write_store",
]

#: The injection value: a host name, an account and a command line in the frames.
INJECTION = "x' OR 1=1 --"
#: The secret the bad-auth provider uses; it must appear in no error message or log record.
CANARY_SECRET = "CANARY-s3cr3t-7d41f0a9e2"  # noqa: S105 - a canary, not a secret
#: The host holding the bulk process rows (25,000 by default).
BULK_HOST = "BULK01.corp.example"
T0 = datetime(2024, 3, 1, tzinfo=UTC)
#: The time window the contract queries (half-open: rows at ``end`` are outside).
WINDOW: Mapping[str, datetime] = {"start": T0, "end": T0 + timedelta(days=7)}
#: Hunts every driver's catalogue offers, with the local catalogue's parameter names.
COMMON_HUNTS = (
    "process.host_processes",
    "process.account_processes",
    "process.encoded_commands",
    "process.command_line_search",
    "authentication.failed_logons",
    "authentication.password_spray",
    "authentication.logons_from_ip",
    "network.ip_connections",
    "dns.domain_queries",
)
#: Command-line texts that must match literally (wildcard and quote characters included).
HOSTILE_PATTERNS = (INJECTION, "50%_done", '"quoted"', "c:\\temp\\", "a|b", "100%")
_DECOY = "decoy"


def _at(day: float, hour: float = 0, minute: float = 0) -> datetime:
    return T0 + timedelta(days=day, hours=hour, minutes=minute)


# ----------------------------------------------------------------------------------------------
# Frames


def contract_frames(rows: int = 25_000, seed: int = 7) -> dict[str, pd.DataFrame]:
    """Deterministic ASIM tables for the contract (see the module docs); ``rows`` bulk process rows."""
    rng = random.Random(seed)  # noqa: S311 - test data, not cryptography
    process = _process_rows(rng, rows)
    tables = {
        "process_events": process,
        "authentication": _auth_rows(),
        "network_sessions": _network_rows(),
        "dns": _dns_rows(),
        "alerts": _alert_rows(),
        "events": _event_rows(),
    }
    return {name: _typed(name, data) for name, data in tables.items()}


def _typed(table: str, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """``rows`` as a frame with every schema column of ``table`` in its pandas dtype."""
    columns = TABLES[table]
    frame = pd.DataFrame(rows).reindex(columns=list(columns))
    dtypes = {
        "TIMESTAMPTZ": "datetime64[us, UTC]",
        "INTEGER": "Int32",
        "BIGINT": "Int64",
        "DOUBLE": "float64",
    }
    for column, sql_type in columns.items():
        if sql_type in dtypes:
            frame[column] = frame[column].astype(pd.api.types.pandas_dtype(dtypes[sql_type]))
        else:
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame


def _proc(key: str, when: datetime, host: str, cmd: str, **extra: Any) -> dict[str, Any]:
    image = extra.pop("image", None) or cmd.split(" ", 1)[0]
    return {
        "TimeGenerated": when,
        "EventKey": key,
        "DvcHostname": host,
        "EventProduct": "Security",
        "EventOriginalType": "4688",
        "EventType": "ProcessCreated",
        "TargetProcessName": image,
        "TargetProcessId": "0x1f4",
        "TargetProcessCommandLine": cmd,
        **extra,
    }


def _process_rows(rng: random.Random, bulk: int) -> list[dict[str, Any]]:
    alice = {"ActorUsername": "CORP\\alice", "ActorSessionId": "0x3e7", "TargetUsername": "CORP\\alice"}
    rows = [
        _proc(
            "p001",
            _at(0, 10),
            "WS01.corp.example",
            "powershell.exe -NoP -enc SQBFAFgA",
            ActingProcessName="C:\\Windows\\System32\\cmd.exe",
            **alice,
        ),
        _proc("p002", _at(1, 11), "ws01", "cmd.exe /c whoami", ActorUsername="alice@corp.example"),
        _proc("p003", _at(1, 12), "WS01.corp.example", "cmd.exe /c whoami", EventType="ProcessTerminated"),
        _proc(
            "p004",
            _at(2, 9),
            "WS02",
            "powershell -ExecutionPolicy Bypass -File x.ps1",
            ActingProcessName="C:\\Tools\\notcmd.exe",
            **alice,
        ),
        _proc(
            "p005",
            _at(2, 10),
            "ws02.corp.example",
            "pwsh /EncodedCommand ZQBjAGgAbwA=",
            ActorUsername="bob",
            ActingProcessName="/usr/bin/cmd.exe",
        ),
        _proc("p006", _at(3, 8), "WS03", "PowerShell.exe -EC ZQBj", TargetUsername="CORP\\carol"),
        _proc("p007", _at(3, 9), "WS03", "python -c \"[Convert]::FromBase64String('aGk=')\""),
        _proc(
            "p008", _at(4, 0), "WS01X.corp.example", "perl -e 'print 1' 50%_done", ActingProcessName="CMD.EXE"
        ),
        _proc("p009", _at(4, 1), "WS01X.corp.example", "perl -e 'print 1' 50Xydone"),
        _proc("p010", _at(4, 2), "WS03", "notepad 500done"),
        _proc("p011", _at(4, 5), "ws02", "powershell \u2013EnC abc"),
        _proc("p012", _at(5, 1), "WS02", "powershell Get-Thing -Enabled true"),
        _proc("p013", _at(5, 2), "WS03", "powershell -ex bypass -e JABzAD0A"),
        _proc("p014", _at(5, 3), "WS04", 'cmd /c echo "quoted" > out.txt'),
        _proc("p015", _at(5, 4), "WS04", 'cmd /c echo quoted" >out.txt'),
        _proc("p016", _at(5, 5), "WS04", "C:\\Temp\\stage.exe --run", image="C:\\Temp\\stage.exe"),
        _proc("p017", _at(5, 6), "WS04", "C:/Temp/stage.exe --run", image="C:/Temp/stage.exe"),
        _proc("p018", _at(5, 7), "WS04", "cmd /c type a|b"),
        _proc("p019", _at(5, 8), "WS04", "cmd /c type a b"),
        _proc("p020", _at(5, 9), "WS05", "disk 100% full"),
        _proc("p021", _at(5, 10), "WS05", "disk 1000 full"),
        _proc(
            "p022",
            _at(6, 1),
            INJECTION,
            INJECTION,
            image="inject.exe",
            ActorUsername=INJECTION,
            TargetUsername="CORP\\svc",
        ),
        _proc("p023", _at(6, 2), _DECOY, "decoy.exe x OR 1=1", ActorUsername=_DECOY),
        _proc("p024", _at(6, 3), "x", "x.exe", ActorUsername="x"),
        _proc("p025", datetime(2024, 2, 1, tzinfo=UTC), "WS01", "powershell -enc OLD"),  # before WINDOW
        _proc("p026", WINDOW["end"], "WS01", "cmd /c exit"),  # at the end of WINDOW: outside
        _proc("p027", _at(6, 4), "WS01.corp.example", "rundll32.exe a.dll,Run", TargetUsername="CORP\\Alice"),
    ]
    step = timedelta(days=7) / max(bulk, 1)
    commands = ["svchost.exe -k netsvcs", "conhost.exe 0x4", "backgroundtask.exe", "chrome.exe --type=gpu"]
    accounts = ["NT AUTHORITY\\SYSTEM", "CORP\\svc_backup", "CORP\\dave", None]
    for i in range(bulk):
        rows.append(
            _proc(
                f"b{i:06d}",
                T0 + step * i,
                BULK_HOST,
                rng.choice(commands),
                ActorUsername=rng.choice(accounts),
                TargetProcessId=f"0x{rng.randrange(1, 65535):x}",
            )
        )
    return rows


def _auth(key: str, when: datetime, user: str, result: str, **extra: Any) -> dict[str, Any]:
    return {
        "TimeGenerated": when,
        "EventKey": key,
        "EventProduct": "Security",
        "EventOriginalType": "4624" if result == "Success" else "4625",
        "EventType": "Logon",
        "EventResult": result,
        "TargetUsername": user,
        "DvcHostname": "DC01.corp.example",
        "LogonType": 3,
        **extra,
    }


def _auth_rows() -> list[dict[str, Any]]:
    rows = [
        _auth(
            "a001", _at(0, 9), "CORP\\alice", "Success", DvcHostname="WS01.corp.example", SrcIpAddr="10.0.0.5"
        ),
        _auth(
            "a002", _at(1, 9), "alice@corp.example", "Success", TargetHostname="WS02", SrcIpAddr="10.0.0.6"
        ),
        _auth("a003", _at(1, 10), "OTHER\\alice", "Failure", DvcHostname="WS03", SrcIpAddr=" 10.0.0.7 "),
        _auth(
            "a004", _at(2, 10), "ALICE", "Failure", DvcHostname="ws01", SrcIpAddr="-", SrcHostname="LAPTOP9"
        ),
        _auth("a005", _at(2, 11), "CORP\\alice", "Success", DvcHostname="WS01", EventType="Logoff"),
        _auth("a006", _at(2, 12), INJECTION, "Failure", DvcHostname=INJECTION, SrcIpAddr="192.0.2.66"),
        _auth("a007", _at(2, 13), "CORP\\bob", "Failure", DvcHostname="WS01X", SrcIpAddr="2001:DB8::5"),
        _auth("a008", datetime(2024, 2, 1, tzinfo=UTC), "CORP\\alice", "Failure", SrcIpAddr="203.0.113.5"),
        _auth("a009", WINDOW["end"], "CORP\\zed", "Failure", SrcIpAddr="203.0.113.5"),
    ]
    rows += [
        _auth(f"s{i:03d}", _at(3, 1, i), f"CORP\\user{i}", "Failure", SrcIpAddr="203.0.113.5")
        for i in range(6)
    ]
    rows.append(_auth("s100", _at(3, 1, 30), "CORP\\user0", "Failure", SrcIpAddr="203.0.113.5"))
    rows += [
        _auth(f"t{i:03d}", _at(3, 2, i), f"CORP\\user{i}", "Failure", SrcIpAddr="198.51.100.7")
        for i in range(3)
    ]
    rows += [
        _auth(f"h{i:03d}", _at(3, 3, i), f"CORP\\svc{i}", "Failure", SrcIpAddr="-", SrcHostname="KALI")
        for i in range(5)
    ]
    rows += [
        _auth(f"f{i:03d}", _at(4, 1, i), "CORP\\admin", "Failure", SrcIpAddr="198.51.100.9")
        for i in range(12)
    ]
    rows.append(_auth("f100", _at(4, 2), "CORP\\admin", "Success", SrcIpAddr="198.51.100.9"))
    return rows


def _flow(key: str, when: datetime, src: str, dst: str, out: int, into: int, **extra: Any) -> dict[str, Any]:
    return {
        "TimeGenerated": when,
        "EventKey": key,
        "DvcHostname": extra.pop("host", "sensor01"),
        "EventProduct": "Zeek",
        "EventType": "Flow",
        "SrcIpAddr": src,
        "SrcPortNumber": 49152,
        "DstIpAddr": dst,
        "DstPortNumber": 443,
        "SrcBytes": out,
        "DstBytes": into,
        "NetworkProtocol": "TCP",
        "NetworkDuration": 1.5,
        **extra,
    }


def _network_rows() -> list[dict[str, Any]]:
    return [
        _flow("n001", _at(0, 10, 5), "10.0.0.5", "203.0.113.80", 1000, 50000, host="WS01.corp.example"),
        _flow("n002", _at(0, 10, 45), "10.0.0.5", "203.0.113.80", 3000, 1000, host="WS01.corp.example"),
        _flow("n003", _at(0, 11, 0), "10.0.0.6", "8.8.8.8", 100, 200),
        _flow("n004", _at(0, 11, 30), "10.0.0.5", "10.0.0.1", 999999, 999999),
        _flow("n005", _at(1, 0), "203.0.113.80", "10.0.0.5", 10, 20),
        _flow("n006", _at(1, 1), "10.0.0.7", "2001:DB8::5", 7000, 1),
        _flow("n007", _at(1, 2), "10.0.0.7", "203.0.113.8", 5, 5),  # a prefix of 203.0.113.80
        _flow("n008", _at(1, 3), "10.0.0.7", "192.168.1.1", 5, 5, SrcBytes=None),
        _flow("n009", datetime(2024, 2, 1, tzinfo=UTC), "10.0.0.5", "203.0.113.80", 1, 1),
        _flow("n010", WINDOW["end"], "10.0.0.5", "203.0.113.80", 1, 1),
        _flow("n011", _at(2, 0), INJECTION, "203.0.113.99", 1, 1, host=INJECTION),
    ]


def _dns_rows() -> list[dict[str, Any]]:
    def query(key: str, when: datetime, host: str, name: str) -> dict[str, Any]:
        return {
            "TimeGenerated": when,
            "EventKey": key,
            "DvcHostname": host,
            "EventProduct": "Zeek",
            "DnsQuery": name,
            "DnsQueryTypeName": "A",
            "SrcIpAddr": "10.0.0.5",
        }

    return [
        query("d001", _at(0, 1), "WS01.corp.example", "evil.example.com"),
        query("d002", _at(0, 2), "ws02", "EXAMPLE.COM."),
        query("d003", _at(0, 3), "WS01", "notexample.com"),
        query("d004", _at(0, 4), "WS03", "www.example.com.evil.net"),
        query("d005", _at(0, 5), "WS03", "x' or 1=1 --.example.org"),
        query("d006", datetime(2024, 2, 1, tzinfo=UTC), "WS03", "example.com"),
    ]


def _alert_rows() -> list[dict[str, Any]]:
    return [
        {
            "TimeGenerated": _at(0, 5),
            "EventKey": "l001",
            "AlertName": "ET TROJAN",
            "SrcIpAddr": "10.0.0.5",
            "DstIpAddr": "203.0.113.80",
            "AlertSeverity": "High",
        },
        {"TimeGenerated": _at(2, 5), "EventKey": "l002", "AlertName": "ET SCAN", "SrcIpAddr": "198.51.100.7"},
    ]


def _event_rows() -> list[dict[str, Any]]:
    return [
        {
            "TimeGenerated": _at(0, 1),
            "EventKey": "e001",
            "EventFormat": "evtx",
            "Channel": "Security",
            "EventID": 4688,
            "Computer": "WS01.corp.example",
            "raw": '{"EventID": 4688}',
        },
        {
            "TimeGenerated": _at(0, 2),
            "EventKey": "e002",
            "EventFormat": "zeek_json",
            "Channel": "conn",
            "Computer": "sensor01",
            "raw": '{"uid": "C1"}',
        },
    ]


def arrow_table(table: str, frame: pd.DataFrame) -> Any:
    """``frame`` as a pyarrow Table with the schema types of ``table`` (for Parquet and DuckDB)."""
    import pyarrow as pa

    types = {
        "VARCHAR": pa.string(),
        "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
        "INTEGER": pa.int32(),
        "BIGINT": pa.int64(),
        "DOUBLE": pa.float64(),
    }
    schema = pa.schema([(c, types[t]) for c, t in TABLES[table].items()])
    return pa.Table.from_pandas(frame.reindex(columns=schema.names), schema=schema, preserve_index=False)


def write_store(path: Path | str, frames: Mapping[str, pd.DataFrame]) -> LocalStore:
    """A LocalStore folder holding ``frames`` as its tables (the store's Parquet layout)."""
    import pyarrow.parquet as pq

    root = Path(path)
    parts: dict[str, list[str]] = {}
    for table, frame in frames.items():
        rel = f"tables/{table}/contract.parquet"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(arrow_table(table, frame), root / rel)
        parts[table] = [rel]
    catalog = {"version": CATALOG_VERSION, "sources": [], "parts": parts}
    (root / "catalog.json").write_text(json.dumps(catalog), encoding="utf-8")
    return LocalStore(root)


# ----------------------------------------------------------------------------------------------
# What the hunts must return (pandas)


def _lower(series: pd.Series) -> pd.Series:
    return series.astype(object).map(lambda v: v.lower() if isinstance(v, str) else None)


def _host_match(column: pd.Series, host: str) -> pd.Series:
    """The local catalogue's host rule: equal, or one is the other's short name (case-insensitive)."""
    wanted = host.lower()
    return _lower(column).map(
        lambda v: (
            isinstance(v, str) and (v == wanted or v.startswith(wanted + ".") or wanted.startswith(v + "."))
        )
    )


def _in_window(frame: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    return frame[(frame["TimeGenerated"] >= start) & (frame["TimeGenerated"] < end)]


def _ordered(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["TimeGenerated", "EventKey"]).reset_index(drop=True)


def expected(hunt: str, frames: Mapping[str, pd.DataFrame], **params: Any) -> pd.DataFrame:
    """The rows ``hunt`` returns on ``frames`` for ``params`` (``start``/``end`` default to WINDOW)."""
    start, end = params.pop("start", WINDOW["start"]), params.pop("end", WINDOW["end"])
    if hunt == "process.host_processes":
        rows = _in_window(frames["process_events"], start, end)
        rows = rows[
            (rows["EventType"] != "ProcessTerminated") & _host_match(rows["DvcHostname"], params["host_name"])
        ]
        return _ordered(rows)
    if hunt == "process.command_line_search":
        rows = _in_window(frames["process_events"], start, end)
        wanted = params["pattern"].lower()
        hit = _lower(rows["TargetProcessCommandLine"]).map(lambda v: isinstance(v, str) and wanted in v)
        return _ordered(rows[(rows["EventType"] != "ProcessTerminated") & hit])
    if hunt == "authentication.failed_logons":
        rows = _in_window(frames["authentication"], start, end)
        host = params.get("host_name", "")
        where = (
            _host_match(rows["DvcHostname"], host) | _host_match(rows["TargetHostname"], host)
            if host
            else True
        )
        return _ordered(rows[(rows["EventResult"] == "Failure") & where])
    if hunt == "authentication.logons_from_ip":
        rows = _in_window(frames["authentication"], start, end)
        ip = params["ip_address"].strip().lower()
        src = _lower(rows["SrcIpAddr"]).map(lambda v: v.strip() if isinstance(v, str) else None)
        return _ordered(rows[(rows["EventType"] == "Logon") & (src == ip)])
    if hunt == "network.ip_connections":
        rows = _in_window(frames["network_sessions"], start, end)
        ip = params["ip_address"].strip().lower()
        return _ordered(rows[(_lower(rows["SrcIpAddr"]) == ip) | (_lower(rows["DstIpAddr"]) == ip)])
    if hunt == "authentication.password_spray":
        return _password_spray(
            _in_window(frames["authentication"], start, end), params.get("min_accounts", 5)
        )
    raise KeyError(f"no pandas reference for {hunt}")


def _password_spray(rows: pd.DataFrame, min_accounts: int) -> pd.DataFrame:
    rows = rows[
        (rows["EventType"] == "Logon")
        & ((rows["EventResult"] == "Failure") | (rows["EventOriginalType"] == "4648"))
        & rows["TargetUsername"].map(lambda v: isinstance(v, str) and v != "")
    ]

    def usable(value: Any) -> str | None:
        text = value.strip() if isinstance(value, str) else ""
        return text if text not in ("", "-") else None

    ip = [usable(v) for v in rows["SrcIpAddr"]]
    host = [usable(v) for v in rows["SrcHostname"]]
    data = pd.DataFrame(
        {
            "Source": [i if i is not None else h for i, h in zip(ip, host, strict=True)],
            "SourceType": ["ip" if i is not None else "hostname" for i in ip],
            "Account": _lower(rows["TargetUsername"]).to_numpy(),
            "TimeGenerated": rows["TimeGenerated"].to_numpy(),
        }
    ).dropna(subset=["Source"])
    grouped = (
        data.groupby(["Source", "SourceType"])
        .agg(
            DistinctAccounts=("Account", "nunique"),
            Failures=("Account", "size"),
            FirstSeen=("TimeGenerated", "min"),
            LastSeen=("TimeGenerated", "max"),
            Accounts=("Account", lambda s: sorted(set(s))),
        )
        .reset_index()
    )
    grouped = grouped[grouped["DistinctAccounts"] >= min_accounts]
    return grouped.sort_values(["DistinctAccounts", "Source"], ascending=[False, True]).reset_index(drop=True)


def comparable(frame: pd.DataFrame, columns: Sequence[str] | None = None) -> list[tuple[Any, ...]]:
    """Rows of ``frame`` as tuples of plain values for comparing engines: times as UTC ISO text,
    NaN/NA/None as None, whole floats as int, arrays as sorted tuples, strings as they are."""
    names = list(columns) if columns is not None else list(frame.columns)
    return [tuple(_plain(value) for value in row) for row in frame[names].itertuples(index=False, name=None)]


def _plain(value: Any) -> Any:
    import numpy as np

    if isinstance(value, list | tuple | np.ndarray):
        return tuple(sorted(_plain(v) for v in value))
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, datetime | pd.Timestamp):
        stamp = pd.Timestamp(value)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        return stamp.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


# ----------------------------------------------------------------------------------------------
# Local servers


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


_PG_TYPES = {
    "VARCHAR": "text",
    "TIMESTAMPTZ": "timestamptz",
    "INTEGER": "integer",
    "BIGINT": "bigint",
    "DOUBLE": "double precision",
}


def _pg_bin() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: PATH first, then ``/usr/lib/postgresql/*/bin``."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    folders = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True
    )
    return next((f for f in folders if (f / "initdb").exists() and (f / "pg_ctl").exists()), None)


class PostgresServer:
    """A throw-away PostgreSQL cluster from the machine's ``initdb``/``pg_ctl``, on 127.0.0.1 only.

    Run as root (as in CI), the cluster belongs to an unprivileged user (``postgres`` if it exists,
    else ``nobody``) and its data folder is a fresh temporary folder owned by that user. The
    superuser is ``huntbook`` with ``password``; password (SCRAM) authentication, no Unix socket.
    Use as a context manager; :meth:`skip_reason` says why it cannot run here.
    """

    def __init__(self, password: str = "huntbook-test-pw", database: str = "hunt") -> None:  # noqa: S107
        self.password = password
        self.database = database
        self.port = 0
        self.folder: Path | None = None
        self._bin = _pg_bin()
        self._user = self._run_as()

    @staticmethod
    def _run_as() -> tuple[int, int] | None:
        if os.geteuid() != 0:
            return None
        import pwd

        for name in ("postgres", "nobody"):
            with contextlib.suppress(KeyError):
                entry = pwd.getpwnam(name)
                return entry.pw_uid, entry.pw_gid
        return None

    @classmethod
    def skip_reason(cls) -> str | None:
        """Why no server can be started here, or None."""
        if _pg_bin() is None:
            return "PostgreSQL binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin"
        if os.geteuid() == 0 and cls._run_as() is None:
            return "running as root and no unprivileged user (postgres, nobody) to own the cluster"
        return None

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the database (psycopg 3)."""
        return f"postgresql+psycopg://huntbook:{self.password}@127.0.0.1:{self.port}/{self.database}"

    def url_with(self, password: str) -> str:
        """The URL with another password (for the bad-auth test)."""
        return self.url.replace(f":{self.password}@", f":{password}@")

    def _run(self, *args: str) -> None:
        assert self._bin is not None
        user, group = self._user if self._user else (None, None)
        done = subprocess.run(
            [str(self._bin / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            check=False,
            user=user,
            group=group,
            extra_groups=[] if self._user else None,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip()[-800:]}")

    def start(self) -> PostgresServer:
        """initdb, start on a free port, create the database."""
        reason = self.skip_reason()
        if reason:
            raise RuntimeError(reason)
        self.folder = Path(tempfile.mkdtemp(prefix="huntbook-pg-"))
        data, pwfile = self.folder / "data", self.folder / "pw"
        pwfile.write_text(self.password + "\n", encoding="utf-8")
        if self._user:
            os.chown(self.folder, *self._user)
            os.chown(pwfile, *self._user)
        self._run(
            "initdb", "-D", str(data), "-U", "huntbook", f"--pwfile={pwfile}", "--auth=scram-sha-256",
            "-E", "UTF8", "--locale=C.UTF-8", "--no-sync",
        )  # fmt: skip
        pwfile.unlink()
        self.port = _free_port()
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories='' "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=64MB"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(data / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        import psycopg

        with psycopg.connect(self._dsn("postgres"), autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{self.database}"')
        return self

    def _dsn(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user=huntbook password={self.password} dbname={database}"

    def load(self, frames: Mapping[str, pd.DataFrame]) -> None:
        """Create the schema tables (quoted ASIM column names) and COPY ``frames`` into them."""
        import psycopg

        with psycopg.connect(self._dsn(self.database)) as con, con.cursor() as cur:
            for table, frame in frames.items():
                columns = TABLES[table]
                ddl = ", ".join(f'"{c}" {_PG_TYPES[t]}' for c, t in columns.items())
                cur.execute(f'DROP TABLE IF EXISTS "{table}"')
                cur.execute(f'CREATE TABLE "{table}" ({ddl})')
                names = ", ".join(f'"{c}"' for c in columns)
                with cur.copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
                    for row in frame.reindex(columns=list(columns)).itertuples(index=False, name=None):
                        copy.write_row([None if _missing(v) else v for v in row])
                cur.execute(f'ANALYZE "{table}"')

    def stop(self) -> None:
        """Stop the server and delete its folder."""
        if self.folder is None:
            return
        with contextlib.suppress(RuntimeError):
            self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _missing(value: Any) -> bool:
    return value is None or (not isinstance(value, str | list) and bool(pd.isna(value)))


def duckdb_file(path: Path, frames: Mapping[str, pd.DataFrame]) -> Path:
    """A DuckDB database file holding ``frames`` as tables with the schema types."""
    import duckdb

    con = duckdb.connect(str(path))
    try:
        for table, frame in frames.items():
            data = arrow_table(table, frame)  # noqa: F841 - read by DuckDB's replacement scan
            con.execute(f'CREATE OR REPLACE TABLE "{table}" AS SELECT * FROM data')
    finally:
        con.close()
    return path


class KustoServer:
    """``duckdb-kql serve`` on 127.0.0.1 holding ``frames`` as the database ``database``.

    With ``token``, clients talk to a bearer-token gate in front of it (a :class:`LoopbackServer`
    answering 401 to a missing or wrong ``Authorization: Bearer`` header, as Azure Data Explorer
    does) and :attr:`url` is the gate's address; duckdb-kql itself has no authentication.
    """

    def __init__(
        self, frames: Mapping[str, pd.DataFrame], *, token: str | None = None, database: str = "hunt"
    ) -> None:
        self.frames = frames
        self.token = token
        self.database = database
        self.backend_url = ""
        self._folder: Path | None = None
        self._process: subprocess.Popen[str] | None = None
        self._gate: LoopbackServer | None = None
        self._forward: Any = None

    @staticmethod
    def command() -> Path | None:
        """The ``duckdb-kql`` script beside this Python, or on PATH."""
        beside = Path(sys.executable).parent / "duckdb-kql"
        if beside.exists():
            return beside
        found = shutil.which("duckdb-kql")
        return Path(found) if found else None

    @property
    def url(self) -> str:
        """The cluster URL clients use."""
        return self._gate.url if self._gate is not None else self.backend_url

    def start(self) -> KustoServer:
        """Write the database file, start the server, wait for it, and start the gate."""
        command = self.command()
        if command is None:
            raise RuntimeError("duckdb-kql is not installed (pip install 'huntbook[kql]')")
        self._folder = Path(tempfile.mkdtemp(prefix="huntbook-kql-"))
        db = duckdb_file(self._folder / f"{self.database}.duckdb", self.frames)
        port = _free_port()
        self._process = subprocess.Popen(
            [str(command), "serve", str(db), "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.backend_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"duckdb-kql serve exited: {self._process.stderr.read() if self._process.stderr else ''}"
                )
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("duckdb-kql serve did not start within 60 s")
            time.sleep(0.1)
        if self.token is not None:
            self._start_gate()
        return self

    def _start_gate(self) -> None:
        from huntbook.http import HttpClient

        self._forward = HttpClient(
            "kusto-gate", base_url=self.backend_url, timeout=(5.0, 600.0), deadline=600.0, retries=0
        )
        expected_header = f"Bearer {self.token}"

        def app(request: LoopbackRequest) -> Reply:
            if request.header("authorization") != expected_header:
                return Reply.json(
                    {
                        "error": {
                            "code": "Unauthorized",
                            "message": "The caller is not authenticated.",
                            "@permanent": True,
                        }
                    },
                    status=401,
                    headers={"WWW-Authenticate": 'Bearer authorization_uri="https://login.example.invalid"'},
                )
            keep = ("x-ms-client-request-id", "x-ms-app", "x-ms-user", "accept")
            body = request.json()
            if isinstance(body, dict) and isinstance(body.get("properties"), str):
                # azure-kusto-data sends the request properties as JSON text (the REST API allows it);
                # duckdb-kql reads only an object, and would drop servertimeout
                body["properties"] = json.loads(body["properties"])
            answer = self._forward.request(
                "POST",
                request.path,
                json_body=body,
                headers={k: v for k, v in request.headers.items() if k in keep},
                use_cache=False,
                ok_statuses=range(100, 600),
            )
            return Reply(
                answer.status,
                answer.body,
                {"Content-Type": answer.headers.get("content-type", "application/json")},
            )

        self._gate = LoopbackServer(app).start()

    def stop(self) -> None:
        """Stop the gate and the server, and delete the database file."""
        if self._gate is not None:
            self._gate.stop()
            self._gate = None
        if self._forward is not None:
            self._forward.close()
            self._forward = None
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
            if self._process.stderr is not None:
                self._process.stderr.close()
            self._process = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def __enter__(self) -> KustoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_SPARK: list[Any] = []


def spark_session() -> Any:
    """One pyspark ``local[2]`` session per process for tests (the driver's defaults, 1 GB), stopped at
    exit. Raises :class:`RuntimeError` without pyspark or Java."""
    if _SPARK:
        return _SPARK[0]
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise RuntimeError("no Java runtime (java on PATH or JAVA_HOME): pyspark needs one")
    import atexit

    from pyspark.sql import SparkSession

    from huntbook.drivers.spark import DEFAULT_CONF

    builder = SparkSession.builder.master("local[2]").appName("huntbook-tests")
    for key, value in {**DEFAULT_CONF, "spark.sql.shuffle.partitions": "2"}.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    _SPARK.append(session)
    atexit.register(session.stop)
    return session


# ----------------------------------------------------------------------------------------------
# The contract


_FRAMES: dict[int, dict[str, pd.DataFrame]] = {}


def _frames() -> dict[str, pd.DataFrame]:
    if 25_000 not in _FRAMES:
        _FRAMES[25_000] = contract_frames()
    return _FRAMES[25_000]


def _keys(frame: pd.DataFrame) -> list[str]:
    return [str(k) for k in frame["EventKey"]]


class DriverContract:
    """Shared tests for a driver loaded with :func:`contract_frames` (see the module docs for the hooks)."""

    #: Seconds the timeout test allows; a driver must raise QueryTimeoutError within ``slow_limit``.
    timeout: ClassVar[float] = 1.0
    slow_limit: ClassVar[float] = 30.0
    #: Why :meth:`bad_auth_provider` returns None (the auth test is skipped with this reason).
    no_auth_reason: ClassVar[str] = "the driver has no authentication"
    #: ASIM column -> the driver's column, for catalogues that return the source's own field names
    #: (Elastic's ECS: ``{"EventKey": "event.id", "TimeGenerated": "@timestamp"}``); results are
    #: renamed back before every comparison. Map only columns holding the same values; ``EventKey``
    #: and ``TimeGenerated`` are required when the map is not empty.
    column_names: ClassVar[Mapping[str, str]] = {}

    # -- hooks ---------------------------------------------------------------------------------------
    def provider(self, **options: Any) -> QueryProvider:
        """A connected-on-demand provider holding :func:`contract_frames`; pass ``options`` through."""
        raise NotImplementedError

    def bad_auth_provider(self) -> QueryProvider | None:
        """A provider whose credential is :data:`CANARY_SECRET` (wrong), or None."""
        return None

    def slow_query(self) -> str:
        """Native query text that runs well past :attr:`timeout` seconds."""
        raise NotImplementedError

    def server_error_query(self) -> str:
        """Native query text the server fails on (bad table, runtime error ...)."""
        raise NotImplementedError

    def broken_provider(self) -> QueryProvider | None:
        """A provider whose server cannot be reached, or None to skip that test."""
        return None

    def native_language(self, qp: QueryProvider) -> str:
        """The language of :meth:`slow_query`, :meth:`server_error_query` and :meth:`count_query`
        (default ``native`` when the driver has it, else its first language)."""
        return "native" if "native" in qp.driver.languages else qp.driver.languages[0]

    def count_query(self, qp: QueryProvider) -> str:
        """Native query text returning at least one row (the provider still works after a timeout)."""
        return _count_query(qp)

    # -- helpers -------------------------------------------------------------------------------------
    @pytest.fixture()
    def qp(self) -> Iterator[QueryProvider]:
        provider = self.provider()
        try:
            yield provider
        finally:
            provider.close()

    @staticmethod
    def frames() -> dict[str, pd.DataFrame]:
        """The data the provider holds (built once per process)."""
        return _frames()

    def asim(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with the driver's column names (:attr:`column_names`) renamed to ASIM (a copy)."""
        if not self.column_names:
            return frame
        return frame.rename(columns={theirs: ours for ours, theirs in self.column_names.items()})

    def _keys(self, frame: pd.DataFrame) -> list[str]:
        return _keys(self.asim(frame))

    def _check_rows(self, qp: QueryProvider, hunt: str, **params: Any) -> pd.DataFrame:
        got = self.asim(qp.run(hunt, **{**WINDOW, **params}))
        want = expected(hunt, self.frames(), **params)
        assert _keys(got) == _keys(want), f"{hunt}({params}): {_keys(got)[:20]} != {_keys(want)[:20]}"
        shared = [c for c in want.columns if c in got.columns]
        for column in shared:
            assert comparable(got, [column]) == comparable(want, [column]), (
                f"{hunt}({params}): {column} differs"
            )
        return got

    # -- the contract ----------------------------------------------------------------------------------
    def test_catalogue_lists_the_common_hunts(self, qp: QueryProvider) -> None:
        missing = sorted(set(COMMON_HUNTS) - set(qp.list_queries()))
        assert not missing, f"the {qp.environment} catalogue lacks {missing}"
        for hunt in COMMON_HUNTS:
            assert qp.query_spec(hunt).language in qp.driver.languages

    def test_host_processes_in_a_window(self, qp: QueryProvider) -> None:
        got = self._check_rows(qp, "process.host_processes", host_name="WS01")
        assert self._keys(got) == ["p001", "p002", "p027"]  # short name ~ FQDN, not WS01X, window half-open
        assert (
            str(got["TimeGenerated"].dtype).startswith("datetime64")
            and got["TimeGenerated"].dt.tz is not None
        )

    def test_window_is_half_open(self, qp: QueryProvider) -> None:
        end = WINDOW["end"]
        wide = qp.process.host_processes(host_name="WS01", start=end - timedelta(days=40), end=end)
        assert self._keys(wide) == ["p025", "p001", "p002", "p027"]
        assert self._keys(
            qp.process.host_processes(host_name="WS01", start=end, end=end + timedelta(hours=1))
        ) == ["p026"]

    @pytest.mark.parametrize(
        ("hunt", "params"),
        [
            ("process.command_line_search", {"pattern": "WHOAMI"}),
            ("authentication.failed_logons", {"host_name": "ws01"}),
            ("authentication.failed_logons", {}),
            ("authentication.logons_from_ip", {"ip_address": "10.0.0.7"}),
            ("network.ip_connections", {"ip_address": "2001:db8::5"}),
            ("network.ip_connections", {"ip_address": "203.0.113.80"}),
        ],
    )
    def test_hunt_returns_the_pandas_rows(self, qp: QueryProvider, hunt: str, params: dict[str, Any]) -> None:
        got = self._check_rows(qp, hunt, **params)
        assert len(got) > 0

    def test_password_spray_matches_pandas(self, qp: QueryProvider) -> None:
        got = self.asim(qp.authentication.password_spray(min_accounts=3, **WINDOW))
        want = expected("authentication.password_spray", self.frames(), min_accounts=3)
        columns = [
            "Source",
            "SourceType",
            "DistinctAccounts",
            "Failures",
            "FirstSeen",
            "LastSeen",
            "Accounts",
        ]
        assert comparable(got, columns) == comparable(want, columns), f"{comparable(got, columns)}"
        assert list(got["Source"]) == ["203.0.113.5", "KALI", "198.51.100.7"]

    def test_injection_value_matches_its_own_rows_only(self, qp: QueryProvider) -> None:
        assert self._keys(self._check_rows(qp, "process.host_processes", host_name=INJECTION)) == ["p022"]
        assert self._keys(qp.process.account_processes(account_name=INJECTION, **WINDOW)) == ["p022"]
        assert self._keys(self._check_rows(qp, "authentication.failed_logons", host_name=INJECTION)) == [
            "a006"
        ]
        assert self._keys(self._check_rows(qp, "network.ip_connections", ip_address=INJECTION)) == ["n011"]
        assert self._keys(qp.dns.domain_queries(domain="x' OR 1=1 --.example.org", **WINDOW)) == ["d005"]

    @pytest.mark.parametrize("pattern", HOSTILE_PATTERNS)
    def test_special_characters_are_literal(self, qp: QueryProvider, pattern: str) -> None:
        got = self._check_rows(qp, "process.command_line_search", pattern=pattern)
        assert 0 < len(got) < 5, f"{pattern!r} matched {self._keys(got)}"

    def test_large_result_comes_back_whole(self, qp: QueryProvider) -> None:
        got = self.asim(qp.process.host_processes(host_name=BULK_HOST.split(".")[0], **WINDOW))
        bulk = self.frames()["process_events"]
        want = bulk[bulk["DvcHostname"] == BULK_HOST]
        assert len(got) == len(want) >= 25_000
        assert self._keys(got) == sorted(want["EventKey"])  # bulk keys sort in time order
        assert got["EventKey"].is_unique

    def test_timeout_cancels_the_query(self, qp: QueryProvider) -> None:
        started = time.monotonic()
        with pytest.raises(QueryTimeoutError) as info:
            qp.exec_query(self.slow_query(), language=self.native_language(qp), timeout=self.timeout)
        assert time.monotonic() - started < self.slow_limit
        assert "timeout" in str(info.value)
        assert len(
            qp.exec_query(self.count_query(qp), language=self.native_language(qp))
        )  # the provider still works

    def test_bad_auth_is_a_clear_error_without_the_secret(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.DEBUG)
        provider = self.bad_auth_provider()
        if provider is None:
            pytest.skip(self.no_auth_reason)
        try:
            with pytest.raises(DriverError) as info:
                provider.process.host_processes(host_name="WS01", **WINDOW)
        finally:
            provider.close()
        message = str(info.value)
        assert re.search(r"auth|password|credential|401|403", message, re.I), message
        assert CANARY_SECRET not in message
        assert CANARY_SECRET not in repr(info.value) and CANARY_SECRET not in repr(provider.driver)
        assert CANARY_SECRET not in caplog.text

    def test_server_error_names_the_query(self, qp: QueryProvider, tmp_path: Path) -> None:
        (tmp_path / "broken.yaml").write_text(
            json.dumps(
                {
                    "metadata": {
                        "data_environments": [qp.environment],
                        "data_families": ["contract"],
                        "format": "huntbook",
                        "language": self.native_language(qp),
                    },
                    "sources": {"broken_query": {"args": {"query": self.server_error_query()}}},
                }
            ),
            encoding="utf-8",
        )
        provider = self.provider(query_paths=[tmp_path])
        try:
            with pytest.raises(HuntbookError) as info:
                provider.contract.broken_query()
        finally:
            provider.close()
        assert "contract.broken_query" in str(info.value)
        assert not isinstance(info.value, QueryTimeoutError)

    def test_unreachable_server_is_a_driver_error(self) -> None:
        provider = self.broken_provider()
        if provider is None:
            pytest.skip("no unreachable-server provider for this driver")
        try:
            with pytest.raises(DriverError):
                provider.process.host_processes(host_name="WS01", **WINDOW)
        finally:
            provider.close()


def _count_query(qp: QueryProvider) -> str:
    return "print n = 1" if "kql" in qp.driver.languages else "SELECT 1 AS n"
