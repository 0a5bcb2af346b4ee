"""VirusTotal v3 against a loopback server that speaks its documented API."""

from __future__ import annotations

import base64
from typing import Any

from huntbook.testing.loopback import App, LoopbackRequest, LoopbackServer, Reply
from huntbook.testing.ti import CANARY_KEY, TIProviderContract
from huntbook.ti.virustotal import VirusTotal

# id -> attributes, as VirusTotal's objects hold them
_STATS = {"harmless": 60, "malicious": 0, "suspicious": 0, "undetected": 20, "timeout": 0}
KNOWN: dict[str, dict[str, Any]] = {
    "ip_addresses/198.51.100.23": {
        "last_analysis_stats": {**_STATS, "malicious": 12, "suspicious": 2},
        "as_owner": "Example Hosting",
        "country": "NL",
    },
    "ip_addresses/2001:db8::66": {"last_analysis_stats": {**_STATS, "malicious": 1}},
    "domains/evil.example": {"last_analysis_stats": {**_STATS, "malicious": 3}},
    "domains/clean.example": {"last_analysis_stats": _STATS},
    "files/44d88612fea8a8f36de82e1278abb02f": {
        "last_analysis_stats": {**_STATS, "malicious": 60},
        "meaningful_name": "eicar.com",
    },
    "files/3395856ce81f2b7382dee72602f798b642f14140": {"last_analysis_stats": {**_STATS, "suspicious": 1}},
    "files/275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f": {
        "last_analysis_stats": {**_STATS, "malicious": 61}
    },
    "urls/" + base64.urlsafe_b64encode(b"http://evil.example/stage2.ps1").decode().rstrip("="): {
        "last_analysis_stats": {**_STATS, "malicious": 7}
    },
}


def virustotal_app(key: str) -> App:
    """The parts of the v3 API huntbook uses: GET /api/v3/{collection}/{id} with ``x-apikey``."""

    def app(request: LoopbackRequest) -> Reply:
        if request.header("x-apikey") != key:
            return Reply.json(
                {"error": {"code": "WrongCredentialsError", "message": "Wrong API key"}}, status=401
            )
        prefix = "/api/v3/"
        if request.method != "GET" or not request.path.startswith(prefix):
            return Reply.json({"error": {"code": "NotFoundError", "message": "no such endpoint"}}, 404)
        object_id = request.path[len(prefix) :]
        from urllib.parse import unquote

        object_id = unquote(object_id)
        if object_id not in KNOWN:
            return Reply.json(
                {"error": {"code": "NotFoundError", "message": f'"{object_id}" not found'}}, status=404
            )
        collection, _, ident = object_id.partition("/")
        kind = {"ip_addresses": "ip_address", "domains": "domain", "files": "file", "urls": "url"}[collection]
        return Reply.json({"data": {"id": ident, "type": kind, "attributes": KNOWN[object_id]}})

    return app


class TestVirusTotal(TIProviderContract):
    provider = VirusTotal
    app = staticmethod(virustotal_app)
    known = {
        "ipv4": ("198.51.100.23", "high"),
        "ipv6": ("2001:db8::66", "medium"),
        "dns": ("evil.example", "medium"),
        "url": ("http://evil.example/stage2.ps1", "high"),
        "md5": ("44d88612fea8a8f36de82e1278abb02f", "high"),
        "sha1": ("3395856ce81f2b7382dee72602f798b642f14140", "low"),
        "sha256": ("275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f", "high"),
    }
    unknown = {"ipv4": "192.0.2.200", "dns": "unknown.example"}


def test_summary_names_detections_and_owner() -> None:
    with LoopbackServer(virustotal_app(CANARY_KEY)) as server:
        provider = VirusTotal({"api_key": CANARY_KEY, "base_url": server.url, "rate_limit": None})
        result = provider.lookup("198.51.100.23", "ipv4")
        provider.close()
    assert result.summary == "12/94 engines malicious, 2 suspicious (Example Hosting, NL)"
    assert result.reference == "https://www.virustotal.com/gui/search/198.51.100.23"
    clean = KNOWN["domains/clean.example"]["last_analysis_stats"]
    assert clean["malicious"] == 0
