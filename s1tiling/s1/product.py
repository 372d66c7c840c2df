"""A Sentinel-1 GRD product, zipped or not: metadata, LUTs and windowed reads of the measurements.

:func:`open_product` takes a ``.SAFE`` folder or a ``.zip`` holding one ``.SAFE`` folder (read
in place: :mod:`zipfile` for the XML, GDAL ``/vsizip/`` paths for the rasters). The manifest is
parsed at once; every other XML file is parsed once, on first use, per polarisation.

Every failure to read the product raises :class:`~s1tiling.errors.ProductError` naming the
product and the file.

Footprint convention: :attr:`Product.footprint` is one polygon in (lon, lat); for a product
that crosses the antimeridian its western longitudes are unwrapped past 180 (e.g. 176.7 to
180.7) so that the polygon stays continuous. :attr:`Product.footprint_split` is always a
MultiPolygon within [-180, 180], split at the antimeridian when needed.
"""
from __future__ import annotations

import datetime as dt
import functools
import math
import zipfile
from pathlib import Path
from typing import TypeAlias

import numpy as np
import rasterio
from lxml import etree
from rasterio.windows import Window
from shapely import affinity
from shapely.geometry import MultiPolygon, Polygon, box

from ..errors import ProductError
from ..geometry.sar_model import SarModel
from .annotation import ProductAnnotation, parse_annotation
from .luts import CalibrationLUTs, NoiseLUTs, parse_calibration, parse_noise
from .manifest import FILE_KINDS, Manifest, parse_manifest
from .names import POLARISATIONS, PRODUCT_NAME, strip_suffix

MEASUREMENT_DTYPE = "uint16"

#: A window of a measurement: a rasterio Window or (row_off, col_off, height, width)
WindowLike: TypeAlias = Window | tuple[int, int, int, int]


def as_window(window: WindowLike) -> Window:
    """A rasterio Window from a Window or a (row_off, col_off, height, width) tuple."""
    if isinstance(window, Window):
        return window
    row_off, col_off, height, width = window
    return Window(col_off=col_off, row_off=row_off, width=width, height=height)


class _SafeFolder:
    """Files of an unzipped SAFE folder."""

    def __init__(self, path: Path):
        self.path = path
        self.safe_name = path.name

    def read(self, relative: str) -> bytes:
        return (self.path / relative).read_bytes()

    def size(self, relative: str) -> int:
        return (self.path / relative).stat().st_size

    def gdal_path(self, relative: str) -> str:
        return str(self.path / relative)


class _SafeZip:
    """Files of a SAFE folder inside a zip, read without extracting."""

    def __init__(self, path: Path):
        self.path = path
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError) as exc:
            raise ProductError(path.name, None, f"not a readable zip file ({exc})") from None
        safes = {n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".SAFE")}
        safes = {s for s in safes if f"{s}/manifest.safe" in names}
        if len(safes) != 1:
            found = "no" if not safes else f"{len(safes)}"
            raise ProductError(path.name, None, f"{found} .SAFE folder with a manifest.safe inside the zip")
        self.safe_name = safes.pop()

    def _member(self, relative: str) -> str:
        return f"{self.safe_name}/{relative}"

    def read(self, relative: str) -> bytes:
        with zipfile.ZipFile(self.path) as archive:
            try:
                return archive.read(self._member(relative))
            except KeyError:
                raise FileNotFoundError(relative) from None

    def size(self, relative: str) -> int:
        with zipfile.ZipFile(self.path) as archive:
            try:
                return archive.getinfo(self._member(relative)).file_size
            except KeyError:
                raise FileNotFoundError(relative) from None

    def gdal_path(self, relative: str) -> str:
        return f"/vsizip/{self.path.resolve()}/{self._member(relative)}"


def open_product(path: str | Path) -> Product:
    """Open a Sentinel-1 product: a ``.SAFE`` folder or a ``.zip`` holding one."""
    return Product(path)


