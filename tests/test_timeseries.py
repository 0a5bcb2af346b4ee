"""huntbook.timeseries: summarize, anomalies (spikes and dips), periods, beacons."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from huntbook import timeseries as ts
from huntbook.errors import DataError, MissingExtraError

NEEDS_STL = pytest.mark.skipif(
    importlib.util.find_spec("statsmodels") is None, reason="the 'ml' extra (statsmodels) is not installed"
)

BENCH = Path(__file__).resolve().parents[2] / "shared" / "bench"
APT29_ZEEK = "mordor-security-datasets/datasets/compound/apt29/day1/zeek/individual_zeek_logs"


def hourly(days: int = 21, seed: int = 1, level: float = 200.0) -> pd.DataFrame:
    """A daily sine with noise, hourly, UTC."""
    rng = np.random.default_rng(seed)
    hours = pd.date_range("2024-03-04", periods=24 * days, freq="h", tz="UTC")
    daily = 80 * np.sin(2 * np.pi * (hours.hour - 8) / 24)
    values = np.round(level + daily + rng.normal(0, 10, hours.size))
    return pd.DataFrame({"TimeGenerated": hours, "count": values})


# -- summarize ---------------------------------------------------------------------------------------------


def test_summarize_counts_per_bin_and_fills_empty_bins() -> None:
    times = pd.to_datetime(["2024-01-01 00:10", "2024-01-01 00:50", "2024-01-01 03:05", None])
    events = pd.DataFrame({"TimeGenerated": times, "host": ["a", "b", "a", "a"], "bytes": [10, 5, 7, 100]})
    before = events.copy()
    counts = ts.summarize(events)
    assert counts["count"].tolist() == [2, 0, 0, 1]  # the NaT row is left out
    assert counts["TimeGenerated"].iloc[0] == pd.Timestamp("2024-01-01 00:00", tz="UTC")
    sums = ts.summarize(events, value_column="bytes", freq="2h")
    assert sums["bytes"].tolist() == [15, 7]
    pd.testing.assert_frame_equal(events, before)


def test_summarize_by_group_gives_every_group_the_same_bins() -> None:
    times = pd.to_datetime(["2024-01-01 00:10", "2024-01-01 02:50", "2024-01-01 01:05"], utc=True)
    events = pd.DataFrame({"TimeGenerated": times, "host": ["a", "a", "b"]})
    grouped = ts.summarize(events, by="host")
    assert grouped.groupby("host").size().to_dict() == {"a": 3, "b": 3}
    assert grouped.set_index(["host", "TimeGenerated"])["count"].sum() == 3
    assert grouped[grouped["host"] == "b"]["count"].tolist() == [0, 1, 0]


def test_summarize_bad_input() -> None:
    events = pd.DataFrame({"TimeGenerated": pd.to_datetime(["2024-01-01"])})
    with pytest.raises(DataError, match="missing column"):
        ts.summarize(events, time_column="ts")
    with pytest.raises(DataError, match="bad freq"):
        ts.summarize(events, freq="often")
    with pytest.raises(DataError, match="numeric, not a time"):
        ts.summarize(pd.DataFrame({"TimeGenerated": [1.5, 2.5]}))
    empty = ts.summarize(events.iloc[:0])
    assert empty.empty and list(empty.columns) == ["TimeGenerated", "count"]


# -- anomalies ---------------------------------------------------------------------------------------------


@NEEDS_STL
def test_anomalies_flags_a_spike_and_a_dip_with_their_kind() -> None:
    series = hourly()
    series.loc[100, "count"] += 150  # a spike
    series.loc[300, "count"] = series.loc[300, "count"] * 0.1  # a dip
    before = series.copy()
    scored = ts.anomalies(series)
    pd.testing.assert_frame_equal(series, before)
    flagged = scored[scored["anomaly"] != 0]
    assert flagged.index.tolist() == [100, 300]
    assert flagged["anomaly"].tolist() == [1, -1]
    assert scored.loc[100, "score"] > 5 and scored.loc[300, "score"] < -5
    assert {"expected", "residual", "score", "anomaly"} <= set(scored.columns)
    assert abs(scored.loc[5, "expected"] - scored.loc[5, "count"]) < 50  # the baseline follows the curve


@NEEDS_STL
def test_anomalies_per_group() -> None:
    first, second = hourly(seed=2).assign(host="a"), hourly(seed=3).assign(host="b")
    first.loc[50, "count"] += 200
    second.loc[70, "count"] -= 180
    both = pd.concat([first, second], ignore_index=True)
    scored = ts.anomalies(both, "TimeGenerated", "count", by="host")
    flagged = scored[scored["anomaly"] != 0]
    assert list(zip(flagged["host"], flagged["anomaly"], strict=True)) == [("a", 1), ("b", -1)]


@NEEDS_STL
def test_anomalies_with_missing_bins_and_nan_values() -> None:
    series = hourly()
    series.loc[200, "count"] += 200
    series.loc[120, "count"] = np.nan
    gappy = series.drop(index=range(30, 36))  # six hours missing from the grid
    scored = ts.anomalies(gappy)
    assert len(scored) == len(gappy)
    assert np.isnan(scored.loc[120, "score"]) and scored.loc[120, "anomaly"] == 0
    assert scored.index[scored["anomaly"] != 0].tolist() == [200]


@NEEDS_STL
def test_weekly_pattern_is_not_flagged() -> None:
    series = hourly(days=35, seed=4)
    weekend = series["TimeGenerated"].dt.day_of_week >= 5
    series.loc[weekend, "count"] = (series.loc[weekend, "count"] * 0.5).round()
    series.loc[400, "count"] += 150
    scored = ts.anomalies(series)
    assert scored.index[scored["anomaly"] != 0].tolist() == [400]


@NEEDS_STL
def test_constant_series_has_no_anomalies_and_one_departure_is_a_spike() -> None:
    flat = hourly().assign(count=50.0)
    assert (ts.anomalies(flat)["anomaly"] == 0).all()
    flat.loc[99, "count"] = 60.0
    scored = ts.anomalies(flat)
    assert scored.index[scored["anomaly"] != 0].tolist() == [99]
    assert scored.loc[99, "anomaly"] == 1


def test_anomalies_bad_input_gives_data_errors() -> None:
    series = hourly()
    with pytest.raises(DataError, match="empty"):
        ts.anomalies(series.iloc[:0])
    with pytest.raises(DataError, match="too short"):
        ts.anomalies(series.iloc[:40])
    with pytest.raises(DataError, match="duplicate"):
        ts.anomalies(pd.concat([series, series.iloc[:1]]))
    irregular = series.copy()
    irregular.loc[3, "TimeGenerated"] += pd.Timedelta("7min")
    with pytest.raises(DataError, match="not a regular series"):
        ts.anomalies(irregular)
    with pytest.raises(DataError, match="not numeric"):
        ts.anomalies(series.assign(count=series["count"].astype(str)), "TimeGenerated", "count")
    with pytest.raises(DataError, match="missing column"):
        ts.anomalies(series, "TimeGenerated", "bytes")
    with_nat = series.copy()
    with_nat.loc[5, "TimeGenerated"] = pd.NaT
    with pytest.raises(DataError, match="NaT"):
        ts.anomalies(with_nat)
    with pytest.raises(DataError, match="seasonal period"):
        ts.anomalies(series.assign(TimeGenerated=pd.date_range("2024-01-01", periods=len(series), freq="7h")))
    with pytest.raises(DataError, match="infinite"):
        ts.anomalies(series.assign(count=np.where(series.index == 9, np.inf, series["count"])))
    with pytest.raises(DataError, match="DataFrame"):
        ts.anomalies(series["count"])  # type: ignore[arg-type]
    with pytest.raises(DataError, match="no numeric column"):
        ts.anomalies(series[["TimeGenerated"]])


def test_anomalies_names_the_extra_when_statsmodels_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "statsmodels.tsa.seasonal", None)
    with pytest.raises(MissingExtraError, match="'ml' extra") as info:
        ts.anomalies(hourly())
    assert "pip install 'huntbook[ml]'" in str(info.value)


@NEEDS_STL
def test_daily_series_uses_the_given_period() -> None:
    days = pd.date_range("2023-01-02", periods=7 * 20, freq="D", tz="UTC")
    values = np.where(days.day_of_week >= 5, 40.0, 100.0) + np.random.default_rng(5).normal(0, 3, days.size)
    values[60] += 60
    frame = pd.DataFrame({"day": days, "logons": values})
    with pytest.raises(DataError, match="seasonal period"):
        ts.anomalies(frame)
    scored = ts.anomalies(frame, period=7)
    assert scored.index[scored["anomaly"] != 0].tolist() == [60]


@NEEDS_STL
@pytest.mark.parametrize("days", [30, 90, 365])
def test_benchmark_workloads_recall_and_precision(days: int) -> None:
    """The bench kit's seeded series: >= 0.9 recall and precision for spikes and dips (exact hour)."""
    if not BENCH.is_dir():
        pytest.skip(f"benchmark kit not found at {BENCH}")
    sys.path.insert(0, str(BENCH))
    try:
        import gen_workloads as gw
        import scoring
    finally:
        sys.path.remove(str(BENCH))
    data = gw.gen_timeseries(days)
    scored = ts.anomalies(pd.DataFrame({"time": data["time"], "value": data["value"]}))
    flagged = scored[scored["anomaly"] != 0]
    pred = [
        (t, "spike" if a > 0 else "dip") for t, a in zip(flagged["time"], flagged["anomaly"], strict=True)
    ]
    quality = scoring.score_timeseries(pred, data)
    for kind in ("spikes_exact", "dips_exact"):
        assert quality[kind]["recall"] >= 0.9, (kind, quality)
        assert quality[kind]["precision"] >= 0.9, (kind, quality)


