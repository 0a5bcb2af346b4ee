"""Upload to Splunk through the HTTP Event Collector, with indexer acknowledgements.

Settings: ``url`` (the HEC address, ``https://splunk:8088``), ``token`` (the HEC token, sent as
``Authorization: Splunk <token>``), ``index``, ``sourcetype`` (``huntbook``), ``source``
(``huntbook``), ``host`` or ``host_column`` (a column holding each event's host), ``ack`` (True:
indexer acknowledgement), ``ack_timeout`` (60 s), ``ack_poll`` (0.5 s), ``channel`` (a new GUID per
upload), ``batch_rows`` (5,000), ``batch_bytes`` (1,000,000 before compression), ``gzip`` (True),
and the :class:`~huntbook.upload.HttpUploader` settings (``verify``, ``ca_file``, ``retries`` ...).

Each row is one event: ``{"time": <epoch>, "event": {row}, "fields": {"huntbook_id": <key>}}``
(``huntbook_id`` is an indexed field, so ``| dedup huntbook_id`` finds a row sent twice). With
acknowledgements a batch counts as accepted only once ``/services/collector/ack`` says it was
indexed; a batch still unacknowledged after ``ack_timeout`` is sent again. A 503 (server busy),
429 or dropped connection is retried before the batch is accepted, so HEC never saw it. HEC has no
idempotency of its own: a batch whose answer is lost after HEC took it (a timeout) is sent again
and can be indexed twice; the receipt's ``retried`` counts such re-sends.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from huntbook.errors import DataError, ServiceError
from huntbook.http import Auth, remember_secret
from huntbook.upload import HttpUploader, Item, Receipt, dumps, safe_url

__all__ = ["HecUploader"]


@dataclass
class _Pending:
    """A batch HEC took, waiting for its acknowledgement."""

    batch: list[tuple[Item, bytes]]
    sent: float
    sends: int = 1
    keys: set[str] = field(default_factory=set)


class HecUploader(HttpUploader):
    """Upload rows to Splunk's HTTP Event Collector (``/services/collector/event``)."""

    name = "splunk"
    service = "splunk-hec"
    batch_rows = 5_000
    batch_bytes = 1_000_000

    def __init__(
        self,
        *,
        url: str,
        token: str,
        index: str | None = None,
        sourcetype: str = "huntbook",
        source: str = "huntbook",
        host: str | None = None,
        host_column: str | None = None,
        ack: bool = True,
        ack_timeout: float = 60.0,
        ack_poll: float = 0.5,
        channel: str | None = None,
        max_pending: int = 16,
        **options: Any,
    ) -> None:
        if not token:
            raise DataError(
                "no HEC token", where="splunk upload settings", hint="set token (an env:/keyring: reference)"
            )
        self.token = str(token)
        remember_secret(self.token)
        super().__init__(url=url, **options)
        self.index, self.sourcetype, self.source = index, sourcetype, source
        self.host, self.host_column = host, host_column
        self.ack = bool(ack)
        self.ack_timeout, self.ack_poll = float(ack_timeout), float(ack_poll)
        self.channel = channel or str(uuid.uuid4())
        self.max_pending = max(1, int(max_pending))
        self.max_sends = max(1, int(options.get("retries", 8)))
        self.pending: dict[int, _Pending] = {}
        self.extract = (host_column,) if host_column else ()
        meta = {"source": source, "sourcetype": sourcetype, **({"index": index} if index else {})}
        self._head = b"".join(dumps(k) + b":" + dumps(v) + b"," for k, v in meta.items())

    def auth(self) -> Auth:
        return Auth.header("Authorization", f"Splunk {self.token}")

    def describe(self) -> str:
        return f"index {self.index or '(the token default)'} at {safe_url(self.url)}"

    def encode(self, item: Item) -> bytes:
        host = item.extra.get(self.host_column) if self.host_column else self.host
        head = self._head + (b'"host":' + dumps(str(host)) + b"," if host is not None else b"")
        return (
            b'{"time":%.6f,' % item.time.timestamp()
            + head
            + b'"event":'
            + item.json
            + b',"fields":{"huntbook_id":'
            + dumps(item.key)
            + b"}}\n"
        )

    # -------------------------------------------------------------- sending
    def send(self, batch: list[tuple[Item, bytes]], receipt: Receipt) -> None:
        self._post(batch, receipt, sends=1)
        if len(self.pending) >= self.max_pending:
            self._wait_for_acks(receipt, drain=False)

    def _post(self, batch: list[tuple[Item, bytes]], receipt: Receipt, sends: int) -> None:
        headers = {"Content-Type": "application/json", "X-Splunk-Request-Channel": self.channel}
        while batch:
            answer = self.post(
                "/services/collector/event", b"".join(p for _, p in batch), headers, (200, 400)
            )
            receipt.retried += (answer.attempts - 1) * len(batch)
            data = answer.json() if answer.body else {}
            if answer.status == 200:
                break
            if answer.status == 404:
                raise ServiceError("no HEC endpoint at this address", kind="http", status=404, where=self.url)
            number = data.get("invalid-event-number") if isinstance(data, dict) else None
            text = f"HEC: {data.get('text', 'bad request')} (code {data.get('code')})"
            if not isinstance(number, int) or not 0 <= number < len(batch):
                for item, _ in batch:
                    receipt.reject(item.row, text, item.key)
                return
            item = batch[number][0]
            receipt.reject(item.row, text, item.key)
            batch = batch[:number] + batch[number + 1 :]  # HEC refused the whole request: send the rest
        if not batch:
            return
        if not self.ack:
            receipt.accepted += len(batch)
            return
        ack_id = data.get("ackId") if isinstance(data, dict) else None
        if not isinstance(ack_id, int):
            raise ServiceError(
                "HEC answered without an ackId",
                kind="malformed",
                where=self.url,
                hint="turn on indexer acknowledgement for the token, or upload with ack=False",
            )
        self.pending[ack_id] = _Pending(batch, time.monotonic(), sends)

    def finish(self, receipt: Receipt) -> None:
        self._wait_for_acks(receipt, drain=True)

    def _wait_for_acks(self, receipt: Receipt, *, drain: bool) -> None:
        """Ask HEC which pending batches are indexed; re-send those past ``ack_timeout``."""
        headers = {"X-Splunk-Request-Channel": self.channel}
        while self.pending and (drain or len(self.pending) >= self.max_pending):
            answer = self.client.request(
                "POST", "/services/collector/ack", json_body={"acks": sorted(self.pending)}, headers=headers
            )
            acks = answer.json().get("acks", {}) if answer.status == 200 else {}
            for ack_id in list(self.pending):
                if acks.get(str(ack_id)) is True:
                    receipt.accepted += len(self.pending.pop(ack_id).batch)
            now = time.monotonic()
            for ack_id, waiting in list(self.pending.items()):
                if now - waiting.sent <= self.ack_timeout:
                    continue
                del self.pending[ack_id]
                if waiting.sends >= self.max_sends:
                    raise ServiceError(
                        f"HEC did not acknowledge a batch of {len(waiting.batch)} rows after "
                        f"{waiting.sends} sends",
                        kind="timeout",
                        where=self.url,
                        hint="check the indexers' health (the events may be queued)",
                    )
                receipt.retried += len(waiting.batch)
                receipt.warnings.append(
                    f"a batch of {len(waiting.batch)} rows was not acknowledged in {self.ack_timeout:g} s: "
                    "sent again"
                )
                self._post(waiting.batch, receipt, sends=waiting.sends + 1)
            if self.pending:
                time.sleep(self.ack_poll)
