"""Progress bars (tqdm): shown on a terminal by default, never in logs or CI output."""

from __future__ import annotations

import sys
from typing import Any


def progress_bar(progress: bool | None, **kwargs: Any) -> Any:
    """A tqdm bar; ``progress=None`` shows it only when stderr is a terminal."""
    from tqdm.auto import tqdm

    disable = (not sys.stderr.isatty()) if progress is None else not progress
    return tqdm(disable=disable, leave=False, dynamic_ncols=True, **kwargs)
