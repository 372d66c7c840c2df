"""Synthetic time series inputs: several dates of two relative orbits over two S2 tiles, no shared data.

The products come from :func:`s1tiling.samples.synthetic.make_safe` (ascending orbit 59 every 12
days from 2021-08-09 17:39:53, descending orbit 8 every 12 days from 2021-08-11 05:50:10, both
centred on 45.2 N 3.79 E, which 31TEL and 31TEK share), each with its own speckle seed so that
dates differ; flat DEM tiles, a zero geoid.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from s1tiling import grid
from s1tiling.samples.synthetic import make_safe, write_zero_geoid
from s1tiling.samples.testing import build_product, write_dem_folder

TILES = ("31TEL", "31TEK")
CENTER = (45.2, 3.79)
ASC = (59, dt.datetime(2021, 8, 9, 17, 39, 53, tzinfo=dt.timezone.utc))
DES = (8, dt.datetime(2021, 8, 11, 5, 50, 10, tzinfo=dt.timezone.utc))
CYCLE = dt.timedelta(days=12)


def add_date(root: Path, direction: str, cycle: int, content="speckle") -> Path:
    """The product of pass ``direction`` ('ASC'/'DES') ``cycle`` repeat cycles after the first one,
    in ``root/s1_images`` (its metadata template in ``root/templates``)."""
    orbit, first = ASC if direction == "ASC" else DES
    lat, lon = CENTER
    template = make_safe(root / "templates", center_lat=lat, center_lon=lon, pixel_spacing=40.0,
                         pass_direction=direction, relative_orbit=orbit, start=first + cycle * CYCLE)
    return build_product(template, root / "s1_images", content=content, seed=1000 * orbit + cycle)


def dem_and_geoid(root: Path, tiles=TILES) -> Path:
    """Flat DEM tiles under ``tiles`` in ``root/dem``; returns a zero geoid file."""
    for tile in tiles:
        write_dem_folder(root / "dem", grid.tile(tile).footprint)
    return write_zero_geoid(root / "geoid.gtx")
