"""LocalStore ingestion: counts, idempotency, losslessness, quarantine, normalization."""

from __future__ import annotations

import csv
import gzip
import io
import json
import zipfile
from pathlib import Path

import pandas as pd
import pytest

import huntbook as hb
from huntbook.errors import IngestError, StoreError
from huntbook.schema import TABLES


def _jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _evtx_json(eid: int, data: dict, *, computer: str = "WS01.corp.local", rid: int = 1, t: str = "") -> dict:
    return {
        "Event": {
            "System": {
                "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing"}},
                "EventID": eid,
                "TimeCreated": {
                    "#attributes": {"SystemTime": t or f"2026-10-05T10:00:{rid % 60:02d}.000000Z"}
                },
                "EventRecordID": rid,
                "Channel": "Security",
                "Computer": computer,
            },
            "EventData": data,
        }
    }


PROC = {
    "SubjectUserSid": "S-1-5-21-1-1104",
    "SubjectUserName": "jsmith",
    "SubjectDomainName": "CORP",
    "SubjectLogonId": "0x5a1f3",
    "NewProcessId": "0x1a2c",
    "NewProcessName": "C:\\Windows\\System32\\cmd.exe",
    "TokenElevationType": "%%1936",
    "ProcessId": "0x44c",
    "CommandLine": "cmd.exe /c whoami <script>alert(1)</script>",
    "TargetUserName": "-",
    "TargetDomainName": "-",
    "TargetLogonId": "0x0",
    "ParentProcessName": "C:\\Windows\\explorer.exe",
    "MandatoryLabel": "S-1-16-8192",
}


def test_ingest_normalizes_windows_json_and_is_idempotent(tmp_path: Path) -> None:
    records = [_evtx_json(4688, PROC, rid=i) for i in range(1, 4)]
    records.append(
        _evtx_json(
            4625,
            {
                "TargetUserName": "alice",
                "TargetDomainName": "CORP",
                "LogonType": "3",
                "IpAddress": "203.0.113.66",
                "IpPort": "50123",
                "Status": "0xc000006d",
                "SubStatus": "0xC000006A",
                "WorkstationName": "-",
            },
            rid=9,
        )
    )
    src = _jsonl(tmp_path / "security.jsonl", records)
    store = hb.LocalStore(tmp_path / "store")
    summary = store.ingest(src, progress=False)
    assert list(summary.columns[:6]) == ["file", "format", "records", "ingested", "quarantined", "duplicates"]
    row = summary.iloc[0]
    assert (row.format, row.records, row.ingested, row.quarantined, row.duplicates) == (
        "evtx_json",
        4,
        4,
        0,
        0,
    )

    with store.connect() as con:
        procs = con.sql("SELECT * FROM process_events ORDER BY TimeGenerated").df()
        auth = con.sql("SELECT * FROM authentication").df()
        events = con.sql("SELECT * FROM events").df()
    assert len(procs) == 3 and len(auth) == 1 and len(events) == 4
    first = procs.iloc[0]
    assert first.TargetProcessName == PROC["NewProcessName"]
    assert first.TargetProcessCommandLine == PROC["CommandLine"]
    assert first.ActorUsername == "CORP\\jsmith"
    assert first.TargetUserSessionId == "0x5a1f3"  # TargetLogonId 0x0 -> the subject's session
    assert first.ActingProcessName == PROC["ParentProcessName"]
    assert first.DvcHostname == "WS01.corp.local"
    assert str(first.TimeGenerated.tz) == "UTC"
    fail = auth.iloc[0]
    assert (fail.EventResult, fail.LogonType, fail.SrcIpAddr, fail.SrcPortNumber) == (
        "Failure",
        3,
        "203.0.113.66",
        50123,
    )
    assert fail.TargetUsername == "CORP\\alice" and fail.EventResultDetails == "0xc000006a"
    assert fail.SrcHostname is None  # '-' means absent
    # Lossless: every source field is in raw, and normalized rows join back to it.
    raws = {json.dumps(json.loads(r), sort_keys=True) for r in events["raw"]}
    assert raws == {json.dumps(r, sort_keys=True) for r in records}
    assert set(procs.EventKey) <= set(events.EventKey)

    again = store.ingest(src, progress=False).iloc[0]
    assert (again.status, again.ingested, again.duplicates) == ("already ingested", 0, 4)
    copy = tmp_path / "copy-with-one-more.jsonl"
    _jsonl(copy, [*records, _evtx_json(4688, {**PROC, "CommandLine": "net user"}, rid=10)])
    grown = store.ingest(copy, progress=False).iloc[0]
    assert (grown.ingested, grown.duplicates) == (1, 4)
    with store.connect() as con:
        assert con.execute("SELECT count(*) FROM events").fetchone()[0] == 5


