"""Query catalogues: YAML files of named, parameterised queries, and typed parameters.

A catalogue file uses MSTICPy's query-file layout, so a team's existing MSTICPy files load::

    metadata:
      version: 1
      description: Process queries
      data_environments: [local]        # LocalData, LogAnalytics, MSSentinel, Kusto, Splunk ... are mapped
      data_families: [process]          # the first family groups the queries: qp.process.<name>
      format: huntbook                  # placeholders are complete literals (see below)
      language: sql                     # optional: sql | kql | spl ...; else implied by the environment
    defaults:
      parameters:
        start: {description: Start of the range (inclusive), type: datetime, default: -7d}
        end: {description: End of the range (exclusive), type: datetime, default: now}
    sources:
      host_processes:
        description: Processes started on a host
        args:
          query: SELECT * FROM process_events WHERE DvcHostname = {host_name} AND ...
        parameters:
          host_name: {description: Host name, type: str, aliases: [host]}

Rendering never uses ``str.format``. A placeholder is ``{name}`` for a declared parameter; any other
brace is left as written, and ``{{``/``}}`` stand for literal braces (as in MSTICPy). Each value is
turned into a literal of the query language by the driver (:meth:`huntbook.drivers.base.Driver.literal`):
a placeholder written inside a string literal of the template (``'{host_name}'``) receives the value
escaped for that literal; a bare placeholder receives a complete literal (``'WS01'``,
``TIMESTAMPTZ '...'``, ``'a', 'b'`` for lists). Placeholders inside comments are not substituted.

Parameter types: ``str int float bool datetime list timespan identifier fragment``. ``identifier`` is a
table or column name (``^[A-Za-z_][A-Za-z0-9_.]*$``), inserted bare. ``fragment`` is trusted query text
written by the analyst or the catalogue author (e.g. ``| where EventID == 4688``) and is inserted
**as is, never escaped** — never pass data from logs into a fragment.

MSTICPy files (no ``format: huntbook``) keep MSTICPy's meaning: ``table`` is an identifier,
``add_query_items`` a fragment, a ``str`` parameter with a default that appears outside quotes is a
fragment (``{event_filter}``, ``{host_op}``), and ``str`` defaults are inserted as the author wrote
them. Values supplied by the caller are always escaped. ``query_macros`` (``$<name>$``) are expanded.
"""

from __future__ import annotations

import difflib
import inspect
import math
import numbers
import os
import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Final

from huntbook._types import PathLike
from huntbook.errors import ParameterError, QueryError
from huntbook.schema import TABLES

__all__ = [
    "ENVIRONMENT_ALIASES",
    "MISSING",
    "PARAM_TYPES",
    "RESERVED_PARAMS",
    "Catalogue",
    "CatalogueWarning",
    "LiteralFunc",
    "Param",
    "QuerySpec",
    "Raw",
    "Slot",
    "canonical_environment",
    "load_catalogue",
    "load_file",
    "normalize_family",
    "parse_time",
    "parse_timespan",
    "render",
    "suggest",
    "tokenize",
]

PARAM_TYPES: Final = frozenset(
    {"str", "int", "float", "bool", "datetime", "list", "timespan", "identifier", "fragment"}
)
#: Keywords of every query call; a catalogue parameter may not use them.
RESERVED_PARAMS: Final = frozenset({"print_query", "split_by", "timeout"})
_TYPE_ALIASES: Final = {"string": "str", "integer": "int", "number": "float", "date": "datetime"}

#: MSTICPy and other spellings of data environments -> huntbook environment (driver) names.
ENVIRONMENT_ALIASES: Final = {
    "local": "local",
    "localdata": "local",
    "loganalytics": "sentinel",
    "mssentinel": "sentinel",
    "mssentinel_new": "sentinel",
    "azuresentinel": "sentinel",
    "sentinel": "sentinel",
    "kusto": "kusto",
    "kusto_new": "kusto",
    "azuredataexplorer": "kusto",
    "adx": "kusto",
    "splunk": "splunk",
    "elastic": "elastic",
    "elasticsearch": "elastic",
    "opensearch": "elastic",
    "sql": "sql",
    "postgres": "sql",
    "postgresql": "sql",
    "spark": "spark",
    "mde": "mde",
    "mdatp": "mde",
    "m365d": "m365d",
}
_KQL_ENVIRONMENTS: Final = frozenset({"sentinel", "kusto", "mde", "m365d"})
_ENVIRONMENT_LANGUAGE: Final = {
    "local": "sql",
    "sql": "sql",
    "spark": "sql",
    "splunk": "spl",
    "elastic": "esql",
}

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_MACRO = re.compile(r"\$<([A-Za-z_][A-Za-z0-9_]*)>\$")
_OFFSET = re.compile(r"([+-])\s*(\d+(?:\.\d+)?)\s*([a-z]*)")
_UNITS: Final = {
    "": 86400.0,  # a bare number is days, as in MSTICPy
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
    "w": 604800.0,
    "week": 604800.0,
    "weeks": 604800.0,
}


