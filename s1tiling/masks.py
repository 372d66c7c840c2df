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

from .writing import creation_options_for, derived_tags, sentinel_short, write_like

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
                     strip_rows: int = 1024, creation_options: tuple[str, dict] | None = None,
                     radius: int = BALL_RADIUS, output_format: str = "GTiff") -> Path:
    """Write the border mask of the tile product ``in_path`` to ``out_path``.

    Works by strips of ``strip_rows`` rows read with a ``2 * radius`` halo, so the
    result equals :func:`border_mask` on the whole image. The mask keeps the
    product's metadata with ``IMAGE_TYPE=MASK``. ``creation_options`` is a
    ``(dtype, options)`` pair (default: ``creation_options.mask``); ``output_format``: ``GTiff``
    or ``COG`` (overviews by nearest neighbour).
    """
    dtype, options = creation_options or creation_options_for("mask")
    return write_like(in_path, out_path, lambda values, above, below: border_mask(values, radius)[
                          above:values.shape[0] - below],
                      tags=mask_tags, dtype=dtype, creation_options=options, nodata=None, halo=2 * radius,
                      strip_rows=strip_rows, output_format=output_format, overview_resampling="NEAREST")


def mask_tags(source_tags: dict) -> dict[str, str]:
    """Tags of the border mask of a tile image: the image's, with ``IMAGE_TYPE=MASK``."""
    unit = sentinel_short(source_tags.get("FLYING_UNIT_CODE", "s1?"))
    return derived_tags(source_tags, f"Orthorectified Sentinel-{unit} IW GRD smoothed border mask S2 tile",
                        IMAGE_TYPE="MASK")
