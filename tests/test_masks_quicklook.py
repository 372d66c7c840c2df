"""Border masks (S1Tiling: BandMath + BinaryMorphologicalOperation ball r=5 opening) and quicklooks."""
import shutil
import subprocess

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from s1tiling.masks import border_mask, border_mask_file
from s1tiling.quicklook import write_quicklook
from s1tiling.writing import AtomicRasterWriter

CRS = "EPSG:32633"
TRANSFORM = from_origin(499980.0, 200040.0, 10.0, 10.0)


def opening_by_definition(data: np.ndarray, radius: int = 5) -> np.ndarray:
    """Opening from its set definition: union of the balls that fit in the data
    (outside the image counts as data for the fit, as ITK's erosion does)."""
    limit = (radius + 0.5) ** 2
    ball = [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)
            if dy * dy + dx * dx <= limit]
    height, width = data.shape
    out = np.zeros(data.shape, dtype=np.uint8)
    for y in range(height):
        for x in range(width):
            cells = [(y + dy, x + dx) for dy, dx in ball]
            inside = [(r, c) for r, c in cells if 0 <= r < height and 0 <= c < width]
            if all(data[r, c] for r, c in inside):
                for r, c in inside:
                    out[r, c] = 1
    return out


def synthetic_tile(seed=0, height=70, width=64):
    rng = np.random.default_rng(seed)
    values = np.zeros((height, width), dtype=np.float32)
    values[12:60, 0:50] = rng.uniform(0.01, 0.5, (48, 50))  # data touching the left image edge
    values[0:4, 30:64] = 0.2                                  # thin strip along the top edge
    values[5, 5] = 0.3                                         # isolated speckle pixels
    values[64:67, 55:58] = 0.3
    values[30, 20] = 0.0                                       # a no-data pixel inside the data
    return values


def write_tile(path, values, tags=None):
    with AtomicRasterWriter(path, crs=CRS, transform=TRANSFORM, width=values.shape[1],
                            height=values.shape[0], tags=tags or {}) as out:
        out.write(values)


def test_border_mask_opening():
    values = synthetic_tile()
    mask = border_mask(values)
    assert mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, opening_by_definition(values != 0))
    assert mask[5, 5] == 0 and mask[64:67, 55:58].sum() == 0    # specks removed
    assert mask[0:4, 30:64].sum() == 0                          # 4-pixel strip narrower than the ball
    interior = mask[20:52, 8:42].copy()
    assert interior[30 - 20, 20 - 8] == 0                       # real no-data stays masked
    interior[30 - 20, 20 - 8] = 1
    assert interior.all()                                       # the rest of the interior is kept
    assert mask[20:52, 0].all()                                 # the image edge does not erode the data
    assert mask[12, 0] == 1 and mask[12, 49] == 0                # corner touching the edge kept, free corner rounded
    assert mask[:, 50:][values[:, 50:] == 0].sum() == 0


def test_border_mask_file_by_strips(tmp_path):
    values = synthetic_tile(seed=1)
    src = tmp_path / "s1a_33NWB_vv_DES_007_20200108txxxxxx.tif"
    write_tile(src, values, {"FLYING_UNIT_CODE": "s1a", "IMAGE_TYPE": "BACKSCATTERING", "POLARIZATION": "vv"})
    out = tmp_path / "s1a_33NWB_vv_DES_007_20200108txxxxxx_BorderMask.tif"
    border_mask_file(src, out, strip_rows=7)
    with rasterio.open(out) as ds:
        np.testing.assert_array_equal(ds.read(1), border_mask(values))
        assert ds.dtypes == ("uint8",) and ds.transform == TRANSFORM and ds.crs.to_epsg() == 32633
        tags = ds.tags()
    assert tags["IMAGE_TYPE"] == "MASK" and tags["POLARIZATION"] == "vv"
    assert tags["TIFFTAG_IMAGEDESCRIPTION"] == "Orthorectified Sentinel-1A IW GRD smoothed border mask S2 tile"


