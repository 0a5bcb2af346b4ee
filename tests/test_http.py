"""The shared HTTP stack: retries, Retry-After, rate limit, cache, limits, and secrets kept out of errors."""

from __future__ import annotations

import email.utils
import logging
import time
from pathlib import Path

import pytest

from huntbook import http as hb_http
from huntbook.config import Secret
from huntbook.errors import ServiceError
from huntbook.http import Answer, Auth, HttpClient, ResponseCache, fan_out, redact
from huntbook.report import Report
from huntbook.testing.loopback import LoopbackRequest, LoopbackServer, Reply

CANARY = "CANARY-http-9f3e2d1c"


def _echo(request: LoopbackRequest) -> Reply:
    if request.path == "/big":
        return Reply(200, b"x" * (hb_http._MAX_BODY + 10))
    return Reply.json({"path": request.path, "query": dict(request.query), "key": request.header("x-key")})


@pytest.fixture()
def server() -> LoopbackServer:
    with LoopbackServer(_echo) as running:
        yield running


def _client(server: LoopbackServer, **options: object) -> HttpClient:
    settings = {"retries": 2, "backoff": 0.01, "timeout": (0.5, 0.5), "deadline": 1.0, **options}
    return HttpClient("test", base_url=server.url, **settings)  # type: ignore[arg-type]


def test_auth_is_added_at_send_time_and_never_in_the_cache_key(
    server: LoopbackServer, tmp_path: Path
) -> None:
    cache = ResponseCache(tmp_path)
    with _client(server, auth=Auth.header("X-Key", CANARY), cache=cache) as client:
        first = client.get("/a", params={"q": "1"})
        second = client.get("/a", params={"q": "1"})
    assert first.json()["key"] == CANARY and not first.cached
    assert second.cached and len(server.requests) == 1
    cache.close()
    assert CANARY.encode() not in (tmp_path / "http-cache.sqlite").read_bytes()
    assert "***" in repr(Auth.header("X-Key", CANARY)) and CANARY not in repr(Auth.header("X-Key", CANARY))


def test_cache_ttl_expires_and_errors_are_not_cached(server: LoopbackServer, tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path, ttl=0.0)
    with _client(server, cache=cache) as client:
        client.get("/a")
        client.get("/a")
    assert len(server.requests) == 2  # ttl 0: every read is a miss
    server.clear()
    server.fault("/flaky", "500")
    with _client(server, cache=ResponseCache(tmp_path / "b"), retries=0) as client:
        for _ in range(2):
            with pytest.raises(ServiceError):
                client.get("/flaky")
    assert len(server.requests) == 2
    assert ResponseCache(tmp_path / "b").clear() == 0


def test_query_keys_are_redacted_from_errors_and_logs(
    server: LoopbackServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.fault("/down", "503")
    with _client(server, auth=Auth.query("key", Secret("env:HB_TEST_CANARY"))) as client:
        import os

        os.environ["HB_TEST_CANARY"] = CANARY
        try:
            with pytest.raises(ServiceError) as caught:
                client.get("/down")
        finally:
            del os.environ["HB_TEST_CANARY"]
    assert caught.value.status == 503 and caught.value.kind == "http"
    assert CANARY in server.requests[0].text  # it was sent ...
    assert CANARY not in str(caught.value)  # ... and is in no message
    messages = [r.getMessage() for r in caplog.records]
    assert any("HTTP Request" in m for m in messages), "httpx logged the requests"
    assert not [m for m in messages if CANARY in m]
    assert redact(f"x {CANARY} y") == "x *** y"


def test_retry_after_http_date_and_seconds() -> None:
    now = time.time()
    assert hb_http._retry_after("7") == 7.0
    assert hb_http._retry_after(email.utils.formatdate(now + 30, usegmt=True), now=now) == pytest.approx(
        30, abs=1
    )
    assert hb_http._retry_after("soon") is None and hb_http._retry_after(None) is None


def test_transient_faults_are_retried_and_attempts_counted(server: LoopbackServer) -> None:
    server.fault("/x", "503", times=2)
    with _client(server) as client:
        answer = client.get("/x")
    assert answer.status == 200 and answer.attempts == 3
    server.clear()
    server.fault("/drop", "drop", times=1)
    with _client(server) as client:
        assert client.get("/drop").status == 200


def test_kinds_of_failure(server: LoopbackServer) -> None:
    cases = {"/auth": "auth", "/slow": "slow", "/hang": "timeout"}
    for path, kind in cases.items():
        server.fault(path, kind, hang=1.0, drip=0.2)
    with _client(server, retries=0, deadline=0.6, timeout=(0.3, 0.3)) as client:
        kinds = {}
        for path in cases:
            with pytest.raises(ServiceError) as caught:
                client.get(path)
            kinds[path] = caught.value.kind
        with pytest.raises(ServiceError) as too_large:
            client.get("/big")
    assert kinds == {"/auth": "auth", "/slow": "timeout", "/hang": "timeout"}
    assert too_large.value.kind == "too_large"
    assert Answer(200, b"{bad").text == "{bad"
    with pytest.raises(ServiceError, match="not valid JSON"):
        Answer(200, b"{bad").json()


def test_404_is_an_answer_and_other_statuses_can_be_ok(server: LoopbackServer) -> None:
    server.fault("/gone", "404")
    server.fault("/accepted", "202")
    with _client(server) as client:
        assert client.get("/gone").status == 404
        assert client.request("GET", "/accepted", ok_statuses=(200, 202)).status == 202


def test_rate_limit_spaces_requests(server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    real_sleep = time.sleep
    monkeypatch.setattr(hb_http.time, "sleep", lambda s: (waits.append(s), real_sleep(0)))
    with _client(server, rate_limit=2.0) as client:
        for _ in range(3):
            client.get("/r")
    # a burst of one, then each request waits for its token: about 0.5 s each at 2 per second
    assert len(waits) >= 2 and sum(waits) >= 0.9


def test_turning_tls_verification_off_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="huntbook.http"):
        HttpClient("svc", base_url="https://127.0.0.1:9", verify=False).close()
    assert "TLS certificate verification is turned OFF" in caplog.text


def test_fan_out_keeps_order() -> None:
    assert fan_out(lambda x: x * 2, list(range(50)), workers=4) == [x * 2 for x in range(50)]
    assert fan_out(str, []) == []


def test_a_report_of_failed_lookups_holds_no_key(server: LoopbackServer, tmp_path: Path) -> None:
    from huntbook.ti import lookup
    from huntbook.ti.virustotal import VirusTotal

    server.fault("", "500")
    provider = VirusTotal({"api_key": CANARY, "base_url": server.url, "retries": 0, "rate_limit": None})
    results = lookup(["198.51.100.23", "evil.example"], [provider], cache=False)
    provider.close()
    assert set(results["status"]) == {"error"}
    report = Report("TI")
    report.add("Verdicts", table=results)
    html = report.save(tmp_path / "r.html").read_text(encoding="utf-8")
    assert "198.51.100.23" in html and CANARY not in html
    assert CANARY not in results.to_csv()
