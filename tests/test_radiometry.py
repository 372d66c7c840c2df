"""Calibration, thermal noise removal and border cut on the real LUTs.

The reference is computed here, independently, in plain Python on the raw XML numbers
(xml.etree + lists): value = (DN**2 - eta) / A**2, A and eta interpolated linearly along
pixel within each vector, then linearly in line between the two vectors around the line
(end segments extrapolated); new-format noise multiplied by the azimuth block factor
(1 outside every block).
"""
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from s1tiling import open_product
from s1tiling.radiometry import BorderCut, border_cut_params, calibrate, calibrate_dn
from s1tiling.samples.testing import build_product

OLD_NOISE = "S1A_IW_GRDH_1SDV_20150203T043109_20150203T043134_004454_00574F_6D00"  # IPF 2.70, noiseVector
ZERO_NOISE = "S1A_IW_GRDH_1SDV_20150222T170725_20150222T170750_004739_005DD8_CEAB"  # IPF 2.36, all zero
NEW_NOISE = "S1A_IW_GRDH_1SDV_20210809T173953_20210809T174018_039156_049F13_6FF8"  # IPF 3.31, 3 blocks
MANY_BLOCKS = "S1A_IW_GRDH_1SDV_20260606T181903_20260606T181928_064852_082C02_1C0B"  # IPF 4.03, 10 blocks
STRIPMAP = "S1C_S4_GRDH_1SDH_20250118T171404_20250118T171421_000638_000538_4B8B"  # no azimuth blocks
SOUTH = "S1A_IW_GRDH_1SDV_20210119T031653_20210119T031718_036201_043ED0_8255"
ALL = [OLD_NOISE, ZERO_NOISE, NEW_NOISE, MANY_BLOCKS, STRIPMAP, SOUTH]
TAGS = {"sigma": "sigmaNought", "beta": "betaNought", "gamma": "gamma", "dn": "dn"}


# ---------------------------------------------------------------------------- plain-Python reference


def raw_vectors(path, vector_tag, lut_tag):
    """[(line, [pixels], [values])] straight from the XML."""
    out = []
    for v in ET.parse(path).getroot().iter(vector_tag):
        out.append((int(v.find("line").text), [int(x) for x in v.find("pixel").text.split()],
                    [float(x) for x in v.find(lut_tag).text.split()]))
    return out


def raw_blocks(path):
    out = []
    for b in ET.parse(path).getroot().iter("noiseAzimuthVector"):
        out.append(dict(
            l0=int(b.find("firstAzimuthLine").text), l1=int(b.find("lastAzimuthLine").text),
            p0=int(b.find("firstRangeSample").text), p1=int(b.find("lastRangeSample").text),
            lines=[int(x) for x in b.find("line").text.split()],
            lut=[float(x) for x in b.find("noiseAzimuthLut").text.split()],
        ))
    return out


def linear(x, xs, ys):
    if len(xs) == 1:
        return ys[0]
    i = 0
    while i < len(xs) - 2 and xs[i + 1] <= x:
        i += 1
    t = (x - xs[i]) / (xs[i + 1] - xs[i])
    return (1 - t) * ys[i] + t * ys[i + 1]


def bilinear(vectors, line, pixel):
    lines = [v[0] for v in vectors]
    i = 0
    while i < len(lines) - 2 and lines[i + 1] <= line:
        i += 1
    v0 = linear(pixel, vectors[i][1], vectors[i][2])
    v1 = linear(pixel, vectors[i + 1][1], vectors[i + 1][2])
    t = (line - lines[i]) / (lines[i + 1] - lines[i])
    return (1 - t) * v0 + t * v1


def azimuth_factor(blocks, line, pixel):
    for b in blocks:
        if b["l0"] <= line <= b["l1"] and b["p0"] <= pixel <= b["p1"]:
            return linear(line, b["lines"], b["lut"])
    return 1.0


class Reference:
    """Expected calibrated values of one product and polarisation."""

    def __init__(self, safe, pol, calibration="sigma"):
        product = open_product(safe)
        cal_path = safe / product.relative_path("calibration", pol)
        noise_path = safe / product.relative_path("noise", pol)
        self.cal = raw_vectors(cal_path, "calibrationVector", TAGS[calibration])
        root = ET.parse(noise_path).getroot()
        if root.find("noiseRangeVectorList") is not None:
            self.noise = raw_vectors(noise_path, "noiseRangeVector", "noiseRangeLut")
            self.blocks = raw_blocks(noise_path)
        else:
            self.noise = raw_vectors(noise_path, "noiseVector", "noiseLut")
            self.blocks = []

    def eta(self, line, pixel):
        return bilinear(self.noise, line, pixel) * azimuth_factor(self.blocks, line, pixel)

    def value(self, dn, line, pixel, remove_noise, lower=1e-7):
        if dn == 0:
            return 0.0
        a = bilinear(self.cal, line, pixel)
        signal = dn * dn - (self.eta(line, pixel) if remove_noise else 0.0)
        return lower if signal <= 0 else signal / (a * a)