class CatalogueWarning(UserWarning):
    """A catalogue file or entry was skipped or overrides another."""


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: The default of a required parameter.
MISSING: Final = _Missing()


class Raw(str):
    """Trusted template text (a fragment or a MSTICPy default): inserted as is, never escaped."""

    __slots__ = ()


# ----------------------------------------------------------------------------------------------
# Times


def parse_time(value: Any, now: datetime | None = None, *, name: str = "time") -> datetime:
    """Turn ``value`` into a timezone-aware UTC ``datetime``.

    Accepts ``datetime``/``pandas.Timestamp`` (naive = UTC), ``date``, ISO strings, ``now``,
    ``today``, ``yesterday``, offsets ``-2d``, ``-30m``, ``-1h``, ``-1w``, ``+1d``, ``now-2d``,
    ``today-1d`` and numbers (an offset in days, as in MSTICPy: ``-1`` is one day ago).
    ``name`` is the parameter named in error messages. An object with a ``huntbook_time(name)`` method
    (the notebook's ``QueryTime`` widget) gives its time for that parameter.
    """
    now = _to_utc(now) if now is not None else datetime.now(UTC)
    if callable(getattr(value, "huntbook_time", None)):
        value = value.huntbook_time(name)
    if isinstance(value, datetime):
        return _to_utc(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return now + timedelta(days=_finite(float(value), name))
    if hasattr(value, "dtype") and hasattr(value, "astype"):  # numpy.datetime64
        return parse_time(value.astype("datetime64[us]").item(), now, name=name)
    if isinstance(value, str):
        parsed = _parse_time_text(value.strip(), now)
        if parsed is not None:
            return parsed
    raise ParameterError(
        f"{name}={value!r} ({type(value).__name__}) is not a time",
        hint="use a datetime, an ISO string ('2024-05-01T12:00:00Z'), 'now', or an offset such as '-2d'",
    )


def _parse_time_text(text: str, now: datetime) -> datetime | None:
    lowered = text.lower()
    anchors = {
        "now": now,
        "today": now.replace(hour=0, minute=0, second=0, microsecond=0),
        "yesterday": now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1),
    }
    anchor_name = next((a for a in anchors if lowered.startswith(a)), "")
    rest = lowered[len(anchor_name) :].strip()
    if anchor_name and not rest:
        return anchors[anchor_name]
    match = _OFFSET.fullmatch(rest)
    if match and match.group(3) in _UNITS:
        sign = -1.0 if match.group(1) == "-" else 1.0
        return anchors.get(anchor_name, now) + timedelta(
            seconds=sign * float(match.group(2)) * _UNITS[match.group(3)]
        )
    if anchor_name:
        return None
    try:
        return _to_utc(datetime.fromisoformat(text))
    except ValueError:
        return None


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _finite(value: float, name: str) -> float:
    if not math.isfinite(value):
        raise ParameterError(f"{name}={value!r} is not a finite number")
    return value


