"""URLhaus, ThreatFox and MalwareBazaar against loopback servers that speak their documented APIs."""

from __future__ import annotations

import re
from typing import Any

from huntbook.testing.loopback import App, LoopbackRequest, LoopbackServer, Reply
from huntbook.testing.ti import CANARY_KEY, TIProviderContract
from huntbook.ti.abusech import MalwareBazaar, ThreatFox, URLhaus
from huntbook.ti.base import HttpProvider, Result

_HEX = {"md5": re.compile(r"^[0-9a-f]{32}$"), "sha256": re.compile(r"^[0-9a-f]{64}$")}
MD5 = "0c4ba4d1fd6b5a4e4cc3e8a0e5ab8b3f"
SHA1 = "5c8ea6c7b7a2f9f23ad05c0e4b6f1d4a7d0e9c21"
SHA256 = "6f1d29d0e8c4e0a3b3c1a2f4b5e6d7c8a9b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4"
SHA256_UNSIGNED = "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b"


def _denied(request: LoopbackRequest, key: str) -> Reply | None:
    """abuse.ch's answer to a missing or wrong ``Auth-Key``: HTTP 401."""
    if request.header("auth-key") != key:
        return Reply.json({"query_status": "unknown_auth_key"}, status=401)
    if request.method != "POST":
        return Reply.json({"query_status": "http_post_expected"})
    return None


def _make(provider: type[HttpProvider], server: LoopbackServer) -> HttpProvider:
    return provider({"api_key": CANARY_KEY, "base_url": server.url, "rate_limit": None, "retries": 0})


def _ask(provider: type[HttpProvider], app: App, ioc: str, ioc_type: str) -> tuple[Result, LoopbackServer]:
    with LoopbackServer(app) as server:
        instance = _make(provider, server)
        try:
            return instance.lookup(ioc, ioc_type), server
        finally:
            instance.close()


# -- URLhaus ------------------------------------------------------------------------------------------
URLHAUS_URLS: dict[str, dict[str, Any]] = {
    "http://198.51.100.23/bins/mirai.arm7": {
        "id": "3193886",
        "url_status": "online",
        "host": "198.51.100.23",
        "date_added": "2024-09-27 10:46:08 UTC",
        "threat": "malware_download",
        "tags": ["elf", "mirai"],
    },
    "http://evil.example/stage2.ps1": {
        "id": "3193001",
        "url_status": "offline",
        "host": "evil.example",
        "date_added": "2024-09-20 07:59:40 UTC",
        "threat": "malware_download",
        "tags": ["ps1", "AsyncRAT"],
    },
}
URLHAUS_PAYLOADS = [
    {
        "md5_hash": MD5,
        "sha256_hash": SHA256,
        "file_type": "exe",
        "file_size": "656896",
        "signature": "AsyncRAT",
        "firstseen": "2024-09-20 08:00:01",
        "urls": ["http://evil.example/stage2.ps1"],
    }
]


def _urlhaus_entry(url: str) -> dict[str, Any]:
    entry = URLHAUS_URLS[url]
    return {
        "url": url,
        "urlhaus_reference": f"https://urlhaus.abuse.ch/url/{entry['id']}/",
        "blacklists": {"spamhaus_dbl": "not listed", "surbl": "not listed"},
        "reporter": "loopback",
        "larted": "true",
        **entry,
    }


