"""The splunk driver with the real splunk-sdk against the loopback Splunk (tests/splunk_server.py):
catalogue hunts on the contract data, literal quoting, paging past the 100-row default, job
lifecycle, timeouts with cancellation, auth (token, session key, user/password), TLS, saved
searches, server errors and the canary secret."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from huntbook.config import Config
from huntbook.drivers.splunk import SplunkDriver, spl_literal
from huntbook.errors import DriverError, ParameterError, QueryError, QueryTimeoutError
from huntbook.plugins import registry
from huntbook.session import QueryProvider
from huntbook.testing.drivers import (
    BULK_HOST,
    CANARY_SECRET,
    COMMON_HUNTS,
    HOSTILE_PATTERNS,
    INJECTION,
    WINDOW,
    DriverContract,
    comparable,
    contract_frames,
    expected,
    write_store,
)
from huntbook.testing.loopback import LoopbackServer, self_signed_cert, serve_tls
from splunk_server import SplunkServer, splunk_events

pytest.importorskip("splunklib", reason="needs the 'splunk' extra (splunk-sdk)")
TOKEN = "splunk-token-5f2e9a"
USER, PASSWORD = "hunter", "pw-9c41d0e7"
PAGE = 4_000
FAST = {"poll_interval": 0.02, "page_size": PAGE, "request_timeout": 10}

registry("huntbook.drivers").register("splunk", SplunkDriver)  # until the entry point is declared


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    """The contract's hand-written rows (its 25,000 bulk rows live in the ``bulk`` server)."""
    return contract_frames(rows=0)


@pytest.fixture(scope="module")
def bulk_state() -> SplunkServer:
    """The contract data with its 25,000 bulk rows (the DriverContract suite runs on it too)."""
    splunk = SplunkServer(token=TOKEN)
    full = DriverContract.frames()
    for table in ("process_events", "authentication", "network_sessions", "dns"):
        splunk.add_events(splunk_events(table, full[table]))
    splunk.slow["hb_slow_marker"] = 30.0
    return splunk


@pytest.fixture(scope="module")
def bulk(bulk_state: SplunkServer) -> Iterator[LoopbackServer]:
    with LoopbackServer(bulk_state.app) as server:
        yield server


@pytest.fixture(scope="module")
def state(frames: dict[str, pd.DataFrame]) -> SplunkServer:
    splunk = SplunkServer(token=TOKEN, username=USER, password=PASSWORD)
    for table in ("process_events", "authentication", "network_sessions", "dns"):
        splunk.add_events(splunk_events(table, frames[table]))
    splunk.add_saved_search(
        "Encoded PowerShell (last week)",
        'search index=wineventlog EventCode=4688 process="*-enc*" | sort 0 _time'
        " | table _time host process EventKey",
        description="PowerShell with -enc",
        earliest="1709251200",
        latest="1709856000",
    )
    splunk.slow["hb_slow_marker"] = 30.0
    splunk.failing["hb_failing_lookup"] = (
        "Error in 'lookup' command: The lookup table 'threats' does not exist."
    )
    return splunk


@pytest.fixture(scope="module")
def running(state: SplunkServer) -> Iterator[LoopbackServer]:
    with LoopbackServer(state.app) as server:
        yield server


@pytest.fixture()
def server(running: LoopbackServer) -> Iterator[LoopbackServer]:
    running.clear()
    yield running
    running.clear()


def provider(server: LoopbackServer, **options: Any) -> QueryProvider:
    settings = {"url": server.url, "token": TOKEN, **FAST, **options}
    return QueryProvider("splunk", config=Config(), **settings)


def keys(frame: pd.DataFrame) -> list[str]:
    return frame["EventKey"].tolist() if len(frame) else []


# ---------------------------------------------------------------------------------------------
# Literals


def test_spl_literal_escapes_quotes_and_backslashes() -> None:
    assert spl_literal('a"b\\c', "str") == '"a\\"b\\\\c"'
    assert spl_literal('x" OR host="*', "str", '"') == 'x\\" OR host=\\"*'
    assert spl_literal(["a", 'b"'], "list") == '"a", "b\\""'
    assert spl_literal(datetime(2024, 3, 1, tzinfo=UTC), "datetime") == "1709251200"
    assert spl_literal(datetime(2024, 3, 1, 0, 0, 0, 500000, tzinfo=UTC), "datetime") == "1709251200.5"
    assert spl_literal(timedelta(hours=1), "timespan") == "3600"
    assert spl_literal(None, "str") == '""'
    assert spl_literal(7, "int") == "7"
    with pytest.raises(QueryError, match="cannot place a value"):
        spl_literal("x", "str", "'")
    with pytest.raises(ParameterError):
        spl_literal(math.inf, "float")


