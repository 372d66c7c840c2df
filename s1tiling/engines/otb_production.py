"""Producing the S2 tile images of one pass with Orfeo ToolBox applications (``engine = otb``).

The OTB counterpart of :func:`s1tiling.production.produce`: same :class:`~s1tiling.plan.TileJob`,
same output paths, grid and metadata (``ENGINE=otb``). For each polarisation and each slice of
the pass (in time order)::

    SARCalibration (+ BandMath floor) -> ResetMargin (border cut) -> OrthoRectification

then ``Synthetize`` of the slices (first non-zero pixel). Only the part of a slice that can fall
in the tile is calibrated (``region`` of :func:`~s1tiling.engines.otb.calibrate`, found with
the product's own sensor model and the DEM's height range), so that a slice that barely touches
the tile costs little. OrthoRectification gets a temporary DEM folder holding links to (or
copies of, ``cache_dem_by``) only the DEM tiles under the tile, the geoid of
:func:`~s1tiling.geometry.geoid.find_geoid`, the grid spacing and the interpolator of the request.

The merged image is read block by block (:meth:`~s1tiling.engines.otb.OtbApp.open`) into the
final GeoTIFF, written by :class:`~s1tiling.writing.AtomicRasterWriter` with the chain's creation
options and tags (OTB would copy hundreds of SAR metadata items into its own outputs and write
them uncompressed). With OTB's Python module the whole chain runs in memory, pulled by those
block reads: no intermediate file. With ``otbcli_*`` each application writes its output to a
temporary file read by the next one. Like the native engine, a valid pixel that
interpolation pulled below ``lower_signal_value`` (bicubic undershoot) is raised to it there.
Every intermediate file lives in a unique folder under ``[Paths] tmp``, removed at the end.
"""
from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import rasterio

from ..context import Context
from ..geometry.sar_model import SarModel
from ..masks import mask_tags
from ..ortho import GeometryGrid, sar_window
from ..plan import TileJob
from ..radiometry import BorderCut, border_cut_params
from ..resampling import margin
from ..s1.product import open_product
from ..writing import AtomicRasterWriter, creation_options_for, disk_full_error, tile_metadata
from . import otb

if TYPE_CHECKING:
    from ..config import Settings
    from ..geometry.geoid import Geoid
    from ..grid import S2Tile
    from ..s1.product import Product

logger = logging.getLogger(__name__)

#: Nodes per tile side of the coarse geometry that bounds the SAR region of a slice.
REGION_NODES = 24
#: Pixel size (m) of the DEM sample that gives the height range of the tile.
REGION_DEM_STEP = 600.0
#: Heights (m) added below and above that range: the coarse sample misses peaks and pits.
REGION_HEIGHT_MARGIN = 300.0
#: SAR samples added around the region.
REGION_MARGIN = 32
#: Side (pixels) of the square blocks copied at once from OTB's result into the final file.
COPY_BLOCK = 1024


