"""A loopback Splunk: the REST search API, saved searches and the HTTP Event Collector, in memory.

Serve :meth:`SplunkServer.app` with :class:`huntbook.testing.loopback.LoopbackServer`. What it speaks
(from Splunk's REST API reference and the HEC documentation):

- ``POST /services/auth/login`` (form ``username``/``password``) -> ``<response><sessionKey>``; 401
  ``Login failed`` otherwise. Every other REST call needs ``Authorization: Splunk <session key or
  token>`` or ``Bearer <token>`` (401 ``call not properly authenticated``).
- ``GET /services/server/info`` (Atom feed; ``version`` picks splunklib's v1 or v2 search paths).
- Search jobs under ``/services/search/jobs`` and ``/services/search/v2/jobs`` (``/servicesNS/<owner>/
  <app>/`` too): create (201 ``{"sid"}``, 400 with a FATAL message for SPL it cannot parse), status
  (Atom ``<entry>`` whose ``dispatchState`` goes QUEUED, PARSING, RUNNING, DONE or FAILED as time
  passes), ``control`` (``action=cancel`` deletes the job), ``results`` (204 until done; then
  ``output_mode=json`` pages: ``count`` (default 100, 0 = all, at most ``max_result_rows``) and
  ``offset``), and ``export`` (NDJSON lines ``{"preview":false,"offset":n,"result":{...}}``).
- ``GET /services/saved/searches`` (Atom feed, ``count``/``offset``).
- HEC: ``POST /services/collector/event`` (``Authorization: Splunk <hec token>``, concatenated JSON
  event objects, gzip accepted, channel in ``X-Splunk-Request-Channel`` or ``?channel=``) ->
  ``{"text":"Success","code":0,"ackId":n}``; ``POST /services/collector/ack`` ``{"acks":[...]}`` ->
  ``{"acks":{"n":true|false}}``. Errors: 401 code 2 (no token), 403 code 4 (bad token), 400 code 5 (no
  data), 6 (invalid data format), 10 (no channel), 12 (event field required), 14 (ACK disabled).

The SPL subset evaluated over the in-memory events (each a dict with ``_time`` in epoch seconds):

- ``search``: ``field=value`` / ``field!=value`` (case-insensitive, ``*`` wildcards), ``field IN (a,
  b)``, bare words and ``"phrases"`` (matched in ``_raw``), ``NOT``, ``OR``, ``AND``, parentheses,
  ``earliest=``/``latest=`` (epoch seconds, ``-7d``/``-24h``/``now``, or ``%m/%d/%Y:%H:%M:%S`` UTC);
- ``where <expr>`` and ``eval f=<expr>, ...`` with ``== = != < <= > >= AND OR NOT + - * / % .`` and the
  functions ``lower upper len substr like match split mvindex mvcount isnull isnotnull coalesce
  tostring tonumber trim ltrim rtrim cidrmatch strftime if in true false null``;
- ``table``, ``fields [+|-]``, ``rename a AS b``, ``sort [N] [+|-]f ...`` (10,000 rows unless N is
  given, as in Splunk; 0 = all), ``head [N]``, ``dedup f``, ``stats`` (``count dc distinct_count min
  max sum avg values list first last`` ``[as name] ... [by f, ...]``), ``| savedsearch "name"``.

Result values come back as strings, as Splunk's JSON results give them. ``slow`` maps a text found
in a search to extra RUNNING seconds; ``failing`` maps a text to a FAILED job with that message.
"""

from __future__ import annotations

import gzip
import itertools
import json
import math
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from huntbook.testing.loopback import LoopbackRequest, Reply

__all__ = [
    "SplError",
    "SplunkServer",
    "compile_expression",
    "splunk_events",
]

ATOM_NS = (
    'xmlns="http://www.w3.org/2005/Atom" xmlns:s="http://dev.splunk.com/ns/rest" '
    'xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/"'
)


class SplError(Exception):
    """SPL the loopback cannot parse or run (a FATAL message in the answer)."""


# ==============================================================================================
# Expressions: one small Pratt parser for SPL eval and ES|QL (dialect = "spl" | "esql")

_TOKEN = {
    "spl": re.compile(
        r"""\s*(?:(?P<num>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|(?P<str>"(?:[^"\\]|\\.)*")|(?P<qname>'[^']*')"""
        r"""|(?P<name>[A-Za-z_][\w.:]*(?<!\.))|(?P<op>==|!=|<=|>=|[=<>+\-*/%(),.]))"""
    ),
    "esql": re.compile(
        r"""\s*(?:(?P<num>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|(?P<tstr>\"\"\"(?:.|\n)*?\"\"\")"""
        r"""|(?P<str>"(?:[^"\\]|\\.)*")|(?P<qname>`[^`]*`)|(?P<name>[A-Za-z_@][\w.@]*(?<!\.))"""
        r"""|(?P<op>==|!=|<=|>=|[<>+\-*/%(),]))"""
    ),
}
_ESQL_KEYWORDS = frozenset({"AND", "OR", "NOT", "IS", "NULL", "LIKE", "RLIKE", "IN", "TRUE", "FALSE"})
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}
_SPANS = {
    "millisecond": 0.001,
    "milliseconds": 0.001,
    "ms": 0.001,
    "second": 1,
    "seconds": 1,
    "sec": 1,
    "s": 1,
    "minute": 60,
    "minutes": 60,
    "min": 60,
    "hour": 3600,
    "hours": 3600,
    "h": 3600,
    "day": 86400,
    "days": 86400,
    "d": 86400,
    "week": 604800,
    "weeks": 604800,
}

Fn = Callable[[Mapping[str, Any]], Any]


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), body)


def _tokens(text: str, dialect: str) -> list[tuple[str, Any]]:
    pattern = _TOKEN[dialect]
    out: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(text):
        if not text[pos:].strip():
            break
        match = pattern.match(text, pos)
        if not match or match.end() == pos:
            raise SplError(f"cannot read the expression at {text[pos : pos + 20]!r}")
        pos = match.end()
        kind = match.lastgroup
        value = match.group(kind)  # type: ignore[arg-type]
        if kind == "num":
            out.append(("num", float(value) if any(c in value for c in ".eE") else int(value)))
        elif kind == "tstr":
            out.append(("str", value[3:-3]))
        elif kind == "str":
            out.append(("str", _unquote(value)))
        elif kind == "qname":
            out.append(("name", value[1:-1]))
        elif kind == "name":
            if dialect == "spl":  # SPL keywords are upper case; like(), in(), null() are functions
                keyword = value if value in ("AND", "OR", "NOT", "XOR") else None
            else:
                keyword = value.upper() if value.upper() in _ESQL_KEYWORDS else None
            out.append(("kw", keyword) if keyword else ("name", value))
        else:
            out.append(("op", value))
    out.append(("end", None))
    return out


_NUMBER_START = frozenset("0123456789+-. ")
_NUMERIC = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and _NUMERIC.fullmatch(value):
        return float(value)
    return None


def _as_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _scalar(value: Any) -> Any:
    """A one-value list is that value (Splunk and ES|QL treat it so)."""
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    return value


