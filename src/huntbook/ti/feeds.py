"""Offline threat intelligence: match IoCs against the analyst's own indicator files (air-gapped SOCs).

::

    hb.ti.lookup(iocs, providers=["local_feeds"], settings={"local_feeds": {"paths": ["~/feeds"]}})

or in ``huntbook.yaml``: ``providers: {local_feeds: {paths: [~/feeds, ./case-42/iocs.csv]}}``.

Settings: ``paths`` (files or folders, a list or one string; ``~`` is expanded, relative paths are
relative to the working folder; folders are read recursively, hidden files and files of other
extensions than ``.csv .tsv .txt .lst .list .ioc .iocs .json .stix .misp`` and their ``.gz`` forms
skipped), ``default_severity`` (``high``: a feed hit with no severity of its own) and
``match_subdomains`` (True).

Formats are told from the content, not the extension:

* **CSV/TSV** (``,`` ``;`` ``|`` or tab) with a header naming the value column (``indicator``,
  ``ioc``, ``value``, ``ip``, ``domain``, ``url``, ``hash`` ..., any case; a header in the last
  ``#`` comment line, as abuse.ch exports have, is read too) and optionally ``type``,
  ``severity``/``confidence``, ``description``/``comment``, ``source`` and ``reference`` columns.
* **Plain lists**: one indicator per line (its first field; ``0.0.0.0 host`` hosts-file lines give
  the host), ``#`` comments, defanged forms (``evil[.]example``, ``hxxp://``) refanged.
* **STIX 2.1** bundles (or bare arrays of STIX objects): ``indicator`` objects with ``pattern_type``
  ``stix`` (``=``, ``IN`` and, for addresses, ``ISSUBSET`` comparisons on ``ipv4-addr``,
  ``ipv6-addr``, ``domain-name``, ``url``, ``email-addr``, ``*_ref.value`` and ``file:hashes``,
  joined by ``OR``/``AND``), and ``ipv4-addr``, ``ipv6-addr``, ``domain-name``, ``url``,
  ``email-addr`` and ``file`` observables. Name, description, labels, confidence, ``valid_until``
  and the creating identity are carried; the object id is the reference.
* **MISP** event exports: ``{"Event": ...}``, ``{"response": [{"Event": ...}]}``, arrays of
  events and attribute searches (``{"response": {"Attribute": [...]}}``), with event and object
  attributes of the IP, domain/hostname, URL, hash and e-mail types, composite ones
  (``domain|ip``, ``ip-dst|port``, ``filename|sha256`` ...) split; the event uuid is the reference.

Decisions:

* Severity: the entry's ``severity`` (``critical`` counts as high), else its confidence (0-100:
  70+ high, 40+ medium, 1+ low, 0 info), else the MISP event's ``threat_level_id`` (1 high,
  2 medium, 3 low), else ``default_severity``. STIX indicators typed ``benign`` are info.
  Capped at **low**: expired STIX indicators (``valid_until`` in the past; kept for retro-hunts,
  the summary says when they expired) and MISP attributes with ``to_ids`` false. Capped at
  **medium**: partial STIX matches, where one IoC cannot meet the whole pattern (observations
  joined by ``AND``/``FOLLOWEDBY``, ``REPEATS``, or a comparison ``AND``ed with a port, a file
  name ...). Revoked STIX indicators, negated comparisons, deleted MISP attributes and non-STIX
  patterns (YARA, Sigma ...) are skipped.
* Matching is on normalised values (IPv6 compressed, lower-case domains without the trailing dot,
  lower-case hashes and e-mail addresses, URLs with lower-case scheme and host and ``/`` for an
  empty path). CIDR entries (``10.0.0.0/8``) match the addresses inside. With
  ``match_subdomains``, a ``dns`` IoC also matches entries of its parent domains
  (``evil.example`` matches ``a.evil.example``; the summary says so).
* Several hits: severity is the highest, the summary the most severe hit's (plus a count), ``raw``
  the JSON list of every matched entry.
* No ``paths`` configured: every IoC is ``not_found`` with the summary "no feeds configured
  (providers.local_feeds.paths)", so the provider can stay among the default ones
  (``default = True``). A file that cannot be read or parsed is skipped with a :class:`FeedWarning`
  and listed in :attr:`LocalFeeds.feed_errors` (the files read are in :attr:`LocalFeeds.feeds`);
  the others still match. When no file at all could be read, every IoC is an ``error`` naming
  the reason.

Feeds are read and indexed once per provider instance, on the first look-up (:meth:`LocalFeeds.reload`
makes the next one read them again); look-ups are dictionary probes (one per parent domain or CIDR
prefix length), not scans: see ``benchmarks/bench_feeds.py``.
"""

from __future__ import annotations