def test_identical_records_in_one_source_are_all_kept(tmp_path: Path) -> None:
    line = {"ts": 1760000000.5, "uid": "C1", "id.orig_h": "10.0.0.1", "id.resp_h": "10.0.0.2", "proto": "tcp"}
    src = _jsonl(tmp_path / "conn.log", [line, line, line])
    store = hb.LocalStore(tmp_path / "s")
    row = store.ingest(src, progress=False).iloc[0]
    assert (row.format, row.records, row.ingested, row.duplicates) == ("zeek_json", 3, 3, 0)
    with store.connect() as con:
        keys = [k for (k,) in con.execute("SELECT EventKey FROM network_sessions").fetchall()]
    assert len(keys) == 3 and len(set(keys)) == 3


def test_bad_records_are_quarantined_not_fatal(tmp_path: Path) -> None:
    good = [_evtx_json(4688, PROC, rid=i) for i in range(1, 6)]
    lines = [json.dumps(r).encode() for r in good]
    lines.insert(2, b'{"Event": {"System": broken json')
    lines.insert(4, b'{"bad utf8": "\xff\xfe"}')
    src = tmp_path / "mixed.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    (tmp_path / "notes.bin").write_bytes(bytes(range(256)) * 4)
    store = hb.LocalStore(tmp_path / "s")
    summary = store.ingest(tmp_path, progress=False).set_index("file")
    row = summary.loc[str(src)]
    assert (row.records, row.ingested, row.quarantined) == (7, 5, 2)
    assert summary.loc[str(tmp_path / "notes.bin")].status == "unknown format"
    with store.connect() as con:
        q = con.sql("SELECT * FROM quarantine ORDER BY SourceOffset").df()
    assert list(q.SourceFile) == [str(src)] * 2
    offsets = [sum(len(x) + 1 for x in lines[:i]) for i in (2, 4)]
    assert list(q.SourceOffset) == offsets
    assert all(q.Reason.str.len() > 5)
    assert "\\xff" in q.Sample.iloc[1]


def test_missing_path_and_lock(tmp_path: Path) -> None:
    store = hb.LocalStore(tmp_path / "s")
    with pytest.raises(IngestError, match="no such file"):
        store.ingest(tmp_path / "nope.evtx")
    with store._lock(), pytest.raises(StoreError, match="another process is ingesting"):
        store.ingest(tmp_path, progress=False)


def test_empty_store_has_every_table_with_its_columns(tmp_path: Path) -> None:
    store = hb.LocalStore(tmp_path / "s")
    assert store.tables() == []
    with store.connect() as con:
        for table, cols in TABLES.items():
            described = con.sql(f"DESCRIBE {table}").df()
            assert list(described.column_name) == list(cols)
    assert set(store.describe().rows) == {0}


def test_interrupted_ingest_keeps_committed_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huntbook import formats

    (tmp_path / "in").mkdir()
    for i in range(3):
        _jsonl(tmp_path / "in" / f"{i}.jsonl", [_evtx_json(4688, {**PROC, "CommandLine": f"c{i}"}, rid=i)])
    store = hb.LocalStore(tmp_path / "s")
    store.ingest(tmp_path / "in" / "0.jsonl", progress=False)
    real_read = formats.read

    def exploding(source: formats.Source, fmt: str, batch_size: int = 20_000):  # type: ignore[no-untyped-def]
        if source.name.endswith("2.jsonl"):
            raise KeyboardInterrupt
        yield from real_read(source, fmt)

    monkeypatch.setattr(formats, "read", exploding)
    with pytest.raises(KeyboardInterrupt):
        store.ingest(tmp_path / "in", progress=False)
    monkeypatch.setattr(formats, "read", real_read)
    with store.connect() as con:
        assert con.execute("SELECT count(*) FROM events").fetchone()[0] == 1
    summary = store.ingest(tmp_path / "in", progress=False)
    assert sorted(summary.status) == ["already ingested", "ok", "ok"]
    with store.connect() as con:
        assert con.execute("SELECT count(*) FROM process_events").fetchone()[0] == 3
    assert not (store.path / ".staging").exists()


