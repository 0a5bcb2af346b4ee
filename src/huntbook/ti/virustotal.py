"""VirusTotal API v3: IP addresses, domains, URLs and file hashes.

Endpoints ``/api/v3/ip_addresses/{ip}``, ``/domains/{domain}``, ``/urls/{id}`` (the id is the URL in
unpadded URL-safe base64) and ``/files/{hash}``; the key goes in the ``x-apikey`` header. The verdict
comes from ``attributes.last_analysis_stats``: engines that call the IoC malicious or suspicious.
The public API allows 4 requests a minute; set ``providers.virustotal.rate_limit`` for a premium key.
"""

from __future__ import annotations

import base64
from typing import Any, ClassVar

from huntbook.ti.base import AuthSpec, HttpProvider, Request, Verdict

__all__ = ["VirusTotal"]


class VirusTotal(HttpProvider):
    """VirusTotal v3 (``x-apikey``): detections by AV engines and URL/domain scanners."""

    name = "virustotal"
    description = "VirusTotal v3: engine detections for IPs, domains, URLs and file hashes"
    base_url = "https://www.virustotal.com"
    requests: ClassVar = {
        "ipv4": Request("GET", "/api/v3/ip_addresses/{ioc}"),
        "ipv6": Request("GET", "/api/v3/ip_addresses/{ioc}"),
        "dns": Request("GET", "/api/v3/domains/{ioc}"),
        "url": Request("GET", "/api/v3/urls/{ioc}"),
        "md5": Request("GET", "/api/v3/files/{ioc}"),
        "sha1": Request("GET", "/api/v3/files/{ioc}"),
        "sha256": Request("GET", "/api/v3/files/{ioc}"),
    }
    auth = AuthSpec("header", "x-apikey")
    rate_limit = 4 / 60
    reference = "https://www.virustotal.com/gui/search/{ioc}"

    def build_request(self, ioc: str, ioc_type: str) -> Request:
        if ioc_type == "url":
            ioc = base64.urlsafe_b64encode(ioc.encode("utf-8")).decode("ascii").rstrip("=")
        return super().build_request(ioc, ioc_type)

    def parse(self, ioc: str, ioc_type: str, data: Any) -> Verdict | None:
        attributes = (data.get("data") or {}).get("attributes")
        if attributes is None:
            return None
        stats = attributes.get("last_analysis_stats") or {}
        malicious = int(stats.get("malicious", 0))
        suspicious = int(stats.get("suspicious", 0))
        engines = sum(int(v) for v in stats.values() if isinstance(v, int | float))
        if malicious >= 5:
            severity = "high"
        elif malicious >= 1:
            severity = "medium"
        elif suspicious >= 1:
            severity = "low"
        else:
            severity = "info"
        summary = f"{malicious}/{engines} engines malicious, {suspicious} suspicious"
        extra = [str(attributes[k]) for k in ("as_owner", "country", "meaningful_name") if attributes.get(k)]
        if extra:
            summary += f" ({', '.join(extra)})"
        return Verdict(severity, summary)
