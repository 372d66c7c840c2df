"""Producing the S2 tile images of one pass: orthorectify its slices block by block, merge, write.

One :class:`TileJob` makes one GeoTIFF per polarisation. The tile is processed in blocks
(``BLOCK_HEIGHT`` x ``BLOCK_WIDTH`` metres); for each block and each slice of the pass the
geometry (a :class:`~s1tiling.ortho.GeometryGrid` and the SAR position of every pixel) is
computed once and used for every polarisation; only the SAR window under the block is read and
calibrated. Slices are merged by keeping the first non-zero value (slices in time order), so two
consecutive slices of a datatake give one seamless image. NORMLIM tiles are made with the beta0
LUT and multiplied by the sin(LIA) map of their tile and orbit (:mod:`s1tiling.incidence`);
gamma0 RTC tiles with the gamma LUT, divided by the gamma area map of their tile and orbit
(:mod:`s1tiling.terrain_flattening`).

With ``--cache-before-ortho`` each (product, polarisation) is first calibrated and border-cut
into a file under ``{tmp}/S1`` (:func:`calibrate_to_cache`, named by :func:`calibrated_path`),
reused by every tile and later run; the blocks then read their SAR windows from it.
"""
from __future__ import annotations

import logging
import warnings
from contextlib import ExitStack
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window
from shapely.geometry import box

from . import grid
from .discovery import footprint_in_tile_crs
from .geometry.dem import DemCatalog
from .geometry.geoid import Geoid, find_geoid
from .geometry.orbit import find_orbit_file, read_eof
from .geometry.sar_model import SarModel
from .incidence import normlim
from .naming import TileProduct
from .ortho import GeometryGrid, sar_window
from .radiometry import LOWER_SIGNAL_VALUE, border_cut_params, calibrate
from .resampling import margin, sample
from .s1.product import as_window, open_product
from .terrain_flattening import flatten
from .writing import AtomicRasterWriter, cleanup_stale_temporaries, creation_options_for, tile_metadata

logger = logging.getLogger(__name__)

#: Ground extent of a processing block (metres): bounds the SAR window read and calibrated at
#: once, whatever the output resolution (1024 x 2048 pixels at 10 m).
BLOCK_HEIGHT = 10240.0
BLOCK_WIDTH = 20480.0
#: Geometry nodes are never closer than this many output pixels (finer brings no accuracy).
MIN_NODE_PIXELS = 4
#: Footprints in manifests are approximate: blocks this close to a slice footprint are processed.
FOOTPRINT_MARGIN = 2000.0
#: Lines calibrated at once when writing a calibrated product to the cache.
CACHE_STRIP_LINES = 1024


@dataclass(frozen=True)
class TileJob:
    """One pass over one tile: the slices (paths, in time order) and the outputs to make."""

    tile: str
    products: tuple  # product paths (str)
    outputs: tuple  # ((polarisation, output path), ...)
    sin_lia: str | None = None  # NORMLIM: the sin(LIA) map the beta0 values are multiplied by
    gamma_area: str | None = None  # gamma0 RTC: the gamma area map the gamma0 values are divided by
    cached: bool = False  # read calibrated SAR windows from the files of calibrated_path (--cache-before-ortho)

    @property
    def key(self) -> str:
        return f"ortho/{Path(self.outputs[0][1]).stem}"


def calibrated_path(settings, product_name: str, pol: str) -> Path:
    """Where ``--cache-before-ortho`` keeps one calibrated, border-cut polarisation of a product.

    The name encodes every setting that changes the values (LUT, noise removal, non-default
    lower signal value, border-cut override), so a different request never reuses it.
    """
    proc = settings.processing
    parts = [product_name, pol.lower(), _radiometric_lut(proc.calibration)]
    if proc.remove_thermal_noise:
        parts.append("NoiseRemoved")
        if proc.lower_signal_value != LOWER_SIGNAL_VALUE:
            parts.append(f"floor{proc.lower_signal_value:g}")
    if proc.override_azimuth_cut_threshold_to is not None:
        parts.append(f"cut{'On' if proc.override_azimuth_cut_threshold_to else 'Off'}")
    return Path(settings.paths.tmp) / "S1" / product_name / ("_".join(parts) + ".tif")


