"""One hunt, four engines: the same catalogue hunts on the same data return the same rows from `local`
(DuckDB over a LocalStore), `sql` (PostgreSQL), `spark` (pyspark local[2] over the same Parquet files)
and `kusto` (azure-kusto-data against duckdb-kql serve, the KQL catalogue)."""

from __future__ import annotations

import importlib.util
import shutil
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

import huntbook.formats  # noqa: F401 - imported before huntbook.session (an import cycle in huntbook/__init__)
from huntbook.config import Config
from huntbook.drivers.kusto import KustoDriver
from huntbook.drivers.spark import SparkDriver
from huntbook.drivers.sql import SqlDriver
from huntbook.plugins import registry
from huntbook.session import QueryProvider
from huntbook.testing.drivers import (
    INJECTION,
    WINDOW,
    KustoServer,
    PostgresServer,
    comparable,
    contract_frames,
    spark_session,
    write_store,
)

HUNTS: list[tuple[str, dict[str, Any]]] = [
    ("process.host_processes", {"host_name": "WS01"}),
    ("process.host_processes", {"host_name": INJECTION}),
    ("process.account_processes", {"account_name": "CORP\\alice"}),
    ("process.account_processes", {"account_name": "alice"}),
    ("process.encoded_commands", {}),
    ("process.command_line_search", {"pattern": "50%_done"}),
    ("process.command_line_search", {"pattern": "C:\\Temp\\"}),
    ("process.process_children", {"process_name": "cmd.exe"}),
    ("process.rare_processes", {"max_count": 2}),
    ("authentication.failed_logons", {"host_name": "WS01"}),
    ("authentication.password_spray", {"min_accounts": 3}),
    ("authentication.brute_force", {"min_failures": 5}),
    ("authentication.logons_from_ip", {"ip_address": "10.0.0.7"}),
    ("authentication.account_logons", {"account_name": "alice"}),
    ("network.ip_connections", {"ip_address": "203.0.113.80"}),
    ("network.hourly_traffic", {}),
    ("network.top_destinations", {"limit": 3}),
    ("dns.domain_queries", {"domain": "Example.com"}),
    ("alerts.alerts_for_ip", {"ip_address": "198.51.100.7"}),
    ("events.event_counts", {}),
]
ENGINES = ("sql", "spark", "kusto")
TOKEN = "parity-token-5b2d"


def _spark_missing() -> str | None:
    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed"
    return "no Java runtime for pyspark" if shutil.which("java") is None else None


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    for name, driver in (("sql", SqlDriver), ("spark", SparkDriver), ("kusto", KustoDriver)):
        registry("huntbook.drivers").register(name, driver)  # until the entry points exist
    return write_store(tmp_path_factory.mktemp("parity-store"), contract_frames())


@pytest.fixture(scope="module")
def providers(store: Any) -> Iterator[dict[str, QueryProvider | str]]:
    """``local`` and every engine that can run here (a reason string where one cannot)."""
    made: dict[str, QueryProvider | str] = {"local": QueryProvider("local", store=store, config=Config())}
    with _postgres() as pg, _kusto() as kusto:
        made["sql"] = (
            QueryProvider("sql", url=pg.url, config=Config()) if isinstance(pg, PostgresServer) else pg
        )
        reason = _spark_missing()
        made["spark"] = reason or QueryProvider(
            "spark", store=store, session=spark_session(), config=Config()
        )
        made["kusto"] = (
            QueryProvider("kusto", cluster=kusto.url, database="hunt", token=TOKEN, config=Config())
            if isinstance(kusto, KustoServer)
            else kusto
        )
        yield made
        for provider in made.values():
            if isinstance(provider, QueryProvider):
                provider.close()


class _Nothing:
    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __enter__(self) -> str:
        return self.reason

    def __exit__(self, *exc: object) -> None:
        return None


def _postgres() -> Any:
    reason = PostgresServer.skip_reason()
    if reason:
        return _Nothing(reason)
    server = PostgresServer()

    class Loaded:
        def __enter__(self) -> PostgresServer:
            server.start()
            server.load(contract_frames())
            return server

        def __exit__(self, *exc: object) -> None:
            server.stop()

    return Loaded()


def _kusto() -> Any:
    if KustoServer.command() is None:
        return _Nothing("duckdb-kql is not installed")
    return KustoServer(contract_frames(), token=TOKEN)


def _rows(frame: Any, columns: list[str]) -> Counter[tuple[Any, ...]]:
    """Order-insensitive rows; '' counts as missing (Kusto has no null strings)."""
    return Counter(tuple(None if v == "" else v for v in row) for row in comparable(frame, columns))


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("hunt", "params"), HUNTS, ids=[f"{h}-{i}" for i, (h, _) in enumerate(HUNTS)])
def test_same_rows_as_local(
    providers: dict[str, QueryProvider | str], engine: str, hunt: str, params: dict[str, Any]
) -> None:
    other = providers[engine]
    if isinstance(other, str):
        pytest.skip(other)
    local = providers["local"]
    assert isinstance(local, QueryProvider)
    want = local.run(hunt, **{**WINDOW, **params})
    got = other.run(hunt, **{**WINDOW, **params})
    assert list(got.columns) == list(want.columns), f"{engine} {hunt}: columns differ"
    columns = list(want.columns)
    assert _rows(got, columns) == _rows(want, columns), f"{engine} {hunt}({params}) rows differ"
    if "EventKey" in columns:  # row hunts: the same order too (TimeGenerated, EventKey)
        assert list(got["EventKey"]) == list(want["EventKey"])


def test_parity_hunts_are_not_trivial(providers: dict[str, QueryProvider | str]) -> None:
    local = providers["local"]
    assert isinstance(local, QueryProvider)
    sizes = {f"{h}{p}": len(local.run(h, **{**WINDOW, **p})) for h, p in HUNTS}
    assert all(sizes.values()), f"hunts returning nothing prove nothing: {sizes}"
    assert len({h for h, _ in HUNTS}) >= 15