def assert_close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=0)


def dn_pattern(lines, samples):
    """Arbitrary DNs (1..3000), with one no-data pixel and some tiny ones."""
    dn = (np.add.outer(np.asarray(lines) * 37, np.asarray(samples) * 11) % 3000 + 1).astype(np.uint16)
    dn[0, 0] = 0
    dn[1, 1:4] = [1, 2, 5]  # below the noise: -> lower_signal_value when noise is removed
    return dn


# ---------------------------------------------------------------------------- LUT interpolation


@pytest.mark.parametrize("name", ALL)
def test_at_lut_nodes_the_raw_values(s1_dir, name):
    safe = s1_dir / f"{name}.SAFE"
    product = open_product(safe)
    pol = product.polarisations[0]
    ref = Reference(safe, pol)
    k = len(ref.cal) // 2
    line, pixels, sigma = ref.cal[k]
    picks = [0, 1, 2, len(pixels) // 2, len(pixels) - 1]
    cols = np.array([pixels[j] for j in picks])
    dn = np.full((1, len(cols)), 1000, np.uint16)
    out = calibrate_dn(dn, [line], cols, product.calibration(pol).select("sigma"))
    assert_close(out[0], [1e6 / sigma[j] ** 2 for j in picks])


def grid_for(name, product, ref):
    """Lines and samples around nodes, between them, at image and block edges."""
    n_lines, n_samples = product.shape
    cal_lines = [v[0] for v in ref.cal]
    lines = {0, 1, cal_lines[1] - 1, cal_lines[1], cal_lines[1] + 1, (cal_lines[3] + cal_lines[4]) // 2,
             n_lines // 2 + 7, n_lines - 2, n_lines - 1}
    lines |= {v[0] for v in ref.noise[1:3]} | {ref.noise[-1][0]}
    samples = {0, 1, 39, 40, 41, 59, n_samples // 3 + 5, n_samples - 2, n_samples - 1}
    for b in ref.blocks:
        lines |= {b["l0"], b["l1"], b["lines"][-1], min(b["l1"] + 1, n_lines - 1)}
        samples |= {b["p0"], b["p1"], max(b["p0"] - 1, 0), min(b["p1"] + 1, n_samples - 1)}
    return np.array(sorted(lines)), np.array(sorted(samples))


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("remove_noise", [True, False])
def test_calibrate_dn_against_plain_python(s1_dir, name, remove_noise):
    safe = s1_dir / f"{name}.SAFE"
    product = open_product(safe)
    pol = product.polarisations[-1]
    ref = Reference(safe, pol)
    lines, samples = grid_for(name, product, ref)
    dn = dn_pattern(lines, samples)
    noise = product.noise(pol) if remove_noise else None
    out = calibrate_dn(dn, lines, samples, product.calibration(pol).select("sigma"), noise)
    assert out.dtype == np.float32
    expected = [[ref.value(int(dn[i, j]), int(line), int(p), remove_noise) for j, p in enumerate(samples)]
                for i, line in enumerate(lines)]
    assert_close(out, expected)
    assert out[0, 0] == 0  # DN 0 stays no-data
    if remove_noise and not product.noise(pol).all_zero:
        assert np.any(out == np.float32(1e-7))


@pytest.mark.parametrize("calibration", ["beta", "gamma", "dn"])
def test_other_calibration_luts(s1_dir, calibration):
    safe = s1_dir / f"{NEW_NOISE}.SAFE"
    product = open_product(safe)
    ref = Reference(safe, "VV", calibration)
    lines, samples = np.array([3, 700, 9000]), np.array([5, 8760, 20001])
    dn = np.full((3, 3), 800, np.uint16)
    out = calibrate_dn(dn, lines, samples, product.calibration("VV").select(calibration), product.noise("VV"))
    assert_close(out, [[ref.value(800, int(line), int(p), True) for p in samples] for line in lines])


def test_noise_lut_interpolation_outside_and_inside_blocks(s1_dir):
    """eta itself, on the product whose azimuth blocks leave gaps and end past their last node."""
    safe = s1_dir / f"{MANY_BLOCKS}.SAFE"
    product = open_product(safe)
    ref = Reference(safe, "VH")
    # block IW3 starts at line 1360: before it, samples 17310.. are outside every block (factor 1)
    lines = np.array([0, 403, 405, 406, 1359, 1360, 15461, 15462])
    samples = np.array([0, 8624, 8625, 17309, 17310, 25194])
    eta = product.noise("VH").interpolate(lines, samples)
    assert_close(eta, [[ref.eta(int(line), int(p)) for p in samples] for line in lines])
    assert ref.blocks[0]["lines"][-1] < 403 <= ref.blocks[0]["l1"]  # extrapolated past the last node


def test_unknown_calibration(s1_dir):
    with pytest.raises(ValueError, match="unknown calibration"):
        open_product(s1_dir / f"{STRIPMAP}.SAFE").calibration("HH").select("sigma0x")


def test_zero_noise_removal_changes_nothing(s1_dir):
    product = open_product(s1_dir / f"{ZERO_NOISE}.SAFE")
    lines, samples = np.arange(100, 110), np.arange(5000, 5020)
    dn = dn_pattern(lines, samples)
    lut = product.calibration("VV").select("sigma")
    np.testing.assert_array_equal(calibrate_dn(dn, lines, samples, lut, product.noise("VV")),
                                  calibrate_dn(dn, lines, samples, lut, None))


# ---------------------------------------------------------------------------- on built products


def content(rows, cols):
    """DN varying along range only (cheap to write: one row broadcast over each strip)."""
    return 1 + (cols * 7) % 2000


@pytest.fixture(scope="module")
def built(s1_dir, tmp_path_factory):
    """Full-size products (one polarisation) with cheap, known content."""
    out = tmp_path_factory.mktemp("radiometry")
    return {
        name: build_product(s1_dir / f"{name}.SAFE", out, content=content, polarisations=[pol])
        for name, pol in [(OLD_NOISE, "VV"), (MANY_BLOCKS, "VH")]
    }


@pytest.mark.parametrize("name, pol", [(OLD_NOISE, "VV"), (MANY_BLOCKS, "VH")])
@pytest.mark.parametrize("remove_noise", [True, False])
def test_calibrate_window(s1_dir, built, name, pol, remove_noise):
    product = open_product(built[name])
    ref = Reference(s1_dir / f"{name}.SAFE", pol)
    row0, col0 = 8000, 17000
    out = calibrate(product, pol, (row0, col0, 40, 600), remove_thermal_noise=remove_noise, border_cut=False)
    assert out.shape == (40, 600) and out.dtype == np.float32
    for i, j in [(0, 0), (13, 310), (39, 599), (20, 1)]:
        dn = int(content(row0 + i, col0 + j))
        assert_close(out[i, j], ref.value(dn, row0 + i, col0 + j, remove_noise))


def test_lower_signal_value(built):
    product = open_product(built[OLD_NOISE])
    out = calibrate(product, "VV", (8000, 0, 2, 200), lower_signal_value=1e-5, border_cut=False)
    assert np.any(out == np.float32(1e-5)) and np.all(out > 0)


# ---------------------------------------------------------------------------- border cut


def test_range_cut_for_old_ipf_only(built):
    old = open_product(built[OLD_NOISE])
    cut = border_cut_params(old, "VV")
    assert cut == BorderCut(lines=16712, samples=25560, top=0, bottom=0, left=1000, right=1000)
    out = calibrate(old, "VV", (8000, 990, 2, 20), border_cut=cut)
    assert np.all(out[:, :10] == 0) and np.all(out[:, 10:] > 0)
    out = calibrate(old, "VV", (8000, 25560 - 1010, 2, 1010))  # border_cut=True: decided here
    assert np.all(out[:, :10] > 0) and np.all(out[:, 10:] == 0)
    new = border_cut_params(open_product(built[MANY_BLOCKS]), "VH")
    assert (new.left, new.right, new.top, new.bottom) == (0, 0, 0, 0)


@pytest.mark.parametrize("override, expected", [(True, (1600, 1600)), (False, (0, 0))])
def test_azimuth_cut_override(built, override, expected):
    cut = border_cut_params(open_product(built[MANY_BLOCKS]), "VH", override)
    assert (cut.top, cut.bottom) == expected


@pytest.mark.parametrize("zero_borders, expected", [
    ((101, 0, 0, 0), (1600, 0)),     # line 100 all zero: cut the top only
    ((0, 101, 0, 0), (0, 1600)),     # line n-100 all zero: cut the bottom only
    ((0, 0, 1000, 1001), (1600, 1600)),  # 2001 zero pixels on every line: cut both
    ((0, 0, 1000, 1000), (0, 0)),    # exactly 2000: no cut
])
def test_azimuth_cut_heuristic(s1_dir, tmp_path, zero_borders, expected):
    path = build_product(s1_dir / f"{NEW_NOISE}.SAFE", tmp_path, polarisations=["VV"], zero_borders=zero_borders)
    product = open_product(path)
    cut = border_cut_params(product, "VV")
    assert (cut.top, cut.bottom) == expected
    out = calibrate(product, "VV", (1590, 5000, 20, 3), border_cut=cut)
    assert np.all(out[:10] == 0) == (cut.top == 1600)
    assert np.all(out[10:] > 0)
    last = calibrate(product, "VV", (16676 - 1610, 5000, 20, 3), border_cut=cut)
    assert np.all(last[:10] > 0) and np.all(last[10:] == 0) == (cut.bottom == 1600)
