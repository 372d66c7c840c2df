#!/usr/bin/env python3
"""Make the EGM96 geoid grid shipped with the package (``s1tiling/data/egm96_15_cm.tif``).

Source: PROJ's ``egm96_15.gtx`` (NGA's EGM96 on a 15-minute grid, public domain), as Debian's
``proj-data`` package installs it (``apt-get install proj-data``: ``/usr/share/proj/egm96_15.gtx``).
The undulations (-107 m .. +86 m) are stored as int16 centimetres (GDAL scale 0.01: rasterio and
GDAL read metres), DEFLATE-compressed with horizontal differencing: about 1 MB, within 5 mm of
the source everywhere. Run from the repository root::

    python scripts/make_egm96_grid.py [/usr/share/proj/egm96_15.gtx]
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import rasterio

SOURCE = Path(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/proj/egm96_15.gtx")
TARGET = Path(__file__).resolve().parent.parent / "s1tiling" / "data" / "egm96_15_cm.tif"


def main() -> None:
    with rasterio.open(SOURCE) as src:
        metres = src.read(1).astype(np.float64)
        profile = dict(driver="GTiff", width=src.width, height=src.height, count=1, dtype="int16",
                       crs="EPSG:4326", transform=src.transform, compress="DEFLATE", predictor=2, zlevel=9,
                       tiled=False)
    centimetres = np.rint(metres * 100.0)
    if np.abs(centimetres).max() > np.iinfo(np.int16).max:
        raise SystemExit("undulations out of the int16 range")
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    tmp = TARGET.with_suffix(".tmp.tif")
    with rasterio.open(tmp, "w", **profile) as dst:
        dst.write(centimetres.astype(np.int16), 1)
        dst.scales, dst.offsets = (0.01,), (0.0,)
        dst.update_tags(SOURCE=f"{SOURCE.name} (PROJ data, NGA EGM96, public domain)", UNITS="centimetre",
                        DESCRIPTION="EGM96 geoid undulation above the WGS84 ellipsoid")
    tmp.replace(TARGET)
    print(f"{TARGET}: {TARGET.stat().st_size / 2**20:.2f} MiB, max error "
          f"{np.abs(centimetres / 100.0 - metres).max() * 1000:.1f} mm")


if __name__ == "__main__":
    main()
