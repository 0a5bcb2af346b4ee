"""Loopback Azure services for the sentinel driver and uploader: Log Analytics query, Entra ID token,
Logs Ingestion. Serve each app with :class:`huntbook.testing.loopback.LoopbackServer` over HTTPS
(:func:`serve_https`); azure-core sends bearer tokens over TLS only.

What they speak (from the Azure Monitor REST documentation):

- :class:`LogAnalyticsApp` -- ``POST /v1/workspaces/{id}/query`` (and ``GET ...?query=``) with JSON
  ``{"query", "timespan", "workspaces"}`` and ``Prefer: wait=N`` (seconds, default 180, at most 600).
  ``Authorization: Bearer`` is required (401 ``AuthenticationFailed`` when missing, 403
  ``InvalidAuthenticationToken`` when wrong); an unknown workspace is 403 ``InsufficientAccessError``.
  The KQL runs for real, through ``duckdb_kql``, over the union of the queried workspaces' tables (each
  row gets ``TenantId``, the workspace it came from) limited to ``timespan`` (``start/end``,
  ``start/duration`` or ``duration``). The answer is ``{"tables": [{"name": "PrimaryResult",
  "columns": [{"name", "type"}], "rows": [[...]]}]}`` with Kusto types (datetimes as ISO text with 7
  fraction digits, dynamic values as JSON text). Past ``max_rows`` the rows are cut and a
  ``PartialError`` (``E_QUERY_RESULT_SET_TOO_LARGE``) goes beside the tables, with status 200. A query
  running past its wait is cancelled: 504 ``GatewayTimeout``. A query the engine rejects: 400
  ``BadArgumentError`` with the ``SemanticError``/``SyntaxError`` inner error.
- :class:`EntraApp` -- ``GET /{tenant}/v2.0/.well-known/openid-configuration`` and ``POST
  /{tenant}/oauth2/v2.0/token`` (client credentials): ``{"token_type": "Bearer", "expires_in",
  "access_token"}``, or 401 ``invalid_client`` (AADSTS7000215) for a wrong secret.
- :class:`LogsIngestionApp` -- ``POST /dataCollectionRules/{dcr}/streams/{stream}?api-version=2023-01-01``
  with a JSON array (gzip accepted): 204; 401/403 for a missing/wrong token, 404 for an unknown DCR, 400
  for an unknown stream or a body that is not an array of objects, 413 past 1 MB (compressed or not).
  Every record kept is counted by its ``id_field`` so a test can see duplicates.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd

from huntbook.testing.drivers import arrow_table
from huntbook.testing.loopback import LoopbackRequest, LoopbackServer, Reply, self_signed_cert, serve_tls

__all__ = [
    "SENTINEL_TABLES",
    "EntraApp",
    "LogAnalyticsApp",
    "LogsIngestionApp",
    "self_signed_cert",
    "sentinel_workspace",
    "serve_https",
]

#: Huntbook table -> the name of the ASIM parser Sentinel answers it with (the driver's defaults).
SENTINEL_TABLES = {
    "process_events": "_Im_ProcessCreate",
    "authentication": "_Im_Authentication",
    "network_sessions": "_Im_NetworkSession",
    "dns": "_Im_Dns",
}
_HUNTBOOK_NAMES = {v: k for k, v in SENTINEL_TABLES.items()}
_QUERY_PATH = re.compile(r"^/v1/workspaces/([^/]+)/query$")
_INGEST_PATH = re.compile(r"^/dataCollectionRules/([^/]+)/streams/([^/]+)$")
MAX_INGEST_BYTES = 1024 * 1024


def sentinel_workspace(frames: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """``frames`` shaped as a Sentinel workspace shows them: the ASIM tables under their parser names
    with ``EventUid`` for huntbook's ``EventKey``; other tables as they are."""
    workspace: dict[str, pd.DataFrame] = {}
    for name, frame in frames.items():
        if name in SENTINEL_TABLES:
            workspace[SENTINEL_TABLES[name]] = frame.rename(columns={"EventKey": "EventUid"})
        else:
            workspace[name] = frame
    return workspace


