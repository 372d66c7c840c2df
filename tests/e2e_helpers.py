"""Independent references for the end-to-end tests (tests/test_end_to_end.py).

Everything here reads the real reference files by hand (lxml, rasterio, pyproj) and never
calls s1tiling's geometry or radiometry: ESA's geolocation grid and calibration vectors,
the EGM96 grid, the official Sentinel-2 tile corners. It also writes the inputs the tests
need: request files, GeoTIFF DEM tiles, and measurement content with bright blobs.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from lxml import etree
from rasterio.transform import from_origin

SPEED_OF_LIGHT = 299792458.0


# --------------------------------------------------------------------------- annotation


def _seconds(text: str, reference: np.datetime64) -> float:
    return (np.datetime64(text.strip().rstrip("Z"), "ns") - reference).astype("timedelta64[ns]").astype(float) * 1e-9


def annotation_file(safe: Path, kind: str, pol: str = "vv") -> Path:
    """``kind``: 'product' (annotation/*.xml), 'calibration' or 'noise'."""
    folder = safe / "annotation" if kind == "product" else safe / "annotation" / "calibration"
    prefix = "s1" if kind == "product" else f"{kind}-s1"
    (path,) = [p for p in folder.glob(f"{prefix}*-{pol.lower()}-*.xml")]
    return path


@dataclass
class GridPoint:
    """One ESA geolocation grid point with its exact SAR position (from its annotated times)."""

    latitude: float
    longitude: float
    height: float  # ellipsoidal
    line: float
    pixel: float


def smooth_in_time(record_times: np.ndarray, values: np.ndarray, t) -> np.ndarray:
    """Values known at the records' times at times ``t``: ``values`` has shape (records,) or
    (records,) + t.shape (one series per point). Between records: the cubic Hermite curve whose
    slopes are the centred differences of the records (one-sided at the first and last);
    outside: the straight line through the end record with its slope. Plain numpy
    (``np.gradient`` gives those slopes)."""
    t = np.asarray(t, dtype=float)
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        values = np.broadcast_to(values.reshape((-1,) + (1,) * t.ndim), (values.size,) + t.shape)
    if len(record_times) == 1:
        return values[0].copy()
    slopes = np.gradient(values, record_times, axis=0, edge_order=1)
    j = np.clip(np.searchsorted(record_times, t, side="right") - 1, 0, len(record_times) - 2)

    def at(array, index):
        return np.take_along_axis(array, np.asarray(index)[None], 0)[0]

    h = record_times[j + 1] - record_times[j]
    w = (t - record_times[j]) / h
    wc = np.clip(w, 0, 1)
    curve = ((2 * wc**3 - 3 * wc**2 + 1) * at(values, j) + (wc**3 - 2 * wc**2 + wc) * h * at(slopes, j)
             + (3 * wc**2 - 2 * wc**3) * at(values, j + 1) + (wc**3 - wc**2) * h * at(slopes, j + 1))
    before = values[0] + (t - record_times[0]) * slopes[0]
    after = values[-1] + (t - record_times[-1]) * slopes[-1]
    return np.where(w < 0, before, np.where(w > 1, after, curve))


def exact_grid_points(safe: Path, pol: str = "vv") -> list[GridPoint]:
    """ESA's geolocation grid; line = (azimuthTime - first line) / azimuthTimeInterval,
    pixel = srgr(c * slantRangeTime / 2) / rangePixelSpacing, the srgr records' values
    interpolated in azimuth time as :func:`smooth_in_time` does."""
    root = etree.parse(str(annotation_file(safe, "product", pol))).getroot()
    first = np.datetime64(root.findtext(".//imageInformation/productFirstLineUtcTime").strip(), "ns")
    interval = float(root.findtext(".//imageInformation/azimuthTimeInterval"))
    spacing = float(root.findtext(".//imageInformation/rangePixelSpacing"))
    records = root.findall(".//coordinateConversionList/coordinateConversion")
    rec_t = np.array([_seconds(r.findtext("azimuthTime"), first) for r in records])
    rec_sr0 = np.array([float(r.findtext("sr0")) for r in records])
    rec_coef = [np.array(r.findtext("srgrCoefficients").split(), float) for r in records]

    def ground_range(t, slant):
        g = np.array([np.polynomial.polynomial.polyval(slant - rec_sr0[i], rec_coef[i]) for i in range(len(rec_t))])
        return float(smooth_in_time(rec_t, g, t))

    points = []
    for p in root.iter("geolocationGridPoint"):
        t = _seconds(p.findtext("azimuthTime"), first)
        slant = SPEED_OF_LIGHT * float(p.findtext("slantRangeTime")) / 2
        points.append(GridPoint(float(p.findtext("latitude")), float(p.findtext("longitude")),
                                float(p.findtext("height")), t / interval, ground_range(t, slant) / spacing))
    return points


def image_size(safe: Path, pol: str = "vv") -> tuple[int, int]:
    """(numberOfLines, numberOfSamples) of the annotation."""
    root = etree.parse(str(annotation_file(safe, "product", pol))).getroot()
    return (int(root.findtext(".//imageInformation/numberOfLines")),
            int(root.findtext(".//imageInformation/numberOfSamples")))


class VectorLUT:
    """A calibration or noise LUT from the raw XML, bilinear: along ``pixel`` within each
    vector, then linearly in ``line`` between the two vectors around the line."""

    def __init__(self, xml: Path, vector: str, values: str):
        root = etree.parse(str(xml)).getroot()
        nodes = list(root.iter(vector))
        self.lines = np.array([int(n.findtext("line")) for n in nodes])
        self.pixels = [np.array(n.findtext("pixel").split(), float) for n in nodes]
        self.values = [np.array(n.findtext(values).split(), float) for n in nodes]

    def __call__(self, line: float, pixel: float) -> float:
        k = int(np.clip(np.searchsorted(self.lines, line, side="right") - 1, 0, len(self.lines) - 2))
        a, b = (np.interp(pixel, self.pixels[i], self.values[i]) for i in (k, k + 1))
        w = (line - self.lines[k]) / (self.lines[k + 1] - self.lines[k])
        return a + w * (b - a)


def manifest_footprint(safe: Path) -> list[tuple[float, float]]:
    """The (lon, lat) corners of the manifest's ``gml:coordinates`` ("lat,lon lat,lon ...")."""
    root = etree.parse(str(safe / "manifest.safe")).getroot()
    text = root.xpath("//*[local-name()='coordinates']")[0].text
    return [(float(lon), float(lat)) for lat, lon in (pair.split(",") for pair in text.split())]


# --------------------------------------------------------------------------- geoid, DEM, S2 grid


class Egm96:
    """EGM96 undulation read from the .gtx with rasterio, bilinear between posts (pixel centres)."""

    def __init__(self, gtx: Path):
        with rasterio.open(gtx) as ds:
            self.grid = ds.read(1).astype(float)
            t = ds.transform
        self.lat0, self.lon0, self.step = t.f + t.e / 2, t.c + t.a / 2, t.a

    def __call__(self, lat: float, lon: float) -> float:
        r = (self.lat0 - lat) / self.step
        c = ((lon - self.lon0) / self.step) % self.grid.shape[1]
        r0, c0 = int(math.floor(r)), int(math.floor(c))
        fr, fc = r - r0, c - c0
        c1 = (c0 + 1) % self.grid.shape[1]
        top = self.grid[r0, c0] * (1 - fc) + self.grid[r0, c1] * fc
        bottom = self.grid[r0 + 1, c0] * (1 - fc) + self.grid[r0 + 1, c1] * fc
        return top * (1 - fr) + bottom * fr


def write_dem_tiles(folder: Path, cells, height_of, step: float = 0.001) -> None:
    """Float32 GeoTIFF DEM tiles ``N45E002.tif`` (1 x 1 degree, pixel-is-area posts every
    ``step`` degrees) for the (lat, lon) south-west corners in ``cells``;
    ``height_of(lat, lon)`` gives orthometric heights on 2-D arrays."""
    folder.mkdir(parents=True, exist_ok=True)
    n = round(1 / step)
    for lat, lon in cells:
        centres = (np.arange(n) + 0.5) * step
        lons, lats = np.meshgrid(lon + centres, lat + 1 - centres)
        name = f"{'N' if lat >= 0 else 'S'}{abs(lat):02d}{'E' if lon >= 0 else 'W'}{abs(lon):03d}.tif"
        with rasterio.open(folder / name, "w", driver="GTiff", width=n, height=n, count=1, dtype="float32",
                           crs="EPSG:4326", transform=from_origin(lon, lat + 1, step, step)) as ds:
            ds.write(height_of(lats, lons).astype(np.float32), 1)


def write_flat_hgt(path: Path) -> None:
    """A 3" SRTM tile at height 0."""
    np.zeros((1201, 1201), dtype=">i2").tofile(path)


def official_s2_grid(csv_file: Path, tile: str, resolution: float):
    """(epsg, affine tuple, width, height) of an S2 tile from ESA's corners (the CSV)."""
    with open(csv_file, newline="") as f:
        row = next(r for r in csv.DictReader(f) if r["tile_id"] == tile)
    ulx, uly, lrx, lry = (float(row[k]) for k in ("ulx", "uly", "lrx", "lry"))
    size = round((lrx - ulx) / resolution), round((uly - lry) / resolution)
    return int(row["epsg"]), (resolution, 0.0, ulx, 0.0, -resolution, uly), size[0], size[1]


# --------------------------------------------------------------------------- measurements, request files


def blob_content(targets, background: float, amplitude: float, sigma: float):
    """Builder ``content``: constant DN ``background`` plus, at each fractional (line, pixel)
    of ``targets``, a blob whose power DN^2 - background^2 is a Gaussian (``sigma`` samples)."""
    radius = int(math.ceil(5 * sigma))

    def content(rows, cols):
        first, last = int(rows[0, 0]), int(rows[-1, 0])
        strip = np.full((rows.shape[0], cols.shape[1]), background**2, dtype=np.float64)
        for line, pixel in targets:
            l0, l1 = max(int(line) - radius, first), min(int(line) + radius + 1, last + 1)
            p0, p1 = max(int(pixel) - radius, 0), min(int(pixel) + radius + 1, cols.shape[1])
            if l0 >= l1 or p0 >= p1:
                continue
            ll, pp = np.meshgrid(np.arange(l0, l1), np.arange(p0, p1), indexing="ij")
            g = np.exp(-((ll - line) ** 2 + (pp - pixel) ** 2) / (2 * sigma**2))
            strip[l0 - first:l1 - first, p0:p1] += amplitude**2 * g
        return np.rint(np.sqrt(strip)).astype(np.uint16)

    return content


def centroid(image: np.ndarray, row: float, col: float, half: int = 5):
    """Intensity-weighted centroid (row, col, in pixel-centre indices) of the background-subtracted
    values in a (2 * half + 1) square window around (row, col), and the window's contrast
    (peak / background); background = median of the window's rim."""
    r0, c0 = int(round(row)) - half, int(round(col)) - half
    window = image[r0:r0 + 2 * half + 1, c0:c0 + 2 * half + 1].astype(np.float64)
    rim = np.concatenate([window[0], window[-1], window[1:-1, 0], window[1:-1, -1]])
    background = np.median(rim)
    weights = window - background
    rr, cc = np.mgrid[r0:r0 + window.shape[0], c0:c0 + window.shape[1]]
    total = weights.sum()
    return (rr * weights).sum() / total, (cc * weights).sum() / total, window.max() / background


def write_request(path: Path, *, s1_images, output, dem_dir, tiles, first_date, last_date, geoid_file=None,
                  dem_format="{id}.hgt", resolution=100, method="nn", calibration="sigma",
                  remove_thermal_noise=True, polarisation="VV", metadata=None) -> Path:
    """A request file in S1Processor.cfg format, one worker process."""
    geoid = f"geoid_file : {geoid_file}\n" if geoid_file else ""
    extra = "".join(f"{k} : {v}\n" for k, v in (metadata or {}).items())
    path.write_text(f"""[Paths]
s1_images : {s1_images}
output : {output}
tmp : {Path(output).parent / 'tmp'}
dem_dir : {dem_dir}
dem_format : {dem_format}
{geoid}
[DataSource]
download : False
first_date : {first_date}
last_date : {last_date}
polarisation : {polarisation}

[Processing]
tiles : {', '.join(tiles)}
calibration : {calibration}
remove_thermal_noise : {remove_thermal_noise}
output_spatial_resolution : {resolution}
orthorectification_interpolation_method : {method}
nb_parallel_processes : 1

[Metadata]
{extra}""")
    return path
