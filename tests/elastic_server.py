"""A loopback Elasticsearch: search with point in time and search_after, aggregations, ES|QL, _bulk,
in memory.

Serve :meth:`ElasticServer.app` with :class:`huntbook.testing.loopback.LoopbackServer`. What it speaks
(from the Elasticsearch REST API reference):

- every answer carries ``X-Elastic-Product: Elasticsearch`` (the client refuses a server without it)
  and, when the client asks for ``application/vnd.elasticsearch+json; compatible-with=N`` (8 or 9),
  that content type; ``GET /`` is the cluster info;
- authentication: ``Authorization: ApiKey <base64(id:key)>``, ``Basic`` or ``Bearer``; anything else
  is 401 ``security_exception`` with ``WWW-Authenticate``;
- ``POST /<index>/_pit?keep_alive=1m`` -> ``{"id"}`` (a snapshot of the matching documents, expiring
  after keep_alive); ``DELETE /_pit`` ``{"id"}`` -> ``{"succeeded", "num_freed"}``;
- ``/_search`` and ``/<index>/_search``: ``query``, ``sort`` (a point in time adds the ``_shard_doc``
  tie-breaker; dates sort as epoch milliseconds), ``size`` (default 10), ``from``, ``search_after``,
  ``pit``, ``_source``. ``from + size`` over 10,000 is the 400 ``Result window is too large`` error;
  an unknown or expired point in time is 404 ``search_context_missing_exception``;
- query DSL: ``match_all bool(must filter should must_not minimum_should_match) term terms match
  match_phrase range prefix wildcard regexp exists ids query_string``; ``case_insensitive`` on term,
  prefix, wildcard and regexp. Strings are keywords (exact, case-sensitive) except ``message`` (text:
  analysed);
- ``aggs``: ``composite`` (``terms`` sources with ``missing_bucket`` and ``order``, ``size``,
  ``after``; ``after_key`` in the answer), ``terms`` (``size``; by count, then key) and the metrics
  ``min max sum avg value_count cardinality`` (on dates ``value`` in epoch milliseconds and
  ``value_as_string``); ``GET|POST /<index>/_field_caps`` (``fields`` in the query or the body) gives
  each field's type; :meth:`ElasticServer.define` maps a field as ``ip`` (terms compare addresses, an
  invalid one is a 400; ``prefix``/``wildcard``/``regexp`` on it are refused, as on a real cluster);
- ``query_string`` (Lucene): ``field:value``, ``field:"phrase"``, ``field:(a OR b)``, ranges
  ``[a TO b}``, ``AND OR NOT + -``, parentheses, ``* ?`` wildcards, ``\\`` escapes, ``_exists_:f``;
  bare terms search every field; the default operator is OR;
- ES|QL ``POST /_query`` (``columnar`` or rows): ``FROM a,b* | WHERE | EVAL | KEEP | DROP | RENAME |
  SORT | LIMIT | STATS ... BY``; without LIMIT 1,000 rows and a ``Warning`` header, at most 10,000;
  ``columns`` typed (``date keyword long double boolean``);
- ``POST /_bulk`` and ``/<index>/_bulk`` NDJSON (gzip accepted): ``index``, ``create`` (409
  ``version_conflict_engine_exception`` for an existing id) and ``delete``; per item ``status`` and
  ``error``; ``errors: true`` when one failed. A field's type is set by its first value (``long``,
  ``double``, ``boolean``, ``date``, ``keyword``); a later value that does not fit is 400
  ``mapper_parsing_exception``. :meth:`ElasticServer.throttle_items` makes the next items 429
  ``es_rejected_execution_exception``; :attr:`ElasticServer.lose_replies` makes the next bulk requests
  store their documents and then answer only after ``hang`` seconds (a reply lost on the way).

``slow`` maps a text found in a request body to seconds the answer waits.

``distribution="opensearch"`` makes it an OpenSearch 2.x node instead (from the OpenSearch REST
reference): ``GET /`` says ``version.distribution: opensearch`` and no answer carries
``X-Elastic-Product``; the point in time is ``POST /<index>/_search/point_in_time?keep_alive=`` ->
``{"pit_id", "creation_time"}`` and ``DELETE /_search/point_in_time`` ``{"pit_id": [...]}`` ->
``{"pits": [{"pit_id", "successful"}]}`` (no ``/_pit``); a point-in-time search adds no
``_shard_doc`` tie-breaker to the sort (sorting on ``_id`` is allowed); there is no ES|QL
(``/_query`` has no handler). Search, query DSL, Lucene and ``_bulk`` are the same.
"""

from __future__ import annotations

import base64
import bisect
import gzip
import ipaddress
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from huntbook.testing.loopback import LoopbackRequest, Reply
from splunk_server import SplError, _aggregate, _sort_key, compile_expression

__all__ = ["ElasticServer", "ecs_documents"]

VERSION = "9.1.0"
OPENSEARCH_VERSION = "2.19.1"
MAX_WINDOW = 10_000
ESQL_DEFAULT_LIMIT = 1_000
ESQL_MAX = 10_000
TEXT_FIELDS = frozenset({"message"})
Predicate = Callable[[Mapping[str, Any]], bool]


class EsError(Exception):
    """An Elasticsearch error answer."""

    def __init__(self, status: int, kind: str, reason: str, **extra: Any) -> None:
        super().__init__(reason)
        self.status, self.kind, self.reason, self.extra = status, kind, reason, extra

    def body(self) -> dict[str, Any]:
        cause = {"type": self.kind, "reason": self.reason, **self.extra}
        return {"error": {"root_cause": [cause], **cause}, "status": self.status}


# ==============================================================================================
# Values and fields


