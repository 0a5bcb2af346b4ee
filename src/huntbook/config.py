"""Configuration: ``huntbook.yaml`` and secrets by reference.

Where the file is looked for, first match wins:

1. the path given to :func:`load` (or the ``HUNTBOOK_CONFIG`` environment variable);
2. ``./huntbook.yaml`` in the working folder;
3. ``huntbook.yaml`` in the user config folder (``~/.config/huntbook`` on Linux).

No file at all is fine: every setting has a default. Example::

    store: ~/hunts/case-42          # default LocalStore for the CLI
    query_paths: [~/team-queries]   # extra query catalogue folders
    duckdb:
      memory_limit: 1GB
      threads: 2
    connections:                    # per environment, passed to the driver
      splunk:
        host: splunk.corp.example
        token: env:SPLUNK_TOKEN     # a secret *reference*, resolved only when used
    providers:                      # TI and context providers (huntbook.ti, huntbook.enrich)
      virustotal:
        api_key: keyring:huntbook/virustotal
      local_feeds:
        paths: [~/feeds]
      geoip:
        mmdb: [GeoLite2-City.mmdb, GeoLite2-ASN.mmdb]   # optional; else geoip2fast's bundled data
      rdap:
        rate_limit: 1               # requests per second to RDAP (huntbook.enrich.whois)
    cache_dir: ~/.cache/huntbook    # online answers and GeoIP tables (default: the user cache folder)

Secret references: ``env:NAME`` (environment variable), ``keyring:service/user`` (OS keyring,
``keyring`` extra) and ``file:path`` (first line of a file). They stay :class:`Secret` objects
whose ``repr`` never shows the value; call :meth:`Secret.reveal` at the point of use.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huntbook._types import PathLike
from huntbook.errors import ConfigError

__all__ = ["Config", "Secret", "find_config_file", "load", "resolve_secrets"]

CONFIG_NAME = "huntbook.yaml"
_SECRET_SCHEMES = ("env:", "keyring:", "file:")


@dataclass(frozen=True)
class Secret:
    """A reference to a secret (``env:NAME``, ``keyring:service/user``, ``file:path``).

    The value is read only by :meth:`reveal`; ``str``/``repr`` show the reference, never the value.
    """

    reference: str

    def __repr__(self) -> str:
        return f"Secret({self.reference!r})"

    __str__ = __repr__

    def reveal(self) -> str:
        """Resolve the reference and return the secret value."""
        scheme, _, target = self.reference.partition(":")
        if scheme == "env":
            value = os.environ.get(target)
            if value is None:
                raise ConfigError(
                    f"environment variable {target!r} is not set",
                    where=self.reference,
                    hint=f"export {target}=... before running",
                )
            return value
        if scheme == "file":
            path = Path(target).expanduser()
            try:
                return path.read_text(encoding="utf-8").splitlines()[0].strip()
            except (OSError, IndexError) as exc:
                raise ConfigError(
                    "secret file is missing or empty",
                    where=str(path),
                    hint="write the secret on its first line",
                ) from exc
        if scheme == "keyring":
            service, _, user = target.partition("/")
            try:
                import keyring
            except ImportError as exc:
                raise ConfigError(
                    "keyring references need the 'keyring' package",
                    where=self.reference,
                    hint="pip install 'huntbook[keyring]'",
                ) from exc
            value = keyring.get_password(service, user)
            if value is None:
                raise ConfigError(
                    "no such keyring entry",
                    where=self.reference,
                    hint=f"keyring set {service} {user}",
                )
            return str(value)
        raise ConfigError(
            f"unknown secret scheme {scheme!r}", where=self.reference, hint="use env:, keyring: or file:"
        )


def _wrap_secrets(value: Any) -> Any:
    """Turn every string that is a secret reference into a :class:`Secret`, recursively."""
    if isinstance(value, str) and value.startswith(_SECRET_SCHEMES):
        return Secret(value)
    if isinstance(value, Mapping):
        return {str(k): _wrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_wrap_secrets(v) for v in value]
    return value


def resolve_secrets(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``settings`` with every :class:`Secret` revealed (for handing to a client)."""

    def _reveal(value: Any) -> Any:
        if isinstance(value, Secret):
            return value.reveal()
        if isinstance(value, Mapping):
            return {k: _reveal(v) for k, v in value.items()}
        if isinstance(value, list):
            return [_reveal(v) for v in value]
        return value

    return {k: _reveal(v) for k, v in settings.items()}


@dataclass(frozen=True)
class Config:
    """Typed huntbook settings. Build with :func:`load`; the defaults need no file."""

    store: Path | None = None
    query_paths: tuple[Path, ...] = ()
    duckdb: Mapping[str, Any] = field(default_factory=dict)
    connections: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    providers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    cache_dir: Path | None = None
    source: Path | None = None

    def connection(self, environment: str) -> dict[str, Any]:
        """Settings for one environment (secrets still as references)."""
        return dict(self.connections.get(environment, {}))


_KNOWN_KEYS = {"store", "query_paths", "duckdb", "connections", "providers", "cache_dir"}


def find_config_file(cwd: PathLike | None = None) -> Path | None:
    """The config file that :func:`load` would read, or None."""
    env = os.environ.get("HUNTBOOK_CONFIG")
    if env:
        return Path(env).expanduser()
    local = Path(cwd or Path.cwd()) / CONFIG_NAME
    if local.is_file():
        return local
    from platformdirs import user_config_dir

    user = Path(user_config_dir("huntbook")) / CONFIG_NAME
    return user if user.is_file() else None


def load(path: PathLike | None = None) -> Config:
    """Load settings from ``path`` or from the first config file found (see the module docs)."""
    file = Path(path).expanduser() if path is not None else find_config_file()
    if file is None:
        return Config()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc.strerror}", where=str(file)) from exc
    import yaml

    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark is not None else str(file)
        raise ConfigError(f"invalid YAML: {getattr(exc, 'problem', exc)}", where=where) from exc
    if not isinstance(data, dict):
        raise ConfigError("the config file must hold a mapping", where=str(file))
    unknown = sorted(set(data) - _KNOWN_KEYS)
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {', '.join(unknown)}",
            where=str(file),
            hint=f"known settings: {', '.join(sorted(_KNOWN_KEYS))}",
        )
    return _build(data, file)


def _section(data: Mapping[str, Any], key: str, file: Path) -> dict[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"'{key}' must be a mapping", where=str(file))
    return dict(value)


def _build(data: Mapping[str, Any], file: Path) -> Config:
    base = file.parent
    store = data.get("store")
    cache_dir = data.get("cache_dir")
    paths = data.get("query_paths") or []
    if isinstance(paths, str):
        paths = [paths]
    if not isinstance(paths, list):
        raise ConfigError("'query_paths' must be a list of folders", where=str(file))

    def _path(p: Any) -> Path:
        q = Path(str(p)).expanduser()
        return q if q.is_absolute() else base / q

    connections = _section(data, "connections", file)
    providers = _section(data, "providers", file)
    for name, section in {**connections, **providers}.items():
        if not isinstance(section, Mapping):
            raise ConfigError(f"settings for {name!r} must be a mapping", where=str(file))
    return Config(
        store=_path(store) if store else None,
        query_paths=tuple(_path(p) for p in paths),
        duckdb=_section(data, "duckdb", file),
        connections={k: _wrap_secrets(v) for k, v in connections.items()},
        providers={k: _wrap_secrets(v) for k, v in providers.items()},
        cache_dir=_path(cache_dir) if cache_dir else None,
        source=file,
    )
