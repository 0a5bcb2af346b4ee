"""AlienVault OTX (DirectConnect API v1): pulses that list an IP, domain, host name, URL or file hash.

Endpoint ``GET /api/v1/indicators/{section_type}/{ioc}/general`` where the type is ``IPv4``,
``IPv6``, ``domain`` (two-label names), ``hostname`` (longer names), ``url`` or ``file``; the key goes
in the ``X-OTX-API-KEY`` header (a wrong key is answered 403). The verdict comes from
``pulse_info.count``, the number of community pulses (threat reports) listing the IoC: 1 is ``low``,
2-4 ``medium``, 5 or more ``high``; an IoC in no pulse is ``not_found``. OTX's own allow-list
(``validation`` entries from its whitelist or known false positives) lowers the verdict to ``info``.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

from huntbook.ti.base import AuthSpec, HttpProvider, Request, Verdict

__all__ = ["OTX"]

_GENERAL = "/api/v1/indicators/{kind}/{{ioc}}/general"
_ALLOW_LISTS = frozenset({"whitelist", "false_positive"})
_PAGE_KIND = {
    "IPv4": "ip",
    "IPv6": "ip",
    "domain": "domain",
    "hostname": "hostname",
    "url": "url",
    "file": "file",
}
_SHOWN_PULSES = 3


def _section_type(ioc: str, ioc_type: str) -> str:
    """OTX's indicator type for a huntbook TI type (``dns`` splits into domain and hostname)."""
    if ioc_type == "dns":
        return "domain" if ioc.strip(".").count(".") <= 1 else "hostname"
    return {"ipv4": "IPv4", "ipv6": "IPv6", "url": "url"}.get(ioc_type, "file")


class OTX(HttpProvider):
    """AlienVault OTX (``X-OTX-API-KEY``): how many community pulses list the IoC, and which."""

    name = "otx"
    description = "AlienVault OTX: community threat pulses listing IPs, domains, URLs and file hashes"
    base_url = "https://otx.alienvault.com"
    requests: ClassVar = {
        "ipv4": Request("GET", _GENERAL.format(kind="IPv4")),
        "ipv6": Request("GET", _GENERAL.format(kind="IPv6")),
        "dns": Request("GET", _GENERAL.format(kind="domain")),
        "url": Request("GET", _GENERAL.format(kind="url")),
        "md5": Request("GET", _GENERAL.format(kind="file")),
        "sha1": Request("GET", _GENERAL.format(kind="file")),
        "sha256": Request("GET", _GENERAL.format(kind="file")),
    }
    auth = AuthSpec("header", "X-OTX-API-KEY")
    rate_limit = 10_000 / 3600  # the allowance usually quoted for a keyed account: 10,000 an hour
    reference = "https://otx.alienvault.com/indicator/{ioc_type}/{ioc}"

    def build_request(self, ioc: str, ioc_type: str) -> Request:
        if ioc_type == "dns":
            return Request("GET", _GENERAL.format(kind=_section_type(ioc, ioc_type))).fill(ioc)
        return super().build_request(ioc, ioc_type)

    def reference_for(self, ioc: str, ioc_type: str) -> str:
        kind = _PAGE_KIND[_section_type(ioc, ioc_type)]
        return self.reference.format(ioc_type=kind, ioc=quote(ioc, safe=""))

    def parse(self, ioc: str, ioc_type: str, data: Any) -> Verdict | None:
        pulse_info = data.get("pulse_info") or {}
        count = int(pulse_info.get("count") or 0)
        if count == 0:
            return None
        severity: Any = "high" if count >= 5 else "medium" if count >= 2 else "low"
        names = [str(p["name"]) for p in pulse_info.get("pulses") or [] if p.get("name")]
        summary = f"{count} OTX pulse{'s' if count != 1 else ''}"
        if names:
            shown = names[:_SHOWN_PULSES]
            summary += ": " + "; ".join(shown)
            if count > len(shown):
                summary += f" (+{count - len(shown)} more)"
        where = [str(data[k]) for k in ("asn", "country_name") if data.get(k)]
        if where:
            summary += f" [{', '.join(where)}]"
        allowed = [
            str(v.get("name") or v.get("source"))
            for v in data.get("validation") or []
            if v.get("source") in _ALLOW_LISTS
        ]
        if allowed:
            severity = "info"
            summary += f"; allow-listed by OTX: {', '.join(allowed)}"
        return Verdict(severity, summary)
