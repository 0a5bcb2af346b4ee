"""The elastic driver with the real elasticsearch client against the loopback Elasticsearch
(tests/elastic_server.py): ES|QL, query DSL and Lucene hunts on the contract data, literal quoting,
point-in-time paging past the 10,000-hit window, timeouts, auth (API key, basic), TLS, the product
check, server errors and the canary secret."""

from __future__ import annotations

import base64
import logging
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from elastic_server import ElasticServer, ecs_documents
from huntbook.config import Config
from huntbook.drivers.elastic import ElasticDriver, ElasticWarning, dsl_literal, esql_literal, lucene_literal
from huntbook.errors import DriverError, QueryError, QueryTimeoutError
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
from huntbook.testing.loopback import LoopbackServer, Reply
from splunk_server import self_signed_cert, serve_tls

pytest.importorskip("elasticsearch", reason="needs the 'elastic' extra (elasticsearch)")
KEY = ("hunt-key-id", "hunt-api-key-6b1c")
ENCODED = base64.b64encode(":".join(KEY).encode()).decode()
USER, PASSWORD = "elastic-hunter", "pw-2e7f99"
PAGE = 5_000
HASH = "ab" * 32
FAST = {"page_size": PAGE, "request_timeout": 10, "max_retries": 2}

registry("huntbook.drivers").register("elastic", ElasticDriver)  # until the entry point is declared


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    """The contract's hand-written rows (its 25,000 bulk rows live in the ``bulk`` server)."""
    return contract_frames(rows=0)


@pytest.fixture(scope="module")
def bulk_state() -> ElasticServer:
    es = ElasticServer(api_key=KEY)
    es.load(ecs_documents("process_events", DriverContract.frames()["process_events"]))
    return es


@pytest.fixture(scope="module")
def bulk(bulk_state: ElasticServer) -> Iterator[LoopbackServer]:
    with LoopbackServer(bulk_state.app) as server:
        yield server


@pytest.fixture(scope="module")
def state(frames: dict[str, pd.DataFrame]) -> ElasticServer:
    es = ElasticServer(api_key=KEY, username=USER, password=PASSWORD)
    for table in ("process_events", "authentication", "network_sessions", "dns"):
        es.load(ecs_documents(table, frames[table]))
    hashed = {"@timestamp": "2024-03-02T00:00:00.000Z", "event": {"id": "hash001", "category": ["process"]},
              "host": {"name": "WS09"}, "process": {"hash": {"sha256": HASH}}}  # fmt: skip
    es.index("logs-system.security-default", "hash001", hashed)
    es.slow["hb_slow_marker"] = 5.0
    return es


@pytest.fixture(scope="module")
def running(state: ElasticServer) -> Iterator[LoopbackServer]:
    with LoopbackServer(state.app) as server:
        yield server


@pytest.fixture()
def server(running: LoopbackServer) -> Iterator[LoopbackServer]:
    running.clear()
    yield running
    running.clear()


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory, frames: dict[str, pd.DataFrame]) -> QueryProvider:
    """The same frames in a LocalStore: the reference for hunts expected() does not cover."""
    return QueryProvider(
        "local", store=write_store(tmp_path_factory.mktemp("store"), frames), config=Config()
    )


def provider(server: LoopbackServer, **options: Any) -> QueryProvider:
    settings = {"url": server.url, "api_key": ENCODED, **FAST, **options}
    return QueryProvider("elastic", config=Config(), **settings)


def keys(frame: pd.DataFrame) -> list[str]:
    return frame["event.id"].tolist() if len(frame) else []


def local_keys(frame: pd.DataFrame) -> list[str]:
    return frame["EventKey"].tolist() if len(frame) else []


# ---------------------------------------------------------------------------------------------
# Literals


def test_esql_literals() -> None:
    assert esql_literal('a"b\\c\nd', "str") == '"a\\"b\\\\c\\nd"'
    assert (
        esql_literal(datetime(2024, 3, 1, tzinfo=UTC), "datetime")
        == 'TO_DATETIME("2024-03-01T00:00:00.000Z")'
    )
    assert esql_literal(timedelta(hours=1), "timespan") == "3600 seconds"
    assert esql_literal(["a", 'b"'], "list") == '"a", "b\\""'
    assert esql_literal(None, "str") == "null"
    assert esql_literal('x"y', "str", '"') == 'x\\"y'


