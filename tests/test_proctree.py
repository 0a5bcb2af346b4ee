"""Process trees: linking rules, schemas, helpers, MSTICPy's oracles and real EVTX data."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import huntbook.proctree as pt
from huntbook.errors import DataError

MINIMAL = {"time": "t", "pid": "pid", "ppid": "ppid", "process": "exe"}
WITH_HOST = {**MINIMAL, "host": "host", "parent": "pexe"}


def _sec(rows: list[tuple[str, str, str, str, str, str]]) -> pd.DataFrame:
    """4688 rows: (time, host, new pid, new name, parent pid, parent name)."""
    frame = pd.DataFrame(
        rows,
        columns=[
            "TimeGenerated",
            "Computer",
            "NewProcessId",
            "NewProcessName",
            "ProcessId",
            "ParentProcessName",
        ],
    )
    frame["TimeGenerated"] = pd.to_datetime(frame["TimeGenerated"], utc=True)
    frame["EventID"] = 4688
    return frame


def _parent_rows(tree: pd.DataFrame) -> dict[Any, Any]:
    """{event label: parent event label, 'inferred' or None}."""
    label_of = dict(zip(tree["proc_key"], tree.index, strict=True))
    inferred = dict(zip(tree["proc_key"], tree["inferred"], strict=True))
    out: dict[Any, Any] = {}
    for label, parent, is_inferred in zip(tree.index, tree["parent_key"], tree["inferred"], strict=True):
        if is_inferred:
            continue
        if pd.isna(parent):
            out[label] = None
        else:
            out[label] = "inferred" if inferred[parent] else label_of[parent]
    return out


def _naive_parents(
    hosts: list[str], pids: list[int], ppids: list[int], names: list[str], pnames: list[str], times: list[Any]
) -> dict[int, int | None]:
    """The linking rule written the slow, obvious way: the latest earlier process (time, then input
    order) on the same host with the parent's pid and (when given) file name, case-insensitive."""
    out: dict[int, int | None] = {}
    for child in range(len(pids)):
        best = None
        for cand in range(len(pids)):
            if (times[cand], cand) >= (times[child], child) or hosts[cand].lower() != hosts[child].lower():
                continue
            if pids[cand] != ppids[child] or ppids[child] < 0:
                continue
            if pnames[child] and names[cand].lower() != pnames[child].lower():
                continue
            if best is None or (times[cand], cand) > (times[best], best):
                best = cand
        out[child] = best
    return out


# ---------------------------------------------------------------------------------------------
# linking rules
# ---------------------------------------------------------------------------------------------
def test_pid_reuse_links_to_the_latest_earlier_process() -> None:
    events = _sec(
        [
            (
                "2024-05-01 10:00",
                "ws1",
                "0x10",
                "C:\\w\\cmd.exe",
                "0x4",
                "C:\\w\\explorer.exe",
            ),  # first cmd.exe
            ("2024-05-01 10:01", "ws1", "0x20", "C:\\w\\whoami.exe", "0x10", "C:\\w\\cmd.exe"),
            (
                "2024-05-01 11:00",
                "ws1",
                "0x10",
                "C:\\w\\cmd.exe",
                "0x4",
                "C:\\w\\explorer.exe",
            ),  # pid 0x10 reused
            ("2024-05-01 11:01", "ws1", "0x24", "C:\\w\\net.exe", "0x10", "C:\\w\\cmd.exe"),
        ]
    )
    parents = _parent_rows(pt.build(events))
    assert parents[1] == 0
    assert parents[3] == 2


def test_hosts_are_never_mixed() -> None:
    events = _sec(
        [
            ("2024-05-01 10:00", "ws1", "0x10", "cmd.exe", "0x4", "explorer.exe"),
            ("2024-05-01 10:05", "ws2", "0x10", "cmd.exe", "0x4", "explorer.exe"),
            ("2024-05-01 10:06", "ws1", "0x20", "whoami.exe", "0x10", "cmd.exe"),
            ("2024-05-01 10:07", "WS2", "0x24", "net.exe", "0x10", "CMD.EXE"),  # case differs, same host
        ]
    )
    tree = pt.build(events)
    parents = _parent_rows(tree)
    assert parents[2] == 0
    assert parents[3] == 1
    hosts = dict(zip(tree["proc_key"], tree["Computer"].str.lower(), strict=True))
    for child, parent in zip(tree["proc_key"], tree["parent_key"], strict=True):
        if not pd.isna(parent):
            assert hosts[child] == hosts[parent]


