"""Hunt files: a hunt as YAML (queries, analyses, Sigma, enrichment, outputs), run unattended.

::

    result = hb.hunts.run("encoded-powershell.yaml", params={"host": "SRV01"}, out="results")
    result.exit_code        # 0 no findings, 1 findings, 3 partial (a step or an output failed)
    result.audit            # results/audit.json: what ran, with parameters, rows, timings, hashes

A hunt file (docs/hunts.md has the full reference)::

    name: encoded-powershell
    description: Encoded PowerShell on a host, decoded, with the IoCs it holds
    backend: {env: local, store: ./store}     # store: relative to this file; CLI --store/--env override
    params:                                   # defaults; --param NAME=VALUE overrides
      host: SRV01
      start: {type: datetime, default: -7d}
      end: now
    steps:
      - query: process.encoded_commands       # a catalogue query: hunt params it takes are passed
        name: encoded
        finding: true
      - sql: SELECT * FROM process_events WHERE DvcHostname = {host}   # {name}: a driver literal
      - analysis: decode                      # a df.hb method, on the previous step (or on: NAME)
        options: {column: TargetProcessCommandLine}
      - analysis: iocs
      - enrich: hosting                       # geoip | hosting | whois | ti
        column: value
      - sigma: packaged                       # huntbook's bundled rules, or rule paths
    findings: {when: [encoded], min_rows: 1}
    outputs:
      report: report.html                     # default report.html; false for none
      data: {format: parquet, steps: [encoded]}   # default: every step as parquet
      upload: {to: local, store: ./case, steps: [encoded]}

Parameter values are never pasted into query text: ``{name}`` placeholders of ``sql``/``kql`` steps
and catalogue parameters are turned into literals by the driver; ``${name}`` references are allowed
only in parameter and option values, never in query text. Exit codes: :data:`EXIT_CODES`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from huntbook import config as hb_config
from huntbook._types import PathLike
from huntbook.errors import ConfigError, HuntbookError, QueryError
from huntbook.queries import MISSING, PARAM_TYPES, Param, QuerySpec, suggest, tokenize
from huntbook.report import json_value

if TYPE_CHECKING:
    import pandas as pd

    from huntbook.report import Report
    from huntbook.session import QueryProvider

__all__ = [
    "ANALYSES",
    "ENRICHMENTS",
    "EXIT_CODES",
    "EXIT_FINDINGS",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_USAGE",
    "STEP_KINDS",
    "Hunt",
    "HuntParam",
    "HuntResult",
    "Step",
    "StepResult",
    "check",
    "example",
    "examples",
    "load",
    "loads",
    "run",
    "run_notebook",
]

EXIT_OK: Final = 0
EXIT_FINDINGS: Final = 1
EXIT_USAGE: Final = 2
EXIT_PARTIAL: Final = 3
#: Exit code -> meaning (``huntbook hunt run``). A partial run (3) wins over findings (1).
EXIT_CODES: Final = {
    EXIT_OK: "ran fully, no findings",
    EXIT_FINDINGS: "ran fully, findings",
    EXIT_USAGE: "bad hunt file, parameter or command line; nothing ran",
    EXIT_PARTIAL: "partial: a step or an output failed; the others ran and were written",
}

STEP_KINDS: Final = ("query", "sql", "kql", "analysis", "sigma", "enrich")
#: ``analysis:`` names -> what they do; each is the ``df.hb`` method of that name (huntbook.accessor).
ANALYSES: Final = {
    "iocs": "IoCs in the text columns (huntbook.iocs.extract)",
    "watch": "where literal indicators occur (huntbook.iocs.watch)",
    "decode": "decoded layers of a column (huntbook.decode.unpack)",
    "add_decoded": "the rows with the innermost decoded text added (huntbook.decode.add_decoded)",
    "proctree": "process trees (huntbook.proctree.build)",
    "summarize": "events binned into a time series (huntbook.timeseries.summarize)",
    "anomalies": "spikes and dips of a series (huntbook.timeseries.anomalies)",
    "beacons": "regular source/destination pairs (huntbook.timeseries.beacons)",
    "spray": "password spraying (huntbook.logons.spray)",
    "brute_force": "brute force against one account (huntbook.logons.brute_force)",
    "cluster": "process events clustered by command line (huntbook.cluster.events)",
    "outliers": "rows scored by how unusual they are (huntbook.outliers.find)",
    "sessionize": "a gap-based session id per group (huntbook.sessions.sessionize)",
    "rare_sessions": "sessions ranked by rare command sequences (huntbook.sessions.score)",
}
#: ``enrich:`` names: huntbook.enrich.geoip / hosting / whois (columns added) and huntbook.ti.lookup.
ENRICHMENTS: Final = ("geoip", "hosting", "whois", "ti")
DATA_FORMATS: Final = ("parquet", "csv")
#: Rows of a step that is not a finding shown in the report (its data file has them all).
STEP_ROWS: Final = 200

_KIND_KEYS: Final[dict[str, frozenset[str]]] = {
    "query": frozenset({"params"}),
    "sql": frozenset({"params", "types"}),
    "kql": frozenset({"params", "types"}),
    "analysis": frozenset({"on", "options"}),
    "sigma": frozenset({"min_level", "tags", "status"}),
    "enrich": frozenset({"on", "column", "options"}),
}
_TOP_KEYS = frozenset({"name", "description", "backend", "params", "steps", "findings", "outputs"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_HUNT_TYPES = PARAM_TYPES - {"fragment"}  # a hunt parameter is data, never query text
_SUFFIX = ".yaml"


# ---------------------------------------------------------------------------------------------------
# The hunt file


@dataclass(frozen=True)
class HuntParam:
    """A hunt parameter: its type (inferred from the default unless given) and default."""

    name: str
    type: str
    default: Any
    description: str = ""


@dataclass(frozen=True)
class Step:
    """One step of a hunt. ``target`` is the query name, the query text, the analysis or enrichment
    name, or the Sigma rule paths; ``on`` the input step (analysis and enrich)."""

    index: int
    name: str
    kind: str
    target: Any
    on: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    types: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    column: str | None = None
    finding: bool = False
    severity: str = "medium"
    title: str | None = None

    @property
    def label(self) -> str:
        """``steps[2] (encoded)``: how messages name the step."""
        return f"steps[{self.index}] ({self.name})"


@dataclass(frozen=True)
class Hunt:
    """A validated hunt file (:func:`load`)."""

    name: str
    description: str
    source: str
    sha256: str
    base: Path
    environment: str
    store: Path | None
    params: Mapping[str, HuntParam]
    steps: tuple[Step, ...]
    min_rows: int = 1
    report: str | None = "report.html"
    data_format: str | None = "parquet"
    data_steps: tuple[str, ...] | None = None
    upload: Mapping[str, Any] | None = None

    @property
    def finding_steps(self) -> list[str]:
        """Names of the steps whose rows are findings."""
        return [s.name for s in self.steps if s.finding]


class _Checker:
    """Builds ConfigErrors that name the hunt file and the field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, field_name: str, message: str, hint: str | None = None) -> ConfigError:
        return ConfigError(message, where=f"{self.source}: {field_name}", hint=hint)

    def mapping(self, value: Any, field_name: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.error(field_name, f"must be a mapping, not {type(value).__name__}")
        return {str(k): v for k, v in value.items()}

    def names(self, value: Any, field_name: str) -> list[str]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise self.error(field_name, "must be a step name or a list of step names")
        return list(items)


def load(path: PathLike) -> Hunt:
    """Read and validate a hunt file; :class:`ConfigError` names the file, the step and the field."""
    file = Path(path).expanduser()
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the hunt file: {exc.strerror or exc}", where=str(file)) from None
    return _parse(data, str(file), file.resolve().parent)


def loads(text: str, source: str = "<hunt>", base: PathLike = ".") -> Hunt:
    """Validate hunt-file text; relative paths in it are relative to ``base``."""
    return _parse(text.encode("utf-8"), source, Path(base).resolve())


def _parse(data: bytes, source: str, base: Path) -> Hunt:
    import yaml

    check = _Checker(source)
    try:
        raw = yaml.safe_load(data.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "file"
        raise check.error(where, f"invalid YAML: {getattr(exc, 'problem', None) or exc}") from None
    top = check.mapping(raw, "top level")
    unknown = sorted(set(top) - _TOP_KEYS)
    if unknown:
        raise check.error(unknown[0], "unknown key", hint=f"keys: {', '.join(sorted(_TOP_KEYS))}")
    name = top.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise check.error("name", "needs a name of letters, digits, '_' and '-'", hint="e.g. name: my-hunt")
    backend = check.mapping(top.get("backend"), "backend")
    bad = sorted(set(backend) - {"env", "store"})
    if bad:
        raise check.error(f"backend.{bad[0]}", "unknown key", hint="backend takes env and store")
    store = backend.get("store")
    if store is not None and not isinstance(store, str):
        raise check.error("backend.store", "must be a folder path")
    params = {k: _hunt_param(check, k, v) for k, v in check.mapping(top.get("params"), "params").items()}
    steps = _steps(check, top.get("steps"), params, base)
    names = [s.name for s in steps]
    findings = check.mapping(top.get("findings"), "findings")
    bad = sorted(set(findings) - {"when", "min_rows"})
    if bad:
        raise check.error(f"findings.{bad[0]}", "unknown key", hint="findings takes when and min_rows")
    when = check.names(findings.get("when", []), "findings.when")
    _known(check, when, names, "findings.when")
    steps = [dataclasses.replace(s, finding=True) if s.name in when else s for s in steps]
    min_rows = findings.get("min_rows", 1)
    if isinstance(min_rows, bool) or not isinstance(min_rows, int) or min_rows < 1:
        raise check.error("findings.min_rows", f"{min_rows!r} is not a whole number above 0")
    outputs = _outputs(check, top.get("outputs"), names)
    return Hunt(
        name=name,
        description=str(top.get("description") or "").strip(),
        source=source,
        sha256=hashlib.sha256(data).hexdigest(),
        base=base,
        environment=str(backend.get("env") or "local"),
        store=(base / Path(store).expanduser()) if store else None,
        params=params,
        steps=tuple(steps),
        min_rows=min_rows,
        **outputs,
    )


def _known(check: _Checker, wanted: Sequence[str], names: Sequence[str], field_name: str) -> None:
    for item in wanted:
        if item not in names:
            raise check.error(field_name, f"no step named {item!r}", hint=suggest(item, names) or None)


def _infer_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, date | datetime):
        return "datetime"
    if isinstance(value, list):
        return "list"
    return "str"


def _hunt_param(check: _Checker, name: str, spec: Any) -> HuntParam:
    where = f"params.{name}"
    if not _NAME.fullmatch(name) or "-" in name:
        raise check.error(where, "a parameter name is letters, digits and '_'")
    if isinstance(spec, Mapping):
        extra = sorted(set(spec) - {"type", "default", "description"})
        if extra:
            raise check.error(f"{where}.{extra[0]}", "unknown key", hint="type, default and description")
        default = spec.get("default", MISSING)
        ptype = str(spec.get("type") or (_infer_type(default) if default is not MISSING else "str"))
        description = str(spec.get("description") or "")
    else:
        default, description = spec, ""
        ptype = "datetime" if name in ("start", "end") else _infer_type(spec)
    if ptype not in _HUNT_TYPES:
        raise check.error(f"{where}.type", f"unknown type {ptype!r}", hint=f"one of {sorted(_HUNT_TYPES)}")
    return HuntParam(name, ptype, default, description)


def _references(value: Any) -> list[str]:
    if isinstance(value, str):
        return _REFERENCE.findall(value)
    if isinstance(value, Mapping):
        return [r for v in value.values() for r in _references(v)]
    if isinstance(value, list):
        return [r for v in value for r in _references(v)]
    return []


def _steps(check: _Checker, raw: Any, params: Mapping[str, HuntParam], base: Path) -> list[Step]:
    if not isinstance(raw, list) or not raw:
        raise check.error(
            "steps", "needs a list of steps", hint="e.g. steps: [{query: process.encoded_commands}]"
        )
    steps: list[Step] = []
    for index, item in enumerate(raw):
        steps.append(_step(check, index, item, params, base, steps))
    return steps


def _step(
    check: _Checker, index: int, item: Any, params: Mapping[str, HuntParam], base: Path, before: list[Step]
) -> Step:
    if isinstance(item, Mapping) and True in item:  # YAML 1.1 reads a bare `on:` key as true
        item = {("on" if k is True else k): v for k, v in item.items()}
    entry = check.mapping(item, f"steps[{index}]")
    kinds = [k for k in STEP_KINDS if k in entry]
    if len(kinds) != 1:
        raise check.error(
            f"steps[{index}]",
            f"needs exactly one of {', '.join(STEP_KINDS)}",
            hint=f"found {kinds or 'none'}",
        )
    kind = kinds[0]
    target = entry[kind]
    name = entry.get("name", _default_name(kind, target, index))
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise check.error(f"steps[{index}].name", f"{name!r} is not a name of letters, digits, '_' and '-'")
    label = f"steps[{index}] ({name})"
    if any(s.name == name for s in before):
        raise check.error(
            f"{label}.name", "another step has this name", hint="give each step a distinct name"
        )
    allowed = {kind, "name", "title", "finding", "severity"} | _KIND_KEYS[kind]
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise check.error(
            f"{label}.{unknown[0]}", "unknown key", hint=f"{kind} steps take {', '.join(sorted(allowed))}"
        )
    for key in ("params", "options", "types"):
        entry[key] = check.mapping(entry.get(key), f"{label}.{key}")
    for ref in _references([entry["params"], entry["options"], entry.get("column")]):
        if ref not in params:
            raise check.error(
                f"{label}", f"${{{ref}}} names no hunt parameter", hint="declare it under params:"
            )
    for key, ptype in entry["types"].items():
        if ptype not in _HUNT_TYPES:
            raise check.error(
                f"{label}.types.{key}", f"unknown type {ptype!r}", hint=f"one of {sorted(_HUNT_TYPES)}"
            )
    target = _target(check, label, kind, target, base)
    on = entry.get("on")
    if kind in ("analysis", "enrich"):
        if on is None:
            if not before:
                raise check.error(f"{label}.on", f"an {kind} step needs an earlier step to work on")
            on = before[-1].name
        _known(check, [on], [s.name for s in before], f"{label}.on")
    column = entry.get("column")
    if column is not None and not isinstance(column, str):
        raise check.error(f"{label}.column", "must be a column name")
    severity = str(entry.get("severity", "medium"))
    from huntbook.report import SEVERITIES

    if severity not in SEVERITIES:
        raise check.error(f"{label}.severity", f"unknown severity {severity!r}", hint=f"one of {SEVERITIES}")
    finding = entry.get("finding", False)
    if not isinstance(finding, bool):
        raise check.error(f"{label}.finding", "must be true or false")
    options = dict(entry["options"])
    if kind == "sigma":
        options.update({k: entry[k] for k in ("min_level", "tags", "status") if k in entry})
    return Step(
        index=index,
        name=name,
        kind=kind,
        target=target,
        on=on,
        params=entry["params"],
        types=entry["types"],
        options=options,
        column=column,
        finding=finding,
        severity=severity,
        title=str(entry["title"]) if entry.get("title") else None,
    )


def _default_name(kind: str, target: Any, index: int) -> str:
    if kind == "query" and isinstance(target, str):
        return target.rpartition(".")[2]
    if kind in ("analysis", "enrich") and isinstance(target, str):
        return target
    return "sigma" if kind == "sigma" else f"{kind}{index}"


def _target(check: _Checker, label: str, kind: str, target: Any, base: Path) -> Any:
    where = f"{label}.{kind}"
    if kind == "sigma":
        paths = [target] if isinstance(target, str) else target
        if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
            raise check.error(where, "needs 'packaged' or a list of rule files and folders")
        return tuple(p if p == "packaged" else str(base / Path(p).expanduser()) for p in paths)
    if not isinstance(target, str) or not target.strip():
        what = {"query": "a catalogue query name", "sql": "SQL text", "kql": "KQL text"}.get(kind, "a name")
        raise check.error(where, f"needs {what}")
    if kind in ("sql", "kql") and _REFERENCE.search(target):
        raise check.error(
            where,
            "${...} references are not allowed in query text (values are never pasted into queries)",
            hint="write {name} placeholders: the driver turns each value into a literal",
        )
    if kind == "analysis" and target not in ANALYSES:
        raise check.error(where, f"unknown analysis {target!r}", hint=f"one of {', '.join(ANALYSES)}")
    if kind == "enrich" and target not in ENRICHMENTS:
        raise check.error(where, f"unknown enrichment {target!r}", hint=f"one of {', '.join(ENRICHMENTS)}")
    return target


def _outputs(check: _Checker, raw: Any, names: list[str]) -> dict[str, Any]:
    outputs = check.mapping(raw, "outputs")
    bad = sorted(set(outputs) - {"report", "data", "upload"})
    if bad:
        raise check.error(f"outputs.{bad[0]}", "unknown key", hint="outputs takes report, data and upload")
    result: dict[str, Any] = {}
    report = outputs.get("report", "report.html")
    if report is not False and report is not None:
        suffix = Path(report).suffix.lower() if isinstance(report, str) else ""
        if (
            not isinstance(report, str)
            or Path(report).name != report
            or suffix not in (".html", ".htm", ".md")
        ):
            raise check.error(
                "outputs.report", f"{report!r} is not a .html or .md file name", hint="it is written in --out"
            )
        result["report"] = report
    else:
        result["report"] = None
    data = outputs.get("data", {})
    if data is False or data is None:
        result["data_format"] = None
    else:
        data = check.mapping(data, "outputs.data")
        fmt = data.get("format", "parquet")
        if fmt not in DATA_FORMATS:
            raise check.error("outputs.data.format", f"unknown format {fmt!r}", hint="parquet or csv")
        result["data_format"] = fmt
        if "steps" in data:
            result["data_steps"] = tuple(check.names(data["steps"], "outputs.data.steps"))
            _known(check, result["data_steps"], names, "outputs.data.steps")
    if outputs.get("upload"):
        upload = check.mapping(outputs["upload"], "outputs.upload")
        if not isinstance(upload.get("to"), str):
            raise check.error(
                "outputs.upload.to", "names no uploader", hint="to: local, splunk, elastic, sentinel"
            )
        if "steps" in upload:
            _known(check, check.names(upload["steps"], "outputs.upload.steps"), names, "outputs.upload.steps")
        result["upload"] = upload
    return result


# ---------------------------------------------------------------------------------------------------
# Packaged examples


def examples() -> list[str]:
    """Names of the packaged example hunts (``huntbook hunt run --example NAME``)."""
    from importlib import resources

    folder = resources.files("huntbook") / "huntfiles"
    return sorted(f.name[: -len(_SUFFIX)] for f in folder.iterdir() if f.name.endswith(_SUFFIX))


def example(name: str) -> Path:
    """The path of a packaged example hunt file."""
    from importlib import resources

    path = Path(str(resources.files("huntbook") / "huntfiles" / f"{name}{_SUFFIX}"))
    if not path.is_file():
        raise ConfigError(
            f"no example hunt {name!r}",
            hint=suggest(name, examples()) or f"examples: {', '.join(examples())}",
        )
    return path


# ---------------------------------------------------------------------------------------------------
# Running


@dataclass
class StepResult:
    """What one step did: ``status`` is ``ok``, ``failed`` or ``skipped`` (its input failed)."""

    step: Step
    status: str = "ok"
    rows: int | None = None
    seconds: float = 0.0
    error: str | None = None
    query: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)
    finding: bool = False


