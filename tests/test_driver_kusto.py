"""The kusto driver: the real azure-kusto-data client against `duckdb-kql serve` on 127.0.0.1 (behind a
bearer-token gate), holding contract_frames(): the driver contract, the KQL catalogue, KQL literals."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

import huntbook.formats  # noqa: F401 - imported before huntbook.session (an import cycle in huntbook/__init__)
from huntbook.config import Config, Secret
from huntbook.drivers.base import kql_literal
from huntbook.drivers.kusto import KustoDriver
from huntbook.errors import DriverError
from huntbook.plugins import registry
from huntbook.queries import load_catalogue
from huntbook.session import QueryProvider
from huntbook.testing.drivers import (
    CANARY_SECRET,
    INJECTION,
    WINDOW,
    DriverContract,
    KustoServer,
    contract_frames,
    expected,
)

pytestmark = pytest.mark.skipif(KustoServer.command() is None, reason="duckdb-kql is not installed")
TOKEN = "kusto-test-token-1f8e3c"  # the gate's bearer token
HOSTILE = [
    INJECTION,
    "quote\"'mix",
    "back\\slash\\",
    "ünï©ødé ☃ 𝄞",
    "line1\nline2\ttab",
    "{x} // y",
    "50%_*?",
]


@pytest.fixture(scope="module")
def kusto() -> Iterator[KustoServer]:
    registry("huntbook.drivers").register("kusto", KustoDriver)  # until the entry point exists
    with KustoServer(contract_frames(), token=TOKEN) as server:
        yield server


class TestKustoContract(DriverContract):
    @pytest.fixture(autouse=True)
    def _server(self, kusto: KustoServer) -> None:
        self.server = kusto

    def provider(self, **options: Any) -> QueryProvider:
        return QueryProvider(
            "kusto", cluster=self.server.url, database="hunt", token=TOKEN, config=Config(), **options
        )

    def bad_auth_provider(self) -> QueryProvider:
        return QueryProvider(
            "kusto", cluster=self.server.url, database="hunt", token=CANARY_SECRET, config=Config()
        )

    def slow_query(self) -> str:
        return (
            "range a from 1 to 200000 step 1 | extend k = 1"
            " | join kind=inner (range b from 1 to 200000 step 1 | extend k = 1) on k | summarize count()"
        )

    def server_error_query(self) -> str:
        return "no_such_table | take 1"

    def broken_provider(self) -> QueryProvider:
        return QueryProvider("kusto", cluster="http://127.0.0.1:9", database="hunt", config=Config())


@pytest.fixture
def qp(kusto: KustoServer) -> Iterator[QueryProvider]:
    provider = QueryProvider("kusto", cluster=kusto.url, database="hunt", token=TOKEN, config=Config())
    yield provider
    provider.close()


def test_kusto_catalogue_has_every_local_hunt_with_the_same_parameters(qp: QueryProvider) -> None:
    local = load_catalogue("local").queries
    assert set(qp.list_queries()) == set(local)
    for name in qp.list_queries():
        mine = {k: (p.type, p.default, p.aliases) for k, p in qp.query_spec(name).parameters.items()}
        theirs = {k: (p.type, p.default, p.aliases) for k, p in local[name].parameters.items()}
        assert mine == theirs, name


def test_every_kql_query_runs(qp: QueryProvider) -> None:
    for name in qp.list_queries():
        spec = qp.query_spec(name)
        params: dict[str, Any] = {p: "WS01" for p, param in spec.parameters.items() if param.required}
        if "event_keys" in params:
            params["event_keys"] = ["e001", "e002"]
        if spec.time_range:
            params.update(WINDOW)
        assert qp.run(name, **params).attrs["query_name"] == name


@pytest.mark.parametrize("value", HOSTILE)
def test_kql_literals_round_trip(qp: QueryProvider, value: str) -> None:
    assert qp.exec_query(f"print v = {kql_literal(value, 'str')}")["v"].iloc[0] == value
    inner = kql_literal(value, "str", '"')
    assert qp.exec_query(f'print v = "{inner}"')["v"].iloc[0] == value


def test_account_and_optional_host_filters(qp: QueryProvider) -> None:
    frames = contract_frames()
    assert list(qp.process.account_processes(account_name="corp\\ALICE", **WINDOW)["EventKey"]) == [
        "p001", "p002", "p004", "p027",
    ]  # fmt: skip
    assert list(qp.process.account_processes(account_name="alice@OTHER.example", **WINDOW)["EventKey"]) == []
    got = qp.authentication.failed_logons(host_name="WS03", **WINDOW)
    assert list(got["EventKey"]) == list(
        expected("authentication.failed_logons", frames, host_name="WS03")["EventKey"]
    )


def test_token_from_a_secret_reference_never_shown(
    kusto: KustoServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("HB_TEST_KUSTO_TOKEN", TOKEN)
    config = Config(
        connections={
            "kusto": {"cluster": kusto.url, "database": "hunt", "token": Secret("env:HB_TEST_KUSTO_TOKEN")}
        }
    )
    with QueryProvider("kusto", config=config) as qp:
        got = qp.process.host_processes(host_name="WS03", **WINDOW)
        want = expected("process.host_processes", contract_frames(), host_name="WS03")
        assert list(got["EventKey"]) == list(want["EventKey"])
        assert TOKEN not in repr(qp.driver) and TOKEN not in str(qp.driver.settings)
    assert TOKEN not in caplog.text


def test_settings_errors_are_clear() -> None:
    with pytest.raises(DriverError, match="cluster URL and a database"):
        KustoDriver().connect(cluster="https://x.kusto.windows.net")
    with pytest.raises(DriverError, match="needs client_id, client_secret, tenant_id"):
        KustoDriver().connect(cluster="https://x.kusto.windows.net", database="d", auth="app_key")
    with pytest.raises(DriverError, match="only for http://"):
        KustoDriver().connect(cluster="https://x.kusto.windows.net", database="d", auth="none")
    with pytest.raises(DriverError, match="unknown kusto setting"):
        KustoDriver().connect(cluster="http://127.0.0.1:9", database="d", colour="blue")
