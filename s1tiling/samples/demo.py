"""A small, complete demo request: ``python -m s1tiling.demo DIR`` then ``s1tiling DIR/S1Processor.cfg``.

It builds, under DIR, two consecutive Sentinel-1 slices over Germany (real ESA metadata from the
shared reference data, synthetic pixels), a DEM folder (the real SRTM tile N50E010 plus flat
tiles around it), and a request file for S2 tile 32UNB, where the two slices must be merged.
The reference data is looked up in ``$S1TILING_TEST_DATA``, then ``../shared/data``.

Without the reference data (a fresh clone), everything is generated: two consecutive synthetic
slices over France (metadata from :mod:`s1tiling.samples.synthetic` in DIR/templates, 40 m pixels),
flat DEM tiles (height 0) and, when PROJ has no EGM96 grid, a zero geoid; the request is for
S2 tile 31TEL, which the two slices share. The demo then shows flat terrain.
"""
from __future__ import annotations

import argparse
import datetime as dt
import functools
import logging
import os
import shutil
import sys
from pathlib import Path

import numpy as np

from .. import grid
from ..errors import MissingGeoidError
from ..geometry.geoid import find_geoid
from ..s1.product import open_product
from .synthetic import make_safe, write_zero_geoid
from .testing import build_product, write_dem_folder

DEMO_PRODUCTS = (
    "S1A_IW_GRDH_1SDV_20150222T170725_20150222T170750_004739_005DD8_CEAB.SAFE",
    "S1A_IW_GRDH_1SDV_20150222T170750_20150222T170815_004739_005DD8_3768.SAFE",
)
DEMO_TILE = "32UNB"
#: Without reference data: the tile, and the scene centre of the first of two synthetic slices
#: (the second one follows it to the north; the tile straddles both).
SYNTHETIC_TILE = "31TEL"
SYNTHETIC_CENTER = (45.20, 3.79)
SYNTHETIC_SPACING = 40.0

logger = logging.getLogger(__name__)


def find_reference_data() -> Path | None:
    candidates = [os.environ.get("S1TILING_TEST_DATA"), "../shared/data",
                  str(Path(__file__).resolve().parents[2] / "shared" / "data")]
    for candidate in candidates:
        if candidate and (Path(candidate) / "s1" / DEMO_PRODUCTS[0]).is_dir():
            return Path(candidate).resolve()
    return None


def _pattern(rows, cols, spacing: float = 10.0):
    """Synthetic backscatter: fields of different brightness (15 km), so that the result shows the
    geometry; ``spacing``: the product's pixel size in metres."""
    rows, cols = rows * (spacing / 10.0), cols * (spacing / 10.0)
    fields = ((rows // 1500) + (cols // 1500)) % 3
    return (80 + 60 * fields + 10 * np.sin(cols / 50.0)).astype(np.uint16)


def _synthetic_templates(folder: Path) -> list[Path]:
    """The two consecutive synthetic slices (metadata only) of the demo, generated once."""
    found = sorted(folder.glob("*.SAFE"))
    if len(found) == 2:
        return found
    shutil.rmtree(folder, ignore_errors=True)
    lat, lon = SYNTHETIC_CENTER
    return [make_safe(folder, center_lat=lat, center_lon=lon, pixel_spacing=SYNTHETIC_SPACING, slice_number=k)
            for k in (1, 2)]


def _synthetic_geoid(root: Path) -> Path:
    """PROJ's EGM96 grid when there is one, else a zero geoid written under ``root``."""
    try:
        return find_geoid()
    except MissingGeoidError:
        return write_zero_geoid(root / "geoid" / "zero_geoid.gtx")


def build_demo(root: str | Path, resolution: float = 20.0) -> Path:
    """Create the demo inputs and request file under ``root``; return the request file path."""
    root = Path(root).resolve()
    s1_images, dem_dir, output = root / "s1_images", root / "dem", root / "output"
    for folder in (s1_images, dem_dir, output):
        folder.mkdir(parents=True, exist_ok=True)
    data = find_reference_data()
    if data is not None:
        tile, real_dem, geoid = DEMO_TILE, data / "dem", data / "geoid" / "egm96_15.gtx"
        templates, content = [data / "s1" / name for name in DEMO_PRODUCTS], _pattern
        origin = "real ESA metadata from the reference data"
    else:
        tile, real_dem, geoid = SYNTHETIC_TILE, None, _synthetic_geoid(root)
        templates = _synthetic_templates(root / "templates")
        content = functools.partial(_pattern, spacing=SYNTHETIC_SPACING)
        origin = "synthetic metadata (no reference data found): flat terrain"
        logger.warning("s1tiling demo: reference data not found (S1TILING_TEST_DATA, ../shared/data): "
                       "synthetic products over S2 tile %s, flat terrain", tile)
    for template in templates:
        if not (s1_images / template.name).exists():
            build_product(template, s1_images, content=content)
    # The DEM tiles under the S2 tile: real SRTM where the reference data has it, else flat (height 0).
    write_dem_folder(dem_dir, grid.tile(tile).footprint, real_dem)
    day = open_product(templates[0]).start_time.date()
    config = root / "S1Processor.cfg"
    config.write_text(f"""# Demo request written by `python -m s1tiling.demo`: {origin}
[Paths]
s1_images : {s1_images}
output : {output}
tmp : {root / 'tmp'}
dem_dir : {dem_dir}
geoid_file : {geoid}

[DataSource]
download : False
first_date : {day}
last_date : {day + dt.timedelta(days=1)}
polarisation : VV-VH

[Processing]
tiles : {tile}
calibration : sigma
remove_thermal_noise : True
output_spatial_resolution : {resolution:g}
orthorectification_interpolation_method : linear
nb_parallel_processes : 1

[Mask]
generate_border_mask : True

[Quicklook]
generate : True
""")
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m s1tiling.demo", description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="where to build the demo inputs, request file and outputs")
    parser.add_argument("--resolution", type=float, default=20.0, help="output pixel size in metres (default 20)")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(message)s")
    config = build_demo(args.folder, args.resolution)
    print(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