@dataclass
class HuntResult:
    """The outcome of :func:`run`: exit code, step results, the files written and the audit log."""

    hunt: Hunt
    out_dir: Path
    exit_code: int
    steps: list[StepResult]
    params: dict[str, Any]
    frames: dict[str, pd.DataFrame]
    output_errors: list[str] = field(default_factory=list)
    uploads: list[dict[str, Any]] = field(default_factory=list)
    report: Path | None = None
    audit: Path | None = None

    @property
    def findings(self) -> list[str]:
        """Names of the steps that found something."""
        return [r.step.name for r in self.steps if r.finding]

    @property
    def errors(self) -> list[str]:
        """One line per failed or skipped step and failed output."""
        lines = [f"{r.step.label} {r.status}: {r.error}" for r in self.steps if r.status != "ok"]
        return lines + self.output_errors

    def summary(self) -> str:
        """A few lines for a terminal or a cron mail: the outcome, then what failed."""
        head = f"hunt {self.hunt.name}: {EXIT_CODES[self.exit_code]} (exit {self.exit_code})"
        found = ", ".join(f"{r.step.name} ({r.rows} rows)" for r in self.steps if r.finding)
        lines = [head, *(["findings: " + found] if found else []), *self.errors]
        return "\n".join([*lines, f"results: {self.out_dir}"])