def test_csv_and_parquet_keep_every_column(tmp_path: Path) -> None:
    rows = [
        {
            "TimeGenerated": "2026-10-05T10:00:00Z",
            "Computer": "SRV01",
            "EventID": "4624",
            "TargetUserName": "bob",
            "TargetDomainName": "CORP",
            "LogonType": "10",
            "IpAddress": "198.51.100.7",
            "Odd, column": "x,y",
        },
        {
            "TimeGenerated": "2026-10-05T10:05:00Z",
            "Computer": "SRV01",
            "EventID": "4688",
            "NewProcessName": "C:\\Windows\\System32\\whoami.exe",
            "CommandLine": "whoami /all",
            "SubjectUserName": "bob",
            "SubjectDomainName": "CORP",
            "SubjectLogonId": "0x99",
            "Odd, column": "",
        },
    ]
    fields = sorted({k for r in rows for k in r})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    (tmp_path / "export.csv").write_text(buf.getvalue())
    pd.DataFrame(rows).to_parquet(tmp_path / "export.parquet")
    for name in ("export.csv", "export.parquet"):
        store = hb.LocalStore(tmp_path / f"store-{name}")
        row = store.ingest(tmp_path / name, progress=False).iloc[0]
        assert row.ingested == 2, row
        with store.connect() as con:
            raw = [
                json.loads(r)
                for (r,) in con.execute("SELECT raw FROM events ORDER BY TimeGenerated").fetchall()
            ]
            auth = con.sql("SELECT * FROM authentication").df()
            proc = con.sql("SELECT * FROM process_events").df()
        assert raw[0]["Odd, column"] == "x,y" and raw[0]["TargetUserName"] == "bob"
        assert (auth.TargetUsername[0], auth.LogonType[0], auth.SrcIpAddr[0]) == (
            "CORP\\bob",
            10,
            "198.51.100.7",
        )
        assert proc.TargetProcessCommandLine[0] == "whoami /all" and proc.TargetUserSessionId[0] == "0x99"


# ------------------------------------------------------------------ real data


def _evtx_files(shared: Path) -> list[Path]:
    return sorted(shared.rglob("*.evtx"))


@pytest.mark.slow
def test_every_shared_evtx_file_ingests_with_the_parser_record_count(
    shared_data: Path, tmp_path: Path
) -> None:
    evtx = pytest.importorskip("evtx")
    files = _evtx_files(shared_data)
    mitre_zip = shared_data / "evtx-to-mitre-attack" / "evtx-to-mitre-attack-dev.zip"
    store = hb.LocalStore(tmp_path / "s")
    summary = store.ingest([*files, mitre_zip], progress=False)
    by_file = summary.set_index("file")
    expected: dict[str, int] = {}
    for f in files:
        expected[str(f)] = sum(1 for _ in evtx.PyEvtxParser(str(f)).records_json())
    with zipfile.ZipFile(mitre_zip) as z:
        for member in z.namelist():
            if member.lower().endswith(".evtx"):
                data = io.BytesIO(z.read(member))
                expected[f"{mitre_zip}!{member}"] = sum(1 for _ in evtx.PyEvtxParser(data).records_json())
    assert len(expected) > 380
    mismatched = {
        f: (by_file.loc[f].records if f in by_file.index else None, n)
        for f, n in expected.items()
        if f not in by_file.index or by_file.loc[f].records != n
    }
    assert not mismatched, mismatched
    assert (summary.quarantined == 0).all()
    assert (summary.ingested + summary.duplicates == summary.records).all()
    with store.connect() as con:
        stored = dict(con.execute("SELECT SourceFile, count(*) FROM events GROUP BY ALL").fetchall())
    for f, row in by_file.iterrows():
        assert stored.get(f, 0) == row.ingested, f
    # Records dropped as duplicates really are byte-identical to records already stored.
    assert summary.duplicates.sum() < 0.05 * summary.records.sum()