def parse_timespan(value: Any, *, name: str = "timespan") -> timedelta:
    """Turn ``value`` into a ``timedelta``: ``"1h"``, ``"30m"``, ``"2d"``, ``"1.5h"``, ``"01:30:00"``,
    a ``timedelta``/``pandas.Timedelta``, or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return timedelta(seconds=_finite(float(value), name))
    if isinstance(value, str):
        text = value.strip().lower()
        match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([a-z]+)", text)
        if match and match.group(2) in _UNITS:
            return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
        clock = re.fullmatch(r"(\d+):(\d\d):(\d\d(?:\.\d+)?)", text)
        if clock:
            hours, minutes, seconds = clock.groups()
            return timedelta(hours=int(hours), minutes=int(minutes), seconds=float(seconds))
    raise ParameterError(
        f"{name}={value!r} ({type(value).__name__}) is not a timespan",
        hint="use e.g. '1h', '30m', '1d', a timedelta, or a number of seconds",
    )


# ----------------------------------------------------------------------------------------------
# Parameters


@dataclass(frozen=True)
class Param:
    """A typed query parameter. ``default`` is :data:`MISSING` for a required parameter."""

    name: str
    type: str = "str"
    description: str = ""
    default: Any = MISSING
    aliases: tuple[str, ...] = ()

    @property
    def required(self) -> bool:
        """True when the parameter has no default."""
        return self.default is MISSING

    def coerce(self, value: Any, now: datetime | None = None) -> Any:
        """``value`` converted to this parameter's type; :class:`ParameterError` names what is wrong."""
        if value is None:
            if self.default is None:
                return Raw("") if self.type == "fragment" else None
            fix = "omit it to use the default" if not self.required else "it is required"
            raise ParameterError(
                f"{self.name}=None is not a valid {self.type}",
                hint=f"give a {self.type} value ({fix}{self._default_text()})",
            )
        return _COERCERS[self.type](self, value, now)

    def describe(self) -> str:
        """One line: ``name (type, default ...): description``."""
        return f"{self.name} ({self.type}{self._default_text()}): {self.description}".rstrip(": ")

    def _default_text(self) -> str:
        return "" if self.required else f", default {self.default!r}"

    def _type_error(self, value: Any, expected: str | None = None) -> ParameterError:
        return ParameterError(
            f"{self.name}={_short(value)} is a {type(value).__name__}, expected {expected or self.type}",
            hint=self.description or None,
        )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_text(param: Param, value: str) -> str:
    if "\x00" in value:
        raise ParameterError(
            f"{param.name} contains a NUL character at position {value.index(chr(0))}",
            hint="NUL cannot appear in a query value; remove it",
        )
    return value


def _coerce_str(param: Param, value: Any, now: datetime | None) -> str:
    if isinstance(value, Raw):
        return value
    if isinstance(value, str):
        return _check_text(param, value)
    if isinstance(value, numbers.Number) and not isinstance(value, bool):
        return str(value)
    raise param._type_error(value)


def _coerce_int(param: Param, value: Any, now: datetime | None) -> int:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value).is_integer():
        return int(float(value))
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    raise param._type_error(value, "int (a whole number)")


def _coerce_float(param: Param, value: Any, now: datetime | None) -> float:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise param._type_error(value, "float (a number)") from None
    else:
        raise param._type_error(value, "float (a number)")
    return _finite(number, param.name)


_BOOLS: Final = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def _coerce_bool(param: Param, value: Any, now: datetime | None) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral) and int(value) in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _BOOLS:
        return _BOOLS[value.strip().lower()]
    raise param._type_error(value, "bool (True or False)")


def _coerce_datetime(param: Param, value: Any, now: datetime | None) -> datetime:
    return parse_time(value, now, name=param.name)


def _coerce_timespan(param: Param, value: Any, now: datetime | None) -> timedelta:
    return parse_timespan(value, name=param.name)


def _coerce_identifier(param: Param, value: Any, now: datetime | None) -> str:
    if not isinstance(value, str):
        raise param._type_error(value, "identifier (a table or column name)")
    if not _IDENTIFIER.fullmatch(value):
        raise ParameterError(
            f"{param.name}={_short(value)} is not a valid table or column name",
            hint="an identifier is letters, digits, '_' and '.', not starting with a digit",
        )
    return value


def _coerce_fragment(param: Param, value: Any, now: datetime | None) -> Raw:
    if not isinstance(value, str):
        raise param._type_error(value, "fragment (query text)")
    return Raw(value)


def _coerce_list(param: Param, value: Any, now: datetime | None) -> list[Any]:
    if isinstance(value, str):
        items: list[Any] = [item.strip() for item in value.split(",") if item.strip()]
    elif isinstance(value, Mapping) or not isinstance(value, Iterable):
        raise param._type_error(value, "list (a list or a comma-separated string)")
    else:
        items = list(value)
        if isinstance(value, set | frozenset):
            items.sort(key=repr)
    if not items:
        raise ParameterError(f"{param.name} is an empty list", hint="give at least one value")
    return [_list_item(param, item) for item in items]


