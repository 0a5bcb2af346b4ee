"""Hunt files (huntbook.hunts, ``huntbook hunt run|check|list``) and ``huntbook notebook run``.

Everything runs on the demo incident's LocalStore (generated and ingested once per module).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from conftest import run_cli
from huntbook import demo, hunts
from huntbook.errors import ConfigError
from huntbook.store import LocalStore

ROOT = Path(__file__).resolve().parents[1]
RANGE = ["-p", "start=2026-10-05", "-p", "end=2026-10-12"]


huntbook = run_cli


@pytest.fixture(scope="module")
def incident(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The demo incident ingested into a store: ``store`` (its folder) and ``truth``."""
    out = tmp_path_factory.mktemp("incident")
    generated = demo.generate(out / "data")
    store = LocalStore(out / "store")
    store.ingest([out / "data" / "windows", out / "data" / "zeek"], progress=False)
    return {"store": out / "store", "truth": generated["truth"]}


@pytest.fixture(scope="module")
def example_run(incident: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``huntbook hunt run --example encoded-powershell`` on the incident, host SRV01."""
    cwd = tmp_path_factory.mktemp("example")
    done = huntbook(
        "hunt", "run", "--example", "encoded-powershell", "--store", str(incident["store"]),
        *RANGE, "-p", "host=SRV01", "--out", "results", cwd=cwd,
    )  # fmt: skip
    out = cwd / "results"
    audit = json.loads((out / "audit.json").read_text()) if (out / "audit.json").is_file() else {}
    return {"done": done, "out": out, "audit": audit}


def write_hunt(folder: Path, text: str, name: str = "hunt.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def read(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def steps(audit: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in audit["steps"]}


# ---------------------------------------------------------------------------------------------------------
# The example hunt on the demo incident


def test_example_hunt_exits_1_and_writes_report_data_and_audit(example_run: dict[str, Any]) -> None:
    done, out = example_run["done"], example_run["out"]
    assert done.returncode == hunts.EXIT_FINDINGS, done.stderr
    assert "ran fully, findings (exit 1)" in done.stderr
    assert (out / "report.html").is_file() and (out / "audit.json").is_file()
    names = [s.name for s in hunts.load(hunts.example("encoded-powershell")).steps]
    assert sorted(p.stem for p in (out / "data").glob("*.parquet")) == sorted(names)


def test_example_hunt_finds_the_incident(example_run: dict[str, Any], incident: dict[str, Any]) -> None:
    truth, data = incident["truth"], example_run["out"] / "data"
    encoded = read(data / "encoded.parquet")
    assert truth["encoded_command_line"] in set(encoded["TargetProcessCommandLine"])
    assert set(encoded["DvcHostname"].str.split(".").str[0].str.upper()) == {truth["victim_host"]}
    values = set(read(data / "iocs.parquet")["value"])
    assert {truth["attacker_ip"], truth["download_url"]} <= values
    logons = read(data / "rdp_logons.parquet")
    attacker = logons[logons["SrcIpAddr"] == truth["attacker_ip"]]
    assert set(attacker["TargetUsername"]) == {truth["compromised_account"]}
    assert example_run["audit"]["findings"] == ["encoded", "iocs"]
    report = (example_run["out"] / "report.html").read_text(encoding="utf-8")
    assert "Hunt: encoded-powershell" in report and truth["download_url"] in report


def test_audit_log_matches_the_files_and_the_run(
    example_run: dict[str, Any], incident: dict[str, Any]
) -> None:
    audit, out = example_run["audit"], example_run["out"]
    source = Path(audit["hunt"]["file"])
    assert audit["hunt"]["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert audit["params"] == {
        "host": "SRV01",
        "start": "2026-10-05T00:00:00+00:00",
        "end": "2026-10-12T00:00:00+00:00",
    }
    assert audit["backend"] == {"env": "local", "store": str(incident["store"])}
    assert audit["exit_code"] == 1 and audit["started"] <= audit["finished"]
    for step in audit["steps"]:
        assert step["status"] == "ok" and step["error"] is None and step["seconds"] >= 0
        (file,) = step["files"]
        path = out / file["path"]
        assert file["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert len(read(path)) == step["rows"]
    report = audit["outputs"]["report"]
    assert report["sha256"] == hashlib.sha256((out / report["path"]).read_bytes()).hexdigest()
    by_name = steps(audit)
    assert "TIMESTAMPTZ '2026-10-05 00:00:00+00:00'" in by_name["encoded"]["query"]
    assert by_name["encoded"]["params"]["host_name"] == "SRV01"  # the hunt's host, by the query's alias
    assert "lower('SRV01')" in by_name["rdp_logons"]["query"]
    assert by_name["decode"]["params"] == {"column": "TargetProcessCommandLine"}


def test_no_findings_exits_0(incident: dict[str, Any], tmp_path: Path) -> None:
    done = huntbook(
        "hunt", "run", "--example", "encoded-powershell", "-s", str(incident["store"]), *RANGE,
        "-p", "host=NOSUCHHOST", "-o", "out", "-q", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == hunts.EXIT_OK, done.stderr
    audit = json.loads((tmp_path / "out" / "audit.json").read_text())
    assert audit["findings"] == [] and steps(audit)["encoded"]["rows"] == 0
    assert all(s["status"] == "ok" for s in audit["steps"])


# ---------------------------------------------------------------------------------------------------------
# Failures: partial results (exit 3) and bad hunt files (exit 2)

FAILING = """\
    name: failing
    backend: {store: store}
    params: {host: SRV01, start: 2026-10-05, end: 2026-10-12}
    steps:
      - query: process.encoded_commands
        name: encoded
        finding: true
      - sql: SELECT * FROM no_such_table WHERE DvcHostname = {host}
        name: broken
      - analysis: iocs
        on: broken
      - sql: SELECT count(*) AS n FROM process_events
        name: counted
"""


def test_failing_query_gives_partial_results_and_exit_3(incident: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "store").symlink_to(incident["store"])
    write_hunt(tmp_path, FAILING)
    done = huntbook("hunt", "run", "hunt.yaml", "-o", "out", cwd=tmp_path)
    assert done.returncode == hunts.EXIT_PARTIAL
    assert "steps[1] (broken) failed:" in done.stderr and "no_such_table" in done.stderr
    assert "steps[2] (iocs) skipped: its input step 'broken' did not run" in done.stderr
    out = tmp_path / "out"
    assert sorted(p.name for p in (out / "data").iterdir()) == ["counted.parquet", "encoded.parquet"]
    assert read(out / "data" / "counted.parquet")["n"].iloc[0] > 0
    audit = json.loads((out / "audit.json").read_text())
    by_name = steps(audit)
    assert [by_name[n]["status"] for n in ("encoded", "broken", "iocs", "counted")] == [
        "ok", "failed", "skipped", "ok",
    ]  # fmt: skip
    assert "no_such_table" in by_name["broken"]["error"] and by_name["broken"]["files"] == []
    assert audit["exit_code"] == 3 and audit["findings"] == ["encoded"]  # findings still reported
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "partial" in report and "no_such_table" in report


def test_failing_analysis_is_partial_too(incident: dict[str, Any], tmp_path: Path) -> None:
    path = write_hunt(
        tmp_path,
        """\
        name: bad-column
        params: {start: 2026-10-05, end: 2026-10-12}
        steps:
          - query: process.encoded_commands
          - analysis: decode
            options: {column: NoSuchColumn}
        """,
    )
    result = hunts.run(path, store=incident["store"], out=tmp_path / "out")
    assert result.exit_code == hunts.EXIT_PARTIAL
    (line,) = result.errors
    assert line.startswith("steps[1] (decode) failed:") and "NoSuchColumn" in line


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        (
            "name: x\nsteps: [{query: process.encoded_commands, colour: red}]",
            "steps[0] (encoded_commands).colour",
            "unknown key",
        ),
        (
            "name: x\nsteps: [{sql: \"SELECT '${host}'\"}]\nparams: {host: a}",
            "steps[0] (sql0).sql",
            "not allowed in query text",
        ),
        (
            "name: x\nsteps: [{query: a.b}, {analysis: nosuch}]",
            "steps[1] (nosuch).analysis",
            "unknown analysis",
        ),
        (
            "name: x\nsteps: [{query: a.b}, {analysis: iocs, on: nope}]",
            "steps[1] (iocs).on",
            "no step named 'nope'",
        ),
        ("name: x\nsteps: [{query: a.b, params: {h: '${nope}'}}]", "steps[0] (b)", "names no hunt parameter"),
        ("name: x\nsteps: [{query: a.b}, {query: a.b}]", "steps[1] (b).name", "another step has this name"),
        ("name: x\nsteps: [{query: a.b}]\nfindings: {when: [c]}", "findings.when", "no step named 'c'"),
        (
            "name: x\nsteps: [{query: a.b}]\noutputs: {data: {format: xlsx}}",
            "outputs.data.format",
            "unknown format",
        ),
        ("name: x\nsteps: [{query: a.b, sql: x}]", "steps[0]", "needs exactly one of"),
        ("name: x\nsteps: []", "steps", "needs a list of steps"),
        ("name: x\nsteps: [{sigma: {rules: a}}]", "steps[0] (sigma).sigma", "needs 'packaged' or a list"),
        ("name: x\nsteps: [{query: a.b}]\noutputs: {report: ../r.html}", "outputs.report", "not a .html"),
        ("name: x\nparams: {n: {type: fragment}}\nsteps: [{query: a.b}]", "params.n.type", "unknown type"),
        ("steps: [{query: a.b}]", "name", "needs a name"),
        ("name: x\nsteps: [{query: a.b}\n", "line 3", "invalid YAML"),
    ],
)
def test_bad_hunt_files_name_the_file_and_field(text: str, where: str, message: str, tmp_path: Path) -> None:
    path = write_hunt(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        hunts.load(path)
    assert caught.value.where == f"{path}: {where}"
    assert message in caught.value.message


def test_bad_hunt_file_exits_2_before_anything_runs(incident: dict[str, Any], tmp_path: Path) -> None:
    write_hunt(tmp_path, "name: x\nsteps: [{query: process.no_such_query}]\n")
    done = huntbook("hunt", "run", "hunt.yaml", "-s", str(incident["store"]), "-o", "out", cwd=tmp_path)
    assert done.returncode == hunts.EXIT_USAGE
    assert "hunt.yaml: steps[0] (no_such_query): no local query named 'process.no_such_query'" in done.stderr
    assert not (tmp_path / "out").exists()
    checked = huntbook("hunt", "check", "hunt.yaml", cwd=tmp_path)
    assert checked.returncode == 2 and "no local query named" in checked.stderr


def test_bad_parameters_exit_2(incident: dict[str, Any], tmp_path: Path) -> None:
    store = str(incident["store"])
    typo = huntbook(
        "hunt", "run", "--example", "encoded-powershell", "-s", store, "-p", "hots=x", cwd=tmp_path
    )
    assert (
        typo.returncode == 2
        and "--param hots: the hunt has no such parameter (did you mean host?)" in typo.stderr
    )
    when = huntbook(
        "hunt", "run", "--example", "encoded-powershell", "-s", store, "-p", "start=soon", cwd=tmp_path
    )
    assert when.returncode == 2 and "params.start" in when.stderr and "is not a time" in when.stderr
    nostore = huntbook("hunt", "run", "--example", "encoded-powershell", cwd=tmp_path)
    assert nostore.returncode == 2 and "no store to hunt in" in nostore.stderr
    assert list(tmp_path.glob("encoded-powershell-*")) == []


def test_check_and_list(incident: dict[str, Any], tmp_path: Path) -> None:
    done = huntbook("hunt", "check", "--example", "encoded-powershell", cwd=tmp_path)
    assert done.returncode == 0 and "ok, 6 steps, findings from: encoded, iocs" in done.stdout
    listed = huntbook("hunt", "list", cwd=tmp_path)
    assert listed.returncode == 0 and listed.stdout.startswith("encoded-powershell: PowerShell started")
    assert hunts.examples() == ["encoded-powershell"]


# ---------------------------------------------------------------------------------------------------------
# Parameters: overrides, and values are never pasted into query text

PARAMS = """\
    name: params
    params: {host: SRV01, start: 2026-10-05, end: 2026-10-12}
    steps:
      - sql: |
          SELECT count(*) AS n FROM process_events
          WHERE split_part(DvcHostname, '.', 1) = {host} -- {host} in a comment stays text
        name: by_sql
      - query: process.encoded_commands
        name: by_query
        params: {host_name: "${host}"}
    outputs: {report: false, data: false}
"""


def test_param_override_changes_the_query_parameters(incident: dict[str, Any], tmp_path: Path) -> None:
    path = write_hunt(tmp_path, PARAMS)
    default = hunts.run(path, store=incident["store"], out=tmp_path / "a")
    other = hunts.run(path, params={"host": "WS01"}, store=incident["store"], out=tmp_path / "b")
    assert default.params["host"] == "SRV01" and other.params["host"] == "WS01"
    sql_a, sql_b = default.steps[0], other.steps[0]
    assert "= 'SRV01' -- {host} in a comment" in str(sql_a.query) and "= 'WS01'" in str(sql_b.query)
    assert default.frames["by_sql"]["n"].iloc[0] > 0 and other.frames["by_sql"]["n"].iloc[0] > 0
    assert default.frames["by_sql"]["n"].iloc[0] != other.frames["by_sql"]["n"].iloc[0]
    assert default.steps[1].params["host_name"] == "SRV01" and other.steps[1].params["host_name"] == "WS01"
    assert len(default.frames["by_query"]) > 0
    assert not list((tmp_path / "a").glob("*.html")) and not (tmp_path / "a" / "data").exists()


def test_injection_values_are_matched_literally(incident: dict[str, Any], tmp_path: Path) -> None:
    path = write_hunt(tmp_path, PARAMS)
    evil = "x' OR 1=1 --"
    result = hunts.run(path, params={"host": evil}, store=incident["store"], out=tmp_path / "out")
    assert result.exit_code == hunts.EXIT_OK, result.errors
    assert "= 'x'' OR 1=1 --'" in str(result.steps[0].query)
    assert result.frames["by_sql"]["n"].iloc[0] == 0  # the whole value is one string literal
    assert len(result.frames["by_query"]) == 0
    audit = json.loads((tmp_path / "out" / "audit.json").read_text())
    assert audit["params"]["host"] == evil


def test_typed_sql_parameters(incident: dict[str, Any], tmp_path: Path) -> None:
    path = write_hunt(
        tmp_path,
        """\
        name: typed
        params: {start: 2026-10-08, end: 2026-10-09, logon_type: 10}
        steps:
          - sql: >-
              SELECT count(*) AS n FROM authentication
              WHERE TimeGenerated >= {start} AND TimeGenerated < {end} AND LogonType = {logon_type}
            name: rdp
          - sql: SELECT {since} AS since
            params: {since: "${start}"}
            types: {since: datetime}
        """,
    )
    result = hunts.run(path, params={"logon_type": "10"}, store=incident["store"], out=tmp_path / "out")
    assert result.exit_code == hunts.EXIT_OK, result.errors
    assert "LogonType = 10" in str(result.steps[0].query) and result.frames["rdp"]["n"].iloc[0] > 0
    assert "TIMESTAMPTZ '2026-10-08 00:00:00+00:00' AS since" in str(result.steps[1].query)


# ---------------------------------------------------------------------------------------------------------
# Outputs: CSV, chosen steps, upload


def test_csv_data_of_chosen_steps_and_local_upload(incident: dict[str, Any], tmp_path: Path) -> None:
    path = write_hunt(
        tmp_path,
        f"""\
        name: outputs
        backend: {{store: {incident["store"]}}}
        params: {{start: 2026-10-05, end: 2026-10-12}}
        steps:
          - query: process.encoded_commands
            name: encoded
            finding: true
          - analysis: iocs
        outputs:
          report: summary.md
          data: {{format: csv, steps: [iocs]}}
          upload: {{to: local, store: case}}
        """,
    )
    result = hunts.run(path, out=tmp_path / "out")
    assert result.exit_code == hunts.EXIT_FINDINGS, result.errors
    out = tmp_path / "out"
    assert sorted(p.name for p in (out / "data").iterdir()) == ["iocs.csv"]
    assert len(pd.read_csv(out / "data" / "iocs.csv")) == len(result.frames["iocs"])
    assert (out / "summary.md").read_text(encoding="utf-8").startswith("# Hunt: outputs")
    (receipt,) = result.uploads
    assert receipt["ok"] and receipt["step"] == "encoded"
    case = LocalStore(tmp_path / "case")
    uploaded = case.connect().execute("SELECT count(*) FROM events").fetchone()
    assert uploaded is not None and uploaded[0] == len(result.frames["encoded"])
    audit = json.loads((out / "audit.json").read_text())
    assert audit["outputs"]["uploads"] == result.uploads and audit["outputs"]["errors"] == []


# ---------------------------------------------------------------------------------------------------------
# huntbook notebook run (papermill)


def notebook(path: Path, *cells: str, parameters: str = "") -> Path:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    code = [new_code_cell(parameters, metadata={"tags": ["parameters"]}), *map(new_code_cell, cells)]
    kernel = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nbformat.write(new_notebook(cells=code, metadata={"kernelspec": kernel}), path)
    return path


def outputs(path: Path) -> str:
    import nbformat

    cells = nbformat.read(path, as_version=4).cells
    return "".join(o.get("text", "") for c in cells if c.cell_type == "code" for o in c.outputs)


def test_notebook_run_example_writes_the_report(incident: dict[str, Any], tmp_path: Path) -> None:
    done = huntbook(
        "notebook", "run", str(ROOT / "docs" / "notebooks" / "host-hunt.ipynb"), "-p",
        f"store={incident['store']}", "-p", "host=SRV01", "--out", "ran.ipynb", "--report", "host.html",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ran.ipynb", "host.html"]
    report = (tmp_path / "host.html").read_text(encoding="utf-8")
    assert "Host hunt: SRV01" in report and incident["truth"]["download_url"] in report
    assert "encoded PowerShell command lines on SRV01" in outputs(tmp_path / "ran.ipynb")


def test_notebook_runs_in_this_venv_with_parameters(tmp_path: Path) -> None:
    source = notebook(
        tmp_path / "probe.ipynb",
        "import sys\nprint(sys.prefix)\nprint(repr(count), repr(label))",
        parameters="count = 1\nlabel = 'a'",
    )
    venv_bin = str(Path(sys.executable).parent)  # the kernel must not depend on the venv being on PATH
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != venv_bin)
    done = huntbook(
        "notebook", "run", str(source), "-p", "count=3", "-p", "label=x' y", cwd=tmp_path, PATH=path
    )
    assert done.returncode == 0, done.stderr
    printed = outputs(tmp_path / "probe.out.ipynb").splitlines()
    assert printed == [sys.prefix, '3 "x\' y"']


def test_failing_notebook_exits_1_with_the_cell_error(tmp_path: Path) -> None:
    source = notebook(tmp_path / "bad.ipynb", "x = 1", "raise ValueError('no such host: WS99')")
    done = huntbook("notebook", "run", str(source), "--out", "bad.out.ipynb", cwd=tmp_path)
    assert done.returncode == 1
    assert "failed: ValueError: no such host: WS99" in done.stderr
    assert "ValueError" in json.dumps(json.loads((tmp_path / "bad.out.ipynb").read_text()))


def test_notebook_that_does_not_write_its_report_is_an_error(tmp_path: Path) -> None:
    source = notebook(tmp_path / "quiet.ipynb", "print('hello')", parameters="report_path = None")
    done = huntbook("notebook", "run", str(source), "--report", "r.html", cwd=tmp_path)
    assert done.returncode == 2 and "the notebook did not write its report" in done.stderr


def test_backend_error_is_partial_and_keeps_secrets_out(tmp_path: Path) -> None:
    secret = "s3cr3t-Hunt-Pw"
    (tmp_path / "huntbook.yaml").write_text(
        "connections:\n  sql:\n    url: postgresql+psycopg://huntbook@127.0.0.1:9/hunt\n"
        "    password: env:HB_TEST_SQL_PASSWORD\n",
        encoding="utf-8",
    )
    write_hunt(
        tmp_path,
        """\
        name: remote
        backend: {env: sql}
        params: {host: SRV01}
        steps:
          - sql: SELECT * FROM process_events WHERE DvcHostname = {host}
            name: remote_rows
            finding: true
        """,
    )
    env = {**os.environ, "HB_TEST_SQL_PASSWORD": secret, "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    env.pop("HUNTBOOK_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-m", "huntbook", "hunt", "run", "hunt.yaml", "-o", "out"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == hunts.EXIT_PARTIAL, done.stderr
    assert "steps[0] (remote_rows) failed:" in done.stderr
    audit_text = (tmp_path / "out" / "audit.json").read_text()
    audit = json.loads(audit_text)
    assert audit["backend"]["env"] == "sql" and steps(audit)["remote_rows"]["status"] == "failed"
    assert "= 'SRV01'" in steps(audit)["remote_rows"]["query"]
    written = [
        done.stdout,
        done.stderr,
        *(p.read_text(errors="replace") for p in (tmp_path / "out").rglob("*.*")),
    ]
    assert not any(secret in text for text in written)


def test_kql_steps_quote_parameters_too(incident: dict[str, Any], tmp_path: Path) -> None:
    path = write_hunt(
        tmp_path,
        """\
        name: kql
        params: {host: SRV01.corp.local}
        steps:
          - kql: process_events | where DvcHostname == {host} | summarize n = count()
            name: counted
        outputs: {report: false, data: false}
        """,
    )
    real = hunts.run(path, store=incident["store"], out=tmp_path / "a")
    evil = hunts.run(path, params={"host": '" or 1 == 1 //'}, store=incident["store"], out=tmp_path / "b")
    assert real.exit_code == evil.exit_code == hunts.EXIT_OK, [*real.errors, *evil.errors]
    assert real.frames["counted"]["n"].iloc[0] > 0 and evil.frames["counted"]["n"].iloc[0] == 0
    assert '== "\\" or 1 == 1 //"' in str(evil.steps[0].query)


def test_rerun_into_the_same_folder_leaves_no_stale_files(incident: dict[str, Any], tmp_path: Path) -> None:
    path = write_hunt(
        tmp_path,
        """\
        name: rerun
        steps:
          - sql: SELECT count(*) AS n FROM process_events
            name: counted
        """,
    )
    first = hunts.run(path, store=incident["store"], out=tmp_path / "out")
    assert first.exit_code == 0 and (tmp_path / "out" / "data" / "counted.parquet").is_file()
    (tmp_path / "keep.txt").write_text("outside")
    audit = json.loads((tmp_path / "out" / "audit.json").read_text())
    audit["steps"][0]["files"].append({"path": "../keep.txt", "sha256": ""})
    (tmp_path / "out" / "audit.json").write_text(json.dumps(audit))
    broken = write_hunt(
        tmp_path, "name: rerun\nsteps: [{sql: SELECT * FROM nothing_here, name: counted}]\n", "b.yaml"
    )
    second = hunts.run(broken, store=incident["store"], out=tmp_path / "out")
    assert second.exit_code == hunts.EXIT_PARTIAL
    assert not (tmp_path / "out" / "data" / "counted.parquet").exists()  # not the first run's file
    assert (tmp_path / "keep.txt").read_text() == "outside"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty and holds no earlier hunt run"):
        hunts.run(path, store=incident["store"], out=tmp_path / "other")
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def test_hunt_parameters_cannot_reach_a_fragment(incident: dict[str, Any], tmp_path: Path) -> None:
    from huntbook.config import Config

    catalogue = tmp_path / "custom.yaml"
    catalogue.write_text(
        textwrap.dedent(
            """\
            metadata: {data_environments: [local], data_families: [custom], format: huntbook, language: sql}
            sources:
              filtered:
                description: Process events with an extra condition
                args: {query: "SELECT count(*) AS n FROM process_events WHERE {condition}"}
                parameters: {condition: {type: fragment, default: "true"}}
            """
        ),
        encoding="utf-8",
    )
    config = Config(query_paths=(catalogue,))
    text = "name: f\nparams: {clause: '1=1'}\nsteps: [{query: custom.filtered, params: {condition: '%s'}}]\n"
    literal = hunts.run(
        write_hunt(tmp_path, text % "EventType IS NOT NULL"), store=incident["store"], config=config,
        out=tmp_path / "a",
    )  # fmt: skip
    assert literal.exit_code == 0 and literal.frames["filtered"]["n"].iloc[0] > 0  # analyst-written text
    with pytest.raises(ConfigError, match=r"steps\[0\] \(filtered\): .* is query text \(a fragment\)"):
        hunts.run(write_hunt(tmp_path, text % "${clause}"), store=incident["store"], config=config)


def test_ti_enrichment_flags_the_attacker_from_local_feeds(incident: dict[str, Any], tmp_path: Path) -> None:
    intel = tmp_path / "intel"
    demo.write_intel(intel)
    path = write_hunt(
        tmp_path,
        f"""\
        name: ti
        params: {{intel: "{intel}", start: 2026-10-05, end: 2026-10-12}}
        steps:
          - query: process.encoded_commands
          - analysis: decode
            options: {{column: TargetProcessCommandLine}}
          - analysis: iocs
            options: {{columns: [text]}}
          - enrich: ti
            options:
              providers: [local_feeds]
              settings: {{local_feeds: {{paths: ["${{intel}}"]}}}}
              cache: false
            finding: true
        outputs: {{report: false}}
        """,
    )
    result = hunts.run(path, store=incident["store"], out=tmp_path / "out")
    assert result.exit_code == hunts.EXIT_FINDINGS, result.errors
    verdicts = result.frames["ti"].set_index("ioc")["severity"]
    truth = incident["truth"]
    assert verdicts[truth["attacker_ip"]] == "high" and verdicts[truth["download_url"]] == "high"
    assert result.steps[3].params["settings"] == {"local_feeds": {"paths": [str(intel)]}}
