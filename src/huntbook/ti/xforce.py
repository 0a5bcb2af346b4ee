"""IBM X-Force Exchange: IP and URL reputation (risk score 1-10 with categories) and malware hashes.

Endpoints ``GET /ipr/{ip}`` (``score``, ``cats`` as category -> confidence %, ``geo``), ``/url/{url}``
for URLs and domains (``result.score``, ``result.cats``) and ``/malware/{hash}`` (``malware.risk``,
``malware.family``); HTTP basic authentication with the API key as user and the API password as
password (``providers.xforce.api_key`` and ``api_secret``). Unknown URLs and hashes are a 404.
Severity from the score: 7 or more ``high``, 4 or more ``medium``, above 1 ``low``, 1 ``info``; for
malware, its ``risk`` (``high``/``medium``/``low``).
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

from huntbook.ti.base import AuthSpec, HttpProvider, Request, Result, Verdict

__all__ = ["XForce"]

_SHOWN_CATEGORIES = 3
_PAGE = {
    "ipv4": "ip",
    "ipv6": "ip",
    "dns": "url",
    "url": "url",
    "md5": "malware",
    "sha1": "malware",
    "sha256": "malware",
}


def _severity(score: float) -> Any:
    return "high" if score >= 7 else "medium" if score >= 4 else "low" if score > 1 else "info"


def _categories(cats: Any) -> str:
    """X-Force ``cats``, highest confidence first, at most three named.

    ``{"Spam": 43, "Botnet": 71}`` -> ``"Botnet (71%), Spam (43%)"``; ``{"Phishing": true}`` -> ``"Phishing"``
    """
    if not isinstance(cats, dict) or not cats:
        return ""

    def percent(value: Any) -> float | None:
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    ranked = sorted(cats.items(), key=lambda kv: (-(percent(kv[1]) or 0.0), str(kv[0])))
    shown = [f"{name} ({value:g}%)" if percent(value) is not None else str(name) for name, value in ranked]
    text = ", ".join(shown[:_SHOWN_CATEGORIES])
    return text + (f" (+{len(shown) - _SHOWN_CATEGORIES} more)" if len(shown) > _SHOWN_CATEGORIES else "")


def _score(value: Any) -> str:
    return f"{float(value):g}"


class XForce(HttpProvider):
    """IBM X-Force Exchange (basic auth: key and password): risk scores, categories, malware families."""

    name = "xforce"
    description = "IBM X-Force Exchange: IP/URL/domain risk scores with categories, and malware hashes"
    base_url = "https://api.xforce.ibmcloud.com"
    requests: ClassVar = {
        "ipv4": Request("GET", "/ipr/{ioc}"),
        "ipv6": Request("GET", "/ipr/{ioc}"),
        "dns": Request("GET", "/url/{ioc}"),
        "url": Request("GET", "/url/{ioc}"),
        "md5": Request("GET", "/malware/{ioc}"),
        "sha1": Request("GET", "/malware/{ioc}"),
        "sha256": Request("GET", "/malware/{ioc}"),
    }
    auth = AuthSpec("basic")
    # the free tier is a monthly quota of calls; one a second keeps bursts polite
    rate_limit = 1.0
    reference = "https://exchange.xforce.ibmcloud.com/{ioc_type}/{ioc}"

    @property
    def has_key(self) -> bool:
        """Both halves of the credential (``api_key`` and ``api_secret``) are configured."""
        return bool(self.settings.get("api_key")) and bool(self.settings.get("api_secret"))

    def lookup(self, ioc: str, ioc_type: str) -> Result:
        if self.supports(ioc_type) and self.settings.get("api_key") and not self.settings.get("api_secret"):
            return self.result(
                ioc,
                ioc_type,
                "no_key",
                summary="no API password: set providers.xforce.api_secret in huntbook.yaml",
            )
        return super().lookup(ioc, ioc_type)

    def reference_for(self, ioc: str, ioc_type: str) -> str:
        return self.reference.format(ioc_type=_PAGE[ioc_type], ioc=quote(ioc, safe=""))

    def parse(self, ioc: str, ioc_type: str, data: Any) -> Verdict | None:
        if ioc_type in ("md5", "sha1", "sha256"):
            return self._malware(data.get("malware"))
        record = data.get("result") if ioc_type in ("dns", "url") else data
        if not isinstance(record, dict) or record.get("score") is None:
            return None
        score = float(record["score"])
        summary = f"risk {_score(score)}/10"
        categories = _categories(record.get("cats"))
        if categories:
            summary += f": {categories}"
        country = (record.get("geo") or {}).get("country")
        if country:
            summary += f" [{country}]"
        return Verdict(_severity(score), summary)

    @staticmethod
    def _malware(malware: Any) -> Verdict | None:
        if not isinstance(malware, dict) or not malware:
            return None
        risk = str(malware.get("risk") or "").lower()
        severity: Any = risk if risk in ("high", "medium", "low") else "info"
        families = [str(f) for f in malware.get("family") or []]
        summary = f"{risk or 'unrated'} risk malware"
        if families:
            summary += f", family {', '.join(families)}"
        return Verdict(severity, summary)
