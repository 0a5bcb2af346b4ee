"""The ``elastic`` driver: Elasticsearch through the official ``elasticsearch`` client (8.x or 9.x),
and OpenSearch (2.4 or later) through ``opensearch-py``.

Three query languages:

- ``esql`` (the default): ES|QL text, sent to ``POST /_query``; the columnar answer (``columns`` +
  ``values``) becomes a typed DataFrame. ES|QL returns at most 10,000 rows
  (``esql.query.result_truncation_max_size``) and 1,000 without a ``LIMIT``: a result of that size
  is warned about (:class:`ElasticWarning`), never passed off as complete; aggregate with ``STATS``
  or use ``dsl``/``lucene`` for long row lists;
- ``dsl``: a JSON search body (``{"query": {...}, "sort": [...]}``), which Elasticsearch and
  OpenSearch both run. huntbook reads these members itself: ``index`` (the index pattern, default
  the ``index`` setting), ``size`` (the most rows to return, default all of them) and
  ``huntbook.sql`` (below). One ``composite`` aggregation may replace the hits: its buckets are read
  whole (``after`` = the last ``after_key``), one row each: the bucket keys, ``doc_count`` and the
  metric sub-aggregations (``min max sum avg value_count cardinality``; ``min``/``max`` of an ECS
  date are datetimes). ``"huntbook.sql": {"query": "SELECT ... FROM rows", "params": {...}}``
  finishes the rows with DuckDB SQL, ``params`` bound as ``$name`` (never pasted into the text).
  huntbook's clauses (:func:`expand_clauses`) write out matching rules the DSL lacks for a bare
  value, as case-insensitive ``regexp`` queries with the value escaped: ``huntbook.contains``
  (substring), ``huntbook.equals`` (both sides trimmed; on ``ip`` fields, found with
  ``_field_caps``, a ``term`` query), ``huntbook.host`` (a short name ~ its FQDN, either way; ``''``
  every host), ``huntbook.domain`` (the name or a subdomain, trailing dot ignored) and
  ``huntbook.account`` (``user``, ``DOMAIN\\user`` or ``user@domain``);
- ``lucene``: a Lucene query string (``query_string``) over the ``index`` setting.

``dsl`` and ``lucene`` results are read with a point in time (``POST /<index>/_pit``) and
``search_after`` pages of ``page_size`` hits, so they are not capped by the 10,000-hit
``from + size`` window; the point in time is closed afterwards (``DELETE /_pit``), also after a
timeout or an error. OpenSearch's point in time is ``POST /<index>/_search/point_in_time`` and
``DELETE /_search/point_in_time``; its 2.x releases add no ``_shard_doc`` tie-breaker to the sort,
so ``_id`` is appended as the last sort key (ties past it, the same ``_id`` in two indices with
equal sort values, may be missed at a page boundary). Each hit is one row: ``_index``, ``_id`` and
the ``_source`` fields with dotted ECS names (``host.name``); ECS date fields (``@timestamp``,
``event.created`` ...) are UTC datetimes.

Settings (``connections.elastic`` in ``huntbook.yaml``): ``url`` (or ``hosts``, a list), one of
``api_key`` (the encoded key, or ``[id, api_key]``; sent as ``Authorization: ApiKey``; not on
OpenSearch), ``username`` + ``password`` (basic) or ``bearer_token``; ``flavor`` (``auto``, the
default: ``GET /`` tells, ``version.distribution == "opensearch"`` switches to opensearch-py;
``elasticsearch`` or ``opensearch`` skip the guess); ``verify`` (default True; False is logged)
and ``ca_file``; ``index`` (default ``logs-*``), ``page_size`` (5,000; at most 10,000),
``keep_alive`` (``2m``), ``request_timeout`` (30 s per request), ``max_retries`` (3; 429, 502, 503
and 504 are retried).

The elasticsearch client checks the ``X-Elastic-Product: Elasticsearch`` header: a server without
it is refused with a clear error unless its ``GET /`` says OpenSearch. OpenSearch has no ES|QL: an
``esql`` query on it is a :class:`QueryError` naming the query (the catalogue's ``dsl`` and
``lucene`` hunts, the common hunts of every driver among them, run on both).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import re
import time
import warnings
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Final

from huntbook.drivers.base import Driver, check_settings
from huntbook.errors import (
    DriverError,
    HuntbookError,
    MissingExtraError,
    ParameterError,
    QueryError,
    QueryTimeoutError,
)
from huntbook.http import redact

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ElasticDriver",
    "ElasticWarning",
    "dsl_literal",
    "esql_literal",
    "expand_clauses",
    "lucene_literal",
]

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
        "flavor",
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
FLAVORS: Final = ("auto", "elasticsearch", "opensearch")


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
# huntbook's clauses in dsl bodies: matching rules the query DSL cannot write from a bare value
# (trimmed, case-insensitive, a short host name ~ its FQDN ...), written out as standard clauses
# (case-insensitive ``regexp`` queries, which Elasticsearch and OpenSearch both run) before sending.
# Values are JSON values of the body; they are regex-escaped here, never pasted into query text.

_BLANK: Final = "[ \t\r\n]*"


def _regex_escape(text: str) -> str:
    """``text`` as a Lucene regular expression matching exactly it (every symbol ``\\``-escaped)."""
    return "".join(ch if ch.isalnum() and ch.isascii() else "\\" + ch for ch in text)


def _regexp(field: str, pattern: str) -> dict[str, Any]:
    return {"regexp": {field: {"value": pattern, "case_insensitive": True, "flags": "NONE"}}}


def _any_of(clauses: list[dict[str, Any]]) -> dict[str, Any]:
    return clauses[0] if len(clauses) == 1 else {"bool": {"should": clauses, "minimum_should_match": 1}}


def _clause_value(spec: Mapping[str, Any], kind: str) -> str:
    value = spec.get("value")
    if isinstance(value, list | dict):
        raise QueryError(f"{kind}: value must be a string, not {type(value).__name__}")
    return "" if value is None else str(value)


def _clause_fields(spec: Mapping[str, Any], kind: str) -> list[Any]:
    fields = spec.get("fields")
    if not isinstance(fields, list) or not fields:
        raise QueryError(f"{kind}: fields must be a non-empty list")
    return fields


def _contains(spec: Mapping[str, Any]) -> dict[str, Any]:
    """``value`` anywhere in a field, case-insensitive, every character literal."""
    text = _regex_escape(_clause_value(spec, "huntbook.contains"))
    return _any_of([_regexp(f, f".*{text}.*") for f in _clause_fields(spec, "huntbook.contains")])


def _equals(spec: Mapping[str, Any], ip_fields: frozenset[str] = frozenset()) -> dict[str, Any]:
    """A field equal to ``value``, both trimmed, case-insensitive; on an ``ip`` field a ``term``
    query (``match_none`` for a value that is no IP address)."""
    value = _clause_value(spec, "huntbook.equals").strip()
    try:
        address: str | None = ipaddress.ip_address(value).compressed
    except ValueError:
        address = None
    pattern = f"{_BLANK}{_regex_escape(value)}{_BLANK}"
    return _any_of(
        [
            (
                ({"term": {f: address}} if address else {"match_none": {}})
                if f in ip_fields
                else _regexp(f, pattern)
            )
            for f in _clause_fields(spec, "huntbook.equals")
        ]
    )


def _host(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A host name, case-insensitive: equal, or either is the other's short name ('' is every host)."""
    want = _clause_value(spec, "huntbook.host").lower()
    if not want:
        return {"match_all": {}}
    shorter = [want[:i] for i, ch in enumerate(want) if ch == "." and i]
    pattern = "|".join([f"{_regex_escape(want)}(\\..*)?", *(_regex_escape(s) for s in shorter)])
    return _any_of([_regexp(f, pattern) for f in _clause_fields(spec, "huntbook.host")])