def flatten(source: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A document's fields by dotted name (``{"host": {"name": x}}`` -> ``{"host.name": x}``)."""
    out: dict[str, Any] = {}
    for key, value in source.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _values(doc: Mapping[str, Any], name: str) -> list[Any]:
    value = doc.get(name)
    if value is None:
        return []
    return [v for v in value if v is not None] if isinstance(value, list) else [value]


def parse_date(value: Any) -> datetime | None:
    """An ISO-8601 string or epoch milliseconds as a UTC datetime (None when it is neither)."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, UTC)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d{10,13}", text):
            return datetime.fromtimestamp(int(text) / (1000 if len(text) == 13 else 1), UTC)
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str) and re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?", value
    ):
        return "date"
    return "keyword"


def _fits(kind: str, value: Any) -> bool:
    if value is None:
        return True
    if kind == "long":
        return not isinstance(value, bool) and (
            isinstance(value, int) or (isinstance(value, str) and re.fullmatch(r"-?\d+", value) is not None)
        )
    if kind == "double":
        if isinstance(value, bool):
            return False
        try:
            float(value)
        except (TypeError, ValueError):
            return False
        return True
    if kind == "boolean":
        return isinstance(value, bool) or value in ("true", "false")
    if kind == "date":
        return parse_date(value) is not None
    if kind == "ip":
        return _ip(value) is not None
    return not isinstance(value, dict)


def _ip(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(str(value))
    except ValueError:
        return None


def _wildcard(pattern: str, insensitive: bool) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "*" else "." if ch == "?" else re.escape(ch))
        i += 1
    return re.compile("".join(out), re.DOTALL | (re.IGNORECASE if insensitive else 0))


def _lucene_regexp(pattern: str, insensitive: bool) -> re.Pattern[str]:
    """A Lucene regular expression (``regexp`` query, no optional operators): ``. ? + * | ( )
    {n,m}`` and ``[...]`` classes (no escapes inside) as in Python, ``\\x`` the character x, anything
    else literal; it must match the whole value."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            if i + 1 == len(pattern):
                raise EsError(
                    400, "query_shard_exception", "failed to create query: expected character after \\"
                )
            out.append(re.escape(pattern[i + 1]))
            i += 2
        elif ch == "[":
            end = pattern.find("]", i + 2)
            if end < 0 or "\\" in pattern[i:end]:
                raise EsError(400, "query_shard_exception", "failed to create query: bad character class")
            out.append(pattern[i : end + 1])  # [abc] [^a-z]: the same in Python
            i = end + 1
        else:
            out.append(ch if ch in ".?+*|(){},0123456789" else re.escape(ch))
            i += 1
    try:
        return re.compile("".join(out), re.DOTALL | (re.IGNORECASE if insensitive else 0))
    except re.error as exc:
        raise EsError(400, "query_shard_exception", f"failed to create query: {exc}") from None


def _same(stored: Any, wanted: Any, kind: str, insensitive: bool = False) -> bool:
    if kind == "ip":
        if _ip(wanted) is None:
            raise EsError(
                400,
                "query_shard_exception",
                f"failed to create query: '{wanted}' is not an IP string literal.",
            )
        return _ip(stored) == _ip(wanted)
    if kind == "date":
        return parse_date(stored) == parse_date(wanted)
    if kind in ("long", "double"):
        try:
            return float(stored) == float(wanted)
        except (TypeError, ValueError):
            return False
    if kind == "boolean":
        return str(stored).lower() == str(wanted).lower()
    if insensitive:
        return str(stored).lower() == str(wanted).lower()
    return str(stored) == str(wanted) if not isinstance(wanted, bool) else stored == wanted


def _tokens(text: Any) -> list[str]:
    return re.findall(r"\w+", str(text).lower())


def _range(doc: Mapping[str, Any], name: str, bounds: Mapping[str, Any], kind: str) -> bool:
    def key(value: Any) -> Any:
        if kind == "date":
            return parse_date(value)
        if kind in ("long", "double"):
            return float(value)
        return str(value)

    for value in _values(doc, name):
        try:
            v = key(value)
            ok = all(
                (
                    (op == "gte" and v >= key(limit))
                    or (op == "gt" and v > key(limit))
                    or (op == "lte" and v <= key(limit))
                    or (op == "lt" and v < key(limit))
                )
                for op, limit in bounds.items()
                if op in ("gte", "gt", "lte", "lt")
            )
        except (TypeError, ValueError):
            continue
        if ok:
            return True
    return False


# ==============================================================================================
# Query DSL


class _Index:
    """One index: documents by id, in insertion order (``seq``), and the field types."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.docs: dict[str, tuple[int, dict[str, Any], dict[str, Any]]] = {}  # id -> (seq, source, flat)
        self.types: dict[str, str] = {}


class ElasticServer:
    """In-memory Elasticsearch state and its REST app.

    Args:
        api_key: ``(id, key)`` of the API key accepted as ``ApiKey base64(id:key)``.
        username, password: the basic-auth user.
        bearer: a bearer token.
        distribution: ``elasticsearch`` or ``opensearch`` (see the module docs).
    """

    def __init__(
        self,
        *,
        api_key: tuple[str, str] | None = None,
        username: str | None = None,
        password: str | None = None,
        bearer: str | None = None,
        distribution: str = "elasticsearch",
    ) -> None:
        self.opensearch = distribution == "opensearch"
        self.api_key = api_key
        self.username, self.password, self.bearer = username, password, bearer
        self.indices: dict[str, _Index] = {}
        self.pits: dict[str, dict[str, Any]] = {}
        self.closed_pits: list[str] = []
        self.slow: dict[str, float] = {}
        self.searches: list[dict[str, Any]] = []  # search bodies received
        self.bulk_requests: list[list[str]] = []  # ids sent per bulk request
        self.lose_replies = 0
        self.hang = 1.5
        self._throttle = 0
        self._lock = threading.RLock()
        self._seq = itertools.count()

    # -------------------------------------------------------------- data
    def index(
        self,
        name: str,
        doc_id: str | None,
        source: Mapping[str, Any],
        *,
        create: bool = False,
        check: bool = True,
    ) -> tuple[int, str]:
        """Store a document; ``(status, result)`` or raises :class:`EsError` (409, 400). Date fields
        are kept parsed for searching; ``check=False`` (trusted test data) skips the type checks."""
        with self._lock:
            target = self.indices.setdefault(name, _Index(name))
            doc_id = doc_id or uuid.uuid4().hex[:20]
            if create and doc_id in target.docs:
                raise EsError(
                    409,
                    "version_conflict_engine_exception",
                    f"[{doc_id}]: version conflict, document already exists (current version [1])",
                    index=name,
                )
            flat = flatten(source)
            types = target.types
            for key, value in flat.items():
                kind = types.get(key)
                items = value if isinstance(value, list) else (value,)
                if kind is None:
                    first = next((i for i in items if i is not None), None)
                    if first is None:
                        continue
                    kind = types[key] = "text" if key in TEXT_FIELDS else _type_of(first)
                if kind == "date":
                    parsed = [parse_date(i) for i in items]
                    if check and any(p is None and i is not None for p, i in zip(parsed, items, strict=True)):
                        bad = next(
                            i for p, i in zip(parsed, items, strict=True) if p is None and i is not None
                        )
                        raise EsError(
                            400,
                            "mapper_parsing_exception",
                            f"failed to parse field [{key}] of type [date] in document with id "
                            f"'{doc_id}'. Preview of field's value: '{bad}'",
                        )
                    flat[key] = parsed if isinstance(value, list) else parsed[0]
                elif check:
                    for item in items:
                        if not _fits(kind, item):
                            raise EsError(
                                400,
                                "mapper_parsing_exception",
                                f"failed to parse field [{key}] of type [{kind}] in document with id "
                                f"'{doc_id}'. Preview of field's value: '{item}'",
                            )
            existed = doc_id in target.docs
            target.docs[doc_id] = (next(self._seq), dict(source), flat)
            return (200, "updated") if existed else (201, "created")

    def define(self, name: str, field: str, kind: str) -> None:
        """Map ``field`` of index ``name`` as ``kind`` (e.g. ``ip``) before any document sets it."""
        with self._lock:
            self.indices.setdefault(name, _Index(name)).types[field] = kind

    def load(self, documents: Iterable[tuple[str, str, Mapping[str, Any]]]) -> None:
        """Store ``(index, id, source)`` documents."""
        for name, doc_id, source in documents:
            self.index(name, doc_id, source, check=False)

    def count(self, pattern: str = "*") -> int:
        """Documents in the indices matching ``pattern``."""
        return sum(len(self.indices[n].docs) for n in self._resolve(pattern, strict=False))

    def documents(self, pattern: str = "*") -> list[tuple[str, dict[str, Any]]]:
        """``(id, source)`` of every stored document."""
        return [
            (i, d[1]) for n in self._resolve(pattern, strict=False) for i, d in self.indices[n].docs.items()
        ]

    def throttle_items(self, count: int) -> None:
        """The next ``count`` bulk items are rejected with 429 (nothing stored)."""
        self._throttle += count

    def _resolve(self, pattern: str, *, strict: bool = True) -> list[str]:
        names: list[str] = []
        for part in [p.strip() for p in pattern.split(",") if p.strip()]:
            if part in ("_all", "*"):
                names += list(self.indices)
            elif "*" in part:
                regex = _wildcard(part, False)
                names += [n for n in self.indices if regex.fullmatch(n)]
            elif part in self.indices:
                names.append(part)
            elif strict:
                raise EsError(404, "index_not_found_exception", f"no such index [{part}]", index=part)
        return list(dict.fromkeys(names))

    def _types(self, names: Iterable[str]) -> dict[str, str]:
        types: dict[str, str] = {}
        for name in names:
            for key, kind in self.indices[name].types.items():
                types.setdefault(key, kind)
        return types

    # -------------------------------------------------------------- the app
    def app(self, request: LoopbackRequest) -> Reply:
        """The REST endpoints, with the product header on every answer."""
        accept = request.header("accept") or ""
        version = re.search(r"compatible-with=(\d+)", accept)
        try:
            if version and version.group(1) not in ("8", "9"):
                raise EsError(
                    400,
                    "media_type_header_exception",
                    f"Accept version must be either version 8 or 9, but found {version.group(1)}.",
                )
            if not self._authorized(request):
                return self._reply(
                    EsError(
                        401,
                        "security_exception",
                        "unable to authenticate with provided credentials and anonymous access is not "
                        "allowed for this request",
                        header={"WWW-Authenticate": ['Basic realm="security" charset="UTF-8"', "ApiKey"]},
                    ).body(),
                    401,
                    version,
                    {"WWW-Authenticate": 'Basic realm="security" charset="UTF-8"'},
                )
            wait = max(
                (s for text, s in self.slow.items() if text in request.body.decode("utf-8", "replace")),
                default=0,
            )
            if wait:
                time.sleep(wait)
            status, body, extra = self._route(request)
        except EsError as exc:
            return self._reply(exc.body(), exc.status, version)
        except (SplError, ValueError, KeyError) as exc:
            return self._reply(EsError(400, "parsing_exception", str(exc)).body(), 400, version)
        return self._reply(body, status, version, extra)

    def _reply(
        self, body: Any, status: int, version: re.Match[str] | None, extra: Mapping[str, str] | None = None
    ) -> Reply:
        kind = (
            f"application/vnd.elasticsearch+json;compatible-with={version.group(1)}"
            if version
            else "application/json"
        )
        product = {} if self.opensearch else {"X-Elastic-Product": "Elasticsearch"}
        headers = {"Content-Type": kind, **product, **(extra or {})}
        return Reply(status, json.dumps(body, default=_json_default).encode(), headers)

    def _authorized(self, request: LoopbackRequest) -> bool:
        scheme, _, value = (request.header("authorization") or "").partition(" ")
        if scheme == "ApiKey" and self.api_key:
            return value == base64.b64encode(":".join(self.api_key).encode()).decode()
        if scheme == "Basic" and self.username:
            return value == base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        if scheme == "Bearer" and self.bearer:
            return value == self.bearer
        return False

    def _route(self, request: LoopbackRequest) -> tuple[int, Any, dict[str, str]]:
        path, method = request.path.rstrip("/") or "/", request.method
        if self.opensearch:
            routed = self._opensearch_route(request, path, method)
            if routed is not None:
                return routed
        elif path == "/" and method in ("GET", "HEAD"):
            return (
                200,
                {
                    "name": "loopback-es01",
                    "cluster_name": "loopback",
                    "cluster_uuid": "loopback",
                    "version": {"number": VERSION, "build_flavor": "default"},
                    "tagline": "You Know, for Search",
                },
                {},
            )
        if path == "/_pit" and method == "DELETE" and not self.opensearch:
            pit_id = request.json().get("id")
            with self._lock:
                freed = self.pits.pop(pit_id, None) is not None
                self.closed_pits.append(pit_id)
            return (200 if freed else 404), {"succeeded": True, "num_freed": int(freed)}, {}
        match = re.fullmatch(r"/([^_/][^/]*)/_pit", path)
        if match and method == "POST" and not self.opensearch:
            return 200, self._open_pit(match.group(1), request.param("keep_alive") or ""), {}
        match = re.fullmatch(r"(?:/([^_/][^/]*))?/_search", path)
        if match:
            return 200, self._search(match.group(1), request.json() if request.body else {}), {}
        match = re.fullmatch(r"(?:/([^_/][^/]*))?/_field_caps", path)
        if match and method in ("GET", "POST"):
            fields = request.param("fields") or (request.json() if request.body else {}).get("fields") or "*"
            return 200, self._field_caps(match.group(1) or "_all", fields), {}
        if path == "/_query" and method == "POST" and not self.opensearch:
            return self._esql(request.json())
        match = re.fullmatch(r"(?:/([^_/][^/]*))?/_bulk", path)
        if match and method in ("POST", "PUT"):
            body = request.body
            if (request.header("content-encoding") or "").lower() == "gzip":
                body = gzip.decompress(body)
            return 200, self._bulk(match.group(1), body), {}
        raise EsError(
            400, "illegal_argument_exception", f"no handler found for uri [{path}] and method [{method}]"
        )

    def _opensearch_route(
        self, request: LoopbackRequest, path: str, method: str
    ) -> tuple[int, Any, dict[str, str]] | None:
        """OpenSearch's own endpoints (None: the shared ones)."""
        if path == "/" and method in ("GET", "HEAD"):
            version = {"distribution": "opensearch", "number": OPENSEARCH_VERSION, "build_type": "tar"}
            info = {
                "name": "loopback-os01",
                "cluster_name": "loopback",
                "cluster_uuid": "loopback",
                "version": {
                    **version,
                    "lucene_version": "9.12.1",
                    "minimum_wire_compatibility_version": "7.10.0",
                },
                "tagline": "The OpenSearch Project: https://opensearch.org/",
            }
            return 200, info, {}
        match = re.fullmatch(r"/([^_/][^/]*)/_search/point_in_time", path)
        if match and method == "POST":
            opened = self._open_pit(match.group(1), request.param("keep_alive") or "")
            created = int(time.time() * 1000)
            return 200, {"pit_id": opened["id"], "_shards": opened["_shards"], "creation_time": created}, {}
        if path == "/_search/point_in_time" and method == "DELETE":
            wanted = request.json().get("pit_id")
            answers = []
            for pit_id in wanted if isinstance(wanted, list) else [wanted]:
                with self._lock:
                    freed = self.pits.pop(pit_id, None) is not None
                    self.closed_pits.append(pit_id)
                answers.append({"pit_id": pit_id, "successful": freed})
            return 200, {"pits": answers}, {}
        return None

    def _field_caps(self, target: str, fields: str | list[str]) -> dict[str, Any]:
        """``GET /<index>/_field_caps?fields=a,b*`` (or ``{"fields"}`` in the body): each matching
        field's type(s), with the indices of each type when they differ."""
        fields = ",".join(fields) if isinstance(fields, list) else fields
        with self._lock:
            names = self._resolve(target)
            found: dict[str, dict[str, list[str]]] = {}
            for name in names:
                for field, kind in self.indices[name].types.items():
                    if any(_wildcard(w, False).fullmatch(field) for w in fields.split(",")):
                        found.setdefault(field, {}).setdefault(kind, []).append(name)
        answer: dict[str, Any] = {"indices": names, "fields": {}}
        for field, kinds in found.items():
            answer["fields"][field] = {
                kind: {
                    "type": kind,
                    "metadata_field": False,
                    "searchable": True,
                    "aggregatable": kind != "text",
                }
                | ({"indices": indices} if len(kinds) > 1 else {})
                for kind, indices in kinds.items()
            }
        return answer

    # -------------------------------------------------------------- PIT and search
    def _open_pit(self, target: str, keep_alive: str) -> dict[str, Any]:
        seconds = _duration(keep_alive)
        with self._lock:
            names = self._resolve(target)
            docs = [(n, i, d) for n in names for i, d in self.indices[n].docs.items()]
            pit_id = base64.urlsafe_b64encode(uuid.uuid4().bytes * 2).decode().rstrip("=")
            self.pits[pit_id] = {
                "docs": docs,
                "types": self._types(names),
                "expires": time.monotonic() + seconds,
            }
        return {"id": pit_id, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0}}

    def _search(self, target: str | None, body: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.searches.append(dict(body))
        size = int(body.get("size", 10))
        start = int(body.get("from", 0))
        if start + size > MAX_WINDOW:
            raise EsError(
                400,
                "illegal_argument_exception",
                "Result window is too large, from + size must be less than or equal to: "
                f"[{MAX_WINDOW}] but was [{start + size}]. See the scroll api for a more efficient way to "
                "request large data sets. This "
                "limit can be set by changing the [index.max_result_window] index level setting.",
            )
        pit = body.get("pit")
        if pit:
            if target:
                raise EsError(
                    400, "illegal_argument_exception", "[indices] cannot be used with point in time"
                )
            with self._lock:
                snapshot = self.pits.get(pit.get("id"))
                if snapshot is None or snapshot["expires"] < time.monotonic():
                    self.pits.pop(pit.get("id"), None)
                    raise EsError(404, "search_context_missing_exception", "No search context found for id")
                if pit.get("keep_alive"):
                    snapshot["expires"] = time.monotonic() + _duration(pit["keep_alive"])
            docs, types = snapshot["docs"], snapshot["types"]
        else:
            with self._lock:
                names = self._resolve(target or "_all")
                docs = [(n, i, d) for n in names for i, d in self.indices[n].docs.items()]
                types = self._types(names)
        sort = _sort_spec(body.get("sort"), tiebreak=bool(pit) and not self.opensearch)
        cache_key = json.dumps([body.get("query"), body.get("sort")], sort_keys=True, default=str)
        cached = snapshot.setdefault("cache", {}).get(cache_key) if pit else None
        if cached is None:
            test = compile_query(body.get("query") or {"match_all": {}}, types)
            hits = [(n, i, d) for n, i, d in docs if test(d[2])]
            keyed = [(_sort_values(i, d, sort, types), n, i, d) for n, i, d in hits] if sort else []
            keyed.sort(key=lambda k: _order_key(k[0], sort))
            cached = (hits, keyed, [_order_key(k[0], sort) for k in keyed])
            if pit:
                snapshot["cache"][cache_key] = cached  # the next pages of the same search
        hits, keyed, order = cached
        if sort:
            after = body.get("search_after")
            first = bisect.bisect_right(order, _order_key(list(after), sort)) if after is not None else 0
            page = keyed[first + start : first + start + size]
            out = [_hit(n, i, d, body, values) for values, n, i, d in page]
        else:
            out = [_hit(n, i, d, body, None) for n, i, d in hits[start : start + size]]
        answer: dict[str, Any] = {
            "took": 1,
            "timed_out": False,
            "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
            "hits": {"max_score": None, "hits": out},
        }
        if body.get("track_total_hits", True) is not False:
            answer["hits"]["total"] = {"value": len(hits), "relation": "eq"}
        aggs = body.get("aggs", body.get("aggregations"))
        if aggs:
            answer["aggregations"] = aggregate(aggs, [d[2] for _, _, d in hits], types)
        if pit:
            answer["pit_id"] = pit["id"]
        return answer

    # -------------------------------------------------------------- bulk
    def _bulk(self, target: str | None, body: bytes) -> dict[str, Any]:
        lines = [line for line in body.decode("utf-8").split("\n") if line.strip()]
        items: list[dict[str, Any]] = []
        ids: list[str] = []
        position = 0
        with self._lock:  # this request's share of the throttled items
            throttle = self._throttle
            self._throttle = max(0, self._throttle - (len(lines) + 1) // 2)
        while position < len(lines):
            action_line = json.loads(lines[position])
            position += 1
            ((op, meta),) = action_line.items()
            name = meta.get("_index") or target
            doc_id = meta.get("_id")
            ids.append(str(doc_id))
            source = None
            if op in ("index", "create"):
                source = json.loads(lines[position])
                position += 1
            item: dict[str, Any] = {"_index": name, "_id": doc_id}
            throttled = throttle > 0
            throttle -= 1
            try:
                if throttled:
                    raise EsError(
                        429,
                        "es_rejected_execution_exception",
                        "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, "
                        "replica_bytes=0, all_bytes=0, coordinating_operation_bytes=1, "
                        "max_coordinating_and_primary_bytes=0]",
                    )
                if op == "delete":
                    with self._lock:
                        gone = self.indices.get(name) and self.indices[name].docs.pop(doc_id, None)
                    item.update(status=200 if gone else 404, result="deleted" if gone else "not_found")
                elif op in ("index", "create"):
                    status, result = self.index(name, doc_id, source or {}, create=op == "create")
                    item.update(
                        _version=1,
                        result=result,
                        status=status,
                        _seq_no=0,
                        _primary_term=1,
                        _shards={"total": 1, "successful": 1, "failed": 0},
                    )
                else:
                    raise EsError(400, "illegal_argument_exception", f"Malformed action/metadata line [{op}]")
            except EsError as exc:
                item.update(status=exc.status, error={"type": exc.kind, "reason": exc.reason, "index": name})
            items.append({op: item})
        with self._lock:
            self.bulk_requests.append(ids)
            lost = self.lose_replies > 0
            self.lose_replies -= 1 if lost else 0
        if lost:
            time.sleep(self.hang)  # stored, but the answer comes too late for the client
        return {
            "took": 3,
            "errors": any(next(iter(i.values()))["status"] >= 300 for i in items),
            "items": items,
        }

    # -------------------------------------------------------------- ES|QL
    def _esql(self, body: Mapping[str, Any]) -> tuple[int, Any, dict[str, str]]:
        query = str(body.get("query", ""))
        columnar = bool(body.get("columnar", False))
        commands = _esql_pipes(query)
        head = commands[0]
        match = re.fullmatch(r"(?is)FROM\s+(.+?)(?:\s+METADATA\s+(.+))?", head.strip())
        if not match:
            raise EsError(
                400,
                "parsing_exception",
                f"line 1:1: mismatched input '{head.split()[0] if head.split() else ''}' expecting FROM",
            )
        with self._lock:
            names = self._resolve(match.group(1).strip())
            types = self._types(names)
            rows = []
            for name in names:
                for doc_id, (_, _, flat) in self.indices[name].docs.items():
                    row = {k: _esql_value(v, types.get(k)) for k, v in flat.items()}
                    row["_id"], row["_index"] = doc_id, name
                    rows.append(row)
        columns = sorted(k for k in types if not k.startswith("_")) or []
        limited = False
        warnings: list[str] = []
        for command in commands[1:]:
            rows, columns, limited = _esql_command(rows, columns, command, limited)
        if not limited:
            warnings.append("No limit defined, adding default limit of [1000]")
            rows = rows[:ESQL_DEFAULT_LIMIT]
        if len(rows) > ESQL_MAX:
            rows = rows[:ESQL_MAX]
        kinds = [_esql_type(types.get(c), [r.get(c) for r in rows]) for c in columns]
        table = [[_esql_out(r.get(c)) for c in columns] for r in rows]
        values = [list(col) for col in zip(*table, strict=True)] if columnar else table
        if columnar and not rows:
            values = [[] for _ in columns]
        extra = {}
        if warnings:
            extra["Warning"] = ", ".join(f'299 Elasticsearch-{VERSION}-loopback "{w}"' for w in warnings)
        answer = {
            "took": 2,
            "is_partial": False,
            "columns": [{"name": c, "type": k} for c, k in zip(columns, kinds, strict=True)],
            "values": values,
        }
        return 200, answer, extra


# ==============================================================================================
# Query DSL compilation


def compile_query(query: Mapping[str, Any], types: Mapping[str, str]) -> Predicate:
    """A query DSL object as a predicate over flattened documents."""
    if not isinstance(query, Mapping) or len(query) != 1:
        raise EsError(400, "parsing_exception", "[_na] query malformed, must start with start_object")
    ((kind, spec),) = query.items()
    if kind == "match_all":
        return lambda doc: True
    if kind == "match_none":
        return lambda doc: False
    if kind == "bool":
        return _bool(spec, types)
    if kind in ("prefix", "wildcard", "regexp"):
        ((name, _),) = spec.items()
        if types.get(name, "keyword") == "ip":
            raise EsError(
                400,
                "query_shard_exception",
                f"failed to create query: Can only use {kind} queries on keyword and text fields - not on "
                f"[{name}] which is of type [ip]",
            )
    if kind in ("term", "prefix", "wildcard"):
        ((name, value),) = spec.items()
        options = value if isinstance(value, Mapping) else {"value": value}
        wanted = options.get("value", options.get("wildcard"))
        insensitive = bool(options.get("case_insensitive", False))
        ftype = types.get(name, "keyword")
        if kind == "term":
            return lambda doc: any(_same(v, wanted, ftype, insensitive) for v in _values(doc, name))
        if kind == "prefix":
            low = str(wanted).lower() if insensitive else str(wanted)
            return lambda doc: any(
                (str(v).lower() if insensitive else str(v)).startswith(low) for v in _values(doc, name)
            )
        regex = _wildcard(str(wanted), insensitive)
        return lambda doc: any(regex.fullmatch(str(v)) for v in _values(doc, name))
    if kind == "regexp":
        ((name, value),) = spec.items()
        options = value if isinstance(value, Mapping) else {"value": value}
        regex = _lucene_regexp(str(options["value"]), bool(options.get("case_insensitive", False)))
        return lambda doc: any(regex.fullmatch(str(v)) for v in _values(doc, name))
    if kind == "terms":
        ((name, wanted),) = spec.items()
        ftype = types.get(name, "keyword")
        return lambda doc: any(_same(v, w, ftype) for v in _values(doc, name) for w in wanted)
    if kind in ("match", "match_phrase"):
        ((name, value),) = spec.items()
        text = value.get("query") if isinstance(value, Mapping) else value
        return _match(name, text, types.get(name, "keyword"), phrase=kind == "match_phrase")
    if kind == "range":
        ((name, bounds),) = spec.items()
        ftype = types.get(name, "keyword")
        return lambda doc: _range(doc, name, bounds, ftype)
    if kind == "exists":
        name = spec["field"]
        return lambda doc: bool(_values(doc, name)) or any(k.startswith(name + ".") for k in doc)
    if kind == "ids":
        wanted_ids = set(spec.get("values", []))
        return lambda doc: doc.get("_id") in wanted_ids
    if kind == "query_string":
        return compile_lucene(str(spec["query"]), types, default_field=spec.get("default_field", "*"))
    raise EsError(400, "parsing_exception", f"unknown query [{kind}]", line=1, col=1)


# ==============================================================================================
# Aggregations


def aggregate(
    aggs: Mapping[str, Any], docs: list[Mapping[str, Any]], types: Mapping[str, str]
) -> dict[str, Any]:
    """``aggs`` of a search body over the matching (flattened) documents: ``composite`` (``terms``
    sources, ``missing_bucket``, ``order``, ``size``, ``after``; ``after_key`` in the answer),
    ``terms`` (``size``, by count then key) and the metrics ``min max sum avg value_count
    cardinality`` (dates: ``value`` epoch milliseconds and ``value_as_string``)."""
    if not isinstance(aggs, Mapping):
        raise EsError(400, "parsing_exception", "aggregations must be an object")
    return {name: _aggregation(name, spec, docs, types) for name, spec in aggs.items()}


def _aggregation(
    name: str, spec: Mapping[str, Any], docs: list[Mapping[str, Any]], types: Mapping[str, str]
) -> dict[str, Any]:
    subs = spec.get("aggs", spec.get("aggregations")) or {}
    kinds = [k for k in spec if k not in ("aggs", "aggregations", "meta")]
    if len(kinds) != 1:
        raise EsError(400, "parsing_exception", f"Expected one aggregation type for [{name}]")
    kind, options = kinds[0], spec[kinds[0]]
    if kind in _METRICS:
        return _metric(kind, options, docs, types)
    if kind == "composite":
        return _composite_buckets(name, options, subs, docs, types)
    if kind == "terms":
        field, size = options["field"], int(options.get("size", 10))
        groups: dict[Any, list[Mapping[str, Any]]] = {}
        for doc in docs:
            for value in dict.fromkeys(_bucket_key(v, types.get(field)) for v in _values(doc, field)):
                groups.setdefault(value, []).append(doc)
        ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), _key_order(kv[0])))
        buckets = [_bucket(key, group, subs, types) for key, group in ordered[:size]]
        left = sum(len(g) for _, g in ordered[size:])
        return {"doc_count_error_upper_bound": 0, "sum_other_doc_count": left, "buckets": buckets}
    raise EsError(400, "unknown_named_object_exception", f"Unknown aggregation type [{kind}] for [{name}]")


