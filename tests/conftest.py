"""Shared fixtures: the real datasets in ../shared/data (tests skip with a reason when absent)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared datasets folder, or skip."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared datasets not found at {SHARED_DATA} (clone the project beside ../shared)")
    return SHARED_DATA


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 600, **env: str
) -> subprocess.CompletedProcess[str]:
    """``python -m huntbook ARGS`` in ``cwd``; no user or project config leaks in (an empty config home,
    no ``HUNTBOOK_CONFIG``); ``env`` adds variables."""
    environ = {k: v for k, v in os.environ.items() if k != "HUNTBOOK_CONFIG"} | env
    environ["XDG_CONFIG_HOME"] = str(Path(cwd or ".").resolve() / ".no-config")
    return subprocess.run(
        [sys.executable, "-m", "huntbook", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environ,
        timeout=timeout,
    )
