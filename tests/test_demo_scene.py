"""The demo's synthetic scene (s1tiling.samples.scene): calibrated with the real product's own LUTs
(ESA's calibration and noise annotations of a real product), it shows VH 6 to 8 dB below VV, each
land-cover class at its backscatter, GRD speckle, and terrain shading from the real SRTM tile."""
import numpy as np
import pytest

from s1tiling.geometry.dem import DemCatalog
from s1tiling.radiometry import calibrate_dn
from s1tiling.s1.product import open_product
from s1tiling.samples.scene import CLASSES, LOOKS, _Geolocation, land_cover, scene_content

PRODUCT = "S1A_IW_GRDH_1SDV_20150222T170725_20150222T170750_004739_005DD8_CEAB.SAFE"


def _window_over(product, lat, lon, size=(512, 3000)):
    """A window of the product around the point (lat, lon), from its geolocation grid."""
    grid = product.annotation("VV").geolocation_grid
    k = int(np.argmin(np.hypot(grid.latitude - lat, grid.longitude - lon)))
    lines, samples = product.shape
    r0 = int(np.clip(grid.line[k] - size[0] // 2, 0, lines - size[0]))
    c0 = int(np.clip(grid.pixel[k] - size[1] // 2, 0, samples - size[1]))
    return np.arange(r0, r0 + size[0]), np.arange(c0, c0 + size[1])


def _sigma0(product, pol, rows, cols, **kwargs):
    """The scene's DNs over the window, calibrated (sigma0, thermal noise removed) as the pipeline does."""
    dn = scene_content(product, pol, **kwargs)(rows[:, None], cols[None, :])
    assert dn.dtype == np.uint16 and dn.min() >= 1
    return calibrate_dn(dn, rows, cols, product.calibration(pol).select("sigma"), product.noise(pol))


def _interior(mask, margin=12):
    """``mask`` without its edges (the scene is computed on a coarse grid, 8 pixels)."""
    out = mask.copy()
    for axis in (0, 1):
        for shift in (margin, -margin):
            out &= np.roll(mask, shift, axis=axis)
    return out


@pytest.fixture(scope="module")
def product(s1_dir):
    return open_product(s1_dir / PRODUCT)


def test_polarisations_classes_and_speckle(product):
    rows, cols = _window_over(product, 50.3, 9.8)
    origin = (50.3, 9.8)
    vv = _sigma0(product, "VV", rows, cols, origin=origin)
    vh = _sigma0(product, "VH", rows, cols, origin=origin)
    difference = 10 * np.log10(np.median(vv) / np.median(vh))
    assert 6.0 <= difference <= 8.0, difference
    assert not np.array_equal(vv, vh)
    lat, lon, _ = _Geolocation(product, "VV").at(rows.astype(float), cols.astype(float))
    cover, parcel_db = land_cover(lat, lon, origin)
    names = list(CLASSES)
    seen = 0
    for k, name in enumerate(names):
        inside = _interior((cover == k) & (parcel_db == 0))  # crops: each parcel its own level
        if inside.sum() < 5000:
            continue
        seen += 1
        for image, which in ((vv, 0), (vh, 1)):
            mean_db = 10 * np.log10(np.mean(image[inside]))  # speckle has mean 1 in intensity
            assert mean_db == pytest.approx(CLASSES[name][which], abs=0.5), (name, which)
        # multi-looked speckle: intensity coefficient of variation 1/sqrt(looks)
        cv = np.std(vv[inside]) / np.mean(vv[inside])
        assert cv == pytest.approx(1 / np.sqrt(LOOKS), rel=0.15), (name, cv)
    assert seen >= 2
    water = cover == names.index("water")
    if water.any():
        assert np.median(vv[water]) < np.median(vv[~water]) / 10


def test_terrain_shading_from_the_dem(product, test_data, tmp_path):
    """Over the real SRTM tile N50E010: slopes facing the radar brighter, slopes facing away darker
    (the scene with the DEM against the same scene on flat ground)."""
    dem_dir = tmp_path / "dem"
    dem_dir.mkdir()
    (dem_dir / "N50E010.hgt").symlink_to(test_data / "dem" / "N50E010.hgt")
    rows, cols = _window_over(product, 50.45, 10.5)
    origin = (50.45, 10.5)
    hilly = _sigma0(product, "VV", rows, cols, origin=origin, dem_dir=dem_dir)
    flat = _sigma0(product, "VV", rows, cols, origin=origin)
    ratio_db = 10 * np.log10(hilly / flat)  # the same speckle draws: the shading alone
    lat, lon, _ = _Geolocation(product, "VV").at(rows.astype(float), cols.astype(float))
    heights = DemCatalog(dem_dir).heights_at(lat, lon)
    # samples increase with range: height falling with range = slope facing the radar
    facing = -np.gradient(heights, product.annotation("VV").image.range_pixel_spacing, axis=1)
    assert np.std(ratio_db) > 0.3
    assert np.median(ratio_db[facing > 0.1]) > 0.5
    assert np.median(ratio_db[facing < -0.1]) < -0.5
