"""Filling the voids (no-data posts) of DEM tiles, once, for every user of the DEM.

SRTM has voids in every mountain range and Copernicus DEM has its own no-data; heights of 0
there dig pits hundreds of metres deep (on the real N50E010 tile every local incidence angle
above 90 degrees lay within 160 m of a void). :class:`VoidFiller` gives, for a DEM tile file, a
file whose voids are filled; :class:`~s1tiling.geometry.dem.DemCatalog` reads that file instead
of the tile (so orthorectification, LIA/IA maps and gamma-area maps all see the same heights)
and the OTB engine's DEM folder links it (:func:`s1tiling.engines.otb_production`).

How a void is filled (per tile file, independently of the region a caller asks for, so that
every block of every product sees the same heights):

1. Posts within ``max_distance`` metres of a valid post (found by GDAL's ``FillNodata``, its
   4-direction conic search: :func:`rasterio.fill.fillnodata`) are interpolated: GDAL's inverse
   distance weighting is the first guess, then the void is relaxed to the harmonic (Laplace)
   surface through its border posts (successive over-relaxation, metric post spacings). A
   harmonic fill reproduces planes and saddles exactly and, by the maximum principle, never
   leaves the range of the border heights; where the terrain has a Laplacian
   ``|Δh| <= K`` around a void of radius ``R`` the filled height is within ``K R² / 4`` of any
   smooth surface with that curvature (:func:`harmonic_error_bound`).
2. Posts farther than ``max_distance`` from any valid post take the heights of ``fallback``
   (a coarser DEM, any GDAL raster of orthometric heights, bilinear) when one is configured
   (``[Paths] dem_fallback``), else the geoid surface (orthometric height 0), with a warning
   listing the areas; they are then fixed borders for step 1.

What was filled is listed per void (:class:`FilledArea`: posts, extent, how) and travels into
the products' metadata (:func:`fill_tags`). Filled tiles are written once (float32 GeoTIFF,
``cache_dir``, e.g. ``{tmp}/dem_filled``, named after the tile and a key of its size, date
and the fill settings; the list of areas in its tags) and reused by later runs and other
processes; without ``cache_dir`` they are kept in memory (GDAL ``/vsimem``). Tiles without
voids are read as they are.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numba
import numpy as np
import rasterio
from rasterio.fill import fillnodata
from rasterio.io import DatasetReader, MemoryFile
from rasterio.warp import Resampling, reproject

from ..writing import AtomicRasterWriter

log = logging.getLogger(__name__)

#: Voids are interpolated up to this distance (m) from valid posts (GDAL's FillNodata default of
#: 100 posts on a 3-arc-second SRTM tile); farther, the fallback DEM or the geoid is used.
DEFAULT_MAX_DISTANCE = 10000.0
#: The harmonic relaxation stops when no post moves by more than this (m).
RELAX_TOLERANCE = 1e-4
_TAG = "S1TILING_DEM_FILLED_AREAS"
_EARTH_RADIUS = 6371008.8
_FILL_VERSION = "1"  # part of the cache key: bump when the method changes


@dataclass(frozen=True)
class FilledArea:
    """One void of a DEM tile (8-connected no-data posts) and how its posts were filled:
    ``interpolated`` (harmonic surface), ``fallback`` (the fallback DEM), ``geoid`` (height 0).
    Extent in degrees (post centres)."""

    interpolated: int
    fallback: int
    geoid: int
    west: float
    south: float
    east: float
    north: float

    @property
    def posts(self) -> int:
        return self.interpolated + self.fallback + self.geoid

    def overlaps(self, west: float, south: float, east: float, north: float) -> bool:
        return self.west <= east and self.east >= west and self.south <= north and self.north >= south

    def describe(self) -> str:
        return f"{self.west:.4f}..{self.east:.4f} E {self.south:.4f}..{self.north:.4f} N ({self.posts} posts)"


@dataclass(frozen=True)
class TileFill:
    """A DEM tile and the file to read for it (the tile itself when it has no void)."""

    source: Path
    path: Path | MemoryFile
    areas: tuple[FilledArea, ...]

    def open(self) -> DatasetReader:
        return self.path.open() if isinstance(self.path, MemoryFile) else rasterio.open(self.path)


class VoidFiller:
    """Fills the voids of DEM tile files (module documentation); one per DEM catalog."""

    def __init__(self, max_distance: float = DEFAULT_MAX_DISTANCE, fallback: str | Path | None = None,
                 cache_dir: str | Path | None = None):
        if not max_distance >= 0:
            raise ValueError(f"max_distance must be >= 0, not {max_distance!r}")
        self.max_distance = float(max_distance)
        self.fallback = Path(fallback) if fallback else None
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._tiles: dict[tuple, TileFill] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:  # the memory cache stays in its process
        return {"max_distance": self.max_distance, "fallback": self.fallback, "cache_dir": self.cache_dir}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["max_distance"], state["fallback"], state["cache_dir"])  # type: ignore[misc]

    def describe(self) -> str:
        beyond = f"the fallback DEM {self.fallback.name}" if self.fallback else "the geoid (height 0)"
        return f"harmonic interpolation up to {self.max_distance:g} m from valid posts, then {beyond}"

    def tile(self, path: str | Path) -> TileFill:
        """The filled version of the DEM tile file ``path`` (computed once per process and key)."""
        path = Path(path)
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
        with self._lock:
            known = self._tiles.get(key)
            if known is None:
                known = self._tiles[key] = self._fill(path, key)
        return known

    def open(self, path: str | Path) -> DatasetReader:
        """The DEM tile ``path`` opened with its voids filled."""
        return self.tile(path).open()

    # ------------------------------------------------------------------ filling

    def _cache_path(self, path: Path, key: tuple) -> Path | None:
        if self.cache_dir is None:
            return None
        text = json.dumps([*key, self.max_distance, str(self.fallback.resolve()) if self.fallback else None,
                           _FILL_VERSION])
        return self.cache_dir / f"{path.stem}_filled_{hashlib.sha256(text.encode()).hexdigest()[:12]}.tif"

    def _fill(self, path: Path, key: tuple) -> TileFill:
        cached = self._cache_path(path, key)
        if cached is not None and cached.is_file():
            with rasterio.open(cached) as src:
                areas = tuple(FilledArea(**a) for a in json.loads(src.tags().get(_TAG, "[]")))
            return TileFill(path, cached, areas)
        with rasterio.open(path) as src:
            band = src.read(1, masked=True)
            if not np.ma.is_masked(band) and np.isfinite(band).all():
                return TileFill(path, path, ())
            profile = src.profile
            transform, crs = src.transform, src.crs
        heights = band.astype(np.float64).filled(np.nan)
        heights[~np.isfinite(heights)] = np.nan
        filled, areas = self._fill_array(heights, transform, crs, path)
        profile.update(driver="GTiff", dtype="float32", nodata=None, count=1)
        for k in ("blockxsize", "blockysize", "tiled", "compress", "interleave", "predictor"):
            profile.pop(k, None)
        tags = {_TAG: json.dumps([asdict(a) for a in areas]), "DEM_FILLED_FROM": path.name}
        if cached is None:
            memory = MemoryFile()
            with memory.open(**profile) as dst:
                dst.write(filled.astype(np.float32), 1)
                dst.update_tags(**tags)
            return TileFill(path, memory, areas)
        cached.parent.mkdir(parents=True, exist_ok=True)
        with AtomicRasterWriter(cached, crs=crs, transform=transform, width=profile["width"],
                                height=profile["height"], dtype="float32", nodata=None,
                                creation_options={"TILED": "YES", "COMPRESS": "DEFLATE", "PREDICTOR": "3"},
                                tags=tags) as writer:
            writer.write(filled.astype(np.float32))
        log.info("DEM %s: %d void post(s) filled, kept in %s", path.name, sum(a.posts for a in areas), cached)
        return TileFill(path, cached, areas)

    def _fill_array(self, heights: np.ndarray, transform, crs, path: Path) -> tuple[np.ndarray, tuple[FilledArea, ...]]:
        """Fill the NaN posts of one tile (``transform``: its geotransform, degrees)."""
        rows, cols = heights.shape
        void = np.isnan(heights)
        dx, dy = _post_spacing(transform, crs, rows)
        reach = self.max_distance / min(dx, dy)
        first_guess = heights.astype(np.float32)
        if reach >= 1.0 and (~void).any():
            first_guess = fillnodata(first_guess, (~void).astype(np.uint8), max_search_distance=reach,
                                     smoothing_iterations=0)
        far = void & np.isnan(first_guess)
        fixed = np.where(void, first_guess, heights).astype(np.float64)
        from_fallback = np.zeros_like(void)
        if far.any():
            if self.fallback is not None:
                coarse = _sample_fallback(self.fallback, transform, crs, heights.shape)
                from_fallback = far & np.isfinite(coarse)
                fixed[from_fallback] = coarse[from_fallback]
            fixed[far & ~from_fallback] = 0.0
        labels, count = _label(void)
        free = void & ~far
        _relax_all(fixed, free, labels, count, 1.0 / (dx * dx), 1.0 / (dy * dy))
        areas = _areas(labels, count, free, from_fallback, far & ~from_fallback, transform)
        geoid_areas = [a for a in areas if a.geoid]
        if geoid_areas:
            log.warning("DEM %s: %d void post(s) farther than %g m from valid heights set to the geoid surface "
                        "(no [Paths] dem_fallback%s): %s", path.name, sum(a.geoid for a in geoid_areas),
                        self.max_distance, " covering them" if self.fallback else "",
                        "; ".join(a.describe() for a in geoid_areas))
        return fixed, areas


def harmonic_error_bound(laplacian: float, radius: float) -> float:
    """Largest difference between the harmonic fill of a void of ``radius`` (m, the radius of a
    disc containing it) and a surface whose Laplacian stays within ``laplacian`` (1/m) there:
    ``K R² / 4`` (the difference is sub-harmonic up to ``K |x|² / 4``, zero on the border)."""
    return abs(laplacian) * radius * radius / 4.0


def fill_tags(areas: list[FilledArea] | tuple[FilledArea, ...], method: str) -> dict[str, str]:
    """Product metadata of the DEM voids filled under a product: how many posts, where, how."""
    if not areas:
        return {"DEM_FILLED_POSTS": "0"}
    interpolated, fallback, geoid = (sum(getattr(a, k) for a in areas) for k in ("interpolated", "fallback", "geoid"))
    extent = (min(a.west for a in areas), min(a.south for a in areas), max(a.east for a in areas),
              max(a.north for a in areas))
    return {"DEM_FILLED_POSTS": str(interpolated + fallback + geoid),
            "DEM_FILLED_VOIDS": str(len(areas)),
            "DEM_FILLED_EXTENT": " ".join(f"{v:.5f}" for v in extent),
            "DEM_FILL_METHOD": f"{method}; {interpolated} interpolated, {fallback} from the fallback DEM, "
                               f"{geoid} set to the geoid"}


def _post_spacing(transform, crs, rows: int) -> tuple[float, float]:
    """Post spacings (m) east-west and north-south at the middle of a tile."""
    if crs is not None and crs.is_projected:
        return abs(transform.a), abs(transform.e)
    lat = transform.f + transform.e * rows / 2
    metres = math.pi * _EARTH_RADIUS / 180.0
    return abs(transform.a) * metres * max(math.cos(math.radians(lat)), 1e-3), abs(transform.e) * metres


def _sample_fallback(fallback: Path, transform, crs, shape: tuple[int, int]) -> np.ndarray:
    """Heights of the fallback DEM at the tile's posts (bilinear, NaN where it has none)."""
    out = np.full(shape, np.nan, dtype=np.float32)
    try:
        with rasterio.open(fallback) as src:
            reproject(rasterio.band(src, 1), out, src_nodata=src.nodata, dst_nodata=np.nan, dst_transform=transform,
                      dst_crs=crs or "EPSG:4326", resampling=Resampling.bilinear)
    except rasterio.errors.RasterioError as exc:
        log.warning("dem_fallback %s cannot be read (%s): the geoid is used instead", fallback, exc)
    return out.astype(np.float64)


