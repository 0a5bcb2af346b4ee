"""Pivots: what an analyst can do next with an entity — as a menu, and as plain functions.

A :class:`Pivot` is a named function for one entity type (``IpAddress.geoip``, ``Dns.whois``,
``FileHash.ti``, ``Host.process_host_processes`` ...). Every pivot takes a value, an entity, a list of
them, or a DataFrame with ``column=`` (and ``join="inner"|"left"`` to get the frame's rows beside the
pivot's columns), and returns a DataFrame. Menus are assembled from registries by
:func:`huntbook.api.pivots`; entity classes are never patched.

Your own pivots are plain functions that take a list of values and return a frame with a column
holding each input value (``key_column``)::

    from huntbook.pivoting import pivot

    @pivot("IpAddress", key_column="ip")
    def allow_listed(values):
        '''Whether the IP is on our allow list.'''
        return pd.DataFrame({"ip": values, "allowed": [v in ALLOW for v in values]})

    hb.pivots(hb.IpAddress("10.0.0.5")).allow_listed()
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from huntbook.entities import ENTITY_TYPES, Entity
from huntbook.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["JOINS", "Pivot", "PivotMenu", "PivotRegistry", "entity_value", "pivot", "user_pivots"]

JOINS = ("inner", "left")

PivotFunc = Callable[..., "pd.DataFrame"]


def entity_value(entity: Entity) -> str:
    """The string a pivot is given for an entity: an IP's address, a host's FQDN, a hash's hex ..."""
    kind = type(entity).__name__
    field = {
        "IpAddress": "address",
        "Dns": "domain",
        "Url": "url",
        "FileHash": "value",
        "Email": "address",
        "File": "path",
        "RegistryKey": "key_path",
        "Alert": "title",
    }.get(kind)
    if field is not None:
        return str(getattr(entity, field))
    if kind == "Account":
        return str(entity.qualified_name)  # type: ignore[attr-defined]
    if kind == "Process":
        return str(entity.name or entity.pid)  # type: ignore[attr-defined]
    return str(entity)


def _values(value: Any) -> list[str]:
    """Distinct, non-empty strings from a value, an entity, or a list/Series of them (order kept)."""
    items: Iterable[Any]
    if isinstance(value, str | Entity):
        items = [value]
    elif value is None:
        raise DataError("no value to pivot on", hint="give a value, an entity, a list or a DataFrame")
    else:
        items = list(value)
    out: dict[str, None] = {}
    for item in items:
        if item is None or (isinstance(item, float) and item != item):
            continue
        text = entity_value(item) if isinstance(item, Entity) else str(item).strip()
        if text:
            out.setdefault(text, None)
    return list(out)


@dataclass(frozen=True)
class Pivot:
    """One pivot: ``entity_type.name``, a function of a list of values, and where it comes from.

    ``key_column`` is the output column holding each input value (joins use it); ``source`` is
    ``context``, ``ti``, ``query`` or ``user``.
    """

    entity_type: str
    name: str
    func: PivotFunc
    description: str = ""
    source: str = "user"
    key_column: str = "value"

    @property
    def qualified_name(self) -> str:
        """``IpAddress.geoip``."""
        return f"{self.entity_type}.{self.name}"

    def __call__(
        self, value: Any = None, /, *, column: str | None = None, join: str | None = None, **options: Any
    ) -> pd.DataFrame:
        """Run the pivot on a value, an entity, a list, a Series, or a DataFrame's ``column``."""
        import pandas as pd

        if isinstance(value, pd.DataFrame):
            if column is None:
                raise DataError(
                    f"{self.qualified_name}: which column holds the values?",
                    hint="pass column=NAME with a DataFrame",
                )
            if column not in value.columns:
                raise DataError(
                    f"no column {column!r}",
                    where=self.qualified_name,
                    hint=f"columns: {', '.join(map(str, value.columns))}",
                )
            result = self.func(_values(value[column]), **options)
            if join is None:
                return result
            if join not in JOINS:
                raise DataError(f"join={join!r} is not one of {', '.join(JOINS)}", where=self.qualified_name)
            right = result.rename(columns={self.key_column: "__pivot_key__"})
            left = value.assign(
                __pivot_key__=value[column].map(lambda v: "" if v is None else str(v).strip())
            )
            clash = [c for c in right.columns if c in left.columns and c != "__pivot_key__"]
            right = right.rename(columns={c: f"{self.name}_{c}" for c in clash})
            merged = left.merge(right, how="inner" if join == "inner" else "left", on="__pivot_key__")
            return merged.drop(columns="__pivot_key__")
        if join is not None or column is not None:
            raise DataError(
                f"{self.qualified_name}: column= and join= need a DataFrame", hint="pass the frame"
            )
        return self.func(_values(value), **options)

    def __repr__(self) -> str:
        return f"<pivot {self.qualified_name} ({self.source}): {self.description}>"


def _first_line(func: Callable[..., Any]) -> str:
    doc = (func.__doc__ or "").strip()
    return doc.splitlines()[0].strip() if doc else ""