def _domain(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A DNS name equal to ``value`` or under it, case-insensitive, a trailing dot ignored on both."""
    want = _clause_value(spec, "huntbook.domain").strip().lower()
    text = _regex_escape(want[:-1] if want.endswith(".") else want)
    return _any_of([_regexp(f, f"(.*\\.)?{text}\\.?") for f in _clause_fields(spec, "huntbook.domain")])


def _account_parts(account: str) -> tuple[str, str]:
    """``(user, first label of the domain)`` of ``user``, ``DOMAIN\\user`` or ``user@domain``."""
    want = account.strip().lower()
    user = want.rpartition("\\")[2].partition("@")[0]
    domain = want.partition("\\")[0] if "\\" in want else want.rpartition("@")[2] if "@" in want else ""
    return user, domain.partition(".")[0]


def _account(spec: Mapping[str, Any]) -> dict[str, Any]:
    """An account: the user name field matches, and the domain's first label too when both name
    one (CORP ~ corp.example); ``fields`` lists ``[user field, domain field]`` pairs."""
    user, domain = _account_parts(_clause_value(spec, "huntbook.account"))
    clauses = []
    for pair in _clause_fields(spec, "huntbook.account"):
        if not (isinstance(pair, list) and len(pair) == 2):
            raise QueryError("huntbook.account: fields must be [user field, domain field] pairs")
        name_field, domain_field = (str(p) for p in pair)
        wanted: list[dict[str, Any]] = [_regexp(name_field, _regex_escape(user))]
        if domain:
            no_domain = {"bool": {"must_not": [_regexp(domain_field, ".+")]}}
            same = _regexp(domain_field, f"{_regex_escape(domain)}(\\..*)?|\\..*")
            wanted.append(_any_of([no_domain, same]))
        clauses.append({"bool": {"filter": wanted}})
    return _any_of(clauses)


_CLAUSES: Final[dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]]] = {
    "huntbook.contains": _contains,
    "huntbook.equals": _equals,
    "huntbook.host": _host,
    "huntbook.domain": _domain,
    "huntbook.account": _account,
}


def _clause(node: Any) -> tuple[str, dict[str, Any]] | None:
    """``(rule name, spec)`` when ``node`` is a huntbook clause."""
    if not (isinstance(node, dict) and len(node) == 1):
        return None
    ((key, spec),) = node.items()
    if not (isinstance(key, str) and key.startswith("huntbook.")):
        return None
    if key not in _CLAUSES:
        raise QueryError(f"unknown huntbook clause {key!r}", hint=f"known: {', '.join(_CLAUSES)}")
    if not isinstance(spec, dict):
        raise QueryError(f"{key} takes an object (fields and value)")
    return key, spec


def _equals_fields(node: Any) -> set[str]:
    """The fields of every ``huntbook.equals`` clause in ``node``."""
    found = _clause(node)
    if found is not None:
        return (
            {str(f) for f in _clause_fields(found[1], found[0])} if found[0] == "huntbook.equals" else set()
        )
    children = node if isinstance(node, list) else node.values() if isinstance(node, dict) else ()
    return set().union(*(_equals_fields(child) for child in children))


def expand_clauses(node: Any, ip_fields: frozenset[str] = frozenset()) -> Any:
    """``node`` (a dsl body or part of one) with every ``{"huntbook.<rule>": {...}}`` clause written
    out as standard query DSL (a copy); ``ip_fields`` are mapped as ``ip`` (see ``huntbook.equals``)."""
    found = _clause(node)
    if found is not None:
        rule, spec = found
        return _equals(spec, ip_fields) if rule == "huntbook.equals" else _CLAUSES[rule](spec)
    if isinstance(node, list):
        return [expand_clauses(item, ip_fields) for item in node]
    if isinstance(node, dict):
        return {key: expand_clauses(value, ip_fields) for key, value in node.items()}
    return node


# ----------------------------------------------------------------------------------------------
# The driver


class ElasticDriver(Driver):
    """Run ES|QL, query DSL or Lucene queries on Elasticsearch."""

    name = "elastic"
    languages = ("esql", "dsl", "lucene")

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self._backend: _Backend | None = None

    # -------------------------------------------------------------- connection
    def connect(self, **settings: Any) -> None:
        """Build the client and check the server (``GET /``: credentials, product and flavor)."""
        merged = {**self.settings, **settings}
        check_settings("elastic driver", merged, _SETTINGS, _SECRET_SETTINGS)
        flavor = str(merged.get("flavor", "auto")).lower()
        if flavor not in FLAVORS:
            raise DriverError(f"flavor={flavor!r} is not one of {', '.join(FLAVORS)}")
        common = _common_options(merged)
        self.close()
        self.settings = merged
        where = f"elastic {redact(', '.join(common['hosts']))}"
        backend = _OpenSearch(common) if flavor == "opensearch" else _Elasticsearch(common)
        try:
            info = backend.info()
        except Exception as exc:
            backend.close()
            if not (flavor == "auto" and _says_opensearch(exc)):
                raise self._error(exc, where, product=backend.product) from None
            backend = _OpenSearch(common)
            try:
                info = backend.info()
            except Exception as again:
                backend.close()
                raise self._error(again, where, product=backend.product) from None
        log.debug("%s: connected to %s %s", where, backend.product, info.get("version", {}).get("number"))
        self._backend = backend
        self.connected = True

    def _connected(self) -> _Backend:
        """The connected server's client wrapper (connecting on first use)."""
        if self._backend is None:
            self.connect()
        assert self._backend is not None
        return self._backend

    @property
    def client(self) -> Any:
        """The connected ``elasticsearch.Elasticsearch`` or ``opensearchpy.OpenSearch`` client."""
        return self._connected().client

    @property
    def flavor(self) -> str:
        """``elasticsearch`` or ``opensearch``: the connected server's product (connecting on first use)."""
        return self._connected().product.lower()

    def close(self) -> None:
        """Close the client's connections."""
        if self._backend is not None:
            self._backend.close()
        self._backend = None
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
        backend = self._connected()
        if language == "esql" and backend.product == "OpenSearch":
            raise QueryError(
                "OpenSearch has no ES|QL: this query needs Elasticsearch",
                where=where,
                hint="run a dsl (JSON search body) or lucene query on OpenSearch",
            )
        try:
            if language == "esql":
                return self._esql(backend, text, deadline, timeout, where)
            if language == "dsl":
                body = _dsl_body(text, where)
            else:
                body = {"query": {"query_string": {"query": text}}}
            finish = body.pop("huntbook.sql", None)
            index = str(body.pop("index", None) or self.settings.get("index") or "logs-*")
            body = self._expand(backend, index, body, deadline, timeout, where)
            frame = self._search(backend, index, body, deadline, timeout, where)
            return frame if finish is None else _finish(frame, finish, where)
        except HuntbookError:
            raise
        except Exception as exc:
            raise self._error(
                exc, where, deadline=deadline, timeout=timeout, product=backend.product
            ) from exc

    def _esql(
        self, backend: _Backend, text: str, deadline: float | None, timeout: float | None, where: str
    ) -> pd.DataFrame:
        from elasticsearch import ElasticsearchWarning

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ElasticsearchWarning)
            body = backend.esql(text, _left(deadline, timeout, where))
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

    @staticmethod
    def _expand(
        backend: _Backend,
        index: str,
        body: dict[str, Any],
        deadline: float | None,
        timeout: float | None,
        where: str,
    ) -> dict[str, Any]:
        """``body`` with its huntbook clauses written out; the fields of ``huntbook.equals`` are
        looked up first (``_field_caps``), since ``ip`` fields take no regexp."""
        fields = sorted(_equals_fields(body))
        ip_fields: frozenset[str] = frozenset()
        if fields:
            caps = backend.field_caps(index, fields, _left(deadline, timeout, where))
            ip_fields = frozenset(f for f, kinds in (caps.get("fields") or {}).items() if "ip" in kinds)
        try:
            expanded: dict[str, Any] = expand_clauses(body, ip_fields)
        except QueryError as exc:
            raise QueryError(exc.message, where=where, hint=exc.hint) from None
        return expanded

    def _search(
        self,
        backend: _Backend,
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
        page = int(self.settings.get("page_size", 5_000))
        if not 0 < page <= 10_000:
            raise DriverError(f"page_size={page} must be from 1 to 10000", where=where)
        keep_alive = str(self.settings.get("keep_alive", "2m"))
        body["track_total_hits"] = False
        aggs = _composite(body, where)
        if aggs is None:
            body["sort"] = backend.tiebroken(body.get("sort") or _DEFAULT_SORT)
        pit = backend.open_pit(index, keep_alive, _left(deadline, timeout, where))
        rows: list[dict[str, Any]] = []
        try:
            if aggs is not None:
                rows = self._buckets(backend, body, aggs, pit, keep_alive, page, deadline, timeout, where)
                return _buckets_frame(rows, aggs)[: limit if limit is not None else None]
            after: list[Any] | None = None
            while limit is None or len(rows) < limit:
                size = page if limit is None else min(page, limit - len(rows))
                request = {**body, "size": size, "pit": {"id": pit, "keep_alive": keep_alive}}
                if after is not None:
                    request["search_after"] = after
                answer = backend.search(request, _left(deadline, timeout, where))
                pit = answer.get("pit_id") or pit
                hits = answer["hits"]["hits"]
                rows += [_hit_row(hit) for hit in hits]
                if len(hits) < size:
                    break
                after = hits[-1].get("sort")
                if after is None:
                    raise DriverError("hits came back without sort values", where=where)
        finally:
            backend.close_pit(pit)
        return _hits_frame(rows)

    @staticmethod
    def _buckets(
        backend: _Backend,
        body: dict[str, Any],
        aggs: _Composite,
        pit: str,
        keep_alive: str,
        page: int,
        deadline: float | None,
        timeout: float | None,
        where: str,
    ) -> list[dict[str, Any]]:
        """Every bucket of the composite aggregation, page by page (``after`` = the last ``after_key``)."""
        size = int(aggs.spec.get("size") or page)
        rows: list[dict[str, Any]] = []
        after: Any = None
        while True:
            composite = {**aggs.spec, "size": size, **({"after": after} if after is not None else {})}
            request = {
                **body,
                "size": 0,
                "aggs": {
                    aggs.name: {"composite": composite, **({"aggs": aggs.metrics} if aggs.metrics else {})}
                },
                "pit": {"id": pit, "keep_alive": keep_alive},
            }
            answer = backend.search(request, _left(deadline, timeout, where))
            result = (answer.get("aggregations") or {}).get(aggs.name) or {}
            buckets = result.get("buckets") or []
            rows += [_bucket_row(bucket, aggs) for bucket in buckets]
            after = result.get("after_key")
            if len(buckets) < size or after is None:
                return rows

    # -------------------------------------------------------------- errors
    def _error(
        self,
        exc: BaseException,
        where: str,
        *,
        deadline: float | None = None,
        timeout: float | None = None,
        product: str = "Elasticsearch",
    ) -> HuntbookError:
        """A huntbook error for a failure of either client library, with every secret scrubbed."""
        kind, status = _classify(exc)
        if kind == "auth":
            return DriverError(
                f"{product} authentication failed (HTTP 401)",
                where=where,
                hint="check api_key or username/password in connections.elastic (OpenSearch takes "
                "username/password or bearer_token)"
                if product == "Elasticsearch"
                else "check username/password or bearer_token in connections.elastic",
            )
        if kind == "forbidden":
            return DriverError(
                f"{product} refused the request (HTTP 403): {_reason(exc)}",
                where=where,
                hint="the user or API key lacks the read privilege on the index",
            )
        if kind == "product":
            return DriverError(
                "the server is not Elasticsearch (no X-Elastic-Product header)",
                where=where,
                hint="check the url; for OpenSearch, set flavor to auto (the default) or opensearch",
            )
        if kind == "bad":
            return QueryError(
                f"{product} rejected the query: {_reason(exc)}",
                where=where,
                hint="check the query with print_query=True (and the index name)",
            )
        if kind == "api":
            return DriverError(f"{product} error (HTTP {status}): {_reason(exc)}", where=where)
        if kind == "timeout":
            if deadline is not None and time.monotonic() >= deadline - 0.05:
                return _timeout_error(timeout, where)
            return DriverError(f"{product} did not answer in time", where=where, hint="raise request_timeout")
        if kind == "tls":
            return DriverError(
                "TLS certificate verification failed",
                where=where,
                hint="set ca_file to the CA bundle of the cluster certificate (verify=False only for tests)",
            )
        if kind == "connection":
            return DriverError(
                f"cannot reach {product}: {redact(str(exc))[:300]}",
                where=where,
                hint="check url and that the cluster is reachable",
            )
        return DriverError(f"{type(exc).__name__}: {redact(str(exc))[:300]}", where=where)


# ----------------------------------------------------------------------------------------------
# The two client libraries


class _Backend:
    """The calls the driver makes, on one client library; ``seconds`` is the request timeout (None:
    the client's)."""

    product: ClassVar[str] = "Elasticsearch"
    client: Any

    def close(self) -> None:
        self.client.close()

    def info(self) -> Mapping[str, Any]:
        info: Mapping[str, Any] = self.client.info()
        return info

    def open_pit(self, index: str, keep_alive: str, seconds: float | None) -> str:
        raise NotImplementedError

    def field_caps(self, index: str, fields: list[str], seconds: float | None) -> Mapping[str, Any]:
        raise NotImplementedError

    def search(self, body: Mapping[str, Any], seconds: float | None) -> Mapping[str, Any]:
        raise NotImplementedError

    def close_pit(self, pit: str) -> None:
        raise NotImplementedError

    def esql(self, text: str, seconds: float | None) -> Mapping[str, Any]:
        raise NotImplementedError

    def tiebroken(self, sort: Any) -> list[Any]:
        """``sort`` (a search body's) with the tie-breaker search_after pages need."""
        return list(sort) if isinstance(sort, list) else [sort]


class _Elasticsearch(_Backend):
    """``elasticsearch.Elasticsearch``; a point in time adds the ``_shard_doc`` tie-breaker itself."""

    def __init__(self, common: Mapping[str, Any]) -> None:
        try:
            from elasticsearch import Elasticsearch
        except ImportError as exc:
            raise MissingExtraError("the elastic driver", "elastic", missing=exc.name) from exc
        options: dict[str, Any] = {
            key: common[key] for key in ("hosts", "request_timeout", "max_retries", "retry_on_status")
        }
        kind, value = common["auth"]
        options[{"api_key": "api_key", "basic": "basic_auth", "bearer": "bearer_auth"}[kind]] = value
        if not common["verify"]:
            options.update(verify_certs=False, ssl_show_warn=False)
        elif common["ca_file"]:
            options["ca_certs"] = common["ca_file"]
        self.client = Elasticsearch(**options)

    def _on(self, seconds: float | None) -> Any:
        return self.client if seconds is None else self.client.options(request_timeout=seconds)

    def open_pit(self, index: str, keep_alive: str, seconds: float | None) -> str:
        return str(self._on(seconds).open_point_in_time(index=index, keep_alive=keep_alive)["id"])

    def search(self, body: Mapping[str, Any], seconds: float | None) -> Mapping[str, Any]:
        answer: Mapping[str, Any] = self._on(seconds).search(body=body)
        return answer

    def field_caps(self, index: str, fields: list[str], seconds: float | None) -> Mapping[str, Any]:
        answer: Mapping[str, Any] = self._on(seconds).field_caps(index=index, fields=",".join(fields)).body
        return answer

    def close_pit(self, pit: str) -> None:
        """Best effort, quickly: the search result or error matters more."""
        try:
            self.client.options(request_timeout=5, max_retries=0).close_point_in_time(id=pit)
        except Exception:
            log.debug("closing a point in time failed", exc_info=True)

    def esql(self, text: str, seconds: float | None) -> Mapping[str, Any]:
        body: Mapping[str, Any] = self._on(seconds).esql.query(query=text, columnar=True).body
        return body


class _OpenSearch(_Backend):
    """``opensearchpy.OpenSearch`` (OpenSearch 2.4+: point in time, no ES|QL, no API keys)."""

    product = "OpenSearch"

    def __init__(self, common: Mapping[str, Any]) -> None:
        try:
            from opensearchpy import OpenSearch
        except ImportError as exc:
            raise MissingExtraError(
                "the elastic driver on OpenSearch", "opensearch", missing=exc.name
            ) from exc
        kind, value = common["auth"]
        if kind == "api_key":
            raise DriverError(
                "the server is OpenSearch, which takes no Elasticsearch API key",
                hint="set username and password, or bearer_token, in connections.elastic",
            )
        options: dict[str, Any] = {
            "hosts": common["hosts"],
            "timeout": common["request_timeout"],
            "max_retries": common["max_retries"],
            "retry_on_status": common["retry_on_status"],
        }
        if kind == "basic":
            options["http_auth"] = value
        else:
            options["headers"] = {"Authorization": f"Bearer {value}"}
        if not common["verify"]:
            options.update(verify_certs=False, ssl_show_warn=False)
        elif common["ca_file"]:
            options["ca_certs"] = common["ca_file"]
        self.client = OpenSearch(**options)

    @staticmethod
    def _on(seconds: float | None) -> dict[str, Any]:
        return {} if seconds is None else {"request_timeout": seconds}

    def open_pit(self, index: str, keep_alive: str, seconds: float | None) -> str:
        return str(self.client.create_pit(index=index, keep_alive=keep_alive, **self._on(seconds))["pit_id"])

    def search(self, body: Mapping[str, Any], seconds: float | None) -> Mapping[str, Any]:
        answer: Mapping[str, Any] = self.client.search(body=body, **self._on(seconds))
        return answer

    def field_caps(self, index: str, fields: list[str], seconds: float | None) -> Mapping[str, Any]:
        answer: Mapping[str, Any] = self.client.field_caps(
            index=index, fields=",".join(fields), **self._on(seconds)
        )
        return answer

    def close_pit(self, pit: str) -> None:
        try:
            self.client.delete_pit(body={"pit_id": [pit]}, request_timeout=5)
        except Exception:
            log.debug("closing a point in time failed", exc_info=True)

    def tiebroken(self, sort: Any) -> list[Any]:
        """``_id`` last: OpenSearch 2.x adds no ``_shard_doc`` tie-breaker to a point-in-time sort."""
        items = super().tiebroken(sort)
        names = {next(iter(i)) if isinstance(i, Mapping) else str(i).split(":")[0] for i in items}
        return items if names & {"_id", "_shard_doc"} else [*items, {"_id": "asc"}]


def _says_opensearch(exc: BaseException) -> bool:
    """Whether the elasticsearch client refused a server whose ``GET /`` says OpenSearch."""
    body = getattr(exc, "body", None)
    version = body.get("version") if isinstance(body, Mapping) else None
    return (
        type(exc).__name__ == "UnsupportedProductError"
        and isinstance(version, Mapping)
        and version.get("distribution") == "opensearch"
    )


def _classify(exc: BaseException) -> tuple[str, int | None]:
    """``(kind, HTTP status)`` of a client failure: auth, forbidden, bad (400/404), api (other
    statuses), product, timeout, tls, connection or other."""
    status: int | None = None
    if type(exc).__module__.startswith("opensearchpy"):
        import opensearchpy.exceptions as os_errors

        if isinstance(exc, os_errors.ConnectionTimeout):
            return "timeout", None
        if isinstance(exc, os_errors.SSLError) or "CERTIFICATE_VERIFY_FAILED" in str(exc):
            return "tls", None
        if isinstance(exc, os_errors.ConnectionError):
            return "connection", None
        if isinstance(exc, os_errors.TransportError) and isinstance(exc.status_code, int):
            status = exc.status_code
    else:
        try:
            import elasticsearch as es
        except ImportError:
            return "other", None
        if isinstance(exc, es.UnsupportedProductError):
            return "product", None
        if isinstance(exc, es.ApiError):
            status = exc.meta.status
        elif isinstance(exc, es.ConnectionTimeout):
            return "timeout", None
        elif isinstance(exc, es.SSLError) or "CERTIFICATE_VERIFY_FAILED" in str(exc):
            return "tls", None
        elif isinstance(exc, es.ConnectionError):
            return "connection", None
    if status is None:
        return "other", None
    return {401: "auth", 403: "forbidden", 400: "bad", 404: "bad"}.get(status, "api"), status


# ----------------------------------------------------------------------------------------------
# Helpers


def _common_options(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Hosts, timeouts, retries, credentials (``(kind, value)``) and TLS, for either client."""
    hosts = settings.get("hosts") or settings.get("url") or "https://localhost:9200"
    api_key = settings.get("api_key")
    auth: tuple[str, Any]
    if api_key:
        auth = (
            "api_key",
            (tuple(str(p) for p in api_key) if isinstance(api_key, list | tuple) else str(api_key)),
        )
    elif settings.get("username") and settings.get("password"):
        auth = "basic", (str(settings["username"]), str(settings["password"]))
    elif settings.get("bearer_token"):
        auth = "bearer", str(settings["bearer_token"])
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
    return {
        "hosts": [str(h) for h in (hosts if isinstance(hosts, list | tuple) else [hosts])],
        "request_timeout": float(settings.get("request_timeout", 30.0)),
        "max_retries": int(settings.get("max_retries", 3)),
        "retry_on_status": (429, 502, 503, 504),
        "auth": auth,
        "verify": verify,
        "ca_file": str(settings["ca_file"]) if settings.get("ca_file") else None,
    }


def _left(deadline: float | None, timeout: float | None, where: str) -> float | None:
    """The seconds left before ``deadline`` (None: no deadline); past it, the timeout error."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise _timeout_error(timeout, where)
    return left


def _timeout_error(timeout: float | None, where: str) -> QueryTimeoutError:
    return QueryTimeoutError(
        f"query cancelled after the {timeout or 0:g} s timeout",
        where=where,
        hint="raise timeout= or narrow the time range (start/end, or split_by=)",
    )


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


class _Composite:
    """The one ``composite`` aggregation of a dsl body: its name, its own body and its metrics."""

    METRICS: ClassVar[frozenset[str]] = frozenset({"min", "max", "sum", "avg", "value_count", "cardinality"})

    def __init__(self, name: str, spec: dict[str, Any], metrics: dict[str, Any]) -> None:
        self.name, self.spec, self.metrics = name, spec, metrics
        self.keys = [next(iter(source)) for source in spec.get("sources") or [] if isinstance(source, dict)]
        self.dates = {
            metric
            for metric, agg in metrics.items()
            if next(iter(agg)) in ("min", "max") and next(iter(agg.values())).get("field") in ECS_DATES
        }


def _composite(body: dict[str, Any], where: str) -> _Composite | None:
    """The body's aggregation (removed from it), which must be one ``composite`` with metric
    sub-aggregations (min max sum avg value_count cardinality); None when there is none."""
    aggs = body.pop("aggs", None) or body.pop("aggregations", None)
    if not aggs:
        return None
    hint = 'one {"composite": {"sources": [...]}, "aggs": {<name>: {"min": {"field": ...}}}}'
    if not isinstance(aggs, dict) or len(aggs) != 1:
        raise QueryError("a dsl query reads one (composite) aggregation", where=where, hint=hint)
    ((name, agg),) = aggs.items()
    spec = agg.get("composite") if isinstance(agg, dict) else None
    metrics = (agg.get("aggs") or agg.get("aggregations") or {}) if isinstance(agg, dict) else {}
    if not isinstance(spec, dict) or set(agg) - {"composite", "aggs", "aggregations"}:
        raise QueryError(
            f"aggregation {name!r} is not a composite aggregation (the one huntbook pages)",
            where=where,
            hint=hint,
        )
    for metric, sub in metrics.items():
        if not (
            isinstance(sub, dict)
            and len(sub) == 1
            and next(iter(sub)) in _Composite.METRICS
            and isinstance(next(iter(sub.values())), dict)
        ):
            raise QueryError(
                f"sub-aggregation {metric!r} is not one of {', '.join(sorted(_Composite.METRICS))}",
                where=where,
                hint=hint,
            )
    if spec.pop("after", None) is not None:
        raise QueryError("'after' is not used: every bucket is read, page by page", where=where)
    return _Composite(str(name), spec, metrics)


def _bucket_row(bucket: Mapping[str, Any], aggs: _Composite) -> dict[str, Any]:
    """A composite bucket as a row: its keys, ``doc_count``, then each metric's value (dates as
    ``value_as_string``)."""
    row: dict[str, Any] = dict(bucket.get("key") or {})
    row["doc_count"] = bucket.get("doc_count")
    for metric in aggs.metrics:
        value = bucket.get(metric) or {}
        row[metric] = value.get("value_as_string") if metric in aggs.dates else value.get("value")
    return row


def _buckets_frame(rows: list[dict[str, Any]], aggs: _Composite) -> pd.DataFrame:
    import pandas as pd

    columns = [*aggs.keys, "doc_count", *aggs.metrics]
    frame = pd.DataFrame.from_records(rows, columns=columns)
    frame["doc_count"] = frame["doc_count"].astype("Int64")
    for metric, agg in aggs.metrics.items():
        kind = next(iter(agg))
        if metric in aggs.dates:
            frame[metric] = pd.to_datetime(frame[metric], utc=True, format="ISO8601")
        elif kind in ("value_count", "cardinality"):
            frame[metric] = frame[metric].astype("Int64")
        else:
            frame[metric] = frame[metric].astype("float64")
    return frame


def _finish(frame: pd.DataFrame, spec: Any, where: str) -> pd.DataFrame:
    """``huntbook.sql``: DuckDB SQL over the rows (the table ``rows``), with ``params`` bound as
    ``$name`` parameters (never pasted into the text)."""
    if not (isinstance(spec, dict) and isinstance(spec.get("query"), str)):
        raise QueryError('huntbook.sql takes {"query": "SELECT ... FROM rows", "params": {...}}', where=where)
    params = spec.get("params") or {}
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("rows", frame)
        result: pd.DataFrame = con.execute(spec["query"], params).df()
    except duckdb.Error as exc:
        raise QueryError(f"huntbook.sql failed: {exc}", where=where) from None
    finally:
        con.close()
    return result


def _reason(exc: Any) -> str:
    """The first root-cause reason of an Elasticsearch or OpenSearch error answer."""
    body = getattr(exc, "body", None) or getattr(exc, "info", None)
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
