"""Sigma detections: run rules over a LocalStore, or convert them for a SIEM (extra ``sigma``).

::

    rules = hb.sigma.load("sigma/rules/windows")          # files, folders, zips (SigmaHQ layout)
    hits = hb.sigma.hunt(store, rules)                     # over the store's events
    hb.sigma.summary(hits); hb.sigma.attack_rollup(hits)
    hb.sigma.convert(rules, target="splunk")               # or kql, lucene, esql, eql

Modules: :mod:`~huntbook.sigma.rules` (loading, filtering), :mod:`~huntbook.sigma.compiler`
(rules to predicate trees and DuckDB SQL, field mappings), :mod:`~huntbook.sigma.arrow` (the
in-process evaluator of those trees, for small sources), :mod:`~huntbook.sigma.engine` (execution,
correlations, summaries), :mod:`~huntbook.sigma.convert` (SIEM queries through the pySigma backends).
"""

from __future__ import annotations

from huntbook.sigma.cli import convert_command, run_command
from huntbook.sigma.convert import TARGETS, convert
from huntbook.sigma.engine import HIT_COLUMNS, CompiledRules, attack_rollup, compile_rules, hunt, summary
from huntbook.sigma.rules import LEVELS, Rule, RuleSet, load, loads

__all__ = [
    "HIT_COLUMNS",
    "LEVELS",
    "TARGETS",
    "CompiledRules",
    "Rule",
    "RuleSet",
    "attack_rollup",
    "compile_rules",
    "convert",
    "convert_command",
    "hunt",
    "load",
    "loads",
    "run_command",
    "summary",
]
