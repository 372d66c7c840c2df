"""Border masks of tile products, as S1Tiling makes them.

S1Tiling runs ``BandMath im1b1==0?0:1`` then OTB ``BinaryMorphologicalOperation``
with ``structype=ball xradius=5 yradius=5 filter=opening``. ITK's ball of radius
``r`` holds the offsets with ``dx² + dy² <= (r + 0.5)²`` (an 11x11 disc for r=5).
ITK's binary erosion sees outside the image as foreground and its dilation sees
it as background, so the image edges do not erode the mask; we do the same.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from .writing import AtomicRasterWriter, creation_options_for, derived_tags, sentinel_short

BALL_RADIUS = 5


def ball_rows(radius: int) -> list[tuple[int, int]]:
    """ITK ball structuring element as (row offset, half width) pairs."""
    limit = (radius + 0.5) ** 2
    return [(dy, int(np.floor(np.sqrt(limit - dy * dy)))) for dy in range(-radius, radius + 1)]


def _ball_filter(mask: np.ndarray, radius: int, erode: bool) -> np.ndarray:
    """Binary erosion (``erode``) or dilation of a bool image by the ITK ball.

    Outside the array counts as foreground for erosion, background for dilation.
    Horizontal runs of the disc are tested with row-wise prefix sums.
    """
    height, width = mask.shape
    padded = np.pad(mask, radius, constant_values=erode)
    prefix = np.zeros((padded.shape[0], padded.shape[1] + 1), dtype=np.int32)
    np.cumsum(padded, axis=1, out=prefix[:, 1:])
    out = np.full(mask.shape, erode, dtype=bool)
    for dy, half in ball_rows(radius):
        rows = prefix[radius + dy: radius + dy + height]
        count = (rows[:, radius + half + 1: radius + half + 1 + width]
                 - rows[:, radius - half: radius - half + width])
        if erode:
            out &= count == 2 * half + 1
        else:
            out |= count > 0
    return out


def binary_opening(mask: np.ndarray, radius: int = BALL_RADIUS) -> np.ndarray:
    """Binary opening (erosion then dilation) by the ITK ball of ``radius``."""
    return _ball_filter(_ball_filter(mask.astype(bool), radius, erode=True), radius, erode=False)


def border_mask(values: np.ndarray, radius: int = BALL_RADIUS) -> np.ndarray:
    """uint8 mask of a tile product: 1 on data (non-zero), 0 on no-data, smoothed by
    an opening that removes data specks narrower than the ball."""
    return binary_opening(values != 0, radius).astype(np.uint8)


def border_mask_file(in_path: str | os.PathLike, out_path: str | os.PathLike, *,
                     strip_rows: int = 1024, creation_options: dict | None = None,
                     radius: int = BALL_RADIUS) -> Path:
    """Write the border mask of the tile product ``in_path`` to ``out_path``.

    Works by strips of ``strip_rows`` rows read with a ``2 * radius`` halo, so the
    result equals :func:`border_mask` on the whole image. The mask keeps the
    product's metadata with ``IMAGE_TYPE=MASK``. ``creation_options`` is a
    ``(dtype, options)`` pair (default: ``creation_options.mask``).
    """
    dtype, options = creation_options or creation_options_for("mask")
    halo = 2 * radius
    with rasterio.open(in_path) as src:
        unit = sentinel_short(src.tags().get("FLYING_UNIT_CODE", "s1?"))
        tags = derived_tags(src.tags(), f"Orthorectified Sentinel-{unit} IW GRD smoothed border mask S2 tile",
                            IMAGE_TYPE="MASK")
        with AtomicRasterWriter(out_path, crs=src.crs, transform=src.transform, width=src.width,
                                height=src.height, dtype=dtype, nodata=None,
                                creation_options=options, tags=tags) as out:
            for top in range(0, src.height, strip_rows):
                bottom = min(top + strip_rows, src.height)
                read_top, read_bottom = max(0, top - halo), min(src.height, bottom + halo)
                values = src.read(1, window=Window(0, read_top, src.width, read_bottom - read_top))
                mask = border_mask(values, radius)[top - read_top: bottom - read_top]
                out.write(mask, Window(0, top, src.width, bottom - top))
    return Path(out_path)
