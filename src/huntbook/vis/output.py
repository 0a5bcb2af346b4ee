"""Charts out of Python: a self-contained HTML page (:func:`save`) or pieces for another page (:func:`embed`).

BokehJS is inlined (no CDN, no server) and the page carries a strict Content-Security-Policy: scripts
run only when their sha256 is listed, nothing is fetched (``default-src 'none'``), images only from
``data:`` URIs. huntbook's charts use no ``CustomJS`` and no WebGL, so BokehJS needs no ``'unsafe-eval'``;
a figure of your own that does use them gets ``'unsafe-eval'`` added (see :attr:`Embed.needs_eval`).
"""

from __future__ import annotations

import base64
import hashlib
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bokeh.embed import components
from bokeh.embed.bundle import bundle_for_objs_and_resources
from bokeh.models import LayoutDOM, Plot
from bokeh.models.annotations import Title
from bokeh.resources import INLINE

from huntbook._types import PathLike
from huntbook.errors import DataError

__all__ = ["Embed", "csp", "embed", "save", "to_html"]

# model types whose BokehJS code compiles JavaScript at run time (new Function / eval)
_EVAL_MODELS = ("CustomJS", "CustomJSHover", "CustomJSTickFormatter", "CustomJSFilter", "CustomJSTransform",
                "CustomJSExpr", "CustomJSCompare", "CustomJSTicker", "CustomAction")  # fmt: skip


@dataclass(frozen=True)
class Embed:
    """A chart as pieces of a page: ``div`` goes where the chart should appear, ``scripts`` are raw
    JavaScript texts (BokehJS, then the chart's document) to put in ``<script>`` elements after it, in
    order. Allow them in a Content-Security-Policy by :attr:`hashes`. ``needs_eval``: the chart holds
    models that compile JavaScript (CustomJS, WebGL), so the policy must also allow ``'unsafe-eval'``."""

    div: str
    scripts: list[str] = field(default_factory=list)
    needs_eval: bool = False

    @property
    def hashes(self) -> list[str]:
        """CSP sources for the scripts: ``'sha256-...'`` each."""
        return [_sha256_source(s) for s in self.scripts]


def _sha256_source(script: str) -> str:
    digest = hashlib.sha256(script.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def _check(chart: Any) -> LayoutDOM:
    if not isinstance(chart, LayoutDOM):
        raise DataError(
            f"needs a Bokeh layout (a huntbook.vis chart), got {type(chart).__name__}", where="vis.save/embed"
        )
    return chart


def _needs_eval(chart: LayoutDOM) -> bool:
    for model in chart.references():
        if type(model).__name__ in _EVAL_MODELS:
            return True
        if isinstance(model, Plot) and model.output_backend == "webgl":
            return True
    return False


def embed(chart: LayoutDOM) -> Embed:
    """The chart as a ``<div>`` and the raw scripts that draw it (BokehJS inline, no CDN)."""
    chart = _check(chart)
    script, div = components(chart, wrap_script=False)
    library = bundle_for_objs_and_resources([chart], INLINE).js_raw
    scripts = [s for s in library if s.strip()] + [script]
    for text in scripts:
        if "</script" in text.lower():  # would end the <script> element early; BokehJS escapes its data
            raise DataError("a chart script holds '</script'", where="vis.embed")
    return Embed(div=div, scripts=scripts, needs_eval=_needs_eval(chart))


def csp(part: Embed) -> str:
    """The Content-Security-Policy of a page that shows ``part`` and nothing else that runs."""
    scripts = " ".join([*part.hashes, *(["'unsafe-eval'"] if part.needs_eval else [])])
    return (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; "
        f"script-src {scripts}; base-uri 'none'; form-action 'none'"
    )


def _title_of(chart: LayoutDOM) -> str:
    """The first plot title in the layout (searched without walking every model)."""
    todo: list[Any] = [chart]
    while todo:
        item = todo.pop(0)
        if isinstance(item, Plot) and item.title is not None and isinstance(item.title, Title):
            text = item.title.text
            return str(getattr(text, "text", text))
        todo.extend(getattr(item, "children", []) or [])
    return "huntbook chart"


def to_html(chart: LayoutDOM, *, title: str | None = None) -> str:
    """One self-contained HTML page showing the chart (inline BokehJS, strict CSP, works offline)."""
    part = embed(chart)
    page_title = title if title is not None else _title_of(chart)
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{html.escape(csp(part))}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{html.escape(page_title)}</title>",
            "<style>body{margin:16px;font-family:system-ui,sans-serif}</style>",
            "</head><body>",
            part.div,
            *(f"<script>{s}</script>" for s in part.scripts),
            "</body></html>",
            "",
        ]
    )


def save(chart: LayoutDOM, path: PathLike, *, title: str | None = None) -> Path:
    """Write the chart as a self-contained HTML file (see :func:`to_html`); return its path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(to_html(chart, title=title), encoding="utf-8")
    return target