def test_dsl_and_lucene_literals() -> None:
    assert dsl_literal('a"b\\c', "str") == '"a\\"b\\\\c"'
    assert dsl_literal(datetime(2024, 3, 1, tzinfo=UTC), "datetime") == '"2024-03-01T00:00:00.000Z"'
    assert dsl_literal(["x", 1], "list") == '"x", 1'
    assert dsl_literal('He said "hi"', "str", '"') == 'He said \\"hi\\"'
    assert dsl_literal(None, "str") == "null" and dsl_literal(3, "int") == "3"
    assert lucene_literal('a* OR b:"c"', "str") == '"a* OR b:\\"c\\""'
    assert lucene_literal(["a", "b"], "list") == '("a" OR "b")'
    assert lucene_literal(5, "int") == "5"
    with pytest.raises(QueryError, match="cannot place"):
        esql_literal("x", "str", "'")


# ---------------------------------------------------------------------------------------------
# Catalogue hunts on the contract data


def test_catalogue_offers_the_common_hunts_in_three_languages(server: LoopbackServer) -> None:
    qp = provider(server)
    assert set(COMMON_HUNTS) <= set(qp.list_queries())
    languages = {qp.query_spec(name).language for name in qp.list_queries()}
    assert languages == {"esql", "dsl", "lucene"}
    text = qp.render("process.host_processes", host_name='WS"01', **WINDOW)
    assert '"value": "WS\\"01"' in text and '"value": "WS\\"01."' in text
    assert '"gte": "2024-03-01T00:00:00.000Z"' in text
    assert server.requests == []


@pytest.mark.parametrize(
    ("hunt", "params"),
    [
        ("process.host_processes", {"host_name": "ws01"}),
        ("process.host_processes", {"host_name": INJECTION}),
        ("authentication.failed_logons", {}),
        ("authentication.failed_logons", {"host_name": "WS01.corp.example"}),
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
    assert keys(got) == expected(hunt, frames, **params)["EventKey"].tolist()


def test_an_fqdn_matches_only_itself_in_dsl_host_hunts(
    server: LoopbackServer, frames: dict[str, pd.DataFrame]
) -> None:
    """The query DSL cannot cut the given name at its first dot: 'WS01.corp.example' does not find
    rows logged as plain 'ws01' (the ES|QL hunts and the other drivers do)."""
    got = provider(server).process.host_processes(host_name="WS01.corp.example", **WINDOW)
    want = expected("process.host_processes", frames, host_name="WS01.corp.example")
    assert set(keys(got)) == set(want["EventKey"]) - set(want.loc[want["DvcHostname"] == "ws01", "EventKey"])
    assert keys(got)


def test_row_hunts_name_the_document(server: LoopbackServer) -> None:
    qp = provider(server)
    for rows in (
        qp.process.command_line_search(pattern="whoami", **WINDOW),
        qp.process.host_processes(host_name="WS03", **WINDOW),
    ):
        assert len(rows) and (rows["_id"] == rows["event.id"]).all()


@pytest.mark.parametrize("pattern", HOSTILE_PATTERNS)
def test_command_line_search_matches_hostile_text_literally(
    server: LoopbackServer, frames: dict[str, pd.DataFrame], pattern: str
) -> None:
    got = provider(server).process.command_line_search(pattern=pattern, **WINDOW)
    assert keys(got) == expected("process.command_line_search", frames, pattern=pattern)["EventKey"].tolist()
    assert keys(got)


def test_password_spray_aggregates_like_the_local_store(server: LoopbackServer, local: QueryProvider) -> None:
    got = provider(server).authentication.password_spray(min_accounts=3, **WINDOW)
    want = local.authentication.password_spray(min_accounts=3, **WINDOW)
    columns = ["Source", "SourceType", "DistinctAccounts", "Failures", "FirstSeen", "LastSeen", "Accounts"]
    assert comparable(got, columns) == comparable(want, columns)
    assert isinstance(got["FirstSeen"].dtype, pd.DatetimeTZDtype)
    assert pd.api.types.is_integer_dtype(got["DistinctAccounts"])


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
        ("dns.host_dns", {"host_name": "ws01"}),
        ("network.host_connections", {"host_name": "WS01"}),
    ],
)
def test_hunts_return_the_local_stores_rows(
    server: LoopbackServer, local: QueryProvider, hunt: str, params: dict[str, Any]
) -> None:
    got = provider(server).run(hunt, **params, **WINDOW)
    assert keys(got) == local_keys(local.run(hunt, **params, **WINDOW))