def test_parent_name_must_match_when_given() -> None:
    events = _sec(
        [
            ("2024-05-01 10:00", "ws1", "0x10", "C:\\w\\cmd.exe", "0x4", "explorer.exe"),
            ("2024-05-01 10:01", "ws1", "0x20", "C:\\w\\net.exe", "0x10", "C:\\w\\powershell.exe"),
        ]
    )
    tree = pt.build(events)
    assert _parent_rows(tree)[1] == "inferred"
    stub = tree[tree["proc_key"] == tree.loc[1, "parent_key"]].iloc[0]
    assert stub["NewProcessName"] == "C:\\w\\powershell.exe"
    assert stub["NewProcessId"] == "0x10"


def test_parents_outside_the_window_become_one_inferred_row() -> None:
    events = _sec(
        [
            ("2024-05-01 10:00", "ws1", "0x10", "cmd.exe", "0x2a8", "C:\\w\\services.exe"),
            ("2024-05-01 10:01", "ws1", "0x14", "svchost.exe", "0x2a8", "C:\\w\\services.exe"),
            ("2024-05-01 10:02", "ws2", "0x18", "svchost.exe", "0x2a8", "C:\\w\\services.exe"),
        ]
    )
    tree = pt.build(events)
    stubs = tree[tree["inferred"]]
    assert len(stubs) == 2  # one per host
    assert set(stubs["Computer"]) == {"ws1", "ws2"}
    assert (stubs["depth"] == 0).all() and stubs["parent_key"].isna().all()
    assert sorted(stubs["children"]) == [1, 2]
    assert tree.loc[1, "parent_key"] == tree.loc[0, "parent_key"]
    assert tree.loc[0, "path"] == "services.exe/cmd.exe"
    assert tree.loc[0, "root_key"] == tree.loc[0, "parent_key"]
    assert stubs["TimeGenerated"].isna().all()
    assert list(tree.index) == [0, 1, 2, 3, 4]  # events keep their labels, stubs follow


@pytest.mark.parametrize(
    "pid_format",
    [
        lambda p: f"0x{p:x}",
        lambda p: f"0X{p:X}",
        str,
        int,
        float,
    ],
)
def test_pid_formats_give_the_same_tree(pid_format: Any) -> None:
    pids, ppids = [100, 200, 300, 200], [4, 100, 200, 100]
    frame = pd.DataFrame(
        {
            "t": pd.date_range("2024-01-01", periods=4, freq="min", tz="UTC"),
            "pid": [pid_format(p) for p in pids],
            "ppid": [pid_format(p) for p in ppids],
            "exe": ["a.exe", "b.exe", "c.exe", "b.exe"],
        }
    )
    tree = pt.build(frame, MINIMAL)
    assert _parent_rows(tree) == {0: "inferred", 1: 0, 2: 1, 3: 0}
    assert tree.loc[2, "proc_key"].split("|")[1] == "300"  # keys carry the decimal pid


def test_huge_pids_and_many_hosts_still_link() -> None:
    big = [2**62 + 7, 2**62 + 9, 2**63 - 1]  # too wide to pack with host, name and time: renumbered
    frame = pd.DataFrame(
        {
            "t": [1, 2, 3, 4],
            "host": ["h0", "h0", "h0", "h1"],
            "pid": [big[0], big[1], big[2], big[1]],
            "ppid": [4, big[0], big[1], big[0]],
            "exe": ["a", "b", "c", "b"],
            "pexe": ["x", "a", "b", "a"],
        }
    )
    assert _parent_rows(pt.build(frame, WITH_HOST)) == {0: "inferred", 1: 0, 2: 1, 3: "inferred"}


