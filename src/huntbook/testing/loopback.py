"""A loopback HTTP server for testing online providers and drivers, with fault injection.

The server binds to 127.0.0.1 on a free port, runs in a background thread, and serves an *app*: a
callable that takes a :class:`LoopbackRequest` and returns a :class:`Reply`. Faults are rules
checked before the app: when a rule's ``match`` is in the request's text (path, query and body),
the server answers with the fault instead, for the first ``times`` matching requests or always::

    def app(request):
        return Reply.json({"ok": True})

    with LoopbackServer(app) as server:
        server.fault("203.0.113.9", "503", times=1)          # one 503, then the app answers
        server.fault("198.51.100.7", "429", retry_after="1")  # always 429 with Retry-After
        client = HttpClient("x", base_url=server.url)

Fault kinds: ``timeout`` (no answer for ``hang`` seconds), ``slow`` (the body drips one byte per
``drip`` seconds), ``drop`` (the connection closes with no answer), ``malformed`` (200 with broken
JSON), ``auth`` (401), ``429`` (with ``Retry-After`` when given), and any other HTTP status as a
string (``"500"``, ``"503"``). Every request is recorded in :attr:`LoopbackServer.requests`.

:func:`fault_after` adds a rule once some requests were answered (a fault in the middle of an
upload); :func:`self_signed_cert` and :func:`serve_tls` turn a started server into an HTTPS one.
"""

from __future__ import annotations

import itertools
import json
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = [
    "Fault",
    "LoopbackRequest",
    "LoopbackServer",
    "Reply",
    "fault_after",
    "self_signed_cert",
    "serve_tls",
]


@dataclass(frozen=True)
class LoopbackRequest:
    """One request the server received."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    body: bytes

    @property
    def text(self) -> str:
        """Path, query and body as one string (fault rules match in it)."""
        return f"{unquote(self.path)} {self.query} {self.body.decode('utf-8', 'replace')}"

    def param(self, name: str, default: str | None = None) -> str | None:
        """The first value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else default

    def header(self, name: str, default: str | None = None) -> str | None:
        """A request header (case-insensitive)."""
        return self.headers.get(name.lower(), default)

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, str]:
        """The body parsed as an HTML form (first value per field)."""
        return {k: v[0] for k, v in parse_qs(self.body.decode("utf-8", "replace")).items()}


@dataclass(frozen=True)
class Reply:
    """What the app answers: status, headers and body."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Reply:
        """A JSON reply."""
        return cls(status, json.dumps(data).encode(), {"Content-Type": "application/json", **(headers or {})})

    @classmethod
    def text(cls, text: str, status: int = 200, content_type: str = "text/plain") -> Reply:
        """A text reply."""
        return cls(status, text.encode(), {"Content-Type": content_type})


@dataclass
class Fault:
    """A fault rule: requests whose text contains ``match`` get ``kind`` (``times`` times, or always)."""

    match: str
    kind: str
    times: int | None = None
    retry_after: str | None = None
    hang: float = 3.0
    drip: float = 0.2
    hits: int = 0

    def take(self, request: LoopbackRequest) -> bool:
        if self.match not in request.text or (self.times is not None and self.hits >= self.times):
            return False
        self.hits += 1
        return True


App = Callable[[LoopbackRequest], Reply]


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 serving ``app``; a context manager that starts and stops it."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.faults: list[Fault] = []
        self.requests: list[LoopbackRequest] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        assert self._server is not None, "the server is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def fault(self, match: str, kind: str, **options: Any) -> Fault:
        """Add a fault rule (see the module docs) and return it."""
        rule = Fault(match, kind, **options)
        with self._lock:
            self.faults.append(rule)
        return rule

    def clear(self) -> None:
        """Drop every fault rule and the request log."""
        with self._lock:
            self.faults.clear()
            self.requests.clear()

    def _pick_fault(self, request: LoopbackRequest) -> Fault | None:
        with self._lock:
            self.requests.append(request)
            for rule in self.faults:
                if rule.take(request):
                    return rule
        return None

    def start(self) -> LoopbackServer:
        """Start serving in a background thread."""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = LoopbackRequest(
                    self.command,
                    parts.path,
                    parse_qs(parts.query, keep_blank_values=True),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                rule = owner._pick_fault(request)
                if rule is not None:
                    self._fault(rule)
                    return
                try:
                    reply = owner.app(request)
                except Exception as exc:  # an app bug shows as a 599 in the test, not a hang
                    reply = Reply.text(f"loopback app error: {exc!r}", status=599)
                self._send(reply)

            def _send(self, reply: Reply) -> None:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def _fault(self, rule: Fault) -> None:
                kind = rule.kind
                if kind == "timeout":
                    time.sleep(rule.hang)
                    self.close_connection = True
                    return
                if kind == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if kind == "slow":
                    body = b'{"data": "' + b"x" * 200 + b'"}'
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    try:
                        for byte in body:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(rule.drip)
                    except OSError:
                        pass
                    self.close_connection = True
                    return
                if kind == "malformed":
                    self._send(Reply(200, b'{"data": {"attributes": ', {"Content-Type": "application/json"}))
                    return
                status = 401 if kind == "auth" else int(kind)
                headers = {"Retry-After": rule.retry_after} if rule.retry_after is not None else {}
                self._send(Reply(status, json.dumps({"error": f"injected {kind}"}).encode(), headers))

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="loopback", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def fault_after(server: LoopbackServer, match: str, after: int, kind: str, **options: Any) -> None:
    """Once ``after`` requests containing ``match`` have been answered, add the fault rule
    ``server.fault(match, kind, **options)`` (so a fault can hit the middle of an upload)."""
    app = server.app
    seen = itertools.count(1)
    lock = threading.Lock()

    def counting(request: LoopbackRequest) -> Reply:
        reply = app(request)
        if match in request.text:
            with lock:
                if next(seen) == after:
                    server.fault(match, kind, **options)
        return reply

    server.app = counting


def self_signed_cert(folder: Path | str) -> tuple[str, str]:
    """``(certfile, keyfile)``: a one-day self-signed certificate for 127.0.0.1 (openssl)."""
    cert, key = Path(folder) / "cert.pem", Path(folder) / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return str(cert), str(key)


def serve_tls(server: LoopbackServer, certfile: str, keyfile: str) -> str:
    """Switch a started loopback server to HTTPS with the certificate; its ``https://`` URL."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    inner = server._server  # the ThreadingHTTPServer: its listening socket accepts TLS from now on
    assert inner is not None, "start the server first"
    inner.socket = context.wrap_socket(inner.socket, server_side=True)
    return server.url.replace("http://", "https://")
