"""Process trees: link process-creation events to their parents.

:func:`build` takes process-creation events (Windows Security 4688, Sysmon 1, Defender
``DeviceProcessEvents``, Linux auditd, osquery ``process_events`` or huntbook's own
``process_events`` table) and returns them with tree columns:

=============  ============================================================================
``proc_key``   stable process key: the GUID when the source has one (Sysmon), else
               ``host|pid|start time`` (``ws01|4660|2024-05-01 10:00:01.250000``: decimal pid, UTC)
``parent_key`` ``proc_key`` of the parent; missing (NA) for roots
``root_key``   ``proc_key`` of the tree's root
``depth``      0 for roots, parent's depth + 1 otherwise
``path``       process names from the root down, ``/``-separated (``explorer.exe/cmd.exe/whoami.exe``)
``children``   number of direct children
``inferred``   True for parent rows that are not in the data (see below)
=============  ============================================================================

Linking rules. A Sysmon child links to the event whose ``ProcessGuid`` is its ``ParentProcessGuid``.
Otherwise the parent is the *latest* process on the **same host** with the child's parent pid (and,
when the source names the parent, the same file name, case-insensitive) that started before the
child: PIDs are reused, so "latest before" is what makes the link right, and hosts are never mixed.
When the event carries the parent's creation time (Defender), the parent is the first such process
logged from that time on (within a minute: sensors log creations late, by seconds under load).
A child whose parent started before the data window gets an *inferred* parent row
(``inferred=True``) built from the child's parent pid and name, so every tree is complete;
inferred rows are roots.

Row order: the creation events in input order (other events, e.g. 4689 or ``ProcessTerminated``,
are left out), keeping their index labels, then the inferred parents. The input is never modified.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from huntbook.errors import DataError

__all__ = [
    "SCHEMAS",
    "TREE_COLUMNS",
    "ProcSchema",
    "ancestors",
    "build",
    "children",
    "descendants",
    "infer_schema",
    "roots",
    "siblings",
    "summary",
    "tree_of",
]

TREE_COLUMNS: Final = ("proc_key", "parent_key", "root_key", "depth", "path", "children", "inferred")
_ATTR: Final = "huntbook.proctree"
_NO_TIME: Final = np.iinfo(np.int64).min
_CLOCK_SLACK_US: Final = 1_000_000
_LOG_DELAY_US: Final = 60_000_000
_MAX_PATH: Final = 1000  # longer paths keep their last characters behind a "…"
_Ints = np.ndarray[Any, np.dtype[np.int64]]


@dataclasses.dataclass(frozen=True)
class ProcSchema:
    """Which columns hold what. ``time``, ``pid``, ``ppid`` and ``process`` are required.

    ``process``/``parent``: process and parent image (path or file name; compared by file name).
    ``guid``/``parent_guid``: exact process identities (Sysmon). ``parent_time``: the parent's
    creation time (Defender). ``event_column``/``event_value``: keep only rows where that column
    equals the value (process creation). ``cmdline``/``user``/``logon_id`` are informational.
    """

    time: str
    pid: str
    ppid: str
    process: str
    host: str | None = None
    parent: str | None = None
    guid: str | None = None
    parent_guid: str | None = None
    parent_time: str | None = None
    cmdline: str | None = None
    user: str | None = None
    logon_id: str | None = None
    event_column: str | None = None
    event_value: Any = None
    name: str = "custom"

    def columns(self) -> dict[str, str]:
        """Logical field -> column, for the fields that are set."""
        skip = {"name", "event_value"}
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in skip and v is not None}


_REQUIRED: Final = ("time", "pid", "ppid", "process")
_FIELDS: Final = tuple(f.name for f in dataclasses.fields(ProcSchema))
# MSTICPy ProcSchema names, so an existing MSTICPy mapping works unchanged
_MSTICPY_NAMES: Final = {
    "time_stamp": "time",
    "process_name": "process",
    "process_id": "pid",
    "parent_id": "ppid",
    "parent_name": "parent",
    "host_name_column": "host",
    "cmd_line": "cmdline",
    "user_name": "user",
    "event_id_column": "event_column",
    "event_id_identifier": "event_value",
}
_IGNORED_MSTICPY: Final = {"path_separator", "target_logon_id", "user_id"}

# Built-in schemas: each field lists candidate columns, the first present one is used.
_CANDIDATES: Final[dict[str, dict[str, Any]]] = {
    "process_events": {
        "time": ["TimeGenerated"],
        "host": ["DvcHostname", "Computer"],
        "pid": ["TargetProcessId"],
        "ppid": ["ActingProcessId"],
        "process": ["TargetProcessName"],
        "parent": ["ActingProcessName"],
        "guid": ["TargetProcessGuid"],
        "parent_guid": ["ActingProcessGuid"],
        "cmdline": ["TargetProcessCommandLine"],
        "user": ["TargetUsername", "ActorUsername"],
        "logon_id": ["TargetUserSessionId"],
        "event": ("EventType", "ProcessCreated"),
    },
    "mde": {
        "time": ["ProcessCreationTime", "Timestamp"],
        "host": ["DeviceName", "DeviceId"],
        "pid": ["ProcessId"],
        "ppid": ["InitiatingProcessId"],
        "process": ["FileName", "FolderPath"],
        "parent": ["InitiatingProcessFileName", "InitiatingProcessFolderPath"],
        "parent_time": ["InitiatingProcessCreationTime"],
        "cmdline": ["ProcessCommandLine"],
        "user": ["AccountName"],
        "logon_id": ["LogonId"],
        "event": ("ActionType", "ProcessCreated"),
    },
    "sysmon": {
        "time": ["UtcTime", "TimeGenerated", "TimeCreated", "@timestamp"],
        "host": ["Computer", "Hostname", "host"],
        "pid": ["ProcessId"],
        "ppid": ["ParentProcessId"],
        "process": ["Image"],
        "parent": ["ParentImage"],
        "guid": ["ProcessGuid"],
        "parent_guid": ["ParentProcessGuid"],
        "cmdline": ["CommandLine"],
        "user": ["User"],
        "logon_id": ["LogonId"],
        "event": ("EventID", 1),
    },
    "security": {
        "time": ["TimeGenerated", "TimeCreated", "TimeCreatedUtc", "@timestamp", "timestamp"],
        "host": ["Computer", "Hostname", "host"],
        "pid": ["NewProcessId"],
        "ppid": ["ProcessId"],
        "process": ["NewProcessName"],
        "parent": ["ParentProcessName"],
        "cmdline": ["CommandLine"],
        "user": ["SubjectUserName"],
        "logon_id": ["SubjectLogonId"],
        "event": ("EventID", 4688),
    },
    "auditd": {
        "time": ["TimeGenerated", "time", "timestamp", "@timestamp"],
        "host": ["Computer", "host", "hostname", "node"],
        "pid": ["pid"],
        "ppid": ["ppid"],
        "process": ["exe", "comm"],
        "cmdline": ["cmdline", "proctitle"],
        "user": ["acct", "auid", "uid"],
        "logon_id": ["ses"],
        "event": ("EventType", "SYSCALL_EXECVE"),
    },
    "osquery": {
        "time": ["time", "calendarTime", "unixTime"],
        "host": ["hostIdentifier", "host", "hostname"],
        "pid": ["pid"],
        "ppid": ["parent"],
        "process": ["path", "name"],
        "cmdline": ["cmdline"],
        "user": ["uid"],
    },
}
_ALIASES: Final = {"4688": "security", "windows": "security", "sysmon1": "sysmon", "linux": "auditd"}
SCHEMAS: Final = tuple(_CANDIDATES)


# --------------------------------------------------------------------------------------------
# schema resolution
# --------------------------------------------------------------------------------------------
def _from_candidates(name: str, columns: Iterable[str]) -> ProcSchema | None:
    present = set(columns)
    chosen: dict[str, Any] = {"name": name}
    for field, options in _CANDIDATES[name].items():
        if field == "event":
            if options[0] in present:
                chosen["event_column"], chosen["event_value"] = options
            continue
        column = next((c for c in options if c in present), None)
        if column is not None:
            chosen[field] = column
        elif field in _REQUIRED:
            return None
    return ProcSchema(**chosen)


def infer_schema(events: pd.DataFrame) -> ProcSchema:
    """The built-in schema that fits ``events``' columns.

    >>> columns = ["TimeGenerated", "NewProcessId", "ProcessId", "NewProcessName"]
    >>> infer_schema(pd.DataFrame(columns=columns)).name
    'security'
    """
    for name in _CANDIDATES:
        found = _from_candidates(name, events.columns)
        if found is not None:
            return found
    shown = ", ".join(map(str, list(events.columns)[:30]))
    raise DataError(
        f"no process-event schema fits these columns: {shown}",
        where="columns",
        hint=(
            "pass schema= one of " + ", ".join(SCHEMAS) + ", or a mapping of fields to columns, e.g. "
            "{'time': 'CreateTime', 'pid': 'PID', 'ppid': 'PPID', 'process': 'ImageFileName', "
            "'host': 'Computer', 'parent': 'ParentName'}"
        ),
    )


def _resolve(events: pd.DataFrame, schema: str | Mapping[str, Any] | ProcSchema | None) -> ProcSchema:
    if schema is None:
        return infer_schema(events)
    if isinstance(schema, ProcSchema):
        resolved = schema
    elif isinstance(schema, str):
        key = _ALIASES.get(schema.lower(), schema.lower())
        if key not in _CANDIDATES:
            raise DataError(f"unknown schema {schema!r}", where="schema", hint="one of " + ", ".join(SCHEMAS))
        found = _from_candidates(key, events.columns)
        if found is None:
            wanted = {f: _CANDIDATES[key][f] for f in _REQUIRED}
            raise DataError(
                f"the {key} schema needs columns {wanted}; found: {', '.join(map(str, events.columns))}",
                where="columns",
                hint="pass a mapping of fields to columns instead",
            )
        return found
    elif isinstance(schema, Mapping):
        fields: dict[str, Any] = {}
        for raw_key, value in schema.items():
            field = _MSTICPY_NAMES.get(raw_key, raw_key)
            if raw_key in _IGNORED_MSTICPY:
                continue
            if field not in _FIELDS:
                raise DataError(
                    f"unknown schema field {raw_key!r}", where="schema", hint="fields: " + ", ".join(_FIELDS)
                )
            fields[field] = value
        missing = [f for f in _REQUIRED if not fields.get(f)]
        if missing:
            raise DataError(
                f"the schema mapping lacks {', '.join(missing)}",
                where="schema",
                hint="required fields: time, pid, ppid, process",
            )
        resolved = ProcSchema(**{"name": "custom", **fields})
    else:
        raise DataError(f"schema must be a name, a mapping or a ProcSchema, not {type(schema).__name__}")
    absent = [c for c in resolved.columns().values() if c not in events.columns]
    if absent:
        raise DataError(
            f"schema columns not in the data: {', '.join(absent)}",
            where="columns",
            hint="found: " + ", ".join(map(str, events.columns)),
        )
    return resolved


# --------------------------------------------------------------------------------------------
# column decoding (factorize, then work on the few distinct values)
# --------------------------------------------------------------------------------------------
def _parse_pid(value: Any) -> int:
    if isinstance(value, bool):
        return -1
    if isinstance(value, (int, np.integer)):
        return int(value) if value >= 0 else -1
    if isinstance(value, (float, np.floating)):
        return int(value) if np.isfinite(value) and value >= 0 and float(value).is_integer() else -1
    text = str(value).strip().lower()
    try:
        if text.startswith("0x"):
            return int(text, 16)
        number = float(text) if "." in text else int(text)
    except ValueError:
        return -1
    return int(number) if number >= 0 and float(number).is_integer() else -1


def _pids(column: pd.Series) -> _Ints:
    """Process ids as int64 (hex ``0x..`` or decimal text, ints, floats); -1 where missing or bad."""
    dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return np.full(len(column), -1, dtype=np.int64)
    if pd.api.types.is_integer_dtype(dtype):
        values = column.to_numpy(dtype=np.int64, na_value=-1)
        return np.where(values >= 0, values, -1)
    if pd.api.types.is_float_dtype(dtype):
        floats = column.to_numpy(dtype=np.float64, na_value=np.nan)
        good = np.isfinite(floats) & (floats >= 0) & (floats < 2**62)
        good &= np.floor(np.where(good, floats, 0)) == np.where(good, floats, 0)
        return np.where(good, np.where(good, floats, 0).astype(np.int64), -1)
    codes, uniques = pd.factorize(column)
    parsed = np.array([*_parse_pids(uniques.tolist()), -1], dtype=np.int64)
    return parsed[codes]  # code -1 (missing) picks the trailing -1


def _parse_pids(values: list[Any]) -> list[int]:
    out: list[int] = []
    for value in values:
        try:  # the common shapes first: "0x1a4", "420"
            number = int(value, 16) if value[:2] in ("0x", "0X") else int(value)
            out.append(number if number >= 0 else -1)
        except (TypeError, ValueError):
            out.append(_parse_pid(value))
    return out


def _basename(value: Any) -> str:
    text = str(value).strip().strip('"').replace("\\", "/").rstrip("/")
    return text.rsplit("/", 1)[-1]


class _Vocab:
    """Shared ids for normalized strings; id 0 is the empty / missing value."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {"": 0}
        self.shown: list[str] = [""]

    def encode(self, column: pd.Series, normalize: Any) -> _Ints:
        codes, uniques = pd.factorize(column)
        mapped = np.empty(len(uniques) + 1, dtype=np.int64)
        for i, raw in enumerate(uniques.tolist()):
            display = normalize(raw)
            key = display.lower()
            if key not in self.ids:
                self.ids[key] = len(self.shown)
                self.shown.append(display)
            mapped[i] = self.ids[key]
        mapped[-1] = 0
        return mapped[codes]


