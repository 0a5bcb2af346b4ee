"""huntbook as a Splunk DSDL (Deep Learning Toolkit / MLTK Container) model: decode, IoCs, offline TI.

Copy (or import) this module as the container's model module ``app/model/huntbook_pipeline.py``;
then in Splunk::

    | fit MLTKContainer algo=huntbook_pipeline CommandLine into app:huntbook
    | apply huntbook

The container calls ``init(df, param)``, ``fit(model, df, param)``, ``save(model, name)`` and
``apply(model, df, param)`` on ``fit``, and ``load(name)`` then ``apply`` on ``apply``; ``df`` is
the search results read from CSV, ``param`` the command's metadata: ``feature_variables`` (the
fields named in the command) and ``options`` (``model_name`` and ``params``, the ``key=value``
options as strings, possibly in double quotes).

For each feature field (default: the ``field`` option, else ``CommandLine``) ``apply`` adds
``<field>_decoded`` (the value with NUL bytes removed and encoded items decoded in place),
``<field>_iocs`` and ``<field>_ioc_types`` (one IoC per line, types aligned), ``<field>_ioc_count``
and, with enrichment on, ``<field>_ti_severity`` (the highest severity of the row's IoCs) and
``<field>_ti_flagged`` (its IoCs rated medium or high).

Options (all strings, as Splunk sends them): ``field`` (comma list, when the command names no
fields), ``ioc_types`` (comma list of :data:`huntbook.iocs.IOC_TYPES`), ``decode`` (true/false),
``max_depth`` (decode layers, 1-32), ``ti_providers`` (comma list of offline TI providers),
``feeds`` (comma list of feed files/folders for ``local_feeds``; implies ``ti_providers=local_feeds``)
and ``default_severity`` (of a feed hit without one). Models are the settings as JSON in
``$HUNTBOOK_DSDL_MODEL_DIR`` (default ``/srv/app/model/data/``, where DSDL keeps models); no
secrets: online providers are refused and the user's ``huntbook.yaml`` is not read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huntbook.errors import DataError, ParameterError, StoreError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DEFAULT_MODEL_DIR",
    "MODEL_DIR_ENV",
    "OPTIONS",
    "apply",
    "field_columns",
    "fit",
    "init",
    "init_settings",
    "load",
    "save",
    "summary",
]

MODEL_DIR_ENV = "HUNTBOOK_DSDL_MODEL_DIR"
DEFAULT_MODEL_DIR = "/srv/app/model/data/"
VERSION = 1
#: The options this model reads from ``param['options']['params']``, with what each one takes.
OPTIONS = {
    "field": "comma-separated field names (used when the command names no fields)",
    "ioc_types": "comma-separated IoC types, e.g. ipv4,url,dns",
    "decode": "true or false",
    "max_depth": "an integer from 1 to 32",
    "ti_providers": "comma-separated offline TI provider names, e.g. local_feeds",
    "feeds": "comma-separated feed files or folders for local_feeds",
    "default_severity": "info, low, medium or high",
}
_DSDL_OWN = {"algo", "mode"}  # options the container itself reads
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}
_SEP = "\n"


# ---------------------------------------------------------------------------------------------
# parameters
# ---------------------------------------------------------------------------------------------
def _options(param: Mapping[str, Any] | None) -> dict[str, str]:
    if param is None:
        return {}
    if not isinstance(param, Mapping):
        raise ParameterError("param must be a dict", where="param", hint="pass the DSDL metadata dict")
    options = param.get("options") or {}
    raw = options.get("params") or {} if isinstance(options, Mapping) else {}
    if not isinstance(raw, Mapping):
        raise ParameterError("options.params must be a dict", where="param['options']['params']")
    return {str(k): str(v).strip().strip('"').strip() for k, v in raw.items()}


def _list(name: str, text: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ParameterError(f"{name} is empty", where=name, hint=f"give {OPTIONS[name]}")
    return items


def _bool(name: str, text: str) -> bool:
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise ParameterError(
        f"{name}={text!r} is not a boolean", where=name, hint=f"use {name}=true or {name}=false"
    )


def _int(name: str, text: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise ParameterError(f"{name}={text!r} is not valid", where=name, hint=f"give {OPTIONS[name]}")
    return value


def _offline_providers(names: list[str]) -> list[str]:
    from huntbook import ti

    table = ti.providers()
    online = dict(zip(table["name"], table["online"], strict=True))
    for name in names:
        if name not in online:
            raise ParameterError(
                f"unknown TI provider {name!r}", where="ti_providers", hint=f"choose from {', '.join(online)}"
            )
        if online[name] is not False:
            raise ParameterError(
                f"{name} is an online provider",
                where="ti_providers",
                hint="only offline providers run inside DSDL (no keys in models); e.g. local_feeds",
            )
    return names


def _settings(df: pd.DataFrame | None, param: Mapping[str, Any] | None) -> dict[str, Any]:
    """The model: validated settings from the DSDL ``param`` dict (JSON-serialisable, no secrets)."""
    from huntbook.iocs import IOC_TYPES
    from huntbook.ti import SEVERITIES

    opts = _options(param)
    unknown = sorted(set(opts) - set(OPTIONS) - _DSDL_OWN)
    if unknown:
        raise ParameterError(
            f"unknown option(s) {', '.join(unknown)}", where="params", hint=f"options: {', '.join(OPTIONS)}"
        )
    features = list((param or {}).get("feature_variables") or [])
    fields = [str(f) for f in features] or (
        _list("field", opts["field"]) if "field" in opts else ["CommandLine"]
    )
    ioc_types = _list("ioc_types", opts["ioc_types"]) if "ioc_types" in opts else None
    bad = sorted(set(ioc_types or ()) - set(IOC_TYPES))
    if bad:
        raise ParameterError(
            f"unknown IoC type(s) {', '.join(bad)}",
            where="ioc_types",
            hint=f"choose from {', '.join(IOC_TYPES)}",
        )
    feeds = _list("feeds", opts["feeds"]) if "feeds" in opts else []
    providers = _list("ti_providers", opts["ti_providers"]) if "ti_providers" in opts else []
    if feeds and "local_feeds" not in providers:
        providers.append("local_feeds")
    severity = opts.get("default_severity", "high").lower()
    if severity not in SEVERITIES:
        raise ParameterError(
            f"default_severity={severity!r} is not valid",
            where="default_severity",
            hint=OPTIONS["default_severity"],
        )
    settings: dict[str, Any] = {
        "version": VERSION,
        "fields": fields,
        "ioc_types": ioc_types,
        "decode": _bool("decode", opts["decode"]) if "decode" in opts else True,
        "max_depth": _int("max_depth", opts["max_depth"], 1, 32) if "max_depth" in opts else 8,
        "ti_providers": _offline_providers(providers),
        "feeds": feeds,
        "default_severity": severity,
    }
    if df is not None:
        _check_fields(df, fields)
    return settings


def init_settings(param: Mapping[str, Any] | None) -> dict[str, Any]:
    """The validated model settings from a DSDL-shaped ``param`` dict, without a DataFrame to check."""
    return _settings(None, param)


def _check_fields(df: pd.DataFrame, fields: list[str]) -> None:
    missing = [f for f in fields if f not in df.columns]
    if missing:
        raise DataError(
            f"no field(s) {', '.join(missing)} in the search results",
            where="feature_variables",
            hint=f"name result fields after algo=...; fields: {', '.join(map(str, df.columns))}",
        )


# ---------------------------------------------------------------------------------------------
# the DSDL model functions
# ---------------------------------------------------------------------------------------------
def init(df: pd.DataFrame, param: Mapping[str, Any]) -> dict[str, Any]:
    """The model (a settings dict) from the command's options; fields are checked against ``df``."""
    return _settings(df, param)


