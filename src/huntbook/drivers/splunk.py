"""The ``splunk`` driver: SPL over Splunk's REST API, through the splunk-sdk (``splunklib``).

Settings (``connections.splunk`` in ``huntbook.yaml``, or ``QueryProvider("splunk", **settings)``):

- ``url`` (``https://splunk.example:8089``), or ``host``/``port``/``scheme``;
- credentials, one of: ``token`` (an authentication token, sent as ``Authorization: Bearer``),
  ``session_key`` (a session key, ``Authorization: Splunk``), or ``username`` + ``password``
  (logged in through ``/services/auth/login``);
- ``verify`` (default True) and ``ca_file`` (the CA bundle of a private Splunk certificate).
  ``verify=False`` works but is logged as a warning every time the driver connects;
- ``app``/``owner``: the namespace (default: ``/services``);
- ``mode``: ``jobs`` (default: a search job, polled until done, then every result read in pages of
  ``page_size`` rows with ``count``/``offset``) or ``export`` (``search/jobs/export``, streamed);
- ``page_size`` (10,000; at most Splunk's ``maxresultrows``, 50,000 by default), ``poll_interval``
  (seconds between job status requests), ``request_timeout`` (seconds per HTTP request).

Results come back whole: the driver pages until it has read the job's ``resultCount`` rows (the REST
API returns 100 rows unless told otherwise). A query that passes its timeout is cancelled on the
server (``control action=cancel``). Splunk returns every value as text: ``_time``, and a column whose
values are all ISO-8601 times with a zone (``strftime(t, "%Y-%m-%dT%H:%M:%S.%3NZ")``), become UTC
datetimes; a column whose values are all plain numbers (``4688``, ``3.5``; not ``0012``) becomes
numeric. Multi-value fields are lists.

SPL literals (:func:`spl_literal`) are ``"..."`` strings with ``\\"`` and ``\\\\`` escapes. Splunk
cannot escape ``*`` in the ``search`` command (it is always a wildcard there), so catalogue queries
compare user values in ``| where`` expressions, where a string literal is matched as written.

Saved searches are listed as catalogue queries of the ``saved`` family once the driver is connected
(:meth:`SplunkDriver.catalogue_queries`).
"""

from __future__ import annotations

import html
import io
import json
import logging
import math
import re
import ssl
import time
import warnings
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from huntbook.drivers.base import Driver, check_settings
from huntbook.errors import (
    DriverError,
    HuntbookError,
    MissingExtraError,
    ParameterError,
    QueryError,
    QueryTimeoutError,
)
from huntbook.http import redact
from huntbook.queries import Param, QuerySpec

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SplunkDriver", "SplunkWarning", "spl_literal"]

log = logging.getLogger("huntbook.drivers.splunk")

_SETTINGS: Final = frozenset(
    {
        "url",
        "host",
        "port",
        "scheme",
        "token",
        "session_key",
        "username",
        "password",
        "verify",
        "ca_file",
        "app",
        "owner",
        "mode",
        "page_size",
        "poll_interval",
        "request_timeout",
        "upload",  # uploader settings (huntbook.upload) may live beside the driver's
    }
)
_SECRET_SETTINGS: Final = ("token", "session_key", "password")
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?")
_ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)")
_ERROR_TYPES: Final = frozenset({"FATAL", "ERROR"})


class SplunkWarning(UserWarning):
    """Splunk returned a warning message with the results (the query still ran)."""


# ----------------------------------------------------------------------------------------------
# Literals


def _spl_time(value: datetime) -> str:
    """Epoch seconds, the form ``earliest=``/``latest=`` and ``_time`` comparisons take."""
    seconds = value.timestamp()
    return str(int(seconds)) if seconds.is_integer() else f"{seconds:.6f}".rstrip("0")


def _spl_span(value: timedelta) -> str:
    seconds = value.total_seconds()
    return str(int(seconds)) if seconds.is_integer() else repr(seconds)


