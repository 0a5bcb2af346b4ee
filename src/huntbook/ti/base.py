"""Threat-intelligence providers: one result shape, a small declarative class per provider.

An online provider is a subclass of :class:`HttpProvider` that names its IoC types, how each is asked
(a :class:`Request` template, ``{ioc}`` filled in), how it authenticates, and how an answer becomes a
:class:`Verdict`::

    class Example(HttpProvider):
        name = "example"
        base_url = "https://api.example.com"
        requests = {"ipv4": Request("GET", "/v1/ip/{ioc}"), "dns": Request("GET", "/v1/domain/{ioc}")}
        auth = AuthSpec("header", "X-Key")
        rate_limit = 1.0                       # requests per second
        reference = "https://example.com/{ioc}"

        def parse(self, ioc, ioc_type, data):
            if not data.get("found"):
                return None                    # not_found
            return Verdict(severity="high" if data["malicious"] else "info", summary=data["label"])

Everything else is shared: the HTTP stack (timeouts, retries, Retry-After, rate limit, cache), key
handling (``no_key`` without a request when the key is missing), per-item statuses, and the thread
pool. An offline provider subclasses :class:`Provider` and implements :meth:`Provider.lookup_many`.

Statuses: ``ok`` (the provider knows the IoC), ``not_found`` (it does not), ``error``,
``rate_limited``, ``unsupported`` (the provider has no such IoC type), ``no_key`` (a key is needed and
none is configured). Severities: ``info``, ``low``, ``medium``, ``high``; set for ``ok`` and
``not_found`` (``info``) results, empty otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal
from urllib.parse import quote

from huntbook.config import Secret
from huntbook.errors import ConfigError, ServiceError
from huntbook.http import Auth, HttpClient, ResponseCache, fan_out, redact

__all__ = [
    "RESULT_COLUMNS",
    "SEVERITIES",
    "STATUSES",
    "AuthSpec",
    "HttpProvider",
    "Provider",
    "Request",
    "Result",
    "Verdict",
    "counted",
    "severity_rank",
    "tags_text",
]

STATUSES = ("ok", "not_found", "error", "rate_limited", "unsupported", "no_key")
SEVERITIES = ("info", "low", "medium", "high")
RESULT_COLUMNS = ["provider", "ioc", "ioc_type", "status", "severity", "summary", "reference", "raw"]
_RAW_LIMIT = 64 * 1024


_MAX_TAGS = 5


def counted(number: int, noun: str) -> str:
    """``"1 URL"``, ``"3 URLs"`` (for providers' summaries)."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def tags_text(tags: Iterable[Any] | None, label: str = "tags") -> str:
    """``"; tags: a, b"`` for the first distinct tags (and how many more), or ``""`` (for summaries)."""
    unique = list(dict.fromkeys(str(tag) for tag in tags or () if tag))
    if not unique:
        return ""
    more = f" (+{len(unique) - _MAX_TAGS})" if len(unique) > _MAX_TAGS else ""
    return f"; {label}: {', '.join(unique[:_MAX_TAGS])}{more}"


def severity_rank(severity: str | None) -> int:
    """0 for no severity, 1 for ``info`` ... 4 for ``high`` (for sorting and roll-ups)."""
    return SEVERITIES.index(severity) + 1 if severity in SEVERITIES else 0


@dataclass(frozen=True)
class Verdict:
    """What a provider says of one IoC it knows."""

    severity: str = "info"  # one of SEVERITIES
    summary: str = ""
    reference: str | None = None  # overrides the provider's reference template

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r} is not one of {', '.join(SEVERITIES)}")


@dataclass(frozen=True)
class Result:
    """One provider's answer for one IoC (a row of :func:`huntbook.ti.lookup`)."""

    provider: str
    ioc: str
    ioc_type: str
    status: str
    severity: str = ""
    summary: str = ""
    reference: str = ""
    raw: str = ""

    def as_row(self) -> dict[str, str]:
        """The result as a dict with :data:`RESULT_COLUMNS` keys."""
        return {name: getattr(self, name) for name in RESULT_COLUMNS}


def _raw_text(data: Any) -> str:
    text = (
        data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, default=str, sort_keys=True)
    )
    text = redact(text)
    return text if len(text) <= _RAW_LIMIT else text[:_RAW_LIMIT] + "…"


