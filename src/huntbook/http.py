"""The one HTTP stack of huntbook's online services (TI providers, RDAP, SIEM APIs).

:class:`HttpClient` wraps an ``httpx.Client`` with what every online look-up needs::

    client = HttpClient("virustotal", base_url="https://www.virustotal.com",
                        auth=Auth.header("x-apikey", secret), rate_limit=4 / 60)
    answer = client.get("/api/v3/ip_addresses/203.0.113.9")      # an Answer, or a ServiceError

- connect and read timeouts, plus a deadline for the whole exchange (a slow-drip body is cut off);
- retries with exponential backoff and jitter on connection errors, timeouts, 429 and 5xx, honouring
  ``Retry-After`` (seconds or an HTTP date) up to ``max_retry_after``;
- a per-client rate limit (a token bucket shared by all threads of the client);
- an optional on-disk cache (:class:`ResponseCache`, SQLite) of successful and not-found answers with
  a TTL; the cache key never includes credentials;
- credentials (:class:`Auth`) are added to the request only when it is sent, and every secret value
  the client has seen is scrubbed from its error messages and from the ``httpx``/``httpcore`` log
  records (which would otherwise log a URL carrying a key);
- :func:`fan_out` runs a function over many items on a thread pool with a progress bar. It works the
  same inside a running Jupyter event loop (no asyncio, so no ``nest_asyncio``).

``httpx`` is imported when the first client is made, not when this module is imported.
"""

from __future__ import annotations

import dataclasses
import email.utils
import hashlib
import json
import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from huntbook._progress import progress_bar
from huntbook._types import PathLike
from huntbook.config import Config, Secret
from huntbook.errors import ServiceError

if TYPE_CHECKING:
    pass

__all__ = [
    "RETRY_STATUSES",
    "Answer",
    "Auth",
    "HttpClient",
    "ResponseCache",
    "default_cache_dir",
    "fan_out",
    "open_cache",
    "redact",
    "remember_secret",
]

log = logging.getLogger("huntbook.http")

#: HTTP statuses that are retried (with backoff, honouring Retry-After).
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_CACHEABLE = frozenset({200, 404})
_MAX_BODY = 32 * 1024 * 1024

T = TypeVar("T")
R = TypeVar("R")

# ---------------------------------------------------------------------------------------------------
# Secrets: one process-wide set of values to scrub from anything the stack writes

_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()


def remember_secret(value: str) -> None:
    """Register a secret value: :func:`redact` and the log filter replace it with ``***``."""
    if len(value) >= 4:
        with _SECRETS_LOCK:
            _SECRETS.add(value)
        _install_log_filter()


def redact(text: str) -> str:
    """``text`` with every secret value the HTTP stack has used replaced by ``***``."""
    if not _SECRETS:
        return text
    with _SECRETS_LOCK:
        values = sorted(_SECRETS, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, "***")
    return text


def _redact_bytes(data: bytes) -> bytes:
    if not _SECRETS:
        return data
    with _SECRETS_LOCK:
        values = sorted(_SECRETS, key=len, reverse=True)
    for value in values:
        needle = value.encode("utf-8", "surrogatepass")
        if needle in data:
            data = data.replace(needle, b"***")
    return data