def _times_us(column: pd.Series) -> _Ints:
    """UTC microseconds since the epoch; naive times are taken as UTC; unparseable -> _NO_TIME."""
    dtype = column.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        column = column.dt.tz_convert("UTC").dt.tz_localize(None)
    elif pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        column = _from_epoch(pd.to_numeric(column, errors="coerce"))
    elif not pd.api.types.is_datetime64_dtype(dtype):
        numbers = pd.to_numeric(column, errors="coerce")
        if numbers.notna().sum() > 0 and numbers.notna().sum() >= column.notna().sum():
            column = _from_epoch(numbers)
        else:
            column = _parse_times(column)
    values = column.to_numpy(dtype="datetime64[us]")
    return values.view(np.int64).copy()


def _parse_times(column: pd.Series) -> pd.Series:
    """Text times as naive UTC: ISO 8601 in one vectorised pass, anything else value by value."""
    parsed: pd.Series = pd.to_datetime(column, utc=True, errors="coerce", format="ISO8601")
    odd = parsed.isna() & column.notna()
    if odd.any():
        parsed = parsed.copy()
        parsed[odd] = pd.to_datetime(column[odd], utc=True, errors="coerce", format="mixed")
    naive: pd.Series = parsed.dt.tz_localize(None)
    return naive


