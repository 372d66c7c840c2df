"""Checking a downloaded Sentinel-1 product and installing it, unzipped, in ``s1_images``.

A product is accepted when it holds exactly one ``<name>.SAFE`` folder whose
``manifest.safe`` parses and whose annotation and measurement files (as the manifest
lists them) are all present and non-empty; a zip must also pass its CRC check. Anything
else raises :class:`~s1tiling.errors.CorruptProductError` naming the product and the file.
Installation extracts into a hidden temporary folder of ``s1_images`` and renames the
SAFE folder into place, so that a product is either complete or absent.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from lxml import etree

from ..errors import CorruptProductError
from ..s1.manifest import parse_manifest

logger = logging.getLogger(__name__)

_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError, etree.XMLSyntaxError)


def _required_files(name: str, manifest: bytes) -> list[str]:
    """Annotation and measurement files the manifest lists, relative to the SAFE root."""
    try:
        objects = parse_manifest(manifest).data_objects
    except (ValueError, etree.XMLSyntaxError) as err:
        raise CorruptProductError(f"{name}: manifest.safe: {err}") from err
    files = [o.href for o in objects if o.href.split("/")[0] in ("annotation", "measurement")]
    if not any(f.startswith("measurement/") for f in files):
        raise CorruptProductError(f"{name}: manifest.safe lists no measurement file")
    return files


def _check_sizes(name: str, required: list[str], size_of) -> None:
    for file in required:
        size = size_of(file)
        if size is None:
            raise CorruptProductError(f"{name}: {file} is missing")
        if size == 0:
            raise CorruptProductError(f"{name}: {file} is empty")


def _safe_prefix(name: str, members: list[str]) -> str:
    """The one ``.../<name>.SAFE/`` folder of a zip, as a member prefix."""
    prefixes = set()
    for member in members:
        path = PurePosixPath(member)
        if path.is_absolute() or ".." in path.parts:
            raise CorruptProductError(f"{name}: unsafe path {member!r} in the archive")
        for depth, part in enumerate(path.parts):
            if part.endswith(".SAFE"):
                prefixes.add("/".join(path.parts[: depth + 1]) + "/")
                break
    if len(prefixes) != 1:
        found = ", ".join(sorted(prefixes)) or "none"
        raise CorruptProductError(f"{name}: expected exactly one .SAFE folder in the archive, found {found}")
    prefix = prefixes.pop()
    if PurePosixPath(prefix).name != f"{name}.SAFE":
        raise CorruptProductError(f"{name}: the archive holds {prefix.rstrip('/')}, expected {name}.SAFE")
    return prefix


def check_zip(path: Path, name: str, crc: bool = True) -> str:
    """Check a zipped product; returns the member prefix of its SAFE folder."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = {info.filename: info for info in archive.infolist() if not info.is_dir()}
            prefix = _safe_prefix(name, list(infos))
            manifest = infos.get(prefix + "manifest.safe")
            if manifest is None or manifest.file_size == 0:
                raise CorruptProductError(f"{name}: {path.name}: manifest.safe is missing or empty")
            required = _required_files(name, archive.read(manifest))
            _check_sizes(name, required, lambda f: getattr(infos.get(prefix + f), "file_size", None))
            bad = archive.testzip() if crc else None
    except CorruptProductError:
        raise
    except _READ_ERRORS as err:
        raise CorruptProductError(f"{name}: {path}: unreadable zip archive: {err}") from err
    if bad is not None:
        raise CorruptProductError(f"{name}: {bad} fails its CRC check (in {path.name})")
    return prefix


def check_safe(safe: Path, name: str) -> None:
    """Check an unzipped ``.SAFE`` folder."""
    manifest = safe / "manifest.safe"
    if not manifest.is_file() or manifest.stat().st_size == 0:
        raise CorruptProductError(f"{name}: {manifest} is missing or empty")

    def size_of(file: str):
        target = safe / file
        return target.stat().st_size if target.is_file() else None

    _check_sizes(name, _required_files(name, manifest.read_bytes()), size_of)


def local_product(s1_images: Path, name: str) -> Path | None:
    """The valid copy of a product already in ``s1_images`` (``X.SAFE``, ``X/X.SAFE`` or ``X.zip``), or None.

    Zips already there are checked for structure, not CRC (reading every byte of every
    product at each run would be too slow).
    """
    candidates = [s1_images / f"{name}.SAFE", s1_images / name / f"{name}.SAFE", s1_images / f"{name}.zip"]
    for path in candidates:
        if not path.exists():
            continue
        try:
            if path.is_dir():
                check_safe(path, name)
            else:
                check_zip(path, name, crc=False)
        except CorruptProductError as err:
            logger.warning("%s is already in %s but is incomplete: %s", name, s1_images, err)
            continue
        return path
    return None


def install(download: Path, s1_images: Path, name: str) -> Path:
    """Check what EODAG delivered (a zip, or a folder holding the SAFE) and move it to ``s1_images/<name>.SAFE``.

    Raises CorruptProductError, or FileExistsError when the destination already exists.
    """
    download = _delivered(download, name)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".part", dir=s1_images))
    try:
        if download.is_dir():
            check_safe(download, name)
            safe = download
        elif zipfile.is_zipfile(download):
            prefix = check_zip(download, name)
            with zipfile.ZipFile(download) as archive:
                archive.extractall(staging, [m for m in archive.namelist() if m.startswith(prefix)])
            safe = staging / prefix
        else:
            raise CorruptProductError(f"{name}: {download.name} is not a zip archive")
        return _publish(safe, s1_images / f"{name}.SAFE")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _delivered(download: Path, name: str) -> Path:
    """The product in what EODAG returned: a zip, a SAFE folder, or a folder holding one of them."""
    if not download.is_dir() or download.name == f"{name}.SAFE":
        return download
    found = [p for p in (*download.glob("*"), *download.glob("*/*"))
             if (p.suffix == ".SAFE" and p.is_dir()) or (p.suffix == ".zip" and p.is_file())]
    if len(found) != 1:
        files = ", ".join(sorted(p.name for p in download.iterdir())) or "nothing"
        raise CorruptProductError(f"{name}: the download holds no single .SAFE folder or zip ({files})")
    if found[0].suffix == ".SAFE" and found[0].name != f"{name}.SAFE":
        raise CorruptProductError(f"{name}: the download holds {found[0].name}, expected {name}.SAFE")
    return found[0]


def _publish(safe: Path, destination: Path) -> Path:
    """Atomic rename of a checked SAFE folder to its final name."""
    if destination.exists():
        raise FileExistsError(f"{destination} already exists")
    os.rename(safe, destination)
    return destination