import csv
import gzip
import ipaddress
import json
import re
import socket
import threading
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from huntbook.errors import ConfigError
from huntbook.iocs import refang
from huntbook.ti import TI_TYPES
from huntbook.ti.base import SEVERITIES, Provider, Result, _raw_text, severity_rank
from huntbook.ti.values import canonical as _canonical
from huntbook.ti.values import maybe_defanged as _maybe_defanged
from huntbook.ti.values import normalise as _normalise

if TYPE_CHECKING:
    from huntbook.http import ResponseCache

__all__ = ["FeedError", "FeedFile", "FeedWarning", "LocalFeeds"]

_GROUPS = {
    "ipv4": "ip",
    "ipv6": "ip",
    "cidr": "ip",
    "dns": "dns",
    "url": "url",
    "email": "email",
    "md5": "hash",
    "sha1": "hash",
    "sha256": "hash",
}
_PREFIXES = {kind: f"{group}:" for kind, group in _GROUPS.items()}
_FEED_SUFFIXES = frozenset(".csv .tsv .txt .lst .list .ioc .iocs .json .stix .misp".split())
_NO_FEEDS = "no feeds configured (providers.local_feeds.paths)"
_HOSTS_FILE_SINKS = frozenset(("0.0.0.0", "127.0.0.1", "::", "::1"))  # noqa: S104 - blocklist lines, no binding
_IPV4_PORT = re.compile(r"(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}")  # ThreatFox's ip:port

# CSV columns, case-insensitive; the first one present wins
_VALUE_COLUMNS = (
    "indicator",
    "ioc",
    "value",
    "ioc_value",
    "indicator_value",
    "observable",
    "ip",
    "ip_address",
    "ipaddress",
    "dst_ip",
    "domain",
    "hostname",
    "host",
    "fqdn",
    "url",
    "hash",
    "sha256",
    "sha256_hash",
    "sha1",
    "sha1_hash",
    "md5",
    "md5_hash",
    "email",
)
_TYPE_COLUMNS = ("type", "ioc_type", "indicator_type", "kind")
_SEVERITY_COLUMNS = ("severity", "threat_level", "risk")
_CONFIDENCE_COLUMNS = ("confidence", "confidence_level", "score")
_DESCRIPTION_COLUMNS = ("description", "comment", "name", "threat", "threat_type", "malware", "tags")
_SOURCE_COLUMNS = ("source", "reporter", "provider", "feed")
_REFERENCE_COLUMNS = ("reference", "link", "ref", "url_reference")

# a feed's type names (CSV ``type`` column, MISP attribute types) -> value group
_TYPE_GROUPS = {
    **dict.fromkeys(
        "ip ipv4 ipv6 ip-addr ipv4-addr ipv6-addr ip-src ip-dst ip_address ipaddress address cidr network "
        "subnet netblock ip:port".split(),
        "ip",
    ),
    **dict.fromkeys("dns domain domain-name domainname hostname host fqdn".split(), "dns"),
    **dict.fromkeys("url uri".split(), "url"),
    **dict.fromkeys(
        "email email-addr e-mail mail email-src email-dst email-reply-to whois-registrant-email".split(),
        "email",
    ),
    **dict.fromkeys(
        "md5 sha1 sha-1 sha256 sha-256 hash filehash file-hash file_hash md5_hash sha1_hash sha256_hash "
        "filehash-md5 filehash-sha1 filehash-sha256".split(),
        "hash",
    ),
}
_SEVERITY_WORDS = {
    **dict.fromkeys(("info", "informational", "none", "benign", "unknown"), "info"),
    "low": "low",
    **dict.fromkeys(("medium", "moderate"), "medium"),
    **dict.fromkeys(("high", "critical", "severe", "malicious"), "high"),
}
_MISP_THREAT_LEVELS = {"1": "high", "2": "medium", "3": "low"}
_STIX_OBSERVABLES = {
    "ipv4-addr": "ip",
    "ipv6-addr": "ip",
    "domain-name": "dns",
    "url": "url",
    "email-addr": "email",
}
_STIX_CARRIED = ("name", "labels", "indicator_types", "valid_from", "valid_until")
_STIX_HASHES = frozenset(("md5", "sha-1", "sha1", "sha-256", "sha256"))


class FeedWarning(UserWarning):
    """A feed file was skipped (unreadable, broken JSON, unknown format)."""


@dataclass(frozen=True)
class FeedError:
    """A feed file that was skipped, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class FeedFile:
    """A feed file that was read: its format, the entries indexed and the records skipped."""

    path: str
    format: str
    entries: int
    skipped: int


# ----------------------------------------------------------------------------------------------- values


def _severity_word(value: Any) -> str | None:
    """A severity from a feed's word (``critical`` -> high) or number (a 0-100 confidence)."""
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip().lower()
    if text in _SEVERITY_WORDS:
        return _SEVERITY_WORDS[text]
    return _confidence_severity(text)


