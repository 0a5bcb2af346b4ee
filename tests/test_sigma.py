"""hb.sigma: loading, the DuckDB backend's semantics, hunting, correlations, conversion, regression."""

from __future__ import annotations

import base64
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sigma.collection", reason="the 'sigma' extra (pysigma) is not installed")

import duckdb
import pandas as pd
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import huntbook.sigma as hs
from huntbook.errors import DataError, ParameterError
from huntbook.sigma.compiler import _like_pattern, _regex_of
from huntbook.store import LocalStore

EXPECTATIONS = yaml.safe_load((Path(__file__).parent / "data" / "sigma_expectations.yaml").read_text())
SYSMON = "Microsoft-Windows-Sysmon/Operational"


def rule(detection: str, *, category: str = "process_creation", rid: str = "0", extra: str = "") -> str:
    """A small rule's YAML (``detection`` is the indented body of ``detection:``)."""
    return (
        f"title: test rule {rid}\nid: 00000000-0000-4000-8000-{int(rid):012d}\nstatus: test\nlevel: high\n"
        f"tags: [attack.execution, attack.t1059.001]\n"
        f"logsource: {{product: windows, category: {category}}}\n{extra}detection:\n{detection}"
    )


def event(n: int, **fields: Any) -> dict[str, Any]:
    base = {
        "EventID": 1,
        "Channel": SYSMON,
        "Computer": "WS01.corp.local",
        "TimeCreated": f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}Z",
    }
    return {**base, **fields}


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory: pytest.TempPathFactory) -> LocalStore:
    """A store of flattened Sysmon / Security records (Mordor/NXLog-style JSON lines)."""
    folder = tmp_path_factory.mktemp("sigma_tiny")
    records = [
        event(
            0, Image=r"C:\Windows\System32\cmd.exe", CommandLine="cmd.exe /c 100%_done", User="CORP\\alice"
        ),
        event(1, Image=r"C:\Windows\System32\cmd.exe", CommandLine="cmd.exe /c 100xydone"),
        event(2, Image=r"C:\Tools\PowerShell.exe", CommandLine="powershell -enc SQBFAFgA", ParentImage="x"),
        event(3, Image=r"C:\Tools\PowerShell.exe", CommandLine="powershell /enc SQBFAFgA", ParentImage="y"),
        event(4, Image=r"C:\a\b.exe", CommandLine="it's a '; DROP TABLE events; -- test"),
        event(5, Image=r"C:\a\b.exe", CommandLine="curl " + base64.b64encode(b"xxhttp://evil").decode()),
        event(6, Image=r"C:\a\same.exe", CommandLine=r"C:\a\same.exe", Count="12"),
        event(7, Image=r"C:\a\c.exe", CommandLine="keyword HiddenNeedle here", Count="3"),
        event(8, EventID=3, Image=r"C:\a\net.exe", DestinationIp="10.1.2.3"),
        event(9, EventID=3, Image=r"C:\a\net.exe", DestinationIp="192.168.1.9"),
        event(
            10,
            EventID=4688,
            Channel="Security",
            NewProcessName=r"C:\Windows\System32\whoami.exe",
            ParentProcessName=r"C:\Windows\System32\cmd.exe",
            CommandLine="whoami /all",
        ),
        *[
            event(20 + i, EventID=4625, Channel="Security", TargetUserName="bob", IpAddress="203.0.113.9")
            for i in range(6)
        ],
        event(40, EventID=4625, Channel="Security", TargetUserName="carol", IpAddress="203.0.113.9"),
    ]
    path = folder / "events.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    store = LocalStore(folder / "store")
    summary = store.ingest(path, progress=False)
    assert summary["status"].tolist() == ["ok"] and summary["ingested"].sum() == len(records)
    return store


def hits_for(store: LocalStore, text: str) -> pd.DataFrame:
    rules = hs.loads(text)
    assert not len(rules.errors), rules.errors.to_dict("records")
    return hs.hunt(store, rules, progress=False)


def matched(store: LocalStore, detection: str, **kw: Any) -> list[str]:
    """Command lines (or Images) of the events a detection matches."""
    hits = hits_for(store, rule(detection, **kw))
    assert (hits.attrs["rules"]["status"] == "ok").all(), hits.attrs["rules"].to_dict("records")
    return sorted(json.loads(r).get("CommandLine") or json.loads(r).get("Image") for r in hits["raw"])


# ----------------------------------------------------------------------------------- semantics


def test_like_wildcards_in_values_are_literal(tiny_store: LocalStore) -> None:
    got = matched(tiny_store, "  sel:\n    CommandLine|contains: '100%_done'\n  condition: sel")
    assert got == ["cmd.exe /c 100%_done"]
    # a real Sigma wildcard in the middle still works, and matches case-insensitively
    got = matched(tiny_store, "  sel:\n    CommandLine: 'CMD.exe /c 100*done'\n  condition: sel")
    assert got == ["cmd.exe /c 100%_done", "cmd.exe /c 100xydone"]


