"""The ``huntbook`` command line, run as a real subprocess (exit codes, stdout, stderr)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest

from conftest import run_cli

huntbook = run_cli


def _event(rid: int, command: str, logon: str = "0x5A1F3") -> str:
    return json.dumps(
        {
            "Event": {
                "System": {
                    "EventID": 4688,
                    "Channel": "Security",
                    "Computer": "WS01.corp.local",
                    "TimeCreated": {"#attributes": {"SystemTime": f"2026-10-05T10:00:{rid:02d}Z"}},
                },
                "EventData": {
                    "NewProcessName": "C:\\Windows\\System32\\cmd.exe",
                    "CommandLine": command,
                    "SubjectUserName": "jsmith",
                    "SubjectDomainName": "CORP",
                    "SubjectLogonId": logon,
                },
            }
        }
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    (root / "in").mkdir()
    commands = ["whoami /all", "x' OR 1=1 --", "powershell -enc SQBFAFgA", "net user /domain"]
    (root / "in" / "sec.jsonl").write_text(
        "\n".join(_event(i, c) for i, c in enumerate(commands)) + "\n{broken\n"
    )
    out = huntbook("ingest", str(root / "in"), "--store", str(root / "store"), "--format", "csv")
    assert out.returncode == 0, out.stderr
    summary = pd.read_csv(io.StringIO(out.stdout))
    assert (summary.records[0], summary.ingested[0], summary.quarantined[0]) == (5, 4, 1)
    assert "4 ingested" in out.stderr and "1 quarantined" in out.stderr
    return root / "store"


RANGE = ("--start", "2026-10-01", "--end", "2026-10-10")


def test_catalogue_query_with_params_and_formats(store: Path) -> None:
    out = huntbook(
        "query",
        "process.logon_session_processes",
        "-p",
        "logon_session_id=0x5a1f3",
        "--store",
        str(store),
        *RANGE,
        "--format",
        "json",
    )
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == 4 and {r["TargetUserSessionId"] for r in rows} == {"0x5a1f3"}
    table = huntbook("query", "process.encoded_commands", "--store", str(store), *RANGE)
    assert (
        table.returncode == 0 and "powershell -enc SQBFAFgA" in table.stdout and "whoami" not in table.stdout
    )


def test_values_are_matched_literally(store: Path) -> None:
    out = huntbook(
        "query",
        "process.command_line_search",
        "-p",
        "pattern=x' OR 1=1 --",
        "--store",
        str(store),
        *RANGE,
        "-f",
        "csv",
    )
    assert out.returncode == 0, out.stderr
    found = pd.read_csv(io.StringIO(out.stdout))
    assert list(found.TargetProcessCommandLine) == ["x' OR 1=1 --"]


def test_print_query_runs_nothing(store: Path) -> None:
    out = huntbook(
        "query",
        "process.host_processes",
        "-p",
        "host_name=WS01",
        "--store",
        str(store),
        *RANGE,
        "--print-query",
    )
    assert out.returncode == 0
    assert out.stdout.lstrip().upper().startswith(("SELECT", "WITH")) and "'WS01'" in out.stdout


def test_sql_and_kql(store: Path) -> None:
    sql = huntbook(
        "query", "--sql", "SELECT count(*) AS n FROM process_events", "--store", str(store), "-f", "csv"
    )
    assert sql.returncode == 0 and sql.stdout.split() == ["n", "4"]
    kql = huntbook(
        "query", "--kql", "process_events | summarize n = count()", "--store", str(store), "-f", "csv"
    )
    assert kql.returncode == 0, kql.stderr
    assert kql.stdout.split() == ["n", "4"]


def test_queries_list_and_search() -> None:
    everything = huntbook("queries", "-f", "csv")
    assert everything.returncode == 0
    names = set(pd.read_csv(io.StringIO(everything.stdout))["query"])
    assert {"process.host_processes", "authentication.password_spray", "dns.domain_queries"} <= names
    spray = huntbook("queries", "spray", "-f", "csv")
    assert set(pd.read_csv(io.StringIO(spray.stdout))["query"]) == {"authentication.password_spray"}


def test_errors_exit_2_with_the_fix(store: Path, tmp_path: Path) -> None:
    unknown = huntbook("query", "process.nope", "--store", str(store))
    assert (
        unknown.returncode == 2 and unknown.stderr.startswith("error:") and "no local query" in unknown.stderr
    )
    bad_param = huntbook("query", "process.host_processes", "-p", "hots=WS01", "--store", str(store))
    assert bad_param.returncode == 2 and "host_name" in bad_param.stderr
    no_store = huntbook("query", "--sql", "SELECT 1", cwd=tmp_path)
    assert no_store.returncode == 2 and "--store" in no_store.stderr
    missing = huntbook("ingest", str(tmp_path / "nope"), "--store", str(tmp_path / "s"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    assert "Traceback" not in unknown.stderr + bad_param.stderr + no_store.stderr + missing.stderr


def test_tables(store: Path) -> None:
    out = huntbook("tables", "--store", str(store))
    assert out.returncode == 0
    assert any(line.split()[:2] == ["process_events", "4"] for line in out.stdout.splitlines())


def test_iocs_from_files_and_from_a_store_query(store: Path, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("beacon to hxxp://evil[.]example[.]com/a.ps1\nnothing here\nsrc 203.0.113.66\n")
    out = huntbook("iocs", str(text), "--format", "csv")
    assert out.returncode == 0, out.stderr
    found = pd.read_csv(io.StringIO(out.stdout))
    pairs = set(zip(found["row"], found["ioc_type"], found["value"], strict=True))
    assert (f"{text}:1", "url", "http://evil.example.com/a.ps1") in pairs
    assert (f"{text}:3", "ipv4", "203.0.113.66") in pairs
    assert not any(r.endswith(":2") for r in found["row"])
    out = huntbook("iocs", str(text), "--type", "ipv4", "--format", "json")
    assert [json.loads(line)["value"] for line in out.stdout.splitlines()] == ["203.0.113.66"]
    # over a store query: the command lines ingested by the fixture hold no IoCs but a path
    out = huntbook(
        "iocs", "--store", str(store), "--sql", "SELECT TargetProcessName FROM process_events", "-f", "csv"
    )
    assert out.returncode == 0, out.stderr
    found = pd.read_csv(io.StringIO(out.stdout))
    assert set(found["value"]) == {"C:\\Windows\\System32\\cmd.exe"}
    assert set(found["ioc_type"]) == {"windows_path"} and len(found) == 4


def test_decode_from_a_store_query_and_errors(store: Path, tmp_path: Path) -> None:
    sql = "SELECT TargetProcessCommandLine FROM process_events"
    out = huntbook(
        "decode", "--store", str(store), "--sql", sql, "--column", "TargetProcessCommandLine", "-f", "json"
    )
    assert out.returncode == 0, out.stderr
    layers = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(x["encoding"], x["text"]) for x in layers if x["text"]] == [("base64-utf16le", "IEX")]
    out = huntbook("decode", "--store", str(store), "--sql", sql)
    assert out.returncode == 2 and "--column" in out.stderr
    out = huntbook("decode", str(tmp_path / "missing.txt"))
    assert out.returncode == 2 and "no such file" in out.stderr


RULE = """title: Whoami discovery
id: 8f0d1e34-1c7b-4b9e-9c1a-2b7e1c3d4e5f
status: test
level: medium
tags: [attack.discovery, attack.t1033]
logsource: {category: process_creation, product: windows}
detection:
  selection: {CommandLine|contains: whoami}
  condition: selection
"""


def test_sigma_run_and_convert(store: Path, tmp_path: Path) -> None:
    (tmp_path / "rule.yml").write_text(RULE, encoding="utf-8")
    hits = tmp_path / "hits.csv"
    out = huntbook("sigma", "run", str(tmp_path / "rule.yml"), "--store", str(store), "--output", str(hits))
    assert out.returncode == 0, out.stderr
    assert "1 hits" in out.stdout and "Whoami discovery" in out.stdout
    frame = pd.read_csv(hits)
    assert frame["title"].tolist() == ["Whoami discovery"] and "whoami /all" in frame["event"][0]
    out = huntbook("sigma", "convert", str(tmp_path / "rule.yml"), "--target", "splunk")
    assert out.returncode == 0, out.stderr
    assert 'CommandLine="*whoami*"' in out.stdout
    out = huntbook("sigma", "run", str(tmp_path / "nothing.yml"), "--store", str(store))
    assert out.returncode == 2 and "error:" in out.stderr
