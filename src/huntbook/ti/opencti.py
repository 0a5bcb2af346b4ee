"""OpenCTI: observables of your own platform that match an IoC, with their score and labels.

``POST {base_url}/graphql`` with ``Authorization: Bearer TOKEN`` and a query on
``stixCyberObservables(types:, filters:, first:)``. The IoC travels only in the GraphQL
*variables*, as a ``FilterGroup`` (the filter format since OpenCTI 5.12)::

    {"mode": "and", "filters": [{"key": "value", "values": [IOC]}], "filterGroups": []}

(key ``hashes.MD5``, ``hashes.SHA-1`` or ``hashes.SHA-256`` for file hashes). The answer is
``{"data": {"stixCyberObservables": {"edges": [{"node": {...}}]}}}``; errors come as HTTP 200 with
``{"errors": [...]}`` and become status ``error`` (``AUTH_REQUIRED``: an authentication error).
Such answers are never cached.

Severity from ``x_opencti_score`` (the highest of the observable and its indicators): >= 75 high,
>= 50 medium, >= 25 low, else info. There is no default address: set ``providers.opencti.base_url``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from huntbook.errors import ServiceError
from huntbook.ti.base import AuthSpec, HttpProvider, Request, Verdict, counted, tags_text

__all__ = ["OBSERVABLE_QUERY", "OpenCTI"]

Severity = Literal["info", "low", "medium", "high"]

#: The one query sent; the IoC is never part of its text.
OBSERVABLE_QUERY = """
query HuntbookObservables($types: [String], $filters: FilterGroup, $first: Int) {
  stixCyberObservables(types: $types, filters: $filters, first: $first) {
    edges {
      node {
        id
        entity_type
        observable_value
        x_opencti_score
        createdBy { ... on Identity { name } }
        objectLabel { value }
        indicators { edges { node { name x_opencti_score } } }
      }
    }
  }
}
""".strip()

#: TI type -> (observable entity types, filter key)
OBSERVABLES: dict[str, tuple[list[str], str]] = {
    "ipv4": (["IPv4-Addr"], "value"),
    "ipv6": (["IPv6-Addr"], "value"),
    "dns": (["Domain-Name", "Hostname"], "value"),
    "url": (["Url"], "value"),
    "email": (["Email-Addr"], "value"),
    "md5": (["StixFile"], "hashes.MD5"),
    "sha1": (["StixFile"], "hashes.SHA-1"),
    "sha256": (["StixFile"], "hashes.SHA-256"),
}
_FIRST = 10
_AUTH_CODES = frozenset(
    {"AUTH_REQUIRED", "AuthRequired", "FORBIDDEN_ACCESS", "ForbiddenAccess", "UNAUTHENTICATED"}
)


def _search(types: list[str], key: str) -> Request:
    filters = {"mode": "and", "filters": [{"key": key, "values": ["{ioc}"]}], "filterGroups": []}
    variables = {"types": types, "filters": filters, "first": _FIRST}
    return Request("POST", "/graphql", json={"query": OBSERVABLE_QUERY, "variables": variables})


def _indicators(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [edge["node"] for edge in (node.get("indicators") or {}).get("edges") or []]


def _score(node: dict[str, Any]) -> int | None:
    """The highest ``x_opencti_score`` of the observable and its indicators (None: no score)."""
    scores = [node.get("x_opencti_score")] + [i.get("x_opencti_score") for i in _indicators(node)]
    known = [int(s) for s in scores if isinstance(s, int | float)]
    return max(known) if known else None


def _severity(score: int | None) -> Severity:
    if score is None:
        return "info"
    return "high" if score >= 75 else "medium" if score >= 50 else "low" if score >= 25 else "info"


class OpenCTI(HttpProvider):
    """An OpenCTI platform (GraphQL, bearer token): observable score, labels, author, indicators."""

    name = "opencti"
    description = "OpenCTI platform: matching observables with their score, labels, author and indicators"
    base_url = ""
    requests: ClassVar = {ioc_type: _search(*spec) for ioc_type, spec in OBSERVABLES.items()}
    auth = AuthSpec("bearer")
    rate_limit = 5.0
    reference = "{base_url}/dashboard/search/knowledge/{ioc}"
    headers: ClassVar = {"Accept": "application/json"}

    def _error(self, errors: list[Any]) -> ServiceError:
        first: dict[str, Any] = errors[0] if isinstance(errors[0], dict) else {"message": str(errors[0])}
        extensions = first.get("extensions") or {}
        code = str(extensions.get("code") or first.get("name") or "GRAPHQL_ERROR")
        status = (extensions.get("data") or first.get("data") or {}).get("http_status")
        message = str(first.get("message") or "no message")[:200]
        if code in _AUTH_CODES or status in (401, 403):
            return ServiceError(
                f"authentication failed ({code}: {message})",
                kind="auth",
                status=status,
                where=self.name,
                hint="check providers.opencti.api_key (an OpenCTI API token)",
            )
        return ServiceError(f"GraphQL error {code}: {message}", kind="http", where=self.name)

    def parse(self, ioc: str, ioc_type: str, data: Any) -> Verdict | None:
        if data.get("errors"):
            raise self._error(list(data["errors"]))
        nodes = [edge["node"] for edge in data["data"]["stixCyberObservables"]["edges"]]
        if not nodes:
            return None
        top = max(nodes, key=lambda node: _score(node) or -1)
        score, indicators = _score(top), len(_indicators(top))
        detail = str(top.get("entity_type") or "observable")
        if indicators:
            detail += f", {counted(indicators, 'indicator')}"
        summary = f"score {score}/100 ({detail})" if score is not None else f"no score ({detail})"
        if len(nodes) > 1:
            summary += f", {counted(len(nodes), 'observable')}"
        labels = (label.get("value") for node in nodes for label in node.get("objectLabel") or [])
        summary += tags_text(labels, "labels")
        author = (top.get("createdBy") or {}).get("name")
        if author:
            summary += f"; by {author}"
        page = f"{self.client.base_url}/dashboard/observations/observables/{top.get('id')}"
        return Verdict(_severity(score), summary, page if top.get("id") else None)
