"""Producing the S2 tile images of one pass: orthorectify its slices block by block, merge, write.

One :class:`~s1tiling.plan.TileJob` makes one GeoTIFF per polarisation. The tile is processed in blocks
(``BLOCK_HEIGHT`` x ``BLOCK_WIDTH`` metres); for each block and each slice of the pass the
geometry (a :class:`~s1tiling.ortho.GeometryGrid`) is computed once and used for every
polarisation, and the SAR window under the block is sampled at the position of every pixel.
Slices are merged by keeping the first non-zero value (slices in time order), so two
consecutive slices of a datatake give one seamless image. NORMLIM tiles are made with the beta0
LUT and multiplied by the sin(LIA) map of their tile and orbit (:mod:`s1tiling.incidence`,
:func:`s1tiling.radiometry.normlim`); gamma0 RTC tiles with the gamma LUT, divided by the gamma
area map of their tile and orbit (:mod:`s1tiling.terrain_flattening`, :func:`s1tiling.radiometry.flatten`).

Work is shared so that nothing is done twice and every core of the task is busy:

- the DEM posts under the tile are read once (:meth:`~s1tiling.geometry.dem.DemCatalog.preload`);
- the SAR images are read and calibrated in chunks of ``CHUNK`` x ``CHUNK`` samples, each once,
  kept while later blocks may need them (``CHUNK_CACHE_BYTES``): the SAR windows of the rotated
  blocks overlap by a third;
- blocks are computed by :attr:`~s1tiling.context.Context.threads` threads (when numba's
  threading layer allows concurrent kernels: TBB or OpenMP), written in order by the task's
  thread while GDAL compresses with as many threads.

With ``--cache-before-ortho`` each (product, polarisation) is first calibrated and border-cut
into a file under ``{tmp}/S1`` (:func:`calibrate_to_cache`, named by :func:`s1tiling.plan.calibrated_path`),
reused by every tile and later run; the chunks are then read from it.
"""
from __future__ import annotations

import logging
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from . import progress
from .blocks import block_threads, block_windows, in_order
from .context import Context, OutputGrid
from .discovery import footprint_in_tile_crs
from .geometry.sar_model import SarModel
from .ortho import GeometryGrid
from .plan import CalibrationJob, TileJob, calibrated_path
from .radiometry import BorderCut, border_cut_params, calibrate, flatten, normlim, pixel_area, radiometric_lut
from .resampling import margin
from .s1.product import Product, as_window, open_product
from .writing import AtomicRasterWriter, cleanup_stale_temporaries, creation_options_for, is_complete, tile_metadata

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
#: Side (SAR lines and samples) of the calibrated chunks shared by the blocks.
CHUNK = 512
#: Memory for the calibrated chunks kept for later blocks (every slice and polarisation): a row
#: of blocks of a 10 m tile needs about 100 chunks per polarisation.
CHUNK_CACHE_BYTES = 256 * 2**20


def calibrate_to_cache(job: CalibrationJob, context: Context) -> str:
    """Calibrate and border-cut one polarisation of a product into ``job.path`` (kept if there)."""
    proc = context.processing
    product = open_product(job.product)
    path = Path(job.path)
    if is_complete(path):
        return str(path)
    pol = job.polarisation
    path.parent.mkdir(parents=True, exist_ok=True)
    cleanup_stale_temporaries(path.parent)
    cut = border_cut_params(product, pol, proc.override_azimuth_cut_threshold_to)
    lut = radiometric_lut(proc.calibration)
    lines, samples = product.shape
    _, options = creation_options_for("tiled")  # float32, whatever the tile images are written as
    with warnings.catch_warnings():  # SAR geometry: no map transform
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with AtomicRasterWriter(path, crs=None, transform=Affine.identity(), width=samples, height=lines,
                                dtype="float32", creation_options=options, cache=True) as out:
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


class _PerThread:
    """Datasets opened once per thread and block (a GDAL dataset serves one thread at a time, and
    closing it frees what GDAL's block cache holds of it), by key."""

    def __init__(self):
        self._local = threading.local()

    @contextmanager
    def scope(self) -> Iterator[None]:
        """Datasets opened in this thread until the end of the ``with`` block are then closed."""
        self._local.datasets = {}
        try:
            yield
        finally:
            datasets, self._local.datasets = self._local.datasets, {}
            for dataset in datasets.values():
                dataset.close()

    def get(self, key, opener: Callable[[], rasterio.DatasetReader]) -> rasterio.DatasetReader:
        mine = self._local.datasets
        if key not in mine:
            mine[key] = opener()
        return mine[key]


