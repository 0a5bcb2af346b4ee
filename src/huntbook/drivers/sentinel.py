"""The ``sentinel`` driver: KQL on Microsoft Sentinel / Log Analytics workspaces with ``azure-monitor-query``.

::

    qp = QueryProvider("sentinel", workspace_id="<workspace guid>", auth="az_cli")
    qp.process.host_processes(host_name="WS01", start="-1d")
    qp.exec_query("SecurityAlert | take 10")

Settings (``connections.sentinel`` in ``huntbook.yaml``, or keywords of ``QueryProvider``):

- ``workspace_id`` (required): the workspace queried; ``additional_workspaces``: more workspaces (IDs,
  qualified names or resource IDs) whose tables the query also reads (Log Analytics unions them).
- ``auth``: ``default`` (azure-identity's ``DefaultAzureCredential``), ``client_secret`` (``tenant_id``,
  ``client_id``, ``client_secret``), ``managed_identity`` (optional ``client_id``), ``az_cli`` (the
  Azure CLI login, optional ``tenant_id``) or ``token`` (a bearer token in ``token``); ``credential``
  takes any azure-identity credential object instead. Default: ``token`` when a token is given,
  ``client_secret`` when a client secret is, else ``default``. ``authority`` is the Entra ID host for
  sovereign clouds (``login.microsoftonline.us``) or a private authority.
- ``endpoint``: the Log Analytics API (default ``https://api.loganalytics.io``; sovereign clouds differ).
- ``verify``: TLS verification, on by default; a CA bundle path for a private CA. ``verify=False`` is an
  explicit choice and is logged as a warning; nothing turns verification off silently.
- ``retries`` (3) and ``backoff`` (0.5 s, doubled per retry): azure-core's retries of 429 (after its
  ``Retry-After``, when that is at most 60 s), 500, 503 and failed connections; a 504 (the query ran
  out of its server timeout) is not retried.
- ``tables``: the workspace sources the catalogue's ASIM table names read. By default
  ``process_events``, ``authentication``, ``network_sessions`` and ``dns`` are Sentinel's built-in ASIM
  parsers (:data:`DEFAULT_TABLES`, with ``EventKey`` taken from ``EventUid``); a mapping replaces entries
  (a null value drops one), ``tables=False`` uses the names as they are. A query that names one of
  these tables gets a ``let <name> = <source>;`` line in front when it runs (``print_query=True``
  shows the catalogue text without it).

The catalogue is the ``kusto`` catalogue (the same hunts in KQL) plus the Sentinel queries packaged
in ``catalogues/sentinel``. Queries run with ``Prefer: wait=<timeout>`` (Log Analytics caps it at
600 s) and a client read timeout slightly longer. A partial answer (Log Analytics stops at 500,000
rows or 64 MB, or a workspace fails) keeps its rows and raises a :class:`PartialResultWarning` naming
the error; the frame's ``attrs["partial_error"]`` holds it too. Secrets never appear in errors or logs.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
import warnings
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from huntbook.drivers.base import Driver
from huntbook.drivers.local import _utc_frame
from huntbook.errors import DriverError, MissingExtraError, QueryError, QueryTimeoutError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "AUTH_METHODS",
    "DEFAULT_TABLES",
    "PartialResultWarning",
    "SentinelDriver",
    "StaticTokenCredential",
    "azure_credential",
    "check_verify",
    "with_tables",
]

log = logging.getLogger("huntbook.drivers.sentinel")

#: Huntbook table -> the workspace source it reads (Sentinel's built-in ASIM parsers).
DEFAULT_TABLES: Final[Mapping[str, str]] = {
    "process_events": "_Im_ProcessCreate | extend EventKey = tostring(EventUid)",
    "authentication": "_Im_Authentication | extend EventKey = tostring(EventUid)",
    "network_sessions": "_Im_NetworkSession | extend EventKey = tostring(EventUid)",
    "dns": "_Im_Dns | extend EventKey = tostring(EventUid)",
}
#: ``auth`` values (``app_key`` and ``cli`` are accepted as aliases of ``client_secret`` and ``az_cli``).
AUTH_METHODS: Final = ("default", "client_secret", "managed_identity", "az_cli", "token")
_AUTH_ALIASES: Final = {"app_key": "client_secret", "cli": "az_cli", "azure_cli": "az_cli"}
_CREDENTIAL_KEYS: Final = (
    "auth",
    "token",
    "tenant_id",
    "client_id",
    "client_secret",
    "authority",
    "credential",
)
_SECRET_KEYS: Final = ("token", "client_secret")
_MAX_SERVER_TIMEOUT: Final = 600
_MAX_RETRY_AFTER: Final = 60.0
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SET_STATEMENTS = re.compile(r"\A(?:\s*set\s+[^;]*;)*", re.IGNORECASE)
_TIMESPAN = re.compile(r"^(-)?(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?$")


class PartialResultWarning(UserWarning):
    """Log Analytics answered with rows and an error: the rows may be incomplete."""


class StaticTokenCredential:
    """A credential that hands out one bearer token (``auth="token"``); the token is never shown."""

    def __init__(self, token: str, expires_in: float = 3600.0) -> None:
        self._token = token
        self._expires_on = int(time.time() + expires_in)

    def get_token(self, *scopes: str, **options: Any) -> Any:
        """The token, as azure-core's ``AccessToken``."""
        from azure.core.credentials import AccessToken

        return AccessToken(self._token, self._expires_on)

    def close(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return "StaticTokenCredential(***)"


def check_verify(verify: Any, service: str) -> bool | str:
    """The TLS ``verify`` setting as azure-core's ``connection_verify`` (True, False or a CA bundle path).

    False is honoured only as an explicit choice, and is logged as a warning."""
    if verify is None or verify is True:
        return True
    if verify is False or (isinstance(verify, str) and verify.strip().lower() in ("false", "no", "off", "0")):
        log.warning("%s: TLS certificate verification is turned OFF (verify=False)", service)
        return False
    if isinstance(verify, str) and verify.strip():
        return verify
    raise DriverError(
        f"verify={verify!r} is neither true, false nor a CA bundle path",
        hint="leave verify out (TLS verified), or give the path of a PEM CA bundle",
    )


def azure_credential(
    auth: str | None = None,
    *,
    token: str | None = None,
    tenant_id: str | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
    authority: str | None = None,
    credential: Any = None,
    verify: bool | str = True,
    service: str = "sentinel",
) -> Any:
    """An azure-identity ``TokenCredential`` for ``auth`` (see the module docs for the methods).

    ``verify`` reaches the credential's own HTTP calls only with a custom ``authority``."""
    if credential is not None:
        return credential
    method = str(auth or _default_auth(token, client_secret)).lower()
    method = _AUTH_ALIASES.get(method, method)
    if method not in AUTH_METHODS:
        raise DriverError(f"unknown {service} auth {auth!r}", hint=f"use one of {', '.join(AUTH_METHODS)}")
    if method == "token":
        if not token:
            raise DriverError(
                f"{service} auth 'token' needs token", hint=_SECRET_HINT.format(service=service)
            )
        return StaticTokenCredential(str(token))
    try:
        import azure.identity as identity
    except ImportError as exc:
        raise MissingExtraError(f"{service} auth {method!r}", "sentinel", missing="azure.identity") from exc
    options: dict[str, Any] = {}
    if authority:
        options["authority"] = authority
        if _custom_authority(authority):
            options["disable_instance_discovery"] = True
            options["connection_verify"] = verify
    if method == "client_secret":
        missing = [n for n, v in (("tenant_id", tenant_id), ("client_id", client_id)) if not v]
        missing += [] if client_secret else ["client_secret"]
        if missing:
            raise DriverError(
                f"{service} auth 'client_secret' needs {', '.join(missing)}",
                hint=_SECRET_HINT.format(service=service),
            )
        return identity.ClientSecretCredential(str(tenant_id), str(client_id), str(client_secret), **options)
    if method == "managed_identity":
        return (
            identity.ManagedIdentityCredential(client_id=client_id)
            if client_id
            else (identity.ManagedIdentityCredential())
        )
    if method == "az_cli":
        return (
            identity.AzureCliCredential(tenant_id=tenant_id) if tenant_id else identity.AzureCliCredential()
        )
    return identity.DefaultAzureCredential(**options)


_SECRET_HINT = "give them in connections.{service} (secrets as env:/keyring:/file: references)"  # noqa: S105


def _default_auth(token: Any, client_secret: Any) -> str:
    if token:
        return "token"
    return "client_secret" if client_secret else "default"


def _custom_authority(authority: str) -> bool:
    """True for an authority that is not one of Microsoft's public or sovereign cloud hosts."""
    host = (urlsplit(authority).hostname if "://" in authority else authority.split("/")[0]) or ""
    known = ("login.microsoftonline.com", "login.microsoftonline.us", "login.chinacloudapi.cn")
    return host.lower() not in known


class SentinelDriver(Driver):
    """Run KQL on Log Analytics workspaces through ``azure.monitor.query.LogsQueryClient``."""

    name = "sentinel"
    languages = ("kql",)
    catalogue = "kusto"

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self._client: Any = None
        self._credential: Any = None
        self._secrets: list[str] = []
        self.workspace_id: str | None = None
        self.additional_workspaces: list[str] = []
        self.tables: dict[str, str] = dict(DEFAULT_TABLES)
        self.endpoint: str | None = None

    def connect(self, **settings: Any) -> None:
        """Build the client from ``workspace_id`` and the auth settings (see the module docs)."""
        try:
            from azure.monitor.query import LogsQueryClient
        except ImportError as exc:
            raise MissingExtraError(
                "the sentinel driver", "sentinel", missing=getattr(exc, "name", None)
            ) from exc
        merged = {**self.settings, **settings}
        self._secrets = [str(merged[k]) for k in _SECRET_KEYS if merged.get(k)]
        workspace = str(merged.pop("workspace_id", "") or "").strip()
        if not workspace:
            raise DriverError(
                "the sentinel driver needs a workspace_id",
                hint="QueryProvider('sentinel', workspace_id='<Log Analytics workspace ID>')",
            )
        additional = _as_list(merged.pop("additional_workspaces", None))
        endpoint = merged.pop("endpoint", None)
        verify = check_verify(merged.pop("verify", True), self.name)
        wanted_tables = merged.pop("tables", None)
        tables = _tables(wanted_tables)
        retries, backoff = merged.pop("retries", 3), merged.pop("backoff", 0.5)
        credential_settings = {k: merged.pop(k) for k in _CREDENTIAL_KEYS if k in merged}
        if merged:
            raise DriverError(
                f"unknown sentinel setting(s): {', '.join(sorted(merged))}",
                hint="known: workspace_id, additional_workspaces, auth, token, tenant_id, client_id, "
                "client_secret, authority, credential, endpoint, verify, tables, retries, backoff",
            )
        try:
            credential = azure_credential(**credential_settings, verify=verify, service=self.name)
        except DriverError as exc:
            raise DriverError(self._scrub(exc.message), hint=exc.hint) from None
        options: dict[str, Any] = {
            "connection_verify": verify,
            "retry_policy": _retry_policy(retries, backoff),
        }
        if endpoint:  # azure-monitor-query 1.x wants the API version in the URL, 2.x takes it off
            base = str(endpoint).rstrip("/")
            options["endpoint"] = base if base.endswith("/v1") else f"{base}/v1"
        self.close()
        self._client = LogsQueryClient(credential, **options)
        self._credential = credential
        self.workspace_id, self.additional_workspaces = workspace, additional
        self.tables, self.endpoint = tables, str(endpoint or "https://api.loganalytics.io").rstrip("/")
        kept: dict[str, Any] = {
            k: v for k, v in credential_settings.items() if k not in _SECRET_KEYS and v is not None
        }
        self.settings = {  # secrets are not kept
            "workspace_id": workspace,
            "additional_workspaces": additional,
            "verify": verify,
            "tables": wanted_tables,
            "retries": retries,
            "backoff": backoff,
            **({"endpoint": endpoint} if endpoint else {}),
            **kept,
        }
        self.connected = True

    # ------------------------------------------------------------------------------------------
    def execute(
        self, text: str, language: str | None = None, timeout: float | None = None, *, name: str | None = None
    ) -> pd.DataFrame:
        """Run KQL ``text``; every row of the first result table, or an error naming the query."""
        from azure.core.exceptions import AzureError

        where = name or "ad hoc kql query"
        if (language or "kql").lower() != "kql":
            raise QueryError(f"the sentinel driver runs kql, not {language!r}", where=where)
        if self._client is None:
            self.connect()
        options: dict[str, Any] = {}
        if timeout is not None:
            options["server_timeout"] = min(_MAX_SERVER_TIMEOUT, max(1, math.ceil(timeout)))
            options["read_timeout"] = timeout + min(30.0, 1.0 + timeout / 10)  # past the server's own
        started = time.monotonic()
        try:
            result = self._client.query_workspace(
                self.workspace_id,
                with_tables(text, self.tables),
                timespan=None,
                additional_workspaces=self.additional_workspaces or None,
                **options,
            )
        except AzureError as exc:
            raise self._error(exc, where, timeout, time.monotonic() - started) from None
        except ValueError as exc:  # a 200 whose body is not the JSON Log Analytics sends
            raise DriverError(
                f"the answer from {self.endpoint} is not a Log Analytics result ({type(exc).__name__})",
                where=where,
                hint="check the endpoint setting",
            ) from None
        return self._frame(result, where)

    def _frame(self, result: Any, where: str) -> pd.DataFrame:
        from azure.monitor.query import LogsQueryStatus

        status = getattr(result, "status", None)
        if status == LogsQueryStatus.FAILURE:
            raise QueryError(self._scrub(_describe(_error_dict(result))), where=where)
        partial = None
        if status == LogsQueryStatus.PARTIAL:
            tables = result.partial_data or []
            partial = _error_dict(result.partial_error)
            warnings.warn(
                f"{where}: the answer is partial, rows may be missing: {self._scrub(_describe(partial))}",
                PartialResultWarning,
                stacklevel=4,
            )
        else:
            tables = result.tables or []
        frame = _table_frame(tables[0]) if tables else _empty_frame()
        if partial is not None:
            frame.attrs["partial_error"] = partial
        return frame

    def _error(self, exc: Exception, where: str, timeout: float | None, elapsed: float) -> Exception:
        """A huntbook error for an azure-core exception; secrets scrubbed."""
        from azure.core.exceptions import (
            ClientAuthenticationError,
            DecodeError,
            HttpResponseError,
            ServiceRequestError,
            ServiceResponseError,
            ServiceResponseTimeoutError,
        )

        if _caused_by(exc, DecodeError):  # query_workspace re-raises it as a plain HttpResponseError
            return DriverError(
                f"the answer from {self.endpoint} is not a Log Analytics result (not JSON)",
                where=where,
                hint="check the endpoint setting",
            )
        status = getattr(exc, "status_code", None)
        detail = self._scrub(_exception_detail(exc))
        late = timeout is not None and elapsed >= 0.8 * timeout
        if status is None and _caused_by(exc, ClientAuthenticationError):  # no token: the credential failed
            return DriverError(
                f"authentication failed, no token from the Azure credential: {detail}",
                where=where,
                hint="check connections.sentinel: auth, tenant_id, client_id, client_secret (or az login)",
            )
        if status in (401, 403):
            return DriverError(
                f"authentication failed (HTTP {status}) for workspace {self.workspace_id}: {detail}",
                where=where,
                hint="check the credential in connections.sentinel and its Log Analytics Reader role "
                "on every workspace queried",
            )
        if timeout is not None and (
            status in (408, 504)
            or isinstance(exc, ServiceResponseTimeoutError)
            or (late and isinstance(exc, ServiceResponseError))
        ):
            return QueryTimeoutError(
                f"query cancelled after the {timeout:g} s timeout ({detail[:200]})",
                where=where,
                hint="raise timeout= (at most 600 s on Log Analytics) or narrow the time range "
                "(start/end, or split_by=)",
            )
        if status == 429:
            return DriverError(f"throttled by Log Analytics: {detail}", where=where, hint="retry later")
        if status == 404:
            return DriverError(
                f"not found (HTTP 404): {detail}",
                where=where,
                hint="check workspace_id and additional_workspaces (the workspace IDs, not names)",
            )
        if isinstance(exc, HttpResponseError) and status is not None and 400 <= status < 500:
            return QueryError(detail, where=where, hint="check the query with print_query=True")
        if isinstance(exc, ServiceRequestError):
            return DriverError(
                f"cannot reach {self.endpoint}: {detail}",
                where=where,
                hint="check the endpoint, the network and the TLS settings (verify=)",
            )
        if isinstance(exc, ServiceResponseError):
            return DriverError(f"the connection to {self.endpoint} broke: {detail}", where=where)
        return DriverError(f"Log Analytics failed (HTTP {status or 'n/a'}): {detail}", where=where)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def close(self) -> None:
        """Close the client and the credential."""
        for thing in (self._client, self._credential):
            closer = getattr(thing, "close", None)
            if callable(closer):
                try:
                    closer()
                except Exception as exc:  # closing must not fail the caller
                    log.debug("closing the sentinel client: %s", type(exc).__name__)
        self._client = self._credential = None
        self.connected = False

    def __repr__(self) -> str:
        return (
            f"SentinelDriver(workspace_id={self.workspace_id!r}, "
            f"additional_workspaces={self.additional_workspaces!r}, connected={self.connected})"
        )


# ----------------------------------------------------------------------------------------------
# Query text


def with_tables(text: str, tables: Mapping[str, str]) -> str:
    """``text`` with ``let <table> = <source>;`` in front for each mapped table it names.

    Query option ``set`` statements stay first; management commands (``.show ...``) are left alone."""
    if not tables or text.lstrip().startswith("."):
        return text
    used = [t for t in tables if re.search(rf"(?<![\w.]){re.escape(t)}(?!\w)", text)]
    if not used:
        return text
    head = _SET_STATEMENTS.match(text)
    cut = head.end() if head else 0
    lets = "".join(f"let {table} = {tables[table]};\n" for table in used)
    return text[:cut] + ("\n" if cut else "") + lets + text[cut:].lstrip("\n")


def _tables(value: Any) -> dict[str, str]:
    if value is None or value is True:
        return dict(DEFAULT_TABLES)
    if value is False:
        return {}
    if not isinstance(value, Mapping):
        raise DriverError(
            f"tables={value!r} is not a mapping",
            hint="tables: {process_events: 'MyProcessTable_CL'} (or false to use the names as they are)",
        )
    tables = dict(DEFAULT_TABLES)
    for key, source in value.items():
        if not _IDENTIFIER.fullmatch(str(key)):
            raise DriverError(f"tables: {key!r} is not a table name", hint="use names such as process_events")
        if source is None or str(source).strip() == "":
            tables.pop(str(key), None)
        else:
            tables[str(key)] = str(source).strip().rstrip(";")
    return tables


def _as_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, Sequence):
        return [str(part).strip() for part in value if str(part).strip()]
    raise DriverError(f"additional_workspaces={value!r} is not a list", hint="give a list of workspace IDs")


