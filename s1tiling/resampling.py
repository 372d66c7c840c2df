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

METHODS = ("nn", "linear", "bco")


@numba.njit(cache=True, inline="always")
def keys_weight(t):
    """Keys' cubic convolution kernel, a = -0.5 (what OTB's BCO interpolator uses with radius 2)."""
    t = abs(t)
    if t <= 1.0:
        return (1.5 * t - 2.5) * t * t + 1.0
    if t < 2.0:
        return ((-0.5 * t + 2.5) * t - 4.0) * t + 2.0
    return 0.0


@numba.njit(parallel=True, cache=True)
def _sample(img, line0, pixel0, nlines, npixels, lines, pixels, method, floor, out):
    h, w = img.shape
    n = lines.size
    for k in numba.prange(n):
        lf = lines.flat[k]
        pf = pixels.flat[k]
        value = 0.0
        if not (np.isnan(lf) or np.isnan(pf)) and -0.5 <= lf < nlines - 0.5 and -0.5 <= pf < npixels - 0.5:
            li = int(np.floor(lf + 0.5)) - line0
            pi = int(np.floor(pf + 0.5)) - pixel0
            if 0 <= li < h and 0 <= pi < w:
                nearest = img[li, pi]
                value = nearest
                if nearest != 0.0 and method > 0:
                    radius = 1 if method == 1 else 2
                    l_lo = int(np.floor(lf)) - line0 - radius + 1
                    p_lo = int(np.floor(pf)) - pixel0 - radius + 1
                    if l_lo >= 0 and p_lo >= 0 and l_lo + 2 * radius <= h and p_lo + 2 * radius <= w:
                        acc = 0.0
                        ok = True
                        dl = lf - (l_lo + line0)
                        dp = pf - (p_lo + pixel0)
                        for a in range(2 * radius):
                            if method == 1:
                                wl = 1.0 - abs(dl - a)
                            else:
                                wl = keys_weight(dl - a)
                            for b in range(2 * radius):
                                s = img[l_lo + a, p_lo + b]
                                if s == 0.0:
                                    ok = False
                                if method == 1:
                                    wp = 1.0 - abs(dp - b)
                                else:
                                    wp = keys_weight(dp - b)
                                acc += wl * wp * s
                        if ok:
                            value = acc if acc > floor else floor
        out.flat[k] = value


def sample(window, line0, pixel0, image_shape, lines, pixels, method="nn", floor=1e-7):
    """Values of ``window`` (SAR samples starting at ``(line0, pixel0)`` of an image of
    ``image_shape`` = (lines, samples)) at the fractional positions ``lines``/``pixels``.

    Returns float32 of the shape of ``lines``.
    """
    try:
        code = METHODS.index(method)
    except ValueError:
        raise ValueError(f"unknown interpolation method {method!r}: expected one of {METHODS}") from None
    lines = np.ascontiguousarray(lines, dtype=np.float64)
    pixels = np.ascontiguousarray(pixels, dtype=np.float64)
    out = np.zeros(lines.shape, dtype=np.float32)
    img = np.ascontiguousarray(window, dtype=np.float32)
    if img.size:
        _sample(img, int(line0), int(pixel0), int(image_shape[0]), int(image_shape[1]),
                lines, pixels, code, float(floor), out)
    return out


def margin(method: str) -> int:
    """Samples needed around the nearest one by ``method``."""
    return {"nn": 0, "linear": 1, "bco": 2}[method]