_METRICS = frozenset({"min", "max", "sum", "avg", "value_count", "cardinality"})


def _metric(
    kind: str, options: Mapping[str, Any], docs: list[Mapping[str, Any]], types: Mapping[str, str]
) -> dict[str, Any]:
    field = options["field"]
    values = [v for doc in docs for v in _values(doc, field)]
    if kind == "value_count":
        return {"value": len(values)}
    if kind == "cardinality":
        return {"value": len({_bucket_key(v, types.get(field)) for v in values})}
    dated = types.get(field) == "date"
    numbers = [parse_date(v).timestamp() * 1000 if dated else float(v) for v in values]  # type: ignore[union-attr]
    if kind == "sum":
        return {"value": float(sum(numbers))}
    if not numbers:
        return {"value": None}
    value = min(numbers) if kind == "min" else max(numbers) if kind == "max" else sum(numbers) / len(numbers)
    if dated and kind in ("min", "max"):
        stamp = datetime.fromtimestamp(value / 1000, UTC).isoformat(timespec="milliseconds")
        return {"value": value, "value_as_string": stamp.replace("+00:00", "Z")}
    return {"value": value}


def _bucket_key(value: Any, kind: str | None) -> Any:
    """A terms key as Elasticsearch returns it: dates as epoch milliseconds, numbers as numbers."""
    if kind == "date":
        return int(parse_date(value).timestamp() * 1000)  # type: ignore[union-attr]
    if kind in ("long", "double") and not isinstance(value, bool):
        return int(value) if kind == "long" else float(value)
    return value


