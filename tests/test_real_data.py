"""Known facts of the real datasets, found through catalogue queries on a LocalStore.

The expected values come from the datasets' own ground truth (index files, PROVENANCE notes,
OTRF metadata), never from huntbook's output.
"""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import pytest

import huntbook as hb

pytestmark = pytest.mark.slow
WIDE = {"start": "2000-01-01", "end": "2030-01-01"}


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def real_store(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> hb.LocalStore:
    store = hb.LocalStore(tmp_path_factory.mktemp("real") / "store")
    mordor = shared_data / "mordor-security-datasets" / "datasets"
    store.ingest(
        [
            shared_data / "deepbluecli-evtx" / "evtx",
            shared_data / "sigma" / "regression_data",
            mordor / "atomic" / "windows" / "execution" / "host" / "empire_launcher_vbs.zip",
            mordor / "compound" / "LSASS_campaign_01",
            shared_data / "suricata-eve-alerts" / "samples" / "wrccdc-2018" / "alerts-only.json",
        ],
        progress=False,
    )
    return store


@pytest.fixture(scope="module")
def qp(real_store: hb.LocalStore) -> hb.QueryProvider:
    return hb.QueryProvider("local", store=real_store)


def test_password_spray_of_deepbluecli(qp: hb.QueryProvider, shared_data: Path) -> None:
    # index.csv: Security:4648x294 on DESKTOP-JR78RLP from 172.16.144.128; PROVENANCE: a password spray.
    row = next(r for r in _csv(shared_data / "deepbluecli-evtx" / "index.csv") if "spray" in r["file"])
    attempts = int(row["event_ids"].split("4648x")[1].split(";")[0])
    spray = qp.authentication.password_spray(min_accounts=3, **WIDE)
    hit = spray[spray.Source == row["ips"]]
    assert len(hit) == 1
    assert int(hit.Failures.iloc[0]) == attempts
    assert int(hit.DistinctAccounts.iloc[0]) >= 10  # a spray: many accounts from one source
    assert "domain\\administrator" in hit.Accounts.iloc[0]


def _index_form(command: str) -> str:
    """A command line as regression_index.csv writes it: whitespace collapsed, '|' shown as '/'."""
    return " ".join(command.replace("|", "/").split())


def test_sigma_samples_command_lines_are_found(qp: hb.QueryProvider, shared_data: Path) -> None:
    """Every process listed in the Sigma regression index is found by command-line search with its user."""
    rows = [
        r
        for r in _csv(shared_data / "sigma" / "regression_index.csv")
        if r["test_file"].endswith(".evtx") and " -> " in r["procs"]
    ]
    assert len(rows) > 50
    missing = []
    for r in rows:
        user, _, rest = r["procs"].partition(" | ")
        parent, _, listed = rest.partition(" -> ")
        truncated = listed.endswith("…")
        listed = listed.rstrip("…")
        token = max(listed.replace("|", " ").replace("/", " ").split(), key=len)
        found = qp.process.command_line_search(pattern=token, **WIDE)
        forms = found.TargetProcessCommandLine.map(_index_form)
        exact = found[forms.str.startswith(listed) if truncated else forms == listed]
        users = {str(u).lower() for u in exact.TargetUsername} | {str(u).lower() for u in exact.ActorUsername}
        if exact.empty or user.lower() not in users:
            missing.append((r["rule_title"], listed))
        elif parent != "-":
            assert any(str(p).lower().endswith(parent.lower()) for p in exact.ActingProcessName), r["procs"]
    assert not missing, missing


def test_empire_vbs_launcher_from_otrf_metadata(qp: hb.QueryProvider, shared_data: Path) -> None:
    # SDWIN-190518182022: Empire VBS launcher run by the user from the desktop (wscript.exe launcher.vbs).
    meta = (
        shared_data / "mordor-security-datasets/datasets/atomic/_metadata/SDWIN-190518182022.yaml"
    ).read_text()
    assert "launcher.vbs" in meta or "vbs" in meta.lower()
    procs = qp.process.command_line_search(pattern="launcher.vbs", **WIDE)
    assert {"Sysmon", "Security"} <= set(procs.EventProduct)
    assert procs.TargetProcessName.str.lower().str.endswith("wscript.exe").any()
    children = qp.process.process_children(process_name="wscript.exe", **WIDE)
    assert children.TargetProcessName.str.lower().str.endswith("powershell.exe").any()


def test_lsass_campaign_attacker_listener(qp: hb.QueryProvider, shared_data: Path) -> None:
    # PROVENANCE: attacker listener 10.0.5.13:8080 (reverse HTTPS Meterpreter), victim MKT01.pandalab.com.
    conns = qp.network.ip_connections(ip_address="10.0.5.13", **WIDE)
    assert (conns.DstPortNumber == 8080).any()
    with zipfile.ZipFile(
        shared_data / "mordor-security-datasets/datasets/compound/LSASS_campaign_01/"
        "metasploit_logonpasswords_lsass_memory_dump_zeek_logs.zip"
    ) as z:
        raw_conn = z.read("conn.log").decode()
    expected = sum(1 for line in raw_conn.splitlines() if "10.0.5.13" in line and not line.startswith("#"))
    assert len(conns[conns.EventProduct == "Zeek"]) == expected
    victim = qp.process.host_processes(host_name="MKT01", **WIDE)
    users = {str(u).lower() for u in victim.TargetUsername}
    assert any("stevie.marie" in u for u in users) and any("pedro.gustavo" in u for u in users)


def test_suricata_alerts_by_signature(qp: hb.QueryProvider, shared_data: Path) -> None:
    listed = (
        (shared_data / "suricata-eve-alerts/samples/wrccdc-2018/signature-list.txt").read_text().splitlines()
    )
    alerts = qp.alerts.list_alerts(**WIDE)
    names = set(alerts.AlertName)
    wanted = {line.strip().strip('"') for line in listed if line.strip() and not line.startswith("#")}
    assert wanted and wanted == names
