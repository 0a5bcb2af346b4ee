"""Pivot menus: the composition of context functions, TI providers, catalogue queries and ``@pivot``s.

::

    import huntbook as hb

    ip = hb.IpAddress("203.0.113.66")
    hb.pivots(ip)                         # the menu: geoip, hosting, whois, ti, ti_<provider>, queries ...
    hb.pivots(ip).geoip()                 # a DataFrame for this IP
    hb.pivots("IpAddress").geoip(["203.0.113.66", "198.51.100.7"])
    hb.pivot_function("IpAddress.geoip")(conns, column="DstIpAddr", join="left")

Sources, in the order a later one overrides an earlier one of the same name:

- ``context``: :mod:`huntbook.enrich` — GeoIP, hosting/VPN/Tor tags, RDAP whois;
- ``ti``: ``ti`` (the default providers of :func:`huntbook.ti.lookup`) and ``ti_<provider>`` for each
  installed provider that serves the entity's IoC types;
- ``query``: catalogue queries whose ``metadata.pivot.entities`` name the entity type, called with
  the value as their first required parameter (``network_ip_connections`` for
  ``network.ip_connections``); they run on the given QueryProvider, else on the config's LocalStore;
- ``user``: functions registered with :func:`huntbook.pivoting.pivot`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from huntbook import config as hb_config
from huntbook import enrich, ti
from huntbook.entities import ENTITY_TYPES, Entity, infer
from huntbook.errors import DataError, PluginError
from huntbook.pivoting import Pivot, PivotMenu, user_pivots
from huntbook.plugins import registry
from huntbook.queries import QuerySpec, load_catalogue
from huntbook.session import QueryProvider

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["pivot_function", "pivot_table", "pivots"]

# entity type -> the TI IoC types its values can be
_TI_TYPES: dict[str, tuple[str, ...]] = {
    "IpAddress": ("ipv4", "ipv6"),
    "Dns": ("dns",),
    "Url": ("url",),
    "FileHash": ("md5", "sha1", "sha256"),
    "Email": ("email",),
}


# entity type, name, function, description, key column
_CONTEXT: tuple[tuple[str, str, Callable[..., pd.DataFrame], str, str], ...] = (
    ("IpAddress", "geoip", enrich.geoip, "Country, city, ASN (offline GeoIP; .mmdb when configured)", "ip"),
    ("IpAddress", "hosting", enrich.hosting, "Hosting, VPN or Tor exit classification (offline)", "ip"),
    ("IpAddress", "whois", enrich.whois, "Network owner, country and abuse contact (RDAP, online)", "query"),
    ("Dns", "whois", enrich.whois, "Registrar, registration dates and name servers (RDAP, online)", "query"),
)


def _context_pivots(entity_type: str) -> list[Pivot]:
    return [
        Pivot(kind, name, func, text, "context", key)
        for kind, name, func, text, key in _CONTEXT
        if kind == entity_type
    ]


def _ti_function(providers: list[str] | None, ioc_types: tuple[str, ...]) -> Callable[..., pd.DataFrame]:
    def lookup(values: list[str], **options: Any) -> pd.DataFrame:
        return ti.lookup(values, providers, ioc_types=options.pop("ioc_types", ioc_types), **options)

    return lookup


def _ti_pivots(entity_type: str) -> list[Pivot]:
    kinds = _TI_TYPES.get(entity_type)
    if not kinds:
        return []
    text = "Threat intelligence from the default providers"
    out = [Pivot(entity_type, "ti", _ti_function(None, kinds), text, "ti", "ioc")]
    for name in registry("huntbook.ti").names():
        try:
            cls = registry("huntbook.ti").load(name)
        except PluginError:
            continue  # a provider whose extra is missing is not offered
        if set(cls.ioc_types) & set(kinds):
            served = tuple(k for k in kinds if k in cls.ioc_types)
            text = f"{cls.description or name} (TI)"
            out.append(Pivot(entity_type, f"ti_{name}", _ti_function([name], served), text, "ti", "ioc"))
    return out


def _query_parameter(spec: QuerySpec) -> str | None:
    for param in spec.parameters.values():
        if param.required and param.name not in ("start", "end"):
            return param.name
    return None


def _query_function(
    spec: QuerySpec, parameter: str, provider: QueryProvider | None
) -> Callable[..., pd.DataFrame]:
    def run(values: list[str], **options: Any) -> pd.DataFrame:
        import pandas as pd

        qp = provider if provider is not None else QueryProvider("local")
        frames = []
        for value in values:
            frame = qp.run(spec.qualified_name, **{parameter: value}, **options)
            frames.append(frame.assign(pivot_value=value))
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"pivot_value": []})

    return run


def _query_pivots(entity_type: str, provider: QueryProvider | None, config: hb_config.Config) -> list[Pivot]:
    if provider is not None:
        specs = [provider.query_spec(name) for name in provider.list_queries()]
    else:
        specs = list(load_catalogue("local", config.query_paths).queries.values())
    out = []
    for spec in specs:
        meta = spec.metadata.get("pivot") or {}
        entities = meta.get("entities") if isinstance(meta, Mapping) else None
        if not entities or entity_type not in entities:
            continue
        parameter = str(meta.get("parameter") or _query_parameter(spec) or "")
        if not parameter:
            continue
        description = spec.description.splitlines()[0] if spec.description else spec.qualified_name
        name = f"{spec.family}_{spec.name}".replace(".", "_")
        run = _query_function(spec, parameter, provider)
        out.append(Pivot(entity_type, name, run, description, "query", "pivot_value"))
    return out


def _entity_type(target: Entity | str | type[Entity]) -> tuple[str, Entity | None]:
    if isinstance(target, Entity):
        return type(target).__name__, target
    if isinstance(target, type) and issubclass(target, Entity):
        return target.__name__, None
    if isinstance(target, str):
        if target in ENTITY_TYPES:
            return target, None
        guessed = infer(target)
        if guessed is not None:
            return type(guessed).__name__, guessed
    raise DataError(
        f"cannot tell what entity {target!r} is",
        hint=f"pass an entity (hb.IpAddress('...')) or a type name: {', '.join(ENTITY_TYPES)}",
    )


def _assemble(
    entity_type: str, provider: QueryProvider | None, config: hb_config.Config | None
) -> dict[str, Pivot]:
    config = config if config is not None else hb_config.load()
    found: dict[str, Pivot] = {}
    for item in [
        *_context_pivots(entity_type),
        *_ti_pivots(entity_type),
        *_query_pivots(entity_type, provider, config),
        *user_pivots().for_entity(entity_type).values(),
    ]:
        found[item.name] = item
    return found


def pivots(
    target: Entity | str | type[Entity],
    *,
    provider: QueryProvider | None = None,
    config: hb_config.Config | None = None,
) -> PivotMenu:
    """The pivot menu for an entity (calls default to it), an entity type, or a bare value (inferred).

    ``provider`` is the QueryProvider whose catalogue queries join the menu (default: the packaged
    LocalStore catalogue, run on the config's store).
    """
    entity_type, entity = _entity_type(target)
    return PivotMenu(entity_type, _assemble(entity_type, provider, config), entity)


def pivot_function(
    qualified_name: str, *, provider: QueryProvider | None = None, config: hb_config.Config | None = None
) -> Pivot:
    """The pivot called ``EntityType.name`` (``"IpAddress.geoip"``) as a plain function."""
    entity_type, _, name = qualified_name.partition(".")
    if entity_type not in ENTITY_TYPES or not name:
        raise DataError(
            f"{qualified_name!r} is not EntityType.pivot",
            hint="e.g. 'IpAddress.geoip'; see hb.pivots('IpAddress')",
        )
    found = _assemble(entity_type, provider, config)
    if name not in found:
        import difflib

        close = difflib.get_close_matches(name, found, n=3)
        raise DataError(
            f"no pivot {qualified_name}",
            hint=f"did you mean {', '.join(close)}?" if close else f"available: {', '.join(sorted(found))}",
        )
    return found[name]


def pivot_table(
    *, provider: QueryProvider | None = None, config: hb_config.Config | None = None
) -> pd.DataFrame:
    """Every pivot of every entity type: ``entity_type, name, source, description``."""
    import pandas as pd

    rows = [
        {"entity_type": kind, "name": p.name, "source": p.source, "description": p.description}
        for kind in ENTITY_TYPES
        for p in _assemble(kind, provider, config).values()
    ]
    return pd.DataFrame(rows, columns=["entity_type", "name", "source", "description"])
