"""Threat intelligence: is this IP, domain, URL or hash known bad? One call for one value or 100k.

::

    import huntbook as hb
    hb.ti.lookup("203.0.113.66")                                   # the configured/offline providers
    hb.ti.lookup(iocs, providers=["local_feeds", "virustotal"])   # iocs: output of hb.iocs.extract
    hb.ti.lookup(conns, column="DstIpAddr", providers=["iporigin"])
    hb.ti.rollup(results)                                          # one row per IoC across providers

Every IoC asked of every provider gets exactly one row (:data:`RESULT_COLUMNS`): ``provider, ioc,
ioc_type, status, severity, summary, reference, raw``. A failing provider or item never loses the
batch: it shows as a status (``error``, ``rate_limited``, ``no_key``, ``unsupported``).

Providers are plugins of the ``huntbook.ti`` entry-point group; :func:`providers` lists them.
Online ones read ``providers.<name>`` from ``huntbook.yaml`` (``api_key: env:VT_KEY`` ...); with no
``providers=`` argument, the offline providers and the online ones configured there are used.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huntbook import config as hb_config
from huntbook.errors import DataError, PluginError
from huntbook.http import ResponseCache, open_cache
from huntbook.iocs import refang
from huntbook.plugins import registry
from huntbook.ti.base import (
    RESULT_COLUMNS,
    SEVERITIES,
    STATUSES,
    AuthSpec,
    HttpProvider,
    Provider,
    Request,
    Result,
    Verdict,
    severity_rank,
)
from huntbook.ti.values import maybe_defanged, normalise

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "RESULT_COLUMNS",
    "ROLLUP_COLUMNS",
    "SEVERITIES",
    "STATUSES",
    "TI_TYPES",
    "AuthSpec",
    "HttpProvider",
    "Provider",
    "Request",
    "Result",
    "Verdict",
    "classify",
    "get_provider",
    "lookup",
    "providers",
    "rollup",
    "severity_rank",
]

#: IoC types TI providers are asked about (the names of :data:`huntbook.iocs.IOC_TYPES`).
TI_TYPES = ("ipv4", "ipv6", "dns", "url", "email", "md5", "sha1", "sha256")
ROLLUP_COLUMNS = ["ioc", "ioc_type", "severity", "flagged_by", "providers_ok", "providers_failed", "summary"]
_GROUP = "huntbook.ti"


def classify(value: str) -> str | None:
    """The TI type of a bare value (``ipv4``, ``ipv6``, ``dns``, ``url``, ``email``, ``md5``, ...), or None.

    Defanged values are refanged first.

    >>> classify("hxxp://evil[.]example/a"), classify("203.0.113.9"), classify("evil.example")
    ('url', 'ipv4', 'dns')
    """
    text = str(value).strip()
    found = normalise(refang(text).strip() if maybe_defanged(text) else text)
    return found[0] if found is not None and found[0] in TI_TYPES else None


def get_provider(
    name: str, settings: Mapping[str, Any] | None = None, *, cache: ResponseCache | None = None
) -> Provider:
    """An instance of the provider called ``name`` with its settings (from the config if not given)."""
    cls = registry(_GROUP).load(name)
    if settings is None:
        settings = hb_config.load().providers.get(name, {})
    instance: Provider = cls(settings, cache=cache)
    return instance


def providers() -> pd.DataFrame:
    """The installed providers: ``name, online, ioc_types, description`` (``error`` if one fails to load)."""
    import pandas as pd

    rows = []
    for name in registry(_GROUP).names():
        try:
            cls = registry(_GROUP).load(name)
            rows.append(
                {
                    "name": name,
                    "online": bool(cls.online),
                    "ioc_types": ", ".join(cls.ioc_types),
                    "description": cls.description,
                    "error": "",
                }
            )
        except PluginError as exc:
            rows.append({"name": name, "online": None, "ioc_types": "", "description": "", "error": str(exc)})
    return pd.DataFrame(rows, columns=["name", "online", "ioc_types", "description", "error"])


def _default_names(config: hb_config.Config) -> list[str]:
    names = []
    for name in registry(_GROUP).names():
        try:
            cls = registry(_GROUP).load(name)
        except PluginError:
            continue
        if name in config.providers or (not cls.online and getattr(cls, "default", True)):
            names.append(name)
    return names


def _items(
    values: Any, column: str | None, type_column: str | None, ioc_types: Iterable[str] | None
) -> list[tuple[str, str]]:
    import pandas as pd

    if isinstance(values, pd.DataFrame):
        if column is None and {"value", "ioc_type"} <= set(values.columns):
            column, type_column = "value", "ioc_type"
        if column is None:
            raise DataError(
                "which column holds the IoCs?",
                where="lookup",
                hint="pass column=NAME (or a frame from hb.iocs.extract with value and ioc_type)",
            )
        if column not in values.columns:
            raise DataError(
                f"no column {column!r}",
                where="lookup",
                hint=f"columns: {', '.join(map(str, values.columns))}",
            )
        raw = values[column].tolist()
        kinds = values[type_column].tolist() if type_column else [None] * len(raw)
    elif isinstance(values, pd.Series):
        raw, kinds = values.tolist(), [None] * len(values)
    elif isinstance(values, str):
        raw, kinds = [values], [None]
    else:
        raw = list(values)
        kinds = [None] * len(raw)
    wanted = set(ioc_types) if ioc_types is not None else None
    if wanted is not None and not wanted <= set(TI_TYPES):
        raise DataError(
            f"unknown IoC type(s) {', '.join(sorted(wanted - set(TI_TYPES)))}",
            where="ioc_types",
            hint=f"choose from {', '.join(TI_TYPES)}",
        )
    seen: dict[tuple[str, str], None] = {}
    for value, kind in zip(raw, kinds, strict=True):
        if value is None or (isinstance(value, float) and value != value):
            continue
        text = str(value).strip()
        if maybe_defanged(text):
            text = refang(text).strip()
        if not text:
            continue
        found = str(kind) if kind else classify(text)
        if found is None or found not in TI_TYPES or (wanted is not None and found not in wanted):
            continue
        seen.setdefault((text, found), None)
    return list(seen)


def lookup(
    values: Any,
    providers: Sequence[str | Provider] | str | None = None,
    *,
    ioc_types: Iterable[str] | None = None,
    column: str | None = None,
    type_column: str | None = None,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    config: hb_config.Config | None = None,
    cache: bool | str | Path | ResponseCache | None = None,
    progress: bool | None = None,
    workers: int = 8,
) -> pd.DataFrame:
    """Ask providers about IoCs; one row per (provider, distinct IoC) with :data:`RESULT_COLUMNS`.

    Args:
        values: a value, a list or Series of values, or a DataFrame (``column=``; a frame from
            :func:`huntbook.iocs.extract` is read by its ``value`` and ``ioc_type`` columns).
        providers: provider names (or instances); default: the offline providers and the online
            ones that ``huntbook.yaml`` configures.
        ioc_types: keep only these types (of :data:`TI_TYPES`); values of no TI type are skipped.
        column, type_column: the frame's value column and (optionally) its IoC type column.
        settings: per-provider settings over the config's ``providers.<name>``.
        cache: True/None for the on-disk cache in the user cache folder (``cache_dir`` in the
            config), a folder, a :class:`~huntbook.http.ResponseCache`, or False for none.
        progress: show progress bars (default: only on a terminal).
        workers: threads per online provider.
    """
    import pandas as pd

    config = config if config is not None else hb_config.load()
    items = _items(values, column, type_column, ioc_types)
    store = open_cache(cache, config)
    chosen: list[str | Provider]
    if providers is None:
        chosen = list(_default_names(config))
    elif isinstance(providers, str | Provider):
        chosen = [providers]
    else:
        chosen = list(providers)
    # every provider is made before any is asked, so a missing extra or an unknown name fails first
    owned: list[Provider] = []
    instances: list[Provider] = []
    try:
        for entry in chosen:
            if isinstance(entry, Provider):
                instances.append(entry)
            else:
                merged = {**config.providers.get(entry, {}), **(settings or {}).get(entry, {})}
                instances.append(get_provider(entry, merged, cache=store))
                owned.append(instances[-1])
        rows: list[dict[str, str]] = []
        for provider in instances:
            supported = [item for item in items if provider.supports(item[1])]
            answered = iter(provider.lookup_many(supported, progress=progress, workers=workers))
            for ioc, kind in items:
                if provider.supports(kind):
                    rows.append(next(answered).as_row())
                else:
                    summary = f"{provider.name} has no {kind} look-up"
                    rows.append(provider.result(ioc, kind, "unsupported", summary=summary).as_row())
    finally:
        for provider in owned:
            provider.close()
        if store is not None and not isinstance(cache, ResponseCache):
            store.close()
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def rollup(results: pd.DataFrame) -> pd.DataFrame:
    """One row per IoC across providers (:data:`ROLLUP_COLUMNS`), the most severe first.

    ``severity`` is the highest of the ``ok`` results (``info`` when every provider that answered
    knows nothing bad; empty when none answered); ``flagged_by`` names the providers that rated it
    medium or high; ``summary`` is the most severe provider's summary.
    """
    import pandas as pd

    missing = set(RESULT_COLUMNS[:6]) - set(results.columns)
    if missing:
        raise DataError(
            f"not a TI result frame: no {', '.join(sorted(missing))}", hint="pass the output of hb.ti.lookup"
        )
    rows = []
    for (ioc, kind), group in results.groupby(["ioc", "ioc_type"], sort=False):
        answered = group[group["status"].isin(["ok", "not_found"])]
        ranks = answered["severity"].map(severity_rank)
        top = answered.iloc[int(ranks.to_numpy().argmax())] if len(answered) else None
        flagged = answered.loc[ranks >= severity_rank("medium"), "provider"].tolist()
        rows.append(
            {
                "ioc": ioc,
                "ioc_type": kind,
                "severity": "" if top is None else top["severity"],
                "flagged_by": ", ".join(flagged),
                "providers_ok": len(answered),
                "providers_failed": int(group["status"].isin(["error", "rate_limited"]).sum()),
                "summary": "" if top is None else f"{top['provider']}: {top['summary']}",
            }
        )
    out = pd.DataFrame(rows, columns=ROLLUP_COLUMNS)
    order = out["severity"].map(severity_rank)
    return out.iloc[order.sort_values(ascending=False, kind="stable").index].reset_index(drop=True)
