"""The spark driver: pyspark local[2] over a LocalStore's Parquet files holding contract_frames():
the driver contract, the translated local catalogue, Spark literals, given frames (slow: starts a JVM)."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import huntbook.formats  # noqa: F401 - imported before huntbook.session (an import cycle in huntbook/__init__)
from huntbook.config import Config
from huntbook.drivers.base import sql_literal
from huntbook.drivers.spark import SparkDriver
from huntbook.drivers.sql import native_literal
from huntbook.errors import DriverError
from huntbook.plugins import registry
from huntbook.session import QueryProvider
from huntbook.store import LocalStore
from huntbook.testing.drivers import (
    INJECTION,
    WINDOW,
    DriverContract,
    contract_frames,
    expected,
    spark_session,
    write_store,
)

_NO_SPARK = (
    "pyspark is not installed"
    if importlib.util.find_spec("pyspark") is None
    else ("no Java runtime for pyspark" if shutil.which("java") is None else None)
)
pytestmark = [pytest.mark.slow, pytest.mark.skipif(_NO_SPARK is not None, reason=str(_NO_SPARK))]
HOSTILE = [
    INJECTION,
    "back\\slash\\",
    "\\' OR ''='",
    "quote\"'mix",
    "ünï©ødé ☃ 𝄞",
    "line1\nline2\ttab",
    "50%_*?",
]


@pytest.fixture(scope="module")
def spark() -> Any:
    registry("huntbook.drivers").register("spark", SparkDriver)  # until the entry point exists
    return spark_session()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> LocalStore:
    return write_store(tmp_path_factory.mktemp("spark-store"), contract_frames())


class TestSparkContract(DriverContract):
    no_auth_reason = "Spark local[2] has no authentication"

    @pytest.fixture(autouse=True)
    def _session(self, spark: Any, store: LocalStore) -> None:
        self.spark, self.store = spark, store

    def provider(self, **options: Any) -> QueryProvider:
        return QueryProvider("spark", store=self.store, session=self.spark, config=Config(), **options)

    def slow_query(self) -> str:
        return "SELECT sum(id * 7 % 13) FROM range(0, 100000000000)"

    def server_error_query(self) -> str:
        return "SELECT raise_error('contract failure')"


@pytest.fixture
def qp(spark: Any, store: LocalStore) -> Iterator[QueryProvider]:
    provider = QueryProvider("spark", store=store, session=spark, config=Config())
    yield provider
    provider.close()


def test_spark_analyses_every_translated_local_query(qp: QueryProvider, store: LocalStore) -> None:
    local = QueryProvider("local", store=store, config=Config())
    assert set(qp.list_queries()) == set(local.list_queries())
    qp.connect()
    for name in qp.list_queries():
        spec = qp.query_spec(name)
        params: dict[str, Any] = {p: "WS01" for p, param in spec.parameters.items() if param.required}
        if "event_keys" in params:
            params["event_keys"] = ["e001", "e002"]
        if spec.time_range:
            params.update(WINDOW)
        planned = qp.driver.spark.sql(qp.driver.translate(qp.render(name, **params)))  # parsed and analysed
        assert planned.columns == list(local.run(name, **params).columns), name
    local.close()


def test_case_insensitive_regex_and_min_by(qp: QueryProvider) -> None:
    encoded = list(qp.process.encoded_commands(**WINDOW)["EventKey"])
    assert {"p005", "p006", "p011"} <= set(encoded)  # -EC, /EncodedCommand, a Unicode dash: the 'i' flag kept
    rare = qp.process.rare_processes(max_count=1, **WINDOW).set_index("TargetProcessName")
    assert rare.loc["notepad", "FirstCommandLine"] == "notepad 500done"


@pytest.mark.parametrize("value", HOSTILE)
def test_literals_round_trip_through_spark(qp: QueryProvider, value: str) -> None:
    assert qp.exec_query(f"SELECT {sql_literal(value, 'str')} AS v")["v"].iloc[0] == value
    native = native_literal(value, "str", None, "spark")
    assert qp.exec_query(f"SELECT {native} AS v", language="native")["v"].iloc[0] == value


def test_frames_instead_of_a_store(spark: Any) -> None:
    frames = contract_frames(rows=10)
    with QueryProvider("spark", frames=frames, session=spark, config=Config()) as qp:
        got = qp.process.host_processes(host_name="BULK01", **WINDOW)
        assert list(got["EventKey"]) == [f"b{i:06d}" for i in range(10)]
        assert got.attrs["query_name"] == "process.host_processes"
        want = expected("process.host_processes", frames, host_name="WS01")
        assert list(qp.process.host_processes(host_name="ws01", **WINDOW)["EventKey"]) == list(
            want["EventKey"]
        )


def test_settings_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(DriverError, match="has no data"):
        SparkDriver().connect(session=object())
    with pytest.raises(DriverError, match="unknown spark setting"):
        SparkDriver(store=tmp_path).connect(colour="blue")
