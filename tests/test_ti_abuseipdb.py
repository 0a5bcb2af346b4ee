"""AbuseIPDB v2 against a loopback server that speaks its documented ``check`` endpoint."""

from __future__ import annotations

import ipaddress
import itertools
from typing import Any

import pytest

from huntbook.errors import ConfigError
from huntbook.testing.loopback import App, LoopbackRequest, LoopbackServer, Reply
from huntbook.testing.ti import CANARY_KEY, TIProviderContract
from huntbook.ti.abuseipdb import AbuseIPDB

# ip -> (abuse confidence score, ages in days of its reports, other fields of the check answer)
KNOWN: dict[str, tuple[int, list[int], dict[str, Any]]] = {
    "198.51.100.23": (
        100,
        [1] * 500 + [30] * 12,
        {"isp": "Example Hosting", "countryCode": "NL", "usageType": "Data Center/Web Hosting/Transit"},
    ),
    "2001:db8::66": (30, [2, 5, 9], {"countryCode": "DE"}),
    "203.0.113.75": (75, [3] * 20, {}),
    "203.0.113.74": (74, [3] * 20, {}),
    "198.51.100.7": (12, [4, 4], {"isp": "Tor Project", "isTor": True}),
    "203.0.113.9": (0, [10], {"isWhitelisted": True, "isp": "Example DNS"}),
    "203.0.113.200": (40, [200, 250], {}),  # reported, but not in the last 90 days
}
_AUTH_FAILED = (
    "Authentication failed. Your API key is either missing, incorrect, or revoked."
    " Note: The APIv2 key differs from the APIv1 key."
)


def _errors(detail: str, status: int, **extra: Any) -> Reply:
    return Reply.json({"errors": [{"detail": detail, "status": status, **extra}]}, status=status)


def abuseipdb_app(key: str, daily_quota: int | None = None) -> App:
    """GET /api/v2/check?ipAddress=&maxAgeInDays= with the ``Key`` header, as AbuseIPDB answers it."""
    used = itertools.count(1)

    def app(request: LoopbackRequest) -> Reply:
        if request.header("Key") != key:
            return _errors(_AUTH_FAILED, 401)
        if request.method != "GET" or request.path != "/api/v2/check":
            return _errors("The requested endpoint does not exist.", 404)
        if daily_quota is not None and next(used) > daily_quota:
            return Reply.json(
                {
                    "errors": [
                        {
                            "detail": f"Daily rate limit of {daily_quota} requests exceeded",
                            "status": 429,
                        }
                    ]
                },
                status=429,
                headers={
                    "Retry-After": "43200",
                    "X-RateLimit-Limit": str(daily_quota),
                    "X-RateLimit-Remaining": "0",
                },
            )
        days_text = request.param("maxAgeInDays", "30") or ""
        if not days_text.isdigit() or not 1 <= int(days_text) <= 365:
            return _errors(
                "The max age in days must be between 1 and 365.", 422, source={"parameter": "maxAgeInDays"}
            )
        ip_text = request.param("ipAddress", "") or ""
        try:
            ip = ipaddress.ip_address(ip_text)
        except ValueError:
            return _errors(
                "The ip address must be a valid IPv4 or IPv6 address (e.g. 8.8.8.8 or 2001:4860:4860::8888).",
                422,
                source={"parameter": "ipAddress"},
            )
        score, ages, extra = KNOWN.get(ip_text, (0, [], {}))
        in_window = [age for age in ages if age <= int(days_text)]
        record = {
            "ipAddress": ip_text,
            "isPublic": True,
            "ipVersion": ip.version,
            "isWhitelisted": False,
            "abuseConfidenceScore": score if in_window else 0,
            "countryCode": None,
            "usageType": None,
            "isp": None,
            "domain": None,
            "hostnames": [],
            "isTor": False,
            "totalReports": len(in_window),
            "numDistinctUsers": min(len(in_window), 87),
            "lastReportedAt": "2024-05-01T10:00:00+00:00" if in_window else None,
            **extra,
        }
        return Reply.json({"data": record})

    return app


class TestAbuseIPDB(TIProviderContract):
    provider = AbuseIPDB
    app = staticmethod(abuseipdb_app)  # type: ignore[assignment]  # the contract types `app` as a method
    known = {"ipv4": ("198.51.100.23", "high"), "ipv6": ("2001:db8::66", "medium")}
    unknown = {"ipv4": "192.0.2.200", "ipv6": "2001:db8::dead"}


def _lookup(ioc: str, ioc_type: str = "ipv4", **settings: Any) -> tuple[Any, list[LoopbackRequest]]:
    with LoopbackServer(abuseipdb_app(CANARY_KEY)) as server:
        provider = AbuseIPDB({"api_key": CANARY_KEY, "base_url": server.url, "rate_limit": None, **settings})
        result = provider.lookup(ioc, ioc_type)
        provider.close()
        return result, list(server.requests)


def test_summary_and_the_documented_request() -> None:
    result, requests = _lookup("198.51.100.23")
    assert result.summary == (
        "abuse confidence 100%, 512 reports by 87 users"
        " (Example Hosting, NL, Data Center/Web Hosting/Transit)"
    )
    assert result.reference == "https://www.abuseipdb.com/check/198.51.100.23"
    assert requests[0].query == {"ipAddress": ["198.51.100.23"], "maxAgeInDays": ["90"]}
    assert requests[0].header("Accept") == "application/json"


def test_severity_edges() -> None:
    assert _lookup("203.0.113.75")[0].severity == "high"
    assert _lookup("203.0.113.74")[0].severity == "medium"
    tor, _ = _lookup("198.51.100.7")
    assert (tor.severity, tor.summary) == (
        "low",
        "abuse confidence 12%, 2 reports by 2 users (Tor Project, Tor exit node)",
    )


def test_score_zero_with_reports_is_known_but_info() -> None:
    result, _ = _lookup("203.0.113.9")
    assert (result.status, result.severity) == ("ok", "info")
    assert (
        result.summary == "abuse confidence 0%, 1 report by 1 user (Example DNS, allow-listed by AbuseIPDB)"
    )


def test_report_window_follows_max_age_days() -> None:
    default, _ = _lookup("203.0.113.200")
    assert default.status == "not_found"
    year, requests = _lookup("203.0.113.200", max_age_days=365)
    assert (year.status, year.severity) == ("ok", "medium")
    assert requests[0].param("maxAgeInDays") == "365"


@pytest.mark.parametrize("days", [0, 366, "90", 7.5, True])
def test_bad_max_age_days_is_a_config_error(days: Any) -> None:
    with pytest.raises(ConfigError, match="max_age_days"):
        AbuseIPDB({"api_key": CANARY_KEY, "max_age_days": days})


def test_invalid_address_answered_422_is_an_error() -> None:
    result, _ = _lookup("999.1.1.1")
    assert result.status == "error" and "HTTP 422" in result.summary


def test_exhausted_daily_quota_is_rate_limited_without_waiting() -> None:
    with LoopbackServer(abuseipdb_app(CANARY_KEY, daily_quota=1)) as server:
        provider = AbuseIPDB({"api_key": CANARY_KEY, "base_url": server.url, "rate_limit": None})
        first = provider.lookup("198.51.100.23", "ipv4")
        second = provider.lookup("2001:db8::66", "ipv6")
        provider.close()
        assert len(server.requests) == 2  # Retry-After of 12 h is past max_retry_after: no retry
    assert first.status == "ok"
    assert second.status == "rate_limited" and CANARY_KEY not in second.summary
