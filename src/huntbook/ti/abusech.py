"""abuse.ch: URLhaus (malware URLs and hosts), ThreatFox (IoCs) and MalwareBazaar (samples).

The three APIs take an ``Auth-Key`` header (a free key from https://auth.abuse.ch/; a missing or
wrong key is HTTP 401) and answer HTTP 200 with a ``query_status``: ``ok`` when the IoC is known, a
"not found" status (``no_results``, ``no_result``, ``hash_not_found``), or a refusal such as
``invalid_url`` or ``illegal_hash``, which becomes status ``error``.

- URLhaus ``POST /v1/url/`` (form ``url``), ``/v1/host/`` (``host``: a domain or IPv4) and
  ``/v1/payload/`` (``md5_hash`` or ``sha256_hash``): URL status (online/offline), threat, tags.
- ThreatFox ``POST /api/v1/`` with JSON ``{"query": "search_ioc", "search_term": ...}`` (IPs match
  their ``ip:port`` IoCs) or ``{"query": "search_hash", "hash": ...}``: malware family, threat type,
  confidence level.
- MalwareBazaar ``POST /api/v1/`` form ``query=get_info&hash=...``: signature, file type, tags.

abuse.ch publishes no hard rate limit, only fair use; each provider sends 2 requests a second at most.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from huntbook.errors import ServiceError
from huntbook.ti.base import AuthSpec, HttpProvider, Request, Verdict, counted, tags_text

__all__ = ["MalwareBazaar", "ThreatFox", "URLhaus"]

Severity = Literal["info", "low", "medium", "high"]


class _AbuseCh(HttpProvider):
    """What the abuse.ch APIs share: the ``Auth-Key`` header, fair-use pacing and ``query_status``."""

    auth = AuthSpec("header", "Auth-Key")
    rate_limit = 2.0
    not_found_query_statuses: ClassVar[tuple[str, ...]] = ()

    def known(self, data: Mapping[str, Any], ioc_type: str) -> bool:
        """True for ``query_status`` ``ok``, False for a not-found status; a refusal raises."""
        status = data.get("query_status")
        if status == "ok":
            return True
        if status in self.not_found_query_statuses:
            return False
        raise ServiceError(
            f"the query was refused (query_status {status!r})",
            kind="http",
            status=200,
            where=self.name,
            hint=f"check that the value is a valid {ioc_type}",
        )


class URLhaus(_AbuseCh):
    """URLhaus: is this URL, host or payload hash part of malware distribution?"""

    name = "urlhaus"
    description = "abuse.ch URLhaus: malware-distribution URLs, the hosts serving them and their payloads"
    base_url = "https://urlhaus-api.abuse.ch"
    requests: ClassVar = {
        "url": Request("POST", "/v1/url/", data={"url": "{ioc}"}),
        "dns": Request("POST", "/v1/host/", data={"host": "{ioc}"}),
        "ipv4": Request("POST", "/v1/host/", data={"host": "{ioc}"}),
        "md5": Request("POST", "/v1/payload/", data={"md5_hash": "{ioc}"}),
        "sha256": Request("POST", "/v1/payload/", data={"sha256_hash": "{ioc}"}),
    }
    reference = "https://urlhaus.abuse.ch/browse.php?search={ioc}"
    not_found_query_statuses = ("no_results",)

    def parse(self, ioc: str, ioc_type: str, data: Any) -> Verdict | None:
        if not self.known(data, ioc_type):
            return None
        if ioc_type == "url":
            return self._url_verdict(data)
        if ioc_type in ("dns", "ipv4"):
            return self._host_verdict(data)
        return self._payload_verdict(data)

    @staticmethod
    def _url_verdict(data: Mapping[str, Any]) -> Verdict:
        status = str(data.get("url_status") or "unknown")
        severity: Severity = "high" if status == "online" else "medium"
        summary = f"{data.get('threat') or 'malware'} URL, {status}"
        if data.get("date_added"):
            summary += f", added {data['date_added']}"
        return Verdict(severity, summary + tags_text(data.get("tags")), data.get("urlhaus_reference"))

    @staticmethod
    def _host_verdict(data: Mapping[str, Any]) -> Verdict:
        urls = data.get("urls") or []
        count = int(data.get("url_count") or len(urls))
        online = sum(1 for url in urls if url.get("url_status") == "online")
        severity: Severity = "high" if online else "medium" if count else "low"
        summary = f"{counted(count, 'malware URL')} ({online} online)"
        if data.get("firstseen"):
            summary += f", first seen {data['firstseen']}"
        tags = [tag for url in urls for tag in url.get("tags") or ()]
        return Verdict(severity, summary + tags_text(tags), data.get("urlhaus_reference"))

    @staticmethod
    def _payload_verdict(data: Mapping[str, Any]) -> Verdict:
        count = int(data.get("url_count") or len(data.get("urls") or []))
        family = data.get("signature") or "unattributed"
        file_type = data.get("file_type") or "unknown type"
        summary = f"{family} payload ({file_type}), served from {counted(count, 'URL')}"
        if data.get("firstseen"):
            summary += f", first seen {data['firstseen']}"
        return Verdict("high", summary)


class ThreatFox(_AbuseCh):
    """ThreatFox: IoCs (C2 servers, payload URLs, samples) attributed to a malware family."""

    name = "threatfox"
    description = "abuse.ch ThreatFox: IoCs of malware families (C2, payload delivery) with a confidence"
    base_url = "https://threatfox-api.abuse.ch"
    requests: ClassVar = {
        "ipv4": Request("POST", "/api/v1/", json={"query": "search_ioc", "search_term": "{ioc}"}),
        "dns": Request("POST", "/api/v1/", json={"query": "search_ioc", "search_term": "{ioc}"}),
        "url": Request("POST", "/api/v1/", json={"query": "search_ioc", "search_term": "{ioc}"}),
        "md5": Request("POST", "/api/v1/", json={"query": "search_hash", "hash": "{ioc}"}),
        "sha256": Request("POST", "/api/v1/", json={"query": "search_hash", "hash": "{ioc}"}),
    }
    reference = "https://threatfox.abuse.ch/browse.php?search=ioc%3A{ioc}"
    not_found_query_statuses = ("no_result", "no_results")

    def parse(self, ioc: str, ioc_type: str, data: Any) -> Verdict | None:
        if not self.known(data, ioc_type):
            return None
        records = [record for record in data.get("data") or [] if isinstance(record, Mapping)]
        if not records:
            return None
        best = max(records, key=lambda record: int(record.get("confidence_level") or 0))
        confidence = int(best.get("confidence_level") or 0)
        severity: Severity = "high" if confidence >= 75 else "medium" if confidence >= 50 else "low"
        family = best.get("malware_printable") or best.get("malware") or "unknown malware"
        threat = best.get("threat_type") or "ioc"
        if ioc_type in ("md5", "sha256"):
            summary = f"{family} sample linked to {counted(len(records), 'IoC')}, e.g. {best.get('ioc')}"
            summary += f" ({threat}, confidence {confidence}%)"
        else:
            summary = f"{family} {threat} (confidence {confidence}%)"
            if best.get("ioc") and best["ioc"] != ioc:
                summary += f" as {best['ioc']}"
            if len(records) > 1:
                summary += f", {counted(len(records), 'IoC')}"
        tags = [tag for record in records for tag in record.get("tags") or ()]
        link = f"https://threatfox.abuse.ch/ioc/{best['id']}/" if best.get("id") else None
        return Verdict(severity, summary + tags_text(tags), link)


class MalwareBazaar(_AbuseCh):
    """MalwareBazaar: is this file hash a known malware sample?"""

    name = "malwarebazaar"
    description = "abuse.ch MalwareBazaar: malware samples by hash, with signature, file type and tags"
    base_url = "https://mb-api.abuse.ch"
    requests: ClassVar = {
        kind: Request("POST", "/api/v1/", data={"query": "get_info", "hash": "{ioc}"})
        for kind in ("md5", "sha1", "sha256")
    }
    reference = "https://bazaar.abuse.ch/browse.php?search={ioc_type}%3A{ioc}"
    not_found_query_statuses = ("hash_not_found",)

    def parse(self, ioc: str, ioc_type: str, data: Any) -> Verdict | None:
        if not self.known(data, ioc_type) or not data.get("data"):
            return None
        sample = data["data"][0]
        signature = sample.get("signature")
        summary = f"{signature or 'unattributed'} {sample.get('file_type') or 'file'} sample"
        if sample.get("file_name"):
            summary += f" '{sample['file_name']}'"
        if sample.get("first_seen"):
            summary += f", first seen {sample['first_seen']}"
        sha256 = sample.get("sha256_hash")
        link = f"https://bazaar.abuse.ch/sample/{sha256}/" if sha256 else None
        return Verdict("high" if signature else "medium", summary + tags_text(sample.get("tags")), link)