@NEEDS_STL
def test_msticpy_time_series_periods(shared_data: Path) -> None:
    """MSTICPy's own test series: its three anomaly periods (PROVENANCE.md) are among ours."""
    path = shared_data / "msticpy-testdata" / "testdata" / "time_series.csv"
    frame = pd.read_csv(path, encoding="utf-8-sig", parse_dates=["TimeGenerated"])
    found = ts.periods(ts.anomalies(frame[["TimeGenerated", "TotalBytesSent"]]))
    spikes = found[found["kind"] == "spike"]
    for start in ("2019-05-13 16:00", "2019-05-17 20:00", "2019-05-26 04:00"):
        window_start = pd.Timestamp(start, tz="UTC")
        window_end = window_start + pd.Timedelta("2h")
        overlap = (spikes["start"] < window_end) & (spikes["end"] > window_start)
        assert overlap.any(), (start, found)
    assert len(found) <= 8  # a handful of periods, not noise


# -- periods -----------------------------------------------------------------------------------------------


def test_periods_merges_consecutive_bins_of_one_kind() -> None:
    hours = pd.date_range("2024-01-01", periods=8, freq="h", tz="UTC")
    scored = pd.DataFrame(
        {"TimeGenerated": hours, "score": [0, 5, 6, -5, 0, 7, 0, 0], "anomaly": [0, 1, 1, -1, 0, 1, 0, 0]}
    )
    found = ts.periods(scored)
    assert found["kind"].tolist() == ["spike", "dip", "spike"]
    assert found["start"].tolist() == [hours[1], hours[3], hours[5]]
    assert found["end"].tolist() == [hours[3], hours[4], hours[6]]
    assert found["bins"].tolist() == [2, 1, 1]
    assert found["peak_score"].tolist() == [6, 5, 7]