def test_missing_and_bad_pids_do_not_link() -> None:
    frame = pd.DataFrame(
        {
            "t": [1, 2, 3],
            "pid": ["0x10", "zz", None],
            "ppid": ["0x4", "0x10", "garbage"],
            "exe": ["a", "b", "c"],
        }
    )
    tree = pt.build(frame, MINIMAL)
    parents = _parent_rows(tree)
    assert parents[1] == 0
    assert parents[2] is None  # no usable parent pid: a root, no inferred parent
    assert not tree.loc[2, "inferred"]


def test_sysmon_guid_links_win_over_pids() -> None:
    frame = pd.DataFrame(
        {
            "UtcTime": ["2024-01-01 10:00:00.000", "2024-01-01 10:00:05.000", "2024-01-01 10:00:09.000"],
            "Computer": ["pc"] * 3,
            "EventID": [1, 1, 1],
            "ProcessGuid": ["{G-1}", "{G-2}", "{G-3}"],
            "ProcessId": [500, 500, 600],
            "Image": ["C:\\cmd.exe"] * 2 + ["C:\\net.exe"],
            "ParentProcessGuid": ["{G-0}", "{G-0}", "{G-1}"],  # the guid names the *older* cmd.exe
            "ParentProcessId": [4, 4, 500],
            "ParentImage": ["C:\\explorer.exe", "C:\\explorer.exe", "C:\\cmd.exe"],
        }
    )
    tree = pt.build(frame)
    assert tree.attrs["huntbook.proctree"]["schema"] == "sysmon"
    assert tree.loc[2, "parent_key"] == "{G-1}"
    assert tree.loc[0, "proc_key"] == "{G-1}"
    stub = tree[tree["inferred"]]
    assert stub["proc_key"].tolist() == ["{G-0}"] and stub["children"].tolist() == [2]
    by_pid = pt.build(
        frame, {"time": "UtcTime", "pid": "ProcessId", "ppid": "ParentProcessId", "process": "Image"}
    )
    assert _parent_rows(by_pid)[2] == 1  # without guids the latest pid 500 wins


def test_guid_cycles_are_cut_not_looped() -> None:
    frame = pd.DataFrame(
        {
            "UtcTime": ["2024-01-01 10:00:00"] * 2,
            "ProcessGuid": ["A", "B"],
            "ParentProcessGuid": ["B", "A"],
            "ProcessId": [1, 2],
            "ParentProcessId": [2, 1],
            "Image": ["x.exe", "y.exe"],
        }
    )
    tree = pt.build(frame, "sysmon")
    assert tree["parent_key"].isna().sum() == 1
    assert sorted(tree["depth"]) == [0, 1]


def test_mde_links_by_parent_creation_time() -> None:
    t = pd.to_datetime(
        ["2024-01-01 09:00:00.1234567", "2024-01-01 09:30:00.0", "2024-01-01 10:00:00.0"], utc=True
    )
    frame = pd.DataFrame(
        {
            "Timestamp": t,
            "DeviceName": ["dev"] * 3,
            "ActionType": ["ProcessCreated"] * 3,
            "ProcessId": [700, 700, 800],
            "FileName": ["cmd.exe", "cmd.exe", "net.exe"],
            "ProcessCreationTime": t,
            "InitiatingProcessId": [4, 4, 700],
            "InitiatingProcessFileName": ["explorer.exe", "explorer.exe", "cmd.exe"],
            # the child names the first cmd.exe (pid 700 was reused by the second)
            "InitiatingProcessCreationTime": [pd.NaT, pd.NaT, t[0]],
        }
    )
    tree = pt.build(frame)
    assert tree.attrs["huntbook.proctree"]["schema"] == "mde"
    assert _parent_rows(tree)[2] == 0


def test_other_events_are_left_out() -> None:
    events = _sec(
        [
            ("2024-05-01 10:00", "ws1", "0x10", "cmd.exe", "0x4", "explorer.exe"),
            ("2024-05-01 10:01", "ws1", "0x20", "whoami.exe", "0x10", "cmd.exe"),
        ]
    )
    events.loc[1, "EventID"] = 4689
    tree = pt.build(events)
    assert not tree["inferred"].iloc[0]
    assert 1 not in tree.index
    assert len(tree) == 2  # one event + its inferred parent


