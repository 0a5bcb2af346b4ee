"""huntbook.sessions: sessionising events and ranking sessions by the rarity of their command sequences."""

from __future__ import annotations

import itertools
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import huntbook.sessions as sessions
from huntbook.errors import DataError

BENCH = Path(__file__).resolve().parents[2] / "shared" / "bench"
NORMAL = [
    ["Get-Mailbox", "Set-Mailbox", "Get-Mailbox"],
    ["Get-User", "Set-User", "Get-User"],
    ["Get-Mailbox", "Get-MailboxStatistics", "Get-Mailbox", "Set-Mailbox"],
    ["Get-DistributionGroup", "Add-DistributionGroupMember"],
]


def long_frame(
    sessions_of_commands: list[list[str]], params: list[list[list[str]]] | None = None
) -> pd.DataFrame:
    rows: dict[str, list[Any]] = {"session": [], "command": [], "params": []}
    for i, commands in enumerate(sessions_of_commands):
        for j, command in enumerate(commands):
            rows["session"].append(f"s{i}")
            rows["command"].append(command)
            rows["params"].append(params[i][j] if params else ["Identity"])
    return pd.DataFrame(rows)


def corpus(seed: int = 1, n: int = 400) -> list[list[str]]:
    rng = random.Random(seed)
    return [list(rng.choice(NORMAL)) for _ in range(n)]


# ---------------------------------------------------------------- sessionize


def test_sessionize_splits_on_gap_and_key() -> None:
    t0 = pd.Timestamp("2026-10-05 08:00", tz="UTC")
    df = pd.DataFrame(
        {
            "user": ["a", "a", "a", "b", "a"],
            "TimeGenerated": [
                t0,
                t0 + pd.Timedelta("10min"),
                t0 + pd.Timedelta("2h"),
                t0,
                t0 + pd.Timedelta("2h5min"),
            ],
        }
    )
    out = sessions.sessionize(df, by="user", gap="30min")
    s = out["session"].tolist()
    assert s[0] == s[1]  # 10 minutes apart
    assert s[2] != s[1]  # 1h50 idle
    assert s[4] == s[2]
    assert s[3] not in (s[0], s[2])  # another user
    assert len(set(s)) == 3
    assert "session" not in df.columns  # input unchanged


def test_sessionize_missing_key_or_time_gets_minus_one() -> None:
    df = pd.DataFrame(
        {"user": ["a", None, "a"], "TimeGenerated": ["2026-10-05T08:00:00Z", "2026-10-05T08:01:00Z", None]}
    )
    out = sessions.sessionize(df, by=["user"], time_column="TimeGenerated")
    assert out["session"].tolist() == [0, -1, -1]
    assert list(out.index) == list(df.index)


def test_sessionize_bad_input() -> None:
    df = pd.DataFrame({"user": ["a"], "TimeGenerated": [pd.Timestamp("2026-01-01", tz="UTC")]})
    with pytest.raises(DataError, match="no column 'host'"):
        sessions.sessionize(df, by=["user", "host"])
    with pytest.raises(DataError):
        sessions.sessionize(df, by=[])
    assert sessions.sessionize(df.iloc[:0], by="user")["session"].empty


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=60), st.integers(1, 500))
def test_sessionize_counts_gaps(offsets: list[int], gap_s: int) -> None:
    """One key: sessions = 1 + number of idle gaps longer than ``gap`` between consecutive events."""
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    times = [t0 + pd.Timedelta(seconds=o) for o in offsets]
    df = pd.DataFrame({"k": "x", "TimeGenerated": times})
    out = sessions.sessionize(df, by="k", gap=pd.Timedelta(seconds=gap_s))
    ordered = sorted(offsets)
    expected = 1 + sum(1 for a, b in itertools.pairwise(ordered) if b - a > gap_s)
    assert out["session"].nunique() == expected
    # events of one session are never further apart than the gap from their neighbours
    for _, group in out.groupby("session"):
        gaps = group["TimeGenerated"].sort_values().diff().dropna()
        assert (gaps <= pd.Timedelta(seconds=gap_s)).all()