def _from_epoch(numbers: pd.Series) -> pd.Series:
    size = float(numbers.abs().median()) if numbers.notna().any() else 0.0
    unit: Literal["s", "ms", "us", "ns"] = "s" if size < 1e11 else "ms" if size < 1e14 else "us"
    if size >= 1e17:
        unit = "ns"
    converted: pd.Series = pd.to_datetime(numbers, unit=unit, errors="coerce")
    return converted


# --------------------------------------------------------------------------------------------
# linking
# --------------------------------------------------------------------------------------------
def _bits(values: _Ints) -> int:
    return int(values.max()).bit_length() if len(values) else 0


def _combine(*parts: _Ints) -> _Ints:
    """One non-negative int64 per row that is equal exactly when all parts are equal."""
    key = parts[0].astype(np.int64)
    for part in parts[1:]:
        width = max(_bits(part), 1)
        if _bits(key) + width > 62:
            key = np.unique(key, return_inverse=True)[1].astype(np.int64)
        if _bits(key) + width > 62:  # the part alone is too wide: number its distinct values
            part = np.unique(part, return_inverse=True)[1].astype(np.int64)
            width = max(_bits(part), 1)
        key = (key << width) | part
    return key


def _nearest(
    cand_key: _Ints, cand_pos: _Ints, q_key: _Ints, q_pos: _Ints, *, after: bool = False, unique: bool = True
) -> _Ints:
    """Per query: the position of the candidate with the same key and the greatest position below
    the query's (``after``: the smallest position at or above it), or -1.

    Candidate positions are unique, and so are the queries' when ``unique``: then sorting the
    packed (key, position) values (no argsort) is enough to find both again."""
    if not len(cand_key) or not len(q_key):
        return np.full(len(q_key), -1, dtype=np.int64)
    width = max(_bits(cand_pos), _bits(q_pos), 1)
    if max(_bits(cand_key), _bits(q_key)) + width > 62:
        keys = np.unique(np.concatenate([cand_key, q_key]), return_inverse=True)[1].astype(np.int64)
        cand_key, q_key = keys[: len(cand_key)], keys[len(cand_key) :]
    mask = (1 << width) - 1
    ordered = np.sort((cand_key << width) | cand_pos)
    asked = (q_key << width) | q_pos
    q_order = None if unique else np.argsort(asked)
    asked = np.sort(asked) if q_order is None else asked[q_order]  # sorted needles: cache-friendly
    slot = np.searchsorted(ordered, asked, side="left") - (0 if after else 1)
    safe = np.clip(slot, 0, len(ordered) - 1)
    hit = (slot >= 0) & (slot < len(ordered)) & ((ordered[safe] >> width) == (asked >> width))
    answer = np.where(hit, ordered[safe] & mask, -1)
    if q_order is not None:
        found = np.empty(len(asked), dtype=np.int64)
        found[q_order] = answer
        return found
    found = np.full(int(q_pos.max()) + 1, -1, dtype=np.int64)
    found[asked & mask] = answer
    return found[q_pos]


