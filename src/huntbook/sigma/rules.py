"""Loading Sigma rules: files, folders and zips (SigmaHQ layout), one broken rule never stops the run."""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, overload

from huntbook._types import PathLike
from huntbook.errors import MissingExtraError, ParameterError

if TYPE_CHECKING:
    import pandas as pd
    from sigma.collection import SigmaCollection

__all__ = ["LEVELS", "Rule", "RuleSet", "as_ruleset", "load", "loads"]

#: Sigma levels, lowest first.
LEVELS: Final = ("informational", "low", "medium", "high", "critical")
_SUFFIXES: Final = (".yml", ".yaml")


def _pysigma() -> None:
    try:
        import sigma.collection  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError("hb.sigma", "sigma", missing="sigma") from exc


@dataclass
class Rule:
    """One Sigma rule (or correlation rule) as loaded; ``error`` says why it cannot be used."""

    id: str
    title: str
    path: str
    level: str | None = None
    status: str | None = None
    tags: list[str] = field(default_factory=list)
    logsource: dict[str, str | None] = field(default_factory=dict)
    kind: str = "detection"  # detection | correlation
    sigma: Any = None  # the pySigma SigmaRule / SigmaCorrelationRule
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the rule parsed and validated."""
        return self.error is None and self.sigma is not None

    @property
    def techniques(self) -> list[str]:
        """ATT&CK technique ids from the tags (``attack.t1059.001`` -> ``T1059.001``)."""
        return [t.split(".", 1)[1].upper() for t in self.tags if _is_technique(t)]

    @property
    def tactics(self) -> list[str]:
        """ATT&CK tactics from the tags (``attack.execution`` -> ``execution``)."""
        out = []
        for t in self.tags:
            if t.startswith("attack.") and not _is_technique(t):
                name = t.split(".", 1)[1]
                if not (name[:1] in "gs" and name[1:].isdigit()):  # groups G0016, software S0002
                    out.append(name.replace("_", "-"))
        return out


def _is_technique(tag: str) -> bool:
    name = tag.split(".", 1)[1] if tag.startswith("attack.") else ""
    return name[:1] == "t" and name[1:5].isdigit()


class RuleSet(Sequence[Rule]):
    """Loaded rules: iterate, index, ``filter(...)``, ``errors``, ``to_frame()``."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = list(rules)

    @overload
    def __getitem__(self, index: int) -> Rule: ...
    @overload
    def __getitem__(self, index: slice) -> RuleSet: ...
    def __getitem__(self, index: int | slice) -> Rule | RuleSet:
        return RuleSet(self.rules[index]) if isinstance(index, slice) else self.rules[index]

    def __len__(self) -> int:
        return len(self.rules)

    def __repr__(self) -> str:
        bad = sum(not r.ok for r in self.rules)
        return f"<RuleSet: {len(self.rules)} rules, {bad} with errors>"

    def __add__(self, other: RuleSet) -> RuleSet:
        return RuleSet(self.rules + other.rules)

    @property
    def valid(self) -> RuleSet:
        """The rules that loaded without error."""
        return RuleSet(r for r in self.rules if r.ok)

    @property
    def errors(self) -> pd.DataFrame:
        """One row per rule that failed to load or validate: path, id, title, error."""
        import pandas as pd

        rows = [(r.path, r.id, r.title, r.error) for r in self.rules if not r.ok]
        return pd.DataFrame(rows, columns=["path", "rule_id", "title", "error"])

    def to_frame(self) -> pd.DataFrame:
        """One row per rule: id, title, level, status, kind, product, category, service, tags, path, error."""
        import pandas as pd

        rows = [
            {
                "rule_id": r.id,
                "title": r.title,
                "level": r.level,
                "status": r.status,
                "kind": r.kind,
                "product": r.logsource.get("product"),
                "category": r.logsource.get("category"),
                "service": r.logsource.get("service"),
                "tags": list(r.tags),
                "path": r.path,
                "error": r.error,
            }
            for r in self.rules
        ]
        return pd.DataFrame(rows)

    def filter(
        self,
        *,
        level: str | Iterable[str] | None = None,
        min_level: str | None = None,
        status: str | Iterable[str] | None = None,
        tags: str | Iterable[str] | None = None,
        product: str | None = None,
        category: str | None = None,
        service: str | None = None,
        ids: Iterable[str] | None = None,
    ) -> RuleSet:
        """Rules matching every given criterion (tags: any of them; ``min_level="high"``: high and critical).

        Example::

            rules.filter(min_level="high", status=["stable", "test"], tags="attack.t1059", product="windows")
        """
        levels = _as_set(level)
        if min_level is not None:
            if min_level not in LEVELS:
                raise ParameterError(f"unknown level {min_level!r}", hint=f"one of {', '.join(LEVELS)}")
            levels = (levels or set(LEVELS)) & set(LEVELS[LEVELS.index(min_level) :])
        statuses, wanted_tags, id_set = _as_set(status), _as_set(tags), _as_set(ids)

        def keep(r: Rule) -> bool:
            if levels is not None and r.level not in levels:
                return False
            if statuses is not None and r.status not in statuses:
                return False
            if wanted_tags is not None and not any(
                t == w or t.startswith(w + ".") for t in r.tags for w in wanted_tags
            ):
                return False
            if id_set is not None and r.id not in id_set:
                return False
            wanted = {"product": product, "category": category, "service": service}
            return all(v is None or r.logsource.get(k) == v for k, v in wanted.items())

        return RuleSet(r for r in self.rules if keep(r))

    def collection(self) -> SigmaCollection:
        """The valid rules as one pySigma ``SigmaCollection`` (correlation references resolved)."""
        from sigma.collection import SigmaCollection

        collection = SigmaCollection([r.sigma for r in self.rules if r.ok])
        collection.resolve_rule_references()
        return collection


