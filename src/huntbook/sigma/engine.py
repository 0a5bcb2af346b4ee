"""Running Sigma rules over a LocalStore: one scan per log source, many rules per scan.

Rules are grouped by log source (:func:`~huntbook.sigma.compiler.source_for`), each compiled once into
a predicate tree. Per source, every field its rules use is pulled out of the JSON once into columns;
then the trees are evaluated by one of two evaluators of the same trees, chosen per source by its
number of events (:data:`ARROW_MAX_ROWS`):

* in process (:mod:`huntbook.sigma.arrow`) for small sources: DuckDB only reads the fields, of all
  small sources in one query, so no rule is planned;
* by DuckDB for large ones: the trees as SQL, in chunks of rules, each chunk one pass over the
  columns producing ``(row, rule)`` pairs for the matches only. Planning costs about half a
  millisecond per rule whatever the data; past the threshold that cost no longer matters and
  DuckDB's vectorised, multi-threaded execution wins.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, NamedTuple, Protocol

from huntbook._progress import gc_paused, progress_bar
from huntbook._types import PathLike
from huntbook.errors import DataError, ParameterError
from huntbook.sigma.arrow import L_RAW_SQL, Evaluator, Literals, literals, positions, read_fields
from huntbook.sigma.compiler import (
    FieldColumns,
    Node,
    RuleCompileError,
    Source,
    referenced_fields,
    required_event_ids,
    rule_tree,
    source_for,
    to_sql,
)
from huntbook.sigma.rules import LEVELS, Rule, RuleSet, as_ruleset

if TYPE_CHECKING:
    import duckdb
    import pandas as pd
    import pyarrow as pa

__all__ = ["ARROW_MAX_ROWS", "ENGINES", "HIT_COLUMNS", "attack_rollup", "compile_rules", "hunt", "summary"]

HIT_COLUMNS: Final = [
    "rule_id",
    "title",
    "level",
    "tags",
    "tactics",
    "techniques",
    "TimeGenerated",
    "Computer",
    "EventID",
    "Channel",
    "EventKey",
    "event",
    "raw",
    "source",
]

# Fields shown in a hit's ``event`` besides those its rule uses (when the event has them).
KEY_FIELDS: Final = (
    "Image NewProcessName CommandLine ParentImage ParentProcessName ParentCommandLine User SubjectUserName "
    "TargetUserName TargetFilename TargetObject Details ImageLoaded SourceImage TargetImage DestinationIp "
    "DestinationPort DestinationHostname QueryName ServiceName ImagePath ScriptBlockText IpAddress LogonType"
).split()
CHUNK: Final = 200  # rules evaluated per pass over a source (DuckDB)
# Sources with at most this many events are evaluated in process (huntbook.sigma.arrow), larger ones by
# DuckDB. Why (CPU seconds per source, the SigmaHQ Windows rules over the shared EVTX x20): DuckDB pays
# ~0.5 ms of planning per rule plus a per-event cost per rule; in process the cost follows the distinct
# values, not the rules. Process creation, 26k events, 1,415 rules: 1.7 s in process vs 8.2 s DuckDB;
# Security, 94k events, 164 rules: 3.9 vs 3.8; keyword search over 193k events, 1 rule: 3.5 vs 2.6.
# Past ~50k events there is no clear gain left, and the in-process evaluator holds every field of the
# source in memory where DuckDB streams.
ARROW_MAX_ROWS: Final = 50_000
ENGINES: Final = ("auto", "arrow", "duckdb")


class _StoreLike(Protocol):
    def connect(self) -> duckdb.DuckDBPyConnection: ...


class _Compiled(NamedTuple):
    rule: Rule
    tree: Node  # the predicate tree (both evaluators)
    sql: str  # the same predicate as DuckDB SQL
    fields: list[str]  # the fields the rule reads (shown in its hits)


@dataclass
class _Group:
    source: Source
    columns: FieldColumns
    rules: list[_Compiled] = field(default_factory=list)
    event_ids: set[int] | None = field(default_factory=set)  # every rule needs one of these (None: any)
    literals: dict[str, Literals] | None = None  # the rules' literals per column (in process), kept

    @property
    def where(self) -> str:
        """The source's filter, narrowed to the event ids its rules can match."""
        if self.event_ids is None:
            return self.source.where
        listed = ", ".join(str(i) for i in sorted(self.event_ids)) or "NULL"
        return f"({self.source.where}) AND EventID IN ({listed})"


