"""Decode what attackers hide in command lines and scripts, layer by layer.

:func:`unpack` finds encoded items in each value and peels them one layer at a time, recording the
chain: base64 (UTF-8 or UTF-16LE text, standard or URL-safe alphabet, padded or not, also wrapped
over several lines), hex, URL escapes (``%xx``), char-code arrays (``[char]72+[char]105``,
``String.fromCharCode(72,105)``, ``72,105 ... -join``), gzip, zlib, raw deflate (PowerShell's
``DeflateStream`` loaders), bzip2, xz, and zip / tar members. The argument of PowerShell's
``-EncodedCommand`` (and every abbreviation: ``-e``, ``-ec``, ``-enc``, ``/enc`` ...) is read as
PowerShell reads it: strict base64 of UTF-16LE text.

Nothing is reported as decoded unless the output passes a plausibility test: text must be valid UTF-8
or UTF-16LE with the shape of real text (no control characters; for UTF-16LE, few distinct high
bytes), and binary output counts only when it is a known format (an archive, a compressed stream,
a PE/ELF file ...). So hashes, GUIDs, hex paths and ``AAAA...==`` runs decode to nothing.

Hard bounds keep hostile input cheap: ``max_depth`` layers, ``max_output`` decoded bytes per value,
``max_ratio`` expansion per decompression, ``max_members`` archive members; decompression is
streamed with a cap, so a gzip or zip bomb yields a bounded layer with ``status="size_limit"`` or
``"ratio_limit"`` instead of exhausting memory.
"""

from __future__ import annotations

import binascii
import bz2
import io
import lzma
import math
import re
import tarfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from huntbook.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["COLUMNS", "STATUSES", "add_decoded", "decoded_text", "unpack"]

COLUMNS = ["row", "layer", "item", "parent", "encoding", "chain", "content", "text", "size", "status"]
STATUSES = {
    "ok": "decoded completely",
    "depth_limit": "decoded, but it holds further encoded items beyond max_depth",
    "size_limit": "output cut at max_output decoded bytes for the value",
    "ratio_limit": "output cut at max_ratio times the compressed size",
    "member_limit": "archive has more than max_members members; the rest were skipped",
    "layer_limit": "the value produced 10,000 layers; the rest were skipped",
    "truncated": "the encoded data or compressed stream ends early",
    "corrupt": "a compressed stream or archive is damaged; output so far is kept",
    "encrypted": "an encrypted archive member",
    "unsupported": "an archive member compressed with an unsupported method",
}

