"""The package's shape: layers of DESIGN.md, lazy import, entry-point plugins."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "huntbook"

# Top to bottom; a module may import only from its own layer or below (DESIGN.md section 2).
LAYERS: list[set[str]] = [
    {"cli", "notebook", "__main__", "testing", "splunk_app", "dsdl"},
    {"investigations", "demo", "hunts"},
    {"session", "api", "accessor"},
    {"vis", "report", "upload"},
    {
        "drivers",
        "enrich",
        "analysis",
        "sigma",
        "store",
        "formats",
        "normalize",
        "ti",
        "timeseries",
        "proctree",
        "decode",
        "cluster",
        "outliers",
        "sessions",
        "logons",
    },
    {"iocs", "queries", "pivoting", "schema"},
    {"config", "plugins", "entities", "http", "_progress"},
    {"errors", "_types"},
]


def _layer(module: str) -> int:
    top = module.split(".")[1] if module.count(".") else ""
    for index, names in enumerate(LAYERS):
        if top in names:
            return index
    raise AssertionError(f"huntbook.{top} is in no layer: add it to LAYERS in {__file__} and DESIGN.md")


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod == "huntbook":
                found += [(node.lineno, f"huntbook.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, mod))
    return [(line, m) for line, m in found if m == "huntbook" or m.startswith("huntbook.")]


def test_every_module_imports_only_downward() -> None:
    violations = []
    for path in sorted(SRC.rglob("*.py")):
        me = _module_name(path)
        if me == "huntbook":
            continue  # the lazy root re-exports names and imports nothing at run time
        mine = _layer(me)
        for line, target in _imports(path):
            if target == "huntbook" or target.split(".")[1] == me.split(".")[1]:
                continue
            if _layer(target) < mine:
                violations.append(f"{path.relative_to(SRC)}:{line} imports {target} from a higher layer")
    assert not violations, "\n".join(violations)


def test_layer_test_sees_violations(tmp_path: Path) -> None:
    bad = SRC / "schema.py"
    assert _layer("huntbook.schema") > _layer("huntbook.store")
    assert ("huntbook.store" in [m for _, m in _imports(bad)]) is False


IMPORT_PROBE = """
import sys, time
t0 = time.perf_counter()
import huntbook
t1 = time.perf_counter()
heavy = [m for m in ("pandas", "duckdb", "yaml", "httpx", "pyarrow", "numpy", "bokeh", "tqdm")
         if m in sys.modules]
print(repr((t1 - t0, heavy)))
"""


def test_import_huntbook_is_cheap_and_imports_nothing_heavy() -> None:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    runs = []
    for _ in range(5):
        out = subprocess.run(
            [sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True, env=env, check=True
        )
        runs.append(ast.literal_eval(out.stdout.strip()))
    seconds = sorted(r[0] for r in runs)[len(runs) // 2]
    assert runs[0][1] == [], f"import huntbook imported {runs[0][1]}"
    # The budget of DESIGN.md (50 ms over a bare interpreter); the median of 5 fresh processes.
    assert seconds < 0.05, f"import huntbook took {seconds * 1000:.1f} ms"


def test_lazy_names_resolve() -> None:
    import huntbook

    assert huntbook.HuntbookError.__module__ == "huntbook.errors"
    assert "LocalStore" in dir(huntbook)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        huntbook.nope  # noqa: B018


def test_builtin_driver_is_registered_by_entry_point() -> None:
    from huntbook.plugins import registry

    infos = registry("drivers").infos()
    assert "local" in infos
    assert infos["local"].target == "huntbook.drivers.local:LocalDriver"
