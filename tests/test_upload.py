"""Uploads: the schema check, stable keys, Splunk HEC (acks, gzip), Elasticsearch _bulk (per-item
outcomes) and the LocalStore; 100,000 rows through a 503 mid-batch, a dropped connection and a 429
storm reach the far end exactly once, the receipt says so, and the canary token is nowhere."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from elastic_server import ElasticServer
from huntbook.config import Config
from huntbook.errors import DataError, PluginError, ServiceError
from huntbook.plugins import registry
from huntbook.store import LocalStore
from huntbook.testing.loopback import LoopbackServer, fault_after
from huntbook.upload import Receipt, prepare, safe_url, upload
from huntbook.upload.elastic import BulkUploader
from huntbook.upload.local import LocalUploader
from huntbook.upload.splunk import HecUploader
from splunk_server import SplunkServer

CANARY = "CANARY-hec-7f3a91d2c0"
ES_KEY = ("upload-id", "CANARY-es-5d1e8b")
ROWS = 100_000
FAST = {"backoff": 0.02, "timeout": (2.0, 5.0)}

for _name, _cls in (("splunk", HecUploader), ("elastic", BulkUploader), ("local", LocalUploader)):
    registry("huntbook.uploaders").register(_name, _cls)  # until the entry points are declared


def findings(rows: int, seed: int = 3) -> pd.DataFrame:
    """Rows like an analysis result: a time, text, numbers, a list, a missing value here and there."""
    rng = np.random.default_rng(seed)
    start = np.datetime64("2024-03-01T00:00:00")
    return pd.DataFrame(
        {
            "TimeGenerated": pd.to_datetime(
                start + rng.integers(0, 7 * 86400, rows).astype("timedelta64[s]"), utc=True
            ),
            "DvcHostname": rng.choice(["WS01", "WS02", "DC01", "srv-db"], rows),
            "CommandLine": [f'cmd.exe /c task {i} "quoted" \\ path' for i in range(rows)],
            "Score": rng.random(rows),
            "Port": rng.integers(1, 65535, rows),
            "Tags": [["ti", "hit"] if i % 7 == 0 else [] for i in range(rows)],
            "Note": [None if i % 5 else "reviewed" for i in range(rows)],
        }
    )


@pytest.fixture(scope="module")
def big() -> pd.DataFrame:
    return findings(ROWS)


@pytest.fixture(scope="module")
def big_lines(big: pd.DataFrame) -> set[str]:
    """Every row's command line (unique per row): what the far end must hold, once each."""
    return set(big["CommandLine"])


def logged(caplog: pytest.LogCaptureFixture) -> str:
    return caplog.text + " ".join(str(r.args) for r in caplog.records)


# ---------------------------------------------------------------------------------------------
# The schema check and keys


def test_prepare_names_the_column_and_row_of_a_problem() -> None:
    frame = findings(10)
    with pytest.raises(DataError, match="no time column") as caught:
        prepare(frame.drop(columns=["TimeGenerated"]))
    assert "time_column=" in (caught.value.hint or "")
    bad_time = frame.assign(TimeGenerated=frame["TimeGenerated"].astype(object))
    bad_time.loc[3, "TimeGenerated"] = "yesterday-ish"
    with pytest.raises(DataError, match="row 3 has 'yesterday-ish', which is not a time") as caught:
        prepare(bad_time)
    assert "TimeGenerated" in str(caught.value)
    missing = frame.copy()
    missing.loc[4, "TimeGenerated"] = pd.NaT
    with pytest.raises(DataError, match="row 4 has no time"):
        prepare(missing)
    blob = frame.assign(Payload=[b"\x00"] * 10)
    with pytest.raises(DataError, match="row 0 holds bytes") as caught:
        prepare(blob)
    assert "'Payload'" in str(caught.value)
    odd = frame.assign(Extra=[{1: "x"}] + [None] * 9)
    with pytest.raises(DataError, match="non-text keys"):
        prepare(odd)
    with pytest.raises(DataError, match="set"):
        prepare(frame.assign(Extra=[{"a"}] * 10))


