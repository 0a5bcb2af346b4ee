"""huntbook.demo: the synthetic incident (checked from the files alone) and the demo runner."""

from __future__ import annotations

import base64
import filecmp
import ipaddress
import json
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from huntbook import demo
from huntbook.errors import StoreError

DOC_RANGES = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")]
STORY_KEYS = (
    "attacker_ip",
    "attacker_domain",
    "victim_host",
    "victim_ip",
    "compromised_account",
    "logon_id",
    "logon_type",
    "logon_time",
    "spray_start",
    "spray_end",
    "sprayed_accounts",
    "powershell_time",
    "encoded_command_line",
    "decoded_command",
    "download_url",
    "anomaly_hour",
)


def read_lines(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def incident(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return demo.generate(tmp_path_factory.mktemp("incident"))


@pytest.fixture(scope="module")
def windows(incident: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Host name -> its events (the ``Event`` objects)."""
    folder = Path(incident["out_dir"]) / "windows"
    return {p.stem: [e["Event"] for e in read_lines(p)] for p in sorted(folder.glob("*.jsonl"))}


@pytest.fixture(scope="module")
def zeek(incident: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    folder = Path(incident["out_dir"]) / "zeek"
    return {log: read_lines(folder / f"{log}.log") for log in ("conn", "dns")}


# ---------------------------------------------------------------------------------------------------------
# The generator


def test_same_seed_gives_byte_identical_files(incident: dict[str, Any], tmp_path: Path) -> None:
    again = demo.generate(tmp_path / "again")
    other = demo.generate(tmp_path / "other", seed=7)
    names = [*sorted(incident["counts"]), "truth.json"]
    match, mismatch, errors = filecmp.cmpfiles(incident["out_dir"], again["out_dir"], names, shallow=False)
    assert (sorted(match), mismatch, errors) == (sorted(names), [], [])
    _, different, _ = filecmp.cmpfiles(incident["out_dir"], other["out_dir"], names, shallow=False)
    assert sorted(different) == sorted(names)
    assert other["truth"]["logon_id"] != incident["truth"]["logon_id"]


def test_result_lists_files_counts_and_truth(incident: dict[str, Any]) -> None:
    out = Path(incident["out_dir"])
    assert sorted(Path(f).relative_to(out).as_posix() for f in incident["files"]) == sorted(
        incident["counts"]
    )
    for name, count in incident["counts"].items():
        assert sum(1 for _ in (out / name).open(encoding="utf-8")) == count
    assert json.loads(Path(incident["truth_file"]).read_text(encoding="utf-8")) == incident["truth"]
    assert "truth.json" not in {Path(f).name for f in incident["files"]}  # the truth is not evidence
    assert 50_000 <= incident["total"] <= 150_000


def test_background_is_plentiful_and_has_office_rhythm(
    incident: dict[str, Any], windows: dict[str, list[dict[str, Any]]], zeek: dict[str, list[dict[str, Any]]]
) -> None:
    assert sorted(windows) == ["DC01", "SRV01", "WS01", "WS02", "WS03", "WS04", "WS05", "WS06"]
    start = demo.START
    for host, events in windows.items():
        assert len(events) > 1000, host
        days = {when(e["System"]["TimeCreated"]["#attributes"]["SystemTime"]).date() for e in events}
        assert len(days) == 7, host
        assert {e["System"]["Computer"] for e in events} == {f"{host}.corp.local"}
    by_hour: Counter[int] = Counter()
    for host in ("WS01", "WS02", "WS03", "WS04", "WS05", "WS06"):
        for e in windows[host]:
            if e["System"]["EventID"] == 4688 and e["EventData"]["SubjectUserSid"] != "S-1-5-18":
                stamp = when(e["System"]["TimeCreated"]["#attributes"]["SystemTime"])
                if stamp.weekday() < 5:
                    by_hour[stamp.hour] += 1
    office = sum(by_hour[h] for h in range(9, 17))
    night = sum(by_hour[h] for h in range(0, 6))
    assert office > 500 and night == 0  # people work in the day, and nobody at WS01..WS06 works at night
    images = {
        e["EventData"]["NewProcessName"].rsplit("\\", 1)[-1]
        for ev in windows.values()
        for e in ev
        if "NewProcessName" in e["EventData"]
    }
    assert {"chrome.exe", "EXCEL.EXE", "OUTLOOK.EXE", "svchost.exe", "taskhostw.exe"} <= images
    queried = Counter(r["query"] for r in zeek["dns"])
    assert len(queried) >= 20 and queried["srv01.corp.local"] > 100
    end = start + timedelta(days=7)
    for record in zeek["conn"]:
        assert start <= datetime.fromtimestamp(record["ts"], UTC) < end
    assert incident["counts"]["zeek/conn.log"] > 20_000


def test_addresses_are_stable_and_external_ones_are_documentation_ranges(
    zeek: dict[str, list[dict[str, Any]]],
) -> None:
    hosts = {h.ip: h.name for h in demo.HOSTS}
    external: set[str] = set()
    internal: set[str] = set()
    for record in zeek["conn"]:
        for ip in (record["id.orig_h"], record["id.resp_h"]):
            (internal if ip.startswith("10.10.") else external).add(ip)
    assert external and all(any(ipaddress.ip_address(ip) in net for net in DOC_RANGES) for ip in external)
    assert {"10.10.0.10", "10.10.0.20", "10.10.1.103"} <= internal
    answers = {
        r["query"]: r["answers"] for r in zeek["dns"] if r["query"].endswith(".corp.local") and "answers" in r
    }
    assert hosts[answers["srv01.corp.local"][0]] == "SRV01"


def test_the_story_is_in_the_windows_events(
    incident: dict[str, Any], windows: dict[str, list[dict[str, Any]]]
) -> None:
    truth = incident["truth"]
    ip = truth["attacker_ip"]
    srv = windows[truth["victim_host"]]

    def of(event_id: int) -> list[dict[str, Any]]:
        return [e for e in srv if e["System"]["EventID"] == event_id]

    def stamp(e: dict[str, Any]) -> datetime:
        return when(e["System"]["TimeCreated"]["#attributes"]["SystemTime"])

    # 1. the spray: failures from the attacker's address against many accounts, within minutes
    failures = [e for e in of(4625) if e["EventData"]["IpAddress"] == ip]
    sprayed = {e["EventData"]["TargetUserName"] for e in failures}
    assert len(sprayed) >= 10 and sorted(sprayed) == truth["sprayed_accounts"]
    assert stamp(failures[-1]) - stamp(failures[0]) < timedelta(minutes=15)
    assert {e["EventData"]["Status"] for e in failures} == {"0xc000006d"}
    assert all(e["EventData"].get("IpAddress") != ip for h, ev in windows.items() for e in ev if h != "SRV01")

    # 2. then a successful RDP logon from the same address
    (rdp,) = [e for e in of(4624) if e["EventData"]["IpAddress"] == ip and e["EventData"]["LogonType"] == 10]
    data = rdp["EventData"]
    assert f"{data['TargetDomainName']}\\{data['TargetUserName']}" == truth["compromised_account"]
    assert data["TargetLogonId"] == truth["logon_id"]
    assert stamp(failures[-1]) < stamp(rdp)

    # 3. the session's processes: discovery, then the encoded download cradle
    session = [
        e
        for e in of(4688)
        if truth["logon_id"] in (e["EventData"]["SubjectLogonId"], e["EventData"]["TargetLogonId"])
    ]
    commands = [e["EventData"]["CommandLine"] for e in session]
    images = [e["EventData"]["NewProcessName"].rsplit("\\", 1)[-1].lower() for e in session]
    assert {"cmd.exe", "whoami.exe", "net.exe", "powershell.exe"} <= set(images)
    assert {"whoami.exe /all", "net.exe user /domain"} <= set(commands)
    (encoded,) = [c for c in commands if " -enc " in c]
    assert encoded.startswith("powershell.exe -nop -w hidden -enc ")
    decoded = base64.b64decode(encoded.rsplit(" ", 1)[1]).decode("utf-16-le")
    assert "http://203.0.113.66/stage2.ps1" in decoded
    assert decoded == truth["decoded_command"] and encoded == truth["encoded_command_line"]
    assert all(stamp(rdp) <= stamp(e) for e in session)
    assert [
        e["EventData"]["ParentProcessName"].rsplit("\\", 1)[-1]
        for e in session
        if e["EventData"]["CommandLine"] == encoded
    ] == ["cmd.exe"]


def test_the_story_is_in_the_zeek_logs(
    incident: dict[str, Any], zeek: dict[str, list[dict[str, Any]]]
) -> None:
    truth = incident["truth"]
    ip, victim = truth["attacker_ip"], truth["victim_ip"]
    lookups = [r for r in zeek["dns"] if r["query"] == truth["attacker_domain"]]
    assert lookups and all(r["answers"] == [ip] and r["id.orig_h"] == victim for r in lookups)
    sent: defaultdict[tuple[int, str], int] = defaultdict(int)
    for r in zeek["conn"]:
        sent[(int(r["ts"] // 3600), r["id.resp_h"])] += r["orig_bytes"]
    (top, top_bytes), (_, second_bytes) = sorted(sent.items(), key=lambda kv: kv[1], reverse=True)[:2]
    assert top == (int(when(truth["anomaly_hour"]).timestamp() // 3600), ip)
    assert top_bytes > 10 * second_bytes
    spray = [r for r in zeek["conn"] if r["id.orig_h"] == ip and r["id.resp_p"] == 3389]
    assert len(spray) >= len(truth["sprayed_accounts"])
    assert all(r["uid"].startswith("C") and len(r["uid"]) == 18 for r in zeek["conn"][:100])


def shape(value: Any) -> Any:
    """The key structure of a JSON value, with leaf types (null counts as any)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    return None if value is None else type(value).__name__


REAL_SAMPLES = {  # event id -> a real EVTX file that has it (Security, same event version)
    4624: "deepbluecli-evtx/evtx/sliver-security.evtx",
    4672: "deepbluecli-evtx/evtx/sliver-security.evtx",
    4688: "deepbluecli-evtx/evtx/sliver-security.evtx",
    4625: "evtx-attack-samples/Credential Access/CA_4624_4625_LogonType2_LogonProc_chrome.evtx",
    4634: "evtx-attack-samples/Privilege Escalation/4624 LT3 AnonymousLogon Localhost - JuicyPotato.evtx",
}


@pytest.mark.shared_data
def test_windows_json_has_the_shape_the_evtx_crate_renders(
    windows: dict[str, list[dict[str, Any]]], shared_data: Path
) -> None:
    evtx = pytest.importorskip("evtx")
    ours = {e["System"]["EventID"]: e for events in windows.values() for e in events}
    assert sorted(ours) == sorted(REAL_SAMPLES)
    for event_id, name in REAL_SAMPLES.items():
        path = shared_data / name
        if not path.exists():
            pytest.skip(f"{path} not found")
        real = next(
            d["Event"]
            for r in evtx.PyEvtxParser(str(path)).records_json()
            if (d := json.loads(r["data"]))["Event"]["System"]["EventID"] == event_id
        )
        mine = ours[event_id]
        assert list(mine) == list(real) == ["#attributes", "System", "EventData"]
        assert list(mine["System"]) == list(real["System"]), event_id
        assert list(mine["EventData"]) == list(real["EventData"]), event_id
        assert shape(mine["EventData"]) == shape(real["EventData"]), event_id
        for key in (
            "Provider",
            "TimeCreated",
            "Execution",
            "EventID",
            "Version",
            "Task",
            "Keywords",
            "EventRecordID",
        ):
            assert shape(mine["System"][key]) == shape(real["System"][key]), (event_id, key)
        assert mine["System"]["Version"] == real["System"]["Version"]
    # and the top of the pretty-printed sample JSON of the Sigma regression data
    sample = next((shared_data / "sigma" / "regression_data").rglob("*.json"), None)
    if sample is not None:
        rendered = json.loads(sample.read_text(encoding="utf-8"))["Event"]
        assert list(rendered["System"]) == list(ours[4688]["System"])
        assert rendered["#attributes"] == ours[4688]["#attributes"]


def test_days_start_and_scale(tmp_path: Path) -> None:
    start = datetime(2027, 1, 4, tzinfo=UTC)
    small = demo.generate(tmp_path / "small", days=2, start=start, scale=0.5)
    assert small["truth"]["incident_day"] == "2027-01-05"
    assert small["truth"]["anomaly_hour"].startswith("2027-01-05T0")
    assert small["total"] < 20_000
    first = read_lines(Path(small["out_dir"]) / "zeek" / "conn.log")[0]
    assert datetime.fromtimestamp(first["ts"], UTC) >= start
    with pytest.raises(ValueError, match="days"):
        demo.generate(tmp_path / "none", days=0)


@given(st.text(max_size=200))
def test_decode_powershell_inverts_encoding(script: str) -> None:
    encoded = base64.b64encode(script.encode("utf-16-le")).decode()
    assert demo.decode_powershell(encoded) == script
    assert demo.decode_powershell(encoded.rstrip("=")) == script  # padding is often stripped


def test_traffic_anomaly_rule_finds_a_spike() -> None:
    pd = pytest.importorskip("pandas")
    hours = pd.date_range("2026-10-05", periods=48, freq="h", tz="UTC")
    rows = [(h, "198.51.100.10", 50_000 + 1000 * (i % 5)) for i, h in enumerate(hours)]
    rows += [(hours[30], "203.0.113.9", 900_000), (hours[31], "203.0.113.9", 2_000)]
    frame = pd.DataFrame(rows, columns=["TimeGenerated", "DstIpAddr", "BytesOut"])
    from huntbook.investigations import traffic_anomalies

    ranked = traffic_anomalies(frame)
    assert (ranked.loc[0, "TimeGenerated"], ranked.loc[0, "DstIpAddr"]) == (hours[30], "203.0.113.9")
    assert ranked.loc[0, "Score"] > 10 * ranked.loc[1, "Score"]


def test_import_is_light() -> None:
    code = "import sys, huntbook.demo; print([m for m in ('pandas', 'duckdb') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------------------
# The runner


@pytest.mark.slow
def test_run_finds_the_story_and_writes_the_report(tmp_path: Path) -> None:
    steps: list[str] = []
    report = demo.run(tmp_path / "out", seed=7, progress=False, log=steps.append)
    out = tmp_path / "out"
    assert report == out / "report.html"
    truth = json.loads((out / "data" / "truth.json").read_text(encoding="utf-8"))
    found = json.loads((out / "findings.json").read_text(encoding="utf-8"))
    assert {k: found.get(k) for k in STORY_KEYS} == {k: truth[k] for k in STORY_KEYS}
    # the analyses: STL spike over the exfiltration hour, the implant's beacon, the rare session, the IoCs
    assert when(found["spike_start"]) <= when(truth["anomaly_hour"]) < when(found["spike_end"])
    assert found["top_beacon"] == f"{truth['victim_ip']} -> {truth['attacker_ip']}"
    assert found["attacker_session_rank"] <= 3
    assert {truth["attacker_ip"], truth["download_url"]} <= set(found["decoded_iocs"])
    assert {"Password spray - one source, many accounts", "RDP logon from a public address"} <= set(
        found["sigma_rules_hit"]
    )
    # enrichment: the team's offline feeds flag exactly the attacker's IP, domain and download URL
    assert found["ti_flagged"] == [truth["attacker_ip"], truth["attacker_domain"], truth["download_url"]]
    page = report.read_text(encoding="utf-8")
    assert "17. Threat intelligence verdicts" in page and "FakeUpdate C2 server" in page
    # charts (the vis extra): the incident's timeline, the anomaly band, the attacker's tree, the map
    assert page.count("data-root-id") == 4 and "Timeline of the incident" in page
    for needle in (
        truth["attacker_ip"],
        "CORP\\jsmith",
        truth["download_url"],
        truth["logon_id"],
        "cdn-update-check.com",
    ):
        assert needle in page, needle
    assert page.count("<details>") >= 8  # every hunt shows its query
    # the investigations of the story's host, account and IP, saved beside the report and linked from it
    for kind, target in (("host", truth["victim_host"]), ("account", "jsmith"), ("ip", truth["attacker_ip"])):
        href = f"investigations/{kind}-{target}.html"
        assert f'href="{href}"' in page, href
        linked = (out / href).read_text(encoding="utf-8")
        assert f"investigation: {target}</h1>" in linked and truth["logon_id"] in linked
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert truth["download_url"] in markdown and "| Source |" in markdown
    assert any("password_spray" in s for s in steps) and steps[-1].startswith("report:")
    from huntbook.store import LocalStore

    sources = LocalStore(out / "store").sources()
    assert sorted(sources["format"].unique()) == ["evtx_json", "zeek_json"]
    evidence = [*(out / "data" / "windows").glob("*.jsonl"), *(out / "data" / "zeek").glob("*.log")]
    lines = sum(sum(1 for _ in path.open(encoding="utf-8")) for path in evidence)
    assert int(sources["quarantined"].sum()) == 0 and int(sources["records"].sum()) == lines


@pytest.mark.slow
def test_run_refuses_a_store_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "out" / "store").mkdir(parents=True)
    (tmp_path / "out" / "store" / "keep.txt").write_text("not ours", encoding="utf-8")
    with pytest.raises(StoreError, match="not a demo's store"):
        demo.run(tmp_path / "out")
    assert (tmp_path / "out" / "store" / "keep.txt").exists()
