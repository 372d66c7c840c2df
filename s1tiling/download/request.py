"""What a download asks for: :class:`DownloadRequest`, built from the settings or directly by tests."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Settings


@dataclass(frozen=True)
class DownloadRequest:
    """The ``[DataSource]`` part of a run, plus where products go.

    ``tiles`` are the S2 tiles whose footprints are searched; ``all_tiles`` is set when
    ``roi_by_tiles = ALL``: each product found then covers every grid tile it intersects.
    ``offline_timeout`` is in minutes, ``offline_poll_interval`` and ``retry_delay`` in seconds.
    ``tiles_shapefile``: the user's tile file when the tiles are not those of the MGRS grid.
    """

    tiles: tuple[str, ...]
    first_date: dt.date
    last_date: dt.date
    s1_images: Path
    all_tiles: bool = False
    platform_list: tuple[str, ...] = ()  # any Sentinel-1 unit
    polarisation: str = "VV-VH"
    orbit_direction: str | None = None
    relative_orbit_list: tuple[int, ...] = ()
    tile_to_product_overlap_ratio: float = 0.0
    eodag_config: Path | None = None
    nb_parallel_downloads: int = 2
    offline_timeout: float = 120.0
    offline_poll_interval: float = 60.0
    download_keep: int = 1000
    max_retries: int = 4
    retry_delay: float = 5.0
    tiles_shapefile: Path | None = None
    searched_items_per_page: int = 20
    nb_max_search_retries: int = 5


def request_from_settings(settings: Settings) -> DownloadRequest:
    """The request of a run: ``roi_by_tiles`` tiles, or the processing tiles when it is ``ALL``."""
    source = settings.data_source
    roi = source.roi_by_tiles
    all_tiles = isinstance(roi, str) and roi.upper() == "ALL"
    return DownloadRequest(
        tiles=tuple(settings.processing.tiles) if all_tiles else tuple(roi),
        all_tiles=all_tiles,
        first_date=source.first_date,
        last_date=source.last_date,
        s1_images=Path(settings.paths.s1_images),
        platform_list=tuple(source.platform_list),
        polarisation=source.polarisation,
        orbit_direction=source.orbit_direction,
        relative_orbit_list=tuple(source.relative_orbit_list),
        tile_to_product_overlap_ratio=float(source.tile_to_product_overlap_ratio),
        eodag_config=Path(source.eodag_config) if source.eodag_config else None,
        nb_parallel_downloads=int(source.nb_parallel_downloads),
        offline_timeout=float(source.offline_timeout),
        offline_poll_interval=float(source.offline_poll_interval),
        download_keep=int(source.download_keep),
        tiles_shapefile=settings.processing.tiles_shapefile,
        searched_items_per_page=int(getattr(source, "searched_items_per_page", 20)),
        nb_max_search_retries=int(getattr(source, "nb_max_search_retries", 5)),
    )
