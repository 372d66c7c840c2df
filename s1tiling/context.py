"""What a request gives a maker: tile grids, the DEM, the geoid, the orbit of a pass, the output layout.

Every maker (:mod:`s1tiling.production`, :mod:`s1tiling.incidence`,
:mod:`s1tiling.terrain_flattening`, :mod:`s1tiling.derived`, :mod:`s1tiling.engines.otb_production`)
receives one :class:`Context` with its job. It turns the settings into the inputs the makers
share, each decided in one place:

- the output grid of a tile (:meth:`Context.output_grid`): the tile of the run's grid (S2 or
  ``tiles_shapefile``) at ``output_spatial_resolution``;
- the DEM (:attr:`Context.dem`, its voids filled as ``dem_fill_max_distance`` and
  ``dem_fallback`` say, :mod:`s1tiling.geometry.dem_fill`) and the geoid (:attr:`Context.geoid`, one per process);
- the orbit policy (:meth:`Context.orbit_choice`, :meth:`Context.orbit_vectors`): the orbit file
  of ``eof_dir`` covering the whole pass (with :data:`~s1tiling.geometry.orbit.ORBIT_MARGIN`
  seconds around it; precise before restituted, newest first), else the state vectors annotated
  in the slices; a pass known from orbit files alone (maps made before any product is there,
  :meth:`Context.orbit_file_passes`, :meth:`Context.window_orbit`) follows the same choice;
- the output layout (:attr:`Context.layout`): the folders of the name templates;
- the threads of a task (:attr:`Context.threads`): ``nb_otb_threads``, or the share of the
  machine's cores of each of the run's ``nb_parallel_processes`` when that is more.

A context pickles as its settings alone: workers rebuild what they use.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from affine import Affine

from . import grid
from .geometry.dem import DemCatalog
from .geometry.dem_fill import VoidFiller, fill_tags
from .geometry.geoid import PACKAGED_GEOID, Geoid, export_gtx, find_geoid
from .geometry.orbit import EOF_NAME, Orbit, StateVectors, find_orbit_file, read_eof, select_state_vectors
from .geometry.passes import OrbitPass, find_passes
from .geometry.sar_model import SarModel
from .geometry.zero_doppler import ZeroDopplerOrbit
from .naming import layout
from .s1.product import Product
from .times import as_utc

if TYPE_CHECKING:
    from .config import ProcessingSettings, Settings

logger = logging.getLogger(__name__)

#: ``dem_warp_resampling_method`` -> DEM sampling of :meth:`DemCatalog.heights_on_grid`
_DEM_RESAMPLING = {"near": "nearest", "bilinear": "bilinear", "cubic": "cubic"}


@dataclass(frozen=True)
class OutputGrid:
    """A tile and its pixel grid at the output resolution."""

    tile: grid.S2Tile
    transform: Affine
    rows: int
    cols: int

    @property
    def crs(self) -> str:
        return self.tile.crs

    @property
    def shape(self) -> tuple[int, int]:
        return self.rows, self.cols


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity, e.g. a SLURM allocation)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_WARNED: set[int] = set()


@lru_cache(maxsize=4)
def _geoid(path: str | None, prefer_egm2008: bool = False) -> Geoid:
    return Geoid(find_geoid(path, prefer_egm2008))


class Context:
    """The inputs a request gives every maker (module documentation)."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def __getstate__(self) -> dict[str, Any]:
        return {"settings": self.settings}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.settings = state["settings"]

    @property
    def processing(self) -> ProcessingSettings:
        return self.settings.processing

    @property
    def threads(self) -> int:
        """Threads a task uses: ``nb_otb_threads``, or more when the cores this process may run
        on, shared by the ``nb_parallel_processes`` of the run, allow (a run of one process
        on two cores uses both for its tile)."""
        proc = self.settings.processing
        return max(proc.nb_otb_threads, usable_cores() // max(proc.nb_parallel_processes, 1))

    @cached_property
    def tile_grid(self) -> grid.TileGrid:
        return grid.for_settings(self.settings)

    def output_grid(self, tile_name: str) -> OutputGrid:
        tile = self.tile_grid.tile(tile_name)
        resolution = self.settings.processing.output_spatial_resolution
        return OutputGrid(tile, tile.transform(resolution), *tile.shape(resolution))

    @cached_property
    def layout(self) -> dict[str, str]:
        return layout(self.settings.paths)

    @cached_property
    def dem(self) -> DemCatalog:
        paths = self.settings.paths
        # filled tiles in memory, once per process: nothing left in {tmp} after a run
        filler = VoidFiller(self.processing.dem_fill_max_distance, paths.dem_fallback)
        return DemCatalog(paths.dem_dir, paths.dem_format, paths.dem_database, filler=filler)

    def dem_tags(self, tile_name: str) -> dict[str, str]:
        """Metadata of the DEM voids filled under a tile (``DEM_FILLED_POSTS``...)."""
        areas = self.dem.filled_areas(self.tile_grid.tile(tile_name).footprint)
        return fill_tags(areas, self.dem.filler.describe())

    @cached_property
    def copernicus_dem(self) -> bool:
        """Whether the DEM is Copernicus DEM (heights above EGM2008), from its file names or database."""
        paths = self.settings.paths
        names = f"{paths.dem_format} {paths.dem_database or ''} {paths.dem_dir.name}".lower()
        return "copernicus" in names or "dsm" in names

    @property
    def geoid_file(self) -> Path:
        """The geoid file, as a program outside this package reads it (the packaged grid as a
        float32 GTX copy in ``{tmp}/geoid``, where S1Tiling keeps its geoid too)."""
        path = find_geoid(self.settings.paths.geoid_file, self.copernicus_dem)
        if path == PACKAGED_GEOID:
            return export_gtx(path, Path(self.settings.paths.tmp) / "geoid")
        return path

    @property
    def geoid(self) -> Geoid:
        path = self.settings.paths.geoid_file
        geoid = _geoid(str(path) if path else None, self.copernicus_dem)
        if self.copernicus_dem and "96" in geoid.path.name and id(geoid) not in _WARNED:
            _WARNED.add(id(geoid))
            logger.warning("Copernicus DEM heights are above EGM2008, but the geoid is %s: use an EGM2008 grid "
                           "(geoid_file, e.g. PROJ's us_nga_egm08_25.tif), as S1Tiling advises", geoid.path)
        return geoid

    @cached_property
    def dem_resampling(self) -> str:
        """How the DEM is sampled for angle and area maps (``dem_warp_resampling_method``)."""
        method = self.settings.processing.dem_warp_resampling_method
        if method not in _DEM_RESAMPLING:
            logger.warning("dem_warp_resampling_method = %s: the native engine samples the DEM with 'cubic'", method)
        return _DEM_RESAMPLING.get(method, "cubic")

    # ------------------------------------------------------------------ orbit policy

    def orbit_choice(self, platform: str, start, stop) -> tuple[StateVectors | None, Path | None]:
        """The state vectors of the orbit file of ``eof_dir`` covering ``start`` .. ``stop`` of
        ``platform`` (ORBIT_MARGIN around), and that file; (None, None) when there is none."""
        eof_dir = self.settings.paths.eof_dir
        if not eof_dir or not Path(eof_dir).is_dir():
            return None, None
        start, stop = as_utc(start), as_utc(stop)
        found = find_orbit_file(eof_dir, platform, start, stop)
        if found is None:
            return None, None
        return select_state_vectors(read_eof(found), start, stop), Path(found)

    def orbit_vectors(self, products: list[Product]) -> StateVectors | None:
        """The precise state vectors of the pass of ``products`` (slices in time order): those of
        the orbit file of ``eof_dir`` covering the whole pass, ORBIT_MARGIN around it; None when
        there is none (the annotations' vectors are used)."""
        vectors, found = self.orbit_choice(products[0].platform, products[0].start_time, products[-1].stop_time)
        if found is not None:
            logger.info("%s: using orbit file %s", products[0].name, found.name)
        return vectors

    def orbit_file_of(self, products: list[Product]) -> Path | None:
        """The orbit file :meth:`orbit_vectors` uses for the pass of ``products`` (None: annotations)."""
        return self.orbit_choice(products[0].platform, products[0].start_time, products[-1].stop_time)[1]

    def window_orbit(self, platform: str, start: str, stop: str) -> tuple[ZeroDopplerOrbit, Path | None]:
        """The zero-Doppler orbit of a pass known from orbit files alone (``start`` .. ``stop``,
        :meth:`orbit_file_passes`) and its file; raises ``FileNotFoundError`` when ``eof_dir`` has
        none covering it any more."""
        vectors, found = self.orbit_choice(platform, np.datetime64(start, "ns"), np.datetime64(stop, "ns"))
        if vectors is None:
            raise FileNotFoundError(f"no orbit file of {platform} in {self.settings.paths.eof_dir} covers "
                                    f"{start} .. {stop}")
        begin = np.datetime64(start, "ns")
        orbit = Orbit(vectors, reference_time=begin)
        return ZeroDopplerOrbit(orbit, 0.5 * float(orbit.seconds(np.datetime64(stop, "ns")))), found

    def orbit_file_passes(self, tile_name: str, platforms=(), relative_orbits=(), direction: str | None = None,
                          first_day=None, last_day=None) -> dict[tuple[str, int], tuple[OrbitPass, Path]]:
        """The passes over a tile of the orbit files of ``eof_dir`` (valid from ``first_day`` to
        ``last_day`` when given), one per (platform, relative orbit): precise files before
        restituted ones, newest production first, then the earliest pass."""
        found: dict[tuple[str, int], tuple[OrbitPass, Path]] = {}
        for path, platform in self.orbit_files(platforms, first_day, last_day):
            vectors = self.read_orbit_file(path)
            for orbit_pass in find_passes(vectors, platform, self.tile_points(tile_name), relative_orbits, direction):
                if orbit_pass.relative_orbit is not None:
                    found.setdefault((platform, orbit_pass.relative_orbit), (orbit_pass, path))
        return found

    def orbit_files(self, platforms=(), first_day=None, last_day=None) -> list[tuple[Path, str]]:
        """The orbit files of ``eof_dir`` (and their platform) of ``platforms`` (any when empty)
        valid during ``first_day`` .. ``last_day``, in order of preference: POEORB before RESORB,
        newest production first."""
        return _orbit_files(self.settings.paths.eof_dir, platforms, first_day, last_day)

    def read_orbit_file(self, path: Path) -> StateVectors:
        """The state vectors of an orbit file (read once per context)."""
        cache = self.__dict__.setdefault("_orbit_file_cache", {})
        if path not in cache:
            cache[path] = read_eof(path)
        return cache[path]

    def tile_points(self, tile_name: str) -> list[tuple[float, float]]:
        """(lon, lat) of a tile's centre then of 8 points of its outline (what a pass must see)."""
        footprint = self.tile_grid.tile(tile_name).footprint
        if footprint.geom_type == "MultiPolygon":
            footprint = max(footprint.geoms, key=lambda g: g.area)
        outline = footprint.exterior
        return [tuple(footprint.centroid.coords[0])] + [tuple(outline.interpolate(k / 8, normalized=True).coords[0])
                                                          for k in range(8)]

    @cached_property
    def dem_ids(self) -> dict[str, str]:
        """Memo of :meth:`dem_list` per tile."""
        return {}

    def dem_list(self, tile_name: str) -> str:
        """The DEM tiles under a tile (S1Tiling's ``DEM_LIST``), comma-separated."""
        if tile_name not in self.dem_ids:
            footprint = self.tile_grid.tile(tile_name).footprint
            self.dem_ids[tile_name] = ", ".join(self.dem.tiles_for_region(footprint))
        return self.dem_ids[tile_name]

    def sar_models(self, products: list[Product]) -> list[SarModel]:
        """The sensor model of each slice of a pass, with the pass's orbit (:meth:`orbit_vectors`)."""
        vectors = self.orbit_vectors(products)
        return [SarModel.from_annotation(p.annotation(p.polarisations[0]), state_vectors=vectors) for p in products]

    def pass_orbit(self, products: list[Product]) -> ZeroDopplerOrbit:
        """The zero-Doppler orbit of a pass (slices in time order), with :meth:`orbit_vectors`."""
        return pass_orbit(products, self.orbit_vectors(products))


def _orbit_files(eof_dir, platforms, first_day, last_day) -> list[tuple[Path, str]]:
    """Orbit files of ``eof_dir`` (recursively) of ``platforms`` (any when empty) valid during the
    days, in order of preference: POEORB before RESORB, newest production first."""
    if not eof_dir or not Path(eof_dir).is_dir():
        return []
    candidates = []
    for path in Path(eof_dir).rglob("*.EOF"):
        match = EOF_NAME.match(path.name)
        if not match or (platforms and match["platform"].upper() not in platforms):
            continue
        start, stop = (np.datetime64(f"{m[:4]}-{m[4:6]}-{m[6:8]}", "D") for m in (match["start"], match["stop"]))
        if first_day is not None and stop < np.datetime64(first_day, "D"):
            continue
        if last_day is not None and start > np.datetime64(last_day, "D"):
            continue
        candidates.append(((match["kind"].upper() != "POEORB", -int(match["created"].replace("T", "")), start),
                           path, match["platform"].upper()))
    return [(path, platform) for _, path, platform in sorted(candidates)]


def pass_orbit(products: list[Product], vectors: StateVectors | None = None) -> ZeroDopplerOrbit:
    """The zero-Doppler orbit of a pass (slices in time order): ``vectors``, else the state vectors
    annotated in its slices put together."""
    if vectors is None:
        annotated = [p.annotation(p.polarisations[0]).orbit for p in products]
        times, first = np.unique(np.concatenate([v.times for v in annotated]), return_index=True)
        vectors = StateVectors(times, np.concatenate([v.positions for v in annotated])[first],
                               np.concatenate([v.velocities for v in annotated])[first], "annotation")
    start, stop = as_utc(products[0].start_time), as_utc(products[-1].stop_time)
    orbit = Orbit(vectors, reference_time=start)
    return ZeroDopplerOrbit(orbit, float(0.5 * orbit.seconds(np.datetime64(stop, "ns"))))