class Product:
    """One Sentinel-1 GRD product (see the module documentation)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.is_dir():
            self._files: _SafeFolder | _SafeZip = _SafeFolder(self.path)
        elif self.path.is_file():
            self._files = _SafeZip(self.path)
        else:
            raise ProductError(self.path.name, None, f"no such product: {self.path}")
        safe_name = self._files.safe_name
        self.name = safe_name[: -len(".SAFE")] if safe_name.endswith(".SAFE") else safe_name
        self.manifest: Manifest = self._parse("manifest.safe", parse_manifest)
        self._check_identity()
        self._annotations: dict[str, ProductAnnotation] = {}
        self._calibrations: dict[str, CalibrationLUTs] = {}
        self._noises: dict[str, NoiseLUTs] = {}
        self._sar_models: dict = {}
        self._checked_measurements: set[str] = set()

    def __repr__(self) -> str:
        return f"<Product {self.name}>"

    # ------------------------------------------------------------------ files

    def _error(self, file, problem) -> ProductError:
        return ProductError(self.name, file, problem)

    def _read(self, relative: str) -> bytes:
        try:
            return self._files.read(relative)
        except (FileNotFoundError, IsADirectoryError):
            raise self._error(relative, "file missing") from None
        except (OSError, zipfile.BadZipFile) as exc:
            raise self._error(relative, f"cannot read file ({exc})") from None

    def _parse(self, relative: str, parser):
        data = self._read(relative)
        try:
            return parser(data)
        except etree.XMLSyntaxError as exc:
            raise self._error(relative, f"malformed XML ({exc})") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise self._error(relative, f"unexpected content: {exc}") from None

    def _pol(self, pol: str | None) -> str:
        if pol is None:
            return self.polarisations[0]
        upper = pol.upper()
        if upper not in self.polarisations:
            raise self._error(
                None, f"polarisation {pol} not in product (it has {', '.join(self.polarisations)})"
            )
        return upper

    def relative_path(self, kind: str, pol: str | None = None) -> str:
        """Path inside the SAFE folder of the ``kind`` file ('annotation', 'calibration',
        'noise', 'measurement') of one polarisation, as the manifest lists it."""
        if kind not in FILE_KINDS:
            raise ValueError(f"unknown file kind {kind!r}, expected one of {sorted(FILE_KINDS)}")
        pol = self._pol(pol)
        try:
            return self.manifest.file(kind, pol)
        except KeyError as exc:
            raise self._error("manifest.safe", exc.args[0]) from None

    # ------------------------------------------------------------------ identity

    def _check_identity(self) -> None:
        """The fields of the product's name (and of its zip's name) must be those of its manifest:
        a product whose name lies about what it holds is corrupt (its name decides output names)."""
        m = self.manifest
        for name, where in ((self.name, f"{self.name}.SAFE"), (strip_suffix(self.path.name), self.path.name)):
            fields = PRODUCT_NAME.match(name)
            if fields is None:
                continue
            problems = []
            if fields["platform"] != m.platform:
                problems.append(f"platform {fields['platform']} (manifest: {m.platform})")
            if fields["mode"] != m.swath:
                problems.append(f"mode {fields['mode']} (manifest: {m.swath})")
            for field, when in (("start", m.start_time), ("stop", m.stop_time)):
                named = dt.datetime.strptime(fields[field], "%Y%m%dT%H%M%S").replace(tzinfo=dt.timezone.utc)
                if abs((when - named).total_seconds()) >= 1:
                    problems.append(f"{field} time {fields[field]} (manifest: {when:%Y-%m-%dT%H:%M:%S.%f})")
            if int(fields["orbit"]) != m.absolute_orbit:
                problems.append(f"absolute orbit {fields['orbit']} (manifest: {m.absolute_orbit})")
            if fields["datatake"] != f"{m.mission_datatake_id:06X}":
                problems.append(f"datatake {fields['datatake']} (manifest: {m.mission_datatake_id:06X})")
            if set(POLARISATIONS[fields["pols"]]) != set(m.polarisations):
                problems.append(f"polarisations {'/'.join(POLARISATIONS[fields['pols']])} "
                                f"(manifest: {'/'.join(m.polarisations)})")
            if name != self.name and name != strip_suffix(self.name):
                problems.append(f"it holds {self.name}.SAFE")
            if problems:
                raise self._error("manifest.safe", f"{where} does not match its manifest: {'; '.join(problems)}")

    def _check_annotation(self, relative: str, annotation: ProductAnnotation) -> None:
        """An annotation must describe this product: platform, absolute orbit, datatake, swath, times."""
        m = self.manifest
        problems = []
        if annotation.mission.upper() != m.platform:
            problems.append(f"mission {annotation.mission} (manifest: {m.platform})")
        if annotation.absolute_orbit != m.absolute_orbit:
            problems.append(f"absolute orbit {annotation.absolute_orbit} (manifest: {m.absolute_orbit})")
        if annotation.mission_datatake_id != m.mission_datatake_id:
            problems.append(f"datatake {annotation.mission_datatake_id} (manifest: {m.mission_datatake_id})")
        if annotation.swath.upper() != m.swath.upper():
            problems.append(f"swath {annotation.swath} (manifest: {m.swath})")
        start = np.datetime64(m.start_time.replace(tzinfo=None), "ns") - np.timedelta64(1, "s")
        stop = np.datetime64(m.stop_time.replace(tzinfo=None), "ns") + np.timedelta64(1, "s")
        if not (start <= annotation.start_time <= stop and start <= annotation.stop_time <= stop):
            problems.append(f"times {annotation.start_time}..{annotation.stop_time} outside the product's "
                            f"{m.start_time:%Y-%m-%dT%H:%M:%S.%f}..{m.stop_time:%Y-%m-%dT%H:%M:%S.%f}")
        if problems:
            raise self._error(relative, f"does not describe {self.name}: {'; '.join(problems)}")

    # ------------------------------------------------------------------ manifest fields

    @property
    def platform(self) -> str:
        return self.manifest.platform

    @property
    def flying_unit_code(self) -> str:
        return self.platform.lower()

    @property
    def mode(self) -> str:
        """'IW', 'EW', or the stripmap swath 'S1'..'S6'."""
        return self.manifest.swath

    @functools.cached_property
    def _name_fields(self) -> dict:
        match = PRODUCT_NAME.match(self.name)
        return match.groupdict() if match else {}

    @property
    def product_type(self) -> str:
        """'GRDH', 'GRDM', ... from the ESA name (the manifest only says 'GRD')."""
        return self._name_fields.get("type", self.manifest.product_type)

    @property
    def polarisations(self) -> tuple[str, ...]:
        return self.manifest.polarisations

    @property
    def pass_direction(self) -> str:
        return self.manifest.pass_direction

    @property
    def absolute_orbit(self) -> int:
        return self.manifest.absolute_orbit

    @property
    def relative_orbit(self) -> int:
        return self.manifest.relative_orbit

    @property
    def datatake_id(self) -> str:
        """Mission datatake id as 6 upper-case hex digits, as in the product name."""
        return f"{self.manifest.mission_datatake_id:06X}"

    @property
    def start_time(self) -> dt.datetime:
        return self.manifest.start_time

    @property
    def stop_time(self) -> dt.datetime:
        return self.manifest.stop_time

    @property
    def ipf_version(self) -> float:
        return self.manifest.ipf_version

    @functools.cached_property
    def footprint(self) -> Polygon:
        """Footprint (lon, lat); longitudes unwrapped past 180 across the antimeridian."""
        lons = np.array([lon for _, lon in self.manifest.footprint_latlon])
        lats = [lat for lat, _ in self.manifest.footprint_latlon]
        if lons.max() - lons.min() > 180:
            lons = np.where(lons < 0, lons + 360, lons)
        return Polygon(zip(lons, lats))

    @functools.cached_property
    def footprint_split(self) -> MultiPolygon:
        """Footprint within [-180, 180], split at the antimeridian when it crosses it."""
        east = self.footprint.intersection(box(-180, -90, 180, 90))
        west = affinity.translate(self.footprint.intersection(box(180, -90, 540, 90)), xoff=-360)
        parts = [g for geom in (east, west) for g in getattr(geom, "geoms", [geom])]
        return MultiPolygon([p for p in parts if isinstance(p, Polygon) and not p.is_empty])

    # ------------------------------------------------------------------ per-polarisation XML

    def annotation(self, pol: str | None = None) -> ProductAnnotation:
        pol = self._pol(pol)
        if pol not in self._annotations:
            relative = self.relative_path("annotation", pol)
            annotation = self._parse(relative, parse_annotation)
            if annotation.polarisation.upper() != pol:
                raise self._error(relative, f"annotates polarisation {annotation.polarisation}, not {pol}")
            self._check_annotation(relative, annotation)
            self._annotations[pol] = annotation
        return self._annotations[pol]

    def calibration(self, pol: str | None = None) -> CalibrationLUTs:
        pol = self._pol(pol)
        if pol not in self._calibrations:
            self._calibrations[pol] = self._parse(self.relative_path("calibration", pol), parse_calibration)
        return self._calibrations[pol]

    def noise(self, pol: str | None = None) -> NoiseLUTs:
        pol = self._pol(pol)
        if pol not in self._noises:
            self._noises[pol] = self._parse(self.relative_path("noise", pol), parse_noise)
        return self._noises[pol]

    @property
    def shape(self) -> tuple[int, int]:
        """(lines, samples) of the measurements, as annotated."""
        image = self.annotation().image
        return image.number_of_lines, image.number_of_samples

    # ------------------------------------------------------------------ measurements

    def measurement_path(self, pol: str | None = None) -> str:
        """GDAL path of the measurement TIFF (``/vsizip/...`` inside a zip)."""
        return self._files.gdal_path(self.relative_path("measurement", pol))

    def open_measurement(self, pol: str | None = None) -> rasterio.DatasetReader:
        """Open the measurement TIFF with rasterio, checked against the annotation on first open.

        Checks: the file exists and is not empty or truncated, one band of uint16, and
        numberOfSamples x numberOfLines pixels. The caller closes the dataset.
        """
        pol = self._pol(pol)
        relative = self.relative_path("measurement", pol)
        try:
            size = self._files.size(relative)
        except FileNotFoundError:
            raise self._error(relative, "file missing") from None
        if size == 0:
            raise self._error(relative, "empty file")
        try:
            dataset = rasterio.open(self._files.gdal_path(relative))
        except (rasterio.errors.RasterioError, OSError) as exc:
            raise self._error(relative, f"unreadable TIFF ({exc})") from None
        if pol not in self._checked_measurements:
            try:
                self._check_measurement(dataset, pol, relative, size)
            except ProductError:
                dataset.close()
                raise
            self._checked_measurements.add(pol)
        return dataset

    def _check_measurement(self, dataset, pol: str, relative: str, size: int) -> None:
        image = self.annotation(pol).image
        lines, samples = image.number_of_lines, image.number_of_samples
        if (dataset.height, dataset.width) != (lines, samples):
            raise self._error(
                relative,
                f"TIFF is {dataset.width} x {dataset.height} pixels, the annotation says "
                f"{samples} samples x {lines} lines",
            )
        if dataset.count != 1 or dataset.dtypes[0] != MEASUREMENT_DTYPE:
            raise self._error(
                relative, f"TIFF has {dataset.count} band(s) of {dataset.dtypes[0]}, expected 1 of uint16"
            )
        block_height, block_width = dataset.block_shapes[0]
        last = f"{math.ceil(samples / block_width) - 1}_{math.ceil(lines / block_height) - 1}"
        offset = dataset.get_tag_item(f"BLOCK_OFFSET_{last}", "TIFF", bidx=1)
        length = dataset.get_tag_item(f"BLOCK_SIZE_{last}", "TIFF", bidx=1)
        end = int(offset) + int(length) if offset and length else 0
        if end > size:
            raise self._error(relative, f"truncated TIFF: {size} bytes, its last block ends at byte {end}")

    def check_window(self, window: WindowLike) -> Window:
        """The window (rasterio Window or (row_off, col_off, height, width)) as a Window;
        ValueError when it is not inside the image."""
        window = as_window(window)
        lines, samples = self.shape
        if (window.row_off < 0 or window.col_off < 0 or window.row_off + window.height > lines
                or window.col_off + window.width > samples):
            raise ValueError(f"window {window} is outside the {samples} x {lines} image")
        return window

    def read(self, pol: str | None, window: WindowLike) -> np.ndarray:
        """Read a window (rasterio Window or (row_off, col_off, height, width)) of DN as uint16."""
        pol = self._pol(pol)
        window = self.check_window(window)
        with self.open_measurement(pol) as dataset:
            try:
                return dataset.read(1, window=window)
            except (rasterio.errors.RasterioError, OSError) as exc:
                raise self._error(self.relative_path("measurement", pol), f"cannot read pixels ({exc})") from None

    # ------------------------------------------------------------------ geometry

    def geolocation_grid(self, pol: str | None = None) -> dict[str, np.ndarray]:
        """ESA's geolocation grid as annotated: line, pixel, latitude, longitude, height,
        incidence_angle, elevation_angle, azimuth_time (datetime64[ns]), slant_range_time."""
        return self.annotation(pol).geolocation_grid.as_dict()

    def sar_model(self, pol: str | None = None) -> SarModel:
        """The SAR sensor model of one polarisation (:class:`s1tiling.geometry.sar_model.SarModel`)."""
        pol = self._pol(pol)
        if pol not in self._sar_models:
            self._sar_models[pol] = SarModel.from_annotation(self.annotation(pol))
        return self._sar_models[pol]


__all__ = ["Product", "open_product", "as_window", "PRODUCT_NAME"]
