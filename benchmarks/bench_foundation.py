"""Foundation benchmarks: ingest throughput and catalogue-hunt latency on 10M process events.

Side by side in one run:

* EVTX ingest (records/s, one DuckDB thread and one parser thread, i.e. per core) over every
  EVTX file in ``../shared/data``; JSON-lines ingest (MB/s) over a generated Mordor-style file.
* 10M synthetic 4688 process events (Sentinel ``SecurityEvent`` columns, seeded): ingested into
  a LocalStore, then each catalogue hunt timed (median of 5, after a warm-up) in a fresh process
  whose peak RSS is recorded -- against "the MSTICPy way" (its LocalData driver): the same events
  held in memory as one pandas DataFrame and filtered with pandas, also in a fresh process.

Usage: ``python benchmarks/bench_foundation.py [--events 10000000] [--out benchmarks/_work]``.
Writes ``results_foundation.json`` next to this file and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data"
HOSTS = 50
USERS = 400

# (catalogue query, parameters, equivalent pandas filter on SecurityEvent columns)
HUNTS = [
    ("process.host_processes", {"host_name": "WS0017"}, "host"),
    ("process.account_processes", {"account_name": "user0123"}, "account"),
    ("process.encoded_commands", {}, "encoded"),
    ("process.command_line_search", {"pattern": "mimikatz"}, "search"),
    ("process.logon_session_processes", {"logon_session_id": "0x1a2b3c"}, "logon"),
    ("process.process_children", {"process_name": "winword.exe"}, "children"),
]


def generate(path: Path, events: int) -> None:
    """Seeded synthetic 4688 events as Parquet, generated in DuckDB (a few seconds per million)."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        f"""
        COPY (
        WITH r AS (SELECT i, CAST(hash(i) % 2147483647 AS BIGINT) AS h, CAST(hash(i * 7919 + 1) % 2147483647 AS BIGINT) AS g FROM range({events}) t(i))
        SELECT
          strftime(TIMESTAMP '2026-10-01' + to_microseconds(CAST(i AS BIGINT) * (30 * 86400000000 // {events})),
                   '%Y-%m-%dT%H:%M:%S.%fZ') AS TimeGenerated,
          'WS' || lpad(CAST(h % {HOSTS} AS VARCHAR), 4, '0') || '.corp.local' AS Computer,
          4688 AS EventID,
          'Security' AS Channel,
          'Microsoft-Windows-Security-Auditing' AS EventSourceName,
          'C:\\Windows\\System32\\' || ['cmd.exe','powershell.exe','svchost.exe','conhost.exe','rundll32.exe',
              'notepad.exe','chrome.exe','winword.exe','net.exe','whoami.exe'][1 + (g % 10)] AS NewProcessName,
          printf('0x%x', 1000 + (h % 60000)) AS NewProcessId,
          printf('0x%x', 1000 + (g % 60000)) AS ProcessId,
          CASE WHEN h % 1000 = 3 THEN 'C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE'
               ELSE 'C:\\Windows\\' || ['explorer.exe', 'System32\\services.exe', 'System32\\cmd.exe',
                                        'System32\\svchost.exe'][1 + (h % 4)] END AS ParentProcessName,
          CASE WHEN g % 100000 = 7 THEN 'powershell.exe -nop -w hidden -enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoA'
               WHEN g % 100000 = 11 THEN 'C:\\Temp\\mimikatz.exe privilege::debug sekurlsa::logonpasswords'
               ELSE 'C:\\Windows\\System32\\cmd.exe /c echo task ' || CAST(h % 100000 AS VARCHAR) END
            AS CommandLine,
          'user' || lpad(CAST(g % {USERS} AS VARCHAR), 4, '0') AS SubjectUserName,
          'CORP' AS SubjectDomainName,
          'S-1-5-21-1000-' || CAST(g % {USERS} AS VARCHAR) AS SubjectUserSid,
          printf('0x%x', 1048576 + (g % 1000000)) AS SubjectLogonId,
          '0x0' AS TargetLogonId
        FROM r) TO '{path}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 1000000)
        """
    )


def generate_jsonl(path: Path, source: Path, megabytes: int) -> None:
    """A Mordor-style JSON-lines file of about ``megabytes`` MB, from the first rows of ``source``."""
    import duckdb

    con = duckdb.connect()
    rows = con.sql(f"SELECT to_json(t) FROM read_parquet('{source}') t LIMIT 1000000").fetchall()
    with path.open("w", encoding="utf-8") as out:
        written = 0
        for (line,) in rows:
            out.write(line + "\n")
            written += len(line) + 1
            if written >= megabytes * 1_000_000:
                break


PROBE_HUNTBOOK = r"""
import json, resource, statistics, sys, time
import huntbook as hb
store = hb.LocalStore(sys.argv[1], threads=int(sys.argv[3]))
qp = hb.QueryProvider("local", store=store)
hunts = json.loads(sys.argv[2])
out = {}
for name, params in hunts:
    kwargs = dict(params, start="2026-09-01", end="2026-11-01")
    qp.run(name, **kwargs)
    times, rows = [], 0
    for _ in range(5):
        t = time.perf_counter(); df = qp.run(name, **kwargs); times.append(time.perf_counter() - t); rows = len(df)
    out[name] = {"median_s": statistics.median(times), "rows": rows}
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""

PROBE_PANDAS = r"""
import json, resource, statistics, sys, time
import pandas as pd
t = time.perf_counter()
df = pd.read_parquet(sys.argv[1])
df["TimeGenerated"] = pd.to_datetime(df["TimeGenerated"], utc=True)
load = time.perf_counter() - t
base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
start, end = pd.Timestamp("2026-09-01", tz="UTC"), pd.Timestamp("2026-11-01", tz="UTC")
def in_range(d): return d[(d.TimeGenerated >= start) & (d.TimeGenerated < end)]
hunts = {
  "host": lambda: in_range(df[df.Computer.str.lower().str.split(".").str[0] == "ws0017"]),
  "account": lambda: in_range(df[df.SubjectUserName.str.lower() == "user0123"]),
  "encoded": lambda: in_range(df[df.CommandLine.str.contains(
      r"(?i)(?:^|\s)[-/]e(?:n(?:c(?:o(?:d(?:e(?:d(?:c(?:o(?:m(?:m(?:a(?:n(?:d)?)?)?)?)?)?)?)?)?)?)?)?)?\s|frombase64string",
      regex=True)]),
  "search": lambda: in_range(df[df.CommandLine.str.lower().str.contains("mimikatz", regex=False)]),
  "logon": lambda: in_range(df[(df.SubjectLogonId.str.lower() == "0x1a2b3c") | (df.TargetLogonId.str.lower() == "0x1a2b3c")]),
  "children": lambda: in_range(df[df.ParentProcessName.str.lower().str.endswith("\\winword.exe")]),
}
out = {"load_s": load, "frame_rss_mb": base_rss}
for key, fn in hunts.items():
    fn()
    times, rows = [], 0
    for _ in range(5):
        t = time.perf_counter(); r = fn(); times.append(time.perf_counter() - t); rows = len(r)
    out[key] = {"median_s": statistics.median(times), "rows": rows}
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def _run(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return json.loads(next(line for line in reversed(out.stdout.splitlines()) if line.startswith("{")))


def bench_evtx(work: Path) -> dict:
    import evtx

    import huntbook as hb

    files = sorted(glob.glob(str(SHARED / "**" / "*.evtx"), recursive=True))
    files += [str(SHARED / "evtx-to-mitre-attack" / "evtx-to-mitre-attack-dev.zip")]
    t = time.perf_counter()
    parsed = 0
    for f in files[:-1]:
        parsed += sum(1 for _ in evtx.PyEvtxParser(f, number_of_threads=1).records_json())
    parse_s = time.perf_counter() - t
    store_dir = work / "evtx-store"
    shutil.rmtree(store_dir, ignore_errors=True)
    store = hb.LocalStore(store_dir, threads=1)
    t = time.perf_counter()
    summary = store.ingest(files, progress=False)
    seconds = time.perf_counter() - t
    records = int(summary["records"].sum())
    return {
        "files": len(summary),
        "records": records,
        "seconds": seconds,
        "records_per_s": records / seconds,
        "parser_only_records_per_s": parsed / parse_s,
    }


def large_evtx(path: Path, repeats: int) -> None:
    """One large EVTX file made of the real 64 KiB chunks of every shared EVTX file, repeated.

    Chunks are self-contained (own string and template tables), so the result is a valid EVTX
    file with real records; it measures per-record throughput without the per-file overhead
    that dominates the shared samples (25 records per file on average).
    """
    import struct
    import zlib

    files = sorted(glob.glob(str(SHARED / "**" / "*.evtx"), recursive=True))
    chunks = []
    for f in files:
        data = Path(f).read_bytes()
        chunks += [
            data[o : o + 65536]
            for o in range(4096, len(data) - 65535, 65536)
            if data[o : o + 8] == b"ElfChnk\0"
        ]
    header = bytearray(Path(files[0]).read_bytes()[:4096])
    count = len(chunks) * repeats
    struct.pack_into("<QQ", header, 8, 0, count - 1)  # first and last chunk numbers
    struct.pack_into("<H", header, 42, count & 0xFFFF)  # number of chunks
    struct.pack_into("<I", header, 120, 0)  # flags: clean
    struct.pack_into("<I", header, 124, zlib.crc32(bytes(header[:120])))
    with path.open("wb") as out:
        out.write(header)
        for _ in range(repeats):
            for chunk in chunks:
                out.write(chunk)


def bench_evtx_large(work: Path) -> dict:
    import evtx

    import huntbook as hb

    path = work / "large.evtx"
    if not path.exists():
        large_evtx(path, 25)
    t = time.perf_counter()
    parsed = sum(1 for _ in evtx.PyEvtxParser(str(path), number_of_threads=1).records_json())
    parse_s = time.perf_counter() - t
    store_dir = work / "evtx-large-store"
    runs = []
    for _ in range(3):  # a new store each time; the median is reported
        shutil.rmtree(store_dir, ignore_errors=True)
        t = time.perf_counter()
        summary = hb.LocalStore(store_dir, threads=1).ingest(path, progress=False)
        runs.append(time.perf_counter() - t)
    seconds = statistics.median(runs)
    records = int(summary["records"].sum())
    return {
        "megabytes": path.stat().st_size / 1e6,
        "records": records,
        "ingested": int(summary["ingested"].sum()),
        "seconds": seconds,
        "runs_s": [round(r, 3) for r in runs],
        "records_per_s": records / seconds,
        "parser_only_records_per_s": parsed / parse_s,
    }


def bench_json(work: Path, parquet: Path) -> dict:
    import huntbook as hb

    path = work / "mordor_like.json"
    if not path.exists():
        generate_jsonl(path, parquet, 200)
    store_dir = work / "json-store"
    shutil.rmtree(store_dir, ignore_errors=True)
    store = hb.LocalStore(store_dir, threads=1)
    t = time.perf_counter()
    summary = store.ingest(path, progress=False)
    seconds = time.perf_counter() - t
    mb = path.stat().st_size / 1e6
    return {
        "megabytes": mb,
        "records": int(summary["records"].sum()),
        "seconds": seconds,
        "mb_per_s": mb / seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--out", type=Path, default=HERE / "_work")
    parser.add_argument("--threads", type=int, default=2, help="DuckDB threads for the hunts")
    parser.add_argument(
        "--only-evtx",
        action="store_true",
        help="re-measure only the EVTX ingest figures (kept with the others)",
    )
    args = parser.parse_args()
    work: Path = args.out
    work.mkdir(parents=True, exist_ok=True)
    import huntbook as hb

    if args.only_evtx:
        out = HERE / "results_foundation.json"
        results = json.loads(out.read_text())
        results["evtx"] = bench_evtx(work)
        results["evtx_large"] = bench_evtx_large(work)
        out.write_text(json.dumps(results, indent=1))
        print(json.dumps({k: results[k] for k in ("evtx", "evtx_large")}, indent=1))
        return

    results: dict = {
        "env": {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()},
        "events": args.events,
    }
    parquet = work / f"proc_{args.events}.parquet"
    if not parquet.exists():
        t = time.perf_counter()
        generate(parquet, args.events)
        results["generate_s"] = time.perf_counter() - t
    if SHARED.is_dir():
        results["evtx"] = bench_evtx(work)
        results["evtx_large"] = bench_evtx_large(work)
    results["json"] = bench_json(work, parquet)

    store_dir = work / f"store_{args.events}"
    previous = HERE / "results_foundation.json"
    if (store_dir / "catalog.json").exists() and previous.exists():  # reuse: keep that run's ingest figures
        results["ingest_10m"] = json.loads(previous.read_text()).get("ingest_10m")
    if not (store_dir / "catalog.json").exists():
        shutil.rmtree(store_dir, ignore_errors=True)
        t = time.perf_counter()
        summary = hb.LocalStore(store_dir).ingest(parquet, progress=True)
        results["ingest_10m"] = {"seconds": time.perf_counter() - t, "records": int(summary["records"].sum())}
        results["ingest_10m"]["records_per_s"] = (
            results["ingest_10m"]["records"] / results["ingest_10m"]["seconds"]
        )
    hunts = [[name, params] for name, params, _ in HUNTS]
    results["huntbook"] = _run(PROBE_HUNTBOOK, str(store_dir), json.dumps(hunts), str(args.threads))
    results["pandas"] = _run(PROBE_PANDAS, str(parquet))
    (HERE / "results_foundation.json").write_text(json.dumps(results, indent=1))

    print(f"| hunt ({args.events:,} events) | huntbook LocalStore s | pandas in memory s | ratio | rows |")
    print("|---|---|---|---|---|")
    for name, _, key in HUNTS:
        h, p = results["huntbook"][name], results["pandas"][key]
        ratio = p["median_s"] / h["median_s"]
        print(
            f"| {name} | {h['median_s']:.3f} | {p['median_s']:.3f} | {ratio:.1f}x | {h['rows']} / {p['rows']} |"
        )
    print(
        f"huntbook peak RSS {results['huntbook']['peak_rss_mb']:.0f} MB; pandas peak RSS "
        f"{results['pandas']['peak_rss_mb']:.0f} MB (frame load {results['pandas']['load_s']:.1f} s)"
    )
    print(json.dumps({k: v for k, v in results.items() if k not in ("huntbook", "pandas")}, indent=1))


if __name__ == "__main__":
    main()
