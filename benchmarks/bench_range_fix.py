"""How far the smooth range conversion moved SAR positions, for every product of the shared data.

    python benchmarks/bench_range_fix.py [--samples 2000]

The slant/ground range conversion records of an annotation (one polynomial per second or so) used
to be interpolated linearly in azimuth time between two records; they are now interpolated along
a cubic Hermite curve (:func:`s1tiling.geometry.geocoding.record_weights`). For random (azimuth
time, slant range) points of each product (``s1/*.SAFE`` of the shared data, over its lines and
samples), this prints the largest and the median difference between the ground range of the two
interpolations, in range pixels: how far the fix moved each output pixel's SAR position
(to first order; the azimuth position does not depend on the conversion). Then, at the points of
ESA's geolocation grid (azimuth time, slant range time, pixel), the largest and the median
distance between the annotated pixel and the one of each interpolation: which one ESA's grid
agrees with.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import common
import numpy as np

from s1tiling.geometry.geocoding import _polynomial, slant_to_ground_range
from s1tiling.geometry.sar_model import SarModel
from s1tiling.s1.annotation import parse_annotation
from s1tiling.times import seconds_since

SPEED_OF_LIGHT = 299_792_458.0


def _linear(t: float, value: float, record_times, origin, coefficients) -> tuple[float, float]:
    """The former conversion: the two records around t, interpolated linearly (extrapolated beyond)."""
    n = record_times.size
    if n == 1:
        return _polynomial(coefficients[0], value - origin[0])
    j = min(max(int(np.searchsorted(record_times, t, side="right")) - 1, 0), n - 2)
    v0, d0 = _polynomial(coefficients[j], value - origin[j])
    v1, d1 = _polynomial(coefficients[j + 1], value - origin[j + 1])
    w = (t - record_times[j]) / (record_times[j + 1] - record_times[j])
    return v0 + (v1 - v0) * w, d0 + (d1 - d0) * w


def _linear_ground(t: float, slant: float, conversion, use_grsr: bool) -> float:
    record_times, sr0, srgr, gr0, grsr = conversion
    ground = _linear(t, slant, record_times, sr0, srgr)[0]
    if use_grsr:  # invert grsr (Newton), as the geocoder does
        for _ in range(20):
            value, slope = _linear(t, ground, record_times, gr0, grsr)
            step = (value - slant) / slope
            ground -= step
            if abs(step) < 1e-6:
                break
    return ground


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=common.default_data())
    parser.add_argument("--samples", type=int, default=2000, help="random points per product")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(15)
    print(f"{'':47}{'moved (px)':>20} {'vs ESA grid, max / median (px)':>36}")
    print(f"{'product':34} {'pol':3} {'records':>7} {'poly':>4} {'max':>9} {'median':>10} "
          f"{'smooth':>17} {'linear':>17}")
    for safe in sorted((args.data / "s1").glob("*.SAFE")):
        annotation_path = sorted((safe / "annotation").glob("*.xml"))[0]
        annotation = parse_annotation(annotation_path)
        model = SarModel.from_annotation(annotation)
        conversion, use_grsr = model._conversion, model._use_grsr
        times = rng.uniform(0, model.number_of_lines * model.azimuth_time_interval, args.samples)
        pixels = rng.uniform(0, model.number_of_samples, args.samples)
        slants = model.slant_range(times / model.azimuth_time_interval, pixels)
        shift = np.array([
            slant_to_ground_range(t, s, conversion, use_grsr) - _linear_ground(t, s, conversion, use_grsr)
            for t, s in zip(times, slants)]) / model.range_pixel_spacing
        shift = np.abs(shift[np.isfinite(shift)])
        grid = annotation.geolocation_grid
        grid_times = seconds_since(grid.azimuth_time, model.reference_time)
        grid_slants = grid.slant_range_time * SPEED_OF_LIGHT / 2
        errors = {}
        for name, ground in (("smooth", slant_to_ground_range), ("linear", _linear_ground)):
            values = np.array([ground(t, s, conversion, use_grsr) for t, s in zip(grid_times, grid_slants)])
            error = np.abs(values / model.range_pixel_spacing - grid.pixel)
            errors[name] = f"{np.nanmax(error):.3f} / {np.nanmedian(error):.3f}"
        pol = annotation_path.name.split("-")[3]
        print(f"{safe.name[:33]:34} {pol:3} {conversion[0].size:7d} {model.range_polynomial:>4} "
              f"{shift.max():9.5f} {np.median(shift):10.5f} {errors['smooth']:>17} {errors['linear']:>17}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
