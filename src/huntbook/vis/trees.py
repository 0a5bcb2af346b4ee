"""Process trees (the output of :func:`huntbook.proctree.build`) as a collapsible tree view."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from bokeh.core.property.vectorization import Field
from bokeh.layouts import column, row
from bokeh.models import (
    CategoricalColorMapper,
    ColumnDataSource,
    LayoutDOM,
    Range1d,
    SetValue,
    WheelPanTool,
)
from bokeh.models.annotations import Legend
from bokeh.models.widgets import Button, Div
from bokeh.transform import transform

from huntbook.errors import DataError
from huntbook.vis._base import (
    add_hover,
    display_texts,
    legend_item,
    new_figure,
    palette,
    require,
    short,
    tag,
    utc_ms,
)

__all__ = ["INTEGRITY_LEVELS", "proctree"]

_ATTR = "huntbook.proctree"  # where proctree.build() records the schema's columns
#: Windows mandatory integrity level SIDs and their names
INTEGRITY_LEVELS = {
    "S-1-16-0": "Untrusted",
    "S-1-16-4096": "Low",
    "S-1-16-8192": "Medium",
    "S-1-16-8448": "Medium Plus",
    "S-1-16-12288": "High",
    "S-1-16-16384": "System",
    "S-1-16-20480": "Protected",
}
_INTEGRITY_COLUMNS = (
    "TargetProcessIntegrityLevel",
    "IntegrityLevel",
    "MandatoryLabel",
    "ProcessIntegrityLevel",
)
_FALLBACK = {  # columns used when the frame lost its proctree attrs
    "time": ("TimeGenerated", "UtcTime", "Timestamp", "time"),
    "process": ("TargetProcessName", "NewProcessName", "Image", "FileName", "exe"),
    "cmdline": ("TargetProcessCommandLine", "CommandLine", "ProcessCommandLine", "cmdline"),
    "user": ("TargetUsername", "SubjectUserName", "User", "AccountName", "acct"),
    "host": ("DvcHostname", "Computer", "DeviceName", "host"),
    "pid": ("TargetProcessId", "NewProcessId", "ProcessId", "pid"),
}
# integrity levels: fixed colours, most privileged first
_INTEGRITY_ORDER = {
    name: i
    for i, name in enumerate(
        [
            "Protected",
            "System",
            "High",
            "Medium Plus",
            "Medium",
            "Low",
            "Untrusted",
            "(unknown)",
            "(not in the data)",
        ]
    )
}
_INTEGRITY_COLORS = {
    "Protected": "#67000d",
    "System": "#cb181d",
    "High": "#fd8d3c",
    "Medium Plus": "#6baed6",
    "Medium": "#2171b5",
    "Low": "#41ab5d",
    "Untrusted": "#969696",
    "(unknown)": "#d9d9d9",
    "(not in the data)": "#ffffff",
}
_LEVEL_BUTTONS = 8  # "depth 0 .. k" buttons (then "all")
_ROWS_IN_VIEW = 45


def _schema_column(tree: pd.DataFrame, field: str) -> str | None:
    mapped = tree.attrs.get(_ATTR, {}).get(field)
    if isinstance(mapped, str) and mapped in tree.columns:
        return mapped
    return next((c for c in _FALLBACK.get(field, ()) if c in tree.columns), None)


def _integrity(values: pd.Series) -> list[str]:
    texts = display_texts(values)
    return [INTEGRITY_LEVELS.get(t.upper(), t) if t else "(unknown)" for t in texts]


def _preorder(tree: pd.DataFrame, time_ms: np.ndarray) -> tuple[list[int], list[int], list[int]]:
    """Rows in display order (roots by time, children by start time), each row's depth and parent row."""
    keys = tree["proc_key"].astype(str).tolist()
    at = {k: i for i, k in enumerate(keys)}
    parent = [at.get(p, -1) if isinstance(p, str) else -1 for p in tree["parent_key"].tolist()]
    kids: dict[int, list[int]] = {}
    roots = []
    for i, p in enumerate(parent):
        if p < 0 or p == i:
            roots.append(i)
            parent[i] = -1
        else:
            kids.setdefault(p, []).append(i)
    order_key = np.where(np.isnan(time_ms), np.inf, time_ms)
    for members in kids.values():
        members.sort(key=lambda i: (order_key[i], i))
    roots.sort(key=lambda i: (order_key[i], i))
    order: list[int] = []
    depth = [0] * len(keys)
    seen = [False] * len(keys)
    for root in roots:
        stack = [root]
        while stack:
            node = stack.pop()
            if seen[node]:
                continue
            seen[node] = True
            order.append(node)
            children = kids.get(node, [])
            for child in children:
                depth[child] = depth[node] + 1
            stack.extend(reversed(children))
    for i in range(len(keys)):  # rows on a parent cycle (not produced by build()): shown as roots
        if not seen[i]:
            order.append(i)
            parent[i], depth[i] = -1, 0
    return order, depth, parent