# ---------------------------------------------------------------- score


def test_novel_command_ranks_first() -> None:
    data = corpus()
    data.insert(137, ["Get-Mailbox", "New-InboxRule", "Set-Mailbox"])
    ranked = sessions.score(long_frame(data))
    assert ranked.loc[0, "session"] == "s137"
    assert ranked.loc[0, "score"] < ranked.loc[1, "score"]
    assert "New-InboxRule" in ranked.loc[0, "rarest_transition"]
    assert len(ranked) == len(data)
    assert list(ranked.columns) == sessions.SCORE_COLUMNS


def test_unseen_order_of_common_commands_ranks_first() -> None:
    data = corpus(seed=2)
    data.insert(50, ["Set-User", "Add-DistributionGroupMember", "Get-MailboxStatistics", "Set-User"])
    ranked = sessions.score(long_frame(data))
    assert ranked.loc[0, "session"] == "s50"
    assert ranked.loc[0, "rarest_reason"] == "transition"


def test_rare_parameter_counts_only_with_params_column() -> None:
    data = corpus(seed=3)
    params = [[["Identity"] for _ in s] for s in data]
    params[200][0] = ["Identity", "ForwardingSmtpAddress"]
    df = long_frame(data, params)
    with_params = sessions.score(df, params_column="params")
    assert with_params.loc[0, "session"] == "s200"
    assert with_params.loc[0, "rarest_reason"] == "parameter ForwardingSmtpAddress"
    without = sessions.score(df)
    assert without.set_index("session").loc["s200", "score"] == 0  # nothing rare in its commands


def test_parameter_formats_agree() -> None:
    data = corpus(seed=4, n=100)
    lists = [[["Identity", "ResultSize"] if c == "Get-Mailbox" else ["Identity"] for c in s] for s in data]
    lists[7][0] = ["Identity", "Odd"]
    base = long_frame(data, lists)
    expected = sessions.score(base, params_column="params")
    for convert in (set, tuple, lambda p: {k: "v" for k in p}, lambda p: ", ".join(p)):
        df = base.assign(params=base["params"].map(convert))
        got = sessions.score(df, params_column="params")
        pd.testing.assert_frame_equal(got, expected)


def test_time_column_orders_commands() -> None:
    data = corpus(seed=5, n=150)
    data.insert(10, ["Set-User", "Add-DistributionGroupMember", "Set-User"])
    df = long_frame(data)
    df["t"] = pd.date_range("2026-01-01", periods=len(df), freq="s", tz="UTC")
    shuffled = df.sample(frac=1.0, random_state=7)
    a = sessions.score(df, time_column="t")
    b = sessions.score(shuffled, time_column="t")
    pd.testing.assert_frame_equal(a.drop(columns="session"), b.drop(columns="session"))
    assert set(a["session"]) == set(b["session"])
    assert a.loc[0, "session"] == "s10"


def test_scores_are_ordered_and_bounded() -> None:
    ranked = sessions.score(long_frame(corpus(seed=6)))
    assert (ranked["score"] <= 0).all()
    assert ranked["score"].is_monotonic_increasing
    assert (ranked["length"] >= 1).all()
    assert (ranked["rare_events"] >= 0).all()
    assert ((ranked["score"] < 0) == (ranked["rare_events"] > 0)).all()


def test_input_unchanged_and_missing_session_ignored() -> None:
    df = long_frame(corpus(seed=8, n=50))
    df.loc[3, "session"] = None
    before = df.copy(deep=True)
    ranked = sessions.score(df, params_column="params")
    pd.testing.assert_frame_equal(df, before)
    assert ranked["length"].sum() == len(df) - 1
    assert ranked["session"].notna().all()