def fit(model: dict[str, Any], df: pd.DataFrame, param: Mapping[str, Any]) -> dict[str, Any]:
    """Nothing to learn: checks the fields and returns the fit info DSDL prints."""
    _check_fields(df, model["fields"])
    return {
        "message": "huntbook pipeline ready",
        "rows": len(df),
        "fields": list(model["fields"]),
        "ti_providers": list(model["ti_providers"]),
    }


def apply(model: dict[str, Any], df: pd.DataFrame, param: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """A copy of ``df`` plus the decoded text, IoCs and (optionally) TI severity of each field."""
    _check_fields(df, model["fields"])
    result = df.copy()
    for field in model["fields"]:
        for name, column in field_columns(df[field], model).items():
            result[f"{field}_{name}"] = column.set_axis(df.index)
    return result


def _cell(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    return str(value).replace("\x00", "")


def field_columns(values: pd.Series, model: Mapping[str, Any]) -> dict[str, pd.Series]:
    """The output columns (decoded, iocs, ioc_types, ioc_count[, ti_severity, ti_flagged]) of ``values``."""
    import pandas as pd

    from huntbook.decode import add_decoded
    from huntbook.iocs import extract

    text = pd.Series([_cell(v) for v in values], dtype=object)
    frame = pd.DataFrame({"text": text})
    if model["decode"]:
        decoded = add_decoded(frame, "text", max_depth=model["max_depth"])["decoded"]
        text = pd.Series(
            [
                None if t is None else (t if d is None else d.replace("\x00", ""))
                for t, d in zip(text, decoded, strict=True)
            ],
            dtype=object,
        )
    found = extract(pd.DataFrame({"text": text}), columns="text", ioc_types=model["ioc_types"])
    found = found.drop_duplicates(["row", "ioc_type", "value"])
    rows: dict[int, list[tuple[str, str]]] = {}
    for row, kind, value in zip(found["row"], found["ioc_type"], found["value"], strict=True):
        rows.setdefault(int(row), []).append((str(kind), str(value)))
    positions = range(len(text))
    columns = {
        "decoded": text,
        "iocs": pd.Series([_SEP.join(v for _, v in rows.get(i, [])) for i in positions], dtype=object),
        "ioc_types": pd.Series([_SEP.join(k for k, _ in rows.get(i, [])) for i in positions], dtype=object),
        "ioc_count": pd.Series([len(rows.get(i, [])) for i in positions], dtype="int64"),
    }
    if model["ti_providers"]:
        columns.update(_ti_columns(found, rows, len(text), model))
    return columns


def _ti_columns(
    found: pd.DataFrame, rows: dict[int, list[tuple[str, str]]], n: int, model: Mapping[str, Any]
) -> dict[str, pd.Series]:
    import pandas as pd

    from huntbook import ti
    from huntbook.config import Config

    severity: dict[tuple[str, str], str] = {}
    if len(found):
        settings = {
            "local_feeds": {"paths": list(model["feeds"]), "default_severity": model["default_severity"]}
        }
        results = ti.lookup(
            found[["value", "ioc_type"]],
            providers=list(model["ti_providers"]),
            settings=settings,
            config=Config(),  # never the user's huntbook.yaml: no keys, no online providers
            cache=False,
            progress=False,
        )
        for ioc, kind, status, sev in zip(
            results["ioc"], results["ioc_type"], results["status"], results["severity"], strict=True
        ):
            key = (str(kind), str(ioc))
            if status == "ok" and ti.severity_rank(sev) > ti.severity_rank(severity.get(key)):
                severity[key] = str(sev)
    top, flagged = [], []
    for i in range(n):
        items = rows.get(i, [])
        best = max((severity.get(item, "") for item in items), key=ti.severity_rank, default="")
        top.append(best)
        flagged.append(_SEP.join(v for k, v in items if ti.severity_rank(severity.get((k, v))) >= 3))
    return {"ti_severity": pd.Series(top, dtype=object), "ti_flagged": pd.Series(flagged, dtype=object)}


# ---------------------------------------------------------------------------------------------
# persistence
# ---------------------------------------------------------------------------------------------
def _model_path(name: str) -> Path:
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ParameterError(
            f"bad model name {name!r}", where="model_name", hint="use letters, digits and _ (into app:NAME)"
        )
    return Path(os.environ.get(MODEL_DIR_ENV) or DEFAULT_MODEL_DIR) / f"{name}.json"


def save(model: dict[str, Any], name: str) -> dict[str, Any]:
    """Write the model's settings as ``<model dir>/<name>.json`` (DSDL names it ``<algo>_<model>``)."""
    path = _model_path(name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(model, indent=2, sort_keys=True), encoding="utf-8")
    except OSError as exc:
        raise StoreError(
            f"cannot save the model: {exc.strerror}", where=str(path), hint=f"set {MODEL_DIR_ENV}"
        ) from exc
    return model


def load(name: str) -> dict[str, Any]:
    """The model saved by :func:`save` under ``name``."""
    path = _model_path(name)
    try:
        model = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise StoreError(
            "no such model", where=str(path), hint="run | fit MLTKContainer ... into app:NAME first"
        ) from exc
    except (OSError, ValueError) as exc:
        raise StoreError(f"unreadable model: {exc}", where=str(path), hint="fit the model again") from exc
    if not isinstance(model, dict) or model.get("version") != VERSION:
        raise StoreError("not a huntbook model of this version", where=str(path), hint="fit the model again")
    return model


def summary(model: dict[str, Any] | None = None) -> dict[str, Any]:
    """What DSDL shows for ``| summary``: versions, the options, and the model's settings."""
    from importlib.metadata import PackageNotFoundError, version

    import pandas as pd

    try:
        huntbook_version = version("huntbook")
    except PackageNotFoundError:  # running from a source tree copied into the container
        huntbook_version = "unknown"
    info: dict[str, Any] = {
        "version": {"huntbook": huntbook_version, "pandas": pd.__version__},
        "options": dict(OPTIONS),
    }
    if model is not None:
        info["summary"] = {
            k: model[k] for k in ("fields", "ioc_types", "decode", "max_depth", "ti_providers", "feeds")
        }
    return info
