"""The ``local`` driver: DuckDB SQL, and KQL through ``duckdb-kql``, over a LocalStore.

The driver needs only an object with a ``connect()`` method returning a DuckDB connection on which
the LocalStore tables are views (:class:`huntbook.store.LocalStore` is one). Times come back as
timezone-aware UTC.
"""

from __future__ import annotations

import threading
import warnings
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from huntbook.drivers.base import Driver
from huntbook.errors import DriverError, MissingExtraError, QueryError, QueryTimeoutError

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

__all__ = ["LocalDriver", "StoreLike"]


class StoreLike(Protocol):
    """What the local driver needs from a store."""

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection on which the store's tables can be queried."""
        ...


class LocalDriver(Driver):
    """Run DuckDB SQL or KQL on a LocalStore (``store`` is anything with ``connect()``)."""

    name = "local"
    languages = ("sql", "kql")

    def __init__(self, store: StoreLike | None = None, **settings: Any) -> None:
        super().__init__(**settings)
        self.store = store
        self._con: duckdb.DuckDBPyConnection | None = None
        self._closer: weakref.finalize[..., Any] | None = None
        self._version: Any = None  # the store's version when connected

    def connect(self, **settings: Any) -> None:
        """Open a connection from the store; ``store=`` here replaces the one given at construction."""
        store = settings.pop("store", None) or self.store
        if settings:
            raise DriverError(
                f"unknown local driver setting(s): {', '.join(sorted(settings))}",
                hint="the local driver takes only store=; DuckDB settings go in the config's duckdb section",
            )
        if store is None:
            raise DriverError(
                "the local driver has no store",
                hint="QueryProvider('local', store=hb.LocalStore('case-folder')) or store='case-folder'",
            )
        self.close()
        self.store = store
        self._version = getattr(store, "version", None)
        try:
            con = store.connect()
            con.execute("SET TimeZone = 'UTC'")
        except Exception as exc:
            raise DriverError(f"cannot open the local store: {type(exc).__name__}: {exc}") from exc
        self._con = con
        self._closer = weakref.finalize(self, con.close)  # also at interpreter exit
        self.connected = True

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The open DuckDB connection (connecting on first use, and again after the store changed)."""
        if self._con is None or getattr(self.store, "version", None) != self._version:
            self.connect()
        assert self._con is not None
        return self._con

    def execute(
        self, text: str, language: str | None = None, timeout: float | None = None, *, name: str | None = None
    ) -> pd.DataFrame:
        """Run SQL or KQL ``text``; cancel it and raise :class:`QueryTimeoutError` after ``timeout`` s."""
        import duckdb

        language = (language or "sql").lower()
        if language not in self.languages:
            raise QueryError(f"the local driver runs sql or kql, not {language!r}", where=name)
        con = self.connection
        run = self._kql_runner(con, text) if language == "kql" else lambda: _fetch(con.execute(text))
        where = name or f"ad hoc {language} query"
        try:
            frame = _with_timeout(con, run, timeout, where)
        except duckdb.Error as exc:
            raise QueryError(
                str(exc).strip(), where=where, hint="check the query with print_query=True"
            ) from exc
        return _utc_frame(frame)

    @staticmethod
    def _kql_runner(con: duckdb.DuckDBPyConnection, text: str) -> Callable[[], pd.DataFrame]:
        try:
            import duckdb_kql
        except ImportError as exc:
            raise MissingExtraError("KQL on the local store", "kql", missing="duckdb_kql") from exc

        def run() -> pd.DataFrame:
            try:
                return _fetch(duckdb_kql.kql(con, text))
            except duckdb_kql.KqlError as exc:
                raise QueryError(
                    f"KQL: {exc}", hint="the local store runs the KQL subset duckdb-kql supports"
                ) from exc

        return run

    def close(self) -> None:
        """Close the DuckDB connection."""
        if self._closer is not None:
            self._closer()
        self._con = self._closer = None
        self.connected = False


def _with_timeout(
    con: duckdb.DuckDBPyConnection, run: Callable[[], pd.DataFrame], timeout: float | None, where: str
) -> pd.DataFrame:
    """``run()``, interrupting ``con`` if it takes longer than ``timeout`` seconds."""
    if timeout is None:
        return run()
    lock = threading.Lock()
    state = {"running": True, "fired": False}

    def interrupt() -> None:
        with lock:
            if state["running"]:
                state["fired"] = True
                con.interrupt()

    timer = threading.Timer(timeout, interrupt)
    timer.daemon = True
    timer.start()
    try:
        return run()
    except Exception as exc:
        if state["fired"]:
            raise QueryTimeoutError(
                f"query cancelled after the {timeout:g} s timeout",
                where=where,
                hint="raise timeout= or narrow the time range (start/end, or split_by=)",
            ) from exc
        raise
    finally:
        with lock:
            state["running"] = False
        timer.cancel()


def _fetch(result: duckdb.DuckDBPyConnection | duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """The result as a DataFrame, without DuckDB's internal pandas deprecation noise."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The inplace keyword", DeprecationWarning)
        return result.df()


def _utc_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Datetime columns as UTC (naive ones are UTC already), DuckDB lists as Python lists."""
    import numpy as np
    import pandas as pd

    for column in frame.columns:
        series = frame[column]
        if isinstance(series.dtype, pd.DatetimeTZDtype):
            frame[column] = series.dt.tz_convert("UTC")
        elif pd.api.types.is_datetime64_dtype(series.dtype):
            frame[column] = series.dt.tz_localize("UTC")
        elif series.dtype == object and isinstance(_first(series), np.ndarray):
            frame[column] = series.map(lambda v: v.tolist() if isinstance(v, np.ndarray) else v)
    return frame


def _first(series: pd.Series) -> Any:
    """The first non-null value of ``series``, or None."""
    values = series.dropna()
    return values.iloc[0] if len(values) else None