def test_score_bad_input() -> None:
    df = long_frame(corpus(n=5))
    with pytest.raises(DataError, match="no column 'cmd'"):
        sessions.score(df, command_column="cmd")
    with pytest.raises(DataError):
        sessions.score(df, rare_below=1.5)
    with pytest.raises(DataError):
        sessions.score(df, smoothing=0)
    assert sessions.score(df.iloc[:0]).empty


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.sampled_from("ABCDE"), min_size=1, max_size=6), min_size=1, max_size=40))
def test_score_laws(data: list[list[str]]) -> None:
    """One row per session; lengths add up; renaming commands changes nothing."""
    df = long_frame(data)
    ranked = sessions.score(df)
    assert len(ranked) == len(data)
    assert ranked["length"].sum() == len(df)
    renamed = sessions.score(df.assign(command=df["command"].map(lambda c: f"cmd-{c}")))
    np.testing.assert_allclose(
        ranked.set_index("session").sort_index()["score"], renamed.set_index("session").sort_index()["score"]
    )


# ---------------------------------------------------------------- the benchmark generator and the demo


def test_planted_sessions_of_the_benchmark_generator() -> None:
    if not (BENCH / "gen_workloads.py").is_file():
        pytest.skip(f"benchmark kit not found at {BENCH}")
    sys.path.insert(0, str(BENCH))
    try:
        import gen_workloads as gw
    finally:
        sys.path.remove(str(BENCH))
    data = gw.gen_sessions(3000, n_planted=9)  # 0.3 % planted, as in the benchmark
    rows = [(i, c["name"], c["params"]) for i, s in enumerate(data["sessions"]) for c in s]
    df = pd.DataFrame(rows, columns=["session", "command", "params"])
    ranked = sessions.score(df, params_column="params")
    top = set(ranked["session"].head(9))
    planted = {i for i, kind in enumerate(data["planted_kind"]) if kind}
    assert len(top & planted) >= 8


@pytest.fixture(scope="module")
def demo_processes(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, dict[str, Any]]:
    import huntbook.demo as demo
    from huntbook.session import QueryProvider
    from huntbook.store import LocalStore

    root = tmp_path_factory.mktemp("sessions-demo")
    generated = demo.generate(root / "data")
    store = LocalStore(root / "store")
    store.ingest([root / "data"])
    frame = QueryProvider("local", store=store).exec_query("select * from process_events")
    return frame, generated["truth"]


def test_demo_attacker_logon_session_is_among_the_rarest(
    demo_processes: tuple[pd.DataFrame, dict[str, Any]],
) -> None:
    frame, truth = demo_processes
    ranked = sessions.score(frame, "TargetUserSessionId", "TargetProcessName", time_column="TimeGenerated")
    logon_id = truth["logon_id"].lower()
    assert logon_id in set(ranked["session"].head(3))
    assert len(ranked) > 20


def test_demo_attacker_session_from_sessionize(demo_processes: tuple[pd.DataFrame, dict[str, Any]]) -> None:
    frame, truth = demo_processes
    cut = sessions.sessionize(frame, by=["ActorUsername", "DvcHostname"], gap="30min")
    ranked = sessions.score(cut, "session", "TargetProcessName", time_column="TimeGenerated")
    attacker = set(cut.loc[cut["TargetUserSessionId"] == truth["logon_id"].lower(), "session"])
    assert attacker & set(ranked["session"].head(3))


def test_dense_and_sparse_count_tables_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    data = corpus(seed=11, n=200)
    data.insert(3, ["Get-Mailbox", "New-InboxRule", "Set-Mailbox"])
    params = [
        [["Identity", "Odd"] if (i, j) == (9, 0) else ["Identity"] for j, _ in enumerate(s)]
        for i, s in enumerate(data)
    ]
    df = long_frame(data, params)
    dense = sessions.score(df, params_column="params")
    monkeypatch.setattr(sessions, "_DENSE_LIMIT", 0)
    sparse = sessions.score(df, params_column="params")
    pd.testing.assert_frame_equal(dense, sparse)
