"""MISP against a loopback instance that speaks its documented restSearch API."""

from __future__ import annotations

from typing import Any

from huntbook.testing.loopback import App, LoopbackRequest, LoopbackServer, Reply
from huntbook.testing.ti import CANARY_KEY, TIProviderContract
from huntbook.ti.base import Result
from huntbook.ti.misp import ATTRIBUTE_TYPES, MISP

MD5 = "44d88612fea8a8f36de82e1278abb02f"
SHA1 = "3395856ce81f2b7382dee72602f798b642f14140"
SHA256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
AUTH_FAILED = (
    "Authentication failed. Please make sure you pass the API key of an API enabled user along in the"
    " Authorization header."
)

EVENTS: dict[str, dict[str, Any]] = {
    "101": {"info": "Emotet C2 servers March", "threat_level_id": "1", "Tag": ["tlp:amber"]},
    "102": {"info": "Phishing wave - invoice lures", "threat_level_id": "2", "Tag": []},
    "103": {"info": "Sandbox noise", "threat_level_id": "4", "Tag": []},
    "104": {"info": "Internet scanners", "threat_level_id": "3", "Tag": ["tlp:white"]},
}
# (event, type, category, value, to_ids, attribute tags)
ATTRIBUTES: list[tuple[str, str, str, str, bool, list[str]]] = [
    ("101", "ip-dst", "Network activity", "198.51.100.23", True, ["malware:emotet"]),
    ("104", "ip-src|port", "Network activity", "198.51.100.23|443", False, []),
    ("102", "ip-dst", "Network activity", "2001:db8::66", True, []),
    ("102", "domain", "Network activity", "evil.example", True, []),
    ("101", "hostname", "Network activity", "context.example", False, []),
    ("101", "url", "Network activity", "http://evil.example/stage2.ps1", True, []),
    ("102", "email-src", "Payload delivery", "billing@evil.example", True, []),
    ("101", "filename|md5", "Payload delivery", f"invoice.exe|{MD5}", True, []),
    ("103", "sha1", "Payload delivery", SHA1, True, []),
    ("102", "sha256", "Payload delivery", SHA256, True, []),
]


def _event(event_id: str, context: bool) -> dict[str, Any]:
    event = {
        "id": event_id,
        "org_id": "1",
        "orgc_id": "1",
        "distribution": "1",
        "info": EVENTS[event_id]["info"],
    }
    event["uuid"] = f"5e1b0f0a-0000-4000-8000-000000000{event_id}"
    if context:
        event.update(threat_level_id=EVENTS[event_id]["threat_level_id"], analysis="2", published=True)
    return event


def _attribute(index: int, body: dict[str, Any]) -> dict[str, Any]:
    event_id, kind, category, value, to_ids, tags = ATTRIBUTES[index]
    tag_list: list[dict[str, Any]] = [
        {"id": str(100 + n), "name": name, "colour": "#ff0000"} for n, name in enumerate(tags)
    ]
    if body.get("includeEventTags"):
        tag_list += [{"id": "900", "name": name, "inherited": 1} for name in EVENTS[event_id]["Tag"]]
    return {
        "id": str(1000 + index),
        "event_id": event_id,
        "object_id": "0",
        "category": category,
        "type": kind,
        "value": value,
        "to_ids": to_ids,
        "uuid": f"6a2c1d3e-0000-4000-8000-00000000{1000 + index}",
        "timestamp": "1711000000",
        "distribution": "5",
        "comment": "",
        "deleted": False,
        "Event": _event(event_id, bool(body.get("includeContext"))),
        "Tag": tag_list,
    }


