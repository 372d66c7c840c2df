"""Speckle filters (OTB Despeckle's Lee, Frost, Gamma-MAP, Kuan)."""
import math
import shutil
import subprocess

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from s1tiling.errors import ConfigurationError
from s1tiling.filtering import check_filter_options, despeckle, filter_file
from s1tiling.writing import AtomicRasterWriter

FILTERS = [("lee", {"nblooks": 1.0}), ("kuan", {"nblooks": 2.0}), ("gammamap", {"nblooks": 1.0}),
           ("frost", {"deramp": 2.0})]


def speckled(seed=0, shape=(160, 160), mean=0.1, looks=1.0):
    """Fully developed speckle on a flat area: intensity ~ Gamma(L, mean / L)."""
    return np.random.default_rng(seed).gamma(looks, mean / looks, shape).astype(np.float32)


def reference_pixel(window: np.ndarray, method: str, nblooks=None, deramp=None) -> float:
    """OTB's formula (otb*ImageFilter.hxx) for the centre of a square window, zeros left out."""
    radius = window.shape[0] // 2
    centre = float(window[radius, radius])
    valid = window[window != 0].astype(np.float64)
    mean = valid.mean()
    var = valid.var(ddof=1)
    ci2 = var / mean ** 2
    if method == "frost":
        num = den = 0.0
        for dy in range(-radius, radius + 1):
            for dx in range(-radius, radius + 1):
                value = float(window[radius + dy, radius + dx])
                if value != 0:
                    weight = math.exp(-deramp * ci2 * math.hypot(dx, dy))
                    num += weight * value
                    den += weight
        return num / den
    cu2 = 1 / nblooks
    if ci2 < cu2:
        return mean
    if method == "lee":
        w = 1 - cu2 / ci2
    elif method == "kuan":
        w = (1 - cu2 / ci2) / (1 + cu2)
    else:
        if math.sqrt(ci2) >= math.sqrt(2) * math.sqrt(cu2):
            return centre
        alpha = (1 + cu2) / (ci2 - cu2)
        b = alpha - nblooks - 1
        return (b * mean + math.sqrt(mean ** 2 * b ** 2 + 4 * alpha * nblooks * mean * centre)) / (2 * alpha)
    return centre * w + mean * (1 - w)


@pytest.mark.parametrize("method, options", FILTERS)
def test_constant_input_is_unchanged(method, options):
    values = np.full((20, 30), 0.137, dtype=np.float32)
    np.testing.assert_allclose(despeckle(values, method, 2, **options), values, rtol=1e-6)


@pytest.mark.parametrize("method, options", FILTERS)
def test_speckle_variance_drops_mean_kept(method, options):
    values = speckled()
    out = despeckle(values, method, 3, **options)
    assert out.dtype == np.float32
    assert out.var() < 0.5 * values.var()
    assert out.mean() == pytest.approx(values.mean(), rel=0.05)


@pytest.mark.parametrize("method, options", [("lee", {"nblooks": 4.0}), ("kuan", {"nblooks": 3.0}),
                                             ("gammamap", {"nblooks": 4.0}), ("frost", {"deramp": 2.0})])
def test_pixels_match_the_formula(method, options):
    # with these looks, the pixels below take each branch: Ci² < Cu² (5, 27), weighted formula,
    # and for Gamma-MAP Ci >= √2 Cu (22, 9)
    radius = 2
    values = speckled(seed=1, shape=(30, 30), looks=2.0)
    values[:, :8] = 0  # no-data on the left: left out of the statistics, kept at 0
    out = despeckle(values, method, radius, **options)
    for y, x in [(10, 15), (17, 8), (22, 9), (5, 27)]:
        window = values[y - radius:y + radius + 1, x - radius:x + radius + 1]
        assert out[y, x] == pytest.approx(reference_pixel(window, method, **options), rel=1e-5), (y, x)
    assert (out[:, :8] == 0).all()
    assert (out[:, 8:] > 0).all()


@pytest.mark.parametrize("method, options", FILTERS)
def test_filter_file_by_strips(tmp_path, method, options):
    values = speckled(seed=2, shape=(45, 38))
    values[:3, :] = 0
    src = tmp_path / "s1a_33NWB_vv_DES_007_20200108t044150.tif"
    with AtomicRasterWriter(src, crs="EPSG:32633", transform=from_origin(499980, 200040, 10, 10),
                            width=38, height=45, tags={"FLYING_UNIT_CODE": "s1a", "POLARIZATION": "vv"}) as out:
        out.write(values)
    dst = tmp_path / "filtered" / "s1a_33NWB_vv_DES_007_20200108t044150_filtered.tif"
    filter_file(src, dst, method, 2, strip_rows=4, **options)
    with rasterio.open(dst) as ds:
        np.testing.assert_array_equal(ds.read(1), despeckle(values, method, 2, **options))
        tags = ds.tags()
        assert ds.nodata == 0
    assert tags["FILTERED"] == "true" and tags["FILTERING_METHOD"] == method
    assert tags["FILTERING_WINDOW_RADIUS"] == "2" and tags["POLARIZATION"] == "vv"
    assert tags["TIFFTAG_IMAGEDESCRIPTION"] == "Orthorectified and despeckled Sentinel-1A IW GRD S2 tile"


def test_option_errors():
    with pytest.raises(ConfigurationError, match="filter"):
        check_filter_options("median", 1, nblooks=1)
    with pytest.raises(ConfigurationError, match="window_radius"):
        check_filter_options("lee", 0, nblooks=1)
    with pytest.raises(ConfigurationError, match="deramp"):
        check_filter_options("frost", 1, nblooks=1)
    with pytest.raises(ConfigurationError, match="nblooks"):
        check_filter_options("kuan", 1, deramp=0.1)


@pytest.mark.otb
@pytest.mark.parametrize("method, option, value", [("lee", "nblooks", 1.0), ("kuan", "nblooks", 3.0),
                                                   ("gammamap", "nblooks", 4.0), ("frost", "deramp", 0.1)])
def test_matches_otb_despeckle(tmp_path, method, option, value):
    if not shutil.which("otbcli_Despeckle"):
        pytest.skip("OTB command-line applications not installed")
    rng = np.random.default_rng(3)
    values = (np.kron(rng.random((5, 6)) * 0.3 + 0.02, np.ones((8, 8)))
              * rng.gamma(1.0, 1.0, (40, 48)) + 1e-4).astype(np.float32)  # no zeros: OTB counts them
    with AtomicRasterWriter(tmp_path / "in.tif", crs="EPSG:32633", transform=from_origin(0, 0, 10, 10),
                            width=48, height=40) as out:
        out.write(values)
    subprocess.run(["otbcli_Despeckle", "-in", tmp_path / "in.tif", "-filter", method, f"-filter.{method}.rad", "2",
                    f"-filter.{method}.{option}", str(value), "-out", tmp_path / "otb.tif", "float"],
                   check=True, capture_output=True)
    with rasterio.open(tmp_path / "otb.tif") as ds:
        np.testing.assert_allclose(despeckle(values, method, 2, **{option: value}), ds.read(1), rtol=1e-5)
