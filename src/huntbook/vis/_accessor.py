"""``df.hb.plot``: the charts as methods of a DataFrame (no Bokeh import until a chart is drawn)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PlotAccessor"]


class PlotAccessor:
    """``df.hb.plot.timeline(...)`` and friends: each method is the :mod:`huntbook.vis` function of the
    same name drawn from this frame."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self._frame = frame

    def timeline(self, time_column: str = "TimeGenerated", **options: Any) -> Any:
        """Events over time: :func:`huntbook.vis.timeline`."""
        from huntbook.vis import charts

        return charts.timeline(self._frame, time_column, **options)

    def durations(self, start: str, end: str, **options: Any) -> Any:
        """Spans per group: :func:`huntbook.vis.durations`."""
        from huntbook.vis import charts

        return charts.durations(self._frame, start, end, **options)

    def values(self, value_column: str, time_column: str = "TimeGenerated", **options: Any) -> Any:
        """A number over time: :func:`huntbook.vis.values`."""
        from huntbook.vis import charts

        return charts.values(self._frame, value_column, time_column, **options)

    def matrix(self, x: str, y: str, value: str | None = None, **options: Any) -> Any:
        """``x`` by ``y`` counts: :func:`huntbook.vis.matrix`."""
        from huntbook.vis import charts

        return charts.matrix(self._frame, x, y, value, **options)

    def anomalies(self, **options: Any) -> Any:
        """A scored series (from ``timeseries.anomalies``): :func:`huntbook.vis.anomalies`."""
        from huntbook.vis import charts

        return charts.anomalies(self._frame, **options)

    def proctree(self, **options: Any) -> Any:
        """A process tree frame (from ``proctree.build``): :func:`huntbook.vis.proctree`."""
        from huntbook.vis import trees

        return trees.proctree(self._frame, **options)

    def world_map(self, **options: Any) -> Any:
        """GeoIP results on a map: :func:`huntbook.vis.world_map`."""
        from huntbook.vis import maps

        return maps.world_map(self._frame, **options)

    def graph(self, source: str, target: str, **options: Any) -> Any:
        """An entity graph of ``source`` -> ``target``: :func:`huntbook.vis.graph`."""
        from huntbook.vis import graphs

        return graphs.graph(self._frame, source, target, **options)
