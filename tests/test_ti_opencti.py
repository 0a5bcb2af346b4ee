"""OpenCTI against a loopback GraphQL endpoint that speaks its documented schema and error shapes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from huntbook.errors import ServiceError
from huntbook.http import ResponseCache
from huntbook.testing.loopback import App, LoopbackRequest, LoopbackServer, Reply
from huntbook.testing.ti import CANARY_KEY, TIProviderContract
from huntbook.ti.base import Result
from huntbook.ti.opencti import OBSERVABLES, OpenCTI

MD5 = "44d88612fea8a8f36de82e1278abb02f"
SHA1 = "3395856ce81f2b7382dee72602f798b642f14140"
SHA256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
BROKEN = "broken.example"  # the app fails this look-up with a GraphQL error
_HASH_KEYS = {"hashes.MD5": "MD5", "hashes.SHA-1": "SHA-1", "hashes.SHA-256": "SHA-256"}


def _observable(
    number: int,
    entity_type: str,
    value: str,
    score: int | None,
    labels: tuple[str, ...] = (),
    author: str | None = None,
    indicators: tuple[int, ...] = (),
    hashes: dict[str, str] | None = None,
) -> dict[str, Any]:
    node: dict[str, Any] = {
        "id": f"0c5e1f2a-0000-4000-8000-{number:012d}",
        "entity_type": entity_type,
        "observable_value": value,
        "x_opencti_score": score,
        "createdBy": {"name": author} if author else None,
        "objectLabel": [{"value": label} for label in labels],
        "indicators": {"edges": [{"node": {"name": f"[{value}]", "x_opencti_score": s}} for s in indicators]},
    }
    if hashes:
        node["hashes"] = [{"algorithm": k, "hash": v} for k, v in hashes.items()]
    return node


OBSERVED = [
    _observable(1, "IPv4-Addr", "198.51.100.23", 85, ("c2", "cobalt-strike"), "CERT-EU", (90,)),
    _observable(2, "IPv6-Addr", "2001:db8::66", 50),
    _observable(3, "Domain-Name", "evil.example", 60, ("phishing",)),
    _observable(4, "Url", "http://evil.example/stage2.ps1", 80),
    _observable(5, "Email-Addr", "billing@evil.example", 30),
    _observable(6, "StixFile", SHA256, 100, hashes={"MD5": MD5, "SHA-1": SHA1, "SHA-256": SHA256}),
    _observable(7, "Domain-Name", "edge75.example", 75),
    _observable(8, "Domain-Name", "edge74.example", 74),
    _observable(9, "Domain-Name", "edge25.example", 25),
    _observable(10, "Domain-Name", "edge24.example", 24),
    _observable(11, "Domain-Name", "unscored.example", None),
    _observable(12, "Domain-Name", "both.example", 40, ("scanner",)),
    _observable(13, "Hostname", "both.example", 55, ("vpn",)),
]


def _errors(message: str, code: str, http_status: int | None = None) -> Reply:
    extensions: dict[str, Any] = {"code": code}
    if http_status:
        extensions["data"] = {"http_status": http_status, "genre": "TECHNICAL"}
    return Reply.json({"errors": [{"message": message, "extensions": extensions}], "data": None})


def _matches(node: dict[str, Any], key: str, values: list[str]) -> bool:
    if key == "value":
        return node["observable_value"] in values
    algorithm = _HASH_KEYS.get(key)
    return any(h["algorithm"] == algorithm and h["hash"] in values for h in node.get("hashes") or [])


def opencti_app(key: str) -> App:
    """``POST /graphql``: ``stixCyberObservables(types:, filters:, first:)`` with a bearer token.

    Like OpenCTI, failures are HTTP 200 with ``{"errors": [...]}`` (``AUTH_REQUIRED`` for a bad token).
    The IoC must come in the variables: a query that embeds a filter value is refused.
    """

    def app(request: LoopbackRequest) -> Reply:
        if request.path != "/graphql" or request.method != "POST":
            return Reply.text("Cannot GET " + request.path, status=404)
        if request.header("authorization") != f"Bearer {key}":
            return _errors("You must be logged in to do this.", "AUTH_REQUIRED", 401)
        body = request.json()
        query, variables = str(body.get("query") or ""), body.get("variables") or {}
        if "stixCyberObservables(" not in query or "$filters" not in query:
            return _errors("Cannot query field on type Query", "GRAPHQL_VALIDATION_FAILED")
        group = variables.get("filters") or {}
        if group.get("mode") not in ("and", "or") or not isinstance(group.get("filterGroups"), list):
            return _errors('Variable "$filters" got invalid value', "BAD_USER_INPUT")
        values = [str(v) for f in group.get("filters") or [] for v in f.get("values") or []]
        if not values or any(value in query for value in values):
            return _errors("filter values must be passed as variables", "BAD_USER_INPUT")
        if BROKEN in values:
            return _errors("An unknown error has occurred", "INTERNAL_SERVER_ERROR")
        types = variables.get("types") or []
        nodes = [
            node
            for node in OBSERVED
            if (not types or node["entity_type"] in types)
            and all(_matches(node, str(f["key"]), [str(v) for v in f["values"]]) for f in group["filters"])
        ][: int(variables.get("first") or 100)]
        shown = [{k: v for k, v in node.items() if k != "hashes"} for node in nodes]
        page = {"endCursor": None, "hasNextPage": False, "globalCount": len(shown)}
        return Reply.json(
            {"data": {"stixCyberObservables": {"edges": [{"node": n} for n in shown], "pageInfo": page}}}
        )

    return app


class TestOpenCTI(TIProviderContract):
    provider = OpenCTI
    app = staticmethod(opencti_app)
    known = {
        "ipv4": ("198.51.100.23", "high"),
        "ipv6": ("2001:db8::66", "medium"),
        "dns": ("evil.example", "medium"),
        "url": ("http://evil.example/stage2.ps1", "high"),
        "email": ("billing@evil.example", "low"),
        "md5": (MD5, "high"),
        "sha1": (SHA1, "high"),
        "sha256": (SHA256, "high"),
    }
    unknown = {"ipv4": "192.0.2.200", "dns": "unknown.example", "sha256": "0" * 64}


def _lookups(iocs: list[tuple[str, str]], **settings: Any) -> tuple[list[Result], LoopbackServer, str]:
    with LoopbackServer(opencti_app(CANARY_KEY)) as server:
        provider = OpenCTI({"api_key": CANARY_KEY, "base_url": server.url, "rate_limit": None, **settings})
        try:
            return [provider.lookup(*item) for item in iocs], server, server.url
        finally:
            provider.close()


def test_summary_names_score_indicators_labels_and_author() -> None:
    (result,), _, url = _lookups([("198.51.100.23", "ipv4")])
    assert result.summary == "score 90/100 (IPv4-Addr, 1 indicator); labels: c2, cobalt-strike; by CERT-EU"
    assert (
        result.reference == f"{url}/dashboard/observations/observables/0c5e1f2a-0000-4000-8000-000000000001"
    )


def test_score_edges() -> None:
    names = ["edge75.example", "edge74.example", "edge25.example", "edge24.example", "unscored.example"]
    results, _, _ = _lookups([(name, "dns") for name in names])
    assert [r.severity for r in results] == ["high", "medium", "low", "info", "info"]
    assert results[4].summary == "no score (Domain-Name)"


def test_the_ioc_travels_only_in_variables_with_a_bearer_token() -> None:
    _, server, _ = _lookups([(MD5, "md5")])
    sent = server.requests[0]
    assert sent.header("authorization") == f"Bearer {CANARY_KEY}"
    body = sent.json()
    assert MD5 not in body["query"]
    assert body["variables"]["types"] == OBSERVABLES["md5"][0]
    assert body["variables"]["filters"] == {
        "mode": "and",
        "filters": [{"key": "hashes.MD5", "values": [MD5]}],
        "filterGroups": [],
    }


def test_several_observables_are_counted_and_labels_merged() -> None:
    (result,), _, _ = _lookups([("both.example", "dns")])
    assert result.severity == "medium"  # the Hostname (55) beats the Domain-Name (40)
    assert result.summary == "score 55/100 (Hostname), 2 observables; labels: scanner, vpn"


def test_graphql_errors_are_errors_and_never_cached(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    with LoopbackServer(opencti_app(CANARY_KEY)) as server:
        good = {"api_key": CANARY_KEY, "base_url": server.url, "rate_limit": None, "retries": 0}
        results = {}
        for token in ("WRONG-token-0000", CANARY_KEY):
            provider = OpenCTI({**good, "api_key": token}, cache=cache)
            results[token] = [provider.lookup(BROKEN, "dns"), provider.lookup("evil.example", "dns")]
            provider.close()
        refused, broken = results["WRONG-token-0000"][1], results[CANARY_KEY][0]
        assert refused.status == "error" and "authentication failed (AUTH_REQUIRED" in refused.summary
        assert broken.status == "error"
        assert broken.summary == "opencti: GraphQL error INTERNAL_SERVER_ERROR: An unknown error has occurred"
        assert results[CANARY_KEY][1].status == "ok"  # the refusal was not served from the cache
        count = len(server.requests)
        again = OpenCTI(good, cache=cache)
        assert again.lookup("evil.example", "dns").status == "ok"
        assert again.lookup(BROKEN, "dns").status == "error"
        again.close()
        assert len(server.requests) == count + 1  # the clean answer came from the cache, the error did not
    cache.close()


def test_legacy_auth_error_shape_is_an_authentication_error() -> None:
    legacy = {
        "errors": [
            {
                "message": "You must be logged in to do this.",
                "name": "AuthRequired",
                "data": {"http_status": 401},
            }
        ],
        "data": {"me": None},
    }
    provider = OpenCTI({"api_key": CANARY_KEY, "base_url": "https://opencti.example"})
    with pytest.raises(ServiceError, match=r"authentication failed \(AuthRequired") as caught:
        provider.parse("evil.example", "dns", legacy)
    assert caught.value.kind == "auth" and caught.value.status == 401