def _confidence_severity(value: Any) -> str | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not 0 <= number <= 100:
        return None
    return "high" if number >= 70 else "medium" if number >= 40 else "low" if number >= 1 else "info"


def _cap(severity: str, ceiling: str) -> str:
    return severity if severity_rank(severity) <= severity_rank(ceiling) else ceiling


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("0", "false", "no", "")
    return bool(value)


# ----------------------------------------------------------------------------------------------- entries


@dataclass(slots=True)
class _Entry:
    """One indicator of one feed, normalised."""

    kind: str  # a TI type or "cidr"
    value: str  # normalised
    feed: str  # the file name
    severity: str
    description: str = ""
    source: str = ""
    reference: str = ""
    extra: dict[str, Any] | None = None  # labels, confidence, expired, partial, to_ids, event ...

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "feed": self.feed,
            "value": self.value,
            "type": self.kind,
            "severity": self.severity,
        }
        for name in ("description", "source", "reference"):
            if getattr(self, name):
                out[name] = getattr(self, name)
        if self.extra:
            out.update(self.extra)
        return out

    def summary(self) -> str:
        text = f"in feed {self.feed}"
        if self.description:
            text += f": {self.description}"
        if self.source:
            text += f" (source: {self.source})"
        extra = self.extra or {}
        if extra.get("expired"):
            text += f" (expired {extra.get('valid_until')})"
        if extra.get("partial"):
            text += " (part of a compound pattern)"
        if extra.get("to_ids") is False:
            text += " (to_ids: false)"
        return text


