"""The elastic driver with the real elasticsearch client against the loopback Elasticsearch
(tests/elastic_server.py): the shared DriverContract, ES|QL, query DSL and Lucene hunts on the
contract data, literal quoting, point-in-time paging past the 10,000-hit window, timeouts, auth (API
key, basic), TLS, the product check, server errors and the canary secret; and with opensearch-py
against the loopback's OpenSearch mode: flavor detection, OpenSearch's point in time and tie-breaker,
basic and bearer auth, the whole contract; huntbook's dsl clauses, composite aggregations paged with
after_key and the huntbook.sql step."""

from __future__ import annotations

import base64
import json
import logging
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from elastic_server import ElasticServer, ecs_documents
from huntbook.config import Config
from huntbook.drivers.elastic import (
    ElasticDriver,
    ElasticWarning,
    dsl_literal,
    esql_literal,
    expand_clauses,
    lucene_literal,
)
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
from huntbook.testing.loopback import LoopbackServer, Reply, self_signed_cert, serve_tls

pytest.importorskip("elasticsearch", reason="needs the 'elastic' extra (elasticsearch)")
KEY = ("hunt-key-id", "hunt-api-key-6b1c")
ENCODED = base64.b64encode(":".join(KEY).encode()).decode()
USER, PASSWORD = "elastic-hunter", "pw-2e7f99"
PAGE = 5_000
HASH = "ab" * 32
FAST = {"page_size": PAGE, "request_timeout": 10, "max_retries": 2}
CONTRACT_TABLES = ("process_events", "authentication", "network_sessions", "dns")
#: ASIM columns and their ECS fields in the elastic catalogue's results (ecs_documents' mapping)
ECS_COLUMNS = {
    "EventKey": "event.id",
    "TimeGenerated": "@timestamp",
    "DvcHostname": "host.name",
    "TargetProcessCommandLine": "process.command_line",
    "TargetProcessName": "process.executable",
    "SrcIpAddr": "source.ip",
    "SrcPortNumber": "source.port",
    "SrcBytes": "source.bytes",
    "SrcHostname": "source.domain",
    "DstIpAddr": "destination.ip",
    "DstPortNumber": "destination.port",
    "DstBytes": "destination.bytes",
    "TargetHostname": "winlog.computer_name",
    "DnsQuery": "dns.question.name",
}

registry("huntbook.drivers").register("elastic", ElasticDriver)  # until the entry point is declared


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    """The contract's hand-written rows (its 25,000 bulk rows live in the ``bulk`` server)."""
    return contract_frames(rows=0)


def _contract_server(**options: Any) -> ElasticServer:
    """A loopback server holding every contract table, with the 25,000 bulk process rows."""
    es = ElasticServer(**options)
    for table in CONTRACT_TABLES:
        es.load(ecs_documents(table, DriverContract.frames()[table]))
    es.slow["hb_slow_marker"] = 5.0
    return es


@pytest.fixture(scope="module")
def bulk_state() -> ElasticServer:
    """The shared contract's data on the loopback Elasticsearch (API key)."""
    return _contract_server(api_key=KEY)


@pytest.fixture(scope="module")
def bulk(bulk_state: ElasticServer) -> Iterator[LoopbackServer]:
    with LoopbackServer(bulk_state.app) as server:
        yield server


@pytest.fixture(scope="module")
def opensearch_state() -> ElasticServer:
    """The loopback in its OpenSearch mode, holding the same contract data (basic auth)."""
    pytest.importorskip("opensearchpy", reason="needs the 'opensearch' extra (opensearch-py)")
    return _contract_server(username=USER, password=PASSWORD, distribution="opensearch")


@pytest.fixture(scope="module")
def opensearch(opensearch_state: ElasticServer) -> Iterator[LoopbackServer]:
    with LoopbackServer(opensearch_state.app) as server:
        yield server


def os_provider(server: LoopbackServer, **options: Any) -> QueryProvider:
    settings = {"url": server.url, "username": USER, "password": PASSWORD, **FAST, **options}
    return QueryProvider("elastic", config=Config(), **settings)


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
# The shared driver contract


