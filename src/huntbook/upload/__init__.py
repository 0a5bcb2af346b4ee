"""Push DataFrames, files and folders back: Splunk HEC, Elasticsearch ``_bulk``, the LocalStore.

::

    from huntbook import upload
    receipt = upload.upload(findings, to="splunk", url="https://splunk:8088", token="env:HEC_TOKEN",
                            index="hunt_results")
    receipt = upload.upload("exports/", to="elastic", url="https://es:9200", api_key="env:ES_KEY",
                            index="hunt-results")
    receipt = upload.upload(frame, to="local", store="~/hunts/case-42")
    print(receipt)       # splunk hunt_results: sent 1200, accepted 1200, duplicates 0, rejected 0 ...
    receipt.ok           # every row is at the far end exactly once

Settings come from the keywords, over ``connections.<target>.upload`` in ``huntbook.yaml`` (secrets
as ``env:``/``keyring:``/``file:`` references). Every uploader:

- checks the rows before sending anything (:func:`prepare`): a time column (``time_column``, else the
  first of :data:`TIME_COLUMNS`) with a time in every row, and values JSON can hold; a problem is a
  :class:`~huntbook.errors.DataError` naming the column and the row;
- gives every row a stable key (``key_column``, else a hash of its content plus its occurrence
  number among identical rows), so a batch sent twice is never stored twice where the target can
  tell (Elasticsearch ``_id``; the LocalStore's ``EventKey``; an indexed ``huntbook_id`` field in Splunk);
- sends batches of at most ``batch_rows`` rows and ``batch_bytes`` bytes, gzip-compressed where the
  target takes it, through :class:`huntbook.http.HttpClient` (retries with backoff on 429, 5xx,
  timeouts and dropped connections, honouring ``Retry-After``);
- returns a :class:`Receipt`: sent, accepted, duplicates (already at the far end), rejected (with
  reasons per row), retried, batches, duration. It never holds a secret. When the far end stays
  unavailable past the retries, the upload stops with a :class:`~huntbook.errors.ServiceError`
  whose ``receipt`` says what had been stored by then.

Uploaders are plugins of the ``huntbook.uploaders`` entry-point group (one module per target in
this package).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import ssl
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Final

from huntbook import config as hb_config
from huntbook._progress import progress_bar
from huntbook._types import PathLike
from huntbook.errors import DataError, HuntbookError, ServiceError
from huntbook.http import Answer, HttpClient, redact
from huntbook.plugins import registry

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "TIME_COLUMNS",
    "HttpUploader",
    "Item",
    "Receipt",
    "Rejection",
    "Uploader",
    "prepare",
    "read_frames",
    "safe_url",
    "to",
    "upload",
]

log = logging.getLogger("huntbook.upload")

#: Time columns looked for, in order, when ``time_column`` is not given.
TIME_COLUMNS: Final = ("TimeGenerated", "@timestamp", "_time", "timestamp", "Timestamp", "time", "EventTime")


# ----------------------------------------------------------------------------------------------
# Receipts


@dataclass(frozen=True)
class Rejection:
    """A row the far end refused: its position in the upload (0-based), why, and its key."""

    row: int
    reason: str
    key: str | None = None


@dataclass
class Receipt:
    """What an upload did. ``sent`` counts each row once however often it was re-sent; at the end
    ``accepted + duplicates + rejected == sent`` unless the upload stopped (``complete`` False)."""

    target: str
    destination: str
    sent: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    retried: int = 0
    batches: int = 0
    duration: float = 0.0
    complete: bool = True
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every row sent is at the far end (accepted now or already there)."""
        return self.complete and self.rejected == 0 and self.accepted + self.duplicates == self.sent

    def reject(self, row: int, reason: str, key: str | None = None) -> None:
        """Record a refused row."""
        self.rejected += 1
        self.rejections.append(Rejection(row, redact(reason), key))

    def to_frame(self) -> pd.DataFrame:
        """The rejections: one row per refused row (``row``, ``key``, ``reason``)."""
        import pandas as pd

        return pd.DataFrame(
            [{"row": r.row, "key": r.key, "reason": r.reason} for r in self.rejections],
            columns=["row", "key", "reason"],
        )

    def __str__(self) -> str:
        state = "" if self.complete else " (stopped before the end)"
        return (
            f"{self.target} {self.destination}: sent {self.sent}, accepted {self.accepted}, "
            f"duplicates {self.duplicates}, rejected {self.rejected}, retried {self.retried}, "
            f"batches {self.batches}, {self.duration:.1f} s{state}"
        )


