"""The sentinel uploader: the real azure-monitor-ingestion client (and azure-identity for client secrets)
over HTTPS against the loopback Logs Ingestion API of tests/sentinel_server.py. 100,000 rows through a
503 mid-batch, a dropped connection and a 429 storm arrive exactly once, and the receipt says so."""

from __future__ import annotations

import gzip
import json
import logging
import math
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

from huntbook.config import Config, Secret
from huntbook.errors import DataError, ServiceError
from huntbook.plugins import registry
from huntbook.testing.loopback import LoopbackServer, fault_after
from huntbook.upload import prepare, upload
from huntbook.upload.sentinel import LogsIngestionUploader
from sentinel_server import EntraApp, LogsIngestionApp, self_signed_cert, serve_https

pytest.importorskip("azure.monitor.ingestion")

TOKEN = "ingest-test-token-3e77a1"
CANARY = "CANARY-dcr-secret-9b42e6f1"  # a client secret that must show nowhere
DCR, STREAM = "dcr-00000000000000000000000000000001", "Custom-HuntFindings"
ROWS = 100_000
FAST: dict[str, Any] = {"backoff": 0.02, "timeout": 10.0}


def findings(rows: int, seed: int = 5) -> pd.DataFrame:
    """Hunt results to push back: a time, text with quotes and backslashes, numbers, a list, gaps."""
    rng = np.random.default_rng(seed)
    start = np.datetime64("2024-03-01T00:00:00")
    return pd.DataFrame(
        {
            "TimeGenerated": pd.to_datetime(
                start + rng.integers(0, 7 * 86400, rows).astype("timedelta64[s]"), utc=True
            ),
            "Computer": rng.choice(["WS01", "WS02", "DC01"], rows),
            "CommandLine": [f'powershell -enc {i:06d} "x" \\ y' for i in range(rows)],
            "Score": rng.random(rows),
            "Tactics": [["Execution"] if i % 3 == 0 else [] for i in range(rows)],
            "Note": [None if i % 4 else "reviewed" for i in range(rows)],
        }
    )


class Ingest:
    """The running loopback services."""

    def __init__(self, app: LogsIngestionApp, server: LoopbackServer, url: str, cert: str, key: str) -> None:
        self.app, self.server, self.url, self.cert, self.key = app, server, url, cert, key

    def settings(self, **extra: Any) -> dict[str, Any]:
        return {
            "endpoint": self.url, "rule_id": DCR, "stream": STREAM, "token": TOKEN, "verify": self.cert,
            **FAST, **extra,
        }  # fmt: skip


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    return self_signed_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def ingest(tls: tuple[str, str]) -> Iterator[Ingest]:
    registry("huntbook.uploaders").register("sentinel", LogsIngestionUploader)  # until the entry point exists
    app = LogsIngestionApp(token=TOKEN, rules={DCR: [STREAM]}, id_field="HuntbookKey")
    with serve_https(app, *tls) as (server, url):
        yield Ingest(app, server, url, *tls)


def logged(caplog: pytest.LogCaptureFixture) -> str:
    return caplog.text + " ".join(str(r.args) for r in caplog.records)


def posts(server: LoopbackServer) -> list[Any]:
    return [r for r in server.requests if r.path.startswith("/dataCollectionRules/")]