class TestElasticContract(DriverContract):
    """huntbook.testing.drivers' contract on the loopback Elasticsearch holding every contract table."""

    column_names = ECS_COLUMNS

    @pytest.fixture(autouse=True)
    def _server(self, bulk: LoopbackServer) -> None:
        self.url = bulk.url

    def provider(self, **options: Any) -> QueryProvider:
        return QueryProvider("elastic", url=self.url, api_key=ENCODED, config=Config(), **FAST, **options)

    def bad_auth_provider(self) -> QueryProvider:
        return QueryProvider("elastic", url=self.url, api_key=CANARY_SECRET, config=Config(), **FAST)

    def broken_provider(self) -> QueryProvider:
        with LoopbackServer(lambda request: Reply()) as gone:
            url = gone.url
        return QueryProvider("elastic", url=url, api_key=ENCODED, config=Config(), max_retries=0)

    def slow_query(self) -> str:
        return 'FROM logs-* | WHERE tags == "hb_slow_marker" | LIMIT 1'

    def server_error_query(self) -> str:
        return "FROM no-such-index | LIMIT 1"

    def count_query(self, qp: QueryProvider) -> str:
        return "FROM logs-* | STATS n = COUNT(*) | LIMIT 1"


class TestOpenSearchContract(DriverContract):
    """The same contract through opensearch-py on the loopback's OpenSearch mode (flavor detected from
    ``GET /``): the common hunts are query DSL, which both flavors run."""

    column_names = ECS_COLUMNS

    @pytest.fixture(autouse=True)
    def _server(self, opensearch: LoopbackServer) -> None:
        self.url = opensearch.url

    def provider(self, **options: Any) -> QueryProvider:
        return QueryProvider(
            "elastic", url=self.url, username=USER, password=PASSWORD, config=Config(), **FAST, **options
        )

    def bad_auth_provider(self) -> QueryProvider:
        return QueryProvider(
            "elastic", url=self.url, username=USER, password=CANARY_SECRET, config=Config(), **FAST
        )

    def broken_provider(self) -> QueryProvider:
        with LoopbackServer(lambda request: Reply()) as gone:
            url = gone.url
        return QueryProvider(
            "elastic", url=url, username=USER, password=PASSWORD, flavor="opensearch", config=Config(),
            max_retries=0,
        )  # fmt: skip

    def native_language(self, qp: QueryProvider) -> str:
        return "dsl"

    def slow_query(self) -> str:
        return '{ "query": { "term": { "tags": "hb_slow_marker" } } }'

    def server_error_query(self) -> str:
        return '{ "index": "no-such-index", "query": { "match_all": { } } }'

    def count_query(self, qp: QueryProvider) -> str:
        return '{ "size": 1, "query": { "match_all": { } } }'


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


