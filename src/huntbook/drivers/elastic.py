"""The ``elastic`` driver: Elasticsearch through the official ``elasticsearch`` client (8.x or 9.x).

Three query languages:

- ``esql`` (the default): ES|QL text, sent to ``POST /_query``; the columnar answer (``columns`` +
  ``values``) becomes a typed DataFrame. ES|QL returns at most 10,000 rows
  (``esql.query.result_truncation_max_size``) and 1,000 without a ``LIMIT``: a result of that size
  is warned about (:class:`ElasticWarning`), never passed off as complete; aggregate with ``STATS``
  or use ``dsl``/``lucene`` for long row lists;
- ``dsl``: a JSON search body (``{"query": {...}, "sort": [...]}``). huntbook reads two members
  itself: ``index`` (the index pattern, default the ``index`` setting) and ``size`` (the most rows
  to return, default all of them). Aggregations are not read: use ES|QL ``STATS``;
- ``lucene``: a Lucene query string (``query_string``) over the ``index`` setting.

``dsl`` and ``lucene`` results are read with a point in time (``POST /<index>/_pit``) and
``search_after`` pages of ``page_size`` hits, so they are not capped by the 10,000-hit
``from + size`` window; the point in time is closed afterwards (``DELETE /_pit``), also after a
timeout or an error. Each hit is one row: ``_index``, ``_id`` and the ``_source`` fields with
dotted ECS names (``host.name``); ECS date fields (``@timestamp``, ``event.created`` ...) are UTC
datetimes.

Settings (``connections.elastic`` in ``huntbook.yaml``): ``url`` (or ``hosts``, a list), one of
``api_key`` (the encoded key, or ``[id, api_key]``; sent as ``Authorization: ApiKey``),
``username`` + ``password`` (basic) or ``bearer_token``; ``verify`` (default True; False is logged)
and ``ca_file``; ``index`` (default ``logs-*``), ``page_size`` (5,000; at most 10,000),
``keep_alive`` (``2m``), ``request_timeout`` (30 s per request), ``max_retries`` (3; 429, 502, 503
and 504 are retried).

The client checks the ``X-Elastic-Product: Elasticsearch`` header, so OpenSearch (which does not
send it) is refused with a clear error; it needs the OpenSearch client.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
import warnings
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from huntbook.drivers.base import Driver
from huntbook.errors import (
    DriverError,
    HuntbookError,
    MissingExtraError,
    ParameterError,
    QueryError,
    QueryTimeoutError,
)
from huntbook.http import _remember_secret, redact

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ElasticDriver", "ElasticWarning", "dsl_literal", "esql_literal", "lucene_literal"]

log = logging.getLogger("huntbook.drivers.elastic")

_SETTINGS: Final = frozenset(
    {
        "url",
        "hosts",
        "api_key",
        "username",
        "password",
        "bearer_token",
        "verify",
        "ca_file",
        "index",
        "page_size",
        "keep_alive",
        "request_timeout",
        "max_retries",
        "upload",  # uploader settings (huntbook.upload) may live beside the driver's
    }
)
_SECRET_SETTINGS: Final = ("api_key", "password", "bearer_token")
#: ECS fields of type date: read as UTC datetimes from dsl/lucene hits.
ECS_DATES: Final = frozenset(
    {
        "@timestamp",
        "event.created",
        "event.ingested",
        "event.start",
        "event.end",
        "process.start",
        "process.end",
        "process.parent.start",
        "file.created",
        "file.mtime",
        "file.ctime",
        "file.accessed",
    }
)
ESQL_MAX_ROWS: Final = 10_000
ESQL_DEFAULT_LIMIT: Final = 1_000
_LIMIT = re.compile(r"\|\s*LIMIT\s+\d+", re.IGNORECASE)
_DEFAULT_SORT: Final = [{"@timestamp": {"order": "asc", "unmapped_type": "date"}}]


class ElasticWarning(UserWarning):
    """Elasticsearch answered with a warning (a cut ES|QL result, a deprecation ...)."""


# ----------------------------------------------------------------------------------------------
# Literals


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _seconds(value: timedelta) -> float:
    return value.total_seconds()


def _plain(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, timedelta):
        seconds = _seconds(value)
        return f"{int(seconds)}s" if seconds.is_integer() else f"{int(seconds * 1000)}ms"
    if isinstance(value, list):
        return ",".join(_plain(item) for item in value)
    return str(value)


def _finite(value: Any) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ParameterError(f"{value!r} cannot be written as a query literal")


_ESQL_ESCAPES: Final = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _esql_escape(text: str) -> str:
    return "".join(_ESQL_ESCAPES.get(ch, ch) for ch in text)


def esql_literal(value: Any, param_type: str, quoted: str | None = None) -> str:
    """ES|QL. Strings ``"..."`` with ``\\\\ \\" \\n \\r \\t`` escapes, datetimes
    ``TO_DATETIME("2024-03-01T00:00:00.000Z")``, timespans ``3600 seconds``, lists ``"a", "b"`` (for
    ``IN (...)``), ``None`` ``null``."""
    if quoted is not None:
        if quoted != '"':
            raise QueryError(f"cannot place a value inside a {quoted} literal in ES|QL", hint='use "..."')
        return _esql_escape(_plain(value))
    if param_type == "list":
        return ", ".join(esql_literal(item, "str") for item in value)
    if param_type == "identifier":
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        _finite(value)
        return repr(value)
    if isinstance(value, datetime):
        return f'TO_DATETIME("{_iso(value)}")'
    if isinstance(value, timedelta):
        seconds = _seconds(value)
        return f"{int(seconds)} seconds" if seconds.is_integer() else f"{round(seconds * 1000)} milliseconds"
    return f'"{_esql_escape(str(value))}"'


def dsl_literal(value: Any, param_type: str, quoted: str | None = None) -> str:
    """Query DSL (JSON). A value is a JSON value (datetimes ISO-8601 strings, timespans ``"3600s"``);
    a list is ``"a", "b"`` for inside ``[ ]``; inside a ``"..."`` string the JSON-escaped text."""
    if quoted is not None:
        if quoted != '"':
            raise QueryError(f"cannot place a value inside a {quoted} literal in JSON", hint='use "..."')
        return json.dumps(_plain(value), ensure_ascii=False)[1:-1]
    if param_type == "list":
        return ", ".join(dsl_literal(item, "str") for item in value)
    if param_type == "identifier":
        return str(value)
    if isinstance(value, datetime | timedelta):
        return json.dumps(_plain(value))
    _finite(value)
    return json.dumps(value, ensure_ascii=False)


def _lucene_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def lucene_literal(value: Any, param_type: str, quoted: str | None = None) -> str:
    """Lucene query string. Text is a quoted phrase ``"..."`` (``\\"`` and ``\\\\`` escaped), so
    ``* ? : ( ) AND OR`` in a value are matched as written; numbers and booleans are bare;
    datetimes quoted ISO-8601 (``@timestamp:[{start} TO {end}}``); lists ``("a" OR "b")``."""
    if quoted is not None:
        if quoted != '"':
            raise QueryError(f"cannot place a value inside a {quoted} literal in Lucene", hint='use "..."')
        return _lucene_escape(_plain(value))
    if param_type == "list":
        return "(" + " OR ".join(lucene_literal(item, "str") for item in value) + ")"
    if param_type == "identifier":
        return str(value)
    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        _finite(value)
        return repr(value)
    return f'"{_lucene_escape(_plain(value))}"'


_LITERALS: Final = {"esql": esql_literal, "dsl": dsl_literal, "lucene": lucene_literal}


# ----------------------------------------------------------------------------------------------
# The driver


class ElasticDriver(Driver):
    """Run ES|QL, query DSL or Lucene queries on Elasticsearch."""

    name = "elastic"
    languages = ("esql", "dsl", "lucene")

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self._client: Any = None

    # -------------------------------------------------------------- connection
    def connect(self, **settings: Any) -> None:
        """Build the client and check the server (``GET /``: credentials and the product header)."""
        try:
            from elasticsearch import Elasticsearch
        except ImportError as exc:
            raise MissingExtraError("the elastic driver", "elastic", missing=exc.name) from exc
        merged = {**self.settings, **settings}
        unknown = sorted(set(merged) - _SETTINGS)
        if unknown:
            raise DriverError(
                f"unknown elastic driver setting(s): {', '.join(unknown)}",
                hint=f"known settings: {', '.join(sorted(_SETTINGS - {'upload'}))}",
            )
        for key in _SECRET_SETTINGS:
            value = merged.get(key)
            for part in value if isinstance(value, list | tuple) else [value]:
                if part:
                    _remember_secret(str(part))
        options = _client_options(merged)
        self.close()
        self.settings = merged
        client = Elasticsearch(**options)
        where = f"elastic {redact(', '.join(options['hosts']))}"
        try:
            info = client.info()
        except Exception as exc:
            client.close()
            raise self._error(exc, where) from None
        log.debug("%s: connected to Elasticsearch %s", where, info.get("version", {}).get("number"))
        self._client = client
        self.connected = True

    @property
    def client(self) -> Any:
        """The connected ``elasticsearch.Elasticsearch`` client (connecting on first use)."""
        if self._client is None:
            self.connect()
        return self._client

    def close(self) -> None:
        """Close the client's connections."""
        if self._client is not None:
            self._client.close()
        self._client = None
        self.connected = False

    def literal(
        self, value: Any, param_type: str, quoted: str | None = None, language: str | None = None
    ) -> str:
        """Literals for ES|QL, the query DSL and Lucene (see the module functions)."""
        writer = _LITERALS.get(language or "esql")
        if writer is None:
            return super().literal(value, param_type, quoted, language)
        return writer(value, param_type, quoted)

    # -------------------------------------------------------------- running
    def execute(
        self, text: str, language: str | None = None, timeout: float | None = None, *, name: str | None = None
    ) -> pd.DataFrame:
        """Run ``text`` and return every row (see the module docs for each language)."""
        language = (language or "esql").lower()
        where = name or f"ad hoc {language} query"
        if language not in self.languages:
            raise QueryError(f"the elastic driver runs esql, dsl or lucene, not {language!r}", where=where)
        deadline = time.monotonic() + timeout if timeout else None
        client = self.client
        try:
            if language == "esql":
                return self._esql(client, text, deadline, timeout, where)
            if language == "dsl":
                body = _dsl_body(text, where)
            else:
                body = {"query": {"query_string": {"query": text}}}
            index = str(body.pop("index", None) or self.settings.get("index") or "logs-*")
            return self._search(client, index, body, deadline, timeout, where)
        except HuntbookError:
            raise
        except Exception as exc:
            raise self._error(exc, where, deadline=deadline, timeout=timeout) from exc

    def _esql(
        self, client: Any, text: str, deadline: float | None, timeout: float | None, where: str
    ) -> pd.DataFrame:
        from elasticsearch import ElasticsearchWarning

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ElasticsearchWarning)
            answer = _timed(client, deadline, timeout, where).esql.query(query=text, columnar=True)
        body = answer.body
        for item in caught:
            warnings.warn(f"{where}: Elasticsearch: {item.message}", ElasticWarning, stacklevel=4)
        frame = _esql_frame(body.get("columns") or [], body.get("values") or [])
        if body.get("is_partial"):
            warnings.warn(f"{where}: ES|QL returned partial results", ElasticWarning, stacklevel=4)
        limit = ESQL_MAX_ROWS if _LIMIT.search(text) else ESQL_DEFAULT_LIMIT
        if len(frame) >= limit:
            warnings.warn(
                f"{where}: ES|QL returned {len(frame)} rows, its limit: the result may be cut "
                "(aggregate with STATS, or use a dsl/lucene query, which pages)",
                ElasticWarning,
                stacklevel=4,
            )
        return frame

    def _search(
        self,
        client: Any,
        index: str,
        body: dict[str, Any],
        deadline: float | None,
        timeout: float | None,
        where: str,
    ) -> pd.DataFrame:
        """Every hit of ``body`` on ``index``: a point in time, then ``search_after`` pages."""
        limit = body.pop("size", None)
        if body.pop("from", 0):
            raise QueryError("'from' is not used: results are read whole, page by page", where=where)
        if "aggs" in body or "aggregations" in body:
            raise QueryError(
                "aggregations are not read from dsl queries", where=where, hint="use ES|QL STATS"
            )
        page = int(self.settings.get("page_size", 5_000))
        if not 0 < page <= 10_000:
            raise DriverError(f"page_size={page} must be from 1 to 10000", where=where)
        keep_alive = str(self.settings.get("keep_alive", "2m"))
        body.setdefault("sort", _DEFAULT_SORT)
        body["track_total_hits"] = False
        pit = _timed(client, deadline, timeout, where).open_point_in_time(index=index, keep_alive=keep_alive)[
            "id"
        ]
        rows: list[dict[str, Any]] = []
        try:
            after: list[Any] | None = None
            while limit is None or len(rows) < limit:
                size = page if limit is None else min(page, limit - len(rows))
                request = {**body, "size": size, "pit": {"id": pit, "keep_alive": keep_alive}}
                if after is not None:
                    request["search_after"] = after
                answer = _timed(client, deadline, timeout, where).search(body=request)
                pit = answer.get("pit_id") or pit
                hits = answer["hits"]["hits"]
                rows += [_hit_row(hit) for hit in hits]
                if len(hits) < size:
                    break
                after = hits[-1].get("sort")
                if after is None:
                    raise DriverError("hits came back without sort values", where=where)
        finally:
            _close_pit(client, pit)
        return _hits_frame(rows)

    # -------------------------------------------------------------- errors
    def _error(
        self, exc: BaseException, where: str, *, deadline: float | None = None, timeout: float | None = None
    ) -> HuntbookError:
        """A huntbook error for a client failure, with every secret scrubbed."""
        import elasticsearch as es

        if isinstance(exc, es.AuthenticationException):
            return DriverError(
                "Elasticsearch authentication failed (HTTP 401)",
                where=where,
                hint="check api_key or username/password in connections.elastic",
            )
        if isinstance(exc, es.AuthorizationException):
            return DriverError(
                f"Elasticsearch refused the request (HTTP 403): {_reason(exc)}",
                where=where,
                hint="the user or API key lacks the read privilege on the index",
            )
        if isinstance(exc, es.UnsupportedProductError):
            return DriverError(
                "the server is not Elasticsearch (no X-Elastic-Product header)",
                where=where,
                hint="OpenSearch is not supported by the elasticsearch client; check the url",
            )
        if isinstance(exc, es.BadRequestError | es.NotFoundError):
            return QueryError(
                f"Elasticsearch rejected the query: {_reason(exc)}",
                where=where,
                hint="check the query with print_query=True (and the index name)",
            )
        if isinstance(exc, es.ApiError):
            return DriverError(f"Elasticsearch error (HTTP {exc.meta.status}): {_reason(exc)}", where=where)
        if isinstance(exc, es.ConnectionTimeout):
            if deadline is not None and time.monotonic() >= deadline - 0.05:
                return _timeout_error(timeout, where)
            return DriverError(
                "Elasticsearch did not answer in time", where=where, hint="raise request_timeout"
            )
        if isinstance(exc, es.SSLError) or "CERTIFICATE_VERIFY_FAILED" in str(exc):
            return DriverError(
                "TLS certificate verification failed",
                where=where,
                hint="set ca_file to the CA bundle of the cluster certificate (verify=False only for tests)",
            )
        if isinstance(exc, es.ConnectionError):
            return DriverError(
                f"cannot reach Elasticsearch: {redact(str(exc))[:300]}",
                where=where,
                hint="check url and that the cluster is reachable",
            )
        return DriverError(f"{type(exc).__name__}: {redact(str(exc))[:300]}", where=where)


