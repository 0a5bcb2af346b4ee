"""IBM X-Force Exchange against a loopback server that speaks its documented reputation API."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterator
from typing import Any, ClassVar
from urllib.parse import unquote

import pytest

from huntbook.testing.loopback import App, LoopbackRequest, LoopbackServer, Reply
from huntbook.testing.ti import CANARY_KEY, TIProviderContract
from huntbook.ti.xforce import XForce

SECRET = "CANARY-pa55-0b1e2c3d"

IPS: dict[str, dict[str, Any]] = {
    "198.51.100.23": {
        "score": 8.6,
        "cats": {"Botnet Command and Control Server": 71, "Spam": 43, "Scanning IPs": 20, "Malware": 14},
        "geo": {"country": "Netherlands", "countrycode": "NL"},
    },
    "2001:db8::66": {"score": 4, "cats": {"Scanning IPs": 40}},
    "203.0.113.9": {"score": 1.5, "cats": {"Dynamic IPs": 20}},
}
URLS: dict[str, dict[str, Any]] = {
    "evil.example": {"score": 7, "cats": {"Phishing URLs": True}},
    "http://evil.example/stage2.ps1": {"score": 10, "cats": {"Malware": True}},
    "shop.example": {"score": 1, "cats": {"Shopping": True}},
}
MALWARE: dict[str, dict[str, Any]] = {
    "44d88612fea8a8f36de82e1278abb02f": {"risk": "high", "family": ["EICAR-Test-File"], "type": "md5"},
    "3395856ce81f2b7382dee72602f798b642f14140": {"risk": "low", "family": [], "type": "sha1"},
    "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f": {"risk": "medium", "type": "sha256"},
}


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def xforce_app(key: str, password: str = SECRET) -> App:
    """GET /ipr/{ip}, /url/{url}, /malware/{hash} with HTTP basic auth (API key : API password)."""

    def app(request: LoopbackRequest) -> Reply:
        if request.header("Authorization") != _basic(key, password):
            return Reply.json({"error": "Not authorized."}, status=401)
        kind, _, raw = request.path.lstrip("/").partition("/")
        value = unquote(raw)
        if request.method != "GET" or not value:
            return Reply.json({"error": "Not found."}, status=404)
        if kind == "ipr":  # every address has a record; an unremarkable one scores 1
            record = IPS.get(value, {"score": 1, "cats": {}})
            return Reply.json(
                {
                    "ip": value,
                    "history": [],
                    "subnets": [],
                    "reason": "Regional Internet Registry",
                    "reasonDescription": "One of the five RIRs announced a (new) location mapping of the IP.",
                    "tags": [],
                    **record,
                }
            )
        if kind == "url" and value in URLS:
            result = {"url": value, "categoryDescriptions": {}, **URLS[value]}
            return Reply.json({"result": result, "associated": [], "tags": []})
        if kind == "malware" and value in MALWARE:
            malware = {"origins": {}, "hash": value, "created": "2015-01-01T00:00:00Z", **MALWARE[value]}
            return Reply.json({"malware": malware, "tags": []})
        return Reply.json({"error": "Not found."}, status=404)

    return app


class _DecodingLog(list[LoopbackRequest]):
    """A request log that also records Basic credentials decoded, so the contract can see the key went out."""

    def append(self, request: LoopbackRequest) -> None:
        header = request.header("Authorization") or ""
        if header.startswith("Basic "):
            decoded = base64.b64decode(header[6:]).decode("utf-8", "replace")
            request = dataclasses.replace(
                request, headers={**request.headers, "x-test-decoded-basic": decoded}
            )
        super().append(request)


class TestXForce(TIProviderContract):
    provider = XForce
    app = staticmethod(xforce_app)  # type: ignore[assignment]  # the contract types `app` as a method
    extra_settings: ClassVar = {"api_secret": SECRET}
    known = {
        "ipv4": ("198.51.100.23", "high"),
        "ipv6": ("2001:db8::66", "medium"),
        "dns": ("evil.example", "high"),
        "url": ("http://evil.example/stage2.ps1", "high"),
        "md5": ("44d88612fea8a8f36de82e1278abb02f", "high"),
        "sha1": ("3395856ce81f2b7382dee72602f798b642f14140", "low"),
        "sha256": ("275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f", "medium"),
    }
    unknown = {"dns": "unknown.example", "md5": "0" * 32}

    @pytest.fixture()
    def server(self) -> Iterator[LoopbackServer]:
        with LoopbackServer(xforce_app(CANARY_KEY)) as server:
            server.requests = _DecodingLog()
            yield server


def _lookup(ioc: str, ioc_type: str, **settings: Any) -> tuple[Any, list[LoopbackRequest]]:
    with LoopbackServer(xforce_app(CANARY_KEY)) as server:
        merged = {"api_key": CANARY_KEY, "api_secret": SECRET, "base_url": server.url, "rate_limit": None}
        provider = XForce({**merged, **settings})
        result = provider.lookup(ioc, ioc_type)
        provider.close()
        return result, list(server.requests)


def test_summary_ranks_categories_and_names_the_country() -> None:
    result, _ = _lookup("198.51.100.23", "ipv4")
    assert result.summary == (
        "risk 8.6/10: Botnet Command and Control Server (71%), Spam (43%), Scanning IPs (20%) (+1 more)"
        " [Netherlands]"
    )
    assert result.reference == "https://exchange.xforce.ibmcloud.com/ip/198.51.100.23"


def test_url_and_malware_summaries_and_references() -> None:
    url, requests = _lookup("http://evil.example/stage2.ps1", "url")
    assert url.summary == "risk 10/10: Malware"
    assert requests[0].path == "/url/http%3A%2F%2Fevil.example%2Fstage2.ps1"
    assert url.reference == "https://exchange.xforce.ibmcloud.com/url/http%3A%2F%2Fevil.example%2Fstage2.ps1"
    eicar, _ = _lookup("44d88612fea8a8f36de82e1278abb02f", "md5")
    assert eicar.summary == "high risk malware, family EICAR-Test-File"
    assert eicar.reference.startswith("https://exchange.xforce.ibmcloud.com/malware/")


def test_score_edges() -> None:
    assert _lookup("evil.example", "dns")[0].severity == "high"  # exactly 7
    assert _lookup("2001:db8::66", "ipv6")[0].severity == "medium"  # exactly 4
    assert _lookup("203.0.113.9", "ipv4")[0].severity == "low"  # 1.5
    plain, _ = _lookup("203.0.113.10", "ipv4")  # 1, no category: known and harmless
    assert (plain.status, plain.severity, plain.summary) == ("ok", "info", "risk 1/10")
    assert _lookup("shop.example", "dns")[0].severity == "info"


def test_missing_password_is_no_key_without_a_request() -> None:
    result, requests = _lookup("198.51.100.23", "ipv4", api_secret=None)
    assert result.status == "no_key" and "api_secret" in result.summary
    assert requests == []


def test_a_wrong_password_is_an_authentication_error_and_never_shown() -> None:
    result, requests = _lookup("198.51.100.23", "ipv4", api_secret="WRONG-pass-0000")
    assert result.status == "error" and "authentication" in result.summary
    assert "WRONG-pass-0000" not in repr(result) and SECRET not in repr(result)
    assert requests[0].header("Authorization") == _basic(CANARY_KEY, "WRONG-pass-0000")