def test_input_is_not_modified() -> None:
    events = _sec(
        [
            ("2024-05-01 10:00", "ws1", "0x10", "cmd.exe", "0x4", "explorer.exe"),
            ("2024-05-01 10:01", "ws1", "0x20", "whoami.exe", "0x10", "cmd.exe"),
        ]
    )
    events.loc[0, "EventID"] = 4689
    before = events.copy(deep=True)
    pt.build(events)
    pd.testing.assert_frame_equal(events, before)


def test_empty_input_gives_an_empty_tree() -> None:
    empty = _sec([])
    tree = pt.build(empty)
    assert len(tree) == 0
    assert set(pt.TREE_COLUMNS) <= set(tree.columns)


def test_repeated_events_keep_unique_keys() -> None:
    frame = pd.DataFrame({"t": [1, 1, 2], "pid": [10, 10, 11], "ppid": [1, 1, 10], "exe": ["a", "a", "b"]})
    tree = pt.build(frame, MINIMAL)
    assert tree["proc_key"].is_unique
    assert tree.loc[1, "proc_key"] == tree.loc[0, "proc_key"] + "#2"


def test_deep_chains_keep_bounded_paths() -> None:
    n = 300
    frame = pd.DataFrame(
        {
            "t": range(n),
            "pid": range(10, 10 + n),
            "ppid": range(9, 9 + n),
            "exe": [f"p{i}.exe" for i in range(n)],
        }
    )
    tree = pt.build(frame, MINIMAL)
    assert tree["depth"].max() == n  # the inferred parent of the first process is the root
    assert tree["path"].str.len().max() <= 1002
    assert tree.loc[n - 1, "path"].endswith("/p298.exe/p299.exe")
    assert tree.loc[n - 1, "path"].startswith("…")


def test_numeric_epoch_and_text_times() -> None:
    frame = pd.DataFrame(
        {
            "time": ["1700000000", "1700000005"],
            "pid": ["10", "11"],
            "parent": ["1", "10"],
            "path": ["/bin/sh", "/bin/ls"],
        }
    )
    tree = pt.build(frame)  # osquery process_events
    assert tree.attrs["huntbook.proctree"]["schema"] == "osquery"
    assert _parent_rows(tree)[1] == 0
    assert tree.loc[0, "proc_key"] == "|10|2023-11-14 22:13:20.000000"
    assert tree.loc[1, "path"] == "?/sh/ls"


# ---------------------------------------------------------------------------------------------
# schemas
# ---------------------------------------------------------------------------------------------
def test_unknown_columns_raise_a_helpful_data_error() -> None:
    with pytest.raises(DataError) as info:
        pt.build(pd.DataFrame({"when": [1], "who": ["x"]}))
    assert "when" in str(info.value) and "mapping" in str(info.value)


@pytest.mark.parametrize(
    ("schema", "needle"),
    [
        ("nosuch", "unknown schema"),
        ({"time": "t", "pid": "pid"}, "lacks"),
        ({**MINIMAL, "bogus": "x"}, "unknown schema field"),
        ({**MINIMAL, "host": "nohost"}, "nohost"),
        ("sysmon", "needs columns"),
    ],
)
def test_bad_schemas(schema: Any, needle: str) -> None:
    frame = pd.DataFrame({"t": [1], "pid": [1], "ppid": [0], "exe": ["a"]})
    with pytest.raises(DataError, match=needle):
        pt.build(frame, schema)


def test_msticpy_schema_names_are_accepted() -> None:
    frame = pd.DataFrame(
        {"CreateTime": [1, 2], "PID": [10, 11], "PPID": [1, 10], "ImageFileName": ["a", "b"]}
    )
    schema = {
        "time_stamp": "CreateTime",
        "process_id": "PID",
        "parent_id": "PPID",
        "process_name": "ImageFileName",
    }
    assert _parent_rows(pt.build(frame, schema))[1] == 0


