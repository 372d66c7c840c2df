"""Orbit interpolation and .EOF files, checked against the real state vectors."""
import re
import shutil
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from s1tiling.errors import ProductError
from s1tiling.geometry.orbit import Orbit, StateVectors, find_orbit_file, read_eof, select_state_vectors
from s1tiling.s1.annotation import parse_annotation


def _raw_vectors(path):
    """(UTC times, X..VZ) of every complete <OSV> block, read with regular expressions."""
    text = path.read_text()
    blocks = re.findall(r"<OSV>(.*?)</OSV>", text, flags=re.S)
    times = [re.search(r"<UTC>UTC=([^<]+)</UTC>", b)[1] for b in blocks]
    tags = ("X", "Y", "Z", "VX", "VY", "VZ")
    values = [[float(re.search(rf"<{tag} unit=[^>]*>([^<]+)</{tag}>", b)[1]) for tag in tags] for b in blocks]
    declared = int(re.search(r'List_of_OSVs count="(\d+)"', text)[1])
    return np.array(times, dtype="datetime64[ns]"), np.array(values), declared


def _without(vectors, i):
    keep = np.arange(len(vectors.times)) != i
    return StateVectors(vectors.times[keep], vectors.positions[keep], vectors.velocities[keep], vectors.source)


def _held_out_errors(vectors, indices):
    """Position and velocity errors at each held-out vector, interpolated from the others."""
    pos, vel = [], []
    for i in indices:
        orbit = Orbit(_without(vectors, i))
        t = orbit.seconds(vectors.times[i])
        pos.append(np.linalg.norm(orbit.position(t) - vectors.positions[i]))
        vel.append(np.linalg.norm(orbit.velocity(t) - vectors.velocities[i]))
    return np.array(pos), np.array(vel)


def test_every_eof_file_parses(orbits_dir):
    files = sorted(orbits_dir.glob("*.EOF"))
    assert len(files) == 9
    truncated = 0
    for path in files:
        vectors = read_eof(path)
        times, values, declared = _raw_vectors(path)
        assert vectors.source == ("POEORB" if "_POEORB_" in path.name else "RESORB")
        np.testing.assert_array_equal(vectors.times, times)
        np.testing.assert_array_equal(vectors.positions, values[:, :3])
        np.testing.assert_array_equal(vectors.velocities, values[:, 3:])
        truncated += declared > len(times)
    assert truncated == 3  # count="9361" with fewer vectors present


def test_eof_cut_in_the_middle_of_a_vector(orbits_dir, tmp_path):
    source = sorted(orbits_dir.glob("*RESORB*.EOF"))[0]
    text = source.read_text()
    cut = tmp_path / source.name
    cut.write_text(text[: text.rindex("<VX")])  # last vector incomplete, no closing tags
    times, _, _ = _raw_vectors(source)
    vectors = read_eof(cut)
    np.testing.assert_array_equal(vectors.times, times[:-1])


def test_eof_errors_name_the_file(tmp_path):
    bad = tmp_path / "S1A_OPER_AUX_POEORB_OPOD_20210304T033926_V20141003T225944_20141005T005944.EOF"
    bad.write_text("<Earth_Explorer_File><Data_Block><List_of_OSVs count='0'/></Data_Block></Earth_Explorer_File>")
    with pytest.raises(ProductError, match=bad.name):
        read_eof(bad)


@pytest.mark.parametrize("kind", ["POEORB", "RESORB"])
def test_held_out_precise_vectors(orbits_dir, kind):
    vectors = read_eof(sorted(orbits_dir.glob(f"*{kind}*.EOF"))[0])
    pos, vel = _held_out_errors(vectors, range(3, len(vectors.times) - 3, 7))
    assert pos.max() < 0.01
    assert vel.max() < 1e-3


def test_held_out_annotation_vectors(real_safes):
    for safe in real_safes:
        vectors = parse_annotation(sorted((safe / "annotation").glob("*-001.xml"))[0]).orbit
        # Interior vectors (3 neighbours or more on each side); annotation times are
        # rounded to the microsecond, i.e. a few mm along the track.
        pos, _ = _held_out_errors(vectors, range(3, len(vectors.times) - 3))
        assert pos.max() < 0.01, safe.name