def test_catalogue_hunts_are_dsl_or_lucene_for_both_flavors(server: LoopbackServer) -> None:
    """Every catalogue hunt runs on Elasticsearch and OpenSearch (ES|QL stays for ad-hoc queries)."""
    qp = provider(server)
    assert set(COMMON_HUNTS) <= set(qp.list_queries())
    languages = {qp.query_spec(name).language for name in qp.list_queries()}
    assert languages == {"dsl", "lucene"}
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
    rows logged as plain 'ws01' (the other drivers do)."""
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


def test_huntbook_clauses_become_escaped_regexp_queries() -> None:
    host = expand_clauses({"huntbook.host": {"fields": ["host.name"], "value": "WS01.corp.example"}})
    assert host["regexp"]["host.name"] == {
        "value": "ws01\\.corp\\.example(\\..*)?|ws01|ws01\\.corp",
        "case_insensitive": True,
        "flags": "NONE",
    }
    assert expand_clauses({"huntbook.host": {"fields": ["host.name"], "value": ""}}) == {"match_all": {}}
    text = expand_clauses({"huntbook.contains": {"fields": ["f"], "value": "a*b?c\\d.e"}})
    assert text["regexp"]["f"]["value"] == ".*a\\*b\\?c\\\\d\\.e.*"
    nested = expand_clauses(
        {"bool": {"filter": [{"huntbook.equals": {"fields": ["a", "b"], "value": " x "}}]}}
    )
    assert [next(iter(c["regexp"])) for c in nested["bool"]["filter"][0]["bool"]["should"]] == ["a", "b"]
    with pytest.raises(QueryError, match="unknown huntbook clause 'huntbook.nope'"):
        expand_clauses({"query": {"huntbook.nope": {}}})


def test_ip_mapped_fields_are_matched_as_addresses(frames: dict[str, pd.DataFrame]) -> None:
    """On ``ip`` fields (as Elastic Agent maps source.ip) huntbook.equals is a term query: the server
    refuses regexp queries there; a value that is no address matches nothing."""
    es = ElasticServer(api_key=KEY)
    for field in ("source.ip", "destination.ip"):
        es.define("logs-network_traffic.flow-default", field, "ip")
    flows = frames["network_sessions"]
    es.load(ecs_documents("network_sessions", flows[flows["SrcIpAddr"] != INJECTION]))
    with LoopbackServer(es.app) as server:
        qp = provider(server)
        got = qp.network.ip_connections(ip_address=" 2001:DB8:0::5 ", **WINDOW)
        want = expected("network.ip_connections", frames, ip_address="2001:db8::5")
        assert keys(got) == want["EventKey"].tolist() and keys(got)
        assert keys(qp.network.ip_connections(ip_address=INJECTION, **WINDOW)) == []
        caps = [r for r in server.requests if r.path.endswith("/_field_caps")]
        assert len(caps) == 2 and "destination.ip,source.ip" in caps[0].text
        assert es.searches and not any("regexp" in json.dumps(body) for body in es.searches)
        with pytest.raises(QueryError, match="Can only use regexp queries on keyword"):
            qp.exec_query('{ "query": { "regexp": { "source.ip": { "value": "10.*" } } } }', language="dsl")


@pytest.mark.parametrize("pattern", ["who?mi", "wh.ami", "WHO*", "(whoami)"])
def test_pattern_metacharacters_are_literal(
    server: LoopbackServer, frames: dict[str, pd.DataFrame], pattern: str
) -> None:
    got = provider(server).process.command_line_search(pattern=pattern, **WINDOW)
    assert keys(got) == expected("process.command_line_search", frames, pattern=pattern)["EventKey"].tolist()


def test_composite_aggregations_are_paged_with_after_key(
    server: LoopbackServer, state: ElasticServer, frames: dict[str, pd.DataFrame]
) -> None:
    source = {"host": {"terms": {"field": "host.name", "missing_bucket": True}}}
    metrics = {
        "first": {"min": {"field": "@timestamp"}},
        "last": {"max": {"field": "@timestamp"}},
        "images": {"cardinality": {"field": "process.executable"}},
        "events": {"value_count": {"field": "event.id"}},
    }
    processes = [{"term": {"event.category": "process"}}, {"exists": {"field": "event.code"}}]
    body = {
        "index": "logs-system.*",
        "query": {"bool": {"filter": processes}},
        "aggs": {"per_host": {"composite": {"size": 2, "sources": [source]}, "aggs": metrics}},
    }
    before = len(state.searches)
    got = provider(server).exec_query(json.dumps(body), language="dsl")
    want = frames["process_events"].groupby("DvcHostname", dropna=False).agg(
        first=("TimeGenerated", "min"), last=("TimeGenerated", "max"),
        images=("TargetProcessName", "nunique"), events=("EventKey", "size"),
    )  # fmt: skip
    assert list(got.columns) == ["host", "doc_count", "first", "last", "images", "events"]
    assert got["host"].tolist() == sorted(want.index, key=lambda h: (h is not None, str(h)))
    mine = got.set_index("host").loc[want.index]
    assert mine["events"].tolist() == mine["doc_count"].tolist() == want["events"].tolist()
    assert mine["images"].tolist() == want["images"].tolist()
    assert comparable(mine, ["first", "last"]) == comparable(want, ["first", "last"])
    bodies = state.searches[before:]
    assert len(bodies) == len(want) // 2 + 1 and all(b["size"] == 0 and "pit" in b for b in bodies)
    afters = [b["aggs"]["per_host"]["composite"].get("after") for b in bodies]
    assert afters[0] is None and afters[1:] == [{"host": h} for h in got["host"].tolist()[1::2]]


@pytest.mark.parametrize(
    ("aggs", "message"),
    [
        ({"h": {"terms": {"field": "host.name"}}}, "not a composite aggregation"),
        ({"a": {"composite": {"sources": []}}, "b": {"composite": {"sources": []}}}, "one \\(composite\\)"),
        ({"h": {"composite": {"sources": []}, "aggs": {"t": {"top_hits": {}}}}}, "'t' is not one of"),
    ],
)
def test_other_aggregations_are_refused(server: LoopbackServer, aggs: dict[str, Any], message: str) -> None:
    with pytest.raises(QueryError, match=message):
        provider(server).exec_query(json.dumps({"aggs": aggs}), language="dsl")
    assert [r.path for r in server.requests] == ["/"]  # connected, nothing searched


def test_huntbook_sql_binds_its_params(server: LoopbackServer) -> None:
    qp = provider(server)
    body = {
        "query": {"term": {"event.category": "process"}},
        "aggs": {"per_host": {"composite": {"sources": [{"host": {"terms": {"field": "host.name"}}}]}}},
        "huntbook.sql": {
            "query": "SELECT host FROM rows WHERE host = $h OR host = $i ORDER BY host",
            "params": {},
        },
    }
    body["huntbook.sql"]["params"] = {"h": INJECTION, "i": "WS03"}
    assert qp.exec_query(json.dumps(body), language="dsl")["host"].tolist() == ["WS03", INJECTION]
    body["huntbook.sql"]["params"] = {"h": "x' OR 1=1 --'", "i": "' OR '1'='1"}
    assert qp.exec_query(json.dumps(body), language="dsl").empty
    body["huntbook.sql"] = {"query": "SELECT nope FROM rows"}
    with pytest.raises(QueryError, match="huntbook.sql failed"):
        qp.exec_query(json.dumps(body), language="dsl")


def test_the_server_answers_terms_and_metric_aggregations(server: LoopbackServer) -> None:
    from elasticsearch import Elasticsearch

    client = Elasticsearch(server.url, api_key=ENCODED)
    count = {"n": {"value_count": {"field": "event.id"}}}
    aggs = {
        "hosts": {"terms": {"field": "host.name", "size": 1}, "aggs": count},
        "first": {"min": {"field": "@timestamp"}},
    }
    answer = client.search(index="logs-network_traffic.*", size=0, aggs=aggs).body
    client.close()
    hosts = answer["aggregations"]["hosts"]
    assert (
        len(hosts["buckets"]) == 1 and hosts["buckets"][0]["doc_count"] == hosts["buckets"][0]["n"]["value"]
    )
    assert hosts["sum_other_doc_count"] > 0 and answer["hits"]["hits"] == []
    first = answer["aggregations"]["first"]
    assert first["value_as_string"].endswith("Z") and isinstance(first["value"], float)


@pytest.mark.parametrize(
    ("hunt", "params"),
    [
        ("process.encoded_commands", {}),
        ("process.encoded_commands", {"host_name": "ws02"}),
        ("process.account_processes", {"account_name": "CORP\\alice"}),
        ("process.account_processes", {"account_name": "alice"}),
        ("process.account_processes", {"account_name": INJECTION}),
        ("authentication.account_logons", {"account_name": "alice@corp.example"}),
        ("authentication.account_logons", {"account_name": "CORP\\alice"}),
        ("authentication.account_logons", {"account_name": "ALICE"}),
        ("authentication.account_logons", {"account_name": INJECTION}),
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


@pytest.mark.parametrize(
    ("hunt", "params"),
    [
        ("process.encoded_commands", {}),
        ("process.encoded_commands", {"host_name": "ws02"}),
        ("process.account_processes", {"account_name": "CORP\\alice"}),
        ("process.account_processes", {"account_name": "alice"}),
        ("dns.domain_queries", {"domain": "EVIL.example.com."}),
        ("authentication.logons_from_ip", {"ip_address": " 2001:db8::5 "}),
        ("authentication.failed_logons", {"host_name": "WS01.corp.example"}),
        ("authentication.account_logons", {"account_name": "CORP\\alice"}),
        ("authentication.account_logons", {"account_name": INJECTION}),
    ],
)
def test_opensearch_runs_the_dsl_hunts_like_the_local_store(
    opensearch: LoopbackServer, local: QueryProvider, hunt: str, params: dict[str, Any]
) -> None:
    got = os_provider(opensearch).run(hunt, **params, **WINDOW)
    assert keys(got) == local_keys(local.run(hunt, **params, **WINDOW))
    assert keys(got)


@pytest.fixture(scope="module")
def os_local(tmp_path_factory: pytest.TempPathFactory) -> QueryProvider:
    """The OpenSearch loopback's data (the contract's, with its bulk rows) in a LocalStore."""
    store = write_store(tmp_path_factory.mktemp("os-store"), DriverContract.frames())
    return QueryProvider("local", store=store, config=Config())


#: (hunt, params, {elastic column: the local store's column}) of the aggregating hunts
AGGREGATES = [
    ("authentication.brute_force", {}, {"Account": "TargetUsername"}),
    ("authentication.brute_force", {"min_failures": 1}, {"Account": "TargetUsername"}),
    ("process.rare_processes", {"max_count": 2}, {"executable": "TargetProcessName"}),
    ("process.rare_processes", {}, {"executable": "TargetProcessName"}),
    ("network.top_destinations", {}, {"destination.ip": "DstIpAddr"}),
    ("network.top_destinations", {"limit": 3}, {"destination.ip": "DstIpAddr"}),
    ("authentication.password_spray", {"min_accounts": 2}, {}),
]


@pytest.mark.parametrize("flavor", ["elasticsearch", "opensearch"])
@pytest.mark.parametrize(("hunt", "params", "renamed"), AGGREGATES)
def test_aggregating_hunts_return_the_local_stores_rows(
    request: pytest.FixtureRequest, flavor: str, hunt: str, params: dict[str, Any], renamed: dict[str, str]
) -> None:
    """The composite-aggregation hunts give the LocalStore catalogue's rows, in its order, on both
    flavors (the columns the two share; ECS names for the grouping keys)."""
    if flavor == "elasticsearch":
        qp, local = provider(request.getfixturevalue("server")), request.getfixturevalue("local")
    else:
        qp, local = os_provider(request.getfixturevalue("opensearch")), request.getfixturevalue("os_local")
    got = qp.run(hunt, **params, **WINDOW).rename(columns=renamed)
    want = local.run(hunt, **params, **WINDOW)
    columns = [c for c in want.columns if c in got.columns]
    assert len(columns) >= 5 and len(want), columns
    assert comparable(got, columns) == comparable(want, columns)
    assert qp.driver.flavor == flavor


INTERNAL = ["::1", "::", "fe80::1", "FD12::1", "ff02::1", "172.16.0.1", "172.31.9.9", "100.64.0.1",
            "100.127.1.1", "169.254.1.1", "127.0.0.2", "0.1.2.3", "224.0.0.1", "255.255.255.255"]  # fmt: skip
EXTERNAL = ["172.32.0.1", "100.128.0.1", "2001:db8::9", "223.1.1.1", "11.0.0.1", "203.0.113.7"]


@pytest.mark.parametrize("mapping", ["keyword", "ip"])
def test_top_destinations_leaves_out_internal_addresses_like_the_local_store(
    tmp_path: Path, frames: dict[str, pd.DataFrame], mapping: str
) -> None:
    """Every internal range is left out and ties are ordered as in the LocalStore, whether the
    addresses are mapped as keyword or (as Elastic Agent maps them) ip."""
    template = frames["network_sessions"].iloc[[0]]
    rows = [
        template.assign(
            EventKey=f"t{i:03d}", DstIpAddr=ip, SrcIpAddr=f"10.0.0.{i % 3}", SrcBytes=5, DstBytes=5
        )
        for i, ip in enumerate([*INTERNAL, *EXTERNAL, *EXTERNAL[:2]])
    ]
    flows = pd.concat(rows, ignore_index=True)
    es = ElasticServer(api_key=KEY)
    if mapping == "ip":
        for field in ("source.ip", "destination.ip"):
            es.define("logs-network_traffic.flow-default", field, "ip")
    es.load(ecs_documents("network_sessions", flows))
    local = QueryProvider("local", store=write_store(tmp_path, {"network_sessions": flows}), config=Config())
    with LoopbackServer(es.app) as server:
        got = provider(server).network.top_destinations(limit=50, **WINDOW)
    want = local.network.top_destinations(limit=50, **WINDOW)
    columns = ["Connections", "BytesOut", "BytesIn", "TotalBytes", "Sources", "FirstSeen", "LastSeen"]
    assert comparable(got, columns) == comparable(want, columns)
    assert got["destination.ip"].str.lower().tolist() == want["DstIpAddr"].str.lower().tolist()
    assert set(got["destination.ip"].str.lower()) == {ip.lower() for ip in EXTERNAL}


def test_aggregating_hunts_send_their_parameters_as_values(
    server: LoopbackServer, state: ElasticServer
) -> None:
    """Thresholds reach DuckDB as bound parameters (``$min_failures`` in the SQL, the value in
    ``params``), the huntbook.sql step is never sent to the server, and a value that is no integer
    is refused."""
    qp = provider(server)
    brute = qp.authentication.brute_force(**WINDOW)
    assert brute.loc[0, ["Account", "Source", "Failures", "Successes"]].tolist() == [
        "corp\\admin", "198.51.100.9", 12, 1,
    ]  # fmt: skip
    text = qp.render("authentication.brute_force", min_failures=10, **WINDOW)
    assert '"params": { "min_failures": 10 }' in text and ">= $min_failures" in text
    rare = qp.process.rare_processes(max_count=1, **WINDOW)
    assert "inject.exe" in set(rare["executable"]) and (rare["Count"] == 1).all()
    assert all("huntbook.sql" not in json.dumps(body) for body in state.searches)
    with pytest.raises(ParameterError):
        qp.process.rare_processes(max_count=INJECTION, **WINDOW)


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


@pytest.fixture(scope="module")
def esql_hunts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user catalogue with one ES|QL hunt (the packaged catalogue has none left)."""
    path = tmp_path_factory.mktemp("esql-catalogue") / "esql.yaml"
    path.write_text(ESQL_CATALOGUE, encoding="utf-8")
    return path


