"""Speckle filters of OTB ``Despeckle`` (Lee, Frost, Gamma-MAP, Kuan), as S1Tiling applies them.

Formulas of OTB's ``otb{Lee,Frost,GammaMAP,Kuan}ImageFilter`` over the
``(2 r + 1)²`` window around each pixel, with ``E`` the window mean, ``V`` its
unbiased variance (``n - 1``), ``I`` the centre pixel, ``L`` the number of looks,
``Cu² = 1 / L`` and ``Ci² = V / E²``:

- all: ``|E| < 1e-10`` gives 0, ``|V| < 1e-10`` gives ``E``;
- Lee: ``Ci² < Cu²`` gives ``E``, else ``I w + E (1 - w)`` with ``w = 1 - Cu²/Ci²``;
- Kuan: same with ``w = (1 - Cu²/Ci²) / (1 + Cu²)``;
- Gamma-MAP: ``Ci² < Cu²`` gives ``E``; ``Ci < √2 Cu`` gives ``(b E + √d) / (2 α)`` with
  ``α = (1 + Cu²) / (Ci² - Cu²)``, ``b = α - L - 1``, ``d = E² b² + 4 α L E I``; else ``I``;
- Frost: ``Σ exp(-D dist) x / Σ exp(-D dist)`` with ``D = deramp V / E²``, ``dist`` the
  offset length.

Image edges replicate the border pixels (ITK's zero-flux Neumann condition).
Unlike OTB, no-data (0) pixels are left out of the window statistics and stay 0,
so the filter does not darken the edges of the swath.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import ConfigurationError
from .writing import creation_options_for, derived_tags, sentinel_short, write_like

METHODS = ("lee", "frost", "gammamap", "kuan")
_EPSILON = 1e-10


def check_filter_options(method: str, radius: int, deramp: float | None = None,
                         nblooks: float | None = None) -> None:
    """Raise :class:`ConfigurationError` for options ``[Filtering]`` cannot take."""
    if method not in METHODS:
        raise ConfigurationError(f"[Filtering] filter = {method!r}: expected none or one of {', '.join(METHODS)}")
    if int(radius) != radius or radius < 1:
        raise ConfigurationError(f"[Filtering] window_radius = {radius!r}: expected an integer >= 1")
    if method == "frost":
        if deramp is None or not deramp > 0:
            raise ConfigurationError(f"[Filtering] deramp = {deramp!r}: the Frost filter needs a value > 0")
    elif nblooks is None or not nblooks > 0:
        raise ConfigurationError(f"[Filtering] nblooks = {nblooks!r}: the {method} filter needs a value > 0")


def _box_sum(padded: np.ndarray, radius: int) -> np.ndarray:
    """Sum over the (2r+1)² window of each interior pixel of an array padded by ``radius``."""
    height, width = padded.shape[0] - 2 * radius, padded.shape[1] - 2 * radius
    rows = padded[0:height].copy()
    for k in range(1, 2 * radius + 1):
        rows += padded[k:k + height]
    out = rows[:, 0:width].copy()
    for k in range(1, 2 * radius + 1):
        out += rows[:, k:k + width]
    return out


def _frost(x: np.ndarray, valid: np.ndarray, radius: int, damping: np.ndarray) -> np.ndarray:
    """Frost weighted mean: offsets grouped by distance so each weight is computed once."""
    height, width = x.shape[0] - 2 * radius, x.shape[1] - 2 * radius
    rings: dict[float, list[tuple[int, int]]] = {}
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            rings.setdefault(float(np.hypot(dx, dy)), []).append((dy, dx))
    numerator = np.zeros((height, width))
    denominator = np.zeros((height, width))
    for distance, offsets in rings.items():
        ring_sum = np.zeros((height, width))
        ring_count = np.zeros((height, width))
        for dy, dx in offsets:
            rows, cols = slice(radius + dy, radius + dy + height), slice(radius + dx, radius + dx + width)
            ring_sum += x[rows, cols]
            ring_count += valid[rows, cols]
        weight = np.exp(-damping * distance)
        numerator += weight * ring_sum
        denominator += weight * ring_count
    return numerator / denominator


def despeckle_padded(padded: np.ndarray, method: str, radius: int, deramp: float | None = None,
                     nblooks: float | None = None) -> np.ndarray:
    """Filter the interior of ``padded`` (an image with a ``radius`` halo on every side)."""
    check_filter_options(method, radius, deramp, nblooks)
    valid = (padded != 0) & np.isfinite(padded)
    x = np.where(valid, padded, 0).astype(np.float64)
    inner = (slice(radius, x.shape[0] - radius), slice(radius, x.shape[1] - radius))
    centre, centre_valid = x[inner], valid[inner]
    with np.errstate(divide="ignore", invalid="ignore"):
        count = _box_sum(valid.astype(np.float64), radius)
        total = _box_sum(x, radius)
        mean = total / count
        var = np.where(count > 1, (_box_sum(x * x, radius) - total * mean) / (count - 1), 0.0)
        var = np.maximum(var, 0.0)
        ci2 = var / (mean * mean)
        if method == "frost":
            out = _frost(x, valid, radius, deramp * ci2)
        else:
            cu2 = 1.0 / nblooks  # type: ignore[operator]  # not None: check_filter_options
            if method == "lee":
                w = 1.0 - cu2 / ci2
                out = centre * w + mean * (1.0 - w)
            elif method == "kuan":
                w = (1.0 - cu2 / ci2) / (1.0 + cu2)
                out = centre * w + mean * (1.0 - w)
            else:  # gammamap
                alpha = (1.0 + cu2) / (ci2 - cu2)
                b = alpha - nblooks - 1.0
                d = mean * mean * b * b + 4.0 * alpha * nblooks * mean * centre
                out = np.where(ci2 < 2.0 * cu2, (b * mean + np.sqrt(d)) / (2.0 * alpha), centre)
            out = np.where(ci2 < cu2, mean, out)
        out = np.where(np.abs(var) < _EPSILON, mean, out)
        out = np.where(np.abs(mean) < _EPSILON, 0.0, out)
    return np.where(centre_valid, out, 0.0).astype(np.float32)


def despeckle(values: np.ndarray, method: str, radius: int, deramp: float | None = None,
              nblooks: float | None = None) -> np.ndarray:
    """Filter a whole image (edges replicated); float32, 0 where the input is 0."""
    return despeckle_padded(np.pad(values, radius, mode="edge"), method, radius, deramp, nblooks)


def filter_metadata(method: str, radius: int, deramp: float | None = None,
                    nblooks: float | None = None) -> dict[str, str]:
    """Metadata S1Tiling adds to filtered products."""
    tags = {"FILTERED": "true", "FILTERING_METHOD": method, "FILTERING_WINDOW_RADIUS": str(radius),
            "IMAGE_TYPE": "BACKSCATTERING"}
    if method == "frost":
        tags["FILTERING_DERAMP"] = str(deramp)
    else:
        tags["FILTERING_NBLOOKS"] = str(nblooks)
    return tags


def filter_file(in_path: str | os.PathLike, out_path: str | os.PathLike, method: str, radius: int,
                deramp: float | None = None, nblooks: float | None = None, *,
                strip_rows: int = 256, creation_options: tuple | None = None, output_format: str = "GTiff") -> Path:
    """Write the despeckled tile product ``in_path`` to ``out_path``.

    Works by strips read with a ``radius`` halo (edge-replicated beyond the image),
    so the result equals :func:`despeckle` on the whole image. Metadata are the
    input's plus :func:`filter_metadata`. ``creation_options`` is a ``(dtype, options)``
    pair (default: ``creation_options.filtered``); ``output_format``: ``GTiff`` or ``COG``.
    """
    check_filter_options(method, radius, deramp, nblooks)
    dtype, options = creation_options or creation_options_for("filtered")

    def despeckled(values: np.ndarray, above: int, below: int) -> np.ndarray:
        padded = np.pad(values, ((radius - above, radius - below), (radius, radius)), mode="edge")
        return despeckle_padded(padded, method, radius, deramp, nblooks)

    def tags(source_tags: dict) -> dict[str, str]:
        unit = sentinel_short(source_tags.get("FLYING_UNIT_CODE", "s1?"))
        return derived_tags(source_tags, f"Orthorectified and despeckled Sentinel-{unit} IW GRD S2 tile",
                            **filter_metadata(method, radius, deramp, nblooks))

    return write_like(in_path, out_path, despeckled, tags=tags, dtype=dtype, creation_options=options, nodata=0,
                      halo=radius, strip_rows=strip_rows, output_format=output_format)
