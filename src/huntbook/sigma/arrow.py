"""The in-process evaluator of Sigma predicate trees, for small sources (no SQL planning per rule).

DuckDB plans every rule predicate it runs, about half a millisecond each whatever the number of
events: on a few thousand events, planning ~2,800 rules is nearly all of a hunt. This module runs the
same predicate trees (:mod:`huntbook.sigma.compiler`) without a planner:

* :func:`read_fields` pulls the field columns of many sources out of the store in **one** query (the
  JSON paths of each source's :class:`~huntbook.sigma.compiler.Layout`);
* :class:`Evaluator` evaluates trees over those columns. A column's distinct values are matched once:
  equalities through a dictionary, the contains / startswith / endswith literals of all the rules at
  once through an Aho-Corasick automaton (built once per compiled rule set), wildcard patterns and
  ``|re`` with RE2, the engine DuckDB uses (Arrow's binding over all distinct values, or Python's,
  compiled once, when only a few values are still in play). Rows are Python integers used as bit
  sets; ``And`` and ``Or`` narrow the rows their later terms look at, so regular expressions and
  whole-record keyword searches only read what is still in play. Lower-casing is DuckDB's own
  (Python's and Arrow's differ on a few letters): done by Arrow for ASCII text, where all agree,
  and by DuckDB for the rest.

What it does not evaluate natively (``|lt``/``|gt``, ``|fieldref``), or a pattern Arrow's RE2
refuses, goes to DuckDB over the very same columns, as the SQL :func:`to_sql` writes: one meaning
of every leaf for both evaluators.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from huntbook.sigma.compiler import (
    FORMAT_TESTS,
    And,
    AnyGlob,
    FieldColumns,
    Glob,
    IsNull,
    Node,
    Not,
    NullOrEmpty,
    Or,
    Regex,
    _json_step,
    _list,
    _regex_of,
    sql_str,
    to_sql,
)

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

__all__ = ["L_RAW_SQL", "Evaluator", "Fields", "literals", "read_fields"]

# Keyword searches lower-case the record's JSON text with its escapes of ``\`` and ``"`` undone.
L_RAW_SQL: Final = r"""lower(replace(replace(raw, '\\', '\'), '\"', '"'))"""
TEXT_COLUMNS: Final = ("l_raw", "raw")  # the whole record: evaluated row by row, on the rows in play
_AC_MIN_NEEDLES: Final = 4  # fewer literals on a column: test them one by one (no automaton)
_FEW_VALUES: Final = 24  # a regex over at most this many distinct values in play: tested value by value
# RE2 searches ``.{N,}`` in time O(length x N); "some line has N characters" is the same test.
_LONG_LINE: Final = re.compile(r"(?:\(\?([ims]+)\))?\.\{(\d+),(\d*)\}")


@dataclass
class Fields:
    """The rows of one source: every field as logged (``f<n>``), and the record text where needed."""

    rows: list[int]  # positions of these rows in the :func:`read_fields` result
    columns: dict[str, pa.Array] = field(default_factory=dict)  # f<n> -> string array
    raw: pa.Array | None = None  # the record's JSON text (keyword searches)

    def __len__(self) -> int:
        return len(self.rows)


def read_fields(
    con: duckdb.DuckDBPyConnection,
    source: str,
    wanted: Sequence[tuple[str, FieldColumns]],
    meta: Sequence[str],
) -> tuple[dict[str, list[Any]], list[Fields]]:
    """The field columns of several sources over ``source`` (a FROM clause), in one query.

    ``wanted`` pairs a SQL condition selecting a source's rows with its :class:`FieldColumns`;
    ``meta`` names columns read as they are for every row (returned as Python lists).
    """
    import pyarrow.compute as pc

    layouts = [cols.layout() for _, cols in wanted]
    select = [f"{m} AS hb_m{i}" for i, m in enumerate(meta)]
    typed: dict[str, int] = {}
    for k, ((where, _), layout) in enumerate(zip(wanted, layouts, strict=True)):
        select.append(f"({where}) AS hb_g{k}")
        for fmt, paths in layout.paths.items():
            if paths:
                extract = f"json_extract_string(raw, {_list(paths)})"
                select.append(
                    f"CASE WHEN hb_g{k} AND {FORMAT_TESTS[fmt]} THEN {extract} END AS hb_v{k}_{fmt}"
                )
        for refs in layout.fields:
            if refs[0][0] == "column":
                typed.setdefault(refs[0][1], len(typed))
    select += [f"{expr} AS hb_t{i}" for expr, i in typed.items()]
    text_groups = [f"hb_g{k}" for k, (_, cols) in enumerate(wanted) if cols.keywords or cols.raw]
    if text_groups:
        select.append(f"CASE WHEN {' OR '.join(text_groups)} THEN raw END AS hb_raw")
    any_group = " OR ".join(f"({where})" for where, _ in wanted) or "false"
    table = con.sql(f"SELECT {', '.join(select)} FROM {source} WHERE {any_group}").to_arrow_table()
    table = table.combine_chunks()

    def column(name: str) -> pa.Array:
        chunks = table.column(name).chunks
        return chunks[0] if chunks else table.column(name).combine_chunks()

    metas = {m: column(f"hb_m{i}").to_pylist() for i, m in enumerate(meta)}
    out: list[Fields] = []
    for k, ((_, cols), layout) in enumerate(zip(wanted, layouts, strict=True)):
        picked = pc.indices_nonzero(pc.fill_null(column(f"hb_g{k}"), False))
        fields = Fields(picked.to_pylist())
        lists = {}
        for fmt, paths in layout.paths.items():
            if paths:
                values = column(f"hb_v{k}_{fmt}").take(picked)
                if values.null_count < len(values):
                    lists[fmt] = values
        userdata = (
            _UserData(pc.list_element(lists["evtx"], 0)) if layout.userdata and "evtx" in lists else None
        )
        for n, refs in enumerate(layout.fields):
            if refs[0][0] == "column":
                fields.columns[f"f{n}"] = _strings(column(f"hb_t{typed[refs[0][1]]}").take(picked))
            else:
                fields.columns[f"f{n}"] = _coalesce(refs, lists, userdata, len(fields))
        if cols.keywords or cols.raw:
            fields.raw = _strings(column("hb_raw").take(picked))
        out.append(fields)
    return metas, out


def _strings(array: pa.Array) -> pa.Array:
    import pyarrow as pa

    return array if array.type == pa.string() else array.cast(pa.string())


def _coalesce(
    refs: tuple[tuple[Any, ...], ...], lists: dict[str, pa.Array], userdata: _UserData | None, n: int
) -> pa.Array:
    """One field's values: its first source that is not NULL, row by row (the SQL ``COALESCE``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arrays: list[pa.Array] = []
    for ref in refs:
        if ref[0] == "path":
            if ref[1] not in lists:
                continue
            array = pc.list_element(lists[ref[1]], ref[2] - 1)
        elif userdata is not None:
            array = userdata.child(ref[1])
        else:
            continue
        if array.null_count < n:
            arrays.append(_strings(array))
    if not arrays:
        return pa.nulls(n, pa.string())
    return arrays[0] if len(arrays) == 1 else pc.coalesce(*arrays)


class _UserData:
    """``json_extract_string(<UserData>, '$.*.<name>')[1]``: the first child element's ``name``."""

    def __init__(self, texts: pa.Array) -> None:
        self.n = len(texts)
        self.docs: list[tuple[int, str, Any]] = []  # (row, JSON text, parsed) of the rows with UserData
        if texts.null_count < self.n:
            for row, text in enumerate(texts.to_pylist()):
                if text is not None:
                    self.docs.append((row, text, self._parse(text)))

    @staticmethod
    def _parse(text: str) -> Any:
        def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
            out = dict(pairs)
            if len(out) != len(pairs):
                raise ValueError("duplicate key")
            return out

        try:
            return json.loads(text, object_pairs_hook=no_duplicates)
        except ValueError:
            return _UNSURE

    def child(self, name: str) -> pa.Array:
        import pyarrow as pa

        out: list[str | None] = [None] * self.n
        for row, text, doc in self.docs:
            if not isinstance(doc, dict):
                out[row] = _duckdb_child(text, name) if doc is _UNSURE else None
                continue
            found = [v[name] for v in doc.values() if isinstance(v, dict) and name in v]
            first = found[0] if found else None
            # a string as it is; a number or object as DuckDB writes it
            out[row] = first if first is None or isinstance(first, str) else _duckdb_child(text, name)
        return pa.array(out, pa.string())


_UNSURE: Final = object()


def _duckdb_child(text: str, name: str) -> str | None:
    import duckdb

    sql = f"SELECT json_extract_string(?, {sql_str('$.*.' + _json_step(name))})[1]"
    rows = duckdb.execute(sql, [text]).fetchall()
    return rows[0][0] if rows else None


def duckdb_lower(con: duckdb.DuckDBPyConnection, values: Sequence[str]) -> list[str]:
    """``lower()`` as DuckDB does it: in Python for ASCII text (the same there), else by DuckDB."""
    out = [v.lower() if v.isascii() else "" for v in values]
    other = [i for i, v in enumerate(values) if not v.isascii()]
    if other:
        import pyarrow as pa

        con.register("hb_sigma_lower", pa.table({"s": pa.array([values[i] for i in other], pa.string())}))
        try:
            lowered = con.sql("SELECT lower(s) FROM hb_sigma_lower").to_arrow_table().column(0).to_pylist()
        finally:
            con.unregister("hb_sigma_lower")
        for i, v in zip(other, lowered, strict=True):
            out[i] = v
    return out


def duckdb_lower_array(con: duckdb.DuckDBPyConnection, values: pa.Array) -> pa.Array:
    """:func:`duckdb_lower` of an Arrow string array (ASCII values by Arrow, the others by DuckDB)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    other = pc.invert(pc.fill_null(pc.string_is_ascii(values), True))
    lowered = pc.ascii_lower(values)
    if not pc.any(other).as_py():
        return lowered
    replacements = duckdb_lower(con, pc.filter(values, other).to_pylist())
    return pc.replace_with_mask(lowered, other, pa.array(replacements, pa.string()))


# ------------------------------------------------------------------------------------- evaluation


class Literals:
    """The contains / startswith / endswith literals of one column, and their automaton (built once)."""

    def __init__(self, found: Iterable[tuple[str, str]]) -> None:
        self.items: list[tuple[str, str]] = sorted(set(found))
        self._automaton: Any = None

    def automaton(self) -> Any:
        """An Aho-Corasick automaton: each text -> (length, contains, startswith, endswith item ids)."""
        if self._automaton is None:
            import ahocorasick

            by_text: dict[str, tuple[list[int], list[int], list[int]]] = {}
            for i, (kind, text) in enumerate(self.items):
                ids = by_text.setdefault(text, ([], [], []))
                ids[("contains", "startswith", "endswith").index(kind)].append(i)
            automaton = ahocorasick.Automaton()
            for text, (contains, starts, ends) in by_text.items():
                automaton.add_word(text, (len(text), tuple(contains), tuple(starts), tuple(ends)))
            automaton.make_automaton()
            self._automaton = automaton
        return self._automaton


def literals(trees: Iterable[Node]) -> dict[str, Literals]:
    """Per field column, every contains / startswith / endswith literal of ``trees``."""
    out: dict[str, set[tuple[str, str]]] = {}
    stack = list(trees)
    while stack:
        node = stack.pop()
        if isinstance(node, And | Or):
            stack.extend(node.args)
        elif isinstance(node, Not):
            stack.append(node.arg)
        elif isinstance(node, Glob | AnyGlob) and node.column not in TEXT_COLUMNS:
            for glob in (node,) if isinstance(node, Glob) else node.globs:
                kind, text = glob.kind
                if kind in ("contains", "startswith", "endswith") and text:
                    out.setdefault(glob.column, set()).add((kind, text))
    return {column: Literals(found) for column, found in out.items()}


class Evaluator:
    """Evaluates predicate trees over one source's :class:`Fields`; rows as bit sets (``int``).

    ``matches(tree)`` is the set of rows where the tree is true (NULL counts as false), as an
    ``int`` whose bit ``i`` is row ``i``. Columns keep their leaf results for the next rules.
    """

    def __init__(self, fields: Fields, con: duckdb.DuckDBPyConnection) -> None:
        self.fields = fields
        self.n = len(fields)
        self.all = (1 << self.n) - 1
        self.con = con
        self._columns: dict[str, _Column] = {}
        self._text: dict[str, _Text] = {}

    def prepare(self, wanted: dict[str, Literals], lowered: Iterable[str] = ()) -> None:
        """Lower-case the ``lowered`` columns (``l<n>``) at once; match the literals (:func:`literals`)."""
        lowered = [name for name in dict.fromkeys([*lowered, *wanted]) if name.startswith("l")]
        lowered = [name for name in lowered if name not in self._columns and name not in TEXT_COLUMNS]
        bases = [self.column("f" + name[1:]) for name in lowered]
        texts = duckdb_lower(self.con, [v for base in bases for v in base.values])
        start = 0
        for name, base in zip(lowered, bases, strict=True):
            self._columns[name] = base.mapped(texts[start : start + len(base.values)])
            start += len(base.values)
        for name, found in wanted.items():
            self.column(name).match_literals(found)

    def column(self, name: str) -> _Column:
        col = self._columns.get(name)
        if col is None:
            if name.startswith("l"):
                base = self.column("f" + name[1:])
                col = base.mapped(duckdb_lower(self.con, base.values))
            else:
                col = _Column.of(self.fields.columns[name])
            self._columns[name] = col
        return col

    def matches(self, node: Node) -> int:
        """The rows where ``node`` is true."""
        return self._eval(node, self.all)

    def _eval(self, node: Node, rows: int) -> int:
        """The rows of ``rows`` where ``node`` is true."""
        if isinstance(node, And):
            for arg in node.args:
                rows = self._eval(arg, rows)
                if not rows:
                    break
            return rows
        if isinstance(node, Or):
            out = 0
            for arg in node.args:
                hit = self._eval(arg, rows)
                if hit:
                    out |= hit
                    rows &= ~hit
                    if not rows:
                        break
            return out
        if isinstance(node, Not):
            return rows & ~self._eval(node.arg, rows)
        column = getattr(node, "column", None)
        if column in TEXT_COLUMNS:
            return self._text_leaf(node, column, rows)
        try:
            found = self._leaf(node, rows)
        except ValueError:  # a pattern Arrow's RE2 refuses (ArrowInvalid): DuckDB says what it means
            found = None
        return rows & (self._duckdb(node) if found is None else found)

    def _leaf(self, node: Node, rows: int) -> int | None:
        """The rows where a leaf is true (some of them outside ``rows``), or None: not native."""
        if isinstance(node, Glob):
            return self.column(node.column).glob(node, rows)
        if isinstance(node, AnyGlob):
            col = self.column(node.column)
            out = 0
            for glob in node.globs:
                out |= col.glob(glob, rows)
            return out
        if isinstance(node, Regex):
            return self.column(node.column).regex(node.pattern, rows)
        if isinstance(node, IsNull):
            col = self.column(node.column)
            return col.nulls if node.null else col.present
        if isinstance(node, NullOrEmpty):
            col = self.column(node.column)
            return col.nulls | col.equals("")
        return None

    def _text_leaf(self, node: Node, column: str, rows: int) -> int:
        """A leaf over the whole record, tested on ``rows`` only.

        ``l_raw`` is ``unescape(lower(raw))`` (unescaping turns the pairs ``\\\\`` and ``\\"`` into one
        character; lower-casing leaves both alone, so the order does not matter). A literal without
        ``\\`` and ``"`` occurs in ``unescape(x)`` exactly when it occurs in ``x``: unescaping only
        rewrites pairs made of those two characters, which the literal's characters are not part of.
        So such contains-literals are tested on ``lower(raw)``, which is cheaper to make.
        """
        text = self._text.get(column)
        if text is None:
            if self.fields.raw is None:
                raise ValueError(f"no record text for column {column}")
            text = self._text[column] = _Text(self.fields.raw, lowered=column == "l_raw", con=self.con)
        if isinstance(node, Glob | AnyGlob):
            globs = [node] if isinstance(node, Glob) else list(node.globs)
            clean = [g for g in globs if column == "l_raw" and g.kind[0] == "contains" and _clean(g.kind[1])]
            out = text.select(rows, _globs_test(clean), exact=False) if clean else 0
            rest = [g for g in globs if not any(g is c for c in clean)]
            if rest and rows & ~out:
                out |= text.select(rows & ~out, _globs_test(rest))
            return out
        if isinstance(node, Regex):
            return text.select(rows, _search(node.pattern))
        return rows & self._duckdb(node)

    def _duckdb(self, node: Node) -> int:
        """A leaf evaluated by DuckDB over these columns (the same SQL the DuckDB path runs)."""
        import pyarrow as pa

        columns: dict[str, pa.Array] = {}
        for name in set(re.findall(r"\b([fl]\d+|l_raw|raw)\b", to_sql(node))):  # (or a word in a value)
            if name in TEXT_COLUMNS:
                if self.fields.raw is not None:
                    text = _Text(self.fields.raw, lowered=name == "l_raw", con=self.con)
                    columns[name] = text.texts(list(range(self.n)))
            elif "f" + name[1:] in self.fields.columns:
                col = self.column(name)
                columns[name] = (
                    self.fields.columns[name] if name[0] == "f" else pa.array(col.row_values(self.n))
                )
        table = pa.table(columns) if columns else pa.table({"hb_none": pa.nulls(self.n)})
        self.con.register("hb_sigma_fields", table)
        try:
            sql = f"SELECT COALESCE({to_sql(node)}, false) FROM hb_sigma_fields"
            flags = self.con.sql(sql).to_arrow_table().column(0).to_pylist()
        finally:
            self.con.unregister("hb_sigma_fields")
        return _from_positions([i for i, f in enumerate(flags) if f], self.n)


# Bit sets: bit ``i`` of an ``int`` is row ``i``. Setting or listing bits one at a time costs time
# proportional to the set's width, so sets with more than a few bits go through numpy.
_FEW_BITS: Final = 16


def _bits(mask: Any) -> int:
    """A boolean numpy array as a bit set (bit ``i`` = element ``i``)."""
    import numpy as np

    return int.from_bytes(np.packbits(mask, bitorder="little").tobytes(), "little")


def _from_positions(rows: Sequence[int], n: int) -> int:
    """The bit set of ``rows`` (each below ``n``)."""
    if len(rows) <= _FEW_BITS:
        out = 0
        for i in rows:
            out |= 1 << i
        return out
    import numpy as np

    mask = np.zeros(n, dtype=bool)
    mask[np.asarray(rows, dtype=np.int64)] = True
    return _bits(mask)


def positions(bits: int) -> list[int]:
    """The positions of the set bits of ``bits``, lowest first."""
    if bits.bit_count() <= _FEW_BITS:
        out = []
        while bits:
            low = bits & -bits
            out.append(low.bit_length() - 1)
            bits ^= low
        return out
    import numpy as np

    raw = np.frombuffer(bits.to_bytes((bits.bit_length() + 7) // 8, "little"), dtype=np.uint8)
    return np.flatnonzero(np.unpackbits(raw, bitorder="little")).tolist()


def _row_sets(codes: Any, count: int) -> list[int]:
    """Per value id ``0..count-1``, the bit set of the rows whose code (numpy array) is that id."""
    import numpy as np

    order = np.argsort(codes, kind="stable")
    ordered = codes[order]
    ids = np.arange(count)
    starts = np.searchsorted(ordered, ids, side="left").tolist()
    ends = np.searchsorted(ordered, ids, side="right").tolist()
    rows = order.tolist()
    n = len(codes)
    return [_from_positions(rows[a:b], n) for a, b in zip(starts, ends, strict=True)]


def _search(pattern: str) -> Callable[[pa.Array], list[bool]]:
    """A vectorised test: does RE2 find ``pattern`` in each value (DuckDB's ``regexp_matches``)?

    Arrow's RE2 with its defaults, as DuckDB's: case-sensitive, ``.`` not matching a newline, search
    anywhere. Raises ValueError (``ArrowInvalid``) for a pattern this RE2 build refuses.
    """
    import pyarrow.compute as pc

    test = _value_test(pattern) if _LONG_LINE.fullmatch(pattern) else None
    if test is not None:
        return lambda values: [v is not None and test(v) for v in values.to_pylist()]
    return lambda values: pc.fill_null(pc.match_substring_regex(values, pattern), False).to_pylist()


_RE2: dict[str, Any] = {}  # pattern -> compiled program (or the error), for the next hunts too


def _value_test(pattern: str) -> Callable[[str], bool] | None:
    """A test of one value: does RE2 find ``pattern`` in it? None when Python's RE2 binding refuses it."""
    long_line = _LONG_LINE.fullmatch(pattern)
    if long_line:
        size, dotall = int(long_line.group(2)), "s" in (long_line.group(1) or "")
        return lambda v: len(v) >= size and (dotall or any(len(x) >= size for x in v.split("\n")))
    program = _RE2.get(pattern)
    if program is None:
        import re2

        try:
            program = re2.compile(pattern)
        except re2.error as exc:
            program = exc
        _RE2[pattern] = program
    if isinstance(program, Exception):
        return None
    search = program.search
    return lambda v: search(v) is not None


def _clean(text: str) -> bool:
    return "\\" not in text and '"' not in text


def _globs_test(globs: list[Glob]) -> Callable[[pa.Array], list[bool]]:
    """A vectorised test: does any of ``globs`` match (one RE2 search when there are several)?"""
    if len(globs) == 1:
        return _glob_test(globs[0])
    from sigma.types import SpecialChars

    return _search("(?s)" + "|".join(_regex_of(g.parts, SpecialChars, lower=False) for g in globs))


def _glob_test(node: Glob) -> Callable[[pa.Array], list[bool]]:
    """A vectorised test of values against a Glob (as they are: the column is lower-cased already)."""
    import pyarrow.compute as pc
    from sigma.types import SpecialChars

    kind, text = node.kind
    if kind == "pattern":
        return _search("(?s)" + _regex_of(node.parts, SpecialChars, lower=False))
    function = {
        "equals": pc.equal,
        "present": lambda values, _: values.is_valid(),
        "contains": pc.match_substring,
        "startswith": pc.starts_with,
        "endswith": pc.ends_with,
    }[kind]
    return lambda values: pc.fill_null(function(values, text), False).to_pylist()


class _Text:
    """The record text of the rows: ``raw``, or ``l_raw`` (lower-cased, JSON escapes undone)."""

    def __init__(self, raw: pa.Array, *, lowered: bool, con: duckdb.DuckDBPyConnection) -> None:
        self.raw = raw
        self.lowered = lowered
        self.con = con
        self._base: pa.Array | None = None  # raw, lower-cased when ``lowered``, for every row

    def texts(self, rows: list[int], *, exact: bool = True) -> pa.Array:
        """The text of ``rows`` (in that order); ``exact=False``: lower-cased only, escapes kept."""
        import pyarrow as pa
        import pyarrow.compute as pc

        picked = pa.array(rows, pa.int64())
        if self._base is None and len(rows) * 4 >= len(self.raw):  # most rows: all of them, once
            self._base = duckdb_lower_array(self.con, self.raw) if self.lowered else self.raw
        if self._base is not None:
            base = self._base if len(rows) == len(self.raw) else self._base.take(picked)
        else:
            base = self.raw.take(picked)
            base = duckdb_lower_array(self.con, base) if self.lowered else base
        if not (exact and self.lowered):
            return base
        return pc.replace_substring(pc.replace_substring(base, "\\\\", "\\"), '\\"', '"')

    def select(self, rows: int, test: Callable[[pa.Array], list[bool]], *, exact: bool = True) -> int:
        """The rows of ``rows`` whose text passes ``test`` (NULL never does)."""
        where = positions(rows)
        hits = test(self.texts(where, exact=exact))
        return _from_positions([r for r, hit in zip(where, hits, strict=True) if hit], len(self.raw))


class _Column:
    """One column's distinct values, each with the bit set of the rows holding it."""

    def __init__(self, values: list[str], rows: list[int], nulls: int, present: int, codes: Any) -> None:
        self.values = values
        self.rows = rows
        self.nulls = nulls
        self.present = present
        self.codes = codes  # numpy: each row's value id, -1 for NULL
        self.index = {v: i for i, v in enumerate(values)}
        self.literals: dict[tuple[str, str], int] = {}
        self._regex: dict[str, int] = {}  # pattern -> rows, over every value
        self._some: dict[str, dict[int, bool]] = {}  # pattern -> value id -> match, for a few values
        self._array: pa.Array | None = None

    @classmethod
    def of(cls, array: pa.Array) -> _Column:
        import pyarrow.compute as pc

        encoded = pc.dictionary_encode(array)
        values: list[str] = encoded.dictionary.to_pylist()
        codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
        valid = codes >= 0
        return cls(values, _row_sets(codes, len(values)), _bits(~valid), _bits(valid), codes)

    def mapped(self, values: list[str]) -> _Column:
        """This column with every distinct value replaced (``values[i]`` for value ``i``): lower-cased."""
        import numpy as np

        merged: dict[str, int] = {}
        for v, rows in zip(values, self.rows, strict=True):
            merged[v] = merged.get(v, 0) | rows
        ids = {v: i for i, v in enumerate(merged)}
        remap = np.array([ids[v] for v in values] + [-1], dtype=np.int64)  # codes of -1 -> -1
        return _Column(list(merged), list(merged.values()), self.nulls, self.present, remap[self.codes])

    def row_values(self, n: int) -> list[str | None]:
        out: list[str | None] = [None] * n
        for v, rows in zip(self.values, self.rows, strict=True):
            for r in positions(rows):
                out[r] = v
        return out

    def union(self, ids: Iterable[int]) -> int:
        rows = self.rows
        out = 0
        for i in ids:
            out |= rows[i]
        return out

    def equals(self, text: str) -> int:
        i = self.index.get(text)
        return 0 if i is None else self.rows[i]

    def match_literals(self, literals: Literals) -> None:
        """Contains / startswith / endswith of many literals, all at once (Aho-Corasick)."""
        items = literals.items
        if len(items) < _AC_MIN_NEEDLES or not self.values:
            for kind, text in items:
                if (kind, text) not in self.literals:
                    self.literals[kind, text] = self._one(kind, text)
            return
        automaton = literals.automaton()
        found = [0] * len(items)
        for value, rows in zip(self.values, self.rows, strict=True):
            last = len(value) - 1
            seen: set[int] = set()
            for end, (size, contains, starts, ends) in automaton.iter(value):
                if contains:
                    seen.update(contains)
                if starts and end == size - 1:
                    seen.update(starts)
                if ends and end == last:
                    seen.update(ends)
            for i in seen:
                found[i] |= rows
        self.literals.update(zip(items, found, strict=True))

    def _one(self, kind: str, text: str) -> int:
        values = self.values
        if kind == "contains":
            return self.union(i for i, v in enumerate(values) if text in v)
        if kind == "startswith":
            return self.union(i for i, v in enumerate(values) if v.startswith(text))
        return self.union(i for i, v in enumerate(values) if v.endswith(text))

    def glob(self, node: Glob, rows: int | None = None) -> int:
        kind, text = node.kind
        if kind == "equals":
            return self.equals(text)
        if kind == "present" or (not text and kind != "pattern"):
            return self.present
        if kind == "pattern":
            from sigma.types import SpecialChars

            return self.regex("(?s)" + _regex_of(node.parts, SpecialChars, lower=False), rows)
        found = self.literals.get((kind, text))
        if found is None:
            found = self.literals[kind, text] = self._one(kind, text)
        return found

    def regex(self, pattern: str, rows: int | None = None) -> int:
        """Rows whose value RE2 ``pattern`` finds a match in (ValueError when RE2 refuses it).

        With ``rows`` holding only a few distinct values, only those are tested (one by one, the
        compiled pattern kept); the answer is then exact on ``rows`` only.
        """
        found = self._regex.get(pattern)
        if found is not None:
            return found
        if rows is not None and rows.bit_count() <= 4 * _FEW_VALUES:
            ids = {int(i) for i in self.codes[positions(rows)]} - {-1}
            test = _value_test(pattern) if len(ids) <= _FEW_VALUES else None
            if test is not None:
                known = self._some.setdefault(pattern, {})
                out = 0
                for i in ids:
                    hit = known.get(i)
                    if hit is None:
                        hit = known[i] = test(self.values[i])
                    if hit:
                        out |= self.rows[i]
                return out
        import pyarrow as pa

        if self._array is None:
            self._array = pa.array(self.values, pa.string())
        hits = _search(pattern)(self._array) if self.values else []
        found = self._regex[pattern] = self.union(i for i, hit in enumerate(hits) if hit)
        return found
