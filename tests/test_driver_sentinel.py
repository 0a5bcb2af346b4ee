"""The sentinel driver: the real azure-monitor-query client (and azure-identity for client secrets) over
HTTPS against the loopback Log Analytics of tests/sentinel_server.py, whose workspaces hold
contract_frames() under Sentinel's ASIM parser names; the KQL runs for real through duckdb_kql."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import huntbook.formats  # noqa: F401 - imported before huntbook.session (an import cycle in huntbook/__init__)
from huntbook.config import Config, Secret
from huntbook.drivers.base import kql_literal
from huntbook.drivers.sentinel import DEFAULT_TABLES, PartialResultWarning, SentinelDriver, with_tables
from huntbook.errors import DriverError, QueryError, QueryTimeoutError
from huntbook.plugins import registry
from huntbook.queries import load_catalogue
from huntbook.session import QueryProvider
from huntbook.testing.drivers import CANARY_SECRET, INJECTION, WINDOW, DriverContract, expected
from huntbook.testing.loopback import LoopbackRequest, LoopbackServer
from sentinel_server import EntraApp, LogAnalyticsApp, self_signed_cert, sentinel_workspace, serve_https

pytest.importorskip("azure.monitor.query")
pytest.importorskip("duckdb_kql")

TOKEN = "la-test-token-5c2e9b"
MAIN, EAST, WEST, CUSTOM = "ws-main", "ws-east", "ws-west", "ws-custom"
T0 = WINDOW["start"]


class Azure:
    """The running loopback services."""

    def __init__(self, app: LogAnalyticsApp, server: LoopbackServer, url: str, cert: str, key: str) -> None:
        self.app, self.server, self.url, self.cert, self.key = app, server, url, cert, key

    def provider(self, **options: Any) -> QueryProvider:
        settings = {
            "workspace_id": MAIN, "token": TOKEN, "endpoint": self.url, "verify": self.cert, "backoff": 0.05,
            **options,
        }  # fmt: skip
        return QueryProvider("sentinel", config=Config(), **settings)


def _alerts() -> pd.DataFrame:
    def alert(when: datetime, uid: str, name: str, ip: str, severity: str) -> dict[str, Any]:
        return {
            "TimeGenerated": when,
            "SystemAlertId": uid,
            "AlertName": name,
            "AlertSeverity": severity,
            "ProviderName": "ASI Scheduled Alerts",
            "Status": "New",
            "Entities": f'[{{"$id":"2","Address":"{ip}","Type":"ip"}}]',
        }

    return pd.DataFrame(
        [
            alert(T0 + timedelta(hours=1), "al-1", "Password spray", "203.0.113.5", "Medium"),
            alert(T0 + timedelta(hours=2), "al-1", "Password spray", "203.0.113.5", "High"),  # an update
            alert(T0 + timedelta(hours=3), "al-2", "Rare process", "10.0.0.50", "Low"),
            alert(T0 - timedelta(days=3), "al-0", "Old alert", "203.0.113.5", "Low"),  # before WINDOW
        ]
    )


def _incidents() -> pd.DataFrame:
    rows = [
        (T0 + timedelta(hours=1), 7, "New", "Spray from 203.0.113.5"),
        (T0 + timedelta(hours=5), 7, "Closed", "Spray from 203.0.113.5"),
        (T0 + timedelta(hours=2), 8, "Active", "Rare process"),
        (T0 + timedelta(hours=4), 9, "New", "Beaconing"),
    ]
    return pd.DataFrame(
        [{"TimeGenerated": t, "IncidentNumber": n, "Status": s, "Title": title} for t, n, s, title in rows]
    )


@pytest.fixture(scope="module")
def azure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azure]:
    registry("huntbook.drivers").register("sentinel", SentinelDriver)  # until the entry point exists
    frames = DriverContract.frames()
    hand = frames["process_events"][~frames["process_events"]["EventKey"].str.startswith("b")]
    workspaces = {
        MAIN: {**sentinel_workspace(frames), "SecurityAlert": _alerts(), "SecurityIncident": _incidents()},
        EAST: sentinel_workspace({"process_events": hand.iloc[::2]}),
        WEST: sentinel_workspace({"process_events": hand.iloc[1::2]}),
        CUSTOM: {"HuntbookProcess_CL": hand},  # a custom table holding huntbook's own columns
    }
    app = LogAnalyticsApp(workspaces, token=TOKEN)
    cert, key = self_signed_cert(tmp_path_factory.mktemp("tls"))
    with serve_https(app, cert, key) as (server, url):
        yield Azure(app, server, url, cert, key)
    app.close()


class TestSentinelContract(DriverContract):
    @pytest.fixture(autouse=True)
    def _server(self, azure: Azure) -> None:
        self.azure = azure

    def provider(self, **options: Any) -> QueryProvider:
        return self.azure.provider(**options)

    def bad_auth_provider(self) -> QueryProvider:
        return self.azure.provider(token=CANARY_SECRET)

    def slow_query(self) -> str:
        return (
            "range a from 1 to 200000 step 1 | extend k = 1"
            " | join kind=inner (range b from 1 to 200000 step 1 | extend k = 1) on k | summarize count()"
        )

    def server_error_query(self) -> str:
        return "no_such_table | take 1"

    def broken_provider(self) -> QueryProvider:
        return QueryProvider(
            "sentinel", workspace_id=MAIN, token=TOKEN, endpoint="https://127.0.0.1:9", config=Config()
        )


@pytest.fixture
def qp(azure: Azure) -> Iterator[QueryProvider]:
    provider = azure.provider()
    yield provider
    provider.close()


def _keys(frame: pd.DataFrame) -> list[str]:
    return [str(k) for k in frame["EventKey"]]


# ----------------------------------------------------------------------------------------------
# Catalogue and table mapping


def test_sentinel_catalogue_has_every_local_hunt_with_the_same_parameters(qp: QueryProvider) -> None:
    local = load_catalogue("local").queries
    assert set(local) <= set(qp.list_queries())
    for name in local:
        mine = {k: (p.type, p.default, p.aliases) for k, p in qp.query_spec(name).parameters.items()}
        theirs = {k: (p.type, p.default, p.aliases) for k, p in local[name].parameters.items()}
        assert mine == theirs, name
    assert qp.query_spec("alerts.list_alerts").source.endswith("sentinel.yaml")  # SecurityAlert, not `alerts`
    assert "incidents.list_incidents" in qp.list_queries()


def test_hunts_read_the_asim_parsers(azure: Azure, qp: QueryProvider) -> None:
    got = qp.process.host_processes(host_name="WS01", **WINDOW)
    assert _keys(got) == ["p001", "p002", "p027"]
    sent = azure.app.queries[-1]["body"]["query"]
    assert sent.startswith(f"let process_events = {DEFAULT_TABLES['process_events']};\n")
    assert "_Im_Authentication" not in sent  # only the tables a query names are bound
    assert set(got["EventKey"]) == set(got["EventUid"])  # EventKey comes from ASIM's EventUid
    qp.exec_query("print n = 1")
    assert azure.app.queries[-1]["body"]["query"] == "print n = 1"


def test_tables_setting_maps_hunts_to_custom_tables(azure: Azure) -> None:
    with azure.provider(workspace_id=CUSTOM, tables={"process_events": "HuntbookProcess_CL"}) as qp:
        got = qp.process.host_processes(host_name="WS01", **WINDOW)
        assert _keys(got) == ["p001", "p002", "p027"]
    with azure.provider(workspace_id=CUSTOM, tables=False) as qp, pytest.raises(QueryError) as info:
        qp.process.host_processes(host_name="WS01", **WINDOW)
    assert "process_events" in str(info.value) and "process.host_processes" in str(info.value)


def test_with_tables_keeps_set_statements_first_and_whole_names_only() -> None:
    tables = {"dns": "_Im_Dns", "process_events": "_Im_ProcessCreate"}
    text = "set query_now = datetime(2024-03-01);\ndns | where DnsQuery has 'process_events_CL'"
    assert with_tables(text, tables) == text.replace(";\n", ";\nlet dns = _Im_Dns;\n", 1)
    assert with_tables("Mydns | take 1", tables) == "Mydns | take 1"
    assert with_tables(".show tables", tables) == ".show tables"


def test_sentinel_alert_and_incident_queries(qp: QueryProvider) -> None:
    alerts = qp.alerts.list_alerts(**WINDOW)
    assert list(alerts["EventKey"]) == ["al-1", "al-2"]
    assert list(alerts["AlertSeverity"]) == ["High", "Low"]  # the latest state of al-1
    assert list(qp.alerts.alerts_for_ip(ip_address=" 203.0.113.5 ", **WINDOW)["EventKey"]) == ["al-1"]
    assert list(qp.alerts.alerts_for_ip(ip_address="10.0.0.5", **WINDOW)["EventKey"]) == []  # not 10.0.0.50
    incidents = qp.incidents.list_incidents(**WINDOW)
    assert list(incidents["IncidentNumber"]) == [7, 8, 9]
    assert list(incidents["Status"]) == ["Closed", "Active", "New"]
    assert list(qp.incidents.list_incidents(status="NEW", **WINDOW)["IncidentNumber"]) == [9]


@pytest.mark.parametrize(
    "value", [INJECTION, "quote\"'mix", "back\\slash\\", "ünï©ødé ☃ 𝄞", "line1\nline2\ttab"]
)
def test_kql_literals_round_trip(qp: QueryProvider, value: str) -> None:
    assert qp.exec_query(f"print v = {kql_literal(value, 'str')}")["v"].iloc[0] == value


def test_column_types_follow_the_kusto_types(qp: QueryProvider) -> None:
    got = qp.exec_query(
        "print n = 7, i = toint(3), s = 'a', d = datetime(2024-03-01 10:00:00.5), ts = 90m, r = 1.5,"
        " b = true, dy = dynamic({'k': [1, 2]}), nul = long(null)"
    )
    row = got.iloc[0]
    assert str(got["n"].dtype) == "Int64" and str(got["i"].dtype) == "Int32" and row["n"] == 7
    assert row["d"] == pd.Timestamp("2024-03-01T10:00:00.5", tz="UTC") and got["d"].dt.tz is not None
    assert row["ts"] == timedelta(minutes=90) and row["r"] == 1.5 and bool(row["b"]) is True
    assert row["dy"] == {"k": [1, 2]} and pd.isna(row["nul"])


# ----------------------------------------------------------------------------------------------
# Workspaces, partial answers, timeouts, throttling


def test_multiple_workspaces_are_queried_as_one(azure: Azure) -> None:
    want = expected("process.host_processes", DriverContract.frames(), host_name="WS01")
    with azure.provider(workspace_id=EAST, additional_workspaces=[WEST]) as qp:
        got = qp.process.host_processes(host_name="WS01", **WINDOW)
    assert _keys(got) == list(want["EventKey"]) == ["p001", "p002", "p027"]
    assert set(got["TenantId"]) == {EAST, WEST}
    assert azure.app.queries[-1]["workspaces"] == [EAST, WEST]
    with azure.provider(workspace_id=EAST) as qp:
        alone = qp.process.host_processes(host_name="WS01", **WINDOW)
    assert set(_keys(alone)) < set(_keys(got)) and set(alone["TenantId"]) == {EAST}


def test_a_workspace_without_access_is_an_auth_error(azure: Azure) -> None:
    with azure.provider(additional_workspaces="ws-other") as qp, pytest.raises(DriverError) as info:
        qp.exec_query("print n = 1")
    assert "403" in str(info.value) and "ws-other" in str(info.value)


def test_partial_answer_keeps_rows_and_warns(azure: Azure, qp: QueryProvider) -> None:
    azure.app.max_rows = 10
    try:
        with pytest.warns(PartialResultWarning, match="E_QUERY_RESULT_SET_TOO_LARGE") as record:
            got = qp.process.host_processes(host_name="BULK01", **WINDOW)
    finally:
        azure.app.max_rows = 500_000
    assert "process.host_processes" in str(record[0].message)
    assert len(got) == 10 and got.attrs["partial_error"]["code"] == "PartialError"
    assert got.attrs["query_name"] == "process.host_processes"


def test_timeout_goes_to_the_server_as_prefer_wait(azure: Azure, qp: QueryProvider) -> None:
    qp.exec_query("print n = 1", timeout=42)
    assert azure.app.queries[-1]["wait"] == 42
    qp.exec_query("print n = 1", timeout=4000)
    assert azure.app.queries[-1]["wait"] == 600  # the Log Analytics maximum
    assert azure.server.requests[-1].header("prefer") == "wait=600"


def test_a_server_timeout_is_not_retried(azure: Azure, qp: QueryProvider) -> None:
    slow = "range a from 1 to 300000 step 1 | extend k = 1 | join kind=inner (range b from 1 to 300000 step 1"
    with pytest.raises(QueryTimeoutError, match="GatewayTimeout"):
        qp.exec_query(f"{slow} | extend k = 1) on k | summarize count()", timeout=1)
    assert sum("300000" in r.text for r in azure.server.requests) == 1


def test_a_retry_after_past_a_minute_is_not_waited_for(azure: Azure, qp: QueryProvider) -> None:
    azure.server.fault("long-wait-marker", "429", retry_after="120")
    started = time.monotonic()
    with pytest.raises(DriverError, match="throttled"):
        qp.exec_query("print s = 'long-wait-marker'")
    assert time.monotonic() - started < 5
    assert sum("long-wait-marker" in r.text for r in azure.server.requests) == 1


def test_the_loopback_honours_timespan(azure: Azure) -> None:
    def count(timespan: str) -> int:
        body = json.dumps({"query": "_Im_Dns | count", "timespan": timespan}).encode()
        request = LoopbackRequest(
            "POST", f"/v1/workspaces/{MAIN}/query", {}, {"authorization": f"Bearer {TOKEN}"}, body
        )
        reply = azure.app(request)
        assert reply.status == 200, reply.body
        return int(json.loads(reply.body)["tables"][0]["rows"][0][0])

    assert count("2024-03-01T00:00:00Z/2024-03-01T03:30:00Z") == 3  # d001-d003
    assert count("2024-03-01T00:00:00Z/PT2H30M") == 2
    assert count("2024-01-01T00:00:00Z/2025-01-01T00:00:00Z") == 6


def test_a_hung_server_hits_the_client_timeout(azure: Azure, qp: QueryProvider) -> None:
    azure.server.fault("hang-marker", "timeout", hang=4.0)
    started = time.monotonic()
    with pytest.raises(QueryTimeoutError, match="timeout"):
        qp.exec_query("print s = 'hang-marker'", timeout=1)
    assert time.monotonic() - started < 4  # the 1 s server wait, then a grace of 1.1 s
    assert len(qp.exec_query("print n = 1"))


def test_throttling_is_retried_after_retry_after(azure: Azure, qp: QueryProvider) -> None:
    azure.server.fault("throttle-once", "429", times=2, retry_after="1")
    started = time.monotonic()
    assert qp.exec_query("print s = 'throttle-once'")["s"].iloc[0] == "throttle-once"
    assert time.monotonic() - started >= 2
    assert sum("throttle-once" in r.text for r in azure.server.requests) == 3
    azure.server.fault("throttle-always", "429", retry_after="0")
    with pytest.raises(DriverError, match="throttled"):
        qp.exec_query("print s = 'throttle-always'")


def test_server_errors_are_retried_then_name_the_query(
    azure: Azure, qp: QueryProvider, tmp_path: Path
) -> None:
    azure.server.fault("flaky-marker", "503", times=1)
    assert len(qp.exec_query("print s = 'flaky-marker'")) == 1
    azure.server.fault("down-marker", "500")
    with pytest.raises(DriverError) as info:
        qp.exec_query("print s = 'down-marker'")
    assert "500" in str(info.value) and not isinstance(info.value, QueryError)
    assert sum("down-marker" in r.text for r in azure.server.requests) == 4  # 1 + 3 retries


# ----------------------------------------------------------------------------------------------
# Credentials and TLS


def test_client_secret_goes_through_entra_and_never_shows(
    azure: Azure, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    entra = EntraApp("tenant-1", {"client-1": "right-secret-81f2"}, TOKEN)
    with serve_https(entra, azure.cert, azure.key) as (login, login_url):
        entra.base_url = login_url
        settings = {
            "auth": "client_secret",
            "tenant_id": "tenant-1",
            "client_id": "client-1",
            "authority": login_url,
        }
        with azure.provider(**settings, token=None, client_secret="right-secret-81f2") as qp:
            assert _keys(qp.process.host_processes(host_name="WS03", **WINDOW))
        assert entra.issued == 1
        with azure.provider(**settings, token=None, client_secret=CANARY_SECRET) as qp:
            with pytest.raises(DriverError) as info:
                qp.process.host_processes(host_name="WS03", **WINDOW)
            assert CANARY_SECRET not in repr(qp.driver) and CANARY_SECRET not in str(qp.driver.settings)
        assert any(CANARY_SECRET in r.body.decode() for r in login.requests)  # it was really sent
    assert "AADSTS7000215" in str(info.value) and "authentication failed" in str(info.value)
    assert CANARY_SECRET not in str(info.value) and CANARY_SECRET not in caplog.text


def test_token_from_a_secret_reference(
    azure: Azure, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("HB_TEST_LA_TOKEN", TOKEN)
    connection = {"workspace_id": MAIN, "endpoint": azure.url, "verify": azure.cert}
    config = Config(connections={"sentinel": {**connection, "token": Secret("env:HB_TEST_LA_TOKEN")}})
    with QueryProvider("sentinel", config=config) as qp:
        assert _keys(qp.process.host_processes(host_name="WS01", **WINDOW)) == ["p001", "p002", "p027"]
        assert TOKEN not in repr(qp.driver) and TOKEN not in str(qp.driver.settings)
    assert TOKEN not in caplog.text


@pytest.mark.filterwarnings("ignore:Unverified HTTPS request")
def test_tls_verification_is_on_unless_turned_off_explicitly(
    azure: Azure, caplog: pytest.LogCaptureFixture
) -> None:
    with azure.provider(verify=None) as qp, pytest.raises(DriverError, match="CERTIFICATE_VERIFY_FAILED"):
        qp.exec_query("print n = 1")
    caplog.set_level(logging.WARNING)
    with azure.provider(verify=False) as qp:
        assert len(qp.exec_query("print n = 1")) == 1
    assert "TLS certificate verification is turned OFF" in caplog.text


def test_settings_errors_are_clear() -> None:
    with pytest.raises(DriverError, match="needs a workspace_id"):
        SentinelDriver().connect(token="t")
    with pytest.raises(DriverError, match="unknown sentinel setting"):
        SentinelDriver().connect(workspace_id="w", token="t", colour="blue")
    with pytest.raises(DriverError, match="unknown sentinel auth"):
        SentinelDriver().connect(workspace_id="w", auth="kerberos")
    with pytest.raises(DriverError, match="needs tenant_id, client_id"):
        SentinelDriver().connect(workspace_id="w", auth="client_secret", client_secret=CANARY_SECRET)
    with pytest.raises(DriverError, match="not a mapping"):
        SentinelDriver().connect(workspace_id="w", token="t", tables="process_events")
    with pytest.raises(DriverError, match="neither true, false nor a CA bundle"):
        SentinelDriver().connect(workspace_id="w", token="t", verify=3)


def test_a_malformed_answer_is_a_driver_error(azure: Azure, qp: QueryProvider) -> None:
    azure.server.fault("garbled-marker", "malformed")
    with pytest.raises(DriverError, match="not a Log Analytics result") as info:
        qp.exec_query("print s = 'garbled-marker'")
    assert "ad hoc kql query" in str(info.value)


def test_reconnecting_keeps_the_settings_but_not_the_secret(azure: Azure) -> None:
    driver = SentinelDriver()
    driver.connect(
        workspace_id=CUSTOM, token=TOKEN, endpoint=azure.url, verify=azure.cert, tables={"dns": None}
    )
    assert "dns" not in driver.tables and TOKEN not in str(driver.settings)
    driver.close()
    driver.connect(token=TOKEN)  # as QueryProvider does: the secret comes back from the config
    assert "dns" not in driver.tables and driver.workspace_id == CUSTOM
    assert len(driver.execute("HuntbookProcess_CL | take 2", timeout=30)) == 2
    driver.close()
