"""Entity values: IP addresses, hosts, accounts, processes, files, hashes, URLs, ... as small frozen types.

Every entity is a frozen, slotted dataclass with a stable :attr:`Entity.key`, a short string that is the
same in every run and process (no ``hash()``), normalised so that equal things have equal keys::

    ip:203.0.113.66                      IpAddress   compressed form (IPv6 lower-case)
    host:ws01.corp.local                 Host        fqdn, lower-case
    account:corp\\jsmith                 Account     domain\\name (or name), lower-case
    process:ws01:4242:cmd.exe@2024-05-01T10:00:00+00:00   Process  host:pid:name[@start UTC]
    file:c:\\windows\\system32\\cmd.exe    File        Windows paths lower-case, POSIX paths as written
    hash:sha256:9f86...                  FileHash    algorithm:hex, lower-case
    url:https://example.com/Path         Url         scheme and host lower-case, path as written
    dns:example.com                      Dns         lower-case, no trailing dot
    email:a.b@example.com                Email       lower-case
    registry:hklm\\software\\run!upd     RegistryKey short hive name, lower-case[!value name]
    netconn:10.0.0.5:51000->203.0.113.9:443/tcp    NetworkConnection  ([v6] addresses in brackets)
    alert:id:<id> | alert:<title>|<time>|<host>    Alert
    geo:<CC>|<city>|<lat>,<lon>|<asn>    GeoLocation

Entities compare, hash and sort by ``(entity_type, key)``: ``Host("WS01") == Host("ws01")``, and a set
of entities holds each thing once. Fields keep what the source wrote, except the normalisations above
that change the value itself (IP form, hash/DNS/e-mail case). Strings given for nested entities (a
Process's ``host``, a NetworkConnection's ``src``) are converted, and invalid values raise
:class:`~huntbook.errors.DataError` naming the value.

This module imports only the standard library; pandas is imported by :meth:`Entity.from_frame` and
:func:`to_frame` when they are called.
"""

from __future__ import annotations

import dataclasses
import html
import ipaddress
import math
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal, SupportsIndex, TypeVar, cast
from urllib.parse import urlsplit

from huntbook.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ENTITY_TYPES",
    "Account",
    "Alert",
    "Dns",
    "Email",
    "Entity",
    "File",
    "FileHash",
    "GeoLocation",
    "Host",
    "IpAddress",
    "NetworkConnection",
    "Process",
    "RegistryKey",
    "Url",
    "entity",
    "infer",
    "to_frame",
]

E = TypeVar("E", bound="Entity")

_HASH_LENGTHS: dict[int, str] = {32: "md5", 40: "sha1", 64: "sha256"}
_HEX = frozenset("0123456789abcdefABCDEF")
_HIVES: dict[str, str] = {
    "HKEY_LOCAL_MACHINE": "HKLM",
    "HKLM": "HKLM",
    "\\REGISTRY\\MACHINE": "HKLM",
    "HKEY_CURRENT_USER": "HKCU",
    "HKCU": "HKCU",
    "HKEY_USERS": "HKU",
    "HKU": "HKU",
    "\\REGISTRY\\USER": "HKU",
    "HKEY_CLASSES_ROOT": "HKCR",
    "HKCR": "HKCR",
    "HKEY_CURRENT_CONFIG": "HKCC",
    "HKCC": "HKCC",
}
_HIVE_NAMES = sorted(set(_HIVES.values()))

# ----------------------------------------------------------------------------------------------- helpers


def _text(value: object, what: str, *, allow_space: bool = True) -> str:
    """A stripped, non-empty string without control characters, or DataError."""
    if not isinstance(value, str):
        raise DataError(f"{what} must be a string, got {type(value).__name__} {value!r}")
    text = value.strip()
    if not text:
        raise DataError(f"{what} is empty")
    if any(ord(ch) < 32 or ord(ch) == 127 or (not allow_space and ch.isspace()) for ch in text):
        raise DataError(f"{what} {value!r} contains whitespace or control characters")
    return text


def _optional_text(value: object, what: str) -> str | None:
    return None if value is None else _text(value, what)


