"""The contract every online TI provider passes, ours or a third party's (pytest).

Subclass :class:`TIProviderContract` in a test module, name the provider and a loopback app that
speaks its API (see :mod:`huntbook.testing.loopback`), and give known and unknown IoCs::

    from huntbook.testing.ti import TIProviderContract

    class TestExample(TIProviderContract):
        provider = Example
        app = staticmethod(example_app)       # example_app(key) -> loopback app checking the key
        known = {"ipv4": ("198.51.100.23", "high"), "dns": ("evil.example", "medium")}
        unknown = {"ipv4": "192.0.2.200"}

The suite checks: every known IoC gets ``ok`` with its severity and every unknown one
``not_found``; an unserved type is ``unsupported``; a missing key is ``no_key`` with no request
sent; a wrong key, malformed JSON, timeouts, slow bodies, dropped connections and persistent 5xx are
``error``; a 429 with ``Retry-After`` and one-off 503s are retried to success; a 429 storm is
``rate_limited``; a batch with faulted items returns one row per IoC with the right statuses; and
the API key never appears in results, errors, logs or the cache file.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from huntbook.http import ResponseCache
from huntbook.testing.loopback import LoopbackRequest, LoopbackServer
from huntbook.ti.base import HttpProvider, Result

__all__ = ["CANARY_KEY", "TIProviderContract"]

#: The key the contract configures; the loopback app must accept exactly this key.
CANARY_KEY = "CANARY-k3y-5e7e1a9b0c4d"
_FAST: dict[str, Any] = {
    "timeout": (0.5, 0.5),
    "deadline": 1.5,
    "retries": 2,
    "backoff": 0.01,
    "rate_limit": None,
}


def _sent_credentials(request: LoopbackRequest) -> str:
    """Headers and text of a request, with HTTP basic credentials decoded."""
    import base64
    import binascii

    text = str(request.headers) + request.text
    scheme, _, token = (request.header("authorization") or "").partition(" ")
    if scheme.lower() == "basic":
        with contextlib.suppress(binascii.Error, ValueError):
            text += base64.b64decode(token).decode("utf-8", "replace")
    return text


class TIProviderContract:
    """Shared tests for an :class:`~huntbook.ti.base.HttpProvider` against its loopback app."""

    provider: ClassVar[type[HttpProvider]]
    app: ClassVar[Any]  # staticmethod(make_app): make_app(key) -> the loopback app
    known: ClassVar[Mapping[str, tuple[str, str]]] = {}
    unknown: ClassVar[Mapping[str, str]] = {}
    extra_settings: ClassVar[Mapping[str, Any]] = {}

    # -- fixtures ------------------------------------------------------------------------------------
    @pytest.fixture()
    def server(self) -> Iterator[LoopbackServer]:
        with LoopbackServer(type(self).app(CANARY_KEY)) as server:
            yield server

    def make(
        self, server: LoopbackServer, cache: ResponseCache | None = None, **settings: Any
    ) -> HttpProvider:
        merged = {"api_key": CANARY_KEY, "base_url": server.url, **_FAST, **self.extra_settings, **settings}
        return type(self).provider(merged, cache=cache)

    def _one(self, server: LoopbackServer, ioc: str, ioc_type: str, **settings: Any) -> Result:
        provider = self.make(server, **settings)
        try:
            return provider.lookup(ioc, ioc_type)
        finally:
            provider.close()

    def _sample(self) -> tuple[str, str, str]:
        ioc_type, (ioc, severity) = next(iter(self.known.items()))
        return ioc, ioc_type, severity

    # -- the contract ----------------------------------------------------------------------------------
    def test_declares_itself(self) -> None:
        cls = type(self).provider
        assert cls.name and cls.name == cls.name.lower()
        assert cls.ioc_types and cls.description
        assert set(self.known) <= set(cls.ioc_types), "known IoCs of types the provider does not serve"
        assert self.known, "give at least one known IoC"

    def test_known_iocs_get_their_verdict(self, server: LoopbackServer) -> None:
        for ioc_type, (ioc, severity) in self.known.items():
            result = self._one(server, ioc, ioc_type)
            assert result.status == "ok", (ioc_type, ioc, result)
            assert result.severity == severity, (ioc_type, ioc, result)
            assert result.summary and result.raw

    def test_unknown_iocs_are_not_found(self, server: LoopbackServer) -> None:
        for ioc_type, ioc in self.unknown.items():
            result = self._one(server, ioc, ioc_type)
            assert result.status == "not_found", (ioc_type, ioc, result)
            assert result.severity == "info"

    def test_unserved_type_is_unsupported_without_a_request(self, server: LoopbackServer) -> None:
        spare = [
            t
            for t in ("ipv4", "ipv6", "dns", "url", "email", "md5", "sha1", "sha256")
            if t not in type(self).provider.ioc_types
        ]
        if not spare:
            pytest.skip("the provider serves every TI type")
        result = self._one(server, "x", spare[0])
        assert result.status == "unsupported"
        assert server.requests == []

    def test_missing_key_is_no_key_without_a_request(self, server: LoopbackServer) -> None:
        if not type(self).provider.key_required:
            pytest.skip("the provider needs no key")
        ioc, ioc_type, _ = self._sample()
        result = self._one(server, ioc, ioc_type, api_key=None)
        assert result.status == "no_key"
        assert server.requests == []

    def test_wrong_key_is_an_authentication_error(self, server: LoopbackServer) -> None:
        if not type(self).provider.key_required:
            pytest.skip("the provider needs no key")
        ioc, ioc_type, _ = self._sample()
        result = self._one(server, ioc, ioc_type, api_key="WRONG-key-0000")
        assert result.status == "error"
        assert "authentication" in result.summary

    @pytest.mark.parametrize("kind", ["malformed", "timeout", "slow", "drop", "500", "503"])
    def test_persistent_faults_are_errors(self, server: LoopbackServer, kind: str) -> None:
        ioc, ioc_type, _ = self._sample()
        server.fault("", kind, hang=1.0, drip=0.2)
        result = self._one(server, ioc, ioc_type, retries=1, timeout=(0.3, 0.3), deadline=0.6)
        assert result.status == "error", result
        assert result.ioc == ioc and result.provider == type(self).provider.name

    @pytest.mark.parametrize(("kind", "retry_after"), [("503", None), ("429", "0.2"), ("500", None)])
    def test_transient_faults_are_retried(
        self, server: LoopbackServer, kind: str, retry_after: str | None
    ) -> None:
        ioc, ioc_type, severity = self._sample()
        server.fault("", kind, times=1, retry_after=retry_after)
        result = self._one(server, ioc, ioc_type)
        assert result.status == "ok" and result.severity == severity, result
        assert len(server.requests) == 2

    def test_a_429_storm_is_rate_limited(self, server: LoopbackServer) -> None:
        ioc, ioc_type, _ = self._sample()
        server.fault("", "429", retry_after="0")
        result = self._one(server, ioc, ioc_type)
        assert result.status == "rate_limited"
        assert len(server.requests) == 1 + _FAST["retries"]

    def test_a_long_retry_after_gives_up_at_once(self, server: LoopbackServer) -> None:
        ioc, ioc_type, _ = self._sample()
        server.fault("", "429", retry_after="3600")
        result = self._one(server, ioc, ioc_type)
        assert result.status == "rate_limited"
        assert len(server.requests) == 1

    def test_faulted_items_do_not_lose_the_batch(self, server: LoopbackServer) -> None:
        items = [(ioc, kind) for kind, (ioc, _) in self.known.items()]
        items += [(ioc, kind) for kind, ioc in self.unknown.items()]
        faulted_ioc, faulted_type = items[0]
        faulting = len(items) > 1 and faulted_type != "url"  # a URL may be encoded in the request
        if faulting:
            server.fault(faulted_ioc, "500")
        provider = self.make(server)
        try:
            results = provider.lookup_many(items, workers=4)
        finally:
            provider.close()
        assert [(r.ioc, r.ioc_type) for r in results] == items
        assert all(r.provider == type(self).provider.name for r in results)
        if faulting:
            assert results[0].status == "error"
            assert {r.status for r in results[1:]} <= {"ok", "not_found"}

    def test_cache_answers_repeats_without_a_request(self, server: LoopbackServer, tmp_path: Path) -> None:
        ioc, ioc_type, severity = self._sample()
        cache = ResponseCache(tmp_path)
        for _ in range(2):
            provider = self.make(server, cache=cache)
            result = provider.lookup(ioc, ioc_type)
            provider.close()
            assert result.status == "ok" and result.severity == severity
        assert len(server.requests) == 1
        cache.close()
        assert CANARY_KEY.encode() not in (tmp_path / "http-cache.sqlite").read_bytes()

    def test_the_key_never_leaks(
        self, server: LoopbackServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        cache = ResponseCache(tmp_path)
        provider = self.make(server, cache=cache)
        items = [(ioc, kind) for kind, (ioc, _) in self.known.items()]
        server.fault(items[0][0], "503", times=1)
        outputs: list[str] = []
        try:
            outputs += [repr(r) for r in provider.lookup_many(items)]
            bad = self.make(server, api_key="WRONG-key-0000")
            outputs.append(repr(bad.lookup(*items[0])))
            bad.close()
        finally:
            provider.close()
            cache.close()
        assert any(CANARY_KEY in _sent_credentials(req) for req in server.requests), "key was never sent"
        outputs += [record.getMessage() for record in caplog.records]
        outputs.append(repr(provider))
        leaked = [text for text in outputs if CANARY_KEY in text]
        assert not leaked, leaked[:3]
        for file in tmp_path.rglob("*"):
            if file.is_file():
                assert CANARY_KEY.encode() not in file.read_bytes(), file
