"""The ``huntbook`` command line: ingest, query, IoCs, decode, Sigma, threat intel, GeoIP, whois, the demo.

Every command prints errors as one line naming what is wrong and the fix, and exits with
status 2; results go to standard output (``--format csv|json`` for pipes).
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from huntbook import config as hb_config
from huntbook.errors import HuntbookError, ParameterError

if TYPE_CHECKING:
    import pandas as pd

    from huntbook.session import QueryProvider
    from huntbook.store import LocalStore

app = typer.Typer(
    name="huntbook",
    help="Threat hunting from the command line: ingest logs, hunt, decode, run Sigma, report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


StoreOption = Annotated[
    Path | None,
    typer.Option("--store", "-s", help="LocalStore folder (default: 'store' in huntbook.yaml)."),
]


def _store(path: Path | None) -> LocalStore:
    from huntbook.store import LocalStore

    if path is None:
        path = hb_config.load().store
    if path is None:
        raise ParameterError("no store given", hint="pass --store DIR or set 'store:' in huntbook.yaml")
    return LocalStore(path)


def _provider(store: Path | None, environment: str) -> QueryProvider:
    from huntbook.session import QueryProvider

    if environment == "local":
        return QueryProvider("local", store=_store(store))
    return QueryProvider(environment)


def _emit(frame: pd.DataFrame, fmt: OutputFormat) -> None:
    if fmt is OutputFormat.csv:
        frame.to_csv(sys.stdout, index=False)
    elif fmt is OutputFormat.json:
        text = (frame.to_json(orient="records", lines=True, date_format="iso") or "").rstrip("\n")
        sys.stdout.write(text + "\n" if text else "")
    else:
        import pandas as pd

        with pd.option_context("display.max_colwidth", 80, "display.width", 200):
            typer.echo(frame.to_string(index=False) if len(frame) else "(no rows)")


def _params(pairs: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"--param {pair!r} is not NAME=VALUE", hint="e.g. --param host_name=WS01")
        params[key.strip()] = value
    return params


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (archives are opened).")],
    store: StoreOption = None,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress", help="Progress bar.")] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f", help="Summary format.")] = OutputFormat.table,
) -> None:
    """Ingest EVTX, JSON, CSV, Zeek, Suricata, Parquet ... into a LocalStore."""
    summary = _store(store).ingest(paths, progress=progress)
    _emit(summary, fmt)
    typer.echo(  # totals on stderr, so stdout stays machine-readable with --format csv/json
        f"{len(summary)} sources: {int(summary['records'].sum())} records read, "
        f"{int(summary['ingested'].sum())} ingested, {int(summary['duplicates'].sum())} duplicates, "
        f"{int(summary['quarantined'].sum())} quarantined",
        err=True,
    )


@app.command()
def query(
    name: Annotated[str | None, typer.Argument(help="Catalogue query, e.g. process.host_processes.")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE, repeatable.")] = None,
    sql: Annotated[
        str | None, typer.Option("--sql", help="Run this SQL instead of a catalogue query.")
    ] = None,
    kql: Annotated[
        str | None, typer.Option("--kql", help="Run this KQL instead (needs the kql extra).")
    ] = None,
    start: Annotated[str | None, typer.Option(help="Start time: ISO, or relative like -2d.")] = None,
    end: Annotated[str | None, typer.Option(help="End time: ISO, now, or relative.")] = None,
    store: StoreOption = None,
    env: Annotated[str, typer.Option("--env", help="Environment (driver).")] = "local",
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format.")] = OutputFormat.table,
    print_query: Annotated[
        bool, typer.Option("--print-query", help="Print the rendered query; run nothing.")
    ] = False,
    timeout: Annotated[float | None, typer.Option(help="Seconds before the query is cancelled.")] = None,
) -> None:
    """Run a catalogue query (NAME --param k=v ...) or ad-hoc --sql / --kql."""
    chosen = [x for x in (name, sql, kql) if x]
    if len(chosen) != 1:
        raise ParameterError("give exactly one of NAME, --sql or --kql", hint="see: huntbook queries")
    qp = _provider(store, env)
    if name:
        params = _params(param or [])
        params.update({k: v for k, v in (("start", start), ("end", end)) if v is not None})
        if timeout is not None:
            params["timeout"] = timeout
        result = qp.run(name, print_query=print_query, **params)
    else:
        text, language = (sql, "sql") if sql else (kql, "kql")
        if print_query:
            typer.echo(text)
            return
        result = qp.exec_query(text or "", language=language, timeout=timeout)
    if isinstance(result, str):
        typer.echo(result)
    else:
        _emit(result, fmt)


@app.command()
def queries(
    search: Annotated[str | None, typer.Argument(help="Only queries matching this text.")] = None,
    env: Annotated[str, typer.Option("--env", help="Environment (driver).")] = "local",
    store: StoreOption = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format.")] = OutputFormat.table,
) -> None:
    """List (or search) the catalogue queries of an environment."""
    from huntbook.session import QueryProvider

    qp = _provider(store, env) if store else QueryProvider(env)
    table = qp.browse()
    if search:
        table = table[table["query"].isin(set(qp.search(search)))]
    if fmt is OutputFormat.table:
        table = table[["query", "required", "description"]]
    _emit(table, fmt)


@app.command()
def tables(store: StoreOption = None) -> None:
    """Show the tables of a LocalStore with their row counts."""
    _emit(_store(store).describe(), OutputFormat.table)


SqlOption = Annotated[str | None, typer.Option("--sql", help="Take the rows from this SQL on --store.")]
KqlOption = Annotated[str | None, typer.Option("--kql", help="Take the rows from this KQL on --store.")]
QueryOption = Annotated[
    str | None, typer.Option("--query", "-q", help="Take the rows from this catalogue query (--param k=v).")
]
ParamOption = Annotated[list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE, repeatable.")]
FilesArgument = Annotated[
    list[Path] | None, typer.Argument(help="Text files: every line is a row ('-' reads standard input).")
]


def _rows(
    files: list[Path] | None,
    store: Path | None,
    sql: str | None,
    kql: str | None,
    name: str | None,
    param: list[str],
) -> pd.DataFrame:
    """The rows to analyse: lines of text files (index ``file:line``), or a query's result on a store."""
    import pandas as pd

    chosen = [x for x in (files, sql, kql, name) if x]
    if len(chosen) != 1:
        raise ParameterError("give files, or exactly one of --sql, --kql or --query", hint="see --help")
    if files:
        labels: list[str] = []
        lines: list[str] = []
        for path in files:
            if str(path) == "-":
                text = sys.stdin.read()
            else:
                if not path.is_file():
                    raise ParameterError("no such file", where=str(path), hint="check the path")
                text = path.read_text(encoding="utf-8", errors="replace")
            for number, line in enumerate(text.splitlines(), 1):
                labels.append(f"{path}:{number}")
                lines.append(line)
        return pd.DataFrame({"text": lines}, index=pd.Index(labels, name="line"))
    qp = _provider(store, "local")
    if name:
        frame: pd.DataFrame = qp.run(name, **_params(param))
        return frame
    text, language = (sql, "sql") if sql else (kql, "kql")
    return qp.exec_query(text or "", language=language)