def calibrate_to_cache(product_path: str, pol: str, settings) -> str:
    """Calibrate and border-cut one polarisation of a product into :func:`calibrated_path` (kept if there)."""
    proc = settings.processing
    product = open_product(product_path)
    path = calibrated_path(settings, product.name, pol)
    if path.exists():
        return str(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cleanup_stale_temporaries(path.parent)
    cut = border_cut_params(product, pol, proc.override_azimuth_cut_threshold_to)
    lut = _radiometric_lut(proc.calibration)
    lines, samples = product.shape
    _, options = creation_options_for("tiled")  # float32, whatever the tile images are written as
    with warnings.catch_warnings():  # SAR geometry: no map transform
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with AtomicRasterWriter(path, crs=None, transform=Affine.identity(), width=samples, height=lines,
                                dtype="float32", creation_options=options) as out:
            for r0 in range(0, lines, CACHE_STRIP_LINES):
                window = (r0, 0, min(CACHE_STRIP_LINES, lines - r0), samples)
                out.write(calibrate(product, pol, window, calibration=lut,
                                    remove_thermal_noise=proc.remove_thermal_noise,
                                    lower_signal_value=proc.lower_signal_value, border_cut=cut), as_window(window))
    logger.info("%s: calibrated %s into %s", product.name, pol.upper(), path.name)
    return str(path)


def _open_sar_raster(path):
    """Open a raster in SAR geometry (no map transform: no warning about it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return rasterio.open(path)


def dem_catalog(settings) -> DemCatalog:
    paths = settings.paths
    return DemCatalog(paths.dem_dir, paths.dem_format, paths.dem_database)


@lru_cache(maxsize=4)
def _geoid(path):
    return Geoid(find_geoid(path))


def sar_model(product, settings):
    """Geometry of a product: precise orbit from ``eof_dir`` when one covers it, else the annotation's."""
    annotation = product.annotation(product.polarisations[0])
    vectors = None
    eof_dir = settings.paths.eof_dir
    if eof_dir and Path(eof_dir).is_dir():
        found = find_orbit_file(eof_dir, product.platform, product.start_time, product.stop_time)
        if found is not None:
            vectors = read_eof(found)
            logger.info("%s: using orbit file %s", product.name, Path(found).name)
    return SarModel.from_annotation(annotation, state_vectors=vectors)


def tile_product(group_products, tile_name, polarisation, calibration) -> TileProduct:
    first = group_products[0]
    return TileProduct(
        flying_unit_code=first.flying_unit_code, tile_name=tile_name, polarisation=polarisation,
        orbit_direction=first.pass_direction, orbit=first.relative_orbit,
        acquisition_times=tuple(p.start_time for p in group_products), calibration=calibration,
    )


def output_grid(settings, tile_name):
    """The tile (of the run's grid) and its grid at the output resolution: ``(tile, transform, rows, cols)``."""
    tile = grid.for_settings(settings).tile(tile_name)
    resolution = settings.processing.output_spatial_resolution
    return (tile, tile.transform(resolution), *tile.shape(resolution))


def produce(job: TileJob, settings) -> list[str]:
    """Make the outputs of ``job``; return the paths written."""
    proc = settings.processing
    resolution = proc.output_spatial_resolution
    tile, transform, rows, cols = output_grid(settings, job.tile)
    products = [open_product(p) for p in job.products]
    models = [sar_model(p, settings) for p in products]
    catalog = dem_catalog(settings)
    geoid = _geoid(settings.paths.geoid_file)
    footprints = [footprint_in_tile_crs(p, tile).buffer(FOOTPRINT_MARGIN) for p in products]
    pols = [pol for pol, _ in job.outputs]
    cuts = {} if job.cached else {(i, pol): border_cut_params(p, pol, proc.override_azimuth_cut_threshold_to)
                                  for i, p in enumerate(products) for pol in pols}
    method = proc.orthorectification_interpolation_method
    dtype, options = creation_options_for("tiled", proc.creation_options)
    if proc.nb_otb_threads > 1:  # compress with the task's threads (same pixels, less waiting)
        options.setdefault("NUM_THREADS", str(proc.nb_otb_threads))
    block_rows = max(16, int(BLOCK_HEIGHT // resolution))
    block_cols = max(16, int(BLOCK_WIDTH // resolution))

    written = []
    with ExitStack() as stack:
        writers = {}
        for pol, path in job.outputs:
            tags = tile_metadata(
                tile_product(products, job.tile, pol, proc.calibration),
                input_products=[p.name for p in products], absolute_orbit=products[0].absolute_orbit,
                noise_removed=proc.remove_thermal_noise, dem_info=settings.paths.dem_info,
                interpolator=method, spatial_resolution=resolution, engine="native",
                orbit_source=models[0].orbit_source,
                extra={**settings.metadata, **({"LIA_FILE": Path(job.sin_lia).name} if job.sin_lia else {}),
                       **({"GAMMA_AREA_FILE": Path(job.gamma_area).name} if job.gamma_area else {})},
            )
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            cleanup_stale_temporaries(Path(path).parent)  # what killed runs left
            writers[pol] = stack.enter_context(AtomicRasterWriter(
                path, crs=tile.crs, transform=transform, width=cols, height=rows, dtype=dtype,
                creation_options=options, tags=tags))
        sin_lia = stack.enter_context(rasterio.open(job.sin_lia)) if job.sin_lia else None
        gamma_area = stack.enter_context(rasterio.open(job.gamma_area)) if job.gamma_area else None
        caches = {(i, pol): stack.enter_context(_open_sar_raster(calibrated_path(settings, p.name, pol)))
                  for i, p in enumerate(products) for pol in pols} if job.cached else {}
        for r0 in range(0, rows, block_rows):
            for c0 in range(0, cols, block_cols):
                h, w = min(block_rows, rows - r0), min(block_cols, cols - c0)
                blocks = _block(products, models, footprints, cuts, caches, pols, catalog, geoid, tile,
                                transform, r0, c0, h, w, settings)
                if blocks is not None:
                    window = Window(c0, r0, w, h)
                    if sin_lia is not None:
                        factor = sin_lia.read(1, window=window, masked=True).filled(np.nan)
                        blocks = {pol: normlim(v, factor, proc.lower_signal_value) for pol, v in blocks.items()}
                    if gamma_area is not None:
                        ratio = gamma_area.read(1, window=window, masked=True).filled(np.nan)
                        blocks = {pol: flatten(v, ratio, proc.lower_signal_value) for pol, v in blocks.items()}
                    for pol in pols:
                        writers[pol].write(blocks[pol], window)
        written = [str(path) for _, path in job.outputs]
    logger.info("%s: wrote %s", job.tile, ", ".join(Path(p).name for p in written))
    return written


def _block(products, models, footprints, cuts, caches, pols, catalog, geoid, tile, transform, r0, c0, h, w,
           settings):
    """Merged values of every polarisation over one block, or None when no slice touches it.

    The SAR window of (slice ``i``, ``pol``) is read from ``caches[i, pol]`` (an open calibrated
    file) when there, else calibrated here with the border cut ``cuts[i, pol]``.
    """
    proc = settings.processing
    x0, y0 = transform @ (c0, r0)
    x1, y1 = transform @ (c0 + w, r0 + h)
    area = box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
    active = [i for i, fp in enumerate(footprints) if fp.intersects(area)]
    if not active:
        return None
    block_transform = transform @ Affine.translation(c0, r0)
    dem = catalog.heights_on_grid(tile.crs, block_transform, (h, w))
    res = transform.a
    centres = (area.bounds[0] + res / 2, area.bounds[1] + res / 2, area.bounds[2] - res / 2, area.bounds[3] - res / 2)
    method = proc.orthorectification_interpolation_method
    lut = _radiometric_lut(proc.calibration)
    merged = np.zeros((len(pols), h, w), dtype=np.float32)  # one band per polarisation
    for n, i in enumerate(active):
        needed = None
        if n:  # a later slice only fills the pixels earlier ones left at 0
            needed = (merged == 0).any(axis=0)
            if not needed.any():
                break
        product = products[i]
        step = max(proc.orthorectification_gridspacing, MIN_NODE_PIXELS * res)
        geometry = GeometryGrid.compute(models[i], geoid, tile.crs, centres, step,
                                        (float(np.min(dem)), float(np.max(dem))))
        lines, pixels = geometry.sar_positions(transform, r0, c0, dem)
        if needed is not None:
            lines[~needed] = np.nan  # not sampled, and outside the SAR window
        window = sar_window(lines, pixels, product.shape, margin(method))
        if window is None:
            continue
        values = np.empty((len(pols), window[2], window[3]), dtype=np.float32)
        for k, pol in enumerate(pols):
            if (i, pol) in caches:
                caches[i, pol].read(1, window=as_window(window), out=values[k])
                continue
            calibrate(product, pol, window, calibration=lut, remove_thermal_noise=proc.remove_thermal_noise,
                      lower_signal_value=proc.lower_signal_value, border_cut=cuts[i, pol], out=values[k])
        sample(values, window[0], window[1], product.shape, lines, pixels, method,
               floor=proc.lower_signal_value, out=merged)
    return {pol: merged[k] for k, pol in enumerate(pols)}


def _radiometric_lut(calibration: str) -> str:
    """The calibration LUT behind a ``[Processing] calibration`` value."""
    if calibration in ("sigma", "beta", "gamma", "dn"):
        return calibration
    if calibration == "normlim":  # beta0, multiplied by sin(LIA) once on the tile grid
        return "beta"
    if calibration == "gamma_naught_rtc":  # gamma0 on the ellipsoid, divided by the gamma area ratio on the tile grid
        return "gamma"
    raise NotImplementedError(f"calibration {calibration!r} is not supported by the native engine yet")