def compare(left: Any, op: str, right: Any) -> bool | None:
    """``left op right`` with Splunk/ES|QL coercion: numbers, then times, then text; null -> None."""
    left, right = _scalar(left), _scalar(right)
    if left is None or right is None:
        return None
    if type(left) is str and type(right) is str and op in ("==", "=", "!="):
        if left == right:
            return op != "!="
        if left[:1] not in _NUMBER_START or right[:1] not in _NUMBER_START:
            return op == "!="
    if isinstance(left, datetime) or isinstance(right, datetime):
        a, b = _as_time(left), _as_time(right)
        if a is None or b is None:
            return None
        pair: tuple[Any, Any] = (a, b)
    elif isinstance(left, bool) or isinstance(right, bool):
        pair = (str(left).lower(), str(right).lower())
    else:
        x, y = _number(left), _number(right)
        pair = (x, y) if x is not None and y is not None else (str(left), str(right))
    a, b = pair
    if op in ("==", "="):
        return bool(a == b)
    if op == "!=":
        return bool(a != b)
    if op == "<":
        return bool(a < b)
    if op == "<=":
        return bool(a <= b)
    if op == ">":
        return bool(a > b)
    if op == ">=":
        return bool(a >= b)
    raise SplError(f"unknown comparison {op}")


def _like(value: Any, pattern: Any, dialect: str) -> bool | None:
    value = _scalar(value)
    if value is None or pattern is None:
        return None
    if dialect == "spl":  # % and _ wildcards
        regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in str(pattern))
    else:  # ES|QL LIKE: * and ? wildcards, \ escapes
        regex, chars = "", iter(str(pattern))
        for c in chars:
            if c == "\\":
                regex += re.escape(next(chars, ""))
            else:
                regex += ".*" if c == "*" else "." if c == "?" else re.escape(c)
    return re.fullmatch(regex, str(value), re.DOTALL) is not None


def _text(value: Any) -> str | None:
    value = _scalar(value)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _lower(value: Any) -> str | None:
    if type(value) is str:
        return value.lower()
    text = _text(value)
    return None if text is None else text.lower()


def _upper(value: Any) -> str | None:
    text = _text(value)
    return None if text is None else text.upper()


def _concat(a: Any, b: Any) -> str | None:
    if type(a) is str and type(b) is str:
        return a + b
    x, y = _text(a), _text(b)
    return None if x is None or y is None else x + y


def _len(value: Any) -> int | None:
    text = value if type(value) is str else _text(value)
    return None if text is None else len(text)


def _substr(text: Any, start: Any, length: Any = None) -> str | None:
    s = text if type(text) is str else _text(text)
    if s is None or start is None:
        return None
    begin = int(_number(start) or 0)
    begin = len(s) + begin if begin < 0 else max(begin - 1, 0)  # 1-based; negative counts from the end
    begin = max(begin, 0)
    return s[begin:] if length is None else s[begin : begin + int(_number(length) or 0)]


def _split(text: Any, sep: Any) -> list[str] | None:
    s = _text(text)
    if s is None or sep is None:
        return None
    return s.split(str(sep)) if sep != "" else list(s)


def _mvindex(values: Any, start: Any, end: Any = None) -> Any:
    items = values if isinstance(values, list) else [values] if values is not None else []
    if not items or start is None:
        return None
    i = int(_number(start) or 0)
    if end is None:
        try:
            return items[i]
        except IndexError:
            return None
    j = int(_number(end) or 0)
    j = len(items) + j if j < 0 else j
    picked = items[i : j + 1]
    return picked or None


def _mvcount(values: Any) -> int | None:
    if values is None:
        return None
    return len(values) if isinstance(values, list) else 1


def _case(*args: Any) -> Any:
    """ES|QL ``CASE(condition, value, ..., [default])``."""
    pairs, default = (args[:-1], args[-1]) if len(args) % 2 else (args, None)
    for condition, value in zip(pairs[::2], pairs[1::2], strict=True):
        if condition is True:
            return value
    return default


def _strftime(epoch: Any, fmt: Any) -> str | None:
    """SPL ``strftime`` (UTC); ``%3N``/``%Q`` are milliseconds, ``%6N`` microseconds."""
    seconds = _number(_scalar(epoch))
    if seconds is None or fmt is None:
        return None
    when = datetime.fromtimestamp(seconds, UTC)
    text = (
        str(fmt)
        .replace("%3N", f"{when.microsecond // 1000:03d}")
        .replace("%Q", f"{when.microsecond // 1000:03d}")
    )
    return when.strftime(text.replace("%6N", f"{when.microsecond:06d}"))


def _cidrmatch(cidr: Any, ip: Any) -> bool | None:
    import ipaddress

    ip = _scalar(ip)
    if cidr is None or ip is None:
        return None
    try:
        return ipaddress.ip_address(str(ip).strip()) in ipaddress.ip_network(str(cidr), strict=False)
    except ValueError:
        return False


def _to_datetime(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, UTC)
    return _as_time(value)


def _functions(dialect: str) -> dict[str, Callable[..., Any]]:
    common: dict[str, Callable[..., Any]] = {
        "coalesce": lambda *a: next((v for v in a if v is not None), None),
    }
    if dialect == "spl":
        common.update(
            lower=_lower,
            upper=_upper,
            len=_len,
            substr=_substr,
            like=lambda v, p: _like(v, p, "spl"),
            match=lambda v, p: None if _text(v) is None else re.search(str(p), _text(v)) is not None,  # type: ignore[arg-type]
            split=_split,
            mvindex=_mvindex,
            mvcount=_mvcount,
            isnull=lambda v: v is None,
            isnotnull=lambda v: v is not None,
            tostring=_text,
            tonumber=lambda v: _number(_scalar(v)),
            trim=lambda v, c=None: None if _text(v) is None else _text(v).strip(c),  # type: ignore[union-attr]
            ltrim=lambda v, c=None: None if _text(v) is None else _text(v).lstrip(c),  # type: ignore[union-attr]
            rtrim=lambda v, c=None: None if _text(v) is None else _text(v).rstrip(c),  # type: ignore[union-attr]
            cidrmatch=_cidrmatch,
            strftime=_strftime,
            true=lambda: True,
            false=lambda: False,
            null=lambda: None,
        )
    else:
        common.update(
            to_lower=_lower,
            to_upper=_upper,
            length=_len,
            substring=_substr,
            starts_with=lambda v, p: None if _text(v) is None else _text(v).startswith(str(p)),  # type: ignore[union-attr]
            ends_with=lambda v, p: None if _text(v) is None else _text(v).endswith(str(p)),  # type: ignore[union-attr]
            trim=lambda v: None if _text(v) is None else _text(v).strip(),  # type: ignore[union-attr]
            to_datetime=_to_datetime,
            to_string=_text,
            concat=lambda *a: None if any(x is None for x in a) else "".join(_text(x) or "" for x in a),
            mv_count=_mvcount,
            mv_first=lambda v: (v[0] if v else None) if isinstance(v, list) else v,
            mv_last=lambda v: (v[-1] if v else None) if isinstance(v, list) else v,
            split=lambda v, sep: None if (t := _split(v, sep)) is None else (t if len(t) > 1 else t[0]),
            case=_case,
            cidr_match=lambda ip, *blocks: any(_cidrmatch(b, ip) for b in blocks),
            locate=lambda v, s: None if _text(v) is None else (_text(v).find(str(s)) + 1),  # type: ignore[union-attr]
        )
    return common


@dataclass(frozen=True)
class _Node:
    """Python source for a sub-expression (``r`` is the row); ``const`` when it reads no field."""

    code: str
    const: bool = False


