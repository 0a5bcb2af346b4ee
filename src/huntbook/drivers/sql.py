"""The ``sql`` driver: the LocalStore catalogue on PostgreSQL or any SQLAlchemy database.

::

    qp = QueryProvider("sql", url="postgresql+psycopg://hunter@db.corp:5432/siem", password="env:PGPASSWORD")
    qp.process.host_processes(host_name="WS01", start="-1d")      # the local catalogue, run on PostgreSQL

The database holds the ASIM tables (``process_events``, ``authentication`` ...) with the LocalStore's
column names (quoted, case kept). Catalogue queries are DuckDB SQL (the ``local`` catalogue): their
parameters are written as DuckDB literals, then :func:`transpile` turns the whole text into the
target dialect with ``sqlglot``, which re-writes every literal for that dialect. Values are never
pasted into the text unescaped. ``exec_query(text, language="native")`` runs text of the target
dialect as it is.

Settings: ``url`` (a SQLAlchemy URL), ``password`` (kept out of the URL: a secret reference such as
``env:PGPASSWORD``), ``connect_args`` and ``engine_options`` (passed to ``create_engine``).
Timeouts: PostgreSQL's ``statement_timeout`` for the query's transaction, and a cancel of the DB-API
connection for other databases.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from huntbook.drivers.base import Driver, sql_literal
from huntbook.drivers.local import _utc_frame
from huntbook.errors import DriverError, MissingExtraError, ParameterError, QueryError, QueryTimeoutError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SqlDriver", "native_literal", "transpile"]

#: SQLAlchemy backend name -> sqlglot dialect.
DIALECTS: Final = {
    "postgresql": "postgres",
    "mssql": "tsql",
    "sqlite": "sqlite",
    "mysql": "mysql",
    "mariadb": "mysql",
    "oracle": "oracle",
    "snowflake": "snowflake",
    "trino": "trino",
    "presto": "presto",
    "bigquery": "bigquery",
    "redshift": "redshift",
    "databricks": "databricks",
    "clickhouse": "clickhouse",
    "duckdb": "duckdb",
}
_SOURCE: Final = "duckdb"  # the dialect of the catalogue this driver runs (the local one)
_HEX_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\x\{([0-9A-Fa-f]{1,8})\}")


# ----------------------------------------------------------------------------------------------
# Translation


def transpile(text: str, dialect: str, *, where: str | None = None) -> str:
    """DuckDB SQL ``text`` in ``dialect`` (a sqlglot dialect name), identifiers quoted (ASIM names
    keep their case). Raises :class:`QueryError` when sqlglot cannot read or write the query."""
    import sqlglot
    from sqlglot.errors import ErrorLevel, SqlglotError

    try:
        statements = [s for s in sqlglot.parse(text, read=_SOURCE) if s is not None]
        fixed = [_portable(statement, dialect) for statement in statements]
        return ";\n".join(
            s.sql(dialect=dialect, identify=True, unsupported_level=ErrorLevel.RAISE) for s in fixed
        )
    except SqlglotError as exc:
        raise QueryError(
            f"cannot translate the query from DuckDB SQL to {dialect}: {str(exc).splitlines()[0][:300]}",
            where=where,
            hint="write the query in SQL both engines accept, or run native text with language='native'",
        ) from None


def _portable(tree: Any, dialect: str) -> Any:
    """Rewrite DuckDB functions that ``dialect`` lacks (sqlglot writes the rest)."""
    from sqlglot import exp

    if dialect in ("spark", "databricks", "hive"):
        return tree.transform(_inline_regex_flags)
    if dialect not in ("postgres", "redshift"):
        return tree

    def fix(node: Any) -> Any:
        if isinstance(node, exp.Contains):  # contains(a, b) -> strpos(a, b) > 0
            return exp.GT(this=exp.Anonymous(this="STRPOS", expressions=[node.this, node.expression]),
                          expression=exp.Literal.number(0))  # fmt: skip
        if isinstance(node, exp.EndsWith):  # ends_with(a, b) -> right(a, length(b)) = b
            suffix = node.expression
            right = exp.Anonymous(this="RIGHT", expressions=[node.this, exp.Length(this=suffix.copy())])
            return exp.EQ(this=right, expression=suffix.copy())
        if isinstance(node, exp.ArraySort) and _sortable_aggregate(node.this):
            return _ordered_array_agg(node.this)
        if isinstance(node, exp.ArgMin | exp.ArgMax):  # arg_min(a, b) -> (array_agg(a ORDER BY b) ...)[1]
            return _arg_extreme(node, descending=isinstance(node, exp.ArgMax))
        if isinstance(node, exp.RegexpLike) and isinstance(node.expression, exp.Literal):
            pattern = _HEX_ESCAPE.sub(_unicode_escape, node.expression.this)
            node.set("expression", exp.Literal.string(pattern))
        return node

    return tree.transform(fix)


def _inline_regex_flags(node: Any) -> Any:
    """``regexp_matches(a, p, 'i')`` -> ``a RLIKE '(?i)p'`` (Java regexes take inline flags)."""
    from sqlglot import exp

    flag = node.args.get("flag") if isinstance(node, exp.RegexpLike) else None
    if isinstance(flag, exp.Literal) and isinstance(node.expression, exp.Literal):
        flags = "".join(sorted(set(flag.this) & set("imsx")))
        pattern = f"(?{flags}){node.expression.this}" if flags else node.expression.this
        return exp.RegexpLike(this=node.this.copy(), expression=exp.Literal.string(pattern))
    return node


def _unicode_escape(match: re.Match[str]) -> str:
    code = int(match.group(2), 16)
    return match.group(1) + (f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")


def _sortable_aggregate(node: Any) -> bool:
    from sqlglot import exp

    inner = node.this if isinstance(node, exp.Filter) else node
    return isinstance(inner, exp.ArrayAgg)


def _ordered_array_agg(node: Any) -> Any:
    """``list_sort(list(x))`` -> ``array_agg(x ORDER BY x)`` (a FILTER clause is kept)."""
    from sqlglot import exp

    aggregate = node.this if isinstance(node, exp.Filter) else node
    value = aggregate.this
    key = value.expressions[0] if isinstance(value, exp.Distinct) else value
    ordered = exp.ArrayAgg(this=exp.Order(this=value.copy(), expressions=[exp.Ordered(this=key.copy())]))
    return (
        exp.Filter(this=ordered, expression=node.expression.copy())
        if isinstance(node, exp.Filter)
        else ordered
    )


def _arg_extreme(node: Any, *, descending: bool) -> Any:
    """``arg_min(a, b)`` -> ``(array_agg(a ORDER BY b) FILTER (WHERE a, b not null))[1]``."""
    from sqlglot import exp

    value, key = node.this, node.expression
    ordered = exp.ArrayAgg(
        this=exp.Order(this=value.copy(), expressions=[exp.Ordered(this=key.copy(), desc=descending)])
    )
    not_null = exp.and_(exp.Not(this=exp.Is(this=value.copy(), expression=exp.Null())),
                        exp.Not(this=exp.Is(this=key.copy(), expression=exp.Null())))  # fmt: skip
    filtered = exp.Filter(this=ordered, expression=exp.Where(this=not_null))
    first = exp.Literal.number(0)  # sqlglot indexes from 0 and writes [1] for PostgreSQL
    return exp.Bracket(this=exp.Paren(this=filtered), expressions=[first])


def native_literal(value: Any, param_type: str, quoted: str | None, dialect: str) -> str:
    """``value`` as a literal of ``dialect``: the DuckDB literal, translated by sqlglot.

    ``quoted`` is the opening quote of the string literal the placeholder stands in (only ``'``
    is supported: the escaped content is returned), or None for a complete literal.
    """
    if quoted is None:
        if param_type == "list":
            return ", ".join(native_literal(item, "str", None, dialect) for item in value)
        if param_type == "identifier":
            return str(value)
        return _select_item(sql_literal(value, param_type), dialect)
    if quoted != "'":
        raise QueryError(
            f"cannot place a value inside a {quoted} literal of {dialect}",
            hint="use '...' around the placeholder",
        )
    written = _select_item(f"'{sql_literal(value, param_type, quoted)}'", dialect)
    if len(written) < 2 or written[0] != "'" or written[-1] != "'":
        raise ParameterError(
            f"this value cannot go inside a '...' literal of {dialect}", hint="use a bare placeholder instead"
        )
    return written[1:-1]


def _select_item(expression: str, dialect: str) -> str:
    """One DuckDB expression written in ``dialect``."""
    return transpile(f"SELECT {expression}", dialect).removeprefix("SELECT ")


# ----------------------------------------------------------------------------------------------
# The driver


class SqlDriver(Driver):
    """Run the LocalStore catalogue (DuckDB SQL, translated) on a SQLAlchemy database."""

    name = "sql"
    languages = ("sql", "native")
    #: The environment whose packaged catalogue this driver runs (see :class:`QueryProvider`).
    catalogue = "local"

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self._engine: Any = None
        self._secrets: list[str] = []
        self.dialect: str | None = None
        self.url: str | None = None  # the URL with the password hidden

    def connect(self, **settings: Any) -> None:
        """Create the engine from ``url`` (+ ``password``) and check that it answers."""
        try:
            import sqlalchemy
            import sqlglot  # noqa: F401 - needed by every catalogue query
        except ImportError as exc:
            raise MissingExtraError("the sql driver", "sql", missing=getattr(exc, "name", None)) from exc
        merged = {**self.settings, **settings}
        raw_url, password = merged.pop("url", None), merged.pop("password", None)
        connect_args = dict(merged.pop("connect_args", None) or {})
        engine_options = dict(merged.pop("engine_options", None) or {})
        if merged:
            raise DriverError(
                f"unknown sql setting(s): {', '.join(sorted(merged))}",
                hint="known: url, password, connect_args, engine_options",
            )
        if not raw_url:
            raise DriverError(
                "the sql driver needs a url",
                hint="QueryProvider('sql', url='postgresql+psycopg://user@host/db')",
            )
        try:
            url = sqlalchemy.make_url(str(raw_url))
        except Exception as exc:
            raise DriverError(
                f"not a SQLAlchemy URL ({type(exc).__name__})", hint="dialect+driver://user@host/db"
            ) from None
        if password is not None:
            url = url.set(password=str(password))
        self._secrets = [s for s in (url.password,) if s]
        self.url = url.render_as_string(hide_password=True)
        backend = url.get_backend_name()
        self.dialect = DIALECTS.get(backend, backend)
        self.close()
        engine = sqlalchemy.create_engine(
            url, connect_args=connect_args, pool_pre_ping=True, **engine_options
        )
        try:
            with engine.connect() as con:
                con.exec_driver_sql("SELECT 1")
        except Exception as exc:
            engine.dispose()
            raise self._connect_error(exc) from None
        self._engine = engine
        self.settings = {"url": self.url}  # the password is not kept beside the engine
        self.connected = True

    def _connect_error(self, exc: Exception) -> DriverError:
        message = self._scrub(_db_message(exc))
        if re.search(r"auth|password|login|access denied|permission", message, re.I):
            return DriverError(
                f"authentication failed at {self.url}: {message}",
                hint="check the user and password (connections.sql in huntbook.yaml; password: env:NAME)",
            )
        return DriverError(
            f"cannot connect to {self.url}: {message}", hint="check the URL and that the server is up"
        )

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def translate(self, text: str) -> str:
        """DuckDB SQL ``text`` (a rendered catalogue query) in this database's dialect."""
        if self.dialect is None:
            self.connect()
        assert self.dialect is not None
        return transpile(text, self.dialect)

    def literal(
        self, value: Any, param_type: str, quoted: str | None = None, language: str | None = None
    ) -> str:
        """DuckDB literals for ``sql`` (translated with the query); the target's own for ``native``."""
        if (language or "sql") == "sql":
            return sql_literal(value, param_type, quoted)
        if self.dialect is None:
            raise QueryError(
                "the sql driver must connect before writing native literals", hint="call qp.connect()"
            )
        return native_literal(value, param_type, quoted, self.dialect)

    def execute(
        self, text: str, language: str | None = None, timeout: float | None = None, *, name: str | None = None
    ) -> pd.DataFrame:
        """Run ``text`` (DuckDB SQL, translated; or ``native``) and return every row."""
        where = name or "ad hoc sql query"
        language = (language or "sql").lower()
        if language not in self.languages:
            raise QueryError(f"the sql driver runs sql or native, not {language!r}", where=where)
        if self._engine is None:
            self.connect()
        assert self.dialect is not None
        statement = transpile(text, self.dialect, where=where) if language == "sql" else text
        import sqlalchemy.exc

        fired = threading.Event()
        try:
            with self._engine.connect() as con, con.begin():
                con = con.execution_options(no_parameters=True)  # no %-interpolation by the DB-API
                if self.dialect == "postgres":
                    con.exec_driver_sql("SET LOCAL TimeZone = 'UTC'")
                    if timeout is not None:
                        con.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, int(timeout * 1000))}")
                watchdog = _watchdog(con, timeout, fired)
                try:
                    result = con.exec_driver_sql(statement)
                    columns = list(result.keys()) if result.returns_rows else []
                    rows = result.fetchall() if result.returns_rows else []
                finally:
                    if watchdog is not None:
                        watchdog.cancel()
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise self._query_error(exc, where, timeout, fired.is_set()) from None
        return _frame(rows, columns)

    def _query_error(self, exc: Exception, where: str, timeout: float | None, fired: bool) -> Exception:
        import sqlalchemy.exc

        message = self._scrub(_db_message(exc))
        code = getattr(getattr(exc, "orig", None), "sqlstate", None)
        if fired or code == "57014" or "statement timeout" in message:
            return QueryTimeoutError(
                f"query cancelled after the {timeout or 0:g} s timeout",
                where=where,
                hint="raise timeout= or narrow the time range (start/end, or split_by=)",
            )
        if isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError) and getattr(
            exc, "connection_invalidated", False
        ):
            return DriverError(f"the connection to {self.url} failed: {message}", where=where)
        if isinstance(exc, sqlalchemy.exc.DBAPIError):
            return QueryError(
                message, where=where, hint="check the query with print_query=True or qp.driver.translate"
            )
        return DriverError(f"{type(exc).__name__}: {message}", where=where)

    def close(self) -> None:
        """Dispose of the engine's connections."""
        if self._engine is not None:
            self._engine.dispose()
        self._engine = None
        self.connected = False

    def __repr__(self) -> str:
        return f"SqlDriver(url={self.url!r}, connected={self.connected})"