def _spl_plain(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return _spl_time(value)
    if isinstance(value, timedelta):
        return _spl_span(value)
    if isinstance(value, list):
        return ",".join(_spl_plain(item) for item in value)
    return str(value)


def _spl_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def spl_literal(value: Any, param_type: str, quoted: str | None = None) -> str:
    """Splunk SPL. Strings are ``"..."`` with ``\\\\`` and ``\\"`` escapes; datetimes are epoch seconds
    (``earliest={start}``, ``_time >= {start}``), timespans seconds, lists ``"a", "b"`` (for
    ``in(field, ...)`` or ``field IN (...)``), ``None`` an empty string."""
    if quoted is not None:
        if quoted != '"':
            raise QueryError(
                f"cannot place a value inside a {quoted} literal in SPL", hint='use "..." around it'
            )
        return _spl_escape(_spl_plain(value))
    if param_type == "list":
        return ", ".join(spl_literal(item, "str") for item in value)
    if param_type == "identifier":
        return str(value)
    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ParameterError(f"{value!r} cannot be written in SPL")
        return repr(value)
    if isinstance(value, datetime):
        return _spl_time(value)
    if isinstance(value, timedelta):
        return _spl_span(value)
    return f'"{_spl_escape(str(value))}"'


# ----------------------------------------------------------------------------------------------
# The driver


class SplunkDriver(Driver):
    """Run SPL on Splunk through the REST API (search jobs with paging, or export)."""

    name = "splunk"
    languages = ("spl",)

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self._service: Any = None

    # -------------------------------------------------------------- connection
    def connect(self, **settings: Any) -> None:
        """Open a session: log in (username/password) or use the token, then read the server info."""
        try:
            import splunklib.binding as binding
            import splunklib.client as client
        except ImportError as exc:
            raise MissingExtraError("the splunk driver", "splunk", missing=exc.name) from exc
        merged = {**self.settings, **settings}
        check_settings("splunk driver", merged, _SETTINGS, _SECRET_SETTINGS)
        options = self._options(merged)
        verify, context = _tls(merged)
        handler = binding.handler(
            verify=verify, context=context, timeout=float(merged.get("request_timeout", 30.0))
        )
        self.close()
        self.settings = merged
        service = client.Service(handler=handler, **options)
        where = f"splunk {options['scheme']}://{options['host']}:{options['port']}"
        try:
            service.login()
            version = service.info["version"]  # proves the credentials: the first authenticated call
        except Exception as exc:
            raise self._error(exc, where) from None
        log.debug("%s: connected to Splunk %s", where, version)
        self._service = service
        self.connected = True

    @staticmethod
    def _options(settings: dict[str, Any]) -> dict[str, Any]:
        """Keyword arguments for ``splunklib.client.Service``."""
        options: dict[str, Any] = {}
        if settings.get("url"):
            parts = urlsplit(str(settings["url"]))
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise DriverError(
                    f"url={settings['url']!r} is not an http(s) URL", hint="e.g. url: https://splunk:8089"
                )
            options.update(scheme=parts.scheme, host=parts.hostname, port=parts.port or 8089)
        else:
            options.update(
                scheme=str(settings.get("scheme", "https")),
                host=str(settings.get("host", "localhost")),
                port=int(settings.get("port", 8089)),
            )
        if settings.get("token"):
            options["splunkToken"] = str(settings["token"])
        elif settings.get("session_key"):
            options["token"] = str(settings["session_key"])
        elif settings.get("username") and settings.get("password"):
            options.update(username=str(settings["username"]), password=str(settings["password"]))
        else:
            raise DriverError(
                "the splunk driver has no credentials",
                hint="set token (an authentication token), session_key, or username and password "
                "in connections.splunk (secrets as env:/keyring:/file: references)",
            )
        for key in ("app", "owner"):
            if settings.get(key):
                options[key] = str(settings[key])
        mode = settings.get("mode", "jobs")
        if mode not in ("jobs", "export"):
            raise DriverError(f"mode={mode!r} is not 'jobs' or 'export'")
        page = settings.get("page_size", 10_000)
        if not isinstance(page, int) or isinstance(page, bool) or not 0 < page <= 50_000:
            raise DriverError(f"page_size={page!r} must be a whole number from 1 to 50000")
        return options

    @property
    def service(self) -> Any:
        """The connected ``splunklib.client.Service`` (connecting on first use)."""
        if self._service is None:
            self.connect()
        return self._service

    def close(self) -> None:
        """Forget the session (Splunk session keys expire on their own)."""
        if self._service is not None:
            try:
                self._service.logout()
            except Exception:  # logout is local in splunklib; never fail a close
                log.debug("splunk logout failed", exc_info=True)
        self._service = None
        self.connected = False

    # -------------------------------------------------------------- literals
    def literal(
        self, value: Any, param_type: str, quoted: str | None = None, language: str | None = None
    ) -> str:
        """SPL literals (see :func:`spl_literal`)."""
        if (language or "spl") != "spl":
            return super().literal(value, param_type, quoted, language)
        return spl_literal(value, param_type, quoted)

    # -------------------------------------------------------------- running
    def execute(
        self, text: str, language: str | None = None, timeout: float | None = None, *, name: str | None = None
    ) -> pd.DataFrame:
        """Run SPL ``text`` and return every result row; cancel the job after ``timeout`` seconds."""
        language = (language or "spl").lower()
        where = name or "ad hoc spl query"
        if language != "spl":
            raise QueryError(f"the splunk driver runs spl, not {language!r}", where=where)
        query = _search_text(text)
        deadline = time.monotonic() + timeout if timeout else None
        service = self.service
        try:
            if self.settings.get("mode", "jobs") == "export":
                rows, messages = self._export(service, query, deadline, timeout, where)
            else:
                rows, messages = self._job(service, query, deadline, timeout, where)
        except HuntbookError:
            raise
        except Exception as exc:
            raise self._error(exc, where, deadline=deadline, timeout=timeout) from exc
        _raise_or_warn(messages, where)
        return _frame(rows)

    def _job(
        self, service: Any, query: str, deadline: float | None, timeout: float | None, where: str
    ) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
        """Create a search job, poll it to completion, then read every result page."""
        job = service.jobs.create(query, exec_mode="normal", output_mode="json")
        finished = False
        try:
            content = self._wait(job, deadline, timeout, where)
            total = int(content.get("resultCount") or 0)
            page = int(self.settings.get("page_size", 10_000))
            rows: list[dict[str, Any]] = []
            messages: list[tuple[str, str]] = []
            while len(rows) < total:
                _check_deadline(deadline, timeout, where)
                part, notes = _read_results(job.results(output_mode="json", count=page, offset=len(rows)))
                messages += notes
                if not part:
                    raise DriverError(
                        f"Splunk returned {len(rows)} of the job's {total} results, then none",
                        where=where,
                        hint="the job may have expired (its TTL); run the query again",
                    )
                rows += part
            finished = True
            return rows[:total], messages
        finally:
            if not finished:
                _cancel(job)

    def _wait(self, job: Any, deadline: float | None, timeout: float | None, where: str) -> dict[str, Any]:
        """Poll the job until it is done; its status content. Raises for failed jobs and timeouts."""
        interval = float(self.settings.get("poll_interval", 0.25))
        while True:
            ready = job.is_ready()  # GET search/jobs/{sid}; False while QUEUED/PARSING (or 204)
            content = dict(job.content) if ready else {}
            if content.get("isFailed") == "1" or content.get("dispatchState") == "FAILED":
                texts = _job_messages(content.get("messages"))
                raise QueryError(
                    "Splunk search job failed: " + ("; ".join(texts) or "no message"),
                    where=where,
                    hint="check the SPL with print_query=True",
                )
            if content.get("isDone") == "1":
                return content
            _check_deadline(deadline, timeout, where)
            pause = interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic()))
            time.sleep(pause)

    def _export(
        self, service: Any, query: str, deadline: float | None, timeout: float | None, where: str
    ) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
        """Stream ``search/jobs/export`` output: final (not preview) result lines."""
        stream = service.jobs.export(query, output_mode="json")
        rows: list[dict[str, Any]] = []
        messages: list[tuple[str, str]] = []
        try:
            for line in io.BufferedReader(stream):
                _check_deadline(deadline, timeout, where)
                if not line.strip():
                    continue
                item = json.loads(line)
                messages += _messages(item.get("messages"))
                if "result" in item and not item.get("preview", False):
                    rows.append(item["result"])
        finally:
            stream.close()
        return rows, messages

    # -------------------------------------------------------------- saved searches
    def saved_searches(self) -> list[dict[str, str]]:
        """Saved searches visible to the user: ``name``, ``search``, ``description``, ``app``,
        ``earliest``, ``latest`` (the dispatch time range)."""
        found = []
        try:
            for saved in self.service.saved_searches.list():
                content = saved.content
                if str(content.get("disabled", "0")) in ("1", "true"):
                    continue
                found.append(
                    {
                        "name": saved.name,
                        "search": str(content.get("search") or ""),
                        "description": str(content.get("description") or ""),
                        "app": str(getattr(saved.access, "app", "") or ""),
                        "earliest": str(content.get("dispatch.earliest_time") or ""),
                        "latest": str(content.get("dispatch.latest_time") or ""),
                    }
                )
        except HuntbookError:
            raise
        except Exception as exc:
            raise self._error(exc, "splunk saved searches") from None
        return found

    def catalogue_queries(self) -> list[QuerySpec]:
        """Saved searches as catalogue queries of the ``saved`` family (no parameters; each runs
        with its own dispatch time range)."""
        specs: list[QuerySpec] = []
        seen: set[str] = set()
        for saved in self.saved_searches():
            if not saved["search"].strip():
                continue
            name = _query_name(saved["name"], seen)
            text = _with_window(_search_text(saved["search"]), saved["earliest"], saved["latest"])
            description = saved["description"] or f"Splunk saved search {saved['name']!r}"
            specs.append(
                QuerySpec(
                    name=name,
                    family="saved",
                    description=description,
                    query=text,
                    environment="splunk",
                    language="spl",
                    parameters=dict[str, Param](),
                    source=f"splunk saved search {saved['name']!r} (app {saved['app'] or '?'})",
                    tags=("saved",),
                    metadata={"saved_search": saved["name"]},
                    segments=(text,),
                )
            )
        return specs

    # -------------------------------------------------------------- errors
    def _error(
        self, exc: BaseException, where: str, *, deadline: float | None = None, timeout: float | None = None
    ) -> HuntbookError:
        """A huntbook error for a splunklib/socket failure, with every secret scrubbed."""
        from splunklib.binding import AuthenticationError, HTTPError

        if isinstance(exc, AuthenticationError) or (isinstance(exc, HTTPError) and exc.status == 401):
            return DriverError(
                "Splunk authentication failed (HTTP 401)",
                where=where,
                hint="check token, session_key or username/password in connections.splunk",
            )
        if isinstance(exc, HTTPError):
            detail = "; ".join(text for _, text in _messages_from_body(exc.body)) or exc.reason
            detail = redact(str(detail))
            if exc.status == 400:
                return QueryError(
                    f"Splunk rejected the search: {detail}",
                    where=where,
                    hint="check the SPL with print_query=True",
                )
            if exc.status == 403:
                return DriverError(
                    f"Splunk refused the request (HTTP 403): {detail}",
                    where=where,
                    hint="the account lacks a capability (search, or the index); ask the Splunk admin",
                )
            return DriverError(f"Splunk server error (HTTP {exc.status}): {detail}", where=where)
        if isinstance(exc, ssl.SSLCertVerificationError):
            return DriverError(
                f"TLS certificate verification failed: {exc.verify_message}",
                where=where,
                hint="set ca_file to the CA bundle of the Splunk certificate (verify=False only for tests)",
            )
        if isinstance(exc, TimeoutError) and deadline is not None and time.monotonic() >= deadline:
            return _timeout_error(timeout, where)
        if isinstance(exc, OSError):
            return DriverError(
                f"cannot reach Splunk: {type(exc).__name__}: {redact(str(exc))}",
                where=where,
                hint="check url/host/port and that splunkd's management port (8089) is reachable",
            )
        return DriverError(f"{type(exc).__name__}: {redact(str(exc))}", where=where)


