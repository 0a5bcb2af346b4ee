"""Sigma rules to SIEM queries through the pySigma backends: Splunk SPL, KQL, Elasticsearch.

Targets, their backends (pySigma packages) and pipelines (the first is the default):

* ``splunk``: ``SplunkBackend`` (pysigma-backend-splunk); ``splunk_windows``, ``splunk_cim``.
* ``kql``: ``KustoBackend`` (pysigma-backend-kusto); ``sentinel_asim``, ``microsoft_xdr`` (Defender),
  ``azure_monitor``.
* ``lucene``, ``esql``, ``eql``: ``LuceneBackend``, ``ESQLBackend``, ``EqlBackend``
  (pysigma-backend-elasticsearch); ``ecs_windows``, ``ecs_windows_old``, ``ecs_zeek_beats``.

``pipeline`` is one of those names, ``"none"`` (field names as the rule writes them), or a pySigma
``ProcessingPipeline``. Rules are copied before conversion: pipelines never change loaded rules.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Final

from huntbook._types import PathLike
from huntbook.errors import MissingExtraError, ParameterError
from huntbook.sigma.rules import Rule, RuleSet, as_ruleset

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PIPELINES", "TARGETS", "convert"]

TARGETS: Final = ("splunk", "kql", "lucene", "esql", "eql")

_ELASTIC_PIPELINES: Final = ("ecs_windows", "ecs_windows_old", "ecs_zeek_beats")
#: Pipelines per target, default first.
PIPELINES: Final = {
    "splunk": ("splunk_windows", "splunk_cim"),
    "kql": ("sentinel_asim", "microsoft_xdr", "azure_monitor"),
    "lucene": _ELASTIC_PIPELINES,
    "esql": _ELASTIC_PIPELINES,
    "eql": _ELASTIC_PIPELINES,
}
_ALIASES: Final = {"defender": "microsoft_xdr", "sentinel": "sentinel_asim", "asim": "sentinel_asim"}


def _backend_class(target: str) -> Any:
    try:
        if target == "splunk":
            from sigma.backends.splunk import SplunkBackend  # type: ignore[attr-defined]

            return SplunkBackend
        if target == "kql":
            from sigma.backends.kusto import KustoBackend  # type: ignore[attr-defined]

            return KustoBackend
        from sigma.backends.elasticsearch import (  # type: ignore[attr-defined]
            EqlBackend,
            ESQLBackend,
            LuceneBackend,
        )

        return {"lucene": LuceneBackend, "esql": ESQLBackend, "eql": EqlBackend}[target]
    except ImportError as exc:
        raise MissingExtraError(f"converting Sigma rules to {target}", "sigma", missing=exc.name) from exc


def _pipeline(target: str, name: str) -> Any:
    factories: dict[str, Callable[[], Any]] = {}
    if name not in PIPELINES[target]:
        raise ParameterError(
            f"unknown pipeline {name!r} for target {target!r}",
            where="pipeline",
            hint=f"one of {', '.join(PIPELINES[target])}, 'none', or a pySigma ProcessingPipeline",
        )
    try:
        if name in ("splunk_windows", "splunk_cim"):
            from sigma.pipelines.splunk import (  # type: ignore[attr-defined]
                splunk_cim_data_model,
                splunk_windows_pipeline,
            )

            factories = {"splunk_windows": splunk_windows_pipeline, "splunk_cim": splunk_cim_data_model}
        elif name == "sentinel_asim":
            from sigma.pipelines.sentinelasim import sentinel_asim_pipeline  # type: ignore[attr-defined]

            factories = {name: sentinel_asim_pipeline}
        elif name == "microsoft_xdr":
            from sigma.pipelines.microsoftxdr import microsoft_xdr_pipeline  # type: ignore[attr-defined]

            factories = {name: microsoft_xdr_pipeline}
        elif name == "azure_monitor":
            from sigma.pipelines.azuremonitor import azure_monitor_pipeline  # type: ignore[attr-defined]

            factories = {name: azure_monitor_pipeline}
        elif name in _ELASTIC_PIPELINES:
            from sigma.pipelines.elasticsearch.windows import ecs_windows, ecs_windows_old
            from sigma.pipelines.elasticsearch.zeek import ecs_zeek_beats

            factories = {
                "ecs_windows": ecs_windows,
                "ecs_windows_old": ecs_windows_old,
                "ecs_zeek_beats": ecs_zeek_beats,
            }
    except ImportError as exc:
        raise MissingExtraError(f"the {name} pipeline", "sigma", missing=exc.name) from exc
    return factories[name]()


def convert(
    rules: RuleSet | Iterable[Rule] | PathLike | Iterable[PathLike],
    target: str = "splunk",
    pipeline: Any = None,
    *,
    output_format: str | None = None,
) -> pd.DataFrame:
    """Convert rules to queries for a SIEM; one row per rule (a rule that fails keeps its error).

    Columns: ``rule_id``, ``title``, ``target``, ``pipeline``, ``query`` (the query text; several
    queries of one rule are joined by a newline), ``status`` (``ok`` or ``error``), ``error``.

    Example::

        hb.sigma.convert(rules, target="kql", pipeline="microsoft_xdr")["query"]
    """
    import pandas as pd

    if target not in TARGETS:
        raise ParameterError(
            f"unknown target {target!r}", where="target", hint=f"one of {', '.join(TARGETS)}"
        )
    rule_list = list(as_ruleset(rules))
    if pipeline is None or isinstance(pipeline, str):
        name = pipeline or PIPELINES[target][0]
        name = _ALIASES.get(name, name)
        processing = None if name == "none" else _pipeline(target, name)
    else:
        name, processing = str(getattr(pipeline, "name", None) or "custom"), pipeline
    backend = _backend_class(target)(processing_pipeline=processing)
    fmt = output_format or backend.default_format
    backend.init_processing_pipeline(fmt)
    valid = [r for r in rule_list if r.ok]
    copies = dict(zip((id(r) for r in valid), copy.deepcopy([r.sigma for r in valid]), strict=True))
    rows = []
    for rule in rule_list:
        row = {"rule_id": rule.id, "title": rule.title, "target": target, "pipeline": name}
        if not rule.ok:
            rows.append({**row, "query": None, "status": "error", "error": rule.error})
            continue
        sigma_rule = copies[id(rule)]
        try:
            if rule.kind == "correlation":
                queries = backend.convert_correlation_rule(sigma_rule, fmt)
            else:
                backend.init_processing_pipeline(fmt)  # each rule starts from a fresh pipeline state
                queries = backend.convert_rule(sigma_rule, fmt)
            text = "\n".join(str(q) for q in queries)
            rows.append({**row, "query": text, "status": "ok", "error": None})
        except Exception as exc:  # pySigma raises many error types; each stays with its rule
            rows.append({**row, "query": None, "status": "error", "error": f"{type(exc).__name__}: {exc}"})
    return pd.DataFrame(rows, columns=["rule_id", "title", "target", "pipeline", "query", "status", "error"])
