"""Multitemporal speckle filter of Quegan & Yu (2001) over the tile images of one tile and orbit.

S. Quegan, J. J. Yu, "Filtering of multichannel SAR images", IEEE TGRS 39(11), 2373-2379, 2001:
for N co-registered intensity images I_1..I_N of independent speckle,

    J_k = E[I_k] / N x sum_i I_i / E[I_i]

with E[I_i] a local estimate of the mean of date i (here the box mean of the
``(2 r + 1)²`` window, or one of the spatial filters of :mod:`s1tiling.filtering` as the
per-date estimator). J_k keeps the mean of I_k (E[I_i / E[I_i]] = 1) and, over a constant
scene of L-look speckle, its coefficient of variation is about
``sqrt(1 / (N L) + (N - 1) / (N n L))`` with n the number of pixels of the window (the first
term: N dates averaged; the second: the noise of the box mean E[I_k]).

The window of dates is bounded and causal: the filtered image of a date uses it and the
``dates - 1`` dates before it, so adding a new date makes one new filtered image and leaves the
earlier ones as they are (incremental). No-data (0) pixels of a date leave that date out at
that pixel (N counts the dates with data there), and out of the window statistics; a pixel with
no data in the date being filtered stays 0.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from .filtering import METHODS, _box_sum, despeckle_padded
from .writing import creation_options_for, derived_tags, sentinel_short, write_like

ESTIMATORS = ("mean", *METHODS)


def local_mean(padded: np.ndarray, radius: int, estimator: str = "mean", deramp: float | None = None,
               nblooks: float | None = None) -> np.ndarray:
    """The per-date mean estimate of the interior of an image padded by ``radius``: the box mean
    of its valid (non-zero) pixels, or a spatial speckle filter; 0 where there is no data."""
    if estimator != "mean":
        return despeckle_padded(padded, estimator, radius, deramp, nblooks)
    values = padded.astype(np.float64)
    valid = (values != 0) & np.isfinite(values)
    total = _box_sum(np.where(valid, values, 0.0), radius)
    count = _box_sum(valid.astype(np.float64), radius)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, 0.0)


def quegan_padded(padded: Sequence[np.ndarray], target: int, radius: int, estimator: str = "mean",
                  deramp: float | None = None, nblooks: float | None = None) -> np.ndarray:
    """J of date ``target`` (index in ``padded``: the images of the window of dates, each padded
    by ``radius``) over the interior (float32, 0 where date ``target`` has no data)."""
    ratio_sum: np.ndarray | None = None
    count: np.ndarray | None = None
    mean_target = None
    for index, image in enumerate(padded):
        mean = local_mean(image, radius, estimator, deramp, nblooks)
        centre = image[radius:image.shape[0] - radius, radius:image.shape[1] - radius].astype(np.float64)
        valid = (centre != 0) & np.isfinite(centre) & (mean > 0)
        ratio = np.where(valid, centre / np.where(valid, mean, 1.0), 0.0)
        ratio_sum = ratio if ratio_sum is None else ratio_sum + ratio
        count = valid.astype(np.float64) if count is None else count + valid
        if index == target:
            mean_target = np.where(valid, mean, 0.0)
    assert ratio_sum is not None and count is not None and mean_target is not None
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(mean_target > 0, mean_target * ratio_sum / np.maximum(count, 1.0), 0.0)
    return out.astype(np.float32)


def quegan_metadata(dates: int, radius: int, estimator: str, inputs: Sequence[str]) -> dict[str, str]:
    """Metadata of a multitemporally filtered image."""
    return {"FILTERED": "true", "FILTERING_METHOD": "quegan", "FILTERING_WINDOW_RADIUS": str(radius),
            "FILTERING_ESTIMATOR": estimator, "FILTERING_DATES": str(dates),
            "FILTERING_INPUTS": ", ".join(Path(p).name for p in inputs), "IMAGE_TYPE": "BACKSCATTERING"}


def quegan_file(sources: Sequence[str | os.PathLike], out_path: str | os.PathLike, radius: int,
                estimator: str = "mean", deramp: float | None = None, nblooks: float | None = None, *,
                strip_rows: int = 256, creation_options: tuple | None = None,
                output_format: str = "GTiff") -> Path:
    """Write the Quegan-filtered image of the last of ``sources`` (the window of dates, in time
    order, on one grid) to ``out_path``, strip by strip (edges replicated)."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; expected one of {', '.join(ESTIMATORS)}")
    dtype, options = creation_options or creation_options_for("filtered")
    target = Path(sources[-1])
    with ExitStack() as stack:
        others = [stack.enter_context(rasterio.open(p)) for p in sources[:-1]]
        with rasterio.open(target) as ref:
            for other, path in zip(others, sources[:-1]):
                if (other.height, other.width) != (ref.height, ref.width) or other.transform != ref.transform:
                    raise ValueError(f"{path} is not on the grid of {target}")
        next_top = [0]

        def filtered(values: np.ndarray, above: int, below: int) -> np.ndarray:
            height = values.shape[0] - above - below
            top = next_top[0]
            next_top[0] += height
            window = Window(0, top - above, values.shape[1], values.shape[0])
            strips = [o.read(1, window=window) for o in others] + [values]
            padded = [np.pad(s, ((radius - above, radius - below), (radius, radius)), mode="edge") for s in strips]
            return quegan_padded(padded, len(padded) - 1, radius, estimator, deramp, nblooks)

        def tags(source_tags: dict) -> dict[str, str]:
            unit = sentinel_short(source_tags.get("FLYING_UNIT_CODE", "s1?"))
            return derived_tags(source_tags, f"Orthorectified and multitemporally filtered Sentinel-{unit} S2 tile",
                                **quegan_metadata(len(sources), radius, estimator, [str(p) for p in sources]))

        return write_like(target, out_path, filtered, tags=tags, dtype=dtype, creation_options=options, nodata=0,
                          halo=radius, strip_rows=strip_rows, output_format=output_format)