# ----------------------------------------------------------------------------------------------
# Rows: checks, keys, JSON


@dataclass(frozen=True)
class Item:
    """One prepared row: its position in the upload, its stable key, the row as a JSON object
    (UTF-8 bytes, nulls as ``null``), its time, the frame's column names and the values of the
    columns the uploader asked for (``extract``)."""

    row: int
    key: str
    json: bytes
    time: datetime
    columns: frozenset[str] = frozenset()
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def record(self) -> dict[str, Any]:
        """The row as a dict (parsed from :attr:`json`)."""
        value: dict[str, Any] = json.loads(self.json)
        return value


#: ``pandas.api.types.infer_dtype`` kinds JSON holds as they are, and kinds sent after conversion.
_NATIVE_KINDS: Final = frozenset({"string", "integer", "floating", "boolean", "empty", "mixed-integer-float"})
_CONVERTED_KINDS: Final = frozenset({"datetime", "datetime64", "date", "timedelta", "timedelta64", "decimal"})


def _find_time_column(frame: pd.DataFrame, wanted: str | None) -> str:
    if wanted is not None:
        if wanted in frame.columns or "." in wanted:
            return wanted
        raise DataError(
            f"time column {wanted!r} is not in the data",
            where="time_column",
            hint=f"columns: {', '.join(map(str, frame.columns[:20]))}",
        )
    for name in TIME_COLUMNS:
        if name in frame.columns:
            return name
    raise DataError(
        "the data has no time column",
        where="columns",
        hint=f"name it with time_column= (looked for {', '.join(TIME_COLUMNS)})",
    )


def _nested(value: Any, path: Sequence[str]) -> Any:
    for part in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _times(frame: pd.DataFrame, column: str, first_row: int) -> pd.Series:
    """The time of every row as UTC; a missing or unreadable one is a DataError naming the row."""
    import pandas as pd

    if column in frame.columns:
        raw = frame[column]
    else:  # a dotted path into nested records (raw JSON from files)
        head, *rest = column.split(".")
        if head not in frame.columns:
            raise DataError(f"time column {column!r} is not in the data", where="time_column")
        raw = frame[head].map(lambda v: _nested(v, rest))
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        times = raw.dt.tz_localize("UTC") if raw.dt.tz is None else raw.dt.tz_convert("UTC")
    elif pd.api.types.is_numeric_dtype(raw.dtype):
        times = pd.to_datetime(raw, unit="s", utc=True, errors="coerce")
    else:
        times = pd.to_datetime(raw, utc=True, errors="coerce", format="mixed")
    bad = times.isna().to_numpy()
    if bad.any():
        position = int(bad.argmax())
        value = raw.iloc[position]
        if value is None or bool(pd.isna(value)):
            what = "has no time"
        else:
            what = f"has {str(value)[:40]!r}, which is not a time"
        raise DataError(
            f"row {first_row + position} {what}",
            where=f"column {column!r}",
            hint="fill or drop the rows without a time, or name another column with time_column=",
        )
    result: pd.Series = times
    return result