def _key_order(value: Any) -> tuple[Any, ...]:
    return (0,) if value is None else (1, value) if isinstance(value, int | float) else (2, str(value))


def _bucket(
    key: Any, docs: list[Mapping[str, Any]], subs: Mapping[str, Any], types: Mapping[str, str]
) -> dict[str, Any]:
    return {"key": key, "doc_count": len(docs), **aggregate(subs, docs, types)}


class _Reversed:
    """A sort key that orders in reverse (a ``desc`` composite source)."""

    def __init__(self, key: Any) -> None:
        self.key = key

    def __lt__(self, other: _Reversed) -> bool:
        return bool(other.key < self.key)

    def __gt__(self, other: _Reversed) -> bool:
        return bool(other.key > self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reversed) and self.key == other.key

    __hash__ = None  # type: ignore[assignment]


def _composite_buckets(
    name: str,
    options: Mapping[str, Any],
    subs: Mapping[str, Any],
    docs: list[Mapping[str, Any]],
    types: Mapping[str, str],
) -> dict[str, Any]:
    sources = []
    for source in options.get("sources") or []:
        ((key, spec),) = source.items()
        if set(spec) != {"terms"}:
            raise EsError(400, "parsing_exception", f"the loopback's composite [{name}] takes terms sources")
        terms = spec["terms"]
        sources.append((key, terms["field"], bool(terms.get("missing_bucket")), terms.get("order", "asc")))
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for doc in docs:
        choices = []
        for _, field, missing, _ in sources:
            values = list(dict.fromkeys(_bucket_key(v, types.get(field)) for v in _values(doc, field)))
            choices.append(values or ([None] if missing else []))
        for combination in itertools.product(*choices):
            groups.setdefault(combination, []).append(doc)

    def order(key: tuple[Any, ...]) -> tuple[Any, ...]:
        parts = []
        for value, (_, _, _, direction) in zip(key, sources, strict=True):
            rank = _key_order(value)
            parts.append(_Reversed(rank) if direction == "desc" else rank)
        return tuple(parts)

    keys = sorted(groups, key=order)
    after = options.get("after")
    if after is not None:
        mark = order(tuple(after.get(k) for k, _, _, _ in sources))
        keys = [k for k in keys if order(k) > mark]
    page = keys[: int(options.get("size", 10))]
    names = [k for k, _, _, _ in sources]
    buckets = [_bucket(dict(zip(names, key, strict=True)), groups[key], subs, types) for key in page]
    out: dict[str, Any] = {"buckets": buckets}
    if buckets:
        out["after_key"] = buckets[-1]["key"]
    return out


