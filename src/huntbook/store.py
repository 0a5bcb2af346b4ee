"""LocalStore: an embedded, file-based event store (Parquet files queried in place by DuckDB).

Layout of a store folder::

    catalog.json                 what was ingested: one entry per source, with its table parts
    tables/<table>/<part>.parquet  one part per ingested source and table
    .staging/  .tmp/  .lock      working space while ingesting

Ingestion streams each source in Arrow batches held in memory (spilled to staging files past
``MEMORY_BYTES``), then commits sources in groups, in one step each:
records get a stable ``EventKey`` (content hash, plus the occurrence number for identical
records in one source), keys already in the store are dropped (so re-ingesting adds nothing),
and the ``events`` table plus the normalized tables are written. Unreadable records go to the
``quarantine`` table with file, offset and reason; they never stop the run.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import os
import shutil
import time
import uuid
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huntbook import formats, normalize
from huntbook._progress import gc_paused, progress_bar
from huntbook._types import PathLike
from huntbook.errors import IngestError, StoreError
from huntbook.schema import DESCRIPTIONS, TABLES

if TYPE_CHECKING:
    import duckdb
    import pandas as pd
    import pyarrow as pa

__all__ = ["SUMMARY_COLUMNS", "LocalStore"]

SUMMARY_COLUMNS = ["file", "format", "records", "ingested", "quarantined", "duplicates", "status", "seconds"]
CATALOG_VERSION = 1
_HASH_CHUNK = 1 << 20
_BUFFER_MAX = 64 << 20  # archive members up to this size are decompressed once, into memory
COMMIT_RECORDS = 1_000_000  # staged records that trigger a commit
SMALL_COMMIT = 100_000  # records up to which a commit runs on one thread (parallel scans cost more)
MEMORY_BYTES = 256 << 20  # staged Arrow data held in memory; a source past it spills to staging files
CLUSTERED = ("process_events", "authentication", "network_sessions", "dns", "alerts")
_FILE, _OFFSET = "__hb_source_file", "__hb_source_offset"  # staging columns beside the record


@dataclass
class _Staged:
    """A source read into Arrow batches (in memory, or spilled to staging files), waiting for its commit."""

    source: formats.Source
    fmt: str
    digest: str
    layout: normalize.Layout
    group: str = ""  # sources of one group (same layout and columns) are normalized in one query
    tables: list[pa.Table] = field(default_factory=list)  # batches held in memory
    nbytes: int = 0  # their size
    spilled: int = 0  # batches written to staging files
    good: int = 0
    bad: list[formats.BadRecord] = field(default_factory=list)
    row: dict[str, Any] = field(default_factory=dict)
    columns: list[str] | None = None  # tabular sources: their column names
    folder: Path | None = None  # staging folder of spilled batches


class LocalStore:
    """An event store in a folder: ``LocalStore("~/hunts/case-42")``.

    Args:
        path: the store folder (created if missing).
        memory_limit: DuckDB memory limit for ingest and queries, e.g. ``"2GB"``
            (default: the ``duckdb.memory_limit`` setting, else DuckDB's default).
        threads: DuckDB threads (default: all cores).
    """

    def __init__(
        self, path: PathLike, *, memory_limit: str | None = None, threads: int | None = None
    ) -> None:
        self.path = Path(path).expanduser().resolve()
        if self.path.exists() and not self.path.is_dir():
            raise StoreError("a store must be a folder", where=str(self.path), hint="choose another path")
        self.path.mkdir(parents=True, exist_ok=True)
        self.memory_limit = memory_limit
        self.threads = threads
        self._catalog_path = self.path / "catalog.json"

    def __repr__(self) -> str:
        return f"LocalStore({str(self.path)!r})"

    # ---------------------------------------------------------------- catalog
    def _read_catalog(self) -> dict[str, Any]:
        if not self._catalog_path.exists():
            return {"version": CATALOG_VERSION, "sources": [], "parts": {}}
        try:
            catalog: dict[str, Any] = json.loads(self._catalog_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StoreError(
                f"the catalog cannot be read: {exc}",
                where=str(self._catalog_path),
                hint="restore it from a backup, or ingest again into a new store",
            ) from exc
        if catalog.get("version") != CATALOG_VERSION:
            raise StoreError(
                f"catalog version {catalog.get('version')!r} is not supported",
                where=str(self._catalog_path),
                hint="upgrade huntbook",
            )
        return catalog

    def _write_catalog(self, catalog: dict[str, Any]) -> None:
        tmp = self._catalog_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(catalog, indent=1), encoding="utf-8")
        os.replace(tmp, self._catalog_path)

    @property
    def version(self) -> tuple[int, int]:
        """Changes whenever an ingest commits: connections opened before it should be reopened."""
        try:
            st = self._catalog_path.stat()
        except FileNotFoundError:
            return (0, 0)
        return (st.st_mtime_ns, st.st_size)

    def parts(self, table: str) -> list[Path]:
        """The Parquet files that hold ``table``."""
        if table not in TABLES:
            raise StoreError(f"no table {table!r}", hint=f"tables: {', '.join(TABLES)}")
        return [self.path / p for p in self._read_catalog()["parts"].get(table, [])]

    def tables(self) -> list[str]:
        """Tables that hold data, in schema order."""
        present = self._read_catalog()["parts"]
        return [t for t in TABLES if present.get(t)]

    def describe(self) -> pd.DataFrame:
        """One row per table: name, rows, description."""
        import pandas as pd

        with self.connect() as con:
            rows = [
                (t, con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0], DESCRIPTIONS[t])  # type: ignore[index]
                for t in TABLES
            ]
        return pd.DataFrame(rows, columns=["table", "rows", "description"])

    def sources(self) -> pd.DataFrame:
        """What was ingested: one row per source with its counts (the catalog)."""
        import pandas as pd

        entries = self._read_catalog()["sources"]
        cols = ["file", "format", "records", "ingested", "quarantined", "duplicates", "sha256", "ingested_at"]
        return pd.DataFrame([{c: e.get(c) for c in cols} for e in entries], columns=cols)

    # ----------------------------------------------------------------- DuckDB
    def _duckdb(self) -> duckdb.DuckDBPyConnection:
        import duckdb

        tmp = self.path / ".tmp"
        tmp.mkdir(exist_ok=True)
        settings: dict[str, Any] = {"temp_directory": str(tmp), "memory_limit": self.memory_limit or "1GB"}
        if self.threads:
            settings["threads"] = self.threads
        con = duckdb.connect(config=settings)
        con.execute("SET TimeZone = 'UTC'; SET enable_progress_bar = false")
        return con

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection on which every table is a view (empty tables still have their columns)."""
        con = self._duckdb()
        for table, cols in TABLES.items():
            files = self.parts(table)
            if files:
                listing = ", ".join(_sql_str(str(f)) for f in files)
                select = f"SELECT * FROM read_parquet([{listing}], union_by_name = true)"
            else:
                select = "SELECT " + ", ".join(f'CAST(NULL AS {typ}) AS "{c}"' for c, typ in cols.items())
                select += " WHERE false"
            con.execute(f'CREATE OR REPLACE VIEW "{table}" AS {select}')
        return con

    # ------------------------------------------------------------------ ingest
    def ingest(self, paths: PathLike | Iterable[PathLike], *, progress: bool | None = None) -> pd.DataFrame:
        """Ingest files and folders (archives included); return one summary row per source.

        Summary columns: ``file``, ``format``, ``records`` (read), ``ingested`` (new rows),
        ``quarantined`` (bad records kept aside), ``duplicates`` (already in the store),
        ``status`` (``ok``, ``already ingested``, ``unknown format``, ``error: ...``), ``seconds``.
        Bad records never stop the run; a source that cannot be read at all is reported with
        its status and the run goes on. Sources are committed in groups: an interrupted run
        keeps every group committed before the interruption.
        """
        import pandas as pd

        path_list = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
        for p in path_list:
            if not Path(p).expanduser().exists():
                raise IngestError("no such file or folder", where=str(p), hint="check the path")
        rows: list[dict[str, Any]] = []
        with self._lock(), gc_paused(), self._duckdb() as con:
            con.execute(normalize.MACROS)
            self._cleanup()
            all_sources = list(formats.sources(path_list))
            known = {e["sha256"]: e for e in self._read_catalog()["sources"]}
            pending: list[_Staged] = []
            pending_records = pending_bytes = 0
            bar = progress_bar(progress, total=sum(s.size for s in all_sources), unit="B", unit_scale=True)
            with bar:
                for source in all_sources:
                    bar.set_description(_short(source.name))
                    row, staged = self._stage_source(source, known, bar)
                    rows.append(row)
                    if staged is not None:
                        pending.append(staged)
                        pending_records += staged.good
                        pending_bytes += staged.nbytes
                        records = staged.good + len(staged.bad)
                        known[staged.digest] = {
                            "format": staged.fmt,
                            "records": records,
                            "quarantined": len(staged.bad),
                        }
                    if pending_records >= COMMIT_RECORDS or pending_bytes >= MEMORY_BYTES:
                        self._commit(con, pending)
                        pending, pending_records, pending_bytes = [], 0, 0
                    bar.update(source.size)
                if pending:
                    self._commit(con, pending)
        return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        lock_path = self.path / ".lock"
        with open(lock_path, "w") as handle:
            try:
                import fcntl
            except ImportError:  # Windows: no advisory locks, single writer assumed
                yield
                return
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                raise StoreError(
                    "another process is ingesting into this store",
                    where=str(self.path),
                    hint="wait for it to finish",
                ) from exc
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _cleanup(self) -> None:
        """Remove staging left by an interrupted ingest and parts the catalog does not name."""
        shutil.rmtree(self.path / ".staging", ignore_errors=True)
        known = {p for parts in self._read_catalog()["parts"].values() for p in parts}
        for part in (self.path / "tables").glob("*/*.parquet"):
            if str(part.relative_to(self.path)) not in known:
                part.unlink()

    def _stage_source(
        self, source: formats.Source, known: dict[str, Any], bar: Any
    ) -> tuple[dict[str, Any], _Staged | None]:
        """Read one source into staging files; return its summary row (counts filled at commit)."""
        started = time.perf_counter()
        row: dict[str, Any] = dict.fromkeys(SUMMARY_COLUMNS, 0)
        row.update(file=source.name, format=None, status="ok")
        staged = None
        try:
            digest, source = _sha256(source)
            previous = known.get(digest)
            fmt = previous["format"] if previous else formats.detect(source)
            row["format"] = fmt
            if previous is not None:
                row.update(records=previous["records"], quarantined=previous["quarantined"])
                row.update(
                    duplicates=previous["records"] - previous["quarantined"], status="already ingested"
                )
            elif fmt is None:
                row["status"] = "unknown format"
            else:
                staged = self._stage(source, fmt, digest, bar)
                staged.row = row
        except (OSError, IngestError) as exc:
            row["status"] = f"error: {exc}"
            staged = None
        row["seconds"] = round(time.perf_counter() - started, 3)
        return row, staged

    def _stage(self, source: formats.Source, fmt: str, digest: str, bar: Any) -> _Staged:
        """Read a source into Arrow batches: ``raw`` JSON text, or the source's own columns."""
        layout = normalize.layout_for(fmt, source.name, _variant(source, fmt))
        staged = _Staged(source, fmt, digest, layout)
        try:
            for item in formats.read(source, fmt):
                if isinstance(item, formats.BadRecord):
                    staged.bad.append(item)
                elif len(item):
                    self._stage_batch(staged, item)
                    bar.set_postfix(records=staged.good, refresh=False)
        except BaseException:
            if staged.folder is not None:
                shutil.rmtree(staged.folder, ignore_errors=True)
            raise
        return staged

    def _stage_batch(self, staged: _Staged, item: formats.Batch) -> None:
        import pyarrow as pa

        if item.raw is not None:
            table = pa.table({"raw": pa.array(item.raw, pa.string())})
        else:
            table = item.rows
            staged.columns = staged.columns or [str(c) for c in table.column_names]
        if not staged.group:
            shape = repr((staged.layout, staged.columns, None if item.raw is not None else str(table.schema)))
            staged.group = hashlib.sha256(shape.encode()).hexdigest()[:16]
        table = table.append_column(_FILE, pa.repeat(pa.scalar(staged.source.name, pa.string()), len(item)))
        table = table.append_column(_OFFSET, pa.array(item.offsets, pa.int64()))
        staged.tables.append(table)
        staged.nbytes += table.nbytes
        staged.good += len(item)
        if staged.nbytes > MEMORY_BYTES:
            self._spill(staged)

    def _spill(self, staged: _Staged) -> None:
        """Move a source's batches held in memory to staging files (a source larger than memory)."""
        import pyarrow.parquet as pq

        if staged.folder is None:
            staged.folder = self.path / ".staging" / staged.group / uuid.uuid4().hex
            staged.folder.mkdir(parents=True)
        for table in staged.tables:
            pq.write_table(table, staged.folder / f"{staged.spilled:06d}.parquet", compression="lz4")
            staged.spilled += 1
        staged.tables, staged.nbytes = [], 0

    def _commit(self, con: duckdb.DuckDBPyConnection, pending: list[_Staged]) -> None:
        """Key, de-duplicate, normalize and write staged sources; then record them in the catalog."""
        started = time.perf_counter()
        small = sum(s.good for s in pending) <= SMALL_COMMIT
        con.execute(f"SET threads = {1 if small else self.threads or os.cpu_count() or 1}")
        catalog = self._read_catalog()
        commit_id = uuid.uuid4().hex[:12]
        new_parts: dict[str, list[str]] = {}
        ingested: dict[str, int] = {}
        groups: dict[str, list[_Staged]] = {}
        for staged in pending:
            if staged.good:
                groups.setdefault(staged.group, []).append(staged)
        existing = [self.path / p for p in catalog["parts"].get("events", [])]
        for n, (group, members) in enumerate(sorted(groups.items())):
            self._register_group(con, group, members)
            source = (
                f"(SELECT {_FILE} AS SourceFile, {_OFFSET} AS SourceOffset, * EXCLUDE ({_FILE}, {_OFFSET}) "
                "FROM hb_staged)"
            )
            first = members[0]
            con.execute(
                "CREATE OR REPLACE TEMP TABLE x AS "
                + normalize.extract_sql(first.layout, source, first.columns)
            )
            con.execute("DROP VIEW IF EXISTS hb_staged")
            con.unregister("hb_staged_memory")
            for staged in members:
                staged.tables, staged.nbytes = [], 0
            self._dedup(con, existing)
            for file, count in con.execute("SELECT SourceFile, count(*) FROM x GROUP BY ALL").fetchall():
                ingested[file] = ingested.get(file, 0) + count
            for table in TABLES:
                sql = normalize.table_sql(table, first.layout) if table != "quarantine" else None
                if sql is not None:
                    self._write_part(con, sql, f"tables/{table}/{commit_id}-{n}.parquet", new_parts, table)
            con.execute("DROP TABLE x")
        bad = [(s, b) for s in pending for b in s.bad]
        if bad:
            self._write_quarantine(con, bad, f"tables/quarantine/{commit_id}.parquet", new_parts)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        share = (time.perf_counter() - started) / max(1, len(pending))
        for staged in pending:
            new = ingested.get(staged.source.name, 0)
            counts = {
                "records": staged.good + len(staged.bad),
                "ingested": new,
                "quarantined": len(staged.bad),
                "duplicates": staged.good - new,
            }
            staged.row.update(counts)
            staged.row["seconds"] = round(staged.row["seconds"] + share, 3)
            catalog["sources"].append(
                {
                    "file": staged.source.name,
                    "format": staged.fmt,
                    "sha256": staged.digest,
                    **counts,
                    "ingested_at": now,
                }
            )
        for table, files in new_parts.items():
            catalog["parts"].setdefault(table, []).extend(files)
        self._write_catalog(catalog)
        shutil.rmtree(self.path / ".staging", ignore_errors=True)

    def _register_group(self, con: duckdb.DuckDBPyConnection, group: str, members: list[_Staged]) -> None:
        """View ``hb_staged``: the batches of a group's sources, in memory and spilled."""
        import pyarrow as pa

        selects = []
        tables = [t for s in members for t in s.tables]
        if tables:
            con.register("hb_staged_memory", pa.concat_tables(tables))
            selects.append("SELECT * FROM hb_staged_memory")
        if any(s.spilled for s in members):
            glob = _sql_str(str(self.path / ".staging" / group / "*" / "*.parquet"))
            selects.append(f"SELECT * FROM read_parquet({glob}, union_by_name = true)")
        con.execute("CREATE OR REPLACE TEMP VIEW hb_staged AS " + " UNION ALL BY NAME ".join(selects))

    @staticmethod
    def _dedup(con: duckdb.DuckDBPyConnection, existing: list[Path]) -> None:
        """Make ``x.EventKey`` unique per record and drop records the store (or this commit) has."""
        # Identical records in one source are distinct events: the 2nd, 3rd ... get ':2', ':3' ...
        con.execute(
            "UPDATE x SET EventKey = x.EventKey || ':' || d.n FROM ("
            "SELECT SourceFile, SourceOffset, row_number() OVER (PARTITION BY SourceFile, EventKey "
            "ORDER BY SourceOffset) AS n FROM x WHERE EventKey IN "
            "(SELECT EventKey FROM x GROUP BY EventKey HAVING count(*) > 1)) d "
            "WHERE x.SourceFile = d.SourceFile AND x.SourceOffset = d.SourceOffset AND d.n > 1"
        )
        # The same record in two sources (a copy, an overlapping export) counts once.
        con.execute(
            "DELETE FROM x USING (SELECT EventKey, min(SourceFile) AS first FROM x "
            "GROUP BY EventKey HAVING count(*) > 1) d "
            "WHERE x.EventKey = d.EventKey AND x.SourceFile <> d.first"
        )
        if existing:
            listing = ", ".join(_sql_str(str(f)) for f in existing)
            con.execute(f"DELETE FROM x WHERE EventKey IN (SELECT EventKey FROM read_parquet([{listing}]))")

    def _write_part(
        self, con: duckdb.DuckDBPyConnection, sql: str, rel: str, parts: dict[str, list[str]], table: str
    ) -> None:
        target = self.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".parquet.tmp")
        codec = "zstd, COMPRESSION_LEVEL 1"  # events and quarantine: raw text; level 1 is as compact, faster
        if table in CLUSTERED:  # hunted tables: host then time (host hunts skip row groups), fast lz4
            sql = f"SELECT * FROM ({sql}) ORDER BY DvcHostname, TimeGenerated"
            codec = "lz4"
        written = con.execute(
            f"COPY ({sql}) TO {_sql_str(str(tmp))} (FORMAT parquet, COMPRESSION {codec})"
        ).fetchone()
        if written and written[0]:
            os.replace(tmp, target)
            parts.setdefault(table, []).append(rel)
        else:
            tmp.unlink(missing_ok=True)

    def _write_quarantine(
        self,
        con: duckdb.DuckDBPyConnection,
        bad: list[tuple[_Staged, formats.BadRecord]],
        rel: str,
        parts: dict[str, list[str]],
    ) -> None:
        import pyarrow as pa

        now = datetime.now(UTC)
        table = pa.table(
            {
                "SourceFile": pa.array([s.source.name for s, _ in bad], pa.string()),
                "SourceOffset": pa.array([b.offset for _, b in bad], pa.int64()),
                "EventFormat": pa.array([s.fmt for s, _ in bad], pa.string()),
                "Reason": pa.array([b.reason for _, b in bad], pa.string()),
                "Sample": pa.array([b.sample for _, b in bad], pa.string()),
                "IngestedAt": pa.array([now] * len(bad), pa.timestamp("us", tz="UTC")),
            }
        )
        con.register("quarantine_batch", table)
        self._write_part(con, "SELECT * FROM quarantine_batch", rel, parts, "quarantine")
        con.unregister("quarantine_batch")


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _short(name: str, width: int = 40) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1) :]