def test_periods_split_on_gaps_and_groups() -> None:
    hours = pd.date_range("2024-01-01", periods=4, freq="h", tz="UTC")
    scored = pd.DataFrame(
        {
            "TimeGenerated": list(hours[[0, 1, 3]]) * 2,
            "host": ["a"] * 3 + ["b"] * 3,
            "score": [5.0] * 6,
            "anomaly": [1, 1, 1, 0, 1, 0],
        }
    )
    found = ts.periods(scored, by="host")
    assert found[["host", "bins"]].values.tolist() == [["a", 2], ["a", 1], ["b", 1]]
    assert ts.periods(scored.assign(anomaly=0)).empty
    single = ts.periods(scored.iloc[:1], freq="1h")
    assert single[["start", "end"]].values.tolist() == [[hours[0], hours[1]]]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([-1, 0, 1]), min_size=2, max_size=60))
def test_periods_cover_exactly_the_flagged_bins(flags: list[int]) -> None:
    hours = pd.date_range("2024-01-01", periods=len(flags), freq="h", tz="UTC")
    scored = pd.DataFrame({"TimeGenerated": hours, "score": np.abs(flags) * 5.0, "anomaly": flags})
    found = ts.periods(scored)
    assert int(found["bins"].sum()) == sum(f != 0 for f in flags)
    covered = [h for row in found.itertuples() for h in pd.date_range(row.start, row.end, freq="h")[:-1]]
    assert sorted(covered) == [h for h, f in zip(hours, flags, strict=True) if f != 0]
    assert (found["start"].iloc[1:].to_numpy() >= found["end"].iloc[:-1].to_numpy()).all()


# -- beacons -----------------------------------------------------------------------------------------------