def _bool(spec: Mapping[str, Any], types: Mapping[str, str]) -> Predicate:
    def many(key: str) -> list[Predicate]:
        value = spec.get(key) or []
        return [compile_query(q, types) for q in (value if isinstance(value, list) else [value])]

    must, filters, should, must_not = many("must"), many("filter"), many("should"), many("must_not")
    needed = spec.get("minimum_should_match", 0 if must or filters else 1 if should else 0)
    needed = int(needed)

    def test(doc: Mapping[str, Any]) -> bool:
        if not all(p(doc) for p in must) or not all(p(doc) for p in filters):
            return False
        if any(p(doc) for p in must_not):
            return False
        return sum(1 for p in should if p(doc)) >= needed if should else True

    return test


def _match(name: str, text: Any, ftype: str, *, phrase: bool = False) -> Predicate:
    if ftype != "text":
        return lambda doc: any(_same(v, text, ftype) for v in _values(doc, name))
    wanted = _tokens(text)
    if phrase:
        joined = " ".join(wanted)
        return lambda doc: any(joined in " ".join(_tokens(v)) for v in _values(doc, name))
    return lambda doc: any(set(wanted) & set(_tokens(v)) for v in _values(doc, name))


# ==============================================================================================
# Lucene query strings

_LUCENE_TOKEN = re.compile(
    r"""\s*(?:(?P<lp>\()|(?P<rp>\))|(?P<range>[\[{](?:"(?:[^"\\]|\\.)*"|[^\s\]}]+)\s+TO\s+(?:"(?:[^"\\]|\\.)*"|[^\s\]}]+)[\]}])"""
    r"""|(?P<phrase>"(?:[^"\\]|\\.)*")|(?P<op>AND\b|OR\b|NOT\b|&&|\|\||!|\+|-(?=\S))|(?P<term>(?:\\.|[^\s()"\\:])+)(?P<colon>:)?)"""
)