# ---------------------------------------------------------------------------------------------
# Catalogue hunts on the contract data


def test_catalogue_offers_the_common_hunts(server: LoopbackServer) -> None:
    qp = provider(server)
    assert set(COMMON_HUNTS) <= set(qp.list_queries())
    assert not [e for e in qp.catalogue_errors if "skipped" not in str(e)]
    text = qp.render("process.host_processes", host_name='WS"01', **WINDOW)
    assert text.startswith('search index="wineventlog" EventCode=4688 earliest=1709251200 latest=1709856000')
    assert 'lower("WS\\"01")' in text
    assert server.requests == []  # listing and rendering touch no network


@pytest.mark.parametrize(
    ("hunt", "params"),
    [
        ("process.host_processes", {"host_name": "ws01"}),
        ("process.host_processes", {"host_name": "WS01.corp.example"}),
        ("process.host_processes", {"host_name": INJECTION}),
        ("authentication.failed_logons", {}),
        ("authentication.failed_logons", {"host_name": "ws01"}),
        ("authentication.failed_logons", {"host_name": INJECTION}),
        ("authentication.logons_from_ip", {"ip_address": "10.0.0.7"}),
        ("authentication.logons_from_ip", {"ip_address": " 2001:db8::5 "}),
        ("network.ip_connections", {"ip_address": "203.0.113.80"}),
        ("network.ip_connections", {"ip_address": INJECTION}),
    ],
)
def test_hunts_return_the_expected_rows(
    server: LoopbackServer, frames: dict[str, pd.DataFrame], hunt: str, params: dict[str, Any]
) -> None:
    got = provider(server).run(hunt, **params, **WINDOW)
    want = expected(hunt, frames, **params)
    assert keys(got) == want["EventKey"].tolist()
    assert len(got) > 0 or hunt.endswith("failed_logons")


@pytest.mark.parametrize("pattern", HOSTILE_PATTERNS)
def test_command_line_search_matches_hostile_text_literally(
    server: LoopbackServer, frames: dict[str, pd.DataFrame], pattern: str
) -> None:
    got = provider(server).process.command_line_search(pattern=pattern, **WINDOW)
    want = expected("process.command_line_search", frames, pattern=pattern)
    assert keys(got) == want["EventKey"].tolist()
    assert len(got) >= 1


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory, frames: dict[str, pd.DataFrame]) -> QueryProvider:
    """The same frames in a LocalStore: the reference for hunts expected() does not cover."""
    return QueryProvider(
        "local", store=write_store(tmp_path_factory.mktemp("store"), frames), config=Config()
    )


def test_password_spray_aggregates_like_the_local_store(server: LoopbackServer, local: QueryProvider) -> None:
    got = provider(server).authentication.password_spray(min_accounts=3, **WINDOW)
    want = local.authentication.password_spray(min_accounts=3, **WINDOW)
    columns = ["Source", "SourceType", "DistinctAccounts", "Failures", "FirstSeen", "LastSeen", "Accounts"]
    assert comparable(got, columns) == comparable(want, columns)
    assert {"203.0.113.5", "198.51.100.7", "KALI"} <= set(got["Source"])
    assert isinstance(got["FirstSeen"].dtype, pd.DatetimeTZDtype)


@pytest.mark.parametrize(
    ("hunt", "params"),
    [
        ("process.encoded_commands", {}),
        ("process.encoded_commands", {"host_name": "ws02"}),
        ("process.account_processes", {"account_name": "CORP\\alice"}),
        ("process.account_processes", {"account_name": "alice"}),
        ("process.account_processes", {"account_name": INJECTION}),
        ("authentication.account_logons", {"account_name": "alice@corp.example"}),
        ("authentication.host_logons", {"host_name": "WS01"}),
        ("dns.domain_queries", {"domain": "example.com"}),
        ("dns.domain_queries", {"domain": "EVIL.example.com."}),
        ("dns.host_dns", {"host_name": "ws03.corp.example"}),
        ("network.host_connections", {"host_name": "WS01"}),
    ],
)
def test_hunts_return_the_local_stores_rows(
    server: LoopbackServer, local: QueryProvider, hunt: str, params: dict[str, Any]
) -> None:
    got = provider(server).run(hunt, **params, **WINDOW)
    want = local.run(hunt, **params, **WINDOW)
    assert keys(got) == keys(want)