ESQL_CATALOGUE = """\
metadata:
  {version: 1, description: ES|QL hunts, data_environments: [elastic], data_families: [authentication],
   format: huntbook, language: esql}
sources:
  esql_failures:
    description: Failed logons per account (ES|QL)
    args:
      query: |
        FROM logs-* | WHERE event.outcome == "failure" AND user.name == {user}
        | STATS n = COUNT(*) BY user.name | LIMIT 10
    parameters:
      user: {description: User name, type: str}
"""


def test_a_user_esql_hunt_runs_on_elasticsearch(server: LoopbackServer, esql_hunts: Path) -> None:
    qp = provider(server, query_paths=[esql_hunts])
    assert qp.query_spec("authentication.esql_failures").language == "esql"
    assert qp.authentication.esql_failures(user="admin")["n"].tolist() == [12]
    assert qp.authentication.esql_failures(user=INJECTION)["n"].tolist() == [1]


def test_server_errors_name_the_query(server: LoopbackServer, esql_hunts: Path) -> None:
    server.fault("/_query", "503")
    with pytest.raises(DriverError, match="HTTP 503") as caught:
        provider(server, query_paths=[esql_hunts]).authentication.esql_failures(user="admin")
    assert "authentication.esql_failures" in str(caught.value)
    assert sum(r.path == "/_query" for r in server.requests) == 3  # the client retried twice
    server.clear()
    server.fault("/_search", "503")
    with pytest.raises(DriverError, match="HTTP 503") as caught:
        provider(server).authentication.failed_logons(**WINDOW)
    assert "authentication.failed_logons" in str(caught.value)
    assert any(r.path == "/_pit" and r.method == "DELETE" for r in server.requests)