@numba.njit(cache=True)
def _label(void):
    """8-connected components of ``void``: labels (0 outside, 1..count) and count."""
    rows, cols = void.shape
    labels = np.zeros((rows, cols), dtype=np.int32)
    stack = np.empty((rows * cols, 2), dtype=np.int64)
    count = 0
    for i0 in range(rows):
        for j0 in range(cols):
            if not void[i0, j0] or labels[i0, j0]:
                continue
            count += 1
            labels[i0, j0] = count
            stack[0, 0], stack[0, 1] = i0, j0
            top = 1
            while top:
                top -= 1
                i, j = stack[top, 0], stack[top, 1]
                for di in range(-1, 2):
                    for dj in range(-1, 2):
                        a, b = i + di, j + dj
                        if 0 <= a < rows and 0 <= b < cols and void[a, b] and not labels[a, b]:
                            labels[a, b] = count
                            stack[top, 0], stack[top, 1] = a, b
                            top += 1
    return labels, count


@numba.njit(cache=True)
def _relax(h, rows_, cols_, wx, wy, omega, tol, max_sweeps):
    """Gauss-Seidel over-relaxation of the free posts (row-major lists) towards the discrete
    Laplace equation with spacing weights ``wx``, ``wy``; missing neighbours at the array's
    edges drop out (zero normal derivative there)."""
    nr, nc = h.shape
    for _ in range(max_sweeps):
        largest = 0.0
        for k in range(rows_.shape[0]):
            i, j = rows_[k], cols_[k]
            total, weight = 0.0, 0.0
            if j > 0:
                total += wx * h[i, j - 1]
                weight += wx
            if j < nc - 1:
                total += wx * h[i, j + 1]
                weight += wx
            if i > 0:
                total += wy * h[i - 1, j]
                weight += wy
            if i < nr - 1:
                total += wy * h[i + 1, j]
                weight += wy
            step = total / weight - h[i, j]
            h[i, j] += omega * step
            largest = max(largest, abs(step))
        if largest < tol:
            return