def test_orbit_passes_through_the_vectors_smoothly(orbits_dir):
    vectors = read_eof(sorted(orbits_dir.glob("*POEORB*.EOF"))[0])
    orbit = Orbit(vectors)
    t = orbit.seconds(vectors.times)
    np.testing.assert_allclose(orbit.position(t), vectors.positions, atol=1e-6)
    np.testing.assert_allclose(orbit.velocity(t), vectors.velocities, atol=1e-9)
    # Continuous across the nodes, velocity and acceleration consistent with positions.
    inner, e = t[1:-1], 1e-7
    jump = orbit.position(inner + e) - orbit.position(inner - e) - 2 * e * orbit.velocity(inner)
    assert np.abs(jump).max() < 1e-5
    s = np.linspace(t[0], t[-1], 997)
    h = 1e-3
    velocity_fd = (orbit.position(s + h) - orbit.position(s - h)) / (2 * h)
    assert np.abs(velocity_fd - orbit.velocity(s)).max() < 1e-3
    acceleration_fd = (orbit.velocity(s + h) - orbit.velocity(s - h)) / (2 * h)
    assert np.abs(acceleration_fd - orbit.acceleration(s)).max() < 1e-6
    assert orbit.position(s.reshape(1, -1)).shape == (1, s.size, 3)


def test_extrapolation_stays_close(orbits_dir):
    vectors = read_eof(sorted(orbits_dir.glob("*POEORB*.EOF"))[0])
    n = len(vectors.times) - 2
    short = StateVectors(vectors.times[:n], vectors.positions[:n], vectors.velocities[:n], vectors.source)
    orbit = Orbit(short)
    t = orbit.seconds(vectors.times[n:])  # 10 and 20 s past the last vector
    errors = np.linalg.norm(orbit.position(t) - vectors.positions[n:], axis=-1)
    assert errors[0] < 0.05 and errors[1] < 0.5


def test_select_state_vectors(orbits_dir):
    vectors = read_eof(sorted(orbits_dir.glob("*RESORB*.EOF"))[0])
    start = vectors.times[50] + np.timedelta64(3, "s")
    stop = start + np.timedelta64(25, "s")
    kept = select_state_vectors(vectors, start, stop, margin=30.0)
    assert kept.times[0] <= start - np.timedelta64(30, "s") and kept.times[-1] >= stop + np.timedelta64(30, "s")
    assert len(kept.times) <= 13 and kept.source == "RESORB"
    with pytest.raises(ValueError, match="do not cover"):
        after = vectors.times[-1] + np.timedelta64(60, "s")
        select_state_vectors(vectors, after, after + np.timedelta64(25, "s"))


def _eof_like(source_path, target_path, kind):
    """A copy of an .EOF whose File_Type says ``kind``."""
    text = source_path.read_text()
    target_path.write_text(re.sub(r"AUX_(POEORB|RESORB)", f"AUX_{kind}", text))


def test_find_orbit_file(orbits_dir, tmp_path):
    for path in orbits_dir.glob("*.EOF"):
        shutil.copy(path, tmp_path / path.name)
    # 2023-08-23 15:00: inside two RESORB files; the newest production wins.
    start, stop = np.datetime64("2023-08-23T15:00:00"), np.datetime64("2023-08-23T15:00:25")
    assert find_orbit_file(tmp_path, "S1A", start, stop).name.startswith("S1A_OPER_AUX_RESORB_OPOD_20230823T174849")
    assert find_orbit_file(tmp_path, "S1B", start, stop) is None
    # A POEORB covering the same time is preferred.
    resorb = next(orbits_dir.glob("*20230823T174849*.EOF"))
    poeorb = tmp_path / "sub" / "S1A_OPER_AUX_POEORB_OPOD_20230912T080000_V20230822T225942_20230824T005942.EOF"
    poeorb.parent.mkdir()
    _eof_like(resorb, poeorb, "POEORB")
    assert find_orbit_file(tmp_path, "S1A", start, stop) == poeorb
    assert read_eof(poeorb).source == "POEORB"
    # A truncated POEORB whose name covers the time but whose vectors do not: skipped.
    before = np.datetime64("2022-10-11T10:00:00"), np.datetime64("2022-10-11T10:00:25")
    assert find_orbit_file(tmp_path, "S1A", *before) is None
    start = datetime(2022, 10, 11, 16, 20, tzinfo=timezone.utc)  # aware datetimes as the manifest gives
    found = find_orbit_file(tmp_path, "S1A", start, start + timedelta(seconds=25))
    assert found.name.startswith("S1A_OPER_AUX_POEORB_OPOD_20221031T083817")
