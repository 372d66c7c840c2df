"""Build Sentinel-1 test products from real metadata-only SAFE folders.

No public Sentinel-1 product comes with pixels small enough for tests, so tests take a real
SAFE folder holding only its metadata (manifest, annotations, calibration and noise, as in
``shared/data/s1``) and write the measurement TIFFs themselves::

    from s1tiling.samples.testing import build_product
    path = build_product(real_safe, tmp_path, content=lambda rows, cols: 1 + (rows + cols) % 500,
                         targets=[(8000.4, 12000.6, 5000)], zipped=True)

The TIFFs look like ESA's: annotated size (numberOfSamples x numberOfLines), uint16, the
ESA file name, ``TIFFTAG_IMAGEDESCRIPTION`` "Sentinel-1A IW GRD HR L1", ``TIFFTAG_SOFTWARE``
"Sentinel-1 IPF 003.31" and the geolocation grid as GCPs (x=lon, y=lat, z=height,
col=pixel, row=line, EPSG:4326). Unlike ESA's they are tiled and ZSTD-compressed and written
strip by strip, so that a full-size product takes seconds.

Bad-input tests use :func:`corrupt` on an unzipped product (then :func:`zip_safe` if they
need a zip), or ``size_override`` / ``dtype`` of :func:`build_product`.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import rasterio
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from ..geometry.dem import DemCatalog, Region
from ..s1.annotation import GeolocationGrid
from ..s1.product import open_product

#: Default content of the measurements: a constant, cheap to write.
DEFAULT_DN = 100
#: Scale of the Rayleigh-distributed amplitudes of ``content="speckle"``.
SPECKLE_SCALE = 100.0
#: Rayleigh quantiles at 4096 equiprobable levels: drawing a level is much faster than
#: drawing a float, and just as good for tests.
_SPECKLE_LEVELS = np.clip(
    np.rint(SPECKLE_SCALE * np.sqrt(-2 * np.log1p(-(np.arange(4096) + 0.5) / 4096))), 1, np.iinfo(np.uint16).max
)
#: Lines written per strip (a multiple of the TIFF block size).
STRIP_LINES = 512
_BLOCK = 512
_RESOLUTION = {"H": "HR", "M": "MR", "F": "FR"}

Content = int | float | str | Callable[[np.ndarray, np.ndarray], np.ndarray]


def build_product(template_safe: str | Path, out_dir: str | Path, *, zipped: bool = False,
                  content: Content = DEFAULT_DN,
                  targets: Iterable[tuple[float, float, float]] = (), target_radius: int = 0,
                  zero_borders: tuple[int, int, int, int] | None = None,
                  polarisations: Iterable[str] | None = None, dtype: str = "uint16",
                  size_override: tuple[int, int] | None = None, seed: int = 0) -> Path:
    """Copy a metadata-only SAFE folder into ``out_dir`` and write its measurement TIFFs.

    - ``content``: a constant DN, ``"speckle"`` (seeded Rayleigh amplitudes, never 0; costs
      about 2 bytes per pixel on disk) or a callable ``f(rows, cols)`` getting broadcastable
      absolute index arrays (rows (h, 1), cols (1, w)) of one strip and returning its DNs;
    - ``targets``: bright points ``(line, pixel, value)`` at rounded positions, each a
      (2 * target_radius + 1) square;
    - ``zero_borders``: (top, bottom, left, right) numbers of lines/samples set to 0 (no-data),
      applied last;
    - ``polarisations``: those whose TIFF is written (default all; the others stay listed in
      the manifest, with their XML, and reading them raises ProductError);
    - ``dtype``, ``size_override`` (lines, samples): to build wrong products on purpose.

    Returns the ``<name>.SAFE`` folder or, with ``zipped``, the ``<name>.zip`` holding it.
    """
    template = open_product(template_safe)
    if not template.path.is_dir():
        raise ValueError(f"the template must be an unzipped SAFE folder: {template.path}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / f"{template.name}{'.zip' if zipped else '.SAFE'}"
    if final.exists():
        raise FileExistsError(final)
    pols = template.polarisations if polarisations is None else tuple(p.upper() for p in polarisations)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".build-") as tmp:
        safe = Path(tmp) / f"{template.name}.SAFE"
        shutil.copytree(template.path, safe, ignore=shutil.ignore_patterns("*.tiff", "*.tif"))
        for pol in pols:
            annotation = template.annotation(pol)
            lines, samples = size_override or (annotation.image.number_of_lines, annotation.image.number_of_samples)
            write_measurement(
                safe / template.relative_path("measurement", pol), lines, samples,
                content=content, targets=targets, target_radius=target_radius, zero_borders=zero_borders,
                gcps=geolocation_gcps(annotation.geolocation_grid), description=_description(template),
                software=f"Sentinel-1 IPF {template.manifest.ipf_version_text}", dtype=dtype, seed=seed,
            )
        if zipped:
            return zip_safe(safe, out_dir)
        os.replace(safe, final)
    return final


def _description(product) -> str:
    """ESA's TIFFTAG_IMAGEDESCRIPTION, e.g. 'Sentinel-1A IW GRD HR L1'."""
    resolution = _RESOLUTION.get(product.product_type[-1:], "HR")
    return f"Sentinel-1{product.platform[-1]} {product.manifest.instrument_mode} GRD {resolution} L1"