def _exact(cand_key: _Ints, q_key: _Ints) -> _Ints:
    """Per query: index of a candidate with the same key (the first in input order), or -1."""
    if not len(cand_key) or not len(q_key):
        return np.full(len(q_key), -1, dtype=np.int64)
    order = np.argsort(cand_key, kind="stable")
    ordered = cand_key[order]
    slot = np.minimum(np.searchsorted(ordered, q_key, side="left"), len(ordered) - 1)
    return np.where(ordered[slot] == q_key, order[slot], -1)


# --------------------------------------------------------------------------------------------
# tree shape
# --------------------------------------------------------------------------------------------
def _shape(parent: _Ints, pos: _Ints) -> tuple[_Ints, _Ints]:
    """(root index, depth) per node by pointer jumping; links that close a cycle are cut in place."""
    n = len(parent)
    own = np.arange(n, dtype=np.int64)
    for _attempt in range(3):
        hop = np.where(parent >= 0, parent, own)
        depth = (parent >= 0).astype(np.int64)
        for _ in range(70):
            further = hop[hop]
            if np.array_equal(further, hop):
                break
            depth = depth + depth[hop]
            hop = further
        stuck = np.flatnonzero(parent[hop] >= 0)  # ended on a non-root: in or under a cycle
        if not len(stuck):
            return hop, depth
        _cut_cycles(parent, pos, stuck)
    raise AssertionError("process links still cyclic after cutting")  # pragma: no cover


def _cut_cycles(parent: _Ints, pos: _Ints, suspects: _Ints) -> None:
    """Cut one link per cycle (the one into the latest-started process). Cycles only come from
    inconsistent GUID or creation-time data, so this rare path may loop in Python."""
    done: set[int] = set()
    for start in suspects.tolist():
        seen: dict[int, int] = {}
        node = start
        while node >= 0 and node not in done and node not in seen:
            seen[node] = len(seen)
            node = int(parent[node])
        if node >= 0 and node in seen:
            cycle = [k for k, i in seen.items() if i >= seen[node]]
            latest = max(cycle, key=lambda k: int(pos[k]))
            parent[latest] = -1
        done.update(seen)


# --------------------------------------------------------------------------------------------
# build
# --------------------------------------------------------------------------------------------
def _creation_rows(events: pd.DataFrame, schema: ProcSchema) -> pd.DataFrame:
    if schema.event_column is None or schema.event_column not in events.columns:
        return events
    column = events[schema.event_column]
    value = schema.event_value
    if isinstance(value, (int, np.integer)) and pd.api.types.is_numeric_dtype(column.dtype):
        keep = (column == value).to_numpy(dtype=bool, na_value=False)
    else:
        text = column.astype("str").str.strip().str.lower()
        keep = (text == str(value).lower()).to_numpy(dtype=bool, na_value=False)
    return events if keep.all() else events[keep]


def _guid_norm(value: Any) -> str:
    return str(value).strip().strip("{}").strip()


def _time_text(micros: _Ints) -> pa.Array:
    stamps = pa.array(micros, type=pa.timestamp("us"), mask=micros == _NO_TIME)
    return pc.fill_null(stamps.cast(pa.string()), "?")


def _strings(values: pd.Series) -> pa.Array:
    """A column as an Arrow string array (nulls kept)."""
    array = values.array
    if not isinstance(array, pd.arrays.ArrowStringArray):
        array = values.astype("str").array
    converted = pa.array(array)  # zero-copy for Arrow-backed strings
    if isinstance(converted, pa.ChunkedArray):
        converted = converted.combine_chunks()
    return converted.cast(pa.string())


def _to_series(array: pa.Array | pa.ChunkedArray, index: pd.Index) -> pd.Series:
    return pd.Series(pd.array(array, dtype="str"), index=index, copy=False)


@dataclasses.dataclass
class _Decoded:
    """The linking columns of the creation events as integer arrays (0 / -1 / _NO_TIME = missing)."""

    hosts: _Vocab
    host_id: _Ints
    pid: _Ints
    ppid: _Ints
    names: _Vocab
    name_id: _Ints
    pname_id: _Ints
    guid_id: _Ints
    pguid_id: _Ints
    start: _Ints
    ptime: _Ints
    order: _Ints  # rows by start time (stable)
    pos: _Ints  # each row's place in ``order``

    @classmethod
    def of(cls, frame: pd.DataFrame, schema: ProcSchema) -> _Decoded:
        n = len(frame)
        none = np.zeros(n, dtype=np.int64)
        hosts, names, guids = _Vocab(), _Vocab(), _Vocab()
        host_id = hosts.encode(frame[schema.host], lambda v: str(v).strip()) if schema.host else none
        has_guids = schema.guid is not None and schema.parent_guid is not None
        start = _times_us(frame[schema.time])
        order = np.argsort(start, kind="stable")
        pos = np.empty(n, dtype=np.int64)
        pos[order] = np.arange(n, dtype=np.int64)
        return cls(
            hosts=hosts,
            host_id=host_id,
            pid=_pids(frame[schema.pid]),
            ppid=_pids(frame[schema.ppid]),
            names=names,
            name_id=names.encode(frame[schema.process], _basename),
            pname_id=names.encode(frame[schema.parent], _basename) if schema.parent else none,
            guid_id=guids.encode(frame[schema.guid], _guid_norm) if has_guids else none,
            pguid_id=guids.encode(frame[schema.parent_guid], _guid_norm) if has_guids else none,
            start=start,
            ptime=_times_us(frame[schema.parent_time]) if schema.parent_time else np.full(n, _NO_TIME),
            order=order,
            pos=pos,
        )