@dataclass
class CompiledRules:
    """Rules compiled for the store: per-source groups, plus the status of every rule."""

    groups: dict[str, _Group]
    status: dict[str, str]  # rule key -> ok | no data source | error: ...
    rules: list[Rule]
    needs: dict[str, list[str]] = field(default_factory=dict)  # fields correlations read, per rule
    quiet: set[str] = field(default_factory=set)  # rules whose hits only feed correlations


def _rule_columns(rule: Rule) -> dict[str, Any]:
    """The columns of a hit that come from its rule."""
    return {
        "_key": _key(rule),
        "rule_id": rule.id,
        "title": rule.title,
        "level": rule.level,
        "tags": list(rule.tags),
        "tactics": rule.tactics,
        "techniques": rule.techniques,
    }


def _key(rule: Rule) -> str:
    return rule.id or rule.path + "#" + rule.title


def compile_rules(rules: RuleSet | Iterable[Rule]) -> CompiledRules:
    """Compile detection rules into per-source predicate trees and SQL (done by :func:`hunt`; reuse
    it for repeated hunts).

    Example::

        compiled = hb.sigma.compile_rules(rules)
        hb.sigma.hunt(store, compiled)
    """
    with gc_paused():
        return _compile_rules(list(rules))


def _compile_rules(rule_list: list[Rule]) -> CompiledRules:
    groups: dict[str, _Group] = {}
    status: dict[str, str] = {}
    wanted_by_correlation, quiet = _correlation_needs(rule_list)
    for rule in rule_list:
        key = _key(rule)
        if not rule.ok:
            status[key] = f"error: {rule.error}"
            continue
        if rule.kind == "correlation":
            status[key] = "ok"
            continue
        source = source_for(rule.sigma.logsource)
        if source is None:
            status[key] = "no data source"
            continue
        # Rules that name their event ids share one scan of those ids; the others scan the whole source.
        ids = required_event_ids(rule.sigma)
        group_key = source.key if ids is not None else f"{source.key} (any event id)"
        group = groups.get(group_key) or _Group(
            source, FieldColumns(source), event_ids=None if ids is None else set()
        )
        try:
            tree = rule_tree(rule.sigma, group.columns)
            sql = to_sql(tree)
        except (RuleCompileError, ValueError, TypeError, AttributeError) as exc:
            status[key] = f"error: {exc}"
            continue
        for name in wanted_by_correlation.get(key, ()):
            group.columns.column(name, lower=False)
        groups[group_key] = group
        group.rules.append(_Compiled(rule, tree, sql, referenced_fields(rule.sigma)))
        if ids is not None and group.event_ids is not None:
            group.event_ids |= ids
        status[key] = "ok"
    needs = {k: sorted(v) for k, v in wanted_by_correlation.items()}
    return CompiledRules(groups, status, rule_list, needs, quiet)


def _correlation_needs(rules: list[Rule]) -> tuple[dict[str, set[str]], set[str]]:
    """Fields the correlation rules group or count by, per referenced rule; rules kept quiet."""
    needs: dict[str, set[str]] = {}
    quiet: set[str] = set()
    for rule in rules:
        if rule.kind != "correlation" or not rule.ok:
            continue
        corr = rule.sigma
        fields = set(corr.group_by or [])
        ref = getattr(corr.condition, "fieldref", None)
        fields.update([ref] if isinstance(ref, str) else ref or [])
        aliases = {a.alias: a for a in corr.aliases or []}
        for reference in corr.rules or []:
            target = getattr(reference, "rule", None)
            if target is None:
                continue
            names = {f for f in fields if f not in aliases}
            for alias in aliases.values():
                names.update(v for k, v in alias.mapping.items() if getattr(k, "rule", None) is target)
            key = str(target.id) if target.id else ""
            needs.setdefault(key, set()).update(names)
            if not corr.generate:
                quiet.add(key)
    return needs, quiet