def test_quotes_and_sql_in_values_are_data(tiny_store: LocalStore) -> None:
    got = matched(
        tiny_store, '  sel:\n    CommandLine|contains: "\'; DROP TABLE events; --"\n  condition: sel'
    )
    assert got == ["it's a '; DROP TABLE events; -- test"]
    with tiny_store.connect() as con:  # the table is still there
        assert con.execute("SELECT count(*) FROM events").fetchone()[0] > 0  # type: ignore[index]


def test_negation_is_null_safe(tiny_store: LocalStore) -> None:
    # ParentImage exists only on events 2 and 3: "not filter" must keep events where it is missing
    got = matched(
        tiny_store,
        "  sel:\n    Image|endswith: '.exe'\n  filter:\n    ParentImage: 'x'\n"
        "  condition: sel and not filter",
    )
    assert "powershell -enc SQBFAFgA" not in got
    assert "powershell /enc SQBFAFgA" in got and "cmd.exe /c 100xydone" in got


def test_windash_regex_cidr_base64offset(tiny_store: LocalStore) -> None:
    got = matched(tiny_store, "  sel:\n    CommandLine|windash|contains: ' -enc '\n  condition: sel")
    assert got == ["powershell -enc SQBFAFgA", "powershell /enc SQBFAFgA"]
    got = matched(tiny_store, "  sel:\n    CommandLine|re: '^powershell [-/]enc'\n  condition: sel")
    assert got == ["powershell -enc SQBFAFgA", "powershell /enc SQBFAFgA"]
    got = matched(tiny_store, "  sel:\n    CommandLine|re|i: '^POWERSHELL -ENC'\n  condition: sel")
    assert got == ["powershell -enc SQBFAFgA"]
    got = matched(
        tiny_store,
        "  sel:\n    DestinationIp|cidr: 10.0.0.0/8\n  condition: sel",
        category="network_connection",
    )
    assert got == [r"C:\a\net.exe"]
    got = matched(tiny_store, "  sel:\n    CommandLine|base64offset|contains: 'http://'\n  condition: sel")
    assert len(got) == 1 and got[0].startswith("curl ")


def test_fieldref_compare_exists_cased_keywords(tiny_store: LocalStore) -> None:
    got = matched(tiny_store, "  sel:\n    CommandLine|fieldref: Image\n  condition: sel")
    assert got == [r"C:\a\same.exe"]
    got = matched(tiny_store, "  sel:\n    Count|gt: 5\n  condition: sel")
    assert got == [r"C:\a\same.exe"]
    got = matched(tiny_store, "  sel:\n    ParentImage|exists: true\n  condition: sel")
    assert got == [
        "powershell -enc SQBFAFgA",
        "powershell /enc SQBFAFgA",
        "whoami /all",
    ]  # 4688: ParentProcessName
    assert (
        matched(tiny_store, "  sel:\n    CommandLine|cased|contains: 'hiddenneedle'\n  condition: sel") == []
    )
    got = matched(tiny_store, "  kw:\n    - 'hiddenneedle'\n  condition: kw")
    assert got == ["keyword HiddenNeedle here"]
    # keywords search the record's text as logged: JSON escapes (\\ and \") do not get in the way
    got = matched(tiny_store, "  kw:\n    - '\\a\\c.exe'\n    - 'x1'\n    - 'x2'\n  condition: kw")
    assert got == ["keyword HiddenNeedle here"]


def test_security_4688_is_process_creation(tiny_store: LocalStore) -> None:
    got = matched(
        tiny_store,
        "  sel:\n    Image|endswith: '\\whoami.exe'\n    ParentImage|endswith: '\\cmd.exe'\n  condition: sel",
    )
    assert got == ["whoami /all"]


@settings(max_examples=150, deadline=None)
@given(
    value=st.text(alphabet="ab%_\\*?'x", max_size=8),
    pattern=st.lists(st.sampled_from(["a", "b", "%", "_", "\\", "'", "*", "?"]), max_size=6),
)
def test_like_and_regex_translation_agree_with_glob(value: str, pattern: list[str]) -> None:
    """Law: the LIKE and regex forms of a Sigma wildcard string match exactly what a glob matches."""
    from sigma.types import SigmaString, SpecialChars

    s = SigmaString("".join("\\" + c if c in "\\" else c for c in pattern))
    glob = "".join(
        ".*"
        if p == SpecialChars.WILDCARD_MULTI
        else "."
        if p == SpecialChars.WILDCARD_SINGLE
        else re.escape(p)
        for p in s.s
    )
    expected = re.fullmatch(glob, value, re.S) is not None
    like = _like_pattern(list(s.s), SpecialChars)
    regex = "(?s)" + _regex_of(list(s.s), SpecialChars)
    sql = "SELECT ? LIKE ? ESCAPE '\\', regexp_matches(?, ?)"
    got_like, got_re = duckdb.sql(sql, params=[value, like, value, regex]).fetchall()[0]
    assert got_like == expected
    assert got_re == expected