def test_aggregating_hunts_run(server: LoopbackServer, local: QueryProvider) -> None:
    qp = provider(server)
    brute = qp.authentication.brute_force(**WINDOW)
    assert brute.loc[0, ["Account", "Source", "Failures", "Successes"]].tolist() == [
        "corp\\admin", "198.51.100.9", 12, 1,
    ]  # fmt: skip
    top = qp.network.top_destinations(**WINDOW)
    reference = local.network.top_destinations(**WINDOW)
    assert top["destination.ip"].tolist() == reference["DstIpAddr"].tolist()
    assert top["TotalBytes"].tolist() == reference["TotalBytes"].tolist()
    rare = qp.process.rare_processes(max_count=1, **WINDOW)
    assert "inject.exe" in set(rare["executable"]) and (rare["Count"] == 1).all()


def test_lucene_and_result_types(server: LoopbackServer, frames: dict[str, pd.DataFrame]) -> None:
    qp = provider(server)
    got = qp.process.processes_by_hash(file_hash=HASH, **WINDOW)
    assert keys(got) == ["hash001"]
    assert keys(qp.process.processes_by_hash(file_hash="cd" * 32, **WINDOW)) == []
    rows = qp.exec_query('event.category:process AND host.name:"WS03"', language="lucene")
    process = frames["process_events"]
    assert sorted(rows["event.id"]) == sorted(process.loc[process["DvcHostname"] == "WS03", "EventKey"])
    assert isinstance(rows["@timestamp"].dtype, pd.DatetimeTZDtype)
    assert {"_id", "_index", "event.id", "process.command_line"} <= set(rows.columns)
    frame = qp.exec_query(
        'FROM logs-* | WHERE host.name == "WS03" AND event.category == "process"'
        " | STATS n = COUNT(*) BY event.code | LIMIT 10"
    )
    assert frame.to_dict("records") == [{"n": len(rows), "event.code": "4688"}]
    assert pd.api.types.is_integer_dtype(frame["n"])


def test_time_window_is_half_open(server: LoopbackServer) -> None:
    qp = provider(server)
    everything = qp.process.host_processes(host_name="WS01", start="2024-01-01", end="2024-04-01")
    assert {"p025", "p026"} <= set(keys(everything))
    assert not {"p025", "p026"} & set(keys(qp.process.host_processes(host_name="WS01", **WINDOW)))
    day = qp.process.command_line_search(
        pattern="whoami", start="2024-03-02T00:00:00Z", end="2024-03-03T00:00:00Z"
    )
    assert keys(day) == ["p002"]


# ---------------------------------------------------------------------------------------------
# Paging


def test_25000_hits_come_back_whole_with_a_point_in_time(
    bulk: LoopbackServer, bulk_state: ElasticServer
) -> None:
    bulk.clear()
    before = len(bulk_state.searches)
    got = provider(bulk).process.host_processes(host_name=BULK_HOST, **WINDOW)
    assert len(got) == 25_000 and got["event.id"].is_unique
    assert got["@timestamp"].is_monotonic_increasing
    bodies = bulk_state.searches[before:]
    assert len(bodies) == 25_000 // PAGE + 1  # the last, short page says the end is reached
    assert all("pit" in b and b["size"] == PAGE and "from" not in b for b in bodies)
    assert "search_after" not in bodies[0] and all("search_after" in b for b in bodies[1:])
    opened = [r for r in bulk.requests if r.path.endswith("/_pit") and r.method == "POST"]
    closed = [r for r in bulk.requests if r.path == "/_pit" and r.method == "DELETE"]
    assert len(opened) == len(closed) == 1 and not bulk_state.pits


