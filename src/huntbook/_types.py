"""Small shared type aliases (stdlib only, importable everywhere)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

PathLike: TypeAlias = str | os.PathLike[str]
Params: TypeAlias = Mapping[str, Any]
StrList: TypeAlias = Sequence[str]