def test_a_429_with_retry_after_is_retried(server: LoopbackServer, frames: dict[str, pd.DataFrame]) -> None:
    server.fault("/_search", "429", times=1, retry_after="0")
    got = provider(server).network.ip_connections(ip_address="203.0.113.80", **WINDOW)
    assert (
        keys(got)
        == expected("network.ip_connections", frames, ip_address="203.0.113.80")["EventKey"].tolist()
    )
    assert sum(r.path == "/_search" for r in server.requests) == 2  # the 429, then the retry


def test_unreachable_server_is_a_driver_error() -> None:
    with LoopbackServer(lambda request: Reply()) as gone:
        url = gone.url
    with pytest.raises(DriverError, match="cannot reach Elasticsearch"):
        QueryProvider("elastic", url=url, api_key=ENCODED, config=Config(), max_retries=0).connect()


def test_a_server_without_the_product_header_is_refused() -> None:
    def impostor(request: Any) -> Reply:
        return Reply.json({"version": {"number": "7.10.2"}, "tagline": "You Know, for Search"})

    with LoopbackServer(impostor) as server, pytest.raises(DriverError, match="not Elasticsearch") as caught:
        QueryProvider("elastic", url=server.url, api_key=ENCODED, config=Config()).connect()
    assert "OpenSearch, set flavor" in (caught.value.hint or "")


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


