"""Pulsedive against a loopback server that speaks its documented ``info.php`` endpoint."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from huntbook.testing.loopback import App, LoopbackRequest, LoopbackServer, Reply
from huntbook.testing.ti import CANARY_KEY, TIProviderContract
from huntbook.ti.pulsedive import Pulsedive

_ABUSE_CH = {
    "fid": 7,
    "name": "Feodo Tracker",
    "category": "malware",
    "organization": "abuse.ch",
    "pricing": "free",
}
# indicator -> (Pulsedive type, risk, threat names, feeds)
KNOWN: dict[str, tuple[str, str, list[str], list[dict[str, Any]]]] = {
    "198.51.100.23": ("ip", "high", ["Cobalt Strike"], [_ABUSE_CH]),
    "2001:db8::66": ("ipv6", "low", [], []),
    "evil.example": ("domain", "critical", ["Emotet", "QakBot", "IcedID", "Bumblebee"], [_ABUSE_CH]),
    "http://evil.example/stage2.ps1": ("url", "medium", [], [{"fid": 9, "organization": "URLhaus"}]),
    "clean.example": ("domain", "none", [], []),
    "fresh.example": ("domain", "unknown", [], []),
}


def pulsedive_app(key: str, not_found_status: int = 404) -> App:
    """GET /api/info.php?indicator=...[&key=...]; a key is optional, a wrong one is refused (401)."""

    def app(request: LoopbackRequest) -> Reply:
        sent = request.param("key")
        if sent is not None and sent != key:
            return Reply.json({"error": "Invalid API key."}, status=401)
        if request.method != "GET" or request.path != "/api/info.php":
            return Reply.json({"error": "Invalid endpoint."}, status=404)
        indicator = request.param("indicator", "") or ""
        if indicator not in KNOWN:
            return Reply.json({"error": "Indicator not found."}, status=not_found_status)
        kind, risk, threats, feeds = KNOWN[indicator]
        iid = 1000 + list(KNOWN).index(indicator)
        return Reply.json(
            {
                "iid": iid,
                "indicator": indicator,
                "type": kind,
                "risk": risk,
                "risk_recommended": risk,
                "manualrisk": 0,
                "retired": None,
                "stamp_added": "2024-04-01 10:00:00",
                "stamp_seen": "2024-05-01 10:00:00",
                "riskfactors": [{"rfid": 1, "description": "found in threat feeds", "risk": risk}]
                if feeds
                else [],
                "threats": [
                    {"tid": i, "name": n, "category": "malware", "risk": risk} for i, n in enumerate(threats)
                ],
                "feeds": feeds,
                "attributes": {},
                "properties": {},
            }
        )

    return app


class TestPulsedive(TIProviderContract):
    provider = Pulsedive
    app = staticmethod(pulsedive_app)  # type: ignore[assignment]  # the contract types `app` as a method
    known = {
        "ipv4": ("198.51.100.23", "high"),
        "ipv6": ("2001:db8::66", "low"),
        "dns": ("evil.example", "high"),
        "url": ("http://evil.example/stage2.ps1", "medium"),
    }
    unknown = {"ipv4": "192.0.2.200", "dns": "unknown.example"}


def _lookup(
    ioc: str, ioc_type: str, app: App | None = None, **settings: Any
) -> tuple[Any, list[LoopbackRequest]]:
    with LoopbackServer(app or pulsedive_app(CANARY_KEY)) as server:
        provider = Pulsedive({"api_key": CANARY_KEY, "base_url": server.url, "rate_limit": None, **settings})
        result = provider.lookup(ioc, ioc_type)
        provider.close()
        return result, list(server.requests)


def test_summary_names_threats_and_feeds() -> None:
    result, requests = _lookup("198.51.100.23", "ipv4")
    assert result.summary == "risk high; threats Cobalt Strike; feeds Feodo Tracker"
    assert result.reference == "https://pulsedive.com/indicator/?iid=1000"
    assert requests[0].query == {"indicator": ["198.51.100.23"], "key": [CANARY_KEY]}
    many, _ = _lookup("evil.example", "dns")
    assert many.summary == "risk critical; threats Emotet, QakBot, IcedID (+1 more); feeds Feodo Tracker"
    url, _ = _lookup("http://evil.example/stage2.ps1", "url")
    assert url.summary == "risk medium; feeds URLhaus"  # a feed without a name shows its organization


def test_severity_edges() -> None:
    assert _lookup("evil.example", "dns")[0].severity == "high"  # critical
    for ioc in ("clean.example", "fresh.example"):  # none, unknown
        result, _ = _lookup(ioc, "dns")
        assert (result.status, result.severity) == ("ok", "info"), result


@pytest.mark.parametrize("status", [404, 200])
def test_indicator_not_found_is_not_found_as_404_or_200(status: int) -> None:
    result, _ = _lookup("unknown.example", "dns", app=pulsedive_app(CANARY_KEY, not_found_status=status))
    assert (result.status, result.severity) == ("not_found", "info")


def test_another_error_answer_is_an_error() -> None:
    def app(request: LoopbackRequest) -> Reply:
        return Reply.json({"error": "Your query could not be processed."})

    result, _ = _lookup("evil.example", "dns", app=app)
    assert result.status == "error" and "could not be processed" in result.summary


def test_key_is_optional_and_a_wrong_one_fails() -> None:
    keyless, requests = _lookup("198.51.100.23", "ipv4", api_key=None)
    assert keyless.status == "ok" and "key" not in requests[0].query
    wrong, _ = _lookup("198.51.100.23", "ipv4", api_key="WRONG-key-0000")
    assert wrong.status == "error" and "authentication" in wrong.summary
    assert "WRONG-key-0000" not in repr(wrong)


def test_reference_without_an_iid_is_the_base64_page() -> None:
    provider = Pulsedive()
    expected = base64.b64encode(b"evil.example").decode()
    assert provider.reference_for("evil.example", "dns") == f"https://pulsedive.com/indicator/?ioc={expected}"
