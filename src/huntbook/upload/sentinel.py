"""Upload to Microsoft Sentinel / a Log Analytics workspace through the Logs Ingestion API.

::

    receipt = upload.upload(findings, to="sentinel",
                            endpoint="https://my-dce.westeurope-1.ingest.monitor.azure.com",
                            rule_id="dcr-0123456789abcdef0123456789abcdef", stream="Custom-HuntFindings",
                            auth="client_secret", tenant_id="...", client_id="...",
                            client_secret="env:HUNT_APP_SECRET")

Settings: ``endpoint`` (the data collection endpoint, or the DCR's logs ingestion endpoint),
``rule_id`` (the DCR's immutable id, ``dcr-...``), ``stream`` (the stream declared in the DCR,
``Custom-<name>`` for a custom table); the credential settings of the sentinel driver (``auth``:
``default``, ``client_secret`` with ``tenant_id``/``client_id``/``client_secret``, ``managed_identity``,
``az_cli``, ``token``; ``credential``; ``authority``); ``verify`` (TLS verification, on by default, a CA
bundle path, or an explicit and logged ``False``); ``key_field`` (the column that carries each row's
stable key, ``HuntbookKey``; with ``key_column`` set the key is that column and nothing is added;
``""`` adds nothing); ``retries`` (8 per batch), ``backoff`` (0.5 s, doubled per retry, at most 30 s),
``max_retry_after`` (60 s), ``timeout`` (60 s per request); ``batch_rows`` (5,000) and ``batch_bytes``
(1,000,000; the API takes at most 1 MB per call).

Each row is sent as a JSON object with ``TimeGenerated`` (from the time column) and its key. Column
names are checked first: Log Analytics takes names that start with a letter, of at most 45 letters,
digits, ``_`` and ``-``, and not ``Type``, ``TenantId`` or the ``resource*`` names.

The real ``azure-monitor-ingestion`` client sends each batch (gzip-compressed) with its own retries
off: the uploader retries per batch, so the receipt counts what was re-sent. A 429 waits for its
``Retry-After``; 5xx answers and connections that fail are retried with backoff; a 413 splits the batch
in two (a single row over the limit is a rejection); another 4xx rejects the batch's rows with the
API's message; 401/403/404 stop the upload. The Logs Ingestion API has no idempotency: when a
connection breaks after a batch was sent, the batch is sent again and the receipt warns that those
rows may be stored twice (they share their ``key_field`` value, so ``summarize arg_max(TimeGenerated,
*) by HuntbookKey`` removes the copies). When the upload stops, the error's receipt says which rows
were not stored.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import random
import re
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

from huntbook.drivers.sentinel import azure_credential, check_verify
from huntbook.errors import DataError, DriverError, MissingExtraError, ServiceError
from huntbook.http import _retry_after, redact, remember_secret
from huntbook.upload import Item, Receipt, Uploader, _iso, dumps

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["MAX_REQUEST_BYTES", "LogsIngestionUploader"]

log = logging.getLogger("huntbook.upload.sentinel")

#: The Logs Ingestion API's limit for one call (compressed or not).
MAX_REQUEST_BYTES: Final = 1024 * 1024
_COLUMN = re.compile(r"[A-Za-z][A-Za-z0-9_\-]{0,44}")
_RESERVED: Final = frozenset(
    {
        "type",
        "tenantid",
        "resource",
        "resourceid",
        "resourcename",
        "resourcetype",
        "subscriptionid",
        "tenanted",
    }
)
_STREAM = re.compile(r"(Custom|Microsoft)-[A-Za-z0-9_\-]+")
_RETRY_STATUSES: Final = frozenset({408, 500, 502, 503, 504})
_DEFAULT_KEY_FIELD: Final = "HuntbookKey"
_HINTS: Final = {
    "connection": "check the endpoint, the network and verify= (a CA bundle for a private CA)",
    "timeout": "the endpoint is slow or unreachable; raise timeout=",
    "rate_limited": "the DCR is throttled: upload later, from the row the receipt names",
    "http": "retry later, from the row the receipt names",
}


class LogsIngestionUploader(Uploader):
    """Upload rows to a DCR stream with ``azure.monitor.ingestion.LogsIngestionClient``."""

    name = "sentinel"
    batch_rows = 5_000
    batch_bytes = 1_000_000

    def __init__(
        self,
        *,
        endpoint: str,
        rule_id: str,
        stream: str,
        auth: str | None = None,
        token: str | None = None,
        tenant_id: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        authority: str | None = None,
        credential: Any = None,
        verify: bool | str = True,
        key_field: str | None = None,
        retries: int = 8,
        backoff: float = 0.5,
        max_retry_after: float = 60.0,
        timeout: float = 60.0,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        where = "sentinel upload settings"
        for secret in (token, client_secret):
            if secret:
                remember_secret(str(secret))
        if not isinstance(endpoint, str) or not endpoint.startswith("https://"):  # tokens go over TLS only
            raise DataError(
                f"endpoint={endpoint!r} is not an https URL",
                where=where,
                hint="the data collection endpoint, https://<dce>.<region>.ingest.monitor.azure.com",
            )
        if not rule_id or not isinstance(rule_id, str):
            raise DataError(
                "no rule_id", where=where, hint="the DCR's immutable id (dcr-...) from its overview"
            )
        if not isinstance(stream, str) or not _STREAM.fullmatch(stream):
            raise DataError(
                f"stream={stream!r} is not a DCR stream name",
                where=where,
                hint="streams are named Custom-<table> (custom tables) or Microsoft-<table>",
            )
        if self.bytes_per_batch >= MAX_REQUEST_BYTES:  # the body: "[" + the batch less its last comma + "]"
            raise DataError(
                f"batch_bytes={self.bytes_per_batch} is above the API's {MAX_REQUEST_BYTES} bytes per call",
                where=where,
            )
        if key_field and not _COLUMN.fullmatch(key_field):
            raise DataError(f"key_field={key_field!r} is not a Log Analytics column name", where=where)
        try:
            from azure.monitor.ingestion import LogsIngestionClient
        except ImportError as exc:
            raise MissingExtraError(
                "the sentinel uploader", "sentinel", missing=getattr(exc, "name", None)
            ) from exc
        tls = check_verify(verify, "sentinel upload")
        try:
            self._credential = azure_credential(
                auth,
                token=token,
                tenant_id=tenant_id,
                client_id=client_id,
                client_secret=client_secret,
                authority=authority,
                credential=credential,
                verify=tls,
                service="sentinel upload",
            )
        except DriverError as exc:
            raise DataError(redact(exc.message), where=where, hint=exc.hint) from None
        self.endpoint, self.rule_id, self.stream = endpoint.rstrip("/"), rule_id, stream
        default_key = None if self.key_column else _DEFAULT_KEY_FIELD
        self.key_field = (key_field if key_field is not None else default_key) or None
        self.retries = max(0, int(retries))
        self.backoff = float(backoff)
        self.max_retry_after = float(max_retry_after)
        self.timeout = float(timeout)
        self.client = LogsIngestionClient(
            self.endpoint,
            self._credential,
            connection_verify=tls,
            retry_total=0,  # retried per batch here
        )

    def describe(self) -> str:
        return f"stream {self.stream} of {self.rule_id} at {redact(self.endpoint)}"

    # -- rows -------------------------------------------------------------------------------------
    def upload_frames(self, frames: Iterable[pd.DataFrame], receipt: Receipt | None = None) -> Receipt:
        """Check every frame's column names, then upload as :class:`~huntbook.upload.Uploader` does."""
        return super().upload_frames((self._checked(frame) for frame in frames), receipt)

    def _checked(self, frame: pd.DataFrame) -> pd.DataFrame:
        for column in frame.columns:
            name = str(column)
            if not _COLUMN.fullmatch(name) or name.lower() in _RESERVED:
                raise DataError(
                    f"column {name!r} cannot be a Log Analytics column",
                    where=f"column {name!r}",
                    hint="names start with a letter and hold at most 45 letters, digits, _ and -; "
                    "Type, TenantId and resource* are reserved: rename it (frame.rename(columns=...))",
                )
        return frame

    def encode(self, item: Item) -> bytes:
        """The row's JSON with ``TimeGenerated`` and its key added, and the comma that follows it in
        the body (so the batch size is the body size)."""
        added = b""
        if "TimeGenerated" not in item.columns:
            added += b'"TimeGenerated":' + dumps(_iso(item.time)) + b","
        if self.key_field and self.key_field in item.columns:  # replace the column's old value
            record = item.record
            record[self.key_field] = item.key
            return dumps(record) + b","
        if self.key_field:
            added += dumps(self.key_field) + b":" + dumps(item.key) + b","
        if not added:
            return item.json + b","
        inner = item.json.strip()[1:-1]
        return b"{" + (added + inner if inner.strip() else added[:-1]) + b"},"

    # -- sending ----------------------------------------------------------------------------------
    def send(self, batch: list[tuple[Item, bytes]], receipt: Receipt) -> None:
        number, attempts, ambiguous = receipt.batches, 0, False
        while True:
            error = self._post(batch)
            if error is None:
                receipt.accepted += len(batch)
                break
            action, wait, reason = self._classify(error, attempts + 1)
            if action == "split" and len(batch) > 1:
                middle = len(batch) // 2
                self.send(batch[:middle], receipt)
                self.send(batch[middle:], receipt)
                break
            if action in ("split", "reject"):
                for item, _ in batch:
                    receipt.reject(item.row, reason, item.key)
                break
            attempts += 1
            if action == "stop" or attempts > self.retries:
                if action != "stop":
                    reason += f" (still failing after {self.retries} retries)"
                raise self._stop(error, reason, batch, receipt)
            ambiguous = ambiguous or action == "resend"
            receipt.retried += len(batch)
            log.debug("%s: batch %d: %s, sent again in %.2f s", self.name, number, reason, wait)
            time.sleep(wait)
        if ambiguous:
            receipt.warnings.append(
                f"batch {number} (rows {batch[0][0].row}-{batch[-1][0].row}): a connection broke after the "
                "rows were sent; they were sent again, so the workspace may hold them twice"
                + (f" (dedupe on {self.key_field})" if self.key_field else "")
            )

    def _post(self, batch: list[tuple[Item, bytes]]) -> Exception | None:
        """One call of the client with the batch as a gzip-compressed JSON array; its error, or None."""
        from azure.core.exceptions import AzureError

        body = gzip.compress(b"[" + b"".join(payload for _, payload in batch)[:-1] + b"]", compresslevel=5)
        try:
            self.client.upload(
                rule_id=self.rule_id,
                stream_name=self.stream,
                logs=io.BytesIO(body),  # sent as it is, in one request (a list would be re-chunked)
                connection_timeout=min(10.0, self.timeout),
                read_timeout=self.timeout,
            )
        except AzureError as exc:
            return exc
        return None

    def _classify(self, error: Exception, attempt: int) -> tuple[str, float, str]:
        """``(action, wait, reason)``: action ``retry``, ``resend`` (the rows may have arrived),
        ``split``, ``reject`` or ``stop``."""
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ServiceRequestError,
            ServiceResponseError,
        )

        status = getattr(error, "status_code", None)
        reason = redact(_reason(error))
        if isinstance(error, HttpResponseError) and status is not None:
            if status in (401, 403, 404):
                return "stop", 0.0, f"HTTP {status} {reason}"
            if status == 413:
                return "split", 0.0, f"HTTP 413 {reason}"
            headers = getattr(getattr(error, "response", None), "headers", {}) or {}
            wait = _retry_after(headers.get("Retry-After"))
            if status == 429 or status in _RETRY_STATUSES:
                if wait is not None and wait > self.max_retry_after:
                    return "stop", 0.0, f"HTTP {status}: Retry-After {wait:.0f} s exceeds max_retry_after"
                return "retry", self._backoff(attempt) if wait is None else wait, f"HTTP {status} {reason}"
            return "reject", 0.0, f"HTTP {status} {reason}"
        if isinstance(error, ClientAuthenticationError):
            return "stop", 0.0, f"no token from the Azure credential: {reason}"
        if "certificate verify failed" in str(error).lower():  # not transient: the CA is not trusted
            return "stop", 0.0, f"TLS verification failed: {reason}"
        if isinstance(error, ServiceRequestError):  # nothing reached the far end
            return "retry", self._backoff(attempt), f"connection failed: {reason}"
        if isinstance(error, ServiceResponseError):  # sent, but no answer came back
            return "resend", self._backoff(attempt), f"the connection broke: {reason}"
        return "resend", self._backoff(attempt), f"{type(error).__name__}: {reason}"

    def _backoff(self, attempt: int) -> float:
        base = min(30.0, self.backoff * 2.0 ** (attempt - 1))
        return base * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not cryptography

    def _stop(
        self, error: Exception, reason: str, batch: list[tuple[Item, bytes]], receipt: Receipt
    ) -> ServiceError:
        """The error that ends the upload; the receipt says from which row nothing was stored."""
        from azure.core.exceptions import ClientAuthenticationError

        status = getattr(error, "status_code", None)
        receipt.warnings.append(
            f"stopped at row {batch[0][0].row}: that row and every later one were not stored"
        )
        auth = status in (401, 403) or (status is None and isinstance(error, ClientAuthenticationError))
        hint = {
            401: "check the credential (auth, tenant_id, client_id, client_secret)",
            403: "the identity needs the Monitoring Metrics Publisher role on the DCR",
            404: "check endpoint, rule_id (the DCR immutable id) and stream",
        }.get(status or 0, "check the credential settings" if auth else _HINTS[_kind(error)])
        return ServiceError(
            f"upload stopped: {reason}",
            kind="auth" if auth else _kind(error),
            status=status,
            where=self.describe(),
            hint=hint,
        )

    def close(self) -> None:
        for thing in (self.client, self._credential):
            closer = getattr(thing, "close", None)
            if callable(closer):
                try:
                    closer()
                except Exception as exc:  # closing must not fail the caller
                    log.debug("closing the ingestion client: %s", type(exc).__name__)


def _kind(error: Exception) -> str:
    status = getattr(error, "status_code", None)
    if status == 429:
        return "rate_limited"
    if status is not None:
        return "http"
    from azure.core.exceptions import ServiceRequestTimeoutError, ServiceResponseTimeoutError

    return (
        "timeout"
        if isinstance(error, ServiceRequestTimeoutError | ServiceResponseTimeoutError)
        else "connection"
    )


def _reason(error: Exception) -> str:
    """The API's ``code: message`` for an HTTP error, else the exception's first line."""
    response = getattr(error, "response", None)
    if response is not None:
        try:
            body = json.loads(response.text())
        except (ValueError, TypeError, AttributeError):
            body = None
        inner = body.get("error") if isinstance(body, dict) else None
        if isinstance(inner, dict):
            return f"{inner.get('code', '')}: {inner.get('message', '')}".strip(": ")
    text = str(getattr(error, "message", None) or error).strip() or type(error).__name__
    return text.splitlines()[0][:300]
