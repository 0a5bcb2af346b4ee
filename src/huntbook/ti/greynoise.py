"""GreyNoise Community API: is an IP a mass internet scanner, a known business service, or neither?

Endpoint ``GET /v3/community/{ip}``; a key, when configured, goes in the ``key`` header (the community
API also answers without one, with a smaller quota). The answer holds ``noise`` (seen scanning the
internet), ``riot`` (a known business service, e.g. a CDN or public DNS), ``classification``
(``malicious``, ``benign``, ``unknown``), ``name``, ``link`` and ``last_seen``. An IP GreyNoise has
not seen is a 404 (``not_found``). Severity: ``malicious`` is ``high``; a scanner of unknown intent
is ``low``; a benign scanner or a business service is ``info``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from huntbook.ti.base import AuthSpec, HttpProvider, Request, Verdict

__all__ = ["GreyNoise"]

_COMMUNITY = Request("GET", "/v3/community/{ioc}")


class GreyNoise(HttpProvider):
    """GreyNoise Community (optional ``key`` header): internet scanner and business-service labels."""

    name = "greynoise"
    description = "GreyNoise Community: mass-scanner (noise) and business-service (RIOT) labels for IPv4"
    base_url = "https://api.greynoise.io"
    requests: ClassVar = {"ipv4": _COMMUNITY}
    auth = AuthSpec("header", "key")
    key_required = False
    # the community plan is a small daily/weekly quota, not a rate; one a second keeps bursts polite
    rate_limit = 1.0
    reference = "https://viz.greynoise.io/ip/{ioc}"

    def parse(self, ioc: str, ioc_type: str, data: Any) -> Verdict | None:
        classification = str(data.get("classification") or "unknown").lower()
        name = str(data.get("name") or "")
        named = f": {name}" if name and name.lower() != "unknown" else ""
        seen = f", last seen {data['last_seen']}" if data.get("last_seen") else ""
        link = str(data.get("link") or "") or None
        if classification == "malicious":
            return Verdict("high", f"malicious internet scanner{named}{seen}", link)
        if data.get("riot"):
            return Verdict("info", f"known business service{named} (RIOT){seen}", link)
        if not data.get("noise"):
            return None
        if classification == "benign":
            return Verdict("info", f"benign internet scanner{named}{seen}", link)
        return Verdict("low", f"internet scanner of unknown intent{named}{seen}", link)