class _Parser:
    """Pratt parser that writes one Python lambda per expression (constants folded)."""

    def __init__(self, text: str, dialect: str) -> None:
        self.dialect = dialect
        self.tokens = _tokens(text, dialect)
        self.pos = 0
        self.functions = _functions(dialect)
        self.env: dict[str, Any] = {
            "_cmp": compare, "_f": _field, "_ar": _arith, "_like": _like, "_text": _text,
            "_not": lambda v: None if v is None else not v,
            "_neg": lambda v: None if (n := _number(v)) is None else -n,
            "_cat": _concat,
            "_in": lambda v, options: any(compare(v, "==", o) for o in options),
            "_rlike": lambda v, p: None if _text(v) is None else bool(re.fullmatch(str(p), _text(v) or "")),
        }  # fmt: skip

    def peek(self) -> tuple[str, Any]:
        return self.tokens[self.pos]

    def take(self) -> tuple[str, Any]:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def expect(self, kind: str, value: Any = None) -> None:
        token = self.take()
        if token[0] != kind or (value is not None and token[1] != value):
            raise SplError(f"expected {value or kind}, found {token[1]!r}")

    def constant(self, value: Any) -> _Node:
        name = f"_k{len(self.env)}"
        self.env[name] = value
        return _Node(name, True)

    def node(self, code: str, *children: _Node) -> _Node:
        """``code`` over ``children``; computed now when every child is a constant."""
        if children and all(c.const for c in children):
            return self.constant(eval(f"lambda r: {code}", self.env)({}))  # our own code
        return _Node(code)

    def parse(self) -> Fn:
        tree = self.expr(0)
        if self.peek()[0] != "end":
            raise SplError(f"unexpected {self.peek()[1]!r} in the expression")
        fn: Fn = eval(f"lambda r: {tree.code}", self.env)  # our own code
        return fn

    # binding powers
    def _infix(self, token: tuple[str, Any]) -> int:
        kind, value = token
        if kind == "kw":
            return {"OR": 1, "XOR": 1, "AND": 2, "IS": 4, "LIKE": 4, "RLIKE": 4, "IN": 4, "NOT": 4}.get(
                value, 0
            )
        if kind == "op":
            if value in ("==", "=", "!=", "<", "<=", ">", ">="):
                return 4
            if value in ("+", "-") or (value == "." and self.dialect == "spl"):
                return 5
            if value in ("*", "/", "%"):
                return 6
        return 0

    def expr(self, power: int) -> _Node:
        left = self.prefix()
        while True:
            bp = self._infix(self.peek())
            if bp <= power:
                return left
            left = self.infix(left, bp)

    def prefix(self) -> _Node:
        kind, value = self.take()
        if kind == "num":
            if self.dialect == "esql" and self.peek()[0] == "name" and self.peek()[1].lower() in _SPANS:
                unit = self.take()[1].lower()
                return self.constant(timedelta(seconds=value * _SPANS[unit]))
            return self.constant(value)
        if kind == "str":
            return self.constant(value)
        if kind == "kw" and value == "NOT":
            inner = self.expr(3)
            return self.node(f"_not({inner.code})", inner)
        if kind == "kw" and value in ("TRUE", "FALSE"):
            return self.constant(value == "TRUE")
        if kind == "kw" and value == "NULL":
            return self.constant(None)
        if kind == "op" and value == "-":
            inner = self.expr(7)
            return self.node(f"_neg({inner.code})", inner)
        if kind == "op" and value == "(":
            inner = self.expr(0)
            self.expect("op", ")")
            return inner
        if kind == "name":
            if self.peek() == ("op", "("):
                return self.call(value)
            if "." in value:
                return _Node(f"_f(r, {value!r})")
            return _Node(f"r.get({value!r})")
        raise SplError(f"unexpected {value!r} in the expression")

    def call(self, name: str) -> _Node:
        self.expect("op", "(")
        args: list[_Node] = []
        if self.peek() != ("op", ")"):
            while True:
                args.append(self.expr(0))
                if self.peek() != ("op", ","):
                    break
                self.take()
        self.expect("op", ")")
        lowered = name.lower()
        if lowered == "if" and len(args) == 3:
            test, yes, no = args
            return self.node(f"({yes.code} if {test.code} else {no.code})", *args)
        if lowered == "in" and self.dialect == "spl" and args:
            options = ", ".join(a.code for a in args[1:])
            return self.node(f"_in({args[0].code}, ({options},))", *args)
        if lowered not in self.functions:
            raise SplError(f"Unknown function '{name}'")
        self.env[f"_fn_{lowered}"] = self.functions[lowered]
        return self.node(f"_fn_{lowered}({', '.join(a.code for a in args)})", *args)

    def infix(self, left: _Node, bp: int) -> _Node:
        kind, value = self.take()
        if kind == "kw" and value in ("AND", "OR", "XOR"):
            right = self.expr(bp)
            if value == "XOR":
                return self.node(f"(bool({left.code}) != bool({right.code}))", left, right)
            return self.node(f"(bool({left.code}) {value.lower()} bool({right.code}))", left, right)
        if kind == "kw" and value == "IS":
            negate = self.peek() == ("kw", "NOT")
            if negate:
                self.take()
            self.expect("kw", "NULL")
            return self.node(f"(({left.code}) is {'not ' if negate else ''}None)", left)
        if kind == "kw" and value == "NOT":  # x NOT LIKE / NOT IN
            inner = self.infix(left, bp)
            return self.node(f"_not({inner.code})", inner)
        if kind == "kw" and value in ("LIKE", "RLIKE"):
            pattern = self.expr(bp)
            if value == "LIKE":
                return self.node(f"_like({left.code}, {pattern.code}, 'esql')", left, pattern)
            return self.node(f"_rlike({left.code}, {pattern.code})", left, pattern)
        if kind == "kw" and value == "IN":
            self.expect("op", "(")
            options = [self.expr(0)]
            while self.peek() == ("op", ","):
                self.take()
                options.append(self.expr(0))
            self.expect("op", ")")
            codes = ", ".join(o.code for o in options)
            return self.node(f"_in({left.code}, ({codes},))", left, *options)
        right = self.expr(bp)
        if value in ("==", "=", "!=", "<", "<=", ">", ">="):
            return self.node(f"_cmp({left.code}, {value!r}, {right.code})", left, right)
        if value == ".":
            return self.node(f"_cat({left.code}, {right.code})", left, right)
        return self.node(f"_ar({left.code}, {value!r}, {right.code})", left, right)


def _arith(a: Any, op: str, b: Any) -> Any:
    a, b = _scalar(a), _scalar(b)
    if isinstance(a, datetime) and isinstance(b, timedelta):
        return a + b if op == "+" else a - b if op == "-" else None
    x, y = _number(a), _number(b)
    if x is None or y is None:
        if op == "+" and isinstance(a, str) and isinstance(b, str):
            return a + b  # SPL: + on two strings concatenates
        return None
    if op == "+":
        result = x + y
    elif op == "-":
        result = x - y
    elif op == "*":
        result = x * y
    elif op == "/":
        result = x / y if y else None  # type: ignore[assignment]
    else:
        result = math.fmod(x, y) if y else None  # type: ignore[assignment]
    if result is not None and float(result).is_integer() and all(isinstance(v, int) for v in (a, b)):
        return int(result)
    return result


def _field(row: Mapping[str, Any], name: str) -> Any:
    """A field by name, also inside nested objects (``host.name`` in ``{"host": {"name": ...}}``)."""
    if name in row:
        return row[name]
    value: Any = row
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def compile_expression(text: str, dialect: str = "spl") -> Fn:
    """``text`` (SPL eval or ES|QL) as a function of a row."""
    return _Parser(text, dialect).parse()