def misp_app(key: str) -> App:
    """``POST /attributes/restSearch`` (JSON body, ``Authorization: KEY``, ``Accept: application/json``)."""

    def app(request: LoopbackRequest) -> Reply:
        if request.header("authorization") != key:
            return Reply.json({"name": AUTH_FAILED, "message": AUTH_FAILED, "url": request.path}, status=403)
        if request.path != "/attributes/restSearch" or request.method != "POST":
            return Reply.json({"name": "Not Found", "message": "Not Found", "url": request.path}, status=404)
        if request.header("accept") != "application/json":
            return Reply.text("<html><body>MISP</body></html>", content_type="text/html")
        if request.header("content-type") != "application/json":
            return Reply.json(
                {"name": "Bad Request", "message": "Bad Request", "url": request.path}, status=400
            )
        body = request.json()
        if body.get("returnFormat") != "json" or not body.get("value"):
            return Reply.json(
                {"name": "Bad Request", "message": "Bad Request", "url": request.path}, status=400
            )
        types = body.get("type") or []
        types = [types] if isinstance(types, str) else types
        hits = [
            _attribute(index, body)
            for index, (_, kind, _, value, _, _) in enumerate(ATTRIBUTES)
            if body["value"] in value.split("|") and (not types or kind in types)
        ]
        return Reply.json({"response": {"Attribute": hits[: int(body.get("limit") or len(hits))]}})

    return app


class TestMISP(TIProviderContract):
    provider = MISP
    app = staticmethod(misp_app)
    known = {
        "ipv4": ("198.51.100.23", "high"),
        "ipv6": ("2001:db8::66", "medium"),
        "dns": ("evil.example", "medium"),
        "url": ("http://evil.example/stage2.ps1", "high"),
        "email": ("billing@evil.example", "medium"),
        "md5": (MD5, "high"),
        "sha1": (SHA1, "info"),
        "sha256": (SHA256, "medium"),
    }
    unknown = {"ipv4": "192.0.2.200", "dns": "unknown.example", "sha256": "0" * 64}


def _lookup(ioc: str, ioc_type: str, **settings: Any) -> tuple[Result, LoopbackServer, str]:
    with LoopbackServer(misp_app(CANARY_KEY)) as server:
        provider = MISP({"api_key": CANARY_KEY, "base_url": server.url, "rate_limit": None, **settings})
        try:
            return provider.lookup(ioc, ioc_type), server, server.url
        finally:
            provider.close()


def test_summary_counts_attributes_and_events_and_names_the_worst_event() -> None:
    result, _, url = _lookup("198.51.100.23", "ipv4")
    assert result.summary == (
        "2 attributes in 2 events, 1 for IDS: Emotet C2 servers March (Network activity);"
        " tags: malware:emotet, tlp:amber, tlp:white"
    )
    assert result.reference == f"{url}/events/view/101"


def test_request_is_a_typed_rest_search_with_the_key_as_authorization() -> None:
    _, server, _ = _lookup("evil.example", "dns", limit=5)
    sent = server.requests[0]
    assert sent.header("authorization") == CANARY_KEY  # the bare key, no "Bearer"
    body = sent.json()
    assert body["value"] == "evil.example" and body["returnFormat"] == "json"
    assert body["type"] == ATTRIBUTE_TYPES["dns"] and body["limit"] == 5
    assert body["includeContext"] is True


def test_context_attribute_is_capped_at_low_despite_a_high_threat_level() -> None:
    result, _, _ = _lookup("context.example", "dns")
    assert result.status == "ok"
    assert result.severity == "low"  # event 101 is threat level 1 (high), but to_ids is false
    assert result.summary.startswith("1 attribute in 1 event, 0 for IDS: Emotet C2 servers March")


def test_without_a_threat_level_the_ids_flag_decides() -> None:
    provider = MISP({"api_key": CANARY_KEY, "base_url": "https://misp.example"})
    ids = {"response": {"Attribute": [{"to_ids": "1", "event_id": "7", "Event": {"id": "7", "info": "x"}}]}}
    not_ids = {
        "response": {"Attribute": [{"to_ids": "0", "event_id": "7", "Event": {"id": "7", "info": "x"}}]}
    }
    verdict_ids = provider.parse("a.example", "dns", ids)
    verdict_context = provider.parse("a.example", "dns", not_ids)
    assert verdict_ids is not None and verdict_ids.severity == "medium"
    assert verdict_context is not None and verdict_context.severity == "low"
    assert provider.parse("a.example", "dns", {"response": {"Attribute": []}}) is None
    provider.close()


def test_threat_level_undefined_is_info() -> None:
    result, _, _ = _lookup(SHA1, "sha1")
    assert (result.status, result.severity) == ("ok", "info")


def test_no_base_url_is_a_status_naming_the_setting() -> None:
    result = MISP({"api_key": CANARY_KEY}).lookup("198.51.100.23", "ipv4")
    assert result.status == "no_key"
    assert "providers.misp.base_url" in result.summary
