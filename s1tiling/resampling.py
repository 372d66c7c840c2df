"""Sampling a calibrated SAR window at fractional (line, pixel) positions: ``nn``, ``linear``, ``bco``.

Conventions: integer SAR coordinates are sample centres (ESA's geolocation grid uses the same),
so array element ``[l, p]`` sits at ``(line=l, pixel=p)``. Positions outside the image, and
positions whose nearest sample is 0 (no-data), give 0. ``linear`` and ``bco`` fall back to the
nearest sample where their support touches a no-data sample, so image borders are not darkened
by blending with 0; a bicubic undershoot below ``floor`` is raised to ``floor`` so that a valid
pixel never turns into no-data.
"""
from __future__ import annotations

import numba
import numpy as np
from numpy.typing import ArrayLike

METHODS = ("nn", "linear", "bco")


@numba.njit(cache=True, inline="always", nogil=True)
def keys_weight(t: float) -> float:
    """Keys' cubic convolution kernel, a = -0.5 (what OTB's BCO interpolator uses with radius 2)."""
    t = abs(t)
    if t <= 1.0:
        return (1.5 * t - 2.5) * t * t + 1.0
    if t < 2.0:
        return ((-0.5 * t + 2.5) * t - 4.0) * t + 2.0
    return 0.0


@numba.njit(cache=True, inline="always", nogil=True)
def _convolve(imgs, band, l_lo, p_lo, wl, wp):
    """Sum of the weighted samples of the (len(wl) x len(wp)) support at (l_lo, p_lo), and
    whether none of them is no-data."""
    acc = 0.0
    ok = True
    for a in range(len(wl)):
        for b in range(len(wp)):
            s = imgs[band, l_lo + a, p_lo + b]
            if s == 0.0:
                ok = False
            acc += wl[a] * wp[b] * s
    return acc, ok


@numba.njit(cache=True, inline="always", nogil=True)
def sample_position(imgs, line0, pixel0, nlines, npixels, lf, pf, radius, floor, out, k):
    """``out[band, k]`` = band ``band`` of ``imgs`` (a window starting at SAR sample
    ``(line0, pixel0)`` of an image of ``nlines`` x ``npixels``) at position (lf, pf), for the
    bands where ``out[band, k]`` is still 0: the nearest sample (``radius`` 0), bilinear
    (1) or bicubic (2), the nearest sample where the support leaves the window or touches
    a no-data sample. Nothing is written outside the image or the window (also for NaN)."""
    if not (-0.5 <= lf < nlines - 0.5 and -0.5 <= pf < npixels - 0.5):  # also NaN
        return
    bands, h, w = imgs.shape
    li = int(np.floor(lf + 0.5)) - line0
    pi = int(np.floor(pf + 0.5)) - pixel0
    if not (0 <= li < h and 0 <= pi < w):
        return
    if radius == 0:
        for band in range(bands):
            if out[band, k] == 0.0:
                out[band, k] = imgs[band, li, pi]
        return
    size = 2 * radius
    l_lo = int(np.floor(lf)) - line0 - radius + 1
    p_lo = int(np.floor(pf)) - pixel0 - radius + 1
    inside = l_lo >= 0 and p_lo >= 0 and l_lo + size <= h and p_lo + size <= w
    dl = lf - (l_lo + line0)
    dp = pf - (p_lo + pixel0)
    for band in range(bands):
        if out[band, k] != 0.0:
            continue
        nearest = imgs[band, li, pi]
        value = nearest
        if nearest != 0.0 and inside:
            if radius == 1:
                acc, ok = _convolve(imgs, band, l_lo, p_lo, (1.0 - abs(dl), 1.0 - abs(dl - 1)),
                                    (1.0 - abs(dp), 1.0 - abs(dp - 1)))
            else:
                acc, ok = _convolve(
                    imgs, band, l_lo, p_lo,
                    (keys_weight(dl), keys_weight(dl - 1), keys_weight(dl - 2), keys_weight(dl - 3)),
                    (keys_weight(dp), keys_weight(dp - 1), keys_weight(dp - 2), keys_weight(dp - 3)),
                )
            if ok:
                value = acc if acc > floor else floor
        out[band, k] = value