@contextlib.contextmanager
def serve_https(
    app: Callable[[LoopbackRequest], Reply], certfile: str, keyfile: str
) -> Iterator[tuple[LoopbackServer, str]]:
    """A started HTTPS loopback server for ``app`` and its ``https://`` URL."""
    server = LoopbackServer(app).start()
    try:
        yield server, serve_tls(server, certfile, keyfile)
    finally:
        server.stop()


def _error(status: int, code: str, message: str, inner: Mapping[str, Any] | None = None) -> Reply:
    body: dict[str, Any] = {"code": code, "message": message}
    if inner:
        body["innererror"] = dict(inner)
    return Reply.json({"error": body}, status=status)


def _bearer(request: LoopbackRequest, token: str) -> Reply | None:
    """None when the request carries ``Bearer <token>``, else the documented 401/403 reply."""
    header = request.header("authorization")
    if not header:
        return _error(
            401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."
        )
    if header != f"Bearer {token}":
        return _error(403, "InvalidAuthenticationToken", "The access token is invalid.")
    return None


# ----------------------------------------------------------------------------------------------
# Log Analytics query API


class LogAnalyticsApp:
    """The Log Analytics query API over in-memory workspaces (workspace id -> table -> frame)."""

    def __init__(
        self,
        workspaces: Mapping[str, Mapping[str, pd.DataFrame]],
        *,
        token: str,
        max_rows: int = 500_000,
        default_wait: int = 180,
    ) -> None:
        import duckdb

        self.token = token
        self.max_rows = max_rows
        self.default_wait = default_wait
        self.queries: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._con = duckdb.connect()
        self._con.execute("SET TimeZone = 'UTC'")
        self._tables: dict[str, dict[str, str]] = {}  # workspace -> table -> stored name
        self._databases: dict[Any, Any] = {}
        for index, (workspace, tables) in enumerate(workspaces.items()):
            stored: dict[str, str] = {}
            for table, frame in tables.items():
                name = f"w{index}__{table}"
                data = _arrow(table, frame)  # noqa: F841 - read by DuckDB's replacement scan
                self._con.execute(f"CREATE TABLE \"{name}\" AS SELECT *, '{workspace}' AS TenantId FROM data")
                stored[table] = name
            self._tables[workspace] = stored

    def close(self) -> None:
        """Close the databases."""
        for database in self._databases.values():
            database.close()
        self._con.close()

    def __call__(self, request: LoopbackRequest) -> Reply:
        denied = _bearer(request, self.token)
        if denied is not None:
            return denied
        match = _QUERY_PATH.match(request.path)
        if match is None:
            return _error(404, "PathNotFoundError", f"The requested path does not exist: {request.path}")
        if request.method == "GET":
            body: Any = {"query": request.param("query"), "timespan": request.param("timespan")}
        else:
            try:
                body = request.json()
            except ValueError:
                return _error(400, "BadArgumentError", "The request body is not valid JSON")
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return _error(
                400,
                "BadArgumentError",
                "The request had some invalid properties",
                {"code": "QueryMissing", "message": "The query is missing"},
            )
        workspaces = [match.group(1), *[str(w) for w in body.get("workspaces") or []]]
        unknown = [w for w in workspaces if w not in self._tables]
        if unknown:
            return _error(
                403,
                "InsufficientAccessError",
                "The provided credentials have insufficient access to perform the requested operation",
                {"code": "WorkspaceNotFound", "message": f"Workspace {unknown[0]} is not accessible"},
            )
        wait = _wait(request.header("prefer"), self.default_wait)
        with self._lock:
            self.queries.append({"workspaces": workspaces, "body": body, "wait": wait})
        try:
            window = _timespan(body.get("timespan"))
        except ValueError as exc:
            return _error(400, "BadArgumentError", f"Invalid timespan: {exc}")
        return self._run(body["query"], dict.fromkeys(workspaces), window, wait)

    def _run(
        self, text: str, workspaces: Mapping[str, None], window: tuple[datetime, datetime] | None, wait: float
    ) -> Reply:
        import duckdb
        import duckdb_kql

        database = self._database(tuple(workspaces), window)
        with self._lock:
            cursor = database.cursor()
        try:
            timer = threading.Timer(wait, cursor.interrupt)
            timer.daemon = True
            timer.start()
            try:
                relation = duckdb_kql.kql(cursor, text)
                names, types, rows = (
                    list(relation.columns),
                    [str(t) for t in relation.types],
                    relation.fetchall(),
                )
            finally:
                timer.cancel()
        except duckdb.InterruptException:
            return _error(
                504,
                "GatewayTimeout",
                "Gateway timeout",
                {"code": "GatewayTimeout", "message": f"The query ran past its {wait:g} s timeout"},
            )
        except duckdb_kql.KqlSyntaxError as exc:
            return _error(
                400,
                "BadArgumentError",
                "The request had some invalid properties",
                {"code": "SyntaxError", "message": f"A recognition error occurred in the query: {exc}"},
            )
        except (duckdb_kql.KqlError, duckdb.Error) as exc:
            return _error(
                400,
                "BadArgumentError",
                "The request had some invalid properties",
                {
                    "code": "SemanticError",
                    "message": "A semantic error occurred.",
                    "innererror": {"code": "SEM0100", "message": str(exc).splitlines()[0]},
                },
            )
        finally:
            cursor.close()
        answer: dict[str, Any] = {}
        if len(rows) > self.max_rows:
            rows = rows[: self.max_rows]
            answer["error"] = {
                "code": "PartialError",
                "message": "There were some errors when processing your query.",
                "details": [
                    {
                        "code": "EngineError",
                        "message": "Something went wrong processing your query on the server.",
                        "innererror": {
                            "code": "-2133196794",
                            "message": f"Query result set has exceeded the internal record count limit "
                            f"{self.max_rows} (E_QUERY_RESULT_SET_TOO_LARGE; see https://aka.ms/kustoquerylimits)",
                            "severity": 2,
                            "severityName": "Error",
                        },
                    }
                ],
            }
        kinds = [_kusto_type(t) for t in types]
        answer["tables"] = [
            {
                "name": "PrimaryResult",
                "columns": [{"name": n, "type": k} for n, k in zip(names, kinds, strict=True)],
                "rows": _rows(rows, kinds),
            }
        ]
        answer = {"tables": answer["tables"], **({"error": answer["error"]} if "error" in answer else {})}
        return Reply(200, json.dumps(answer).encode(), {"Content-Type": "application/json; charset=utf-8"})

    def _database(self, workspaces: tuple[str, ...], window: tuple[datetime, datetime] | None) -> Any:
        """A database (built once per workspace set and window) whose tables are the union of the
        workspaces' copies, limited to the window; duckdb_kql reads its schema for ``*`` and joins."""
        import duckdb

        key = (workspaces, window)
        with self._lock:
            if key in self._databases:
                return self._databases[key]
            database = duckdb.connect()
            database.execute("SET TimeZone = 'UTC'")
            for table in sorted({t for w in workspaces for t in self._tables[w]}):
                parts = [
                    f'SELECT * FROM "{self._tables[w][table]}"'
                    for w in workspaces
                    if table in self._tables[w]
                ]
                union = " UNION ALL BY NAME ".join(parts)
                columns = {c[0] for c in self._con.execute(f"SELECT * FROM ({union}) LIMIT 0").description}
                if window is not None and "TimeGenerated" in columns:
                    start, end = window
                    union = (
                        f"SELECT * FROM ({union}) WHERE TimeGenerated >= TIMESTAMPTZ '{start.isoformat()}' "
                        f"AND TimeGenerated < TIMESTAMPTZ '{end.isoformat()}'"
                    )
                data = self._con.sql(union).to_arrow_table()  # noqa: F841 - read by DuckDB's replacement scan
                database.execute(f'CREATE TABLE "{table}" AS SELECT * FROM data')
            self._databases[key] = database
            return database


