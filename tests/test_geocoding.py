"""Range-Doppler geocoding against ESA's geolocation grids of the real annotations.

The oracle of a grid point is its annotated azimuthTime and slantRangeTime. The
reference solver below is independent plain numpy (its own Lagrange interpolation,
bisection on the Doppler condition, bisection for polynomial inverses).
"""
import functools
import logging

import numpy as np
import pyproj
import pytest

from e2e_helpers import smooth_in_time
from s1tiling.geometry import SarModel, read_eof
from s1tiling.geometry.ellipsoid import ecef_to_geodetic_rad, ellipsoid_normal, geodetic_to_ecef
from s1tiling.geometry.orbit import StateVectors
from s1tiling.s1.annotation import SPEED_OF_LIGHT, parse_annotation
from s1tiling.times import seconds_since

PRODUCTS = [
    "S1A_IW_GRDH_1SDV_20150203T043109_20150203T043134_004454_00574F_6D00.SAFE",
    "S1A_IW_GRDH_1SDV_20150222T170725_20150222T170750_004739_005DD8_CEAB.SAFE",
    "S1A_IW_GRDH_1SDV_20150222T170750_20150222T170815_004739_005DD8_3768.SAFE",
    "S1A_IW_GRDH_1SDV_20210119T031653_20210119T031718_036201_043ED0_8255.SAFE",
    "S1A_IW_GRDH_1SDV_20210809T173953_20210809T174018_039156_049F13_6FF8.SAFE",
    "S1A_IW_GRDH_1SDV_20260606T181903_20260606T181928_064852_082C02_1C0B.SAFE",  # antimeridian
    "S1C_S4_GRDH_1SDH_20250118T171404_20250118T171421_000638_000538_4B8B.SAFE",
]
PRODUCTS_DISAGREEING = PRODUCTS[1]  # IPF 2.36: srgr and grsr disagree by up to 4 pixels
A, F = 6378137.0, 1 / 298.257223563
E2 = F * (2 - F)


# --------------------------------------------------------------------------- reference


def wgs84_to_ecef(lat, lon, h):
    lat, lon = np.radians(lat), np.radians(lon)
    n = A / np.sqrt(1 - E2 * np.sin(lat) ** 2)
    x = (n + h) * np.cos(lat) * np.cos(lon)
    y = (n + h) * np.cos(lat) * np.sin(lon)
    return np.stack([x, y, (n * (1 - E2) + h) * np.sin(lat)], -1)