class _Reader:
    """Builds the entries of one file; ``skipped`` counts records that held no usable indicator."""

    def __init__(self, path: Path, default_severity: str, now: datetime) -> None:
        self.path = path
        self.feed = path.name
        self.where = str(path)
        self.default = default_severity
        self.now = now
        self.entries: list[_Entry] = []
        self.skipped = 0

    def add(
        self,
        raw: Any,
        *,
        group: str | None = None,
        severity: str | None = None,
        description: str = "",
        source: str = "",
        reference: str = "",
        extra: dict[str, Any] | None = None,
        defanged: bool = True,
    ) -> bool:
        """Index one value (of ``group`` if the feed says which); False (and counted) when unusable."""
        text = raw.strip() if isinstance(raw, str) else "" if raw is None else str(raw).strip()
        if defanged and _maybe_defanged(text):
            text = refang(text)
        if ":" in text and text[0].isdigit():
            with_port = _IPV4_PORT.fullmatch(text)
            if with_port is not None:
                text = with_port.group(1)
        found = _normalise(text)
        if found is None or (group is not None and _GROUPS[found[0]] != group):
            self.skipped += 1
            return False
        kind, value = found
        self.entries.append(
            _Entry(
                kind,
                value,
                self.feed,
                severity or self.default,
                description,
                source,
                reference or self.where,
                extra,
            )
        )
        return True

    # -- text: CSV/TSV and plain lists -----------------------------------------------------------
    def text(self, text: str) -> str:
        lines = text.splitlines()
        data = [i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")]
        if not data:
            return "list"
        first, head = data[0], lines[data[0]]
        delimiter = next((d for d in ("\t", ",", ";", "|") if d in head), None)
        fmt = "tsv" if delimiter == "\t" else "csv"
        header = _header(head, delimiter or ",")
        if header is not None:
            self._csv([lines[i] for i in data[1:]], delimiter or ",", header)
            return fmt
        comment = lines[first - 1].lstrip().lstrip("#") if first else ""  # abuse.ch: "# id,dateadded,url,..."
        header = _header(comment, delimiter) if delimiter is not None and delimiter in comment else None
        if header is not None:
            self._csv([lines[i] for i in data], delimiter or ",", header)
            return fmt
        sample = [lines[i] for i in data[:20]]
        if sum(_normalise(refang(_list_token(line))) is not None for line in sample) * 2 > len(sample):
            for i in data:
                token = _list_token(lines[i])
                if token:
                    self.add(token)
            return "list"
        if delimiter is not None:
            firsts = [
                next(csv.reader([line], delimiter=delimiter), [""])[0].strip().strip('"') for line in sample
            ]
            if sum(_normalise(refang(value)) is not None for value in firsts) * 2 > len(firsts):
                self._csv([lines[i] for i in data], delimiter, {"value": 0})
                return fmt
        raise ValueError(
            "unknown format: no value column (indicator, ioc, value, ip, domain, url, hash ...) "
            "and not one indicator per line"
        )

    def _csv(self, lines: list[str], delimiter: str, columns: Mapping[str, int]) -> None:
        width = max(columns.values()) + 1
        value_at = columns["value"]
        roles = [(role, columns[role]) for role in ("type", "severity", "confidence") if role in columns]
        texts = {role: columns[role] for role in ("description", "source", "reference") if role in columns}
        for row in csv.reader(lines, delimiter=delimiter, skipinitialspace=True):
            if len(row) < width:
                row = row + [""] * (width - len(row))
            value = row[value_at].strip()
            if not value:
                self.skipped += 1
                continue
            cells = {role: row[index].strip() for role, index in roles}
            group: str | None = None
            type_name = cells.get("type", "").lower()
            if type_name:
                group = _TYPE_GROUPS.get(type_name) or _TYPE_GROUPS.get(type_name.replace("_", "-"))
                if group is None:  # a type no TI look-up asks about (filename, mutex ...)
                    self.skipped += 1
                    continue
            self.add(
                value,
                group=group,
                severity=_severity_word(cells.get("severity"))
                or _confidence_severity(cells.get("confidence")),
                description=row[texts["description"]].strip() if "description" in texts else "",
                source=row[texts["source"]].strip() if "source" in texts else "",
                reference=row[texts["reference"]].strip() if "reference" in texts else "",
            )

    # -- STIX 2.1 --------------------------------------------------------------------------------
    def stix(self, objects: Sequence[Any]) -> None:
        names = {
            str(obj.get("id")): obj.get("name", "")
            for obj in objects
            if isinstance(obj, Mapping) and obj.get("type") == "identity"
        }
        for obj in objects:
            if not isinstance(obj, Mapping):
                self.skipped += 1
                continue
            kind = obj.get("type")
            creator = obj.get("created_by_ref")
            source = str(names.get(creator, "") or "") if isinstance(creator, str) else ""
            if kind == "indicator":
                self._stix_indicator(obj, source)
            elif kind in _STIX_OBSERVABLES:
                self.add(
                    obj.get("value"),
                    group=_STIX_OBSERVABLES[str(kind)],
                    description=f"STIX {kind} observable",
                    source=source,
                    reference=str(obj.get("id", "")),
                    defanged=False,
                )
            elif kind == "file":
                hashes = obj.get("hashes") or {}
                found = False
                for algorithm, digest in hashes.items() if isinstance(hashes, Mapping) else ():
                    if str(algorithm).lower() in _STIX_HASHES:
                        found |= self.add(
                            digest,
                            group="hash",
                            description=f"STIX file {obj.get('name', '')}".rstrip(),
                            source=source,
                            reference=str(obj.get("id", "")),
                            defanged=False,
                        )
                if not found:
                    self.skipped += 1

    def _stix_indicator(self, obj: Mapping[str, Any], source: str) -> None:
        pattern = obj.get("pattern")
        if obj.get("revoked") or obj.get("pattern_type", "stix") != "stix" or not isinstance(pattern, str):
            self.skipped += 1
            return
        try:
            values, partial = _pattern_values(pattern)
        except ValueError:
            self.skipped += 1
            return
        if not values:
            self.skipped += 1
            return
        types = [str(t).lower() for t in obj.get("indicator_types") or ()]
        severity = _confidence_severity(obj.get("confidence")) or (
            "info" if "benign" in types else self.default
        )
        extra: dict[str, Any] = {"pattern": pattern}
        extra.update((name, obj[name]) for name in _STIX_CARRIED if obj.get(name))
        if obj.get("confidence") is not None:
            extra["confidence"] = obj["confidence"]
        until = _stix_time(obj.get("valid_until"))
        if until is not None and until < self.now:
            extra["expired"] = True
            severity = _cap(severity, "low")
        if partial:
            extra["partial"] = True
            severity = _cap(severity, "medium")
        description = str(obj.get("name") or obj.get("description") or "STIX indicator")
        labels = obj.get("labels")
        if labels and isinstance(labels, list):
            description += f" [{', '.join(map(str, labels))}]"
        for group, value in values:
            self.add(
                value,
                group=group,
                severity=severity,
                description=description,
                source=source,
                reference=str(obj.get("id", "")),
                extra=extra,
                defanged=False,
            )

    # -- MISP ------------------------------------------------------------------------------------
    def misp(self, events: Iterable[Mapping[str, Any]], attributes: Iterable[Mapping[str, Any]] = ()) -> None:
        for event in events:
            found = list(_misp_attributes(event))
            self._misp_event(event, found)
        for attribute in attributes:
            context = attribute.get("Event")
            self._misp_event(context if isinstance(context, Mapping) else {}, [(attribute, "")])

    def _misp_event(self, event: Mapping[str, Any], attributes: list[tuple[Mapping[str, Any], str]]) -> None:
        level = _MISP_THREAT_LEVELS.get(str(event.get("threat_level_id", "")).strip())
        org = event.get("Orgc") or event.get("Org") or {}
        source = str(org.get("name", "")) if isinstance(org, Mapping) else ""
        info = str(event.get("info", "") or "MISP event")
        tags = [
            str(t.get("name")) for t in event.get("Tag") or () if isinstance(t, Mapping) and t.get("name")
        ]
        for attribute, object_name in attributes:
            if _truthy(attribute.get("deleted", False)):
                self.skipped += 1
                continue
            misp_type, value = str(attribute.get("type", "")), str(attribute.get("value", ""))
            composite = "|" in misp_type
            types = misp_type.split("|") if composite else [misp_type]
            values = value.split("|") if composite else [value]
            pairs = [(t, v) for t, v in zip(types, values, strict=False) if t in _TYPE_GROUPS]
            if len(types) != len(values) or not pairs:
                self.skipped += 1
                continue
            to_ids = _truthy(attribute.get("to_ids", True))
            severity = level or self.default
            if not to_ids:
                severity = _cap(severity, "low")
            comment = str(attribute.get("comment", "") or "")
            description = info + (f" - {comment}" if comment else "")
            extra: dict[str, Any] = {
                "misp_event": event.get("uuid") or event.get("id"),
                "misp_attribute": attribute.get("uuid"),
                "misp_type": attribute.get("type"),
                "category": attribute.get("category"),
                "to_ids": to_ids,
            }
            if object_name:
                extra["misp_object"] = object_name
            if tags:
                extra["tags"] = tags
            extra = {k: v for k, v in extra.items() if v not in (None, "")}
            for part_type, part in pairs:
                self.add(
                    part,
                    group=_TYPE_GROUPS[part_type],
                    severity=severity,
                    description=description,
                    source=source,
                    reference=str(event.get("uuid") or ""),
                    extra=extra,
                )


def _list_token(line: str) -> str:
    """The indicator of a plain-list line: its first field, without a trailing comment."""
    text = line.strip()
    if not text or text.startswith("#"):
        return ""
    fields = text.split("#", 1)[0].split() if " #" in text or "\t#" in text else text.split()
    if not fields:
        return ""
    if len(fields) > 1 and fields[0] in _HOSTS_FILE_SINKS:
        return fields[1]
    return fields[0]


def _header(line: str, delimiter: str) -> dict[str, int] | None:
    """The column positions of a CSV header line, or None when it names no value column."""
    fields = next(csv.reader([line], delimiter=delimiter, skipinitialspace=True), [])
    names = [name.strip().strip('"').strip().lower() for name in fields]
    positions: dict[str, int] = {}
    for role, candidates in (
        ("value", _VALUE_COLUMNS),
        ("type", _TYPE_COLUMNS),
        ("severity", _SEVERITY_COLUMNS),
        ("confidence", _CONFIDENCE_COLUMNS),
        ("description", _DESCRIPTION_COLUMNS),
        ("source", _SOURCE_COLUMNS),
        ("reference", _REFERENCE_COLUMNS),
    ):
        for candidate in candidates:
            if candidate in names and names.index(candidate) not in positions.values():
                positions[role] = names.index(candidate)
                break
    return positions if "value" in positions else None


def _stix_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _misp_attributes(event: Mapping[str, Any]) -> Iterator[tuple[Mapping[str, Any], str]]:
    for attribute in event.get("Attribute") or ():
        if isinstance(attribute, Mapping):
            yield attribute, ""
    for obj in event.get("Object") or ():
        if isinstance(obj, Mapping):
            for attribute in obj.get("Attribute") or ():
                if isinstance(attribute, Mapping):
                    yield attribute, str(obj.get("name", ""))


# ------------------------------------------------------------------------------------------ STIX patterns

_PATTERN_TOKEN = re.compile(
    r"""\s+
    |(?P<string>'(?:[^'\\]|\\.)*')
    |(?P<literal>[thb]'[^']*')
    |(?P<path>[a-z0-9][a-z0-9-]*:(?:[\w-]+|'[^']*')(?:\.(?:[\w-]+|'[^']*')|\[(?:\d+|\*)\])*)
    |(?P<word>[A-Za-z_]+)
    |(?P<number>-?\d+(?:\.\d+)?)
    |(?P<op>!=|<=|>=|=|<|>|\[|\]|\(|\)|,)""",
    re.VERBOSE,
)


_ESCAPE = re.compile(r"\\(.)")
_SIMPLE_PATTERN = re.compile(r"\[\s*([a-z0-9-]+:[\w.'-]+)\s*=\s*('(?:[^'\\]|\\.)*')\s*\]")


def _tokens(pattern: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    position = 0
    while position < len(pattern):
        match = _PATTERN_TOKEN.match(pattern, position)
        if match is None:
            raise ValueError(f"unexpected {pattern[position : position + 10]!r} in STIX pattern")
        position = match.end()
        if match.lastgroup:
            out.append((match.lastgroup, match.group(match.lastgroup)))
    return out


def _unquote(literal: str) -> str:
    """A STIX string literal's text (``\\'`` and ``\\\\`` escapes undone)."""
    text = literal[1:-1]
    return _ESCAPE.sub(r"\1", text) if "\\" in text else text


def _path_group(path: str) -> str | None:
    """The value group an object path compares (``ip``, ``dns``, ``hash`` ...), ``*`` for any, or None."""
    kind, _, prop = path.partition(":")
    if prop == "value" and kind in _STIX_OBSERVABLES:
        return _STIX_OBSERVABLES[kind]
    if kind in ("file", "artifact") and prop.startswith("hashes."):
        return "hash" if prop[len("hashes.") :].strip("'").lower() in _STIX_HASHES else None
    if re.fullmatch(r"(?:[\w-]+\.)*[\w-]+_refs?(?:\[(?:\d+|\*)\])?\.value", prop):
        return "*"
    return None


def _pattern_values(pattern: str) -> tuple[list[tuple[str | None, str]], bool]:
    """The values an IoC can match in a STIX pattern, and whether the match is partial.

    Partial: observations joined by ``AND``/``FOLLOWEDBY`` or ``REPEATS`` (one IoC is one
    observation), or a comparison ``AND``ed with a condition no IoC meets (a port, a file name).
    """
    simple = _SIMPLE_PATTERN.fullmatch(pattern)  # "[ipv4-addr:value = '198.51.100.7']", most feeds
    if simple is not None:
        group = _path_group(simple.group(1))
        if group is not None:
            return [(None if group == "*" else group, _unquote(simple.group(2)))], False
    tokens = _tokens(pattern)
    values: list[tuple[str | None, str]] = []
    depth = 0
    several = conjunction = other = False
    index = 0
    while index < len(tokens):
        kind, text = tokens[index]
        if text in ("[", "]"):
            depth += 1 if text == "[" else -1
        elif kind == "word" and text in ("AND", "FOLLOWEDBY", "REPEATS"):
            several |= depth == 0
            conjunction |= depth > 0
        if kind != "path":
            index += 1
            continue
        negated = index + 1 < len(tokens) and tokens[index + 1] == ("word", "NOT")
        at = index + 2 if negated else index + 1
        op = tokens[at][1] if at < len(tokens) else ""
        literals: list[str] = []
        end = at + 1
        if op == "IN" and end < len(tokens) and tokens[end][1] == "(":
            end += 1
            while end < len(tokens) and tokens[end][1] != ")":
                if tokens[end][0] == "string":
                    literals.append(_unquote(tokens[end][1]))
                end += 1
        elif end < len(tokens) and tokens[end][0] == "string":
            literals.append(_unquote(tokens[end][1]))
        group = _path_group(text)
        usable = not negated and (op in ("=", "IN") or (op == "ISSUBSET" and group in ("ip", "*")))
        if group is not None and usable and literals:
            values.extend(((None if group == "*" else group), literal) for literal in literals)
        elif not (text.endswith("type") and op == "="):  # "dst_ref.type = 'ipv4-addr'" says nothing new
            other = True
        index = end + 1
    return values, several or (conjunction and other)


# ----------------------------------------------------------------------------------------------- index


class _Index:
    """Entries by ``group:value`` key, CIDR blocks by IP version, prefix length and network number."""

    def __init__(self, entries: Iterable[_Entry]) -> None:
        self.exact: dict[str, list[_Entry]] = {}
        networks: dict[tuple[int, int], dict[int, list[_Entry]]] = {}
        self.size = 0
        exact = self.exact
        for entry in entries:
            self.size += 1
            if entry.kind == "cidr":
                network = ipaddress.ip_network(entry.value)
                bits = network.max_prefixlen - network.prefixlen
                by_prefix = networks.setdefault((network.version, network.prefixlen), {})
                by_prefix.setdefault(int(network.network_address) >> bits, []).append(entry)
                continue
            key = _PREFIXES[entry.kind] + entry.value
            same = exact.get(key)
            if same is None:
                exact[key] = [entry]
            else:
                same.append(entry)
        # per IP version: (bits to shift away, {network number: entries}), longest prefix first
        self.blocks: dict[int, list[tuple[int, dict[int, list[_Entry]]]]] = {
            version: [
                ((32 if version == 4 else 128) - prefix, networks[(version, prefix)])
                for prefix in sorted((p for v, p in networks if v == version), reverse=True)
            ]
            for version in (4, 6)
        }

    def match(self, kind: str, value: str, subdomains: bool) -> list[tuple[_Entry, str]]:
        """The entries ``value`` (normalised, of ``kind``) hits, with how (``""`` for an exact hit)."""
        exact = self.exact
        found = exact.get(_PREFIXES[kind] + value)
        hits = [(entry, "") for entry in found] if found else []
        if kind == "dns":
            if not subdomains:
                return hits
            dot = value.find(".")
            while dot >= 0:
                following = value.find(".", dot + 1)
                if following < 0:  # only the top-level domain is left
                    break
                above = exact.get("dns:" + value[dot + 1 :])
                if above:
                    hits.extend((entry, f"parent domain {value[dot + 1 :]}") for entry in above)
                dot = following
        elif kind == "ipv4" and self.blocks[4]:
            number = int.from_bytes(socket.inet_aton(value), "big")
            for shift, table in self.blocks[4]:
                block = table.get(number >> shift)
                if block:
                    hits.extend((entry, f"in {entry.value}") for entry in block)
        elif kind == "ipv6" and self.blocks[6]:
            number = int(ipaddress.IPv6Address(value))
            for shift, table in self.blocks[6]:
                block = table.get(number >> shift)
                if block:
                    hits.extend((entry, f"in {entry.value}") for entry in block)
        return hits


# ----------------------------------------------------------------------------------------------- provider


class LocalFeeds(Provider):
    """Matches IoCs against local indicator files: CSV/TSV, plain lists, STIX 2.1 bundles, MISP exports."""

    name: ClassVar[str] = "local_feeds"
    description: ClassVar[str] = "local indicator files (CSV/TSV, lists, STIX 2.1, MISP exports), offline"
    ioc_types: ClassVar[tuple[str, ...]] = TI_TYPES
    online: ClassVar[bool] = False
    default: ClassVar[bool] = True

    def __init__(
        self, settings: Mapping[str, Any] | None = None, *, cache: ResponseCache | None = None
    ) -> None:
        super().__init__(settings, cache=cache)
        self.paths = _paths(self.settings.get("paths"))
        self.default_severity = str(self.settings.get("default_severity", "high")).lower()
        if self.default_severity not in SEVERITIES:
            raise ConfigError(
                f"unknown severity {self.default_severity!r}",
                where="providers.local_feeds.default_severity",
                hint=f"choose from {', '.join(SEVERITIES)}",
            )
        self.match_subdomains = _truthy(self.settings.get("match_subdomains", True))
        self.feeds: list[FeedFile] = []
        self.feed_errors: list[FeedError] = []
        self._index: _Index | None = None
        self._lock = threading.Lock()

    # -- loading ---------------------------------------------------------------------------------
    def reload(self) -> None:
        """Forget the loaded feeds; the next look-up reads them again."""
        with self._lock:
            self._index = None

    def load(self) -> None:
        """Read and index the feeds now (look-ups do it on first use)."""
        self._loaded()

    def _loaded(self) -> _Index:
        with self._lock:
            if self._index is None:
                self._index = self._read_all()
            return self._index

    def _read_all(self) -> _Index:
        self.feeds, self.feed_errors = [], []
        now = datetime.now(UTC)
        entries: list[_Entry] = []
        for path in self._files():
            if isinstance(path, FeedError):
                self._fail(path)
                continue
            reader = _Reader(path, self.default_severity, now)
            try:
                kind = _read_file(reader)
            except (
                OSError,
                ValueError,
                EOFError,
                csv.Error,
                TypeError,
                AttributeError,
                KeyError,
                RecursionError,
            ) as exc:
                self._fail(FeedError(str(path), _reason(exc)))
                continue
            entries.extend(reader.entries)
            self.feeds.append(FeedFile(str(path), kind, len(reader.entries), reader.skipped))
        return _Index(entries)

    def _fail(self, error: FeedError) -> None:
        self.feed_errors.append(error)
        warnings.warn(f"local_feeds: skipped {error.path}: {error.reason}", FeedWarning, stacklevel=5)

    def _files(self) -> Iterator[Path | FeedError]:
        for path in self.paths:
            if path.is_dir():
                for child in sorted(path.rglob("*")):
                    relative = child.relative_to(path).parts
                    if (
                        child.is_file()
                        and not any(part.startswith(".") for part in relative)
                        and _feed_suffix(child)
                    ):
                        yield child
            elif path.is_file():
                yield path
            else:
                yield FeedError(str(path), "no such file or folder")

    # -- look-ups --------------------------------------------------------------------------------
    def lookup_many(
        self, items: Sequence[tuple[str, str]], *, progress: bool | None = None, workers: int = 8
    ) -> list[Result]:
        """One result per ``(ioc, ioc_type)``: ``ok`` with the hits, ``not_found``, or ``unsupported``."""
        if not self.paths:
            return [
                self.result(ioc, kind, "not_found", severity="info", summary=_NO_FEEDS)
                if kind in TI_TYPES
                else self._unsupported(ioc, kind)
                for ioc, kind in items
            ]
        index = self._loaded()
        if not self.feeds and self.feed_errors:
            first = self.feed_errors[0]
            reason = f"no feed could be read ({len(self.feed_errors)} skipped; {first.path}: {first.reason})"
            return [
                self.result(ioc, kind, "error", summary=reason)
                if kind in TI_TYPES
                else self._unsupported(ioc, kind)
                for ioc, kind in items
            ]
        absent = f"not in any feed ({len(self.feeds)} files, {index.size} entries)"
        out: list[Result] = []
        append = out.append
        for ioc, kind in items:
            if kind not in TI_TYPES:
                append(self._unsupported(ioc, kind))
                continue
            text = str(ioc).strip()
            value = _canonical(kind, text) or _canonical(kind, refang(text))
            hits = index.match(kind, value, self.match_subdomains) if value is not None else []
            if not hits:
                append(Result(self.name, ioc, kind, "not_found", "info", absent))
                continue
            append(self._hit(ioc, kind, hits))
        return out

    def _unsupported(self, ioc: str, kind: str) -> Result:
        return self.result(ioc, kind, "unsupported", summary=f"{self.name} has no {kind} look-up")

    def _hit(self, ioc: str, kind: str, hits: list[tuple[_Entry, str]]) -> Result:
        ranked = sorted(hits, key=lambda hit: (-severity_rank(hit[0].severity), hit[1] != ""))
        top, how = ranked[0]
        summary = top.summary() + (f" [{how}]" if how else "")
        if len(ranked) > 1:
            feeds = sorted({entry.feed for entry, _ in ranked})
            summary += f" (+{len(ranked) - 1} more in {', '.join(feeds)})"
        raw = [dict(entry.as_dict(), matched=how or "exact") for entry, how in ranked]
        return self.result(
            ioc,
            kind,
            "ok",
            severity=top.severity,
            summary=summary,
            reference=top.reference,
            raw=_raw_text(raw),
        )


def _paths(value: Any) -> list[Path]:
    if value is None or value == "":
        return []
    items = [value] if isinstance(value, str | Path) else list(value)
    out = []
    for item in items:
        text = str(getattr(item, "reference", item)).strip()  # a Secret-looking string stays a path
        if text:
            out.append(Path(text).expanduser())
    return out


def _feed_suffix(path: Path) -> bool:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    return bool(suffixes) and suffixes[-1] in _FEED_SUFFIXES


def _reason(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"broken JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
    if isinstance(exc, gzip.BadGzipFile | EOFError):
        return "broken gzip file"
    if isinstance(exc, OSError):
        return f"cannot read ({exc.strerror or exc.__class__.__name__})"
    if isinstance(exc, ValueError):
        return str(exc)
    return f"malformed content ({exc.__class__.__name__}: {exc})"


def _read_file(reader: _Reader) -> str:
    """Index one file into ``reader``; its format, or ValueError naming why it is no feed."""
    data = reader.path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if b"\x00" in data[:4096]:
        raise ValueError("unknown format: a binary file")
    text = data.decode("utf-8-sig", errors="replace")
    lead = text.lstrip()[:1]
    if lead == "{":
        return _read_json(reader, json.loads(text))
    if lead == "[":
        try:
            document = json.loads(text)
        except json.JSONDecodeError:
            return reader.text(text)  # a list starting with "[2001:db8::1]"
        return _read_json(reader, document)
    return reader.text(text)


def _read_json(reader: _Reader, document: Any) -> str:
    if isinstance(document, Mapping):
        objects = document.get("objects")
        if document.get("type") == "bundle" or (isinstance(objects, list) and _stix_objects(objects)):
            reader.stix(document.get("objects") or [])
            return "stix"
        if isinstance(document.get("Event"), Mapping):
            reader.misp([document["Event"]])
            return "misp"
        response = document.get("response")
        if isinstance(response, list):
            reader.misp(
                item["Event"]
                for item in response
                if isinstance(item, Mapping) and isinstance(item.get("Event"), Mapping)
            )
            return "misp"
        if isinstance(response, Mapping) and isinstance(response.get("Attribute"), list):
            reader.misp((), (a for a in response["Attribute"] if isinstance(a, Mapping)))
            return "misp"
        if isinstance(document.get("Attribute"), list) and "info" in document:
            reader.misp([document])
            return "misp"
    elif isinstance(document, list) and document and all(isinstance(item, Mapping) for item in document):
        if all(isinstance(item.get("Event"), Mapping) for item in document):
            reader.misp(item["Event"] for item in document)
            return "misp"
        if _stix_objects(document):
            reader.stix(document)
            return "stix"
    raise ValueError("unknown format: JSON that is neither a STIX 2.1 bundle nor a MISP event export")


def _stix_objects(items: Sequence[Any]) -> bool:
    """True for a list of STIX objects (``type`` and a ``type--uuid`` id each)."""
    return bool(items) and all(
        isinstance(o, Mapping) and o.get("type") and "--" in str(o.get("id", "")) for o in items
    )
