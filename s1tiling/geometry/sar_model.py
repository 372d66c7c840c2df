"""``SarModel``: the range-Doppler sensor model of one GRD product (one annotation).

All methods take arrays of any (broadcastable) shape and return float64 arrays of that
shape; latitudes and longitudes in degrees, heights ellipsoidal (WGS84) in metres,
times in seconds from ``reference_time`` (the product's first line).

Range: pixel = ground range / rangePixelSpacing, ground range from the slant range by
the annotation's srgr polynomials (as ESA's and OTB's geocoders do), and
:meth:`SarModel.sar_to_ground` uses their exact inverse. Some old annotations (IPF 2.36,
February 2015) carry srgr polynomials that disagree with the grsr ones by up to 4
pixels, oscillating with range like a poor polynomial fit, while grsr agrees with the
ellipsoid geometry and with the annotated geolocation grid; when the two disagree by
more than 0.1 pixel the model uses grsr (and its inverse) instead, with a warning
(``range_polynomial`` says which).
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from ..times import seconds_since
from . import geocoding, zero_doppler
from .ellipsoid import WGS84_A, WGS84_B, ellipsoid_normal
from .orbit import Orbit, StateVectors, select_state_vectors

if TYPE_CHECKING:  # the geometry floor reads annotations; it never imports the reader
    from ..s1.annotation import ProductAnnotation

log = logging.getLogger(__name__)

_MAX_POLYNOMIAL_DISAGREEMENT = 0.1  # pixels, between srgr and grsr


def _flat(*arrays: ArrayLike) -> tuple[tuple[int, ...], list[np.ndarray]]:
    b = np.broadcast_arrays(*[np.asarray(a, dtype=np.float64) for a in arrays])
    return b[0].shape, [np.ascontiguousarray(a).ravel() for a in b]


class SarModel:
    """Ground <-> SAR geometry of a GRD product (zero Doppler, right-looking)."""

    def __init__(self, annotation: ProductAnnotation, orbit: Orbit):
        image = annotation.image
        # numpy's stubs lack datetime64(datetime64, unit), the unit conversion used here
        self.reference_time = np.datetime64(image.first_line_time, "ns")  # type: ignore[call-overload]
        if orbit.reference_time != self.reference_time:
            raise ValueError("the orbit's reference time must be the product's first line time")
        self.orbit = orbit
        self.orbit_source = orbit.source
        self.azimuth_time_interval = image.azimuth_time_interval
        self.range_pixel_spacing = image.range_pixel_spacing
        self.number_of_lines = image.number_of_lines
        self.number_of_samples = image.number_of_samples
        conv = annotation.coordinate_conversion
        self._conversion = (
            seconds_since(conv.azimuth_time, self.reference_time),
            np.ascontiguousarray(conv.sr0, dtype=np.float64),
            np.ascontiguousarray(conv.srgr, dtype=np.float64),
            np.ascontiguousarray(conv.gr0, dtype=np.float64),
            np.ascontiguousarray(conv.grsr, dtype=np.float64),
        )
        self._mid_time = 0.5 * (image.number_of_lines - 1) * image.azimuth_time_interval
        self.polynomial_disagreement = _srgr_grsr_disagreement(conv, image)
        self.range_polynomial = "srgr"
        if self.polynomial_disagreement > _MAX_POLYNOMIAL_DISAGREEMENT:
            self.range_polynomial = "grsr"
            log.warning(
                "%s %s annotation: srgr and grsr polynomials disagree by up to %.2f pixels; using grsr",
                annotation.mission, annotation.start_time, self.polynomial_disagreement,
            )  # fmt: skip
        self._use_grsr = self.range_polynomial == "grsr"

    @classmethod
    def from_annotation(cls, annotation: ProductAnnotation, state_vectors: StateVectors | None = None) -> SarModel:
        """The model of an annotation; ``state_vectors`` (e.g. from :func:`read_eof`) replace its orbit.

        Raises ``ValueError`` when the precise vectors do not cover the product, or the
        annotation is not on the WGS84 ellipsoid.
        """
        if not (
            np.isclose(annotation.ellipsoid_semi_major_axis, WGS84_A, atol=1e-3)
            and np.isclose(annotation.ellipsoid_semi_minor_axis, WGS84_B, atol=1e-3)
        ):
            raise ValueError("the annotation's ellipsoid is not WGS84")
        vectors = annotation.orbit
        if state_vectors is not None:
            vectors = select_state_vectors(
                state_vectors, annotation.image.first_line_time, annotation.image.last_line_time
            )
        return cls(annotation, Orbit(vectors, reference_time=annotation.image.first_line_time))

    # ------------------------------------------------------------------ time helpers

    def azimuth_time(self, line: ArrayLike) -> np.ndarray:
        """Seconds from ``reference_time`` of (fractional) lines."""
        return np.asarray(line, dtype=np.float64) * self.azimuth_time_interval

    def slant_range(self, line: ArrayLike, pixel: ArrayLike) -> np.ndarray:
        """Slant range (m) of SAR positions."""
        gr = np.asarray(pixel, dtype=np.float64) * self.range_pixel_spacing
        return self._convert(self.azimuth_time(line), gr, False)

    def ground_range(self, seconds: ArrayLike, slant_range: ArrayLike) -> np.ndarray:
        """Ground range (m) of a slant range at an azimuth time (seconds)."""
        return self._convert(seconds, slant_range, True)

    def _convert(self, seconds, values, to_ground):
        shape, (t, values) = _flat(seconds, values)
        out = np.empty(t.size)
        geocoding.convert_ranges(t, values, self._conversion, self._use_grsr, to_ground, out)
        return out.reshape(shape)

    # ------------------------------------------------------------------ geocoding

    def _ground_to_sar(self, a, b, c, geodetic):
        shape, (a, b, c) = _flat(a, b, c)
        line = np.empty(a.size)
        pixel = np.empty(a.size)
        geocoding.ground_to_sar(
            a, b, c, geodetic, self._mid_time, self.orbit.arrays, self._conversion, self._use_grsr,
            self.azimuth_time_interval, self.range_pixel_spacing, line, pixel,
        )  # fmt: skip
        return line.reshape(shape), pixel.reshape(shape)

    def ground_to_sar(self, lat: ArrayLike, lon: ArrayLike, height: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """(line, pixel) of ground points (degrees, ellipsoidal metres); NaN where unsolvable."""
        return self._ground_to_sar(lat, lon, height, True)

    def sar_to_ground(self, line: ArrayLike, pixel: ArrayLike, height: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """(lat, lon) in degrees of SAR positions at an ellipsoidal height."""
        shape, (line, pixel, height) = _flat(line, pixel, height)
        lat = np.empty(line.size)
        lon = np.empty(line.size)
        geocoding.sar_to_ground(
            line, pixel, height, self.orbit.arrays, self._conversion, self._use_grsr,
            self.azimuth_time_interval, self.range_pixel_spacing, lat, lon,
        )  # fmt: skip
        return lat.reshape(shape), lon.reshape(shape)

    def _angles(self, lat, lon, height, normals):
        """Incidence angles (degrees) at ground points of surfaces of ``normals`` (a function of
        the ECEF points, lat and lon), not projected onto the range plane."""
        shape, (lat, lon, height) = _flat(lat, lon, height)
        points = geocoding.ecef_points(lat, lon, height, True)
        times, satellites = np.empty(lat.size), np.empty((lat.size, 3))
        zero_doppler.solve(points, self._mid_time, self.orbit.arrays, times, satellites)
        out = np.empty(lat.size)
        zero_doppler.incidence_cosines(points, np.ascontiguousarray(normals(points, lat, lon), dtype=np.float64),
                                       satellites, False, out)
        return np.degrees(np.arccos(np.clip(out, -1.0, 1.0))).reshape(shape)

    def incidence_angle(self, lat: ArrayLike, lon: ArrayLike, height: ArrayLike,
                        normal: str = "ellipsoid") -> np.ndarray:
        """Incidence angle (degrees): between the normal and the direction to the satellite.

        ``normal``: 'ellipsoid' (the WGS84 normal) or 'geocentric' (the radius through
        the point, the convention of the annotated incidenceAngle; up to 0.04 degree apart).
        """
        kinds = {"ellipsoid": lambda points, lat, lon: ellipsoid_normal(lat, lon),
                 "geocentric": lambda points, lat, lon: points}
        if normal not in kinds:
            raise ValueError(f"normal must be one of {sorted(kinds)}, not {normal!r}")
        return self._angles(lat, lon, height, kinds[normal])

    def local_incidence_angle(self, lat: ArrayLike, lon: ArrayLike, height: ArrayLike,
                              normal_ecef: ArrayLike) -> np.ndarray:
        """Incidence angle (degrees) on terrain whose normals (ECEF, ``shape + (3,)``) are given."""
        shape = np.broadcast_shapes(np.shape(lat), np.shape(lon), np.shape(height))
        normals = np.broadcast_to(normal_ecef, shape + (3,)).reshape(-1, 3)
        return self._angles(lat, lon, height, lambda points, lat, lon: normals)


def _srgr_grsr_disagreement(conv, image) -> float:
    """Largest |srgr(grsr(gr)) - gr| in pixels over the swath, over all records."""
    ground = np.linspace(0.0, image.number_of_samples * image.range_pixel_spacing, 65)
    worst = 0.0
    for j in range(conv.sr0.size):
        slant = np.polynomial.polynomial.polyval(ground - conv.gr0[j], conv.grsr[j])
        back = np.polynomial.polynomial.polyval(slant - conv.sr0[j], conv.srgr[j])
        worst = max(worst, float(np.abs(back - ground).max()))
    return worst / image.range_pixel_spacing
