"""hb.decode benchmark: the b64_50k workload side by side with MSTICPy's ``base64unpack.unpack_df``.

* b64_50k: ``gen_workloads.gen_b64_cmdlines(50_000)`` in a DataFrame column ``CommandLine``;
  ``decode.unpack(df, column="CommandLine")`` timed with ``bench_common.time_call`` (3 repeats,
  warm-up on 500 rows), scored with ``scoring.score_b64`` (per row: the decoded texts, outermost first).
* bombs: a 1 GB gzip bomb (multi-member), a 100 MB single-stream zlib bomb, a nested zip (6 levels of
  10 members around 20 MB of zeros) and a zip of 5,000 members, each in base64 on a command line:
  time, peak RSS and the status reported.

Usage: ``python benchmarks/bench_decode.py [--rows 50000] [--repeat 3] [--msticpy DIR] [--no-bombs]``.
Writes ``results_decode.json`` next to this file and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import io
import json
import os
import sys
import time
import zipfile
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
KIT = Path(__file__).resolve().parents[2] / "shared" / "bench"
sys.path.insert(0, str(KIT))
sys.path.insert(0, str(HERE.parent / "src"))

import bench_common  # noqa: E402
import gen_workloads as gw  # noqa: E402
import pandas as pd  # noqa: E402
import scoring  # noqa: E402

from huntbook import decode  # noqa: E402


def msticpy_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    local = KIT / "results_local"
    return local if local.is_dir() else KIT / "results"


def prediction(out: pd.DataFrame) -> dict[int, list[str]]:
    """{row: [decoded texts, outermost first]} -- the layers that decoded to text."""
    pred: dict[int, list[str]] = {}
    for row, text in zip(out["row"].tolist(), out["text"].tolist(), strict=True):
        if isinstance(text, str):
            pred.setdefault(int(row), []).append(text)
    return pred


def bench_b64(rows: int, repeat: int, ref_dir: Path) -> dict:
    data = gw.gen_b64_cmdlines(rows)
    frame = pd.DataFrame({"CommandLine": data["rows"]})
    ref_path = ref_dir / "b64.json"
    ref = json.loads(ref_path.read_text()) if ref_path.exists() else None
    fingerprint = gw.fingerprint(data)
    same_input = bool(ref and ref["input"]["sha256"] == fingerprint)
    if rows == 50_000 and not same_input:
        raise SystemExit(f"input fingerprint {fingerprint} differs from {ref_path}")
    timing = bench_common.time_call(
        lambda: decode.unpack(frame, column="CommandLine"),
        repeats=repeat,
        warmup=lambda: decode.unpack(frame.head(500), column="CommandLine"),
    )
    out = timing.pop("_result", None)
    if out is None:
        out = decode.unpack(frame, column="CommandLine")
    cpu = time.process_time()
    decode.unpack(frame, column="CommandLine")
    cpu = time.process_time() - cpu  # CPU seconds of one more call: a check on a busy machine
    quality = scoring.score_b64(prediction(out), data["truth"])
    result = {
        "workload": "b64_50k" if rows == 50_000 else f"b64_{rows}",
        "call": "decode.unpack(df, column='CommandLine')",
        "input": {**data["meta"], "sha256": fingerprint, "same_as_reference": same_input},
        "timing": bench_common.strip_result(timing),
        "rows_per_s": round(rows / timing["median_s"], 1),
        "cpu_s_one_call": round(cpu, 3),
        "load_average": os.getloadavg(),
        "output_rows": len(out),
        "statuses": out["status"].value_counts().to_dict(),
        "quality": quality,
    }
    if ref and same_input:
        runs = ref["runs"]
        result["msticpy"] = {
            mode: {
                "median_s": run["timing"]["median_s"],
                "peak_mb": run["timing"]["peak_mb"],
                "quality": run["quality"]["summary"],
            }
            for mode, run in runs.items()
        }
        result["ratio"] = {
            mode: round(run["timing"]["median_s"] / timing["median_s"], 1) for mode, run in runs.items()
        }
    return result


def _zip(members: list[tuple[str, bytes]]) -> bytes:
    bio = io.BytesIO()
    with zipfile.ZipFile(bio, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return bio.getvalue()


def bombs() -> dict[str, bytes]:
    member = gzip.compress(bytes(1 << 20), 9)
    nested = _zip([("zeros.bin", bytes(20 << 20))])
    for level in range(6):
        nested = _zip([(f"l{level}_{k}.zip", nested) for k in range(10)])
    return {
        "gzip_1GB_zeros": member * 1024,
        "zlib_100MB_zeros": zlib.compress(bytes(100 << 20), 9),
        "nested_zip_6x10": nested,
        "zip_5000_members": _zip([(f"f{k}.txt", b"member %d" % k) for k in range(5000)]),
    }


def bench_bombs() -> list[dict]:
    results = []
    for name, blob in bombs().items():
        line = "powershell -c \"[Convert]::FromBase64String('" + base64.b64encode(blob).decode() + "')\""
        frame = pd.DataFrame({"CommandLine": [line]})
        timing = bench_common.time_call(lambda f=frame: decode.unpack(f, column="CommandLine"), repeats=1)
        out = timing.pop("_result", None)
        if out is None:
            out = decode.unpack(frame, column="CommandLine")
        results.append(
            {
                "bomb": name,
                "compressed_bytes": len(blob),
                "seconds": timing["median_s"],
                "peak_mb": timing["peak_mb"],
                "rss_before_mb": timing["rss_before_mb"],
                "layers": len(out),
                "decoded_bytes": int(out["size"].sum()),
                "statuses": out["status"].value_counts().to_dict(),
            }
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", type=int, default=50_000, help="rows of the b64 workload (50000 = reference)"
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--msticpy",
        help="folder with MSTICPy's result JSON (default: the kit's results_local, else its results)",
    )
    parser.add_argument("--no-bombs", action="store_true", help="skip the decompression-bomb runs")
    parser.add_argument("--out", default=str(HERE / "results_decode.json"))
    args = parser.parse_args()

    ref_dir = msticpy_dir(args.msticpy)
    b64 = bench_b64(args.rows, args.repeat, ref_dir)
    result = {
        "env": bench_common.env_info(packages=("pandas", "numpy", "pyarrow")),
        "msticpy_results": str(ref_dir),
        "b64": b64,
    }
    if not args.no_bombs:
        result["bombs"] = bench_bombs()
    Path(args.out).write_text(json.dumps(result, indent=1, default=str))

    q = b64["quality"]["summary"]
    ours = (
        f"layers {q['layers_recovered_strict']:,}/{q['layers_truth_total']:,}, "
        f"false-decode rows {q['false_decode_rows']:,}/{q['non_encoded_rows']:,}"
    )
    print(
        "| workload | MSTICPy median s | huntbook median s | ratio | quality MSTICPy | quality huntbook | peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|")
    for mode, ref in b64.get("msticpy", {"(no reference)": None}).items():
        if ref is None:
            print(
                f"| {b64['workload']} | - | {b64['timing']['median_s']:.3f} | - | - | {ours} | {b64['timing']['peak_mb']} |"
            )
            continue
        rq = ref["quality"]
        theirs = (
            f"layers {rq['layers_recovered_strict']:,}/{rq['layers_truth_total']:,}, "
            f"false-decode rows {rq['false_decode_rows']:,}/{rq['non_encoded_rows']:,}"
        )
        print(
            f"| {b64['workload']} ({mode}) | {ref['median_s']:.2f} | {b64['timing']['median_s']:.3f} | "
            f"{b64['ratio'][mode]}x | {theirs} | {ours} | {ref['peak_mb']} / {b64['timing']['peak_mb']} |"
        )
    for bomb in result.get("bombs", []):
        print(
            f"| bomb {bomb['bomb']} ({bomb['compressed_bytes']:,} B) | - | {bomb['seconds']:.3f} | - | - | "
            f"{bomb['layers']} layers, {bomb['decoded_bytes']:,} B, {bomb['statuses']} | {bomb['peak_mb']} |"
        )


if __name__ == "__main__":
    main()