def test_schema_inference_picks_each_source() -> None:
    cases = {
        "security": ["TimeGenerated", "Computer", "NewProcessId", "NewProcessName", "ProcessId"],
        "sysmon": ["UtcTime", "ProcessGuid", "ProcessId", "ParentProcessId", "Image"],
        "mde": ["Timestamp", "DeviceName", "ProcessId", "FileName", "InitiatingProcessId"],
        "auditd": ["TimeGenerated", "pid", "ppid", "exe"],
        "osquery": ["time", "pid", "parent", "path"],
        "process_events": ["TimeGenerated", "TargetProcessId", "ActingProcessId", "TargetProcessName"],
    }
    for name, columns in cases.items():
        assert pt.infer_schema(pd.DataFrame(columns=columns)).name == name


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def family() -> pd.DataFrame:
    #            explorer(stub)
    #            ├── cmd (0) ── whoami (2)
    #            │          └── net (3)
    #            └── notepad (1)
    events = _sec(
        [
            ("2024-05-01 10:00", "ws1", "0x10", "cmd.exe", "0x4", "explorer.exe"),
            ("2024-05-01 10:01", "ws1", "0x14", "notepad.exe", "0x4", "explorer.exe"),
            ("2024-05-01 10:03", "ws1", "0x20", "whoami.exe", "0x10", "cmd.exe"),
            ("2024-05-01 10:02", "ws1", "0x24", "net.exe", "0x10", "cmd.exe"),
            ("2024-05-01 10:02", "ws9", "0x30", "other.exe", "0x4", "explorer.exe"),
        ]
    )
    return pt.build(events)


def _names(rows: pd.DataFrame) -> list[str]:
    return [p.rsplit("/", 1)[-1] for p in rows["path"]]


def test_helpers_walk_the_tree(family: pd.DataFrame) -> None:
    whoami = family.loc[2, "proc_key"]
    assert _names(pt.ancestors(family, whoami)) == ["explorer.exe", "cmd.exe"]
    assert _names(pt.ancestors(family, family.loc[2], include_self=True))[-1] == "whoami.exe"
    root = family.loc[0, "root_key"]
    assert _names(pt.descendants(family, root)) == ["cmd.exe", "net.exe", "whoami.exe", "notepad.exe"]
    assert _names(pt.tree_of(family, whoami)) == [
        "explorer.exe",
        "cmd.exe",
        "net.exe",
        "whoami.exe",
        "notepad.exe",
    ]
    assert _names(pt.siblings(family, whoami)) == ["net.exe"]
    assert _names(pt.siblings(family, whoami, include_self=True)) == ["net.exe", "whoami.exe"]
    assert _names(pt.children(family, family.loc[0, "proc_key"])) == ["net.exe", "whoami.exe"]
    assert len(pt.siblings(family, root)) == 0
    assert len(pt.roots(family)) == 2
    assert pt.summary(family) == {
        "processes": 7,
        "roots": 2,
        "leaves": 4,
        "branches": 1,
        "isolated": 0,
        "inferred": 2,
        "max_depth": 2,
    }


def test_helpers_reject_unknown_keys_and_frames(family: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="no process"):
        pt.ancestors(family, "nope")
    with pytest.raises(DataError, match="not a process tree"):
        pt.descendants(pd.DataFrame({"a": [1]}), "x")


# ---------------------------------------------------------------------------------------------
# laws: against the obvious quadratic implementation
# ---------------------------------------------------------------------------------------------
_row = st.tuples(
    st.sampled_from(["ws1", "WS1", "ws2"]),
    st.sampled_from([4, 8, 12, 16]),
    st.sampled_from([4, 8, 12, 16, -1]),
    st.sampled_from(["cmd.exe", "CMD.exe", "net.exe"]),
    st.sampled_from(["cmd.exe", "net.exe", ""]),
    st.integers(0, 6),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_row, max_size=30), st.booleans())