def _check_values(frame: pd.DataFrame, first_row: int) -> set[str]:
    """Every value must be something JSON holds (text, numbers, booleans, times, lists, dicts);
    the object columns whose values need converting (times, numpy values, tuples) are returned."""
    import pandas as pd

    convert: set[str] = set()
    for column in frame.columns:
        if not isinstance(column, str) or not column:
            raise DataError(f"column name {column!r} is not text", where="columns", hint="rename the column")
        series = frame[column]
        if not (pd.api.types.is_object_dtype(series.dtype) or isinstance(series.dtype, pd.CategoricalDtype)):
            continue
        kind = pd.api.types.infer_dtype(series, skipna=True)
        if kind in _NATIVE_KINDS:
            continue
        if kind in _CONVERTED_KINDS:
            convert.add(column)
            continue
        for position, value in enumerate(series.tolist()):
            problem = _unjsonable(value)
            if problem:
                raise DataError(
                    f"row {first_row + position} holds {problem}, which cannot be uploaded",
                    where=f"column {column!r}",
                    hint="convert the column to text (frame[col].astype(str)) or drop it",
                )
            if problem is not None:
                convert.add(column)
    return convert


def _unjsonable(value: Any, depth: int = 0) -> str | None:
    """None: JSON holds ``value`` as it is; ``""``: it does after :func:`_plain`; else the problem."""
    if isinstance(value, str | int | float | bool) or value is None:
        return None
    if isinstance(value, datetime | date | timedelta):
        return ""
    if depth > 32:
        return "data nested too deeply"
    if isinstance(value, list | tuple):
        found = [_unjsonable(v, depth + 1) for v in value]
        return next((p for p in found if p), "" if "" in found or isinstance(value, tuple) else None)
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            return "a dict with non-text keys"
        found = [_unjsonable(v, depth + 1) for v in value.values()]
        return next((p for p in found if p), "" if "" in found else None)
    if type(value).__module__ == "numpy":
        return "" if hasattr(value, "tolist") else f"a {type(value).__name__}"
    if hasattr(value, "isoformat") or value is getattr(value, "NA", None):
        return ""
    if isinstance(value, bytes | bytearray):
        return "bytes"
    return f"a {type(value).__name__}"


def _plain(value: Any) -> Any:
    """``value`` as a JSON value (times ISO-8601 UTC, timespans seconds, NaN/NA null)."""
    if isinstance(value, str | bool | int) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=None)
        return _iso(stamp)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return _plain(value.tolist())
    import pandas as pd

    if value is pd.NA or value is pd.NaT:
        return None
    return str(value)


def _iso(value: datetime) -> str:
    """ISO-8601 UTC with microseconds and ``Z`` (naive times are UTC)."""
    utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def prepare(
    frame: pd.DataFrame,
    *,
    time_column: str | None = None,
    key_column: str | None = None,
    first_row: int = 0,
    seen: dict[str, int] | None = None,
    extract: Sequence[str] = (),
) -> list[Item]:
    """Check ``frame`` and turn it into :class:`Item` rows (``frame`` is not changed).

    Raises :class:`DataError` for a missing time column, a row without a readable time, or a value
    JSON cannot hold, naming the column and the row. The key of a row is ``key_column``'s value, or
    a hash of its JSON; ``seen`` counts hashes across the frames of one upload, so identical rows
    stay distinct (``<hash>:2``).
    """
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"upload takes a DataFrame, a file or a folder, not {type(frame).__name__}")
    if frame.columns.duplicated().any():
        duplicated = frame.columns[frame.columns.duplicated()].tolist()
        raise DataError(f"duplicate column names: {duplicated}", where="columns", hint="rename them")
    if len(frame) == 0:
        return []
    column = _find_time_column(frame, time_column)
    times = _times(frame, column, first_row)
    convert = _check_values(frame, first_row)
    if key_column is not None and key_column not in frame.columns:
        raise DataError(f"key column {key_column!r} is not in the data", where="key_column")
    lines = _json_lines(frame, convert)
    given = frame[key_column].tolist() if key_column is not None else [None] * len(frame)
    wanted = [c for c in extract if c in frame.columns]
    extras = list(zip(*(frame[c].tolist() for c in wanted), strict=True)) if wanted else None
    columns = frozenset(str(c) for c in frame.columns)
    seen = {} if seen is None else seen
    items = []
    for position, (line, when, own) in enumerate(zip(lines, times.tolist(), given, strict=True)):
        key = str(own) if own is not None and own == own else _content_key(line, seen)
        extra = dict(zip(wanted, extras[position], strict=True)) if extras is not None else {}
        items.append(Item(first_row + position, key, line, when.to_pydatetime(warn=False), columns, extra))
    return items


