"""Reading input files: format detection and streaming readers.

A *source* is one logical input stream: a plain file, or one member of an archive
(``case.zip!logs/security.json``). :func:`sources` expands paths (folders recursively, zip,
tar, tar.gz, gz) into sources; :func:`detect` names a source's format from its content;
:func:`read` streams it as :class:`Batch` items (good records, as JSON object text) and
:class:`BadRecord` items (records that cannot be read, with offset and reason).

Readers never raise for a bad record and never hold more than one batch in memory.

Format names: ``evtx``, ``evtx_json``, ``mordor``, ``nxlog``, ``winlogbeat``, ``zeek_json``,
``zeek_tsv``, ``suricata``, ``la_csv`` (Log Analytics export), ``csv``, ``tsv``, ``jsonl``
(any other JSON objects), ``parquet``.

Offsets (``Batch.offsets`` and ``BadRecord.offset``):

* JSON formats and Zeek TSV: byte offset of the record's first byte in the decompressed source
  (for UTF-16/32 sources: in the source re-encoded as UTF-8, after the byte-order mark).
* ``evtx``: the item's position in the parser's output, 0, 1, 2, ...; a parser error takes a
  position too, so an intact file has offsets 0..n-1 (this is *not* ``EventRecordID``).
* ``csv``/``tsv``/``la_csv``: data row number (0 = first row after the header; malformed rows
  take a number too, empty lines do not).
* ``parquet``: row number.

A whole-source failure (not an archive, unreadable EVTX header, ...) is one ``BadRecord`` at
offset 0. Bad records may be yielded before the batch that holds the good records preceding them.
Every ``raw`` string is a JSON object that both Python and DuckDB accept: NaN/Infinity and
undecodable bytes make a record bad; lone UTF-16 surrogate escapes (``"\\ud800"``, which DuckDB
rejects) are stored as the literal text ``\\ud800``.

EVTX (Rust ``evtx`` parser, one thread, checksums not enforced so damaged chunks still yield
what they can): a record or chunk the parser rejects is one ``BadRecord`` and reading goes on with
the next one; a file cut inside a chunk keeps that chunk's whole records (and says it was cut).

Value conventions for tabular formats: CSV/TSV columns are all strings, exactly as written
(empty stays ``""``). Zeek TSV: ``#unset_field`` is null, ``#empty_field`` is ``""`` (or ``[]``
for containers), ``time``/``interval``/``double`` are float64, ``count``/``int``/``port`` are
int64 (uint64, else string, for a batch whose values do not fit), ``bool`` is bool,
``set``/``vector`` are lists (elements converted the same way), and the log's escapes are undone
(``\\\\`` and ``\\xNN``; bytes that are not UTF-8 stay as ``\\xNN`` text, as Zeek's JSON writer
does).
"""

from __future__ import annotations

import bz2
import codecs
import contextlib
import csv
import gzip
import io
import itertools
import json
import lzma
import os
import re
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from huntbook._types import PathLike
from huntbook.errors import IngestError

__all__ = ["FORMATS", "BadRecord", "Batch", "Source", "detect", "is_file", "read", "sources"]

FORMATS = (
    "evtx",
    "evtx_json",
    "mordor",
    "nxlog",
    "winlogbeat",
    "zeek_json",
    "zeek_tsv",
    "suricata",
    "la_csv",
    "csv",
    "tsv",
    "jsonl",
    "parquet",
)


@dataclass
class Batch:
    """Good records of one source, in order.

    Exactly one of ``raw`` (JSON object text per record) and ``rows`` (a ``pyarrow.Table``,
    one row per record, every value kept) is set. ``offsets`` has one entry per record: the
    byte offset of the record in the (decompressed) source, or the record number for EVTX.
    """

    offsets: list[int]
    raw: list[str] | None = None
    rows: Any = None  # pyarrow.Table

    def __len__(self) -> int:
        return len(self.offsets)


@dataclass
class BadRecord:
    """A record that could not be read. ``sample`` is its start (<= 200 chars, bad bytes escaped)."""

    offset: int
    reason: str
    sample: str = ""


@dataclass
class Source:
    """One logical input: ``name`` is the path, or ``archive!member`` inside an archive."""

    name: str
    size: int
    open: Callable[[], IO[bytes]] = field(repr=False)


# --------------------------------------------------------------------------- constants
_HEAD_SIZE = 64 * 1024  # bytes detect() looks at first
_HEAD_MAX = 16 << 20  # ... growing to this when the first JSON record is longer
_READ_SIZE = 1 << 20  # read size of the streaming readers
_MAX_RECORD = 64 << 20  # a line/record longer than this is a BadRecord
_NESTED_MAX = 16 << 20  # nested zip/tar members up to this size are expanded (in memory)
_SAMPLE = 200
_EVTX_HEADER = 4096
_EVTX_CHUNK = 65536
_CSV_BLOCK = 8 << 20

_JSON_FORMATS = frozenset({"evtx_json", "mordor", "nxlog", "winlogbeat", "zeek_json", "suricata", "jsonl"})
_CSV_FORMATS = frozenset({"csv", "tsv", "la_csv"})
# Errors the stdlib decompressors raise besides OSError.
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    EOFError,
    zlib.error,
    zipfile.BadZipFile,
    tarfile.TarError,
    lzma.LZMAError,
)
_READ_ERRORS: tuple[type[BaseException], ...] = (OSError, *_DECODE_ERRORS)
_ARCHIVE_ERRORS: tuple[type[BaseException], ...] = (OSError, IngestError, *_DECODE_ERRORS)
_MEMBER_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    RuntimeError,
    NotImplementedError,
    *_DECODE_ERRORS,
)
_LA_COLUMNS = frozenset(
    {
        "TenantId",
        "Type",
        "Computer",
        "EventID",
        "SourceSystem",
        "_ResourceId",
        "MG",
        "ManagementGroupName",
        "SourceComputerId",
        "_SubscriptionId",
        "_BilledSize",
        "_IsBillable",
    }
)
_WS = re.compile(r"[ \t\r\n]*")
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")  # undecodable bytes under 'surrogateescape'
_SURROGATE = re.compile("[\ud800-\udfff]")
_NEXT_LINE_OBJECT = re.compile(r"\n[ \t]*\{")
_CONTROL = {c: f"\\x{c:02x}" for c in itertools.chain(range(0x00, 0x09), range(0x0B, 0x20), [0x7F])}


_BINARY_CONTROLS = [chr(c) for c in range(0x20) if c not in (0x09, 0x0A, 0x0B, 0x0C, 0x0D)]
# Binary formats that can look like text in their first bytes (pcap with HTTP payloads, ...).
_BINARY_MAGIC = (
    b"\xd4\xc3\xb2\xa1",  # pcap
    b"\xa1\xb2\xc3\xd4",
    b"\x4d\x3c\xb2\xa1",  # pcap (ns)
    b"\xa1\xb2\x3c\x4d",
    b"\x0a\x0d\x0d\x0a",  # pcapng
    b"\x1f\x8b",  # gzip (nested deeper than we expand)
    b"PK\x03\x04",  # zip
    b"MZ",  # Windows executable
    b"\x7fELF",
    b"SQLite format 3\x00",
    b"regf",  # registry hive
)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# NaN/Infinity are accepted by Python's json but are not JSON: reject them.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