def _arrow(table: str, frame: pd.DataFrame) -> Any:
    """``frame`` as Arrow, typed by the huntbook schema when the table is one (or its parser name)."""
    import pyarrow as pa

    from huntbook.schema import TABLES

    schema_name = _HUNTBOOK_NAMES.get(table, table)
    if schema_name not in TABLES:
        return pa.Table.from_pandas(frame, preserve_index=False)
    uid = "EventUid" in frame.columns and "EventKey" not in frame.columns
    data = arrow_table(schema_name, frame.rename(columns={"EventUid": "EventKey"}) if uid else frame)
    return data.rename_columns(["EventUid" if uid and n == "EventKey" else n for n in data.column_names])


def _wait(prefer: str | None, default: float) -> float:
    """The ``wait=N`` preference of a ``Prefer`` header (seconds, capped at 600)."""
    for part in (prefer or "").split(","):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "wait":
            try:
                return max(1.0, min(600.0, float(value)))
            except ValueError:
                break
    return default


def _timespan(value: Any) -> tuple[datetime, datetime] | None:
    """An ISO 8601 interval (``start/end``, ``start/duration``, ``duration`` ending now) as datetimes."""
    if not value:
        return None
    import isodate

    def when(text: str) -> datetime:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)

    text = str(value)
    if "/" in text:
        first, second = text.split("/", 1)
        start = when(first)
        if second.upper().startswith("P"):
            return start, start + isodate.parse_duration(second)
        return start, when(second)
    end = datetime.now(UTC)
    return end - isodate.parse_duration(text), end