def _list_item(param: Param, item: Any) -> Any:
    if isinstance(item, bool | datetime):
        return item
    if isinstance(item, numbers.Integral):
        return int(item)
    if isinstance(item, numbers.Real):
        return _finite(float(item), param.name)
    if isinstance(item, str):
        return _check_text(param, item)
    raise ParameterError(
        f"{param.name} holds {_short(item)} ({type(item).__name__})",
        hint="list items must be strings, numbers, booleans or datetimes",
    )


_COERCERS: Final[dict[str, Callable[[Param, Any, datetime | None], Any]]] = {
    "str": _coerce_str,
    "int": _coerce_int,
    "float": _coerce_float,
    "bool": _coerce_bool,
    "datetime": _coerce_datetime,
    "timespan": _coerce_timespan,
    "identifier": _coerce_identifier,
    "fragment": _coerce_fragment,
    "list": _coerce_list,
}


# ----------------------------------------------------------------------------------------------
# Templates


@dataclass(frozen=True)
class Slot:
    """A placeholder in a template; ``quoted`` is the opening delimiter of the string literal that
    encloses it (``'``, ``"``, ``E'``, ``$$``, ``@'``, ``@"``, `````), or None for a bare placeholder."""

    name: str
    quoted: str | None = None


#: ``literal(value, param_type, quoted)`` -> query text (a driver's literal function for one language).
LiteralFunc = Callable[[Any, str, str | None], str]

# (opener, closer, escape style): "double" = closer doubled, "backslash" = backslash escapes, "none".
_StringRule = tuple[str, str, str]
_SQL_STRINGS: Final[tuple[_StringRule, ...]] = (
    ("$$", "$$", "none"),
    ("E'", "'", "backslash"),
    ("e'", "'", "backslash"),
    ("'", "'", "double"),
    ('"', '"', "double"),
)
_KQL_STRINGS: Final[tuple[_StringRule, ...]] = (
    ("```", "```", "none"),
    ('@"', '"', "double"),
    ("@'", "'", "double"),
    ('"', '"', "backslash"),
    ("'", "'", "backslash"),
)
_LEXICON: Final[dict[str, tuple[tuple[_StringRule, ...], tuple[tuple[str, str], ...]]]] = {
    "sql": (_SQL_STRINGS, (("--", "\n"), ("/*", "*/"))),
    "kql": (_KQL_STRINGS, (("//", "\n"),)),
    "spl": ((('"', '"', "backslash"),), (("```", "```"),)),
}


def tokenize(template: str, names: Iterable[str], language: str) -> list[str | Slot]:
    """Split ``template`` into text and :class:`Slot` items for the known parameter ``names``.

    Knows the string-literal and comment syntax of ``language`` (``sql``, ``kql``, ``spl``; others
    use KQL's) to tell each slot whether it stands inside a string literal. ``{{``/``}}`` become
    single braces; other braces and placeholders inside comments are kept as written. Raises
    :class:`QueryError` for an unterminated string literal.
    """
    strings, comments = _LEXICON.get(language, _LEXICON["kql"])
    known = set(names)
    out: list[str | Slot] = []
    text: list[str] = []
    string: _StringRule | None = None
    comment_end: str | None = None
    i, size = 0, len(template)
    while i < size:
        if template.startswith(("{{", "}}"), i):
            text.append(template[i])
            i += 2
            continue
        match = _PLACEHOLDER.match(template, i)
        if match and match.group(1) in known and comment_end is None:
            out.extend(["".join(text), Slot(match.group(1), string[0] if string else None)])
            text = []
            i = match.end()
            continue
        if comment_end is not None:
            step = 1
            if template.startswith(comment_end, i):
                step, comment_end = len(comment_end), None
        elif string is not None:
            step, closed = _string_step(template, i, string)
            if closed:
                string = None
        else:
            step, string, comment_end = _code_step(template, i, strings, comments)
        text.append(template[i : i + step])
        i += step
    if string is not None:
        raise QueryError(f"unterminated string literal (opened with {string[0]})", hint="close the quote")
    out.append("".join(text))
    return [item for item in out if item != ""]


