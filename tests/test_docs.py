"""Every ```python example in README.md and docs/*.md runs (in a fresh temp folder, file by file)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _blocks(path: Path) -> list[str]:
    return BLOCK.findall(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("doc", [d for d in DOCS if _blocks(d)], ids=lambda p: p.name)
def test_doc_examples_run(doc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HUNTBOOK_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    from huntbook.pivoting import user_pivots

    registered = {p.qualified_name for p in user_pivots().all()}
    namespace: dict[str, object] = {"__name__": "__doc_example__"}
    try:
        for i, code in enumerate(_blocks(doc), 1):
            try:
                exec(compile(code, f"{doc.name}[block {i}]", "exec"), namespace)
            except Exception as exc:  # pragma: no cover - the message is the point
                pytest.fail(f"{doc.name} block {i} failed: {type(exc).__name__}: {exc}\n{code}")
    finally:  # pivots a doc registers stay in that doc
        for item in user_pivots().all():
            if item.qualified_name not in registered:
                user_pivots().remove(item.qualified_name)


def test_docs_have_examples() -> None:
    assert sum(len(_blocks(d)) for d in DOCS) >= 3
