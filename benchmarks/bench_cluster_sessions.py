"""Benchmarks of huntbook.cluster and huntbook.sessions against MSTICPy 3.0.2, on the kit's workloads.

* ``cluster_100k`` (``gen_cluster_events(100_000)``): ``cluster.events(df)`` on the input columns (no
  ``Planted``/``TrueId``/``TrueParentId``), feature extraction included; surfaced rows = noise +
  clusters of <= 3 rows (``cluster.rare``), scored with ``scoring.score_cluster``. MSTICPy's time is
  ``add_process_features`` + ``dbcluster_events`` (eps=0.0001), as its runner timed them separately.
* ``sessions_10k`` / ``sessions_100k`` (``gen_sessions(10_000)``, ``gen_sessions(100_000, n_planted=300)``):
  ``sessions.score(df, "session", "command", "params")`` on one row per command (built untimed, as
  MSTICPy's runner built its frame untimed), with parameter names (``cmd+param_set``) and without
  (``cmd_names_only``); ranking = the result's order, equal (score, min_log_likelihood) tied
  pessimistically; scored with ``scoring.score_sessions``.

Usage: ``python benchmarks/bench_cluster_sessions.py [--quick] [--msticpy DIR]``. Writes
``results_cluster_sessions.json`` next to this file (``--quick``: ``results_cluster_sessions_quick.json``)
and prints a Markdown table. Repeats as in the reference: cluster 3, sessions 5.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
KIT = Path(__file__).resolve().parents[2] / "shared" / "bench"
sys.path.insert(0, str(KIT))
sys.path.insert(0, str(HERE.parent / "src"))

import gen_workloads as gw  # noqa: E402
import scoring  # noqa: E402
from bench_common import env_info, strip_result, time_call  # noqa: E402


def msticpy_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    local = KIT / "results_local"
    return (
        local
        if (local / "cluster.json").is_file() or (local / "sessions.json").is_file()
        else KIT / "results"
    )


def load(folder: Path, name: str) -> dict[str, Any]:
    path = folder / name
    if not path.is_file():
        path = KIT / "results" / name
    with path.open() as fh:
        data: dict[str, Any] = json.load(fh)
    return data


def tie_ranking(ranked: Any) -> list[Any]:
    """Session ids in result order; rows with equal (score, min_log_likelihood) form one tie group."""
    keys = list(zip(ranked["score"].round(9), ranked["min_log_likelihood"].round(9), strict=True))
    ids = ranked["session"].tolist()
    out: list[Any] = []
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and keys[j + 1] == keys[i]:
            j += 1
        group = ids[i : j + 1]
        out.append(group if len(group) > 1 else group[0])
        i = j + 1
    return out


def bench_cluster(n_events: int, ref: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    import huntbook.cluster as cluster

    data = gw.gen_cluster_events(n_events)
    fp = gw.fingerprint(data)
    full = n_events == 100_000
    if full and fp != ref["input"]["sha256"]:
        raise SystemExit(f"cluster input differs from the reference: {fp}")
    planted = list(data["columns"]["Planted"])
    df = pd.DataFrame(
        {k: v for k, v in data["columns"].items() if k not in ("Planted", "TrueId", "TrueParentId")}
    )
    del data
    timing = time_call(lambda: cluster.events(df), repeats=3, warmup=lambda: cluster.events(df.head(2000)))
    out = timing["_result"]
    surfaced = cluster.rare(out)
    rows = np.flatnonzero(df.index.isin(surfaced.index)).tolist()
    quality = scoring.score_cluster(rows, planted)
    m_feat = ref["features"]["timing"]["median_s"]
    m_clu = ref["dbcluster_eps=0.0001"]
    return {
        "workload": f"cluster_{n_events // 1000}k",
        "input": {"rows": len(df), "sha256": fp, "matches_reference": fp == ref["input"]["sha256"]},
        "call": "cluster.events(df) + cluster.rare(...)",
        "timing": strip_result(timing),
        "quality": {
            **quality,
            "clusters": int(out["cluster"].max() + 1),
            "noise_rows": int((out["cluster"] < 0).sum()),
            "surfaced_distinct_command_lines": int(surfaced["CommandLine"].nunique()),
        },
        "msticpy": None
        if not full
        else {
            "median_s": round(m_feat + m_clu["timing"]["median_s"], 4),
            "parts": {"add_process_features": m_feat, "dbcluster_events": m_clu["timing"]["median_s"]},
            "peak_mb": m_clu["timing"]["peak_mb"],
            "quality": {
                "planted_surfaced": m_clu["planted_surfaced_(noise_or_cluster<=3)"],
                "planted_rows": m_clu["planted_rows"],
                "output_rows": m_clu["output_rows"],
                "clusters": m_clu["clusters"],
                "noise_rows": m_clu["noise_rows"],
            },
        },
    }


def bench_sessions(n: int, ref: dict[str, Any]) -> list[dict[str, Any]]:
    import numpy as np
    import pandas as pd

    import huntbook.sessions as sessions

    data = gw.gen_sessions(n, n_planted=max(30, n // 333))
    fp = gw.fingerprint(data)
    results = []
    lengths = [len(s) for s in data["sessions"]]
    base = pd.DataFrame(
        {
            "session": np.repeat(np.arange(n), lengths),
            "command": [c["name"] for s in data["sessions"] for c in s],
            "params": [c["params"] for s in data["sessions"] for c in s],
        }
    )
    head = base[base["session"] < 500]
    for variant, params in (("cmd+param_set", "params"), ("cmd_names_only", None)):
        key = f"{n}/{variant}"
        m = ref["runs"].get(key)
        if m is not None and fp != m["input"]["sha256"]:
            raise SystemExit(f"sessions input differs from the reference: {fp}")
        timing = time_call(
            lambda p=params: sessions.score(base, "session", "command", p),
            repeats=5,
            warmup=lambda p=params: sessions.score(head, "session", "command", p),
        )
        quality = scoring.score_sessions(tie_ranking(timing["_result"]), data)
        results.append(
            {
                "workload": f"sessions_{n // 1000}k/{variant}",
                "input": {
                    "sessions": n,
                    "commands": len(base),
                    "sha256": fp,
                    "matches_reference": m is not None,
                },
                "call": f"sessions.score(df, 'session', 'command', {params!r})",
                "timing": strip_result(timing),
                "quality": quality,
                "msticpy": None
                if m is None
                else {
                    "median_s": m["timing"]["median_s"],
                    "peak_mb": m["timing"]["peak_mb"],
                    "quality": {
                        k: v for k, v in m.items() if k.startswith(("recall@", "benign_decoys", "by_kind"))
                    },
                },
            }
        )
    return results


def quality_text(row: dict[str, Any], side: str) -> str:
    q = row["quality"] if side == "hb" else (row["msticpy"] or {}).get("quality", {})
    if row["workload"].startswith("cluster"):
        if side == "hb":
            return (
                f"planted {q['planted_surfaced']}/{q['planted_rows']}, review {q['surfaced_rows']} rows "
                f"({q['surfaced_distinct_command_lines']} distinct command lines)"
            )
        return f"planted {q['planted_surfaced']}/{q['planted_rows']}, {q['output_rows']} output rows"
    recalls = ", ".join(f"{k} {v}" for k, v in q.items() if k.startswith("recall@"))
    return recalls or "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--msticpy", default=None, help="folder of MSTICPy result JSON (cluster.json, sessions.json)"
    )
    ap.add_argument("--quick", action="store_true", help="reduced sizes: cluster 20k, sessions 10k")
    ap.add_argument("--skip", choices=["cluster", "sessions"], action="append", default=[])
    args = ap.parse_args()
    folder = msticpy_dir(args.msticpy)
    rows: list[dict[str, Any]] = []
    if "cluster" not in args.skip:
        rows.append(bench_cluster(20_000 if args.quick else 100_000, load(folder, "cluster.json")))
    if "sessions" not in args.skip:
        ref = load(folder, "sessions.json")
        for n in (10_000,) if args.quick else (10_000, 100_000):
            rows.extend(bench_sessions(n, ref))
    report = {
        "tool": "huntbook",
        "env": env_info(("pandas", "numpy")),
        "msticpy_results": str(folder),
        "runs": rows,
    }
    out = HERE / ("results_cluster_sessions_quick.json" if args.quick else "results_cluster_sessions.json")
    out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(
        "| workload | MSTICPy median s | huntbook median s | ratio | MSTICPy quality | huntbook quality | peak RSS MB (MSTICPy / huntbook) |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        m = row["msticpy"] or {}
        hb = row["timing"]["median_s"]
        ms = m.get("median_s")
        ratio = f"{ms / hb:.1f}x" if ms and hb else "-"
        print(
            f"| {row['workload']} | {ms if ms is not None else '-'} | {hb} | {ratio} | {quality_text(row, 'm')} "
            f"| {quality_text(row, 'hb')} | {m.get('peak_mb', '-')} / {row['timing']['peak_mb']} |"
        )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