# --------------------------------------------------------------------------- streams
class _Guarded(io.RawIOBase):
    """A readable stream over a decompressor or archive member.

    Its errors become ``OSError``; data read before an error is returned first and the error is
    raised by the next read (and every read after it), so readers keep everything before damage.
    Reads may be short, as with any raw stream. Closes what it owns.
    """

    def __init__(self, inner: Any, name: str, owned: list[Any]) -> None:
        super().__init__()
        self._inner = inner
        self._read1 = getattr(inner, "read1", None) or inner.read
        self._name = name
        self._owned = owned
        self._error: OSError | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._error is not None:
            raise self._error
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view):
            try:
                data = self._read1(len(view) - filled)
            except OSError as exc:
                self._error = exc
            except _DECODE_ERRORS as exc:
                self._error = OSError(f"{self._name}: damaged compressed data ({exc})")
                self._error.__cause__ = exc
            else:
                if not data:
                    break
                view[filled : filled + len(data)] = data
                filled += len(data)
                continue
            if filled:
                return filled
            raise self._error
        return filled

    def seekable(self) -> bool:
        return bool(self._inner.seekable())

    def seek(self, offset: int, whence: int = 0) -> int:
        try:
            return int(self._inner.seek(offset, whence))
        except _DECODE_ERRORS as exc:
            raise OSError(f"{self._name}: damaged compressed data ({exc})") from exc

    def tell(self) -> int:
        return int(self._inner.tell())

    def close(self) -> None:
        if not self.closed:
            try:
                self._inner.close()
                for obj in reversed(self._owned):
                    obj.close()
            finally:
                super().close()


def _guard(inner: Any, name: str, owned: list[Any] | None = None) -> IO[bytes]:
    return cast(IO[bytes], _Guarded(inner, name, owned or []))


def _read_up_to(stream: IO[bytes], size: int) -> bytes:
    """Up to ``size`` bytes (fewer at the end). A read error after some data ends the read early;
    it is raised by the stream's next read."""
    parts: list[bytes] = []
    got = 0
    while got < size:
        try:
            block = stream.read(size - got)
        except OSError:
            if parts:
                break
            raise
        if not block:
            break
        parts.append(block)
        got += len(block)
    return b"".join(parts)


class _Prefixed(io.RawIOBase):
    """``prefix`` bytes, then the rest of ``inner`` (for re-reading a head already consumed)."""

    def __init__(self, prefix: bytes, inner: IO[bytes]) -> None:
        super().__init__()
        self._prefix = memoryview(prefix)
        self._inner = inner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._prefix:
            n = min(len(buffer), len(self._prefix))
            buffer[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        return self._inner.readinto(buffer)  # type: ignore[attr-defined,no-any-return]

    def close(self) -> None:
        if not self.closed:
            try:
                self._inner.close()
            finally:
                super().close()


class _Transcoded(io.RawIOBase):
    """UTF-8 bytes of a UTF-16/UTF-32 stream (bad code units become U+FFFD)."""

    def __init__(self, first: bytes, inner: IO[bytes], encoding: str) -> None:
        super().__init__()
        self._decoder = codecs.getincrementaldecoder(encoding)("replace")
        self._inner = inner
        self._out = self._decoder.decode(first).encode("utf-8")
        self._eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._out and not self._eof:
            chunk = self._inner.read(_READ_SIZE)
            self._eof = not chunk
            self._out = self._decoder.decode(chunk, final=self._eof).encode("utf-8")
        n = min(len(buffer), len(self._out))
        buffer[:n] = self._out[:n]
        self._out = self._out[n:]
        return n

    def close(self) -> None:
        if not self.closed:
            try:
                self._inner.close()
            finally:
                super().close()


class _ZeroPadded(io.RawIOBase):
    """A seekable stream followed by ``pad`` zero bytes (completes a truncated EVTX chunk)."""

    def __init__(self, inner: IO[bytes], size: int, pad: int) -> None:
        super().__init__()
        self._inner = inner
        self._size = size
        self._total = size + pad
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._total}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), max(0, self._total - self._pos))
        got = 0
        if self._pos < self._size:
            self._inner.seek(self._pos)
            data = self._inner.read(min(want, self._size - self._pos))
            got = len(data)
            buffer[:got] = data
        if got < want:
            buffer[got:want] = bytes(want - got)
        self._pos += want
        return want


def _stream_errors(name: str, exc: BaseException) -> IngestError:
    hint = "check that the archive is complete and not encrypted"
    return IngestError(f"cannot open: {exc}", where=name, hint=hint)


# --------------------------------------------------------------------------- openers
class _FileOpener:
    """Opens a plain file; readers use ``path`` to hand files to native parsers directly."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self) -> IO[bytes]:
        return open(self.path, "rb")


class _Failing:
    """Opener of a source that cannot be read at all (a broken archive, a special file)."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason

    def __call__(self) -> IO[bytes]:
        raise IngestError(self.reason, where=self.name, hint="fix or remove this file")


class _Decompressed:
    """Opener of a single-file compressed stream (``.gz``, ``.bz2``, ``.xz``) over another opener."""

    def __init__(self, inner: Callable[[], IO[bytes]], kind: str, name: str) -> None:
        self.inner = inner
        self.kind = kind
        self.name = name

    def __call__(self) -> IO[bytes]:
        raw = self.inner()
        try:
            stream: Any
            if self.kind == "gz":
                stream = gzip.GzipFile(fileobj=raw, mode="rb")
            elif self.kind == "bz2":
                stream = bz2.BZ2File(raw, mode="rb")
            else:
                stream = lzma.LZMAFile(raw, mode="rb")  # noqa: SIM115 - closed by the returned stream
        except _READ_ERRORS as exc:
            raw.close()
            raise _stream_errors(self.name, exc) from exc
        return _guard(stream, self.name, [raw])


class _InMemory:
    """Opener of a small nested archive: the outer member read into memory."""

    def __init__(self, inner: Callable[[], IO[bytes]]) -> None:
        self.inner = inner

    def __call__(self) -> IO[bytes]:
        with self.inner() as stream:
            return io.BytesIO(stream.read())


class _ZipMember:
    """Opener of a zip member: reads it at its local header (no re-parse of the central directory)."""

    def __init__(self, archive: str | Callable[[], IO[bytes]], info: zipfile.ZipInfo, name: str) -> None:
        self.archive = archive
        self.info = info
        self.name = name

    def __call__(self) -> IO[bytes]:
        info = self.info
        raw = open(self.archive, "rb") if isinstance(self.archive, str) else self.archive()  # noqa: SIM115
        try:
            if info.flag_bits & 0x1:
                raise RuntimeError("the member is encrypted")
            raw.seek(info.header_offset)
            header = raw.read(30)
            if len(header) != 30 or header[:4] != b"PK\x03\x04":
                raise zipfile.BadZipFile("bad local file header")
            raw.seek(int.from_bytes(header[26:28], "little") + int.from_bytes(header[28:30], "little"), 1)
            member = zipfile.ZipExtFile(raw, "r", info, None, True)
        except _MEMBER_ERRORS as exc:
            raw.close()
            raise _stream_errors(self.name, exc) from exc
        return _guard(member, self.name)


class _TarMember:
    def __init__(self, archive: str | Callable[[], IO[bytes]], info: tarfile.TarInfo, name: str) -> None:
        self.archive = archive
        self.info = info
        self.name = name

    def __call__(self) -> IO[bytes]:
        archive = self.archive
        raw = None if isinstance(archive, str) else archive()
        owned: list[Any] = [] if raw is None else [raw]
        try:
            if isinstance(archive, str):
                tf = tarfile.open(name=archive, mode="r:*")  # noqa: SIM115 - closed by the returned stream
            else:
                tf = tarfile.open(fileobj=raw, mode="r:*")  # noqa: SIM115
            owned.append(tf)
            member = tf.extractfile(self.info)
            if member is None:
                raise tarfile.TarError("not a regular file")
        except _READ_ERRORS as exc:
            for obj in reversed(owned):
                obj.close()
            raise _stream_errors(self.name, exc) from exc
        return _guard(member, self.name, owned)


# --------------------------------------------------------------------------- sources
def is_file(source: Source) -> bool:
    """Whether a source is a plain file (read in place), not an archive member or decompressed stream."""
    return isinstance(source.open, _FileOpener)


