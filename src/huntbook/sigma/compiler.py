"""Sigma detections to DuckDB SQL over the LocalStore's ``events`` table.

A rule's log source picks the events it reads (a :class:`Source`: event ids and channels); its
detection becomes a boolean SQL expression over *field columns*: each Sigma field is pulled from
the ``raw`` JSON once per source (``f<n>``, and ``l<n>`` lower-cased for the case-insensitive
matches Sigma asks for), whatever the format the record came in (EVTX, EVTX JSON, Winlogbeat,
Mordor/NXLog flattened JSON, Zeek). Every value from a rule is written as an escaped SQL literal;
``not`` is NULL-safe (``NOT COALESCE(..., false)``), so ``not`` over a missing field is true; without
``not`` a NULL leaf can only make a condition NULL where it would be false, and NULL never selects.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from sigma.rule import SigmaLogSource, SigmaRule

__all__ = [
    "And",
    "AnyGlob",
    "Compare",
    "FieldColumns",
    "FieldRef",
    "Glob",
    "IsNull",
    "Layout",
    "Node",
    "Not",
    "NullOrEmpty",
    "Or",
    "Regex",
    "RuleCompileError",
    "Source",
    "compile_rule",
    "rule_tree",
    "source_for",
    "sql_str",
    "to_sql",
]

SYSMON_CHANNEL: Final = "Microsoft-Windows-Sysmon/Operational"
EVTX_FORMATS: Final = ("evtx", "evtx_json")
ZEEK_FORMATS: Final = ("zeek_json", "zeek_tsv")

# Sigma categories without a Sysmon event id, read from the PowerShell logs.
_POWERSHELL_CATEGORIES: Final = {
    "ps_module": (("powershell",), 4103),
    "ps_script": (("powershell",), 4104),
    "ps_classic_start": (("powershell-classic",), 400),
    "ps_classic_provider_start": (("powershell-classic",), 600),
    "ps_classic_script": (("powershell-classic",), 800),
}

# Fields of the Sysmon taxonomy with another name in Windows Security 4688 (process_creation).
_AUDIT_ALIASES: Final = {
    "process_creation": {
        "Image": ("NewProcessName",),
        "ParentImage": ("ParentProcessName",),
        "ProcessId": ("NewProcessId",),
        "LogonId": ("SubjectLogonId",),
    }
}

# Services whose event data names fields with spaces (Defender: "Threat Name", "Process Name").
_SPACED_SERVICES: Final = frozenset({"windefend"})

# Columns of ``events`` that stand for Sigma fields directly.
_TYPED: Final = {
    "EventID": "CAST(EventID AS VARCHAR)",
    "Channel": "Channel",
    "Computer": "Computer",
    "Provider": "Provider",
}

# Fields read from other places than their name says, per format family.
_SPECIAL_PATHS: Final = {
    "Provider_Name": {
        "evtx": ('$.Event.System.Provider."#attributes".Name', "$.Event.System.Provider_Name"),
        "winlogbeat": ("$.winlog.provider_name", "$.source_name"),
        "flat": ("$.SourceName", "$.ProviderName"),
    },
}


class RuleCompileError(Exception):
    """A rule uses something the DuckDB backend cannot evaluate (the message says what)."""


def sql_str(value: str) -> str:
    """A DuckDB string literal for ``value`` (quotes doubled; backslashes are plain characters)."""
    if "\x00" in value:
        raise RuleCompileError("a value contains a NUL character")
    return "'" + value.replace("'", "''") + "'"


def _json_step(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) else '"' + name.replace('"', '\\"') + '"'


@dataclass(frozen=True)
class Source:
    """Where a rule's events are: a filter over ``events`` and field aliases for other event kinds."""

    key: str
    where: str
    family: str  # windows | zeek
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    userdata: bool = False  # look in EVTX <UserData> too (non-Sysmon Windows logs)
    spaced_names: bool = False  # fields written with spaces ("Threat Name" for Sigma's ThreatName)


def _channels(names: tuple[str, ...]) -> str:
    return "lower(Channel) IN (" + ", ".join(sql_str(n.lower()) for n in names) + ")"


def _ids(ids: int | list[int]) -> str:
    listed = ids if isinstance(ids, list) else [ids]
    return "EventID IN (" + ", ".join(str(int(i)) for i in listed) + ")"