def _link(d: _Decoded) -> _Ints:
    """Row of each event's parent event, or -1 (see the module docstring for the rules)."""
    parent = np.full(len(d.pid), -1, dtype=np.int64)
    asks, has = np.flatnonzero(d.pguid_id > 0), np.flatnonzero(d.guid_id > 0)
    found = _exact(d.guid_id[has], d.pguid_id[asks])
    parent[asks[found >= 0]] = has[found[found >= 0]]

    # the latest earlier process with that pid (and name) on the same host; with the parent's
    # creation time in the event (Defender): the first one logged from that time on
    has = np.flatnonzero(d.pid >= 0)
    pending = (parent < 0) & (d.ppid >= 0) & (d.pguid_id == 0)
    timed = d.ptime != _NO_TIME
    bound = d.pos.copy()
    bound[timed] = np.searchsorted(d.start[d.order], d.ptime[timed] - _CLOCK_SLACK_US, side="left")
    named = d.pname_id > 0
    with_name = ((d.host_id, d.host_id), (d.pid, d.ppid), (d.name_id, d.pname_id))
    for asks, after, parts in (
        (np.flatnonzero(pending & named & ~timed), False, with_name),
        (np.flatnonzero(pending & ~named & ~timed), False, with_name[:2]),
        (np.flatnonzero(pending & named & timed), True, with_name),
        (np.flatnonzero(pending & ~named & timed), True, with_name[:2]),
    ):
        if not len(asks):
            continue
        every = len(has) == len(d.pid)  # usually: no need to copy the candidates
        keys = _combine(
            *(np.concatenate([own if every else own[has], wanted[asks]]) for own, wanted in parts)
        )
        cand_keys, q_keys = keys[: len(has)], keys[len(has) :]
        cand_pos = d.pos if every else d.pos[has]
        if len(asks) < len(has) // 8:  # few questions: only the candidates that can answer
            near = np.isin(cand_keys, q_keys)
            cand_keys, cand_pos = cand_keys[near], cand_pos[near]
        found = _nearest(cand_keys, cand_pos, q_keys, bound[asks], after=after, unique=not after)
        ok = found >= 0
        parent[asks[ok]] = d.order[found[ok]]
    # sensors log a creation late, by seconds under load; a process logged much later reused the pid
    late = np.flatnonzero((parent >= 0) & timed & (d.pguid_id == 0))
    parent[late[d.start[parent[late]] > d.ptime[late] + _LOG_DELAY_US]] = -1
    return parent


@dataclasses.dataclass
class _Inferred:
    """Parents that are not in the data: one per parent GUID, per (host, pid, creation time) when
    the children report it, else per (host, pid, name)."""

    source: _Ints  # a child row that describes each inferred parent
    by_guid: np.ndarray[Any, np.dtype[np.bool_]]
    by_time: np.ndarray[Any, np.dtype[np.bool_]]

    @classmethod
    def attach(cls, d: _Decoded, parent: _Ints) -> _Inferred:
        """Find the children without a parent event; point them (in ``parent``) at new rows n, n+1 ..."""
        orphan = np.flatnonzero((parent < 0) & ((d.ppid >= 0) | (d.pguid_id > 0)))
        by_guid = d.pguid_id[orphan] > 0
        by_time = ~by_guid & (d.ptime[orphan] != _NO_TIME)
        earliest = d.ptime[orphan].min() if by_time.any() else 0
        identity = _combine(
            np.where(by_guid, 0, np.where(by_time, 1, 2)).astype(np.int64),
            np.where(by_guid, 0, d.host_id[orphan]),
            np.where(by_guid, d.pguid_id[orphan], np.maximum(d.ppid[orphan], 0)),
            np.where(by_time, d.ptime[orphan] - earliest, 0),
            np.where(by_guid | by_time, 0, d.pname_id[orphan]),
        )
        _, first, which = np.unique(identity, return_index=True, return_inverse=True)
        parent[orphan] = len(parent) + which.astype(np.int64)
        return cls(orphan[first], by_guid[first], by_time[first])


def _keys(
    d: _Decoded, frame: pd.DataFrame, schema: ProcSchema, inferred: _Inferred
) -> tuple[pa.Array, pa.Array]:
    """``proc_key`` of the events and of the inferred parents."""
    host_text = pa.array(d.hosts.shown, type=pa.string())
    event_key = pc.binary_join_element_wise(
        pc.take(host_text, pa.array(d.host_id)),
        pa.array(d.pid, mask=d.pid < 0).cast(pa.string()).fill_null("?"),
        _time_text(d.start),
        "|",
    )
    if schema.guid and (d.guid_id > 0).any():
        event_key = pc.if_else(pa.array(d.guid_id > 0), _strings(frame[schema.guid]), event_key)
    repeats = _repeated_events(d)
    if len(repeats):
        event_key = _suffix_repeats(event_key, repeats)

    src = inferred.source
    name = pc.take(pa.array(d.names.shown, type=pa.string()), pa.array(d.pname_id[src]))
    tail = pc.if_else(
        pa.array(inferred.by_time),
        _time_text(d.ptime[src]),
        pc.if_else(pc.equal(name, ""), "inferred", pc.binary_join_element_wise("inferred", name, ":")),
    )
    stub_key = pc.binary_join_element_wise(
        pc.take(host_text, pa.array(d.host_id[src])), pa.array(d.ppid[src]).cast(pa.string()), tail, "|"
    )
    if schema.parent_guid and inferred.by_guid.any():
        guid_text = pc.take(_strings(frame[schema.parent_guid]), src)
        stub_key = pc.if_else(pa.array(inferred.by_guid), guid_text, stub_key)
    return event_key.cast(pa.string()), stub_key.cast(pa.string())