def hunt(
    store: _StoreLike,
    rules: RuleSet | CompiledRules | PathLike | Iterable[PathLike],
    *,
    progress: bool | None = None,
    raw: bool = True,
    engine: str = "auto",
) -> pd.DataFrame:
    """Run Sigma rules over a store; one row per (rule, matching event).

    Columns: ``rule_id title level tags tactics techniques TimeGenerated Computer EventID Channel
    EventKey event raw source``. ``event`` is a dict of the event's key fields (those the rule
    uses, and common ones such as ``Image``/``CommandLine``); ``raw`` the whole record as JSON
    text (``raw=False`` leaves it out). Correlation rules add one row per group and window that
    meets their condition (``event`` holds the group and the count). ``hits.attrs["rules"]`` is a
    frame with every rule's status (``ok``, ``no data source``, ``error: ...``) and hit count.
    ``engine``: ``auto`` evaluates sources of up to :data:`ARROW_MAX_ROWS` events in process and
    larger ones in DuckDB; ``arrow`` or ``duckdb`` forces one evaluator (same hits either way).

    Example::

        store = hb.LocalStore("case-42"); store.ingest("evidence/")
        hits = hb.sigma.hunt(store, "sigma/rules/windows")
        hb.sigma.summary(hits)
    """
    if engine not in ENGINES:
        raise ParameterError(f"unknown engine {engine!r}", where="engine", hint="auto, arrow or duckdb")
    with gc_paused():
        return _hunt(store, rules, progress=progress, raw=raw, engine=engine)


def _hunt(
    store: _StoreLike,
    rules: RuleSet | CompiledRules | PathLike | Iterable[PathLike],
    *,
    progress: bool | None,
    raw: bool,
    engine: str,
) -> pd.DataFrame:
    import pandas as pd

    if isinstance(rules, CompiledRules):
        compiled = rules
    else:
        compiled = compile_rules(as_ruleset(rules, progress=progress))
    rows: list[dict[str, Any]] = []
    total = sum(len(g.rules) for g in compiled.groups.values())
    with store.connect() as con, progress_bar(progress, total=total, unit="rule", desc="sigma") as bar:
        if compiled.groups:
            groups = list(compiled.groups.values())
            kinds = _event_kinds(con, groups)
            sizes = [_events_of(kinds, k) for k in range(len(groups))]
            small: list[_Group] = []
            large: list[_Group] = []
            for group, size in zip(groups, sizes, strict=True):
                if not size:
                    bar.update(len(group.rules))
                elif engine == "arrow" or (engine == "auto" and size <= ARROW_MAX_ROWS):
                    small.append(group)
                else:
                    large.append(group)
            if small and not large and sum(sizes) <= ARROW_MAX_ROWS:
                con.execute("SET threads = 1")  # few rows: parallel scans cost more than they give
            if small:
                picked = [groups.index(g) for g in small]
                rows += _run_in_process(con, small, kinds, picked, compiled.status, bar, raw, compiled.needs)
            if large:
                wheres = " OR ".join(f"({g.source.where})" for g in large)
                con.execute(
                    "CREATE OR REPLACE TEMP TABLE hb_sigma_events AS SELECT EventKey, TimeGenerated, "
                    f"EventFormat, EventID, Channel, Provider, Computer, raw FROM events WHERE {wheres}"
                )
                for group in large:
                    rows += _run_group(con, group, compiled.status, bar, raw, compiled.needs)
    rows += _correlate(compiled, rows)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["_key"]] = counts.get(r["_key"], 0) + 1
    hits = pd.DataFrame([r for r in rows if r["_key"] not in compiled.quiet], columns=[*HIT_COLUMNS, "_key"])
    hits = hits.drop(columns="_key")
    if not raw:
        hits = hits.drop(columns="raw")
    hits["TimeGenerated"] = pd.to_datetime(hits["TimeGenerated"], utc=True)
    hits = hits.sort_values(
        ["TimeGenerated", "rule_id", "EventKey"], kind="stable", na_position="last"
    ).reset_index(drop=True)
    hits.attrs["rules"] = pd.DataFrame(
        [
            {
                "rule_id": r.id,
                "title": r.title,
                "level": r.level,
                "status": compiled.status.get(_key(r), "error: not compiled"),
                "hits": int(counts.get(_key(r), 0)),
                "path": r.path,
            }
            for r in compiled.rules
        ],
        columns=["rule_id", "title", "level", "status", "hits", "path"],
    )
    return hits