def source_for(logsource: SigmaLogSource) -> Source | None:
    """The :class:`Source` of a Sigma log source, or None when the store holds no such events."""
    from sigma.pipelines.common import windows_logsource_mapping
    from sigma.pipelines.sysmon.sysmon import sysmon_generic_logsource_eventid_mapping

    product, category, service = logsource.product, logsource.category, logsource.service
    if product == "windows":

        def service_channels(svc: str) -> tuple[str, ...] | None:
            mapped = windows_logsource_mapping.get(svc)
            if mapped is None:
                return None
            return (mapped,) if isinstance(mapped, str) else tuple(mapped)

        if category is None and service is None:
            return Source("windows", "Channel IS NOT NULL AND EventID IS NOT NULL", "windows", userdata=True)
        if category is None and service is not None:
            channels = service_channels(service)
            if channels is None:
                return None
            spaced = service in _SPACED_SERVICES
            return Source(
                f"windows/{service}", _channels(channels), "windows", userdata=True, spaced_names=spaced
            )
        if category in _POWERSHELL_CATEGORIES:
            (svc,), eid = _POWERSHELL_CATEGORIES[category]
            return Source(
                f"windows/{category}",
                f"{_ids(eid)} AND {_channels(service_channels(svc) or ())}",
                "windows",
                userdata=True,
            )
        if category in sysmon_generic_logsource_eventid_mapping:
            ids: Any = sysmon_generic_logsource_eventid_mapping[category]
            where = f"({_ids(ids)} AND ({_channels((SYSMON_CHANNEL,))} OR Provider ILIKE '%sysmon%'))"
            aliases = _AUDIT_ALIASES.get(category, {})
            if category == "process_creation":
                where = f"({where} OR (EventID = 4688 AND {_channels(('Security',))}))"
            return Source(f"windows/{category}", where, "windows", aliases)
        return None
    if product == "zeek" and service:
        where = "EventFormat IN ('zeek_json', 'zeek_tsv') AND Channel = " + sql_str(service)
        return Source(f"zeek/{service}", where, "zeek")
    return None


# How to tell the format family of a record (``EventFormat``), for the JSON paths of that family.
FORMAT_TESTS: Final = {
    "zeek": "true",
    "evtx": "EventFormat IN ('evtx', 'evtx_json')",
    "winlogbeat": "EventFormat = 'winlogbeat'",
    "flat": "EventFormat NOT IN ('evtx', 'evtx_json', 'winlogbeat')",
}


@dataclass(frozen=True)
class Layout:
    """Where each field column's value comes from: the extraction shared by both evaluators.

    ``paths`` lists the JSON paths read per format family (one ``json_extract_string`` per record, whose
    list counts from 1); ``fields[n]`` the sources of field ``n``, first non-NULL wins: ``("column",
    sql)`` an ``events`` column, ``("path", family, i)`` the ``i``-th path of the family, ``("userdata",
    name)`` the ``name`` child of the element under EVTX ``<UserData>`` (path 1 of ``evtx``).
    """

    paths: dict[str, list[str]]
    fields: list[tuple[tuple[Any, ...], ...]]
    userdata: bool