def test_aggregating_hunts_run(server: LoopbackServer, local: QueryProvider) -> None:
    qp = provider(server)
    brute = qp.authentication.brute_force(**WINDOW)
    assert brute.loc[0, ["Account", "Source", "Failures", "Successes"]].tolist() == [
        "corp\\admin", "198.51.100.9", 12, 1,
    ]  # fmt: skip
    rare = qp.process.rare_processes(max_count=1, **WINDOW)
    assert "inject.exe" in set(rare["process_path"]) and (rare["Count"] == 1).all()
    top = qp.network.top_destinations(**WINDOW)
    reference = local.network.top_destinations(**WINDOW)
    assert top["dest_ip"].tolist() == reference["DstIpAddr"].tolist()  # 10.0.0.1, 192.168.1.1: internal
    assert top["TotalBytes"].tolist() == reference["TotalBytes"].tolist()


def test_result_types(server: LoopbackServer) -> None:
    got = provider(server).process.host_processes(host_name="WS03", **WINDOW)
    assert isinstance(got["_time"].dtype, pd.DatetimeTZDtype)
    assert str(got["_time"].dt.tz) == "UTC"
    assert pd.api.types.is_integer_dtype(got["EventCode"])
    assert got["process_id"].tolist()[0] == "0x1f4"  # hex text stays text


def test_time_window_is_half_open(server: LoopbackServer, frames: dict[str, pd.DataFrame]) -> None:
    qp = provider(server)
    everything = qp.process.host_processes(host_name="WS01", start="2024-01-01", end="2024-04-01")
    assert {"p025", "p026"} <= set(keys(everything))
    window = qp.process.host_processes(host_name="WS01", **WINDOW)
    assert not {"p025", "p026"} & set(keys(window))
    day = qp.process.host_processes(
        host_name="WS01", start="2024-03-02T00:00:00Z", end="2024-03-03T00:00:00Z"
    )
    assert keys(day) == ["p002"]


# ---------------------------------------------------------------------------------------------
# Paging, export, API versions


def test_25000_rows_come_back_whole_in_pages(bulk: LoopbackServer, bulk_state: SplunkServer) -> None:
    before = set(bulk_state.jobs)
    got = provider(bulk).process.host_processes(host_name=BULK_HOST, **WINDOW)
    assert len(got) == 25_000 and got["EventKey"].is_unique
    assert got["_time"].is_monotonic_increasing
    (job,) = [bulk_state.jobs[sid] for sid in set(bulk_state.jobs) - before]
    assert job.pages == [(offset, PAGE) for offset in range(0, 25_000, PAGE)]
    assert len(job.pages) == math.ceil(25_000 / PAGE)


def test_export_mode_streams_the_same_rows(
    server: LoopbackServer, bulk: LoopbackServer, frames: dict[str, pd.DataFrame]
) -> None:
    got = provider(bulk, mode="export").process.host_processes(host_name=BULK_HOST, **WINDOW)
    assert len(got) == 25_000 and got["EventKey"].is_unique
    assert any(r.path.endswith("/jobs/export") for r in bulk.requests)
    small = provider(server, mode="export").process.host_processes(host_name="ws01", **WINDOW)
    assert keys(small) == expected("process.host_processes", frames, host_name="ws01")["EventKey"].tolist()


def test_splunk_8_uses_the_v1_endpoints(frames: dict[str, pd.DataFrame]) -> None:
    old = SplunkServer(token=TOKEN, version="8.2.12")
    old.add_events(splunk_events("dns", frames["dns"]))
    with LoopbackServer(old.app) as server:
        got = provider(server).dns.host_dns(host_name="WS03", **WINDOW)
        paths = [(r.method, r.path.rstrip("/")) for r in server.requests]
    assert keys(got) == ["d004", "d005"]
    assert ("POST", "/services/search/jobs") in paths
    assert any(m == "GET" and p.endswith("/results") and "/v2/" not in p for m, p in paths)


# ---------------------------------------------------------------------------------------------
# Jobs: lifecycle, failures, timeouts


def test_job_is_polled_through_its_states(server: LoopbackServer, state: SplunkServer) -> None:
    provider(server).exec_query('search index=zeek sourcetype="bro:dns:json" | head 1')
    polls = [
        r for r in server.requests if r.method == "GET" and "/jobs/" in r.path and "results" not in r.path
    ]
    assert len(polls) >= 2  # QUEUED/PARSING/RUNNING first, then DONE