def _ranks(order: list[int], depth: np.ndarray, cut: int) -> np.ndarray:
    """Each row's y when only depths <= ``cut`` are shown: the shown rows close up, in display order."""
    shown = [i for i in order if depth[i] <= cut]
    at = np.full(len(depth), np.nan)
    at[shown] = -np.arange(len(shown), dtype="float64")
    return at


def _level_button(cut: int, everything: bool, levels: list[list[tuple[Any, tuple[str, ...]]]]) -> Button:
    """A button that shows the levels down to ``cut`` (hides the deeper ones) and moves the shown rows
    to their closed-up positions. Bokeh's SetValue callbacks: no JavaScript is compiled in the page."""
    suffix = "" if everything else f"_{cut}"
    actions = []
    for depth, renderers in enumerate(levels):
        for renderer, fields in renderers:
            actions.append(SetValue(obj=renderer, attr="visible", value=depth <= cut))
            if depth <= cut:
                actions += [SetValue(obj=renderer.glyph, attr=f, value=Field(f + suffix)) for f in fields]
    button = Button(label="all levels" if everything else f"depth ≤ {cut}", button_type="default", width=96)
    button.js_on_event("button_click", *actions)
    return button


def proctree(
    tree_frame: pd.DataFrame,
    color_by: str | None = None,
    hover: Sequence[str] | None = None,
    *,
    title: str | None = None,
    max_nodes: int = 20_000,
    height: int = 640,
) -> LayoutDOM:
    """Process trees from :func:`huntbook.proctree.build`: one row per process (roots by time, children
    by start time), indented by depth, linked to its parent. Colour by ``color_by``: ``"integrity"``
    (Windows integrity level), ``"user"`` or any column; default integrity when the data has it, else
    the user. Hover shows the image, command line, user, integrity, host, pid and time (or ``hover``
    columns). The mouse wheel scrolls through the rows; the buttons above collapse the tree to a depth.
    More than ``max_nodes`` processes: DataError (pick trees with ``proctree.tree_of``)."""
    tree = require(
        tree_frame, ["proc_key", "parent_key", "depth", "path", "inferred", *(hover or [])], "proctree"
    )
    if tree.empty:
        raise DataError("is empty", where="proctree", hint="build one with huntbook.proctree.build(events)")
    if len(tree) > max_nodes:
        raise DataError(
            f"{len(tree):,} processes are more than max_nodes={max_nodes:,}",
            where="proctree",
            hint="draw fewer trees (huntbook.proctree.tree_of, a host filter) or raise max_nodes",
        )
    fields = {name: _schema_column(tree, name) for name in _FALLBACK}
    integrity_column = next((c for c in _INTEGRITY_COLUMNS if c in tree.columns), None)
    time_ms = (
        utc_ms(tree[fields["time"]], f"proctree: {fields['time']}")
        if fields["time"]
        else np.full(len(tree), np.nan)
    )
    order, depth, parent = _preorder(tree, time_ms)
    rank = np.empty(len(tree), dtype="float64")
    rank[order] = -np.arange(len(order), dtype="float64")

    # what the colours mean
    if color_by is None:
        color_by = "integrity" if integrity_column else "user" if fields["user"] else None
    if color_by == "integrity":
        if integrity_column is None:
            raise DataError(
                "no integrity level column", where="proctree: color_by", hint="use color_by='user'"
            )
        category, color_name = _integrity(tree[integrity_column]), "integrity"
    elif color_by == "user":
        if fields["user"] is None:
            raise DataError("no user column", where="proctree: color_by", hint="pass color_by=<column>")
        category, color_name = [t or "(unknown)" for t in display_texts(tree[fields["user"]])], "user"
    elif color_by is not None:
        require(tree, [color_by], "proctree: color_by")
        category, color_name = [t or "(unknown)" for t in display_texts(tree[color_by])], str(color_by)
    else:
        category, color_name = [f"depth {d}" for d in depth], "depth"
    inferred = tree["inferred"].fillna(False).astype(bool).to_numpy()
    category = ["(not in the data)" if inf else c for c, inf in zip(category, inferred.tolist(), strict=True)]
    factors = sorted(set(category), key=lambda c: (_INTEGRITY_ORDER.get(c, 99), c))
    colors = (
        [_INTEGRITY_COLORS.get(c) for c in factors] if color_name == "integrity" else palette(len(factors))
    )
    spare = iter(palette(len(factors)))
    mapper = CategoricalColorMapper(factors=factors, palette=[c or next(spare) for c in colors])

    names = [short(p.rsplit("/", 1)[-1], 48) if p else "?" for p in display_texts(tree["path"])]
    if fields["host"]:  # a root's label says which host its tree is on
        hosts = display_texts(tree[fields["host"]])
        names = [
            f"{n}  ({short(h, 32)})" if p < 0 and h else n
            for n, h, p in zip(names, hosts, parent, strict=True)
        ]
    if hover is None:
        shown = [
            (label, c)
            for label, c in (
                ("process", fields["process"]),
                ("command line", fields["cmdline"]),
                ("user", fields["user"]),
                ("integrity", integrity_column),
                ("host", fields["host"]),
                ("pid", fields["pid"]),
                ("time (UTC)", fields["time"]),
            )
            if c is not None
        ]
    else:
        shown = [(str(c), c) for c in hover]
    texts = {f"h{i}": display_texts(tree[c]) for i, (_, c) in enumerate(shown)}
    rows = [(label, f"h{i}") for i, (label, _) in enumerate(shown)]
    rows.append(("", "note"))
    note = ["inferred parent: not in the data" if inf else "" for inf in inferred.tolist()]

    n_trees = sum(1 for p in parent if p < 0)
    heading = (
        title
        if title is not None
        else (
            f"Process tree: {len(tree):,} processes in {n_trees:,} trees"
            + (f" ({int(inferred.sum()):,} inferred parents)" if inferred.any() else "")
        )
    )
    subtitle = f"colour: {color_name}; mouse wheel scrolls; buttons collapse to a depth; every process drawn"
    max_depth = max(depth)
    fig = new_figure(
        heading,
        subtitle,
        height=height,
        tools="ypan,box_zoom,reset,save",
        x_range=Range1d(start=-0.6, end=max_depth + 4.5),
        y_range=Range1d(start=-min(_ROWS_IN_VIEW, len(tree)) + 0.5, end=0.8),
    )
    pan = WheelPanTool(dimension="height")
    fig.add_tools(pan)
    fig.toolbar.active_scroll = pan
    fig.xaxis.visible = fig.yaxis.visible = False
    fig.grid.grid_line_color = None

    depth_arr = np.asarray(depth)
    parent_arr = np.asarray(parent)
    cuts = [*range(min(max_depth, _LEVEL_BUTTONS)), max_depth]  # the buttons: show depth <= cut
    # the rows of each cut: the tree closes up over the hidden levels ("y" is the whole tree)
    ranks = {cut: _ranks(order, depth_arr, cut) for cut in cuts[:-1]}
    levels: list[list[tuple[Any, tuple[str, ...]]]] = [[] for _ in range(max_depth + 1)]
    members_of = [np.flatnonzero(depth_arr == d) for d in range(max_depth + 1)]
    for d, members in enumerate(members_of):  # the links first, so that the nodes are drawn over them
        linked_rows = members[parent_arr[members] >= 0]
        if not len(linked_rows):
            continue
        up = parent_arr[linked_rows]
        elbows: dict[str, Any] = {  # down from the parent, then across to the child
            "x0": np.concatenate([depth_arr[up], depth_arr[up]]).astype("float64"),
            "x1": np.concatenate([depth_arr[up], depth_arr[linked_rows]]).astype("float64"),
        }
        for suffix, at in [("", rank), *((f"_{cut}", ranks[cut]) for cut in cuts[:-1] if cut >= d)]:
            elbows["y0" + suffix] = np.concatenate([at[up], at[linked_rows]])
            elbows["y1" + suffix] = np.concatenate([at[linked_rows], at[linked_rows]])
        link = fig.segment("x0", "y0", "x1", "y1", source=ColumnDataSource(elbows), line_color="#9a9a9a")
        levels[d].append((link, ("y0", "y1")))
    legend_items: dict[str, Any] = {}
    all_dots = []
    for d, members in enumerate(members_of):
        picked = members.tolist()
        node_data: dict[str, Any] = {
            "x": depth_arr[members].astype("float64"),
            "y": rank[members],
            **{f"y_{cut}": ranks[cut][members] for cut in cuts[:-1] if cut >= d},
            "name": [names[i] for i in picked],
            "category": [category[i] for i in picked],
            "note": [note[i] for i in picked],
            "row": members,
            **{k: [v[i] for i in picked] for k, v in texts.items()},
        }
        nodes = ColumnDataSource(node_data, name=f"huntbook.depth{d}")
        dots = fig.scatter(
            "x", "y", source=nodes, size=10, line_color="#333333", fill_color=transform("category", mapper)
        )
        labels = fig.text(
            "x",
            "y",
            text="name",
            source=nodes,
            x_offset=9,
            text_baseline="middle",
            text_font_size="11px",
            text_color="#222222",
        )
        levels[d] += [(dots, ("y",)), (labels, ("y",))]
        all_dots.append(dots)
        for local, cat in enumerate(category[i] for i in picked):
            if cat not in legend_items:
                legend_items[cat] = legend_item(cat, dots, index=local)
    add_hover(fig, all_dots, rows)
    fig.add_layout(
        Legend(items=[legend_items[c] for c in factors], title=color_name, location="top_right"),
        "right",
    )
    buttons = [_level_button(cut, cut == max_depth, levels) for cut in cuts]
    controls = row(Div(text="Show:", width=44), *buttons)
    layout = column(controls, fig, sizing_mode="stretch_width")
    tag(
        layout,
        chart="proctree",
        events=len(tree),
        drawn=len(order),
        trees=n_trees,
        depth=max_depth,
        inferred=int(inferred.sum()),
    )
    return layout