def test_prepare_does_not_change_the_frame_and_keys_are_stable() -> None:
    frame = findings(50)
    frame.loc[7, "Score"] = math.nan
    before = frame.copy()
    items = prepare(frame)
    pd.testing.assert_frame_equal(frame, before)
    assert [i.key for i in items] == [i.key for i in prepare(frame)]
    assert items[7].record["Score"] is None and items[0].record["Tags"] == ["ti", "hit"]
    assert items[0].record["TimeGenerated"].endswith("Z")
    twins = pd.concat([frame.head(1)] * 3, ignore_index=True)
    keys = [i.key for i in prepare(twins)]
    assert len(set(keys)) == 3 and keys[1] == f"{keys[0]}:2" and keys[2] == f"{keys[0]}:3"
    keyed = frame.assign(EventKey=[f"k{i}" for i in range(50)])
    assert [i.key for i in prepare(keyed, key_column="EventKey")][:2] == ["k0", "k1"]
    epoch = frame.assign(when=frame["TimeGenerated"].map(lambda t: t.timestamp())).drop(
        columns=["TimeGenerated"]
    )
    assert prepare(epoch, time_column="when")[0].time == frame.loc[0, "TimeGenerated"].to_pydatetime()


# ---------------------------------------------------------------------------------------------
# Splunk HEC


@pytest.fixture()
def hec() -> Iterator[tuple[SplunkServer, LoopbackServer]]:
    state = SplunkServer(hec_token=CANARY)
    with LoopbackServer(state.app) as server:
        yield state, server


def hec_settings(server: LoopbackServer, **extra: object) -> dict[str, object]:
    return {"url": server.url, "token": CANARY, "index": "hunt_results", "ack_poll": 0.05, **FAST, **extra}