def test_links_match_the_naive_rule(rows: list[tuple[Any, ...]], hex_pids: bool) -> None:
    hosts, pids, ppids, names, pnames, times = (
        (list(c) for c in zip(*rows, strict=True)) if rows else ([],) * 6
    )
    fmt = (lambda p: f"0x{p:x}" if p >= 0 else None) if hex_pids else (lambda p: p if p >= 0 else None)
    frame = pd.DataFrame(
        {
            "t": pd.to_datetime(times, unit="s", utc=True),
            "host": hosts,
            "pid": pd.Series([fmt(p) for p in pids], dtype=object),
            "ppid": pd.Series([fmt(p) for p in ppids], dtype=object),
            "exe": ["C:\\w\\" + n for n in names],
            "pexe": [n or None for n in pnames],
        }
    )
    tree = pt.build(frame, WITH_HOST)
    expected = _naive_parents(hosts, pids, ppids, names, pnames, times)
    got = _parent_rows(tree)
    for child, parent in expected.items():
        if parent is not None:
            assert got[child] == parent
        else:
            assert got[child] == ("inferred" if ppids[child] >= 0 else None)
    # structure: depth, root, children agree with the links
    by_key = tree.set_index("proc_key")
    for key, row in by_key.iterrows():
        if pd.isna(row["parent_key"]):
            assert row["depth"] == 0 and row["root_key"] == key
        else:
            up = by_key.loc[row["parent_key"]]
            assert row["depth"] == up["depth"] + 1 and row["root_key"] == up["root_key"]
    counts = tree["parent_key"].value_counts()
    assert all(counts.get(k, 0) == c for k, c in zip(tree["proc_key"], tree["children"], strict=True))
    assert tree["proc_key"].is_unique


# ---------------------------------------------------------------------------------------------
# real data: MSTICPy's fixtures and oracles
# ---------------------------------------------------------------------------------------------
def _msticpy_summary(tree: pd.DataFrame) -> dict[str, int]:
    """Our summary in MSTICPy's get_summary_info terms (LargestTreeDepth counts levels)."""
    s = pt.summary(tree)
    return {
        "Processes": s["processes"],
        "RootProcesses": s["roots"],
        "LeafProcesses": s["leaves"],
        "BranchProcesses": s["branches"],
        "IsolatedProcesses": s["isolated"],
        "LargestTreeDepth": s["max_depth"] + 1,
    }


@pytest.fixture(scope="module")
def msticpy_data(shared_data: Path) -> Path:
    return shared_data / "msticpy-testdata"


def test_msticpy_windows_oracle(msticpy_data: Path) -> None:
    events = pd.read_csv(
        msticpy_data / "converted_from_pickle" / "win_proc_test.csv.gz", parse_dates=["TimeGenerated"]
    )
    expected = {
        "Processes": 1010,
        "RootProcesses": 10,
        "LeafProcesses": 815,
        "BranchProcesses": 185,
        "IsolatedProcesses": 0,
        "LargestTreeDepth": 7,
    }
    assert _msticpy_summary(pt.build(events)) == expected
    no_logon = events.drop(columns=["SubjectLogonId", "TargetLogonId"])
    assert _msticpy_summary(pt.build(no_logon)) == expected


def test_msticpy_linux_oracle(msticpy_data: Path) -> None:
    events = pd.read_csv(
        msticpy_data / "converted_from_pickle" / "linux_proc_test.csv.gz", parse_dates=["TimeGenerated"]
    )
    tree = pt.build(events)
    assert tree.attrs["huntbook.proctree"]["schema"] == "auditd"
    assert _msticpy_summary(tree) == {
        "Processes": 1029,
        "RootProcesses": 29,
        "LeafProcesses": 497,
        "BranchProcesses": 503,
        "IsolatedProcesses": 0,
        "LargestTreeDepth": 5,
    }


def test_msticpy_minimal_columns_oracle(msticpy_data: Path) -> None:
    events = pd.read_csv(
        msticpy_data / "testdata" / "winproctree-minimal.csv", index_col=0, parse_dates=["CreateTime"]
    )
    schema = {
        "process_name": "ImageFileName",
        "process_id": "PID",
        "parent_id": "PPID",
        "time_stamp": "CreateTime",
    }
    assert _msticpy_summary(pt.build(events, schema)) == {
        "Processes": 126,
        "RootProcesses": 10,
        "LeafProcesses": 97,
        "BranchProcesses": 19,
        "IsolatedProcesses": 0,
        "LargestTreeDepth": 7,
    }