# The columns a source's filter reads: each distinct combination of them is one kind of event.
_KIND_COLUMNS: Final = ("EventFormat", "EventID", "Channel", "Provider")


def _event_kinds(con: duckdb.DuckDBPyConnection, groups: list[_Group]) -> pa.Table:
    """The kinds of events in the store: one row per distinct (EventFormat, EventID, Channel,
    Provider), with its number of events (``hb_n``) and, per source ``k``, ``hb_s<k>``: whether
    the source selects it. Each source filter is planned once here, on a few hundred rows."""
    inner = ", ".join(_KIND_COLUMNS)
    flags = ", ".join(f"COALESCE({g.where}, false) AS hb_s{k}" for k, g in enumerate(groups))
    renamed = ", ".join(f"{c} AS hb_{c}" for c in _KIND_COLUMNS)
    sql = f"SELECT {renamed}, hb_n, {flags} FROM (SELECT {inner}, count(*) AS hb_n FROM events GROUP BY ALL)"
    return con.sql(sql).to_arrow_table()


def _events_of(kinds: pa.Table, k: int) -> int:
    """The number of events source ``k`` selects."""
    import pyarrow.compute as pc

    found = pc.sum(pc.filter(kinds.column("hb_n"), kinds.column(f"hb_s{k}"))).as_py()
    return int(found or 0)


def _run_in_process(
    con: duckdb.DuckDBPyConnection,
    groups: list[_Group],
    kinds: pa.Table,
    picked: list[int],
    status: dict[str, str],
    bar: Any,
    with_raw: bool,
    needs: dict[str, list[str]],
) -> list[dict[str, Any]]:
    """Small sources: their fields read in one query, every rule evaluated in process."""
    import pyarrow.compute as pc

    selected = kinds.column(f"hb_s{picked[0]}")
    for k in picked[1:]:
        selected = pc.or_(selected, kinds.column(f"hb_s{k}"))
    wanted = kinds.filter(selected)
    table = wanted.select([f"hb_{c}" for c in _KIND_COLUMNS] + [f"hb_s{k}" for k in picked])
    con.register("hb_sigma_kinds", table)
    try:
        join = " AND ".join(f"e.{c} IS NOT DISTINCT FROM k.hb_{c}" for c in _KIND_COLUMNS)
        meta, fields = read_fields(
            con,
            f"events e JOIN hb_sigma_kinds k ON {join}",
            [(f"k.hb_s{k}", g.columns) for k, g in zip(picked, groups, strict=True)],
            ["EventKey"],
        )
    finally:
        con.unregister("hb_sigma_kinds")
    keys = meta["EventKey"]
    found: list[tuple[_Group, list[tuple[str, int]]]] = []
    for group, group_fields in zip(groups, fields, strict=True):
        evaluator = Evaluator(group_fields, con)
        if group.literals is None:
            group.literals = literals(c.tree for c in group.rules)
        evaluator.prepare(group.literals, [f"l{i}" for i in group.columns.lowered])
        matches: list[tuple[str, int]] = []
        for n, compiled in enumerate(group.rules):
            try:
                bits = evaluator.matches(compiled.tree)
            except Exception as exc:  # one bad rule never stops the run
                status[_key(compiled.rule)] = f"error: {str(exc).splitlines()[0]}"
                continue
            matches += [(keys[group_fields.rows[i]], n) for i in positions(bits)]
        bar.update(len(group.rules))
        if matches:
            found.append((group, matches))
    return _shown_in_process(con, found, with_raw, needs) if found else []