# -------------------------------------------------------------------------------- hunting API


def test_hits_columns_attack_summary_and_purity(tiny_store: LocalStore) -> None:
    text = rule("  sel:\n    Image|endswith: '\\cmd.exe'\n  condition: sel", rid="7")
    hits = hits_for(tiny_store, text)
    for col in ("rule_id", "title", "level", "tags", "TimeGenerated", "Computer", "event"):
        assert col in hits.columns
    assert len(hits) == 2 and set(hits["Computer"]) == {"WS01.corp.local"}
    assert hits["techniques"].iloc[0] == ["T1059.001"] and hits["tactics"].iloc[0] == ["execution"]
    assert hits["event"].iloc[0]["Image"].endswith("cmd.exe")
    assert str(hits["TimeGenerated"].dtype).startswith("datetime64")
    before = hits.copy(deep=True)
    by_rule = hs.summary(hits)
    assert by_rule[["hits", "hosts"]].values.tolist() == [[2, 1]]
    assert hs.summary(hits, by="technique")["technique"].tolist() == ["T1059.001"]
    assert hs.summary(hits, by="host")["rules"].tolist() == [1]
    roll = hs.attack_rollup(hits)
    assert roll[["tactic", "technique", "hits"]].values.tolist() == [["execution", "T1059.001", 2]]
    pd.testing.assert_frame_equal(hits, before)  # analysis functions never mutate their input
    with pytest.raises(DataError):
        hs.summary(pd.DataFrame({"x": [1]}))
    with pytest.raises(DataError):
        hs.summary(hits, by="colour")


def test_empty_store_gives_an_empty_hits_frame(tmp_path: Path) -> None:
    hits = hs.hunt(LocalStore(tmp_path / "empty"), hs.loads(rule("  sel:\n    Image: a\n  condition: sel")))
    assert hits.empty and list(hits.columns) == hs.HIT_COLUMNS
    assert hits.attrs["rules"]["status"].tolist() == ["ok"]
    assert hs.summary(hits).empty and hs.attack_rollup(hits).empty


def test_broken_rule_never_stops_the_run(tiny_store: LocalStore, tmp_path: Path) -> None:
    (tmp_path / "good.yml").write_text(
        rule("  sel:\n    Image|endswith: '\\cmd.exe'\n  condition: sel", rid="1")
    )
    (tmp_path / "bad_yaml.yml").write_text("title: [unclosed\n")
    (tmp_path / "bad_cond.yml").write_text(
        rule("  sel:\n    Image: x\n  condition: sel and missing", rid="2")
    )
    (tmp_path / "bad_regex.yml").write_text(
        rule("  sel:\n    Image|re: '(?<=a)b'\n  condition: sel", rid="3")
    )
    (tmp_path / "linux.yml").write_text(
        rule("  sel:\n    Image: x\n  condition: sel", rid="4").replace("product: windows", "product: linux")
    )
    rules = hs.load(tmp_path)
    assert len(rules) == 5
    errors = rules.errors
    assert sorted(Path(p).name for p in errors["path"]) == ["bad_cond.yml", "bad_yaml.yml"]
    assert errors["error"].str.len().min() > 10
    hits = hs.hunt(tiny_store, rules, progress=False)
    status = hits.attrs["rules"].set_index("title")["status"]
    assert status["test rule 1"] == "ok" and status["test rule 4"] == "no data source"
    assert status["test rule 3"].startswith("error: regular expression")
    assert set(hits["title"]) == {"test rule 1"}


def test_filter_and_zip_loading(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "rules.zip", "w") as z:
        z.writestr("rules/a.yml", rule("  sel:\n    Image: a\n  condition: sel", rid="1"))
        z.writestr(
            "rules/b.yml",
            rule("  sel:\n    Image: b\n  condition: sel", rid="2").replace("level: high", "level: low"),
        )
    rules = hs.load(tmp_path / "rules.zip")
    assert len(rules) == 2 and all(r.path.startswith(str(tmp_path)) and "!rules/" in r.path for r in rules)
    assert [r.id[-1] for r in rules.filter(min_level="medium")] == ["1"]
    assert len(rules.filter(level="low")) == 1
    assert len(rules.filter(tags="attack.t1059")) == 2 and len(rules.filter(tags="attack.t1003")) == 0
    assert len(rules.filter(category="process_creation", product="windows")) == 2
    with pytest.raises(ParameterError):
        rules.filter(min_level="severe")
    with pytest.raises(ParameterError):
        hs.load(tmp_path / "nope")