def build(events: pd.DataFrame, schema: str | Mapping[str, Any] | ProcSchema | None = None) -> pd.DataFrame:
    """Process trees of ``events``: the creation events plus the tree columns (module docstring).

    ``schema``: ``None`` infers it from the columns; a name (``"security"``, ``"sysmon"``, ``"mde"``,
    ``"auditd"``, ``"osquery"``, ``"process_events"``); or a mapping of fields (:class:`ProcSchema`,
    MSTICPy's names work too) to columns.

    >>> events = pd.DataFrame({
    ...     "TimeGenerated": pd.to_datetime(["2024-05-01 10:00", "2024-05-01 10:01"], utc=True),
    ...     "Computer": ["ws01", "ws01"],
    ...     "NewProcessId": ["0x1a4", "0x1b0"], "NewProcessName": ["cmd.exe", "C:\\\\w\\\\whoami.exe"],
    ...     "ProcessId": ["0x99", "0x1a4"], "ParentProcessName": ["C:\\\\w\\\\explorer.exe", "cmd.exe"]})
    >>> build(events)[["path", "depth", "inferred"]].to_dict("list")
    {'path': ['explorer.exe/cmd.exe', 'explorer.exe/cmd.exe/whoami.exe', 'explorer.exe'], \
'depth': [1, 2, 0], 'inferred': [False, False, True]}
    """
    if not isinstance(events, pd.DataFrame):
        raise DataError(f"build() needs a DataFrame, not {type(events).__name__}")
    resolved = _resolve(events, schema)
    frame = _creation_rows(events, resolved)
    n = len(frame)
    decoded = _Decoded.of(frame, resolved)
    parent = _link(decoded)
    inferred = _Inferred.attach(decoded, parent)
    m = len(inferred.source)
    parent = np.concatenate([parent, np.full(m, -1, dtype=np.int64)])
    root, depth = _shape(parent, np.concatenate([decoded.pos, np.full(m, -1, dtype=np.int64)]))
    event_key, stub_key = _keys(decoded, frame, resolved, inferred)
    keys = pa.concat_arrays([event_key, stub_key])
    node_name = np.concatenate([decoded.name_id, decoded.pname_id[inferred.source]])
    path = _paths(parent, depth, pa.array(decoded.names.shown, type=pa.string()), node_name)

    stubs = _stub_frame(frame, resolved, inferred, decoded.ptime, _stub_index(events.index, m, stub_key))
    out = _restore_dtypes(pd.concat([frame, stubs]), frame, stubs.columns) if m else frame.copy(deep=False)
    index = out.index
    added = {
        "proc_key": _to_series(keys, index),
        "parent_key": _to_series(pc.take(keys, pa.array(parent, mask=parent < 0)), index),
        "root_key": _to_series(_take_few(keys, root), index),
        "depth": pd.Series(depth, index=index, copy=False),
        "path": _to_series(path, index),
        "children": pd.Series(np.bincount(parent[parent >= 0], minlength=n + m), index=index, copy=False),
        "inferred": pd.Series(np.arange(n + m) >= n, index=index, copy=False),
    }
    out = out.drop(columns=[c for c in TREE_COLUMNS if c in out.columns]).assign(**added)
    out.attrs = {**out.attrs, _ATTR: {"schema": resolved.name, **resolved.columns()}}
    return out


def _take_few(values: pa.Array, rows: _Ints) -> pa.Array:
    """``values[rows]`` when ``rows`` repeats few distinct rows (gathers from a small array)."""
    codes, distinct = pd.factorize(rows)
    return pc.take(pc.take(values, pa.array(distinct)), pa.array(codes))


def _repeated_events(d: _Decoded) -> _Ints:
    """Rows that repeat an earlier row's identity (same GUID, or same host, pid and start time)."""
    start, order, host_id, pid, guid_id = d.start, d.order, d.host_id, d.pid, d.guid_id
    with_guid = np.flatnonzero(guid_id > 0)
    repeated = [with_guid[pd.Series(guid_id[with_guid]).duplicated().to_numpy()]]
    ties = np.flatnonzero(np.diff(start[order]) == 0)  # only rows sharing a start time can collide
    if len(ties):
        rows = np.unique(np.concatenate([order[ties], order[ties + 1]]))
        rows = rows[guid_id[rows] == 0]
        same = pd.DataFrame({"t": start[rows], "h": host_id[rows], "p": pid[rows]}).duplicated().to_numpy()
        repeated.append(rows[same])
    return np.sort(np.concatenate(repeated))


def _suffix_repeats(keys: pa.Array, repeats: _Ints) -> pa.Array:
    """Append ``#2``, ``#3`` ... to the keys of repeated events so every key stays unique."""
    texts = keys.to_pylist()
    seen: dict[str, int] = {}
    for row in repeats.tolist():
        base = texts[row]
        seen[base] = seen.get(base, 1) + 1
        texts[row] = f"{base}#{seen[base]}"
    return pa.array(texts, type=pa.string())


