"""Geoid undulation grids (EGM96, EGM2008) and orthometric -> ellipsoidal heights.

Supported files:

- anything GDAL reads as a georeferenced lon/lat raster: PROJ's ``egm96_15.gtx``
  (GTX), ``us_nga_egm96_15.tif`` / ``us_nga_egm08_25.tif`` (GeoTIFF), ...;
- OTB/OSSIM's ``egm96.grd``: big-endian float32, a header of 6 values
  (-90, 90, 0, 360, 0.25, 0.25: lat min/max, lon min/max, spacings) then 721 rows
  from the north pole, 1441 columns from 0 to 360 degrees east;
- NGA's ASCII ``WW15MGH.GRD`` (same header and layout, as text).

Values are interpolated bilinearly between grid posts; global grids wrap around in
longitude. GDAL's scale and offset of a band are applied (the grid shipped with the package,
``s1tiling/data/egm96_15_cm.tif``, stores EGM96 in centimetres: ``scripts/make_egm96_grid.py``).

Which grid (:func:`find_geoid`): ``geoid_file``; else PROJ's EGM96 grids (EGM2008 first with a
Copernicus DEM, whose heights are above EGM2008), in PROJ's data directories; else the EGM96 grid
shipped with the package, so that a plain ``pip install`` has one.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyproj.datadir
import pyproj.exceptions
import rasterio
from numpy.typing import ArrayLike

from ..errors import MissingGeoidError
from .dem import BILINEAR, sample_lattice

_PROJ_GEOIDS = ("egm96_15.gtx", "us_nga_egm96_15.tif")
_EGM2008_GEOIDS = ("us_nga_egm08_25.tif", "egm08_25.gtx")
#: EGM96 on a 15' grid in int16 centimetres (from PROJ's egm96_15.gtx, public domain)
PACKAGED_GEOID = Path(__file__).resolve().parent.parent / "data" / "egm96_15_cm.tif"
_SYSTEM_PROJ_DIRS = ("/usr/share/proj", "/usr/local/share/proj")
_OSSIM_HEADER = (-90.0, 90.0, 0.0, 360.0)


class Geoid:
    """A geoid undulation grid: :meth:`undulation` (metres above the WGS84 ellipsoid)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise MissingGeoidError(f"geoid file {self.path} not found")
        try:
            grid, north, west, dlat, dlon = _read_grd(self.path) or _read_gdal(self.path)
        except (OSError, ValueError, rasterio.errors.RasterioError) as exc:
            raise MissingGeoidError(f"cannot read geoid file {self.path}: {exc}") from exc
        grid = np.asarray(grid, dtype=np.float64)
        columns = round(360.0 / dlon)
        if grid.shape[1] == columns:  # global without the repeated meridian: add it
            grid = np.hstack([grid, grid[:, :1]])
        self.wraps = grid.shape[1] == columns + 1
        self.grid = np.ascontiguousarray(grid)
        # Post (0, 0) at (north, west); longitudes wrapped from ``west`` on global grids.
        self.lattice = (float(north), float(west), float(dlat), float(dlon), float(west) if self.wraps else np.nan)

    def undulation(self, lat: ArrayLike, lon: ArrayLike) -> np.ndarray:
        """Geoid height N (m) at lat, lon (degrees, any shape), bilinear."""
        lat, lon = np.broadcast_arrays(np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64))
        out = np.empty(lat.size)
        flat_lat, flat_lon = np.ascontiguousarray(lat).ravel(), np.ascontiguousarray(lon).ravel()
        sample_lattice(self.grid, self.lattice, flat_lat, flat_lon, BILINEAR, out)
        return out.reshape(lat.shape)


def _read_grd(path: Path):
    """An OSSIM binary or NGA ASCII .grd grid, or None when the file is neither."""
    if path.suffix.lower() != ".grd":
        return None
    raw = path.read_bytes()
    for dtype in (">f4", "<f4"):
        header = np.frombuffer(raw[:24], dtype=dtype) if len(raw) >= 24 else np.zeros(0)
        if header.size == 6 and np.allclose(header[:4], _OSSIM_HEADER):
            data = np.frombuffer(raw[24:], dtype=dtype)
            break
    else:
        values = np.array(raw.split(), dtype=np.float64)
        header, data = values[:6], values[6:]
        if header.size < 6 or not np.allclose(header[:4], _OSSIM_HEADER):
            raise ValueError("not an OSSIM/NGA geoid grid (header is not -90 90 0 360)")
    dlat, dlon = header[4], header[5]
    rows, cols = round(180.0 / dlat) + 1, round(360.0 / dlon) + 1
    if data.size != rows * cols:
        raise ValueError(f"{data.size} values where {rows} x {cols} were expected")
    return data.reshape(rows, cols), 90.0, 0.0, dlat, dlon


