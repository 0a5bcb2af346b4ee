"""The driver contract, and literal writers for the query languages huntbook speaks.

A driver connects to one kind of data source and runs query text on it. A third-party driver
(Splunk, Sentinel, Elastic ...) is a small subclass registered by entry point::

    class SplunkDriver(Driver):
        name = "splunk"
        languages = ("spl",)

        def connect(self, **settings: Any) -> None:
            super().connect(**settings)            # keeps settings, marks connected
            self._service = splunklib.client.connect(**settings)

        def execute(self, text, language=None, timeout=None, *, name=None) -> pd.DataFrame:
            ...                                    # run, page through every result, return a DataFrame

        def literal(self, value, param_type, quoted=None, language=None) -> str:
            ...                                    # only if the language is not in LITERALS

    # pyproject.toml
    [project.entry-points."huntbook.drivers"]
    splunk = "mypkg.splunk:SplunkDriver [splunk]"

:class:`~huntbook.session.QueryProvider` builds the driver with no arguments (``store=`` for the
local driver), calls :meth:`Driver.connect` with the environment's connection settings (secrets
revealed) before the first query, asks :meth:`Driver.literal` to turn every parameter value into
query text, and calls :meth:`Driver.execute`. ``execute`` must raise :class:`QueryTimeoutError`
when the timeout passes (cancelling the query), :class:`QueryError` for a query the engine rejects,
and :class:`DriverError` for connection or server failures.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Final

from huntbook.errors import DriverError, ParameterError, QueryError
from huntbook.queries import LiteralFunc, QuerySpec

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["LITERALS", "Driver", "check_settings", "kql_literal", "sql_literal"]


class Driver(ABC):
    """Base class of data-source drivers.

    ``name`` is the environment name; ``languages`` the query languages :meth:`execute` accepts,
    the first being the default.
    """

    name: ClassVar[str] = "driver"
    languages: ClassVar[tuple[str, ...]] = ("sql",)
    #: another environment whose packaged catalogue this driver also runs (``sql``/``spark`` run
    #: ``local``'s DuckDB SQL, translated); the environment's own queries take precedence
    catalogue: ClassVar[str | None] = None

    def __init__(self, **settings: Any) -> None:
        self.settings: dict[str, Any] = dict(settings)
        self.connected = False

    def connect(self, **settings: Any) -> None:
        """Open the connection. ``settings`` come from the config and ``QueryProvider(**connection)``."""
        self.settings.update(settings)
        self.connected = True

    @abstractmethod
    def execute(
        self, text: str, language: str | None = None, timeout: float | None = None, *, name: str | None = None
    ) -> pd.DataFrame:
        """Run ``text`` and return every result row. ``name`` (the query's name) is for error messages."""

    def literal(
        self, value: Any, param_type: str, quoted: str | None = None, language: str | None = None
    ) -> str:
        """``value`` (already coerced to ``param_type``) as query text in ``language``.

        ``quoted`` is the opening delimiter of the string literal the placeholder stands in (then
        only the escaped content is returned), or None for a complete literal.
        """
        language = language or self.languages[0]
        writer = LITERALS.get(language)
        if writer is None:
            raise QueryError(
                f"the {self.name} driver cannot write {language} literals",
                hint=f"the driver must override literal(); known languages: {', '.join(LITERALS)}",
            )
        return writer(value, param_type, quoted)

    def catalogue_queries(self) -> list[QuerySpec]:
        """Queries the data source itself offers once connected (e.g. Splunk saved searches)."""
        return []

    def close(self) -> None:
        """Release the connection. Safe to call twice."""
        self.connected = False

    def __enter__(self) -> Driver:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(connected={self.connected})"


def check_settings(
    what: str, settings: Mapping[str, Any], known: Collection[str], secrets: Collection[str] = ()
) -> None:
    """Refuse settings outside ``known`` (a :class:`DriverError` listing them and the known ones) and
    register the values of ``secrets`` (text, or lists of it) for redaction in messages and logs."""
    from huntbook.http import remember_secret

    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise DriverError(
            f"unknown {what} setting(s): {', '.join(unknown)}",
            hint=f"known settings: {', '.join(sorted(set(known) - {'upload'}))}",
        )
    for key in secrets:
        value = settings.get(key)
        for part in value if isinstance(value, list | tuple) else [value]:
            if part:
                remember_secret(str(part))


# ----------------------------------------------------------------------------------------------
# Literal writers


def _plain_text(
    value: Any, param_type: str, iso: Callable[[datetime], str], span: Callable[[timedelta], str]
) -> str:
    """``value`` as text for inside a string literal (before escaping)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, timedelta):
        return span(value)
    if isinstance(value, list):
        return ",".join(_plain_text(item, "str", iso, span) for item in value)
    return str(value)


def _sql_time(value: datetime) -> str:
    return value.isoformat(sep=" ")


def _sql_span(value: timedelta) -> str:
    return f"{_microseconds(value)} microseconds"


def _microseconds(value: timedelta) -> int:
    return (value.days * 86400 + value.seconds) * 1_000_000 + value.microseconds


def sql_literal(value: Any, param_type: str, quoted: str | None = None) -> str:
    """DuckDB SQL. Strings are standard SQL strings (``'`` doubled; DuckDB reads no backslash escapes
    in them), datetimes ``TIMESTAMPTZ '...'``, lists comma-separated literals (for ``IN (...)``)."""
    if quoted is not None:
        return _sql_escape(_plain_text(value, param_type, _sql_time, _sql_span), quoted)
    if value is None:
        return "NULL"
    if param_type == "list":
        return ", ".join(sql_literal(item, "str") for item in value)
    if param_type == "identifier":
        return str(value)
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime):
        return f"TIMESTAMPTZ '{_sql_time(value)}'"
    if isinstance(value, timedelta):
        return f"INTERVAL '{_sql_span(value)}'"
    return _sql_escape(str(value), "'", complete=True)


def _sql_escape(text: str, quoted: str, *, complete: bool = False) -> str:
    if quoted in ("'", '"'):
        body = text.replace(quoted, quoted * 2)
    elif quoted in ("E'", "e'"):
        body = text.replace("\\", "\\\\").replace("'", "\\'")
    else:
        raise QueryError(
            f"cannot place a value inside a {quoted} literal", hint="use '...' around the placeholder"
        )
    return f"{quoted}{body}{quoted[-1]}" if complete else body


def _kql_time(value: datetime) -> str:
    fraction = f".{value.microsecond:06d}" if value.microsecond else ""
    return value.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


def _kql_span(value: timedelta) -> str:
    micros = _microseconds(value)
    return f"{micros // 1_000_000}s" if micros % 1_000_000 == 0 else f"{micros / 1_000_000!r}s"


_KQL_ESCAPES: Final = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_KQL_NULLS: Final = {
    "int": "int(null)",
    "float": "real(null)",
    "bool": "bool(null)",
    "datetime": "datetime(null)",
    "timespan": "timespan(null)",
}


def kql_literal(value: Any, param_type: str, quoted: str | None = None) -> str:
    """Kusto KQL. Strings ``"..."`` with backslash escapes (``\\\\ \\" \\n \\r \\t``); inside verbatim
    ``@'...'``/``@"..."`` literals the quote is doubled. Datetimes are bare ISO text (templates write
    ``datetime({start})``), timespans ``3600s``, lists ``"a", "b"``."""
    if quoted is not None:
        return _kql_escape(_plain_text(value, param_type, _kql_time, _kql_span), quoted)
    if value is None:
        return _KQL_NULLS.get(param_type, '""')
    if param_type == "list":
        return ", ".join(kql_literal(item, "str") for item in value)
    if param_type == "identifier":
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime):
        return _kql_time(value)
    if isinstance(value, timedelta):
        return _kql_span(value)
    return f'"{_kql_escape(str(value), chr(34))}"'


def _kql_escape(text: str, quoted: str) -> str:
    if quoted in ("'", '"'):
        return "".join(_KQL_ESCAPES.get(ch, "\\" + ch if ch == quoted else ch) for ch in text)
    if quoted in ("@'", '@"'):
        if "\n" in text or "\r" in text:
            raise ParameterError(
                "a value with a line break cannot go inside a verbatim @'...' string",
                hint="write the placeholder inside a plain '...' or \"...\" string",
            )
        return text.replace(quoted[1], quoted[1] * 2)
    if quoted == "```":
        if "```" in text:
            raise ParameterError("a value holding ``` cannot go inside a ```...``` string")
        return text
    raise QueryError(
        f"cannot place a value inside a {quoted} literal", hint='use "..." around the placeholder'
    )


#: Literal writers by query language; a driver for another language overrides :meth:`Driver.literal`.
LITERALS: Final[dict[str, LiteralFunc]] = {"sql": sql_literal, "kql": kql_literal}