def sources(paths: PathLike | Iterable[PathLike]) -> Iterator[Source]:
    """Expand files, folders (recursively, sorted) and archives into :class:`Source` items.

    Archives expand into their members (``.zip``, ``.tar``, ``.tar.gz``/``.tgz``, ``.tar.bz2``,
    ``.tar.xz``); ``.gz``/``.bz2``/``.xz`` files are one source with decompressed content and
    their own name. Archives inside archives are expanded one more level when they are at most
    16 MiB, else they are a source of their own. An archive that cannot be opened is one source
    whose ``open()`` raises :class:`IngestError` (and :func:`read` yields one ``BadRecord``).

    Raises:
        IngestError: a path does not exist (raised before anything is yielded).
    """
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    for item in items:
        if not os.path.exists(os.fspath(item)):
            raise IngestError(
                "no such file or folder",
                where=os.fspath(item),
                hint=f"check the path (relative paths start at {os.getcwd()})",
            )
    return _iter_sources([os.fspath(p) for p in items])


def _iter_sources(paths: list[str]) -> Iterator[Source]:
    for path in paths:
        if os.path.isdir(path):
            for file in _walk(path):
                yield from _expand_file(file)
        else:
            yield from _expand_file(path)


def _walk(root: str) -> list[str]:
    """Every non-directory entry under ``root`` (links followed once), sorted by path parts."""
    found: list[tuple[tuple[str, ...], str]] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        for name in filenames:
            full = os.path.join(dirpath, name)
            found.append((Path(os.path.relpath(full, root)).parts, full))
    found.sort()
    return [full for _, full in found]


def _archive_kind(name: str) -> str | None:
    low = name.lower()
    if low.endswith(".zip"):
        return "zip"
    if low.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tbz", ".tar.xz", ".txz")):
        return "tar"
    for ext, kind in ((".gz", "gz"), (".bz2", "bz2"), (".xz", "xz")):
        if low.endswith(ext):
            return kind
    return None


def _expand_file(path: str) -> Iterator[Source]:
    try:
        st = os.stat(path)
    except OSError as exc:
        yield Source(path, 0, _Failing(path, f"cannot read: {exc.strerror or exc}"))
        return
    if not stat.S_ISREG(st.st_mode):
        yield Source(path, 0, _Failing(path, "not a regular file"))
        return
    yield from _expand(path, st.st_size, _FileOpener(path), _archive_kind(path), 0, path)


def _expand(
    name: str, size: int, opener: Callable[[], IO[bytes]], kind: str | None, depth: int, path: str | None
) -> Iterator[Source]:
    if kind is None:
        yield Source(name, size, opener)
    elif kind == "zip":
        yield from _expand_zip(name, size, opener, depth, path)
    elif kind == "tar":
        yield from _expand_tar(name, size, opener, depth, path)
    else:
        decompressed = _Decompressed(opener, kind, name)
        if _is_tar(decompressed):
            yield from _expand_tar(name, size, opener, depth, path)
            return
        yield Source(name, _uncompressed_size(path, size) if kind == "gz" else size, decompressed)


def _is_tar(opener: Callable[[], IO[bytes]]) -> bool:
    try:
        with opener() as stream:
            block = _read_up_to(stream, 512)
    except (OSError, IngestError):
        return False
    return len(block) == 512 and block[257:262] == b"ustar"


def _uncompressed_size(path: str | None, size: int) -> int:
    """The gzip trailer's size (mod 2**32, so best effort), else the compressed size."""
    if path is None or size < 18:
        return size
    try:
        with open(path, "rb") as f:
            f.seek(-4, os.SEEK_END)
            isize = int.from_bytes(f.read(4), "little")
    except OSError:
        return size
    # Deflate expands at most ~1032:1, so below ~3.9 MB the 32-bit trailer cannot have wrapped.
    return isize if isize >= size or size < (1 << 32) // 1100 else size


def _expand_member(name: str, size: int, opener: Callable[[], IO[bytes]], depth: int) -> Iterator[Source]:
    kind = _archive_kind(name.rsplit("!", 1)[-1])
    if kind in ("zip", "tar"):
        if depth >= 1 or size > _NESTED_MAX:
            yield Source(name, size, opener)
            return
        yield from _expand(name, size, _InMemory(opener), kind, depth + 1, None)
    elif kind is not None and depth < 1:
        decompressed = _Decompressed(opener, kind, name)
        if _is_tar(decompressed) and size <= _NESTED_MAX:
            yield from _expand_tar(name, size, _InMemory(opener), depth + 1, None)
        else:
            yield Source(name, size, decompressed)
    else:
        yield Source(name, size, opener)


def _expand_zip(
    name: str, size: int, opener: Callable[[], IO[bytes]], depth: int, path: str | None
) -> Iterator[Source]:
    try:
        if path is not None:
            with zipfile.ZipFile(path) as zf:
                infos = [i for i in zf.infolist() if not i.is_dir()]
        else:
            with opener() as raw, zipfile.ZipFile(raw) as zf:
                infos = [i for i in zf.infolist() if not i.is_dir()]
    except _ARCHIVE_ERRORS as exc:
        yield Source(name, size, _Failing(name, f"not a readable zip archive: {exc}"))
        return
    archive: str | Callable[[], IO[bytes]] = path if path is not None else opener
    for info in sorted(infos, key=lambda i: i.filename):
        member = f"{name}!{info.filename}"
        yield from _expand_member(member, info.file_size, _ZipMember(archive, info, member), depth)


def _expand_tar(
    name: str, size: int, opener: Callable[[], IO[bytes]], depth: int, path: str | None
) -> Iterator[Source]:
    members: list[tarfile.TarInfo] = []
    damage: BaseException | None = None
    try:
        raw = None if path is not None else opener()
        try:
            with (
                tarfile.open(name=path, mode="r:*") if raw is None else tarfile.open(fileobj=raw, mode="r:*")
            ) as tf:
                try:
                    members.extend(m for m in tf if m.isfile())
                except _READ_ERRORS as exc:
                    damage = exc
        finally:
            if raw is not None:
                raw.close()
    except _ARCHIVE_ERRORS as exc:
        if path is not None and name.lower().endswith((".tar.gz", ".tgz")):
            # A ".tar.gz" that is plain gzip: one decompressed source.
            yield Source(name, _uncompressed_size(path, size), _Decompressed(opener, "gz", name))
            return
        yield Source(name, size, _Failing(name, f"not a readable tar archive: {exc}"))
        return
    archive: str | Callable[[], IO[bytes]] = path if path is not None else opener
    for info in sorted(members, key=lambda m: m.name):
        member = f"{name}!{info.name}"
        yield from _expand_member(member, info.size, _TarMember(archive, info, member), depth)
    if damage is not None:
        yield Source(name, size, _Failing(name, f"archive damaged after {len(members)} members: {damage}"))


# --------------------------------------------------------------------------- detection
def detect(source: Source) -> str | None:
    """The format of ``source`` from its content (first 64 KiB); the file name only breaks ties.

    Returns one of :data:`FORMATS`, or None for unknown text and binary content (pcap, ...).

    Raises:
        IngestError: the source cannot be opened at all (e.g. a broken archive).
    """
    size = _HEAD_SIZE
    while True:
        head, complete = _read_head(source, size)
        fmt, need_more = _detect_head(head, complete, source.name)
        if not need_more or complete or size >= _HEAD_MAX:
            return fmt
        size *= 16


def _read_head(source: Source, size: int) -> tuple[bytes, bool]:
    """Up to ``size`` bytes from the start, and whether that is the whole source."""
    try:
        stream = source.open()
    except IngestError:
        raise
    except Exception as exc:
        raise IngestError(f"cannot open: {exc}", where=source.name) from exc
    with stream:
        try:
            head = _read_up_to(stream, size)
        except OSError as exc:
            raise IngestError(f"cannot read: {exc}", where=source.name) from exc
    return head, len(head) < size


