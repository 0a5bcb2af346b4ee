"""Upload to Elasticsearch with the ``_bulk`` API: a stable ``_id`` per row, per-item outcomes.

Settings: ``url`` (``https://es:9200``), ``index`` (required; a data stream or an index), one of
``api_key`` (the encoded key, or ``[id, api_key]``), ``username`` + ``password``, ``bearer_token``;
``op`` (``create``, the default: a row already stored is a conflict, counted as a duplicate, never
stored twice; ``index``: overwrite), ``pipeline`` (an ingest pipeline), ``item_retries`` (8),
``batch_rows`` (5,000), ``batch_bytes`` (5,000,000 before compression), ``gzip`` (True), and the
:class:`~huntbook.upload.HttpUploader` settings (``verify``, ``ca_file``, ``retries`` ...).

Each row becomes a document with ``@timestamp`` (from the time column) and ``_id`` its key. The
answer's items are read one by one: 2xx is accepted, 409 on ``create`` means the row is stored
(from an earlier upload: a duplicate; from an earlier attempt of this batch whose answer was lost:
accepted), 429 and 5xx items are sent again (only those, with backoff), anything else (a mapping
error ...) is a rejection with Elasticsearch's reason.
"""

from __future__ import annotations

import base64
import random
import time
from typing import Any

from huntbook.errors import DataError, ServiceError
from huntbook.http import Auth, remember_secret
from huntbook.upload import HttpUploader, Item, Receipt, _iso, dumps, safe_url

__all__ = ["BulkUploader"]


class BulkUploader(HttpUploader):
    """Upload rows to Elasticsearch through ``POST /_bulk``."""

    name = "elastic"
    service = "elasticsearch-bulk"
    batch_rows = 5_000
    batch_bytes = 5_000_000

    def __init__(
        self,
        *,
        url: str,
        index: str,
        api_key: str | list[str] | tuple[str, str] | None = None,
        username: str | None = None,
        password: str | None = None,
        bearer_token: str | None = None,
        op: str = "create",
        pipeline: str | None = None,
        item_retries: int = 8,
        **options: Any,
    ) -> None:
        if not index:
            raise DataError("no index to upload to", where="elastic upload settings", hint="set index=")
        if op not in ("create", "index"):
            raise DataError(f"op={op!r} is not 'create' or 'index'", where="elastic upload settings")
        self._auth = _auth(api_key, username, password, bearer_token)
        super().__init__(url=url, **options)
        self.index, self.op, self.pipeline = index, op, pipeline
        self.item_retries = max(0, int(item_retries))
        self.backoff = float(options.get("backoff", 0.5))
        self._action = b'{"' + op.encode() + b'":{"_index":' + dumps(index) + b',"_id":'

    def auth(self) -> Auth:
        return self._auth

    def describe(self) -> str:
        return f"index {self.index} at {safe_url(self.url)}"

    def encode(self, item: Item) -> bytes:
        document = item.json
        if "@timestamp" not in item.columns:  # add it to the row's JSON object
            stamp = b'"@timestamp":' + dumps(_iso(item.time))
            document = document[:-1] + (b"," if document != b"{}" else b"") + stamp + b"}"
        return self._action + dumps(item.key) + b"}}\n" + document + b"\n"

    def send(self, batch: list[tuple[Item, bytes]], receipt: Receipt) -> None:
        path = "/_bulk" + (f"?pipeline={self.pipeline}" if self.pipeline else "")
        headers = {"Content-Type": "application/x-ndjson", "Accept": "application/json"}
        todo = batch
        maybe_stored: set[str] = set()  # rows an earlier attempt may have stored
        rounds = 0
        while todo:
            answer = self.post(path, b"".join(p for _, p in todo), headers, (200,))
            if answer.attempts > 1:  # the request was retried: an earlier attempt may have been taken
                receipt.retried += (answer.attempts - 1) * len(todo)
                maybe_stored.update(item.key for item, _ in todo)
            body = answer.json()
            results = body.get("items") if isinstance(body, dict) else None
            if not isinstance(results, list) or len(results) != len(todo):
                raise ServiceError(
                    "the _bulk answer does not have one item per row", kind="malformed", where=self.url
                )
            again: list[tuple[Item, bytes]] = []
            for (item, payload), result in zip(todo, results, strict=True):
                ((_, info),) = result.items()
                status = int(info.get("status", 0))
                if 200 <= status < 300:
                    receipt.accepted += 1
                elif status == 409 and self.op == "create":
                    if item.key in maybe_stored:
                        receipt.accepted += 1
                    else:
                        receipt.duplicates += 1
                elif status == 429 or status >= 500:
                    again.append((item, payload))
                    if status >= 500:
                        maybe_stored.add(item.key)
                else:
                    error = info.get("error") or {}
                    reason = (
                        f"{error.get('type', 'error')}: {error.get('reason', '')}"
                        if isinstance(error, dict)
                        else str(error)
                    )
                    receipt.reject(item.row, f"HTTP {status} {reason}".strip(), item.key)
            if not again:
                return
            rounds += 1
            if rounds > self.item_retries:
                for item, _ in again:
                    receipt.reject(
                        item.row, f"still refused after {self.item_retries} retries (HTTP 429/5xx)", item.key
                    )
                return
            receipt.retried += len(again)
            time.sleep(min(30.0, self.backoff * 2 ** (rounds - 1)) * (0.5 + random.random() / 2))  # noqa: S311
            todo = again


def _auth(
    api_key: str | list[str] | tuple[str, str] | None,
    username: str | None,
    password: str | None,
    bearer_token: str | None,
) -> Auth:
    if api_key:
        if isinstance(api_key, list | tuple):
            for part in api_key:
                remember_secret(str(part))
            api_key = base64.b64encode(":".join(str(p) for p in api_key).encode()).decode()
        remember_secret(str(api_key))
        return Auth.header("Authorization", f"ApiKey {api_key}")
    if username and password:
        remember_secret(str(password))
        return Auth.basic(str(username), str(password))
    if bearer_token:
        remember_secret(str(bearer_token))
        return Auth.bearer(str(bearer_token))
    raise DataError(
        "no credentials for Elasticsearch",
        where="elastic upload settings",
        hint="set api_key, or username and password (as env:/keyring: references)",
    )