# ----------------------------------------------------------------------------------------------
# Helpers


def _client_options(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ``elasticsearch.Elasticsearch``."""
    hosts = settings.get("hosts") or settings.get("url") or "https://localhost:9200"
    options: dict[str, Any] = {
        "hosts": [str(h) for h in (hosts if isinstance(hosts, list | tuple) else [hosts])],
        "request_timeout": float(settings.get("request_timeout", 30.0)),
        "max_retries": int(settings.get("max_retries", 3)),
        "retry_on_status": (429, 502, 503, 504),
    }
    api_key = settings.get("api_key")
    if api_key:
        options["api_key"] = (
            tuple(str(p) for p in api_key) if isinstance(api_key, list | tuple) else str(api_key)
        )
    elif settings.get("username") and settings.get("password"):
        options["basic_auth"] = (str(settings["username"]), str(settings["password"]))
    elif settings.get("bearer_token"):
        options["bearer_auth"] = str(settings["bearer_token"])
    else:
        raise DriverError(
            "the elastic driver has no credentials",
            hint="set api_key, or username and password, in connections.elastic (as env:/keyring: refs)",
        )
    verify = settings.get("verify", True)
    if not isinstance(verify, bool):
        raise DriverError(f"verify={verify!r} must be true or false")
    if not verify:
        log.warning("elastic: TLS certificate verification is turned OFF (verify=False)")
        options.update(verify_certs=False, ssl_show_warn=False)
    elif settings.get("ca_file"):
        options["ca_certs"] = str(settings["ca_file"])
    return options


def _timed(client: Any, deadline: float | None, timeout: float | None, where: str) -> Any:
    """``client`` with the time left before ``deadline`` as its request timeout."""
    if deadline is None:
        return client
    left = deadline - time.monotonic()
    if left <= 0:
        raise _timeout_error(timeout, where)
    return client.options(request_timeout=left)


def _timeout_error(timeout: float | None, where: str) -> QueryTimeoutError:
    return QueryTimeoutError(
        f"query cancelled after the {timeout or 0:g} s timeout",
        where=where,
        hint="raise timeout= or narrow the time range (start/end, or split_by=)",
    )


def _close_pit(client: Any, pit: str) -> None:
    """Close a point in time (best effort, quickly: the search result or error matters more)."""
    try:
        client.options(request_timeout=5, max_retries=0).close_point_in_time(id=pit)
    except Exception:
        log.debug("closing a point in time failed", exc_info=True)


def _dsl_body(text: str, where: str) -> dict[str, Any]:
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise QueryError(
            f"the dsl query is not JSON: {exc}", where=where, hint="check it with print_query=True"
        ) from None
    if not isinstance(body, dict):
        raise QueryError("the dsl query must be a JSON object (a search body)", where=where)
    return body


def _reason(exc: Any) -> str:
    """The first root-cause reason of an Elasticsearch error answer."""
    body = getattr(exc, "body", None)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        causes = error.get("root_cause") or [error]
        first = causes[0] if isinstance(causes[0], dict) else error
        text = f"{first.get('type', '')}: {first.get('reason', '')}".strip(": ")
    elif error:
        text = str(error)
    else:
        text = str(getattr(exc, "message", exc))
    return redact(text)[:500]


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, out)
    else:
        out[prefix] = value


def _hit_row(hit: Mapping[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"_index": hit.get("_index"), "_id": hit.get("_id")}
    _flatten("", hit.get("_source") or {}, row)
    return row


def _hits_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame.from_records(rows) if rows else pd.DataFrame(columns=["_index", "_id"])
    for column in ECS_DATES & set(frame.columns):
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    return frame


_ESQL_INTS: Final = frozenset(
    {"integer", "long", "unsigned_long", "short", "byte", "counter_integer", "counter_long"}
)
_ESQL_FLOATS: Final = frozenset({"double", "float", "half_float", "scaled_float", "counter_double"})


def _esql_frame(columns: list[Mapping[str, Any]], values: list[list[Any]]) -> pd.DataFrame:
    """A columnar ES|QL answer as a DataFrame typed by the column types."""
    import pandas as pd

    data: dict[str, Any] = {}
    if len(values) != len(columns):  # no rows: some versions send no column arrays at all
        values = [[] for _ in columns]
    for column, cells in zip(columns, values, strict=True):
        name, kind = str(column.get("name")), str(column.get("type"))
        multi = any(isinstance(c, list) for c in cells)
        series = pd.Series(cells, dtype=object)
        if multi:
            data[name] = series
        elif kind in ("date", "date_nanos"):
            data[name] = pd.to_datetime(series, utc=True, format="ISO8601")
        elif kind in _ESQL_INTS:
            data[name] = series.astype("Int64")
        elif kind in _ESQL_FLOATS:
            data[name] = series.astype("float64")
        elif kind == "boolean":
            data[name] = series.astype("boolean")
        else:
            data[name] = series.where(series.notna(), None)
    return pd.DataFrame(data, columns=[str(c.get("name")) for c in columns])