def _sha256(source: formats.Source) -> tuple[str, formats.Source]:
    """Content hash of a source, and the source to read from then on.

    An archive member of at most ``_BUFFER_MAX`` bytes is decompressed once, here: the source
    returned reads it from memory. A damaged stream (truncated .gz, ...) hashes what is readable,
    so its good records are still ingested; its reader reports the damage as a bad record.
    """
    digest = hashlib.sha256()
    read = 0
    kept: list[bytes] | None = [] if not formats.is_file(source) and source.size <= _BUFFER_MAX else None
    try:
        with source.open() as stream:
            while chunk := stream.read(_HASH_CHUNK):
                digest.update(chunk)
                read += len(chunk)
                if kept is not None:
                    kept.append(chunk)
    except (OSError, EOFError, zlib.error):
        if not read:
            raise
        return "partial-" + digest.hexdigest(), source
    if kept is not None:
        source = formats.Source(source.name, source.size, functools.partial(io.BytesIO, b"".join(kept)))
    return digest.hexdigest(), source


def _variant(source: formats.Source, fmt: str) -> str | None:
    """What the layout needs from the head of a source: a Zeek TSV ``#path``, or legacy Winlogbeat."""
    if fmt not in ("zeek_tsv", "winlogbeat"):
        return None
    with source.open() as stream:
        head = stream.read(65536).decode("utf-8", "replace")
    if fmt == "winlogbeat":
        return "legacy" if '"winlog"' not in head and '"event_data"' in head else None
    for line in head.splitlines():
        if line.startswith("#path"):
            parts = line.split(maxsplit=1)
            return parts[1].strip() if len(parts) > 1 else None
    return None
