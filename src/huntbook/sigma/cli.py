"""Plain functions behind ``huntbook sigma run`` and ``huntbook sigma convert`` (the CLI wires them)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from huntbook._types import PathLike
from huntbook.errors import ParameterError
from huntbook.sigma.convert import convert
from huntbook.sigma.engine import hunt, summary
from huntbook.sigma.rules import RuleSet, load
from huntbook.store import LocalStore

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["convert_command", "run_command"]


def _select(
    rules: Sequence[PathLike],
    min_level: str | None,
    status: Sequence[str] | None,
    tags: Sequence[str] | None,
    progress: bool | None,
) -> RuleSet:
    if not rules:
        raise ParameterError("no rules given", where="RULES", hint="name rule files, folders or zips")
    ruleset = load(list(rules), progress=progress)
    return ruleset.filter(min_level=min_level, status=status or None, tags=tags or None)


def run_command(
    store: PathLike,
    rules: Sequence[PathLike],
    *,
    min_level: str | None = None,
    status: Sequence[str] | None = None,
    tags: Sequence[str] | None = None,
    output: PathLike | None = None,
    progress: bool | None = None,
    out: TextIO | None = None,
) -> pd.DataFrame:
    """``huntbook sigma run --store DIR RULES...``: hunt, write hits to ``output``, print a summary.

    ``output`` ending in ``.csv``, ``.jsonl`` or ``.parquet`` receives every hit (``event`` as JSON
    text in CSV/JSON lines); the summary by rule goes to ``out`` (default stdout). Returns the hits.

    Example::

        run_command("case-42", ["sigma/rules/windows"], min_level="high", output="hits.csv")
    """
    ruleset = _select(rules, min_level, status, tags, progress)
    store_path = Path(store).expanduser()
    if not (store_path / "catalog.json").exists():
        raise ParameterError("not a huntbook store (no catalog.json)", where=str(store), hint="ingest first")
    hits = hunt(LocalStore(store_path), ruleset, progress=progress)
    stream = out or sys.stdout
    statuses = hits.attrs["rules"]["status"]
    stream.write(
        f"{len(ruleset)} rules: {int((statuses == 'ok').sum())} run, "
        f"{int((statuses == 'no data source').sum())} without data source, "
        f"{int(statuses.str.startswith('error').sum())} with errors; {len(hits)} hits\n"
    )
    if len(hits):
        stream.write(summary(hits).to_string(index=False, max_colwidth=70) + "\n")
    if output is not None:
        _write(hits, Path(output))
    return hits


def _write(hits: pd.DataFrame, path: Path) -> None:
    import json

    frame = hits.copy()
    suffix = path.suffix.lower()
    if suffix in (".csv", ".jsonl"):
        for col in ("event", "tags", "tactics", "techniques"):
            frame[col] = [json.dumps(v, default=str) for v in frame[col]]
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True, date_format="iso")
    elif suffix == ".parquet":
        frame["event"] = [json.dumps(v, default=str) for v in frame["event"]]
        frame.to_parquet(path, index=False)
    else:
        raise ParameterError(
            f"unknown output type {suffix!r}", where=str(path), hint="use .csv, .jsonl or .parquet"
        )


def convert_command(
    rules: Sequence[PathLike],
    *,
    target: str = "splunk",
    pipeline: str | None = None,
    output: PathLike | None = None,
    out: TextIO | None = None,
) -> pd.DataFrame:
    """``huntbook sigma convert RULES --target splunk``: print (or write) one query per rule.

    Each query is preceded by a comment line with the rule id and title; failures are listed at the
    end with their reason. Returns the conversion frame of :func:`huntbook.sigma.convert`.

    Example::

        convert_command(["rules/"], target="kql", pipeline="microsoft_xdr")
    """
    frame = convert(_select(rules, None, None, None, False), target=target, pipeline=pipeline)
    comment = "//" if target in ("kql", "esql", "eql") else "```" if target == "splunk" else "#"
    lines: list[str] = []
    for row in frame.itertuples():
        if row.status == "ok":
            title = " ".join(str(row.title).split())
            tail = "```" if comment == "```" else ""
            lines += [f"{comment} {row.rule_id} {title}{tail}", str(row.query), ""]
    failed: list[Any] = [r for r in frame.itertuples() if r.status != "ok"]
    for row in failed:
        lines.append(
            f"{comment} not converted: {row.rule_id} {row.title}: {row.error}"
            + ("```" if comment == "```" else "")
        )
    text = "\n".join(lines) + "\n"
    if output is not None:
        Path(output).write_text(text, encoding="utf-8")
    else:
        (out or sys.stdout).write(text)
    return frame