# ----------------------------------------------------------------------------------------------
# Helpers


def _tls(settings: dict[str, Any]) -> tuple[bool, ssl.SSLContext | None]:
    """``(verify, context)`` for splunklib's handler; turning verification off is logged."""
    verify = settings.get("verify", True)
    if not isinstance(verify, bool):
        raise DriverError(f"verify={verify!r} must be true or false")
    if not verify:
        log.warning("splunk: TLS certificate verification is turned OFF (verify=False)")
        return False, None
    ca_file = settings.get("ca_file")
    return True, ssl.create_default_context(cafile=str(ca_file)) if ca_file else None


def _search_text(text: str) -> str:
    """SPL the REST API accepts: a search that starts with a command (``search``, or ``|``)."""
    stripped = text.strip()
    if stripped.startswith("|") or re.match(r"search\b", stripped, re.IGNORECASE):
        return stripped
    return f"search {stripped}"


def _with_window(text: str, earliest: str, latest: str) -> str:
    """``text`` with a saved search's dispatch time range as ``earliest=``/``latest=`` terms of its
    first ``search`` command (generating searches, ``| ...``, keep their own)."""
    terms = [f'{key}="{_spl_escape(value)}"' for key, value in (("earliest", earliest), ("latest", latest))]
    terms = [t for t in terms if not t.endswith('=""')]
    if not terms or text.startswith("|") or re.search(r"\b(earliest|latest)\s*=", text.split("|")[0]):
        return text
    return f"search {' '.join(terms)} {text[len('search') :].lstrip()}"