def _shown_in_process(
    con: duckdb.DuckDBPyConnection,
    found: list[tuple[_Group, list[tuple[str, int]]]],
    with_raw: bool,
    needs: dict[str, list[str]],
) -> list[dict[str, Any]]:
    """The hit rows of the in-process evaluator: the shown fields of the matched events, in one query.

    Sources that read fields the same way (same aliases, same ``<UserData>`` and spacing rules) share
    one extraction of the union of their shown fields.
    """
    import pyarrow as pa

    shapes: dict[tuple[Any, ...], FieldColumns] = {}
    shape_of: list[int] = []
    for group, _ in found:
        src = group.source
        shape = (src.family, tuple(sorted(src.aliases.items())), src.userdata, src.spaced_names)
        display = shapes.setdefault(shape, FieldColumns(src))
        for name in _display_columns(group, needs).names:
            display.column(name, lower=False)
        shape_of.append(list(shapes).index(shape))
    picked = list(
        dict.fromkeys((key, shape_of[k]) for k, (_, matches) in enumerate(found) for key, _ in matches)
    )
    table = pa.table({"EventKey": [p[0] for p in picked], "hb_shape": [p[1] for p in picked]})
    con.register("hb_sigma_hits", table)
    try:
        meta, shown = read_fields(
            con,
            "events JOIN hb_sigma_hits USING (EventKey)",
            [(f"hb_shape = {k}", display) for k, display in enumerate(shapes.values())],
            ["EventKey", "TimeGenerated", "EventID", "Channel", "Computer", *(["raw"] if with_raw else [])],
        )
    finally:
        con.unregister("hb_sigma_hits")
    values: list[tuple[dict[str, int], dict[str, list[Any]]]] = []
    for display, rows in zip(shapes.values(), shown, strict=True):
        index = {meta["EventKey"][r]: i for i, r in enumerate(rows.rows)}
        values.append((index, {name: rows.columns[f"f{i}"].to_pylist() for name, i in display.names.items()}))
    out: list[dict[str, Any]] = []
    for (group, matches), k in zip(found, shape_of, strict=True):
        index, columns = values[k]
        rows_of_shape = shown[k].rows
        for key, n in matches:
            i = index[key]
            r = rows_of_shape[i]
            event = {name: col[i] for name, col in columns.items()}
            event_row = (
                meta["TimeGenerated"][r],
                meta["Computer"][r],
                meta["EventID"][r],
                meta["Channel"][r],
            )
            out.append(_hit(group, n, key, event_row, event, meta["raw"][r] if with_raw else None, needs))
    return out


def _display_columns(group: _Group, needs: dict[str, list[str]]) -> FieldColumns:
    """The fields shown in the hits of a source: those its rules use, correlations need, key fields."""
    display = FieldColumns(group.source)
    used = [f for c in group.rules for f in c.fields]
    extra = [f for c in group.rules for f in needs.get(_key(c.rule), [])]
    for name in dict.fromkeys(used + extra + list(KEY_FIELDS)):
        display.column(name, lower=False)
    return display


def _hit(
    group: _Group,
    n: int,
    key: str,
    event_row: tuple[Any, Any, Any, Any],
    values: dict[str, Any],
    raw: Any,
    needs: dict[str, list[str]],
) -> dict[str, Any]:
    """One hit row: rule columns, event metadata, ``event`` (the rule's fields, then key fields)."""
    rule, _, _, fields = group.rules[n]
    used = fields + needs.get(_key(rule), [])
    event = {f: values[f] for f in used if values[f] is not None}
    event.update({f: values[f] for f in KEY_FIELDS if f not in event and values[f] is not None})
    time_generated, computer, event_id, channel = event_row
    return {
        **_rule_columns(rule),
        "TimeGenerated": time_generated,
        "Computer": computer,
        "EventID": event_id,
        "Channel": channel,
        "EventKey": key,
        "event": event,
        "raw": raw,
        "source": group.source.key,
    }