def _json_lines(frame: pd.DataFrame, convert: set[str]) -> list[bytes]:
    """Each row as a JSON object: times ISO-8601 UTC, timespans seconds, NaN/NA/inf null; the
    object columns in ``convert`` go through :func:`_plain` first."""
    import pandas as pd

    ready: dict[str, Any] = {}
    for column in frame.columns:
        series = frame[column]
        if pd.api.types.is_datetime64_any_dtype(series.dtype):
            utc = series.dt.tz_localize("UTC") if series.dt.tz is None else series.dt.tz_convert("UTC")
            ready[column] = (
                utc.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ").astype(object).where(series.notna(), None)
            )
        elif pd.api.types.is_timedelta64_dtype(series.dtype):
            ready[column] = series.dt.total_seconds()
        elif column in convert:
            ready[column] = series.map(_plain)
        else:
            ready[column] = series
    text = pd.DataFrame(ready, index=range(len(frame))).to_json(
        orient="records",
        lines=True,
        force_ascii=False,
        date_format="iso",
        date_unit="us",
        default_handler=str,
    )
    lines = text.encode("utf-8", "surrogatepass").split(b"\n")
    return lines[: len(frame)]


def _content_key(line: bytes, seen: dict[str, int]) -> str:
    digest = hashlib.sha256(line).hexdigest()[:32]
    count = seen.get(digest, 0) + 1
    seen[digest] = count
    return digest if count == 1 else f"{digest}:{count}"


def dumps(value: Any) -> bytes:
    """Compact JSON bytes (UTF-8)."""
    if isinstance(value, str) and _BARE.fullmatch(value):  # keys and names: nothing to escape
        return b'"' + value.encode("ascii") + b'"'
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")


_BARE = re.compile(r"[A-Za-z0-9_.:@-]*")


# ----------------------------------------------------------------------------------------------
# Reading files and folders


def read_frames(
    paths: PathLike | Iterable[PathLike], receipt: Receipt, batch_rows: int = 20_000
) -> Iterator[pd.DataFrame]:
    """Records of files and folders (every format huntbook reads) as DataFrames, batch by batch.

    Unreadable records are put on the receipt as rejections (``file:offset: reason``), never dropped
    silently; a source of unknown format is one rejection.
    """
    import pandas as pd

    from huntbook import formats

    path_list = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    for path in path_list:
        if not Path(path).expanduser().exists():
            raise DataError("no such file or folder", where=str(path), hint="check the path")
    row = 0
    for source in formats.sources([Path(p).expanduser() for p in path_list]):
        fmt = formats.detect(source)
        if fmt is None:
            receipt.reject(row, f"{source.name}: unknown format")
            receipt.sent += 1
            row += 1
            continue
        for item in formats.read(source, fmt, batch_size=batch_rows):
            if isinstance(item, formats.BadRecord):
                receipt.reject(row, f"{source.name}:{item.offset}: {item.reason}")
                receipt.sent += 1
                row += 1
            elif item.raw is not None:
                frame = pd.DataFrame.from_records([json.loads(r) for r in item.raw])
                row += len(frame)
                yield frame
            elif len(item):
                frame = item.rows.to_pandas()
                row += len(frame)
                yield frame


# ----------------------------------------------------------------------------------------------
# Uploaders


