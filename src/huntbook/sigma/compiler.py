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
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from sigma.rule import SigmaLogSource, SigmaRule

__all__ = ["FieldColumns", "RuleCompileError", "Source", "compile_rule", "source_for", "sql_str"]

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


@dataclass
class FieldColumns:
    """The field columns one source needs: Sigma field name -> column index, and lower-cased uses."""

    source: Source
    names: dict[str, int] = field(default_factory=dict)
    lowered: set[int] = field(default_factory=set)
    as_is: set[int] = field(default_factory=set)  # fields also matched without lower-casing
    keywords: bool = False  # a rule searches the whole record

    def column(self, name: str, *, lower: bool) -> str:
        """The SQL column holding field ``name`` (its lower-cased form when ``lower``)."""
        index = self.names.setdefault(name, len(self.names))
        if lower:
            self.lowered.add(index)
            return f"l{index}"
        self.as_is.add(index)
        return f"f{index}"

    def extraction(self) -> tuple[str, list[str]]:
        """SQL reading the JSON values (one parse per record), and the expression of every ``f<n>``."""
        fmts = ("zeek",) if self.source.family == "zeek" else ("evtx", "winlogbeat", "flat")
        paths: dict[str, list[str]] = {f: [] for f in fmts}

        def refs(name: str) -> list[str]:
            out = []
            for fmt in fmts:
                new = _field_paths(fmt, name)
                out += [f"v_{fmt}[{len(paths[fmt]) + i + 1}]" for i in range(len(new))]  # lists count from 1
                paths[fmt] += new
            return out

        userdata = self.source.userdata and "evtx" in paths
        if userdata:
            paths["evtx"].append("$.Event.UserData")  # v_evtx[1]: the <UserData> element, as JSON text
        exprs: list[str] = []
        for name in self.names:
            if name in _TYPED and self.source.family == "windows":
                exprs.append(_TYPED[name])
                continue
            options = []
            spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name) if self.source.spaced_names else name
            alternatives = (name, *self.source.aliases.get(name, ()), *([spaced] if spaced != name else []))
            for alias in alternatives:
                options += refs(alias)
                if userdata:
                    options.append(
                        "CASE WHEN v_evtx[1] IS NOT NULL THEN json_extract_string(v_evtx[1], "
                        f"{sql_str('$.*.' + _json_step(alias))})[1] END"
                    )
            exprs.append(f"COALESCE({', '.join(options)})")
        tests = {
            "zeek": "true",
            "evtx": "EventFormat IN ('evtx', 'evtx_json')",
            "winlogbeat": "EventFormat = 'winlogbeat'",
            "flat": "EventFormat NOT IN ('evtx', 'evtx_json', 'winlogbeat')",
        }
        parts = [
            f"CASE WHEN {tests[f]} THEN json_extract_string(raw, {_list(paths[f])}) END AS v_{f}"
            if paths[f]
            else f"NULL AS v_{f}"
            for f in fmts
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


def _regex_of(parts: list[Any], special: Any) -> str:
    """An RE2 pattern (matched against the lower-cased field) for a Sigma string with wildcards."""
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
            body.append("".join(_regex_char(c) for c in part.lower()))
        elif part == special.WILDCARD_MULTI:
            body.append(".*")
        elif part == special.WILDCARD_SINGLE:
            body.append(".")
        else:
            raise RuleCompileError(f"unsupported string part {part!r}")
    return f"(?:{head}{''.join(body)}{tail})"


def _like_pattern(parts: list[Any], special: Any) -> str:
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


class _Compiler:
    """Walks pySigma's parsed condition tree and writes SQL."""

    def __init__(self, columns: FieldColumns) -> None:
        from sigma import types

        self.t = types
        self.columns = columns

    def node(self, node: Any) -> str:
        from sigma.conditions import (
            ConditionAND,
            ConditionFieldEqualsValueExpression,
            ConditionNOT,
            ConditionOR,
            ConditionValueExpression,
        )

        if isinstance(node, ConditionAND):
            return "(" + " AND ".join(self.node(a) for a in node.args) + ")"
        if isinstance(node, ConditionOR):
            return "(" + " OR ".join(self.any_of(node.args)) + ")"
        if isinstance(node, ConditionNOT):
            return "(NOT COALESCE(" + self.node(node.args[0]) + ", false))"
        if isinstance(node, ConditionFieldEqualsValueExpression):
            return self.value(node.field, node.value)
        if isinstance(node, ConditionValueExpression):
            return self.keyword(node.value)
        raise RuleCompileError(f"unsupported condition element {type(node).__name__}")

    def any_of(self, args: list[Any]) -> list[str]:
        """SQL of OR-ed conditions; three or more plain string matches on one field become one regex."""
        from sigma.conditions import ConditionFieldEqualsValueExpression, ConditionValueExpression

        t = self.t
        out: list[str] = []
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
                pattern = "|".join(
                    _regex_of([multi, *v.s, multi], t.SpecialChars)
                    for v in keywords[start : start + MERGE_AT_MOST]
                )
                out.append(f"regexp_matches(l_raw, {sql_str('(?s)' + pattern)})")
        for name, values in by_field.items():
            if len(values) < MERGE_AT_LEAST:
                out += [self.value(name, v) for v in values]
                continue
            col = self.columns.column(name, lower=True)
            for start in range(0, len(values), MERGE_AT_MOST):
                pattern = "|".join(
                    _regex_of(v.s, t.SpecialChars) for v in values[start : start + MERGE_AT_MOST]
                )
                out.append(f"regexp_matches({col}, {sql_str('(?s)' + pattern)})")
        return out

    def keyword(self, value: Any) -> str:
        t = self.t
        self.columns.keywords = True
        if isinstance(value, t.SigmaExpansion):
            return "(" + " OR ".join(self.keyword(v) for v in value.values) + ")"
        if isinstance(value, t.SigmaString | t.SigmaNumber):
            s = value if isinstance(value, t.SigmaString) else t.SigmaString(str(value))
            parts = [p.lower() if isinstance(p, str) else p for p in s.s]
            if parts and parts[0] != t.SpecialChars.WILDCARD_MULTI:
                parts.insert(0, t.SpecialChars.WILDCARD_MULTI)
            if parts and parts[-1] != t.SpecialChars.WILDCARD_MULTI:
                parts.append(t.SpecialChars.WILDCARD_MULTI)
            return self._string("l_raw", parts)
        if isinstance(value, t.SigmaRegularExpression):
            return self._regex("raw", value)
        raise RuleCompileError(f"unsupported keyword value {type(value).__name__}")

    def _string(self, col: str, parts: list[Any]) -> str:
        t = self.t
        multi = t.SpecialChars.WILDCARD_MULTI
        if any(isinstance(p, t.Placeholder) for p in parts):
            raise RuleCompileError("unresolved placeholder (|expand): give the pipeline a value for it")
        inner = parts[1:-1] if len(parts) >= 2 else []
        plain = all(isinstance(p, str) for p in inner)
        text = "".join(p for p in inner if isinstance(p, str))
        if parts and all(isinstance(p, str) for p in parts):
            expr = f"{col} = {sql_str(''.join(parts))}"
        elif len(parts) == 1 and parts[0] == multi:
            expr = f"{col} IS NOT NULL"
        elif len(parts) >= 2 and parts[0] == multi and parts[-1] == multi and plain:
            expr = f"contains({col}, {sql_str(text)})"
        elif parts and parts[0] == multi and all(isinstance(p, str) for p in parts[1:]):
            expr = f"suffix({col}, {sql_str(''.join(parts[1:]))})"
        elif parts and parts[-1] == multi and all(isinstance(p, str) for p in parts[:-1]):
            expr = f"starts_with({col}, {sql_str(''.join(parts[:-1]))})"
        else:
            expr = f"{col} LIKE {sql_str(_like_pattern(parts, t.SpecialChars))} ESCAPE '\\'"
        return expr

    def _regex(self, col: str, value: Any) -> str:
        flags = value.flags
        f = self.t.SigmaRegularExpressionFlag
        pattern = value.regexp.original if hasattr(value.regexp, "original") else str(value.regexp)
        inline = "".join(
            c for flag, c in ((f.IGNORECASE, "i"), (f.MULTILINE, "m"), (f.DOTALL, "s")) if flag in flags
        )
        if inline:
            pattern = f"(?{inline}){pattern}"
        _check_regex(pattern)
        return f"regexp_matches({col}, {sql_str(pattern)})"

    def value(self, name: str | None, value: Any) -> str:
        t = self.t
        if name is None:
            return self.keyword(value)
        col = self.columns.column
        if isinstance(value, t.SigmaExpansion):
            return "(" + " OR ".join(self.value(name, v) for v in value.values) + ")"
        if isinstance(value, t.SigmaCasedString):
            return self._string(col(name, lower=False), list(value.s))
        if isinstance(value, t.SigmaString):
            parts = [p.lower() if isinstance(p, str) else p for p in value.s]
            return self._string(col(name, lower=True), parts)
        if isinstance(value, t.SigmaBool):
            return f"{col(name, lower=True)} = {sql_str(str(value.boolean).lower())}"
        if isinstance(value, t.SigmaNumber):
            return f"{col(name, lower=True)} = {sql_str(str(value.number).lower())}"
        if isinstance(value, t.SigmaNull):
            c = col(name, lower=False)
            return f"({c} IS NULL OR {c} = '')"
        if isinstance(value, t.SigmaExists):
            c = col(name, lower=False)
            return f"({c} IS NOT NULL)" if value.exists else f"({c} IS NULL)"
        if isinstance(value, t.SigmaRegularExpression):
            return self._regex(col(name, lower=False), value)
        if isinstance(value, t.SigmaCIDRExpression):
            c = col(name, lower=True)
            tests = [
                f"starts_with({c}, {sql_str(p[:-1].lower())})"
                if p.endswith("*")
                else f"{c} = {sql_str(p.lower())}"
                for p in value.expand(wildcard="*")
            ]
            return "(" + " OR ".join(tests) + ")"
        if isinstance(value, t.SigmaCompareExpression):
            ops = {"LT": "<", "LTE": "<=", "GT": ">", "GTE": ">="}
            op = ops[value.op.name]
            number = float(value.number.number)
            return f"TRY_CAST({col(name, lower=False)} AS DOUBLE) {op} {number!r}"
        if isinstance(value, t.SigmaFieldReference):
            left, right = col(name, lower=True), col(value.field, lower=True)
            if value.starts_with and value.ends_with:
                return f"(contains({left}, {right}))"
            if value.starts_with:
                return f"(starts_with({left}, {right}))"
            if value.ends_with:
                return f"(suffix({left}, {right}))"
            return f"({left} = {right})"
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


def compile_rule(rule: SigmaRule, columns: FieldColumns) -> str:
    """The SQL predicate of a rule's detection over the field columns of its source."""
    try:
        conditions = [c.parsed for c in rule.detection.parsed_condition]
    except Exception as exc:  # pySigma raises many kinds of errors for a bad condition
        raise RuleCompileError(f"condition cannot be parsed: {exc}") from exc
    compiler = _Compiler(columns)
    parts = [compiler.node(c) for c in conditions]
    return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"


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