def urlhaus_app(key: str) -> App:
    """``POST /v1/url/``, ``/v1/host/`` and ``/v1/payload/`` (form fields) with ``Auth-Key``."""

    def app(request: LoopbackRequest) -> Reply:
        denied = _denied(request, key)
        if denied is not None:
            return denied
        if not (request.header("content-type") or "").startswith("application/x-www-form-urlencoded"):
            return Reply.json({"query_status": "invalid_request"})
        form = request.form()
        if request.path == "/v1/url/":
            url = form.get("url", "")
            if not url.startswith(("http://", "https://")):
                return Reply.json({"query_status": "invalid_url"})
            if url not in URLHAUS_URLS:
                return Reply.json({"query_status": "no_results"})
            return Reply.json({"query_status": "ok", **_urlhaus_entry(url)})
        if request.path == "/v1/host/":
            host = form.get("host", "")
            if not host:
                return Reply.json({"query_status": "invalid_host"})
            urls = [_urlhaus_entry(url) for url, entry in URLHAUS_URLS.items() if entry["host"] == host]
            if not urls:
                return Reply.json({"query_status": "no_results"})
            return Reply.json(
                {
                    "query_status": "ok",
                    "urlhaus_reference": f"https://urlhaus.abuse.ch/host/{host}/",
                    "host": host,
                    "firstseen": min(url["date_added"] for url in urls),
                    "url_count": str(len(urls)),
                    "blacklists": {"spamhaus_dbl": "not listed", "surbl": "not listed"},
                    "urls": urls,
                }
            )
        if request.path == "/v1/payload/":
            field, value = next(iter(form.items()), ("", ""))
            kind = {"md5_hash": "md5", "sha256_hash": "sha256"}.get(field)
            if kind is None or not _HEX[kind].match(value):
                return Reply.json({"query_status": f"invalid_{kind or 'hash'}"})
            for payload in URLHAUS_PAYLOADS:
                if payload[field] == value:
                    urls = [{"url": u, "url_status": URLHAUS_URLS[u]["url_status"]} for u in payload["urls"]]
                    body: dict[str, Any] = {k: v for k, v in payload.items() if k != "urls"}
                    body.update(url_count=str(len(urls)), urls=urls)
                    return Reply.json({"query_status": "ok", **body})
            return Reply.json({"query_status": "no_results"})
        return Reply.text("Not Found", status=404)

    return app


class TestURLhaus(TIProviderContract):
    provider = URLhaus
    app = staticmethod(urlhaus_app)
    known = {  # the first one (the faulted one) is in no other request: the URL holds the IP
        "dns": ("evil.example", "medium"),
        "ipv4": ("198.51.100.23", "high"),
        "url": ("http://198.51.100.23/bins/mirai.arm7", "high"),
        "md5": (MD5, "high"),
        "sha256": (SHA256, "high"),
    }
    unknown = {"ipv4": "192.0.2.200", "url": "http://clean.example/", "sha256": "0" * 64}


def test_urlhaus_host_summary_counts_online_urls() -> None:
    result, _ = _ask(URLhaus, urlhaus_app(CANARY_KEY), "198.51.100.23", "ipv4")
    assert result.summary == "1 malware URL (1 online), first seen 2024-09-27 10:46:08 UTC; tags: elf, mirai"
    assert result.reference == "https://urlhaus.abuse.ch/host/198.51.100.23/"


def test_urlhaus_offline_url_is_medium_and_online_is_high() -> None:
    offline, _ = _ask(URLhaus, urlhaus_app(CANARY_KEY), "http://evil.example/stage2.ps1", "url")
    online, _ = _ask(URLhaus, urlhaus_app(CANARY_KEY), "http://198.51.100.23/bins/mirai.arm7", "url")
    assert (offline.severity, online.severity) == ("medium", "high")
    assert offline.summary == (
        "malware_download URL, offline, added 2024-09-20 07:59:40 UTC; tags: ps1, AsyncRAT"
    )
    assert offline.reference == "https://urlhaus.abuse.ch/url/3193001/"


def test_urlhaus_refused_query_is_an_error_naming_the_status() -> None:
    result, server = _ask(URLhaus, urlhaus_app(CANARY_KEY), "not-a-url", "url")
    assert result.status == "error"
    assert "invalid_url" in result.summary
    assert server.requests[0].form() == {"url": "not-a-url"}


def test_urlhaus_payload_uses_the_hash_field_of_its_type() -> None:
    result, server = _ask(URLhaus, urlhaus_app(CANARY_KEY), MD5, "md5")
    assert server.requests[0].path == "/v1/payload/"
    assert server.requests[0].form() == {"md5_hash": MD5}
    assert result.summary == "AsyncRAT payload (exe), served from 1 URL, first seen 2024-09-20 08:00:01"