@dataclass
class FieldColumns:
    """The field columns one source needs: Sigma field name -> column index, and lower-cased uses."""

    source: Source
    names: dict[str, int] = field(default_factory=dict)
    lowered: set[int] = field(default_factory=set)
    as_is: set[int] = field(default_factory=set)  # fields also matched without lower-casing
    keywords: bool = False  # a rule searches the whole record (lower-cased: ``l_raw``)
    raw: bool = False  # a rule runs a regular expression over the whole record (``raw``)

    def column(self, name: str, *, lower: bool) -> str:
        """The SQL column holding field ``name`` (its lower-cased form when ``lower``)."""
        index = self.names.setdefault(name, len(self.names))
        if lower:
            self.lowered.add(index)
            return f"l{index}"
        self.as_is.add(index)
        return f"f{index}"

    def layout(self) -> Layout:
        """The JSON paths to read per format family, and where every field's value comes from."""
        fmts = ("zeek",) if self.source.family == "zeek" else ("evtx", "winlogbeat", "flat")
        paths: dict[str, list[str]] = {f: [] for f in fmts}
        # path 1 of evtx: the <UserData> element as JSON, when a field is read from the JSON at all
        userdata = self.source.userdata and "evtx" in paths and any(n not in _TYPED for n in self.names)
        if userdata:
            paths["evtx"].append("$.Event.UserData")
        fields: list[tuple[tuple[Any, ...], ...]] = []
        for name in self.names:
            if name in _TYPED and self.source.family == "windows":
                fields.append((("column", _TYPED[name]),))
                continue
            refs: list[tuple[Any, ...]] = []
            spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name) if self.source.spaced_names else name
            alternatives = (name, *self.source.aliases.get(name, ()), *([spaced] if spaced != name else []))
            for alias in alternatives:
                for fmt in fmts:
                    new = _field_paths(fmt, alias)
                    refs += [("path", fmt, len(paths[fmt]) + i + 1) for i in range(len(new))]
                    paths[fmt] += new
                if userdata:
                    refs.append(("userdata", alias))
            fields.append(tuple(refs))
        return Layout(paths, fields, userdata)

    def extraction(self) -> tuple[str, list[str]]:
        """SQL reading the JSON values (one parse per record), and the expression of every ``f<n>``."""
        layout = self.layout()
        exprs: list[str] = []
        for refs in layout.fields:
            if refs[0][0] == "column":
                exprs.append(refs[0][1])
                continue
            options = [
                f"v_{ref[1]}[{ref[2]}]"
                if ref[0] == "path"
                else "CASE WHEN v_evtx[1] IS NOT NULL THEN json_extract_string(v_evtx[1], "
                f"{sql_str('$.*.' + _json_step(ref[1]))})[1] END"
                for ref in refs
            ]
            exprs.append(f"COALESCE({', '.join(options)})")
        parts = [
            f"CASE WHEN {FORMAT_TESTS[f]} THEN json_extract_string(raw, {_list(found)}) END AS v_{f}"
            if found
            else f"NULL AS v_{f}"
            for f, found in layout.paths.items()
        ]
        return ", ".join(parts), exprs


_SYSTEM_FIELDS: Final = frozenset(
    "Level Task Opcode Keywords Version EventRecordID Correlation Execution Security TimeCreated".split()
)


def _field_paths(fmt: str, name: str) -> list[str]:
    """JSON paths of a Sigma field in one format family."""
    special = _SPECIAL_PATHS.get(name, {}).get(fmt)
    if special:
        return list(special)
    step = _json_step(name)
    if fmt == "evtx":
        return [f"$.Event.System.{step}" if name in _SYSTEM_FIELDS else f"$.Event.EventData.{step}"]
    if fmt == "winlogbeat":
        return [f"$.winlog.event_data.{step}", f"$.event_data.{step}"]
    if fmt == "zeek" and "." in name:
        return [f"$.{step}", "$." + ".".join(_json_step(p) for p in name.split("."))]
    return [f"$.{step}"]


def _list(paths: list[str]) -> str:
    return "[" + ", ".join(sql_str(p) for p in paths) + "]"


# ---------------------------------------------------------------------------- detections


MERGE_AT_LEAST: Final = 3  # OR-ed string matches on one field merged into one regex (fewer SQL nodes)
MERGE_AT_MOST: Final = 64  # values per merged regex


def _regex_char(c: str) -> str:
    if c.isascii() and (c.isalnum() or c == "_"):
        return c
    if ord(c) < 32 or ord(c) == 127:
        return f"\\x{{{ord(c):02x}}}"
    return "\\" + c if c.isascii() else c


def _regex_of(parts: list[Any] | tuple[Any, ...], special: Any, *, lower: bool = True) -> str:
    """An RE2 pattern for a Sigma string with wildcards (lower-cased, to match a lower-cased field)."""
    items = list(parts)
    head = "" if items and items[0] == special.WILDCARD_MULTI else "^"
    tail = "" if items and items[-1] == special.WILDCARD_MULTI and len(items) > 0 else "$"
    if head == "":
        items = items[1:]
    if tail == "" and items:
        items = items[:-1]
    body = []
    for part in items:
        if isinstance(part, str):
            body.append("".join(_regex_char(c) for c in (part.lower() if lower else part)))
        elif part == special.WILDCARD_MULTI:
            body.append(".*")
        elif part == special.WILDCARD_SINGLE:
            body.append(".")
        else:
            raise RuleCompileError(f"unsupported string part {part!r}")
    return f"(?:{head}{''.join(body)}{tail})"


