"""Time-series benchmark: ``huntbook.timeseries.anomalies`` vs MSTICPy's ``ts_anomalies_stl``; beaconing.

Same inputs as the MSTICPy reference run (``../shared/bench``, workloads ts_30d / ts_90d / ts_365d:
hourly counts with a daily sine, a weekend dip, a trend, N(0, 12) noise and planted spikes and dips).
huntbook gets ``data["time"]`` and ``data["value"]`` only; its flagged hours are scored with the kit's
``scoring.score_timeseries`` (exact hour and +-1 h). Timing: ``bench_common.time_call`` (untimed
warm-up, 7 repeats, median), like the reference. MSTICPy's figures come from ``ts_stl.json`` in the
``--msticpy`` folder (default the kit's ``results_local`` if it has one, else the kit's ``results``).

Beaconing has no MSTICPy counterpart: ``timeseries.beacons`` is timed on synthetic Zeek-style
connections (300,000 by default: 3,000 host pairs of random traffic plus one 60 s +-10 % beacon) and
the rank of the beacon is reported.

Usage::

    python benchmarks/bench_timeseries.py                     # everything
    python benchmarks/bench_timeseries.py --days 30 --connections 30000 --repeat 3   # quick run
    python benchmarks/bench_timeseries.py --msticpy ../shared/bench/results_local

Writes ``benchmarks/results_timeseries.json`` (``--out`` to change) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
KIT = Path(__file__).resolve().parents[2] / "shared" / "bench"
sys.path.insert(0, str(KIT))

import gen_workloads as gw  # noqa: E402
import scoring  # noqa: E402
from bench_common import env_info, strip_result, time_call  # noqa: E402

from huntbook import timeseries  # noqa: E402

MSTICPY_LABEL = "default(seasonal=7,period=24)"


def msticpy_reference(given: str | None) -> tuple[dict[str, Any] | None, Path | None]:
    candidates = [Path(given)] if given else [KIT / "results_local", KIT / "results"]
    for folder in candidates:
        path = folder / "ts_stl.json"
        if path.is_file():
            return json.loads(path.read_text()), path
    return None, None


def run_series(days: int, repeats: int, ref: dict[str, Any] | None) -> dict[str, Any]:
    data = gw.gen_timeseries(days)
    fingerprint = gw.fingerprint(data)
    ref_entry = (ref or {}).get("series", {}).get(f"{days}d")
    if ref_entry and ref_entry["input"]["sha256"] != fingerprint:
        raise SystemExit(f"{days}d: input fingerprint differs from the MSTICPy reference")
    frame = pd.DataFrame({"time": data["time"], "value": data["value"]})
    timing = time_call(
        lambda: timeseries.anomalies(frame), repeats=repeats, warmup=lambda: timeseries.anomalies(frame)
    )
    scored = timing["_result"]
    flagged = scored[scored["anomaly"] != 0]
    pred = [
        (t, "spike" if a > 0 else "dip") for t, a in zip(flagged["time"], flagged["anomaly"], strict=True)
    ]
    quality = scoring.score_timeseries(pred, data)
    entry: dict[str, Any] = {
        "input": {"days": days, "sha256": fingerprint, "points": len(frame)},
        "call": "timeseries.anomalies(df)",
        "timing": strip_result(timing),
        "throughput": {"points_per_s": round(len(frame) / timing["median_s"], 1)},
        "quality": quality,
        "periods": len(timeseries.periods(scored)),
    }
    if ref_entry:
        mst = ref_entry[MSTICPY_LABEL]
        entry["msticpy"] = {
            "call": mst["call"],
            "median_s": mst["timing"]["median_s"],
            "spikes_exact": mst["spikes_exact"],
            "dips_flagged": mst["dips_flagged"],
            "ratio": round(mst["timing"]["median_s"] / timing["median_s"], 2),
        }
    return entry


def connections(n: int, seed: int = 11) -> pd.DataFrame:
    """Zeek-style conn rows: random traffic between many host pairs plus one beacon, shuffled."""
    rng = np.random.default_rng(seed)
    beacon_n = 240  # four hours at one a minute
    rest = n - beacon_n
    span = 4 * 3600.0
    t0 = 1_700_000_000.0
    frame = pd.DataFrame(
        {
            "ts": t0 + rng.uniform(0, span, rest),
            "id.orig_h": np.char.add("10.0.", rng.integers(0, 30, rest).astype(str)),
            "id.resp_h": np.char.add("192.0.2.", rng.integers(0, 25, rest).astype(str)),
            "id.resp_p": rng.choice([80, 443, 53, 8080], rest),
            "orig_bytes": rng.integers(40, 200_000, rest),
        }
    )
    beacon = pd.DataFrame(
        {
            "ts": t0 + np.cumsum(60 * (1 + rng.uniform(-0.1, 0.1, beacon_n))),
            "id.orig_h": "10.0.99.9",
            "id.resp_h": "203.0.113.66",
            "id.resp_p": 443,
            "orig_bytes": rng.integers(900, 1300, beacon_n),
        }
    )
    return (
        pd.concat([frame, beacon], ignore_index=True)
        .sample(frac=1.0, random_state=seed)
        .reset_index(drop=True)
    )


def run_beacons(n: int, repeats: int) -> dict[str, Any]:
    conns = connections(n)
    timing = time_call(
        lambda: timeseries.beacons(conns),
        repeats=repeats,
        warmup=lambda: timeseries.beacons(conns.head(5000)),
    )
    ranked = timing["_result"]
    hit = ranked.index[(ranked["id.orig_h"] == "10.0.99.9") & (ranked["id.resp_h"] == "203.0.113.66")]
    return {
        "input": {"connections": len(conns), "pairs": int(ranked.shape[0]), "seed": 11},
        "call": "timeseries.beacons(conns)",
        "timing": strip_result(timing),
        "throughput": {"connections_per_s": round(len(conns) / timing["median_s"], 1)},
        "beacon_rank": int(hit[0]) + 1 if len(hit) else None,
        "top_score": round(float(ranked["score"].iloc[0]), 4),
        "runner_up_score": round(float(ranked["score"].iloc[1]), 4) if len(ranked) > 1 else None,
    }


def table(result: dict[str, Any]) -> str:
    rows = [
        "| workload | MSTICPy median s | huntbook median s | ratio | quality MSTICPy | quality huntbook | peak RSS MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, entry in result["series"].items():
        q = entry["quality"]
        mine = (
            f"spikes P {q['spikes_exact']['precision']:.2f} / R {q['spikes_exact']['recall']:.2f}; "
            f"dips P {q['dips_exact']['precision']:.2f} / R {q['dips_exact']['recall']:.2f} "
            f"(+-1h: spikes R {q['spikes_pm1h']['recall']:.2f}, dips R {q['dips_pm1h']['recall']:.2f})"
        )
        mst = entry.get("msticpy")
        theirs = (
            f"spikes P {mst['spikes_exact']['precision']:.2f} / R {mst['spikes_exact']['recall']:.2f}; "
            f"dips {mst['dips_flagged']}/{q['planted_dips']}"
            if mst
            else "-"
        )
        rows.append(
            f"| ts_{name} | {mst['median_s'] if mst else '-'} | {entry['timing']['median_s']:.4f} | "
            f"{mst['ratio'] if mst else '-'} | {theirs} | {mine} | {entry['timing']['peak_mb']} |"
        )
    if "beacons" in result:
        b = result["beacons"]
        rows.append(
            f"| beacons_{b['input']['connections'] // 1000}k | - | {b['timing']['median_s']:.4f} | - | "
            f"(no MSTICPy counterpart) | beacon rank {b['beacon_rank']} of {b['input']['pairs']} pairs | "
            f"{b['timing']['peak_mb']} |"
        )
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--days", type=int, nargs="+", default=[30, 90, 365], choices=[30, 90, 365])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--connections", type=int, default=300_000, help="beaconing input size (0 = skip)")
    ap.add_argument("--msticpy", default=None, help="folder with MSTICPy's ts_stl.json")
    ap.add_argument("--out", default=str(HERE / "results_timeseries.json"))
    args = ap.parse_args()
    ref, ref_path = msticpy_reference(args.msticpy)
    started = time.perf_counter()
    result: dict[str, Any] = {
        "tool": "huntbook",
        "workload": "ts_stl+beacons",
        "env": env_info(packages=("huntbook", "pandas", "numpy", "scipy", "statsmodels")),
        "msticpy_reference": str(ref_path) if ref_path else None,
        "msticpy_env": (ref or {}).get("env"),
        "series": {},
    }
    for days in args.days:
        result["series"][f"{days}d"] = run_series(days, args.repeat, ref)
    if args.connections:
        result["beacons"] = run_beacons(args.connections, args.repeat)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    Path(args.out).write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(table(result))
    print(f"\nwritten: {args.out}")


if __name__ == "__main__":
    main()