class Uploader(ABC):
    """Base class of uploaders: batching, the receipt, the schema check; subclasses send.

    A subclass sets ``name`` and implements :meth:`send` (one batch: record on the receipt what
    the far end accepted, refused or already had) and :meth:`describe` (the destination, no
    secrets); :meth:`finish` runs after the last batch (e.g. to wait for acknowledgements).
    """

    name: ClassVar[str] = "uploader"
    #: Defaults of the batch limits.
    batch_rows: ClassVar[int] = 5_000
    batch_bytes: ClassVar[int] = 5_000_000

    def __init__(
        self,
        *,
        time_column: str | None = None,
        key_column: str | None = None,
        batch_rows: int | None = None,
        batch_bytes: int | None = None,
        progress: bool | None = None,
    ) -> None:
        self.time_column = time_column
        self.key_column = key_column
        self.rows_per_batch = _positive(
            batch_rows if batch_rows is not None else self.batch_rows, "batch_rows"
        )
        self.bytes_per_batch = _positive(
            batch_bytes if batch_bytes is not None else self.batch_bytes, "batch_bytes"
        )
        self.progress = progress

    @abstractmethod
    def describe(self) -> str:
        """Where the rows go (an index, a store folder), for the receipt; never a secret."""

    #: Columns whose values the uploader reads from each row (:attr:`Item.extra`).
    extract: tuple[str, ...] = ()

    def encode(self, item: Item) -> bytes:
        """One row as the bytes the target takes (its size counts against ``batch_bytes``)."""
        return item.json

    @abstractmethod
    def send(self, batch: list[tuple[Item, bytes]], receipt: Receipt) -> None:
        """Send one batch and record its outcome on ``receipt``."""

    def finish(self, receipt: Receipt) -> None:  # noqa: B027 - optional hook
        """After the last batch (acknowledgements ...)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def __enter__(self) -> Uploader:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def upload_frames(self, frames: Iterable[pd.DataFrame], receipt: Receipt | None = None) -> Receipt:
        """Check, batch and send ``frames``; the receipt."""
        receipt = receipt or Receipt(self.name, self.describe())
        started = time.monotonic()
        seen: dict[str, int] = {}
        first = receipt.sent
        bar = progress_bar(self.progress, desc=f"upload to {self.name}", unit="rows")
        try:
            with bar:
                for frame in frames:
                    items = prepare(
                        frame,
                        time_column=self.time_column,
                        key_column=self.key_column,
                        first_row=first,
                        seen=seen,
                        extract=self.extract,
                    )
                    first += len(items)
                    for batch in self._batches(items):
                        receipt.sent += len(batch)
                        receipt.batches += 1
                        self.send(batch, receipt)
                        bar.update(len(batch))
                self.finish(receipt)
        except ServiceError as exc:
            receipt.complete = False
            receipt.duration = time.monotonic() - started
            exc.receipt = receipt  # type: ignore[attr-defined]
            log.warning("%s: upload stopped: %s (%s)", self.name, exc, receipt)
            raise
        receipt.duration = time.monotonic() - started
        log.info("%s", receipt)
        return receipt

    def _batches(self, items: list[Item]) -> Iterator[list[tuple[Item, bytes]]]:
        batch: list[tuple[Item, bytes]] = []
        size = 0
        for item in items:
            payload = self.encode(item)
            if batch and (len(batch) >= self.rows_per_batch or size + len(payload) > self.bytes_per_batch):
                yield batch
                batch, size = [], 0
            batch.append((item, payload))
            size += len(payload)
        if batch:
            yield batch

    def upload_paths(self, paths: PathLike | Iterable[PathLike]) -> Receipt:
        """Upload the records of files and folders (read with :func:`read_frames`)."""
        receipt = Receipt(self.name, self.describe())
        return self.upload_frames(read_frames(paths, receipt), receipt)


class HttpUploader(Uploader):
    """An uploader that posts prepared bodies through :class:`huntbook.http.HttpClient`.

    Args (besides :class:`Uploader`'s): ``url``; ``verify`` (default True; False is logged) and
    ``ca_file``; ``retries`` (8) and ``backoff`` (0.5 s, doubled per retry); ``timeout`` (connect,
    read seconds); ``gzip`` (compress bodies, default True); ``max_retry_after`` (60 s).
    """

    service: ClassVar[str] = "upload"

    def __init__(
        self,
        *,
        url: str,
        verify: bool = True,
        ca_file: str | None = None,
        retries: int = 8,
        backoff: float = 0.5,
        timeout: float | tuple[float, float] = (5.0, 60.0),
        gzip: bool = True,
        max_retry_after: float = 60.0,
        transport: Any = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise DataError(f"url={url!r} is not an http(s) URL", where=f"{self.name} upload settings")
        self.url = url.rstrip("/")
        self.gzip = bool(gzip)
        tls: Any = ssl.create_default_context(cafile=ca_file) if verify and ca_file else bool(verify)
        self.client = _BodyClient(
            f"{self.service}",
            base_url=self.url,
            auth=self.auth(),
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            max_retry_after=max_retry_after,
            verify=tls,  # False is logged by HttpClient
            transport=transport,
        )

    def auth(self) -> Any:
        """The :class:`huntbook.http.Auth` of the target (None: no credentials)."""
        return None

    def post(self, path: str, body: bytes, headers: Mapping[str, str], ok: Iterable[int]) -> Answer:
        """POST ``body`` (gzip-compressed when enabled), retrying as :class:`HttpClient` does."""
        import gzip as gz

        send = dict(headers)
        if self.gzip:
            body = gz.compress(body, compresslevel=1)
            send["Content-Encoding"] = "gzip"
        return self.client.send("POST", path, body, send, ok)

    def close(self) -> None:
        self.client.close()


class _BodyClient(HttpClient):
    """:class:`HttpClient` sending a prepared body (NDJSON, gzip) with the same retries and redaction."""

    def send(
        self, method: str, path: str, body: bytes, headers: Mapping[str, str], ok: Iterable[int]
    ) -> Answer:
        url = self.url(path)
        query: dict[str, Any] = {}
        send_headers = dict(headers)
        if self.auth is not None:
            self.auth.apply(send_headers, query)
        return self._send_with_retries(method, url, query, body, send_headers, frozenset(ok))


def safe_url(url: str) -> str:
    """``url`` for receipts and logs: no ``user:password@``, every known secret scrubbed."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return redact(urlunsplit((parts.scheme, netloc, parts.path, "", "")))


def _positive(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DataError(f"{name}={value!r} must be a whole number above 0")
    return value


# ----------------------------------------------------------------------------------------------
# The public API


def upload(
    data: pd.DataFrame | PathLike | Iterable[PathLike],
    to: str = "local",
    *,
    config: hb_config.Config | None = None,
    **settings: Any,
) -> Receipt:
    """Upload a DataFrame, a file or a folder to ``to`` (``splunk``, ``elastic``, ``local`` or any
    ``huntbook.uploaders`` plugin); see the module docs. ``data`` is never changed."""
    import pandas as pd

    if not isinstance(data, pd.DataFrame):
        listed = [data] if isinstance(data, str | os.PathLike) else list(data)
        for path in listed:
            if not Path(path).expanduser().exists():
                raise DataError("no such file or folder", where=str(path), hint="check the path")
        data = listed
    cls = registry("huntbook.uploaders").load(to)
    config = config if config is not None else hb_config.load()
    configured = config.connection(to).get("upload") or {}
    if not isinstance(configured, Mapping):
        raise HuntbookError(
            f"connections.{to}.upload must be a mapping", where=str(config.source or "config")
        )
    merged = hb_config.resolve_secrets({**configured, **settings})
    uploader: Uploader
    with cls(**merged) as uploader:
        if isinstance(data, pd.DataFrame):
            return uploader.upload_frames([data])
        return uploader.upload_paths(data)


def to(target: str, data: pd.DataFrame | PathLike | Iterable[PathLike], **settings: Any) -> Receipt:
    """``upload(data, to=target, **settings)`` (the form ``hb.upload.to("splunk", frame)``)."""
    return upload(data, to=target, **settings)