def _query_name(title: str, seen: set[str]) -> str:
    """A Python name for a saved search title, unique among ``seen``."""
    base = re.sub(r"[^0-9a-z]+", "_", title.lower()).strip("_") or "saved_search"
    base = base if base[0].isalpha() else f"q_{base}"
    name, n = base, 2
    while name in seen:
        name, n = f"{base}_{n}", n + 1
    seen.add(name)
    return name


def _check_deadline(deadline: float | None, timeout: float | None, where: str) -> None:
    if deadline is not None and time.monotonic() >= deadline:
        raise _timeout_error(timeout, where)


def _timeout_error(timeout: float | None, where: str) -> QueryTimeoutError:
    return QueryTimeoutError(
        f"query cancelled after the {timeout or 0:g} s timeout",
        where=where,
        hint="raise timeout= or narrow the time range (start/end, or split_by=)",
    )


def _cancel(job: Any) -> None:
    """Cancel a search job (best effort: the job may be gone already)."""
    try:
        job.cancel()
    except Exception:
        log.debug("cancelling splunk job %s failed", getattr(job, "sid", "?"), exc_info=True)


def _read_results(stream: Any) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Rows and messages of one ``output_mode=json`` results page."""
    from splunklib.results import JSONResultsReader, Message

    rows: list[dict[str, Any]] = []
    messages: list[tuple[str, str]] = []
    try:
        for item in JSONResultsReader(stream):
            if isinstance(item, Message):
                messages.append((str(item.type).upper(), str(item.message)))
            else:
                rows.append(dict(item))
    finally:
        stream.close()
    return rows, messages


def _messages(items: Any) -> list[tuple[str, str]]:
    """``[{"type": ..., "text": ...}]`` as (TYPE, text) pairs."""
    if not isinstance(items, list):
        return []
    return [
        (str(m.get("type", "INFO")).upper(), str(m.get("text", ""))) for m in items if isinstance(m, dict)
    ]


def _messages_from_body(body: bytes) -> list[tuple[str, str]]:
    """Messages of a Splunk error body: JSON (``output_mode=json``) or ``<msg type="...">`` XML."""
    try:
        return _messages(json.loads(body).get("messages"))
    except (ValueError, AttributeError):
        pass
    text = body.decode("utf-8", "replace")
    found = [
        (kind.upper(), html.unescape(message).strip())
        for kind, message in re.findall(r'<msg\b[^>]*\btype="([^"]*)"[^>]*>(.*?)</msg>', text, re.DOTALL)
    ]
    if found or not text.strip():
        return found
    return [("ERROR", text.strip()[:300])]


def _job_messages(value: Any) -> list[str]:
    """Texts of a job's ``messages`` status field (a dict of type -> message list)."""
    if isinstance(value, dict):
        out: list[str] = []
        for kind, texts in value.items():
            items = texts if isinstance(texts, list) else [texts]
            out += [f"{kind}: {t}" for t in items if t]
        return out
    return [str(value)] if value else []


def _raise_or_warn(messages: Iterable[tuple[str, str]], where: str) -> None:
    for kind, text in messages:
        if kind in _ERROR_TYPES:
            raise QueryError(f"Splunk: {text}", where=where, hint="check the SPL with print_query=True")
        if kind == "WARN":
            warnings.warn(f"{where}: Splunk: {text}", SplunkWarning, stacklevel=4)


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Result rows as a DataFrame: ``_time`` and all-ISO-time text columns as UTC datetimes (SPL
    writes computed times with ``strftime``), all-number text columns numeric."""
    import pandas as pd

    frame = pd.DataFrame.from_records(rows) if rows else pd.DataFrame()
    for column in frame.columns:
        series = frame[column]
        textual = pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)
        if column == "_time" or (textual and _all_match(series, _ISO_TIME)):
            frame[column] = pd.to_datetime(series, utc=True, format="ISO8601")
        elif textual and _all_match(series, _NUMBER):
            frame[column] = pd.to_numeric(series)
    return frame


def _all_match(series: pd.Series, pattern: re.Pattern[str]) -> bool:
    values = series.dropna().tolist()
    return bool(values) and all(isinstance(v, str) and pattern.fullmatch(v) for v in values)
