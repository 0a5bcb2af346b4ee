"""Pulsedive: risk level, threats and feeds of IPs, domains and URLs.

Endpoint ``GET /api/info.php?indicator=IOC&key=KEY``: the key is a query parameter (scrubbed from
every log line and error by the HTTP stack, never part of a cache key). Pulsedive documents the key
as optional (key-less requests get stricter limits), so it is sent only when configured. The answer
holds ``risk`` (``none``, ``low``, ``medium``, ``high``, ``critical``, ``unknown``), ``type``, ``threats`` and
``feeds``. An unknown indicator is ``{"error": "Indicator not found."}``, documented with a 404 and
read as ``not_found`` with a 200 too; any other ``error`` answer is an ``error``. Severity: ``high``
and ``critical`` are ``high``, ``medium`` and ``low`` keep their level, ``none`` and ``unknown`` are
``info``. The free plan allows one request a second.
"""

from __future__ import annotations

import base64
from typing import Any, ClassVar

from huntbook.errors import ServiceError
from huntbook.ti.base import AuthSpec, HttpProvider, Request, Verdict

__all__ = ["Pulsedive"]

_INFO = Request("GET", "/api/info.php", params={"indicator": "{ioc}"})
_SEVERITY = {"critical": "high", "high": "high", "medium": "medium", "low": "low"}
_SHOWN = 3


def _names(items: Any, *fields: str) -> list[str]:
    """The first present field of each item (``threats``/``feeds`` entries)."""
    names = []
    for item in items or []:
        if isinstance(item, dict):
            name = next((str(item[f]) for f in fields if item.get(f)), "")
            if name:
                names.append(name)
    return names


def _listed(label: str, names: list[str]) -> str:
    text = f"{label} " + ", ".join(names[:_SHOWN])
    return text + (f" (+{len(names) - _SHOWN} more)" if len(names) > _SHOWN else "")


class Pulsedive(HttpProvider):
    """Pulsedive (``key`` query parameter): risk level with the threats and feeds behind it."""

    name = "pulsedive"
    description = "Pulsedive: risk level, linked threats and feeds for IPs, domains and URLs"
    base_url = "https://pulsedive.com"
    requests: ClassVar = {"ipv4": _INFO, "ipv6": _INFO, "dns": _INFO, "url": _INFO}
    auth = AuthSpec("query", "key")
    key_required = False
    rate_limit = 1.0  # the free plan: 1 request a second (its daily and monthly quotas end as 429)
    reference = "https://pulsedive.com/indicator/?ioc={ioc}"

    def reference_for(self, ioc: str, ioc_type: str) -> str:
        """Pulsedive's indicator page, which takes the value base64-encoded."""
        return self.reference.format(ioc=base64.b64encode(ioc.encode("utf-8")).decode("ascii"))

    def parse(self, ioc: str, ioc_type: str, data: Any) -> Verdict | None:
        if "error" in data:
            message = str(data["error"])
            if "not found" in message.lower():
                return None
            raise ServiceError(
                f"Pulsedive answered an error: {message[:160]}", kind="http", where="pulsedive"
            )
        risk = str(data.get("risk") or "unknown").lower()
        severity: Any = _SEVERITY.get(risk, "info")
        parts = [f"risk {risk}" + (" (retired)" if data.get("retired") else "")]
        threats = _names(data.get("threats"), "name")
        if threats:
            parts.append(_listed("threats", threats))
        feeds = _names(data.get("feeds"), "name", "organization")
        if feeds:
            parts.append(_listed("feeds", feeds))
        iid = data.get("iid")
        link = f"https://pulsedive.com/indicator/?iid={iid}" if isinstance(iid, int) else None
        return Verdict(severity, "; ".join(parts), link)