class _RedactingFilter(logging.Filter):
    """Scrubs secret values from log records of httpx, httpcore and huntbook."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record that cannot format is left to logging's own handling
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_FILTER = _RedactingFilter()
_FILTERED: set[str] = set()


def _install_log_filter() -> None:
    for name in ("httpx", "httpcore", "huntbook"):
        if name not in _FILTERED:
            logging.getLogger(name).addFilter(_FILTER)
            _FILTERED.add(name)
    # records of child loggers (httpcore.http11, huntbook.ti ...) pass their own logger's filters
    # only, so handlers get the filter too where they are attached to those loggers' ancestors
    for handler in logging.getLogger().handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)


def _reveal(value: str | Secret) -> str:
    text = value.reveal() if isinstance(value, Secret) else str(value)
    remember_secret(text)
    return text


# ---------------------------------------------------------------------------------------------------
# Authentication, added at send time only


@dataclass(frozen=True)
class Auth:
    """How a service takes its credentials: a header, a query parameter, HTTP basic or a bearer token.

    Values may be :class:`~huntbook.config.Secret` references; they are revealed when a request is
    sent, never stored in the cache key, and scrubbed from errors and logs.
    """

    kind: Literal["header", "query", "basic", "bearer"]
    name: str = ""
    value: str | Secret = ""
    password: str | Secret = ""

    @classmethod
    def header(cls, name: str, value: str | Secret) -> Auth:
        """The key in a request header (``x-apikey: KEY``)."""
        return cls("header", name, value)

    @classmethod
    def query(cls, name: str, value: str | Secret) -> Auth:
        """The key as a query parameter (``?key=KEY``)."""
        return cls("query", name, value)

    @classmethod
    def basic(cls, user: str | Secret, password: str | Secret) -> Auth:
        """HTTP basic authentication."""
        return cls("basic", "", user, password)

    @classmethod
    def bearer(cls, token: str | Secret) -> Auth:
        """``Authorization: Bearer TOKEN``."""
        return cls("bearer", "", token)

    def __repr__(self) -> str:
        return f"Auth({self.kind!r}, {self.name!r}, ***)"

    def apply(self, headers: dict[str, str], params: dict[str, Any]) -> None:
        """Add the credentials to a request's headers or parameters."""
        if self.kind == "header":
            headers[self.name] = _reveal(self.value)
        elif self.kind == "query":
            params[self.name] = _reveal(self.value)
        elif self.kind == "bearer":
            headers["Authorization"] = f"Bearer {_reveal(self.value)}"
        else:
            import base64

            pair = f"{_reveal(self.value)}:{_reveal(self.password)}".encode()
            token = base64.b64encode(pair).decode("ascii")
            remember_secret(token)
            headers["Authorization"] = f"Basic {token}"


# ---------------------------------------------------------------------------------------------------
# Answers and the cache


@dataclass(frozen=True)
class Answer:
    """A finished HTTP exchange: status, selected headers, body; ``cached`` when read from the cache."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    url: str = ""
    cached: bool = False
    attempts: int = 1
    cache_key: str | None = None  # set by ``request(defer_cache=True)``: store it with ``remember``

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (bad bytes replaced)."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON; :class:`ServiceError` (kind ``malformed``) if it is not JSON."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ServiceError(
                f"the answer is not valid JSON ({exc.__class__.__name__}: {str(exc)[:80]})",
                kind="malformed",
                status=self.status,
                where=redact(self.url),
            ) from None


def default_cache_dir() -> Path:
    """The user cache folder, e.g. ``~/.cache/huntbook`` on Linux."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("huntbook"))


def open_cache(
    cache: bool | PathLike | ResponseCache | None, config: Config | None = None
) -> ResponseCache | None:
    """The cache a look-up asked for: False for none; a folder; a cache; True/None for the config's
    ``cache_dir`` (default: the user cache folder)."""
    if cache is False:
        return None
    if isinstance(cache, ResponseCache):
        return cache
    if isinstance(cache, str | os.PathLike):
        return ResponseCache(cache)
    return ResponseCache(config.cache_dir if config is not None else None)