def _read_gdal(path: Path):
    with rasterio.open(path) as ds:
        if ds.crs is not None and not ds.crs.is_geographic:
            raise ValueError(f"not a longitude/latitude grid ({ds.crs})")
        t = ds.transform
        if t.b != 0 or t.d != 0 or t.e >= 0:
            raise ValueError("rotated or south-up grids are not supported")
        grid = ds.read(1, masked=True).astype(np.float64).filled(np.nan)
        scale, offset = (ds.scales or (1.0,))[0], (ds.offsets or (0.0,))[0]
        if (scale, offset) != (1.0, 0.0):
            grid = grid * scale + offset
    # Post coordinates: centres of GDAL's pixels.
    return grid, t.f + 0.5 * t.e, t.c + 0.5 * t.a, -t.e, t.a


def find_geoid(user_file: str | Path | None = None, prefer_egm2008: bool = False) -> Path:
    """The geoid grid to use: ``user_file``, else EGM96 (EGM2008 first with ``prefer_egm2008``)
    from the PROJ data directories, else the EGM96 grid shipped with the package.

    Raises :class:`MissingGeoidError` saying how to get one.
    """
    if user_file:
        path = Path(user_file).expanduser()
        if not path.is_file():
            raise MissingGeoidError(f"geoid file {path} ([Paths] geoid_file) not found")
        return path
    directories = []
    try:
        directories += pyproj.datadir.get_data_dir().split(os.pathsep)
    except pyproj.exceptions.DataDirError:
        pass
    directories.append(pyproj.datadir.get_user_data_dir())
    directories += [os.environ.get(v, "") for v in ("PROJ_DATA", "PROJ_LIB")] + list(_SYSTEM_PROJ_DIRS)
    names = (*_EGM2008_GEOIDS, *_PROJ_GEOIDS) if prefer_egm2008 else _PROJ_GEOIDS
    for directory in filter(None, directories):
        for name in names:
            candidate = Path(directory) / name
            if candidate.is_file():
                return candidate
    if PACKAGED_GEOID.is_file():
        return PACKAGED_GEOID
    raise MissingGeoidError(
        "no EGM96 geoid grid found (looked for " + ", ".join(_PROJ_GEOIDS) + " in the PROJ data directories "
        + ", ".join(d for d in directories if d) + "): install one (Debian/Ubuntu: apt-get install proj-data; "
        "or: projsync --file us_nga_egm96_15.tif) or set [Paths] geoid_file"
    )


def export_gtx(path: str | Path, directory: str | Path) -> Path:
    """A float32 GTX copy of a geoid grid in ``directory`` (made once, atomically), for programs that
    ignore GDAL's scale and offset (the Orfeo ToolBox reading the packaged grid)."""
    path, directory = Path(path), Path(directory)
    target = directory / f"{path.stem}.gtx"
    if target.is_file():
        return target
    directory.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path) as src:
        values = src.read(1).astype(np.float64) * (src.scales or (1.0,))[0] + (src.offsets or (0.0,))[0]
        profile = dict(driver="GTX", width=src.width, height=src.height, count=1, dtype="float32",
                       crs="EPSG:4326", transform=src.transform)
    tmp = directory / f".{target.name}.{os.getpid()}.tmp.gtx"
    with rasterio.open(tmp, "w", **profile) as dst:
        dst.write(values.astype(np.float32), 1)
    os.replace(tmp, target)
    return target


def ellipsoidal_heights(orthometric: ArrayLike, lat: ArrayLike, lon: ArrayLike, geoid: Geoid) -> np.ndarray:
    """h = H + N: heights above the ellipsoid from heights above the geoid."""
    return np.asarray(orthometric, dtype=np.float64) + geoid.undulation(lat, lon)
