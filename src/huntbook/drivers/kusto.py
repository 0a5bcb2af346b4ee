"""The ``kusto`` driver: KQL on Azure Data Explorer (or any Kusto REST endpoint) with ``azure-kusto-data``.

::

    qp = QueryProvider("kusto", cluster="https://help.kusto.windows.net", database="Security",
                       auth="az_cli")
    qp.process.host_processes(host_name="WS01", start="-1d")

Settings (``connections.kusto`` in ``huntbook.yaml``, or keywords of ``QueryProvider``):

- ``cluster`` (required): the cluster URL; ``database`` (required): the database queried.
- ``auth``: ``token`` (a bearer token in ``token``), ``app_key`` (``client_id``, ``client_secret``,
  ``tenant_id``), ``az_cli``, ``managed_identity`` (optional ``client_id``), ``device``
  (``tenant_id``), ``default`` (azure-identity's ``DefaultAzureCredential``) or ``none`` (only for an
  ``http://`` endpoint such as a local emulator). Default: ``token`` when a token is given,
  ``app_key`` when a client secret is, ``none`` for ``http://`` URLs, else ``default``.

Secrets (``token``, ``client_secret``) should be references (``env:KUSTO_TOKEN``); they never appear
in errors or logs. Queries run with the ``servertimeout`` request option set to the query timeout;
a partial or truncated answer (Kusto stops at 500,000 rows or 64 MB by default) raises rather than
returning fewer rows silently.
"""

from __future__ import annotations

import logging
import time
import uuid
import warnings
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from huntbook.drivers.base import Driver
from huntbook.drivers.local import _utc_frame
from huntbook.errors import DriverError, MissingExtraError, QueryError, QueryTimeoutError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["KustoDriver"]

log = logging.getLogger("huntbook.drivers.kusto")

_AUTH_METHODS = ("token", "app_key", "az_cli", "managed_identity", "device", "default", "none")
_SECRET_KEYS = ("token", "client_secret")
_TIMEOUT_MARKERS = ("timeout", "timed out", "interrupt", "exceeded the allowed", "cancel")