def _string_step(template: str, i: int, rule: _StringRule) -> tuple[int, bool]:
    """Width of the next token inside a string literal, and whether it closes the literal."""
    _opener, closer, style = rule
    if style == "backslash" and template[i] == "\\":
        return 2, False
    if template.startswith(closer, i):
        if style == "double" and template.startswith(closer * 2, i):
            return 2 * len(closer), False
        return len(closer), True
    return 1, False


def _code_step(
    template: str, i: int, strings: Sequence[_StringRule], comments: Sequence[tuple[str, str]]
) -> tuple[int, _StringRule | None, str | None]:
    """Width of the next code token, and the string literal or comment it opens, if any."""
    for opener, closer in comments:
        if template.startswith(opener, i):
            return len(opener), None, closer
    prefixed = i > 0 and (template[i - 1].isalnum() or template[i - 1] == "_")
    for rule in strings:
        opener = rule[0]
        if template.startswith(opener, i) and not (len(opener) == 2 and opener[0].isalpha() and prefixed):
            return len(opener), rule, None
    return 1, None, None


def render(
    segments: Sequence[str | Slot], values: Mapping[str, Any], types: Mapping[str, str], literal: LiteralFunc
) -> str:
    """Join tokenized ``segments``, turning each slot's value into query text with ``literal``.

    :class:`Raw` values (fragments) are inserted as they are; ``literal`` never sees them.
    """
    parts = []
    for segment in segments:
        if isinstance(segment, str):
            parts.append(segment)
            continue
        value = values[segment.name]
        if isinstance(value, Raw):
            parts.append(str(value))
        else:
            parts.append(literal(value, types[segment.name], segment.quoted))
    return "".join(parts)


# ----------------------------------------------------------------------------------------------
# Query specs


@dataclass(frozen=True)
class QuerySpec:
    """One catalogue query.

    ``segments`` is the tokenized query text; ``dialect`` is ``huntbook`` (placeholders are complete
    literals) or ``msticpy`` (MSTICPy's conventions, see the module docs).
    """

    name: str
    family: str
    description: str
    query: str
    environment: str
    language: str
    parameters: Mapping[str, Param]
    source: str
    dialect: str = "huntbook"
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    segments: tuple[str | Slot, ...] = ()

    @property
    def qualified_name(self) -> str:
        """``family.name``."""
        return f"{self.family}.{self.name}"

    @property
    def time_range(self) -> bool:
        """True when the query takes datetime ``start`` and ``end`` parameters (so it can be split)."""
        return all(self.parameters.get(n, Param(n)).type == "datetime" for n in ("start", "end"))

    def bind(self, values: Mapping[str, Any], now: datetime | None = None) -> dict[str, Any]:
        """Resolve aliases, fill defaults and coerce ``values``: every parameter -> its typed value."""
        now = now or datetime.now(UTC)
        given = self._canonical(values)
        bound: dict[str, Any] = {}
        for name, param in self.parameters.items():
            if name in given:
                bound[name] = param.coerce(given[name], now)
            elif param.required:
                raise ParameterError(
                    f"missing required parameter {name!r} ({param.type}) of {self.qualified_name}",
                    hint=f"call {self.qualified_name}({name}=...): {param.description}".rstrip(": "),
                )
            elif self.dialect == "msticpy" and param.type == "str" and isinstance(param.default, str):
                bound[name] = Raw(param.default)
            else:
                bound[name] = param.coerce(param.default, now)
        self._check_range(bound)
        return bound

    def _canonical(self, values: Mapping[str, Any]) -> dict[str, Any]:
        lookup = {alias: p.name for p in self.parameters.values() for alias in p.aliases}
        lookup.update({name: name for name in self.parameters})
        given: dict[str, Any] = {}
        for key, value in values.items():
            name = lookup.get(key)
            if name is None:
                raise ParameterError(
                    f"unknown parameter {key!r} for {self.qualified_name}",
                    hint=f"valid parameters: {', '.join(self._names_with_aliases()) or 'none'}",
                )
            if name in given:
                raise ParameterError(
                    f"parameter {name!r} of {self.qualified_name} is given twice (via {key!r})"
                )
            given[name] = value
        return given

    def _names_with_aliases(self) -> list[str]:
        return [
            f"{p.name} ({'/'.join(p.aliases)})" if p.aliases else p.name for p in self.parameters.values()
        ]

    def _check_range(self, bound: Mapping[str, Any]) -> None:
        start, end = bound.get("start"), bound.get("end")
        if isinstance(start, datetime) and isinstance(end, datetime) and start > end:
            raise ParameterError(
                f"start ({start.isoformat()}) is after end ({end.isoformat()}) in {self.qualified_name}",
                hint="swap them, or use a negative offset for start such as start='-2d'",
            )

    def render(self, values: Mapping[str, Any], literal: LiteralFunc) -> str:
        """The query text for bound ``values`` (see :meth:`bind`)."""
        types = {name: p.type for name, p in self.parameters.items()}
        return render(self.segments, values, types, literal)

    def help(self) -> str:
        """A docstring: description, parameters with types and defaults, and the call keywords."""
        ordered = sorted(self.parameters.values(), key=lambda p: not p.required)
        lines = [self.description or self.qualified_name, ""]
        lines += [
            f"Query {self.qualified_name} ({self.language}, from {self.source}).",
            "",
            "Parameters",
            "----------",
        ]
        for param in ordered:
            alias = f" (also: {', '.join(param.aliases)})" if param.aliases else ""
            lines.append(f"{param.name} : {param.type}{param._default_text()}{alias}")
            if param.description:
                lines.append(f"    {param.description}")
        lines += [
            "print_query : bool, default False",
            "    Return the rendered query text instead of running it.",
        ]
        if self.time_range:
            lines += [
                "split_by : timespan, optional",
                "    Run in [start, end) chunks of this size and concatenate.",
            ]
        lines += ["timeout : float, optional", "    Seconds before the query is cancelled."]
        return "\n".join(lines)

    def signature(self) -> inspect.Signature:
        """A keyword-only signature (for Jupyter and ``help()``)."""
        kind = inspect.Parameter.KEYWORD_ONLY
        params = [
            inspect.Parameter(p.name, kind, default=inspect.Parameter.empty if p.required else p.default)
            for p in sorted(self.parameters.values(), key=lambda p: not p.required)
        ]
        params += [
            inspect.Parameter(n, kind, default=d)
            for n, d in (("print_query", False), ("split_by", None), ("timeout", None))
        ]
        return inspect.Signature(params)

    def tables(self) -> list[str]:
        """Names of known LocalStore tables and ``table`` defaults the query reads (for search)."""
        words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", self.query))
        found = [t for t in TABLES if t in words]
        table = self.parameters.get("table")
        if table is not None and isinstance(table.default, str):
            found.append(table.default)
        return found


