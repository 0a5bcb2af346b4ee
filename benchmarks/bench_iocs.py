"""IoC extraction benchmark: ``hb.iocs.extract`` vs MSTICPy's ``IoCExtract.extract_df`` on ``ioc_200k``.

Same seeded input as the MSTICPy reference run (``gen_workloads.gen_ioc_corpus(200_000)``, lines in a
``CommandLine`` column; fingerprint checked), same repeats (3), same scorer (``scoring.score_ioc``,
strict figures). Also measured: the ``windows_path``/``registry_key`` quality on the 20k-row slice of
MSTICPy's ``ioc_paths`` run, 1 MB adversarial strings (linear-time check), and ``watch`` with 5,000
literal indicators over the 200k lines (MSTICPy has no equivalent).

Usage: ``python benchmarks/bench_iocs.py [--lines 200000] [--repeat 3] [--msticpy DIR] [--quick]``.
Writes ``results_iocs.json`` next to this file and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
KIT = Path(__file__).resolve().parents[2] / "shared" / "bench"
sys.path.insert(0, str(KIT))

import gen_workloads as gw  # noqa: E402
import scoring  # noqa: E402
from bench_common import env_info, strip_result, time_call  # noqa: E402

TYPES_8 = list(scoring.IOC_TYPES_8)
_REF_KEYS = {"md5": "md5_hash", "sha1": "sha1_hash", "sha256": "sha256_hash"}


def msticpy_dir(arg: str | None) -> list[Path]:
    """Folders to read MSTICPy figures from, most preferred first."""
    if arg:
        return [Path(arg), KIT / "results"]
    local = KIT / "results_local"
    return [local, KIT / "results"] if local.is_dir() else [KIT / "results"]


def load_ref(dirs: list[Path], name: str) -> tuple[dict | None, str | None]:
    for d in dirs:
        path = d / name
        if path.is_file():
            return json.loads(path.read_text()), str(path)
    return None, None


def ref_quality(ref: dict | None, typ: str) -> dict | None:
    if not ref:
        return None
    strict = ref.get("quality", {}).get("strict", {})
    return strict.get(typ) or strict.get(_REF_KEYS.get(typ, typ))


def preds(out) -> list[tuple[int, str, str]]:
    return list(zip(out["row"].tolist(), out["ioc_type"].tolist(), out["value"].tolist(), strict=True))


def helper_cpu_s(iocs) -> float:
    """CPU seconds used so far by huntbook's IoC helper process (0 when there is none)."""
    helper = iocs._Helper._instance
    if helper is None or helper.proc.poll() is not None:
        return 0.0
    try:
        fields = Path(f"/proc/{helper.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def adversarial(size: int) -> dict[str, str]:
    """1 MB inputs that make backtracking regex engines (or careless RE2 patterns) blow up."""
    return {
        "digits_and_dots": ("1." * size)[:size],
        "digit_runs_and_dots": ("1234567890." * (size // 11 + 1))[:size],
        "a_dot_repeated": ("a." * size)[:size],
        "domain_like_no_tld": ("a.b-c." * size)[:size] + "x",
        "nested_brackets": "([{" * (size // 6) + "}])" * (size // 6),
        "defanged_dots": ("a[.]" * size)[:size],
        "backslashes": "\\" * size,
        "slashes": "/" * size,
        "drive_then_backslashes": "C:" + "\\" * size,
        "path_with_spaces": "C:\\" + ("a b " * size)[:size],
        "hex_and_colons": ("a:" * size)[:size],
        "colons": ":" * size,
        "email_local_no_at": ("x.com%" * size)[:size],
        "long_url": "http://a.com/" + "a" * size,
        "many_ips": ("1.1.1.1," * size)[:size],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--msticpy", default=None, help="folder with MSTICPy result JSON (ioc_df.json, ioc_paths.json)"
    )
    ap.add_argument("--indicators", type=int, default=5_000)
    ap.add_argument("--adversarial-mb", type=float, default=1.0)
    ap.add_argument("--quick", action="store_true", help="20k lines, 1 repeat (smoke test)")
    ap.add_argument("--out", default=str(HERE / "results_iocs.json"))
    args = ap.parse_args()
    if args.quick:
        args.lines, args.repeat = 20_000, 1

    import pandas as pd

    import huntbook.iocs as iocs

    dirs = msticpy_dir(args.msticpy)
    ref_df, ref_df_path = load_ref(dirs, "ioc_df.json")
    ref_paths, ref_paths_path = load_ref(dirs, "ioc_paths.json")

    t0 = time.perf_counter()
    data = gw.gen_ioc_corpus(args.lines)
    gen_s = time.perf_counter() - t0
    fingerprint = gw.fingerprint(data)
    full = args.lines == 200_000
    if full and ref_df and fingerprint != ref_df["input"]["sha256"]:
        sys.exit(f"input fingerprint {fingerprint} differs from the reference {ref_df['input']['sha256']}")
    df = pd.DataFrame({"CommandLine": data["lines"]})
    truth, kinds = data["truth"], data["kinds"]
    warm = df.head(40_000)  # large enough to start the helper process before timing

    # a. extract on the whole frame (the acceptance workload); CPU seconds are recorded too, as wall
    # times on a shared machine say little (main process CPU + the helper process's CPU)
    cpu: list[tuple[float, float]] = []

    def run_extract():
        h0, t0 = helper_cpu_s(iocs), time.process_time()
        result = iocs.extract(df, columns=["CommandLine"])
        cpu.append((time.process_time() - t0, helper_cpu_s(iocs) - h0))
        return result

    timing = time_call(
        run_extract, repeats=args.repeat, warmup=lambda: iocs.extract(warm, columns=["CommandLine"])
    )
    cpu = cpu[-args.repeat :]
    out = timing["_result"]
    pred = preds(out)
    q8 = scoring.score_ioc(pred, truth, kinds, types=TYPES_8)
    q_all = scoring.score_ioc(pred, truth, kinds)
    n_slice = min(20_000, args.lines)
    slice_pred = [p for p in pred if p[0] < n_slice]
    q_paths = scoring.score_ioc(
        slice_pred, truth[:n_slice], kinds[:n_slice], types=["windows_path", "registry_key"]
    )

    # b. adversarial strings (linear time): one call each, median of 3
    size = int(args.adversarial_mb * (1 << 20))
    adv = {}
    for name, text in adversarial(size).items():
        t = time_call(lambda text=text: iocs.extract(text), repeats=3, keep_last=True)
        adv[name] = {
            "bytes": len(text),
            "median_s": t["median_s"],
            "max_s": t["max_s"],
            "items": len(t["_result"]),
        }

    # c. watch list: 5,000 indicators (half present in the corpus, half absent) over the lines
    rng = random.Random(7)
    present = sorted({v for t in truth for typ in ("dns", "ipv4", "sha256_hash") for v in t.get(typ, [])})
    chosen = rng.sample(present, min(args.indicators // 2, len(present)))
    absent = [f"absent{i}.example-{i % 97}.net" for i in range(args.indicators - len(chosen))]
    indicators = chosen + absent
    w_timing = time_call(
        lambda: iocs.watch(df, indicators, columns=["CommandLine"]),
        repeats=args.repeat,
        warmup=lambda: iocs.watch(warm, indicators, columns=["CommandLine"]),
    )
    hits = w_timing["_result"]
    chosen_set = set(chosen)
    expected_rows = {
        (i, v)
        for i, t in enumerate(truth)
        for typ in ("dns", "ipv4", "sha256_hash")
        for v in t.get(typ, [])
        if v in chosen_set
    }
    got_rows = set(zip(hits["row"].tolist(), hits["indicator"].tolist(), strict=True))
    watch_recall = len(expected_rows & got_rows) / len(expected_rows) if expected_rows else None

    ms_median = ref_df["timing"]["median_s"] if ref_df else None
    hb_median = timing["median_s"]
    result = {
        "tool": "huntbook",
        "workload": "ioc_200k" if full else f"ioc_{args.lines}",
        "input": {
            "n_lines": args.lines,
            "bytes": data["meta"]["bytes"],
            "sha256": fingerprint,
            "matches_reference": bool(ref_df) and fingerprint == ref_df["input"]["sha256"],
            "gen_s": round(gen_s, 2),
        },
        "env": env_info(packages=("pandas", "numpy", "duckdb", "google-re2", "tldextract", "pyahocorasick")),
        "msticpy_reference": {"ioc_df": ref_df_path, "ioc_paths": ref_paths_path},
        "extract": {
            "call": "hb.iocs.extract(df, columns=['CommandLine'])",
            "timing": strip_result(timing),
            "output_rows": len(out),
            "output_by_type": out["ioc_type"].value_counts().to_dict(),
            "throughput": {
                "MB_per_s": round(data["meta"]["bytes"] / 1e6 / hb_median, 2),
                "lines_per_s": round(args.lines / hb_median),
            },
            "cpu_s": {
                "main_process_median": round(sorted(c[0] for c in cpu)[len(cpu) // 2], 3),
                "helper_process_median": round(sorted(c[1] for c in cpu)[len(cpu) // 2], 3),
                "load_average_1min": round(os.getloadavg()[0], 2),
            },
            "msticpy_median_s": ms_median,
            "ratio_msticpy_over_huntbook": round(ms_median / hb_median, 1) if ms_median and full else None,
            "quality_8_types": {"strict": q8["strict"], "lenient_url": q8["lenient_url"]["ALL"]},
            "quality_all_types": q_all["strict"],
            "quality_paths_20k": q_paths["strict"],
            "by_line_kind": q_all["by_line_kind"],
        },
        "adversarial_1mb": adv,
        "watch": {
            "call": "hb.iocs.watch(df, indicators, columns=['CommandLine'])",
            "indicators": len(indicators),
            "timing": strip_result(w_timing),
            "hits": len(hits),
            "recall_of_planted_indicators": None if watch_recall is None else round(watch_recall, 4),
            "msticpy": "no equivalent",
        },
    }
    Path(args.out).write_text(json.dumps(result, indent=1, default=str))
    print_table(result, ref_df, ref_paths, q8, q_paths["strict"])


def _pr(q: dict | None) -> str:
    if not q or q.get("precision") is None:
        return "—"
    return f"P {q['precision']:.3f} / R {q['recall']:.3f}"


def print_table(result: dict, ref_df: dict | None, ref_paths: dict | None, q8: dict, q_paths: dict) -> None:
    ex = result["extract"]
    t = ex["timing"]
    ms = ex["msticpy_median_s"]
    ratio = ex["ratio_msticpy_over_huntbook"]
    ms_all = ref_quality(ref_df, "ALL")
    print(
        "| workload | MSTICPy median s | huntbook median s | ratio | quality MSTICPy | quality huntbook | peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {result['workload']} extract_df / extract | {ms if ms else '—'} | {t['median_s']} | "
        f"{f'{ratio}x' if ratio else '—'} | 8 types {_pr(ms_all)} | 8 types {_pr(q8['strict']['ALL'])} | "
        f"{t['peak_mb']} ({t['rss_before_mb']}) |"
    )
    w = result["watch"]
    c = ex["cpu_s"]
    print(
        f"| (CPU s of that call: main {c['main_process_median']}, helper {c['helper_process_median']}; "
        f"load average {c['load_average_1min']}) | | | | | | |"
    )
    print(
        f"| watch {w['indicators']} indicators | — | {w['timing']['median_s']} | — | no equivalent | "
        f"recall {w['recall_of_planted_indicators']} | {w['timing']['peak_mb']} |"
    )
    print()
    print("| type | MSTICPy | huntbook |")
    print("|---|---|---|")
    for typ in TYPES_8:
        print(f"| {typ} | {_pr(ref_quality(ref_df, typ))} | {_pr(q8['strict'][typ])} |")
    for typ in ("windows_path", "registry_key"):
        ms_q = ref_quality(ref_paths, typ)
        print(
            f"| {typ} (20k slice) | {_pr(ms_q) if ms_q else 'no such type' if typ == 'registry_key' else '—'} "
            f"| {_pr(q_paths[typ])} |"
        )
    print()
    print("| adversarial 1 MB input | median s | items |")
    print("|---|---|---|")
    for name, a in result["adversarial_1mb"].items():
        print(f"| {name} | {a['median_s']} | {a['items']} |")


if __name__ == "__main__":
    main()
