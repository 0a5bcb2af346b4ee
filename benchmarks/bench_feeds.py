"""Local threat-intel feeds benchmark: 100k IoCs against a 100k-entry feed (``huntbook.ti.feeds``).

Seeded synthetic input: a 100,000-entry feed (IPv4, domains, URLs, SHA-256 hashes and 100 CIDR
blocks) written as CSV, as a STIX 2.1 bundle and as a MISP event export, and 100,000 distinct IoCs of
which about 10% hit (exactly, inside a CIDR block, or as a sub-domain of a listed domain). Timed,
median of 3 after a warm-up:

* ``load``: reading and indexing the feed (a fresh provider's first look-up), per format;
* ``lookup_many``: the 100k look-ups on a loaded provider;
* ``first_lookup``: load + look-ups, what one ``hb.ti.lookup`` call on a fresh provider costs;
* ``hb.ti.lookup``: the public call end to end (classifying the values, building the frame);
  ``hb_ti_classify_only`` is its value classification alone (``hb.ti.classify`` per value, once).

Wall-clock and process CPU time (``cpu_median_s``) are both reported: on a shared machine the CPU
time is the steadier figure.

Usage: ``python benchmarks/bench_feeds.py [--entries 100000] [--iocs 100000] [--repeat 3]``.
Writes ``results_feeds.json`` next to this file and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
KIT = Path(__file__).resolve().parents[2] / "shared" / "bench"
sys.path.insert(0, str(KIT))

from bench_common import env_info, strip_result, time_call  # noqa: E402

import huntbook as hb  # noqa: E402
from huntbook.ti.feeds import LocalFeeds  # noqa: E402

SEED = 20240611


def make_feed(n: int, rng: random.Random) -> list[tuple[str, str]]:
    """``n`` distinct (type, value) feed entries: 40% IPv4, 30% domains, 20% SHA-256, 10% URLs, 100 CIDRs."""
    entries: dict[str, str] = {}
    while len(entries) < n - 100:
        roll = rng.random()
        if roll < 0.4:
            entries[str(ipaddress.IPv4Address(rng.randrange(1 << 24, 99 << 24)))] = "ip"
        elif roll < 0.7:
            entries[f"{rng.getrandbits(40):x}.{rng.choice(['com', 'net', 'example', 'ru', 'top'])}"] = (
                "domain"
            )
        elif roll < 0.9:
            entries[hashlib.sha256(rng.getrandbits(64).to_bytes(8, "big")).hexdigest()] = "sha256"
        else:
            entries[f"http://{rng.getrandbits(32):x}.example/{rng.getrandbits(24):x}.php"] = "url"
    for i in range(100):
        entries[f"100.{64 + i // 50}.{(i % 50) * 4}.0/22"] = "cidr"
    return [(kind, value) for value, kind in entries.items()]


def make_iocs(feed: list[tuple[str, str]], n: int, rng: random.Random) -> tuple[list[str], int]:
    """``n`` distinct IoC values, ~10% of them hits; returns them and the number of expected hits."""
    values: dict[str, None] = {}
    hits = 0
    exact = [value for kind, value in feed if kind != "cidr"]
    domains = [value for kind, value in feed if kind == "domain"]
    for value in rng.sample(exact, n // 14):
        values[value] = None
    for domain in rng.sample(domains, n // 50):
        values[f"www.{domain}"] = None
    for i in range(n // 100):  # inside the CIDR blocks
        values[f"100.{64 + (i % 2)}.{rng.randrange(0, 200)}.{rng.randrange(1, 255)}"] = None
    hits = len(values)
    while len(values) < n:
        roll = rng.random()
        if roll < 0.4:
            values[str(ipaddress.IPv4Address(rng.randrange(101 << 24, 199 << 24)))] = None
        elif roll < 0.7:
            values[f"x{rng.getrandbits(40):x}.org"] = None
        elif roll < 0.9:
            values[hashlib.sha256(b"miss" + rng.getrandbits(64).to_bytes(8, "big")).hexdigest()] = None
        else:
            values[f"https://{rng.getrandbits(32):x}.org/a"] = None
    return list(values), hits


def write_formats(feed: list[tuple[str, str]], folder: Path) -> dict[str, Path]:
    csv_path = folder / "feed.csv"
    with csv_path.open("w", encoding="utf-8") as out:
        out.write("indicator,type,severity,description,source\n")
        for i, (kind, value) in enumerate(feed):
            out.write(f"{value},{kind},{['high', 'medium', 'low'][i % 3]},campaign {i % 97},bench\n")
    stix_types = {"ip": "ipv4-addr", "cidr": "ipv4-addr", "domain": "domain-name", "url": "url"}
    objects = []
    for i, (kind, value) in enumerate(feed):
        path = "file:hashes.'SHA-256'" if kind == "sha256" else f"{stix_types[kind]}:value"
        objects.append(
            {
                "type": "indicator",
                "spec_version": "2.1",
                "id": f"indicator--{i:08d}-0000-4000-8000-000000000000",
                "name": f"campaign {i % 97}",
                "pattern": f"[{path} = '{value}']",
                "pattern_type": "stix",
                "valid_from": "2024-01-01T00:00:00Z",
            }
        )
    stix_path = folder / "bundle.json"
    stix_path.write_text(json.dumps({"type": "bundle", "id": "bundle--1", "objects": objects}))
    misp_types = {"ip": "ip-dst", "cidr": "ip-dst", "domain": "domain", "url": "url", "sha256": "sha256"}
    attributes = [
        {
            "type": misp_types[kind],
            "value": value,
            "to_ids": True,
            "uuid": f"{i:08d}-0000-4000-8000-000000000000",
        }
        for i, (kind, value) in enumerate(feed)
    ]
    event = {
        "Event": {"info": "bench", "uuid": "5f0c0000-0000-4000-8000-000000000000", "threat_level_id": "1"}
    }
    event["Event"]["Attribute"] = attributes
    misp_path = folder / "misp.json"
    misp_path.write_text(json.dumps(event))
    return {"csv": csv_path, "stix": stix_path, "misp": misp_path}


def timed(fn: Callable[[], Any], repeats: int) -> dict[str, Any]:
    """``time_call`` figures plus the median process CPU time of the calls."""
    cpu: list[float] = []

    def run() -> Any:
        start = time.process_time()
        out = fn()
        cpu.append(time.process_time() - start)
        return out

    timing = time_call(run, repeats=repeats)
    timing["cpu_times_s"] = [round(t, 4) for t in cpu]
    timing["cpu_median_s"] = round(statistics.median(cpu), 4)
    return timing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--iocs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(SEED)
    feed = make_feed(args.entries, rng)
    iocs, expected_hits = make_iocs(feed, args.iocs, rng)
    items = [(value, hb.ti.classify(value) or "") for value in iocs]
    results: dict[str, object] = {
        "tool": "huntbook",
        "workload": f"feeds_{args.iocs // 1000}k_vs_{args.entries // 1000}k",
        "input": {"feed_entries": len(feed), "iocs": len(iocs), "expected_hits": expected_hits, "seed": SEED},
        "env": env_info(packages=("pandas",)) | {"loadavg_start": os.getloadavg()},
        "timings": {},
    }
    timings: dict[str, dict[str, object]] = results["timings"]  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_formats(feed, Path(tmp))
        results["input"]["bytes"] = {name: path.stat().st_size for name, path in paths.items()}  # type: ignore[index]
        for name, path in paths.items():
            timing = timed(lambda path=path: LocalFeeds({"paths": [path]}).load(), args.repeat)
            timings[f"load_{name}"] = strip_result(timing)
        provider = LocalFeeds({"paths": [paths["csv"]]})
        provider.load()
        timing = timed(lambda: provider.lookup_many(items), args.repeat)
        answered = timing["_result"]
        hits = sum(result.status == "ok" for result in answered)
        timings["lookup_many"] = strip_result(timing) | {"hits": hits}
        timing = timed(lambda: LocalFeeds({"paths": [paths["csv"]]}).lookup_many(items), args.repeat)
        timings["first_lookup_csv"] = strip_result(timing)
        settings = {"local_feeds": {"paths": [str(paths["csv"])]}}
        timing = timed(
            lambda: hb.ti.lookup(iocs, providers=["local_feeds"], settings=settings, cache=False), args.repeat
        )
        frame = timing["_result"]
        timings["hb_ti_lookup_csv"] = strip_result(timing) | {
            "rows": len(frame),
            "hits": int((frame["status"] == "ok").sum()),
        }
        timings["hb_ti_classify_only"] = strip_result(timed(lambda: [hb.ti.classify(v) for v in iocs], 1))
    results["env"]["loadavg_end"] = os.getloadavg()  # type: ignore[index]
    results["correct"] = hits == expected_hits
    (HERE / "results_feeds.json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"{len(iocs):,} IoCs vs {len(feed):,} feed entries; {hits:,} hits (expected {expected_hits:,})\n")
    print("| step | wall median s | wall min s | CPU median s | peak - before, MB |")
    print("|---|---|---|---|---|")
    for name, figures in timings.items():
        print(
            f"| {name} | {figures['median_s']:.3f} | {figures['min_s']:.3f} | {figures['cpu_median_s']:.3f} "
            f"| {figures['peak_minus_before_mb']} |"
        )


if __name__ == "__main__":
    main()
