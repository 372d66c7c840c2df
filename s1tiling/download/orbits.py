"""Precise orbit files (.EOF) from the data provider, kept in ``eof_dir``.

S1Tiling's ``S1LIAMap`` and ``S1IAMap`` make their maps from orbit files alone, searched and
downloaded with EODAG (``[DataSource] download = True``) through the same provider configuration
as the products. Providers file them as the collections :data:`ORBIT_COLLECTIONS` (EODAG's names
for Copernicus Data Space's ``AUX_POEORB`` / ``AUX_RESORB`` product types, S1Tiling's
``S1_SAT_AUX_POEORB``-style ones): precise orbits first, restituted ones when no precise orbit is
there (yet).

:func:`search_orbit_files` lists the files of a time range (the name says unit, kind, production
and validity), :func:`fetch_orbit_file` brings one into ``eof_dir``: the download (an ``.EOF``, a
zip holding one, or a folder) goes to a hidden folder of ``eof_dir``, its ``.EOF`` is checked
(:func:`~s1tiling.geometry.orbit.read_eof`) and renamed into place; files already there are reused.
Credentials stay inside EODAG.
"""
from __future__ import annotations

import datetime as dt
import logging
import re
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DownloadError, ProductError
from ..geometry.orbit import read_eof
from .gateway import is_transient, open_gateway, protect_logs, redact

logger = logging.getLogger(__name__)

#: EODAG collections of the orbit files, in order of preference
ORBIT_COLLECTIONS = ("S1_AUX_POEORB", "S1_AUX_RESORB")

ORBIT_NAME = re.compile(
    r"^(?P<platform>S1[A-Z])_OPER_AUX_(?P<kind>POEORB|RESORB)_OPOD_(?P<created>\d{8}T\d{6})"
    r"_V(?P<start>\d{8}T\d{6})_(?P<stop>\d{8}T\d{6})(?:\.EOF)?(?:\.zip|\.SAFE)?$", re.IGNORECASE)


def _name_time(stamp: str) -> dt.datetime:
    return dt.datetime.strptime(stamp, "%Y%m%dT%H%M%S")


@dataclass
class OrbitFile:
    """An orbit file found at the provider (or in ``eof_dir``): what its name says."""

    name: str  # S1A_OPER_AUX_POEORB_OPOD_..., without extension
    platform: str
    kind: str  # POEORB / RESORB
    created: dt.datetime
    start: dt.datetime  # validity, naive UTC
    stop: dt.datetime
    provider: str | None = None
    eoproduct: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_name(cls, name: str, **kwargs) -> OrbitFile | None:
        match = ORBIT_NAME.match(Path(name).name)
        if not match:
            return None
        stem = f"{match['platform'].upper()}_OPER_AUX_{match['kind'].upper()}_OPOD_{match['created']}" \
               f"_V{match['start']}_{match['stop']}"
        return cls(stem, match["platform"].upper(), match["kind"].upper(), _name_time(match["created"]),
                   _name_time(match["start"]), _name_time(match["stop"]), **kwargs)

    def covers(self, when: dt.datetime, margin: float = 120.0) -> bool:
        pad = dt.timedelta(seconds=margin)
        return self.start + pad <= when <= self.stop - pad

    @property
    def preference(self) -> tuple:
        """Sort key: precise before restituted, newest production first."""
        return (self.kind != "POEORB", -self.created.timestamp())


def local_orbit_files(eof_dir) -> list[Path]:
    """The orbit files of ``eof_dir`` (searched recursively)."""
    eof_dir = Path(eof_dir)
    if not eof_dir.is_dir():
        return []
    return sorted(p for p in eof_dir.rglob("*.EOF") if p.is_file() and ORBIT_NAME.match(p.name)
                  and not any(part.startswith(".") for part in p.relative_to(eof_dir).parts))