def test_100k_rows_arrive_exactly_once_through_faults(
    ingest: Ingest, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    frame = findings(ROWS)
    fault_after(ingest.server, "/streams/", after=3, kind="503", times=1)
    fault_after(ingest.server, "/streams/", after=6, kind="drop", times=1)
    fault_after(ingest.server, "/streams/", after=9, kind="429", times=6, retry_after="0")
    receipt = upload(frame, to="sentinel", config=Config(), **ingest.settings())
    counts = ingest.app.id_counts(DCR, STREAM)
    assert len(counts) == ROWS and set(counts.values()) == {1}  # as many distinct keys as rows, each once
    commands = {row["CommandLine"] for row in ingest.app.rows(DCR, STREAM)}
    assert commands == set(frame["CommandLine"])  # and they are the rows of the frame
    assert receipt.ok and receipt.sent == receipt.accepted == ROWS and receipt.rejected == 0
    sent = posts(ingest.server)
    posted = [gzip.decompress(r.body).count(b'"HuntbookKey":') for r in sent]
    assert len(posted) == receipt.batches + 8  # 1 + 1 + 6 batches were sent again
    assert receipt.retried == sum(posted) - ROWS > 0 and receipt.batches >= math.ceil(ROWS / 5_000)
    assert len(receipt.warnings) == 1 and "may hold them twice (dedupe on HuntbookKey)" in receipt.warnings[0]
    assert all(
        r.header("content-encoding") == "gzip" and r.param("api-version") == "2023-01-01" for r in sent
    )
    assert max(len(gzip.decompress(r.body)) for r in sent) <= 1024 * 1024
    stored = ingest.app.rows(DCR, STREAM)[0]
    assert stored["TimeGenerated"].endswith("Z") and stored["CommandLine"].startswith("powershell -enc")
    assert TOKEN not in logged(caplog) and TOKEN not in repr(receipt)


def test_retry_after_is_honoured(ingest: Ingest) -> None:
    ingest.server.fault("/streams/", "429", times=2, retry_after="1")
    started = time.monotonic()
    receipt = upload(findings(50), to="sentinel", config=Config(), **ingest.settings())
    assert time.monotonic() - started >= 2.0
    assert receipt.ok and receipt.retried == 100 and len(ingest.app.rows(DCR, STREAM)) == 50


def test_a_storm_past_the_retries_stops_and_the_receipt_says_where(ingest: Ingest) -> None:
    fault_after(ingest.server, "/streams/", after=2, kind="429", retry_after="0")
    with pytest.raises(ServiceError, match="429") as caught:
        upload(
            findings(5_000), to="sentinel", config=Config(), **ingest.settings(batch_rows=1_000, retries=2)
        )
    receipt = caught.value.receipt  # type: ignore[attr-defined]
    assert caught.value.kind == "rate_limited" and not receipt.complete and not receipt.ok
    assert receipt.accepted == 2_000 == len(ingest.app.rows(DCR, STREAM))
    assert "stopped at row 2000" in receipt.warnings[-1]


def test_a_long_retry_after_or_a_bad_token_stops_at_once(ingest: Ingest) -> None:
    ingest.server.fault("/streams/", "429", times=1, retry_after="120")
    started = time.monotonic()
    with pytest.raises(ServiceError, match="Retry-After 120 s exceeds max_retry_after") as caught:
        upload(findings(10), to="sentinel", config=Config(), **ingest.settings())
    assert time.monotonic() - started < 5 and caught.value.receipt.accepted == 0  # type: ignore[attr-defined]
    with pytest.raises(ServiceError, match="InvalidAuthenticationToken") as caught:
        upload(findings(10), to="sentinel", config=Config(), **ingest.settings(token="wrong-token"))
    assert caught.value.kind == "auth" and caught.value.status == 403
    assert len(posts(ingest.server)) == 2 and not ingest.app.rows(DCR, STREAM)


def test_a_batch_too_large_is_split_and_an_oversized_row_rejected(ingest: Ingest) -> None:
    ingest.app.max_bytes = 40_000
    frame = findings(1_000)
    frame.loc[10, "CommandLine"] = "A" * 50_000  # more than one call may carry
    receipt = upload(frame, to="sentinel", config=Config(), **ingest.settings())
    assert receipt.accepted == 999 and receipt.rejected == 1 and receipt.sent == 1_000
    assert receipt.rejections[0].row == 10 and "413" in receipt.rejections[0].reason
    assert len(ingest.app.rows(DCR, STREAM)) == len(set(ingest.app.id_counts(DCR, STREAM))) == 999
    assert ingest.app.refused[413] > 0  # the server did refuse some


def test_refused_rows_are_rejections_with_the_api_reason(ingest: Ingest) -> None:
    receipt = upload(findings(30), to="sentinel", config=Config(), **ingest.settings(stream="Custom-Nope"))
    assert receipt.rejected == 30 and receipt.accepted == 0 and not receipt.ok
    assert "InvalidStream" in receipt.rejections[0].reason and receipt.to_frame()["row"].tolist() == list(
        range(30)
    )
    with pytest.raises(ServiceError, match="404") as caught:
        upload(findings(30), to="sentinel", config=Config(), **ingest.settings(rule_id="dcr-unknown"))
    assert "rule_id" in (caught.value.hint or "")


def test_client_secret_via_entra_and_the_canary(ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    entra = EntraApp("tenant-9", {"app-9": "good-secret-4d1c"}, TOKEN)
    with serve_https(entra, ingest.cert, ingest.key) as (login, login_url):
        entra.base_url = login_url
        auth = {
            "auth": "client_secret",
            "tenant_id": "tenant-9",
            "client_id": "app-9",
            "authority": login_url,
        }
        good = upload(findings(20), to="sentinel", config=Config(), **ingest.settings(token=None, **auth,
                      client_secret="good-secret-4d1c"))  # fmt: skip
        assert good.ok and entra.issued == 1
        with pytest.raises(ServiceError) as caught:
            upload(findings(20), to="sentinel", config=Config(),
                   **ingest.settings(token=None, **auth, client_secret=CANARY))  # fmt: skip
        assert any(CANARY in r.body.decode() for r in login.requests)  # it was really sent
    error, receipt = caught.value, caught.value.receipt  # type: ignore[attr-defined]
    assert error.kind == "auth" and "AADSTS7000215" in str(error) and receipt.accepted == 0
    for text in (str(error), repr(error), repr(receipt), str(receipt), logged(caplog)):
        assert CANARY not in text


def test_settings_from_the_config_with_a_secret_reference(
    ingest: Ingest, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("HB_TEST_DCR_TOKEN", TOKEN)
    configured = {**ingest.settings(), "token": Secret("env:HB_TEST_DCR_TOKEN")}
    config = Config(connections={"sentinel": {"upload": configured}})
    receipt = upload(findings(10), to="sentinel", config=config, key_column="CommandLine")
    assert receipt.ok and TOKEN not in logged(caplog)
    stored = ingest.app.rows(DCR, STREAM)
    assert len(stored) == 10 and "HuntbookKey" not in stored[0]  # the key column is the key


def test_column_names_are_checked_before_anything_is_sent(ingest: Ingest) -> None:
    for bad in ("Type", "9lives", "has space", "x" * 46):
        frame = findings(5).rename(columns={"Note": bad})
        with pytest.raises(DataError, match="cannot be a Log Analytics column") as caught:
            upload(frame, to="sentinel", config=Config(), **ingest.settings())
        assert repr(bad) in str(caught.value)
    assert not posts(ingest.server)


def test_tls_verification_stays_on(ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    started = time.monotonic()
    with pytest.raises(ServiceError, match="CERTIFICATE_VERIFY_FAILED") as caught:
        upload(findings(5), to="sentinel", config=Config(), **ingest.settings(verify=True, backoff=1.0))
    assert time.monotonic() - started < 5 and "verify=" in (caught.value.hint or "")  # no retries for it
    caplog.set_level(logging.WARNING)
    with pytest.warns(Warning, match="Unverified HTTPS request"):
        receipt = upload(findings(5), to="sentinel", config=Config(), **ingest.settings(verify=False))
    assert receipt.ok and "TLS certificate verification is turned OFF" in caplog.text


def test_settings_errors_are_clear(ingest: Ingest) -> None:
    base = ingest.settings()
    for change, message in (
        ({"stream": "HuntFindings"}, "not a DCR stream name"),
        ({"endpoint": "ftp://x"}, "not an https URL"),
        ({"rule_id": ""}, "no rule_id"),
        ({"batch_bytes": 2_000_000}, "above the API's"),
        ({"key_field": "bad key"}, "not a Log Analytics column name"),
        ({"token": None, "auth": "client_secret", "client_secret": CANARY}, "needs tenant_id, client_id"),
    ):
        with pytest.raises(DataError, match=message) as caught:
            LogsIngestionUploader(**{**base, **change})
        assert CANARY not in str(caught.value)


def test_the_body_is_a_json_array_of_the_rows(ingest: Ingest) -> None:
    frame = findings(3)
    upload(frame, to="sentinel", config=Config(), **ingest.settings())
    body = json.loads(gzip.decompress(posts(ingest.server)[0].body))
    assert [row["CommandLine"] for row in body] == list(frame["CommandLine"])
    assert body[0]["Tactics"] == ["Execution"] and body[1]["Note"] is None
    assert [row["HuntbookKey"] for row in body] == [item.key for item in prepare(frame)]
