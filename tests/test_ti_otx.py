"""AlienVault OTX against a loopback server that speaks its documented DirectConnect v1 API."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from huntbook.testing.loopback import App, LoopbackRequest, LoopbackServer, Reply
from huntbook.testing.ti import CANARY_KEY, TIProviderContract
from huntbook.ti.otx import OTX


def _pulses(*names: str) -> list[dict[str, Any]]:
    return [{"id": f"5f{i:022x}", "name": name, "tags": [], "TLP": "white"} for i, name in enumerate(names)]


# (OTX indicator type, indicator) -> the fields of its "general" section
KNOWN: dict[tuple[str, str], dict[str, Any]] = {
    ("IPv4", "198.51.100.23"): {
        "pulses": _pulses(
            "Emotet C2 servers", "SSH brute force sources", "Cobalt Strike team servers", "Mirai", "x", "y"
        ),
        "asn": "AS64500 Example Hosting",
        "country_name": "Netherlands",
    },
    ("IPv6", "2001:db8::66"): {"pulses": _pulses("IPv6 scanners")},
    ("domain", "evil.example"): {"pulses": _pulses("Phishing kit domains", "QakBot delivery", "Loader C2")},
    ("hostname", "cdn.evil.example"): {"pulses": _pulses("QakBot delivery", "Loader C2")},
    ("url", "http://evil.example/stage2.ps1"): {"pulses": _pulses("PowerShell stagers", "a", "b", "c", "d")},
    ("file", "44d88612fea8a8f36de82e1278abb02f"): {"pulses": _pulses("EICAR test files", "AV test samples")},
    ("file", "3395856ce81f2b7382dee72602f798b642f14140"): {"pulses": _pulses("EICAR test files")},
    ("file", "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"): {
        "pulses": _pulses(*(f"sandbox run {i}" for i in range(12)))
    },
    ("domain", "popular.example"): {
        "pulses": _pulses(*(f"sandbox contacted domains {i}" for i in range(40))),
        "validation": [
            {
                "source": "majestic",
                "message": "Whitelisted domain popular.example",
                "name": "Listed on Majestic",
            },
            {
                "source": "whitelist",
                "message": "Whitelisted domain popular.example",
                "name": "Whitelisted domain",
            },
        ],
    },
}
_TYPES = ("IPv4", "IPv6", "domain", "hostname", "url", "file")


def otx_app(key: str) -> App:
    """GET /api/v1/indicators/{type}/{indicator}/general with ``X-OTX-API-KEY``, as OTX answers it."""

    def app(request: LoopbackRequest) -> Reply:
        if request.header("X-OTX-API-KEY") != key:
            return Reply.json({"detail": "Invalid API key"}, status=403)
        prefix = "/api/v1/indicators/"
        parts = request.path[len(prefix) :].split("/") if request.path.startswith(prefix) else []
        if request.method != "GET" or len(parts) != 3 or parts[0] not in _TYPES or parts[2] != "general":
            return Reply.json({"detail": "endpoint not found"}, status=404)
        kind, indicator = parts[0], unquote(parts[1])
        known = KNOWN.get((kind, indicator), {})
        pulses = known.get("pulses", [])
        body = {
            "indicator": indicator,
            "type": kind,
            "sections": ["general", "reputation", "geo", "malware", "url_list", "passive_dns"],
            "pulse_info": {"count": len(pulses), "pulses": pulses[:10], "references": [], "related": {}},
            "validation": known.get("validation", []),
            "base_indicator": {"indicator": indicator, "type": kind} if pulses else {},
        }
        body.update({k: v for k, v in known.items() if k not in ("pulses", "validation")})
        return Reply.json(body)

    return app


class TestOTX(TIProviderContract):
    provider = OTX
    app = staticmethod(otx_app)  # type: ignore[assignment]  # the contract types `app` as a method
    known = {
        "ipv4": ("198.51.100.23", "high"),
        "ipv6": ("2001:db8::66", "low"),
        "dns": ("evil.example", "medium"),
        "url": ("http://evil.example/stage2.ps1", "high"),
        "md5": ("44d88612fea8a8f36de82e1278abb02f", "medium"),
        "sha1": ("3395856ce81f2b7382dee72602f798b642f14140", "low"),
        "sha256": ("275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f", "high"),
    }
    unknown = {"ipv4": "192.0.2.200", "dns": "unknown.example", "md5": "0" * 32}


def _lookup(ioc: str, ioc_type: str) -> tuple[Any, list[LoopbackRequest]]:
    with LoopbackServer(otx_app(CANARY_KEY)) as server:
        provider = OTX({"api_key": CANARY_KEY, "base_url": server.url, "rate_limit": None})
        result = provider.lookup(ioc, ioc_type)
        provider.close()
        return result, list(server.requests)


def test_summary_names_pulses_and_network() -> None:
    result, _ = _lookup("198.51.100.23", "ipv4")
    assert result.summary == (
        "6 OTX pulses: Emotet C2 servers; SSH brute force sources; Cobalt Strike team servers (+3 more)"
        " [AS64500 Example Hosting, Netherlands]"
    )
    assert result.reference == "https://otx.alienvault.com/indicator/ip/198.51.100.23"


def test_severity_edges_one_two_and_five_pulses() -> None:
    one, _ = _lookup("2001:db8::66", "ipv6")
    assert (one.severity, one.summary) == ("low", "1 OTX pulse: IPv6 scanners")
    five, _ = _lookup("http://evil.example/stage2.ps1", "url")
    assert five.severity == "high"
    two, _ = _lookup("cdn.evil.example", "dns")
    assert two.severity == "medium"


def test_sub_domains_use_the_hostname_section() -> None:
    result, requests = _lookup("cdn.evil.example", "dns")
    assert requests[0].path == "/api/v1/indicators/hostname/cdn.evil.example/general"
    assert result.reference == "https://otx.alienvault.com/indicator/hostname/cdn.evil.example"
    _, requests = _lookup("evil.example", "dns")
    assert requests[0].path == "/api/v1/indicators/domain/evil.example/general"


def test_otx_allow_list_lowers_the_verdict_to_info() -> None:
    result, _ = _lookup("popular.example", "dns")
    assert result.status == "ok" and result.severity == "info"
    assert result.summary.endswith("; allow-listed by OTX: Whitelisted domain")
    assert "Listed on Majestic" not in result.summary  # a popularity rank is not an allow-list