def _kusto_type(duckdb_type: str) -> str:
    text = duckdb_type.upper()
    if text.endswith("]") or text.startswith(("STRUCT", "MAP", "JSON", "UNION")):
        return "dynamic"
    if text.startswith("TIMESTAMP") or text == "DATE":
        return "datetime"
    return {
        "VARCHAR": "string",
        "BIGINT": "long",
        "HUGEINT": "long",
        "UBIGINT": "long",
        "INTEGER": "int",
        "SMALLINT": "int",
        "TINYINT": "int",
        "UINTEGER": "long",
        "DOUBLE": "real",
        "FLOAT": "real",
        "BOOLEAN": "bool",
        "INTERVAL": "timespan",
        "UUID": "guid",
    }.get(text, "real" if text.startswith("DECIMAL") else "string")


def _rows(rows: list[tuple[Any, ...]], kinds: list[str]) -> list[list[Any]]:
    converters = {i: _CONVERTERS[k] for i, k in enumerate(kinds) if k in _CONVERTERS}
    if not converters:
        return [list(row) for row in rows]
    out = []
    for row in rows:
        values = list(row)
        for i, convert in converters.items():
            if values[i] is not None:
                values[i] = convert(values[i])
        out.append(values)
    return out


def _iso(value: Any) -> str:
    stamp = value if isinstance(value, datetime) else datetime(value.year, value.month, value.day)
    stamp = stamp.astimezone(UTC) if stamp.tzinfo else stamp
    text = stamp.strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{stamp.microsecond:06d}0" if stamp.microsecond else "") + "Z"


