"""The ``spark`` driver: the LocalStore catalogue as Spark SQL, over the LocalStore's Parquet files.

::

    qp = QueryProvider("spark", store="~/hunts/case-42")                  # pyspark local[2]
    qp = QueryProvider("spark", store=store, master="spark://head:7077")  # a cluster reading the same files
    qp.process.host_processes(host_name="WS01", start="-1d")

Each table of :data:`huntbook.schema.TABLES` is a temporary view: over the store's Parquet parts
(``store.parts(table)``), over a DataFrame given in ``frames={"process_events": df, ...}``, or empty
with the schema's columns. Catalogue queries are DuckDB SQL (the ``local`` catalogue), translated to
Spark SQL by :func:`huntbook.drivers.sql.transpile` after their parameters were written as DuckDB
literals; ``exec_query(text, language="native")`` runs Spark SQL as it is.

Settings: ``store``, ``frames``, ``session`` (an existing SparkSession, left running on close),
``master`` (default ``local[2]``), ``conf`` (extra Spark settings). A session the driver starts has
the UI off, binds to 127.0.0.1, uses UTC and few shuffle partitions. A query past its timeout is
cancelled (its Spark job group) and raises :class:`QueryTimeoutError`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import uuid
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from huntbook.drivers.base import Driver, sql_literal
from huntbook.drivers.local import _utc_frame
from huntbook.drivers.sql import native_literal, transpile
from huntbook.errors import DriverError, MissingExtraError, QueryError, QueryTimeoutError
from huntbook.schema import TABLES
from huntbook.store import LocalStore

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DEFAULT_CONF", "SparkDriver"]

#: Settings of a session the driver starts (``conf=`` overrides them).
DEFAULT_CONF: Final = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.driver.host": "127.0.0.1",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.shuffle.partitions": "4",
    "spark.default.parallelism": "2",
    "spark.driver.memory": "1g",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.ansi.enabled": "false",
    "spark.sql.adaptive.enabled": "false",
}
_SPARK_TYPES: Final = {
    "VARCHAR": "string",
    "TIMESTAMPTZ": "timestamp",
    "INTEGER": "int",
    "BIGINT": "bigint",
    "DOUBLE": "double",
}


class SparkDriver(Driver):
    """Run the LocalStore catalogue on Spark SQL (``store`` is a LocalStore or anything with ``parts()``)."""

    name = "spark"
    languages = ("sql", "native")
    #: The environment whose packaged catalogue this driver runs (see :class:`QueryProvider`).
    catalogue = "local"

    def __init__(self, store: Any = None, **settings: Any) -> None:
        super().__init__(**settings)
        self.store = store
        self.spark: Any = None
        self._owned = False  # the driver started the session (and stops it on close)
        self._folder: Path | None = None  # Parquet copies of given frames
        self._views: list[str] = []

    def connect(self, **settings: Any) -> None:
        """Start (or adopt) a SparkSession and register the tables as temporary views."""
        try:
            import sqlglot  # noqa: F401 - needed by every catalogue query
            from pyspark.sql import SparkSession
        except ImportError as exc:
            raise MissingExtraError("the spark driver", "spark", missing=getattr(exc, "name", None)) from exc
        merged = {**self.settings, **settings}
        store = merged.pop("store", None) or self.store
        frames = merged.pop("frames", None) or {}
        session = merged.pop("session", None)
        master = str(merged.pop("master", "local[2]"))
        conf = {**DEFAULT_CONF, **{str(k): str(v) for k, v in (merged.pop("conf", None) or {}).items()}}
        if merged:
            raise DriverError(
                f"unknown spark setting(s): {', '.join(sorted(merged))}",
                hint="known: store, frames, session, master, conf",
            )
        if store is None and not frames:
            raise DriverError(
                "the spark driver has no data",
                hint="QueryProvider('spark', store='case-folder') or frames={...}",
            )
        if isinstance(store, str | os.PathLike):
            store = LocalStore(Path(store))
        self.close()
        if session is None:
            builder = SparkSession.builder.master(master).appName("huntbook")
            for key, value in conf.items():
                builder = builder.config(key, value)
            try:
                session = builder.getOrCreate()
            except Exception as exc:
                raise DriverError(
                    f"cannot start Spark: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
                    hint="pyspark needs a Java runtime (java -version); see docs/connectors.md",
                ) from None
            self._owned = True
        self.spark, self.store = session, store
        try:
            self._register(store, frames)
        except Exception as exc:
            raise DriverError(f"cannot read the tables into Spark: {type(exc).__name__}: {exc}") from None
        self.connected = True

    def _register(self, store: Any, frames: dict[str, Any]) -> None:
        for table, columns in TABLES.items():
            if table in frames:
                data = self.spark.read.parquet(str(self._parquet(table, frames[table])))
            else:
                files = [str(p) for p in store.parts(table)] if store is not None else []
                data = self.spark.read.schema(_ddl(columns)).parquet(*files) if files else None
            self._view(table, columns, data)

    def _parquet(self, table: str, frame: Any) -> Path:
        """``frame`` written as Parquet (times as UTC microseconds), for Spark to read."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="huntbook-spark-"))
        path = self._folder / f"{table}.parquet"
        arrow = pa.Table.from_pandas(frame, preserve_index=False)
        pq.write_table(arrow, path, coerce_timestamps="us", allow_truncated_timestamps=True)
        return path

    def _view(self, table: str, columns: Any, data: Any) -> None:
        """A view with every schema column (missing ones as typed NULLs), then the extra columns."""
        from pyspark.sql import functions as F

        if data is None:
            data = self.spark.createDataFrame([], _ddl(columns))
        present = set(data.columns)
        select = [
            F.col(f"`{c}`") if c in present else F.lit(None).cast(_SPARK_TYPES[t]).alias(c)
            for c, t in columns.items()
        ]
        select += [F.col(f"`{c}`") for c in data.columns if c not in columns]
        data.select(*select).createOrReplaceTempView(table)
        self._views.append(table)

    def translate(self, text: str) -> str:
        """DuckDB SQL ``text`` (a rendered catalogue query) as Spark SQL."""
        return transpile(text, "spark")

    def literal(
        self, value: Any, param_type: str, quoted: str | None = None, language: str | None = None
    ) -> str:
        """DuckDB literals for ``sql`` (translated with the query); Spark SQL literals for ``native``."""
        if (language or "sql") == "sql":
            return sql_literal(value, param_type, quoted)
        return native_literal(value, param_type, quoted, "spark")

    def execute(
        self, text: str, language: str | None = None, timeout: float | None = None, *, name: str | None = None
    ) -> pd.DataFrame:
        """Run ``text``; cancel its Spark jobs and raise :class:`QueryTimeoutError` after ``timeout`` s."""
        where = name or "ad hoc spark query"
        language = (language or "sql").lower()
        if language not in self.languages:
            raise QueryError(f"the spark driver runs sql or native, not {language!r}", where=where)
        if self.spark is None:
            self.connect()
        statement = transpile(text, "spark", where=where) if language == "sql" else text
        context = self.spark.sparkContext
        group = f"huntbook-{uuid.uuid4().hex}"
        done, fired = threading.Event(), threading.Event()

        def cancel() -> None:  # keeps cancelling: a job submitted after the first cancel is caught too
            if done.wait(timeout):
                return
            fired.set()
            while not done.is_set():
                context.cancelJobGroup(group)
                done.wait(0.2)

        context.setJobGroup(group, where, interruptOnCancel=True)
        watchdog = threading.Thread(target=cancel, daemon=True) if timeout is not None else None
        try:
            if watchdog is not None:
                watchdog.start()
            with warnings.catch_warnings():  # pyspark's pandas 3 notices, on every call
                warnings.filterwarnings("ignore", "PySpark does not yet fully support", FutureWarning)
                warnings.filterwarnings("ignore", "toPandas attempted Arrow optimization", UserWarning)
                warnings.filterwarnings("ignore", "The copy keyword", Warning)
                frame = self.spark.sql(statement).toPandas()
        except Exception as exc:
            raise _error(exc, where, timeout, fired.is_set()) from None
        finally:
            done.set()
            context.setLocalProperty("spark.jobGroup.id", None)
        return _utc_frame(frame)

    def close(self) -> None:
        """Drop the views; stop the session if the driver started it."""
        if self.spark is not None:
            for view in self._views:
                self.spark.catalog.dropTempView(view)
            if self._owned:
                self.spark.stop()
        self._views = []
        self.spark, self._owned = None, False
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
        self.connected = False

    def __repr__(self) -> str:
        return f"SparkDriver(store={self.store!r}, connected={self.connected})"


def _ddl(columns: Any) -> str:
    """A Spark schema (DDL text) for schema ``columns``."""
    return ", ".join(f"`{c}` {_SPARK_TYPES[t]}" for c, t in columns.items())


def _error(exc: Exception, where: str, timeout: float | None, fired: bool) -> Exception:
    """A huntbook error for a Spark failure."""
    text = str(exc).strip() or type(exc).__name__
    first = text.splitlines()[0][:500]
    if fired or ("cancelled" in text.lower() and "job group" in text.lower()):
        return QueryTimeoutError(
            f"query cancelled after the {timeout or 0:g} s timeout",
            where=where,
            hint="raise timeout= or narrow the time range (start/end, or split_by=)",
        )
    kind = type(exc).__name__
    if kind in ("AnalysisException", "ParseException") or "AnalysisException" in text[:200]:
        return QueryError(f"{kind}: {first}", where=where, hint="check the query with print_query=True")
    return DriverError(f"Spark failed: {kind}: {first}", where=where)