def lagrange(nodes, values, t, order=8):
    """Lagrange interpolation of values (N x 3) at times t (M,) on the `order` nearest nodes."""
    first = np.clip(np.searchsorted(nodes, t) - order // 2, 0, len(nodes) - order)
    idx = first[:, None] + np.arange(order)
    x = nodes[idx]
    out = np.zeros((t.size, values.shape[1]))
    for j in range(order):
        w = np.ones(t.size)
        for k in range(order):
            if k != j:
                w *= (t - x[:, k]) / (x[:, j] - x[:, k])
        out += w[:, None] * values[idx[:, j]]
    return out


def records_value(annotation, t, x, to_ground, smooth=True):
    """srgr (to_ground) or grsr polynomials of every record evaluated at x, interpolated at
    times t: smoothly (:func:`e2e_helpers.smooth_in_time`), or linearly between the two records
    around t (the convention of OTB and of this package before)."""
    c = annotation.coordinate_conversion
    ref = annotation.image.first_line_time
    rt = seconds_since(c.azimuth_time, ref)
    t, x = np.broadcast_arrays(np.asarray(t, dtype=float), np.asarray(x, dtype=float))
    origin, coefs = (c.sr0, c.srgr) if to_ground else (c.gr0, c.grsr)
    ev = np.array([sum(coefs[jj, k] * (x - origin[jj]) ** k for k in range(coefs.shape[1])) for jj in range(len(rt))])
    if smooth:
        return smooth_in_time(rt, ev, t)
    j = np.clip(np.searchsorted(rt, t, side="right") - 1, 0, len(rt) - 2)
    w = (t - rt[j]) / (rt[j + 1] - rt[j])
    first, second = np.take_along_axis(ev, j[None], 0)[0], np.take_along_axis(ev, (j + 1)[None], 0)[0]
    return first + (second - first) * w


def bisect(fun, lo, hi, iterations=64):
    """Vectorized bisection of an increasing function's root in [lo, hi]."""
    lo, hi = np.array(lo, dtype=float), np.array(hi, dtype=float)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        below = fun(mid) < 0
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return 0.5 * (lo + hi)


def polynomials_disagree(annotation):
    """True when srgr(grsr(gr)) differs from gr by more than 0.1 pixel somewhere."""
    image = annotation.image
    gr = np.linspace(0, image.number_of_samples * image.range_pixel_spacing, 50)
    rt = seconds_since(annotation.coordinate_conversion.azimuth_time, image.first_line_time)
    t = np.full(gr.size, rt[len(rt) // 2])
    back = records_value(annotation, t, records_value(annotation, t, gr, False), True)
    return np.abs(back - gr).max() > 0.1 * image.range_pixel_spacing


def ground_range(annotation, t, slant, use_grsr):
    if not use_grsr:
        return records_value(annotation, t, slant, True)
    def excess(gr):
        return records_value(annotation, t, gr, False) - slant

    return bisect(excess, np.full(t.size, -2e4), np.full(t.size, 4e5))


def reference_ground_to_sar(annotation, lat, lon, h):
    """(line, pixel, satellite positions) by bisection on the Doppler, plain numpy."""
    image, orbit = annotation.image, annotation.orbit
    nodes = seconds_since(orbit.times, image.first_line_time)
    p = wgs84_to_ecef(lat, lon, h)

    def doppler(t):  # decreasing in t: return its opposite
        return -np.sum((p - lagrange(nodes, orbit.positions, t)) * lagrange(nodes, orbit.velocities, t), axis=1)

    duration = image.number_of_lines * image.azimuth_time_interval
    t = bisect(doppler, np.full(lat.size, -5.0), np.full(lat.size, duration + 5.0))
    sat = lagrange(nodes, orbit.positions, t)
    slant = np.linalg.norm(p - sat, axis=1)
    gr = ground_range(annotation, t, slant, polynomials_disagree(annotation))
    return t / image.azimuth_time_interval, gr / image.range_pixel_spacing, sat


# --------------------------------------------------------------------------- fixtures


@functools.cache
def _case(annotation_path):
    annotation = parse_annotation(annotation_path)
    g = annotation.geolocation_grid
    image = annotation.image
    t = seconds_since(g.azimuth_time, image.first_line_time)
    exact_line = t / image.azimuth_time_interval
    exact_ground = records_value(annotation, t, SPEED_OF_LIGHT * g.slant_range_time / 2, True)
    exact_pixel = exact_ground / image.range_pixel_spacing
    ref_line, ref_pixel, sat = reference_ground_to_sar(annotation, g.latitude, g.longitude, g.height)
    return annotation, SarModel.from_annotation(annotation), exact_line, exact_pixel, ref_line, ref_pixel, sat


@pytest.fixture(params=PRODUCTS, ids=lambda name: name[17:32])
def case(request, s1_dir):
    safe = s1_dir / request.param
    if not safe.is_dir():
        pytest.skip(f"{safe} not found")
    return _case(sorted((safe / "annotation").glob("*-001.xml"))[0])


def _distance(lat1, lon1, lat2, lon2):
    return pyproj.Geod(ellps="WGS84").inv(lon1, lat1, lon2, lat2)[2]


# --------------------------------------------------------------------------- tests


def test_ground_to_sar_against_the_grid(case):
    annotation, model, exact_line, exact_pixel, ref_line, ref_pixel, _ = case
    g = annotation.geolocation_grid
    line, pixel = model.ground_to_sar(g.latitude, g.longitude, g.height)
    # Always: the same solution as the independent reference solver.
    assert np.abs(line - ref_line).max() < 0.01
    assert np.abs(pixel - ref_pixel).max() < 0.01
    offset = np.mean(ref_line - exact_line)
    print(f"{annotation.start_time}: azimuth offset of the annotation {offset:+.4f} line")
    if abs(offset) < 0.02:  # an internally consistent annotation: its own times are reproduced
        assert np.sqrt(np.mean((line - exact_line) ** 2)) < 0.02
        assert np.sqrt(np.mean((pixel - exact_pixel) ** 2)) < 0.02
    else:  # a constant azimuth offset, as DOMAIN.md describes, and nothing else
        assert 0.03 < abs(offset) < 0.3
        assert np.std(line - exact_line) < 0.01


def test_input_shapes(case):
    annotation, model, *_ = case
    g = annotation.geolocation_grid
    line, pixel = model.ground_to_sar(g.latitude, g.longitude, g.height)
    line2, pixel2 = model.ground_to_sar(g.latitude.reshape(10, -1), g.longitude.reshape(10, -1),
                                        g.height.reshape(10, -1))
    assert line2.shape == (10, g.latitude.size // 10)
    np.testing.assert_allclose(line2.ravel(), line, atol=1e-6)
    np.testing.assert_allclose(pixel2.ravel(), pixel, atol=1e-6)


def test_sar_to_ground(case):
    annotation, model, exact_line, exact_pixel, ref_line, ref_pixel, _ = case
    g = annotation.geolocation_grid
    # The reference solution absorbs the annotation's own azimuth offset, if any.
    lat, lon = model.sar_to_ground(ref_line, ref_pixel, g.height)
    assert _distance(lat, lon, g.latitude, g.longitude).max() < 0.5
    assert np.all(np.abs(lon) <= 180)
    if abs(np.mean(ref_line - exact_line)) < 0.02:
        lat, lon = model.sar_to_ground(exact_line, exact_pixel, g.height)
        assert _distance(lat, lon, g.latitude, g.longitude).max() < 0.5
    # Exact inverse of ground_to_sar.
    line, pixel = model.ground_to_sar(g.latitude, g.longitude, g.height)
    lat, lon = model.sar_to_ground(line, pixel, g.height)
    assert _distance(lat, lon, g.latitude, g.longitude).max() < 0.005


def test_incidence_angles(case):
    annotation, model, *_, sat = case
    g = annotation.geolocation_grid
    # ESA's incidenceAngle is measured from the geocentric radius through the point.
    geocentric = model.incidence_angle(g.latitude, g.longitude, g.height, normal="geocentric")
    assert np.abs(geocentric - g.incidence_angle).max() < 0.01
    # From the ellipsoid normal: checked against the reference solver's satellite positions.
    p = wgs84_to_ecef(g.latitude, g.longitude, g.height)
    look = (sat - p) / np.linalg.norm(sat - p, axis=1)[:, None]
    lat, lon = np.radians(g.latitude), np.radians(g.longitude)
    normal = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], -1)
    expected = np.degrees(np.arccos(np.sum(look * normal, axis=1)))
    ellipsoidal = model.incidence_angle(g.latitude, g.longitude, g.height)
    assert np.abs(ellipsoidal - expected).max() < 1e-4
    assert np.abs(ellipsoidal - g.incidence_angle).max() < 0.05
    # Local incidence: the ellipsoid normal gives the same; a slope facing the radar by 5 deg, 5 deg less.
    same = model.local_incidence_angle(g.latitude, g.longitude, g.height, normal)
    np.testing.assert_allclose(same, ellipsoidal, atol=1e-9)
    axis = np.cross(normal, look)
    axis /= np.linalg.norm(axis, axis=1)[:, None]
    a = np.radians(5.0)
    tilted = normal * np.cos(a) + np.cross(axis, normal) * np.sin(a)  # Rodrigues, axis ⟂ normal
    facing = model.local_incidence_angle(g.latitude, g.longitude, g.height, tilted)
    np.testing.assert_allclose(facing, ellipsoidal - 5.0, atol=1e-6)


def test_range_conversion_is_smooth_in_time(case):
    """The slant -> ground range conversion gives each record's own value at its time and has a
    continuous slope in time across the records (no kink for the coarse geometry grid to miss),
    where linear interpolation between records jumps."""
    annotation, model, *_ = case
    c = annotation.coordinate_conversion
    rt = seconds_since(c.azimuth_time, annotation.image.first_line_time)
    slant = np.full(rt.size, float(np.median(c.sr0)) + 0.8 * annotation.image.number_of_samples
                    * annotation.image.range_pixel_spacing)
    own = [np.polynomial.polynomial.polyval(slant[j] - c.sr0[j], c.srgr[j]) for j in range(rt.size)]
    if model.range_polynomial == "srgr":
        np.testing.assert_allclose(model.ground_range(rt, slant), own, atol=1e-6)
    dt = 1e-6  # seconds
    inner = rt[1:-1]

    def slopes(convert):
        left = (convert(inner) - convert(inner - dt)) / dt
        right = (convert(inner + dt) - convert(inner)) / dt
        return left, right

    left, right = slopes(lambda t: model.ground_range(t, slant[1:-1]))
    spacing = annotation.image.range_pixel_spacing
    assert np.abs(right - left).max() / spacing < 0.001  # pixels per second (the curvature gives ~2e-5 over 2 dt)
    if model.range_polynomial == "srgr":
        left, right = slopes(lambda t: records_value(annotation, t, slant[1:-1], True, smooth=False))
        assert np.abs(right - left).max() / spacing > 0.5  # the kinks of linear interpolation


def test_pixels_against_esa_grid(case):
    """ESA computes the (pixel, slantRangeTime) pairs of its geolocation grid with the record
    nearest to each grid line; no interpolation in time reproduces that step function between
    records, but the smooth one is as close to ESA's grid as linear interpolation was."""
    annotation, model, *_ = case
    if model.range_polynomial != "srgr":
        pytest.skip("srgr disagrees with grsr in this annotation: its grid pixels are not reproduced")
    g = annotation.geolocation_grid
    _, pixel = model.ground_to_sar(g.latitude, g.longitude, g.height)
    t = seconds_since(g.azimuth_time, annotation.image.first_line_time)
    slant = SPEED_OF_LIGHT * g.slant_range_time / 2
    linear = records_value(annotation, t, slant, True, smooth=False) / annotation.image.range_pixel_spacing
    smooth_rms = np.sqrt(np.mean((pixel - g.pixel) ** 2))
    linear_rms = np.sqrt(np.mean((linear - g.pixel) ** 2))
    print(f"{annotation.start_time}: rms vs ESA's grid pixels: smooth {smooth_rms:.3f}, linear {linear_rms:.3f}")
    assert smooth_rms <= linear_rms + 0.02
    assert np.abs(pixel - g.pixel).max() <= np.abs(linear - g.pixel).max() + 0.05


def test_range_polynomial_choice(case):
    """Where srgr and grsr disagree (IPF 2.36), grsr is the one the annotated pixels follow."""
    annotation, model, _, exact_pixel, _, _, _ = case
    disagree = polynomials_disagree(annotation)
    assert model.range_polynomial == ("grsr" if disagree else "srgr")
    if disagree:
        g = annotation.geolocation_grid
        _, pixel = model.ground_to_sar(g.latitude, g.longitude, g.height)
        assert np.abs(pixel - g.pixel).max() < 2.0  # the annotated (rounded) pixel
        # as close to ESA's grid as the products whose polynomials agree (0.06 to 0.31 px rms)
        assert np.sqrt(np.mean((pixel - g.pixel) ** 2)) < 0.6
        assert np.abs(exact_pixel - g.pixel).max() > 3.0  # srgr's wiggle


def test_polynomial_disagreement_logged_once_per_product_at_info(s1_dir, caplog):
    """The early products' srgr/grsr disagreement is told once per product, at INFO, as harmless."""
    from s1tiling.geometry import sar_model

    annotation = parse_annotation(sorted((s1_dir / PRODUCTS_DISAGREEING).glob("annotation/*-001.xml"))[0])
    sar_model._POLYNOMIALS_REPORTED.clear()
    with caplog.at_level(logging.DEBUG, logger="s1tiling"):
        for _ in range(3):
            assert SarModel.from_annotation(annotation).range_polynomial == "grsr"
    told = [r for r in caplog.records if "srgr and grsr" in r.getMessage()]
    assert len(told) == 1 and told[0].levelno == logging.INFO
    assert "uses grsr" in told[0].getMessage() and "unaffected" in told[0].getMessage()


def test_precise_orbit_override(case, orbits_dir):
    annotation, model, *_ = case
    g = annotation.geolocation_grid
    o = annotation.orbit
    precise = StateVectors(o.times, o.positions, o.velocities, source="POEORB")
    overridden = SarModel.from_annotation(annotation, state_vectors=precise)
    assert model.orbit_source == "annotation" and overridden.orbit_source == "POEORB"
    points = g.latitude, g.longitude, g.height
    np.testing.assert_allclose(overridden.ground_to_sar(*points), model.ground_to_sar(*points), atol=1e-6)
    elsewhere = read_eof(sorted(orbits_dir.glob("*.EOF"))[0])
    with pytest.raises(ValueError, match="do not cover"):
        SarModel.from_annotation(annotation, state_vectors=elsewhere)


def test_points_outside_the_product(case):
    annotation, model, *_ = case
    g = annotation.geolocation_grid
    lat = np.clip(g.latitude + np.where(annotation.pass_direction == "Ascending", 3.0, -3.0), -89, 89)
    line, _ = model.ground_to_sar(lat, g.longitude, g.height)
    assert np.all(np.isnan(line) | (line > annotation.image.number_of_lines + 1000))


def test_time_helpers(case):
    annotation, model, *_ = case
    g = annotation.geolocation_grid
    seconds = seconds_since(g.azimuth_time, annotation.image.first_line_time)
    line = seconds / model.azimuth_time_interval
    np.testing.assert_allclose(model.azimuth_time(line), seconds, atol=1e-9)
    slant = SPEED_OF_LIGHT * g.slant_range_time / 2
    pixel = model.ground_range(model.azimuth_time(line), slant) / model.range_pixel_spacing
    np.testing.assert_allclose(model.slant_range(line, pixel), slant, atol=1e-4)


def test_ellipsoid_against_proj():
    rng = np.random.default_rng(1)
    lat, lon, h = rng.uniform(-89.9, 89.9, 500), rng.uniform(-180, 180, 500), rng.uniform(-500, 9000, 500)
    x, y, z = geodetic_to_ecef(lat, lon, h)
    to_ecef = pyproj.Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)
    np.testing.assert_allclose(np.stack([x, y, z]), np.stack(to_ecef.transform(lon, lat, h)), atol=1e-6)
    lat2, lon2, h2 = np.array([ecef_to_geodetic_rad(*p) for p in zip(x, y, z)]).T
    lat2, lon2 = np.degrees(lat2), np.degrees(lon2)
    np.testing.assert_allclose(lat2, lat, atol=1e-10)
    np.testing.assert_allclose(lon2, lon, atol=1e-10)
    np.testing.assert_allclose(h2, h, atol=1e-6)
    n = ellipsoid_normal(lat, lon)
    p_up = np.stack(geodetic_to_ecef(lat, lon, h + 1.0), -1) - np.stack([x, y, z], -1)
    np.testing.assert_allclose(n, p_up, atol=1e-8)