class _ChunkCache:
    """Values computed once per key by ``compute`` and kept, least recently used first out, up
    to ``capacity`` bytes; threads asking for a key being computed wait for it."""

    def __init__(self, compute: Callable[[tuple], np.ndarray], capacity: int):
        self._compute = compute
        self._capacity = capacity
        self._entries: OrderedDict[tuple, Future] = OrderedDict()
        self._sizes: dict[tuple, int] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple) -> np.ndarray:
        with self._lock:
            found = self._entries.get(key)
            owner = found is None
            if found is None:
                future: Future = Future()
                self._entries[key] = future
            else:
                future = found
                self._entries.move_to_end(key)
        if owner:
            try:
                value = self._compute(key)
            except BaseException as exc:
                with self._lock:
                    self._entries.pop(key, None)
                future.set_exception(exc)
                raise
            future.set_result(value)
            with self._lock:
                self._sizes[key] = value.nbytes
                self._evict()
        return future.result()

    def _evict(self) -> None:
        total = sum(self._sizes.values())
        for key in list(self._entries):
            if total <= self._capacity:
                break
            if key in self._sizes:  # computed: may go (its users hold their own reference)
                total -= self._sizes.pop(key)
                del self._entries[key]


@dataclass
class _Slice:
    """One slice of the pass as the blocks use it: the product, its sensor model, its footprint in
    the tile's CRS, and per polarisation either its border cut (calibrated here) or its
    calibrated file (``--cache-before-ortho``)."""

    product: Product
    model: SarModel
    footprint: BaseGeometry
    cuts: dict[str, BorderCut]
    cached: dict[str, str] = field(default_factory=dict)

    def calibrated_chunk(self, pol: str, window: tuple[int, int, int, int], datasets: _PerThread,
                         context: Context) -> np.ndarray:
        """Calibrated, border-cut values of ``pol`` over the SAR ``window`` (float32)."""
        out = np.empty(window[2:], dtype=np.float32)
        if pol in self.cached:
            path = self.cached[pol]
            datasets.get(path, lambda: _open_sar_raster(path)).read(1, window=as_window(window), out=out)
            return out
        proc = context.processing
        measurement = datasets.get((self.product.path, pol), lambda: self.product.open_measurement(pol))
        calibrate(self.product, pol, window, calibration=radiometric_lut(proc.calibration),
                  remove_thermal_noise=proc.remove_thermal_noise, lower_signal_value=proc.lower_signal_value,
                  border_cut=self.cuts[pol], out=out,
                  read=lambda part: measurement.read(1, window=as_window(part)))
        return out


def _slices(job: TileJob, context: Context, out: OutputGrid) -> list[_Slice]:
    proc = context.processing
    products = [open_product(p) for p in job.products]
    models = context.sar_models(products)
    slices = []
    for product, model in zip(products, models):
        footprint = footprint_in_tile_crs(product, out.tile).buffer(FOOTPRINT_MARGIN)
        if job.cached:
            cached = {pol: str(calibrated_path(context.settings, product.name, pol)) for pol in job.polarisations}
            cuts = {}
        else:
            cached = {}
            cuts = {pol: border_cut_params(product, pol, proc.override_azimuth_cut_threshold_to)
                    for pol in job.polarisations}
            for pol in job.polarisations:  # parsed here, once, not by the first blocks at the same time
                product.calibration(pol)
                if proc.remove_thermal_noise:
                    product.noise(pol)
        slices.append(_Slice(product, model, footprint, cuts, cached))
    return slices


