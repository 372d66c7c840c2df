import numpy as np
import pytest

from s1tiling.resampling import sample


def _ramp(h=20, w=30):
    ll, pp = np.mgrid[0:h, 0:w].astype(np.float64)
    return (1.0 + 2.0 * ll + 3.0 * pp), ll, pp


def test_nn_picks_nearest_sample_centre():
    img, _, _ = _ramp()
    out = sample(img, 0, 0, img.shape, np.array([3.4, 3.6, 0.0]), np.array([5.49, 5.51, 0.0]), "nn")
    np.testing.assert_allclose(out, [img[3, 5], img[4, 6], img[0, 0]])


@pytest.mark.parametrize("method", ["linear", "bco"])
def test_linear_and_bicubic_reproduce_a_plane(method):
    # Bilinear and Keys' cubic (a=-0.5) both reproduce affine functions exactly.
    img, _, _ = _ramp()
    rng = np.random.default_rng(1)
    lines = rng.uniform(3, 15, 200)
    pixels = rng.uniform(3, 25, 200)
    out = sample(img, 0, 0, img.shape, lines, pixels, method)
    np.testing.assert_allclose(out, 1.0 + 2.0 * lines + 3.0 * pixels, rtol=1e-6)


def test_window_offset_is_honoured():
    img, _, _ = _ramp()
    win = img[5:15, 10:20]
    out = sample(win, 5, 10, img.shape, np.array([7.25]), np.array([12.5]), "linear")
    np.testing.assert_allclose(out, [1 + 2 * 7.25 + 3 * 12.5], rtol=1e-6)


def test_outside_image_and_nodata_give_zero():
    img, _, _ = _ramp()
    img[10, 10] = 0
    out = sample(img, 0, 0, img.shape, np.array([-0.6, 19.6, 10.2, np.nan]), np.array([3, 3, 10.1, 3]), "bco")
    assert (out == 0).all()


@pytest.mark.parametrize("method", ["linear", "bco"])
def test_support_touching_nodata_falls_back_to_nearest(method):
    img = np.full((10, 10), 4.0)
    img[:, :3] = 0.0
    out = sample(img, 0, 0, img.shape, np.array([5.0]), np.array([3.2]), method)
    assert out[0] == 4.0


def test_bicubic_undershoot_is_floored():
    img = np.full((10, 10), 1e-3)
    img[5, 5] = 100.0
    out = sample(img, 0, 0, img.shape, np.array([5.0]), np.array([6.5]), "bco", floor=1e-7)
    assert out[0] >= 1e-7


def test_unknown_method():
    with pytest.raises(ValueError, match="interpolation"):
        sample(np.ones((2, 2)), 0, 0, (2, 2), np.zeros(1), np.zeros(1), "cubic")
