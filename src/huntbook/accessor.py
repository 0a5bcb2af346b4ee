"""The ``df.hb`` pandas accessor: huntbook's analyses as DataFrame methods.

Registered when this module is imported, which ``import huntbook`` does on first use of anything
that returns a DataFrame (``hb.LocalStore``, ``hb.QueryProvider``, ``hb.iocs`` ...)::

    procs = qp.process.host_processes(host_name="WS01")
    procs.hb.iocs(columns=["TargetProcessCommandLine"])
    procs.hb.decode("TargetProcessCommandLine")
    procs.hb.proctree()

Each method is the function of the same name in a huntbook module, applied to this frame (its
docstring says which); the frame is never modified.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from huntbook import api, cluster, decode, iocs, logons, outliers, proctree, sessions, ti, timeseries, vis

__all__ = ["HuntbookAccessor"]


@pd.api.extensions.register_dataframe_accessor("hb")
class HuntbookAccessor:
    """``df.hb``: huntbook functions that take this DataFrame as their data."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self._frame = frame

    # -- extraction and decoding -----------------------------------------------------------------------
    def iocs(self, columns: str | Sequence[str] | None = None, **options: Any) -> pd.DataFrame:
        """IoCs in the frame's text columns: :func:`huntbook.iocs.extract`."""
        return iocs.extract(self._frame, columns=columns, **options)

    def watch(self, indicators: Sequence[str], **options: Any) -> pd.DataFrame:
        """Where a watch list of literal indicators occurs: :func:`huntbook.iocs.watch`."""
        return iocs.watch(self._frame, indicators, **options)

    def decode(self, column: str, **options: Any) -> pd.DataFrame:
        """Decoded layers of one column's values: :func:`huntbook.decode.unpack`."""
        return decode.unpack(self._frame, column=column, **options)

    def add_decoded(self, column: str, name: str = "decoded", **options: Any) -> pd.DataFrame:
        """A copy with the innermost decoded text of ``column``: :func:`huntbook.decode.add_decoded`."""
        return decode.add_decoded(self._frame, column, name=name, **options)

    # -- charts ----------------------------------------------------------------------------------------
    @property
    def plot(self) -> vis.PlotAccessor:
        """Charts of this frame: ``df.hb.plot.timeline(...)``, ``.matrix(...)`` ... (:mod:`huntbook.vis`)."""
        return vis.PlotAccessor(self._frame)

    # -- enrichment and pivots ------------------------------------------------------------------------
    def ti(self, column: str | None = None, **options: Any) -> pd.DataFrame:
        """Threat intelligence for the frame's IoCs: :func:`huntbook.ti.lookup`."""
        return ti.lookup(self._frame, column=column, **options)

    def pivot(self, name: str, column: str, join: str | None = None, **options: Any) -> pd.DataFrame:
        """Run the pivot ``EntityType.name`` on a column: :func:`huntbook.api.pivot_function`.

        ``join="left"|"inner"`` returns this frame's rows beside the pivot's columns, so pivots chain:
        ``df.hb.pivot("IpAddress.geoip", column="DstIpAddr", join="left").hb.pivot(...)``.
        """
        provider = options.pop("provider", None)
        return api.pivot_function(name, provider=provider)(self._frame, column=column, join=join, **options)

    # -- process trees ---------------------------------------------------------------------------------
    def proctree(self, schema: str | Mapping[str, Any] | proctree.ProcSchema | None = None) -> pd.DataFrame:
        """The frame's process events as trees: :func:`huntbook.proctree.build`."""
        return proctree.build(self._frame, schema=schema)

    # -- analytics -------------------------------------------------------------------------------------
    def summarize(self, time_column: str = "TimeGenerated", **options: Any) -> pd.DataFrame:
        """Events binned into a regular series: :func:`huntbook.timeseries.summarize`."""
        return timeseries.summarize(self._frame, time_column=time_column, **options)

    def anomalies(self, **options: Any) -> pd.DataFrame:
        """Spikes and dips of a regular series: :func:`huntbook.timeseries.anomalies`."""
        return timeseries.anomalies(self._frame, **options)

    def beacons(self, **options: Any) -> pd.DataFrame:
        """Source/destination pairs ranked by regularity: :func:`huntbook.timeseries.beacons`."""
        return timeseries.beacons(self._frame, **options)

    def spray(self, **options: Any) -> pd.DataFrame:
        """Password spraying in logon events: :func:`huntbook.logons.spray`."""
        return logons.spray(self._frame, **options)

    def brute_force(self, **options: Any) -> pd.DataFrame:
        """Brute force against single accounts: :func:`huntbook.logons.brute_force`."""
        return logons.brute_force(self._frame, **options)

    def cluster(self, columns: Sequence[str] | None = None, **options: Any) -> pd.DataFrame:
        """Process events clustered by command line: :func:`huntbook.cluster.events`."""
        return cluster.events(self._frame, columns, **options)

    def outliers(self, columns: Sequence[str] | None = None, **options: Any) -> pd.DataFrame:
        """Rows scored by how unusual they are: :func:`huntbook.outliers.find`."""
        return outliers.find(self._frame, columns, **options)

    def sessionize(self, by: str | Sequence[str], **options: Any) -> pd.DataFrame:
        """A gap-based ``session`` id per group: :func:`huntbook.sessions.sessionize`."""
        return sessions.sessionize(self._frame, by, **options)

    def rare_sessions(self, session_column: str, command_column: str, **options: Any) -> pd.DataFrame:
        """Sessions ranked by rarity of their command sequences: :func:`huntbook.sessions.score`."""
        return sessions.score(self._frame, session_column, command_column, **options)