@pytest.mark.slow
def test_index_facts_of_the_attack_samples(shared_data: Path, tmp_path: Path) -> None:
    """Per file: event ids per channel, computers and time range equal the dataset's own index.csv."""
    folder = shared_data / "deepbluecli-evtx"
    index = pd.read_csv(folder / "index.csv")
    store = hb.LocalStore(tmp_path / "s")
    store.ingest(folder / "evtx", progress=False)
    with store.connect() as con:
        for row in index.itertuples():
            path = str(folder / row.file)
            got = con.execute(
                "SELECT Channel || ':' || EventID, count(*) FROM events WHERE SourceFile = ? GROUP BY ALL",
                [path],
            ).fetchall()
            want = dict(item.rsplit("x", 1) for item in row.event_ids.split(";"))
            assert {k: str(n) for k, n in got} == want, row.file
            computers = {
                c
                for (c,) in con.execute(
                    "SELECT DISTINCT Computer FROM events WHERE SourceFile = ?", [path]
                ).fetchall()
            }
            assert computers == set(row.computers.split(";"))
            first, last = con.execute(
                "SELECT min(TimeGenerated), max(TimeGenerated) FROM events WHERE SourceFile = ?", [path]
            ).fetchone()
            assert first == pd.Timestamp(row.first).to_pydatetime()
            assert last == pd.Timestamp(row.last).to_pydatetime()


@pytest.mark.slow
def test_json_datasets_ingest_every_record(shared_data: Path, tmp_path: Path) -> None:
    """Mordor, NXLog, Zeek and Suricata files: rows equal their record counts (counted independently)."""
    import tarfile

    mordor = shared_data / "mordor-security-datasets" / "datasets"
    cases: dict[str, int] = {}
    for z in sorted((mordor / "atomic" / "windows").rglob("host/*.zip")):
        with zipfile.ZipFile(z) as f:
            for m in f.namelist():
                cases[f"{z}!{m}"] = sum(1 for line in f.open(m) if line.strip())
    wdigest = mordor / "atomic/windows/defense_evasion/host/empire_wdigest_downgrade.tar.gz"
    nxlog = (
        shared_data / "splunk-attack-data/datasets/attack_techniques/T1047/atomic_red_team/attack_data.tar.gz"
    )
    for tar in (wdigest, nxlog):
        with tarfile.open(tar) as t:
            for m in t.getmembers():
                if m.isfile():
                    cases[f"{tar}!{m.name}"] = sum(1 for line in t.extractfile(m) if line.strip())  # type: ignore[union-attr]
    zeek = sorted((mordor / "compound/apt29/day1/zeek/individual_zeek_logs").glob("*.log"))
    zeek += sorted((shared_data / "zeek-wrccdc-2018" / "zeek-json").glob("*.json.gz"))[:8]
    for z in zeek:
        opener = gzip.open if z.suffix == ".gz" else open
        with opener(z, "rb") as f:
            cases[str(z)] = sum(1 for line in f if line.strip())
    tsv = sorted((shared_data / "zeek-wrccdc-2018" / "zeek-default").glob("*.log.gz"))
    for z in tsv:
        with gzip.open(z, "rt") as f:
            cases[str(z)] = sum(1 for line in f if line.strip() and not line.startswith("#"))
    suricata = shared_data / "suricata-eve-alerts/samples/wrccdc-2018/alerts-only.json"
    cases[str(suricata)] = len(json.loads(suricata.read_text()))
    inputs = sorted({k.split("!")[0] for k in cases})
    store = hb.LocalStore(tmp_path / "s")
    summary = store.ingest(inputs, progress=False).set_index("file")
    wrong = {
        k: (summary.loc[k].records if k in summary.index else None, n)
        for k, n in cases.items()
        if k not in summary.index or summary.loc[k].records != n
    }
    assert not wrong, wrong
    assert summary.loc[list(cases), "quarantined"].sum() == 0
    formats_seen = set(summary.format)
    assert {"mordor", "nxlog", "zeek_json", "zeek_tsv", "suricata"} <= formats_seen, formats_seen
    with store.connect() as con:
        n_alerts = con.execute("SELECT count(*) FROM alerts").fetchone()[0]
        n_conn = con.execute("SELECT count(*) FROM network_sessions WHERE EventProduct = 'Zeek'").fetchone()[
            0
        ]
        n_dns = con.execute("SELECT count(*) FROM dns WHERE EventProduct = 'Zeek'").fetchone()[0]
        wscript = con.execute(
            "SELECT count(*) FROM process_events WHERE TargetProcessCommandLine ILIKE '%launcher.vbs%'"
        ).fetchone()[0]
    assert n_alerts == cases[str(suricata)]
    conn_logs = [k for k in cases if k.endswith("_conn.log")]
    assert n_conn >= sum(cases[k] for k in conn_logs) > 0
    dns_logs = [k for k in cases if k.endswith("_dns.log") or k.endswith("dns.json.gz")]
    assert n_dns == sum(cases[k] for k in dns_logs)
    assert wscript >= 2  # Sysmon 1 and Security 4688 of the Empire VBS launcher (SDWIN-190518182022)


