"""AbuseIPDB API v2: community abuse reports and a confidence score for IPv4 and IPv6 addresses.

Endpoint ``GET /api/v2/check?ipAddress=IP&maxAgeInDays=90`` with the key in the ``Key`` header and
``Accept: application/json``. The verdict comes from ``data.abuseConfidenceScore`` (0-100): 75 or
more is ``high``, 25 or more ``medium``, 1 or more ``low``, 0 ``info``. AbuseIPDB answers every
address, known or not, with 200: score 0 and no report in the window is ``not_found``.

Settings: ``max_age_days`` (1-365, default 90) is the report window. The free plan allows 1,000
checks a day; past that AbuseIPDB answers 429 with ``Retry-After`` (the rest of the day), which
ends as ``rate_limited`` at once rather than a long wait.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from huntbook.errors import ConfigError
from huntbook.http import ResponseCache
from huntbook.ti.base import AuthSpec, HttpProvider, Request, Verdict

__all__ = ["AbuseIPDB"]

_CHECK = Request("GET", "/api/v2/check", params={"ipAddress": "{ioc}", "maxAgeInDays": "90"})


class AbuseIPDB(HttpProvider):
    """AbuseIPDB v2 (``Key`` header): abuse confidence score and report count of an IP."""

    name = "abuseipdb"
    description = "AbuseIPDB v2: abuse confidence score and community reports for IPv4/IPv6 addresses"
    base_url = "https://api.abuseipdb.com"
    requests: ClassVar = {"ipv4": _CHECK, "ipv6": _CHECK}
    auth = AuthSpec("header", "Key")
    # the free plan is a daily quota (1,000 checks), not a rate; one a second keeps bursts polite
    rate_limit = 1.0
    reference = "https://www.abuseipdb.com/check/{ioc}"

    def __init__(
        self, settings: Mapping[str, Any] | None = None, *, cache: ResponseCache | None = None
    ) -> None:
        super().__init__(settings, cache=cache)
        days = self.settings.get("max_age_days", 90)
        if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 365:
            raise ConfigError(
                f"max_age_days must be a whole number of days from 1 to 365, not {days!r}",
                where="providers.abuseipdb.max_age_days",
                hint="set providers.abuseipdb.max_age_days: 90 in huntbook.yaml",
            )
        self.max_age_days = days

    def build_request(self, ioc: str, ioc_type: str) -> Request:
        request = super().build_request(ioc, ioc_type)
        return Request(
            request.method, request.path, {**request.params, "maxAgeInDays": str(self.max_age_days)}
        )

    def parse(self, ioc: str, ioc_type: str, data: Any) -> Verdict | None:
        record = data["data"]
        score = int(record.get("abuseConfidenceScore") or 0)
        reports = int(record.get("totalReports") or 0)
        if score == 0 and reports == 0:
            return None
        severity: Any = (
            "high" if score >= 75 else "medium" if score >= 25 else "low" if score >= 1 else "info"
        )
        users = int(record.get("numDistinctUsers") or 0)
        summary = f"abuse confidence {score}%, {reports} report{'s' if reports != 1 else ''}"
        if users:
            summary += f" by {users} user{'s' if users != 1 else ''}"
        details = [str(record[k]) for k in ("isp", "countryCode", "usageType") if record.get(k)]
        if record.get("isTor"):
            details.append("Tor exit node")
        if record.get("isWhitelisted"):
            details.append("allow-listed by AbuseIPDB")
        if details:
            summary += f" ({', '.join(details)})"
        return Verdict(severity, summary)
