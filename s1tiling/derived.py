"""Products derived from a written tile image: border mask, quicklook, speckle-filtered image."""
from __future__ import annotations

from pathlib import Path

import rasterio

from .context import Context
from .engines import otb_production
from .filtering import filter_file
from .masks import border_mask_file
from .plan import DerivedJob
from .quicklook import write_quicklook
from .writing import creation_options_for, remove_replaced


def make(job: DerivedJob, context: Context) -> str:
    """Write the ``job.kind`` product of the tile image ``job.source`` to ``job.path``; return the path."""
    settings = context.settings
    source, out = job.source, job.path
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    options = settings.processing.creation_options
    if job.kind == "mask" and settings.processing.engine == "otb":
        otb_production.border_mask_file(source, out, creation_options_for("mask", options), context)
    elif job.kind == "mask":
        border_mask_file(source, out, creation_options=creation_options_for("mask", options),
                         output_format=settings.processing.output_format)
    elif job.kind == "quicklook":
        scale = getattr(settings.quicklook, f"scale_{_polarisation(source)}", 0.5)
        write_quicklook(source, out, ratio_percent=settings.quicklook.ratio, scale=scale)
    elif job.kind == "filtered":
        f = settings.filtering
        filter_file(source, out, f.filter, f.window_radius, deramp=f.deramp, nblooks=f.nblooks,
                    creation_options=creation_options_for("filtered", options),
                    output_format=settings.processing.output_format)
    else:
        raise ValueError(f"unknown derived product kind {job.kind!r}")
    remove_replaced(job.replaces, out)  # the same product of a single slice, now merged into its pass
    return out


def _polarisation(path: str) -> str:
    with rasterio.open(path) as src:
        return src.tags().get("POLARIZATION", "vv").lower()