def _paths(parent: _Ints, depth: _Ints, name_text: pa.Array, node_name: _Ints) -> pa.Array:
    """Name paths, built one depth level at a time over the distinct (parent path, name) pairs."""
    name_text = pc.if_else(pc.equal(name_text, ""), "?", name_text)
    by_level = np.argsort(depth, kind="stable")
    counts = np.bincount(depth) if len(depth) else np.zeros(0, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)])
    local = np.empty(len(depth), dtype=np.int64)  # id of the node's path among its level's paths
    texts: list[pa.Array] = []
    for level in range(len(counts)):
        nodes = by_level[starts[level] : starts[level + 1]]
        pair = node_name[nodes] if level == 0 else _combine(local[parent[nodes]], node_name[nodes])
        codes, _ = pd.factorize(pair)
        local[nodes] = codes
        first = np.empty(int(codes.max()) + 1, dtype=np.int64)
        first[codes[::-1]] = nodes[::-1]
        own = pc.take(name_text, pa.array(node_name[first]))
        if level == 0:
            texts.append(own)
            continue
        above = pc.take(texts[-1], pa.array(local[parent[first]]))
        joined = pc.binary_join_element_wise(above, own, "/")
        if level >= 40:  # only very deep chains get near the cap
            long = pc.greater(pc.utf8_length(joined), _MAX_PATH)
            trimmed = pc.binary_join_element_wise("…", pc.utf8_slice_codeunits(joined, 1 - _MAX_PATH), "")
            joined = pc.if_else(long, trimmed, joined)
        texts.append(joined)
    offsets = np.concatenate([[0], np.cumsum([len(t) for t in texts])]).astype(np.int64)
    flat = pa.concat_arrays(texts) if texts else pa.array([], type=pa.string())
    return pc.take(flat, pa.array(local + offsets[depth]))


def _stub_index(index: pd.Index, m: int, stub_key: pa.Array) -> pd.Index:
    if pd.api.types.is_integer_dtype(index.dtype):
        first = int(index.max()) + 1 if len(index) else 0
        return pd.RangeIndex(first, first + m)
    labels: pd.Index = pd.Index(stub_key.to_pylist(), dtype=object)
    return labels


def _stub_frame(
    frame: pd.DataFrame, schema: ProcSchema, inferred: _Inferred, ptime: _Ints, index: pd.Index
) -> pd.DataFrame:
    """Inferred parent rows: host, pid, name, guid (and creation time when known) from a child."""
    src = inferred.source
    data: dict[str, Any] = {}
    copies = [(schema.host, schema.host), (schema.pid, schema.ppid), (schema.process, schema.parent)]
    copies.append((schema.guid, schema.parent_guid))
    for target, source in copies:
        if target and source:
            data[target] = frame[source].take(src).to_numpy()  # by position: labels are the stub's
    if schema.time in frame.columns:
        micros = np.where(inferred.by_time, ptime[src], _NO_TIME)
        values = pd.Series(micros.astype("datetime64[us]"), index=index)
        dtype = frame[schema.time].dtype
        if isinstance(dtype, pd.DatetimeTZDtype):
            values = values.dt.tz_localize("UTC").dt.tz_convert(dtype.tz).astype(dtype)
        elif pd.api.types.is_datetime64_dtype(dtype):
            values = values.astype(dtype)
        elif pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
            values = pd.Series(pd.NA, index=index, dtype="Int64" if dtype.kind in "iu" else "Float64")
        else:
            values = values.astype(object).where(values.notna(), None)
        data[schema.time] = values
    stubs = pd.DataFrame(data, index=index)
    for column in stubs.columns:
        if column != schema.time:
            with contextlib.suppress(TypeError, ValueError):
                stubs[column] = stubs[column].astype(frame[column].dtype)
    return stubs


def _restore_dtypes(out: pd.DataFrame, frame: pd.DataFrame, filled: pd.Index) -> pd.DataFrame:
    """Integer/bool columns the inferred rows leave empty become nullable, not float."""
    fixes: dict[str, pd.Series] = {}
    for column in frame.columns:
        dtype = frame[column].dtype
        if column in filled or not isinstance(dtype, np.dtype):
            continue
        if dtype.kind in "iu":
            fixes[column] = out[column].astype("Int64")
        elif dtype.kind == "b":
            fixes[column] = out[column].astype("boolean")
    return out.assign(**fixes) if fixes else out


# --------------------------------------------------------------------------------------------
# navigation helpers
# --------------------------------------------------------------------------------------------
def _check_tree(tree: pd.DataFrame) -> None:
    if not isinstance(tree, pd.DataFrame) or not {"proc_key", "parent_key", "root_key"} <= set(tree.columns):
        raise DataError(
            "not a process tree (proc_key, parent_key, root_key columns missing)",
            where="columns",
            hint="build one with huntbook.proctree.build(events)",
        )


def _key_of(proc: str | pd.Series) -> str:
    if isinstance(proc, pd.Series):
        return str(proc["proc_key"])
    return str(proc)