@app.command()
def iocs(
    files: FilesArgument = None,
    column: Annotated[
        list[str] | None, typer.Option("--column", "-c", help="Columns to scan (default: all text).")
    ] = None,
    ioc_type: Annotated[
        list[str] | None, typer.Option("--type", "-t", help="IoC types, e.g. ipv4, url (default: all).")
    ] = None,
    store: StoreOption = None,
    sql: SqlOption = None,
    kql: KqlOption = None,
    query_name: QueryOption = None,
    param: ParamOption = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format.")] = OutputFormat.table,
) -> None:
    """Extract IoCs (IPs, domains, URLs, hashes, paths, ...) from files or a store query."""
    from huntbook import iocs as hb_iocs

    rows = _rows(files, store, sql, kql, query_name, param or [])
    _emit(hb_iocs.extract(rows, columns=column or None, ioc_types=ioc_type or None), fmt)


@app.command()
def decode(
    files: FilesArgument = None,
    column: Annotated[
        str | None, typer.Option("--column", "-c", help="Column to decode (files: the line).")
    ] = None,
    store: StoreOption = None,
    sql: SqlOption = None,
    kql: KqlOption = None,
    query_name: QueryOption = None,
    param: ParamOption = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format.")] = OutputFormat.table,
) -> None:
    """Decode base64, hex, URL encoding, gzip, zip ... layer by layer, from files or a store query."""
    from huntbook import decode as hb_decode

    rows = _rows(files, store, sql, kql, query_name, param or [])
    if column is None:
        if files:
            column = "text"
        else:
            raise ParameterError("which column holds the encoded text?", hint="pass --column NAME")
    _emit(hb_decode.unpack(rows, column=column), fmt)


def _values(values: list[str] | None, files: list[Path] | None) -> list[str]:
    """IoC values from arguments, plus IoCs extracted from text files ('-' is standard input)."""
    out = list(values or [])
    if files:
        from huntbook import iocs as hb_iocs

        rows = _rows(files, None, None, None, None, [])
        out += hb_iocs.extract(rows, columns=["text"])["value"].drop_duplicates().tolist()
    if not out:
        raise ParameterError("no values given", hint="pass values as arguments or --file FILE")
    return out