def geolocation_gcps(grid: GeolocationGrid) -> list[GroundControlPoint]:
    """The geolocation grid as GCPs: col=pixel, row=line, x=lon, y=lat, z=height."""
    return [
        GroundControlPoint(row=float(r), col=float(c), x=float(lon), y=float(lat), z=float(h), id=str(i + 1))
        for i, (r, c, lon, lat, h) in enumerate(
            zip(grid.line, grid.pixel, grid.longitude, grid.latitude, grid.height)
        )
    ]


def write_measurement(path: str | Path, lines: int, samples: int, *, content: Content = DEFAULT_DN,
                      targets: Iterable[tuple[float, float, float]] = (), target_radius: int = 0,
                      zero_borders: tuple[int, int, int, int] | None = None,
                      gcps: list[GroundControlPoint] | None = None,
                      description: str = "Sentinel-1A IW GRD HR L1", software: str | None = None,
                      dtype: str = "uint16", seed: int = 0) -> Path:
    """Write one measurement TIFF (``lines`` x ``samples``) strip by strip; see :func:`build_product`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    targets = [(int(np.floor(line + 0.5)), int(np.floor(pixel + 0.5)), value) for line, pixel, value in targets]
    profile = dict(
        driver="GTiff", width=samples, height=lines, count=1, dtype=dtype, tiled=True,
        blockxsize=_BLOCK, blockysize=_BLOCK, compress="zstd", zstd_level=1,
    )
    if gcps:
        profile.update(gcps=gcps, crs=CRS.from_epsg(4326))
    tags = {"TIFFTAG_IMAGEDESCRIPTION": description}
    if software:
        tags["TIFFTAG_SOFTWARE"] = software
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # SAR geometry: GCPs, no transform
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.update_tags(**tags)
            for row0 in range(0, lines, STRIP_LINES):
                height = min(STRIP_LINES, lines - row0)
                strip = _content(content, row0, height, samples, dtype, seed)
                _draw_targets(strip, row0, targets, target_radius)
                if zero_borders:
                    _zero_borders(strip, row0, lines, zero_borders)
                dst.write(strip, 1, window=Window(0, row0, samples, height))
    os.replace(tmp, path)
    return path


def _content(content: Content, row0: int, height: int, samples: int, dtype, seed: int) -> np.ndarray:
    if isinstance(content, str):
        if content != "speckle":
            raise ValueError(f"unknown content {content!r}: a number, 'speckle' or a callable")
        rng = np.random.default_rng([seed, row0])
        return _SPECKLE_LEVELS.astype(dtype)[rng.integers(0, len(_SPECKLE_LEVELS), (height, samples), np.uint16)]
    if callable(content):
        rows = np.arange(row0, row0 + height)[:, None]
        cols = np.arange(samples)[None, :]
        return np.ascontiguousarray(np.broadcast_to(np.asarray(content(rows, cols)), (height, samples)), dtype=dtype)
    return np.full((height, samples), content, dtype=dtype)


def _draw_targets(strip: np.ndarray, row0: int, targets, radius: int) -> None:
    for line, pixel, value in targets:
        r0, r1 = max(line - radius - row0, 0), min(line + radius + 1 - row0, strip.shape[0])
        c0, c1 = max(pixel - radius, 0), min(pixel + radius + 1, strip.shape[1])
        if r0 < r1 and c0 < c1:
            strip[r0:r1, c0:c1] = value


def _zero_borders(strip: np.ndarray, row0: int, lines: int, borders) -> None:
    top, bottom, left, right = borders
    rows = np.arange(row0, row0 + strip.shape[0])
    strip[(rows < top) | (rows >= lines - bottom)] = 0
    strip[:, :left] = 0
    if right:
        strip[:, -right:] = 0


def zip_safe(safe_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Zip a SAFE folder as ESA does: ``<name>.zip`` holding the ``<name>.SAFE`` folder.

    TIFFs are stored (they are compressed already), XML deflated. Written under a
    temporary name, then renamed. Returns the zip path (in ``out_dir``, default beside).
    """
    safe_dir = Path(safe_dir)
    out_dir = Path(out_dir) if out_dir is not None else safe_dir.parent
    name = safe_dir.name[: -len(".SAFE")] if safe_dir.name.endswith(".SAFE") else safe_dir.name
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / f"{name}.zip"
    tmp = final.with_name(final.name + ".tmp")
    with zipfile.ZipFile(tmp, "w") as archive:
        for file in sorted(p for p in safe_dir.rglob("*") if p.is_file()):
            stored = file.suffix.lower() in (".tiff", ".tif")
            archive.write(
                file, f"{safe_dir.name}/{file.relative_to(safe_dir).as_posix()}",
                compress_type=zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED,
            )
    os.replace(tmp, final)
    return final