class ResponseCache:
    """On-disk answers (SQLite, one file), keyed by a digest of service, method, URL and body.

    Only 200 and 404 answers are stored, each with its time; a read older than the TTL is a miss.
    Credentials are never part of a key, and a body that echoes one is stored with it scrubbed.
    """

    def __init__(self, path: PathLike | None = None, *, ttl: float = 24 * 3600.0) -> None:
        folder = Path(path).expanduser() if path is not None else default_cache_dir()
        self.path = folder / "http-cache.sqlite" if folder.suffix != ".sqlite" else folder
        self.ttl = float(ttl)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            db.execute(
                "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, service TEXT, stored REAL,"
                " status INTEGER, body BLOB)"
            )
            db.commit()
            self._db = db
        return self._db

    @staticmethod
    def key(service: str, method: str, url: str, params: Mapping[str, Any], body: bytes | None) -> str:
        """The digest that names an exchange (no credentials go in)."""
        digest = hashlib.sha256()
        for part in (service, method.upper(), url, json.dumps(sorted(params.items()), default=str)):
            digest.update(part.encode("utf-8", "surrogatepass") + b"\0")
        digest.update(body or b"")
        return digest.hexdigest()

    def get(self, key: str, ttl: float | None = None) -> Answer | None:
        """The stored answer, or None when missing or older than ``ttl`` (default: the cache's)."""
        with self._lock:
            row = (
                self._conn()
                .execute("SELECT stored, status, body FROM answers WHERE key = ?", (key,))
                .fetchone()
            )
        if row is None or time.time() - row[0] > (self.ttl if ttl is None else ttl):
            return None
        return Answer(status=int(row[1]), body=bytes(row[2]), cached=True)

    def put(self, key: str, service: str, answer: Answer) -> None:
        """Store an answer (200 and 404 only)."""
        if answer.status not in _CACHEABLE:
            return
        with self._lock:
            db = self._conn()
            db.execute(
                "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?)",
                (key, service, time.time(), answer.status, _redact_bytes(answer.body)),
            )
            db.commit()

    def clear(self, service: str | None = None) -> int:
        """Delete stored answers (of one service, or all); returns how many."""
        with self._lock:
            db = self._conn()
            if service is None:
                count = db.execute("DELETE FROM answers").rowcount
            else:
                count = db.execute("DELETE FROM answers WHERE service = ?", (service,)).rowcount
            db.commit()
        return int(count)

    def close(self) -> None:
        """Close the database file."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


# ---------------------------------------------------------------------------------------------------
# Rate limiting


class _TokenBucket:
    """``rate`` requests per second on average, bursts of up to ``burst``; thread-safe."""

    def __init__(self, rate: float, burst: float = 1.0) -> None:
        self.rate = float(rate)
        self.capacity = max(1.0, float(burst))
        self.tokens = self.capacity
        self.stamp = time.monotonic()
        self.lock = threading.Lock()

    def acquire(self) -> None:
        while True:
            with self.lock:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
                self.stamp = now
                if self.tokens >= 1.0:
                    self.tokens -= 1.0
                    return
                wait = (1.0 - self.tokens) / self.rate
            time.sleep(wait)


# ---------------------------------------------------------------------------------------------------
# The client


def _retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class HttpClient:
    """An ``httpx.Client`` for one service with timeouts, retries, a rate limit and a cache.

    Args:
        service: the service's name (used in errors, logs and cache keys).
        base_url: prefix of every relative path.
        auth: credentials, added when a request is sent.
        headers: extra headers for every request.
        timeout: ``(connect, read)`` seconds, or one number for both.
        deadline: seconds for a whole exchange, body included (slow bodies are cut off).
        retries: retries after the first attempt on connection errors, timeouts, 429 and 5xx.
        backoff: first backoff in seconds (doubled per retry, with jitter, capped at ``max_backoff``).
        max_retry_after: the longest ``Retry-After`` honoured; a longer one gives up at once
            (kind ``rate_limited``).
        rate_limit: requests per second (None: unlimited); ``burst`` requests may go at once.
        cache: a :class:`ResponseCache` (None: no caching); ``cache_ttl`` overrides its TTL.
        verify: TLS certificate verification (on by default; turning it off is logged).
        follow_redirects: follow 3xx answers (RDAP's bootstrap redirects need it).
        transport: an ``httpx`` transport (tests).
    """

    def __init__(
        self,
        service: str,
        *,
        base_url: str = "",
        auth: Auth | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | tuple[float, float] = (5.0, 30.0),
        deadline: float = 120.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_retry_after: float = 60.0,
        rate_limit: float | None = None,
        burst: float = 1.0,
        cache: ResponseCache | None = None,
        cache_ttl: float | None = None,
        verify: bool = True,
        follow_redirects: bool = False,
        transport: Any = None,
    ) -> None:
        import httpx

        self.service = service
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.retries = max(0, int(retries))
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.max_retry_after = float(max_retry_after)
        self.deadline = float(deadline)
        self.cache = cache
        self.cache_ttl = cache_ttl
        self._bucket = _TokenBucket(rate_limit, burst) if rate_limit else None
        connect, read = (timeout, timeout) if isinstance(timeout, int | float) else timeout
        if not verify:
            log.warning("%s: TLS certificate verification is turned OFF (verify=False)", service)
        self._client = httpx.Client(
            headers={"User-Agent": "huntbook", **dict(headers or {})},
            timeout=httpx.Timeout(connect=connect, read=read, write=read, pool=connect),
            verify=verify,
            follow_redirects=follow_redirects,
            transport=transport,
        )

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<HttpClient {self.service} {self.base_url}>"

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def get(self, path: str, *, params: Mapping[str, Any] | None = None, **options: Any) -> Answer:
        """``request("GET", path, params=params)``."""
        return self.request("GET", path, params=params, **options)

    def post(self, path: str, **options: Any) -> Answer:
        """``request("POST", path, ...)``."""
        return self.request("POST", path, **options)

    def url(self, path: str) -> str:
        """``path`` joined to the base URL (absolute URLs are kept)."""
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}" if path else self.base_url

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        use_cache: bool = True,
        defer_cache: bool = False,
        ok_statuses: Iterable[int] = (200,),
    ) -> Answer:
        """Send a request and return its :class:`Answer`.

        Statuses in ``ok_statuses`` and 404 are answers; anything else raises :class:`ServiceError`
        with ``kind`` ``auth`` (401/403), ``rate_limited`` (429 after the retries), ``http`` (other
        statuses), ``timeout``, ``connection`` or ``too_large``, and the status when there was one.
        With ``defer_cache``, a fresh answer is not stored: the caller checks it (a 200 can still be an
        error in the body) and stores it with :meth:`remember`.
        """
        url = self.url(path)
        query = dict(params or {})
        body: bytes | None = None
        send_headers = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body, separators=(",", ":"), default=str).encode("utf-8")
            send_headers.setdefault("Content-Type", "application/json")
        elif data is not None:
            from urllib.parse import urlencode

            body = urlencode(dict(data), doseq=True).encode("ascii")
            send_headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        key = ResponseCache.key(self.service, method, url, query, body) if self.cache and use_cache else None
        if key is not None and self.cache is not None:
            hit = self.cache.get(key, self.cache_ttl)
            if hit is not None:
                return hit
        if self.auth is not None:
            self.auth.apply(send_headers, query)
        answer = self._send_with_retries(method, url, query, body, send_headers, frozenset(ok_statuses))
        if key is not None and defer_cache:
            return dataclasses.replace(answer, cache_key=key)
        if key is not None and self.cache is not None:
            self.cache.put(key, self.service, answer)
        return answer

    def remember(self, answer: Answer) -> None:
        """Store an answer got with ``defer_cache=True`` (once the caller found it sound)."""
        if self.cache is not None and answer.cache_key is not None and not answer.cached:
            self.cache.put(answer.cache_key, self.service, answer)

    # -- internals -------------------------------------------------------------------------------------
    def _send_with_retries(
        self,
        method: str,
        url: str,
        params: dict[str, Any],
        body: bytes | None,
        headers: dict[str, str],
        ok: frozenset[int],
    ) -> Answer:
        where = redact(f"{self.service} {method} {url}")
        attempt = 0
        while True:
            attempt += 1
            if self._bucket is not None:
                self._bucket.acquire()
            try:
                answer = self._send_once(method, url, params, body, headers, attempt)
            except ServiceError as exc:
                if exc.kind in ("timeout", "connection") and attempt <= self.retries:
                    self._sleep(self._backoff(attempt), where, exc.kind)
                    continue
                raise
            if answer.status in ok or answer.status == 404:
                return answer
            if answer.status in RETRY_STATUSES and attempt <= self.retries:
                wait = _retry_after(answer.headers.get("retry-after"))
                if wait is not None and wait > self.max_retry_after:
                    raise self._status_error(answer, where, f"Retry-After {wait:.0f} s exceeds the limit")
                self._sleep(self._backoff(attempt) if wait is None else wait, where, f"HTTP {answer.status}")
                continue
            raise self._status_error(answer, where)

    def _send_once(
        self,
        method: str,
        url: str,
        params: dict[str, Any],
        body: bytes | None,
        headers: dict[str, str],
        attempt: int,
    ) -> Answer:
        import httpx

        started = time.monotonic()
        try:
            with self._client.stream(method, url, params=params, content=body, headers=headers) as response:
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > _MAX_BODY:
                        raise ServiceError(
                            f"the answer is larger than {_MAX_BODY // 2**20} MB",
                            kind="too_large",
                            status=response.status_code,
                            where=redact(f"{self.service} {url}"),
                        )
                    if time.monotonic() - started > self.deadline:
                        raise httpx.ReadTimeout("deadline exceeded while reading the body")
                wanted = ("retry-after", "content-type", "location")
                kept = {k: response.headers[k] for k in wanted if k in response.headers}
                return Answer(
                    response.status_code, b"".join(chunks), kept, redact(str(response.url)), False, attempt
                )
        except httpx.TimeoutException as exc:
            raise ServiceError(
                f"timed out ({exc.__class__.__name__})",
                kind="timeout",
                where=redact(f"{self.service} {url}"),
                hint="the service is slow or unreachable; raise 'timeout' in the provider settings",
            ) from None
        except httpx.TransportError as exc:
            raise ServiceError(
                f"connection failed ({exc.__class__.__name__}: {redact(str(exc))[:120]})",
                kind="connection",
                where=redact(f"{self.service} {url}"),
                hint="check the address and that the service is reachable",
            ) from None

    def _status_error(self, answer: Answer, where: str, detail: str = "") -> ServiceError:
        status = answer.status
        snippet = redact(answer.text[:160]).replace("\n", " ")
        if status in (401, 403):
            return ServiceError(
                f"authentication failed (HTTP {status})",
                kind="auth",
                status=status,
                where=where,
                hint="check the API key in huntbook.yaml (providers section) or its env:/keyring: reference",
            )
        kind = "rate_limited" if status == 429 else "http"
        text = f"HTTP {status}" + (f": {detail}" if detail else "") + (f" ({snippet})" if snippet else "")
        return ServiceError(text, kind=kind, status=status, where=where)

    def _backoff(self, attempt: int) -> float:
        base = min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1))
        return base * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not cryptography

    def _sleep(self, seconds: float, where: str, why: str) -> None:
        log.debug("%s: %s, retrying in %.2f s", where, why, seconds)
        time.sleep(seconds)


# ---------------------------------------------------------------------------------------------------
# Fan-out


def fan_out(
    func: Callable[[T], R],
    items: Sequence[T],
    *,
    workers: int = 8,
    progress: bool | None = None,
    description: str = "looking up",
) -> list[R]:
    """``[func(item) for item in items]`` on a thread pool, in order, with a progress bar.

    ``func`` should not raise (return a per-item status instead); an exception still propagates.
    Threads, not asyncio, so this works the same in scripts and inside Jupyter's running loop.
    """
    if not items:
        return []
    if workers <= 1 or len(items) == 1:
        with progress_bar(progress if len(items) > 1 else False, total=len(items), desc=description) as bar:
            out = []
            for item in items:
                out.append(func(item))
                bar.update(1)
            return out
    results: list[Any] = [None] * len(items)
    with (
        ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="huntbook-http") as pool,
        progress_bar(progress, total=len(items), desc=description) as bar,
    ):
        futures = {pool.submit(func, item): index for index, item in enumerate(items)}
        from concurrent.futures import as_completed

        for future in as_completed(futures):
            results[futures[future]] = future.result()
            bar.update(1)
    return results