def test_timeout_cancels_the_job_on_the_server(server: LoopbackServer, state: SplunkServer) -> None:
    qp = provider(server)
    started = time.monotonic()
    with pytest.raises(QueryTimeoutError, match="timeout") as caught:
        qp.exec_query("search index=slow hb_slow_marker", timeout=1)
    assert time.monotonic() - started < 3
    assert "ad hoc spl query" in str(caught.value)
    cancelled = [j for j in state.cancelled.values() if "hb_slow_marker" in j.search]
    assert cancelled and cancelled[-1].cancelled_at == "RUNNING"
    assert any(r.path.endswith("/control") and r.form().get("action") == "cancel" for r in server.requests)


def test_a_failed_job_raises_with_splunks_message(server: LoopbackServer) -> None:
    with pytest.raises(QueryError, match="lookup table 'threats' does not exist"):
        provider(server).exec_query("search index=nothing hb_failing_lookup")


def test_spl_the_server_rejects_is_a_query_error(server: LoopbackServer) -> None:
    with pytest.raises(QueryError, match="Unknown search command 'nosuchcommand'") as caught:
        provider(server).exec_query("| nosuchcommand")
    assert "Splunk rejected the search" in str(caught.value)


def test_server_error_names_the_query(server: LoopbackServer) -> None:
    server.fault("/jobs", "503")
    with pytest.raises(DriverError, match="HTTP 503") as caught:
        provider(server).process.host_processes(host_name="WS01", **WINDOW)
    assert "process.host_processes" in str(caught.value)


def test_unreachable_server_is_a_driver_error() -> None:
    with LoopbackServer(lambda request: None) as gone:  # type: ignore[arg-type, return-value]
        url = gone.url
    with pytest.raises(DriverError, match="cannot reach Splunk"):
        QueryProvider("splunk", url=url, token=TOKEN, config=Config()).connect()


# ---------------------------------------------------------------------------------------------
# Authentication and secrets


def test_user_and_password_log_in_for_a_session_key(server: LoopbackServer, state: SplunkServer) -> None:
    qp = QueryProvider("splunk", url=server.url, username=USER, password=PASSWORD, config=Config(), **FAST)
    got = qp.dns.host_dns(host_name="WS03", **WINDOW)
    assert keys(got) == ["d004", "d005"]
    login = [r for r in server.requests if r.path == "/services/auth/login"]
    assert len(login) == 1 and login[0].form()["username"] == USER
    later = [r for r in server.requests if r.path != "/services/auth/login"]
    assert later and all((r.header("authorization") or "").split(" ")[1] in state.sessions for r in later)
    assert all((r.header("authorization") or "").startswith("Splunk ") for r in later)


def test_token_is_sent_as_bearer_and_session_keys_as_splunk(server: LoopbackServer) -> None:
    import httpx

    provider(server).connect()
    assert server.requests and all(r.header("authorization") == f"Bearer {TOKEN}" for r in server.requests)
    answer = httpx.post(f"{server.url}/services/auth/login", data={"username": USER, "password": PASSWORD})
    key = answer.text.split("<sessionKey>")[1].split("<")[0]
    server.clear()
    QueryProvider("splunk", url=server.url, session_key=key, config=Config()).connect()
    assert server.requests and all(r.header("authorization") == f"Splunk {key}" for r in server.requests)


@pytest.mark.parametrize("how", ["token", "password"])
def test_bad_credentials_fail_clearly_without_the_secret(
    server: LoopbackServer, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = {"token": CANARY_SECRET} if how == "token" else {"username": USER, "password": CANARY_SECRET}
    qp = QueryProvider("splunk", url=server.url, config=Config(), **secret)
    with pytest.raises(DriverError, match="authentication failed") as caught:
        qp.process.host_processes(host_name="WS01", **WINDOW)
    assert "token" in (caught.value.hint or "")
    assert CANARY_SECRET not in str(caught.value)
    assert CANARY_SECRET not in repr(caught.value.__cause__) if caught.value.__cause__ else True
    assert CANARY_SECRET not in caplog.text
    assert CANARY_SECRET not in repr(qp.driver) and CANARY_SECRET not in repr(qp)


def test_missing_credentials_and_unknown_settings(server: LoopbackServer) -> None:
    with pytest.raises(DriverError, match="no credentials"):
        QueryProvider("splunk", url=server.url, config=Config()).connect()
    with pytest.raises(DriverError, match="unknown splunk driver setting"):
        QueryProvider("splunk", url=server.url, token=TOKEN, tokn="x", config=Config()).connect()
    assert server.requests == []


# ---------------------------------------------------------------------------------------------
# TLS


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory, state: SplunkServer) -> Iterator[tuple[str, str]]:
    cert, key = self_signed_cert(tmp_path_factory.mktemp("tls"))
    with LoopbackServer(state.app) as server:
        yield serve_tls(server, cert, key), cert