def _to_int(value: object, what: str) -> int:
    """An int from an int, an integral float, or a decimal/hex (``0x..``) string."""
    if isinstance(value, bool):
        raise DataError(f"{what} must be an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip().lower()
        try:
            return int(text, 16) if text.startswith("0x") else int(text, 10)
        except ValueError:
            pass
    if isinstance(value, SupportsIndex):  # numpy integers
        return operator.index(value)
    raise DataError(f"{what} must be an integer, got {value!r}")


def _to_datetime(value: object, what: str) -> datetime:
    """An aware UTC datetime from a datetime (naive = UTC), a pandas Timestamp or an ISO-8601 string."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise DataError(f"{what} {value!r} is not an ISO-8601 time") from None
    if isinstance(value, datetime):
        to_py = getattr(value, "to_pydatetime", None)
        moment: datetime = to_py() if callable(to_py) else value
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    raise DataError(f"{what} must be a datetime, got {value!r}")


def _valid_domain(text: str) -> bool:
    """True for a DNS name: dot-separated labels of letters, digits, ``-`` and ``_`` (no regex)."""
    if not text or len(text) > 253:
        return False
    for label in text.split("."):
        if not label or len(label) > 63 or label.startswith("-") or label.endswith("-"):
            return False
        if not all(ch.isalnum() or ch in "-_" for ch in label):
            return False
    return True


def _is_windows_path(text: str) -> bool:
    return (len(text) >= 3 and text[0].isalpha() and text[1] == ":" and text[2] in "\\/") or text.startswith(
        "\\\\"
    )


def _is_hex(text: str) -> bool:
    return bool(text) and all(ch in _HEX for ch in text)


def _flat(value: object) -> object:
    """A field value as a plain cell: a nested entity becomes its value (one-field) or its key."""
    if isinstance(value, Entity):
        return str(value) if len(value.as_dict()) == 1 or isinstance(value, Host) else value.key
    return value


# ----------------------------------------------------------------------------------------------- base


class Entity:
    """Base of all entities: stable :attr:`key`, value equality, readable repr, DataFrame in and out."""

    __slots__ = ()
    entity_type: ClassVar[str] = "Entity"
    # Columns of huntbook's ASIM tables used by from_frame() when no column is named (field -> column).
    asim_columns: ClassVar[Mapping[str, str]] = {}
    # Fields to_frame() writes as a key, which from_frame() cannot read back.
    key_only_fields: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.entity_type = cls.__name__

    # --- identity
    @property
    def key(self) -> str:
        """A short, stable, normalised identity, e.g. ``"ip:203.0.113.66"``."""
        raise NotImplementedError

    def _identity(self) -> tuple[str, str]:
        return (self.entity_type, self.key)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Entity):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Entity):
            return NotImplemented
        return self._identity() < other._identity()

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Entity):
            return NotImplemented
        return self._identity() <= other._identity()

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Entity):
            return NotImplemented
        return self._identity() > other._identity()

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Entity):
            return NotImplemented
        return self._identity() >= other._identity()

    # --- display
    def as_dict(self) -> dict[str, Any]:
        """Field name -> value (nested entities stay entities)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(cast(Any, self))}

    def __repr__(self) -> str:
        items = list(self.as_dict().items())
        parts = [repr(items[0][1])] + [f"{name}={value!r}" for name, value in items[1:] if value is not None]
        return f"{self.entity_type}({', '.join(parts)})"

    def __str__(self) -> str:
        return str(next(iter(self.as_dict().values())))

    def _repr_html_(self) -> str:
        """A small HTML table for Jupyter; every value is escaped."""
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(name)}</th><td>{html.escape(str(value))}</td></tr>"
            for name, value in self.as_dict().items()
            if value is not None
        )
        return (
            f"<div class='huntbook-entity'><b>{html.escape(self.entity_type)}</b> "
            f"<code>{html.escape(self.key)}</code><table>{rows}</table></div>"
        )

    # --- DataFrames
    @classmethod
    def from_frame(
        cls: type[E],
        frame: pd.DataFrame,
        column: str | None = None,
        *,
        errors: Literal["skip", "raise"] = "skip",
        unique: bool = False,
        **columns: str,
    ) -> list[E]:
        """Entities built from a DataFrame, one per row (or per distinct entity with ``unique=True``).

        ``column`` feeds the first field (``IpAddress.from_frame(df, "SrcIpAddr")``); ``field=column``
        keyword arguments feed others (``Account.from_frame(df, name="User", domain="Domain")``). With
        neither, a frame made by :func:`to_frame` (columns named like the fields) or huntbook's ASIM
        columns (``Process``: DvcHostname, TargetProcessId, ...) are used. Rows whose required fields are
        missing (None/NaN/empty) are skipped; rows with invalid values are skipped too, unless
        ``errors="raise"``. The frame is not modified.

        >>> import pandas as pd
        >>> IpAddress.from_frame(pd.DataFrame({"SrcIpAddr": ["10.0.0.1", None]}), "SrcIpAddr")
        [IpAddress('10.0.0.1')]
        """
        import pandas as pd

        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        first = next(iter(fields))
        mapping = dict(columns)
        if column is not None:
            mapping[first] = column
        rows = frame
        if not mapping:
            if first in frame.columns:  # a to_frame() frame
                mapping = {
                    name: name for name in fields if name in frame.columns and name not in cls.key_only_fields
                }
                if "entity_type" in frame.columns:
                    rows = frame[frame["entity_type"] == cls.entity_type]
            elif cls.asim_columns:
                mapping = {name: col for name, col in cls.asim_columns.items() if col in frame.columns}
                missing = [col for name, col in cls.asim_columns.items() if _required(fields[name])]
                missing = [col for col in missing if col not in frame.columns]
                if missing:
                    mapping = {}
            if not mapping:
                raise DataError(
                    f"no column given for {cls.entity_type}",
                    hint=f"name one: {cls.entity_type}.from_frame(df, 'Column') or field='Column'; "
                    f"the frame's columns are {list(frame.columns)}",
                )
        unknown = [name for name in mapping if name not in fields]
        if unknown:
            raise DataError(
                f"{cls.entity_type} has no field {unknown[0]!r}",
                hint=f"fields are {list(fields)}",
            )
        absent = [col for col in mapping.values() if col not in frame.columns]
        if absent:
            raise DataError(
                f"column {absent[0]!r} not found",
                where=absent[0],
                hint=f"the frame's columns are {list(frame.columns)}",
            )
        required = [name for name, f in fields.items() if _required(f)]
        not_mapped = [name for name in required if name not in mapping]
        if not_mapped:
            raise DataError(
                f"{cls.entity_type} needs a column for field {not_mapped[0]!r}",
                hint=f"pass {not_mapped[0]}='Column'",
            )

        names = list(mapping)
        cols = [mapping[name] for name in names]
        found: list[E] = []
        for label, values in zip(rows.index, rows[cols].itertuples(index=False, name=None), strict=True):
            kwargs = {
                name: (value.strip() if isinstance(value, str) else value)
                for name, value in zip(names, values, strict=True)
                if not _missing(value, pd)
            }
            if any(name not in kwargs for name in required):
                continue
            try:
                found.append(cls(**kwargs))
            except DataError as exc:
                if errors == "raise":
                    raise DataError(exc.message, where=f"row {label!r}", hint=exc.hint) from None
        return list(dict.fromkeys(found)) if unique else found


