"""Charts benchmark: a 1,000,000-event ``huntbook.vis.timeline`` built, saved and rendered in Chromium.

Input: seeded synthetic events (7 days, 20 hosts, a process name and a command line per event). For
each scenario: the Python build time of the chart (``vis.timeline``), the time to write the
self-contained HTML (``vis.save``), the file size, and the time the page takes in real headless
Chromium (Debian's, through ``huntbook.testing.browser``) from navigation start until every Bokeh
document reports idle (rendered), each in a fresh browser, median of ``--repeat`` runs. The page is
also checked: no JS error, no network request, and the events its document represents add up to the
input (no silent truncation).

Scenarios: 1,000,000 events (above ``max_points``: aggregated into round time bins per host) and
200,000 events (``max_points`` itself: every event drawn as a point), the most a timeline draws
one by one by default.

Usage::

    python benchmarks/bench_vis.py                  # both scenarios, 3 runs each
    python benchmarks/bench_vis.py --events 1000000 --repeat 5

Writes ``benchmarks/results_vis.json`` (``--out`` to change) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
KIT = Path(__file__).resolve().parents[2] / "shared" / "bench"
sys.path.insert(0, str(KIT))

from huntbook import vis  # noqa: E402
from huntbook.testing.browser import BOKEH_IDLE, Browser, browser_skip_reason  # noqa: E402

REPRESENTED = """
let total = 0;
for (const m of Bokeh.documents[0].all_models) {
  if (m.name === "huntbook.events") total += m.data.x.length;
  if (m.name === "huntbook.bins") total += m.data.count.reduce((a, b) => a + b, 0);
}
return [total, Bokeh.documents[0].roots()[0].tags[0].huntbook];
"""


def env() -> dict[str, Any]:
    try:
        from bench_common import env_info

        return dict(env_info(packages=("pandas", "numpy", "bokeh", "selenium")))
    except ImportError:
        import platform

        return {"python": sys.version.split()[0], "platform": platform.platform()}


def events(n: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-10-01", tz="UTC")
    hosts = np.array([f"WS{i:02d}.corp.local" for i in range(20)])
    names = np.array(["svchost.exe", "powershell.exe", "cmd.exe", "chrome.exe", "conhost.exe"])
    frame = pd.DataFrame(
        {
            "TimeGenerated": start + pd.to_timedelta(np.sort(rng.uniform(0, 7 * 86_400, n)), unit="s"),
            "DvcHostname": hosts[rng.integers(0, len(hosts), n)],
            "TargetProcessName": names[rng.integers(0, len(names), n)],
        }
    )
    frame["TargetProcessCommandLine"] = (
        frame["TargetProcessName"] + " /c task " + pd.Series(rng.integers(0, 1000, n)).astype(str)
    )
    return frame


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def scenario(frame: pd.DataFrame, repeats: int, folder: Path) -> dict[str, Any]:
    hover = ["TargetProcessName", "TargetProcessCommandLine"]
    vis.timeline(frame.head(1000), group_by="DvcHostname", hover=hover)  # warm-up (imports)
    build, write, page = [], [], []
    path = folder / f"timeline_{len(frame)}.html"
    for _ in range(repeats):
        t0 = time.perf_counter()
        chart = vis.timeline(frame, group_by="DvcHostname", hover=hover)
        t1 = time.perf_counter()
        vis.save(chart, path)
        t2 = time.perf_counter()
        build.append(t1 - t0)
        write.append(t2 - t1)
    info = chart.tags[0]["huntbook"]
    checks: dict[str, Any] = {}
    for _ in range(repeats):
        with Browser() as browser:
            opened = browser.open(path, timeout=120)
            idle_ms = opened.wait_for(BOKEH_IDLE, timeout=120)
            page.append(idle_ms / 1000.0)
            represented, tags = opened.evaluate(REPRESENTED)
            checks = {
                "errors": opened.errors(),
                "network_requests": opened.network_requests(),
                "events_represented_in_page": int(represented),
                "events_without_time": tags["without_time"],
            }
    assert checks["errors"] == [] and checks["network_requests"] == [], checks
    assert checks["events_represented_in_page"] + checks["events_without_time"] == len(frame), checks
    return {
        "events": len(frame),
        "mode": info["mode"],
        "bins": info.get("bins"),
        "bin_ms": info.get("bin_ms"),
        "python_build_s": median(build),
        "python_save_s": median(write),
        "html_bytes": path.stat().st_size,
        "browser_render_s": median(page),
        "browser_render_runs_s": [round(v, 3) for v in page],
        **checks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, nargs="*", default=[1_000_000, 200_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=str(HERE / "results_vis.json"))
    args = parser.parse_args()
    reason = browser_skip_reason()
    if reason:
        raise SystemExit(f"cannot run: {reason}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.events:
            results.append(scenario(events(n), args.repeat, Path(tmp)))
    out = {
        "tool": "huntbook",
        "workload": "vis.timeline",
        "env": env(),
        "load_average_1_5_15": [round(v, 2) for v in os.getloadavg()],  # other work sharing the 2 cores
        "repeats": args.repeat,
        "results": results,
    }
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print("| events | mode | build s | save s | HTML MB | render in Chromium s (median) | represented |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        mode = r["mode"] + (
            f" ({r['bins']} bins of {r['bin_ms'] / 60000:g} min per host)" if r["bins"] else ""
        )
        print(
            f"| {r['events']:,} | {mode} | {r['python_build_s']} | {r['python_save_s']} | "
            f"{r['html_bytes'] / 1e6:.1f} | {r['browser_render_s']} | {r['events_represented_in_page']:,} |"
        )


if __name__ == "__main__":
    main()