def _lucene_unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def compile_lucene(text: str, types: Mapping[str, str], default_field: str = "*") -> Predicate:
    """A Lucene query string (the subset in the module docs) as a predicate."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if not text[pos:].strip():
            break
        match = _LUCENE_TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise EsError(400, "query_shard_exception", f"Failed to parse query [{text}]")
        pos = match.end()
        kind = match.lastgroup or ""
        if match.group("term") is not None:
            kind = "field" if match.group("colon") else "term"
            tokens.append((kind, match.group("term")))
        else:
            tokens.append((kind, match.group(kind)))
    index = 0

    def peek() -> tuple[str, str]:
        return tokens[index] if index < len(tokens) else ("end", "")

    def take() -> tuple[str, str]:
        nonlocal index
        index += 1
        return tokens[index - 1]

    def value(name: str) -> Predicate:
        kind, raw = take()
        ftype = types.get(name, "keyword")
        if kind == "lp":
            parts = [value(name)]
            while peek()[0] != "rp":
                if peek() == ("op", "OR"):
                    take()
                parts.append(value(name))
            take()
            return lambda doc: any(p(doc) for p in parts)
        if kind == "phrase":
            wanted = _lucene_unescape(raw[1:-1])
            return single(
                name,
                lambda v: (
                    _same(v, wanted, ftype)
                    if ftype != "text"
                    else " ".join(_tokens(wanted)) in " ".join(_tokens(v))
                ),
            )
        if kind == "range":
            low, high = re.match(r"[\[{](.+?)\s+TO\s+(.+)[\]}]", raw, re.DOTALL).groups()  # type: ignore[union-attr]
            low, high = (_lucene_unescape(b.strip('"')) for b in (low, high))
            bounds = {}
            if low != "*":
                bounds["gte" if raw[0] == "[" else "gt"] = low
            if high != "*":
                bounds["lte" if raw[-1] == "]" else "lt"] = high
            return lambda doc: any(_range(doc, n, bounds, types.get(n, ftype)) for n in _names(doc, name))
        if kind != "term":
            raise EsError(400, "query_shard_exception", f"Failed to parse query [{text}]")
        if re.search(r"(?<!\\)[*?]", raw):
            regex = _wildcard(raw, False)
            return single(name, lambda v: bool(regex.fullmatch(str(v))))
        wanted = _lucene_unescape(raw)
        if ftype == "text":
            return single(name, lambda v: wanted.lower() in _tokens(v))
        return single(name, lambda v: _same(v, wanted, ftype))

    def single(name: str, test: Callable[[Any], bool]) -> Predicate:
        return lambda doc: any(test(v) for n in _names(doc, name) for v in _values(doc, n))

    def primary() -> Predicate:
        kind, raw = peek()
        if kind == "lp":
            take()
            inner = disjunction()
            if take()[0] != "rp":
                raise EsError(400, "query_shard_exception", f"Failed to parse query [{text}]")
            return inner
        if kind == "field":
            take()
            name = _lucene_unescape(raw)
            if name == "_exists_":
                _, target = take()
                return lambda doc: bool(_values(doc, target))
            return value(name)
        return value(default_field)

    def unary() -> Predicate:
        kind, raw = peek()
        if kind == "op" and raw in ("NOT", "!", "-"):
            take()
            inner = unary()
            return lambda doc: not inner(doc)
        if kind == "op" and raw == "+":
            take()
        return primary()

    def conjunction() -> Predicate:
        parts = [unary()]
        while peek() in (("op", "AND"), ("op", "&&")):
            take()
            parts.append(unary())
        return lambda doc: all(p(doc) for p in parts)

    def disjunction() -> Predicate:
        parts = [conjunction()]
        while peek()[0] not in ("end", "rp"):
            if peek() in (("op", "OR"), ("op", "||")):
                take()
            parts.append(conjunction())
        return parts[0] if len(parts) == 1 else lambda doc: any(p(doc) for p in parts)

    predicate = disjunction()
    if peek()[0] != "end":
        raise EsError(400, "query_shard_exception", f"Failed to parse query [{text}]")
    return predicate


def _names(doc: Mapping[str, Any], name: str) -> list[str]:
    if name == "*":
        return [k for k in doc if not k.startswith("_")]
    if "*" in name:
        regex = _wildcard(name, False)
        return [k for k in doc if regex.fullmatch(k)]
    return [name]


# ==============================================================================================
# Sorting and hits


def _sort_spec(sort: Any, *, tiebreak: bool) -> list[tuple[str, bool, str | None]]:
    """``[(field, descending, missing)]``; a point in time adds ``_shard_doc``."""
    items = sort if isinstance(sort, list) else [sort] if sort else []
    spec = []
    for item in items:
        if isinstance(item, str):
            name, order = (item[:-5], "desc") if item.endswith(":desc") else (item, "asc")
            spec.append((name, order == "desc", None))
        else:
            ((name, options),) = item.items()
            order = options if isinstance(options, str) else options.get("order", "asc")
            missing = options.get("missing") if isinstance(options, Mapping) else None
            spec.append((name, order == "desc", missing))
    if tiebreak and not any(n in ("_shard_doc", "_doc") for n, _, _ in spec):
        spec.append(("_shard_doc", False, None))
    return spec


def _sort_values(
    doc_id: str,
    doc: tuple[int, dict[str, Any], dict[str, Any]],
    spec: list[tuple[str, bool, str | None]],
    types: Mapping[str, str],
) -> list[Any]:
    seq, _, flat = doc
    values: list[Any] = []
    for name, descending, _ in spec:
        if name in ("_shard_doc", "_doc"):
            values.append(seq)
            continue
        if name == "_id":
            values.append(doc_id)
            continue
        found = _values(flat, name)
        value = (max if descending else min)(found, key=_sort_key) if found else None
        if value is not None and types.get(name) == "date":
            stamp = parse_date(value)
            value = int(stamp.timestamp() * 1000) if stamp else None
        values.append(value)
    return values


def _order_key(values: list[Any], spec: list[tuple[str, bool, str | None]]) -> tuple[Any, ...]:
    out: list[Any] = []
    for value, (_, descending, _) in zip(values, spec, strict=True):
        rank, key = _sort_key(value)
        if value is None:
            out.append((1, 0, ""))  # missing values last, in either order
        elif descending:
            out.append((0, -key, "") if rank == 0 else (0, 0, _Reverse(key)))
        else:
            out.append((0, key, "") if rank == 0 else (0, 0, key))
    return tuple(out)


class _Reverse(str):
    """A string that sorts in reverse."""

    def __lt__(self, other: object) -> bool:
        return str.__gt__(self, other)  # type: ignore[operator]

    def __gt__(self, other: object) -> bool:
        return str.__lt__(self, other)  # type: ignore[operator]


def _hit(
    name: str,
    doc_id: str,
    doc: tuple[int, dict[str, Any], dict[str, Any]],
    body: Mapping[str, Any],
    sort: list[Any] | None,
) -> dict[str, Any]:
    source: Any = doc[1]
    wanted = body.get("_source", True)
    if wanted is False:
        source = None
    elif isinstance(wanted, list):
        source = {
            k: v for k, v in flatten(doc[1]).items() if any(_wildcard(w, False).fullmatch(k) for w in wanted)
        }
    hit: dict[str, Any] = {"_index": name, "_id": doc_id, "_score": None if sort is not None else 1.0}
    if source is not None:
        hit["_source"] = source
    if sort is not None:
        hit["sort"] = sort
    return hit


def _duration(text: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m|h|d)", text.strip())
    if not match:
        raise EsError(
            400, "illegal_argument_exception", f"failed to parse setting [keep_alive] with value [{text}]"
        )
    return int(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    raise TypeError(type(value).__name__)


# ==============================================================================================
# ES|QL


def _esql_pipes(text: str) -> list[str]:
    parts, current, quote, i = [], [], False, 0
    text = re.sub(r"//[^\n]*", "", text)
    while i < len(text):
        if text.startswith('"""', i):
            end = text.find('"""', i + 3)
            current.append(text[i : end + 3])
            i = end + 3
            continue
        ch = text[i]
        if quote and ch == "\\":
            current.append(text[i : i + 2])
            i += 2
            continue
        if ch == '"':
            quote = not quote
        if ch == "|" and not quote:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def _esql_value(value: Any, kind: str | None) -> Any:
    if kind == "date":
        if isinstance(value, list):
            return [parse_date(v) for v in value]
        return parse_date(value)
    return value