def _beacon(
    src: str, dst: str, start: float, count: int, every: float, jitter: float, seed: int
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    times = start + np.cumsum(every * (1 + rng.uniform(-jitter, jitter, count)))
    return pd.DataFrame(
        {
            "ts": times,
            "id.orig_h": src,
            "id.resp_h": dst,
            "id.resp_p": 443,
            "orig_bytes": rng.integers(900, 1100, count),
        }
    )


def test_beacons_rank_a_clock_above_random_traffic() -> None:
    rng = np.random.default_rng(9)
    noise = pd.DataFrame(
        {
            "ts": 1.7e9 + rng.uniform(0, 7200, 3000),
            "id.orig_h": rng.choice(["10.0.0.1", "10.0.0.2", "10.0.0.3"], 3000),
            "id.resp_h": rng.choice(["192.0.2.1", "192.0.2.2"], 3000),
            "id.resp_p": 443,
            "orig_bytes": rng.integers(100, 90000, 3000),
        }
    )
    conns = pd.concat([noise, _beacon("10.0.0.9", "198.51.100.7", 1.7e9, 120, 60, 0.1, 1)], ignore_index=True)
    before = conns.copy()
    ranked = ts.beacons(conns)
    pd.testing.assert_frame_equal(conns, before)
    top = ranked.iloc[0]
    assert (top["id.orig_h"], top["id.resp_h"], top["id.resp_p"]) == ("10.0.0.9", "198.51.100.7", 443)
    assert top["connections"] == 120 and 55 < top["median_interval"] < 65
    assert top["interval_score"] > 0.85 and ranked.iloc[1]["score"] < top["score"] - 0.2
    assert ranked["score"].is_monotonic_decreasing


def test_beacons_asim_names_options_and_bad_input() -> None:
    t = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(np.arange(0, 1800, 30), unit="s")
    conns = pd.DataFrame(
        {"TimeGenerated": t, "SrcIpAddr": "10.1.1.1", "DstIpAddr": "10.2.2.2", "DstPortNumber": 80}
    )
    ranked = ts.beacons(conns)
    assert ranked.loc[0, ["median_interval", "interval_score"]].tolist() == [30.0, 1.0]
    assert np.isnan(ranked.loc[0, "size_score"])
    assert "DstPortNumber" not in ts.beacons(conns, port=False).columns
    assert ts.beacons(conns, min_connections=100).empty
    assert ts.beacons(conns, min_interval=60).empty
    proxy = conns.rename(columns={"SrcIpAddr": "c_ip", "DstIpAddr": "cs_host", "TimeGenerated": "when"})
    assert ts.beacons(proxy, src="c_ip", dst="cs_host", time_column="when", port=False)[
        "connections"
    ].tolist() == [60]
    with pytest.raises(DataError, match="no src column"):
        ts.beacons(conns.drop(columns="SrcIpAddr"))
    with pytest.raises(DataError, match="missing column"):
        ts.beacons(conns, bytes_column="SrcBytes")


def _apt29_conns(shared_data: Path) -> pd.DataFrame:
    folder = shared_data / APT29_ZEEK
    if not folder.is_dir():
        pytest.skip(f"APT29 Zeek logs not found at {folder}")
    frames = [pd.read_json(path, lines=True) for path in sorted(folder.glob("*_conn.log"))]
    return pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize("hours", [0.5, 3.0])
def test_injected_beacon_tops_apt29_day1_zeek_conn_logs(shared_data: Path, hours: float) -> None:
    real = _apt29_conns(shared_data)
    start = float(real["ts"].min()) + 120
    count = int(hours * 60)
    beacon = _beacon("10.0.1.6", "192.0.2.200", start, count, 60, 0.1, 3).rename(
        columns=lambda c: c.replace(".", "_")
    )
    conns = pd.concat([real, beacon], ignore_index=True).sample(frac=1.0, random_state=4)
    ranked = ts.beacons(conns)
    top = ranked.iloc[0]
    assert (top["id_orig_h"], top["id_resp_h"], top["connections"]) == ("10.0.1.6", "192.0.2.200", count)
    assert len(ranked) > 1  # the real traffic was scored too


def test_injected_beacon_through_the_local_store(shared_data: Path, tmp_path: Path) -> None:
    from huntbook.session import QueryProvider
    from huntbook.store import LocalStore

    folder = shared_data / APT29_ZEEK
    if not folder.is_dir():
        pytest.skip(f"APT29 Zeek logs not found at {folder}")
    store = LocalStore(tmp_path / "store")
    store.ingest(sorted(folder.glob("*_conn.log")))
    sessions = QueryProvider("local", store=store).exec_query("select * from network_sessions")
    assert len(sessions) > 500
    first = sessions["TimeGenerated"].min()
    rng = np.random.default_rng(6)
    offsets = pd.to_timedelta(np.cumsum(60 * (1 + rng.uniform(-0.1, 0.1, 40))), unit="s")
    beacon = pd.DataFrame(
        {
            "TimeGenerated": first + offsets,
            "SrcIpAddr": "10.0.1.4",
            "DstIpAddr": "203.0.113.80",
            "DstPortNumber": 8443,
            "SrcBytes": rng.integers(300, 340, 40),
        }
    )
    ranked = ts.beacons(pd.concat([sessions, beacon], ignore_index=True))
    assert ranked.loc[0, ["SrcIpAddr", "DstIpAddr", "DstPortNumber"]].tolist() == [
        "10.0.1.4",
        "203.0.113.80",
        8443,
    ]