class KustoDriver(Driver):
    """Run KQL on a Kusto cluster through ``azure.kusto.data.KustoClient``."""

    name = "kusto"
    languages = ("kql",)

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self._client: Any = None
        self._secrets: list[str] = []
        self.cluster: str | None = None
        self.database: str | None = None

    def connect(self, **settings: Any) -> None:
        """Build the client from ``cluster``, ``database`` and the auth settings (see the module docs)."""
        try:
            from azure.kusto.data import KustoClient
        except ImportError as exc:
            raise MissingExtraError("the kusto driver", "kusto", missing=getattr(exc, "name", None)) from exc
        merged = {**self.settings, **settings}
        self._secrets = [str(merged[k]) for k in _SECRET_KEYS if merged.get(k)]
        cluster = str(merged.pop("cluster", "") or "").rstrip("/")
        database = merged.pop("database", None)
        if not cluster or not database:
            raise DriverError(
                "the kusto driver needs a cluster URL and a database",
                hint="QueryProvider('kusto', cluster='https://<name>.kusto.windows.net', database='...')",
            )
        builder = self._builder(cluster, merged)
        self.close()
        self._client = KustoClient(builder)
        self.cluster, self.database = cluster, str(database)
        self.settings = {"cluster": cluster, "database": self.database}  # secrets are not kept
        self.connected = True

    def _builder(self, cluster: str, settings: dict[str, Any]) -> Any:
        from azure.kusto.data import KustoConnectionStringBuilder as Kcsb

        auth = str(settings.pop("auth", "") or _default_auth(cluster, settings)).lower()
        token, client_id = settings.pop("token", None), settings.pop("client_id", None)
        secret, tenant = settings.pop("client_secret", None), settings.pop("tenant_id", None)
        if settings:
            raise DriverError(
                f"unknown kusto setting(s): {', '.join(sorted(settings))}",
                hint="known: cluster, database, auth, token, client_id, client_secret, tenant_id",
            )
        needs = {"token": [token], "app_key": [client_id, secret, tenant], "device": [tenant]}
        if auth not in _AUTH_METHODS:
            raise DriverError(f"unknown kusto auth {auth!r}", hint=f"use one of {', '.join(_AUTH_METHODS)}")
        if not all(needs.get(auth, [])):
            raise DriverError(
                f"kusto auth {auth!r} needs {', '.join(_needed(auth))}",
                hint="give them in connections.kusto (secrets as env:/keyring:/file: references)",
            )
        if auth == "none":
            if not cluster.startswith("http://"):
                raise DriverError(
                    "auth 'none' is only for http:// endpoints (a local emulator)",
                    where=cluster,
                    hint="choose an Azure auth method for a real cluster",
                )
            return Kcsb.with_no_authentication(cluster)
        if auth == "token":
            return Kcsb.with_aad_application_token_authentication(cluster, str(token))
        if auth == "app_key":
            return Kcsb.with_aad_application_key_authentication(
                cluster, str(client_id), str(secret), str(tenant)
            )
        if auth == "az_cli":
            return Kcsb.with_az_cli_authentication(cluster)
        if auth == "managed_identity":
            return Kcsb.with_aad_managed_service_identity_authentication(cluster, client_id=client_id)
        if auth == "device":
            return Kcsb.with_aad_device_authentication(cluster, str(tenant))
        from azure.identity import DefaultAzureCredential

        return Kcsb.with_azure_token_credential(cluster, DefaultAzureCredential())

    def execute(
        self, text: str, language: str | None = None, timeout: float | None = None, *, name: str | None = None
    ) -> pd.DataFrame:
        """Run KQL ``text``; every row of the primary result, or an error naming the query."""
        import pandas as pd
        from azure.kusto.data import ClientRequestProperties
        from azure.kusto.data.helpers import dataframe_from_result_table

        where = name or "ad hoc kql query"
        if (language or "kql").lower() != "kql":
            raise QueryError(f"the kusto driver runs kql, not {language!r}", where=where)
        if self._client is None:
            self.connect()
        properties = ClientRequestProperties()  # type: ignore[no-untyped-call]
        properties.client_request_id = f"huntbook;{uuid.uuid4()}"
        if timeout is not None:
            properties.set_option(
                ClientRequestProperties.request_timeout_option_name, timedelta(seconds=timeout)
            )
        started = time.monotonic()
        try:
            response = self._client.execute_query(self.database, text, properties)
        except Exception as exc:
            raise self._error(exc, where, timeout, time.monotonic() - started) from None
        if response.errors_count:
            problems = "; ".join(self._scrub(str(e)) for e in response.get_exceptions())[:500]
            raise DriverError(
                f"the answer is partial or truncated: {problems}",
                where=where,
                hint="narrow the time range or use split_by= so each part stays under the cluster's limits",
            )
        tables = response.primary_results
        if not tables:
            return pd.DataFrame()
        with warnings.catch_warnings():  # the client's own pandas 3 deprecation noise
            warnings.filterwarnings("ignore", "The copy keyword", category=Warning)
            frame = dataframe_from_result_table(tables[0])
        return _utc_frame(_plain_strings(frame))

    def _error(self, exc: Exception, where: str, timeout: float | None, elapsed: float) -> Exception:
        """A huntbook error for a client exception; secrets scrubbed."""
        from azure.kusto.data.exceptions import (
            KustoAuthenticationError,
            KustoNetworkError,
            KustoServiceError,
            KustoThrottlingError,
        )

        raw = _first_line(exc)
        message = self._scrub(raw)
        status = getattr(getattr(exc, "http_response", None), "status_code", None)
        if isinstance(exc, KustoAuthenticationError) or status in (401, 403):
            return DriverError(
                f"authentication failed (HTTP {status or 'n/a'}) at {self.cluster}",
                where=where,
                hint="check connections.kusto: auth, token or client credentials, and access to the database",
            )
        lowered = raw.lower()
        late = timeout is not None and elapsed >= 0.8 * timeout
        if timeout is not None and (
            status in (408, 504)
            or (late and (isinstance(exc, KustoNetworkError) or any(m in lowered for m in _TIMEOUT_MARKERS)))
        ):
            return QueryTimeoutError(
                f"query cancelled after the {timeout:g} s timeout ({message[:200]})",
                where=where,
                hint="raise timeout= or narrow the time range (start/end, or split_by=)",
            )
        if isinstance(exc, KustoThrottlingError) or status == 429:
            return DriverError(f"throttled by the cluster: {message}", where=where, hint="retry later")
        if isinstance(exc, KustoNetworkError):
            return DriverError(
                f"cannot reach {self.cluster}: {message}",
                where=where,
                hint="check the cluster URL and the network",
            )
        if isinstance(exc, KustoServiceError) and status is not None and status < 500:
            return QueryError(message, where=where, hint="check the query with print_query=True")
        return DriverError(f"the cluster failed: {message}", where=where)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def close(self) -> None:
        """Close the client."""
        if self._client is not None:
            try:
                self._client.close()
            except Exception as exc:  # closing must not fail the caller
                log.debug("closing the kusto client: %s", type(exc).__name__)
        self._client = None
        self.connected = False

    def __repr__(self) -> str:
        return (
            f"KustoDriver(cluster={self.cluster!r}, database={self.database!r}, connected={self.connected})"
        )


def _default_auth(cluster: str, settings: dict[str, Any]) -> str:
    if settings.get("token"):
        return "token"
    if settings.get("client_secret"):
        return "app_key"
    return "none" if cluster.startswith("http://") else "default"


def _needed(auth: str) -> list[str]:
    return {
        "token": ["token"],
        "app_key": ["client_id", "client_secret", "tenant_id"],
        "device": ["tenant_id"],
    }[auth]


def _first_line(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]


def _plain_strings(frame: pd.DataFrame) -> pd.DataFrame:
    """Kusto strings as plain ``object`` columns (empty strings stay empty strings)."""
    import pandas as pd

    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.StringDtype):
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame
