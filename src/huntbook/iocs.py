"""Indicators of compromise (IoCs) in text: extract, refang/defang, and watch-list matching.

``extract`` finds IP addresses, domains, URLs, e-mail addresses, hashes, Windows and Linux paths,
registry keys and CVE ids in a string, a list of strings, a Series or chosen DataFrame columns, and
returns one row per item with its span in the original text::

    import huntbook as hb
    hb.iocs.extract("beacon to hxxp://evil[.]example[.]com/a.php from 10.0.0.5")

Scanning uses RE2 (``google-re2``), so every pattern runs in time linear in the input, whatever the
input is: one pass of one combined pattern over all cells, Python only to validate the candidates.
Defanged forms (``hxxp``, ``[.]``, ``(.)``, ``[dot]``, ``[:]``, ``[@]``, ``[at]`` ...) are recognised
in place, so spans point into the text as written while ``value`` is refanged and normalised
(lower-case for dns, email, hashes and ipv6). Domains are checked against the public suffix list
bundled with ``tldextract``, read offline once per process.

Conventions: the host of every URL is also a ``dns`` item (``ipv4``/``ipv6`` when it is an address),
the domain of every e-mail address is a ``dns`` item, and a URL-encoded URL inside a URL
(``?next=https%3A%2F%2Fhost%2Flogin``) is reported decoded, with its host. Not reported: file names
whose extension happens to be a TLD (``setup.py``, ``invoice_12.zip``), version strings
(``Version=4.0.0.0``, ``Chrome/120.0.0.0``), Message-IDs (their domain is still a ``dns`` item),
MAC addresses and clock times.

``watch`` matches thousands of literal indicators at once (Aho-Corasick).
"""

from __future__ import annotations

import ipaddress
import math
import pkgutil
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final

from huntbook.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["IOC_TYPES", "OUTPUT_COLUMNS", "WATCH_COLUMNS", "defang", "extract", "refang", "watch"]

#: The built-in IoC types, in the order they are documented.
IOC_TYPES: Final = (
    "ipv4",
    "ipv6",
    "dns",
    "url",
    "email",
    "md5",
    "sha1",
    "sha256",
    "windows_path",
    "linux_path",
    "registry_key",
    "cve",
)
OUTPUT_COLUMNS: Final = ["row", "column", "ioc_type", "value", "start", "end"]
WATCH_COLUMNS: Final = ["row", "column", "indicator", "start", "end"]

_ALIASES: Final = {
    "md5_hash": "md5",
    "sha1_hash": "sha1",
    "sha256_hash": "sha256",
    "domain": "dns",
    "hostname": "dns",
    "ip": "ipv4",
}
# TLDs that are also common file extensions: ``setup.py``, ``deploy.sh``, ``invoice.zip`` are files
# unless the name has three labels or more, or sits in a URL or an e-mail address.
_FILE_EXT_TLDS: Final = frozenset("zip mov py sh one ps pl rs md so cc pm ml".split())
_LABEL_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
_HASH_TYPES: Final = {32: "md5", 40: "sha1", 64: "sha256"}
_URL_TRAIL: Final = ".,;:!?'\"`>}"
_LINUX_BEFORE: Final = frozenset(" \t\n\r\"'=(,:<>[|;`")
_RE2_MAX_MEM: Final = 64 << 20  # the combined pattern's DFA needs more than RE2's 8 MiB default

# --- the candidate pattern (RE2 syntax; Python only validates what it finds) -----------------------
_DOT = r"(?:\.|\[\.\]|\(\.\)|\{\.\}|(?i:\[dot\]|\(dot\)))"
_AT = r"(?:@|\[@\]|(?i:\[at\]|\(at\)|\{at\}))"
_LABEL = r"[A-Za-z0-9_-]+"
# right boundary of ipv4/dns candidates; consumed, as RE2 has no look-ahead
_BOUND = r"(?:[^A-Za-z0-9_.\-]|\.(?:[^A-Za-z0-9_\-]|(?m:$))|(?m:$))"
_NAME_CHARS = r"A-Za-z0-9_$~#@&+!%.\-"
_DIR_SEG = "[" + _NAME_CHARS + "() ,]+"  # folders may hold spaces: C:\Program Files (x86)\...
_FILE_SEG = "[" + _NAME_CHARS + "]+"
_REG_CHARS = r"A-Za-z0-9_$~#@&+!%.\-{}()"
_HEXC = "[0-9A-Fa-f]"
_IPV6_TAIL = "(?:(?:" + _HEXC + r"{1,4}:){0,6}(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|" + _HEXC + "{1,4}))"


def _alternatives(tld_regex: str) -> list[str]:
    """The alternatives of the combined pattern; order decides ties at one start position."""
    domain = _LABEL + "(?:" + _DOT + _LABEL + ")*" + _DOT + tld_regex + _BOUND
    local = r"[A-Za-z0-9_%+-]{1,64}(?:" + _DOT + r"[A-Za-z0-9_%+-]{1,64}){0,15}"  # bounded look-ahead
    return [
        # url: scheme (also defanged), then anything up to whitespace, quotes, angle brackets, backslash
        r"(?i:h[tx]{2}ps?|s?ftps?|fxp)(?:://|\[:\]//|\[://\])[^\s\"'<>\x60\\|^{}]+",
        # e-mail, with an optional Message-ID key in front (those are dropped, their domain kept)
        r"(?:(?i:message-?id|msg-?id)\s*[=:]\s*<)?" + local + _AT + domain,
        # Windows path: drive or %VAR% root, folders (may hold spaces), file
        r"(?:[A-Za-z]:|%[A-Za-z_][A-Za-z0-9_]*%)\\(?:" + _DIR_SEG + r"\\)*(?:" + _FILE_SEG + ")?",
        # UNC path \\host\share\...
        r"\\\\[A-Za-z0-9_.$-]+(?:\\" + _FILE_SEG + r")+(?:\\(?:" + _DIR_SEG + r"\\)*(?:" + _FILE_SEG + ")?)?",
        # registry key: hive, then keys (inner keys may hold spaces: Windows NT)
        r"(?i:HKEY_LOCAL_MACHINE|HKEY_CURRENT_USER|HKEY_CLASSES_ROOT|HKEY_USERS|HKEY_CURRENT_CONFIG"
        r"|HKLM|HKCU|HKCR|HKU|HKCC):?(?:\\[" + _REG_CHARS + r" ]+)*\\[" + _REG_CHARS + "]+",
        r"(?i:cve)[-_][0-9]{4}[-_][0-9]{4,7}",
        # IPv4 with an optional version context (Version=, Product/) and leading dotted numbers
        r"(?:(?i:version)\s*[=:]?\s*|[A-Za-z]/)?(?:[0-9]+" + _DOT + "){3,}[0-9]+" + _BOUND,
        domain,
        # IPv6: full form, or a form with '::' (bounded, so a failed try never looks far ahead)
        f"(?:{_HEXC}{{1,4}}:){{7}}{_HEXC}{{1,4}}|(?:{_HEXC}{{1,4}}:){{1,7}}:{_IPV6_TAIL}?|::{_IPV6_TAIL}",
        # hashes: a word holding 32+ hex digits (validated: exactly 32/40/64 hex)
        "[0-9A-Za-z_]*" + _HEXC + "{32}[0-9A-Za-z_]*",
        # Linux path with two segments or more
        r"(?:~|\.{1,2})?/[A-Za-z0-9_.+@%-]+(?:/[A-Za-z0-9_.+@%-]*)+",
    ]


# label rules: 1-63 characters, no '-' at either end (the pattern cannot backtrack: labels end at dots)
_DOMAIN_SHAPE = re.compile(
    r"(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
)
_IPV4_SHAPE = re.compile(
    r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
)
_PROGRAM_THEN_SPACE = re.compile(r"(?i)\.(?:exe|dll|com|bat|cmd|ps1|vbs|js|msi|scr|cpl|hta|sys) ")
# dotted names from scripts that look like domains (their last label is a brand or generic TLD)
_CODE_NAMES: Final = frozenset(
    "wscript.shell shell.application system.net system.io system.web microsoft.win32 window.open "
    "document.open xmlhttp.open".split()
)
_HOST_END = re.compile(r"[/?#\\]")
_HEX_DIGITS: Final = "0123456789abcdefABCDEF"
_EMBEDDED_URL = re.compile(r"(?i)(?:https?|ftp)%3A%2F%2F[^&\s#]*")
_REFANG = re.compile(
    r"\[\.\]|\(\.\)|\{\.\}|\[dot\]|\(dot\)|\[:\]|\[://\]|\[@\]|\[at\]|\(at\)|\{at\}"
    r"|h[x]{2}p(?=s?(?::|\[:))|f[x]p(?=s?(?::|\[:))",
    re.IGNORECASE,
)
_DEFANG_SCHEME = re.compile(r"(?i)\b(h|f)(tt|t)(ps?:)")
_REFANG_MAP: Final = {
    "[.]": ".",
    "(.)": ".",
    "{.}": ".",
    "[dot]": ".",
    "(dot)": ".",
    "[:]": ":",
    "[://]": "://",
    "[@]": "@",
    "[at]": "@",
    "(at)": "@",
    "{at}": "@",
}


def refang(text: str) -> str:
    """Undo defanging: ``hxxp``, ``[.]``, ``(.)``, ``[dot]``, ``[:]``, ``[://]``, ``[@]``, ``[at]`` ...

    Example::

        >>> refang("hxxps://evil[.]example[.]com")
        'https://evil.example.com'
    """
    return _REFANG.sub(_refang_one, text)


def _refang_one(m: re.Match[str]) -> str:
    token = m.group(0)
    low = token.lower()
    if low in ("hxxp", "fxp"):  # keep the case of the first and last letter: HXXP -> HTTP, hXXp -> http
        middle = (
            "T" * (len(token) - 2) if token[0].isupper() and token[1].isupper() else "t" * (len(token) - 2)
        )
        return token[0] + middle + token[-1]
    return _REFANG_MAP[low]


def defang(text: str) -> str:
    """Make indicators safe to paste: ``http`` -> ``hxxp``, ``.`` -> ``[.]``, ``@`` -> ``[@]``.

    Example::

        >>> defang("https://evil.example.com/a")
        'hxxps://evil[.]example[.]com/a'
    """
    return _defang_scheme(text).replace(".", "[.]").replace("@", "[@]")


def _defang_scheme(text: str) -> str:
    return _DEFANG_SCHEME.sub(
        lambda m: m.group(1) + m.group(2).replace("t", "x").replace("T", "X") + m.group(3), text
    )


# --- public suffix list (offline, once per process) -----------------------------------------------
@lru_cache(maxsize=1)
def _suffixes() -> tuple[frozenset[str], frozenset[str]]:
    """(public suffixes, top-level labels) from the snapshot bundled with tldextract; no network."""
    from tldextract.suffix_list import extract_tlds_from_suffix_list

    raw = pkgutil.get_data("tldextract", ".tld_set_snapshot")
    if raw is None:  # pragma: no cover - the package always ships it
        raise DataError("tldextract's bundled public suffix list is missing", hint="reinstall tldextract")
    public, _private = extract_tlds_from_suffix_list(raw.decode("utf-8"))
    suffixes = set()
    for s in public:
        s = s.lstrip("*.!")
        if not s.isascii():
            try:
                s = s.encode("idna").decode("ascii")
            except UnicodeError:
                continue
        suffixes.add(s.lower())
    tlds = frozenset(s.rsplit(".", 1)[-1] for s in suffixes)
    return frozenset(suffixes), tlds


@lru_cache(maxsize=1)
def _scanner() -> Any:
    """The compiled combined RE2 pattern (compiled once per process)."""
    re2 = _re2_module()
    tlds = sorted(_suffixes()[1], key=lambda s: (-len(s), s))
    pattern = "|".join(f"(?:{a})" for a in _alternatives("(?i:" + "|".join(tlds) + ")"))
    return re2.compile(pattern, _re2_options())._regexp


def _re2_module() -> Any:
    import re2

    return re2


def _re2_options() -> Any:
    re2 = _re2_module()
    options = re2.Options()
    options.max_mem = _RE2_MAX_MEM
    options.never_nl = True
    return options


def _compile_extra(name: str, pattern: str) -> Any:
    re2 = _re2_module()
    if not isinstance(pattern, str) or not pattern:
        raise DataError("the pattern must be a non-empty regex string", where=f"extra_types[{name!r}]")
    try:
        compiled = re2.compile(pattern, _re2_options())
    except re2.error as exc:
        raise DataError(
            f"invalid regular expression {pattern!r}: {exc}",
            where=f"extra_types[{name!r}]",
            hint="use RE2 syntax (no look-around, no back-references)",
        ) from None
    return compiled._regexp


def _scan_spans(regexp: Any, buf: bytes) -> list[tuple[int, int]]:
    """All non-overlapping leftmost-first match spans (byte offsets) of an RE2 object in ``buf``."""
    from re2 import _re2

    match = regexp.Match
    unanchored = _re2.RE2.Anchor.UNANCHORED
    end = len(buf)
    pos = 0
    spans: list[tuple[int, int]] = []
    add = spans.append
    while pos <= end:
        span = match(unanchored, buf, pos, end)[0]
        if span[0] < 0:
            break
        if span[1] > span[0]:
            add(span)
            pos = span[1]
        else:
            pos = span[1] + 1
    return spans


# --- validation helpers ---------------------------------------------------------------------------
def _strip_right(c: str) -> str:
    """Drop the consumed right boundary of an ipv4/dns candidate: one character, or a dot and one."""
    if c and c[-1] not in _LABEL_CHARS:
        c = c[:-1]
    if c and c[-1] == ".":
        c = c[:-1]
    return c


def _valid_domain(dom: str, suffixes: frozenset[str], tlds: frozenset[str]) -> bool:
    """``dom`` (refanged, lower-case) is a plausible registrable host name."""
    if len(dom) > 253 or dom in suffixes or dom.rpartition(".")[2] not in tlds:
        return False
    if _DOMAIN_SHAPE.fullmatch(dom) is None:
        return False
    if "_" in dom:  # tolerated in sub-domains (_dmarc.example.com), not in the registered name
        return "_" not in ".".join(dom.rsplit(".", 2)[-2:])
    return True


def _cut_at_program(path: str) -> str:
    """Cut a path whose folder part runs over a command: ``C:\\x\\a.exe %TEMP%\\b`` -> ``C:\\x\\a.exe``."""
    m = _PROGRAM_THEN_SPACE.search(path)
    if m is None or "\\" not in path[m.end() :]:
        return path
    return path[: m.start() + len(m.group(0)) - 1]


def _is_ipv6(value: str) -> bool:
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True


def _host_span(url: str) -> tuple[int, int]:
    """(start, end) of the host in a URL as written (defanged or not)."""
    sep = url.find("//")
    start = sep + 2
    if "[://]" in url[:12]:
        start = url.find("[://]") + 5
    m = _HOST_END.search(url, start)
    end = m.start() if m else len(url)
    at = url.rfind("@", start, end)
    if "[" in url:
        low = url.lower()
        at = max(at, url.rfind("[@]", start, end) + 2, low.rfind("[at]", start, end) + 3)
    if at >= start:
        start = at + 1
    if url.startswith("[", start) and not url.startswith("[.]", start):  # [IPv6]
        close = url.find("]", start)
        return (start + 1, close) if close > start else (start, start)
    colon = url.rfind(":", start, end)
    if colon >= 0 and url[colon + 1 : end].isdigit():
        end = colon - 1 if url[colon - 1 : colon] == "[" and url[end - 1 : end] == "]" else colon
    return start, end


# items go into one flat list, four entries each: ioc_type, value, start, end (offsets in the buffer);
# a flat list of str/int keeps the garbage collector out of the way (500k live tuples would not)
_Add = Callable[[tuple[str, str, int, int]], None]


def _url_items(add: _Add, raw: str, s: int, suffixes: frozenset[str], tlds: frozenset[str]) -> None:
    """A URL candidate: the URL, its host, and URL-encoded URLs inside it."""
    raw = raw.rstrip(_URL_TRAIL)
    while raw and raw[-1] in ")]":  # a closing bracket that was not opened in the URL is punctuation
        if raw.count(raw[-1]) <= raw.count("(" if raw[-1] == ")" else "["):
            break
        raw = raw[:-1].rstrip(_URL_TRAIL)
    cut = raw.find("//") - 1
    if cut <= 0:
        return
    defanged = "[" in raw or "(" in raw or "{" in raw or raw[1] in "xX"
    value = refang(raw) if defanged else raw
    hs, he = _host_span(raw)
    if he <= hs:
        return
    host = refang(raw[hs:he]) if defanged else raw[hs:he]
    scheme_end = value.find("://")
    if scheme_end <= 0:
        return
    if not value[:scheme_end].islower():
        value = value[:scheme_end].lower() + value[scheme_end:]
    add(("url", value, s, s + len(raw)))
    _host_item(add, host, s + hs, s + he, suffixes, tlds)
    if "%" in value:
        for m in _EMBEDDED_URL.finditer(raw):
            inner = urllib.parse.unquote(m.group(0))
            i_start, i_end = _host_span(inner)
            if i_end > i_start:
                add(("url", inner, s + m.start(), s + m.end()))
                _host_item(add, inner[i_start:i_end], s + m.start(), s + m.end(), suffixes, tlds)


def _host_item(add: _Add, host: str, s: int, e: int, suffixes: frozenset[str], tlds: frozenset[str]) -> None:
    h = host.lower().rstrip(".")
    if h[-1:].isdigit() and _IPV4_SHAPE.fullmatch(h):
        add(("ipv4", h, s, e))
    elif ":" in h:
        if _is_ipv6(h):
            add(("ipv6", h, s, e))
    elif _valid_domain(h, suffixes, tlds):
        add(("dns", h, s, e))


def _classify(buf: str, spans: list[tuple[int, int]], add: _Add) -> None:
    """Validate each candidate span (character offsets) and add the items it holds with ``add``.

    The candidate's alternative is told from its shape (cheaper than RE2 capture groups); the checks
    run in the order that keeps the frequent kinds short.
    """
    suffixes, tlds = _suffixes()
    text_len = len(buf)
    for s, e in spans:
        c = buf[s:e]
        c0 = c[0]
        if "\\" in c:  # Windows path, UNC path or registry key (no other kind holds a backslash)
            c = c.rstrip(". ")
            if c0 == "\\":
                add(("windows_path", c, s, s + len(c)))
            elif c[1:2] == ":" or c0 == "%":
                if " " in c:
                    c = _cut_at_program(c)
                if len(c) > 3:
                    add(("windows_path", c, s, s + len(c)))
            else:
                add(("registry_key", c, s, s + len(c)))
            continue
        if c0 in "/~." and "/" in c[:3]:  # Linux path, only after a separator
            if s == 0 or buf[s - 1] in _LINUX_BEFORE:
                c = c.rstrip(".,")
                add(("linux_path", c, s, s + len(c)))
            continue
        if "//" in c[:12] and c0.isalpha():
            _url_items(add, c, s, suffixes, tlds)
            continue
        defanged = "[" in c or "(" in c or "{" in c
        if "@" in c or (defanged and ("[at]" in (low := c.lower()) or "(at)" in low or "{at}" in low)):
            _email_items(add, c, c.lower(), s, suffixes, tlds)
            continue
        if ":" in c[:-1]:  # IPv6 (a domain's consumed boundary may be a ':' as in host:443)
            if c0 in "vV" and c.lower().startswith("version"):
                continue
            if (s > 0 and (buf[s - 1].isalnum() or buf[s - 1] in ":.")) or (
                e < text_len and buf[e].isalnum()
            ):
                continue
            if _is_ipv6(c):
                add(("ipv6", c.lower(), s, e))
            continue
        stripped = _strip_right(c)
        if "." in stripped or defanged:
            if stripped[-1:].isdigit():  # IPv4: only IPv4 candidates end in a digit label
                if c0 in "vV" and c.lower().startswith("version"):
                    continue  # Version=4.0.0.0
                prefix = 2 if c[1:2] == "/" else 0
                body = stripped[prefix:]
                dotted = refang(body) if defanged else body
                parts = dotted.split(".")
                if len(parts) != 4 or (prefix and parts[3] == "0") or not _IPV4_SHAPE.fullmatch(dotted):
                    continue  # 1.2.3.4.5, 300.1.1.1, or Chrome/120.0.0.0
                add(("ipv4", dotted, s + prefix, s + prefix + len(body)))
                continue
            dom = refang(stripped).lower() if defanged else stripped.lower()
            end = s + len(stripped)
            if (
                _valid_domain(dom, suffixes, tlds)
                and not (dom.count(".") == 1 and dom.rpartition(".")[2] in _FILE_EXT_TLDS)  # setup.py
                and buf[end : end + 1] != "("  # a method call: h.open(...)
                and dom not in _CODE_NAMES
            ):
                add(("dns", dom, s, end))
            continue
        if c0 in "cC" and c[3:4] in "-_" and c[:3].lower() == "cve":
            add(("cve", "CVE-" + c[4:].replace("_", "-"), s, e))
            continue
        typ = _HASH_TYPES.get(len(c))
        if typ is not None and not c.strip(_HEX_DIGITS):
            add((typ, c.lower(), s, e))


def _email_items(add: _Add, c: str, low: str, s: int, suffixes: frozenset[str], tlds: frozenset[str]) -> None:
    message_id = low.startswith(("message", "msg"))
    stripped = _strip_right(c)
    value = refang(stripped) if ("[" in stripped or "(" in stripped or "{" in stripped) else stripped
    at = value.rfind("@")
    if at <= 0:
        return
    local, domain = value[:at], value[at + 1 :].lower()
    if not _valid_domain(domain, suffixes, tlds):
        return
    # span of the domain in the original text: after the last AT token of the candidate
    raw_low = stripped.lower()
    d_start = 0
    for token in ("@", "[@]", "[at]", "(at)", "{at}"):
        i = raw_low.rfind(token)
        if i >= 0:
            d_start = max(d_start, i + len(token))
    if not message_id and local[0] != "." and local[-1] != "." and len(local) <= 64:
        add(("email", f"{local}@{domain}".lower(), s, s + len(stripped)))
    add(("dns", domain, s + d_start, s + len(stripped)))


# --- parallel scan of large inputs ---------------------------------------------------------------
#: Buffers at least this large (bytes) are split in two and the second half is scanned by a helper
#: process (one per interpreter, started on first need, fed through pipes; it never re-runs your
#: script). ``HUNTBOOK_IOCS_PROCESSES=0`` turns this off.
PARALLEL_MIN_BYTES: int = 4 << 20
_HELPER_CODE: Final = "from huntbook.iocs import _helper_loop; _helper_loop()"


def _scan_items(text: str) -> list[Any]:
    """The flat item list (type, value, start, end, ...) of one buffer, character offsets."""
    items: list[Any] = []
    _classify(text, _scan_text(_scanner(), text), items.extend)
    return items


def _scan_text(regexp: Any, text: str) -> list[tuple[int, int]]:
    """Match spans of an RE2 object in ``text``, as character offsets."""
    if text.isascii():
        return _scan_spans(regexp, text.encode("ascii"))
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: one '?' each, so character counts hold
        raw = text.encode("utf-8", "replace")
    spans = []
    b_prev = c_prev = 0
    for s, e in _scan_spans(regexp, raw):  # byte -> character offsets, decoding each byte once
        c_s = c_prev + len(raw[b_prev:s].decode("utf-8", "replace"))
        c_e = c_s + len(raw[s:e].decode("utf-8", "replace"))
        spans.append((c_s, c_e))
        b_prev, c_prev = e, c_e
    return spans


def _helper_loop() -> None:
    """Body of the helper process: read (bytes, is_ascii) jobs from stdin, write item lists to stdout."""
    import pickle
    import struct
    import sys

    source, sink = sys.stdin.buffer, sys.stdout.buffer
    while True:
        head = source.read(8)
        if len(head) < 8:
            return
        text = pickle.loads(source.read(struct.unpack("<Q", head)[0]))  # noqa: S301 - our own pipe
        items = _scan_items(text)
        data = pickle.dumps(items, protocol=pickle.HIGHEST_PROTOCOL)
        sink.write(struct.pack("<Q", len(data)) + data)
        sink.flush()


class _Helper:
    """A helper process that scans the second half of large buffers on the other core."""

    _instance: _Helper | None = None
    _lock: Any = None

    def __init__(self) -> None:
        import os
        import subprocess
        import sys

        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self.owner = os.getpid()  # a forked child must not share this helper's pipes
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _HELPER_CODE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )

    @classmethod
    def get(cls) -> _Helper | None:
        import atexit
        import os

        current = cls._instance
        if current is None or current.owner != os.getpid() or current.proc.poll() is not None:
            try:
                cls._instance = cls()
            except (OSError, TypeError, ValueError):  # no usable interpreter binary (embedded Python ...)
                return None
            atexit.register(cls._instance.close)
        return cls._instance

    def submit(self, text: str) -> None:
        import pickle
        import struct

        data = pickle.dumps(text, protocol=pickle.HIGHEST_PROTOCOL)
        assert self.proc.stdin is not None
        self.proc.stdin.write(struct.pack("<Q", len(data)) + data)
        self.proc.stdin.flush()

    def result(self) -> list[Any]:
        import pickle
        import struct

        assert self.proc.stdout is not None
        head = self.proc.stdout.read(8)
        if len(head) < 8:
            raise OSError("the IoC helper process stopped")
        payload = self.proc.stdout.read(struct.unpack("<Q", head)[0])
        items: list[Any] = pickle.loads(payload)  # noqa: S301 - written by our helper process
        return items

    def close(self) -> None:
        import os

        if self.owner == os.getpid() and self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None and self.proc.stdout is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=5)
                self.proc.stdout.close()
            except Exception:  # pragma: no cover - best effort at exit
                self.proc.kill()


def _parallel_ok(size: int) -> bool:
    import os

    if size < PARALLEL_MIN_BYTES or os.environ.get("HUNTBOOK_IOCS_PROCESSES", "1").lower() in (
        "0",
        "false",
        "no",
    ):
        return False
    affinity = getattr(os, "sched_getaffinity", None)
    return (len(affinity(0)) if affinity else (os.cpu_count() or 1)) > 1


def _scan_buffer(text: str) -> tuple[list[Any], int, int]:
    """Scan the joined cells, in two parts on two cores when large; the same result either way.

    Returns the flat item list, the number of its first entries whose offsets are final, and the
    offset to add to the offsets of the rest (the helper's part).
    """
    import threading

    # the helper also (un)pickles its part, so it gets a little less; the cut is at a cell start
    cut = text.find("\n", len(text) * 12 // 25) + 1
    if not _parallel_ok(len(text)) or cut <= 0:
        return _scan_items(text), 0, 0
    if _Helper._lock is None:
        _Helper._lock = threading.Lock()
    if not _Helper._lock.acquire(blocking=False):  # another thread is using the helper
        return _scan_items(text), 0, 0
    try:
        helper = _Helper.get()
        try:
            if helper is None:
                raise OSError("no helper process")
            helper.submit(text[cut:])
        except OSError:
            return _scan_items(text), 0, 0
        first = _scan_items(text[:cut])
        try:
            second = helper.result()
        except Exception:  # the helper died or spoke nonsense: scan its part here
            helper.proc.kill()
            second = _scan_items(text[cut:])
    finally:
        _Helper._lock.release()
    n_first = len(first)
    first.extend(second)
    return first, n_first, cut


# --- input handling -------------------------------------------------------------------------------
def _cell_text(value: Any) -> str | None:
    """A cell as text, or None for missing values; bytes are decoded as UTF-8 with replacement."""
    if isinstance(value, str):
        return value
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, float) and math.isnan(value):
        return None
    import pandas as pd

    if value is pd.NA or value is pd.NaT:
        return None
    return str(value)


def _cells(values: Iterable[Any]) -> list[str | None]:
    return [v if type(v) is str else _cell_text(v) for v in values]


_Source = tuple[Any, "pd.Index", list[str | None]]  # (column name or None, row labels, cell texts)


def _sources(data: Any, columns: str | Sequence[str] | None) -> list[_Source]:
    """Every input column to scan, as ``(column name or None, row labels, cell texts)``."""
    import pandas as pd

    if isinstance(data, (str, bytes, bytearray)):
        return [(None, pd.RangeIndex(1), [_cell_text(data)])]
    if isinstance(data, pd.DataFrame):
        if columns is None:
            names = [
                c
                for c in data.columns
                if pd.api.types.is_string_dtype(data[c]) or pd.api.types.is_object_dtype(data[c])
            ]
        else:
            names = [columns] if isinstance(columns, str) else list(columns)
            missing = [c for c in names if c not in data.columns]
            if missing:
                raise DataError(
                    f"column {missing[0]!r} not found",
                    where=str(missing[0]),
                    hint=f"available columns: {', '.join(map(str, data.columns))}",
                )
        return [(c, data.index, _cells(data[c].tolist())) for c in names]
    if isinstance(data, pd.Series):
        return [(data.name, data.index, _cells(data.tolist()))]
    if isinstance(data, Mapping):
        raise DataError(
            "a mapping is not a supported input", hint="pass a str, a list of str, a Series or a DataFrame"
        )
    if isinstance(data, Iterable):
        cells = _cells(data)
        return [(None, pd.RangeIndex(len(cells)), cells)]
    raise DataError(
        f"cannot extract IoCs from a {type(data).__name__}",
        hint="pass a str, bytes, a list of str, a Series or a DataFrame",
    )


def _types_wanted(ioc_types: str | Iterable[str] | None, extra: Mapping[str, str]) -> set[str]:
    if ioc_types is None:
        return set(IOC_TYPES) | set(extra)
    names = [ioc_types] if isinstance(ioc_types, str) else list(ioc_types)
    wanted = set()
    for name in names:
        key = name if name in extra else _ALIASES.get(str(name).lower(), str(name).lower())
        if key not in IOC_TYPES and key not in extra:
            raise DataError(
                f"unknown IoC type {name!r}",
                where="ioc_types",
                hint=f"choose from {', '.join(IOC_TYPES)} or add it with extra_types",
            )
        wanted.add(key)
    return wanted


class _Buffer:
    """The cells of one column joined by newlines (what is scanned), with each cell's start offset."""

    def __init__(self, cells: list[str | None]) -> None:
        import numpy as np

        parts = [c if c is not None else "" for c in cells]
        self.text = "\n".join(parts)
        self.starts = np.zeros(len(parts), dtype=np.int64)
        if len(parts) > 1:
            lengths = np.fromiter(map(len, parts[:-1]), dtype=np.int64, count=len(parts) - 1)
            np.cumsum(lengths + 1, out=self.starts[1:])

    def locate(self, start: Any, end: Any) -> tuple[Any, Any, Any]:
        """(cell position, start in the cell, end in the cell) of spans in the joined text."""
        import numpy as np

        pos = np.searchsorted(self.starts, start, side="right") - 1
        base = self.starts[pos]
        return pos, start - base, end - base


def _empty_frame(columns: list[str]) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame({c: pd.Series([], dtype="object") for c in columns})
    for c in ("start", "end"):
        frame[c] = frame[c].astype("int64")
    return frame


def _frame(
    labels: pd.Index, column: Any, col_idx: int, pos: Any, named: dict[str, Any], start: Any, end: Any
) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    if isinstance(labels, pd.RangeIndex) and labels.start == 0 and labels.step == 1:
        rows: Any = pos
    else:
        rows = labels.take(pos)
    frame = pd.DataFrame({"row": rows, "column": [column] * len(pos), **named, "start": start, "end": end})
    frame["_pos"] = pos
    frame["_col"] = np.int64(col_idx)
    return frame


def _finish(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    import pandas as pd

    if not frames:
        return _empty_frame(columns)
    if len(frames) == 1:
        out = frames[0]
    else:
        out = pd.concat(frames, ignore_index=True)
        out = out.sort_values(["_pos", "_col", "start"], kind="stable", ignore_index=True)
    return out[columns].reset_index(drop=True)


def extract(
    data: Any,
    columns: str | Sequence[str] | None = None,
    ioc_types: str | Iterable[str] | None = None,
    extra_types: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """IoCs in text: one row per item with ``row, column, ioc_type, value, start, end``.

    Args:
        data: a str, bytes, an iterable of str, a Series, or a DataFrame.
        columns: DataFrame columns to scan (default: every string/object column).
        ioc_types: keep only these types (default: all of ``IOC_TYPES`` plus ``extra_types``).
        extra_types: your own types, ``{"name": RE2 regex}``; each match (group 0) is an item.

    ``row`` is the index label of the source row (the position in a list; 0 for a single string),
    ``column`` the column name (None for a str or list), ``start``/``end`` the span in the original
    text (after UTF-8 decoding for bytes). ``value`` is refanged; dns, email, hashes and ipv6 are
    lower-case. Items come in text order per cell; the host of a URL and the domain of an e-mail
    follow the item they come from. Missing cells are skipped; the input is never modified.

    Example::

        >>> extract("curl hxxp://203.0.113[.]9/x.sh")[["ioc_type", "value"]].values.tolist()
        [['url', 'http://203.0.113.9/x.sh'], ['ipv4', '203.0.113.9']]
    """
    import numpy as np

    extra = dict(extra_types or {})
    for name in extra:
        if name in IOC_TYPES:
            raise DataError(
                f"{name!r} is a built-in IoC type", where="extra_types", hint="choose another name"
            )
    compiled_extra = {name: _compile_extra(name, pattern) for name, pattern in extra.items()}
    wanted = _types_wanted(ioc_types, extra)
    scan_builtin = bool(wanted & set(IOC_TYPES))
    frames = []
    for col_idx, (column, labels, cells) in enumerate(_sources(data, columns)):
        if not any(cells):
            continue
        buf = _Buffer(cells)
        items, n_final, shift = _scan_buffer(buf.text) if scan_builtin else ([], 0, 0)
        helper_part = slice(n_final // 4, len(items) // 4)  # items whose offsets are relative to `shift`
        for name, regexp in compiled_extra.items():
            if name in wanted:
                for s, e in _scan_text(regexp, buf.text):
                    items.extend((name, buf.text[s:e], s, e))
        types, values = items[0::4], items[1::4]
        starts, ends = np.array(items[2::4], dtype=np.int64), np.array(items[3::4], dtype=np.int64)
        del items
        if shift:
            starts[helper_part] += shift
            ends[helper_part] += shift
        if len(wanted) < len(IOC_TYPES) + len(extra):
            keep = np.fromiter((t in wanted for t in types), dtype=bool, count=len(types))
            idx = np.flatnonzero(keep)
            types, values = [types[i] for i in idx], [values[i] for i in idx]
            starts, ends = starts[idx], ends[idx]
        if not types:
            continue
        pos, start, end = buf.locate(starts, ends)
        named = {"ioc_type": list(types), "value": list(values)}
        frames.append(_frame(labels, column, col_idx, pos, named, start, end))
    return _finish(frames, OUTPUT_COLUMNS)


def watch(
    data: Any,
    indicators: Iterable[str],
    columns: str | Sequence[str] | None = None,
    case_sensitive: bool = False,
) -> pd.DataFrame:
    """Rows that contain any of many literal indicators (Aho-Corasick, one pass over the text).

    A match must not be glued to a longer word: ``evil.com`` matches in ``sub.evil.com`` and
    ``"evil.com"`` but not in ``notevil.com``. Defanged indicators are refanged first, and defanged
    spellings in the text (``evil[.]com``, ``hxxp://``, ``a[at]b[.]com``) match too.
    Returns ``row, column, indicator, start, end`` (``indicator`` as given).

    Example::

        >>> watch(["ping 203.0.113.9", "ok"], ["203.0.113.9", "evil.com"]).values.tolist()
        [[0, None, '203.0.113.9', 5, 16]]
    """
    import ahocorasick
    import numpy as np

    automaton = ahocorasick.Automaton()
    by_key: dict[str, list[str]] = {}
    for ind in indicators:
        if not isinstance(ind, str):
            continue
        key = refang(ind.strip())
        if not key or "\n" in key:
            continue
        if not case_sensitive:
            key = _lower_same_length(key)
        for variant in _defanged_variants(key):
            by_key.setdefault(variant, []).append(ind)
    if not by_key:
        return _empty_frame(WATCH_COLUMNS)
    for key in by_key:
        automaton.add_word(key, key)
    automaton.make_automaton()
    frames = []
    for col_idx, (column, labels, cells) in enumerate(_sources(data, columns)):
        parts = [c if c is not None else "" for c in cells]
        text = "\n".join(parts)
        hay = text if case_sensitive else _lower_same_length(text)
        starts = np.zeros(len(parts), dtype=np.int64)
        if len(parts) > 1:
            np.cumsum(
                np.fromiter(map(len, parts[:-1]), dtype=np.int64, count=len(parts) - 1) + 1, out=starts[1:]
            )
        found: list[tuple[str, int, int]] = []
        n = len(hay)
        for last, key in automaton.iter(hay):
            s = last - len(key) + 1
            if s > 0 and _glued(hay[s - 1], key[0]):
                continue
            if last + 1 < n and _glued(hay[last + 1], key[-1]):
                continue
            found.extend((original, s, last + 1) for original in by_key[key])
        if not found:
            continue
        names, s_pos, e_pos = zip(*found, strict=True)
        s_arr = np.array(s_pos, dtype=np.int64)
        pos = np.searchsorted(starts, s_arr, side="right") - 1
        base = starts[pos]
        named = {"indicator": list(names)}
        frames.append(_frame(labels, column, col_idx, pos, named, s_arr - base, np.array(e_pos) - base))
    return _finish(frames, WATCH_COLUMNS)


def _defanged_variants(key: str) -> set[str]:
    """``key`` and the defanged spellings of it most often seen in reports (``[.]``, ``hxxp``, ``[at]``)."""
    variants = {key}
    if "." in key or "@" in key or "http" in key or "ftp" in key:
        variants.add(defang(key))
        variants.add(key.replace(".", "[.]"))
        variants.add(defang(key).replace("[@]", "[at]"))
        variants.add(_defang_scheme(key))
    return variants


def _glued(neighbour: str, edge: str) -> bool:
    """A match edge continues a word of the text (``notevil.com`` for ``evil.com``)."""
    return (neighbour.isalnum() or neighbour == "_") and (edge.isalnum() or edge == "_")


def _lower_same_length(text: str) -> str:
    """Lower-case without changing the length (so spans stay valid)."""
    if text.isascii():
        return text.lower()
    return "".join(low if len(low := ch.lower()) == 1 else ch for ch in text)