def test_mde_public_sample_links_match_creation_times(msticpy_data: Path) -> None:
    events = pd.read_csv(msticpy_data / "converted_from_pickle" / "mde_proc_pub.csv.gz")
    tree = pt.build(events)
    assert tree.attrs["huntbook.proctree"]["schema"] == "mde"
    created = pd.to_datetime(tree["ProcessCreationTime"], utc=True, format="mixed")
    parent_created = pd.to_datetime(tree["InitiatingProcessCreationTime"], utc=True, format="mixed")
    row_of = {k: i for i, k in enumerate(tree["proc_key"])}
    linked = 0
    for i, parent in enumerate(tree["parent_key"]):
        if pd.isna(parent) or tree["inferred"].iloc[row_of[parent]]:
            continue
        j = row_of[parent]
        delay = created.iloc[j] - parent_created.iloc[i]  # the sensor logs a creation late
        assert pd.Timedelta(seconds=-1) <= delay <= pd.Timedelta(seconds=60)
        assert tree["ProcessId"].iloc[j] == tree["InitiatingProcessId"].iloc[i]
        assert tree["DeviceName"].iloc[j] == tree["DeviceName"].iloc[i]
        linked += 1
    # independent count: children with an event of the parent's pid and file name on the same device,
    # logged between 1 s before and 60 s after the creation time the child reports for its parent
    plausible = 0
    for i in range(len(events)):
        same = (
            (events["DeviceName"] == events["DeviceName"].iloc[i])
            & (events["ProcessId"] == events["InitiatingProcessId"].iloc[i])
            & (events["FileName"].str.lower() == str(events["InitiatingProcessFileName"].iloc[i]).lower())
        )
        delay = created.iloc[: len(events)][same.to_numpy()] - parent_created.iloc[i]
        plausible += bool(((delay >= pd.Timedelta(seconds=-1)) & (delay <= pd.Timedelta(seconds=60))).any())
    assert linked == plausible > 100


# ---------------------------------------------------------------------------------------------
# real data: Sysmon 1 and Security 4688 from EVTX
# ---------------------------------------------------------------------------------------------
def _evtx_events(folder: Path, event_id: int) -> pd.DataFrame:
    from evtx import PyEvtxParser

    rows = []
    for path in sorted(folder.rglob("*.evtx")):
        for record in PyEvtxParser(str(path)).records_json():
            event = json.loads(record["data"]).get("Event", {})
            system = event.get("System", {})
            eid = system.get("EventID")
            eid = eid.get("#text") if isinstance(eid, dict) else eid
            data = event.get("EventData") or {}
            if str(eid) != str(event_id) or not isinstance(data, dict):
                continue
            if event_id == 4688 and "NewProcessId" not in data:
                continue
            if event_id == 1 and "ProcessGuid" not in data:
                continue
            created = system.get("TimeCreated", {}).get("#attributes", {}).get("SystemTime")
            rows.append({**data, "Computer": system.get("Computer"), "EventID": eid, "TimeCreated": created})
    frame = pd.DataFrame(rows)
    if len(frame):
        frame["TimeCreated"] = pd.to_datetime(frame["TimeCreated"], utc=True, format="mixed")
    return frame


@pytest.fixture(scope="module")
def sysmon1(shared_data: Path) -> pd.DataFrame:
    frame = _evtx_events(shared_data / "evtx-attack-samples", 1)
    assert len(frame) > 100
    return frame


@pytest.fixture(scope="module")
def security4688(shared_data: Path) -> pd.DataFrame:
    folders = ("evtx-attack-samples", "deepbluecli-evtx")
    frame = pd.concat([_evtx_events(shared_data / f, 4688) for f in folders], ignore_index=True)
    assert len(frame) > 50
    return frame