@pytest.mark.otb
def test_border_mask_matches_otb(tmp_path):
    if not (shutil.which("otbcli_BandMath") and shutil.which("otbcli_BinaryMorphologicalOperation")):
        pytest.skip("OTB command-line applications not installed")
    rng = np.random.default_rng(5)
    values = np.kron(rng.random((12, 13)), np.ones((6, 6)))[:70, :75].astype(np.float32)
    values[values < 0.4] = 0
    values[rng.random(values.shape) < 0.01] = 0.5
    write_tile(tmp_path / "in.tif", values)
    subprocess.run(["otbcli_BandMath", "-il", tmp_path / "in.tif", "-exp", "im1b1==0?0:1",
                    "-out", tmp_path / "bm.tif", "uint8"], check=True, capture_output=True)
    subprocess.run(["otbcli_BinaryMorphologicalOperation", "-in", tmp_path / "bm.tif", "-structype", "ball",
                    "-xradius", "5", "-yradius", "5", "-filter", "opening", "-out", tmp_path / "op.tif", "uint8"],
                   check=True, capture_output=True)
    with rasterio.open(tmp_path / "op.tif") as ds:
        np.testing.assert_array_equal(border_mask(values), ds.read(1))


def test_quicklook(tmp_path):
    values = np.full((200, 160), 0.25, dtype=np.float32)
    values[:, 80:] = 0.0  # no-data half
    src = tmp_path / "tile.tif"
    write_tile(src, values)
    out = write_quicklook(src, tmp_path / "_QL" / "tile_quicklook.jpg", ratio_percent=10, scale=0.5)
    assert sorted(p.name for p in out.parent.iterdir() if not p.name.endswith(".aux.xml")) == [out.name]
    with rasterio.open(out) as ds:
        assert ds.driver == "JPEG"
        assert (ds.height, ds.width, ds.count) == (20, 16, 1)
        grey = ds.read(1).astype(int)
        assert ds.transform.a == pytest.approx(100.0) and ds.transform.c == pytest.approx(499980.0)
    # 0.25 / 0.5 * 255 = 127.5; JPEG may move levels by a little
    assert np.abs(grey[2:-2, 1:6] - 128).max() <= 2
    assert grey[2:-2, 10:].max() <= 2


def test_quicklook_default_is_a_db_stretch(tmp_path):
    """Without a scale key: grey levels from the image's 2nd to 98th percentile in dB, so dark
    fields (-20 dB), crops (-10 dB) and a few bright towns (0 dB) are all told apart, with a small
    saturated fraction, where a linear scale shows all but the towns nearly black."""
    values = np.full((200, 200), 0.01, dtype=np.float32)  # -20 dB
    values[:, 100:] = 0.1  # -10 dB
    values[:20, :20] = 1.0  # 0 dB: 1% of the pixels
    values[190:, :] = 0.0  # no-data
    src = tmp_path / "tile.tif"
    write_tile(src, values)
    out = write_quicklook(src, tmp_path / "tile_quicklook.jpg", ratio_percent=10)
    with rasterio.open(out) as ds:
        grey = ds.read(1).astype(int)
        tags = ds.tags()
    low, high = (float(v) for v in tags["QUICKLOOK_DB_RANGE"].split())
    assert tags["QUICKLOOK_SCALE"] == "dB" and (low, high) == (pytest.approx(-20, abs=0.1), pytest.approx(-10, abs=0.1))
    # JPEG moves levels a little (and rings beside the bright block): medians of each region
    assert np.median(grey[6:16, 4:8]) <= 3  # -20 dB: black (1)
    assert np.median(grey[4:16, 12:17]) >= 252  # -10 dB: white
    assert np.median(grey[:2, :2]) >= 252  # 0 dB: white too (above the 98th percentile)
    assert grey[19:, :].max() <= 4  # no-data stays 0 (JPEG: nearly)


def test_quicklook_linear_scale_when_set(tmp_path):
    values = np.full((100, 100), 0.05, dtype=np.float32)
    src = tmp_path / "tile.tif"
    write_tile(src, values)
    out = write_quicklook(src, tmp_path / "ql.jpg", ratio_percent=10, scale=0.1)
    with rasterio.open(out) as ds:
        assert ds.tags()["QUICKLOOK_SCALE"] == "0.1" and "QUICKLOOK_DB_RANGE" not in ds.tags()
        assert np.abs(ds.read(1).astype(int) - 128).max() <= 2