# ---------------------------------------------------------------------------------------------
# patterns
# ---------------------------------------------------------------------------------------------
_B64_CHARS = "A-Za-z0-9+/_-"
_DASHES = "\u2013\u2014\u2015"  # en dash, em dash, horizontal bar: PowerShell takes them for '-'
# a run of base64/base64url characters (leftmost matching starts it at the run's first character)
_TOKEN = re.compile(rf"[{_B64_CHARS}]{{14,}}(?:={{1,2}})?")  # _MIN_TOKEN with padding
_WRAPPED = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{8,}+(?:\r?\n[A-Za-z0-9+/]{8,}+={0,2})+")
_B64_40 = re.compile(r"[A-Za-z0-9+/]{40}")
_HEX = re.compile(r"(?:0x)?((?:[0-9a-fA-F]{2})+)")
# an -EncodedCommand flag (any abbreviation, also -ec; '-', '/' or a dash) and its argument
_ENC_FLAG = re.compile(
    rf"[-/{_DASHES}](?:ec|e(?:n(?:c(?:o(?:d(?:e(?:d(?:c(?:o(?:m(?:m(?:a(?:n(?:d)?)?)?)?)?)?)?)?)?)?)?)?)?)(?:\s+|:)[\"']?",
    re.IGNORECASE,
)
_ENC_ARG = re.compile(r"[A-Za-z0-9+/]{4,}={0,2}(?![\w+/=-])")
_FLAG_STARTS = ("-e", "/e", "\u2013e", "\u2014e", "\u2015e")
_BEFORE_FLAG = frozenset(" \t\r\n\"'(")
_PLAIN_B64 = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")
_URL_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_URL_STOP = ' \t\r\n"<>`'
_NUM = r"(?:0x[0-9a-f]{1,6}|\d{1,7})"
_CHAR_CAST = re.compile(
    rf"(?:(?:\[char\]\s*\(?\s*{_NUM}\s*\)?|chrw?\s*\(\s*{_NUM}\s*\))\s*[+,&]?\s*){{3,}}", re.IGNORECASE
)
_FROM_CHAR_CODE = re.compile(
    rf"(?:string\s*\.\s*)?fromcharcode\s*\(\s*({_NUM}(?:\s*,\s*{_NUM}){{2,}})\s*\)", re.IGNORECASE
)
_BARE_CODES = re.compile(rf"(?<![\w.]){_NUM}(?:\s*,\s*{_NUM}){{3,}}(?![\w.])", re.IGNORECASE)
_CODE_CONTEXT = ("[char", "-join", "fromcharcode", "chr(", "chrw(", "[string]")
_NUMBER = re.compile(_NUM, re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")
_ALNUM = re.compile(r"[A-Za-z0-9]")
# rows worth a closer look; everything else is skipped without Python work per row
_PREFILTER = (
    rf"[={_B64_CHARS}]{{16,}}|%[0-9A-Fa-f]{{2}}|[-/{_DASHES}][Ee][CcNn:\s]|\[[Cc][Hh][Aa][Rr]"
    r"|[Cc][Hh][Aa][Rr][Cc][Oo][Dd][Ee]|-[Jj][Oo][Ii][Nn]|[Cc][Hh][Rr][Ww]?\("
)

# binary formats recognised in decoded bytes: (magic, offset, content name)
_ARCHIVES = (
    (b"\x1f\x8b\x08", 0, "gzip"),
    (b"PK\x03\x04", 0, "zip"),
    (b"PK\x05\x06", 0, "zip"),
    (b"ustar", 257, "tar"),
    (b"BZh", 0, "bzip2"),
    (b"\xfd7zXZ\x00", 0, "xz"),
)
_BINARIES = (
    (b"\x7fELF", "elf"),
    (b"%PDF-", "pdf"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "ole"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF8", "gif"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"Rar!\x1a\x07", "rar"),
    (b"\xca\xfe\xba\xbe", "java-class"),
    (b"\xcf\xfa\xed\xfe", "macho"),
    (b"\xce\xfa\xed\xfe", "macho"),
    (b"dex\n", "dex"),
    (b"\x00asm", "wasm"),
)
_MAGIC_FIRST = frozenset(m[0] for m, *_ in (*_ARCHIVES, *_BINARIES)) | {ord("M")}
_CHUNK = 1 << 16
_CACHE_SIZE = 200_000  # tokens remembered per call as decoding to nothing (repeated words, hashes ...)
_MAX_LAYERS = 10_000  # layers per value (a nest of tiny archives could otherwise make millions)
_MIN_TOKEN = 16  # shortest free-standing base64/hex run tried (an -enc argument may be shorter)


@dataclass(frozen=True)
class _Limits:
    max_depth: int
    max_output: int
    max_ratio: float
    max_members: int
    min_length: int


@dataclass(slots=True)
class _Layer:
    """One decoded layer; ``start``/``end`` locate its encoded form in the parent's text."""

    item: int
    parent: int | None
    layer: int
    encoding: str
    chain: str
    content: str
    text: str | None
    size: int
    status: str = "ok"
    start: int | None = None
    end: int | None = None
    children: list[_Layer] = field(default_factory=list)


@dataclass(slots=True)
class _Candidate:
    """Something in a text that may decode: where it is, and its decoded bytes or text."""

    start: int
    end: int
    encoding: str
    data: bytes | None = None
    text: str | None = None
    status: str = "ok"
    prefer_utf16: bool = False
    key: str | None = None  # the token it came from, for the cache of tokens that decode to nothing


# ---------------------------------------------------------------------------------------------
# plausibility: is this text, or a binary format we know?
# ---------------------------------------------------------------------------------------------
def _plausible_text(text: str) -> bool:
    """Real text: no (or almost no) control characters, some letters or digits, printable."""
    text = text.rstrip("\x00")
    n = len(text)
    if n == 0:
        return False
    sample = text if n <= 65536 else text[:65536]
    m = len(sample)
    if m >= 16 and len(set(sample[:16])) < 4 and len(set(sample[:4096])) < 4:  # 'AAAA...' is not text
        return False
    if _CONTROL.search(sample) is not None and len(_CONTROL.findall(sample)) > m // 50:
        return False
    if sample.isascii():
        return _ALNUM.search(sample) is not None
    odd = sum(1 for c in sample[:4096] if not c.isprintable() and c not in "\t\n\r\x0b\x0c\x1b")
    if odd > min(m, 4096) // 50:
        return False
    # valid UTF-8 from random bytes is rare, but mostly-non-ASCII short output is still suspect
    return n >= 8 or sum(c.isascii() for c in sample) * 2 >= m


def _utf16_shape(data: bytes) -> int:
    """UTF-16LE text shape: 2 = high bytes mostly zero (Latin), 1 = few distinct high bytes (one script)."""
    if len(data) < 2 or len(data) % 2:
        return 0
    high = data[1:8192:2]
    if high.count(0) * 2 >= len(high):
        return 2
    return 1 if len(high) >= 8 and len(set(high)) <= 3 else 0


def _as_text(data: bytes, prefer_utf16: bool = False) -> tuple[str, str] | None:
    """Decode ``data`` as text if it is plausible text: (text, charset) or None.

    Latin UTF-16LE (or ``prefer_utf16``) is tried before UTF-8; other UTF-16LE shapes only after it,
    so digits-only UTF-8 text is not read as CJK.
    """
    if data[:2] == b"\xff\xfe" and len(data) % 2 == 0:
        prefer_utf16, data = True, data[2:]
    elif data[:3] == b"\xef\xbb\xbf":
        data = data[3:]
    shape = _utf16_shape(data)
    if not shape:
        tries: tuple[str, ...] = ("utf-8",)
    elif prefer_utf16 or shape == 2:
        tries = ("utf-16-le", "utf-8")
    else:
        tries = ("utf-8", "utf-16-le")
    for charset in tries:
        try:
            text = data.decode(charset)
        except UnicodeDecodeError:
            continue
        if _plausible_text(text):
            return text.rstrip("\x00"), charset
    return None


def _sniff(data: bytes) -> str | None:
    """The name of a strong-magic archive/compression format, or of a known binary file type."""
    if not data or (data[0] not in _MAGIC_FIRST and len(data) < 262):
        return None
    for magic, offset, name in _ARCHIVES:
        if data.startswith(magic, offset):
            if name == "bzip2" and not (len(data) > 3 and 0x31 <= data[3] <= 0x39):
                continue
            return name
    for magic, name in _BINARIES:
        if data.startswith(magic):
            return name
    if data[:2] == b"MZ" and len(data) >= 64:
        pe = int.from_bytes(data[60:64], "little")
        if pe + 4 <= len(data) and data[pe : pe + 4] == b"PE\x00\x00":
            return "pe"
        if len(data) < pe + 4 and data[2:4] == b"\x90\x00":  # a cut-off executable
            return "pe"
    return None


# ---------------------------------------------------------------------------------------------
# finding candidates in a text
# ---------------------------------------------------------------------------------------------
def _b64_decode(token: str) -> bytes | None:
    """Standard or URL-safe base64, padded or not; None if it is not base64."""
    core = token.rstrip("=")
    if len(core) % 4 == 1:
        return None
    has_std = "+" in core or "/" in core
    has_url = "-" in core or "_" in core
    if has_std and has_url:
        return None
    if has_url:
        core = core.translate(_URLSAFE)
    try:
        return binascii.a2b_base64(core + "=" * (-len(core) % 4), strict_mode=True)
    except (binascii.Error, ValueError):
        return None


_URLSAFE = str.maketrans("-_", "+/")


def _wrapped(block: str) -> str | None:
    """The base64 of a block wrapped over lines (all full lines of one width >= 40), else None."""
    lines = [line.rstrip("\r") for line in block.split("\n")]
    width = len(lines[0]) if len(lines) == 2 else len(lines[1])
    if width < 40 or any(len(x) != width for x in lines[1:-1]) or len(lines[0]) > width:
        return None
    if len(lines[-1].rstrip("=")) > width:
        return None
    return "".join(lines)


def _token_candidates(
    text: str, min_length: int, rejected: set[str], taken: list[tuple[int, int]]
) -> Iterator[_Candidate]:
    """Free-standing base64 / base64url / hex runs, and base64 wrapped over equal-length lines."""
    if "\n" in text and _may_be_wrapped(text):
        for m in _WRAPPED.finditer(text):
            joined = _wrapped(m.group())
            if joined is not None:
                yield from _decode_token(joined, m.start(), m.end())
    pattern = _TOKEN if min_length == _MIN_TOKEN else _token_pattern(min_length)
    for m in pattern.finditer(text):
        token = m.group()
        start, end = m.span()
        if len(token) < min_length or token in rejected:
            continue
        if not (taken and any(start < e and s < end for s, e in taken)):
            yield from _decode_token(token, start, end)


def _may_be_wrapped(text: str) -> bool:
    """Cheap test before the wrapped-base64 regex: a newline next to 40 base64 characters."""
    pos = text.find("\n")
    while pos != -1:
        if _B64_40.match(text, pos + 1) or (
            pos >= 40 and _B64_40.match(text, pos - 40 - (text[pos - 1] == "\r"))
        ):
            return True
        pos = text.find("\n", pos + 1)
    return False


def _token_pattern(min_length: int) -> re.Pattern[str]:
    return re.compile(rf"[{_B64_CHARS}]{{{min_length - 2},}}(?:={{1,2}})?")


def _enc_candidates(text: str, low: str) -> Iterator[_Candidate]:
    """Arguments of PowerShell's -EncodedCommand flag (any abbreviation, '-', '/' or a dash)."""
    for dash in _FLAG_STARTS:
        if dash[0] not in low:
            continue
        pos = low.find(dash)
        while pos != -1:
            if pos == 0 or low[pos - 1] in _BEFORE_FLAG:
                flag = _ENC_FLAG.match(text, pos)
                m = _ENC_ARG.match(text, flag.end()) if flag else None
                if m:
                    cand = _enc_candidate(m.group(), m.start(), m.end())
                    if cand.status != "invalid":
                        yield cand
            pos = low.find(dash, pos + 2)


def _enc_candidate(arg: str, start: int, end: int) -> _Candidate:
    """The argument of -EncodedCommand: PowerShell accepts only strict base64 (of UTF-16LE text)."""
    core = arg.rstrip("=")
    if len(arg) % 4 == 0 and len(arg) - len(core) <= 2:
        try:
            data = binascii.a2b_base64(arg, strict_mode=True)
            return _Candidate(start, end, "base64-utf16le", data=data, prefer_utf16=True, key=arg)
        except binascii.Error:
            pass
    # PowerShell rejects it; report it as truncated only if the readable part is UTF-16LE text
    head = core[: len(core) // 4 * 4]
    if len(head) >= 16:
        try:
            prefix = binascii.a2b_base64(head, strict_mode=True)
        except binascii.Error:
            prefix = b""
        prefix = prefix[: len(prefix) // 2 * 2]
        if _utf16_shape(prefix) and _as_text(prefix, True):
            return _Candidate(start, end, "base64-utf16le", status="truncated")
    return _Candidate(start, end, "base64-utf16le", status="invalid")  # not PowerShell's: try it as a token


def _decode_token(token: str, start: int, end: int) -> Iterator[_Candidate]:
    hexed = _HEX.fullmatch(token)
    if hexed:
        yield _Candidate(start, end, "hex", data=bytes.fromhex(hexed.group(1)), key=token)
    encoding = (
        "base64url" if ("-" in token or "_" in token) and "+" not in token and "/" not in token else "base64"
    )
    data = _b64_decode(token)
    if data is not None:
        yield _Candidate(start, end, encoding, data=data, key=token)
    if encoding == "base64url":  # base64 glued to words by '-' or '_': try its plain parts too
        for part in _PLAIN_B64.finditer(token):
            data = _b64_decode(part.group())
            if data is not None:
                yield _Candidate(start + part.start(), start + part.end(), "base64", data=data, key=token)


def _url_candidates(text: str) -> Iterator[_Candidate]:
    """Runs of non-space characters holding %xx escapes."""
    pos = 0
    for m in _URL_ESCAPE.finditer(text):
        if m.start() < pos:
            continue
        start = m.start()
        while start > 0 and text[start - 1] not in _URL_STOP:
            start -= 1
        end = m.end()
        while end < len(text) and text[end] not in _URL_STOP:
            end += 1
        pos = end
        chunk = text[start:end]
        try:
            decoded = unquote(chunk, errors="strict")
        except UnicodeDecodeError:
            continue
        if decoded != chunk:
            yield _Candidate(start, end, "url", text=decoded)


def _code_text(numbers: str) -> str | None:
    try:
        codes = [int(n, 0) if n[:2].lower() == "0x" else int(n) for n in _NUMBER.findall(numbers)]
        return "".join(chr(c) for c in codes)
    except (ValueError, OverflowError):
        return None


def _charcode_candidates(text: str) -> Iterator[_Candidate]:
    """Char-code arrays: [char]N casts, chr(N), String.fromCharCode(...), N,N,N with -join."""
    lower = None
    for m in _CHAR_CAST.finditer(text):
        decoded = _code_text(re.sub(r"(?i)\[char\]|chrw?", " ", m.group()))
        if decoded:
            yield _Candidate(m.start(), m.end(), "charcode", text=decoded)
    for m in _FROM_CHAR_CODE.finditer(text):
        decoded = _code_text(m.group(1))
        if decoded:
            yield _Candidate(m.start(), m.end(), "charcode", text=decoded)
    for m in _BARE_CODES.finditer(text):
        lower = lower if lower is not None else text.lower()
        around = lower[max(0, m.start() - 24) : m.start()] + lower[m.end() : m.end() + 48]
        if any(word in around for word in _CODE_CONTEXT):
            decoded = _code_text(m.group())
            if decoded:
                yield _Candidate(m.start(), m.end(), "charcode", text=decoded)


def _candidates(
    text: str, min_length: int, rejected: set[str], taken: list[tuple[int, int]]
) -> Iterator[_Candidate]:
    """Every candidate of a text, most specific finders first (later overlaps are dropped)."""
    low = text.lower()
    yield from _enc_candidates(text, low)
    if "char" in low or "chr" in low or "join" in low:
        yield from _charcode_candidates(text)
    if "%" in text:
        yield from _url_candidates(text)
    yield from _token_candidates(text, min_length, rejected, taken)


# ---------------------------------------------------------------------------------------------
# decompression with caps
# ---------------------------------------------------------------------------------------------
@dataclass(slots=True)
class _Output:
    data: bytes
    status: str  # ok | size_limit | ratio_limit | truncated | corrupt
    unused: int = 0  # input bytes left after the end of the stream


def _may_inflate(data: bytes, wbits: int) -> bool:
    """Cheap first test: the data inflate without error to an end or to more output than we asked for."""
    trial = zlib.decompressobj(wbits)
    try:
        trial.decompress(data[:4096], 4096)
    except zlib.error:
        return False
    return trial.eof or bool(trial.unconsumed_tail) or len(data) > 4096


def _real_stream(kind: str, out: _Output) -> bool:
    """Whether a trial zlib / raw-deflate decompression found a real stream (neither has a strong magic).

    A bomb (output cut by a limit) is real; otherwise the stream must end where the data ends, and a raw
    deflate stream (no checksum) must also yield plausible text or a known format.
    """
    if out.status in ("size_limit", "ratio_limit"):
        return True
    if out.status != "ok" or out.unused > 8 or not out.data:
        return False
    if kind == "zlib":  # the Adler-32 checksum was verified at the end of the stream
        return True
    text = _as_text(out.data)
    return (text is not None and len(text[0]) >= 8) or _sniff(out.data) is not None


def _capped(cap_size: int, cap_ratio: int) -> tuple[int, str]:
    return (cap_size, "size_limit") if cap_size <= cap_ratio else (cap_ratio, "ratio_limit")


def _stream(kind: str, data: bytes, cap: int, cap_status: str) -> _Output:
    """Decompress ``data`` in chunks, never producing more than ``cap`` bytes (gzip: every member)."""
    out: list[bytes] = []
    size = 0
    while True:
        status, size, rest = _stream_one(kind, data, cap, size, out)
        if status == "ok" and kind == "gzip" and rest[:3] == b"\x1f\x8b\x08" and size < cap:
            data = rest  # another gzip member follows
            continue
        return _Output(b"".join(out)[:cap], cap_status if status == "cap" else status, len(rest))


def _stream_one(kind: str, data: bytes, cap: int, size: int, out: list[bytes]) -> tuple[str, int, bytes]:
    """One compressed stream into ``out``: (status, total size, data after the stream)."""
    decomp = _decompressor(kind)
    zlib_like = kind in ("gzip", "zlib", "deflate")
    try:
        for pos in range(0, len(data), _CHUNK):
            piece = data[pos : pos + _CHUNK]
            while True:
                got = decomp.decompress(piece, cap - size + 1)
                out.append(got)
                size += len(got)
                if size > cap:
                    return "cap", size, b""
                if decomp.eof:
                    return "ok", size, decomp.unused_data + data[pos + _CHUNK :]
                if zlib_like:
                    piece = decomp.unconsumed_tail
                    if not piece:
                        break
                elif decomp.needs_input:
                    break
                else:
                    piece = b""
        return "truncated", size, b""
    except (zlib.error, OSError, EOFError, ValueError, lzma.LZMAError):
        return "corrupt", size, b""


def _decompressor(kind: str) -> Any:
    if kind == "gzip":
        return zlib.decompressobj(31)
    if kind == "zlib":
        return zlib.decompressobj(15)
    if kind == "deflate":
        return zlib.decompressobj(-15)
    if kind == "bzip2":
        return bz2.BZ2Decompressor()
    return lzma.LZMADecompressor()


# ---------------------------------------------------------------------------------------------
# the per-value decoder
# ---------------------------------------------------------------------------------------------
class _ValueDecoder:
    """Decodes one value into a tree of layers, within the limits."""

    def __init__(self, limits: _Limits, rejected: set[str] | None = None) -> None:
        self.limits = limits
        self.exhausted = "size_limit"  # the status of a layer cut short when the budget runs out
        self.rejected = rejected if rejected is not None else set()  # tokens known to decode to nothing
        self.budget = limits.max_output
        self.layers: list[_Layer] = []
        self.roots: list[_Layer] = []

    # -- recording ------------------------------------------------------------------------------
    def _add(self, parent: _Layer | None, **fields: Any) -> _Layer:
        layer_no = parent.layer + 1 if parent else 1
        chain = f"{parent.chain}>{fields['encoding']}" if parent and parent.chain else fields["encoding"]
        node = _Layer(
            item=len(self.layers),
            parent=parent.item if parent else None,
            layer=layer_no,
            chain=chain,
            **fields,
        )
        self.layers.append(node)
        (parent.children if parent else self.roots).append(node)
        self.budget -= node.size
        if len(self.layers) >= _MAX_LAYERS:
            self.budget, self.exhausted = 0, "layer_limit"
        return node

    def _deep(self, parent: _Layer | None) -> bool:
        """True (and the parent marked) when a child of ``parent`` would pass max_depth."""
        if (parent.layer if parent else 0) < self.limits.max_depth:
            return False
        if parent is not None and parent.status == "ok":
            parent.status = "depth_limit"
        return True

    # -- text -----------------------------------------------------------------------------------
    def text(self, text: str, parent: _Layer | None) -> None:
        """Find and decode the encoded items of ``text``; their layers become children of ``parent``."""
        taken: list[tuple[int, int]] = []
        accepted: set[str] = set()
        failed: list[str] = []
        for cand in _candidates(text, self.limits.min_length, self.rejected, taken):
            if self.budget <= 0:
                if parent is not None and parent.status == "ok":
                    parent.status = self.exhausted
                break
            if taken and any(cand.start < e and s < cand.end for s, e in taken):
                continue
            if self._candidate(cand, parent):
                taken.append((cand.start, cand.end))
                if cand.key is not None:
                    accepted.add(cand.key)
            elif cand.key is not None:
                failed.append(cand.key)
        if len(self.rejected) < _CACHE_SIZE:
            self.rejected.update(key for key in failed if key not in accepted and len(key) <= 512)

    def _candidate(self, cand: _Candidate, parent: _Layer | None) -> bool:
        span: dict[str, Any] = {"start": cand.start, "end": cand.end}
        if cand.status != "ok":  # a broken -enc argument: reported, nothing to decode
            if self._deep(parent):
                return True
            self._add(
                parent,
                encoding=cand.encoding,
                content="binary",
                text=None,
                size=0,
                status=cand.status,
                **span,
            )
            return True
        if cand.text is not None:
            if not _plausible_text(cand.text) or cand.text == "":
                return False
            if self._deep(parent):
                return True
            size = len(cand.text.encode("utf-8", "surrogatepass"))
            node = self._add(
                parent, encoding=cand.encoding, content="text", text=cand.text, size=size, **span
            )
            self.text(cand.text, node)
            return True
        data = cand.data or b""
        if not data:
            return False
        decoded = _as_text(data, cand.prefer_utf16)
        if decoded is not None:
            text, charset = decoded
            if self._deep(parent):
                return True
            encoding = cand.encoding
            if charset == "utf-16-le" and not encoding.endswith("-utf16le"):
                encoding += "-utf16le"
            elif charset != "utf-16-le" and encoding.endswith("-utf16le"):
                encoding = encoding[: -len("-utf16le")]
            node = self._add(parent, encoding=encoding, content="text", text=text, size=len(data), **span)
            self.text(text, node)
            return True
        encoding = cand.encoding.removesuffix("-utf16le")
        return self.binary(data, parent, encoding, strict=True, start=cand.start, end=cand.end)

    # -- bytes ----------------------------------------------------------------------------------
    def binary(
        self,
        data: bytes,
        parent: _Layer | None,
        encoding: str,
        *,
        strict: bool,
        status: str = "ok",
        start: int | None = None,
        end: int | None = None,
    ) -> bool:
        """Record bytes decoded by ``encoding``; expand archives and compressed streams inside.

        ``strict``: unknown binary is not a decode (for base64/hex candidates); decompressed output
        is always recorded.
        """
        decoded = None if strict else _as_text(data)
        if decoded is not None:
            if self._deep(parent):
                return True
            node = self._add(
                parent,
                encoding=encoding,
                content="text",
                text=decoded[0],
                size=len(data),
                status=status,
                start=start,
                end=end,
            )
            self.text(decoded[0], node)
            return True
        kind, trial = self._kind(data, reserve=len(data))  # this layer is not recorded yet
        if kind is None and strict:
            return False
        if self._deep(parent):
            return True
        node = self._add(
            parent,
            encoding=encoding,
            content=kind or "binary",
            text=None,
            size=len(data),
            status=status,
            start=start,
            end=end,
        )
        if kind in ("gzip", "zlib", "deflate", "bzip2", "xz"):
            out = trial or self._decompress(kind, data)
            self._child_bytes(out.data, node, kind, out.status)
        elif kind == "zip":
            self._zip(data, node)
        elif kind == "tar":
            self._tar(data, node)
        return True

    def _kind(self, data: bytes, reserve: int = 0) -> tuple[str | None, _Output | None]:
        """Format of binary data: a magic number, else a zlib or raw deflate stream that inflates cleanly."""
        kind = _sniff(data)
        if kind is not None:
            return kind, None
        for weak in ("zlib", "deflate"):
            if weak == "zlib" and not (
                len(data) > 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            ):
                continue
            if _may_inflate(data, 15 if weak == "zlib" else -15):
                trial = self._decompress(weak, data, reserve)
                if _real_stream(weak, trial):
                    return weak, trial
        return None, None

    def _child_bytes(self, data: bytes, parent: _Layer | None, encoding: str, status: str) -> None:
        if self._deep(parent):
            return
        if not data:
            self._add(parent, encoding=encoding, content="binary", text=None, size=0, status=status)
            return
        self.binary(data, parent, encoding, strict=False, status=status)

    def _decompress(self, kind: str, data: bytes, reserve: int = 0) -> _Output:
        cap_ratio = max(int(self.limits.max_ratio * len(data)), 1 << 12)
        cap, why = _capped(max(self.budget - reserve, 0), cap_ratio)
        return _stream(kind, data, cap, why)

    def _zip(self, data: bytes, parent: _Layer) -> None:
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
            members = [m for m in archive.infolist() if not m.is_dir()]
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, NotImplementedError):
            if parent.status == "ok":
                parent.status = "corrupt"
            return
        if len(members) > self.limits.max_members:
            parent.status = "member_limit"
            members = members[: self.limits.max_members]
        for info in members:
            if self._deep(parent):
                return
            name = f"zip:{info.filename[:200]}"
            if self.budget <= 0:
                parent.status = self.exhausted
                return
            if info.flag_bits & 0x1:
                self._add(parent, encoding=name, content="binary", text=None, size=0, status="encrypted")
                continue
            cap_ratio = max(int(self.limits.max_ratio * max(info.compress_size, 1)), 1 << 12)
            cap, why = _capped(self.budget, cap_ratio)
            try:
                with archive.open(info) as handle:
                    out = handle.read(cap + 1)
                status = "ok"
                if len(out) > cap:
                    out, status = out[:cap], why
            except NotImplementedError:
                self._add(parent, encoding=name, content="binary", text=None, size=0, status="unsupported")
                continue
            except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, lzma.LZMAError):
                out, status = b"", "corrupt"
            self._child_bytes(out, parent, name, status)

    def _tar(self, data: bytes, parent: _Layer) -> None:
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
                self._tar_members(archive, parent)
        except (tarfile.TarError, OSError, EOFError, ValueError):
            if parent.status == "ok":
                parent.status = "corrupt" if not parent.children else "truncated"

    def _tar_members(self, archive: tarfile.TarFile, parent: _Layer) -> None:
        count = 0
        for info in archive:
            if not info.isfile():
                continue
            if count >= self.limits.max_members:
                parent.status = "member_limit"
                return
            count += 1
            if self._deep(parent):
                return
            if self.budget <= 0:
                parent.status = self.exhausted
                return
            handle = archive.extractfile(info)
            out = handle.read(min(info.size, self.budget)) if handle else b""
            status = (
                "ok" if len(out) == info.size else ("size_limit" if len(out) == self.budget else "truncated")
            )
            self._child_bytes(out, parent, f"tar:{info.name[:200]}", status)


def _decode_value(value: Any, limits: _Limits, rejected: set[str] | None = None) -> _ValueDecoder:
    decoder = _ValueDecoder(limits, rejected)
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        decoded = _as_text(data)
        if decoded is not None:
            decoder.text(decoded[0], None)
        else:
            kind, trial = decoder._kind(data)
            if kind in ("gzip", "zlib", "deflate", "bzip2", "xz"):
                out = trial or decoder._decompress(kind, data)
                decoder._child_bytes(out.data, None, kind, out.status)
            elif kind in ("zip", "tar"):
                root = _Layer(
                    item=-1, parent=None, layer=0, encoding=kind, chain="", content=kind, text=None, size=0
                )
                (decoder._zip if kind == "zip" else decoder._tar)(data, root)
                for child in root.children:
                    child.parent = None
                    decoder.roots.append(child)
                if root.status != "ok":  # e.g. member_limit: reported on a row of its own
                    decoder._add(None, encoding=kind, content=kind, text=None, size=0, status=root.status)
    else:
        decoder.text(value if isinstance(value, str) else str(value), None)
    return decoder


# ---------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------
def _is_missing(value: Any) -> bool:
    return (
        value is None
        or (isinstance(value, float) and math.isnan(value))
        or type(value).__name__ in ("NAType", "NaTType")
    )


def _inputs(data: Any, column: str | None) -> tuple[list[Any], list[Any], Any]:
    """(values, labels, Series or None) for every accepted input shape."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        if column is None:
            raise DataError(
                "unpack() needs the column to decode",
                where="column",
                hint="pass column=, e.g. column='CommandLine'",
            )
        if column not in data.columns:
            raise DataError(
                f"no column {column!r} in the DataFrame",
                where=str(column),
                hint=f"columns are: {', '.join(map(str, data.columns[:20]))}",
            )
        data = data[column]
        if isinstance(data, pd.DataFrame):
            raise DataError(
                "the column name is not unique", where=str(column), hint="rename the duplicate columns"
            )
    if isinstance(data, pd.Series):
        return data.tolist(), data.index.tolist(), data
    if isinstance(data, str | bytes | bytearray):
        return [data], [0], None
    if isinstance(data, Iterable):
        values = list(data)
        return values, list(range(len(values))), None
    raise DataError(
        f"cannot decode a {type(data).__name__}",
        hint="pass a str, bytes, a list, a Series or a DataFrame with column=",
    )


def _worth_a_look(values: list[Any], series: Any) -> list[int]:
    """Positions of values that may hold an encoded item: one vectorised regex pass (RE2 in Arrow)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        strings = pa.array(series if series is not None else values, from_pandas=True)
        if not (pa.types.is_string(strings.type) or pa.types.is_large_string(strings.type)):
            raise TypeError(strings.type)
        mask = pc.fill_null(pc.match_substring_regex(strings, _PREFILTER), False)
        return pc.indices_nonzero(mask).to_pylist()  # type: ignore[no-any-return]
    except (pa.ArrowException, TypeError, ValueError):  # bytes or other objects among the values
        probe = re.compile(_PREFILTER)
        return [
            i
            for i, v in enumerate(values)
            if not _is_missing(v) and (not isinstance(v, str) or probe.search(v) is not None)
        ]


def _decoders(
    data: Any,
    column: str | None,
    limits: _Limits,
) -> Iterator[tuple[Any, int, _ValueDecoder]]:
    values, labels, series = _inputs(data, column)
    rejected: set[str] = set()
    for i in _worth_a_look(values, series):
        value = values[i]
        if _is_missing(value):
            continue
        yield labels[i], i, _decode_value(value, limits, rejected)


def _limits(
    max_depth: int = 6,
    max_output: int = 10_000_000,
    max_ratio: float = 250.0,
    max_members: int = 64,
    min_length: int = _MIN_TOKEN,
) -> _Limits:
    """Checked limits (the keyword arguments of :func:`unpack`)."""
    if not 1 <= max_depth <= 64 or max_output < 1 or max_ratio < 1 or max_members < 1 or min_length < 8:
        raise DataError(
            "limits out of range",
            where="limits",
            hint="1 <= max_depth <= 64; max_output, max_members >= 1; max_ratio >= 1; min_length >= 8",
        )
    return _Limits(max_depth, max_output, max_ratio, max_members, min_length)


def _walk(nodes: list[_Layer]) -> Iterator[_Layer]:
    for node in nodes:
        yield node
        yield from _walk(node.children)


def unpack(
    data: Any,
    column: str | None = None,
    *,
    max_depth: int = 6,
    max_output: int = 10_000_000,
    max_ratio: float = 250.0,
    max_members: int = 64,
    min_length: int = _MIN_TOKEN,
) -> pd.DataFrame:
    """Decode encoded items in ``data``, one output row per decoded layer.

    Args:
        data: a str, bytes, a list of them, a Series, or a DataFrame with ``column``.
            Missing values (None/NaN) are skipped.
        column: the column to decode when ``data`` is a DataFrame.
        max_depth: deepest layer decoded; a layer holding more gets ``status="depth_limit"``.
        max_output: decoded bytes allowed per value (all layers together).
        max_ratio: largest output/input ratio of one decompression (zip/gzip bombs stop there).
        max_members: archive members read per archive.
        min_length: shortest free-standing base64/hex run tried (``-enc`` arguments may be shorter).

    Returns:
        A DataFrame with columns ``row`` (index label of the source value; list position; 0 for a
        single value), ``layer`` (1 = outermost), ``item`` and ``parent`` (the layer tree of the
        value: ``parent`` is the ``item`` this layer was found in, <NA> at the top), ``encoding``
        (``base64``, ``base64-utf16le``, ``base64url``, ``hex``, ``url``, ``charcode``, ``gzip``,
        ``zlib``, ``deflate``, ``bzip2``, ``xz``, ``zip:<member>``, ``tar:<member>``), ``chain``
        (the encodings from the outside in, joined by ``>``), ``content`` (``text`` or the binary
        format: ``gzip``, ``zip``, ``pe`` ...), ``text`` (decoded text, None for binary), ``size``
        (decoded bytes) and ``status`` (``ok`` or why decoding stopped, see :data:`STATUSES`).

    Example:
        >>> import base64
        >>> blob = base64.b64encode("whoami /all".encode("utf-16-le")).decode()
        >>> unpack(f"powershell -enc {blob}")[["layer", "encoding", "text"]].values.tolist()
        [[1, 'base64-utf16le', 'whoami /all']]
    """
    import pandas as pd

    limits = _limits(max_depth, max_output, max_ratio, max_members, min_length)
    records: list[tuple[Any, ...]] = []
    for label, _, decoder in _decoders(data, column, limits):
        for node in _walk(decoder.roots):
            records.append(
                (
                    label,
                    node.layer,
                    node.item,
                    node.parent,
                    node.encoding,
                    node.chain,
                    node.content,
                    node.text,
                    node.size,
                    node.status,
                )
            )
    frame = pd.DataFrame.from_records(records, columns=COLUMNS)
    if len(records) == 0:
        frame = frame.astype({"layer": "int64", "item": "int64", "size": "int64"})
    frame["parent"] = frame["parent"].astype("Int64")
    return frame


def _substituted(text: str, nodes: list[_Layer]) -> str:
    """``text`` with each decoded item (by span) replaced by its innermost decoded text."""
    pieces: list[str] = []
    pos = 0
    for node in sorted((n for n in nodes if n.start is not None), key=lambda n: n.start or 0):
        inner = _innermost(node)
        if inner is None or node.start is None or node.end is None or node.start < pos:
            continue
        pieces.append(text[pos : node.start])
        pieces.append(inner)
        pos = node.end
    pieces.append(text[pos:])
    return "".join(pieces)


def _innermost(node: _Layer) -> str | None:
    if node.text is not None:
        return _substituted(node.text, node.children)
    inner = [t for t in (_innermost(child) for child in node.children) if t is not None]
    return "\n".join(inner) if inner else None


def decoded_text(value: str | bytes, **limits: Any) -> str:
    """``value`` with every encoded item replaced by its decoded text, innermost layer first.

    Items that decode only to binary stay as written. Keyword arguments are the limits of :func:`unpack`.

    Example:
        >>> import base64
        >>> blob = base64.b64encode("whoami /all".encode("utf-16-le")).decode()
        >>> decoded_text(f"powershell -enc {blob}")
        'powershell -enc whoami /all'
    """
    decoder = _decode_value(value, _limits(**limits))
    if isinstance(value, bytes | bytearray):
        texts = [t for t in (_innermost(n) for n in decoder.roots) if t is not None]
        as_text = _as_text(bytes(value))
        if as_text is not None:
            return _substituted(as_text[0], decoder.roots)
        return "\n".join(texts) if texts else bytes(value).decode("utf-8", "replace")
    return _substituted(value if isinstance(value, str) else str(value), decoder.roots)


def add_decoded(data: pd.DataFrame, column: str, name: str = "decoded", **limits: Any) -> pd.DataFrame:
    """A copy of ``data`` with a ``name`` column: ``column`` with its encoded items decoded in place.

    The new column is None where nothing was decoded, so searching both columns finds nothing twice.

    Example:
        >>> import base64, pandas as pd
        >>> blob = base64.b64encode("whoami /all".encode("utf-16-le")).decode()
        >>> df = pd.DataFrame({"CommandLine": [f"powershell -enc {blob}", "cmd /c dir"]})
        >>> add_decoded(df, "CommandLine")["decoded"].tolist()
        ['powershell -enc whoami /all', None]
    """
    import pandas as pd

    if not isinstance(data, pd.DataFrame):
        raise DataError("add_decoded() takes a DataFrame", hint="use decoded_text() for a single string")
    lim = _limits(**limits)
    out: list[str | None] = [None] * len(data)
    values, _, _ = _inputs(data, column)
    for _, position, decoder in _decoders(data, column, lim):
        if decoder.roots:
            value = values[position]
            decoded = (
                _substituted(value, decoder.roots)
                if isinstance(value, str)
                else "\n".join(t for t in (_innermost(n) for n in decoder.roots) if t is not None)
            )
            out[position] = decoded if decoded and decoded != value else None
    result = data.copy()
    result[name] = pd.Series(out, index=data.index, dtype=object)
    return result