def test_correlation_event_count(tiny_store: LocalStore) -> None:
    text = (
        "title: failed logon\nid: 11111111-0000-4000-8000-000000000001\nname: failed_logon\nstatus: test\n"
        "logsource: {product: windows, service: security}\n"
        "detection:\n  sel:\n    EventID: 4625\n  condition: sel\n---\n"
        "title: many failed logons for one user\nid: 11111111-0000-4000-8000-000000000002\nstatus: test\n"
        "level: high\ncorrelation:\n  type: event_count\n  rules: [failed_logon]\n"
        "  group-by: [TargetUserName]\n"
        "  timespan: 10m\n  condition: {gte: 5}\n"
    )
    rules = hs.loads(text)
    assert not len(rules.errors)
    hits = hs.hunt(tiny_store, rules, progress=False)
    # the base rule only feeds the correlation (generate: false): one hit, for bob (6 failures), not carol
    assert hits["title"].tolist() == ["many failed logons for one user"]
    assert hits["event"].iloc[0]["TargetUserName"] == "bob" and hits["event"].iloc[0]["event_count"] == 6
    value_count = (
        text.replace("type: event_count", "type: value_count")
        .replace("group-by: [TargetUserName]", "group-by: [IpAddress]")
        .replace("condition: {gte: 5}", "condition: {gte: 2, field: TargetUserName}")
    )
    hits = hs.hunt(tiny_store, hs.loads(value_count), progress=False)
    assert len(hits) == 1 and hits["event"].iloc[0]["value_count"] == 2


def test_cli_functions(tiny_store: LocalStore, tmp_path: Path) -> None:
    import io

    (tmp_path / "r.yml").write_text(
        rule("  sel:\n    Image|endswith: '\\cmd.exe'\n  condition: sel", rid="1")
    )
    out = io.StringIO()
    hits = hs.run_command(tiny_store.path, [tmp_path / "r.yml"], output=tmp_path / "hits.csv", out=out)
    assert len(hits) == 2 and "1 run" in out.getvalue() and "test rule 1" in out.getvalue()
    assert len(pd.read_csv(tmp_path / "hits.csv")) == 2
    out = io.StringIO()
    frame = hs.convert_command([tmp_path / "r.yml"], target="splunk", out=out)
    assert frame["status"].tolist() == ["ok"] and 'Image="*\\\\cmd.exe"' in out.getvalue()


# --------------------------------------------------------------------------------- conversion

CONVERSION_RULE = r"""
title: Whoami via cmd
id: 5b4f5b4f-0000-4000-8000-000000000001
status: test
level: high
tags: [attack.discovery, attack.t1033]
logsource: {product: windows, category: process_creation}
detection:
  sel:
    Image|endswith: '\whoami.exe'
    ParentImage|endswith: '\cmd.exe'
  filter:
    CommandLine|contains: '/all'
  condition: sel and not filter
"""


@pytest.mark.parametrize(
    "target, pipeline", [(c["target"], c.get("pipeline")) for c in EXPECTATIONS["conversion"]]
)
def test_conversion_matches_expected_strings(target: str, pipeline: str | None) -> None:
    expected = next(
        c["query"]
        for c in EXPECTATIONS["conversion"]
        if c["target"] == target and c.get("pipeline") == pipeline
    )
    rules = hs.loads(CONVERSION_RULE)
    frame = hs.convert(rules, target=target, pipeline=pipeline)
    assert frame["status"].tolist() == ["ok"], frame["error"].tolist()
    assert frame["query"].iloc[0].strip() == expected.strip()
    # conversion copies the rules: the loaded rule still runs with its own field names
    assert rules[0].sigma.detection.detections["sel"].detection_items[0].field == "Image"


def test_conversion_errors_stay_per_rule() -> None:
    text = CONVERSION_RULE + "---\n" + rule("  sel:\n    Image|expand: '%admins%'\n  condition: sel", rid="9")
    frame = hs.convert(hs.loads(text), target="lucene")
    assert frame["status"].tolist() == ["ok", "error"] and "placeholder" in frame["error"].iloc[1].lower()
    with pytest.raises(ParameterError):
        hs.convert(hs.loads(CONVERSION_RULE), target="qradar")
    with pytest.raises(ParameterError):
        hs.convert(hs.loads(CONVERSION_RULE), target="kql", pipeline="ecs_windows")


# --------------------------------------------------------------------------- SigmaHQ content


def _regression_cases(root: Path) -> list[tuple[Path, str, int | None]]:
    """(sample, rule id, expected count): every EVTX sample, and its EVTX-rendered JSON twin."""
    cases = []
    for info in sorted((root / "regression_data").rglob("info.yml")):
        doc = yaml.safe_load(info.read_text(encoding="utf-8"))
        rid = doc["rule_metadata"][0]["id"]
        for test in doc.get("regression_tests_info") or []:
            for suffix in (".evtx", ".json"):
                sample = info.parent / f"{rid}{suffix}"
                if sample.exists():
                    cases.append((sample, rid, test.get("match_count")))
    return cases