#: What :func:`corrupt` can do to a file.
CORRUPTIONS = ("drop", "empty", "truncate")


def corrupt(safe_dir: str | Path, kind: str, pol: str | None = None, how: str = "drop") -> Path:
    """Damage one file of an unzipped product, for bad-input tests; returns its path.

    ``kind``: 'manifest', 'annotation', 'calibration', 'noise' or 'measurement' (of ``pol``,
    default the first polarisation); ``how``: 'drop' (delete), 'empty' (0 bytes) or
    'truncate' (keep the first half: malformed XML, truncated TIFF).
    """
    safe_dir = Path(safe_dir)
    if how not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {how!r}, expected one of {CORRUPTIONS}")
    if kind == "manifest":
        path = safe_dir / "manifest.safe"
    else:
        path = safe_dir / open_product(safe_dir).relative_path(kind, pol)
    if how == "drop":
        path.unlink()
    else:
        keep = 0 if how == "empty" else path.stat().st_size // 2
        with open(path, "r+b") as f:
            f.truncate(keep)
    return path


def write_dem_folder(dem_dir: str | Path, region: Region,
                     real_dem_dir: str | Path | None = None) -> list[str]:
    """Fill ``dem_dir`` with the 1-degree SRTM tiles (``{id}.hgt``) under ``region`` (a lon/lat
    shapely geometry): a symlink to the real tile when ``real_dem_dir`` has it, else a flat
    3-arc-second tile at height 0. Return the tile ids written."""
    dem_dir = Path(dem_dir)
    dem_dir.mkdir(parents=True, exist_ok=True)
    ids = DemCatalog(dem_dir).tiles_for_region(region)
    for tid in ids:
        target = dem_dir / f"{tid}.hgt"
        if target.exists() or target.is_symlink():
            continue
        real = Path(real_dem_dir) / f"{tid}.hgt" if real_dem_dir else None
        if real is not None and real.exists():
            target.symlink_to(real.resolve())
        else:
            np.zeros((1201, 1201), dtype=">i2").tofile(target)
    return ids
