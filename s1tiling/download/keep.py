"""Which products of ``s1_images`` this tool downloaded, and pruning the oldest of them.

Each product installed by a download leaves an empty marker file
``s1_images/.s1tiling-downloaded/<name>``. Pruning only ever considers marked products,
so products that users put in ``s1_images`` themselves are never deleted. Beyond
``download_keep`` marked products, the oldest (by modification time of their SAFE
folder, i.e. when they were installed) are deleted, except those the current run needs.
Marker files are created and removed one by one, so concurrent runs do not corrupt them.
"""
from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable
from pathlib import Path

logger = logging.getLogger(__name__)

MARKERS = ".s1tiling-downloaded"


def mark_downloaded(s1_images: Path, name: str) -> None:
    markers = s1_images / MARKERS
    markers.mkdir(exist_ok=True)
    (markers / name).touch()


def downloaded_products(s1_images: Path) -> dict[str, Path]:
    """Marked products still present: name -> SAFE folder. Markers of vanished products are dropped."""
    markers = s1_images / MARKERS
    found = {}
    for marker in sorted(markers.glob("*")) if markers.is_dir() else ():
        safe = s1_images / f"{marker.name}.SAFE"
        if safe.is_dir():
            found[marker.name] = safe
        else:
            marker.unlink(missing_ok=True)
    return found


def prune_downloads(s1_images: Path, keep: int, protect: Iterable[str] = ()) -> list[str]:
    """Delete the oldest downloaded products beyond the ``keep`` most recent; returns their names."""
    products = downloaded_products(s1_images)

    def installed(name: str) -> float:
        try:
            return products[name].stat().st_mtime
        except FileNotFoundError:  # removed meanwhile by another run
            return 0.0

    newest_first = sorted(products, key=installed, reverse=True)
    protected = set(protect)
    removed = []
    for name in newest_first[keep:]:
        if name in protected:
            continue
        logger.info("removing %s from %s (keeping the %d most recent downloads)", name, s1_images, keep)
        (s1_images / MARKERS / name).unlink(missing_ok=True)
        shutil.rmtree(products[name], ignore_errors=True)
        removed.append(name)
    return removed
