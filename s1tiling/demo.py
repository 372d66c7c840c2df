"""A small, complete demo request: ``python -m s1tiling.demo DIR`` then ``s1tiling DIR/S1Processor.cfg``.

It builds, under DIR, two consecutive Sentinel-1 slices over Germany (real ESA metadata from the
shared reference data, synthetic pixels), a DEM folder (the real SRTM tile N50E010 plus flat
tiles around it), and a request file for S2 tile 32UNB, where the two slices must be merged.
The reference data is looked up in ``$S1TILING_TEST_DATA``, then ``../shared/data``.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

DEMO_PRODUCTS = (
    "S1A_IW_GRDH_1SDV_20150222T170725_20150222T170750_004739_005DD8_CEAB.SAFE",
    "S1A_IW_GRDH_1SDV_20150222T170750_20150222T170815_004739_005DD8_3768.SAFE",
)
DEMO_TILE = "32UNB"


def find_reference_data() -> Path | None:
    candidates = [os.environ.get("S1TILING_TEST_DATA"), "../shared/data",
                  str(Path(__file__).resolve().parents[2] / "shared" / "data")]
    for candidate in candidates:
        if candidate and (Path(candidate) / "s1" / DEMO_PRODUCTS[0]).is_dir():
            return Path(candidate).resolve()
    return None


def _pattern(rows, cols):
    """Synthetic backscatter: fields of different brightness, so that the result shows the geometry."""
    fields = ((rows // 1500) + (cols // 1500)) % 3
    return (80 + 60 * fields + 10 * np.sin(cols / 50.0)).astype(np.uint16)


def build_demo(root, resolution: float = 20.0) -> Path:
    """Create the demo inputs and request file under ``root``; return the request file path."""
    from . import grid
    from .testing import build_product, write_dem_folder

    data = find_reference_data()
    if data is None:
        raise SystemExit("s1tiling demo: reference data not found: set S1TILING_TEST_DATA to the folder "
                         "holding s1/, dem/ and geoid/ (the project's shared/data)")
    root = Path(root).resolve()
    s1_images, dem_dir, output = root / "s1_images", root / "dem", root / "output"
    for folder in (s1_images, dem_dir, output):
        folder.mkdir(parents=True, exist_ok=True)
    for name in DEMO_PRODUCTS:
        if not (s1_images / name).exists():
            build_product(data / "s1" / name, s1_images, content=_pattern)
    # The DEM tiles under the S2 tile: N50E010 is real SRTM, the others are written flat (height 0).
    write_dem_folder(dem_dir, grid.tile(DEMO_TILE).footprint, data / "dem")
    config = root / "S1Processor.cfg"
    config.write_text(f"""# Demo request written by `python -m s1tiling.demo`
[Paths]
s1_images : {s1_images}
output : {output}
tmp : {root / 'tmp'}
dem_dir : {dem_dir}
geoid_file : {data / 'geoid' / 'egm96_15.gtx'}

[DataSource]
download : False
first_date : 2015-02-22
last_date : 2015-02-23
polarisation : VV-VH

[Processing]
tiles : {DEMO_TILE}
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m s1tiling.demo", description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="where to build the demo inputs, request file and outputs")
    parser.add_argument("--resolution", type=float, default=20.0, help="output pixel size in metres (default 20)")
    args = parser.parse_args(argv)
    config = build_demo(args.folder, args.resolution)
    print(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