def test_sysmon_evtx_guid_links(sysmon1: pd.DataFrame) -> None:
    tree = pt.build(sysmon1)
    assert tree.attrs["huntbook.proctree"]["schema"] == "sysmon"
    first_row: dict[str, int] = {}
    for i, guid in enumerate(sysmon1["ProcessGuid"]):
        first_row.setdefault(guid.strip("{}").lower(), i)
    parents = _parent_rows(tree)
    for i, pguid in enumerate(sysmon1["ParentProcessGuid"]):
        expected = first_row.get(str(pguid).strip("{}").lower())
        assert parents[i] == (expected if expected is not None and expected != i else "inferred")


def test_sysmon_evtx_pid_matching_agrees_with_guids(sysmon1: pd.DataFrame) -> None:
    by_guid = _parent_rows(pt.build(sysmon1))
    no_guid = {
        "time": "UtcTime",
        "host": "Computer",
        "pid": "ProcessId",
        "ppid": "ParentProcessId",
        "process": "Image",
        "parent": "ParentImage",
    }
    by_pid = _parent_rows(pt.build(sysmon1, no_guid))
    present = [i for i, p in by_guid.items() if isinstance(p, int)]
    assert len(present) > 50
    agree = sum(by_pid[i] == by_guid[i] for i in present)
    assert agree == len(present)


def test_security_evtx_links_follow_the_rule(security4688: pd.DataFrame) -> None:
    tree = pt.build(security4688)
    assert tree.attrs["huntbook.proctree"]["schema"] == "security"
    frame = security4688
    pids = [int(str(p), 16) for p in frame["NewProcessId"]]
    ppids = [int(str(p), 16) for p in frame["ProcessId"]]
    names = [str(n).rsplit("\\", 1)[-1] for n in frame["NewProcessName"]]
    pnames = [
        "" if pd.isna(n) else str(n).rsplit("\\", 1)[-1]
        for n in frame.get("ParentProcessName", pd.Series([None] * len(frame)))
    ]
    expected = _naive_parents(list(frame["Computer"]), pids, ppids, names, pnames, list(frame["TimeCreated"]))
    got = _parent_rows(tree)
    assert sum(p is not None for p in expected.values()) > 5
    for child, parent in expected.items():
        assert got[child] == (parent if parent is not None else "inferred")


def test_local_store_process_events_build_out_of_the_box(shared_data: Path, tmp_path: Path) -> None:
    from huntbook.session import QueryProvider
    from huntbook.store import LocalStore

    folder = shared_data / "evtx-attack-samples"
    with open(folder / "index.csv", newline="", encoding="utf-8") as index:
        with_4688 = [folder / r["file"] for r in csv.DictReader(index) if "Security:4688" in r["event_ids"]]
    files = [folder / "Execution" / "sysmon_exec_from_vss_persistence.evtx", *with_4688]
    files.append(shared_data / "deepbluecli-evtx" / "evtx" / "sliver-security.evtx")
    store = LocalStore(tmp_path / "store")
    store.ingest(files)
    events = QueryProvider("local", store=store).exec_query("select * from process_events")
    tree = pt.build(events)
    assert tree.attrs["huntbook.proctree"]["schema"] == "process_events"
    created = events[events["EventType"] == "ProcessCreated"]
    assert (~tree["inferred"]).sum() == len(created)
    sysmon = tree[(tree["EventProduct"] == "Sysmon") & ~tree["inferred"]]
    assert len(sysmon) >= 10
    assert (sysmon["proc_key"] == sysmon["TargetProcessGuid"]).all()
    assert (sysmon["parent_key"] == sysmon["ActingProcessGuid"]).all()
    security = tree[(tree["EventProduct"] == "Security") & ~tree["inferred"]]
    assert len(security) >= 10
    keys = dict(zip(tree["proc_key"], tree.index, strict=True))
    for _, row in security.iterrows():
        parent = tree.loc[keys[row["parent_key"]]]
        assert int(str(parent["TargetProcessId"]), 16) == int(str(row["ActingProcessId"]), 16)
        assert parent["DvcHostname"] == row["DvcHostname"]
        if not parent["inferred"]:
            assert parent["TimeGenerated"] <= row["TimeGenerated"]
    assert np.isin(tree["depth"].to_numpy(), range(50)).all()
