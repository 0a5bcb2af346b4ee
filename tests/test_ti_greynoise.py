"""GreyNoise Community against a loopback server that speaks its documented ``/v3/community/{ip}``."""

from __future__ import annotations

import ipaddress
from typing import Any

from huntbook.testing.loopback import App, LoopbackRequest, LoopbackServer, Reply
from huntbook.testing.ti import CANARY_KEY, TIProviderContract
from huntbook.ti.greynoise import GreyNoise

# ip -> the fields GreyNoise holds for it
KNOWN: dict[str, dict[str, Any]] = {
    "198.51.100.23": {"noise": True, "riot": False, "classification": "malicious", "name": "unknown"},
    "198.51.100.24": {"noise": True, "riot": False, "classification": "unknown", "name": "unknown"},
    "198.51.100.25": {
        "noise": True,
        "riot": False,
        "classification": "benign",
        "name": "Example Research Scanner",
    },
    "203.0.113.53": {"noise": False, "riot": True, "classification": "benign", "name": "Example Public DNS"},
}
_NOT_OBSERVED = "IP not observed scanning the internet or contained in RIOT data set."


def greynoise_app(key: str) -> App:
    """GET /v3/community/{ip}; the ``key`` header is optional, but a wrong one is refused (401)."""

    def app(request: LoopbackRequest) -> Reply:
        sent = request.header("key")
        if sent is not None and sent != key:
            return Reply.json({"message": "Authentication failed: invalid API key"}, status=401)
        prefix = "/v3/community/"
        if request.method != "GET" or not request.path.startswith(prefix):
            return Reply.json({"message": "Not found"}, status=404)
        ip = request.path[len(prefix) :]
        try:
            if ipaddress.ip_address(ip).version != 4:
                raise ValueError(ip)
        except ValueError:
            return Reply.json({"message": "Request is not a valid routable IPv4 address"}, status=400)
        if ip not in KNOWN:
            return Reply.json({"ip": ip, "noise": False, "riot": False, "message": _NOT_OBSERVED}, status=404)
        fields = KNOWN[ip]
        kind = "riot" if fields["riot"] else "ip"
        return Reply.json(
            {
                "ip": ip,
                **fields,
                "link": f"https://viz.greynoise.io/{kind}/{ip}",
                "last_seen": "2024-05-01",
                "message": "Success",
            }
        )

    return app


class TestGreyNoise(TIProviderContract):
    provider = GreyNoise
    app = staticmethod(greynoise_app)  # type: ignore[assignment]  # the contract types `app` as a method
    known = {"ipv4": ("198.51.100.23", "high")}
    unknown = {"ipv4": "192.0.2.200"}


def _lookup(ioc: str, **settings: Any) -> tuple[Any, list[LoopbackRequest]]:
    with LoopbackServer(greynoise_app(CANARY_KEY)) as server:
        provider = GreyNoise({"api_key": CANARY_KEY, "base_url": server.url, "rate_limit": None, **settings})
        result = provider.lookup(ioc, "ipv4")
        provider.close()
        return result, list(server.requests)


def test_summary_and_link_of_a_malicious_scanner() -> None:
    result, requests = _lookup("198.51.100.23")
    assert result.summary == "malicious internet scanner, last seen 2024-05-01"
    assert result.reference == "https://viz.greynoise.io/ip/198.51.100.23"
    assert requests[0].header("key") == CANARY_KEY


def test_severity_mapping() -> None:
    unknown_intent, _ = _lookup("198.51.100.24")
    assert (unknown_intent.severity, unknown_intent.summary) == (
        "low",
        "internet scanner of unknown intent, last seen 2024-05-01",
    )
    benign, _ = _lookup("198.51.100.25")
    assert benign.severity == "info" and benign.summary.startswith(
        "benign internet scanner: Example Research"
    )
    riot, _ = _lookup("203.0.113.53")
    assert (riot.status, riot.severity) == ("ok", "info")
    assert riot.summary == "known business service: Example Public DNS (RIOT), last seen 2024-05-01"
    assert riot.reference == "https://viz.greynoise.io/riot/203.0.113.53"


def test_works_without_a_key_and_sends_none() -> None:
    result, requests = _lookup("198.51.100.23", api_key=None)
    assert (result.status, result.severity) == ("ok", "high")
    assert requests[0].header("key") is None


def test_a_wrong_key_is_still_an_authentication_error() -> None:
    result, _ = _lookup("198.51.100.23", api_key="WRONG-key-0000", retries=0)
    assert result.status == "error" and "authentication" in result.summary