# -- ThreatFox ----------------------------------------------------------------------------------------
THREATFOX_IOCS: list[dict[str, Any]] = [
    {
        "id": "1234501",
        "ioc": "198.51.100.23:443",
        "ioc_type": "ip:port",
        "threat_type": "botnet_cc",
        "malware_printable": "Cobalt Strike",
        "confidence_level": 100,
        "tags": ["c2", "CobaltStrike"],
    },
    {
        "id": "1234502",
        "ioc": "evil.example",
        "ioc_type": "domain",
        "threat_type": "payload_delivery",
        "malware_printable": "AsyncRAT",
        "confidence_level": 50,
        "tags": None,
    },
    {
        "id": "1234503",
        "ioc": "lowconf.example",
        "ioc_type": "domain",
        "threat_type": "payload_delivery",
        "malware_printable": "AsyncRAT",
        "confidence_level": 49,
        "tags": None,
    },
    {
        "id": "1234504",
        "ioc": "http://evil.example/stage2.ps1",
        "ioc_type": "url",
        "threat_type": "payload_delivery",
        "malware_printable": "AsyncRAT",
        "confidence_level": 75,
        "tags": ["ps1"],
    },
]
#: file hash -> ids of the IoCs ThreatFox links to the sample
THREATFOX_HASHES = {MD5: ["1234504"], SHA256: ["1234504", "1234502"]}


def _threatfox_record(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "threat_type_desc": "",
        "ioc_type_desc": "",
        "malware": f"win.{record['malware_printable'].lower().replace(' ', '_')}",
        "malware_alias": None,
        "first_seen": "2024-09-20 08:00:00 UTC",
        "last_seen": None,
        "reporter": "loopback",
        "reference": None,
        **record,
    }


def threatfox_app(key: str) -> App:
    """``POST /api/v1/`` with a JSON body: ``search_ioc`` (IPs match ``ip:port``) and ``search_hash``."""

    def app(request: LoopbackRequest) -> Reply:
        denied = _denied(request, key)
        if denied is not None:
            return denied
        if request.path != "/api/v1/":
            return Reply.text("Not Found", status=404)
        try:
            body = request.json()
        except ValueError:
            return Reply.json({"query_status": "illegal_json"})
        if body.get("query") == "search_ioc":
            term = str(body.get("search_term") or "")
            if not term:
                return Reply.json({"query_status": "illegal_search_term"})
            exact = bool(body.get("exact_match"))
            with_port = f"{term}:"  # IPs are stored as ip:port IoCs
            hits = [r for r in THREATFOX_IOCS if r["ioc"] == term or (not exact and with_port in r["ioc"])]
        elif body.get("query") == "search_hash":
            digest = str(body.get("hash") or "")
            if not (_HEX["md5"].match(digest) or _HEX["sha256"].match(digest)):
                return Reply.json({"query_status": "illegal_hash"})
            ids = THREATFOX_HASHES.get(digest, [])
            hits = [r for r in THREATFOX_IOCS if r["id"] in ids]
        else:
            return Reply.json({"query_status": "unknown_query"})
        if not hits:
            return Reply.json({"query_status": "no_result", "data": "Your search did not yield any results"})
        return Reply.json({"query_status": "ok", "data": [_threatfox_record(r) for r in hits]})

    return app


class TestThreatFox(TIProviderContract):
    provider = ThreatFox
    app = staticmethod(threatfox_app)
    known = {
        "ipv4": ("198.51.100.23", "high"),
        "dns": ("evil.example", "medium"),
        "url": ("http://evil.example/stage2.ps1", "high"),
        "md5": (MD5, "high"),
        "sha256": (SHA256, "high"),
    }
    unknown = {"ipv4": "192.0.2.200", "dns": "unknown.example", "md5": "f" * 32}


def test_threatfox_summary_names_family_threat_and_matched_ioc() -> None:
    result, server = _ask(ThreatFox, threatfox_app(CANARY_KEY), "198.51.100.23", "ipv4")
    assert result.summary == (
        "Cobalt Strike botnet_cc (confidence 100%) as 198.51.100.23:443; tags: c2, CobaltStrike"
    )
    assert result.reference == "https://threatfox.abuse.ch/ioc/1234501/"
    assert server.requests[0].json() == {"query": "search_ioc", "search_term": "198.51.100.23"}


def test_threatfox_confidence_edges() -> None:
    fifty, _ = _ask(ThreatFox, threatfox_app(CANARY_KEY), "evil.example", "dns")
    forty_nine, _ = _ask(ThreatFox, threatfox_app(CANARY_KEY), "lowconf.example", "dns")
    seventy_five, _ = _ask(ThreatFox, threatfox_app(CANARY_KEY), "http://evil.example/stage2.ps1", "url")
    assert (forty_nine.severity, fifty.severity, seventy_five.severity) == ("low", "medium", "high")