# ---------------------------------------------------------------------------------------------
# OpenSearch


def test_opensearch_is_detected_and_paged_with_its_point_in_time(
    opensearch: LoopbackServer, opensearch_state: ElasticServer
) -> None:
    opensearch.clear()
    qp = os_provider(opensearch)
    got = qp.process.host_processes(host_name=BULK_HOST, **WINDOW)
    assert qp.driver.flavor == "opensearch" and type(qp.driver.client).__module__.startswith("opensearchpy")
    assert len(got) == 25_000 and got["event.id"].is_unique
    assert [r.path for r in opensearch.requests[:2]] == [
        "/",
        "/",
    ]  # elasticsearch's look, then opensearch-py's
    opened = [
        r for r in opensearch.requests if r.path.endswith("/_search/point_in_time") and r.method == "POST"
    ]
    closed = [r for r in opensearch.requests if r.path == "/_search/point_in_time" and r.method == "DELETE"]
    assert len(opened) == len(closed) == 1 and opened[0].param("keep_alive") == "2m"
    assert not opensearch_state.pits and not any("/_pit" in r.path for r in opensearch.requests)
    bodies = [json.loads(r.body) for r in opensearch.requests if r.path == "/_search"]
    assert len(bodies) == 25_000 // PAGE + 1
    assert all(b["sort"][-1] == {"_id": "asc"} and b["pit"]["id"] for b in bodies)


