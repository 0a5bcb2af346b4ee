"""The huntbook exception tree.

Every error huntbook raises on purpose is a :class:`HuntbookError`. Catch that to handle
them all, or a subclass to handle one kind::

    HuntbookError
    ├── ConfigError          a config file or secret reference is wrong
    ├── PluginError          a plugin could not be found or loaded
    │   └── MissingExtraError    ... because an optional extra is not installed
    ├── IngestError          an input cannot be ingested at all (unknown format, unreadable file)
    ├── StoreError           a LocalStore folder is unusable (bad catalog, locked)
    ├── QueryError           a query cannot be built or run
    │   ├── QueryNotFoundError   no such catalogue query
    │   ├── ParameterError       a parameter is missing or has a bad value
    │   └── QueryTimeoutError    the query ran past its timeout and was cancelled
    ├── DriverError          a data source failed (connection, authentication, server error)
    ├── ServiceError         an online service (TI provider, RDAP ...) failed: timeout, HTTP error ...
    └── DataError            a DataFrame given to an analysis lacks a column or has unusable values

Errors carry ``where`` (the file, row, field or query concerned) and ``hint`` (what to do),
and both are part of the message. Bad *records* inside an input are never raised: they are
quarantined and counted in the ingest summary.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DataError",
    "DriverError",
    "HuntbookError",
    "IngestError",
    "MissingExtraError",
    "ParameterError",
    "PluginError",
    "QueryError",
    "QueryNotFoundError",
    "QueryTimeoutError",
    "ServiceError",
    "StoreError",
]


class HuntbookError(Exception):
    """Base class of every error huntbook raises on purpose."""

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None) -> None:
        self.message = message
        self.where = where
        self.hint = hint
        super().__init__(self._render())

    def _render(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class ConfigError(HuntbookError):
    """A configuration file or a secret reference is invalid or cannot be resolved."""


class PluginError(HuntbookError):
    """A plugin (driver, TI provider, uploader, ...) is unknown or failed to load."""


class MissingExtraError(PluginError, ImportError):
    """A plugin needs an optional extra that is not installed; the hint names the pip command."""

    def __init__(self, what: str, extra: str, *, missing: str | None = None) -> None:
        self.extra = extra
        detail = f" (missing module {missing!r})" if missing else ""
        super().__init__(
            f"{what} needs the '{extra}' extra{detail}",
            hint=f"pip install 'huntbook[{extra}]'",
        )


class IngestError(HuntbookError):
    """An input cannot be ingested at all. Bad records inside a readable input are quarantined instead."""


class StoreError(HuntbookError):
    """A LocalStore folder is unusable: unreadable catalog, locked by another writer, ..."""


class QueryError(HuntbookError):
    """A query cannot be built, rendered or run."""


class QueryNotFoundError(QueryError, KeyError):
    """No catalogue query has that name."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return self._render()


class ParameterError(QueryError, ValueError):
    """A query parameter is missing, unknown, or has a value of the wrong type."""


class QueryTimeoutError(QueryError, TimeoutError):
    """A query ran past its timeout and was cancelled."""


class DriverError(HuntbookError):
    """A data source failed: connection, authentication or a server-side error."""


class ServiceError(HuntbookError):
    """An online service failed: ``kind`` is ``timeout``, ``connection``, ``auth``, ``rate_limited``,
    ``http``, ``malformed`` or ``too_large``; ``status`` is the HTTP status when there was one.

    Messages never hold credentials: the HTTP stack scrubs every secret value it has used.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str = "http",
        status: int | None = None,
        where: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.kind = kind
        self.status = status
        super().__init__(message, where=where, hint=hint)


class DataError(HuntbookError, ValueError):
    """Data given to an analysis function is unusable: a missing column, a wrong type, an empty input."""