# ----------------------------------------------------------------------------------------------
# Errors


def _retry_policy(retries: Any, backoff: Any) -> Any:
    """azure-core's retry policy, minus what must not be retried: a 504 (the query ran out of its
    server timeout; running it again would time out again) and a Retry-After past 60 s."""
    from azure.core.pipeline.policies import RetryPolicy

    class QueryRetryPolicy(RetryPolicy):  # type: ignore[type-arg]
        def is_retry(self, settings: dict[str, Any], response: Any) -> bool:
            if response.http_response.status_code == 504:
                return False
            wait = self.parse_retry_after(response.http_response.headers.get("Retry-After") or "0")
            if wait > _MAX_RETRY_AFTER:
                return False
            return bool(super().is_retry(settings, response))

        @staticmethod
        def parse_retry_after(value: str) -> float:
            try:
                return float(value)
            except ValueError:
                return 0.0

    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise DriverError(f"retries={retries!r} is not a whole number of 0 or more", hint="e.g. retries: 3")
    if isinstance(backoff, bool) or not isinstance(backoff, int | float) or backoff < 0:
        raise DriverError(f"backoff={backoff!r} is not a number of seconds", hint="e.g. backoff: 0.5")
    return QueryRetryPolicy(retry_total=retries, retry_backoff_factor=float(backoff), retry_backoff_max=20)


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """True when ``exc`` or an exception it was raised from/during is a ``kind``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _exception_detail(exc: Exception) -> str:
    """The most specific message of an azure-core exception (the innermost Log Analytics error)."""
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            body = json.loads(response.text())
        except (ValueError, TypeError, AttributeError):
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            return _describe(body["error"])
    text = str(getattr(exc, "message", None) or exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]


def _error_dict(error: Any) -> dict[str, Any]:
    """A LogsQueryError (or a result holding one) as a plain dict: code, message, details."""
    if error is None:
        return {}
    if isinstance(error, Mapping):
        return dict(error)
    return {
        "code": getattr(error, "code", None),
        "message": getattr(error, "message", None),
        "details": getattr(error, "details", None),
    }


def _describe(error: Mapping[str, Any]) -> str:
    """``code: message`` of a Log Analytics error, with the innermost messages of its details."""
    codes: list[str] = []
    messages: list[str] = []

    def walk(node: Any) -> None:
        if not isinstance(node, Mapping):
            return
        if node.get("code") and str(node["code"]) not in codes:
            codes.append(str(node["code"]))
        inner = node.get("innererror")
        details = node.get("details")
        if isinstance(inner, Mapping):
            walk(inner)
        for item in details if isinstance(details, list) else []:
            walk(item)
        if not isinstance(inner, Mapping) and not details and node.get("message"):
            messages.append(str(node["message"]))

    walk(error)
    if not messages and error.get("message"):
        messages.append(str(error["message"]))
    text = "/".join(codes[:3]) + (": " if codes else "") + "; ".join(dict.fromkeys(messages))
    return text[:500] or "unknown error"


# ----------------------------------------------------------------------------------------------
# Frames


def _empty_frame() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame()


def _table_frame(table: Any) -> pd.DataFrame:
    """A ``LogsTable`` as a DataFrame typed from its Kusto column types (UTC datetimes, nullable
    integers, dynamic values parsed from their JSON text)."""
    import pandas as pd

    names: list[str] = list(table.columns)
    kinds: list[str] = [str(t).lower() for t in table.columns_types]
    rows = [list(row) for row in table.rows]
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    data: dict[str, Any] = {}
    for name, kind, values in zip(names, kinds, columns, strict=True):
        data[name] = _typed_column(kind, list(values))
    frame = pd.DataFrame(data, columns=names) if names else pd.DataFrame()
    return _utc_frame(frame)


def _typed_column(kind: str, values: list[Any]) -> Any:
    import pandas as pd

    if kind in ("datetime", "date"):
        return pd.to_datetime(pd.Series(values, dtype=object), utc=True, errors="coerce", format="ISO8601")
    if kind in ("long", "int"):
        return pd.array(values, dtype="Int64" if kind == "long" else "Int32")
    if kind in ("real", "double", "decimal"):
        return pd.array([None if v is None else float(v) for v in values], dtype="float64")
    if kind in ("bool", "boolean"):
        return pd.array(values, dtype="boolean")
    if kind == "dynamic":
        return pd.Series([_dynamic(v) for v in values], dtype=object)
    if kind == "timespan":
        return pd.Series([_timespan(v) for v in values], dtype=object)
    return pd.Series(values, dtype=object)


def _dynamic(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _timespan(value: Any) -> Any:
    """A Kusto timespan text (``[-][d.]hh:mm:ss[.fffffff]``) as a ``timedelta``."""
    if not isinstance(value, str):
        return value
    match = _TIMESPAN.match(value.strip())
    if not match:
        return value
    sign, days, hours, minutes, seconds, fraction = match.groups()
    span = timedelta(
        days=int(days or 0),
        hours=int(hours),
        minutes=int(minutes),
        seconds=int(seconds),
        microseconds=int((fraction or "0").ljust(7, "0")[:7]) // 10,
    )
    return -span if sign else span