@pytest.fixture(scope="session")
def sigmahq(shared_data: Path) -> hs.RuleSet:
    return hs.load(shared_data / "sigma" / "sigma_rules.zip", progress=False)


ENGINE_COMPARISONS: list[tuple[str, int, bool]] = []  # (store, hits, same hits in both evaluators)


@pytest.fixture(scope="session")
def regression_results(
    shared_data: Path, sigmahq: hs.RuleSet, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[int, int | None, str]]:
    """Every sample ingested once (EVTX into one store, their JSON twins into another) and its rule run.

    A store keeps a record once, so a sample sharing records with one ingested before it gets a store
    of its own. Keys: ``<rule id>.evtx`` / ``<rule id>.json``; values: (hits in the sample, expected
    count, rule status).
    """
    cases = _regression_cases(shared_data / "sigma")
    compiled = hs.compile_rules(sigmahq.filter(ids={rid for _, rid, _ in cases}))
    base = tmp_path_factory.mktemp("sigma_regression")
    results = {}

    def count(store: LocalStore, rules: hs.CompiledRules) -> dict[tuple[str, str], int]:
        hits = hs.hunt(store, rules, progress=False, raw=False, engine="arrow")
        duck = hs.hunt(store, rules, progress=False, raw=False, engine="duckdb")
        same = hits.equals(duck) and hits.attrs["rules"].equals(duck.attrs["rules"])
        ENGINE_COMPARISONS.append((str(store.path), len(hits), same))
        with store.connect() as con:
            files = dict(con.execute("SELECT EventKey, SourceFile FROM events").fetchall())
        pairs = zip(hits["rule_id"], hits["EventKey"].map(files), strict=True)
        return pd.Series(list(pairs), dtype=object).value_counts().to_dict()

    for form in (".evtx", ".json"):
        samples = [c for c in cases if c[0].suffix == form]
        store = LocalStore(base / form[1:])
        summary = store.ingest([s for s, _, _ in samples], progress=False)
        shared = set(summary.loc[summary["duplicates"] > 0, "file"])
        counts = count(store, compiled)
        for n, (sample, rid, expected) in enumerate(samples):
            if str(sample) in shared:
                own = LocalStore(base / f"{form[1:]}{n}")
                own.ingest(sample, progress=False)
                got = count(own, hs.compile_rules([r for r in compiled.rules if r.id == rid]))
            else:
                got = counts
            results[f"{rid}{form}"] = (got.get((rid, str(sample)), 0), expected, compiled.status[rid])
    return results


@pytest.mark.slow
@pytest.mark.parametrize("form", [".evtx", ".json"])
def test_sigmahq_regression_samples(
    regression_results: dict[str, tuple[int, int | None, str]], form: str
) -> None:
    """The rule of each sample fires on it (match_count times where given), as EVTX and as EVTX JSON."""
    xfail: dict[str, str] = EXPECTATIONS["regression_xfail"]
    results = {k.removesuffix(form): v for k, v in regression_results.items() if k.endswith(form)}
    passed, failed = [], []
    for rid, (got, expected, status) in results.items():
        ok = status == "ok" and (got == expected if expected else got > 0)
        (passed if ok else failed).append(rid)
    assert len(results) == 101 if form == ".evtx" else len(results) >= 95
    unexplained = sorted(set(failed) - set(xfail))
    assert not unexplained, {r: results[r] for r in unexplained}
    fixed = sorted(set(passed) & set(xfail))
    assert not fixed, f"now passing, remove from regression_xfail: {fixed}"
    assert len(passed) / len(results) >= 0.95


@pytest.mark.slow
def test_sigmahq_regression_samples_same_in_both_evaluators(
    regression_results: dict[str, tuple[int, int | None, str]],
) -> None:
    """On every sample store the in-process evaluator and DuckDB give the very same hits and statuses."""
    assert len(ENGINE_COMPARISONS) >= 2 and sum(n for _, n, _ in ENGINE_COMPARISONS) > 100
    assert [store for store, _, same in ENGINE_COMPARISONS if not same] == []


@pytest.mark.slow
def test_sigmahq_ruleset_loads_and_compiles(sigmahq: hs.RuleSet) -> None:
    bounds = EXPECTATIONS["ruleset"]
    assert len(sigmahq) >= bounds["min_rules"]
    assert len(sigmahq.errors) / len(sigmahq) <= bounds["max_load_failure_share"]
    status = list(hs.compile_rules(sigmahq).status.values())
    failed = [s for s in status if s.startswith("error")]
    assert len(failed) / len(status) <= bounds["max_compile_failure_share"]
    assert all("placeholder" in s for s in failed), sorted(set(failed))
    windows = sigmahq.filter(product="windows")
    no_source = [r.title for r in windows if hs.compile_rules([r]).status[r.id] == "no data source"]
    assert len(no_source) / len(windows) <= bounds["max_windows_without_source_share"]


# ------------------------------------------------------- the two evaluators (in process, DuckDB)