def _required(field: dataclasses.Field[Any]) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def _missing(value: object, pd: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, str):
        return not value.strip()
    return False


# ----------------------------------------------------------------------------------------------- entities


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class IpAddress(Entity):
    """An IPv4 or IPv6 address, stored in its compressed form: ``IpAddress("2001:DB8::0001")``."""

    address: str

    def __post_init__(self) -> None:
        text = _text(self.address, "IP address", allow_space=False)
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        try:
            parsed = ipaddress.ip_address(text)
        except ValueError:
            raise DataError(f"{self.address!r} is not an IP address") from None
        object.__setattr__(self, "address", parsed.compressed)

    @property
    def key(self) -> str:
        return f"ip:{self.address}"

    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        """The :mod:`ipaddress` object."""
        return ipaddress.ip_address(self.address)

    @property
    def version(self) -> int:
        return self.ip.version

    @property
    def is_global(self) -> bool:
        """True for a publicly routable address."""
        return self.ip.is_global


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Host(Entity):
    """A computer: ``Host("ws01.corp.local")`` splits into name ``ws01`` and domain ``corp.local``."""

    name: str
    domain: str | None = None
    asim_columns: ClassVar[Mapping[str, str]] = {"name": "DvcHostname"}

    def __post_init__(self) -> None:
        name = _text(self.name, "host name", allow_space=False)
        domain = _optional_text(self.domain, "host domain")
        if any(ch in name for ch in "\\/@"):
            raise DataError(f"{self.name!r} is not a host name")
        if domain is None and "." in name and not _looks_like_ip(name):
            name, domain = name.split(".", 1)
        if domain is not None:
            domain = domain.strip(".")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "domain", domain or None)

    @property
    def fqdn(self) -> str:
        """``name.domain`` (or the bare name)."""
        return f"{self.name}.{self.domain}" if self.domain else self.name

    @property
    def key(self) -> str:
        return f"host:{self.fqdn.lower()}"

    def __str__(self) -> str:
        return self.fqdn


