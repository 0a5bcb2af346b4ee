"""Charts that work offline: Bokeh with inline resources, no CDN, no tile server (the ``vis`` extra).

::

    from huntbook import vis

    chart = vis.timeline(procs, group_by="DvcHostname", hover=["TargetProcessCommandLine"])
    vis.save(chart, "timeline.html")          # one self-contained file, strict CSP, opens offline
    part = vis.embed(chart)                   # div + raw scripts, for another page (huntbook.report)
    procs.hb.plot.timeline(group_by="DvcHostname")   # the same, from the DataFrame

Charts: :func:`timeline` (events, per group; aggregated honestly above ``max_points``), :func:`durations`
(spans), :func:`values` (a number over time), :func:`matrix` (x by y counts), :func:`anomalies` (a scored
series from ``timeseries.anomalies``), :func:`proctree` (from ``proctree.build``), :func:`world_map`
(GeoIP results), :func:`graph` (entities, networkx layout) and :func:`linked` (a timeline and a table
sharing their selection). Each returns a Bokeh layout object; every value from the data is shown as
text (hover tooltips, labels, titles), never as HTML. Importing this package is cheap: Bokeh is
imported by the first chart.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from huntbook.errors import MissingExtraError
from huntbook.vis._accessor import PlotAccessor

__all__ = [
    "Embed",
    "PlotAccessor",
    "anomalies",
    "countries",
    "durations",
    "embed",
    "graph",
    "linked",
    "matrix",
    "proctree",
    "save",
    "timeline",
    "to_html",
    "values",
    "world_map",
]

_LAZY = {
    **dict.fromkeys(
        ("timeline", "durations", "values", "matrix", "anomalies", "linked"), "huntbook.vis.charts"
    ),
    "proctree": "huntbook.vis.trees",
    "world_map": "huntbook.vis.maps",
    "countries": "huntbook.vis.maps",
    "graph": "huntbook.vis.graphs",
    **dict.fromkeys(("Embed", "embed", "save", "to_html"), "huntbook.vis.output"),
}

if TYPE_CHECKING:
    from huntbook.vis.charts import anomalies, durations, linked, matrix, timeline, values
    from huntbook.vis.graphs import graph
    from huntbook.vis.maps import countries, world_map
    from huntbook.vis.output import Embed, embed, save, to_html
    from huntbook.vis.trees import proctree


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'huntbook.vis' has no attribute {name!r}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] in ("bokeh", "networkx"):
            raise MissingExtraError(f"huntbook.vis.{name}", "vis", missing=exc.name) from None
        raise
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