@numba.njit(parallel=True, cache=True, nogil=True)
def _interpolate_positions(imgs, line0, pixel0, nlines, npixels, lines, pixels, radius, floor, out):
    for k in numba.prange(lines.size):
        sample_position(imgs, line0, pixel0, nlines, npixels, lines[k], pixels[k], radius, floor, out, k)


@numba.njit(parallel=True, cache=True, nogil=True)
def _nearest_positions(imgs, line0, pixel0, nlines, npixels, lines, pixels, out):
    """:func:`sample_position` with ``radius`` 0, written out (twice as fast as the generic call)."""
    bands, h, w = imgs.shape
    for band in range(bands):  # band after band: each pass reads one plane of the window
        for k in numba.prange(lines.size):
            lf = lines[k]
            pf = pixels[k]
            if out[band, k] == 0.0 and -0.5 <= lf < nlines - 0.5 and -0.5 <= pf < npixels - 0.5:  # False for NaN
                li = int(np.floor(lf + 0.5)) - line0
                pi = int(np.floor(pf + 0.5)) - pixel0
                if 0 <= li < h and 0 <= pi < w:
                    out[band, k] = imgs[band, li, pi]


def sample_positions(imgs, line0, pixel0, nlines, npixels, lines, pixels, radius, floor, out):
    """:func:`sample_position` at every position ``k`` of ``lines``/``pixels`` (1-D float64):
    ``imgs`` is bands x lines x samples (float32), ``out`` bands x positions (float32)."""
    if radius == 0:
        _nearest_positions(imgs, line0, pixel0, nlines, npixels, lines, pixels, out)
    else:
        _interpolate_positions(imgs, line0, pixel0, nlines, npixels, lines, pixels, radius, floor, out)


def sample(window: np.ndarray, line0: int, pixel0: int, image_shape: tuple[int, int], lines: ArrayLike,
           pixels: ArrayLike, method: str = "nn", floor: float = 1e-7, out: np.ndarray | None = None) -> np.ndarray:
    """Values of ``window`` (SAR samples starting at ``(line0, pixel0)`` of an image of
    ``image_shape`` = (lines, samples)) at the fractional positions ``lines``/``pixels``.

    ``window`` is 2-D, or 3-D (bands, lines, samples) to sample several bands at once.
    Returns float32 of the shape of ``lines`` (with the bands first for a 3-D window), or,
    given ``out`` (float32, C-contiguous, that shape), merges into it: only its elements
    still 0 are computed and written (the first non-zero value wins).
    """
    try:
        code = METHODS.index(method)
    except ValueError:
        raise ValueError(f"unknown interpolation method {method!r}: expected one of {METHODS}") from None
    lines = np.ascontiguousarray(lines, dtype=np.float64)
    pixels = np.ascontiguousarray(pixels, dtype=np.float64)
    img = np.ascontiguousarray(window, dtype=np.float32)
    bands = img.shape[:-2]
    shape = bands + lines.shape
    if out is None:
        out = np.zeros(shape, dtype=np.float32)
    elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous float32 array of shape {shape}")
    if img.size:
        imgs: np.ndarray = img.reshape((-1,) + img.shape[-2:])  # (numpy's stubs make its shape ())
        merged = out.reshape(imgs.shape[0], lines.size)
        sample_positions(imgs, int(line0), int(pixel0), int(image_shape[0]), int(image_shape[1]), lines.ravel(),
                          pixels.ravel(), code, float(floor), merged)
    return out


def margin(method: str) -> int:
    """Samples needed around the nearest one by ``method``."""
    return {"nn": 0, "linear": 1, "bco": 2}[method]
