"""Searching and downloading Sentinel-1 GRD products with EODAG, offline (tape) products included.

Typical use by the pipeline::

    request = request_from_settings(settings)
    found = search_products(request)            # list[FoundProduct]
    print(describe_dry_run(found, request.s1_images))   # --dry-run
    report = download_products(found, request)  # DownloadReport; report.exit_code

Providers and credentials come only from the user's EODAG configuration file
(``[DataSource] eodag_config``). Products land in ``s1_images`` as unzipped ``.SAFE``
folders; at most ``download_keep`` products downloaded by this tool are kept there (see
:mod:`s1tiling.download.keep`; products put there by users are never deleted).
"""
from .fetch import DownloadReport, download_products
from .gateway import COLLECTION, open_gateway
from .keep import prune_downloads
from .request import DownloadRequest, request_from_settings
from .search import FoundProduct, describe_dry_run, search_products

__all__ = [
    "COLLECTION",
    "DownloadReport",
    "DownloadRequest",
    "FoundProduct",
    "describe_dry_run",
    "download_products",
    "open_gateway",
    "prune_downloads",
    "request_from_settings",
    "search_products",
]