def _like_pattern(parts: list[Any] | tuple[Any, ...], special: Any) -> str:
    out = []
    for part in parts:
        if isinstance(part, str):
            out.append(part.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_"))
        elif part == special.WILDCARD_MULTI:
            out.append("%")
        elif part == special.WILDCARD_SINGLE:
            out.append("_")
        else:
            raise RuleCompileError(f"unsupported string part {part!r}")
    return "".join(out)


# ------------------------------------------------------------------------------ predicate IR
# A rule's detection as a tree over the field columns of its source. Both evaluators read it: the SQL
# writer (:func:`to_sql`, DuckDB) and the Arrow evaluator (:mod:`huntbook.sigma.arrow`). Leaves name
# columns as the SQL does: ``f<n>`` a field as logged, ``l<n>`` lower-cased, ``l_raw`` the whole record
# lower-cased (JSON escapes of ``\`` and ``"`` undone), ``raw`` the record's JSON text. A leaf over
# a NULL value is never true, except the NULL tests; ``Not`` treats a NULL as false (NULL-safe).


@dataclass(frozen=True)
class And:
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    arg: Node


@dataclass(frozen=True)
class Glob:
    """A Sigma string over one column: ``str`` pieces and wildcards (pySigma ``SpecialChars``)."""

    column: str
    parts: tuple[Any, ...]

    @cached_property
    def kind(self) -> tuple[str, str]:
        """:func:`glob_kind` of the parts."""
        return glob_kind(self.parts)


@dataclass(frozen=True)
class AnyGlob:
    """Any of up to :data:`MERGE_AT_MOST` Sigma strings over a lower-cased column (one regex in SQL)."""

    column: str
    patterns: tuple[tuple[Any, ...], ...]  # each a Glob's parts, matched case-insensitively

    @cached_property
    def globs(self) -> tuple[Glob, ...]:
        """The patterns as Globs over the column, lower-cased as the regex lower-cases them."""
        return tuple(
            Glob(self.column, tuple(p.lower() if isinstance(p, str) else p for p in parts))
            for parts in self.patterns
        )


@dataclass(frozen=True)
class Regex:
    """An RE2 search (``|re``; inline flags already in the pattern)."""

    column: str
    pattern: str


@dataclass(frozen=True)
class IsNull:
    column: str
    null: bool  # True: the field is missing; False: it is present


@dataclass(frozen=True)
class NullOrEmpty:
    column: str


@dataclass(frozen=True)
class Compare:
    """``|lt``, ``|lte``, ``|gt``, ``|gte``: the field read as a number (not a number: no match)."""

    column: str
    op: str  # < <= > >=
    number: float


@dataclass(frozen=True)
class FieldRef:
    """``|fieldref``: one field's value against another's (both lower-cased)."""

    left: str
    right: str
    mode: str  # equals | contains | startswith | endswith


Node = And | Or | Not | Glob | AnyGlob | Regex | IsNull | NullOrEmpty | Compare | FieldRef

_COMPARE_OPS: Final = {"LT": "<", "LTE": "<=", "GT": ">", "GTE": ">="}
_FIELDREF_SQL: Final = {
    "equals": "({l} = {r})",
    "contains": "(contains({l}, {r}))",
    "startswith": "(starts_with({l}, {r}))",
    "endswith": "(suffix({l}, {r}))",
}


_WILDCARDS: list[Any] = []  # pySigma's (WILDCARD_MULTI, WILDCARD_SINGLE, Placeholder), imported once


def glob_kind(parts: tuple[Any, ...]) -> tuple[str, str]:
    """How a Sigma string is matched: (``equals`` | ``present`` | ``contains`` | ``endswith`` |
    ``startswith`` | ``pattern``, the literal text where there is one)."""
    if not _WILDCARDS:
        from sigma.types import Placeholder, SpecialChars

        _WILDCARDS.extend([SpecialChars.WILDCARD_MULTI, SpecialChars.WILDCARD_SINGLE, Placeholder])
    multi, single, placeholder = _WILDCARDS
    wild = [i for i, p in enumerate(parts) if not isinstance(p, str)]
    for i in wild:
        if parts[i] is not multi and parts[i] is not single and isinstance(parts[i], placeholder):
            raise RuleCompileError("unresolved placeholder (|expand): give the pipeline a value for it")
    last = len(parts) - 1
    if not wild:
        return ("equals", "".join(parts)) if parts else ("pattern", "")
    if last == 0 and parts[0] is multi:
        return "present", ""
    if wild == [0, last] and parts[0] is multi and parts[-1] is multi:
        return "contains", "".join(parts[1:-1])
    if wild == [0] and parts[0] is multi:
        return "endswith", "".join(parts[1:])
    if wild == [last] and parts[-1] is multi:
        return "startswith", "".join(parts[:-1])
    return "pattern", ""


def to_sql(node: Node) -> str:
    """The DuckDB SQL of a predicate tree (values as escaped literals)."""
    from sigma.types import SpecialChars

    if isinstance(node, And):
        return "(" + " AND ".join(to_sql(a) for a in node.args) + ")"
    if isinstance(node, Or):
        return "(" + " OR ".join(to_sql(a) for a in node.args) + ")"
    if isinstance(node, Not):
        return "(NOT COALESCE(" + to_sql(node.arg) + ", false))"
    if isinstance(node, Glob):
        col = node.column
        kind, text = node.kind
        if kind == "equals":
            return f"{col} = {sql_str(text)}"
        if kind == "present":
            return f"{col} IS NOT NULL"
        if kind == "contains":
            return f"contains({col}, {sql_str(text)})"
        if kind == "endswith":
            return f"suffix({col}, {sql_str(text)})"
        if kind == "startswith":
            return f"starts_with({col}, {sql_str(text)})"
        return f"{col} LIKE {sql_str(_like_pattern(node.parts, SpecialChars))} ESCAPE '\\'"
    if isinstance(node, AnyGlob):
        return f"regexp_matches({node.column}, {sql_str(any_glob_regex(node))})"
    if isinstance(node, Regex):
        return f"regexp_matches({node.column}, {sql_str(node.pattern)})"
    if isinstance(node, IsNull):
        return f"({node.column} IS NULL)" if node.null else f"({node.column} IS NOT NULL)"
    if isinstance(node, NullOrEmpty):
        return f"({node.column} IS NULL OR {node.column} = '')"
    if isinstance(node, Compare):
        return f"TRY_CAST({node.column} AS DOUBLE) {node.op} {node.number!r}"
    return _FIELDREF_SQL[node.mode].format(l=node.left, r=node.right)


def any_glob_regex(node: AnyGlob) -> str:
    """The one RE2 pattern of an :class:`AnyGlob` (both evaluators run this very pattern)."""
    from sigma.types import SpecialChars

    return "(?s)" + "|".join(_regex_of(p, SpecialChars) for p in node.patterns)


class _Compiler:
    """Walks pySigma's parsed condition tree and builds the predicate tree."""

    def __init__(self, columns: FieldColumns) -> None:
        from sigma import types

        self.t = types
        self.columns = columns

    def node(self, node: Any) -> Node:
        from sigma.conditions import (
            ConditionAND,
            ConditionFieldEqualsValueExpression,
            ConditionNOT,
            ConditionOR,
            ConditionValueExpression,
        )

        if isinstance(node, ConditionAND):
            return And(tuple(self.node(a) for a in node.args))
        if isinstance(node, ConditionOR):
            return Or(tuple(self.any_of(node.args)))
        if isinstance(node, ConditionNOT):
            return Not(self.node(node.args[0]))
        if isinstance(node, ConditionFieldEqualsValueExpression):
            return self.value(node.field, node.value)
        if isinstance(node, ConditionValueExpression):
            return self.keyword(node.value)
        raise RuleCompileError(f"unsupported condition element {type(node).__name__}")

    def any_of(self, args: list[Any]) -> list[Node]:
        """OR-ed conditions; three or more plain string matches on one field become one AnyGlob."""
        from sigma.conditions import ConditionFieldEqualsValueExpression, ConditionValueExpression

        t = self.t
        out: list[Node] = []
        by_field: dict[str, list[Any]] = {}
        keywords: list[Any] = []
        for arg in args:
            values = None
            word: Any = arg.value if isinstance(arg, ConditionValueExpression) else None
            if type(word) is t.SigmaString and not any(isinstance(p, t.Placeholder) for p in word.s):
                keywords.append(word)
                continue
            if isinstance(arg, ConditionFieldEqualsValueExpression) and arg.field:
                v: Any = arg.value
                values = v.values if isinstance(v, t.SigmaExpansion) else [v]
                plain = all(
                    type(x) is t.SigmaString and not any(isinstance(p, t.Placeholder) for p in x.s)
                    for x in values
                )
                if plain:
                    by_field.setdefault(arg.field, []).extend(values)
                    continue
            out.append(self.node(arg))
        if 0 < len(keywords) < MERGE_AT_LEAST:
            out += [self.keyword(v) for v in keywords]
        elif keywords:
            self.columns.keywords = True
            multi = t.SpecialChars.WILDCARD_MULTI
            for start in range(0, len(keywords), MERGE_AT_MOST):
                patterns = tuple((multi, *v.s, multi) for v in keywords[start : start + MERGE_AT_MOST])
                out.append(AnyGlob("l_raw", patterns))
        for name, values in by_field.items():
            if len(values) < MERGE_AT_LEAST:
                out += [self.value(name, v) for v in values]
                continue
            col = self.columns.column(name, lower=True)
            for start in range(0, len(values), MERGE_AT_MOST):
                out.append(AnyGlob(col, tuple(tuple(v.s) for v in values[start : start + MERGE_AT_MOST])))
        return out

    def keyword(self, value: Any) -> Node:
        t = self.t
        if isinstance(value, t.SigmaExpansion):
            self.columns.keywords = True
            return Or(tuple(self.keyword(v) for v in value.values))
        if isinstance(value, t.SigmaString | t.SigmaNumber):
            self.columns.keywords = True
            s = value if isinstance(value, t.SigmaString) else t.SigmaString(str(value))
            parts = [p.lower() if isinstance(p, str) else p for p in s.s]
            if parts and parts[0] != t.SpecialChars.WILDCARD_MULTI:
                parts.insert(0, t.SpecialChars.WILDCARD_MULTI)
            if parts and parts[-1] != t.SpecialChars.WILDCARD_MULTI:
                parts.append(t.SpecialChars.WILDCARD_MULTI)
            return self._glob("l_raw", parts)
        if isinstance(value, t.SigmaRegularExpression):
            self.columns.raw = True
            return self._regex("raw", value)
        raise RuleCompileError(f"unsupported keyword value {type(value).__name__}")

    def _glob(self, col: str, parts: list[Any]) -> Glob:
        node = Glob(col, tuple(parts))
        _ = node.kind  # raises on placeholders
        return node

    def _regex(self, col: str, value: Any) -> Regex:
        flags = value.flags
        f = self.t.SigmaRegularExpressionFlag
        pattern = value.regexp.original if hasattr(value.regexp, "original") else str(value.regexp)
        inline = "".join(
            c for flag, c in ((f.IGNORECASE, "i"), (f.MULTILINE, "m"), (f.DOTALL, "s")) if flag in flags
        )
        if inline:
            pattern = f"(?{inline}){pattern}"
        _check_regex(pattern)
        return Regex(col, pattern)

    def value(self, name: str | None, value: Any) -> Node:
        t = self.t
        if name is None:
            return self.keyword(value)
        col = self.columns.column
        if isinstance(value, t.SigmaExpansion):
            return Or(tuple(self.value(name, v) for v in value.values))
        if isinstance(value, t.SigmaCasedString):
            return self._glob(col(name, lower=False), list(value.s))
        if isinstance(value, t.SigmaString):
            parts = [p.lower() if isinstance(p, str) else p for p in value.s]
            return self._glob(col(name, lower=True), parts)
        if isinstance(value, t.SigmaBool):
            return Glob(col(name, lower=True), (str(value.boolean).lower(),))
        if isinstance(value, t.SigmaNumber):
            return Glob(col(name, lower=True), (str(value.number).lower(),))
        if isinstance(value, t.SigmaNull):
            return NullOrEmpty(col(name, lower=False))
        if isinstance(value, t.SigmaExists):
            return IsNull(col(name, lower=False), null=not value.exists)
        if isinstance(value, t.SigmaRegularExpression):
            return self._regex(col(name, lower=False), value)
        if isinstance(value, t.SigmaCIDRExpression):
            c = col(name, lower=True)
            multi = t.SpecialChars.WILDCARD_MULTI
            return Or(
                tuple(
                    Glob(c, (p[:-1].lower(), multi)) if p.endswith("*") else Glob(c, (p.lower(),))
                    for p in value.expand(wildcard="*")
                )
            )
        if isinstance(value, t.SigmaCompareExpression):
            number = float(value.number.number)
            return Compare(col(name, lower=False), _COMPARE_OPS[value.op.name], number)
        if isinstance(value, t.SigmaFieldReference):
            left, right = col(name, lower=True), col(value.field, lower=True)
            if value.starts_with and value.ends_with:
                return FieldRef(left, right, "contains")
            if value.starts_with:
                return FieldRef(left, right, "startswith")
            if value.ends_with:
                return FieldRef(left, right, "endswith")
            return FieldRef(left, right, "equals")
        raise RuleCompileError(f"unsupported value type {type(value).__name__} for field {name!r}")


_REGEX_CACHE: dict[str, str | None] = {}


def _check_regex(pattern: str) -> None:
    """Raise when DuckDB's regular-expression engine (RE2) cannot compile ``pattern``."""
    if pattern not in _REGEX_CACHE:
        import duckdb

        try:
            duckdb.execute("SELECT regexp_matches('', ?)", [pattern]).fetchall()
            _REGEX_CACHE[pattern] = None
        except duckdb.Error as exc:
            _REGEX_CACHE[pattern] = str(exc).splitlines()[0]
    problem = _REGEX_CACHE[pattern]
    if problem:
        raise RuleCompileError(f"regular expression not supported by RE2: {problem}")


def rule_tree(rule: SigmaRule, columns: FieldColumns) -> Node:
    """The predicate tree of a rule's detection over the field columns of its source."""
    try:
        conditions = [c.parsed for c in rule.detection.parsed_condition]
    except Exception as exc:  # pySigma raises many kinds of errors for a bad condition
        raise RuleCompileError(f"condition cannot be parsed: {exc}") from exc
    compiler = _Compiler(columns)
    parts = [compiler.node(c) for c in conditions]
    return parts[0] if len(parts) == 1 else Or(tuple(parts))


def compile_rule(rule: SigmaRule, columns: FieldColumns) -> str:
    """The SQL predicate of a rule's detection over the field columns of its source."""
    return to_sql(rule_tree(rule, columns))


def referenced_fields(rule: SigmaRule) -> list[str]:
    """Field names a rule's detection uses, in order of first use."""
    seen: dict[str, None] = {}
    for detection in rule.detection.detections.values():
        _collect(detection, seen.setdefault)
    return list(seen)


def _collect(item: Any, add: Callable[[str, None], Any]) -> None:
    items = getattr(item, "detection_items", None)
    if items is not None:
        for sub in items:
            _collect(sub, add)
    elif getattr(item, "field", None):
        add(item.field, None)


def required_event_ids(rule: SigmaRule) -> set[int] | None:
    """Event ids one of which every match of the rule has (from ``EventID`` selections), or None."""
    from sigma.conditions import ConditionAND, ConditionFieldEqualsValueExpression, ConditionOR
    from sigma.types import SigmaExpansion, SigmaNumber, SigmaString

    def ids(node: Any) -> set[int] | None:
        if isinstance(node, ConditionFieldEqualsValueExpression) and node.field == "EventID":
            values = node.value.values if isinstance(node.value, SigmaExpansion) else [node.value]
            found = set()
            for v in values:
                text = (
                    str(v.number)
                    if isinstance(v, SigmaNumber)
                    else v.to_plain()
                    if isinstance(v, SigmaString) and not v.contains_special()
                    else None
                )
                if text is None or not text.strip().isdigit():
                    return None
                found.add(int(text))
            return found
        if isinstance(node, ConditionOR):
            parts = [ids(a) for a in node.args]
            return None if any(p is None for p in parts) else set().union(*parts)  # type: ignore[arg-type]
        if isinstance(node, ConditionAND):
            known = [p for p in (ids(a) for a in node.args) if p is not None]
            return set.intersection(*known) if known else None
        return None

    try:
        found = [ids(c.parsed) for c in rule.detection.parsed_condition]
    except Exception:
        return None
    return None if any(f is None for f in found) else set().union(*found)  # type: ignore[arg-type]
