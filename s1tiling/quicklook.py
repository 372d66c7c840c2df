"""Quicklooks: small 8-bit JPEG previews of tile products (``[Quicklook]`` section).

The tile is averaged down to ``ratio`` percent of its size (GDAL average
resampling, no-data excluded), then linear values map to grey levels as
``round(value / scale * 255)`` clipped to 1..255, with 0 kept for no-data. So
``scale`` is the backscatter shown white (``scale_vv`` 0.5, ``scale_vh`` 0.05...).
The JPEG carries its georeferencing and metadata in a GDAL ``.aux.xml`` side-car: the tile's
tags plus ``IMAGE_TYPE=QUICKLOOK``, ``QUICKLOOK_SCALE`` (the backscatter shown white),
``QUICKLOOK_PIXEL_RANGE`` (``1 255``: the grey levels of valid pixels, 0 being no-data) and
``QUICKLOOK_RATIO`` (percent of the tile's size).
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


def write_quicklook(tile_path: str | os.PathLike, out_jpg: str | os.PathLike,
                    ratio_percent: float = 5, scale: float = 0.5, quality: int = 90) -> Path:
    """Write the JPEG quicklook of ``tile_path`` to ``out_jpg`` (atomically, verified)."""
    if not ratio_percent > 0 or not scale > 0:
        raise ValueError(f"quicklook ratio and scale must be > 0 (got {ratio_percent}, {scale})")
    with rasterio.open(tile_path) as src:
        height, width = quicklook_shape(src.height, src.width, ratio_percent)
        values = src.read(1, out_shape=(height, width), resampling=Resampling.average)
        t, sx, sy = src.transform, src.width / width, src.height / height
        transform = Affine(t.a * sx, t.b * sy, t.c, t.d * sx, t.e * sy, t.f)
        crs = src.crs
        tags = {k: v for k, v in src.tags().items() if k != "AREA_OR_POINT"}
    tags.update(IMAGE_TYPE="QUICKLOOK", QUICKLOOK_SCALE=f"{scale:g}", QUICKLOOK_PIXEL_RANGE="1 255",
                QUICKLOOK_RATIO=f"{ratio_percent:g}")
    with MemoryFile() as memory, memory.open(driver="GTiff", width=width, height=height, count=1,
                                             dtype="uint8", crs=crs, transform=transform) as image:
        image.write(to_grey_levels(values, scale), 1)
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