def test_threatfox_hash_lookup_uses_search_hash_and_counts_linked_iocs() -> None:
    result, server = _ask(ThreatFox, threatfox_app(CANARY_KEY), SHA256, "sha256")
    assert server.requests[0].json() == {"query": "search_hash", "hash": SHA256}
    assert result.summary == (
        "AsyncRAT sample linked to 2 IoCs, e.g. http://evil.example/stage2.ps1"
        " (payload_delivery, confidence 75%); tags: ps1"
    )


# -- MalwareBazaar ------------------------------------------------------------------------------------
MB_SAMPLES: list[dict[str, Any]] = [
    {
        "sha256_hash": SHA256,
        "sha1_hash": "1f2e3d4c5b6a79880716253443526170f9e8d7c6",
        "md5_hash": MD5,
        "first_seen": "2024-09-20 08:00:01",
        "last_seen": None,
        "file_name": "invoice.exe",
        "file_size": 656896,
        "file_type_mime": "application/x-dosexec",
        "file_type": "exe",
        "reporter": "loopback",
        "signature": "AsyncRAT",
        "tags": ["AsyncRAT", "exe"],
    },
    {
        "sha256_hash": SHA256_UNSIGNED,
        "sha1_hash": SHA1,
        "md5_hash": "aa" * 16,
        "first_seen": "2024-09-21 11:12:13",
        "last_seen": None,
        "file_name": "doc.js",
        "file_size": 1204,
        "file_type_mime": "text/plain",
        "file_type": "js",
        "reporter": "loopback",
        "signature": None,
        "tags": None,
    },
]


def malwarebazaar_app(key: str) -> App:
    """``POST /api/v1/`` form ``query=get_info&hash=...`` (MD5, SHA1 or SHA256)."""

    def app(request: LoopbackRequest) -> Reply:
        denied = _denied(request, key)
        if denied is not None:
            return denied
        if request.path != "/api/v1/":
            return Reply.text("Not Found", status=404)
        form = request.form()
        if form.get("query") != "get_info":
            return Reply.json({"query_status": "unknown_query"})
        digest = form.get("hash", "").lower()
        if not digest:
            return Reply.json({"query_status": "no_hash_provided"})
        if not re.fullmatch(r"[0-9a-f]{32}|[0-9a-f]{40}|[0-9a-f]{64}", digest):
            return Reply.json({"query_status": "illegal_hash"})
        for sample in MB_SAMPLES:
            if digest in (sample["md5_hash"], sample["sha1_hash"], sample["sha256_hash"]):
                return Reply.json({"query_status": "ok", "data": [sample]})
        return Reply.json({"query_status": "hash_not_found"})

    return app


class TestMalwareBazaar(TIProviderContract):
    provider = MalwareBazaar
    app = staticmethod(malwarebazaar_app)
    known = {"sha256": (SHA256, "high"), "md5": (MD5, "high"), "sha1": (SHA1, "medium")}
    unknown = {"sha256": "f" * 64, "md5": "e" * 32}


def test_malwarebazaar_summary_and_sample_link() -> None:
    result, server = _ask(MalwareBazaar, malwarebazaar_app(CANARY_KEY), MD5, "md5")
    assert server.requests[0].form() == {"query": "get_info", "hash": MD5}
    assert result.summary == (
        "AsyncRAT exe sample 'invoice.exe', first seen 2024-09-20 08:00:01; tags: AsyncRAT, exe"
    )
    assert result.reference == f"https://bazaar.abuse.ch/sample/{SHA256}/"


def test_malwarebazaar_unsigned_sample_is_medium_and_illegal_hash_is_an_error() -> None:
    unsigned, _ = _ask(MalwareBazaar, malwarebazaar_app(CANARY_KEY), SHA1, "sha1")
    assert unsigned.severity == "medium"
    assert unsigned.summary == "unattributed js sample 'doc.js', first seen 2024-09-21 11:12:13"
    illegal, _ = _ask(MalwareBazaar, malwarebazaar_app(CANARY_KEY), "xyz", "sha256")
    assert illegal.status == "error" and "illegal_hash" in illegal.summary


def test_not_found_answers_keep_the_raw_status() -> None:
    result, _ = _ask(MalwareBazaar, malwarebazaar_app(CANARY_KEY), "f" * 64, "sha256")
    assert result.status == "not_found"
    assert '"hash_not_found"' in result.raw