def produce(job: TileJob, context: Context) -> list[str]:
    """Make the images of ``job`` with OTB; return the paths written."""
    otb.require_otb()
    settings = context.settings
    proc = settings.processing
    if proc.calibration not in otb.CALIBRATIONS:
        raise NotImplementedError(f"calibration {proc.calibration!r} is not supported by the OTB engine")
    output = context.output_grid(job.tile)
    tile, transform, rows, cols = output.tile, output.transform, output.rows, output.cols
    resolution = proc.output_spatial_resolution
    ortho_grid = otb.OrthoGrid(tile.epsg, transform.c, transform.f, cols, rows, resolution)
    products = [open_product(p) for p in job.products]  # in time order: Synthetize keeps the first
    geoid_file = context.geoid_file
    dtype, creation_options = creation_options_for("tiled", proc.creation_options)
    Path(settings.paths.tmp).mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix=f"otb-{job.tile}-", dir=settings.paths.tmp))
    try:
        dem_dir = _dem_folder(context, tile, run_dir / "dem")
        options = otb.OtbOptions(threads=proc.nb_otb_threads, ram_mb=proc.ram_per_process, tmp_dir=run_dir)
        geoid, heights = context.geoid, _height_range(context, tile)
        slices = [_Slice(p, run_dir / "safe", tile, geoid, heights, settings) for p in products]
        written = []
        for image in job.images:
            pol, path = image.polarisation, image.path
            orthos = [otb.orthorectify(chain, ortho_grid, dem_dir, geoid_file,
                                       proc.orthorectification_gridspacing,
                                       proc.orthorectification_interpolation_method)
                      for chain in (s.calibrated(pol, settings) for s in slices) if chain is not None]
            tags = tile_metadata(
                image.product, input_products=[p.name for p in products], absolute_orbit=products[0].absolute_orbit,
                noise_removed=proc.remove_thermal_noise, dem_info=settings.paths.dem_info,
                lower_signal_value=proc.lower_signal_value,
                interpolator=proc.orthorectification_interpolation_method, spatial_resolution=resolution,
                engine="otb", orbit_source="annotation", extra=settings.metadata,
            )
            with contextlib.ExitStack() as stack:
                result = None
                if orthos:  # else no slice reaches the tile: an empty image, as the native engine
                    merged = orthos[0] if len(orthos) == 1 else otb.synthetize(orthos)
                    result = stack.enter_context(merged.open(options))
                with AtomicRasterWriter(path, crs=tile.crs, transform=transform, width=cols, height=rows,
                                        dtype=dtype, creation_options=creation_options, tags=tags,
                                        replaces=image.replaces, output_format=proc.output_format) as out:
                    if result is not None:
                        _copy(result, out, transform, proc.lower_signal_value)
            written.append(str(path))
    except (OSError, otb.OtbError) as exc:  # OTB's own files lie under tmp: a full disk there is exit 70
        full = disk_full_error(exc, run_dir, f"OTB files of tile {job.tile} in {run_dir}", cache=True)
        if full is None:
            raise
        raise full from exc
    finally:
        _remove_intermediates(run_dir, settings)
    logger.info("%s: wrote %s (OTB)", job.tile, ", ".join(Path(p).name for p in written))
    return written


class _Slice:
    """One product of the pass as OTB reads it, with the SAR region that can fall in the tile."""

    def __init__(self, product: Product, safe_dir: Path, tile: S2Tile, geoid: Geoid, heights: tuple[float, float],
                 settings: Settings):
        self.product = product
        method = settings.processing.orthorectification_interpolation_method
        self.region = _sar_region(product, tile, geoid, heights, REGION_MARGIN + margin(method))
        self.safe = otb.prepare_safe_for_otb(product.path, safe_dir) if self.region is not None else None
        logger.debug("%s: SAR region %s for tile %s", product.name, self.region, tile.name)

    def calibrated(self, pol: str, settings: Settings) -> otb.OtbApp | None:
        """The calibration and border-cut chain of ``pol`` over the region, or None when the
        region is empty or cut away entirely."""
        if self.region is None:
            return None
        proc = settings.processing
        cut = border_cut_params(self.product, pol, proc.override_azimuth_cut_threshold_to)
        margins = _margins_in_region(cut, self.region)
        if margins is None:
            return None
        chain = otb.calibrate(self.safe / self.product.relative_path("measurement", pol),  # type: ignore[operator]
                              proc.calibration,  # (self.safe is set whenever self.region is)
                              proc.remove_thermal_noise, proc.lower_signal_value, region=self.region)
        return otb.reset_margin(chain, *margins) if any(margins) else chain


def _height_range(context: Context, tile) -> tuple[float, float]:
    """Lowest and highest DEM heights of the tile (coarse sample), widened by REGION_HEIGHT_MARGIN."""
    coarse = tile.transform(REGION_DEM_STEP)
    heights = context.dem.heights_on_grid(tile.crs, coarse, tile.shape(REGION_DEM_STEP))
    return float(np.nanmin(heights)) - REGION_HEIGHT_MARGIN, float(np.nanmax(heights)) + REGION_HEIGHT_MARGIN