def test_opensearch_ties_on_the_sort_are_paged_whole(
    opensearch: LoopbackServer, opensearch_state: ElasticServer
) -> None:
    """OpenSearch 2.x adds no _shard_doc tie-breaker: 30 hits with one @timestamp over pages of 7 come
    back whole only because the driver sorts on _id last."""
    for i in range(30):
        opensearch_state.index("ties-1", f"t{i:02d}", {"@timestamp": "2024-03-03T00:00:00.000Z", "n": i})
    rows = os_provider(opensearch, page_size=7, index="ties-*").exec_query("n:*", language="lucene")
    assert sorted(rows["_id"]) == [f"t{i:02d}" for i in range(30)]


def test_explicit_flavor_skips_the_guess(opensearch: LoopbackServer) -> None:
    opensearch.clear()
    qp = os_provider(opensearch, flavor="opensearch")
    assert keys(qp.dns.host_dns(host_name="WS03", **WINDOW)) == ["d004", "d005"]
    assert [r.path for r in opensearch.requests].count("/") == 1
    with pytest.raises(DriverError, match="flavor='solr' is not one of auto, elasticsearch, opensearch"):
        os_provider(opensearch, flavor="solr").connect()
    with pytest.raises(DriverError, match="not Elasticsearch"):  # no guess: the elasticsearch client refuses
        os_provider(opensearch, flavor="elasticsearch").connect()