def test_store_folder_must_be_a_folder(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(StoreError, match="must be a folder"):
        hb.LocalStore(f)


def test_truncated_gzip_keeps_its_readable_records(tmp_path: Path) -> None:
    lines = [
        json.dumps(
            {
                "ts": 1760000000 + i,
                "uid": f"C{i}",
                "id.orig_h": "10.0.0.1",
                "query": f"h{i}.example.com",
                "padding": "x" * (i % 97),
            }
        )
        for i in range(20_000)
    ]
    blob = gzip.compress("\n".join(lines).encode() + b"\n")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "dns.log.gz").write_bytes(blob[: len(blob) // 2])
    store = hb.LocalStore(tmp_path / "s")
    row = store.ingest(tmp_path / "in", progress=False).iloc[0]
    assert row.status == "ok" and row.quarantined == 1
    assert 0 < row.ingested < len(lines)
    with store.connect() as con:
        got = [
            json.loads(r)["uid"]
            for (r,) in con.execute("SELECT raw FROM events ORDER BY SourceOffset").fetchall()
        ]
        reason = con.execute("SELECT Reason FROM quarantine").fetchone()[0]
        dns = con.execute("SELECT count(*) FROM dns").fetchone()[0]
    assert got == [f"C{i}" for i in range(len(got))]  # an exact prefix of the file
    assert dns == len(got) and "damaged" in reason


def test_legacy_winlogbeat_is_normalized(tmp_path: Path) -> None:
    record = {
        "@timestamp": "2019-05-18T20:20:32.799Z",
        "@metadata": {"beat": "winlogbeat", "version": "6.7.0"},
        "event_id": 4688,
        "log_name": "Security",
        "source_name": "Microsoft-Windows-Security-Auditing",
        "computer_name": "HR001.shire.com",
        "event_data": {
            "NewProcessName": "C:\\Windows\\System32\\cmd.exe",
            "CommandLine": "cmd /c ver",
            "SubjectUserName": "pgustavo",
            "SubjectDomainName": "SHIRE",
            "SubjectLogonId": "0x3e7",
        },
    }
    store = hb.LocalStore(tmp_path / "s")
    row = store.ingest(_jsonl(tmp_path / "wlb.json", [record]), progress=False).iloc[0]
    assert row.format == "winlogbeat" and row.ingested == 1
    with store.connect() as con:
        proc = con.sql("SELECT * FROM process_events").df().iloc[0]
    assert (proc.DvcHostname, proc.TargetProcessCommandLine, proc.ActorUsername) == (
        "HR001.shire.com",
        "cmd /c ver",
        "SHIRE\\pgustavo",
    )


def test_queries_see_data_ingested_after_the_provider_opened(tmp_path: Path) -> None:
    store = hb.LocalStore(tmp_path / "s")
    qp = hb.QueryProvider("local", store=store)
    assert qp.exec_query("SELECT count(*) AS n FROM process_events").n[0] == 0
    store.ingest(_jsonl(tmp_path / "a.jsonl", [_evtx_json(4688, PROC, rid=1)]), progress=False)
    assert qp.exec_query("SELECT count(*) AS n FROM process_events").n[0] == 1


@pytest.mark.slow
def test_corrupt_evtx_copies_are_reported_per_record(shared_data: Path, tmp_path: Path) -> None:
    """Truncated and bit-flipped copies of a real EVTX: readable records ingested, damage quarantined."""
    import random

    evtx = pytest.importorskip("evtx")
    original = (shared_data / "deepbluecli-evtx" / "evtx" / "sliver-security.evtx").read_bytes()
    (tmp_path / "in").mkdir()
    truncated = tmp_path / "in" / "truncated.evtx"
    truncated.write_bytes(original[: 4096 + 65536 + 30000])  # one whole chunk and part of the next
    flipped = bytearray(original)
    rng = random.Random(7)
    for _ in range(40):
        pos = rng.randrange(4096 + 512, len(flipped))
        flipped[pos] ^= 1 << rng.randrange(8)
    (tmp_path / "in" / "flipped.evtx").write_bytes(bytes(flipped))

    def readable(path: Path) -> int:
        count, it = 0, evtx.PyEvtxParser(str(path)).records_json()
        while True:
            try:
                next(it)
                count += 1
            except StopIteration:
                return count
            except Exception:  # the parser reports a bad record and goes on
                continue

    store = hb.LocalStore(tmp_path / "s")
    summary = store.ingest(tmp_path / "in", progress=False).set_index("file")
    for name in ("truncated.evtx", "flipped.evtx"):
        row = summary.loc[str(tmp_path / "in" / name)]
        assert row.status == "ok"
        assert row.ingested + row.duplicates >= readable(tmp_path / "in" / name) > 0
        assert row.quarantined >= 1
    with store.connect() as con:
        q = con.sql("SELECT SourceFile, SourceOffset, Reason FROM quarantine").df()
    assert set(q.SourceFile) == {str(tmp_path / "in" / n) for n in ("truncated.evtx", "flipped.evtx")}
    assert q.Reason.str.len().min() > 5


def test_the_same_file_twice_in_one_call_counts_once(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    records = [_evtx_json(4688, {**PROC, "CommandLine": f"c{i}"}, rid=i) for i in range(3)]
    _jsonl(tmp_path / "a" / "x.jsonl", records)
    _jsonl(tmp_path / "b" / "x.jsonl", records)
    summary = hb.LocalStore(tmp_path / "s").ingest([tmp_path / "a", tmp_path / "b"], progress=False)
    assert list(summary.status) == ["ok", "already ingested"]
    assert list(summary.ingested) == [3, 0] and list(summary.duplicates) == [0, 3]


def test_sources_larger_than_memory_spill_to_staging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huntbook import formats
    from huntbook import store as store_module

    (tmp_path / "in").mkdir()
    small = _jsonl(tmp_path / "in" / "a.jsonl", [_evtx_json(4688, PROC, rid=i) for i in range(3)])
    # identical records in the large one: occurrence numbers must survive the spill
    big_records = [_evtx_json(4688, {**PROC, "CommandLine": f"c{i % 400}"}, rid=i % 400) for i in range(900)]
    big = _jsonl(tmp_path / "in" / "b.jsonl", big_records)
    expected = hb.LocalStore(tmp_path / "memory").ingest([small, big], progress=False)

    real_read = formats.read
    monkeypatch.setattr(formats, "read", lambda source, fmt: real_read(source, fmt, batch_size=100))
    monkeypatch.setattr(store_module, "MEMORY_BYTES", 20_000)  # the large source spills, the small one not
    spills: list[str] = []
    real_spill = store_module.LocalStore._spill

    def spill(self: hb.LocalStore, staged: store_module._Staged) -> None:
        spills.append(staged.source.name)
        real_spill(self, staged)

    monkeypatch.setattr(store_module.LocalStore, "_spill", spill)
    spilled_store = hb.LocalStore(tmp_path / "spilled")
    summary = spilled_store.ingest([small, big], progress=False)
    assert summary["ingested"].tolist() == expected["ingested"].tolist() == [3, 900]
    assert spills and set(spills) == {str(big)}
    with hb.LocalStore(tmp_path / "memory").connect() as a, spilled_store.connect() as b:
        query = "SELECT EventKey, SourceFile, SourceOffset FROM events ORDER BY ALL"
        assert a.execute(query).fetchall() == b.execute(query).fetchall()
        assert b.execute("SELECT count(*) FROM process_events").fetchone()[0] == 903
    assert not (spilled_store.path / ".staging").exists()
    assert spilled_store.ingest([small, big], progress=False)["ingested"].sum() == 0
