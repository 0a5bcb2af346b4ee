"""The sql driver on a real PostgreSQL (the machine's initdb/pg_ctl, unprivileged, on 127.0.0.1):
the driver contract, translation of the local catalogue, literals, settings and secrets."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import huntbook.formats  # noqa: F401 - imported before huntbook.session (an import cycle in huntbook/__init__)
from huntbook.config import Config, Secret
from huntbook.drivers.base import sql_literal
from huntbook.drivers.sql import SqlDriver, native_literal, transpile
from huntbook.errors import DriverError, QueryError
from huntbook.plugins import registry
from huntbook.queries import load_catalogue
from huntbook.session import QueryProvider
from huntbook.testing.drivers import (
    CANARY_SECRET,
    INJECTION,
    WINDOW,
    DriverContract,
    PostgresServer,
    contract_frames,
    expected,
)

pytestmark = pytest.mark.skipif(
    PostgresServer.skip_reason() is not None, reason=str(PostgresServer.skip_reason())
)
HOSTILE = [
    INJECTION,
    "back\\slash\\",
    "\\' OR ''='",
    "quote\"'mix",
    "ünï©ødé ☃ 𝄞",
    "line1\nline2\ttab",
    "50%_*?",
    "$$x$$",
]


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    registry("huntbook.drivers").register("sql", SqlDriver)  # until the entry point exists
    with PostgresServer() as server:
        server.load(contract_frames())
        yield server


class TestSqlContract(DriverContract):
    @pytest.fixture(autouse=True)
    def _server(self, postgres: PostgresServer) -> None:
        self.server = postgres

    def provider(self, **options: Any) -> QueryProvider:
        return QueryProvider("sql", url=self.server.url, config=Config(), **options)

    def bad_auth_provider(self) -> QueryProvider:
        return QueryProvider("sql", url=self.server.url_with(CANARY_SECRET), config=Config())

    def slow_query(self) -> str:
        return "SELECT count(*) FROM generate_series(1, 10000000000)"

    def server_error_query(self) -> str:
        return 'SELECT 1 / (count(*) - count(*)) FROM "process_events"'

    def broken_provider(self) -> QueryProvider:
        return QueryProvider("sql", url="postgresql+psycopg://huntbook:x@127.0.0.1:9/hunt", config=Config())


@pytest.fixture
def qp(postgres: PostgresServer) -> Iterator[QueryProvider]:
    provider = QueryProvider("sql", url=postgres.url, config=Config())
    yield provider
    provider.close()


def test_sql_runs_the_whole_local_catalogue(qp: QueryProvider) -> None:
    assert set(qp.list_queries()) == set(load_catalogue("local").queries)
    assert qp.catalogue_errors == []
    for name in qp.list_queries():
        spec = qp.query_spec(name)
        params: dict[str, Any] = {p: "WS01" for p, param in spec.parameters.items() if param.required}
        if "event_keys" in params:
            params["event_keys"] = ["e001", "e002"]
        if spec.time_range:
            params.update(WINDOW)
        result = qp.run(name, **params)
        assert result.attrs["query_name"] == name


def test_aggregates_and_arrays_come_back_typed(qp: QueryProvider) -> None:
    rare = qp.process.rare_processes(max_count=1, **WINDOW).set_index("TargetProcessName")
    assert rare.loc["notepad", "FirstCommandLine"] == "notepad 500done"  # arg_min on PostgreSQL
    assert rare.loc["notepad", "Count"] == 1
    spray = qp.authentication.password_spray(min_accounts=5, **WINDOW)
    assert spray["Accounts"].iloc[0] == [f"corp\\user{i}" for i in range(6)]  # sorted, distinct
    traffic = qp.network.hourly_traffic(ip_address="203.0.113.80", **WINDOW)
    assert str(traffic["TimeGenerated"].dtype) == "datetime64[us, UTC]"
    assert traffic[["DstIpAddr", "Connections", "BytesOut", "BytesIn"]].values.tolist()[0] == [
        "203.0.113.80", 2, 4000, 51000,
    ]  # fmt: skip


def test_unicode_dash_regex_and_literal_backslashes(qp: QueryProvider) -> None:
    assert "p011" in list(qp.process.encoded_commands(**WINDOW)["EventKey"])  # \x{2013} in the pattern
    children = qp.process.process_children(process_name="cmd.exe", **WINDOW)  # ends_with, not notcmd.exe
    assert list(children["EventKey"]) == ["p001", "p005", "p008"]
    assert list(qp.process.command_line_search(pattern="C:\\Temp\\", **WINDOW)["EventKey"]) == ["p016"]


@pytest.mark.parametrize("value", HOSTILE)
def test_literals_round_trip_through_postgres(qp: QueryProvider, value: str) -> None:
    translated = qp.exec_query(f"SELECT {sql_literal(value, 'str')} AS v")  # DuckDB literal, translated
    assert translated["v"].iloc[0] == value
    qp.connect()
    native = qp.exec_query(f"SELECT {native_literal(value, 'str', None, 'postgres')} AS v", language="native")
    assert native["v"].iloc[0] == value
    inner = native_literal(value, "str", "'", "postgres")
    assert qp.exec_query(f"SELECT '{inner}' AS v", language="native")["v"].iloc[0] == value


def test_typed_literals_round_trip(qp: QueryProvider) -> None:
    when = datetime(2024, 3, 1, 12, 30, 15, 250000, tzinfo=UTC)
    span = timedelta(hours=1, microseconds=5)
    row = qp.exec_query(
        f"SELECT {sql_literal(when, 'datetime')} AS t, {sql_literal(span, 'timespan')} AS d, "
        f"{sql_literal(7, 'int')} AS n, {sql_literal(True, 'bool')} AS b, {sql_literal(None, 'str')} AS z"
    ).iloc[0]
    assert row["t"] == when and row["d"] == timedelta(hours=1, microseconds=5)
    assert (row["n"], bool(row["b"]), row["z"]) == (7, True, None)


def test_native_queries_run_as_written(qp: QueryProvider) -> None:
    result = qp.exec_query(
        'SELECT count(*) AS n FROM "process_events" WHERE "DvcHostname" ~* \'^ws0[12]\'', "native"
    )
    frame = contract_frames()["process_events"]
    assert result["n"].iloc[0] == frame["DvcHostname"].str.match(r"(?i)^ws0[12]").sum()


def test_translation_keeps_column_case_and_rewrites_functions() -> None:
    text = transpile(
        "SELECT list_sort(list(DISTINCT a)) AS s, arg_min(b, TimeGenerated) AS f FROM t "
        "WHERE contains(lower(x), 'y') AND ends_with(x, '.exe') AND regexp_matches(x, '\\x{2013}', 'i')",
        "postgres",
    )
    assert '"TimeGenerated"' in text and "CONTAINS" not in text.upper().replace("STRPOS", "")
    assert "ARRAY_AGG(DISTINCT" in text and "ORDER BY" in text and "\\u2013" in text and "~*" in text
    with pytest.raises(QueryError, match="cannot translate"):
        transpile("SELECT FROM WHERE (", "postgres", where="q.broken")


def test_password_from_a_secret_reference_never_shown(
    postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("HB_TEST_PGPW", postgres.password)
    url = postgres.url.replace(f":{postgres.password}@", "@")
    config = Config(connections={"sql": {"url": url, "password": Secret("env:HB_TEST_PGPW")}})
    with QueryProvider("sql", config=config) as qp:
        got = qp.process.host_processes(host_name="WS02", **WINDOW)
        assert list(got["EventKey"]) == list(
            expected("process.host_processes", contract_frames(), host_name="WS02")["EventKey"]
        )
        assert postgres.password not in repr(qp.driver) and postgres.password not in str(qp.driver.settings)
        with pytest.raises(QueryError) as info:
            qp.exec_query("SELECT * FROM nowhere")
    assert "nowhere" in str(info.value) and postgres.password not in str(info.value)
    assert postgres.password not in caplog.text


def test_settings_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(DriverError, match="needs a url"):
        SqlDriver().connect()
    with pytest.raises(DriverError, match="unknown sql setting"):
        SqlDriver().connect(url="sqlite://", colour="blue")
    sqlite = SqlDriver()
    sqlite.connect(url=f"sqlite:///{tmp_path / 'x.db'}")  # any SQLAlchemy URL
    assert sqlite.dialect == "sqlite"
    assert sqlite.execute("SELECT lower('AB') AS v")["v"].tolist() == ["ab"]
    sqlite.close()