def _now() -> datetime:
    return datetime.now(UTC)


def _resolve_params(hunt: Hunt, overrides: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    from huntbook.errors import ParameterError

    unknown = sorted(set(overrides) - set(hunt.params))
    if unknown:
        raise ConfigError(
            f"--param {unknown[0]}: the hunt has no such parameter",
            where=hunt.source,
            hint=suggest(unknown[0], hunt.params) or f"parameters: {', '.join(hunt.params) or 'none'}",
        )
    values: dict[str, Any] = {}
    for name, param in hunt.params.items():
        value = overrides.get(name, param.default)
        if value is MISSING:
            raise ConfigError(
                f"parameter {name!r} has no default", where=hunt.source, hint=f"pass --param {name}=VALUE"
            )
        try:
            values[name] = Param(name, param.type).coerce(value, now)
        except ParameterError as exc:
            raise ConfigError(exc.message, where=f"{hunt.source}: params.{name}", hint=exc.hint) from None
    return values


def _substitute(value: Any, values: Mapping[str, Any]) -> Any:
    """``${name}`` references replaced: a whole-string reference keeps the value's type."""
    if isinstance(value, str):
        whole = _REFERENCE.fullmatch(value)
        if whole:
            return values[whole.group(1)]
        return _REFERENCE.sub(lambda m: _plain_text(values[m.group(1)]), value)
    if isinstance(value, Mapping):
        return {k: _substitute(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, values) for v in value]
    return value


def _plain_text(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _provider(
    hunt: Hunt, store: PathLike | None, environment: str | None, config: hb_config.Config
) -> QueryProvider:
    from huntbook.session import QueryProvider
    from huntbook.store import LocalStore

    env = environment or hunt.environment
    if env != "local":
        return QueryProvider(env, config=config)
    folder = Path(store).expanduser() if store is not None else hunt.store or config.store
    if folder is None:
        raise ConfigError(
            "no store to hunt in", where=hunt.source, hint="pass --store DIR, or set backend.store or store:"
        )
    if not folder.is_dir():
        raise ConfigError("no LocalStore here", where=str(folder), hint="check --store / backend.store")
    return QueryProvider("local", store=LocalStore(folder), config=config)


@dataclass
class _Plan:
    """A step's query, bound before anything runs (bad parameters stop the hunt with exit 2)."""

    spec: QuerySpec
    values: dict[str, Any]


def _plan(hunt: Hunt, qp: QueryProvider, values: Mapping[str, Any], now: datetime) -> dict[str, _Plan]:
    from huntbook.errors import ParameterError

    plans: dict[str, _Plan] = {}
    for step in hunt.steps:
        if step.kind not in ("query", "sql", "kql"):
            continue
        try:
            if step.kind == "query":
                spec = qp.query_spec(step.target)
                given = _query_values(step, spec, values)
            else:
                spec, given = _adhoc_spec(hunt, step, values)
            bound = dict(given)
            spec.bind({k: v for k, v in bound.items() if k not in ("timeout", "split_by")}, now)
        except (QueryError, ParameterError) as exc:
            raise ConfigError(exc.message, where=f"{hunt.source}: {step.label}", hint=exc.hint) from None
        plans[step.name] = _Plan(spec, bound)
    return plans


def _query_values(step: Step, spec: QuerySpec, values: Mapping[str, Any]) -> dict[str, Any]:
    """A catalogue query's parameters: the hunt parameters it takes (by name or alias), then ``params:``."""
    canonical = {alias: p.name for p in spec.parameters.values() for alias in p.aliases}
    canonical.update({n: n for n in spec.parameters})
    given: dict[str, Any] = {}
    for name, value in values.items():
        if name in canonical and canonical[name] not in given:
            given[canonical[name]] = value
    for key, raw in step.params.items():
        name = canonical.get(key, key)
        param = spec.parameters.get(name)
        if param is not None and param.type == "fragment" and _references(raw):
            raise QueryError(
                f"parameter {key!r} of {spec.qualified_name} is query text (a fragment): "
                "hunt parameters cannot be pasted into it",
                hint="write the fragment literally in the hunt file, or use a typed parameter",
            )
        given[name] = _substitute(raw, values)
    return given


def _adhoc_spec(hunt: Hunt, step: Step, values: Mapping[str, Any]) -> tuple[QuerySpec, dict[str, Any]]:
    """An ``sql``/``kql`` step as a query spec: ``{name}`` placeholders of step or hunt parameters."""
    types = {name: p.type for name, p in hunt.params.items()}
    given = dict(values)
    for key, raw in step.params.items():
        whole = _REFERENCE.fullmatch(raw) if isinstance(raw, str) else None
        types[key] = types[whole.group(1)] if whole else _infer_type(raw)
        given[key] = _substitute(raw, values)
    types.update(step.types)
    segments = tokenize(step.target, types, step.kind)
    used = {s.name for s in segments if not isinstance(s, str)}
    params = {n: Param(n, types[n]) for n in used}
    spec = QuerySpec(
        name=step.name.replace("-", "_"),
        family="hunt",
        description="",
        query=step.target,
        environment=hunt.environment,
        language=step.kind,
        parameters=params,
        source=hunt.source,
        segments=tuple(segments),
    )
    return spec, {n: given[n] for n in used}


def run(
    hunt: Hunt | PathLike,
    *,
    params: Mapping[str, Any] | None = None,
    out: PathLike | None = None,
    store: PathLike | None = None,
    environment: str | None = None,
    config: hb_config.Config | None = None,
    log: Callable[[str], None] | None = None,
) -> HuntResult:
    """Run a hunt: every step (a failed step does not stop the others), then the outputs and
    ``audit.json`` in ``out`` (default ``<name>-<UTC time>`` in the working folder).

    ``params`` override the hunt's defaults (strings are converted to the parameter's type).
    Problems with the hunt file or parameters raise :class:`ConfigError` before anything runs;
    failures while running are recorded and give :data:`EXIT_PARTIAL`.
    """
    hunt = hunt if isinstance(hunt, Hunt) else load(hunt)
    say = log or (lambda _message: None)
    started, clock = _now(), time.perf_counter()
    config = config if config is not None else hb_config.load()
    values = _resolve_params(hunt, params or {}, started)
    qp = _provider(hunt, store, environment, config)
    plans = _plan(hunt, qp, values, started)
    out_dir = Path(out).expanduser() if out is not None else Path(f"{hunt.name}-{started:%Y%m%dT%H%M%SZ}")
    _clear_results(out_dir)
    try:
        outcome = _run_steps(hunt, qp, plans, values, out_dir, say)
        _write_outputs(outcome, qp, config, say)
    finally:
        qp.close()
    partial = any(r.status != "ok" for r in outcome.steps) or outcome.output_errors
    outcome.exit_code = EXIT_PARTIAL if partial else EXIT_FINDINGS if outcome.findings else EXIT_OK
    outcome.audit = _write_audit(outcome, qp, started, time.perf_counter() - clock)
    return outcome


def _clear_results(out_dir: Path) -> None:
    """Make ``out_dir``, or empty it of an earlier run's files (those its audit.json lists), so no stale
    file is taken for this run's; a non-empty folder that holds no earlier run is refused."""
    if out_dir.is_dir() and any(out_dir.iterdir()):
        try:
            earlier = json.loads((out_dir / "audit.json").read_text(encoding="utf-8"))
            files = [f["path"] for s in earlier["steps"] for f in s["files"]]
            report = earlier["outputs"]["report"]
        except (OSError, ValueError, KeyError, TypeError):
            raise ConfigError(
                "the results folder is not empty and holds no earlier hunt run",
                where=str(out_dir),
                hint="choose a new or empty --out folder",
            ) from None
        root = out_dir.resolve()
        for name in [*files, *([report["path"]] if report else []), "audit.json"]:
            path = (out_dir / str(name)).resolve()
            if path.is_relative_to(root):  # an edited audit.json cannot delete files elsewhere
                path.unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)


def _run_steps(
    hunt: Hunt,
    qp: QueryProvider,
    plans: Mapping[str, _Plan],
    values: dict[str, Any],
    out_dir: Path,
    say: Callable[[str], None],
) -> HuntResult:
    """Every step in order; a failure is recorded and the steps that do not need its result still run."""
    frames: dict[str, pd.DataFrame] = {}
    results: list[StepResult] = []
    for step in hunt.steps:
        result = StepResult(step)
        results.append(result)
        if step.on is not None and step.on not in frames:
            result.status, result.error = "skipped", f"its input step {step.on!r} did not run"
            say(f"{step.label}: skipped ({result.error})")
            continue
        say(f"{step.label}: {step.kind}")
        tick = time.perf_counter()
        try:
            frame = _run_step(step, qp, plans.get(step.name), frames, values, result)
        except Exception as exc:  # any failure is recorded; the other steps still run
            result.status = "failed"
            result.error = str(exc) if isinstance(exc, HuntbookError) else f"{type(exc).__name__}: {exc}"
            say(f"{step.label}: failed: {result.error}")
        else:
            frames[step.name] = frame
            result.rows = len(frame)
            result.finding = step.finding and len(frame) >= hunt.min_rows
        result.seconds = round(time.perf_counter() - tick, 3)
    return HuntResult(hunt, out_dir, EXIT_OK, results, values, frames)


def _run_step(
    step: Step,
    qp: QueryProvider,
    plan: _Plan | None,
    frames: Mapping[str, pd.DataFrame],
    values: Mapping[str, Any],
    result: StepResult,
) -> pd.DataFrame:
    if plan is not None:
        result.params = json_value(plan.values)
        if step.kind == "query":
            result.query = qp.render(plan.spec.qualified_name, **plan.values)
            frame: pd.DataFrame = qp.run(plan.spec.qualified_name, **plan.values)
            return frame
        bound = plan.spec.bind(plan.values)
        driver = qp.driver
        result.query = plan.spec.render(bound, lambda v, t, q: driver.literal(v, t, q, step.kind))
        return qp.exec_query(result.query, language=step.kind)
    options = _substitute(dict(step.options), values)
    result.params = json_value(options)
    if step.kind == "sigma":
        return _sigma(step, qp, options)
    source = frames[str(step.on)]
    if step.kind == "analysis":
        from huntbook import accessor  # noqa: F401  (registers df.hb)

        method = getattr(source.hb, step.target)
        out: pd.DataFrame = method(**options)
        return out
    column = _substitute(step.column, values) if step.column else None
    if column:
        result.params["column"] = column
    if step.target == "ti":
        from huntbook import ti

        return ti.lookup(source, column=column, **options)
    from huntbook import enrich

    function = {"geoip": enrich.geoip, "hosting": enrich.hosting, "whois": enrich.whois}[step.target]
    enriched: pd.DataFrame = function(source, column, **options)
    return enriched


def _sigma(step: Step, qp: QueryProvider, options: Mapping[str, Any]) -> pd.DataFrame:
    from huntbook import sigma

    store = getattr(qp.driver, "store", None)
    if store is None:
        raise QueryError("Sigma steps run on a LocalStore", hint="use backend env: local with a store")
    paths = [str(Path(__file__).with_name("rules")) if p == "packaged" else p for p in step.target]
    rules = sigma.load(paths, progress=False)
    wanted = {k: options[k] for k in ("min_level", "tags", "status") if k in options}
    if wanted:
        rules = rules.filter(**wanted)
    return sigma.hunt(store, rules, progress=False)


# ---------------------------------------------------------------------------------------------------
# Outputs and the audit log


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _flat(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose dict/list/set cells are JSON text (for CSV, and Parquet when nesting fails)."""
    out = frame.copy()
    for column in out.columns:
        if (
            out[column].dtype == object
            and out[column].map(lambda v: isinstance(v, dict | list | set | tuple)).any()
        ):
            out[column] = out[column].map(
                lambda v: (
                    json.dumps(json_value(list(v) if isinstance(v, set) else v), sort_keys=True)
                    if isinstance(v, dict | list | set | tuple)
                    else v
                )
            )
    return out


def _write_frame(frame: pd.DataFrame, path: Path, fmt: str) -> None:
    frame = frame.copy(deep=False)
    frame.attrs = {}  # the query text is in the audit log; other attrs (frames) do not serialise
    if fmt == "csv":
        _flat(frame).to_csv(path, index=False)
        return
    try:
        frame.to_parquet(path, index=False)
    except Exception:  # pyarrow could not nest a column: write it as JSON text
        _flat(frame).to_parquet(path, index=False)


def _write_outputs(
    result: HuntResult, qp: QueryProvider, config: hb_config.Config, say: Callable[[str], None]
) -> None:
    hunt = result.hunt
    by_name = {r.step.name: r for r in result.steps}
    if hunt.data_format:
        folder = result.out_dir / "data"
        folder.mkdir(exist_ok=True)
        for name in hunt.data_steps or list(by_name):
            if name not in result.frames:
                continue
            path = folder / f"{name}.{hunt.data_format}"
            try:
                _write_frame(result.frames[name], path, hunt.data_format)
            except Exception as exc:  # recorded; other outputs are still written
                result.output_errors.append(f"data file {path}: {type(exc).__name__}: {exc}")
                continue
            by_name[name].files.append(
                {"path": str(path.relative_to(result.out_dir)), "sha256": _sha256(path)}
            )
    if hunt.upload:
        _upload(result, config, say)
    if hunt.report:
        path = result.out_dir / hunt.report
        try:
            result.report = _report(result).save(path)
            say(f"report: {path}")
        except Exception as exc:  # recorded in the audit
            result.output_errors.append(f"report {path}: {type(exc).__name__}: {exc}")


def _upload(result: HuntResult, config: hb_config.Config, say: Callable[[str], None]) -> None:
    import pandas as pd

    from huntbook import upload

    assert result.hunt.upload is not None
    settings = dict(result.hunt.upload)
    target = str(settings.pop("to"))
    names = settings.pop("steps", None)
    names = [names] if isinstance(names, str) else names or result.hunt.finding_steps
    settings = _substitute(settings, result.params)
    if target == "local" and isinstance(settings.get("store"), str):
        settings["store"] = str(result.hunt.base / Path(settings["store"]).expanduser())
    settings = hb_config._wrap_secrets(settings)  # env:/keyring:/file: values stay references until used
    for name in names:
        frame = result.frames.get(name)
        if frame is None or frame.empty:
            continue
        try:
            receipt = upload.upload(pd.DataFrame(frame), to=target, config=config, **settings)
        except Exception as exc:  # recorded in the audit
            result.output_errors.append(f"upload of {name} to {target}: {exc}")
            continue
        say(f"upload {name}: {receipt}")
        result.uploads.append({"step": name, "to": target, "receipt": str(receipt), "ok": receipt.ok})
        if not receipt.ok:
            result.output_errors.append(f"upload of {name} to {target}: {receipt}")


def _what(step: Step) -> str:
    """A step's target in one short line (its query text is in its own section)."""
    if step.kind == "sigma":
        return ", ".join(step.target)
    text = str(step.target).strip()
    first = text.splitlines()[0]
    return first if first == text and len(first) <= 80 else first[:77] + " ..."


def _report(result: HuntResult) -> Report:
    from huntbook.report import Evidence, Finding, Report, Text

    hunt = result.hunt
    findings = [
        Finding(
            r.step.title or f"{r.step.name}: {r.rows} rows",
            severity=r.step.severity,
            tables=[Evidence(result.frames[r.step.name], r.query)],
        )
        for r in result.steps
        if r.finding
    ]
    report = Report.from_findings(findings, f"Hunt: {hunt.name}", hunt.description or None)
    import pandas as pd

    table = pd.DataFrame(
        [
            {
                "step": r.step.name,
                "kind": r.step.kind,
                "what": _what(r.step),
                "status": r.status,
                "rows": r.rows,
                "seconds": r.seconds,
                "finding": r.finding,
                "error": r.error or "",
            }
            for r in result.steps
        ]
    )
    facts = {f"param {k}": _plain_text(v) for k, v in result.params.items()}
    outcome = "partial: some steps failed" if result.errors else "complete"
    run = report.add("Hunt run", text=f"Run {outcome}; {len(findings)} finding(s).", facts=facts, table=table)
    for line in result.errors:
        run.append(Text(line))
    report.sections.insert(0, report.sections.pop())
    for r in result.steps:
        if r.status == "ok" and not r.finding:
            frame = result.frames[r.step.name]
            title = f"Step {r.step.name} ({r.rows} rows)"
            report.add(title, table=frame, query=r.query, max_rows=STEP_ROWS)
    return report


def _write_audit(result: HuntResult, qp: QueryProvider, started: datetime, seconds: float) -> Path:
    from importlib.metadata import PackageNotFoundError, version

    try:
        huntbook_version = version("huntbook")
    except PackageNotFoundError:  # run from a source tree
        huntbook_version = "unknown"

    hunt = result.hunt
    store = getattr(qp.driver, "store", None)
    audit = {
        "huntbook_version": huntbook_version,
        "hunt": {"name": hunt.name, "file": hunt.source, "sha256": hunt.sha256},
        "started": started.isoformat(),
        "finished": _now().isoformat(),
        "seconds": round(seconds, 3),
        "backend": {"env": qp.environment, "store": str(getattr(store, "path", "")) or None},
        "params": json_value(result.params),
        "exit_code": result.exit_code,
        "status": EXIT_CODES[result.exit_code],
        "findings": result.findings,
        "steps": [
            {
                "index": r.step.index,
                "name": r.step.name,
                "kind": r.step.kind,
                "target": json_value(r.step.target),
                "query": r.query,
                "params": r.params,
                "status": r.status,
                "rows": r.rows,
                "seconds": r.seconds,
                "finding": r.finding,
                "error": r.error,
                "files": r.files,
            }
            for r in result.steps
        ],
        "outputs": {
            "report": (
                {"path": str(result.report.relative_to(result.out_dir)), "sha256": _sha256(result.report)}
                if result.report
                else None
            ),
            "uploads": result.uploads,
            "errors": result.output_errors,
        },
    }
    path = result.out_dir / "audit.json"
    path.write_text(json.dumps(audit, indent=2) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------------
# Checking and notebooks


def check(
    hunt: Hunt | PathLike,
    *,
    params: Mapping[str, Any] | None = None,
    store: PathLike | None = None,
    environment: str | None = None,
    config: hb_config.Config | None = None,
) -> Hunt:
    """Validate a hunt file and its parameters against the catalogue, running nothing."""
    from huntbook.session import QueryProvider

    hunt = hunt if isinstance(hunt, Hunt) else load(hunt)
    config = config if config is not None else hb_config.load()
    now = _now()
    values = _resolve_params(hunt, params or {}, now)
    env = environment or hunt.environment
    if store is not None or hunt.store is not None or env != "local":
        qp = _provider(hunt, store, environment, config)
    else:
        qp = QueryProvider(env, config=config)
    _plan(hunt, qp, values, now)
    return hunt


def run_notebook(
    notebook: PathLike,
    output: PathLike,
    *,
    params: Mapping[str, Any] | None = None,
    cwd: PathLike | None = None,
    kernel: str = "python3",
) -> Path:
    """Execute a notebook with papermill (``params`` into its cell tagged ``parameters``); return the
    executed copy. A failing cell raises :class:`QueryError` with that cell's error message (the
    executed copy, with the error in it, is written anyway)."""
    from huntbook.errors import MissingExtraError

    try:
        import papermill
        from papermill.exceptions import PapermillExecutionError
    except ImportError as exc:
        raise MissingExtraError("huntbook notebook run", "notebook", missing=exc.name) from exc
    source, target = Path(notebook).expanduser(), Path(output).expanduser()
    if not source.is_file():
        raise ConfigError("no such notebook", where=str(source), hint="check the path")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(
            str(source),
            str(target),
            parameters=dict(params or {}),
            kernel_name=kernel,
            cwd=str(cwd) if cwd is not None else None,
            progress_bar=False,
        )
    except PapermillExecutionError as exc:
        raise QueryError(
            f"cell {exc.exec_count} failed: {exc.ename}: {exc.evalue}",
            where=str(source),
            hint=f"the executed notebook with the error is {target}",
        ) from None
    return target
