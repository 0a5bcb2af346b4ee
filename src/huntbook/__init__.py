"""huntbook: threat hunting in Python.

Pull events from a SIEM or from raw log files into pandas, decode and extract what attackers
hide, enrich, analyse, visualise and report::

    import huntbook as hb

    store = hb.LocalStore("~/hunts/case-42")
    store.ingest("evidence/")
    qp = hb.QueryProvider("local", store=store)
    procs = qp.process.host_processes(host_name="WS01", start="-2d")

``import huntbook`` is cheap: names below are imported on first use (PEP 562), and nothing
heavy (pandas, DuckDB, YAML, HTTP) is imported until a feature needs it.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # avoids importing typing at run time (import cost)

__version__ = "0.1.0"

# name -> module that defines it
_LAZY = {
    "LocalStore": "huntbook.store",
    "QueryProvider": "huntbook.session",
    "Report": "huntbook.report",
    "HuntbookError": "huntbook.errors",
    "ConfigError": "huntbook.errors",
    "PluginError": "huntbook.errors",
    "MissingExtraError": "huntbook.errors",
    "IngestError": "huntbook.errors",
    "StoreError": "huntbook.errors",
    "QueryError": "huntbook.errors",
    "QueryNotFoundError": "huntbook.errors",
    "ParameterError": "huntbook.errors",
    "QueryTimeoutError": "huntbook.errors",
    "DriverError": "huntbook.errors",
    "DataError": "huntbook.errors",
    "pivots": "huntbook.api",
    "pivot_function": "huntbook.api",
    "pivot": "huntbook.pivoting",
    "ServiceError": "huntbook.errors",
    **dict.fromkeys(
        (
            "IpAddress Host Account Process File FileHash Url Dns Email RegistryKey NetworkConnection Alert "
            "GeoLocation"
        ).split(),
        "huntbook.entities",
    ),
}
# submodules reachable as attributes: hb.config, hb.schema, ...
_SUBMODULES = {
    "config",
    "errors",
    "plugins",
    "schema",
    "queries",
    "formats",
    "store",
    "session",
    "report",
    "demo",
    "iocs",
    "decode",
    "proctree",
    "timeseries",
    "logons",
    "cluster",
    "outliers",
    "sessions",
    "sigma",
    "accessor",
    "entities",
    "ti",
    "enrich",
    "api",
    "pivoting",
    "http",
    "vis",
    "notebook",
    "testing",
    "upload",
    "investigations",
    "hunts",
}
# other names of submodules: hb.investigate is huntbook.investigations
_ALIASES = {"investigate": "investigations"}
# names that do not need pandas: loading them does not register the ``df.hb`` accessor
_LIGHT = {
    "config",
    "errors",
    "plugins",
    "entities",
    "pivoting",
    "pivot",
    "http",
    *(n for n, m in _LAZY.items() if m in ("huntbook.errors", "huntbook.entities")),
}

__all__ = sorted([*_LAZY, *_SUBMODULES, *_ALIASES, "__version__"])

if TYPE_CHECKING:
    from huntbook import (
        accessor,
        api,
        cluster,
        config,
        decode,
        demo,
        enrich,
        entities,
        errors,
        formats,
        http,
        hunts,
        investigations,
        iocs,
        logons,
        outliers,
        pivoting,
        plugins,
        proctree,
        queries,
        report,
        schema,
        session,
        sessions,
        sigma,
        store,
        ti,
        timeseries,
        upload,
        vis,
    )
    from huntbook import investigations as investigate
    from huntbook.api import pivot_function, pivots
    from huntbook.entities import (
        Account,
        Alert,
        Dns,
        Email,
        File,
        FileHash,
        GeoLocation,
        Host,
        IpAddress,
        NetworkConnection,
        Process,
        RegistryKey,
        Url,
    )
    from huntbook.errors import (
        ConfigError,
        DataError,
        DriverError,
        HuntbookError,
        IngestError,
        MissingExtraError,
        ParameterError,
        PluginError,
        QueryError,
        QueryNotFoundError,
        QueryTimeoutError,
        ServiceError,
        StoreError,
    )
    from huntbook.pivoting import pivot
    from huntbook.report import Report
    from huntbook.session import QueryProvider
    from huntbook.store import LocalStore


def __getattr__(name: str) -> object:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif name in _SUBMODULES or name in _ALIASES:
        value = importlib.import_module(f"huntbook.{_ALIASES.get(name, name)}")
    else:
        raise AttributeError(f"module 'huntbook' has no attribute {name!r}")
    globals()[name] = value
    if name not in _LIGHT and not _initializing():
        importlib.import_module("huntbook.accessor")  # df.hb, wherever DataFrames come from
    return value


def _initializing() -> bool:
    """True while a huntbook module is being imported (then registering df.hb waits for a later name:
    the accessor imports modules that may be the ones half-imported)."""
    import sys

    return any(
        getattr(getattr(module, "__spec__", None), "_initializing", False)
        for name, module in list(sys.modules.items())
        if name.startswith("huntbook.")
    )


def __dir__() -> list[str]:
    return __all__