def _run_group(
    con: duckdb.DuckDBPyConnection,
    group: _Group,
    status: dict[str, str],
    bar: Any,
    with_raw: bool,
    needs: dict[str, list[str]],
) -> list[dict[str, Any]]:
    columns = group.columns
    extraction, exprs = columns.extraction()
    # Only the forms the predicates use are kept: the lower-cased one for most fields.
    cols = [f"{e} AS f{i}" for i, e in enumerate(exprs) if i in columns.as_is]
    cols += [f"lower({e}) AS l{i}" for i, e in enumerate(exprs) if i in columns.lowered]
    if columns.keywords:
        cols.append(f"{L_RAW_SQL} AS l_raw")
    if columns.raw:
        cols.append("raw")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE hb_sigma_group AS SELECT row_number() OVER () AS rid, EventKey, "
        f"TimeGenerated, EventID, Channel, Computer, {', '.join(cols) or 'NULL AS f_none'} "
        f"FROM (SELECT *, {extraction} FROM hb_sigma_events WHERE {group.where})"
    )
    matches: list[tuple[int, int]] = []
    for start in range(0, len(group.rules), CHUNK):
        chunk = list(enumerate(group.rules[start : start + CHUNK], start))
        try:
            matches += _evaluate(con, chunk)
        except Exception:  # one bad predicate: evaluate the chunk rule by rule to find it
            for item in chunk:
                try:
                    matches += _evaluate(con, [item])
                except Exception as exc:
                    status[_key(item[1].rule)] = f"error: {str(exc).splitlines()[0]}"
        bar.update(len(chunk))
    if not matches:
        return []
    return _hit_rows(con, group, matches, with_raw, needs)


def _evaluate(con: duckdb.DuckDBPyConnection, chunk: list[tuple[int, _Compiled]]) -> list[tuple[int, int]]:
    cases = ", ".join(f"CASE WHEN {c.sql} THEN {n} END" for n, c in chunk)
    sql = (
        f"SELECT rid, m FROM (SELECT rid, unnest(list_filter([{cases}], lambda x: x IS NOT NULL)) AS m "
        "FROM hb_sigma_group)"
    )
    return [(int(a), int(b)) for a, b in con.execute(sql).fetchall()]


def _hit_rows(
    con: duckdb.DuckDBPyConnection,
    group: _Group,
    matches: list[tuple[int, int]],
    with_raw: bool,
    needs: dict[str, list[str]],
) -> list[dict[str, Any]]:
    """The hit rows: event metadata, key fields (read from the JSON of the matched events only)."""
    display = _display_columns(group, needs)
    extraction, exprs = display.extraction()
    fcols = ", ".join(f"{e} AS f{i}" for i, e in enumerate(exprs))
    rids = sorted({rid for rid, _ in matches})
    con.execute("CREATE OR REPLACE TEMP TABLE hb_sigma_rids AS SELECT unnest(?::BIGINT[]) AS rid", [rids])
    cursor = con.execute(
        f"SELECT rid, EventKey, TimeGenerated, EventID, Channel, Computer, raw, {fcols} FROM ("
        f"SELECT *, {extraction} FROM (SELECT g.rid, g.EventKey, g.TimeGenerated, g.EventID, g.Channel, "
        "g.Computer, e.raw, e.EventFormat, e.Provider FROM hb_sigma_group g "
        "SEMI JOIN hb_sigma_rids r ON g.rid = r.rid JOIN hb_sigma_events e ON e.EventKey = g.EventKey))"
    )
    events: dict[int, tuple[Any, ...]] = {row[0]: row for row in cursor.fetchall()}
    index = {name: 7 + i for name, i in display.names.items()}
    out = []
    for rid, n in matches:
        row = events[rid]
        values = {name: row[i] for name, i in index.items()}
        out.append(
            _hit(
                group,
                n,
                row[1],
                (row[2], row[5], row[3], row[4]),
                values,
                row[6] if with_raw else None,
                needs,
            )
        )
    return out


