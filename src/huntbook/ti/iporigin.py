"""iporigin, offline: is the address a cloud/hosting machine, a CDN edge, a VPN exit, a Tor exit?

A classification, not a verdict of badness, so the severities stay low: a Tor exit node is
``medium`` (traffic from it is deliberately anonymised), a VPN exit or a hosting provider's address
``low`` (worth a look on a logon, normal for outbound web traffic), a CDN edge, a declared crawler
or a reserved (non-routable) address ``info``. An address in none of iporigin's lists is
``not_found``: most often a residential line, but that is absence of evidence.

The look-up is :func:`huntbook.enrich.hosting` (vectorised over the whole batch, no network).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import ClassVar

import iporigin as _iporigin  # the [geo] extra: without it the plugin fails to load, alone

from huntbook.enrich import hosting
from huntbook.ti.base import Provider, Result

__all__ = ["IpOrigin"]

#: Severity of each iporigin kind (``unknown`` is ``not_found``, see the module docs).
SEVERITY = {"tor": "medium", "vpn": "low", "hosting": "low", "cdn": "info", "bot": "info", "reserved": "info"}
_SUMMARY = {
    "tor": "Tor exit node",
    "vpn": "VPN exit",
    "hosting": "hosting",
    "cdn": "CDN",
    "bot": "declared crawler",
    "reserved": "reserved address (not globally routable)",
}


class IpOrigin(Provider):
    """Hosting / CDN / VPN / Tor / crawler ranges bundled with ``iporigin`` (offline)."""

    name = "iporigin"
    description = f"iporigin {_iporigin.__version__}: hosting, CDN, VPN, Tor and crawler ranges (offline)"
    ioc_types: ClassVar[tuple[str, ...]] = ("ipv4", "ipv6")
    online = False

    def lookup_many(
        self, items: Sequence[tuple[str, str]], *, progress: bool | None = None, workers: int = 8
    ) -> list[Result]:
        """One result per ``(ip, ioc_type)``: ``ok`` with the kind's severity, or ``not_found``."""
        addresses = [ioc for ioc, kind in items if self.supports(kind)]
        table = hosting(addresses) if addresses else None
        tags = {} if table is None else {row.ip: row for row in table.itertuples(index=False)}
        results = []
        for ioc, kind in items:
            row = tags.get(ioc)
            if not self.supports(kind):
                results.append(
                    self.result(ioc, kind, "unsupported", summary=f"iporigin has no {kind} look-up")
                )
            elif row is None or row.category == "invalid":
                results.append(self.result(ioc, kind, "error", summary="not an IP address"))
            elif row.category == "unknown":
                results.append(
                    self.result(
                        ioc,
                        kind,
                        "not_found",
                        severity="info",
                        summary="in no hosting, CDN, VPN or Tor range (often a residential line)",
                    )
                )
            else:
                category = str(row.category)
                provider = row.provider if isinstance(row.provider, str) else ""
                label = _SUMMARY.get(category, category)
                summary = f"{label}: {provider}" if provider and category != "tor" else label
                raw = json.dumps({"kind": category, "provider": provider}, sort_keys=True)
                results.append(
                    self.result(
                        ioc, kind, "ok", severity=SEVERITY.get(category, "info"), summary=summary, raw=raw
                    )
                )
        return results