def test_the_server_enforces_the_result_window(server: LoopbackServer) -> None:
    from elasticsearch import BadRequestError, Elasticsearch

    client = Elasticsearch(server.url, api_key=ENCODED)
    with pytest.raises(BadRequestError, match="Result window is too large"):
        client.search(index="logs-*", from_=9_990, size=20)
    client.close()


def test_dsl_size_caps_the_rows_and_index_picks_the_target(
    server: LoopbackServer, bulk: LoopbackServer
) -> None:
    qp = provider(server, page_size=7_000)
    body = '{ "index": "logs-network_traffic.*", "size": 3, "query": { "match_all": { } } }'
    got = qp.exec_query(body, language="dsl")
    assert len(got) == 3
    assert all(index.startswith("logs-network_traffic.") for index in got["_index"])
    many = provider(bulk, page_size=7_000).exec_query(
        '{ "query": { "term": { "host.name": "BULK01.corp.example" } } }', language="dsl"
    )
    assert len(many) == 25_000


def test_esql_says_when_a_result_may_be_cut(bulk: LoopbackServer) -> None:
    qp = provider(bulk)
    with pytest.warns(ElasticWarning) as caught:
        rows = qp.exec_query('FROM logs-* | WHERE host.name == "BULK01.corp.example"')
    assert len(rows) == 1_000  # ES|QL's default LIMIT
    messages = " ".join(str(w.message) for w in caught)
    assert "may be cut" in messages and "No limit defined, adding default limit of [1000]" in messages
    with pytest.warns(ElasticWarning, match="10000 rows"):
        qp.exec_query('FROM logs-* | WHERE host.name == "BULK01.corp.example" | LIMIT 20000')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(qp.exec_query('FROM logs-* | WHERE host.name == "BULK01.corp.example" | LIMIT 100')) == 100


# ---------------------------------------------------------------------------------------------
# Timeouts and errors


def test_timeout_raises_promptly_and_closes_the_point_in_time(
    server: LoopbackServer, state: ElasticServer
) -> None:
    qp = provider(server)
    body = '{ "query": { "term": { "tags": "hb_slow_marker" } } }'
    started = time.monotonic()
    with pytest.raises(QueryTimeoutError, match="timeout"):
        qp.exec_query(body, language="dsl", timeout=1)
    assert time.monotonic() - started < 4  # the server answers after 5 s
    assert any(r.path == "/_pit" and r.method == "DELETE" for r in server.requests)


def test_bad_queries_are_query_errors_naming_the_query(server: LoopbackServer) -> None:
    qp = provider(server)
    with pytest.raises(QueryError, match="mismatched input 'FRUM'"):
        qp.exec_query("FRUM logs-*")
    with pytest.raises(QueryError, match="unknown query \\[bogus\\]"):
        qp.exec_query('{ "query": { "bogus": { } } }', language="dsl")
    with pytest.raises(QueryError, match="not JSON"):
        qp.exec_query("{ nope", language="dsl")
    with pytest.raises(QueryError, match="index_not_found_exception"):
        qp.exec_query('{ "index": "missing-index", "query": { "match_all": { } } }', language="dsl")


def test_server_errors_name_the_query(server: LoopbackServer) -> None:
    server.fault("/_query", "503")
    with pytest.raises(DriverError, match="HTTP 503") as caught:
        provider(server).authentication.failed_logons(**WINDOW)
    assert "authentication.failed_logons" in str(caught.value)
    assert sum(r.path == "/_query" for r in server.requests) == 3  # the client retried twice


def test_a_429_with_retry_after_is_retried(server: LoopbackServer, frames: dict[str, pd.DataFrame]) -> None:
    server.fault("/_query", "429", times=1, retry_after="0")
    got = provider(server).network.ip_connections(ip_address="203.0.113.80", **WINDOW)
    assert (
        keys(got)
        == expected("network.ip_connections", frames, ip_address="203.0.113.80")["EventKey"].tolist()
    )