def _as_set(value: str | Iterable[str] | None) -> set[str] | None:
    if value is None:
        return None
    return {value.lower()} if isinstance(value, str) else {v.lower() for v in value}


def as_ruleset(
    rules: RuleSet | Iterable[Rule] | PathLike | Iterable[PathLike], *, progress: bool | None = None
) -> RuleSet:
    """``rules`` as a RuleSet: a RuleSet or Rules as they are, paths loaded with :func:`load`."""
    if isinstance(rules, RuleSet):
        return rules
    if isinstance(rules, str | os.PathLike):
        return load(rules, progress=progress)
    items = list(rules)
    if all(isinstance(r, Rule) for r in items):
        return RuleSet(r for r in items if isinstance(r, Rule))
    return load([p for p in items if not isinstance(p, Rule)], progress=progress)


def load(paths: PathLike | Iterable[PathLike], *, progress: bool | None = None) -> RuleSet:
    """Load Sigma rules from files, folders (searched recursively) and ``.zip`` archives.

    Every rule is parsed and its condition checked; a rule that fails keeps its ``error`` and the
    others load. Correlation rules are linked to the rules they name.

    Example::

        rules = hb.sigma.load("sigma/rules/windows/process_creation")
        rules.errors            # what did not load, and why
    """
    from huntbook._progress import progress_bar

    _pysigma()
    path_list = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    documents = list(_documents(path_list))
    loaded: list[Rule] = []
    with progress_bar(progress, total=len(documents), unit="file", desc="sigma rules") as bar:
        for name, text in documents:
            loaded.extend(_parse(name, text))
            bar.update(1)
    _link_correlations(loaded)
    return RuleSet(loaded)


def loads(text: str, name: str = "<text>") -> RuleSet:
    """Load rules from YAML text (one or more documents).

    Example::

        rules = hb.sigma.loads(yaml_text)
    """
    _pysigma()
    loaded = _parse(name, text.encode("utf-8"))
    _link_correlations(loaded)
    return RuleSet(loaded)


def _documents(paths: list[PathLike]) -> Iterator[tuple[str, bytes]]:
    for p in paths:
        path = Path(p).expanduser()
        if not path.exists():
            raise ParameterError("no such rule file or folder", where=str(p), hint="check the path")
        if path.is_dir():
            for f in sorted(path.rglob("*")):
                if f.is_file() and f.suffix.lower() in _SUFFIXES:
                    yield str(f), f.read_bytes()
                elif f.is_file() and f.suffix.lower() == ".zip":
                    yield from _zip_documents(str(f), f.read_bytes())
        elif path.suffix.lower() == ".zip":
            yield from _zip_documents(str(path), path.read_bytes())
        else:
            yield str(path), path.read_bytes()


def _zip_documents(name: str, data: bytes) -> Iterator[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for member in sorted(archive.namelist()):
            if member.lower().endswith(_SUFFIXES) and not member.endswith("/"):
                yield f"{name}!{member}", archive.read(member)


def _parse(name: str, text: bytes) -> list[Rule]:
    import yaml
    from sigma.collection import SigmaCollection
    from sigma.correlations import SigmaCorrelationRule
    from sigma.rule import SigmaRule

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        docs = [d for d in yaml.load_all(text, Loader=loader) if d is not None]
    except yaml.YAMLError as exc:
        return [Rule(id="", title="", path=name, error=f"YAML error: {exc}".replace("\n", " "))]
    bad = [d for d in docs if not isinstance(d, dict)]
    if bad or not docs:
        return [Rule(id="", title="", path=name, error="not a Sigma rule (no YAML mapping)")]
    try:
        collection = SigmaCollection.from_dicts(docs, collect_errors=True)
    except Exception as exc:  # pySigma errors of many kinds
        return [Rule(id="", title=str(docs[0].get("title", "")), path=name, error=f"{exc}")]
    out = []
    for n, sigma_rule in enumerate(collection.rules):
        doc = docs[n] if n < len(docs) else {}
        logsource = getattr(sigma_rule, "logsource", None)
        rule = Rule(
            id=str(sigma_rule.id or doc.get("id") or ""),
            title=str(sigma_rule.title or ""),
            path=name,
            level=sigma_rule.level.name.lower() if sigma_rule.level else None,
            status=sigma_rule.status.name.lower() if sigma_rule.status else None,
            tags=[f"{t.namespace}.{t.name}".lower() for t in sigma_rule.tags],
            logsource={
                "product": getattr(logsource, "product", None),
                "category": getattr(logsource, "category", None),
                "service": getattr(logsource, "service", None),
            },
            kind="correlation" if isinstance(sigma_rule, SigmaCorrelationRule) else "detection",
            sigma=sigma_rule,
        )
        if sigma_rule.errors:
            rule.error = "; ".join(str(e) for e in sigma_rule.errors)
        elif isinstance(sigma_rule, SigmaRule):
            try:
                for condition in sigma_rule.detection.parsed_condition:
                    _ = condition.parsed
            except Exception as exc:  # a condition naming a missing detection, bad syntax, ...
                rule.error = f"condition: {exc}"
        out.append(rule)
    return out


def _link_correlations(rules: list[Rule]) -> None:
    """Resolve the rule references of correlation rules; a dangling reference is that rule's error."""
    correlations = [r for r in rules if r.kind == "correlation" and r.ok]
    if not correlations:
        return
    from sigma.collection import SigmaCollection

    collection = SigmaCollection([r.sigma for r in rules if r.ok and r.kind == "detection"])
    for rule in correlations:
        try:
            rule.sigma.resolve_rule_references(collection)
        except Exception as exc:  # SigmaRuleNotFoundError and friends
            rule.error = f"correlation: {exc}"