from huntbook.sigma import arrow as hs_arrow  # noqa: E402
from huntbook.sigma import engine as hs_engine  # noqa: E402


def evtx_record(tag: str, event_id: int, data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An EVTX-rendered JSON record (as the evtx parser writes it); ``tag`` names it in the tests."""
    n = int(tag[1:])
    system = {
        "Provider": {"#attributes": {"Name": extra.pop("provider", "Microsoft-Windows-Sysmon")}},
        "EventID": event_id,
        "TimeCreated": {"#attributes": {"SystemTime": f"2026-02-01T10:00:{n:02d}.000000Z"}},
        "EventRecordID": 1000 + n,
        "Channel": extra.pop("channel", SYSMON),
        "Computer": "WS02.corp.local",
    }
    return {"Event": {"System": system, "EventData": {"Tag": tag, **data}, **extra}}


EDGE_RECORDS = [
    evtx_record(
        "E0",
        1,
        {
            "Image": r"C:\Windows\System32\cmd.exe",
            "CommandLine": r'cmd /c "echo \\server\share" & whoami',
            "ParentImage": r"C:\x\p.exe",
            "User": "CORP\\İsmail",  # DuckDB lower-cases İ to i (Python: i + combining dot)
            "IntegrityLevel": "High",
        },
    ),
    evtx_record(
        "E1",
        1,
        {
            "Image": r"C:\Tools\PowerShell.EXE",
            "CommandLine": "powershell -enc SQBFAFgA",
            "IntegrityLevel": "",
        },
    ),
    evtx_record("E2", 1, {"Image": r"C:\a\ΑΣ.exe", "CommandLine": "find *.txt? now"}),  # final sigma
    evtx_record("E3", 1, {"Image": r"C:\a\long.exe", "CommandLine": "x" * 1200 + "\nshort"}),
    evtx_record("E4", 3, {"Image": r"C:\a\net.exe", "DestinationIp": "10.1.2.3", "DestinationPort": 443}),
    evtx_record("E5", 3, {"Image": r"C:\a\net.exe", "DestinationIp": "192.168.1.9", "DestinationPort": "80"}),
    evtx_record(
        "E6",
        1,
        {
            "Image": "curl " + base64.b64encode(b"xxhttp://evil").decode(),
            "CommandLine": "curl " + base64.b64encode(b"xxhttp://evil").decode(),
            "ParentImage": "curl",
        },
    ),
    evtx_record(
        "E7",
        1102,
        {},
        channel="Security",
        provider="Microsoft-Windows-Eventlog",
        UserData={"LogFileCleared": {"SubjectUserName": "Admin01", "SubjectLogonId": 12345}},
    ),
    evtx_record(
        "E8",
        4688,
        {"NewProcessName": r"C:\Windows\System32\whoami.exe", "CommandLine": "whoami /all"},
        channel="Security",
        provider="Microsoft-Windows-Security-Auditing",
    ),
    evtx_record(
        "E9",
        1,
        {"Image": r"C:\m\mimi.exe", "CommandLine": 'mimikatz "sekurlsa::logonpasswords" \\\\host\\c$'},
    ),
    evtx_record("E10", 1, {"Image": r"C:\a\lines.exe", "CommandLine": ("y" * 600 + "\n") * 2}),
]

PROCESSES = {"E0", "E1", "E2", "E3", "E6", "E8", "E9", "E10"}  # process_creation: Sysmon 1 and 4688

# (detection body, log source, the records it must match)
EDGE_RULES: list[tuple[str, dict[str, str], set[str]]] = [
    ("sel:\n    Image|endswith: '\\cmd.exe'", {}, {"E0"}),
    ("sel:\n    CommandLine: 'find \\*.txt\\? now'", {}, {"E2"}),  # escaped wildcards are literal
    ("sel:\n    CommandLine: 'find ?.txt* now'", {}, {"E2"}),  # ? is one character, * any run
    ("sel:\n    CommandLine: 'find \\*.txt'", {}, set()),  # no wildcard left: equality
    (
        "sel:\n    Image|endswith: '.exe'\n  filter:\n    ParentImage: 'C:\\x\\p.exe'\n"
        "  condition: sel and not filter",
        {},
        {"E1", "E2", "E3", "E8", "E9", "E10"},  # not over a missing ParentImage is true
    ),
    ("sel:\n    User|contains: 'ismail'", {}, {"E0"}),  # DuckDB's lower-casing, in both
    ("sel:\n    Image|endswith: 'ασ.exe'", {}, {"E2"}),  # no final-sigma rule in DuckDB's lower()
    ("sel:\n    CommandLine|cased|contains: 'SQBF'", {}, {"E1"}),
    ("sel:\n    CommandLine|cased|contains: 'sqbf'", {}, set()),
    ("sel:\n    CommandLine|re: '^powershell\\s-enc'", {}, {"E1"}),
    ("sel:\n    CommandLine|re|i: '^POWERSHELL'", {}, {"E1"}),
    ("sel:\n    CommandLine|re: '.{1000,}'", {}, {"E3"}),  # one line of 1,000 characters
    ("sel:\n    CommandLine|re: '(?s).{1000,}'", {}, {"E3", "E10"}),  # . matches newlines too
    ("sel:\n    CommandLine|re: '(?<=a)b'", {}, None),  # RE2 refuses look-behind: an error in both
    ("sel:\n    DestinationIp|cidr: 10.0.0.0/8", {"category": "network_connection"}, {"E4"}),
    ("sel:\n    DestinationPort: 443", {"category": "network_connection"}, {"E4"}),  # a JSON number
    ("sel:\n    DestinationPort: '80'", {"category": "network_connection"}, {"E5"}),  # a JSON string
    ("sel:\n    DestinationPort|gt: 100", {"category": "network_connection"}, {"E4"}),  # 443 > 100 > 80
    ("sel:\n    DestinationPort|lte: 80", {"category": "network_connection"}, {"E5"}),  # as numbers
    ("sel:\n    CommandLine|windash|contains: ' -enc '", {}, {"E1"}),
    ("sel:\n    CommandLine|base64offset|contains: 'http://'", {}, {"E6"}),
    ("sel:\n    CommandLine|fieldref: Image", {}, {"E6"}),
    ("sel:\n    CommandLine|fieldref|startswith: ParentImage", {}, {"E6"}),
    ("sel:\n    CommandLine|fieldref|endswith: ParentImage", {}, set()),
    ("sel:\n    CommandLine|fieldref|contains: ParentImage", {}, {"E6"}),
    ("sel:\n    ParentImage|exists: false", {}, {"E1", "E2", "E3", "E8", "E9", "E10"}),
    ("sel:\n    ParentImage|exists: true", {}, {"E0", "E6"}),
    ("sel:\n    IntegrityLevel: null", {}, PROCESSES - {"E0"}),  # missing or empty
    (
        "sel:\n    Image|endswith:\n      - '\\a.exe'\n      - '\\b.exe'\n"
        "      - '\\cmd.exe'\n      - '\\long.exe'",
        {},
        {"E0", "E3"},  # merged into one regex in SQL
    ),
    ("sel:\n    CommandLine|startswith: ['CMD', 'find', 'zzz']", {}, {"E0", "E2"}),
    ("kw:\n    - 'sekurlsa::logon'", {}, {"E9"}),
    ("kw:\n    - 'zzz1'\n    - 'zzz2'\n    - 'sekurlsa::logon'", {}, {"E9"}),  # merged keywords
    ("kw:\n    - 'zzz1'\n    - 'zzz2'\n    - 'passwords\" \\'", {}, {"E9"}),  # \ and " as logged
    ("kw:\n    - 'echo \\\\server'", {}, set()),  # the log holds two backslashes there
    ("kw:\n    '|re': 'sekurlsa::\\w+'", {}, {"E9"}),  # over the record's JSON text
    ("sel:\n    EventID: 1102\n    SubjectUserName: 'admin01'", {"service": "security"}, {"E7"}),  # UserData
    ("sel:\n    EventID: 1102\n    SubjectLogonId: 12345", {"service": "security"}, {"E7"}),  # a number
    ("sel:\n    Image|endswith: '\\whoami.exe'", {}, {"E8"}),  # 4688: NewProcessName
]


def edge_rule(n: int, body: str, logsource: dict[str, str]) -> str:
    source = logsource or {"product": "windows", "category": "process_creation"}
    if "product" not in source:
        source = {"product": "windows", **source}
    condition = "" if "condition:" in body else f"\n  condition: {body.split(':', 1)[0]}"
    return (
        f"title: edge {n}\nid: 00000000-0000-4000-8000-{n:012d}\nstatus: test\nlevel: high\n"
        f"logsource: {json.dumps(source)}\ndetection:\n  {body}{condition}\n"
    )


@pytest.fixture(scope="module")
def edge_store(tmp_path_factory: pytest.TempPathFactory) -> LocalStore:
    folder = tmp_path_factory.mktemp("sigma_edge")
    (folder / "edge.jsonl").write_text(
        "\n".join(json.dumps(r) for r in EDGE_RECORDS) + "\n", encoding="utf-8"
    )
    store = LocalStore(folder / "store")
    summary = store.ingest(folder / "edge.jsonl", progress=False)
    assert summary["format"].tolist() == ["evtx_json"] and summary["ingested"].sum() == len(EDGE_RECORDS)
    return store


def _tags(hits: pd.DataFrame) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for rid, raw in zip(hits["rule_id"], hits["raw"], strict=True):
        out.setdefault(rid, set()).add(json.loads(raw)["Event"]["EventData"]["Tag"])
    return out


def test_both_evaluators_agree_on_edge_cases(edge_store: LocalStore) -> None:
    """Every edge case matches what it must, and the two evaluators give the very same hits."""
    rules = hs.loads("---\n".join(edge_rule(n, b, s) for n, (b, s, _) in enumerate(EDGE_RULES)))
    assert not len(rules.errors), rules.errors.to_dict("records")
    compiled = hs.compile_rules(rules)
    by_engine = {e: hs.hunt(edge_store, compiled, progress=False, engine=e) for e in ("arrow", "duckdb")}
    in_process, duck = by_engine["arrow"], by_engine["duckdb"]
    pd.testing.assert_frame_equal(in_process, duck)
    pd.testing.assert_frame_equal(in_process.attrs["rules"], duck.attrs["rules"])
    found = _tags(in_process)
    status = in_process.attrs["rules"].set_index("rule_id")["status"]
    for n, (body, _, expected) in enumerate(EDGE_RULES):
        rid = f"00000000-0000-4000-8000-{n:012d}"
        if expected is None:
            assert status[rid].startswith("error"), (body, status[rid])
        else:
            assert status[rid] == "ok", (body, status[rid])
            assert found.get(rid, set()) == expected, body
    # the hits show the rule's fields as logged, and key fields
    e7 = in_process[in_process["rule_id"].str.endswith(f"{len(EDGE_RULES) - 3:012d}")]
    assert e7["event"].iloc[0]["SubjectUserName"] == "Admin01" and e7["Channel"].iloc[0] == "Security"


def test_auto_picks_the_evaluator_by_source_size(
    edge_store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = hs.loads(edge_rule(0, *EDGE_RULES[0][:2]))
    calls = {"duckdb": 0, "arrow": 0}
    run_group, run_in_process = hs_engine._run_group, hs_engine._run_in_process

    def counted(name: str, function: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return function(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(hs_engine, "_run_group", counted("duckdb", run_group))
    monkeypatch.setattr(hs_engine, "_run_in_process", counted("arrow", run_in_process))
    small = hs.hunt(edge_store, rules, progress=False)
    assert calls == {"duckdb": 0, "arrow": 1}
    monkeypatch.setattr(hs_engine, "ARROW_MAX_ROWS", 2)  # the source has 8 events: DuckDB's turn
    large = hs.hunt(edge_store, rules, progress=False)
    assert calls == {"duckdb": 1, "arrow": 1}
    pd.testing.assert_frame_equal(small, large)
    with pytest.raises(ParameterError):
        hs.hunt(edge_store, rules, engine="spark")


@settings(max_examples=200, deadline=None)
@given(rows=st.sets(st.integers(min_value=0, max_value=3000), max_size=60))
def test_bit_sets_round_trip(rows: set[int]) -> None:
    ordered = sorted(rows)
    bits = hs_arrow._from_positions(ordered, 3001)
    assert bits == sum(1 << r for r in ordered)
    assert hs_arrow.positions(bits) == ordered


@settings(max_examples=100, deadline=None)
@given(codes=st.lists(st.integers(min_value=-1, max_value=5), max_size=80))
def test_row_sets_per_value(codes: list[int]) -> None:
    import numpy as np

    got = hs_arrow._row_sets(np.array(codes, dtype=np.int64), 6)
    assert got == [sum(1 << r for r, c in enumerate(codes) if c == v) for v in range(6)]


@settings(max_examples=150, deadline=None)
@given(text=st.text(alphabet="ab\n", max_size=14), size=st.integers(min_value=1, max_value=6))
def test_long_line_shortcut_agrees_with_re2(text: str, size: int) -> None:
    """``.{N,}`` is answered from line lengths (RE2 takes time N x length): the same answer."""
    import re2

    for pattern in (f".{{{size},}}", f"(?s).{{{size},}}", f".{{{size},{size + 2}}}"):
        test = hs_arrow._value_test(pattern)
        assert test is not None and test(text) == (re2.search(pattern, text) is not None), pattern


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet='ab\\"', max_size=12), literal=st.text(alphabet="ab", min_size=1, max_size=3))
def test_clean_literals_need_no_unescaping(text: str, literal: str) -> None:
    """Law behind the keyword shortcut: a literal without \\ and " is in unescape(x) iff it is in x."""
    unescaped = text.replace("\\\\", "\\").replace('\\"', '"')  # what L_RAW_SQL does, in that order
    assert (literal in unescaped) == (literal in text)


def test_lower_casing_is_duckdbs() -> None:
    values = ["ABC", "CORP\\İsmail", "ΑΣ ΑΣα", "Ǆ", "plain"]
    con = duckdb.connect()
    expected = [con.execute("SELECT lower(?)", [v]).fetchall()[0][0] for v in values]
    assert hs_arrow.duckdb_lower(con, values) == expected
    assert expected[1] != values[1].lower() and expected[2] != values[2].lower()  # Python's differs
    import pyarrow as pa

    assert hs_arrow.duckdb_lower_array(con, pa.array([*values, None])).to_pylist() == [*expected, None]
