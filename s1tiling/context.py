"""What a request gives a maker: tile grids, the DEM, the geoid, the orbit of a pass, the output layout.

Every maker (:mod:`s1tiling.production`, :mod:`s1tiling.incidence`,
:mod:`s1tiling.terrain_flattening`, :mod:`s1tiling.derived`, :mod:`s1tiling.engines.otb_production`)
receives one :class:`Context` with its job. It turns the settings into the inputs the makers
share, each decided in one place:

- the output grid of a tile (:meth:`Context.output_grid`): the tile of the run's grid (S2 or
  ``tiles_shapefile``) at ``output_spatial_resolution``;
- the DEM (:attr:`Context.dem`) and the geoid (:attr:`Context.geoid`, one per process);
- the orbit policy (:meth:`Context.orbit_vectors`): the precise orbit of ``eof_dir`` when one
  covers the whole pass (with :data:`~s1tiling.geometry.orbit.ORBIT_MARGIN` seconds around it),
  else the state vectors annotated in the slices;
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
from .geometry.geoid import Geoid, find_geoid
from .geometry.orbit import (
    Orbit,
    StateVectors,
    find_orbit_file,
    read_eof,
    select_state_vectors,
)
from .geometry.sar_model import SarModel
from .geometry.zero_doppler import ZeroDopplerOrbit
from .naming import layout
from .s1.product import Product
from .times import as_utc

if TYPE_CHECKING:
    from .config import Settings

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


@lru_cache(maxsize=4)
def _geoid(path: str | None) -> Geoid:
    return Geoid(find_geoid(path))


class Context:
    """The inputs a request gives every maker (module documentation)."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def __getstate__(self) -> dict[str, Any]:
        return {"settings": self.settings}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.settings = state["settings"]

    @property
    def processing(self):
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
        return DemCatalog(paths.dem_dir, paths.dem_format, paths.dem_database)

    @property
    def geoid_file(self) -> Path:
        return find_geoid(self.settings.paths.geoid_file)

    @property
    def geoid(self) -> Geoid:
        path = self.settings.paths.geoid_file
        return _geoid(str(path) if path else None)

    @cached_property
    def dem_resampling(self) -> str:
        """How the DEM is sampled for angle and area maps (``dem_warp_resampling_method``)."""
        method = self.settings.processing.dem_warp_resampling_method
        if method not in _DEM_RESAMPLING:
            logger.warning("dem_warp_resampling_method = %s: the native engine samples the DEM with 'cubic'", method)
        return _DEM_RESAMPLING.get(method, "cubic")

    # ------------------------------------------------------------------ orbit policy

    def orbit_vectors(self, products: list[Product]) -> StateVectors | None:
        """The precise state vectors of the pass of ``products`` (slices in time order): those of
        the orbit file of ``eof_dir`` covering the whole pass, ORBIT_MARGIN around it; None when
        there is none (the annotations' vectors are used)."""
        eof_dir = self.settings.paths.eof_dir
        if not eof_dir or not Path(eof_dir).is_dir():
            return None
        start, stop = as_utc(products[0].start_time), as_utc(products[-1].stop_time)
        found = find_orbit_file(eof_dir, products[0].platform, start, stop)
        if found is None:
            return None
        logger.info("%s: using orbit file %s", products[0].name, Path(found).name)
        return select_state_vectors(read_eof(found), start, stop)

    def sar_models(self, products: list[Product]) -> list[SarModel]:
        """The sensor model of each slice of a pass, with the pass's orbit (:meth:`orbit_vectors`)."""
        vectors = self.orbit_vectors(products)
        return [SarModel.from_annotation(p.annotation(p.polarisations[0]), state_vectors=vectors) for p in products]

    def pass_orbit(self, products: list[Product]) -> ZeroDopplerOrbit:
        """The zero-Doppler orbit of a pass (slices in time order), with :meth:`orbit_vectors`."""
        return pass_orbit(products, self.orbit_vectors(products))


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
    return ZeroDopplerOrbit(orbit, 0.5 * orbit.seconds(np.datetime64(stop, "ns")))
