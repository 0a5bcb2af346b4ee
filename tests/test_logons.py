"""huntbook.logons: failure bursts, spraying, brute force, rare logons, sessions with their processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from huntbook import logons
from huntbook.errors import DataError
from huntbook.session import QueryProvider
from huntbook.store import LocalStore

T0 = pd.Timestamp("2024-05-06 09:00", tz="UTC")


def auth_rows(*rows: dict[str, Any]) -> pd.DataFrame:
    """Authentication rows in ASIM names; times are seconds after T0."""
    frame = pd.DataFrame(rows)
    frame["TimeGenerated"] = T0 + pd.to_timedelta(frame.pop("t"), unit="s")
    return frame


def attempt(
    t: float, user: str, result: str = "Failure", src: str | None = "203.0.113.5", **extra: Any
) -> dict:
    return {
        "t": t,
        "EventType": "Logon",
        "EventResult": result,
        "TargetUsername": user,
        "SrcIpAddr": src,
        "DvcHostname": "SRV01",
        "LogonType": 3,
        **extra,
    }


def test_spray_one_source_many_accounts_and_who_fell() -> None:
    rows = [attempt(i, f"CORP\\user{i}") for i in range(8)]
    rows += [attempt(20, "CORP\\user3", "Success"), attempt(1, "CORP\\alice", src="10.0.0.7")]
    auth = auth_rows(*rows)
    before = auth.copy()
    found = logons.spray(auth)
    pd.testing.assert_frame_equal(auth, before)
    assert len(found) == 1
    row = found.iloc[0]
    assert (row["source"], row["DvcHostname"], row["accounts"], row["failures"]) == (
        "203.0.113.5",
        "SRV01",
        8,
        8,
    )
    assert row["succeeded"] == ["CORP\\user3"]
    assert row["account_list"][:2] == ["CORP\\user0", "CORP\\user1"]
    assert logons.spray(auth, min_accounts=9).empty


def test_spray_source_falls_back_to_workstation_and_ignores_localhost() -> None:
    rows = [attempt(i, f"u{i}", src="127.0.0.1", SrcHostname="KALI") for i in range(6)]
    rows += [attempt(i, f"v{i}", src="::1") for i in range(6)]
    found = logons.spray(auth_rows(*rows))
    assert found["source"].tolist() == ["KALI"]


def test_brute_force_and_a_success_in_another_name_format() -> None:
    rows = [attempt(i, "admin@corp.local") for i in range(7)]
    rows += [attempt(30, "CORP\\Admin", "Success"), attempt(5, "CORP\\bob"), attempt(6, "CORP\\bob")]
    found = logons.brute_force(auth_rows(*rows))
    assert found[["TargetUsername", "failures", "succeeded"]].values.tolist() == [
        ["admin@corp.local", 7, True]
    ]
    assert found.loc[0, "success_time"] == T0 + pd.Timedelta(seconds=30)
    late = auth_rows(*rows[:7], attempt(7200, "CORP\\Admin", "Success"))
    assert not logons.brute_force(late, within="1h").loc[0, "succeeded"]
    assert logons.brute_force(late, within="3h").loc[0, "succeeded"]


def test_failures_counts_bursts_per_host_and_bin() -> None:
    rows = [attempt(i * 10, f"u{i % 3}") for i in range(12)] + [attempt(4000, "u1")]
    found = logons.failures(auth_rows(*rows), freq="1h", min_failures=10)
    assert found[["DvcHostname", "failures", "accounts", "sources"]].values.tolist() == [["SRV01", 12, 3, 1]]
    assert found.loc[0, "TimeGenerated"] == T0.floor("1h")
    by_source = logons.failures(auth_rows(*rows), by=["DvcHostname", "SrcIpAddr"], min_failures=1)
    assert by_source["failures"].tolist() == [12, 1]


def test_rare_logons_per_account() -> None:
    rows = [attempt(i, "CORP\\jsmith", "Success", src="10.0.0.5", LogonType=2) for i in range(30)]
    rows += [attempt(99, "CORP\\jsmith", "Success", src="203.0.113.66", LogonType=10)]
    rows += [attempt(i, "CORP\\new", "Success", LogonType=10) for i in range(3)]  # too little history
    found = logons.rare_logons(auth_rows(*rows))
    assert sorted(found[["feature", "value"]].values.tolist()) == [
        ["LogonType", "10"],
        ["source", "203.0.113.66"],
    ]
    assert set(found["TargetUsername"]) == {"CORP\\jsmith"}
    assert (found["total"] == 31).all()


def test_sessions_with_processes_joins_host_and_logon_id_case_insensitively() -> None:
    auth = auth_rows(
        attempt(0, "CORP\\jsmith", "Success", TargetSessionId="0x1a2b", LogonType=10),
        attempt(500, "CORP\\other", "Success", TargetSessionId="0x1a2b", LogonType=3),  # id reused later
    )
    procs = pd.DataFrame(
        {
            "TimeGenerated": T0 + pd.to_timedelta([10, 600, -5, 20], unit="s"),
            "DvcHostname": ["srv01", "SRV01", "SRV01", "WS01"],
            "TargetUserSessionId": ["0x1A2B", "0x1a2b", "0x1a2b", "0x1a2b"],
            "TargetProcessName": ["cmd.exe", "net.exe", "early.exe", "elsewhere.exe"],
        }
    )
    before = procs.copy()
    joined = logons.sessions_with_processes(auth, procs)
    pd.testing.assert_frame_equal(procs, before)
    # early.exe started before any logon, elsewhere.exe on another host: neither is in a session
    assert joined[["TargetProcessName", "LogonUsername", "LogonType"]].values.tolist() == [
        ["cmd.exe", "CORP\\jsmith", 10],
        ["net.exe", "CORP\\other", 3],
    ]
    assert joined.loc[0, "LogonTime"] == T0


def test_column_mapping_and_sentinel_security_event(shared_data: Path) -> None:
    folder = shared_data / "msticpy-testdata" / "converted_from_pickle"
    frames = [pd.read_csv(folder / f"localdata__{name}_logons.csv.gz") for name in ("failed", "host")]
    events = pd.concat(frames, ignore_index=True)  # Sentinel SecurityEvent columns, no EventResult
    found = logons.failures(events, freq="1D", min_failures=1, columns=logons.SECURITY_EVENT)
    assert found["failures"].sum() == (events["EventID"] == 4625).sum()
    assert set(found["DvcHostname"]) == {"MSTICAlertsWin1"}
    renamed = auth_rows(*[attempt(i, f"u{i}") for i in range(6)]).rename(columns={"SrcIpAddr": "ip"})
    assert logons.spray(renamed, columns={"SrcIpAddr": "ip"})["source"].tolist() == ["203.0.113.5"]


def test_bad_input_gives_data_errors() -> None:
    auth = auth_rows(attempt(0, "u"))
    with pytest.raises(DataError, match="missing column.*TargetUsername") as info:
        logons.spray(auth.drop(columns="TargetUsername"))
    assert "columns=" in str(info.value)
    with pytest.raises(DataError, match="DataFrame"):
        logons.brute_force([1, 2])  # type: ignore[arg-type]
    with pytest.raises(DataError, match="timestamps"):
        logons.failures(auth.assign(TimeGenerated="not a time"))
    with pytest.raises(DataError, match="bad freq"):
        logons.failures(auth, freq="often")
    with pytest.raises(DataError, match="processes"):
        logons.sessions_with_processes(auth.assign(TargetSessionId="0x1"), pd.DataFrame({"x": [1]}))
    empty = logons.spray(auth.iloc[:0])
    assert empty.empty and "source" in empty.columns


# -- real data ---------------------------------------------------------------------------------------------


def _auth_from(paths: list[Path], tmp_path: Path) -> pd.DataFrame:
    store = LocalStore(tmp_path / "store")
    store.ingest(paths)
    return QueryProvider("local", store=store).exec_query("select * from authentication")


def test_deepbluecli_password_spray(shared_data: Path, tmp_path: Path) -> None:
    """PROVENANCE.md: 294 explicit-credential attempts (4648) against several accounts on DESKTOP-JR78RLP."""
    path = shared_data / "deepbluecli-evtx" / "evtx" / "password-spray.evtx"
    auth = _auth_from([path], tmp_path)
    found = logons.spray(auth)
    assert len(found) == 1
    row = found.iloc[0]
    assert row["DvcHostname"] == "DESKTOP-JR78RLP" and row["source"] == "172.16.144.128"
    assert row["attempts"] == 294 and row["accounts"] >= 20
    bare = {name.rsplit("\\", 1)[-1].lower() for name in row["account_list"]}
    assert {"administrator", "jwright", "dpendolino", "smisenar"} <= bare


def test_evtx_to_mitre_attack_brute_force(shared_data: Path, tmp_path: Path) -> None:
    """T1110 samples: local brute force of Admin/Administrator on WIN, OpenSSH brute force of admmig."""
    auth = _auth_from([shared_data / "evtx-to-mitre-attack" / "evtx-to-mitre-attack-dev.zip"], tmp_path)
    found = logons.brute_force(auth)
    hits = {(row.TargetUsername, row.DvcHostname): row.failures for row in found.itertuples()}
    assert hits.get(("WIN\\Administrator", "WIN"), 0) >= 5
    assert hits.get(("WIN\\Admin", "WIN"), 0) >= 5
    assert hits.get(("admmig@offsec.lan", "fs01.offsec.lan"), 0) >= 5
    assert not found["succeeded"].any()  # no success within the hour in these samples
    bursts = logons.failures(auth)
    assert bursts.loc[0, ["DvcHostname", "failures"]].tolist() == ["WIN", 16]


def test_evtx_attack_samples_have_no_false_spray_or_brute_force(shared_data: Path, tmp_path: Path) -> None:
    """The developer half holds no brute-force or spray sample: nothing may be reported there."""
    auth = _auth_from([shared_data / "evtx-attack-samples"], tmp_path)
    assert len(auth) > 20
    assert logons.spray(auth).empty
    assert logons.brute_force(auth).empty


# -- the demo incident -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from huntbook import demo

    root = tmp_path_factory.mktemp("demo")
    generated = demo.generate(root / "data")
    store = LocalStore(root / "store")
    store.ingest(generated["files"])
    qp = QueryProvider("local", store=store)
    tables = {
        t: qp.exec_query(f"select * from {t}")
        for t in ("authentication", "network_sessions", "process_events")
    }
    return {"truth": generated["truth"], **tables}


def test_demo_spray_success_and_session(demo_case: dict[str, Any]) -> None:
    truth = demo_case["truth"]
    auth = demo_case["authentication"]
    found = logons.spray(auth)
    top = found.iloc[0]
    assert top["source"] == truth["attacker_ip"] and top["DvcHostname"].split(".")[0] == truth["victim_host"]
    tried = {name.rsplit("\\", 1)[-1].lower() for name in top["account_list"]}
    assert set(truth["sprayed_accounts"]) <= tried
    assert top["succeeded"] == [truth["compromised_account"]]
    assert top["first"] == pd.Timestamp(truth["spray_start"])
    rare = logons.rare_logons(auth)
    mine = rare[rare["TargetUsername"] == truth["compromised_account"]]
    assert {"10", truth["attacker_ip"]} <= set(mine["value"])
    joined = logons.sessions_with_processes(auth, demo_case["process_events"])
    session = joined[joined["LogonSessionId"] == truth["logon_id"]]
    assert truth["encoded_command_line"] in session["TargetProcessCommandLine"].tolist()
    assert set(session["LogonSource"]) == {truth["attacker_ip"]}


def test_demo_traffic_spike_and_beacon(demo_case: dict[str, Any]) -> None:
    from huntbook import timeseries

    pytest.importorskip("statsmodels", reason="the 'ml' extra (statsmodels) is not installed")
    truth = demo_case["truth"]
    conns = demo_case["network_sessions"]
    hourly = timeseries.summarize(conns, value_column="SrcBytes", freq="1h")
    found = timeseries.periods(timeseries.anomalies(hourly))
    top = found.sort_values("peak_score", ascending=False).iloc[0]
    hour = pd.Timestamp(truth["anomaly_hour"])
    assert top["kind"] == "spike" and top["start"] <= hour < top["end"]
    beacon = timeseries.beacons(conns).iloc[0]
    assert (beacon["SrcIpAddr"], beacon["DstIpAddr"], beacon["DstPortNumber"]) == (
        truth["victim_ip"],
        truth["attacker_ip"],
        443,
    )
