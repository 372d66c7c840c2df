"""s1tiling: Sentinel-1 GRD products orthorectified onto the Sentinel-2 tile grid."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from .s1.product import Product

__version__ = "0.1.0"

__all__ = ["__version__", "open_product", "open_timeseries"]


def open_product(path: str | Path) -> Product:
    """Open a Sentinel-1 product (``.SAFE`` folder or ``.zip``); see :mod:`s1tiling.s1.product`."""
    from .s1.product import open_product as _open

    return _open(path)


def open_timeseries(output, tile, polarisations=None, **options):
    """The time series of S2 tile ``tile`` in the output folder ``output`` as a lazy, dask-backed
    ``xarray.Dataset`` (time, y, x), from its STAC catalog; options ``start``, ``end``, ``orbit``,
    ``calibration``, ``filtered``, ``masks``, ``db``, ``chunks``: see :func:`s1tiling.timeseries.open_timeseries`
    (needs ``pip install 's1tiling[cube]'``)."""
    from .timeseries import open_timeseries as _open

    return _open(output, tile, polarisations, **options)