def _span(value: timedelta) -> str:
    sign = "-" if value < timedelta(0) else ""
    value = abs(value)
    hours, rest = divmod(value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    days = f"{value.days}." if value.days else ""
    fraction = f".{value.microseconds:06d}0" if value.microseconds else ""
    return f"{sign}{days}{hours:02d}:{minutes:02d}:{seconds:02d}{fraction}"


def _dynamic(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _real(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else value


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "datetime": _iso,
    "timespan": _span,
    "dynamic": _dynamic,
    "guid": str,
    "real": _real,
}


# ----------------------------------------------------------------------------------------------
# Entra ID (client credentials)


class EntraApp:
    """A Microsoft Entra ID tenant's discovery document and token endpoint (client credentials only).

    ``clients`` maps client ids to their secrets; a good pair gets ``access_token``."""

    def __init__(self, tenant_id: str, clients: Mapping[str, str], access_token: str) -> None:
        self.tenant_id = tenant_id
        self.clients = dict(clients)
        self.access_token = access_token
        self.base_url = ""  # set once the server runs
        self.issued = 0
        self.refused = 0

    def __call__(self, request: LoopbackRequest) -> Reply:
        prefix = f"/{self.tenant_id}"
        if request.method == "GET" and request.path == f"{prefix}/v2.0/.well-known/openid-configuration":
            base = f"{self.base_url}{prefix}"
            return Reply.json(
                {
                    "issuer": f"{base}/v2.0",
                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                    "token_endpoint": f"{base}/oauth2/v2.0/token",
                    "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                    "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
                    "response_types_supported": ["code", "id_token", "code id_token"],
                }
            )
        if request.method == "POST" and request.path == f"{prefix}/oauth2/v2.0/token":
            form = request.form()
            if form.get("grant_type") != "client_credentials":
                return self._refuse(
                    400, "unsupported_grant_type", "AADSTS70003: The grant type is not supported."
                )
            client = form.get("client_id", "")
            if client not in self.clients:
                return self._refuse(
                    400,
                    "unauthorized_client",
                    f"AADSTS700016: Application with identifier '{client}' was not found.",
                )
            if form.get("client_secret") != self.clients[client]:
                return self._refuse(
                    401,
                    "invalid_client",
                    "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent "
                    f"in the request is the client secret value, not the client secret ID, for a "
                    f"secret added to app '{client}'.",
                )
            self.issued += 1
            return Reply.json(
                {
                    "token_type": "Bearer",
                    "expires_in": 3599,
                    "ext_expires_in": 3599,
                    "access_token": self.access_token,
                }
            )
        return Reply.json({"error": "invalid_request", "error_description": "AADSTS90002: unknown path"}, 400)

    def _refuse(self, status: int, code: str, description: str) -> Reply:
        self.refused += 1
        return Reply.json(
            {
                "error": code,
                "error_description": description,
                "error_codes": [int(description[6:].split(":")[0])],
                "trace_id": str(uuid.uuid4()),
                "correlation_id": str(uuid.uuid4()),
            },
            status,
        )


# ----------------------------------------------------------------------------------------------
# Logs Ingestion


class LogsIngestionApp:
    """The Logs Ingestion API of a data collection endpoint (``rules``: DCR immutable id -> stream names)."""

    API_VERSIONS = ("2023-01-01", "2021-11-01-preview")

    def __init__(
        self,
        *,
        token: str,
        rules: Mapping[str, Iterable[str]],
        id_field: str = "EventKey",
        max_bytes: int = MAX_INGEST_BYTES,
    ) -> None:
        self.token = token
        self.rules = {dcr: set(streams) for dcr, streams in rules.items()}
        self.id_field = id_field
        self.max_bytes = max_bytes
        self.records: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.batches = 0
        self.refused: Counter[int] = Counter()
        self._lock = threading.Lock()

    def rows(self, dcr: str, stream: str) -> list[dict[str, Any]]:
        """Every record kept for a stream, in arrival order."""
        with self._lock:
            return list(self.records.get((dcr, stream), []))

    def id_counts(self, dcr: str, stream: str) -> Counter[Any]:
        """How many times each ``id_field`` value arrived on a stream."""
        return Counter(row.get(self.id_field) for row in self.rows(dcr, stream))

    def __call__(self, request: LoopbackRequest) -> Reply:
        reply = self._handle(request)
        if reply.status >= 400:
            with self._lock:
                self.refused[reply.status] += 1
        return reply

    def _handle(self, request: LoopbackRequest) -> Reply:
        denied = _bearer(request, self.token)
        if denied is not None:
            return denied
        match = _INGEST_PATH.match(request.path)
        if match is None or request.method != "POST":
            return _error(404, "NotFound", f"The requested path does not exist: {request.path}")
        if request.param("api-version") not in self.API_VERSIONS:
            return _error(
                400, "InvalidApiVersion", f"The api-version '{request.param('api-version')}' is not supported"
            )
        dcr, stream = match.groups()
        if dcr not in self.rules:
            return _error(404, "NotFound", f"Data collection rule with immutable Id '{dcr}' not found.")
        if stream not in self.rules[dcr]:
            return _error(
                400, "InvalidStream", f"Stream '{stream}' is not declared in the data collection rule."
            )
        body = request.body
        if len(body) > self.max_bytes:
            return self._too_large(len(body))
        if (request.header("content-encoding") or "").lower() == "gzip":
            try:
                body = gzip.decompress(body)
            except (OSError, EOFError):
                return _error(400, "InvalidContentEncoding", "The body is not valid gzip data")
            if len(body) > self.max_bytes:
                return self._too_large(len(body))
        try:
            records = json.loads(body)
        except ValueError:
            return _error(400, "InvalidPayload", "The body is not valid JSON")
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            return _error(400, "InvalidPayload", "The body must be a JSON array of objects")
        with self._lock:
            self.records.setdefault((dcr, stream), []).extend(records)
            self.batches += 1
        return Reply(204, b"", {})

    def _too_large(self, size: int) -> Reply:
        return _error(
            413,
            "ContentLengthLimitExceeded",
            f"Maximum allowed content length: {self.max_bytes} bytes (1 MB). "
            f"Provided content length: {size} bytes.",
        )