ValuesArgument = Annotated[list[str] | None, typer.Argument(help="IPs, domains, URLs or hashes.")]
ValueFileOption = Annotated[
    list[Path] | None, typer.Option("--file", help="Also take the IoCs found in this text file ('-': stdin).")
]
FormatOption = Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format.")]


@app.command("ti")
def ti_command(
    values: ValuesArgument = None,
    file: ValueFileOption = None,
    provider: Annotated[
        list[str] | None, typer.Option("--provider", "-P", help="Provider, repeatable (default: configured).")
    ] = None,
    ioc_type: Annotated[list[str] | None, typer.Option("--type", "-t", help="Only these IoC types.")] = None,
    rollup: Annotated[bool, typer.Option("--rollup", help="One row per IoC across providers.")] = False,
    list_providers: Annotated[bool, typer.Option("--list", help="List the installed providers.")] = False,
    cache: Annotated[bool, typer.Option("--cache/--no-cache", help="Use the on-disk answer cache.")] = True,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress", help="Progress bar.")] = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Threat intelligence for IoCs: offline feeds and iporigin, and the online providers you configured."""
    from huntbook import ti

    if list_providers:
        _emit(ti.providers(), fmt)
        return
    results = ti.lookup(
        _values(values, file), provider or None, ioc_types=ioc_type or None, cache=cache, progress=progress
    )
    if fmt is OutputFormat.table and not rollup:
        results = results.drop(columns=["raw"])
    _emit(ti.rollup(results) if rollup else results, fmt)
    failed = results["status"].isin(["error", "rate_limited"]).sum()
    typer.echo(f"{results['ioc'].nunique()} IoCs, {len(results)} answers, {failed} failed", err=True)


@app.command()
def geoip(
    values: ValuesArgument = None,
    file: ValueFileOption = None,
    mmdb: Annotated[
        list[Path] | None, typer.Option("--mmdb", help="MaxMind/DB-IP .mmdb file(s) to use (city, ASN).")
    ] = None,
    hosting: Annotated[bool, typer.Option("--hosting", help="Add hosting/VPN/Tor tags.")] = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Country, city and ASN of IP addresses, offline (geoip2fast data, or your .mmdb)."""
    from huntbook import enrich

    ips = _values(values, file)
    table = enrich.geoip(ips, mmdb=[str(m) for m in mmdb] if mmdb else None)
    if hosting:
        table = table.merge(enrich.hosting(ips), on="ip", how="left", suffixes=("", "_hosting"))
    _emit(table, fmt)


@app.command()
def whois(
    values: ValuesArgument = None,
    file: ValueFileOption = None,
    cache: Annotated[bool, typer.Option("--cache/--no-cache", help="Use the on-disk answer cache.")] = True,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Owner of IP networks and registration of domains (RDAP, online)."""
    from huntbook import enrich

    table = enrich.whois(_values(values, file), cache=None if cache else False)
    if fmt is OutputFormat.table:
        table = table.drop(columns=[c for c in ("raw",) if c in table.columns])
    _emit(table, fmt)


@app.command("pivots")
def pivots_command(
    target: Annotated[
        str | None, typer.Argument(help="An entity type (IpAddress, Dns ...) or a value (203.0.113.9).")
    ] = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """List the pivots of an entity type or value (all of them without an argument)."""
    from huntbook import api

    _emit(api.pivots(target).browse() if target else api.pivot_table(), fmt)


@app.command("upload")
def upload_command(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (CSV, JSON lines, Parquet ...).")],
    to: Annotated[str, typer.Option("--to", "-t", help="splunk, elastic, sentinel or local.")] = "local",
    setting: Annotated[
        list[str] | None,
        typer.Option("--set", help="NAME=VALUE uploader setting, repeatable (index=hunt, url=...)."),
    ] = None,
    store: StoreOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Push rows to a SIEM or a LocalStore; print the receipt (exit 0 only when every row arrived)."""
    from huntbook import upload

    settings = _params(setting or [])
    if to == "local":
        settings.setdefault("store", str(_store(store).path))
    receipt = upload.upload(paths, to=to, **settings)
    rejections = receipt.to_frame()
    if len(rejections):
        _emit(rejections, fmt)
    typer.echo(str(receipt), err=True)
    if not receipt.ok:
        raise SystemExit(1)


sigma_app = typer.Typer(help="Sigma rules: hunt them over a LocalStore, or convert them for a SIEM.")
app.add_typer(sigma_app, name="sigma")
RulesArgument = Annotated[list[Path], typer.Argument(help="Rule files, folders or zips (SigmaHQ layout).")]


@sigma_app.command("run")
def sigma_run(
    rules: RulesArgument,
    store: StoreOption = None,
    min_level: Annotated[
        str | None, typer.Option("--min-level", help="informational, low, medium, high, critical.")
    ] = None,
    status: Annotated[list[str] | None, typer.Option("--status", help="Rule status, repeatable.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Rule tag, e.g. attack.t1059.")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write every hit to .csv, .jsonl or .parquet.")
    ] = None,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress", help="Progress bar.")] = None,
) -> None:
    """Run Sigma rules over a LocalStore; print hits per rule (and write them with --output)."""
    from huntbook import sigma

    sigma.run_command(
        _store(store).path,
        rules,
        min_level=min_level,
        status=status,
        tags=tag,
        output=output,
        progress=progress,
    )


@sigma_app.command("convert")
def sigma_convert(
    rules: RulesArgument,
    target: Annotated[
        str, typer.Option("--target", "-t", help="splunk, kql, lucene, esql or eql.")
    ] = "splunk",
    pipeline: Annotated[
        str | None, typer.Option("--pipeline", help="e.g. sentinel_asim, microsoft_xdr, splunk_cim.")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the queries here.")] = None,
) -> None:
    """Convert Sigma rules to SIEM queries: one query per rule, failures listed at the end."""
    from huntbook import sigma

    sigma.convert_command(rules, target=target, pipeline=pipeline, output=output)


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("demo-output"),
    seed: Annotated[int, typer.Option(help="Seed of the synthetic incident.")] = 42,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress", help="Progress bars.")] = None,
) -> None:
    """Generate a synthetic incident, hunt it, and write an HTML report."""
    from huntbook import demo as hb_demo

    report = hb_demo.run(out, seed=seed, progress=progress, log=lambda msg: typer.echo(msg, err=True))
    typer.echo(str(report))


@app.command()
def investigate(
    kind: Annotated[
        str | None, typer.Argument(help="host, account, ip, logon_sessions, network or url.")
    ] = None,
    target: Annotated[str | None, typer.Argument(help="Host, account, IP, URL or domain.")] = None,
    store: StoreOption = None,
    env: Annotated[str, typer.Option("--env", help="Environment (driver) from huntbook.yaml.")] = "local",
    start: Annotated[str, typer.Option(help="Start time: ISO, or relative like -2d.")] = "-7d",
    end: Annotated[str, typer.Option(help="End time: ISO, now, or relative.")] = "now",
    skip: Annotated[list[str] | None, typer.Option("--skip", help="A part not to run, repeatable.")] = None,
    include: Annotated[
        list[str] | None, typer.Option("--include", help="An off-by-default part to run (e.g. whois).")
    ] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write the findings (.html or .md).")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the findings as JSON.")] = None,
    list_all: Annotated[
        bool, typer.Option("--list", help="List the investigations and their parts.")
    ] = False,
) -> None:
    """Investigate a host, account, IP, logon sessions, network flows or a URL/domain; print a summary."""
    from huntbook import investigations

    if list_all:
        _emit(investigations.list()[["name", "target", "parts"]], OutputFormat.table)
        return
    if not kind or not target:
        raise ParameterError("give KIND and TARGET", hint="e.g. huntbook investigate host WS01 --store DIR")
    found = investigations.run(
        kind, _provider(store, env), target, start, end, skip=skip or (), include=include or ()
    )
    typer.echo(found.title)
    for finding in found:
        typer.echo(f"  [{finding.severity}] {finding.title}: {finding.summary}".rstrip(": "))
    for note in found.notes:
        typer.echo(f"  note: {note}")
    typer.echo(f"  {len(found.queries)} queries run")
    if report is not None:
        typer.echo(str(found.save(report)))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(found.to_json() + "\n", encoding="utf-8")
        typer.echo(str(json_out))


splunk_app_cli = typer.Typer(help="Splunk: package the | huntbook search command as a Splunk app.")
app.add_typer(splunk_app_cli, name="splunk")


@splunk_app_cli.command("package")
def splunk_package(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the app folder into.")],
    python: Annotated[
        str | None, typer.Option("--python", help="Interpreter with huntbook installed (default: this one).")
    ] = None,
    tar: Annotated[bool, typer.Option("--tar", help="Also write <app>.spl (a .tgz) next to it.")] = False,
) -> None:
    """Write the Splunk app (commands.conf, launcher ...) for | huntbook decode|iocs|enrich."""
    from huntbook import splunk_app

    typer.echo(str(splunk_app.package(out, python=python or sys.executable, tar=tar)))


hunt_app = typer.Typer(help="Hunt files: run a YAML hunt unattended (cron, CI) or check one.")
app.add_typer(hunt_app, name="hunt")
HuntFileArgument = Annotated[Path | None, typer.Argument(help="The hunt file (YAML).")]
ExampleOption = Annotated[
    str | None, typer.Option("--example", help="A packaged example hunt instead (see: huntbook hunt list).")
]


def _hunt_file(path: Path | None, example: str | None) -> Path:
    from huntbook import hunts

    if (path is None) == (example is None):
        raise ParameterError("give a hunt file or --example NAME", hint="see: huntbook hunt list")
    return hunts.example(example) if example else Path(str(path))


@hunt_app.command("run")
def hunt_run(
    huntfile: HuntFileArgument = None,
    example: ExampleOption = None,
    param: ParamOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Results folder (default: NAME-<UTC time>); reusable.")
    ] = None,
    store: StoreOption = None,
    env: Annotated[str | None, typer.Option("--env", help="Environment, over the file's backend.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the outcome.")] = False,
) -> None:
    """Run a hunt file; write the report, data files and audit.json to --out.

    Exit codes:

    0 = ran fully, no findings

    1 = ran fully, findings

    2 = bad hunt file, parameter or usage: nothing ran

    3 = partial: a step or an output failed; the rest ran and was written (the message names the step)
    """
    from huntbook import hunts

    result = hunts.run(
        _hunt_file(huntfile, example),
        params=_params(param or []),
        out=out,
        store=store,
        environment=env,
        log=None if quiet else lambda message: typer.echo(message, err=True),
    )
    typer.echo(result.summary(), err=True)
    typer.echo(str(result.out_dir))
    raise SystemExit(result.exit_code)


@hunt_app.command("check")
def hunt_check(
    huntfile: HuntFileArgument = None,
    example: ExampleOption = None,
    param: ParamOption = None,
    store: StoreOption = None,
    env: Annotated[str | None, typer.Option("--env", help="Environment, over the file's backend.")] = None,
) -> None:
    """Validate a hunt file and its parameters against the query catalogue; run nothing (exit 0 or 2)."""
    from huntbook import hunts

    hunt = hunts.check(
        _hunt_file(huntfile, example), params=_params(param or []), store=store, environment=env
    )
    found = ", ".join(hunt.finding_steps) or "none"
    typer.echo(f"{hunt.source}: ok, {len(hunt.steps)} steps, findings from: {found}")


@hunt_app.command("list")
def hunt_list() -> None:
    """List the packaged example hunts (run one with --example NAME)."""
    from huntbook import hunts

    for name in hunts.examples():
        hunt = hunts.load(hunts.example(name))
        typer.echo(f"{name}: {hunt.description.splitlines()[0] if hunt.description else ''}")


notebook_app = typer.Typer(help="Notebooks: run a parameterised notebook with papermill.")
app.add_typer(notebook_app, name="notebook")


def _notebook_value(text: str) -> Any:
    """A -p value: a whole number or a decimal number as a number, anything else as text."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


@notebook_app.command("run")
def notebook_run(
    notebook: Annotated[Path, typer.Argument(help="The notebook (.ipynb), with a cell tagged 'parameters'.")],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="NAME=VALUE for the parameters cell, repeatable."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="The executed notebook (default: NAME.out.ipynb here).")
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option("--report", help="Passed as the report_path parameter; the notebook must write it."),
    ] = None,
    kernel: Annotated[str, typer.Option("--kernel", help="Jupyter kernel.")] = "python3",
) -> None:
    """Execute a notebook with papermill; exit 1 with the failing cell's error if a cell fails."""
    from huntbook import hunts
    from huntbook.errors import QueryError

    params = {key: _notebook_value(value) for key, value in _params(param or []).items()}
    if report is not None:
        params["report_path"] = str(report.expanduser().resolve())
        report.unlink(missing_ok=True)
    target = out or Path(f"{notebook.stem}.out.ipynb")
    try:
        hunts.run_notebook(notebook, target, params=params, kernel=kernel)
    except QueryError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None
    typer.echo(str(target))
    if report is not None:
        if not report.is_file():
            raise ParameterError(
                "the notebook did not write its report", where=str(report), hint="save it to report_path"
            )
        typer.echo(str(report))


def main() -> None:
    """Entry point of the ``huntbook`` command."""
    try:
        app()
    except HuntbookError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