class PivotRegistry:
    """Pivots by entity type and name; thread-safe. Later registrations replace earlier ones."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pivots: dict[tuple[str, str], Pivot] = {}

    def add(self, item: Pivot) -> Pivot:
        """Register a pivot (replacing one of the same qualified name)."""
        if item.entity_type not in ENTITY_TYPES:
            raise DataError(
                f"unknown entity type {item.entity_type!r}",
                where=item.name,
                hint=f"one of {', '.join(ENTITY_TYPES)}",
            )
        if not item.name.isidentifier():
            raise DataError(
                f"pivot name {item.name!r} is not an identifier", hint="use letters, digits and _"
            )
        with self._lock:
            self._pivots[(item.entity_type, item.name)] = item
        return item

    def remove(self, qualified_name: str) -> None:
        """Forget a pivot (``IpAddress.name``)."""
        entity_type, _, name = qualified_name.partition(".")
        with self._lock:
            self._pivots.pop((entity_type, name), None)

    def for_entity(self, entity_type: str) -> dict[str, Pivot]:
        """Name -> pivot for one entity type."""
        with self._lock:
            return {name: p for (kind, name), p in self._pivots.items() if kind == entity_type}

    def all(self) -> list[Pivot]:
        """Every registered pivot."""
        with self._lock:
            return list(self._pivots.values())


_USER = PivotRegistry()


def user_pivots() -> PivotRegistry:
    """The registry of ``@pivot`` functions (merged into every menu, over the built-ins)."""
    return _USER


def pivot(
    entity_types: str | Sequence[str],
    *,
    name: str | None = None,
    key_column: str = "value",
    description: str | None = None,
) -> Callable[[PivotFunc], PivotFunc]:
    """Register a function of a list of values as a pivot of one or more entity types.

    The function is returned unchanged, so it stays a plain function too.
    """
    kinds = [entity_types] if isinstance(entity_types, str) else list(entity_types)

    def register(func: PivotFunc) -> PivotFunc:
        for kind in kinds:
            _USER.add(
                Pivot(kind, name or func.__name__, func, description or _first_line(func), "user", key_column)
            )
        return func

    return register


class _BoundPivot:
    """A menu entry: the pivot, called on the menu's entity when given no value."""

    def __init__(self, item: Pivot, entity: Entity | None) -> None:
        self._pivot = item
        self._entity = entity
        self.__doc__ = item.description
        self.__name__ = item.name

    def __call__(self, value: Any = None, /, **options: Any) -> pd.DataFrame:
        if value is None:
            if self._entity is None:
                raise DataError(f"{self._pivot.qualified_name}: no value", hint="give a value or a DataFrame")
            value = self._entity
        return self._pivot(value, **options)

    @property
    def pivot(self) -> Pivot:
        """The underlying :class:`Pivot`."""
        return self._pivot

    def __repr__(self) -> str:
        return repr(self._pivot)


class PivotMenu:
    """The pivots of one entity type (or of one entity): attributes, tab completion, :meth:`browse`.

    Read-only: pivots are added through registries (``@pivot``), never by setting attributes.
    """

    __slots__ = ("_entity", "_entity_type", "_pivots")
    _entity: Entity | None
    _entity_type: str
    _pivots: dict[str, Pivot]

    def __init__(self, entity_type: str, pivots: Mapping[str, Pivot], entity: Entity | None = None) -> None:
        object.__setattr__(self, "_entity_type", entity_type)
        object.__setattr__(self, "_pivots", dict(sorted(pivots.items())))
        object.__setattr__(self, "_entity", entity)

    def __getattr__(self, name: str) -> _BoundPivot:
        pivots: dict[str, Pivot] = object.__getattribute__(self, "_pivots")
        if name in pivots:
            return _BoundPivot(pivots[name], object.__getattribute__(self, "_entity"))
        import difflib

        close = difflib.get_close_matches(name, pivots, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise AttributeError(f"no pivot {self._entity_type}.{name}.{hint}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("pivot menus are read-only; register pivots with @huntbook.pivoting.pivot")

    def __dir__(self) -> list[str]:
        return [*self._pivots, "browse", "list"]

    def __iter__(self) -> Any:
        return iter(self._pivots.values())

    def __len__(self) -> int:
        return len(self._pivots)

    def __contains__(self, name: object) -> bool:
        return name in self._pivots

    def list(self) -> list[str]:
        """The pivot names."""
        return list(self._pivots)

    def browse(self) -> pd.DataFrame:
        """``name, source, description`` of every pivot."""
        import pandas as pd

        rows = [
            {"name": p.name, "source": p.source, "description": p.description} for p in self._pivots.values()
        ]
        return pd.DataFrame(rows, columns=["name", "source", "description"])

    def __repr__(self) -> str:
        target = repr(self._entity) if self._entity is not None else self._entity_type
        width = max((len(n) for n in self._pivots), default=0)
        lines = [f"{n.ljust(width)}  {p.description}" for n, p in self._pivots.items()]
        return "\n".join([f"Pivots for {target}:", *(f"  {line}" for line in lines)])

    def _repr_html_(self) -> str:
        target = html.escape(repr(self._entity) if self._entity is not None else self._entity_type)
        rows = "".join(
            f"<tr><td><code>{html.escape(p.name)}</code></td><td>{html.escape(p.source)}</td>"
            f"<td>{html.escape(p.description)}</td></tr>"
            for p in self._pivots.values()
        )
        head = "<tr><th>pivot</th><th>source</th><th>does</th></tr>"
        return f"<b>Pivots for {target}</b><table>{head}{rows}</table>"