def test_tls_is_verified_by_default(tls: tuple[str, str], caplog: pytest.LogCaptureFixture) -> None:
    url, cert = tls
    with pytest.raises(DriverError, match="certificate verification failed") as caught:
        QueryProvider("splunk", url=url, token=TOKEN, config=Config()).connect()
    assert "ca_file" in (caught.value.hint or "")
    qp = QueryProvider("splunk", url=url, token=TOKEN, ca_file=cert, config=Config(), **FAST)
    assert keys(qp.dns.host_dns(host_name="WS03", **WINDOW)) == ["d004", "d005"]
    assert "verification is turned OFF" not in caplog.text


def test_turning_tls_verification_off_is_logged(
    tls: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    url, _ = tls
    qp = QueryProvider("splunk", url=url, token=TOKEN, verify=False, config=Config(), **FAST)
    with caplog.at_level(logging.WARNING, logger="huntbook"):
        assert keys(qp.dns.host_dns(host_name="WS03", **WINDOW)) == ["d004", "d005"]
    assert "TLS certificate verification is turned OFF" in caplog.text


# ---------------------------------------------------------------------------------------------
# Saved searches


def test_saved_searches_join_the_catalogue_once_connected(server: LoopbackServer) -> None:
    qp = provider(server)
    assert "saved.encoded_powershell_last_week" not in qp.list_queries()
    qp.connect()
    assert "saved.encoded_powershell_last_week" in qp.list_queries()
    spec = qp.query_spec("saved.encoded_powershell_last_week")
    assert spec.description == "PowerShell with -enc"
    assert 'earliest="1709251200" latest="1709856000"' in qp.render("saved.encoded_powershell_last_week")
    got = qp.saved.encoded_powershell_last_week()
    assert keys(got) == ["p001"]  # p025 (-enc OLD) is before the saved search's window


def test_savedsearch_command_runs_a_saved_search(server: LoopbackServer) -> None:
    got = provider(server).exec_query('| savedsearch "Encoded PowerShell (last week)"')
    assert keys(got) == ["p001"]


def test_driver_reads_catalogue_files_written_for_splunk(server: LoopbackServer, tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text(
        "metadata: {data_environments: [Splunk], data_families: [custom], format: huntbook}\n"
        "sources:\n"
        "  by_code:\n"
        "    args: {query: 'search index=wineventlog EventCode={code} | stats count by EventCode'}\n"
        "    parameters: {code: {type: int}}\n",
        encoding="utf-8",
    )
    qp = provider(server, query_paths=[tmp_path])
    got = qp.custom.by_code(code=4689)
    assert got.to_dict("records") == [{"EventCode": 4689, "count": 1}]


# ---------------------------------------------------------------------------------------------
# The shared driver contract


class TestSplunkContract(DriverContract):
    """huntbook.testing.drivers' contract, on the loopback Splunk holding the contract frames."""

    @pytest.fixture(autouse=True)
    def _server(self, bulk: LoopbackServer) -> None:
        self.url = bulk.url

    def provider(self, **options: Any) -> QueryProvider:
        return QueryProvider("splunk", url=self.url, token=TOKEN, config=Config(), **FAST, **options)

    def bad_auth_provider(self) -> QueryProvider:
        return QueryProvider("splunk", url=self.url, token=CANARY_SECRET, config=Config(), **FAST)

    def broken_provider(self) -> QueryProvider:
        with LoopbackServer(lambda request: None) as gone:  # type: ignore[arg-type, return-value]
            url = gone.url
        return QueryProvider("splunk", url=url, token=TOKEN, config=Config(), **FAST)

    def slow_query(self) -> str:
        return "search index=slow hb_slow_marker"

    def server_error_query(self) -> str:
        return "| nosuchcommand"

    def count_query(self, qp: QueryProvider) -> str:
        return "search index=zeek | head 1"