def _sar_region(product, tile, geoid, heights, extra: int):
    """``(row_off, col_off, height, width)`` of the product's samples that may map into the tile,
    or None when none do: a coarse grid of the tile geocoded at the ``heights`` (lowest, highest)
    with the annotation's orbit, as OTB uses it, and ``extra`` samples around."""
    model = SarModel.from_annotation(product.annotation(product.polarisations[0]))
    xmin, _, xmax, _ = tile.bounds
    geometry = GeometryGrid.compute(model, geoid, tile.crs, tile.bounds, (xmax - xmin) / REGION_NODES, heights)
    if not np.isfinite(geometry.lines).all() or not np.isfinite(geometry.pixels).all():
        return (0, 0, *product.shape)  # some nodes could not be geocoded: take it all
    return sar_window(geometry.lines, geometry.pixels, product.shape, extra)


def _margins_in_region(cut: BorderCut, region):
    """ResetMargin's (top, bottom, left, right) for the border cut of the whole image seen in
    ``region``, or None when the region lies entirely in the cut."""
    r0, c0, h, w = region
    rows, cols = cut.valid
    top, bottom = max(rows.start - r0, 0), max(r0 + h - rows.stop, 0)
    left, right = max(cols.start - c0, 0), max(c0 + w - cols.stop, 0)
    if top + bottom >= h or left + right >= w:
        return None
    return top, bottom, left, right


def _dem_folder(context: Context, tile, folder: Path) -> Path:
    """A folder holding only the DEM tiles under ``tile``: links, or copies with ``cache_dem_by = copy``."""
    catalog = context.dem
    folder.mkdir(parents=True)
    for tid in catalog.tiles_for_region(tile.footprint):
        source = catalog.path(tid)
        if not source.is_file():  # the planner already stopped runs whose DEM is missing
            continue
        target = folder / source.name
        if context.processing.cache_dem_by == "copy":
            shutil.copyfile(source, target)
        else:
            target.symlink_to(source.resolve())
    return folder


def border_mask_file(source: str | Path, out: str | Path, creation_options: tuple[str, Mapping[str, str]],
                     context: Context) -> Path:
    """Write the border mask of the tile image ``source`` to ``out`` with OTB (BandMath, then
    BinaryMorphologicalOperation); ``creation_options`` is the ``(dtype, options)`` of masks.
    The mask keeps the image's metadata with ``IMAGE_TYPE=MASK``, as the native masks do."""
    otb.require_otb()
    proc = context.processing
    dtype, options = creation_options
    Path(context.settings.paths.tmp).mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="otb-mask-", dir=context.settings.paths.tmp))
    try:
        otb_options = otb.OtbOptions(threads=proc.nb_otb_threads, ram_mb=proc.ram_per_process, tmp_dir=run_dir)
        with otb.border_mask(source).open(otb_options) as result, rasterio.open(source) as src:
            with AtomicRasterWriter(out, crs=src.crs, transform=src.transform, width=src.width,
                                    height=src.height, dtype=dtype, nodata=None, creation_options=options,
                                    tags=mask_tags(src.tags()), output_format=proc.output_format,
                                    overview_resampling="NEAREST") as writer:
                _copy(result, writer, src.transform)
    finally:
        _remove_intermediates(run_dir, context.settings)
    return Path(out)


def _remove_intermediates(run_dir: Path, settings) -> None:
    """The OTB applications' intermediate files go, unless kept for investigation (``--debug-caches``)."""
    if settings.processing.debug_caches:
        logger.info("intermediate files kept in %s (--debug-caches)", run_dir)
    else:
        shutil.rmtree(run_dir, ignore_errors=True)


def _copy(result: otb.OtbResult, out: AtomicRasterWriter, transform, floor: float | None = None) -> None:
    """Copy OTB's result (:class:`~s1tiling.engines.otb.OtbResult`) into ``out`` by square
    blocks; with ``floor``, valid values below it are raised to it."""
    if (result.height, result.width) != out.shape or not result.transform.almost_equals(transform, 1e-6):
        raise otb.OtbError(f"OTB computed the grid {result.transform} {result.width}x{result.height}, "
                           f"expected {transform} {out.shape[1]}x{out.shape[0]}")
    for window, values in result.blocks(COPY_BLOCK):
        if floor is not None:
            np.copyto(values, np.asarray(floor, values.dtype), where=(values != 0) & (values < floor))
        out.write(values, window)