def _detect_head(head: bytes, complete: bool, name: str) -> tuple[str | None, bool]:
    """(format, whether a longer head could tell more)."""
    if head.startswith(b"ElfFile\x00"):
        return "evtx", False
    if head.startswith(b"PAR1"):
        return "parquet", False
    if head.startswith(_BINARY_MAGIC):
        return None, False
    text = _head_text(head)
    if text is None:
        return None, False
    stripped = text.lstrip()
    if stripped.startswith("#separator") or (
        stripped.startswith("#") and any(line.startswith("#fields") for line in stripped.split("\n", 12)[:12])
    ):
        return "zeek_tsv", False
    if stripped[:1] in ("{", "["):
        records = _head_records(stripped, complete)
        if records:
            return _vote(records), False
        if stripped[:1] == "{" or re.match(r"\[\s*\{", stripped):
            return "jsonl", True  # JSON objects whose first one is longer than the head
    return _sniff_table(text, complete, name), False


def _head_text(head: bytes) -> str | None:
    """The head as text (BOMs honoured), or None when it looks binary."""
    for bom, encoding in (
        (codecs.BOM_UTF32_LE, "utf-32-le"),
        (codecs.BOM_UTF32_BE, "utf-32-be"),
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if head.startswith(bom):
            text = head[len(bom) :].decode(encoding, "replace")
            break
    else:
        text = head.decode("utf-8", "replace")
    if not text:
        return None
    controls = sum(text.count(c) for c in _BINARY_CONTROLS)
    if controls > len(text) // 20 + 2 or text.count("\ufffd") > len(text) // 100 + 2:
        return None
    return text


def _json_mode(text: str, complete: bool) -> str:
    """``lines`` (one JSON value per line) or ``stream`` (arrays, pretty or concatenated values)."""
    stripped = text.lstrip()
    if "\n" not in stripped.rstrip("\r\n"):
        return "stream" if stripped.startswith("[") else "lines"
    lines = text.split("\n")
    if not complete:
        lines = lines[:-1]
    candidates = [s for s in (line.strip() for line in lines[:200]) if s][:8]
    if not candidates or not all(s[0] in "{[" for s in candidates):
        return "stream"
    parsed = 0
    for s in candidates:
        try:
            _DECODER.decode(s)
            parsed += 1
        except (ValueError, RecursionError):
            pass
    if stripped.startswith("[") and len(candidates) < 2:
        return "stream"
    return "lines" if parsed * 2 >= len(candidates) and parsed else "stream"


def _head_records(text: str, complete: bool, limit: int = 10) -> list[dict[str, Any]]:
    """The first JSON objects of a head (fewer when the head cuts them)."""
    records: list[dict[str, Any]] = []
    if _json_mode(text, complete) == "lines":
        lines = text.split("\n")
        if not complete:
            lines = lines[:-1]
        for line in lines[:200]:
            try:
                value = _DECODER.decode(line)
            except (ValueError, RecursionError):
                continue
            if isinstance(value, dict):
                records.append(value)
                if len(records) >= limit:
                    break
        return records
    i = 0
    in_array = False
    while len(records) < limit:
        i = _WS.match(text, i).end()  # type: ignore[union-attr]
        if i >= len(text):
            break
        ch = text[i]
        if ch == "[" and not in_array:
            in_array, i = True, i + 1
            continue
        if ch in ",]" and in_array:
            in_array, i = ch == ",", i + 1
            continue
        try:
            value, i = _DECODER.raw_decode(text, i)
        except (ValueError, RecursionError):
            break
        if isinstance(value, dict):
            records.append(value)
    return records


def _classify(obj: dict[str, Any]) -> str:
    """The JSON flavour of one record, from its keys."""
    event = obj.get("Event")
    if isinstance(event, dict) and isinstance(event.get("System"), dict):
        return "evtx_json"
    meta, agent = obj.get("@metadata"), obj.get("agent")
    if (
        isinstance(obj.get("winlog"), dict)
        or (isinstance(meta, dict) and meta.get("beat") == "winlogbeat")
        or (isinstance(agent, dict) and agent.get("type") == "winlogbeat")
        or ("event_data" in obj and "log_name" in obj and "computer_name" in obj)  # winlogbeat 6.x
    ):
        return "winlogbeat"
    if "event_type" in obj and "timestamp" in obj and ("src_ip" in obj or "flow_id" in obj):
        return "suricata"
    ident = obj.get("id")
    if (
        ("ts" in obj and "uid" in obj)
        or "_path" in obj
        or "id.orig_h" in obj
        or "id_orig_h" in obj
        or (isinstance(ident, dict) and "orig_h" in ident)
        or ("@stream" in obj and ("ts" in obj or obj.get("@proc") == "zeek"))
    ):
        return "zeek_json"
    if "EventID" in obj and ("Channel" in obj or "SourceName" in obj):
        if "@timestamp" in obj or "@version" in obj or ("host" in obj and "port" in obj):
            return "mordor"  # NXLog -> Logstash (OTRF Security-Datasets)
        if "EventTime" in obj and "Hostname" in obj and ("SourceName" in obj or "SourceModuleType" in obj):
            return "nxlog"
        if "Hostname" in obj:
            return "mordor"
    return "jsonl"


def _vote(records: list[dict[str, Any]]) -> str:
    counts = Counter(_classify(r) for r in records)
    return max(counts, key=lambda f: (counts[f], f != "jsonl"))


def _strip_compression(name: str) -> str:
    low = name.rsplit("!", 1)[-1].lower()
    for ext in (".gz", ".bz2", ".xz"):
        if low.endswith(ext):
            return low[: -len(ext)]
    return low


def _sniff_table(text: str, complete: bool, name: str) -> str | None:
    """``la_csv``/``csv``/``tsv`` when the head is a consistent delimited table, else None."""
    body = text if complete else text[: text.rfind("\n") + 1]
    if not body.strip():
        return None
    low = _strip_compression(name)
    hint = "csv" if low.endswith(".csv") else "tsv" if low.endswith((".tsv", ".tab")) else None
    best: tuple[tuple[bool, int], str, list[str]] | None = None
    for delimiter, fmt in ((",", "csv"), ("\t", "tsv")):
        try:
            rows = list(itertools.islice(csv.reader(io.StringIO(body), delimiter=delimiter), 101))
        except csv.Error:
            continue
        if not complete and len(rows) > 2:
            rows = rows[:-1]  # may be cut inside a quoted value
        header = [h.strip().lstrip("\ufeff") for h in rows[0]] if rows else []
        data = [r for r in rows[1:] if r]
        if len(header) < 2 or any(len(h) > 256 for h in header) or not any(header):
            continue
        if data:
            if sum(len(r) == len(header) for r in data) < 0.75 * len(data):
                continue
        elif hint != fmt:
            continue
        score = (hint == fmt, len(header))
        if best is None or score > best[0]:
            best = (score, fmt, header)
    if best is None:
        return None
    _, fmt, header = best
    names = set(header)
    if fmt == "csv" and names & {"TimeGenerated", "TimeGenerated [UTC]"} and names & _LA_COLUMNS:
        return "la_csv"
    return fmt


# --------------------------------------------------------------------------- reading
def read(source: Source, fmt: str, batch_size: int = 20_000) -> Iterator[Batch | BadRecord]:
    """Stream ``source`` as :class:`Batch` (at most ``batch_size`` records) and :class:`BadRecord` items.

    JSON formats give ``Batch.raw`` (one JSON object text per record; JSON lines pass through
    as written, records from arrays and pretty-printed files are re-serialised compactly);
    ``evtx`` gives the parser's JSON per record; tabular formats give ``Batch.rows``.
    Iterating never raises: bad records and unreadable sources become ``BadRecord`` items.

    Raises:
        IngestError: ``fmt`` is not one of :data:`FORMATS` (raised at the call).
    """
    if fmt not in FORMATS:
        raise IngestError(
            f"unknown format {fmt!r}", where=source.name, hint=f"use one of {', '.join(FORMATS)}"
        )
    if batch_size < 1:
        raise IngestError(f"batch_size must be at least 1, not {batch_size}", where=source.name)
    return _read_guarded(source, fmt, batch_size)


def _read_guarded(source: Source, fmt: str, batch_size: int) -> Iterator[Batch | BadRecord]:
    if fmt == "evtx":
        reader = _read_evtx(source, batch_size)
    elif fmt == "parquet":
        reader = _read_parquet(source, batch_size)
    elif fmt == "zeek_tsv":
        reader = _read_zeek_tsv(source, batch_size)
    elif fmt in _CSV_FORMATS:
        reader = _read_csv(source, fmt, batch_size)
    else:
        reader = _read_json(source, batch_size)
    last = 0
    try:
        for item in reader:
            if isinstance(item, BadRecord):
                last = item.offset
            elif item.offsets:
                last = item.offsets[-1]
            yield item
    except Exception as exc:  # a library error no reader anticipated must not escape either
        yield BadRecord(last, f"reading stopped: {type(exc).__name__}: {exc}")


def _sample(data: bytes | str) -> str:
    """At most 200 characters of a record, undecodable bytes and control characters escaped."""
    if isinstance(data, str):
        data = data[: _SAMPLE * 2].encode("utf-8", "surrogateescape")
    text = data[: _SAMPLE * 4].decode("utf-8", "backslashreplace")
    return text.translate(_CONTROL)[:_SAMPLE]


def _open(source: Source) -> IO[bytes] | BadRecord:
    try:
        return source.open()
    except Exception as exc:
        return BadRecord(0, f"cannot open the source: {exc}")


def _open_text(source: Source) -> tuple[IO[bytes], int] | BadRecord:
    """The source as UTF-8 bytes without BOM, and the byte offset where that text starts.

    The stream may return short reads.
    """
    raw = _open(source)
    if isinstance(raw, BadRecord):
        return raw
    try:
        first = _read_up_to(raw, 4)
    except OSError as exc:
        raw.close()
        return BadRecord(0, f"cannot read the source: {exc}")
    for bom, encoding in (
        (codecs.BOM_UTF32_LE, "utf-32-le"),
        (codecs.BOM_UTF32_BE, "utf-32-be"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if first.startswith(bom):
            return cast(IO[bytes], _Transcoded(first[len(bom) :], raw, encoding)), 0
    if first.startswith(codecs.BOM_UTF8):
        return cast(IO[bytes], _Prefixed(first[3:], raw)), 3
    return cast(IO[bytes], _Prefixed(first, raw)), 0


def _peek(stream: IO[bytes], _base: int = 0) -> tuple[bytes, IO[bytes]]:
    """The first 1 MiB of ``stream``, and a stream that reads everything again from the start."""
    try:
        head = _read_up_to(stream, _READ_SIZE)
    except OSError:
        stream.close()
        raise
    return head, cast(IO[bytes], _Prefixed(head, stream))


def _line_blocks(stream: IO[bytes], base: int) -> Iterator[tuple[int, bytes] | BadRecord]:
    """Blocks of whole lines (``b"\\n"``-joined, without the final newline) with their offset.

    Split a block with ``block.split(b"\\n")``. The last line of the source need not end with a
    newline. A line over 64 MiB, or a read error, is a BadRecord (reading stops at a read error).
    """
    pos = base
    parts: list[bytes] = []
    pending = 0
    skipping = False
    while True:
        try:
            block = stream.read(_READ_SIZE)
        except OSError as exc:
            yield BadRecord(pos, f"cannot read past byte {pos}: {exc}", _sample(b"".join(parts)))
            return
        if not block:
            if parts and not skipping:
                yield pos, b"".join(parts)
            return
        if skipping:
            j = block.find(b"\n")
            if j < 0:
                pos += len(block)
                continue
            pos += j + 1
            block = block[j + 1 :]
            skipping = False
        cut = block.rfind(b"\n")
        if cut < 0:
            parts.append(block)
            pending += len(block)
            if pending > _MAX_RECORD:
                yield BadRecord(pos, f"line longer than {_MAX_RECORD >> 20} MiB: skipped", _sample(parts[0]))
                pos += pending
                parts, pending, skipping = [], 0, True
            continue
        if parts:
            parts.append(block[:cut])
            data = b"".join(parts)
        else:
            data = block[:cut]
        yield pos, data
        pos += len(data) + 1
        rest = block[cut + 1 :]
        parts, pending = ([rest], len(rest)) if rest else ([], 0)


def _read_json(source: Source, batch_size: int) -> Iterator[Batch | BadRecord]:
    opened = _open_text(source)
    if isinstance(opened, BadRecord):
        yield opened
        return
    try:
        head, stream = _peek(*opened)
    except OSError as exc:
        yield BadRecord(0, f"cannot read the source: {exc}")
        return
    base = opened[1]
    with stream:
        complete = len(head) < _READ_SIZE
        mode = _json_mode(head.decode("utf-8", "replace"), complete)
        if mode == "lines":
            yield from _json_lines(stream, base, batch_size)
        else:
            yield from _json_stream(stream, base, batch_size)


def _json_lines(stream: IO[bytes], base: int, batch_size: int) -> Iterator[Batch | BadRecord]:
    """JSON lines: the line text is the record (validated with ``json``, passed through)."""
    scan = _DECODER.scan_once  # type: ignore[attr-defined]  # C scanner: no wrapper overhead
    raw: list[str] = []
    offsets: list[int] = []
    for item in _line_blocks(stream, base):
        if isinstance(item, BadRecord):
            yield item
            continue
        pos, block = item
        # Decode a block at once; when it is not valid UTF-8, go line by line (bad bytes -> BadRecord).
        split = block.split(b"\n")
        lines: list[Any]
        if block.isascii():
            lines = block.decode("ascii").split("\n")
        else:
            try:
                lines = block.decode("utf-8").split("\n")
            except UnicodeDecodeError:
                lines = split
        line: Any
        result: Any
        for line, size in zip(lines, map(len, split), strict=True):
            if size:
                value: Any = None
                if type(line) is str:
                    try:
                        value, end = scan(line, 0)
                        if end != len(line) or type(value) is not dict or "\\ud" in line or "\\uD" in line:
                            value = None  # blanks, extra data, not an object, surrogates: the careful path
                    except (StopIteration, ValueError, RecursionError):  # the careful path says why
                        value = None
                result = line if value is not None else _json_line(line)
                if type(result) is str:
                    raw.append(result)
                    offsets.append(pos)
                    if len(raw) >= batch_size:
                        yield Batch(offsets=offsets, raw=raw)
                        raw, offsets = [], []
                elif result is not None:
                    yield BadRecord(pos, result[0], _sample(line))
            pos += size + 1
    if raw:
        yield Batch(offsets=offsets, raw=raw)


def _json_line(line: str | bytes) -> str | tuple[str] | None:
    """The careful path for one line: its JSON object text, ``(reason,)`` when bad, None when blank."""
    if isinstance(line, bytes):
        try:
            text = line.decode()
        except UnicodeDecodeError as exc:
            return (f"invalid UTF-8 at byte {exc.start} of the record",)
    else:
        text = line
    try:
        value = _DECODER.decode(text)
    except ValueError as exc:
        return (_json_reason(exc),) if text.strip() else None
    except RecursionError:
        return ("JSON nested too deeply",)
    if type(value) is not dict:
        return (_not_object(value),)
    return _storable(text if text[0] == "{" and text[-1] == "}" else text.strip(), value)


def _storable(text: str, value: dict[str, Any]) -> str | tuple[str]:
    """``text`` as stored, or ``(reason,)``: lone UTF-16 surrogate escapes (valid JSON, but DuckDB
    rejects them) are rewritten as the literal text ``\\uXXXX``; nothing else changes."""
    if "\\ud" not in text and "\\uD" not in text:
        return text
    try:
        compact = _ENCODER.encode(value)
    except (ValueError, RecursionError):  # 1e999 (no float for it), deep nesting
        if _SURROGATE.search(json.dumps(value, ensure_ascii=False)):
            return ("JSON has a lone UTF-16 surrogate and a number out of float range",)
        return text
    return _SURROGATE.sub(_escape_surrogate, compact) if _SURROGATE.search(compact) else text


def _escape_surrogate(match: re.Match[str]) -> str:
    """A lone UTF-16 surrogate as the literal text ``\\uXXXX`` (a JSON-escaped backslash)."""
    return f"\\\\u{ord(match.group()):04x}"


def _json_reason(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON: {exc.msg} at character {exc.pos}"
    return f"invalid JSON: {exc}"


def _not_object(value: Any) -> str:
    kinds = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    kind = kinds.get(type(value), "a number")
    return f"JSON value is {kind}, not an object"


class _TextBuffer:
    """Decoded text of a byte stream with byte offsets of character positions (for raw_decode)."""

    def __init__(self, stream: IO[bytes], base: int) -> None:
        self.stream = stream
        self.decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self.text = ""
        self.eof = False
        self.error: OSError | None = None
        self._start = base  # byte offset of text[0]
        self._mark = 0  # a character position ...
        self._mark_byte = base  # ... and its byte offset
        self.ascii = True

    def byte_offset(self, i: int) -> int:
        if self.ascii:
            return self._start + i
        if i < self._mark:
            self._mark, self._mark_byte = 0, self._start
        self._mark_byte += len(self.text[self._mark : i].encode("utf-8", "surrogateescape"))
        self._mark = i
        return self._mark_byte

    def fill(self, keep_from: int) -> int:
        """Drop text before ``keep_from``, append the next block; return the new index of ``keep_from``."""
        start = self.byte_offset(keep_from)
        try:  # read at least as much as is kept, so a long record costs O(n log n), not O(n²)
            block = self.stream.read(max(_READ_SIZE, len(self.text) - keep_from))
        except OSError as exc:
            self.error = exc
            block = b""
        self.eof = not block
        more = self.decoder.decode(block, final=self.eof)
        self.text = self.text[keep_from:] + more
        self._start = self._mark_byte = start
        self._mark = 0
        self.ascii = self.text.isascii()
        return 0


def _json_stream(stream: IO[bytes], base: int, batch_size: int) -> Iterator[Batch | BadRecord]:
    """Arrays of objects, pretty-printed and concatenated objects, parsed incrementally."""
    buf = _TextBuffer(stream, base)
    raw_decode = _DECODER.raw_decode
    raw: list[str] = []
    offsets: list[int] = []
    i = buf.fill(0)
    in_array = expect_comma = False
    while True:
        text = buf.text
        i = _WS.match(text, i).end()  # type: ignore[union-attr]
        if i >= len(text):
            if buf.eof:
                break
            i = buf.fill(i)
            continue
        ch = text[i]
        if in_array and (expect_comma or ch == "]"):
            if ch in ",]":
                in_array = ch == ","
                expect_comma = False
                i += 1
                continue
        elif not in_array and ch in "[,":  # an array opens; commas between top-level objects are tolerated
            in_array, i = ch == "[", i + 1
            continue
        if expect_comma:
            problem: str | None = "expected ',' or ']' after an array element"
        else:
            try:
                value, end = raw_decode(text, i)
                problem = None
            except ValueError as exc:
                problem = _json_reason(exc)
            except RecursionError:
                problem = "JSON nested too deeply"
        if problem is None and end >= len(text) and not buf.eof and not isinstance(value, dict | list | str):
            i = buf.fill(i)  # a number may go on in the next block
            continue
        if problem is not None:
            resync = _resync(text, i)
            if resync is None and not buf.eof and len(text) - i <= _MAX_RECORD:
                i = buf.fill(i)  # maybe only incomplete
                continue
            stop = resync if resync is not None else len(text)
            yield BadRecord(buf.byte_offset(i), problem, _sample(text[i:stop]))
            i, expect_comma = stop, False
            continue
        record = text[i:end]
        escaped = None if buf.ascii else _ESCAPED_BYTE.search(record)
        if escaped is not None:
            at = len(record[: escaped.start()].encode("utf-8", "surrogateescape"))
            yield BadRecord(buf.byte_offset(i), f"invalid UTF-8 at byte {at} of the record", _sample(record))
        elif type(value) is dict:
            stored: str | tuple[str]
            try:
                stored = _ENCODER.encode(value)
                if not stored.isascii() and _SURROGATE.search(stored):  # DuckDB rejects lone surrogates
                    stored = _SURROGATE.sub(_escape_surrogate, stored)
            except (ValueError, RecursionError):  # 1e999 (no float for it), deep nesting: keep the text
                stored = _storable(record, value)
            if isinstance(stored, tuple):
                yield BadRecord(buf.byte_offset(i), stored[0], _sample(record))
            else:
                raw.append(stored)
                offsets.append(buf.byte_offset(i))
                if len(raw) >= batch_size:
                    yield Batch(offsets=offsets, raw=raw)
                    raw, offsets = [], []
        else:
            yield BadRecord(buf.byte_offset(i), _not_object(value), _sample(record))
        i = end
        expect_comma = in_array
    if raw:
        yield Batch(offsets=offsets, raw=raw)
    if buf.error is not None:
        yield BadRecord(buf.byte_offset(len(buf.text)), f"cannot read the rest of the source: {buf.error}")


def _resync(text: str, i: int) -> int | None:
    """Where the next record starts after a bad one at ``i``: the next line opening an object at
    the same indentation (or any next line opening an object when ``i`` is mid-line)."""
    line_start = text.rfind("\n", 0, i) + 1
    indent = text[line_start:i]
    if not indent.strip(" \t\r"):
        j = text.find("\n" + indent + "{", i + 1)
        return None if j < 0 else j + 1 + len(indent)
    m = _NEXT_LINE_OBJECT.search(text, i + 1)
    return None if m is None else m.end() - 1


# --------------------------------------------------------------------------- EVTX
def _local_copy(source: Source, stack: contextlib.ExitStack) -> tuple[str | IO[bytes], int, BadRecord | None]:
    """A path (plain file) or a seekable temporary copy of the content, its size, and a read error.

    When reading fails part way, the copy holds what could be read (and the error is returned).
    """
    if isinstance(source.open, _FileOpener):
        return source.open.path, os.path.getsize(source.open.path), None
    opened = source.open()
    if isinstance(opened, io.BytesIO):  # already in memory: seekable as it is
        stack.callback(opened.close)
        return opened, len(opened.getbuffer()), None
    spool = stack.enter_context(tempfile.TemporaryFile())  # noqa: SIM115 - closed by the stack
    error = None
    try:
        with opened:
            while block := opened.read(_READ_SIZE):
                spool.write(block)
    except OSError as exc:
        error = BadRecord(spool.tell(), f"cannot read the source past byte {spool.tell()}: {exc}")
    size = spool.tell()
    spool.seek(0)
    return spool, size, error


def _read_evtx(source: Source, batch_size: int) -> Iterator[Batch | BadRecord]:
    import evtx

    with contextlib.ExitStack() as stack:
        target: Any
        try:
            target, size, error = _local_copy(source, stack)
        except Exception as exc:
            yield BadRecord(0, f"cannot open the source: {exc}")
            return
        if error is not None:
            error.offset = 0  # EVTX offsets are record positions: the byte position goes in the reason
            yield error
        truncated = None
        cut = (size - _EVTX_HEADER) % _EVTX_CHUNK
        if size > _EVTX_HEADER and cut:
            # A partial last chunk: keep its complete records, zeros after them (the parser stops there).
            truncated = f"EVTX file is truncated: its last chunk has {cut} of {_EVTX_CHUNK} bytes"
            handle = stack.enter_context(open(target, "rb")) if isinstance(target, str) else target
            start = size - cut
            handle.seek(start)
            keep = _evtx_complete_records(handle.read(cut))
            target = _ZeroPadded(handle, start + keep, _EVTX_CHUNK - keep if keep else 0)
        yield from _evtx_records(evtx, target, size, batch_size, truncated)


def _evtx_complete_records(chunk: bytes) -> int:
    """Length of the start of a cut chunk that holds whole records (0 without a whole chunk header).

    Only the framing is read (record magic ``**\\0\\0`` and size); the parser does the rest.
    """
    if len(chunk) < 512 or not chunk.startswith(b"ElfChnk\x00"):
        return 0
    pos = 512
    while pos + 24 <= len(chunk) and chunk[pos : pos + 4] == b"\x2a\x2a\x00\x00":
        size = int.from_bytes(chunk[pos + 4 : pos + 8], "little")
        if size < 24 or pos + size > len(chunk):
            break
        pos += size
    return pos


def _evtx_records(
    evtx: Any, target: Any, size: int, batch_size: int, truncated: str | None
) -> Iterator[Batch | BadRecord]:
    try:
        records = evtx.PyEvtxParser(target, number_of_threads=1).records_json()
    except Exception as exc:
        yield BadRecord(0, f"not a readable EVTX file: {exc}")
        return
    raw: list[str] = []
    offsets: list[int] = []
    position = 0
    errors = 0
    max_errors = size // 24 + 64  # more errors than records could exist: the parser is looping
    while True:
        try:
            record = next(records)
        except StopIteration:
            break
        except Exception as exc:
            yield BadRecord(position, f"EVTX parser: {exc}")
            position += 1
            errors += 1
            if errors > max_errors:
                yield BadRecord(position, "EVTX parser: too many errors, rest of the file skipped")
                break
            continue
        data = record.get("data") if isinstance(record, dict) else None
        if isinstance(data, str) and data.startswith("{"):
            raw.append(data)
            offsets.append(position)
            if len(raw) >= batch_size:
                yield Batch(offsets=offsets, raw=raw)
                raw, offsets = [], []
        else:
            yield BadRecord(position, "EVTX parser returned a record without JSON data", _sample(str(record)))
        position += 1
    if raw:
        yield Batch(offsets=offsets, raw=raw)
    if truncated:
        yield BadRecord(position, truncated + "; records after the cut are lost")


# --------------------------------------------------------------------------- Parquet
def _read_parquet(source: Source, batch_size: int) -> Iterator[Batch | BadRecord]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with contextlib.ExitStack() as stack:
        try:
            target, _, error = _local_copy(source, stack)
        except Exception as exc:
            yield BadRecord(0, f"cannot open the source: {exc}")
            return
        try:
            pf = pq.ParquetFile(target)
            groups = [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)]
        except Exception as exc:
            yield BadRecord(
                0, f"not a readable Parquet file: {exc}" + (f" ({error.reason})" if error else "")
            )
            return
        row = 0
        for group, rows in enumerate(groups):
            done = 0
            try:
                for rb in pf.iter_batches(batch_size=batch_size, row_groups=[group]):
                    yield Batch(offsets=list(range(row + done, row + done + rb.num_rows)), rows=pa.table(rb))
                    done += rb.num_rows
            except Exception as exc:
                yield BadRecord(row + done, f"Parquet row group {group} unreadable: {exc}")
            row += rows


# --------------------------------------------------------------------------- CSV / TSV
def _read_csv(source: Source, fmt: str, batch_size: int) -> Iterator[Batch | BadRecord]:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    delimiter = "\t" if fmt == "tsv" else ","
    opened = _open_text(source)
    if isinstance(opened, BadRecord):
        yield opened
        return
    try:
        head, stream = _peek(*opened)
    except OSError as exc:
        yield BadRecord(0, f"cannot read the source: {exc}")
        return
    with stream:
        names = _csv_header(head, delimiter)
        if isinstance(names, BadRecord):
            yield names
            return
        invalid: list[tuple[int | None, str, int, int]] = []

        def on_invalid(row: Any) -> str:
            invalid.append((row.number, row.text, row.expected_columns, row.actual_columns))
            return "skip"

        try:
            reader = pacsv.open_csv(
                stream,
                read_options=pacsv.ReadOptions(use_threads=False, block_size=_CSV_BLOCK),
                parse_options=pacsv.ParseOptions(
                    delimiter=delimiter, newlines_in_values=True, invalid_row_handler=on_invalid
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types=dict.fromkeys(names, pa.string()),
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                    check_utf8=False,
                ),
            )
        except (pa.ArrowException, OSError) as exc:
            yield BadRecord(0, f"not a readable {fmt.upper().replace('LA_', '')} file: {exc}")
            return
        pos = 0  # data-row number of the next good row
        skip: list[int] = []  # data-row numbers of bad rows not yet passed
        while True:
            try:
                rb = reader.read_next_batch()
            except StopIteration:
                rb = None
            except (pa.ArrowException, OSError) as exc:
                yield from _drain_invalid(invalid, skip, pos)
                yield BadRecord(pos, f"CSV parse error, rest of the source not read: {exc}")
                return
            yield from _drain_invalid(invalid, skip, pos)
            if rb is None:
                break
            table = pa.table(rb)
            offsets, pos = _row_offsets(pos, table.num_rows, skip)
            bad_rows = _invalid_utf8_rows(table)
            if bad_rows:
                for index, reason in sorted(bad_rows.items()):
                    row = table.slice(index, 1)
                    values = [col.cast(pa.binary())[0].as_py() or b"" for col in row.columns]
                    yield BadRecord(offsets[index], reason, _sample(delimiter.encode().join(values)))
                keep = [i for i in range(table.num_rows) if i not in bad_rows]
                table = table.take(pa.array(keep, pa.int64()))
                offsets = [offsets[i] for i in keep]
            for start in range(0, table.num_rows, batch_size):
                yield Batch(offsets=offsets[start : start + batch_size], rows=table.slice(start, batch_size))


def _csv_header(head: bytes, delimiter: str) -> list[str] | BadRecord:
    """Column names from the head of a CSV stream, parsed the way pyarrow parses them."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if not head.strip():
        return BadRecord(0, "empty file: no CSV header")
    end = -1
    while True:  # the header ends at the first newline outside quotes
        end = head.find(b"\n", end + 1)
        if end < 0 or head[:end].count(b'"') % 2 == 0:
            break
    header = head if end < 0 else head[: end + 1]
    try:
        table = pacsv.read_csv(
            io.BytesIO(header),
            read_options=pacsv.ReadOptions(use_threads=False),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
        )
    except (pa.ArrowException, OSError) as exc:
        return BadRecord(0, f"cannot read the CSV header: {exc}", _sample(header))
    return list(table.column_names)


def _drain_invalid(
    invalid: list[tuple[int | None, str, int, int]], skip: list[int], pos: int
) -> Iterator[BadRecord]:
    """BadRecords for rows pyarrow rejected; their row numbers are kept in ``skip``."""
    for number, text, expected, actual in invalid:
        index = number - 2 if number is not None else pos  # row 1 is the header
        if number is not None and index >= pos:
            skip.append(index)
        yield BadRecord(index, f"row has {actual} fields, expected {expected}", _sample(text))
    invalid.clear()
    skip.sort()


def _row_offsets(pos: int, count: int, skip: list[int]) -> tuple[list[int], int]:
    """Row numbers of ``count`` good rows from ``pos`` on, passing over bad rows in ``skip``."""
    offsets: list[int] = []
    while count:
        while skip and skip[0] < pos:
            skip.pop(0)
        nxt = skip[0] if skip else None
        if nxt is None or nxt >= pos + count:
            offsets.extend(range(pos, pos + count))
            pos += count
            break
        offsets.extend(range(pos, nxt))
        count -= nxt - pos
        pos = nxt + 1
        skip.pop(0)
    return offsets, pos


def _invalid_utf8_rows(table: Any) -> dict[int, str]:
    """Rows with invalid UTF-8 in a string column: row index -> reason."""
    import pyarrow as pa

    bad: dict[int, str] = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        if not pa.types.is_string(column.type):
            continue
        try:
            column.validate(full=True)
            continue
        except pa.ArrowInvalid:
            pass
        for index, value in enumerate(column.cast(pa.binary()).to_pylist()):
            if value is None or index in bad:
                continue
            try:
                value.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad[index] = f"invalid UTF-8 in column {name!r} at byte {exc.start} of the value"
    return bad


# --------------------------------------------------------------------------- Zeek TSV
@dataclass
class _ZeekHeader:
    separator: bytes = b"\t"
    set_separator: str = ","
    empty: str = "(empty)"
    unset: str = "-"
    fields: list[str] | None = None
    types: list[str] | None = None


_ZEEK_ESCAPE = re.compile(rb"\\(\\|x[0-9a-fA-F]{2})")


def _zeek_unescape(value: bytes) -> bytes:
    """Undo Zeek's ASCII-log escapes: ``\\\\`` is a backslash, ``\\xNN`` a byte."""
    return _ZEEK_ESCAPE.sub(
        lambda m: b"\\" if m.group(1) == b"\\" else bytes([int(m.group(1)[1:], 16)]), value
    )


def _zeek_unescape_strings(array: Any) -> Any:
    """A string array with Zeek escapes undone (bytes that are not UTF-8 become ``\\xNN`` text)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pc.any(pc.match_substring(array, "\\")).as_py():
        return array
    values = [
        v if v is None or "\\" not in v else _zeek_unescape(v.encode()).decode("utf-8", "backslashreplace")
        for v in array.to_pylist()
    ]
    return pa.array(values, pa.string())


def _read_zeek_tsv(source: Source, batch_size: int) -> Iterator[Batch | BadRecord]:
    opened = _open_text(source)
    if isinstance(opened, BadRecord):
        yield opened
        return
    stream, base = opened
    header = _ZeekHeader()
    lines: list[bytes] = []
    offsets: list[int] = []
    with stream:
        for item in _line_blocks(stream, base):
            if isinstance(item, BadRecord):
                yield item
                continue
            pos, block = item
            for line in block.split(b"\n"):
                size = len(line)
                if line[:1] == b"#":
                    if line.startswith((b"#fields", b"#types", b"#separator")) and lines:
                        yield from _zeek_batch(lines, offsets, header)
                        lines, offsets = [], []
                    _zeek_directive(line, header)
                elif size and line != b"\r":
                    fields = header.fields
                    count = line.count(header.separator) + 1
                    if fields is None:
                        yield BadRecord(pos, "data line before the #fields header", _sample(line))
                    elif count != len(fields):
                        yield BadRecord(
                            pos, f"line has {count} fields, expected {len(fields)}", _sample(line)
                        )
                    else:
                        lines.append(line)
                        offsets.append(pos)
                        if len(lines) >= batch_size:
                            yield from _zeek_batch(lines, offsets, header)
                            lines, offsets = [], []
                pos += size + 1
    if lines:
        yield from _zeek_batch(lines, offsets, header)


def _zeek_directive(line: bytes, header: _ZeekHeader) -> None:
    if line.startswith(b"#separator"):
        value = line[len(b"#separator") :].strip(b" ")
        header.separator = _zeek_unescape(value) or b"\t"
        return
    key, _, value = line.partition(header.separator)
    text = value.decode("utf-8", "replace")
    if key == b"#set_separator":
        header.set_separator = text
    elif key == b"#empty_field":
        header.empty = text
    elif key == b"#unset_field":
        header.unset = text
    elif key == b"#fields":
        header.fields = text.split(header.separator.decode("utf-8", "replace"))
        header.types = None
    elif key == b"#types":
        header.types = text.split(header.separator.decode("utf-8", "replace"))


def _zeek_batch(lines: list[bytes], offsets: list[int], header: _ZeekHeader) -> Iterator[Batch | BadRecord]:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    fields = header.fields or []
    try:
        b"\n".join(lines).decode("utf-8")
    except UnicodeDecodeError:
        good_lines, good_offsets = [], []
        for line, offset in zip(lines, offsets, strict=True):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield BadRecord(offset, f"invalid UTF-8 at byte {exc.start} of the record", _sample(line))
            else:
                good_lines.append(line)
                good_offsets.append(offset)
        lines, offsets = good_lines, good_offsets
    if not lines:
        return
    names = [f"c{i}" for i in range(len(fields))]
    if len(header.separator) == 1 and len(fields) > 1:
        table = pacsv.read_csv(
            io.BytesIO(b"\n".join(lines)),
            read_options=pacsv.ReadOptions(column_names=names, use_threads=False, block_size=_CSV_BLOCK),
            parse_options=pacsv.ParseOptions(
                delimiter=header.separator.decode("latin-1"),
                quote_char=False,
                double_quote=False,
                escape_char=False,
                ignore_empty_lines=False,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=False, check_utf8=False
            ),
        )
        columns = list(table.columns)
    else:
        split = [line.decode("utf-8").split(header.separator.decode("utf-8")) for line in lines]
        columns = [pa.chunked_array([pa.array(list(col), pa.string())]) for col in zip(*split, strict=True)]
    types = header.types if header.types and len(header.types) == len(fields) else ["string"] * len(fields)
    arrays = [_zeek_column(col, ztype, header) for col, ztype in zip(columns, types, strict=True)]
    yield Batch(offsets=offsets, rows=pa.Table.from_arrays(arrays, names=fields))


def _zeek_column(column: Any, ztype: str, header: _ZeekHeader) -> Any:
    """One Zeek TSV column (strings) converted to its ``#types`` type."""
    import pyarrow as pa
    import pyarrow.compute as pc

    unset = pc.equal(column, header.unset)
    empty = pc.equal(column, header.empty)
    container = re.fullmatch(r"(set|vector|table)\[(.*)\]", ztype)
    if container:
        inner = container.group(2)
        lists = pc.split_pattern(column, header.set_separator) if header.set_separator else column
        lists = pc.if_else(empty, pa.scalar([], pa.list_(pa.string())), lists)
        lists = pc.if_else(unset, pa.scalar(None, pa.list_(pa.string())), lists).combine_chunks()
        if not isinstance(lists, pa.ListArray):
            return lists
        elements = _zeek_unescape_strings(lists.values)
        lists = pa.ListArray.from_arrays(lists.offsets, elements, mask=lists.is_null())
        target = _zeek_arrow_type(inner)
        if target is not None and target != pa.bool_():
            try:
                return pc.cast(lists, pa.list_(target))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                return lists
        return lists
    values = pc.if_else(unset, pa.scalar(None, pa.string()), column)
    if ztype == "bool":
        if pc.all(pc.is_in(pc.drop_null(values), pa.array(["T", "F"]))).as_py() is not False:
            return pc.equal(values, "T")
        return values
    target = _zeek_arrow_type(ztype)
    if target is None:
        return _zeek_unescape_strings(pc.if_else(empty, "", values).combine_chunks())
    try:
        return pc.cast(values, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        if target == pa.int64():
            try:
                return pc.cast(values, pa.uint64())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
        return values


def _zeek_arrow_type(ztype: str) -> Any:
    import pyarrow as pa

    if ztype in ("time", "interval", "double"):
        return pa.float64()
    if ztype in ("count", "int", "port"):
        return pa.int64()
    if ztype == "bool":
        return pa.bool_()
    return None
