"""Entry-point plugin registries.

Each plugin family is an entry-point group (``huntbook.drivers``, ``huntbook.ti``,
``huntbook.uploaders``, ``huntbook.vis``). Built-ins register exactly as a third party would,
in ``pyproject.toml``::

    [project.entry-points."huntbook.drivers"]
    splunk = "huntbook.drivers.splunk:SplunkDriver [splunk]"

The ``[splunk]`` part names the extra the plugin needs. Listing names reads package metadata
only; a plugin's module is imported when it is first asked for, and a plugin that fails to
import fails alone, with an error naming the extra to install.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from huntbook.errors import MissingExtraError, PluginError

__all__ = ["GROUPS", "PluginInfo", "Registry", "registry"]

GROUPS = ("huntbook.drivers", "huntbook.ti", "huntbook.uploaders", "huntbook.vis")


@dataclass(frozen=True)
class PluginInfo:
    """What is known about a plugin without importing it."""

    name: str
    target: str
    extras: tuple[str, ...]
    distribution: str | None


class Registry:
    """Lazy, failure-isolated registry for one entry-point group."""

    def __init__(self, group: str) -> None:
        self.group = group
        self._lock = threading.Lock()
        self._infos: dict[str, PluginInfo] | None = None
        self._loaded: dict[str, Any] = {}
        self._manual: dict[str, Any] = {}

    def _entry_points(self) -> dict[str, Any]:
        from importlib.metadata import entry_points

        return {ep.name: ep for ep in entry_points(group=self.group)}

    def infos(self) -> dict[str, PluginInfo]:
        """Name -> :class:`PluginInfo`, from package metadata (nothing is imported)."""
        with self._lock:
            if self._infos is None:
                infos = {}
                for name, ep in self._entry_points().items():
                    dist = getattr(ep, "dist", None)
                    infos[name] = PluginInfo(
                        name=name,
                        target=ep.value.split("[")[0].strip(),
                        extras=tuple(ep.extras),
                        distribution=getattr(dist, "name", None),
                    )
                self._infos = infos
            infos = dict(self._infos)
        for name in self._manual:
            infos.setdefault(name, PluginInfo(name, "<registered>", (), None))
        return infos

    def names(self) -> list[str]:
        """Sorted plugin names, without importing any plugin."""
        return sorted(self.infos())

    def register(self, name: str, plugin: Any) -> None:
        """Register a plugin object in-process (tests, notebooks, private plugins)."""
        self._manual[name] = plugin
        self._loaded.pop(name, None)

    def load(self, name: str) -> Any:
        """Import and return the plugin called ``name``."""
        if name in self._manual:
            return self._manual[name]
        if name in self._loaded:
            return self._loaded[name]
        info = self.infos().get(name)
        if info is None:
            known = ", ".join(self.names()) or "none installed"
            raise PluginError(f"no {self.group} plugin named {name!r}", hint=f"available: {known}")
        ep = self._entry_points()[name]
        try:
            plugin = ep.load()
        except ImportError as exc:
            what = f"{self.group} plugin {name!r}"
            if info.extras:
                raise MissingExtraError(what, info.extras[0], missing=getattr(exc, "name", None)) from exc
            raise PluginError(f"{what} failed to import: {exc}", where=info.target) from exc
        except Exception as exc:  # a broken plugin must fail alone
            raise PluginError(
                f"{self.group} plugin {name!r} failed to load: {type(exc).__name__}: {exc}", where=info.target
            ) from exc
        self._loaded[name] = plugin
        return plugin


_REGISTRIES: dict[str, Registry] = {}


def registry(group: str) -> Registry:
    """The shared :class:`Registry` for ``group`` (e.g. ``"huntbook.drivers"``)."""
    if not group.startswith("huntbook."):
        group = f"huntbook.{group}"
    if group not in _REGISTRIES:
        _REGISTRIES[group] = Registry(group)
    return _REGISTRIES[group]