def _looks_like_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Account(Entity):
    """A user account: ``Account("CORP\\\\jsmith")`` or ``Account("jsmith@corp.local")`` fills the domain."""

    name: str
    domain: str | None = None
    sid: str | None = None
    asim_columns: ClassVar[Mapping[str, str]] = {"name": "TargetUsername"}

    def __post_init__(self) -> None:
        name = _text(self.name, "account name")
        domain = _optional_text(self.domain, "account domain")
        if domain is None and "\\" in name:
            domain, name = name.split("\\", 1)
        elif domain is None and name.count("@") == 1:
            name, domain = name.split("@", 1)
        name, domain = name.strip(), (domain or "").strip() or None
        if not name or "\\" in name:
            raise DataError(f"{self.name!r} is not an account name")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "domain", domain)
        object.__setattr__(self, "sid", _optional_text(self.sid, "account SID"))

    @property
    def qualified_name(self) -> str:
        """``DOMAIN\\name`` (or the bare name)."""
        return f"{self.domain}\\{self.name}" if self.domain else self.name

    @property
    def key(self) -> str:
        return f"account:{self.qualified_name.lower()}"

    def __str__(self) -> str:
        return self.qualified_name


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class File(Entity):
    """A file path; Windows paths (``C:\\...``, ``\\\\server\\share``) compare case-insensitively."""

    path: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", _text(self.path, "file path"))

    @property
    def is_windows(self) -> bool:
        return _is_windows_path(self.path) or ("\\" in self.path and "/" not in self.path)

    @property
    def name(self) -> str:
        """The last path component."""
        return self.path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]

    @property
    def directory(self) -> str:
        """The path without its last component."""
        sep = "\\" if self.is_windows else "/"
        head, _, _ = self.path.rstrip(sep).rpartition(sep)
        return head

    @property
    def key(self) -> str:
        return f"file:{self.path.lower() if self.is_windows else self.path}"


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class FileHash(Entity):
    """A file hash; the algorithm (md5, sha1, sha256) is inferred from the length."""

    value: str
    algorithm: str | None = None

    def __post_init__(self) -> None:
        value = _text(self.value, "hash", allow_space=False).lower()
        inferred = _HASH_LENGTHS.get(len(value))
        if inferred is None or not _is_hex(value):
            raise DataError(f"{self.value!r} is not an MD5, SHA-1 or SHA-256 hex digest")
        if self.algorithm is not None and self.algorithm.lower().replace("-", "") != inferred:
            raise DataError(f"{self.value!r} is a {inferred} digest, not {self.algorithm!r}")
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "algorithm", inferred)

    @property
    def key(self) -> str:
        return f"hash:{self.algorithm}:{self.value}"


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Url(Entity):
    """A URL with a scheme and a host: ``Url("https://Example.com/a").host == "example.com"``."""

    url: str

    def __post_init__(self) -> None:
        text = _text(self.url, "URL", allow_space=False)
        try:
            parts = urlsplit(text)
            host = parts.hostname
        except ValueError:
            raise DataError(f"{self.url!r} is not a URL") from None
        if not parts.scheme or not host:
            raise DataError(f"{self.url!r} is not a URL (needs scheme://host)")
        object.__setattr__(self, "url", text)

    @property
    def host(self) -> str:
        """The host name or address, lower-case, without port."""
        return urlsplit(self.url).hostname or ""

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme.lower()

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def key(self) -> str:
        parts = urlsplit(self.url)
        rest = self.url.split("://", 1)[-1][len(parts.netloc) :] if "://" in self.url else parts.path
        return f"url:{parts.scheme.lower()}://{parts.netloc.lower()}{rest}"


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Dns(Entity):
    """A domain name, lower-case without the trailing dot: ``Dns("Example.COM.").domain == "example.com"``."""

    domain: str
    asim_columns: ClassVar[Mapping[str, str]] = {"domain": "DnsQuery"}

    def __post_init__(self) -> None:
        domain = _text(self.domain, "domain", allow_space=False).lower().rstrip(".")
        if not _valid_domain(domain):
            raise DataError(f"{self.domain!r} is not a domain name")
        object.__setattr__(self, "domain", domain)

    @property
    def key(self) -> str:
        return f"dns:{self.domain}"


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Email(Entity):
    """An e-mail address, lower-case: ``Email("A.B@Example.com").domain == "example.com"``."""

    address: str

    def __post_init__(self) -> None:
        address = _text(self.address, "e-mail address", allow_space=False).lower()
        user, at, domain = address.rpartition("@")
        if not at or not user or "@" in user or not _valid_domain(domain) or "." not in domain:
            raise DataError(f"{self.address!r} is not an e-mail address")
        object.__setattr__(self, "address", address)

    @property
    def user(self) -> str:
        return self.address.rpartition("@")[0]

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]

    @property
    def key(self) -> str:
        return f"email:{self.address}"


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class RegistryKey(Entity):
    """A Windows registry key; hive as ``HKLM``, ``HKEY_LOCAL_MACHINE`` or ``\\REGISTRY\\MACHINE``."""

    key_path: str
    value_name: str | None = None

    def __post_init__(self) -> None:
        path = _text(self.key_path, "registry key").rstrip("\\")
        if _split_hive(path) is None:
            raise DataError(
                f"{self.key_path!r} is not a registry key (unknown hive)", hint=f"hives: {_HIVES}"
            )
        object.__setattr__(self, "key_path", path)
        object.__setattr__(self, "value_name", _optional_text(self.value_name, "registry value name"))

    @property
    def hive(self) -> str:
        """The short hive name: HKLM, HKCU, HKU, HKCR or HKCC."""
        split = _split_hive(self.key_path)
        return split[0] if split else ""

    @property
    def key(self) -> str:
        hive, rest = _split_hive(self.key_path) or ("", self.key_path)
        value = f"!{self.value_name.lower()}" if self.value_name else ""
        return f"registry:{hive.lower()}{rest.lower()}{value}"