# ==============================================================================================
# SPL pipelines


def _split_pipes(text: str) -> list[str]:
    """Commands of a pipeline: split on ``|`` outside quotes; ```comments``` removed."""
    text = re.sub(r"```.*?```", " ", text, flags=re.DOTALL)
    parts, current, quote, i = [], [], False, 0
    while i < len(text):
        ch = text[i]
        if quote and ch == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if ch == '"':
            quote = not quote
        if ch == "|" and not quote:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
        i += 1
    if quote:
        raise SplError("Unbalanced quotes.")
    parts.append("".join(current).strip())
    return parts


def _words(text: str) -> list[str]:
    """Search-command tokens: quoted strings (kept with quotes), parentheses, words, ``a=b`` pairs."""
    pattern = re.compile(
        r'\s*("(?:[^"\\]|\\.)*"|\(|\)|,|[^\s(),"=!<>]+(?:(?:!=|<=|>=|=|<|>)(?:"(?:[^"\\]|\\.)*"|[^\s()"]*))?)'
    )
    out, pos = [], 0
    while pos < len(text):
        if not text[pos:].strip():
            break
        match = pattern.match(text, pos)
        if not match or match.end() == pos:
            raise SplError(f"Error in 'search' command: cannot read {text[pos : pos + 20]!r}")
        out.append(match.group(1))
        pos = match.end()
    return out


def _wild(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else re.escape(c) for c in pattern), re.IGNORECASE | re.DOTALL)


def _value(token: str) -> str:
    return _unquote(token) if token.startswith('"') and token.endswith('"') and len(token) >= 2 else token


_REL = re.compile(r"([+-])(\d+)(s|sec|m|min|h|hr|d|w)")
_REL_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400, "w": 604800}


def parse_spl_time(text: str, now: float | None = None) -> float:
    """Epoch seconds for an ``earliest``/``latest`` value: epoch, ``now``, ``-7d``, ``%m/%d/%Y:%H:%M:%S``."""
    now = time.time() if now is None else now
    value = text.strip()
    if value in ("now", ""):
        return now
    if value in ("0",):
        return 0.0
    try:
        return float(value)
    except ValueError:
        pass
    match = _REL.fullmatch(value)
    if match:
        sign = -1 if match.group(1) == "-" else 1
        return now + sign * int(match.group(2)) * _REL_SECONDS[match.group(3)]
    try:
        return datetime.strptime(value, "%m/%d/%Y:%H:%M:%S").replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise SplError(f"Invalid value \"{value}\" for time term 'earliest'") from None


@dataclass
class _Search:
    predicate: Callable[[Mapping[str, Any]], bool]
    earliest: float | None = None
    latest: float | None = None


def _parse_search(text: str) -> _Search:
    """The ``search`` command: a boolean combination of terms, plus time bounds."""
    words = _words(text)
    bounds: dict[str, float] = {}
    pos = 0

    def term() -> Callable[[Mapping[str, Any]], bool]:
        nonlocal pos
        word = words[pos]
        pos += 1
        if word == "(":
            inner = disjunction()
            if pos >= len(words) or words[pos] != ")":
                raise SplError("Error in 'search' command: Mismatched parentheses.")
            pos += 1
            return inner
        if word == "NOT":
            inner = term()
            return lambda row: not inner(row)
        match = re.fullmatch(r"([^\s=!<>]+)(!=|<=|>=|=|<|>)(.*)", word, re.DOTALL)
        if match:
            key, op, raw = match.groups()
            value = _value(raw)
            if key in ("earliest", "latest"):
                bounds[key] = parse_spl_time(value)
                return lambda row: True
            if op in ("=", "!="):
                negate = op == "!="
                plain = None if "*" in value else value.lower()
                regex = _wild(value)

                def eq(row: Mapping[str, Any]) -> bool:
                    got = row[key] if key in row else _field(row, key)
                    if got is None:
                        return False
                    values = got if isinstance(got, list) else (got,)
                    if plain is not None:
                        hit = any(v is not None and (_lower(v) == plain) for v in values)
                    else:
                        hit = any(v is not None and regex.fullmatch(_text(v) or "") for v in values)
                    return not hit if negate else hit

                return eq
            return lambda row: bool(compare(_field(row, key), op, value))
        if pos < len(words) and words[pos].upper() == "IN" and pos + 1 < len(words) and words[pos + 1] == "(":
            key = word
            pos += 2
            options = []
            while pos < len(words) and words[pos] != ")":
                if words[pos] != ",":
                    options.append(_wild(_value(words[pos])))
                pos += 1
            pos += 1
            return lambda row: any(o.fullmatch(_text(_field(row, key)) or "") for o in options)
        phrase = _value(word)
        regex = _wild(f"*{phrase}*")
        return lambda row: bool(regex.fullmatch(str(row.get("_raw") or json.dumps(row, default=str))))

    def conjunction() -> Callable[[Mapping[str, Any]], bool]:
        nonlocal pos
        parts = [term()]
        while pos < len(words) and words[pos] not in (")", "OR"):
            if words[pos] == "AND":
                pos += 1
            parts.append(term())
        if len(parts) == 1:
            return parts[0]
        return lambda row: all(p(row) for p in parts)

    def disjunction() -> Callable[[Mapping[str, Any]], bool]:
        nonlocal pos
        parts = [conjunction()]
        while pos < len(words) and words[pos] == "OR":
            pos += 1
            parts.append(conjunction())
        if len(parts) == 1:
            return parts[0]
        return lambda row: any(p(row) for p in parts)

    predicate = disjunction() if words else (lambda row: True)
    if pos < len(words):
        raise SplError("Error in 'search' command: Mismatched parentheses.")
    return _Search(predicate, bounds.get("earliest"), bounds.get("latest"))


def _field_list(text: str) -> list[str]:
    return [f for f in re.split(r"[\s,]+", text.strip()) if f]


