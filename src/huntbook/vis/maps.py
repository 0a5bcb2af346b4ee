"""A world map without a tile server: country outlines shipped with huntbook (Natural Earth, public domain;
see ``world-NOTICE.txt``), shaded by counts, with points at latitude/longitude. Plate carrée projection
(x = longitude, y = latitude)."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
from bokeh.models import ColumnDataSource, LogColorMapper, Range1d
from bokeh.models.annotations import ColorBar
from bokeh.palettes import OrRd9
from bokeh.transform import transform

from huntbook.errors import DataError
from huntbook.vis._base import add_hover, display_texts, new_figure, plain, require, tag

__all__ = ["countries", "world_map"]

_NO_DATA = "#e8e8e8"
_MAX_LISTED = 5  # distinct values listed per hover column at one location


@functools.cache
def _world() -> dict[str, Any]:
    text = resources.files("huntbook.vis").joinpath("world.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def countries() -> pd.DataFrame:
    """The countries the map knows: ``code`` (ISO 3166-1 alpha-2) and ``name``."""
    return pd.DataFrame([{"code": c["code"], "name": c["name"]} for c in _world()["countries"]])


def _pairs(flat: list[float]) -> tuple[list[float], list[float]]:
    return flat[0::2], flat[1::2]


def _listed(values: pd.Series) -> str:
    distinct = [v for v in dict.fromkeys(display_texts(values)) if v]
    shown = ", ".join(distinct[:_MAX_LISTED])
    return shown + (f" … (+{len(distinct) - _MAX_LISTED:,} more)" if len(distinct) > _MAX_LISTED else "")


def world_map(
    geo_frame: pd.DataFrame,
    latitude: str = "latitude",
    longitude: str = "longitude",
    country: str = "country_code",
    hover: Sequence[str] | None = None,
    *,
    weight: str | None = None,
    title: str | None = None,
    height: int = 520,
) -> Any:
    """GeoIP results on a world map: countries shaded by their number of rows (or the sum of
    ``weight``), and a circle per distinct location (latitude/longitude) sized by its rows, its hover
    listing the ``hover`` columns' values there (default: ``ip``, ``city``, ``asn_name`` when present).
    Either the country or the coordinates columns may be absent (the offline GeoIP data has countries
    only). Rows with a country code the map does not know, or with no location, are counted in the
    subtitle."""
    if not isinstance(geo_frame, pd.DataFrame):
        raise DataError(f"needs a pandas DataFrame, got {type(geo_frame).__name__}", where="world_map")
    has_country = country in geo_frame.columns
    has_points = latitude in geo_frame.columns and longitude in geo_frame.columns
    if not (has_country or has_points):
        raise DataError(
            f"has neither a {country!r} column nor {latitude!r}/{longitude!r}",
            where="world_map",
            hint="pass the output of huntbook.enrich.geoip(), or name the columns",
        )
    frame = require(geo_frame, [weight, *(hover or [])], "world_map")
    if frame.empty:
        raise DataError("is empty", where="world_map")
    weights = (
        pd.to_numeric(frame[weight], errors="coerce").fillna(0.0)
        if weight
        else pd.Series(1.0, index=frame.index)
    )
    what = weight or "rows"
    per_country, unknown, country_notes = (
        _per_country(frame, country, weights) if has_country else ({}, 0, [])
    )
    places = _places(frame, latitude, longitude, weights, hover) if has_points else None
    notes = [f"{len(per_country):,} countries shaded by {what}"] if has_country else []
    located = 0 if places is None else int(places["rows"].sum())
    if places is not None:
        notes.append(f"{len(places):,} locations from {located:,} rows")
        if located < len(frame):
            notes.append(f"{len(frame) - located:,} rows without a location (no point)")
    fig = new_figure(
        title if title is not None else f"World map: {len(frame):,} rows",
        "; ".join([*notes, *country_notes]),
        height=height,
        x_range=Range1d(start=-180, end=180, bounds=(-180, 180)),
        y_range=Range1d(start=-58, end=84, bounds=(-90, 90)),
        tools="pan,wheel_zoom,box_zoom,reset,save",
        match_aspect=True,
    )
    fig.grid.grid_line_color = "#f0f0f0"
    fig.background_fill_color = "#f4f8fb"
    fig.xaxis.axis_label = plain("longitude")
    fig.yaxis.axis_label = plain("latitude")
    _draw_countries(fig, per_country, what)
    if places is not None and len(places):
        _draw_places(fig, places)
    tag(
        fig,
        chart="world_map",
        events=len(frame),
        countries=len(per_country),
        located=located,
        places=0 if places is None else len(places),
        unknown_country=unknown,
    )
    return fig


def _per_country(
    frame: pd.DataFrame, country: str, weights: pd.Series
) -> tuple[dict[str, float], int, list[str]]:
    """The weight per country code the map knows; the rows whose code it does not know, and a note."""
    known = {c["code"] for c in _world()["countries"] if c["code"]}
    codes = pd.Series(display_texts(frame[country]), index=frame.index).str.strip().str.upper()
    on_map = codes.isin(known)
    amounts = {str(k): float(v) for k, v in weights[on_map].groupby(codes[on_map]).sum().items()}
    unknown = codes[~on_map]
    if not len(unknown):
        return amounts, 0, []
    counts = unknown.replace("", "(none)").value_counts()
    listed = ", ".join(f"{code} ({n:,})" for code, n in counts.head(6).items())
    more = f" and {len(counts) - 6} more codes" if len(counts) > 6 else ""
    return amounts, len(unknown), [f"{len(unknown):,} rows with no country on the map: {listed}{more}"]


def _places(
    frame: pd.DataFrame, latitude: str, longitude: str, weights: pd.Series, hover: Sequence[str] | None
) -> pd.DataFrame:
    """One row per distinct location: lat, lon, rows, weight, and the hover columns' values there."""
    lat = pd.to_numeric(frame[latitude], errors="coerce")
    lon = pd.to_numeric(frame[longitude], errors="coerce")
    ok = lat.between(-90, 90) & lon.between(-180, 180)
    shown = [c for c in ("ip", "city", "asn_name") if c in frame.columns] if hover is None else list(hover)
    spots = pd.DataFrame({"lat": lat[ok].round(4), "lon": lon[ok].round(4), "weight": weights[ok]})
    for i, name in enumerate(shown):
        spots[f"q{i}"] = frame.loc[ok, name]
    grouped = spots.groupby(["lat", "lon"], sort=False)
    places: pd.DataFrame = (
        grouped["weight"].agg(["count", "sum"]).rename(columns={"count": "rows", "sum": "weight"})
    )
    for i in range(len(shown)):
        places[f"q{i}"] = grouped[f"q{i}"].agg(_listed)
    places = places.reset_index()
    places.attrs["hover"] = shown
    return places


