"""Progress bars (tqdm): shown on a terminal and in Jupyter by default, never in logs or CI output."""

from __future__ import annotations

import sys
from typing import Any


def progress_bar(progress: bool | None, **kwargs: Any) -> Any:
    """A tqdm bar (a widget in Jupyter); ``progress=None`` shows it on a terminal or in a Jupyter kernel."""
    from tqdm.auto import tqdm

    shown = sys.stderr.isatty() or "ipykernel" in sys.modules
    disable = (not shown) if progress is None else not progress
    return tqdm(disable=disable, leave=False, dynamic_ncols=True, **kwargs)