def _watchdog(con: Any, timeout: float | None, fired: threading.Event) -> threading.Timer | None:
    """A timer cancelling the DB-API connection's statement a little after ``timeout`` seconds."""
    if timeout is None:
        return None
    raw = con.connection.dbapi_connection
    cancel: Callable[[], Any] | None = getattr(raw, "cancel", None) or getattr(raw, "interrupt", None)
    if cancel is None:
        return None

    def fire() -> None:
        fired.set()
        cancel()

    timer = threading.Timer(timeout + 2.0, fire)  # statement_timeout answers first where there is one
    timer.daemon = True
    timer.start()
    return timer


def _db_message(exc: Exception) -> str:
    """The database's own first line of ``exc`` (without SQLAlchemy's statement echo)."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip() or type(orig).__name__
    return text.splitlines()[0][:500]


def _frame(rows: list[Any], columns: list[str]) -> pd.DataFrame:
    """Rows as a DataFrame: times UTC, decimals as numbers, arrays as lists."""
    import decimal

    import pandas as pd

    frame = pd.DataFrame.from_records([tuple(r) for r in rows], columns=columns)
    for column in frame.columns:
        series = frame[column]
        if series.dtype == object:
            first = next((v for v in series if v is not None), None)
            if isinstance(first, decimal.Decimal):
                number = int if all(v is None or v == v.to_integral_value() for v in series) else float
                frame[column] = [None if v is None else number(v) for v in series]
            elif isinstance(first, datetime):
                frame[column] = pd.to_datetime(series, utc=True)
            elif isinstance(first, timedelta):
                frame[column] = pd.to_timedelta(series)
    return _utc_frame(frame)