class Provider:
    """A TI provider: ``name``, the IoC types it serves, and :meth:`lookup_many`.

    ``settings`` come from ``providers.<name>`` in ``huntbook.yaml`` (secrets as references) or from
    the ``settings`` argument of :func:`huntbook.ti.lookup`.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    ioc_types: ClassVar[tuple[str, ...]] = ()
    online: ClassVar[bool] = False

    def __init__(
        self, settings: Mapping[str, Any] | None = None, *, cache: ResponseCache | None = None
    ) -> None:
        self.settings = dict(settings or {})
        self.cache = cache

    def __repr__(self) -> str:
        return f"<TI provider {self.name}: {', '.join(self.ioc_types)}>"

    def supports(self, ioc_type: str) -> bool:
        """True when the provider serves ``ioc_type``."""
        return ioc_type in self.ioc_types

    def result(self, ioc: str, ioc_type: str, status: str, **fields: Any) -> Result:
        """A :class:`Result` of this provider."""
        return Result(self.name, ioc, ioc_type, status, **fields)

    def lookup_many(
        self, items: Sequence[tuple[str, str]], *, progress: bool | None = None, workers: int = 8
    ) -> list[Result]:
        """One :class:`Result` per ``(ioc, ioc_type)`` item, in order; never raises for one item."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections or files."""


@dataclass(frozen=True)
class Request:
    """A request template: ``{ioc}`` in ``path`` (URL-quoted), ``params``, ``json`` and ``data`` values."""

    method: str = "GET"
    path: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    json: Any = None
    data: Mapping[str, Any] | None = None

    def fill(self, ioc: str) -> Request:
        """The request for one IoC."""

        def sub(value: Any) -> Any:
            if isinstance(value, str):
                return value.replace("{ioc}", ioc)
            if isinstance(value, Mapping):
                return {k: sub(v) for k, v in value.items()}
            if isinstance(value, list):
                return [sub(v) for v in value]
            return value

        return Request(
            self.method,
            self.path.replace("{ioc}", quote(ioc, safe="")),
            sub(dict(self.params)),
            sub(self.json),
            sub(dict(self.data)) if self.data is not None else None,
        )


@dataclass(frozen=True)
class AuthSpec:
    """How a provider authenticates: ``kind`` of :class:`huntbook.http.Auth` and the header/param name.

    ``template`` formats the key into the header value (``"Bearer {key}"``, ``"Basic {key}"``).
    For ``basic``, the settings give ``api_key`` (user) and ``api_secret`` (password).
    """

    kind: Literal["header", "query", "basic", "bearer"]
    name: str = ""
    template: str = "{key}"