def _split_hive(path: str) -> tuple[str, str] | None:
    upper = path.upper()
    for long, short in _HIVES.items():
        if upper == long or upper.startswith(long + "\\"):
            return short, path[len(long) :]
    return None


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Process(Entity):
    """A process on a host. ``pid`` accepts ints, decimal and hex (``0x1a4``) strings; ``start`` is UTC."""

    host: Host | None
    pid: int
    name: str | None = None
    command_line: str | None = None
    start: datetime | None = None
    parent: Process | None = None
    key_only_fields: ClassVar[tuple[str, ...]] = ("parent",)
    asim_columns: ClassVar[Mapping[str, str]] = {
        "host": "DvcHostname",
        "pid": "TargetProcessId",
        "name": "TargetProcessName",
        "command_line": "TargetProcessCommandLine",
        "start": "TimeGenerated",
    }

    def __post_init__(self) -> None:
        if isinstance(self.host, str):
            object.__setattr__(self, "host", Host(self.host))
        elif self.host is not None and not isinstance(self.host, Host):
            raise DataError(f"process host must be a Host or a string, got {self.host!r}")
        object.__setattr__(self, "pid", _to_int(self.pid, "process id"))
        object.__setattr__(self, "name", _optional_text(self.name, "process name"))
        if self.start is not None:
            object.__setattr__(self, "start", _to_datetime(self.start, "process start"))
        if self.parent is not None and not isinstance(self.parent, Process):
            raise DataError(f"process parent must be a Process, got {self.parent!r}")

    @property
    def image(self) -> str | None:
        """The executable's file name, e.g. ``cmd.exe``."""
        return File(self.name).name if self.name else None

    @property
    def key(self) -> str:
        host = self.host.fqdn.lower() if self.host else "-"
        name = (self.image or "-").lower()
        start = f"@{self.start.isoformat()}" if self.start else ""
        return f"process:{host}:{self.pid}:{name}{start}"

    def __str__(self) -> str:
        where = f" on {self.host}" if self.host else ""
        return f"{self.name or '?'} ({self.pid}){where}"


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class NetworkConnection(Entity):
    """A flow from ``src`` to ``dst`` (strings are converted to :class:`IpAddress`); protocol lower-case."""

    src: IpAddress
    dst: IpAddress
    dst_port: int | None = None
    protocol: str | None = None
    src_port: int | None = None
    asim_columns: ClassVar[Mapping[str, str]] = {
        "src": "SrcIpAddr",
        "dst": "DstIpAddr",
        "dst_port": "DstPortNumber",
        "protocol": "NetworkProtocol",
        "src_port": "SrcPortNumber",
    }

    def __post_init__(self) -> None:
        for name in ("src", "dst"):
            value = getattr(self, name)
            if not isinstance(value, IpAddress):
                object.__setattr__(self, name, IpAddress(value))
        for name in ("dst_port", "src_port"):
            value = getattr(self, name)
            if value is not None:
                port = _to_int(value, name)
                if not 0 <= port <= 65535:
                    raise DataError(f"{name} {value!r} is not a port number")
                object.__setattr__(self, name, port)
        protocol = _optional_text(self.protocol, "protocol")
        object.__setattr__(self, "protocol", protocol.lower() if protocol else None)

    @property
    def key(self) -> str:
        def end(ip: IpAddress, port: int | None) -> str:
            text = f"[{ip.address}]" if ip.version == 6 else ip.address
            return f"{text}:{port}" if port is not None else text

        proto = f"/{self.protocol}" if self.protocol else ""
        return f"netconn:{end(self.src, self.src_port)}->{end(self.dst, self.dst_port)}{proto}"

    def __str__(self) -> str:
        return self.key.removeprefix("netconn:")


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Alert(Entity):
    """A security alert; identified by ``alert_id`` when there is one, else by title, time and host."""

    title: str
    severity: str | None = None
    time: datetime | None = None
    host: Host | None = None
    alert_id: str | None = None
    category: str | None = None
    asim_columns: ClassVar[Mapping[str, str]] = {
        "title": "AlertName",
        "severity": "AlertSeverity",
        "time": "TimeGenerated",
        "host": "DvcHostname",
        "alert_id": "AlertId",
        "category": "AlertCategory",
    }

    def __post_init__(self) -> None:
        object.__setattr__(self, "title", _text(self.title, "alert title"))
        for name in ("severity", "alert_id", "category"):
            value = getattr(self, name)
            object.__setattr__(self, name, _optional_text(None if value is None else str(value), name))
        if self.time is not None:
            object.__setattr__(self, "time", _to_datetime(self.time, "alert time"))
        if isinstance(self.host, str):
            object.__setattr__(self, "host", Host(self.host))

    @property
    def key(self) -> str:
        if self.alert_id:
            return f"alert:id:{self.alert_id.lower()}"
        time = self.time.isoformat() if self.time else ""
        host = self.host.fqdn.lower() if self.host else ""
        return f"alert:{self.title.lower()}|{time}|{host}"


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class GeoLocation(Entity):
    """Where an address is: country code (upper-case ISO 3166), city, coordinates, ASN (``AS13335`` ok)."""

    country_code: str | None = None
    country: str | None = None
    city: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    asn: int | None = None
    asn_name: str | None = None

    def __post_init__(self) -> None:
        code = _optional_text(self.country_code, "country code")
        if code is not None and (len(code) != 2 or not code.isalpha()):
            raise DataError(f"country code {self.country_code!r} is not two letters")
        object.__setattr__(self, "country_code", code.upper() if code else None)
        for name in ("country", "city", "asn_name"):
            object.__setattr__(self, name, _optional_text(getattr(self, name), name))
        for name, limit in (("latitude", 90.0), ("longitude", 180.0)):
            value = getattr(self, name)
            if value is None:
                continue
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise DataError(f"{name} {value!r} is not a number") from None
            if not -limit <= number <= limit:
                raise DataError(f"{name} {value!r} is out of range")
            object.__setattr__(self, name, number)
        if self.asn is not None:
            asn = self.asn
            if isinstance(asn, str) and asn.strip().upper().startswith("AS"):
                asn = asn.strip()[2:]
            object.__setattr__(self, "asn", _to_int(asn, "ASN"))

    @property
    def key(self) -> str:
        coords = f"{self.latitude},{self.longitude}" if self.latitude is not None else ""
        return f"geo:{self.country_code or ''}|{(self.city or '').lower()}|{coords}|{self.asn or ''}"

    def __str__(self) -> str:
        place = ", ".join(part for part in (self.city, self.country or self.country_code) if part)
        asn = f" AS{self.asn}" if self.asn is not None else ""
        return (place or "?") + asn