def test_unreachable_server_is_a_driver_error() -> None:
    with LoopbackServer(lambda request: Reply()) as gone:
        url = gone.url
    with pytest.raises(DriverError, match="cannot reach Elasticsearch"):
        QueryProvider("elastic", url=url, api_key=ENCODED, config=Config(), max_retries=0).connect()


def test_a_server_without_the_product_header_is_refused() -> None:
    def impostor(request: Any) -> Reply:
        return Reply.json({"version": {"number": "2.11.0", "distribution": "opensearch"}})

    with LoopbackServer(impostor) as server, pytest.raises(DriverError, match="not Elasticsearch") as caught:
        QueryProvider("elastic", url=server.url, api_key=ENCODED, config=Config()).connect()
    assert "OpenSearch" in (caught.value.hint or "")


# ---------------------------------------------------------------------------------------------
# Authentication, secrets, TLS


def test_api_key_and_basic_auth(server: LoopbackServer) -> None:
    provider(server).connect()
    assert all(r.header("authorization") == f"ApiKey {ENCODED}" for r in server.requests)
    server.clear()
    QueryProvider("elastic", url=server.url, api_key=list(KEY), config=Config()).connect()
    assert all(r.header("authorization") == f"ApiKey {ENCODED}" for r in server.requests)
    server.clear()
    qp = QueryProvider("elastic", url=server.url, username=USER, password=PASSWORD, config=Config(), **FAST)
    assert keys(qp.dns.host_dns(host_name="WS03", **WINDOW)) == ["d004", "d005"]
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert all(r.header("authorization") == f"Basic {basic}" for r in server.requests)


@pytest.mark.parametrize("how", ["api_key", "password"])
def test_bad_credentials_fail_clearly_without_the_secret(
    server: LoopbackServer, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = {"api_key": CANARY_SECRET} if how == "api_key" else {"username": USER, "password": CANARY_SECRET}
    qp = QueryProvider("elastic", url=server.url, config=Config(), **secret)
    with pytest.raises(DriverError, match="authentication failed") as caught:
        qp.process.host_processes(host_name="WS01", **WINDOW)
    assert "api_key" in (caught.value.hint or "")
    assert CANARY_SECRET not in str(caught.value)
    assert CANARY_SECRET not in caplog.text
    assert CANARY_SECRET not in repr(qp) and CANARY_SECRET not in repr(qp.driver)


def test_missing_credentials(server: LoopbackServer) -> None:
    with pytest.raises(DriverError, match="no credentials"):
        QueryProvider("elastic", url=server.url, config=Config()).connect()
    assert server.requests == []


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory, state: ElasticServer) -> Iterator[tuple[str, str]]:
    cert, key = self_signed_cert(tmp_path_factory.mktemp("tls"))
    with LoopbackServer(state.app) as server:
        yield serve_tls(server, cert, key), cert


def test_tls_is_verified_by_default(tls: tuple[str, str], caplog: pytest.LogCaptureFixture) -> None:
    url, cert = tls
    with pytest.raises(DriverError, match="certificate verification failed") as caught:
        QueryProvider("elastic", url=url, api_key=ENCODED, config=Config(), max_retries=0).connect()
    assert "ca_file" in (caught.value.hint or "")
    qp = QueryProvider("elastic", url=url, api_key=ENCODED, ca_file=cert, config=Config(), **FAST)
    assert keys(qp.dns.host_dns(host_name="WS03", **WINDOW)) == ["d004", "d005"]
    assert "verification is turned OFF" not in caplog.text


def test_turning_tls_verification_off_is_logged(
    tls: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    url, _ = tls
    qp = QueryProvider("elastic", url=url, api_key=ENCODED, verify=False, config=Config(), **FAST)
    with caplog.at_level(logging.WARNING, logger="huntbook"):
        assert keys(qp.dns.host_dns(host_name="WS03", **WINDOW)) == ["d004", "d005"]
    assert "TLS certificate verification is turned OFF" in caplog.text
