"""Products derived from a written tile image: border mask, quicklook, speckle-filtered image."""
from __future__ import annotations

from pathlib import Path

from .filtering import filter_file
from .masks import border_mask_file
from .quicklook import write_quicklook
from .writing import creation_options_for


def make(kind: str, source: str, out: str, settings) -> str:
    """Write the ``kind`` product of the tile image ``source`` to ``out``; return ``out``."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    options = settings.processing.creation_options
    if kind == "mask" and settings.processing.engine == "otb":
        from .engines.otb_production import border_mask_file as otb_border_mask_file

        otb_border_mask_file(source, out, creation_options_for("mask", options), settings)
    elif kind == "mask":
        border_mask_file(source, out, creation_options=creation_options_for("mask", options))
    elif kind == "quicklook":
        polarisation = _polarisation(source)
        scale = getattr(settings.quicklook, f"scale_{polarisation}", 0.5)
        write_quicklook(source, out, ratio_percent=settings.quicklook.ratio, scale=scale)
    elif kind == "filtered":
        f = settings.filtering
        filter_file(source, out, f.filter, f.window_radius, deramp=f.deramp, nblooks=f.nblooks,
                    creation_options=options.get("filtered"))
    else:
        raise ValueError(f"unknown derived product kind {kind!r}")
    return out


def _polarisation(path: str) -> str:
    from rasterio import open as open_raster

    with open_raster(path) as src:
        return src.tags().get("POLARIZATION", "vv").lower()
