"""Process-tree benchmark: ``huntbook.proctree.build`` vs MSTICPy's ``build_process_tree``.

Same inputs as the MSTICPy reference run (``../shared/bench``, workloads proc_10k / proc_100k / proc_1m:
Windows 4688 events, 8 hosts, hex PIDs reused over time, 4 hosts booted before the log window). The
tool gets the input columns only (``TrueId``/``TrueParentId`` are dropped); the parent links are scored
with the kit's ``scoring.score_tree`` against that ground truth. Timing: ``bench_common.time_call``
(untimed warm-up on a 2,000-row slice, then 7 / 5 / 3 repeats, median); peak RSS is the process
high-water mark during the call, reported above the input frame already in memory.

Usage::

    python benchmarks/bench_proctree.py                        # all three sizes
    python benchmarks/bench_proctree.py --sizes 10k 100k       # quick run
    python benchmarks/bench_proctree.py --msticpy ../shared/bench/results_local

Writes ``benchmarks/results_proctree.json`` (``--out`` to change) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

HERE = Path(__file__).resolve().parent
KIT = Path(__file__).resolve().parents[2] / "shared" / "bench"
sys.path.insert(0, str(KIT))

import gen_workloads as gw  # noqa: E402
import scoring  # noqa: E402
from bench_common import env_info, strip_result, time_call  # noqa: E402

import huntbook.proctree as proctree  # noqa: E402

SIZES = {"10k": (10_000, 7), "100k": (100_000, 5), "1m": (1_000_000, 3)}
TRUTH = ("TrueId", "TrueParentId")


def msticpy_dir(given: str | None) -> Path:
    if given:
        return Path(given)
    local = KIT / "results_local"
    return local if local.is_dir() else KIT / "results"


def predictions(tree: pd.DataFrame, n: int) -> tuple[dict[int, Any], list[str]]:
    """Tree -> scoring format: {event row: parent event row | inferred parent key | None}.

    The input frame has a RangeIndex, which ``build`` keeps for event rows."""
    keys = tree["proc_key"].tolist()
    inferred = tree["inferred"].tolist()
    labels = tree.index.tolist()
    node = {k: (k if inf else int(label)) for k, inf, label in zip(keys, inferred, labels, strict=True)}
    pred: dict[int, Any] = {}
    for label, parent, inf in zip(labels, tree["parent_key"].tolist(), inferred, strict=True):
        if not inf:
            pred[int(label)] = None if pd.isna(parent) else node[parent]
    assert len(pred) == n, "every event must be in the tree"
    return pred, [k for k, inf in zip(keys, inferred, strict=True) if inf]


def run(size: str, ref_dir: Path) -> dict[str, Any]:
    n_events, repeats = SIZES[size]
    t0 = time.perf_counter()
    data = gw.gen_proc_events(n_events)
    fingerprint = gw.fingerprint(data)
    ref_path = ref_dir / f"proctree_{size}.json"
    if not ref_path.is_file():  # a partial local MSTICPy run: fall back to the kit's reference figures
        ref_path = KIT / "results" / ref_path.name
    ref = json.loads(ref_path.read_text()) if ref_path.is_file() else None
    if ref is not None and ref["input"]["sha256"] != fingerprint:
        raise SystemExit(f"{size}: input fingerprint differs from {ref_path}")
    cols = data["columns"]
    truth = {c: cols[c] for c in (*TRUTH, "Computer")}
    df = pd.DataFrame({k: v for k, v in cols.items() if k not in TRUTH})
    del data, cols
    gen_s = time.perf_counter() - t0
    timing = time_call(
        lambda: proctree.build(df), repeats=repeats, warmup=lambda: proctree.build(df.head(2000))
    )
    tree = timing["_result"]
    pred, inferred = predictions(tree, len(df))
    quality = scoring.score_tree(pred, truth, inferred_parents=inferred)
    result = {
        "tool": "huntbook",
        "workload": f"proctree_{size}",
        "input": {"n_events": n_events, "sha256": fingerprint, "gen_s": round(gen_s, 2), "rows": len(df)},
        "call": "proctree.build(df)  # schema inferred (security 4688)",
        "timing": strip_result(timing),
        "throughput": {"events_per_s": round(len(df) / timing["median_s"], 1)},
        "output_rows": len(tree),
        "quality": quality,
        "summary": proctree.summary(tree),
    }
    if ref is not None:
        result["msticpy"] = {
            "source": str(ref_path),
            "median_s": ref["timing"]["median_s"],
            "timing": ref["timing"],
            "quality": ref["quality"],
        }
        result["ratio"] = round(ref["timing"]["median_s"] / timing["median_s"], 2)
    kit_ref = json.loads((KIT / "results" / ref_path.name).read_text())
    result["ratio_vs_kit_reference"] = round(kit_ref["timing"]["median_s"] / timing["median_s"], 2)
    return result


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| workload | MSTICPy median s | huntbook median s | ratio (msticpy/huntbook) | parent-link accuracy "
        "MSTICPy / huntbook | peak RSS above input MB MSTICPy / huntbook |",
        "|---|---|---|---|---|---|",
    ]
    sources = {res.get("msticpy", {}).get("source", "") for res in results.values()}
    for name, res in results.items():
        ms = res.get("msticpy", {})
        hb_t = res["timing"]
        ms_rss = ms.get("timing", {}).get("peak_minus_before_mb", "—")
        lines.append(
            f"| {name} | {ms.get('median_s', '—')} | {hb_t['median_s']} | {res.get('ratio', '—')} | "
            f"{ms.get('quality', {}).get('parent_link_accuracy', '—')} / {res['quality']['parent_link_accuracy']} | "
            f"{ms_rss} / {hb_t['peak_minus_before_mb']} |"
        )
    lines.append("")
    lines.append("MSTICPy figures from: " + ", ".join(sorted(sources)))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))
    parser.add_argument(
        "--msticpy", help="folder of MSTICPy result JSON (default: the kit's results_local, else results)"
    )
    parser.add_argument("--out", default=str(HERE / "results_proctree.json"))
    args = parser.parse_args()
    ref_dir = msticpy_dir(args.msticpy)
    results = {}
    for size in args.sizes:
        results[f"proc_{size}"] = res = run(size, ref_dir)
        print(
            f"proc_{size}: {res['timing']['median_s']} s, accuracy {res['quality']['parent_link_accuracy']}"
        )
    payload = {"env": env_info(), "msticpy_results": str(ref_dir), "results": results}
    Path(args.out).write_text(json.dumps(payload, indent=1, default=str) + "\n")
    print(f"wrote {args.out}\n")
    print(table(results))


if __name__ == "__main__":
    main()