def search_orbit_files(first: dt.date, last: dt.date, platforms=(), *, eodag_config: Path | None = None,
                       items_per_page: int = 20, max_retries: int = 5, dag=None,
                       collections=ORBIT_COLLECTIONS) -> list[OrbitFile]:
    """The orbit files valid between ``first`` and ``last`` (days, inclusive) of ``platforms``
    (any Sentinel-1 unit when empty), precise ones first; raises :class:`DownloadError` (exit 67)
    when the provider fails, naming what was searched."""
    dag = dag or open_gateway(eodag_config)
    found: dict[str, OrbitFile] = {}
    start, end = (first - dt.timedelta(days=1)).isoformat(), (last + dt.timedelta(days=2)).isoformat()
    for collection in collections:
        results = _search(dag, collection, start, end, items_per_page, max_retries)
        for product in results:
            title = str(product.properties.get("title") or product.properties.get("id") or "")
            orbit_file = OrbitFile.from_name(title, provider=product.provider, eoproduct=product)
            if orbit_file is None:
                logger.debug("ignoring %r: not a Sentinel-1 orbit file name", title)
                continue
            if platforms and orbit_file.platform not in platforms:
                continue
            found.setdefault(orbit_file.name, orbit_file)
    files = sorted(found.values(), key=lambda f: (f.start, f.preference))
    logger.info("%d orbit file(s) found between %s and %s (%s)", len(files), start, end, ", ".join(collections))
    return files


def _search(dag, collection: str, start: str, end: str, items_per_page: int, max_retries: int):
    for attempt in range(max_retries + 1):
        results = dag.search_all(collection=collection, start=start, end=end, limit=items_per_page,
                                 validate=False)
        errors = getattr(results, "errors", None)
        if results or not errors:
            return results
        provider, error = errors[-1]
        if attempt < max_retries and is_transient(error):
            logger.warning("searching %s failed on %s (%s); retry %d/%d", collection, provider,
                           type(error).__name__, attempt + 1, max_retries)
            time.sleep(min(2.0 ** attempt, 30.0))
            continue
        raise DownloadError(f"searching the orbit files {collection} between {start} and {end} failed on "
                            f"provider {provider}: {type(error).__name__}: {redact(str(error))[:300]}")
    return []


def fetch_orbit_file(orbit_file: OrbitFile, eof_dir, *, eodag_config: Path | None = None, dag=None,
                     wait_minutes: float = 1.0, timeout_minutes: float = 20.0) -> Path:
    """Download ``orbit_file`` into ``eof_dir`` (reusing a valid copy already there); returns the
    ``.EOF`` path. Raises :class:`DownloadError` (exit 67) naming the file when it cannot be had."""
    eof_dir = Path(eof_dir)
    final = eof_dir / f"{orbit_file.name}.EOF"
    if final.is_file():
        return final
    protect_logs()
    eof_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".s1tiling-eof-", dir=eof_dir))
    try:
        product = orbit_file.eoproduct
        kwargs = dict(output_dir=str(work), extract=False, wait=wait_minutes, timeout=timeout_minutes)
        try:
            if product.downloader is not None:
                downloaded = Path(product.download(**kwargs))
            else:
                downloaded = Path((dag or open_gateway(eodag_config)).download(product, **kwargs))
        except Exception as err:  # noqa: BLE001 - EODAG and requests raise many kinds
            raise DownloadError(f"orbit file {orbit_file.name}: download from {orbit_file.provider} failed: "
                                f"{type(err).__name__}: {redact(str(err))[:300]}") from err
        source = _eof_in(downloaded, orbit_file.name)
        try:
            vectors = read_eof(source)
        except ProductError as err:
            raise DownloadError(f"orbit file {orbit_file.name} from {orbit_file.provider} is not a valid "
                                f"orbit file: {err}") from err
        tmp = work / f"{orbit_file.name}.EOF.tmp"
        shutil.copyfile(source, tmp)
        tmp.replace(final)
        logger.info("orbit file %s downloaded into %s (%d state vectors)", final.name, eof_dir, vectors.times.size)
        return final
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _eof_in(downloaded: Path, name: str) -> Path:
    """The ``.EOF`` of a download: the file itself, inside a folder, or extracted from a zip."""
    if downloaded.is_dir():
        found = sorted(downloaded.rglob("*.EOF"))
        if found:
            return found[0]
        downloaded = next((p for p in downloaded.rglob("*") if p.is_file()), downloaded)
    if downloaded.is_file() and zipfile.is_zipfile(downloaded):
        with zipfile.ZipFile(downloaded) as archive:
            members = [m for m in archive.namelist() if m.upper().endswith(".EOF")]
            if not members:
                raise DownloadError(f"orbit file {name}: the archive {downloaded.name} holds no .EOF file")
            target = downloaded.parent / "extracted.EOF"
            with archive.open(members[0]) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            return target
    if downloaded.is_file():
        return downloaded
    raise DownloadError(f"orbit file {name}: nothing was downloaded")