class _Tile:
    """What every block of a job shares: the output grid, the slices, the calibrated chunks, the
    maps, the datasets of each thread."""

    def __init__(self, job: TileJob, context: Context, datasets: _PerThread):
        self.job = job
        self.context = context
        self.out = context.output_grid(job.tile)
        self.slices = _slices(job, context, self.out)
        self.datasets = datasets
        self.chunks = _ChunkCache(self._chunk, CHUNK_CACHE_BYTES)
        self.area = 0.0  # A_sigma of the gamma area map (m²)
        if job.gamma_area:
            with rasterio.open(job.gamma_area) as gamma_area:
                self.area = _gamma_area_pixel_area(gamma_area, [s.product for s in self.slices])

    def _chunk(self, key) -> np.ndarray:
        index, pol, row, col = key
        lines, samples = self.slices[index].product.shape
        window = (row * CHUNK, col * CHUNK, min(CHUNK, lines - row * CHUNK), min(CHUNK, samples - col * CHUNK))
        return self.slices[index].calibrated_chunk(pol, window, self.datasets, self.context)

    def read(self, index: int, pol: str, window: tuple[int, int, int, int], out: np.ndarray) -> None:
        """Calibrated values of slice ``index`` over its SAR ``window`` into ``out``, from the chunks."""
        l0, p0, height, width = window
        for row in range(l0 // CHUNK, (l0 + height - 1) // CHUNK + 1):
            for col in range(p0 // CHUNK, (p0 + width - 1) // CHUNK + 1):
                chunk = self.chunks.get((index, pol, row, col))
                top, left = row * CHUNK, col * CHUNK
                r0, r1 = max(l0, top), min(l0 + height, top + chunk.shape[0])
                c0, c1 = max(p0, left), min(p0 + width, left + chunk.shape[1])
                out[r0 - l0:r1 - l0, c0 - p0:c1 - p0] = chunk[r0 - top:r1 - top, c0 - left:c1 - left]

    def map_window(self, path: str, window: Window) -> np.ndarray:
        """A window of a map on the tile grid (sin(LIA), gamma area), NaN where no-data."""
        dataset = self.datasets.get(path, lambda: rasterio.open(path))
        return dataset.read(1, window=window, masked=True).filled(np.nan)

    def block(self, r0: int, c0: int, h: int, w: int) -> dict[str, np.ndarray] | None:
        """The values of every polarisation over one block (calibrated, merged, with the maps
        applied), or None when no slice touches it."""
        proc = self.context.processing
        with self.datasets.scope():
            blocks = _block(self, r0, c0, h, w)
            if blocks is None:
                return None
            window = Window(c0, r0, w, h)
            if self.job.sin_lia:
                factor = self.map_window(self.job.sin_lia, window)
                blocks = {pol: normlim(v, factor, proc.lower_signal_value) for pol, v in blocks.items()}
            if self.job.gamma_area:
                ratio = self.map_window(self.job.gamma_area, window)
                blocks = {pol: flatten(v, ratio, self.area, proc.lower_signal_value, proc.min_gamma_area,
                                       proc.calibration_factor) for pol, v in blocks.items()}
            if self.job.layover_shadow:  # layover or shadow (bits 1, 2; 255: not seen) -> no-data
                path = self.job.layover_shadow
                bits = self.datasets.get(path, lambda: rasterio.open(path)).read(1, window=window)
                blocks = {pol: np.where((bits & 3) != 0, np.float32(0), v) for pol, v in blocks.items()}
        return blocks


def produce(job: TileJob, context: Context) -> list[str]:
    """Make the images of ``job``; return the paths written."""
    proc = context.processing
    resolution = proc.output_spatial_resolution
    out = context.output_grid(job.tile)
    method = proc.orthorectification_interpolation_method
    threads = context.threads
    dtype, options = creation_options_for("tiled", proc.creation_options)
    if threads > 1:  # compress with the task's threads (same pixels, less waiting)
        options.setdefault("NUM_THREADS", str(threads))
    block_rows = max(16, int(BLOCK_HEIGHT // resolution))
    block_cols = max(16, int(BLOCK_WIDTH // resolution))
    context.dem.preload(out.crs, out.transform, out.shape)

    with ExitStack() as stack:
        tile = _Tile(job, context, _PerThread())
        products = [s.product for s in tile.slices]
        dem_tags = context.dem_tags(job.tile)
        writers = {}
        for image in job.images:
            tags = tile_metadata(
                image.product, input_products=[p.name for p in products], absolute_orbit=products[0].absolute_orbit,
                noise_removed=proc.remove_thermal_noise, dem_info=context.settings.paths.dem_info,
                lower_signal_value=proc.lower_signal_value,
                interpolator=method, spatial_resolution=resolution, engine="native",
                orbit_source=tile.slices[0].model.orbit_source,
                extra={**context.settings.metadata, **dem_tags,
                       **({"LIA_FILE": Path(job.sin_lia).name} if job.sin_lia else {}),
                       **({"GAMMA_AREA_FILE": Path(job.gamma_area).name} if job.gamma_area else {}),
                       **({"LAYOVER_SHADOW_FILE": Path(job.layover_shadow).name} if job.layover_shadow else {})},
            )
            Path(image.path).parent.mkdir(parents=True, exist_ok=True)
            cleanup_stale_temporaries(Path(image.path).parent)  # what killed runs left
            writers[image.polarisation] = stack.enter_context(AtomicRasterWriter(
                image.path, crs=out.crs, transform=out.transform, width=out.cols, height=out.rows, dtype=dtype,
                creation_options=options, tags=tags, replaces=image.replaces,
                output_format=proc.output_format))
        windows = block_windows(out.rows, out.cols, block_rows, block_cols)
        computed = in_order(lambda b: tile.block(*b), windows, block_threads(threads))
        stack.callback(computed.close)  # on an error: the threads stop before the writers abort
        for (r0, c0, h, w), blocks in zip(windows, computed):
            progress.report(r0 * out.cols + (c0 + w) * h, out.rows * out.cols)
            if blocks is not None:
                for pol, values in blocks.items():
                    writers[pol].write(values, Window(c0, r0, w, h))
    written = [image.path for image in job.images]
    logger.info("%s: wrote %s", job.tile, ", ".join(Path(p).name for p in written))
    return written


def _gamma_area_pixel_area(gamma_area: rasterio.DatasetReader, products: list[Product]) -> float:
    """A_sigma of a gamma area map (m²): its ``GAMMA_AREA_PIXEL_AREA`` tag (maps made here), else the
    pixel area of the products (a map made by S1Tiling holds the gamma area of their pixels)."""
    try:
        return float(gamma_area.tags()["GAMMA_AREA_PIXEL_AREA"])
    except (KeyError, ValueError):
        return pixel_area(products[0])


def _block(tile: _Tile, r0: int, c0: int, h: int, w: int) -> dict[str, np.ndarray] | None:
    """Merged values of every polarisation over one block, or None when no slice touches it."""
    context, out, pols = tile.context, tile.out, tile.job.polarisations
    proc = context.processing
    transform = out.transform
    x0, y0 = transform @ (c0, r0)
    x1, y1 = transform @ (c0 + w, r0 + h)
    area = box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
    active = [(n, s) for n, s in enumerate(tile.slices) if s.footprint.intersects(area)]
    if not active:
        return None
    block_transform = transform @ Affine.translation(c0, r0)
    dem = context.dem.heights_on_grid(out.crs, block_transform, (h, w))
    res = transform.a
    centres = (area.bounds[0] + res / 2, area.bounds[1] + res / 2, area.bounds[2] - res / 2, area.bounds[3] - res / 2)
    method = proc.orthorectification_interpolation_method
    heights = (float(np.min(dem)), float(np.max(dem)))
    step = max(proc.orthorectification_gridspacing, MIN_NODE_PIXELS * res)
    merged = np.zeros((len(pols), h, w), dtype=np.float32)  # one band per polarisation
    for n, (index, s) in enumerate(active):
        if n and merged.all():  # a later slice only fills the pixels earlier ones left at 0
            break
        geometry = GeometryGrid.for_block(s.model, context.geoid, out.crs, centres, step, heights)
        window = _sar_window(geometry, s.product.shape, margin(method))
        if window is None:
            continue
        values = np.empty((len(pols), window[2], window[3]), dtype=np.float32)
        for k, pol in enumerate(pols):
            tile.read(index, pol, window, values[k])
        geometry.sample(transform, r0, c0, dem, values, window[0], window[1], s.product.shape, method,
                        proc.lower_signal_value, merged)
    return {pol: merged[k] for k, pol in enumerate(pols)}


def _sar_window(geometry: GeometryGrid, image_shape, margin: int) -> tuple[int, int, int, int] | None:
    """The SAR window (row_off, col_off, height, width) holding every sample the block's pixels
    need (its nodes' positions, ``margin`` + 1 samples around), within the image; None if empty."""
    bounds = geometry.sar_bounds()
    if bounds is None:
        return None
    lo_l, hi_l, lo_p, hi_p = bounds
    lo_l, lo_p = max(int(np.floor(lo_l)) - margin - 1, 0), max(int(np.floor(lo_p)) - margin - 1, 0)
    hi_l = min(int(np.ceil(hi_l)) + margin + 2, image_shape[0])
    hi_p = min(int(np.ceil(hi_p)) + margin + 2, image_shape[1])
    if hi_l <= lo_l or hi_p <= lo_p:
        return None
    return lo_l, lo_p, hi_l - lo_l, hi_p - lo_p