def _esql_out(value: Any) -> Any:
    if isinstance(value, list):
        items = [_esql_out(v) for v in value]
        return items if len(items) > 1 else (items[0] if items else None)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return value


def _esql_type(mapped: str | None, values: list[Any]) -> str:
    if mapped and mapped != "text":
        return mapped
    sample = next((v[0] if isinstance(v, list) and v else v for v in values if v not in (None, [])), None)
    if isinstance(sample, datetime):
        return "date"
    if isinstance(sample, bool):
        return "boolean"
    if isinstance(sample, int):
        return "long"
    if isinstance(sample, float):
        return "double"
    return "text" if mapped == "text" else "keyword"


def _split_args(text: str) -> list[str]:
    parts, depth, quote, current = [], 0, False, []
    for i, ch in enumerate(text):
        if ch == '"' and (i == 0 or text[i - 1] != "\\"):
            quote = not quote
        if not quote:
            depth += ch == "("
            depth -= ch == ")"
            if ch == "," and depth == 0:
                parts.append("".join(current).strip())
                current = []
                continue
        current.append(ch)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def _esql_command(
    rows: list[dict[str, Any]], columns: list[str], command: str, limited: bool
) -> tuple[list[dict[str, Any]], list[str], bool]:
    name, _, rest = command.strip().partition(" ")
    name, rest = name.upper(), rest.strip()
    if name == "WHERE":
        test = compile_expression(rest, "esql")
        return [r for r in rows if test(r) is True], columns, limited
    if name == "EVAL":
        for part in _split_args(rest):
            target, _, expression = part.partition("=")
            target = target.strip().strip("`")
            fn = compile_expression(expression, "esql")
            for row in rows:
                row[target] = fn(row)
            if target not in columns:
                columns = [*columns, target]
        return rows, columns, limited
    if name in ("KEEP", "DROP"):
        patterns = [p.strip().strip("`") for p in rest.split(",")]
        picked = [
            c for p in patterns for c in (columns if "*" in p else [p]) if _wildcard(p, False).fullmatch(c)
        ]
        if name == "KEEP":
            return rows, list(dict.fromkeys(picked)), limited
        return rows, [c for c in columns if c not in picked], limited
    if name == "RENAME":
        for old, new in re.findall(r"([\w.@`]+)\s+AS\s+([\w.@`]+)", rest, re.IGNORECASE):
            old, new = old.strip("`"), new.strip("`")
            for row in rows:
                row[new] = row.pop(old, None)
            columns = [new if c == old else c for c in columns]
        return rows, columns, limited
    if name == "LIMIT":
        count = min(int(rest), ESQL_MAX)
        return rows[:count], columns, True
    if name == "SORT":
        ordered = list(rows)
        for part in reversed(_split_args(rest)):
            words = part.split()
            key, descending = words[0].strip("`"), len(words) > 1 and words[1].upper() == "DESC"
            present = [r for r in ordered if r.get(key) is not None]
            missing = [r for r in ordered if r.get(key) is None]
            present.sort(key=lambda r, k=key: _sort_key(r.get(k)), reverse=descending)  # type: ignore[misc]
            ordered = present + missing
        return ordered, columns, limited
    if name == "STATS":
        return (*_esql_stats(rows, rest), limited)
    raise EsError(400, "parsing_exception", f"line 1:1: mismatched input '{name}'")