def test_esql_on_opensearch_is_a_clear_error_naming_the_query(
    opensearch: LoopbackServer, esql_hunts: Path
) -> None:
    opensearch.clear()
    qp = os_provider(opensearch, query_paths=[esql_hunts])
    with pytest.raises(QueryError, match="OpenSearch has no ES\\|QL") as caught:
        qp.authentication.esql_failures(user="admin")
    assert "authentication.esql_failures" in str(caught.value) and "dsl" in (caught.value.hint or "")
    with pytest.raises(QueryError, match="OpenSearch has no ES\\|QL") as caught:
        qp.exec_query("FROM logs-* | LIMIT 1")
    assert "ad hoc esql query" in str(caught.value)
    assert not any(r.path == "/_query" for r in opensearch.requests)


def test_opensearch_refuses_an_elasticsearch_api_key(opensearch: LoopbackServer) -> None:
    opensearch.clear()
    with pytest.raises(DriverError, match="OpenSearch, which takes no Elasticsearch API key"):
        QueryProvider(
            "elastic", url=opensearch.url, api_key=ENCODED, flavor="opensearch", config=Config()
        ).connect()
    assert opensearch.requests == []
    with pytest.raises(DriverError, match="authentication failed") as caught:  # the key is not even tried
        QueryProvider("elastic", url=opensearch.url, api_key=ENCODED, config=Config()).connect()
    assert "OpenSearch takes username/password" in (caught.value.hint or "")


def test_opensearch_bearer_token_and_query_errors(opensearch_state: ElasticServer) -> None:
    opensearch_state.bearer = "os-bearer-81c2e"
    try:
        with LoopbackServer(opensearch_state.app) as server:
            qp = QueryProvider(
                "elastic", url=server.url, bearer_token="os-bearer-81c2e", config=Config(), **FAST
            )
            assert keys(qp.dns.host_dns(host_name="WS03", **WINDOW)) == ["d004", "d005"]
            assert all(r.header("authorization") == "Bearer os-bearer-81c2e" for r in server.requests)
            with pytest.raises(
                QueryError, match="OpenSearch rejected the query: .*unknown query \\[bogus\\]"
            ):
                qp.exec_query('{ "query": { "bogus": { } } }', language="dsl")
            server.fault("/_search", "503")
            with pytest.raises(DriverError, match="OpenSearch error \\(HTTP 503\\)") as caught:
                qp.process.host_processes(host_name="WS01", **WINDOW)
            assert "process.host_processes" in str(caught.value)
    finally:
        opensearch_state.bearer = None


def test_opensearch_over_tls_is_verified(tmp_path: Any, opensearch_state: ElasticServer) -> None:
    cert, key = self_signed_cert(tmp_path)
    with LoopbackServer(opensearch_state.app) as server:
        url = serve_tls(server, cert, key)
        settings = {"url": url, "username": USER, "password": PASSWORD, "config": Config(), "max_retries": 0}
        with pytest.raises(DriverError, match="certificate verification failed"):
            QueryProvider("elastic", flavor="opensearch", **settings).connect()
        qp = QueryProvider("elastic", ca_file=cert, **settings)
        assert keys(qp.dns.host_dns(host_name="WS03", **WINDOW)) == ["d004", "d005"]
        assert qp.driver.flavor == "opensearch"