# ------------------------------------------------------------------------------ correlations

_OPS: Final[dict[str, Callable[[int, int], bool]]] = {
    "LT": operator.lt,
    "LTE": operator.le,
    "GT": operator.gt,
    "GTE": operator.ge,
    "EQ": operator.eq,
    "NEQ": operator.ne,
}


def _correlate(compiled: CompiledRules, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for the correlation rules (event_count, value_count, temporal, temporal_ordered)."""
    import bisect

    out: list[dict[str, Any]] = []
    for rule in compiled.rules:
        if rule.kind != "correlation" or not rule.ok:
            continue
        corr = rule.sigma
        kind = corr.type.name.lower()
        if kind not in ("event_count", "value_count", "temporal", "temporal_ordered"):
            compiled.status[_key(rule)] = f"error: correlation type {kind} is not supported"
            continue
        refs = [r.rule for r in corr.rules or [] if getattr(r, "rule", None) is not None]
        order = {str(r.id): i for i, r in enumerate(refs)}
        aliases = {a.alias: {str(k.rule.id): v for k, v in a.mapping.items()} for a in corr.aliases or []}
        group_by = list(corr.group_by or [])
        fieldref = getattr(corr.condition, "fieldref", None)
        fieldref = fieldref[0] if isinstance(fieldref, list) else fieldref
        span = corr.timespan.seconds
        groups: dict[tuple[Any, ...], list[tuple[float, int, Any, dict[str, Any]]]] = {}
        for row in rows:
            rid = row["rule_id"]
            if rid not in order or row["TimeGenerated"] is None:
                continue
            event = row["event"]
            key = tuple(event.get(aliases.get(g, {}).get(rid, g)) for g in group_by)
            value = event.get(fieldref) if fieldref else None
            groups.setdefault(key, []).append((row["TimeGenerated"].timestamp(), order[rid], value, row))
        test = _OPS.get(corr.condition.op.name, _OPS["GTE"])
        for key, items in groups.items():
            items.sort(key=lambda x: (x[0], x[1]))
            times = [t for t, *_ in items]
            i = 0
            while i < len(items):
                j = bisect.bisect_right(times, times[i] + span)
                window = items[i:j]
                if kind == "event_count":
                    value, hit = len(window), test(len(window), corr.condition.count)
                elif kind == "value_count":
                    value = len({v for _, _, v, _ in window if v is not None})
                    hit = test(value, corr.condition.count)
                else:
                    seen = [n for _, n, _, _ in window]
                    value = len(set(seen))
                    hit = value == len(refs) and (kind == "temporal" or _in_order(seen, len(refs)))
                if hit:
                    first = window[0][3]
                    out.append(
                        {
                            **_rule_columns(rule),
                            "TimeGenerated": first["TimeGenerated"],
                            "Computer": first["Computer"]
                            if len({w[3]["Computer"] for w in window}) == 1
                            else None,
                            "EventID": None,
                            "Channel": None,
                            "EventKey": None,
                            "event": {
                                **dict(zip(group_by, key, strict=True)),
                                kind: value,
                                "events": len(window),
                            },
                            "raw": None,
                            "source": "correlation",
                        }
                    )
                    i = j
                else:
                    i += 1
    return out


def _in_order(seen: list[int], n: int) -> bool:
    """True when rules 0..n-1 appear in order as a subsequence of ``seen``."""
    want = 0
    for s in seen:
        if s == want:
            want += 1
            if want == n:
                return True
    return False


# ---------------------------------------------------------------------------------- summaries


def _check_hits(hits: pd.DataFrame, needed: Iterable[str]) -> None:
    missing = [c for c in needed if c not in hits.columns]
    if missing:
        raise DataError(
            f"not a Sigma hits frame: missing column(s) {', '.join(missing)}",
            where=missing[0],
            hint="pass the DataFrame returned by hb.sigma.hunt()",
        )


def summary(hits: pd.DataFrame, by: str = "rule") -> pd.DataFrame:
    """Hits counted by ``rule``, ``technique`` or ``host``, most severe and most frequent first.

    Example::

        hb.sigma.summary(hits, by="host")
    """
    import pandas as pd

    _check_hits(hits, ["rule_id", "title", "level", "techniques", "TimeGenerated", "Computer"])
    rank = {lvl: i for i, lvl in enumerate(LEVELS)}
    frame = hits.assign(_rank=hits["level"].map(rank).fillna(-1))
    if by == "rule":
        keys = ["rule_id", "title", "level"]
        out = frame.groupby(keys, dropna=False, sort=False).agg(
            hits=("rule_id", "size"),
            hosts=("Computer", "nunique"),
            first=("TimeGenerated", "min"),
            last=("TimeGenerated", "max"),
            _rank=("_rank", "max"),
        )
    elif by == "technique":
        frame = (
            frame.explode("techniques")
            .dropna(subset=["techniques"])
            .rename(columns={"techniques": "technique"})
        )
        keys = ["technique"]
        out = frame.groupby(keys, sort=False).agg(
            hits=("rule_id", "size"),
            rules=("rule_id", "nunique"),
            hosts=("Computer", "nunique"),
            first=("TimeGenerated", "min"),
            last=("TimeGenerated", "max"),
            _rank=("_rank", "max"),
        )
    elif by == "host":
        keys = ["Computer"]
        out = frame.groupby(keys, dropna=False, sort=False).agg(
            hits=("rule_id", "size"),
            rules=("rule_id", "nunique"),
            first=("TimeGenerated", "min"),
            last=("TimeGenerated", "max"),
            _rank=("_rank", "max"),
        )
    else:
        raise DataError(f"unknown summary {by!r}", where="by", hint="by='rule', 'technique' or 'host'")
    out = out.reset_index()
    out.insert(len(keys), "max_level", [LEVELS[int(r)] if r >= 0 else None for r in out["_rank"]])
    if by == "rule":
        out = out.drop(columns="max_level")
    out = out.sort_values(["_rank", "hits"], ascending=False, kind="stable").drop(columns="_rank")
    return pd.DataFrame(out).reset_index(drop=True)


def attack_rollup(hits: pd.DataFrame) -> pd.DataFrame:
    """ATT&CK roll-up: one row per (tactic, technique) with rules, hits and hosts.

    Hits of rules without a technique tag are counted under technique ``None``.

    Example::

        hb.sigma.attack_rollup(hits)
    """
    _check_hits(hits, ["rule_id", "tactics", "techniques", "Computer"])
    if hits.empty:
        import pandas as pd

        return pd.DataFrame(columns=["tactic", "technique", "rules", "hits", "hosts"])
    frame = hits[["rule_id", "tactics", "techniques", "Computer"]].copy()
    frame["tactics"] = [t if len(t) else [None] for t in frame["tactics"]]
    frame["techniques"] = [t if len(t) else [None] for t in frame["techniques"]]
    frame = frame.explode("tactics").explode("techniques")
    out = (
        frame.groupby(["tactics", "techniques"], dropna=False, sort=True)
        .agg(rules=("rule_id", "nunique"), hits=("rule_id", "size"), hosts=("Computer", "nunique"))
        .reset_index()
        .rename(columns={"tactics": "tactic", "techniques": "technique"})
    )
    return out.sort_values(["hits", "tactic"], ascending=[False, True], kind="stable").reset_index(drop=True)


def rule_count_by_source(rules: RuleSet) -> dict[str, int]:
    """How many rules read each log source (``"no data source"`` for the others)."""
    counts: dict[str, int] = {}
    for rule in rules:
        source = source_for(rule.sigma.logsource) if rule.ok and rule.kind == "detection" else None
        key = source.key if source else "no data source"
        counts[key] = counts.get(key, 0) + 1
    return counts
