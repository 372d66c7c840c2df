"""Make docs/timeseries.png: the README's time-series example, run on a real run of the chain.

``python scripts/timeseries_figure.py [WORK_DIR]`` (default ``_work/timeseries-figure``) builds
demo-like synthetic products (``s1tiling.samples.synthetic.make_safe``: ascending orbit 59 over
S2 tile 31TEL, every 12 days for a season), whose fields (15 km) brighten and darken with the
season in VV and VH differently, with speckle; runs ``s1tiling`` on them at 200 m with
border masks; then runs the five lines of the README's example (read from README.md) in
WORK_DIR and copies the picture to docs/timeseries.png. Needs the ``cube`` extra and matplotlib.
"""
from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from s1tiling import grid
from s1tiling.s1.product import open_product
from s1tiling.samples.synthetic import make_safe, write_zero_geoid
from s1tiling.samples.testing import build_product, geolocation_gcps, write_dem_folder, write_measurement

REPO = Path(__file__).resolve().parent.parent
TILE, CENTER, ORBIT = "31TEL", (45.2, 3.79), 59
FIRST = dt.datetime(2021, 3, 2, 17, 39, 53, tzinfo=dt.timezone.utc)
DATES = 16  # every 12 days: March to September
SPACING = 40.0  # metres, the products' pixels
LOOKS = 16  # of the speckle: a single pixel's curve shows the season


def _content(day: float, seed: int, cross: bool):
    """DNs of one date: fields of four kinds whose backscatter follows the season (``day``:
    days since the first date), cross-polarised ones weaker and later; speckle of LOOKS looks."""
    def content(rows, cols):
        field = ((rows * SPACING // 15000) + 2 * (cols * SPACING // 15000)) % 4
        phase = np.array([0.0, 40.0, 80.0, 120.0])[field.astype(int)] + (30.0 if cross else 0.0)
        season = 1.0 + 0.8 * np.exp(-((day - phase - 60.0) / 45.0) ** 2)  # growth then harvest
        level = (45.0 if cross else 110.0) * np.array([1.0, 1.3, 0.8, 1.6])[field.astype(int)] * season
        rng = np.random.default_rng([seed, int(rows.flat[0])])
        looks = rng.gamma(LOOKS, 1.0 / LOOKS, size=np.broadcast_shapes(rows.shape, cols.shape))
        return np.clip(level * np.sqrt(looks), 1, 65535).astype(np.uint16)
    return content


def build_inputs(root: Path) -> Path:
    """Products, DEM, geoid and request file under ``root``; returns the request file."""
    for k in range(DATES):
        start = FIRST + dt.timedelta(days=12 * k)
        if list((root / "s1_images").glob(f"*_{start:%Y%m%dT%H%M%S}_*.SAFE")):
            continue
        template = make_safe(root / "templates", center_lat=CENTER[0], center_lon=CENTER[1], pixel_spacing=SPACING,
                             relative_orbit=ORBIT, start=start)
        day = 12.0 * k
        safe = build_product(template, root / "s1_images", content=_content(day, k, False), polarisations=["VV"])
        product = open_product(template)
        annotation = product.annotation("VH")
        write_measurement(safe / product.relative_path("measurement", "VH"), annotation.image.number_of_lines,
                          annotation.image.number_of_samples, content=_content(day, 100 + k, True),
                          gcps=geolocation_gcps(annotation.geolocation_grid))
    write_dem_folder(root / "dem", grid.tile(TILE).footprint)
    geoid = write_zero_geoid(root / "geoid.gtx")
    last = FIRST + dt.timedelta(days=12 * DATES)
    config = root / "S1Processor.cfg"
    config.write_text(f"""[Paths]
s1_images : {root / 's1_images'}
output : {root / 'output'}
tmp : {root / 'tmp'}
dem_dir : {root / 'dem'}
geoid_file : {geoid}
[DataSource]
first_date : {FIRST:%Y-%m-%d}
last_date : {last:%Y-%m-%d}
[Processing]
tiles : {TILE}
output_spatial_resolution : 200
orthorectification_interpolation_method : linear
[Mask]
generate_border_mask : True
""")
    return config


def main(argv: list[str]) -> int:
    root = Path(argv[0] if argv else REPO / "_work" / "timeseries-figure").resolve()
    root.mkdir(parents=True, exist_ok=True)
    # the chain in its own process: its dask workers must not re-import this script (numba threads)
    status = subprocess.run([sys.executable, "-m", "s1tiling", str(build_inputs(root))], check=False).returncode
    if status:
        return status
    code = re.search(r"<!-- timeseries-example -->\s*```python\n(.*?)```", (REPO / "README.md").read_text(),
                     re.DOTALL).group(1)
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True, env={**os.environ, "MPLBACKEND": "Agg"})
    shutil.copy(root / "timeseries.png", REPO / "docs" / "timeseries.png")
    print(f"{REPO / 'docs' / 'timeseries.png'}: from {DATES} dates in {root / 'output'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