def _select(row: Mapping[str, Any], patterns: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pattern in patterns:
        if "*" in pattern:
            regex = _wild(pattern)
            out.update({k: v for k, v in row.items() if regex.fullmatch(k) and k not in out})
        else:
            out[pattern] = row.get(pattern)
    return out


def _sort_key(value: Any) -> tuple[int, Any]:
    value = _scalar(value)
    if value is None:
        return (2, "")
    number = _number(value)
    return (0, number) if number is not None else (1, str(value).lower())


def _stats(rows: list[dict[str, Any]], spec: str) -> list[dict[str, Any]]:
    by: list[str] = []
    match = re.search(r"\s+by\s+(.+)$", spec, re.IGNORECASE)
    if match:
        by = _field_list(match.group(1))
        spec = spec[: match.start()]
    aggs = []
    for m in re.finditer(r"(\w+)(?:\(([^)]*)\))?(?:\s+as\s+(\w+))?", spec, re.IGNORECASE):
        func, arg, alias = m.group(1).lower(), (m.group(2) or "").strip(), m.group(3)
        name = alias or (f"{func}({arg})" if arg else func)
        aggs.append((func, arg, name))
    if not aggs:
        raise SplError("Error in 'stats' command: The argument is missing.")
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        key = tuple(_scalar(_field(row, f)) for f in by)
        if by and any(k is None for k in key):
            continue
        groups.setdefault(key, []).append(row)
    out = []
    for key, members in sorted(groups.items(), key=lambda kv: [_sort_key(v) for v in kv[0]]):
        result = dict(zip(by, key, strict=True))
        for func, arg, name in aggs:
            values = [v for r in members for v in _flat(_field(r, arg))] if arg else []
            result[name] = _aggregate(func, arg, values, members)
        out.append(result)
    return out


def _flat(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _aggregate(func: str, arg: str, values: list[Any], members: list[dict[str, Any]]) -> Any:
    numbers = [n for n in (_number(v) for v in values) if n is not None]
    if func == "count":
        return len(values) if arg else len(members)
    if func in ("dc", "distinct_count"):
        return len({_text(v) for v in values})
    if func in ("min", "max"):
        if not values:
            return None
        pick = min if func == "min" else max
        return pick(numbers) if len(numbers) == len(values) else pick(str(v) for v in values)
    if func == "sum":
        total = sum(numbers)
        return int(total) if all(isinstance(v, int) and not isinstance(v, bool) for v in values) else total
    if func == "avg":
        return sum(numbers) / len(numbers) if numbers else None
    if func == "values":
        return sorted({_text(v) or "" for v in values})
    if func == "list":
        return [_text(v) for v in values][:100]
    if func == "first":
        return values[0] if values else None
    if func == "last":
        return values[-1] if values else None
    raise SplError(f"Error in 'stats' command: The aggregation function '{func}' is invalid.")


def _spl_out(value: Any) -> Any:
    """A value as Splunk's JSON results write it: text, or a list of texts."""
    if value is None:
        return None
    if isinstance(value, list):
        return [_spl_out(v) for v in value]
    return _text(value)


def _iso_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


# ==============================================================================================
# The server state


@dataclass
class Job:
    """A search job."""

    sid: str
    search: str
    created: float
    run_seconds: float
    results: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    cancelled_at: str | None = None  # dispatchState when it was cancelled
    pages: list[tuple[int, int]] = field(default_factory=list)  # (offset, count) asked for


@dataclass
class _Batch:
    events: list[dict[str, Any]]
    ready_at: float
    lost: bool = False
    indexed: bool = False


class SplunkServer:
    """In-memory Splunk state and its REST/HEC app.

    Args:
        token: an authentication token accepted as ``Bearer``/``Splunk`` (None: none).
        username, password: the account ``/services/auth/login`` accepts.
        hec_token: the HEC token (None: HEC answers 403 to everything).
        version: reported by ``server/info`` (9.0.2+ makes splunklib use ``search/v2/jobs``).
        state_seconds: seconds a job spends QUEUED, PARSING and (at least) RUNNING.
        max_result_rows: the cap of one results request (limits.conf ``maxresultrows``).
        ack_delay: seconds before a HEC batch is indexed (its ack turns true).
        use_ack: HEC indexer acknowledgement on the token.
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        hec_token: str | None = None,
        version: str = "9.1.2",
        state_seconds: float = 0.02,
        max_result_rows: int = 50_000,
        ack_delay: float = 0.0,
        use_ack: bool = True,
    ) -> None:
        self.token = token
        self.username = username
        self.password = password
        self.hec_token = hec_token
        self.version = version
        self.state_seconds = state_seconds
        self.max_result_rows = max_result_rows
        self.ack_delay = ack_delay
        self.use_ack = use_ack
        self.events: list[dict[str, Any]] = []
        self.saved: dict[str, dict[str, str]] = {}
        self.jobs: dict[str, Job] = {}
        self.cancelled: dict[str, Job] = {}
        self.sessions: set[str] = set()
        self.slow: dict[str, float] = {}
        self.failing: dict[str, str] = {}
        self.hec_events: list[dict[str, Any]] = []
        self.refuse: str | None = None  # an event holding this text is refused (HEC code 6)
        self.hec_requests = 0
        self._channels: dict[str, dict[int, _Batch]] = {}
        self._lose = 0
        self._hec_searchable = 0
        self._lock = threading.RLock()
        self._sids = itertools.count(1)

    # -------------------------------------------------------------- data
    def add_events(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Store events (dicts with ``_time`` epoch seconds; ``_raw`` is made up when missing)."""
        with self._lock:
            for event in events:
                row = dict(event)
                row.setdefault("index", "main")
                row.setdefault("sourcetype", "huntbook:test")
                row.setdefault("source", "loopback")
                row.setdefault("host", "loopback")
                row.setdefault("splunk_server", "loopback-idx01")
                self.events.append(row)

    def add_saved_search(
        self, name: str, search: str, *, description: str = "", earliest: str = "", latest: str = ""
    ) -> None:
        """A saved search (``dispatch.earliest_time``/``latest_time`` optional)."""
        self.saved[name] = {
            "search": search,
            "description": description,
            "dispatch.earliest_time": earliest,
            "dispatch.latest_time": latest,
        }

    def lose_batches(self, count: int) -> None:
        """The next ``count`` HEC requests are accepted but never indexed (their acks stay false)."""
        self._lose += count

    # -------------------------------------------------------------- SPL
    def run(self, text: str, earliest: str | None = None, latest: str | None = None) -> list[dict[str, Any]]:
        """Run SPL over the events; rows as Splunk's JSON results give them. Raises :class:`SplError`."""
        commands = _split_pipes(text.strip())
        first = commands[0]
        if first == "" and len(commands) > 1:
            commands = commands[1:]
            first_word = commands[0].split(None, 1)[0].lower() if commands[0] else ""
            if first_word != "savedsearch":
                raise SplError(f"Unknown search command '{first_word}'.")
            name = _value(commands[0].split(None, 1)[1].strip()) if " " in commands[0] else ""
            saved = self.saved.get(name)
            if saved is None:
                raise SplError(f"Error in 'savedsearch' command: Unable to find saved search named '{name}'.")
            inner = self.run(
                saved["search"],
                saved["dispatch.earliest_time"] or earliest,
                saved["dispatch.latest_time"] or latest,
            )
            rows = inner
            rest = commands[1:]
            return self._finish(rows, rest)
        if re.match(r"search\b", first, re.IGNORECASE):
            first = first[len("search") :]
        search = _parse_search(first)
        self._searchable_hec()
        low = (
            search.earliest
            if search.earliest is not None
            else (parse_spl_time(earliest) if earliest else None)
        )
        high = search.latest if search.latest is not None else (parse_spl_time(latest) if latest else None)
        with self._lock:
            events = list(self.events)
        rows = [
            dict(e)
            for e in events
            if (low is None or e["_time"] >= low)
            and (high is None or e["_time"] < high)
            and search.predicate(e)
        ]
        rows.sort(key=lambda e: -e["_time"])  # Splunk returns events newest first
        return self._finish(rows, commands[1:])

    def _finish(self, rows: list[dict[str, Any]], commands: list[str]) -> list[dict[str, Any]]:
        for command in commands:
            rows = self._command(rows, command)
        out = []
        for row in rows:
            item = {k: _spl_out(v) for k, v in row.items()}
            if isinstance(row.get("_time"), int | float):
                item["_time"] = _iso_time(float(row["_time"]))
            out.append(item)
        return out

    def _command(self, rows: list[dict[str, Any]], command: str) -> list[dict[str, Any]]:
        name, _, rest = command.partition(" ")
        name, rest = name.lower(), rest.strip()
        if name == "search":
            predicate = _parse_search(rest).predicate
            return [r for r in rows if predicate(r)]
        if name == "where":
            test = compile_expression(rest, "spl")
            return [r for r in rows if test(r) is True]
        if name == "eval":
            assignments = []
            for part in _split_top(rest):
                target, _, expression = part.partition("=")
                assignments.append((target.strip(), compile_expression(expression, "spl")))
            for row in rows:  # rows are the search's own copies: assign in place
                for target, fn in assignments:
                    row[target] = fn(row)
            return rows
        if name == "table":
            patterns = _field_list(rest)
            return [_select(r, patterns) for r in rows]
        if name == "fields":
            if rest.startswith("-"):
                drop = [_wild(p) for p in _field_list(rest[1:])]
                return [{k: v for k, v in r.items() if not any(d.fullmatch(k) for d in drop)} for r in rows]
            patterns = _field_list(rest.lstrip("+"))
            keep = ["_time", "_raw", *patterns] if "_time" in (rows[0] if rows else {}) else patterns
            return [_select(r, keep) for r in rows]
        if name == "rename":
            pairs = re.findall(r"(\S+)\s+as\s+(\S+)", rest, re.IGNORECASE)
            out = []
            for row in rows:
                new = dict(row)
                for old, new_name in pairs:
                    if old.strip(",") in new:
                        new[new_name.strip(",")] = new.pop(old.strip(","))
                out.append(new)
            return out
        if name == "head":
            count = int(rest.split()[0]) if rest else 10
            return rows[:count]
        if name == "sort":
            return _sort(rows, rest)
        if name == "dedup":
            seen: set[tuple[Any, ...]] = set()
            keys = _field_list(rest)
            out = []
            for row in rows:
                key = tuple(_text(_field(row, k)) for k in keys)
                if key not in seen:
                    seen.add(key)
                    out.append(row)
            return out
        if name == "stats":
            return _stats(rows, rest)
        raise SplError(f"Unknown search command '{name}'.")

    # -------------------------------------------------------------- the app
    def app(self, request: LoopbackRequest) -> Reply:
        """The REST and HEC endpoints. A request with ``Connection: close`` (splunklib sends it) gets
        ``Connection: close`` back, as HTTP/1.1 asks, so the client reads the body to its end."""
        reply = self._route(request)
        if (request.header("connection") or "").lower() == "close":
            return Reply(reply.status, reply.body, {**reply.headers, "Connection": "close"})
        return reply

    def _route(self, request: LoopbackRequest) -> Reply:
        path = re.sub(r"^/servicesNS/[^/]+/[^/]+/", "/services/", request.path)
        path = path.rstrip("/")
        if path.startswith("/services/collector"):
            return self._hec(request, path)
        params = {k: v[0] for k, v in request.query.items()}
        if request.method == "POST" and "urlencoded" in (request.header("content-type") or "urlencoded"):
            params.update(request.form())
        json_mode = params.get("output_mode") == "json"
        if path == "/services/auth/login" and request.method == "POST":
            return self._login(params)
        if not self._authorized(request):
            return _rest_error(401, "call not properly authenticated", json_mode)
        if path == "/services/server/info":
            return _xml(
                _feed(
                    "server-info",
                    [
                        (
                            "server-info",
                            {
                                "version": self.version,
                                "serverName": "loopback",
                                "build": "loopback",
                                "instance_type": "loopback",
                            },
                        )
                    ],
                )
            )
        if path == "/services/saved/searches":
            return self._saved_searches(params)
        match = re.fullmatch(r"/services/search(?:/v2)?/jobs(?:/([^/]+))?(?:/(\w+))?", path)
        if match:
            sid, action = match.groups()
            if sid == "export":
                return self._export(params)
            if sid is None and request.method == "POST":
                return self._create(params, json_mode)
            if sid is not None:
                return self._job(request, sid, action, params, json_mode)
        return _rest_error(404, f"Not Found: {path}", json_mode)

    def _login(self, params: Mapping[str, str]) -> Reply:
        if (
            self.username
            and params.get("username") == self.username
            and params.get("password") == self.password
        ):
            key = uuid.uuid4().hex
            with self._lock:
                self.sessions.add(key)
            return _xml(f"<response>\n<sessionKey>{key}</sessionKey>\n</response>")
        return _xml(
            '<response><messages><msg type="WARN" code="incorrect_username_or_password">Login failed'
            "</msg></messages></response>",
            401,
        )

    def _authorized(self, request: LoopbackRequest) -> bool:
        scheme, _, value = (request.header("authorization") or "").partition(" ")
        value = value.strip()
        if scheme in ("Splunk", "Bearer") and value:
            return (self.token is not None and value == self.token) or value in self.sessions
        return False

    def _saved_searches(self, params: Mapping[str, str]) -> Reply:
        count = int(params.get("count", 30) or 0)
        offset = int(params.get("offset", 0) or 0)
        names = sorted(self.saved)
        picked = names[offset:] if count <= 0 else names[offset : offset + count]
        entries = [
            (
                name,
                {
                    **self.saved[name],
                    "disabled": "0",
                    "eai:acl": {"app": "search", "owner": "admin", "sharing": "app"},
                },
            )
            for name in picked
        ]
        return _xml(_feed("savedsearch", entries, total=len(names)))

    def _create(self, params: Mapping[str, str], json_mode: bool) -> Reply:
        search = params.get("search", "")
        try:
            if not re.match(r"\s*(search\b|\|)", search, re.IGNORECASE):
                raise SplError("Unknown search command; a search must start with 'search' or '|'")
            results = self.run(search, params.get("earliest_time"), params.get("latest_time"))
            error = next((msg for text, msg in self.failing.items() if text in search), None)
        except SplError as exc:
            return _rest_error(400, str(exc), json_mode, kind="FATAL")
        extra = max((s for text, s in self.slow.items() if text in search), default=0.0)
        sid = f"{int(time.time())}.{next(self._sids)}"
        job = Job(sid, search, time.monotonic(), max(self.state_seconds, extra), results, error)
        with self._lock:
            self.jobs[sid] = job
        if json_mode:
            return Reply.json({"sid": sid}, status=201)
        return _xml(f"<response>\n<sid>{sid}</sid>\n</response>", 201)

    def dispatch_state(self, job: Job) -> str:
        """QUEUED, PARSING, RUNNING, then DONE or FAILED, as time passes."""
        age = time.monotonic() - job.created
        step = self.state_seconds
        if age < step:
            return "QUEUED"
        if age < 2 * step:
            return "PARSING"
        if age < 2 * step + job.run_seconds:
            return "RUNNING"
        return "FAILED" if job.error else "DONE"

    def _job(
        self,
        request: LoopbackRequest,
        sid: str,
        action: str | None,
        params: Mapping[str, str],
        json_mode: bool,
    ) -> Reply:
        with self._lock:
            job = self.jobs.get(sid)
        if job is None:
            return _rest_error(404, f"Unknown sid: {sid}", json_mode)
        state = self.dispatch_state(job)
        if action == "control":
            if params.get("action") == "cancel":
                with self._lock:
                    job.cancelled_at = state
                    self.cancelled[sid] = self.jobs.pop(sid)
                return _xml(
                    '<response><messages><msg type="INFO">Search job cancelled.</msg></messages></response>'
                )
            return _xml('<response><messages><msg type="INFO">ok</msg></messages></response>')
        if request.method == "DELETE" and action is None:
            with self._lock:
                job.cancelled_at = state
                self.cancelled[sid] = self.jobs.pop(sid)
            return _xml(
                '<response><messages><msg type="INFO">Search job cancelled.</msg></messages></response>'
            )
        if action == "results":
            if state not in ("DONE", "FAILED"):
                return Reply(204)
            count = int(params.get("count", 100))
            offset = int(params.get("offset", 0))
            count = self.max_result_rows if count <= 0 else min(count, self.max_result_rows)
            job.pages.append((offset, count))
            page = job.results[offset : offset + count]
            fields = list(dict.fromkeys(k for r in page for k in r))
            return Reply.json(
                {
                    "preview": False,
                    "init_offset": offset,
                    "messages": [],
                    "fields": [{"name": f} for f in fields],
                    "results": page,
                    "highlighted": {},
                }
            )
        if action is not None:
            return _rest_error(404, f"Unknown job endpoint {action}", json_mode)
        done = state in ("DONE", "FAILED")
        content: dict[str, Any] = {
            "sid": sid,
            "dispatchState": state,
            "isDone": "1" if done else "0",
            "isFailed": "1" if state == "FAILED" else "0",
            "doneProgress": "1.00000" if done else "0.50000",
            "resultCount": str(len(job.results)) if state == "DONE" else "0",
            "eventCount": str(len(job.results)) if state == "DONE" else "0",
            "isFinalized": "0",
            "eai:acl": {"owner": "admin", "app": "search", "sharing": "global", "ttl": "600"},
            "messages": {"fatal": [job.error]} if state == "FAILED" and job.error else {},
        }
        return _xml(_entry(job.search, sid, content, root=True))

    def _export(self, params: Mapping[str, str]) -> Reply:
        search = params.get("search", "")
        try:
            rows = self.run(search, params.get("earliest_time"), params.get("latest_time"))
        except SplError as exc:
            return Reply.json({"messages": [{"type": "FATAL", "text": str(exc)}]}, status=400)
        extra = max((s for text, s in self.slow.items() if text in search), default=0.0)
        if extra:
            time.sleep(extra)
        lines = [
            json.dumps(
                {
                    "preview": False,
                    "offset": i,
                    **({"lastrow": True} if i == len(rows) - 1 else {}),
                    "result": row,
                }
            )
            for i, row in enumerate(rows)
        ]
        return Reply(200, ("\n".join(lines) + "\n").encode(), {"Content-Type": "application/json"})

    # -------------------------------------------------------------- HEC
    def _hec(self, request: LoopbackRequest, path: str) -> Reply:
        if path == "/services/collector/health":
            return Reply.json({"text": "HEC is healthy", "code": 17})
        with self._lock:
            self.hec_requests += 1
            self._index_due()
        scheme, _, value = (request.header("authorization") or "").partition(" ")
        if not value:
            return Reply.json({"text": "Token is required", "code": 2}, status=401)
        if scheme != "Splunk" or self.hec_token is None or value.strip() != self.hec_token:
            return Reply.json({"text": "Invalid token", "code": 4}, status=403)
        channel = request.header("x-splunk-request-channel") or request.param("channel")
        if path == "/services/collector/ack":
            if not self.use_ack:
                return Reply.json({"text": "ACK is disabled", "code": 14}, status=400)
            if not channel:
                return Reply.json({"text": "Data channel is missing", "code": 10}, status=400)
            asked = request.json().get("acks", [])
            with self._lock:
                batches = self._channels.get(channel, {})
                answer = {str(a): bool(batches.get(int(a)) and batches[int(a)].indexed) for a in asked}
            return Reply.json({"acks": answer})
        if path not in ("/services/collector/event", "/services/collector", "/services/collector/event/1.0"):
            return Reply.json({"text": "Not found", "code": 404}, status=404)
        if self.use_ack and not channel:
            return Reply.json({"text": "Data channel is missing", "code": 10}, status=400)
        body = request.body
        if (request.header("content-encoding") or "").lower() == "gzip":
            try:
                body = gzip.decompress(body)
            except OSError:
                return Reply.json({"text": "Invalid data format", "code": 6}, status=400)
        events, problem = _hec_events(body)
        refused = next(
            (i for i, e in enumerate(events) if self.refuse and self.refuse in json.dumps(e)), None
        )
        if problem is None and refused is not None:  # as HEC does for an event it cannot parse
            problem = {"text": "Invalid data format", "code": 6, "invalid-event-number": refused}
        if problem is not None:
            return Reply.json(problem, status=400)
        with self._lock:
            lost = self._lose > 0
            self._lose -= 1 if lost else 0
            if not self.use_ack:
                self._store(events)
                return Reply.json({"text": "Success", "code": 0})
            batches = self._channels.setdefault(channel or "", {})
            ack = len(batches)
            batches[ack] = _Batch(events, time.monotonic() + self.ack_delay, lost=lost)
            self._index_due()
        return Reply.json({"text": "Success", "code": 0, "ackId": ack})

    def _index_due(self) -> None:
        now = time.monotonic()
        for batches in self._channels.values():
            for batch in batches.values():
                if not batch.indexed and not batch.lost and batch.ready_at <= now:
                    batch.indexed = True
                    self._store(batch.events)

    def _store(self, events: list[dict[str, Any]]) -> None:
        self.hec_events.extend(events)

    def _searchable_hec(self) -> None:
        """Indexed HEC events join the searchable events (when a search runs)."""
        with self._lock:
            events = self.hec_events[self._hec_searchable :]
            self._hec_searchable = len(self.hec_events)
        searchable = []
        for event in events:
            body = event["event"]
            row = dict(body) if isinstance(body, dict) else {}
            row.update(event.get("fields") or {})
            row.update(
                _time=float(event.get("time", time.time())),
                host=event.get("host", "hec"),
                index=event.get("index", "main"),
                sourcetype=event.get("sourcetype", "_json"),
                source=event.get("source", "http:huntbook"),
                _raw=json.dumps(body) if not isinstance(body, str) else body,
            )
            searchable.append(row)
        self.add_events(searchable)


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses and quotes."""
    parts, depth, quote, current = [], 0, False, []
    for i, ch in enumerate(text):
        if ch == '"' and (i == 0 or text[i - 1] != "\\"):
            quote = not quote
        if not quote:
            depth += ch == "("
            depth -= ch == ")"
            if ch == "," and depth == 0:
                parts.append("".join(current))
                current = []
                continue
        current.append(ch)
    parts.append("".join(current))
    return [p for p in (p.strip() for p in parts) if p]


def _sort(rows: list[dict[str, Any]], spec: str) -> list[dict[str, Any]]:
    tokens = re.findall(r"[+-]|[^\s,+-][^\s,]*", spec)
    limit = 10_000
    if tokens and tokens[0].isdigit():
        limit = int(tokens.pop(0)) or len(rows)
    keys: list[tuple[str, bool]] = []
    sign = "+"
    for token in tokens:
        if token in ("+", "-"):
            sign = token
            continue
        keys.append((token, sign == "-"))
        sign = "+"
    ordered = list(rows)
    for key, descending in reversed(keys):
        ordered.sort(key=lambda r, k=key: _sort_key(_field(r, k)), reverse=descending)  # type: ignore[misc]
    return ordered[:limit]


def _hec_events(body: bytes) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The event objects of a HEC request, or the HEC error answer."""
    text = body.decode("utf-8", "replace")
    if not text.strip():
        return [], {"text": "No data", "code": 5}
    decoder = json.JSONDecoder()
    events, pos, number = [], 0, 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            break
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except ValueError:
            return [], {"text": "Invalid data format", "code": 6, "invalid-event-number": number}
        if not isinstance(obj, dict) or "event" not in obj:
            return [], {"text": "Event field is required", "code": 12, "invalid-event-number": number}
        if obj["event"] in ("", None):
            return [], {"text": "Event field cannot be blank", "code": 13, "invalid-event-number": number}
        events.append(obj)
        number += 1
    return events, None


# ==============================================================================================
# Atom XML


def _xml_value(value: Any) -> str:
    if isinstance(value, Mapping):
        keys = "".join(f"<s:key name={quoteattr(str(k))}>{_xml_value(v)}</s:key>" for k, v in value.items())
        return f"<s:dict>{keys}</s:dict>"
    if isinstance(value, list):
        return "<s:list>" + "".join(f"<s:item>{_xml_value(v)}</s:item>" for v in value) + "</s:list>"
    return escape("" if value is None else str(value))


def _entry(title: str, name: str, content: Mapping[str, Any], *, root: bool = False) -> str:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    head = f'<?xml version="1.0" encoding="UTF-8"?>\n<entry {ATOM_NS}>' if root else "<entry>"
    return (
        f"{head}<title>{escape(title)}</title><id>https://loopback:8089/services/{escape(name)}</id>"
        f'<updated>{now}</updated><link href={quoteattr("/services/" + name)} rel="alternate"/>'
        f"<published>{now}</published><author><name>admin</name></author>"
        f'<content type="text/xml">{_xml_value(content)}</content></entry>'
    )


def _feed(title: str, entries: list[tuple[str, Mapping[str, Any]]], total: int | None = None) -> str:
    body = "".join(_entry(name, name, content) for name, content in entries)
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<feed {ATOM_NS}><title>{escape(title)}</title>'
        f"<id>https://loopback:8089/services/{escape(title)}</id><updated>{datetime.now(UTC).isoformat()}</updated>"
        '<generator build="loopback" version="9.1.2"/><author><name>Splunk</name></author>'
        f"<opensearch:totalResults>{len(entries) if total is None else total}</opensearch:totalResults>"
        f"<opensearch:itemsPerPage>{len(entries)}</opensearch:itemsPerPage>"
        f"<opensearch:startIndex>0</opensearch:startIndex>{body}</feed>"
    )


def _xml(text: str, status: int = 200) -> Reply:
    return Reply(status, text.encode(), {"Content-Type": "text/xml; charset=UTF-8"})


def _rest_error(status: int, text: str, json_mode: bool, kind: str = "ERROR") -> Reply:
    if status == 401:
        kind = "WARN"
    if json_mode:
        return Reply.json({"messages": [{"type": kind, "text": text}]}, status=status)
    return _xml(f'<response><messages><msg type="{kind}">{escape(text)}</msg></messages></response>', status)


# ==============================================================================================
# Test data and faults


def _epoch(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    import pandas as pd

    return float(pd.Timestamp(value).timestamp())


def _basename(path: Any) -> str | None:
    if not isinstance(path, str) or not path:
        return None
    return re.split(r"[\\/]", path)[-1]


def _user(account: Any) -> tuple[str | None, str | None]:
    if not isinstance(account, str) or not account:
        return None, None
    if "\\" in account:
        domain, _, user = account.partition("\\")
        return user, domain
    if "@" in account:
        user, _, domain = account.partition("@")
        return user, domain
    return account, None


def splunk_events(table: str, rows: Any) -> list[dict[str, Any]]:
    """LocalStore (ASIM) rows (a DataFrame or dicts) as the events the Splunk Add-ons and CIM would
    give: Windows Security events in ``index=wineventlog`` (``EventCode``, CIM ``dest``, ``user``,
    ``process``, ``action``, ``src_ip`` ...), Zeek connections and DNS in ``index=zeek``
    (``bro:conn:json``, ``bro:dns:json``). The row's ``EventKey`` is kept as a field; logon ids are the
    add-on's ``SubjectLogonId``/``TargetLogonId``."""
    if hasattr(rows, "to_dict"):
        frame = rows.dropna(axis=1, how="all")
        rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    rows = [{k: v for k, v in r.items() if v is not None} for r in rows]
    out = []
    for row in rows:
        get = row.get
        base: dict[str, Any] = {"_time": _epoch(get("TimeGenerated")), "EventKey": get("EventKey")}
        host = get("DvcHostname")
        if table == "process_events":
            _, domain = _user(get("TargetUsername"))
            terminated = get("EventType") == "ProcessTerminated"
            base.update(
                index="wineventlog",
                sourcetype="XmlWinEventLog",
                source="XmlWinEventLog:Security",
                host=host,
                dest=host,
                EventCode=4689 if terminated else int(get("EventOriginalType") or 4688),
                process=get("TargetProcessCommandLine"),
                process_path=get("TargetProcessName"),
                process_name=_basename(get("TargetProcessName")),
                process_id=get("TargetProcessId"),
                parent_process=get("ActingProcessCommandLine"),
                parent_process_path=get("ActingProcessName"),
                parent_process_name=_basename(get("ActingProcessName")),
                parent_process_id=get("ActingProcessId"),
                user=get("TargetUsername"),
                user_domain=domain,
                src_user=get("ActorUsername"),
                process_hash=get("TargetProcessSHA256"),
                SubjectLogonId=get("ActorSessionId"),
                TargetLogonId=get("TargetUserSessionId"),
                vendor_product="Microsoft Windows",
            )
        elif table == "authentication":
            _, domain = _user(get("TargetUsername"))
            result = get("EventResult")
            code = int(get("EventOriginalType") or (4624 if result == "Success" else 4625))
            base.update(
                index="wineventlog",
                sourcetype="XmlWinEventLog",
                source="XmlWinEventLog:Security",
                host=host,
                dest=get("TargetHostname") or host,
                EventCode=4634 if get("EventType") == "Logoff" else code,
                action="success" if result == "Success" else "failure",
                user=get("TargetUsername"),
                user_domain=domain,
                src=get("SrcIpAddr") or get("SrcHostname"),
                src_ip=get("SrcIpAddr"),
                src_port=get("SrcPortNumber"),
                src_nt_host=get("SrcHostname"),
                Logon_Type=get("LogonType"),
                authentication_method=get("LogonMethod"),
                signature_id=get("EventOriginalType"),
                TargetLogonId=get("TargetSessionId"),
            )
        elif table == "network_sessions":
            base.update(
                index="zeek",
                sourcetype="bro:conn:json",
                source="conn.log",
                host=host,
                dest_host=get("DstHostname"),
                src_ip=get("SrcIpAddr"),
                src_port=get("SrcPortNumber"),
                dest_ip=get("DstIpAddr"),
                dest_port=get("DstPortNumber"),
                transport=(get("NetworkProtocol") or "").lower() or None,
                app=get("NetworkApplicationProtocol"),
                bytes_out=get("SrcBytes"),
                bytes_in=get("DstBytes"),
                session_id=get("NetworkSessionId"),
                action=(get("DvcAction") or "").lower() or None,
            )
        elif table == "dns":
            answers = get("DnsResponseName")
            base.update(
                index="zeek",
                sourcetype="bro:dns:json",
                source="dns.log",
                host=host,
                src_ip=get("SrcIpAddr"),
                dest_ip=get("DstIpAddr"),
                query=get("DnsQuery"),
                record_type=get("DnsQueryTypeName"),
                reply_code=get("DnsResponseCodeName"),
                answer=answers.split(";") if isinstance(answers, str) and answers else None,
            )
        else:
            raise ValueError(f"no Splunk mapping for {table}")
        out.append(
            {k: v for k, v in base.items() if v is not None and not (isinstance(v, float) and math.isnan(v))}
        )
    return out
