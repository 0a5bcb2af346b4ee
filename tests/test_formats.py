"""Format detection and streaming readers (huntbook.formats), on synthetic and real data.

Expected counts are computed independently in each test (the ``evtx`` parser iterated directly,
``zipfile``/``tarfile``/``gzip`` plus line counting, ``json.load``, the ``csv`` module), never
with the reader under test.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import datetime
import gzip
import io
import json
import math
import random
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from huntbook import formats
from huntbook.errors import IngestError
from huntbook.formats import BadRecord, Batch, Source

csv.field_size_limit(1 << 30)


# --------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def data_dir() -> Path:
    """The shared datasets (``/work/shared/data`` beside the repository), or skip."""
    path = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"shared datasets not found at {path} (clone the project beside ../shared)")
    return path


def read_all(
    source: Source, fmt: str | None = None, batch_size: int = 20_000
) -> tuple[list[Batch], list[BadRecord]]:
    fmt = fmt or formats.detect(source)
    assert fmt is not None, f"no format detected for {source.name}"
    batches: list[Batch] = []
    bad: list[BadRecord] = []
    for item in formats.read(source, fmt, batch_size=batch_size):
        if isinstance(item, BadRecord):
            bad.append(item)
        else:
            assert isinstance(item, Batch)
            assert len(item) <= batch_size
            batches.append(item)
    return batches, bad


def raw_records(batches: list[Batch]) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for batch in batches:
        assert batch.raw is not None and batch.rows is None
        assert len(batch.raw) == len(batch.offsets)
        out += zip(batch.offsets, batch.raw, strict=True)
    return out


def table_rows(batches: list[Batch]) -> list[tuple[int, dict[str, Any]]]:
    out: list[tuple[int, dict[str, Any]]] = []
    for batch in batches:
        assert batch.raw is None and batch.rows is not None
        assert batch.rows.num_rows == len(batch.offsets)
        out += zip(batch.offsets, batch.rows.to_pylist(), strict=True)
    return out


def one_source(path: Path) -> Source:
    found = list(formats.sources(path))
    assert len(found) == 1, [s.name for s in found]
    return found[0]


def content(source: Source) -> bytes:
    with source.open() as stream:
        return stream.read()


def evtx_direct(data: bytes) -> list[str]:
    """Records the Rust ``evtx`` parser yields for ``data`` (errors skipped): the oracle."""
    import evtx

    try:
        records = evtx.PyEvtxParser(io.BytesIO(data), number_of_threads=1).records_json()
    except Exception:
        return []
    out: list[str] = []
    while True:
        try:
            record: Any = next(records)
            out.append(record["data"])
        except StopIteration:
            return out
        except Exception:
            continue


def nonblank_lines(data: bytes) -> list[bytes]:
    return [line for line in data.split(b"\n") if line.strip()]


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------- module
def test_import_is_cheap() -> None:
    code = (
        "import sys, huntbook.formats; "
        "print([m for m in ('pandas', 'pyarrow', 'duckdb', 'evtx') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_read_rejects_unknown_format(tmp_path: Path) -> None:
    source = one_source(write(tmp_path / "a.json", b'{"a": 1}\n'))
    with pytest.raises(IngestError, match="unknown format"):
        formats.read(source, "nope")


# --------------------------------------------------------------------------- sources
def test_missing_path_raises_ingest_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "logs.json"
    with pytest.raises(IngestError) as info:
        formats.sources([tmp_path, missing])
    assert str(missing) in str(info.value)
    assert info.value.hint


def test_folders_are_walked_recursively_sorted_with_every_file(tmp_path: Path) -> None:
    for rel in ["b/2.json", "a.json", ".hidden", "sub/.x/y.log", "Z.txt", "b/10.json", "notes.md"]:
        write(tmp_path / rel, b"x\n")
    (tmp_path / "empty").mkdir()
    names = [Path(s.name).relative_to(tmp_path).as_posix() for s in formats.sources(tmp_path)]
    expected = sorted(
        ["b/2.json", "a.json", ".hidden", "sub/.x/y.log", "Z.txt", "b/10.json", "notes.md"],
        key=lambda p: Path(p).parts,
    )
    assert names == expected
    # A single file and a list of paths work too.
    assert [s.name for s in formats.sources(str(tmp_path / "a.json"))] == [str(tmp_path / "a.json")]
    assert len(list(formats.sources([tmp_path / "a.json", tmp_path / "b"]))) == 3


def test_archives_expand_into_members(tmp_path: Path) -> None:
    one = b'{"n": 1}\n{"n": 2}\n'
    two = b"a,b\n1,2\n"
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("inner/", b"")  # a directory entry: no source
        zf.writestr("inner/path.json", one)
        zf.writestr("b.csv", two)
        zf.writestr("nested.json.gz", gzip.compress(one))
        inner = io.BytesIO()
        with zipfile.ZipFile(inner, "w") as iz:
            iz.writestr("deep.json", one)
        zf.writestr("inner.zip", inner.getvalue())
    write(tmp_path / "case.Zip", zbuf.getvalue())
    for name, packed in [("t.tar", False), ("t.tar.gz", True), ("t.tgz", True)]:
        with tarfile.open(tmp_path / name, "w:gz") if packed else tarfile.open(tmp_path / name, "w") as tf:
            for member, data in [("logs/x.json", one), ("logs/y.csv", two)]:
                info = tarfile.TarInfo(member)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    write(tmp_path / "dns.json.gz", gzip.compress(one))
    write(tmp_path / "dns.json.bz2", bz2.compress(one))

    found = {Path(s.name).relative_to(tmp_path).as_posix(): s for s in formats.sources(tmp_path)}
    expected = {
        "case.Zip!b.csv": two,
        "case.Zip!inner.zip!deep.json": one,
        "case.Zip!inner/path.json": one,
        "case.Zip!nested.json.gz": one,
        "dns.json.bz2": one,
        "dns.json.gz": one,
        "t.tar!logs/x.json": one,
        "t.tar!logs/y.csv": two,
        "t.tar.gz!logs/x.json": one,
        "t.tar.gz!logs/y.csv": two,
        "t.tgz!logs/x.json": one,
        "t.tgz!logs/y.csv": two,
    }
    assert sorted(found) == sorted(expected)
    for name, data in expected.items():
        source = found[name]
        assert content(source) == data, name
        assert content(source) == data, f"{name}: open() must give a fresh stream each time"
        if not name.endswith((".gz", ".bz2")) or name == "dns.json.gz":
            assert source.size == len(data), name  # uncompressed size where known
    assert formats.detect(found["case.Zip!inner/path.json"]) == "jsonl"
    assert formats.detect(found["t.tgz!logs/y.csv"]) == "csv"


def test_broken_archive_is_one_bad_record(tmp_path: Path) -> None:
    source = one_source(write(tmp_path / "bad.zip", b"this is not a zip archive at all\n" * 10))
    assert source.name == str(tmp_path / "bad.zip")
    with pytest.raises(IngestError, match="zip"):
        formats.detect(source)
    for fmt in ("jsonl", "evtx", "csv", "zeek_tsv", "parquet"):
        items = list(formats.read(source, fmt))
        assert len(items) == 1 and isinstance(items[0], BadRecord), fmt
        assert items[0].offset == 0 and "zip" in items[0].reason


def test_truncated_gzip_keeps_the_records_before_the_cut(tmp_path: Path) -> None:
    lines = [json.dumps({"n": i, "pad": "x" * 50}).encode() for i in range(5000)]
    packed = gzip.compress(b"\n".join(lines) + b"\n")
    source = one_source(write(tmp_path / "cut.json.gz", packed[: len(packed) // 2]))
    batches, bad = read_all(source, "jsonl")
    good = raw_records(batches)
    assert 0 < len(good) < len(lines)
    assert [r.encode() for _, r in good] == lines[: len(good)]
    assert bad and all(b.reason for b in bad)
    assert bad[-1].offset >= good[-1][0]


# --------------------------------------------------------------------------- detection (synthetic)
def test_detect_containers_encodings_and_binary(tmp_path: Path) -> None:
    rec = {"ts": 1.5, "uid": "C1", "id.orig_h": "10.0.0.1"}
    lines = (json.dumps(rec) + "\n") * 3
    cases = {
        "lines.json": lines.encode(),
        "bom8.json": codecs.BOM_UTF8 + lines.encode(),
        "utf16le.json": codecs.BOM_UTF16_LE + lines.encode("utf-16-le"),
        "utf16be.json": codecs.BOM_UTF16_BE + lines.encode("utf-16-be"),
        "array.json": json.dumps([rec, rec], indent=2).encode(),
        "pretty.json": json.dumps(rec, indent=4).encode(),
        "concat.json": (json.dumps(rec, indent=2) + "\n").encode() * 3,
        "one_line_array.json": json.dumps([rec] * 3).encode(),
    }
    for name, data in cases.items():
        assert formats.detect(one_source(write(tmp_path / name, data))) == "zeek_json", name
    others = {
        "x.pcap": bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000")
        + b"GET / HTTP/1.1\r\n" * 50,
        "random.bin": random.Random(1).randbytes(4096),
        "access.log": b'1.2.3.4 - - [11/Jul/2018:08:41:28 +0300] "GET / HTTP/1.1" 200 11444\n' * 20,
        "fake.evtx": b"not an evtx file\n" * 10,
        "empty.json": b"",
    }
    for name, data in others.items():
        assert formats.detect(one_source(write(tmp_path / name, data))) is None, name


def test_detect_windows_json_flavours(tmp_path: Path) -> None:
    records = {
        "evtx_json": {"Event": {"System": {"EventID": 4688}, "EventData": {}}},
        "winlogbeat": {"@timestamp": "x", "winlog": {"event_id": 1, "channel": "Security"}},
        "mordor": {
            "@timestamp": "x",
            "@version": "1",
            "Hostname": "h",
            "EventID": 1,
            "Channel": "c",
            "SourceName": "s",
            "SourceModuleType": "im_msvistalog",
            "EventTime": "t",
        },
        "nxlog": {
            "EventTime": "t",
            "Hostname": "h",
            "EventID": 1,
            "SourceName": "s",
            "Channel": "c",
            "SourceModuleType": "im_msvistalog",
        },
        "suricata": {"timestamp": "t", "event_type": "alert", "src_ip": "1.2.3.4", "flow_id": 1},
        "zeek_json": {"@stream": "conn", "@proc": "zeek", "ts": 1.0, "id_orig_h": "1.2.3.4"},
        "jsonl": {"TimeGenerated": "t", "Computer": "c", "EventID": 4624, "Channel": "Security"},
    }
    for fmt, record in records.items():
        path = write(tmp_path / f"{fmt}.json", (json.dumps(record) + "\n").encode() * 2)
        assert formats.detect(one_source(path)) == fmt


def test_detect_tables_and_parquet(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    la = b"TimeGenerated [UTC],TenantId,Computer,EventID\n2024-01-01,t,c,4624\n2024-01-02,t,c,4625\n"
    cases = {
        "export.csv": (la, "la_csv"),
        "plain.csv": (b"a,b,c\n1,2,3\n4,5,6\n", "csv"),
        "plain.tsv": (b"a\tb\tc\n1\t2\t3\n", "tsv"),
        "data.txt": (b"host\tip\tcount\nx\t1.2.3.4\t3\ny\t5.6.7.8\t4\n", "tsv"),
        "utf16.csv": (codecs.BOM_UTF16_LE + la.decode().encode("utf-16-le"), "la_csv"),
        "zeek.log": (b"#separator \\x09\n#fields\tts\tuid\n#types\ttime\tstring\n1.0\tC1\n", "zeek_tsv"),
    }
    for name, (data, fmt) in cases.items():
        assert formats.detect(one_source(write(tmp_path / name, data))) == fmt, name
    pq.write_table(pa.table({"a": [1, 2]}), tmp_path / "t.parquet")
    assert formats.detect(one_source(tmp_path / "t.parquet")) == "parquet"


def test_detect_long_first_json_record(tmp_path: Path) -> None:
    big = {"ts": 1.0, "uid": "C1", "blob": "x" * 200_000}
    path = write(tmp_path / "big.json", (json.dumps(big) + "\n").encode() * 2)
    assert formats.detect(one_source(path)) == "zeek_json"


# --------------------------------------------------------------------------- detection (real data)
MORDOR = "mordor-security-datasets/datasets/"
WIN_HOST = MORDOR + "atomic/windows/"
LSASS = MORDOR + "compound/LSASS_campaign_01/metasploit_logonpasswords_lsass_memory_dump"
APT29_ZEEK = MORDOR + "compound/apt29/day1/zeek/individual_zeek_logs/"
MSTIC = "msticpy-testdata/"
REAL_DETECTION = [
    ("deepbluecli-evtx/evtx/password-spray.evtx", None, "evtx"),
    ("evtx-to-mitre-attack/evtx-to-mitre-attack-dev.zip", ".evtx", "evtx"),
    (WIN_HOST + "credential_access/host/empire_mimikatz_logonpasswords.zip", None, "mordor"),
    (WIN_HOST + "credential_access/host/psh_lsass_memory_dump_comsvcs.zip", None, "mordor"),  # no @timestamp
    (LSASS + ".zip", None, "mordor"),
    (WIN_HOST + "defense_evasion/host/empire_wdigest_downgrade.tar.gz", None, "winlogbeat"),  # winlogbeat 6.x
    ("splunk-attack-data/datasets/attack_techniques/T1047/atomic_red_team/attack_data.tar.gz", None, "nxlog"),
    ("zeek-wrccdc-2018/zeek-json/dns.json.gz", None, "zeek_json"),
    ("zeek-wrccdc-2018/zeek-json/ssl.json.gz", None, "zeek_json"),
    (APT29_ZEEK + "NASHUA_conn.log", None, "zeek_json"),  # id_orig_h, @stream
    (APT29_ZEEK + "SCRANTON_pe.log", None, "zeek_json"),  # no uid
    ("zeek-wrccdc-2018/zeek-default/ssh.log.gz", None, "zeek_tsv"),
    (LSASS + "_zeek_logs.zip", "conn.log", "zeek_tsv"),
    ("suricata-eve-alerts/samples/wrccdc-2018/alerts-only.json", None, "suricata"),  # pretty-printed array
    (MSTIC + "testdata/host_logons.csv", None, "la_csv"),
    (MSTIC + "testdata/processes_on_host.csv", None, "la_csv"),
    (MSTIC + "testdata/sudo_data.csv", None, "la_csv"),  # UTF-8 BOM
    (MSTIC + "converted_from_pickle/localdata__host_logons.csv.gz", None, "la_csv"),
    (MSTIC + "testdata/ip_locs.csv", None, "csv"),
    (MSTIC + "testdata/time_series.csv", None, "csv"),  # TimeGenerated alone is not LA
    (MSTIC + "converted_from_pickle/mde_proc_pub.csv.gz", None, "csv"),
    (MORDOR + "atomic/aws/discovery/aws_s3_honeybucketlogs.zip", None, "csv"),
    (MORDOR + "compound/GoldenSAMLADFSMailAccess/AADAuditEvents.Zip", None, "jsonl"),
    (MSTIC + "testdata/velociraptor/Windows.Sys.Users.json", None, "jsonl"),
    (MSTIC + "testdata/azmondata/az_mon_raw_query.json", None, "jsonl"),  # one pretty object
    (
        WIN_HOST + "credential_access/network/covenant_dcsync_dcerpc_drsuapi_DsGetNCChanges.zip",
        None,
        None,
    ),  # pcap
    (MORDOR + "compound/Log4Shell/pcap_log4shell_cve2021_44228_java_serialized.zip", None, None),  # pcapng
    (MSTIC + "testdata/auditd_log.txt", None, None),
    (
        "evtx-attack-samples/Command and Control/web_attack_and_isp_webshell_localhost_access_log.txt",
        None,
        None,
    ),
    (MORDOR + "atomic/linux/discovery/host/sh_arp_cache.zip", None, None),  # raw auditd text
    ("sigma/regression_data/rules/cisco/aaa/cisco_cli_dot1x_disabled/", ".raw", None),
]


@pytest.mark.shared_data
@pytest.mark.parametrize(
    ("rel", "member", "expected"),
    REAL_DETECTION,
    ids=[r[0].rstrip("/").rsplit("/", 1)[-1] for r in REAL_DETECTION],
)
def test_detect_real_files(data_dir: Path, rel: str, member: str | None, expected: str | None) -> None:
    found = [s for s in formats.sources(data_dir / rel) if member is None or s.name.endswith(member)]
    assert found, f"no source in {rel}"
    for source in found:
        assert formats.detect(source) == expected, source.name


@pytest.mark.shared_data
def test_detect_every_sigma_json_as_evtx_json(data_dir: Path) -> None:
    files = sorted((data_dir / "sigma" / "regression_data").rglob("*.json"))
    assert len(files) > 50
    assert {f.name: formats.detect(one_source(f)) for f in files} == {f.name: "evtx_json" for f in files}


@pytest.mark.shared_data
def test_detect_every_mordor_host_dataset(data_dir: Path) -> None:
    folder = data_dir / WIN_HOST
    found = {s.name: formats.detect(s) for s in formats.sources(sorted(folder.glob("*/host/*")))}
    assert len(found) >= 10
    wdigest = [n for n in found if "empire_wdigest_downgrade" in n]
    assert [found[n] for n in wdigest] == ["winlogbeat"]  # winlogbeat 6.x (event_data/computer_name)
    assert {found[n] for n in found if n not in wdigest} == {"mordor"}


# --------------------------------------------------------------------------- record counts (real data)
@pytest.mark.shared_data
@pytest.mark.slow
def test_evtx_record_counts_match_the_parser(data_dir: Path) -> None:
    sources = list(formats.sources(sorted(data_dir.rglob("*.evtx"))))
    sources += [s for s in formats.sources(data_dir / "evtx-to-mitre-attack") if s.name.endswith(".evtx")]
    assert len(sources) > 300
    for source in sources:
        assert formats.detect(source) == "evtx", source.name
        expected = evtx_direct(content(source))
        batches, bad = read_all(source, "evtx", batch_size=100)
        good = raw_records(batches)
        assert not bad, (source.name, bad[:3])
        assert [r for _, r in good] == expected, source.name
        assert [o for o, _ in good] == list(range(len(expected)))


@pytest.mark.shared_data
def test_sigma_json_matches_its_evtx(data_dir: Path) -> None:
    import evtx

    checked = 0
    for json_file in sorted((data_dir / "sigma" / "regression_data").rglob("*.json")):
        evtx_file = json_file.with_suffix(".evtx")
        if not evtx_file.exists():
            continue
        records: list[Any] = list(evtx.PyEvtxParser(str(evtx_file)).records_json())
        expected = sorted(json.loads(r["data"])["Event"]["System"]["EventRecordID"] for r in records)
        batches, bad = read_all(one_source(json_file))
        assert not bad
        got = sorted(json.loads(r)["Event"]["System"]["EventRecordID"] for _, r in raw_records(batches))
        assert got == expected, json_file
        checked += 1
    assert checked > 50


def _decompressed_members(path: Path) -> Iterator[tuple[str, bytes]]:
    """Members of a zip/tar(.gz)/gz file, decompressed with the standard library (the oracle)."""
    name = path.name.lower()
    if name.endswith(".zip"):
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.is_dir():
                    yield f"{path}!{info.filename}", zf.read(info)
    elif name.endswith((".tar.gz", ".tgz", ".tar")):
        with tarfile.open(path) as tf:
            for member in tf.getmembers():
                if member.isfile():
                    yield f"{path}!{member.name}", tf.extractfile(member).read()  # type: ignore[union-attr]
    elif name.endswith(".gz"):
        yield str(path), gzip.decompress(path.read_bytes())
    else:
        yield str(path), path.read_bytes()


JSON_LINES_DATA = [
    (WIN_HOST, "*/host/*", "mordor"),
    (MORDOR + "compound/LSASS_campaign_01", "*dump.zip", "mordor"),
    ("splunk-attack-data", "**/*.tar.gz", "nxlog"),
    ("zeek-wrccdc-2018/zeek-json", "*.json.gz", "zeek_json"),
    (MORDOR + "compound/apt29", "**/*.log", "zeek_json"),
]


@pytest.mark.shared_data
@pytest.mark.slow
@pytest.mark.parametrize(
    ("folder", "pattern", "family"), JSON_LINES_DATA, ids=[d[2] + ":" + d[1] for d in JSON_LINES_DATA]
)
def test_json_lines_counts_and_offsets(data_dir: Path, folder: str, pattern: str, family: str) -> None:
    files = sorted((data_dir / folder).glob(pattern))
    assert files
    checked = 0
    for path in files:
        expected = dict(_decompressed_members(path))
        for source in formats.sources(path):
            data = expected[source.name]
            fmt = formats.detect(source)
            assert fmt in (family, "winlogbeat"), (source.name, fmt)
            batches, bad = read_all(source)
            good = raw_records(batches)
            assert not bad, (source.name, bad[:3])
            lines = nonblank_lines(data)
            assert len(good) == len(lines), source.name
            for offset, raw in good[:: max(1, len(good) // 50)]:  # the offset is where the record starts
                assert data[offset : offset + len(raw.encode())] == raw.encode()
            assert [r.encode() for _, r in good] == [line.strip() for line in lines]
            checked += 1
    assert checked >= len(files)


@pytest.mark.shared_data
def test_suricata_array(data_dir: Path) -> None:
    path = data_dir / "suricata-eve-alerts" / "samples" / "wrccdc-2018" / "alerts-only.json"
    expected = json.loads(path.read_text(encoding="utf-8"))
    batches, bad = read_all(one_source(path), batch_size=100)
    good = raw_records(batches)
    assert not bad
    assert len(good) == len(expected) > 100
    assert [json.loads(r) for _, r in good] == expected
    data = path.read_bytes()
    assert all(data[o : o + 1] == b"{" for o, _ in good)
    assert [o for o, _ in good] == sorted({o for o, _ in good})


@pytest.mark.shared_data
def test_zeek_tsv_counts(data_dir: Path) -> None:
    paths = sorted((data_dir / "zeek-wrccdc-2018" / "zeek-default").glob("*.log.gz"))
    paths.append(data_dir / (LSASS + "_zeek_logs.zip"))
    checked = 0
    for path in paths:
        expected = dict(_decompressed_members(path))
        for source in formats.sources(path):
            assert formats.detect(source) == "zeek_tsv", source.name
            batches, bad = read_all(source)
            rows = table_rows(batches)
            assert not bad
            data = expected[source.name]
            lines = [line for line in data.split(b"\n") if line and not line.startswith(b"#")]
            assert len(rows) == len(lines), source.name
            for offset, _ in rows:  # byte offset of each data line
                assert data[offset - 1 : offset] == b"\n" and data[offset : offset + 1] != b"#"
            checked += 1
    assert checked == 9 + 12


@pytest.mark.shared_data
def test_zeek_tsv_values_equal_zeek_json_of_the_same_traffic(data_dir: Path) -> None:
    folder = data_dir / "zeek-wrccdc-2018"
    compared = 0
    for path in sorted((folder / "zeek-default").glob("*.log.gz")):
        rows = [r for _, r in table_rows(read_all(one_source(path), "zeek_tsv")[0])]
        log = path.name.removesuffix(".log.gz")
        json_lines = gzip.decompress((folder / "zeek-json" / f"{log}.json.gz").read_bytes())
        records = [json.loads(line) for line in nonblank_lines(json_lines)]
        assert len(rows) == len(records)
        for row, record in zip(rows, records, strict=True):
            for key, want in record.items():
                if key in ("_path", "_write_ts"):
                    continue
                got = row[key]
                if isinstance(want, str) and isinstance(got, float):  # ISO time in JSON, epoch in TSV
                    want = datetime.datetime.fromisoformat(want.replace("Z", "+00:00")).timestamp()
                if isinstance(want, float):
                    assert isinstance(got, float) and math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-6), key
                elif isinstance(want, list):
                    assert sorted(map(str, got)) == sorted(map(str, want)), key  # sets have no order
                else:
                    assert got == want and type(got) is type(want), (log, key, got, want)
                compared += 1
            assert all(row[k] is None for k in row if k not in record)  # JSON leaves unset fields out
    assert compared > 50_000


@pytest.mark.shared_data
def test_csv_values_equal_the_csv_module(data_dir: Path) -> None:
    paths = [
        MSTIC + "testdata/host_logons.csv",
        MSTIC + "testdata/processes_on_host.csv",
        MSTIC + "testdata/sudo_data.csv",  # BOM
        MSTIC + "docs_data/alertlist.csv",  # multi-line quoted JSON values
        MSTIC + "converted_from_pickle/win_proc_test.csv.gz",
        MSTIC + "converted_from_pickle/linux_proc_test.csv.gz",  # NUL bytes in values
        MORDOR + "atomic/aws/discovery/aws_s3_honeybucketlogs.zip",
    ]
    for rel in paths:
        path = data_dir / rel
        source = one_source(path)
        fmt = formats.detect(source)
        assert fmt in ("csv", "la_csv"), path
        text = content(source).decode("utf-8-sig")
        expected = [r for r in csv.reader(io.StringIO(text, newline="")) if r]
        header, data = expected[0], expected[1:]
        batches, bad = read_all(source, batch_size=7)
        rows = table_rows(batches)
        assert not bad, bad[:3]
        assert [o for o, _ in rows] == list(range(len(data)))
        assert batches[0].rows.column_names == header
        assert [list(r.values()) for _, r in rows] == data, path


# --------------------------------------------------------------------------- corruption
@pytest.fixture(scope="module")
def multi_chunk_evtx(data_dir: Path) -> bytes:
    """A real EVTX file with several chunks (the largest record count among the 1.1 MB samples)."""
    candidates = [p for p in data_dir.rglob("*.evtx") if p.stat().st_size > 1_000_000]
    best = max(sorted(candidates), key=lambda p: len(evtx_direct(p.read_bytes())))
    data = best.read_bytes()
    assert len(evtx_direct(data[: 4096 + 65536])) < len(evtx_direct(data))  # more than one chunk in use
    return data


@pytest.mark.shared_data
def test_truncated_evtx_keeps_every_whole_record(tmp_path: Path, multi_chunk_evtx: bytes) -> None:
    intact = evtx_direct(multi_chunk_evtx)
    first_chunk = len(evtx_direct(multi_chunk_evtx[: 4096 + 65536]))
    for cut in (4096 + 30_000, 4096 + 65536 + 100, 4096 + 65536 + 40_000, 4096 + 2 * 65536 + 1000):
        path = write(tmp_path / f"cut{cut}.evtx", multi_chunk_evtx[:cut])
        batches, bad = read_all(one_source(path), "evtx")
        good = [r for _, r in raw_records(batches)]
        assert good == intact[: len(good)], cut  # never a made-up or damaged record
        assert len(good) >= len(evtx_direct(multi_chunk_evtx[:cut]))  # at least what the parser reads alone
        if cut > 4096 + 65536:
            assert len(good) >= first_chunk
        assert any("truncated" in b.reason for b in bad), cut
    for cut in (10, 2000):  # no whole file header: one BadRecord, offset 0
        items = list(
            formats.read(one_source(write(tmp_path / f"h{cut}.evtx", multi_chunk_evtx[:cut])), "evtx")
        )
        assert len(items) == 1 and isinstance(items[0], BadRecord) and items[0].offset == 0


@pytest.mark.shared_data
def test_bit_flipped_evtx_reads_every_readable_record(tmp_path: Path, multi_chunk_evtx: bytes) -> None:
    intact = evtx_direct(multi_chunk_evtx)
    first_chunk = len(evtx_direct(multi_chunk_evtx[: 4096 + 65536]))
    # A damaged chunk header: that chunk is lost, all the others are read.
    damaged = bytearray(multi_chunk_evtx)
    damaged[4096] ^= 0xFF
    batches, bad = read_all(one_source(write(tmp_path / "chunk.evtx", bytes(damaged))), "evtx")
    assert [r for _, r in raw_records(batches)] == intact[first_chunk:]
    assert len(bad) == 1 and bad[0].offset == 0 and "chunk" in bad[0].reason
    # Random bit flips: never raises, reads what the parser can read, offsets stay unique.
    for seed in range(6):
        rng = random.Random(seed)
        flipped = bytearray(multi_chunk_evtx)
        for _ in range(rng.choice([1, 20, 300])):
            flipped[rng.randrange(4096, len(flipped))] ^= 1 << rng.randrange(8)
        batches, bad = read_all(one_source(write(tmp_path / f"flip{seed}.evtx", bytes(flipped))), "evtx")
        good = raw_records(batches)
        assert [r for _, r in good] == evtx_direct(bytes(flipped)), seed
        offsets = [o for o, _ in good] + [b.offset for b in bad]
        assert len(offsets) == len(set(offsets)), seed
        assert all(b.reason.startswith("EVTX") for b in bad)


def _jsonl_with_damage(data_dir: Path | None) -> tuple[list[bytes], dict[int, str]]:
    """Lines of a JSON-lines file with damaged lines; returns the lines and {line index: reason word}."""
    if data_dir is not None:
        raw = gzip.decompress((data_dir / "zeek-wrccdc-2018" / "zeek-json" / "dns.json.gz").read_bytes())
        lines = nonblank_lines(raw)[:3000]
    else:
        lines = [json.dumps({"s": "é" * (i % 5), "n": i}, ensure_ascii=False).encode() for i in range(3000)]
    damage = {
        10: (lines[10][: len(lines[10]) // 2], "invalid JSON"),
        20: (lines[20][:5] + b"\xff\xfe" + lines[20][5:], "UTF-8"),
        30: (b"[1, 2, 3]", "array"),
        40: (b'{"a": NaN}', "NaN"),
        50: (lines[50] + b"}", "invalid JSON"),
        60: (b'"just a string"', "string"),
        2999: (lines[2999][:-3], "invalid JSON"),  # truncated final line, no newline after it
    }
    for index, (line, _) in damage.items():
        lines[index] = line
    return lines, {i: word for i, (_, word) in damage.items()}


@pytest.mark.parametrize(
    "real", [False, pytest.param(True, marks=pytest.mark.shared_data)], ids=["synthetic", "zeek-dns"]
)
def test_damaged_json_lines_are_bad_records(
    tmp_path: Path, real: bool, request: pytest.FixtureRequest
) -> None:
    data_dir = request.getfixturevalue("data_dir") if real else None
    lines, damage = _jsonl_with_damage(data_dir)
    # Blank lines and CRLF endings are not records and not errors.
    data = (
        b"\n".join(lines[:100])
        + b"\n\n  \r\n"
        + b"\r\n".join(lines[100:200])
        + b"\r\n"
        + b"\n".join(lines[200:])
    )
    path = write(tmp_path / "damaged.json", data)
    assert formats.detect(one_source(path)) == ("zeek_json" if real else "jsonl")
    batches, bad = read_all(one_source(path), "jsonl", batch_size=500)
    good = raw_records(batches)
    starts = {}
    pos = 0
    for index, line in enumerate(lines):  # independent offsets of every line
        idx = data.index(line, pos)
        starts[index] = idx
        pos = idx + len(line)
    assert {b.offset for b in bad} == {starts[i] for i in damage}
    for b in bad:
        index = next(i for i, s in starts.items() if s == b.offset)
        assert damage[index] in b.reason or damage[index].lower() in b.reason.lower(), (
            b.reason,
            damage[index],
        )
        assert b.sample and len(b.sample) <= 200
    utf8_bad = next(b for b in bad if b.offset == starts[20])
    assert "\\xff" in utf8_bad.sample and "at byte 5" in utf8_bad.reason
    assert [o for o, _ in good] == [starts[i] for i in range(len(lines)) if i not in damage]
    assert [r.encode() for _, r in good] == [lines[i].strip() for i in range(len(lines)) if i not in damage]


def test_random_bit_flips_in_json_lines_never_raise(tmp_path: Path) -> None:
    lines = [
        json.dumps({"n": i, "text": f"value {i} ✓", "list": [i, i + 1]}, ensure_ascii=False).encode()
        for i in range(2000)
    ]
    data = b"\n".join(lines) + b"\n"
    for seed in range(5):
        rng = random.Random(seed)
        flipped = bytearray(data)
        for _ in range(50):
            at = rng.randrange(len(flipped))
            new = flipped[at] ^ (1 << rng.randrange(8))
            if flipped[at] != 0x0A and new != 0x0A:  # keep the line structure
                flipped[at] = new
        path = write(tmp_path / f"flip{seed}.json", bytes(flipped))
        batches, bad = read_all(one_source(path), "jsonl")
        good = raw_records(batches)
        assert len(good) + len(bad) == len(nonblank_lines(bytes(flipped)))
        assert bad, seed
        for _, raw in good:
            assert isinstance(json.loads(raw), dict)
            raw.encode("utf-8")  # valid UTF-8 text


def test_json_array_and_concatenated_objects_with_a_bad_record(tmp_path: Path) -> None:
    records = [
        {"timestamp": f"t{i}", "event_type": "alert", "src_ip": "10.0.0.1", "n": i, "s": "ü"}
        for i in range(50)
    ]
    pretty = json.dumps(records, indent=2, ensure_ascii=False)
    broken = pretty.replace('"n": 17,', '"n": 17,,', 1)  # element 17 is bad
    batches, bad = read_all(one_source(write(tmp_path / "array.json", broken.encode())), batch_size=8)
    good = [json.loads(r) for _, r in raw_records(batches)]
    assert good == records[:17] + records[18:]
    assert len(bad) == 1
    data = broken.encode()
    assert bad[0].offset == data.rindex(b"{", 0, data.index(b'"t17"'))  # where element 17 starts

    concat = "\n".join(json.dumps(r, indent=4) for r in records)
    broken = concat.replace('"n": 30', '"n": 30 30', 1)
    batches, bad = read_all(one_source(write(tmp_path / "concat.json", broken.encode())))
    assert [json.loads(r) for _, r in raw_records(batches)] == records[:30] + records[31:]
    assert len(bad) == 1 and "invalid JSON" in bad[0].reason
    # Non-objects and undecodable bytes inside an array
    mixed = b'[{"a": 1}, 2, {"b": "\xff"}, {"c": 3}]'
    batches, bad = read_all(one_source(write(tmp_path / "mixed.json", mixed)), "jsonl")
    assert [json.loads(r) for _, r in raw_records(batches)] == [{"a": 1}, {"c": 3}]
    assert [b.offset for b in bad] == [mixed.index(b"2"), mixed.index(b'{"b"')]
    assert "UTF-8" in bad[1].reason
    # A truncated array: everything before the cut is read
    cut = pretty.encode()[: len(pretty) // 2]
    batches, bad = read_all(one_source(write(tmp_path / "cut.json", cut)), "suricata")
    assert [json.loads(r) for _, r in raw_records(batches)] == records[: len(raw_records(batches))]
    assert len(raw_records(batches)) >= 20 and len(bad) == 1


def test_csv_malformed_rows_are_bad_records(tmp_path: Path) -> None:
    data = (
        b"a,b,c\n"
        b"1,2,3\n"
        b"4,5\n"  # too few
        b'"multi\nline",x,y\n'
        b"6,7,8,9\n"  # too many
        b"\n"
        b"10,11,12\n"
        b"13,\xff,15\n"  # not UTF-8
    )
    batches, bad = read_all(one_source(write(tmp_path / "r.csv", data)), "csv", batch_size=2)
    rows = table_rows(batches)
    assert [(o, list(r.values())) for o, r in rows] == [
        (0, ["1", "2", "3"]),
        (2, ["multi\nline", "x", "y"]),
        (4, ["10", "11", "12"]),
    ]
    assert [(b.offset, b.sample) for b in bad] == [(1, "4,5"), (3, "6,7,8,9"), (5, "13,\\xff,15")]
    assert "2 fields, expected 3" in bad[0].reason and "UTF-8" in bad[2].reason
    # UTF-16 with BOM, tab-separated
    text = "x\ty\nä\t1\nb\t2\n"
    batches, bad = read_all(
        one_source(write(tmp_path / "u.tsv", codecs.BOM_UTF16_LE + text.encode("utf-16-le")))
    )
    assert not bad and [r for _, r in table_rows(batches)] == [{"x": "ä", "y": "1"}, {"x": "b", "y": "2"}]


def test_zeek_tsv_conversions_and_bad_lines(tmp_path: Path) -> None:
    data = (
        b"#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n"
        b"#fields\tts\tuid\tid.orig_p\tok\tnames\ttimes\tnote\n"
        b"#types\ttime\tstring\tport\tbool\tset[string]\tvector[interval]\tstring\n"
        b"1.5\tC1\t80\tT\ta,b\t1.0,2.5\t\\\\share\\\\x\\x09y\n"  # Zeek escapes: \\ and \x09
        b"2.5\tC2\t-\tF\t(empty)\t-\t(empty)\n"
        b"3.5\tC3\t443\n"  # too few fields
        b"#close\t2024\n"
    )
    path = write(tmp_path / "conn.log", data)
    batches, bad = read_all(one_source(path))
    rows = table_rows(batches)
    assert [r for _, r in rows] == [
        {
            "ts": 1.5,
            "uid": "C1",
            "id.orig_p": 80,
            "ok": True,
            "names": ["a", "b"],
            "times": [1.0, 2.5],
            "note": "\\share\\x\ty",
        },
        {"ts": 2.5, "uid": "C2", "id.orig_p": None, "ok": False, "names": [], "times": None, "note": ""},
    ]
    assert [o for o, _ in rows] == [data.index(b"\n1.5\t") + 1, data.index(b"\n2.5\t") + 1]
    assert len(bad) == 1 and bad[0].offset == data.index(b"\n3.5\t") + 1
    assert "3 fields, expected 7" in bad[0].reason


def test_parquet_and_batch_size(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"a": list(range(1000)), "b": [str(i) for i in range(1000)]})
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=300)
    batches, bad = read_all(one_source(tmp_path / "t.parquet"), batch_size=128)
    assert not bad
    assert pa.concat_tables([b.rows for b in batches]).equals(table)
    assert [o for b in batches for o in b.offsets] == list(range(1000))
    with zipfile.ZipFile(tmp_path / "p.zip", "w") as zf:  # from an archive member too
        zf.write(tmp_path / "t.parquet", "t.parquet")
    batches, bad = read_all(one_source(tmp_path / "p.zip"))
    assert not bad and sum(len(b) for b in batches) == 1000
    broken = one_source(write(tmp_path / "bad.parquet", b"PAR1" + b"\0" * 100))
    items = list(formats.read(broken, "parquet"))
    assert len(items) == 1 and isinstance(items[0], BadRecord) and items[0].offset == 0


@pytest.mark.parametrize("container", ["lines", "array"])
def test_raw_records_are_valid_json_for_duckdb(tmp_path: Path, container: str) -> None:
    import duckdb

    records = [
        rb'{"b": "\ud800x", "k\udc00": 1}',  # lone surrogate escapes: Python accepts them, DuckDB does not
        rb'{"b": "\ud83d\ude00"}',  # a valid pair
        rb'{"b": "\\ud800"}',  # an escaped backslash, not a surrogate
        rb'{"b": "x", "big": 1e999, "int": 123456789012345678901234567890}',
        rb'{"b": "\u0000 nul"}',
    ]
    bad = [rb'{"n": NaN}', b'{"deep": ' + b"[" * 5000 + b"]" * 5000 + b"}", rb'{"b": "\ud800", "n": 1e999}']
    parts = records + bad
    data = b"\n".join(parts) + b"\n" if container == "lines" else b"[" + b",\n".join(parts) + b"]"
    batches, bad_records = read_all(one_source(write(tmp_path / "edge.json", data)), "jsonl")
    good = raw_records(batches)
    assert len(good) == len(records) and len(bad_records) == len(bad)
    con = duckdb.connect()
    values = [
        con.execute("SELECT json_valid(?), json_extract_string(?, '$.b')", [r, r]).fetchone() for _, r in good
    ]
    assert values == [(True, "\\ud800x"), (True, "😀"), (True, "\\ud800"), (True, "x"), (True, "\x00 nul")]
    assert [o for o, _ in good] == [data.index(r) for r in records]
