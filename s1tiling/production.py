"""Producing the S2 tile images of one pass: orthorectify its slices block by block, merge, write.

One :class:`~s1tiling.plan.TileJob` makes one GeoTIFF per polarisation. The tile is processed in blocks
(``BLOCK_HEIGHT`` x ``BLOCK_WIDTH`` metres); for each block and each slice of the pass the
geometry (a :class:`~s1tiling.ortho.GeometryGrid` and the SAR position of every pixel) is
computed once and used for every polarisation; only the SAR window under the block is read and
calibrated. Slices are merged by keeping the first non-zero value (slices in time order), so two
consecutive slices of a datatake give one seamless image. NORMLIM tiles are made with the beta0
LUT and multiplied by the sin(LIA) map of their tile and orbit (:mod:`s1tiling.incidence`,
:func:`s1tiling.radiometry.normlim`); gamma0 RTC tiles with the gamma LUT, divided by the gamma
area map of their tile and orbit (:mod:`s1tiling.terrain_flattening`, :func:`s1tiling.radiometry.flatten`).

With ``--cache-before-ortho`` each (product, polarisation) is first calibrated and border-cut
into a file under ``{tmp}/S1`` (:func:`calibrate_to_cache`, named by :func:`s1tiling.plan.calibrated_path`),
reused by every tile and later run; the blocks then read their SAR windows from it.
"""
from __future__ import annotations

import logging
import warnings
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from .context import Context, OutputGrid
from .discovery import footprint_in_tile_crs
from .geometry.sar_model import SarModel
from .ortho import GeometryGrid, sar_window
from .plan import CalibrationJob, TileJob, calibrated_path
from .radiometry import BorderCut, border_cut_params, calibrate, flatten, normlim, pixel_area, radiometric_lut
from .resampling import margin, sample
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


@dataclass
class _Slice:
    """One slice of the pass as the blocks use it: the product, its sensor model, its footprint in
    the tile's CRS, and per polarisation either its border cut (calibrated here) or its open
    calibrated file (``--cache-before-ortho``)."""

    product: Product
    model: SarModel
    footprint: BaseGeometry
    cuts: dict[str, BorderCut]
    cached: dict[str, rasterio.DatasetReader]

    def read(self, pol: str, window: tuple[int, int, int, int], out: np.ndarray, context: Context) -> None:
        """Calibrated, border-cut values of ``pol`` over the SAR ``window`` into ``out``."""
        if pol in self.cached:
            self.cached[pol].read(1, window=as_window(window), out=out)
            return
        proc = context.processing
        calibrate(self.product, pol, window, calibration=radiometric_lut(proc.calibration),
                  remove_thermal_noise=proc.remove_thermal_noise, lower_signal_value=proc.lower_signal_value,
                  border_cut=self.cuts[pol], out=out)


def _slices(job: TileJob, context: Context, out: OutputGrid, stack: ExitStack) -> list[_Slice]:
    proc = context.processing
    products = [open_product(p) for p in job.products]
    models = context.sar_models(products)
    slices = []
    for product, model in zip(products, models):
        footprint = footprint_in_tile_crs(product, out.tile).buffer(FOOTPRINT_MARGIN)
        if job.cached:
            cached = {pol: stack.enter_context(_open_sar_raster(calibrated_path(context.settings, product.name, pol)))
                      for pol in job.polarisations}
            cuts = {}
        else:
            cached = {}
            cuts = {pol: border_cut_params(product, pol, proc.override_azimuth_cut_threshold_to)
                    for pol in job.polarisations}
        slices.append(_Slice(product, model, footprint, cuts, cached))
    return slices