# ----------------------------------------------------------------------------------------------- helpers API

ENTITY_TYPES: dict[str, type[Entity]] = {
    cls.__name__: cls
    for cls in (
        IpAddress,
        Host,
        Account,
        Process,
        File,
        FileHash,
        Url,
        Dns,
        Email,
        RegistryKey,
        NetworkConnection,
        Alert,
        GeoLocation,
    )
}


def entity(kind: str, value: object) -> Entity:
    """Build an entity by type name (case-insensitive) from a value or a mapping of fields.

    >>> entity("IpAddress", "203.0.113.66").key
    'ip:203.0.113.66'
    >>> entity("account", {"name": "jsmith", "domain": "CORP"}).key
    'account:corp\\\\jsmith'
    """
    by_lower = {name.lower(): cls for name, cls in ENTITY_TYPES.items()}
    cls = by_lower.get(kind.lower())
    if cls is None:
        raise DataError(f"unknown entity type {kind!r}", hint=f"choose from {sorted(ENTITY_TYPES)}")
    if isinstance(value, Mapping):
        return cast(Entity, cast(Any, cls)(**value))
    return cast(Entity, cast(Any, cls)(value))


def infer(value: str) -> Entity | None:
    """Guess the entity a bare string names, or None: IP, URL, hash, registry key, file path, e-mail,
    ``DOMAIN\\user`` account, domain name (simple checks, no regular expressions).

    >>> infer("203.0.113.66")
    IpAddress('203.0.113.66')
    >>> infer("CORP\\\\jsmith")
    Account('jsmith', domain='CORP')
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or any(ord(ch) < 32 for ch in text):
        return None
    candidates: list[tuple[bool, type[Entity]]] = [
        (_looks_like_ip(text.strip("[]")), IpAddress),
        ("://" in text, Url),
        (len(text) in _HASH_LENGTHS and _is_hex(text), FileHash),
        (_split_hive(text) is not None, RegistryKey),
        (_is_windows_path(text) or (text.startswith("/") and " " not in text), File),
        (text.count("@") == 1 and "\\" not in text, Email),
        (text.count("\\") == 1 and ":" not in text and " " not in text, Account),
        ("." in text and not text.replace(".", "").isdigit(), Dns),
    ]
    for matches, cls in candidates:
        if matches:
            try:
                return cast(Entity, cast(Any, cls)(text))
            except DataError:
                continue
    return None


def to_frame(entities: Iterable[Entity]) -> pd.DataFrame:
    """One row per entity: ``entity_type``, ``key`` and its fields (a nested entity as its value or key).

    >>> to_frame([IpAddress("10.0.0.1"), Dns("Example.com")])[["entity_type", "key"]].values.tolist()
    [['IpAddress', 'ip:10.0.0.1'], ['Dns', 'dns:example.com']]
    """
    import pandas as pd

    rows = []
    for item in entities:
        if not isinstance(item, Entity):
            raise DataError(f"to_frame() takes entities, got {type(item).__name__} {item!r}")
        rows.append(
            {
                "entity_type": item.entity_type,
                "key": item.key,
                **{name: _flat(value) for name, value in item.as_dict().items()},
            }
        )
    columns = list(dict.fromkeys(name for row in rows for name in row)) or ["entity_type", "key"]
    return pd.DataFrame(rows, columns=columns)
