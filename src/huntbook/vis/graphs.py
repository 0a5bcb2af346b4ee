"""Entity / network graphs: edges from a DataFrame, laid out by networkx, nodes coloured by entity type."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
from bokeh.models import ColumnDataSource
from bokeh.models.annotations import Legend
from bokeh.transform import factor_cmap

from huntbook.entities import infer
from huntbook.errors import DataError
from huntbook.vis._base import (
    MISSING,
    add_hover,
    display_texts,
    legend_item,
    new_figure,
    palette,
    require,
    short,
    tag,
)

__all__ = ["graph"]

_LABELS_UP_TO = 150  # nodes get a text label when there are at most this many


def _types(frame: pd.DataFrame, values: list[str], spec: str | None) -> list[str]:
    if spec is None:  # each distinct value once
        kinds = {
            v: type(e).__name__ if (e := infer(v)) is not None else "Other" for v in dict.fromkeys(values)
        }
        return [kinds[v] for v in values]
    if spec in frame.columns:
        return [t or MISSING for t in display_texts(frame[spec])]
    return [spec] * len(values)


def graph(
    edges_frame: pd.DataFrame,
    source: str,
    target: str,
    *,
    source_type: str | None = None,
    target_type: str | None = None,
    weight: str | None = None,
    hover: Sequence[str] | None = None,
    title: str | None = None,
    max_nodes: int = 500,
    seed: int = 0,
    height: int = 640,
) -> Any:
    """A graph of ``source`` -> ``target`` values, one node per distinct value, one edge per distinct pair
    (its width by the number of rows, or the sum of ``weight``), laid out with networkx's spring layout
    (``seed`` makes it repeatable). Node colour: entity type, inferred from the value (IpAddress, Dns,
    Account, Url ...) unless ``source_type``/``target_type`` name a column or a fixed type. Edge hover:
    the pair, its rows and the ``hover`` columns' first values. More than ``max_nodes``: DataError."""
    frame = require(edges_frame, [source, target, weight, *(hover or [])], "graph")
    frame = frame[frame[source].notna() & frame[target].notna()]
    if frame.empty:
        raise DataError("has no row with both a source and a target", where=f"graph: {source}, {target}")
    src = display_texts(frame[source])
    dst = display_texts(frame[target])
    src_types = _types(frame, src, source_type)
    dst_types = _types(frame, dst, target_type)
    node_type: dict[str, str] = {}
    for value, kind in zip([*src, *dst], [*src_types, *dst_types], strict=True):
        node_type.setdefault(value, kind)
    if len(node_type) > max_nodes:
        raise DataError(
            f"{len(node_type):,} nodes are more than max_nodes={max_nodes:,}",
            where="graph",
            hint="filter the edges (e.g. drop internal traffic) or raise max_nodes (the layout is O(n^2))",
        )
    weights = (
        pd.to_numeric(frame[weight], errors="coerce").fillna(0.0)
        if weight
        else pd.Series(1.0, index=frame.index)
    )
    pairs = pd.DataFrame({"s": src, "t": dst, "w": weights.to_numpy()}, index=frame.index)
    grouped = pairs.groupby(["s", "t"], sort=False)
    edges = grouped["w"].agg(["sum", "count"]).reset_index()
    nodes = list(node_type)
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    g.add_weighted_edges_from(edges[["s", "t", "sum"]].itertuples(index=False, name=None))
    options: dict[str, Any] = {"seed": seed}
    if "method" in inspect.signature(nx.spring_layout).parameters:
        options["method"] = "force"  # numpy only: networkx's sparse solver (>= 500 nodes) needs scipy
    layout = nx.spring_layout(g.to_undirected(), **options)
    x = {n: float(p[0]) for n, p in layout.items()}
    y = {n: float(p[1]) for n, p in layout.items()}

    kinds = sorted(set(node_type.values()))
    colors = palette(len(kinds))
    degree = dict(g.degree())
    heading = title if title is not None else f"Graph: {source} -> {target}"
    subtitle = f"{len(nodes):,} nodes, {len(edges):,} edges from {len(frame):,} rows" + (
        f" ({len(edges_frame) - len(frame):,} rows without both ends not drawn)"
        if len(frame) < len(edges_frame)
        else ""
    )
    fig = new_figure(
        heading, subtitle, height=height, tools="pan,wheel_zoom,box_zoom,reset,save", match_aspect=True
    )
    fig.axis.visible = False
    fig.grid.grid_line_color = None

    width = edges["sum"].to_numpy(dtype="float64")
    top = width.max() if len(width) and width.max() > 0 else 1.0
    edge_data: dict[str, Any] = {
        "xs": [[x[s], x[t]] for s, t in zip(edges["s"], edges["t"], strict=True)],
        "ys": [[y[s], y[t]] for s, t in zip(edges["s"], edges["t"], strict=True)],
        "width": 1.0 + 5.0 * np.sqrt(np.clip(width, 0, None) / top),
        "e0": edges["s"].tolist(),
        "e1": edges["t"].tolist(),
        "e2": [f"{c:,}" for c in edges["count"].tolist()],
    }
    rows = [(source, "e0"), (target, "e1"), ("rows", "e2")]
    if weight:
        edge_data["e3"] = [f"{v:,.6g}" for v in edges["sum"].tolist()]
        rows.append((weight, "e3"))
    for i, name in enumerate(hover or []):
        first = frame.groupby([pairs["s"], pairs["t"]], sort=False)[name].first().reset_index(drop=True)
        edge_data[f"f{i}"] = display_texts(first)
        rows.append((str(name), f"f{i}"))
    lines = fig.multi_line(
        "xs",
        "ys",
        source=ColumnDataSource(edge_data, name="huntbook.edges"),
        line_width="width",
        line_color="#8c8c8c",
        line_alpha=0.6,
    )
    add_hover(fig, [lines], rows)

    node_source = ColumnDataSource(
        {
            "x": [x[n] for n in nodes],
            "y": [y[n] for n in nodes],
            "type": [node_type[n] for n in nodes],
            "n0": nodes,
            "label": [short(n, 32) for n in nodes],
            "n1": [f"{degree[n]:,}" for n in nodes],
            "size": [9 + 3 * np.sqrt(degree[n]) for n in nodes],
        },
        name="huntbook.nodes",
    )
    dots = fig.scatter(
        "x",
        "y",
        size="size",
        source=node_source,
        line_color="#333333",
        fill_color=factor_cmap("type", colors, kinds),
    )
    add_hover(fig, [dots], [("node", "n0"), ("type", "type"), ("edges", "n1")])
    if len(nodes) <= _LABELS_UP_TO:
        fig.text(
            "x",
            "y",
            text="label",
            source=node_source,
            x_offset=8,
            text_baseline="middle",
            text_font_size="10px",
            text_color="#222222",
        )
    first_of = {kind: next(i for i, n in enumerate(nodes) if node_type[n] == kind) for kind in kinds}
    fig.add_layout(
        Legend(
            items=[legend_item(k, dots, index=first_of[k]) for k in kinds],
            location="top_left",
        ),
        "right",
    )
    tag(fig, chart="graph", events=len(edges_frame), drawn=len(frame), nodes=len(nodes), edges=len(edges))
    return fig