def produce(job: TileJob, context: Context) -> list[str]:
    """Make the images of ``job``; return the paths written."""
    proc = context.processing
    resolution = proc.output_spatial_resolution
    out = context.output_grid(job.tile)
    method = proc.orthorectification_interpolation_method
    dtype, options = creation_options_for("tiled", proc.creation_options)
    if proc.nb_otb_threads > 1:  # compress with the task's threads (same pixels, less waiting)
        options.setdefault("NUM_THREADS", str(proc.nb_otb_threads))
    block_rows = max(16, int(BLOCK_HEIGHT // resolution))
    block_cols = max(16, int(BLOCK_WIDTH // resolution))

    with ExitStack() as stack:
        slices = _slices(job, context, out, stack)
        products = [s.product for s in slices]
        dem_tags = context.dem_tags(job.tile)
        writers = {}
        for image in job.images:
            tags = tile_metadata(
                image.product, input_products=[p.name for p in products], absolute_orbit=products[0].absolute_orbit,
                noise_removed=proc.remove_thermal_noise, dem_info=context.settings.paths.dem_info,
                lower_signal_value=proc.lower_signal_value,
                interpolator=method, spatial_resolution=resolution, engine="native",
                orbit_source=slices[0].model.orbit_source,
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
        sin_lia = stack.enter_context(rasterio.open(job.sin_lia)) if job.sin_lia else None
        gamma_area = stack.enter_context(rasterio.open(job.gamma_area)) if job.gamma_area else None
        area = _gamma_area_pixel_area(gamma_area, products) if gamma_area is not None else 0.0
        hidden = stack.enter_context(rasterio.open(job.layover_shadow)) if job.layover_shadow else None
        for r0 in range(0, out.rows, block_rows):
            for c0 in range(0, out.cols, block_cols):
                h, w = min(block_rows, out.rows - r0), min(block_cols, out.cols - c0)
                blocks = _block(slices, job.polarisations, out, r0, c0, h, w, context)
                if blocks is None:
                    continue
                window = Window(c0, r0, w, h)
                if sin_lia is not None:
                    factor = sin_lia.read(1, window=window, masked=True).filled(np.nan)
                    blocks = {pol: normlim(v, factor, proc.lower_signal_value) for pol, v in blocks.items()}
                if gamma_area is not None:
                    ratio = gamma_area.read(1, window=window, masked=True).filled(np.nan)
                    blocks = {pol: flatten(v, ratio, area, proc.lower_signal_value, proc.min_gamma_area,
                                           proc.calibration_factor) for pol, v in blocks.items()}
                if hidden is not None:  # layover or shadow (bits 1, 2; 255: not seen) -> no-data
                    bits = hidden.read(1, window=window)
                    blocks = {pol: np.where((bits & 3) != 0, np.float32(0), v) for pol, v in blocks.items()}
                for pol, values in blocks.items():
                    writers[pol].write(values, window)
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


def _block(slices: list[_Slice], pols: tuple[str, ...], out: OutputGrid, r0: int, c0: int, h: int, w: int,
           context: Context) -> dict[str, np.ndarray] | None:
    """Merged values of every polarisation over one block, or None when no slice touches it."""
    proc = context.processing
    transform = out.transform
    x0, y0 = transform @ (c0, r0)
    x1, y1 = transform @ (c0 + w, r0 + h)
    area = box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
    active = [s for s in slices if s.footprint.intersects(area)]
    if not active:
        return None
    block_transform = transform @ Affine.translation(c0, r0)
    dem = context.dem.heights_on_grid(out.crs, block_transform, (h, w))
    res = transform.a
    centres = (area.bounds[0] + res / 2, area.bounds[1] + res / 2, area.bounds[2] - res / 2, area.bounds[3] - res / 2)
    method = proc.orthorectification_interpolation_method
    merged = np.zeros((len(pols), h, w), dtype=np.float32)  # one band per polarisation
    for n, s in enumerate(active):
        needed = None
        if n:  # a later slice only fills the pixels earlier ones left at 0
            needed = (merged == 0).any(axis=0)
            if not needed.any():
                break
        step = max(proc.orthorectification_gridspacing, MIN_NODE_PIXELS * res)
        geometry = GeometryGrid.compute(s.model, context.geoid, out.crs, centres, step,
                                        (float(np.min(dem)), float(np.max(dem))))
        lines, pixels = geometry.sar_positions(transform, r0, c0, dem)
        if needed is not None:
            lines[~needed] = np.nan  # not sampled, and outside the SAR window
        window = sar_window(lines, pixels, s.product.shape, margin(method))
        if window is None:
            continue
        values = np.empty((len(pols), window[2], window[3]), dtype=np.float32)
        for k, pol in enumerate(pols):
            s.read(pol, window, values[k], context)
        sample(values, window[0], window[1], s.product.shape, lines, pixels, method,
               floor=proc.lower_signal_value, out=merged)
    return {pol: merged[k] for k, pol in enumerate(pols)}