def _draw_countries(fig: Any, per_country: dict[str, float], what: str) -> None:
    shapes = _world()["countries"]
    xs = [[[_pairs(ring)[0] for ring in polygon] for polygon in c["polygons"]] for c in shapes]
    ys = [[[_pairs(ring)[1] for ring in polygon] for polygon in c["polygons"]] for c in shapes]
    amounts = np.array([per_country.get(c["code"], 0.0) for c in shapes], dtype="float64")
    positive = amounts[amounts > 0]
    low = float(positive.min()) if len(positive) else 1.0
    mapper = LogColorMapper(
        palette=list(reversed(OrRd9))[1:],  # the lightest is too close to 'no data'
        low=low,
        high=float(positive.max()) if len(positive) and positive.max() > low else low * 10,
        nan_color=_NO_DATA,
    )
    country_source = ColumnDataSource(
        {
            "xs": xs,
            "ys": ys,
            "amount": np.where(amounts > 0, amounts, np.nan),
            "g0": [c["name"] for c in shapes],
            "g1": [c["code"] for c in shapes],
            "g2": [f"{a:,.6g}" for a in amounts.tolist()],
        },
        name="huntbook.countries",
    )
    shaded = fig.multi_polygons(
        "xs",
        "ys",
        source=country_source,
        fill_color=transform("amount", mapper),
        line_color="#ffffff",
        line_width=0.6,
    )
    add_hover(fig, [shaded], [("country", "g0"), ("code", "g1"), (what, "g2")])
    if len(positive):
        fig.add_layout(ColorBar(color_mapper=mapper, width=10, title=plain(what)), "right")


def _draw_places(fig: Any, places: pd.DataFrame) -> None:
    rows = places["rows"].to_numpy()
    data: dict[str, Any] = {
        "x": places["lon"].to_numpy(),
        "y": places["lat"].to_numpy(),
        "size": 7 + 14 * np.sqrt(rows / rows.max()),
        "p0": [f"{a:.4f}, {b:.4f}" for a, b in zip(places["lat"], places["lon"], strict=True)],
        "p1": [f"{c:,}" for c in rows.tolist()],
    }
    tips = [("lat, lon", "p0"), ("rows", "p1")]
    for i, name in enumerate(places.attrs["hover"]):
        data[f"q{i}"] = places[f"q{i}"].tolist()
        tips.append((str(name), f"q{i}"))
    dots = fig.scatter(
        "x",
        "y",
        size="size",
        source=ColumnDataSource(data, name="huntbook.places"),
        fill_color="#1f77b4",
        fill_alpha=0.6,
        line_color="#08306b",
    )
    add_hover(fig, [dots], tips)
