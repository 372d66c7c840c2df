"""s1tiling: Sentinel-1 GRD products orthorectified onto the Sentinel-2 tile grid."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from .s1.product import Product

__version__ = "0.1.0"

__all__ = ["__version__", "open_product"]


def open_product(path: str | Path) -> Product:
    """Open a Sentinel-1 product (``.SAFE`` folder or ``.zip``); see :mod:`s1tiling.s1.product`."""
    from .s1.product import open_product as _open

    return _open(path)
