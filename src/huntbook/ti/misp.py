"""MISP: attributes of your own instance that match an IoC.

``POST {base_url}/attributes/restSearch`` with a JSON body ``{"returnFormat": "json", "value": ioc,
"type": [...], "limit": N, "includeEventTags": true, "includeContext": true}`` and the key in the
``Authorization`` header (a wrong key is HTTP 403). The answer is ``{"response": {"Attribute": [...]}}``;
each attribute has ``to_ids``, ``category``, ``type``, ``Tag`` and its ``Event`` (``info``,
``threat_level_id`` with ``includeContext``).

Severity per attribute: the event threat level (1 high, 2 medium, 3 low, 4 undefined = info), or
without one medium for an IDS attribute and low otherwise; an attribute not flagged ``to_ids`` is
context, never above low. The IoC's severity is that of its most severe attribute.

There is no default address: set ``providers.misp.base_url`` (and ``api_key``; ``verify: false`` for
a self-signed certificate). ``limit`` (default 50) caps the attributes asked for.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar, Literal

from huntbook.ti.base import AuthSpec, HttpProvider, Request, Verdict, counted, severity_rank, tags_text

__all__ = ["MISP"]

Severity = Literal["info", "low", "medium", "high"]
_LIMIT = 50
_THREAT_LEVELS: dict[str, Severity] = {"1": "high", "2": "medium", "3": "low", "4": "info"}
#: MISP attribute types searched for each TI type (composite types match on either half)
ATTRIBUTE_TYPES: dict[str, list[str]] = {
    "ipv4": ["ip-src", "ip-dst", "ip-src|port", "ip-dst|port", "domain|ip"],
    "ipv6": ["ip-src", "ip-dst", "ip-src|port", "ip-dst|port", "domain|ip"],
    "dns": ["domain", "hostname", "domain|ip", "hostname|port"],
    "url": ["url", "uri", "link"],
    "email": ["email", "email-src", "email-dst", "email-reply-to"],
    "md5": ["md5", "filename|md5", "malware-sample"],
    "sha1": ["sha1", "filename|sha1"],
    "sha256": ["sha256", "filename|sha256"],
}


def _search(types: list[str]) -> Request:
    body = {
        "returnFormat": "json",
        "value": "{ioc}",
        "type": types,
        "limit": _LIMIT,
        "includeEventTags": True,
        "includeContext": True,
    }
    return Request("POST", "/attributes/restSearch", json=body)


def _flag(value: Any) -> bool:
    """MISP booleans come as ``true``/``false``, ``1``/``0`` or ``"1"``/``"0"``."""
    return value in (True, 1, "1", "true", "True")


def _attribute_severity(attribute: dict[str, Any]) -> Severity:
    to_ids = _flag(attribute.get("to_ids"))
    level = _THREAT_LEVELS.get(str((attribute.get("Event") or {}).get("threat_level_id")))
    if level is None:
        level = "medium" if to_ids else "low"
    if not to_ids and severity_rank(level) > severity_rank("low"):
        return "low"
    return level


class MISP(HttpProvider):
    """A MISP instance (``Authorization: KEY``): attributes, their events, threat levels and tags."""

    name = "misp"
    description = "MISP instance: matching attributes, their events, IDS flags, threat levels and tags"
    base_url = ""
    requests: ClassVar = {ioc_type: _search(types) for ioc_type, types in ATTRIBUTE_TYPES.items()}
    auth = AuthSpec("header", "Authorization")
    rate_limit = 5.0
    reference = "{base_url}/events/index/searchall:{ioc}"
    headers: ClassVar = {"Accept": "application/json"}

    def build_request(self, ioc: str, ioc_type: str) -> Request:
        request = super().build_request(ioc, ioc_type)
        return replace(request, json={**request.json, "limit": int(self.settings.get("limit", _LIMIT))})

    def parse(self, ioc: str, ioc_type: str, data: Any) -> Verdict | None:
        attributes = [a for a in (data.get("response") or {}).get("Attribute") or [] if isinstance(a, dict)]
        if not attributes:
            return None
        ranked = sorted(attributes, key=lambda a: severity_rank(_attribute_severity(a)), reverse=True)
        top, events = ranked[0], [a.get("Event") or {} for a in ranked]
        event_ids = {str(a.get("event_id") or e.get("id")) for a, e in zip(ranked, events, strict=True)}
        for_ids = sum(1 for a in attributes if _flag(a.get("to_ids")))
        found = f"{counted(len(attributes), 'attribute')} in {counted(len(event_ids), 'event')}"
        title = events[0].get("info") or "untitled event"
        summary = f"{found}, {for_ids} for IDS: {title} ({top.get('category') or top.get('type')})"
        tag_lists = [a.get("Tag") or [] for a in ranked] + [e.get("Tag") or [] for e in events]
        summary += tags_text(t.get("name") for tags in tag_lists for t in tags if isinstance(t, dict))
        event_id = top.get("event_id") or events[0].get("id")
        link = f"{self.client.base_url}/events/view/{event_id}" if event_id else None
        return Verdict(_attribute_severity(top), summary, link)