def _esql_stats(rows: list[dict[str, Any]], spec: str) -> tuple[list[dict[str, Any]], list[str]]:
    by: list[str] = []
    match = re.search(r"\s+BY\s+(.+)$", spec, re.IGNORECASE)
    if match:
        by = [b.strip().strip("`") for b in match.group(1).split(",")]
        spec = spec[: match.start()]
    aggs = []
    for part in _split_args(spec):
        target, _, expression = part.rpartition("=") if "=" in part.split("(")[0] else ("", "", part)
        call = re.fullmatch(r"\s*(\w+)\(\s*(.*?)\s*\)\s*", expression)
        if not call:
            raise EsError(400, "verification_exception", f"cannot read aggregation [{part}]")
        func, arg = call.group(1).lower(), call.group(2).strip("`")
        aggs.append((target.strip() or expression.strip(), func, arg))
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        key = tuple(_esql_key(row.get(b)) for b in by)
        groups.setdefault(key, []).append(row)
    names = {
        "count_distinct": "dc",
        "count": "count",
        "min": "min",
        "max": "max",
        "sum": "sum",
        "avg": "avg",
        "values": "values",
    }
    out = []
    for key, members in groups.items():
        result = dict(zip(by, key, strict=True))
        for target, func, arg in aggs:
            if func not in names:
                raise EsError(400, "verification_exception", f"Unknown function [{func}]")
            values = [] if arg == "*" else [v for r in members for v in _flat(r.get(arg))]
            if func == "count":
                result[target] = len(members) if arg == "*" else len(values)
            elif func in ("min", "max") and values and isinstance(values[0], datetime):
                result[target] = (min if func == "min" else max)(values)
            elif func == "values":
                unique = sorted({v for v in values}, key=_sort_key)
                result[target] = unique if len(unique) > 1 else (unique[0] if unique else None)
            else:
                result[target] = _aggregate(names[func], arg, values, members)
        out.append(result)
    return out, [a[0] for a in aggs] + by


def _esql_key(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _flat(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


# ==============================================================================================
# ASIM -> ECS


def _basename(path: Any) -> str | None:
    return re.split(r"[\\/]", path)[-1] if isinstance(path, str) and path else None


def _account(account: Any) -> dict[str, Any]:
    if not isinstance(account, str) or not account:
        return {}
    if "\\" in account:
        domain, _, name = account.partition("\\")
        return {"name": name, "domain": domain}
    if "@" in account:
        name, _, domain = account.partition("@")
        return {"name": name, "domain": domain}
    return {"name": account}


def _pid(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        return int(value, 16) if value.lower().startswith("0x") else int(value)
    except ValueError:
        return None


def _prune(value: Any) -> Any:
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in (None, {}, [])}
    return value


def _iso(value: Any) -> str:
    import pandas as pd

    return pd.Timestamp(value).tz_convert("UTC").isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ecs_documents(table: str, rows: Any) -> list[tuple[str, str, dict[str, Any]]]:
    """LocalStore (ASIM) rows as ``(index, _id, ECS document)`` the way Elastic Agent integrations
    would index them: Windows Security events in ``logs-system.security-default`` (``event.*``,
    ``host.name``, ``process.*``, ``user.*`` = the acting account, ``user.effective.*`` = the target
    account, ``source.ip`` ...), flows and DNS in ``logs-network_traffic.*``. ``event.id`` keeps the
    row's ``EventKey`` (also the ``_id``)."""
    if hasattr(rows, "to_dict"):
        frame = rows.dropna(axis=1, how="all")
        rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    out = []
    for row in rows:
        get = row.get
        key = str(get("EventKey"))
        doc: dict[str, Any] = {"@timestamp": _iso(get("TimeGenerated")), "host": {"name": get("DvcHostname")}}
        if table == "process_events":
            ended = get("EventType") == "ProcessTerminated"
            doc["event"] = {
                "id": key,
                "kind": "event",
                "category": ["process"],
                "type": ["end" if ended else "start"],
                "code": "4689" if ended else str(get("EventOriginalType") or "4688"),
                "action": "exited-process" if ended else "created-process",
            }
            doc["process"] = {
                "command_line": get("TargetProcessCommandLine"),
                "executable": get("TargetProcessName"),
                "name": _basename(get("TargetProcessName")),
                "pid": _pid(get("TargetProcessId")),
                "hash": {"sha256": (get("TargetProcessSHA256") or "").lower() or None},
                "parent": {
                    "executable": get("ActingProcessName"),
                    "name": _basename(get("ActingProcessName")),
                    "command_line": get("ActingProcessCommandLine"),
                    "pid": _pid(get("ActingProcessId")),
                },
            }
            doc["user"] = {**_account(get("ActorUsername")), "effective": _account(get("TargetUsername"))}
            index = "logs-system.security-default"
        elif table == "authentication":
            logoff = get("EventType") == "Logoff"
            code = str(get("EventOriginalType") or ("4624" if get("EventResult") == "Success" else "4625"))
            doc["event"] = {
                "id": key,
                "kind": "event",
                "category": ["authentication"],
                "type": ["end" if logoff else "start"],
                "code": "4634" if logoff else code,
                "outcome": "success" if get("EventResult") == "Success" else "failure",
                "action": "logged-out"
                if logoff
                else "logged-in"
                if get("EventResult") == "Success"
                else "logon-failed",
            }
            doc["user"] = _account(get("TargetUsername"))
            doc["source"] = {
                "ip": get("SrcIpAddr"),
                "port": get("SrcPortNumber"),
                "domain": get("SrcHostname"),
            }
            doc["winlog"] = {"logon": {"type": get("LogonType")}, "computer_name": get("TargetHostname")}
            index = "logs-system.security-default"
        elif table == "network_sessions":
            doc["event"] = {"id": key, "kind": "event", "category": ["network"], "type": ["connection"]}
            doc["source"] = {"ip": get("SrcIpAddr"), "port": get("SrcPortNumber"), "bytes": get("SrcBytes")}
            doc["destination"] = {
                "ip": get("DstIpAddr"),
                "port": get("DstPortNumber"),
                "bytes": get("DstBytes"),
                "domain": get("DstHostname"),
            }
            doc["network"] = {
                "transport": (get("NetworkProtocol") or "").lower() or None,
                "protocol": get("NetworkApplicationProtocol"),
            }
            index = "logs-network_traffic.flow-default"
        elif table == "dns":
            doc["event"] = {"id": key, "kind": "event", "category": ["network"], "type": ["protocol"]}
            doc["dns"] = {
                "question": {"name": get("DnsQuery"), "type": get("DnsQueryTypeName")},
                "response_code": get("DnsResponseCodeName"),
            }
            doc["source"] = {"ip": get("SrcIpAddr")}
            doc["destination"] = {"ip": get("DstIpAddr")}
            index = "logs-network_traffic.dns-default"
        else:
            raise ValueError(f"no ECS mapping for {table}")
        out.append((index, key, _prune(doc)))
    return out
