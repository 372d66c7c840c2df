"""Quicklooks: small 8-bit JPEG previews of tile products (``[Quicklook]`` section).

The tile is averaged down to ``ratio`` percent of its size (GDAL average
resampling, no-data excluded), then mapped to grey levels 1..255, 0 kept for no-data:

- with a ``scale`` (S1Tiling's ``scale_vv``, ``scale_vh``... keys, when set): linearly,
  ``round(value / scale * 255)`` clipped, so ``scale`` is the backscatter shown white;
- without (the default): in decibels, from the image's own 2nd percentile (grey level 1) to
  its 98th (255), the usual way to look at radar backscatter, which spans decades: a linear
  scale shows fields and forests nearly black beside a few bright towns.

The JPEG carries its georeferencing and metadata in a GDAL ``.aux.xml`` side-car: the tile's
tags plus ``IMAGE_TYPE=QUICKLOOK``, ``QUICKLOOK_SCALE`` (the backscatter shown white, or
``dB`` for the default stretch, then with ``QUICKLOOK_DB_RANGE``: the dB values shown as grey
levels 1 and 255), ``QUICKLOOK_PIXEL_RANGE`` (``1 255``: the grey levels of valid pixels, 0 being
no-data) and ``QUICKLOOK_RATIO`` (percent of the tile's size).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.enums import Resampling
from rasterio.io import MemoryFile
from rasterio.transform import Affine

from .writing import COMPLETE_TAG, atomic_output, check_raster, gdal_errors


def quicklook_shape(height: int, width: int, ratio_percent: float) -> tuple[int, int]:
    """Size of the quicklook of a ``height`` x ``width`` image."""
    return (max(1, int(round(height * ratio_percent / 100))),
            max(1, int(round(width * ratio_percent / 100))))


def to_grey_levels(values: np.ndarray, scale: float) -> np.ndarray:
    """Linear backscatter to uint8: 0 for no-data (0, NaN), else 1..255 with ``scale`` -> 255."""
    valid = np.isfinite(values) & (values != 0)
    levels = np.clip(np.rint(np.where(valid, values, 0) / scale * 255), 1, 255)
    return np.where(valid, levels, 0).astype(np.uint8)


#: Percentiles of the valid pixels shown as grey levels 1 and 255 by the default (dB) stretch.
DB_PERCENTILES = (2.0, 98.0)


def decibel_range(values: np.ndarray) -> tuple[float, float]:
    """dB values of the default stretch: :data:`DB_PERCENTILES` of the valid (> 0, finite) values."""
    valid = values[np.isfinite(values) & (values > 0)]
    if valid.size == 0:
        return -25.0, 0.0
    low, high = (float(v) for v in 10 * np.log10(np.percentile(valid, DB_PERCENTILES)))
    return low, max(high, low + 1.0)


def to_grey_levels_db(values: np.ndarray, low_db: float, high_db: float) -> np.ndarray:
    """Linear backscatter to uint8 on a dB scale: 0 for no-data (0, NaN), else 1..255 with
    ``low_db`` -> 1 and ``high_db`` -> 255 (values <= 0 shown as 1)."""
    valid = np.isfinite(values) & (values != 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        db = 10 * np.log10(np.where(valid & (values > 0), values, 10 ** (low_db / 10)))
    levels = np.clip(np.rint(1 + (db - low_db) / (high_db - low_db) * 254), 1, 255)
    return np.where(valid, levels, 0).astype(np.uint8)


def write_quicklook(tile_path: str | os.PathLike, out_jpg: str | os.PathLike,
                    ratio_percent: float = 5, scale: float | None = None, quality: int = 90) -> Path:
    """Write the JPEG quicklook of ``tile_path`` to ``out_jpg`` (atomically, verified); ``scale``:
    the backscatter shown white (linear), or None for the default dB stretch."""
    if not ratio_percent > 0 or (scale is not None and not scale > 0):
        raise ValueError(f"quicklook ratio and scale must be > 0 (got {ratio_percent}, {scale})")
    with rasterio.open(tile_path) as src:
        height, width = quicklook_shape(src.height, src.width, ratio_percent)
        values = src.read(1, out_shape=(height, width), resampling=Resampling.average)
        t, sx, sy = src.transform, src.width / width, src.height / height
        transform = Affine(t.a * sx, t.b * sy, t.c, t.d * sx, t.e * sy, t.f)
        crs = src.crs
        tags = {k: v for k, v in src.tags().items() if k != "AREA_OR_POINT"}
    tags.update(IMAGE_TYPE="QUICKLOOK", QUICKLOOK_PIXEL_RANGE="1 255", QUICKLOOK_RATIO=f"{ratio_percent:g}")
    if scale is None:
        low, high = decibel_range(values)
        levels = to_grey_levels_db(values, low, high)
        tags.update(QUICKLOOK_SCALE="dB", QUICKLOOK_DB_RANGE=f"{low:.2f} {high:.2f}")
    else:
        levels = to_grey_levels(values, scale)
        tags.update(QUICKLOOK_SCALE=f"{scale:g}")
    with MemoryFile() as memory, memory.open(driver="GTiff", width=width, height=height, count=1,
                                             dtype="uint8", crs=crs, transform=transform) as image:
        image.write(levels, 1)
        image.update_tags(**{**tags, **dict([COMPLETE_TAG])})  # the tile's tags say complete already
        reported: list[str] = []  # GDAL's errors while the JPEG is written

        def verify(tmp):
            if reported:
                return f"GDAL reported errors while writing it: {'; '.join(reported[:5])}"
            return check_raster(tmp, width=width, height=height, count=1, dtype="uint8", complete_tag=True)

        with atomic_output(out_jpg, verify=verify) as tmp:
            with gdal_errors() as errors:
                rasterio.shutil.copy(image, tmp, driver="JPEG", QUALITY=str(quality))
            reported += errors
    return Path(out_jpg)