# ----------------------------------------------------------------------------------------------
# Loading


def canonical_environment(name: str) -> str:
    """The huntbook environment for a MSTICPy or huntbook name (``MSSentinel`` -> ``sentinel``)."""
    key = name.strip().lower()
    return ENVIRONMENT_ALIASES.get(key, key)


def normalize_family(name: str) -> str:
    """A family name usable as a Python attribute: lower-case, other characters -> ``_``."""
    text = re.sub(r"[^0-9a-z_]", "_", name.strip().lower())
    return f"_{text}" if not text or text[0].isdigit() else text


def _default_language(environment: str) -> str:
    if environment in _KQL_ENVIRONMENTS:
        return "kql"
    return _ENVIRONMENT_LANGUAGE.get(environment, "sql")


@dataclass
class Catalogue:
    """The queries offered to one environment, by ``family.name``, and the problems met loading them."""

    environment: str
    queries: dict[str, QuerySpec] = field(default_factory=dict)
    errors: list[QueryError] = field(default_factory=list)

    def add(self, spec: QuerySpec) -> None:
        """Add ``spec``; a later query with the same name replaces the earlier one, with a warning."""
        previous = self.queries.get(spec.qualified_name)
        if previous is not None:
            warnings.warn(
                f"query {spec.qualified_name} from {spec.source} overrides the one from {previous.source}",
                CatalogueWarning,
                stacklevel=3,
            )
        self.queries[spec.qualified_name] = spec

    def load(self, path: Traversable, *, strict: bool = False) -> None:
        """Load one file or every ``*.yaml``/``*.yml`` under a folder. Errors are collected and
        warned about (or raised when ``strict``)."""
        for file in _yaml_files(path):
            specs, errors = load_file(file, self.environment)
            for spec in specs:
                self.add(spec)
            for error in errors:
                if strict:
                    raise error
                warnings.warn(str(error), CatalogueWarning, stacklevel=3)
            self.errors.extend(errors)