def _relax_all(heights: np.ndarray, free: np.ndarray, labels: np.ndarray, count: int, wx: float, wy: float) -> None:
    """Relax each void's free posts to the harmonic surface through its fixed borders."""
    if not free.any():
        return
    rows, cols = np.nonzero(free)
    ids = labels[rows, cols]
    order = np.argsort(ids, kind="stable")  # row-major within each void
    rows, cols, ids = rows[order], cols[order], ids[order]
    bounds = np.searchsorted(ids, np.arange(1, count + 2))
    scale = max(wx, wy)
    for n in range(count):
        a, b = bounds[n], bounds[n + 1]
        if a == b:
            continue
        r, c = rows[a:b], cols[a:b]
        extent = max(int(np.ptp(r)), int(np.ptp(c))) + 2
        omega = 2.0 / (1.0 + math.sin(math.pi / (extent + 1)))
        _relax(heights, np.ascontiguousarray(r), np.ascontiguousarray(c), wx / scale, wy / scale, omega,
               RELAX_TOLERANCE, 50 * extent + 100)


def _areas(labels: np.ndarray, count: int, interpolated: np.ndarray, fallback: np.ndarray, geoid: np.ndarray,
           transform) -> tuple[FilledArea, ...]:
    rows, cols = np.nonzero(labels)
    if rows.size == 0:
        return ()
    ids = labels[rows, cols]
    order = np.argsort(ids, kind="stable")
    rows, cols, ids = rows[order], cols[order], ids[order]
    bounds = np.searchsorted(ids, np.arange(1, count + 2))
    areas = []
    for n in range(count):
        r, c = rows[bounds[n]:bounds[n + 1]], cols[bounds[n]:bounds[n + 1]]
        if r.size == 0:
            continue
        x0, y0 = transform @ (c.min() + 0.5, r.min() + 0.5)
        x1, y1 = transform @ (c.max() + 0.5, r.max() + 0.5)
        west, east = sorted((x0, x1))
        south, north = sorted((y0, y1))
        areas.append(FilledArea(int(interpolated[r, c].sum()), int(fallback[r, c].sum()), int(geoid[r, c].sum()),
                                float(west), float(south), float(east), float(north)))
    return tuple(areas)