class HttpProvider(Provider):
    """An online provider, declared by class attributes (see the module docs) and :meth:`parse`.

    Settings: ``api_key`` (and ``api_secret`` for basic auth), ``base_url``, ``timeout``,
    ``retries``, ``rate_limit``, ``cache_ttl``, ``verify`` and ``workers``.
    """

    online: ClassVar[bool] = True
    base_url: ClassVar[str] = ""
    requests: ClassVar[Mapping[str, Request]] = {}
    auth: ClassVar[AuthSpec | None] = None
    key_required: ClassVar[bool] = True
    rate_limit: ClassVar[float | None] = None  # requests per second
    cache_ttl: ClassVar[float] = 24 * 3600.0
    reference: ClassVar[str] = ""
    not_found_statuses: ClassVar[tuple[int, ...]] = (404,)
    headers: ClassVar[Mapping[str, str]] = {"Accept": "application/json"}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.requests and not cls.__dict__.get("ioc_types"):
            cls.ioc_types = tuple(cls.requests)

    def __init__(
        self, settings: Mapping[str, Any] | None = None, *, cache: ResponseCache | None = None
    ) -> None:
        super().__init__(settings, cache=cache)
        self._client: HttpClient | None = None

    # -- what subclasses declare or override ------------------------------------------------------
    def parse(self, ioc: str, ioc_type: str, data: Any) -> Verdict | None:
        """The verdict for a parsed answer, or None when the provider does not know the IoC."""
        raise NotImplementedError

    def build_request(self, ioc: str, ioc_type: str) -> Request:
        """The request for one IoC (default: the ``requests`` template of its type)."""
        return self.requests[ioc_type].fill(ioc)

    def decode(self, body: bytes) -> Any:
        """The answer body as data (default: JSON); raise ``ValueError`` when malformed."""
        return json.loads(body)

    # -- shared machinery --------------------------------------------------------------------------
    @property
    def has_key(self) -> bool:
        """True when an API key is configured (or none is needed)."""
        return not (self.key_required and self.auth is not None) or bool(self.settings.get("api_key"))

    def _auth(self) -> Auth | None:
        spec = self.auth
        key = self.settings.get("api_key")
        if spec is None or not key:
            return None
        if spec.kind == "basic":
            return Auth.basic(key, self.settings.get("api_secret", ""))
        if spec.kind == "bearer":
            return Auth.bearer(key)
        value: str | Secret = key
        if spec.template != "{key}":
            revealed = key.reveal() if isinstance(key, Secret) else str(key)
            value = spec.template.format(key=revealed)
        return Auth(spec.kind, spec.name, value)

    @property
    def client(self) -> HttpClient:
        """The provider's :class:`~huntbook.http.HttpClient` (made on first use)."""
        if self._client is None:
            base = str(self.settings.get("base_url") or self.base_url)
            if not base:
                raise ConfigError(
                    f"the {self.name} provider needs a base_url",
                    where=f"providers.{self.name}",
                    hint=f"set providers.{self.name}.base_url in huntbook.yaml",
                )
            timeout = self.settings.get("timeout", (5.0, 30.0))
            self._client = HttpClient(
                self.name,
                base_url=base,
                auth=self._auth(),
                headers=self.headers,
                timeout=tuple(timeout) if isinstance(timeout, list) else timeout,
                deadline=float(self.settings.get("deadline", 60.0)),
                retries=int(self.settings.get("retries", 3)),
                backoff=float(self.settings.get("backoff", 0.5)),
                max_retry_after=float(self.settings.get("max_retry_after", 60.0)),
                rate_limit=self.settings.get("rate_limit", self.rate_limit),
                burst=float(self.settings.get("burst", 1.0)),
                cache=self.cache,
                cache_ttl=float(self.settings.get("cache_ttl", self.cache_ttl)),
                verify=bool(self.settings.get("verify", True)),
                transport=self.settings.get("transport"),
            )
        return self._client

    def reference_for(self, ioc: str, ioc_type: str) -> str:
        """A link for a person to read more: the ``reference`` template with ``{ioc}``, ``{ioc_type}``
        and ``{base_url}`` (the configured one) filled in."""
        if not self.reference:
            return ""
        base = str(self.settings.get("base_url") or self.base_url).rstrip("/")
        return self.reference.format(ioc=quote(ioc, safe=""), ioc_type=ioc_type, base_url=base)

    def lookup(self, ioc: str, ioc_type: str) -> Result:
        """Look one IoC up; every failure becomes a status, never an exception."""
        if not self.supports(ioc_type):
            return self.result(ioc, ioc_type, "unsupported", summary=f"{self.name} has no {ioc_type} look-up")
        if not self.has_key:
            return self.result(
                ioc,
                ioc_type,
                "no_key",
                summary=f"no API key: set providers.{self.name}.api_key in huntbook.yaml",
            )
        try:
            request = self.build_request(ioc, ioc_type)
            answer = self.client.request(
                request.method,
                request.path,
                params=request.params,
                json_body=request.json,
                data=request.data,
                defer_cache=True,
            )
            if answer.status in self.not_found_statuses:
                self.client.remember(answer)
                return self.result(
                    ioc, ioc_type, "not_found", severity="info", summary="not known to the provider"
                )
            try:
                data = self.decode(answer.body)
            except (ValueError, UnicodeDecodeError) as exc:
                return self.result(
                    ioc,
                    ioc_type,
                    "error",
                    summary=f"malformed answer ({exc.__class__.__name__})",
                    raw=_raw_text(answer.text[:2000]),
                )
            verdict = self.parse(ioc, ioc_type, data)
            self.client.remember(answer)  # only answers that parsed are cached
        except ServiceError as exc:
            status = "rate_limited" if exc.kind == "rate_limited" else "error"
            return self.result(ioc, ioc_type, status, summary=redact(str(exc)))
        except ConfigError as exc:  # a key reference that does not resolve (env var unset, no keyring entry)
            return self.result(ioc, ioc_type, "no_key", summary=redact(str(exc)))
        except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:
            return self.result(
                ioc, ioc_type, "error", summary=f"unexpected answer shape ({exc.__class__.__name__})"
            )
        if verdict is None:
            return self.result(
                ioc,
                ioc_type,
                "not_found",
                severity="info",
                summary="not known to the provider",
                raw=_raw_text(data),
            )
        return self.result(
            ioc,
            ioc_type,
            "ok",
            severity=verdict.severity,
            summary=redact(verdict.summary),
            reference=verdict.reference or self.reference_for(ioc, ioc_type),
            raw=_raw_text(data),
        )

    def lookup_many(
        self, items: Sequence[tuple[str, str]], *, progress: bool | None = None, workers: int = 8
    ) -> list[Result]:
        """Every item looked up on a thread pool (``settings['workers']`` overrides ``workers``)."""
        workers = int(self.settings.get("workers", workers))
        return fan_out(
            lambda item: self.lookup(*item),
            list(items),
            workers=workers,
            progress=progress,
            description=self.name,
        )

    def close(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            self._client.close()
            self._client = None