def test_100k_rows_reach_hec_exactly_once_through_faults(
    hec: tuple[SplunkServer, LoopbackServer],
    big: pd.DataFrame,
    big_lines: set[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    state, server = hec
    fault_after(server, "/services/collector/event", after=3, kind="503", times=1)
    fault_after(server, "/services/collector/event", after=6, kind="drop", times=1)
    fault_after(server, "/services/collector/event", after=9, kind="429", times=6, retry_after="0")
    state.lose_batches(0)
    settings = hec_settings(server, batch_bytes=4_000_000)
    receipt = upload(big, to="splunk", config=Config(), ack_timeout=1.0, **settings)
    keys = [e["fields"]["huntbook_id"] for e in state.hec_events]
    lines = [e["event"]["CommandLine"] for e in state.hec_events]
    assert len(keys) == len(set(keys)) == ROWS and set(lines) == big_lines  # every row, once
    assert receipt.ok and receipt.sent == receipt.accepted == ROWS
    assert receipt.rejected == receipt.duplicates == 0
    assert receipt.retried == 8 * 5_000  # 1 (503) + 1 (dropped) + 6 (429) re-sends of a 5,000-row batch
    assert receipt.batches == math.ceil(ROWS / 5_000)
    events = [r for r in server.requests if r.path == "/services/collector/event"]
    assert all(r.header("content-encoding") == "gzip" for r in events)
    assert {r.header("x-splunk-request-channel") for r in events} == {
        events[0].header("x-splunk-request-channel")
    }
    assert state.hec_events[0]["index"] == "hunt_results" and "time" in state.hec_events[0]
    assert CANARY not in logged(caplog) and CANARY not in repr(receipt) and CANARY not in str(receipt)


def test_an_unacknowledged_batch_is_sent_again(hec: tuple[SplunkServer, LoopbackServer]) -> None:
    state, server = hec
    frame = findings(12_000)
    state.lose_batches(1)  # the first batch is taken but never indexed
    receipt = upload(
        frame,
        to="splunk",
        config=Config(),
        ack_timeout=0.5,
        batch_rows=4_000,
        **hec_settings(server, batch_bytes=9_000_000),
    )
    stored = [e["fields"]["huntbook_id"] for e in state.hec_events]
    assert len(stored) == len(set(stored)) == 12_000
    assert receipt.ok and receipt.retried == 4_000 and receipt.warnings
    acks = [r for r in server.requests if r.path == "/services/collector/ack"]
    assert acks and all(r.json()["acks"] for r in acks)


def test_hec_without_acks_and_a_batch_split_by_bytes(hec: tuple[SplunkServer, LoopbackServer]) -> None:
    state, server = hec
    state.use_ack = False
    frame = findings(1_000)
    receipt = upload(
        frame, to="splunk", config=Config(), ack=False, gzip=False, batch_bytes=50_000, **hec_settings(server)
    )
    assert receipt.ok and receipt.accepted == 1_000 and len(state.hec_events) == 1_000
    bodies = [r.body for r in server.requests if r.path == "/services/collector/event"]
    assert len(bodies) == receipt.batches > 1 and max(map(len, bodies)) <= 50_000
    with pytest.raises(ServiceError, match="without an ackId") as caught:
        upload(frame, to="splunk", config=Config(), **hec_settings(server))
    assert "ack=False" in (caught.value.hint or "")


def test_an_event_hec_refuses_is_a_rejection_and_the_rest_is_sent(
    hec: tuple[SplunkServer, LoopbackServer],
) -> None:
    state, server = hec
    frame = findings(10)
    frame.loc[4, "CommandLine"] = "hb-refuse-me"
    state.refuse = "hb-refuse-me"
    receipt = upload(frame, to="splunk", config=Config(), **hec_settings(server))
    assert receipt.accepted == 9 and receipt.rejected == 1 and receipt.sent == 10
    assert receipt.rejections[0].row == 4 and "Invalid data format (code 6)" in receipt.rejections[0].reason
    assert len(state.hec_events) == 9 and all(
        e["event"]["CommandLine"] != "hb-refuse-me" for e in state.hec_events
    )


def test_hec_rows_can_be_searched_back(hec: tuple[SplunkServer, LoopbackServer]) -> None:
    state, server = hec
    upload(findings(30), to="splunk", config=Config(), host_column="DvcHostname", **hec_settings(server))
    rows = state.run("search index=hunt_results host=WS01 | table host CommandLine huntbook_id")
    assert rows and all(r["host"] == "WS01" and r["huntbook_id"] for r in rows)


def test_a_bad_hec_token_stops_with_a_clear_error(
    hec: tuple[SplunkServer, LoopbackServer], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _, server = hec
    wrong = "CANARY-wrong-token-42a"
    with pytest.raises(ServiceError) as caught:
        upload(findings(10), to="splunk", config=Config(), **{**hec_settings(server), "token": wrong})
    assert caught.value.kind == "auth" and caught.value.status == 403
    receipt: Receipt = caught.value.receipt  # type: ignore[attr-defined]
    assert not receipt.complete and receipt.accepted == 0 and not receipt.ok
    for text in (str(caught.value), repr(receipt), logged(caplog)):
        assert wrong not in text and CANARY not in text


# ---------------------------------------------------------------------------------------------
# Elasticsearch _bulk


@pytest.fixture()
def es() -> Iterator[tuple[ElasticServer, LoopbackServer]]:
    state = ElasticServer(api_key=ES_KEY)
    with LoopbackServer(state.app) as server:
        yield state, server


def es_settings(server: LoopbackServer, **extra: object) -> dict[str, object]:
    return {"url": server.url, "api_key": list(ES_KEY), "index": "hunt-results", **FAST, **extra}


def test_100k_rows_reach_elasticsearch_exactly_once_through_faults(
    es: tuple[ElasticServer, LoopbackServer],
    big: pd.DataFrame,
    big_lines: set[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    state, server = es
    state.lose_replies, state.hang = 1, 4.0  # the first batch is stored but its answer comes too late
    fault_after(server, "/_bulk", after=4, kind="503", times=1)
    fault_after(server, "/_bulk", after=7, kind="drop", times=1)
    fault_after(server, "/_bulk", after=10, kind="429", times=6, retry_after="0")
    state.throttle_items(0)
    settings = es_settings(server, timeout=(2.0, 3.0))
    receipt = upload(big, to="elastic", config=Config(), **settings)
    stored = state.documents("hunt-results")
    assert len(stored) == ROWS and {doc["CommandLine"] for _, doc in stored} == big_lines
    assert receipt.ok and receipt.sent == receipt.accepted == ROWS and receipt.duplicates == 0
    assert receipt.retried == 9 * 5_000  # the lost answer, the 503, the drop, six 429s
    assert CANARY not in logged(caplog) and ES_KEY[1] not in logged(caplog) and ES_KEY[1] not in repr(receipt)
    doc = stored[0][1]
    assert doc["@timestamp"].endswith("Z") and doc["@timestamp"][:19] == doc["TimeGenerated"][:19]


def test_only_the_failed_items_are_sent_again(es: tuple[ElasticServer, LoopbackServer]) -> None:
    state, server = es
    frame = findings(2_000)
    state.throttle_items(300)  # the first 300 items of the first request get 429
    receipt = upload(frame, to="elastic", config=Config(), batch_rows=1_000, **es_settings(server))
    assert receipt.ok and state.count("hunt-results") == 2_000
    first, second, third = state.bulk_requests
    assert len(first) == 1_000 and second == first[:300] and len(third) == 1_000
    assert receipt.retried == 300 and receipt.batches == 2


def test_item_errors_are_rejections_with_reasons(es: tuple[ElasticServer, LoopbackServer]) -> None:
    state, server = es
    frame = findings(200)
    frame["Port"] = frame["Port"].astype(object)
    frame.loc[[17, 150], "Port"] = "not-a-port"
    receipt = upload(frame, to="elastic", config=Config(), batch_rows=100, **es_settings(server))
    assert receipt.accepted == 198 and receipt.rejected == 2 and not receipt.ok
    table = receipt.to_frame()
    assert table["row"].tolist() == [17, 150]
    assert table["reason"].str.contains("mapper_parsing_exception").all()
    assert table["reason"].str.contains("Port").all()
    assert state.count("hunt-results") == 198


def test_uploading_again_adds_nothing(es: tuple[ElasticServer, LoopbackServer]) -> None:
    state, server = es
    frame = findings(3_000)
    first = upload(frame, to="elastic", config=Config(), **es_settings(server))
    again = upload(frame, to="elastic", config=Config(), **es_settings(server))
    assert first.accepted == 3_000 and again.accepted == 0 and again.duplicates == 3_000 and again.ok
    assert state.count("hunt-results") == 3_000


def test_files_and_folders_upload_with_bad_records_on_the_receipt(
    es: tuple[ElasticServer, LoopbackServer], tmp_path: Path
) -> None:
    state, server = es
    folder = tmp_path / "exports"
    folder.mkdir()
    lines = [json.dumps({"@timestamp": f"2024-03-01T00:00:{i:02d}Z", "n": i}) for i in range(40)]
    (folder / "a.jsonl").write_text("\n".join(lines[:20]) + "\n{broken\n", encoding="utf-8")
    (folder / "b.jsonl").write_text("\n".join(lines[20:]) + "\n", encoding="utf-8")
    receipt = upload(folder, to="elastic", config=Config(), **es_settings(server))
    assert state.count("hunt-results") == 40 and receipt.accepted == 40
    assert receipt.rejected == 1 and "a.jsonl" in receipt.rejections[0].reason
    assert receipt.sent == 41 and not receipt.ok


def test_bad_es_credentials(es: tuple[ElasticServer, LoopbackServer]) -> None:
    _, server = es
    with pytest.raises(ServiceError) as caught:
        upload(findings(5), to="elastic", config=Config(), **{**es_settings(server), "api_key": CANARY})
    assert caught.value.kind == "auth" and CANARY not in str(caught.value)
    with pytest.raises(DataError, match="no credentials"):
        upload(findings(5), to="elastic", config=Config(), url=server.url, index="x")


def test_bulk_uploads_reach_opensearch_the_same_way() -> None:
    """OpenSearch speaks the same _bulk protocol (without the X-Elastic-Product header, which the
    uploader does not need): rows, per-item duplicates and rejections, basic auth."""
    user, password = "os-uploader", "CANARY-os-pw-3c9d"
    state = ElasticServer(username=user, password=password, distribution="opensearch")
    frame = findings(3_000)
    frame["Port"] = frame["Port"].astype(object)
    frame.loc[[42], "Port"] = "not-a-port"
    settings = {"url": "", "username": user, "password": password, "index": "hunt-results", **FAST}
    with LoopbackServer(state.app) as server:
        settings["url"] = server.url
        first = upload(frame, to="elastic", config=Config(), **settings)
        again = upload(frame, to="elastic", config=Config(), **settings)
        basic = server.requests[0].header("authorization") or ""
    assert first.accepted == 2_999 and first.rejected == 1 and first.to_frame()["row"].tolist() == [42]
    assert again.accepted == 0 and again.duplicates == 2_999
    assert state.count("hunt-results") == 2_999 and basic.startswith("Basic ")
    assert password not in repr(first)


# ---------------------------------------------------------------------------------------------
# LocalStore


def test_local_uploads_append_through_ingestion_and_again_add_nothing(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "case")
    frame = findings(500)
    first = upload(frame, to="local", config=Config(), store=store)
    assert first.ok and first.accepted == 500 and first.batches == 1
    with store.connect() as con:
        assert con.execute("SELECT count(*) FROM events").fetchone() == (500,)
    again = upload(frame, to="local", config=Config(), store=str(store.path))
    assert again.ok and again.accepted == 0 and again.duplicates == 500
    with store.connect() as con:
        assert con.execute("SELECT count(*) FROM events").fetchone() == (500,)
    assert len(list((store.path / "uploads").glob("*.jsonl"))) == 1


def test_local_upload_of_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "case")
    source = tmp_path / "in.jsonl"
    source.write_text('{"TimeGenerated": "2024-03-01T00:00:00Z", "x": 1}\n{oops\n', encoding="utf-8")
    receipt = upload(source, to="local", config=Config(), store=store)
    assert receipt.accepted == 1 and receipt.rejected == 1 and "in.jsonl" in receipt.rejections[0].reason


# ---------------------------------------------------------------------------------------------
# The API


def test_settings_come_from_the_config_with_secret_references(
    hec: tuple[SplunkServer, LoopbackServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, server = hec
    monkeypatch.setenv("HB_TEST_HEC_TOKEN", CANARY)
    token = hb_secret("env:HB_TEST_HEC_TOKEN")
    config = Config(
        connections={"splunk": {"upload": {"url": server.url, "token": token, "index": "from_config"}}}
    )
    receipt = upload(findings(20), to="splunk", config=config, ack_poll=0.05)
    assert receipt.ok and receipt.destination.startswith("index from_config")
    assert {e["index"] for e in state.hec_events} == {"from_config"}


def hb_secret(reference: str) -> object:
    from huntbook.config import Secret

    return Secret(reference)


def test_unknown_target_and_bad_input(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match="no huntbook.uploaders plugin named 'nowhere'"):
        upload(findings(3), to="nowhere", config=Config())
    with pytest.raises(DataError, match="no such file"):
        upload(tmp_path / "no-such-folder", to="local", config=Config(), store=tmp_path / "store")
    with pytest.raises(DataError, match="batch_rows"):
        HecUploader(url="http://127.0.0.1:9", token="t", batch_rows=0)


def test_receipt_text() -> None:
    assert (
        safe_url("https://hunter:CANARY-pw@splunk.example:8088/services?x=1")
        == "https://splunk.example:8088/services"
    )
    receipt = Receipt("elastic", "index x", sent=3, accepted=2, batches=1, duration=0.25)
    receipt.reject(2, "HTTP 400 mapper_parsing_exception: bad")
    assert str(receipt) == (
        "elastic index x: sent 3, accepted 2, duplicates 0, rejected 1, retried 0, batches 1, 0.2 s"
    )
    assert not receipt.ok and receipt.to_frame().to_dict("records") == [
        {"row": 2, "key": None, "reason": "HTTP 400 mapper_parsing_exception: bad"}
    ]