def _yaml_files(path: Traversable) -> list[Traversable]:
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(_walk(path), key=str)
    raise QueryError("query folder does not exist", where=str(path), hint="check query_paths")


def _walk(folder: Traversable) -> Iterator[Traversable]:
    for item in folder.iterdir():
        if item.is_dir():
            yield from _walk(item)
        elif item.name.endswith((".yaml", ".yml")):
            yield item


def load_catalogue(environment: str, paths: Iterable[PathLike] = (), *, packaged: bool = True) -> Catalogue:
    """Queries for ``environment``: packaged ``huntbook/catalogues/<environment>/`` files, then each
    path in ``paths`` (files or folders) in order; later files override earlier ones."""
    catalogue = Catalogue(canonical_environment(environment))
    if packaged:
        folder = resources.files("huntbook") / "catalogues" / catalogue.environment
        if folder.is_dir():
            catalogue.load(folder, strict=True)
    for path in paths:
        try:
            catalogue.load(Path(path).expanduser())
        except QueryError as exc:
            warnings.warn(str(exc), CatalogueWarning, stacklevel=2)
            catalogue.errors.append(exc)
    return catalogue


def load_file(
    path: PathLike | Traversable, environment: str | None = None
) -> tuple[list[QuerySpec], list[QueryError]]:
    """Read one catalogue file. Returns the queries offered to ``environment`` (all when None) and
    the errors of bad entries; a file that cannot be read at all gives one error and no queries."""
    file = Path(path) if isinstance(path, str | os.PathLike) else path
    try:
        data = _read_yaml(file)
    except QueryError as exc:
        return [], [exc]
    meta = data.get("metadata") or {}
    environments = [canonical_environment(str(e)) for e in _as_list(meta.get("data_environments"))]
    if environment is not None and environments and canonical_environment(environment) not in environments:
        return [], []
    target = canonical_environment(environment) if environment else (environments or ["*"])[0]
    defaults = data.get("defaults") or {}
    specs: list[QuerySpec] = []
    errors: list[QueryError] = []
    for name, entry in (data.get("sources") or {}).items():
        try:
            specs.append(_build_spec(str(name), entry, meta, defaults, file, target, environments))
        except QueryError as exc:
            errors.append(QueryError(exc.message, where=f"{file}:{name}", hint=exc.hint))
    return specs, errors


