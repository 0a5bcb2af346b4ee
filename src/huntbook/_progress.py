"""Long-running work: progress bars (tqdm; shown on a terminal and in Jupyter by default, never in logs
or CI output), and pausing the cyclic garbage collector."""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Iterator
from typing import Any


def progress_bar(progress: bool | None, **kwargs: Any) -> Any:
    """A tqdm bar (a widget in Jupyter); ``progress=None`` shows it on a terminal or in a Jupyter kernel."""
    from tqdm.auto import tqdm

    shown = sys.stderr.isatty() or "ipykernel" in sys.modules
    disable = (not shown) if progress is None else not progress
    return tqdm(disable=disable, leave=False, dynamic_ncols=True, **kwargs)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection meanwhile, for bulk work that makes many small objects and no cycles.

    A full collection walks every live object: with a loaded Sigma ruleset (hundreds of thousands of
    pySigma objects) each one takes ~0.5 s, and bulk work triggers them often.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