@dataclasses.dataclass
class _Family:
    """The rows of one tree (by position in the tree frame), linked in Python."""

    tree: pd.DataFrame
    rows: np.ndarray[Any, np.dtype[np.intp]]
    keys: list[str]
    parents: list[str | None]
    at: dict[str, int]

    @classmethod
    def of(cls, tree: pd.DataFrame, proc: str | pd.Series) -> tuple[_Family, int]:
        _check_tree(tree)
        key = _key_of(proc)
        match = np.flatnonzero((tree["proc_key"] == key).to_numpy(dtype=bool, na_value=False))
        if not len(match):
            raise DataError(
                f"no process with proc_key {key!r}", where="proc_key", hint="see tree['proc_key']"
            )
        root = tree["root_key"].iloc[match[0]]
        rows = np.flatnonzero((tree["root_key"] == root).to_numpy(dtype=bool, na_value=False))
        column = tree.attrs.get(_ATTR, {}).get("time")
        if column in tree.columns:  # siblings in start-time order, then tree order
            rows = rows[np.argsort(_times_us(tree[column].iloc[rows]), kind="stable")]
        keys = tree["proc_key"].iloc[rows].tolist()
        parents = [p if isinstance(p, str) else None for p in tree["parent_key"].iloc[rows].tolist()]
        at = {k: i for i, k in enumerate(keys)}
        return cls(tree, rows, keys, parents, at), at[key]

    def kids(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for i, up in enumerate(self.parents):
            if up is not None:
                out.setdefault(up, []).append(i)
        return out

    def preorder(self, start: int) -> list[int]:
        kids = self.kids()
        out: list[int] = []
        stack = [start]
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(reversed(kids.get(self.keys[node], [])))
        return out

    def take(self, picked: list[int]) -> pd.DataFrame:
        return self.tree.iloc[self.rows[picked]]


def ancestors(tree: pd.DataFrame, proc: str | pd.Series, *, include_self: bool = False) -> pd.DataFrame:
    """The process's ancestors, root first (and the process last with ``include_self``).

    >>> tree = build(pd.DataFrame({"time": [1, 2, 3], "pid": [10, 11, 12], "ppid": [1, 10, 11],
    ...                            "exe": ["a", "b", "c"]}), {"time": "time", "pid": "pid", "ppid": "ppid",
    ...                                                      "process": "exe"})
    >>> ancestors(tree, tree["proc_key"].iloc[2])["path"].tolist()
    ['?', '?/a', '?/a/b']
    """
    family, node = _Family.of(tree, proc)
    chain: list[int] = []
    current: int | None = node
    while current is not None:
        chain.append(current)
        up = family.parents[current]
        current = family.at.get(up) if up is not None else None
    return family.take(chain[::-1] if include_self else chain[:0:-1])


def descendants(tree: pd.DataFrame, proc: str | pd.Series, *, include_self: bool = False) -> pd.DataFrame:
    """Everything the process started, directly or not, depth-first with siblings in time order.

    >>> tree = build(pd.DataFrame({"time": [1, 2, 3], "pid": [10, 11, 12], "ppid": [1, 10, 10],
    ...                            "exe": ["a", "b", "c"]}), {"time": "time", "pid": "pid", "ppid": "ppid",
    ...                                                      "process": "exe"})
    >>> descendants(tree, tree["proc_key"].iloc[0])["path"].tolist()
    ['?/a/b', '?/a/c']
    """
    family, node = _Family.of(tree, proc)
    order = family.preorder(node)
    return family.take(order if include_self else order[1:])


def tree_of(tree: pd.DataFrame, proc: str | pd.Series) -> pd.DataFrame:
    """The whole tree the process belongs to, from its root, depth-first.

    >>> tree = build(pd.DataFrame({"time": [1, 2], "pid": [10, 11], "ppid": [1, 10], "exe": ["a", "b"]}),
    ...              {"time": "time", "pid": "pid", "ppid": "ppid", "process": "exe"})
    >>> len(tree_of(tree, tree["proc_key"].iloc[1]))
    3
    """
    family, node = _Family.of(tree, proc)
    root = family.at[str(tree["root_key"].iloc[family.rows[node]])]
    return family.take(family.preorder(root))


def children(tree: pd.DataFrame, proc: str | pd.Series) -> pd.DataFrame:
    """The processes the process started directly, in time order.

    >>> tree = build(pd.DataFrame({"time": [1, 2], "pid": [10, 11], "ppid": [1, 10], "exe": ["a", "b"]}),
    ...              {"time": "time", "pid": "pid", "ppid": "ppid", "process": "exe"})
    >>> children(tree, tree["proc_key"].iloc[0])["path"].tolist()
    ['?/a/b']
    """
    family, node = _Family.of(tree, proc)
    key = family.keys[node]
    return family.take([i for i, up in enumerate(family.parents) if up == key])


def siblings(tree: pd.DataFrame, proc: str | pd.Series, *, include_self: bool = False) -> pd.DataFrame:
    """Other children of the process's parent, in time order (none for a root).

    >>> tree = build(pd.DataFrame({"time": [1, 2, 3], "pid": [10, 11, 12], "ppid": [1, 10, 10],
    ...                            "exe": ["a", "b", "c"]}), {"time": "time", "pid": "pid", "ppid": "ppid",
    ...                                                      "process": "exe"})
    >>> siblings(tree, tree["proc_key"].iloc[1])["path"].tolist()
    ['?/a/c']
    """
    family, node = _Family.of(tree, proc)
    up = family.parents[node]
    if up is None:
        return family.take([node] if include_self else [])
    same = [i for i, p in enumerate(family.parents) if p == up and (include_self or i != node)]
    return family.take(same)


def roots(tree: pd.DataFrame) -> pd.DataFrame:
    """The root of every tree (inferred parents included).

    >>> tree = build(pd.DataFrame({"time": [1, 2], "pid": [10, 11], "ppid": [1, 10], "exe": ["a", "b"]}),
    ...              {"time": "time", "pid": "pid", "ppid": "ppid", "process": "exe"})
    >>> roots(tree)["inferred"].tolist()
    [True]
    """
    _check_tree(tree)
    return tree[tree["parent_key"].isna().to_numpy()]


def summary(tree: pd.DataFrame) -> dict[str, int]:
    """Counts of a built tree: processes, roots, leaves, branches, isolated, inferred, max_depth.

    Branches are non-root processes with children; isolated are roots without children;
    max_depth counts links (MSTICPy's "LargestTreeDepth" is ``max_depth + 1``).

    >>> tree = build(pd.DataFrame({"time": [1, 2], "pid": [10, 11], "ppid": [1, 10], "exe": ["a", "b"]}),
    ...              {"time": "time", "pid": "pid", "ppid": "ppid", "process": "exe"})
    >>> summary(tree)["max_depth"]
    2
    """
    _check_tree(tree)
    is_root = tree["parent_key"].isna().to_numpy()
    kids = tree["children"].to_numpy()
    return {
        "processes": len(tree),
        "roots": int(is_root.sum()),
        "leaves": int((kids == 0).sum()),
        "branches": int(((kids > 0) & ~is_root).sum()),
        "isolated": int(((kids == 0) & is_root).sum()),
        "inferred": int(tree["inferred"].sum()),
        "max_depth": int(tree["depth"].max()) if len(tree) else 0,
    }