def _read_yaml(file: Traversable) -> dict[str, Any]:
    import yaml

    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise QueryError(f"cannot read catalogue file: {exc}", where=str(file)) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark is not None else str(file)
        raise QueryError(
            f"invalid YAML: {getattr(exc, 'problem', None) or exc}",
            where=where,
            hint="check indentation and quoting; multi-line queries are easiest as 'query: |' blocks",
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("sources"), dict):
        raise QueryError(
            "not a query catalogue: needs a 'sources' mapping of query name -> entry",
            where=str(file),
            hint="see docs/queries.md for the file layout",
        )
    for key in ("metadata", "defaults"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise QueryError(f"'{key}' must be a mapping", where=str(file))
    return data


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise QueryError(f"{what} must be a mapping, not {type(value).__name__}")
    return value


def _build_spec(
    name: str,
    entry: Any,
    meta: Mapping[str, Any],
    defaults: Mapping[str, Any],
    file: Traversable,
    environment: str,
    environments: Sequence[str],
) -> QuerySpec:
    if not _IDENTIFIER.fullmatch(name) or "." in name:
        raise QueryError(
            f"query name {name!r} is not a valid Python name", hint="use letters, digits and '_'"
        )
    entry = _mapping(entry, "a query entry")
    source_meta = {
        **_mapping(defaults.get("metadata"), "defaults.metadata"),
        **_mapping(entry.get("metadata"), "metadata"),
    }
    query = _mapping(entry.get("args"), "args").get("query")
    if not isinstance(query, str) or not query.strip():
        raise QueryError("missing query text", hint="give the query as args: {query: ...}")
    macros = {
        **_mapping(defaults.get("query_macros"), "query_macros"),
        **_mapping(entry.get("query_macros"), "query_macros"),
    }
    query = _expand_macros(query, macros)
    dialect = "huntbook" if str(meta.get("format", "")).lower() == "huntbook" else "msticpy"
    language = str(
        source_meta.get("language")
        or meta.get("language")
        or _default_language(environments[0] if environments else environment)
    ).lower()
    raw_params = dict(_mapping(entry.get("parameters"), "parameters"))
    for key, value in _mapping(defaults.get("parameters"), "defaults.parameters").items():
        raw_params.setdefault(key, value)
    params = {str(k): _build_param(str(k), v) for k, v in raw_params.items()}
    try:
        segments = tokenize(query, params, language)
    except QueryError as exc:
        raise QueryError(f"query text: {exc.message}", hint=exc.hint) from None
    if dialect == "msticpy":
        params = _msticpy_types(params, segments)
    else:
        params = _used_params(params, segments, entry.get("parameters") or {})
    for param in params.values():
        _check_default(param, dialect)
    families = _as_list(source_meta.get("data_families")) or _as_list(meta.get("data_families")) or ["other"]
    return QuerySpec(
        name=name,
        family=normalize_family(str(families[0])),
        description=str(entry.get("description") or "").strip(),
        query=query,
        environment=environment,
        language=language,
        parameters=params,
        source=str(file),
        dialect=dialect,
        tags=tuple(str(t) for t in _as_list(meta.get("tags"))),
        metadata=source_meta,
        segments=tuple(segments),
    )


def _expand_macros(query: str, macros: Mapping[str, Any]) -> str:
    def value(match: re.Match[str]) -> str:
        macro = macros.get(match.group(1))
        if macro is None:
            return match.group(0)
        return str(macro.get("value", "") if isinstance(macro, dict) else macro)

    return _MACRO.sub(value, query)


def _build_param(name: str, spec: Any) -> Param:
    spec = _mapping(spec, f"parameter {name!r}")
    if not _IDENTIFIER.fullmatch(name) or "." in name:
        raise QueryError(f"parameter name {name!r} is not a valid Python name")
    if name in RESERVED_PARAMS:
        raise QueryError(
            f"parameter name {name!r} is reserved", hint=f"rename it; reserved: {sorted(RESERVED_PARAMS)}"
        )
    ptype = str(spec.get("type", "str")).lower()
    ptype = _TYPE_ALIASES.get(ptype, ptype)
    if ptype not in PARAM_TYPES:
        raise QueryError(
            f"parameter {name!r} has unknown type {ptype!r}", hint=f"use one of {sorted(PARAM_TYPES)}"
        )
    return Param(
        name=name,
        type=ptype,
        description=str(spec.get("description") or "").strip(),
        default=spec.get("default", MISSING),
        aliases=tuple(str(a) for a in _as_list(spec.get("aliases"))),
    )


def _msticpy_types(params: dict[str, Param], segments: Sequence[str | Slot]) -> dict[str, Param]:
    """Give MSTICPy ``str`` parameters the meaning MSTICPy's plain ``str.format`` gives them."""
    bare = {s.name for s in segments if isinstance(s, Slot) and s.quoted is None}
    result = {}
    for name, param in params.items():
        ptype = param.type
        if ptype == "str" and name == "table":
            ptype = "identifier"
        elif ptype == "str" and (name == "add_query_items" or (name in bare and not param.required)):
            ptype = "fragment"
        result[name] = Param(name, ptype, param.description, param.default, param.aliases)
    return result


def _used_params(
    params: dict[str, Param], segments: Sequence[str | Slot], declared: Mapping[str, Any]
) -> dict[str, Param]:
    """huntbook files: keep the parameters the query uses; a declared but unused one is an error."""
    used = {s.name for s in segments if isinstance(s, Slot)}
    unused = sorted(set(declared) - used)
    if unused:
        raise QueryError(
            f"parameter(s) {', '.join(unused)} declared but not used in the query",
            hint="use them as {name} placeholders or remove them",
        )
    return {name: param for name, param in params.items() if name in used}


def _check_default(param: Param, dialect: str) -> None:
    if param.required or param.default is None:
        return
    if param.type == "str" and dialect == "msticpy" and isinstance(param.default, str):
        return
    try:
        param.coerce(param.default)
    except ParameterError as exc:
        raise QueryError(f"bad default for parameter {param.name!r}: {exc.message}") from None


def suggest(name: str, candidates: Iterable[str]) -> str:
    """A hint naming the closest matches of ``name`` among ``candidates``."""
    close = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.5)
    return f"did you mean {', '.join(close)}?" if close else ""
