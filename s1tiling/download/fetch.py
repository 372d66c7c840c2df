"""Downloading found products into ``s1_images``: checks, retries, offline products, report.

Products already in ``s1_images`` (valid ``X.SAFE`` folder or zip) are skipped. Each
download goes to a per-run hidden folder of ``s1_images``, is checked (see
:mod:`.safe`) and renamed into place as ``X.SAFE``; a corrupt one is deleted and
reported. Transient errors (HTTP 5xx or 429, timeouts, broken connections) are retried
with exponential backoff (``retry_delay`` x 2^n seconds, ``max_retries`` times).

Offline (tape) products are handled in two steps. First, staging is asked for all of
them: through EODAG's order request when the provider has one (``eodag:order_link``),
otherwise by one download attempt, which is how providers such as Copernicus Data Space
start a restore. Then, every ``offline_poll_interval`` seconds, their status is
refreshed (EODAG's order status request when there is a status link, else a new search
by id) and those now online are downloaded, until none is left or ``offline_timeout``
minutes have passed; the others are reported missing.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import CorruptProductError, ExitCode
from .gateway import is_transient as _is_transient, open_gateway, protect_logs, redact
from .keep import mark_downloaded, prune_downloads
from .request import DownloadRequest
from .safe import install, local_product
from .search import FoundProduct, product_name

if TYPE_CHECKING:
    from eodag import EODataAccessGateway

logger = logging.getLogger(__name__)


@dataclass
class DownloadReport:
    """What became of each product; names only (no path, no credential)."""

    downloaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)
    tiles: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def exit_code(self) -> ExitCode:
        if self.corrupt:
            return ExitCode.CORRUPT_PRODUCT
        if self.missing:
            return ExitCode.OFFLINE_TIMEOUT
        if self.failed:
            return ExitCode.DOWNLOAD_ERROR
        return ExitCode.OK

    @property
    def unavailable(self) -> set[str]:
        """Products that are not in ``s1_images``: the outputs needing them must not be produced."""
        return set(self.corrupt) | set(self.missing) | set(self.failed)

    def products_for_tile(self, tile: str) -> list[str]:
        """Names of the products (whatever became of them) covering ``tile``."""
        return sorted(name for name, tiles in self.tiles.items() if tile in tiles)

    def summary(self) -> str:
        counts = ", ".join(f"{len(getattr(self, k))} {k}" for k in
                           ("downloaded", "skipped", "corrupt", "missing", "failed", "pruned"))
        lines = [f"Sentinel-1 downloads: {counts}"]
        lines += [f"  {name}: {problem}" for name, problem in sorted(self.problems.items())]
        return "\n".join(lines)


class _Outcome(Enum):
    DOWNLOADED = "downloaded"
    OFFLINE = "offline"
    DONE = "done"  # recorded in the report otherwise (corrupt, failed, skipped)


class _Session:
    """One call of :func:`download_products`: its work folder, its gateway, its report."""

    def __init__(self, request: DownloadRequest, dag: EODataAccessGateway | None, progress: bool,
                 report: DownloadReport):
        self.request = request
        self.s1_images = Path(request.s1_images)
        self._dag = dag
        self.progress = progress
        self.report = report
        self.lock = threading.Lock()
        self.workdir = Path(tempfile.mkdtemp(prefix=".s1tiling-download-", dir=self.s1_images))

    # --- EODAG ---------------------------------------------------------------------
    def gateway(self):
        if self._dag is None:
            self._dag = open_gateway(self.request.eodag_config)
        return self._dag

    @property
    def wait_minutes(self) -> float:
        return self.request.offline_poll_interval / 60

    @staticmethod
    def _auth(eoproduct):
        authenticator = getattr(eoproduct, "downloader_auth", None)
        return authenticator.authenticate() if authenticator is not None else None

    def _record(self, bucket: str, product: FoundProduct, problem: str | None = None) -> None:
        with self.lock:
            getattr(self.report, bucket).append(product.name)
            if problem:
                self.report.problems[product.name] = problem
        if problem:
            logger.error("%s: %s", product.name, problem)

    # --- one product ---------------------------------------------------------------
    def _eodag_download(self, product: FoundProduct, target: Path, slot: int) -> Path:
        from eodag.utils import ProgressCallback

        eoproduct = product.eoproduct
        bar = ProgressCallback(desc=product.name[:32], position=slot, leave=False,
                               disable=None if self.progress else True)
        kwargs = dict(progress_callback=bar, output_dir=str(target), extract=False,
                      wait=self.wait_minutes, timeout=0)
        try:
            if eoproduct.downloader is not None:
                return Path(eoproduct.download(**kwargs))
            return Path(self.gateway().download(eoproduct, **kwargs))
        finally:
            bar.close()

    def fetch(self, product: FoundProduct, slot: int = 0) -> _Outcome:
        """Download, check and install one product, retrying transient errors."""
        from eodag.utils.exceptions import AuthenticationError, MisconfiguredError, NotAvailableError

        target = self.workdir / product.name
        attempts = self.request.max_retries + 1
        try:
            for attempt in range(attempts):
                shutil.rmtree(target, ignore_errors=True)
                target.mkdir()
                logger.info("downloading %s from %s", product.name, product.provider)
                started = time.monotonic()
                try:
                    path = self._eodag_download(product, target, slot)
                    break
                except NotAvailableError as err:
                    logger.info("%s is not available yet: %s", product.name, redact(str(err))[:200])
                    product.order_status = product.eoproduct.properties.get("order:status") or "ordered"
                    return _Outcome.OFFLINE
                except (AuthenticationError, MisconfiguredError) as err:
                    self._record("failed", product, f"provider {product.provider} refused the "
                                 f"credentials of the EODAG configuration ({type(err).__name__})")
                    return _Outcome.DONE
                except Exception as err:  # noqa: BLE001 - EODAG and requests raise many kinds
                    if attempt + 1 < attempts and _is_transient(err):
                        delay = self.request.retry_delay * 2**attempt
                        logger.warning("%s: %s (%s); retry %d/%d in %.0f s", product.name,
                                       type(err).__name__, redact(str(err))[:200], attempt + 1, attempts - 1, delay)
                        time.sleep(delay)
                        continue
                    self._record("failed", product, f"download failed: {type(err).__name__}: {redact(str(err))[:300]}")
                    return _Outcome.DONE
            return self._install(product, path, time.monotonic() - started)
        finally:
            shutil.rmtree(target, ignore_errors=True)

    def _install(self, product: FoundProduct, path: Path, seconds: float) -> _Outcome:
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size
        try:
            safe = install(path, self.s1_images, product.name)
        except CorruptProductError as err:
            problem = str(err).removeprefix(f"{product.name}: ")
            self._record("corrupt", product, f"corrupt or empty download, deleted: {problem}")
            return _Outcome.DONE
        except FileExistsError:
            if local_product(self.s1_images, product.name):  # installed meanwhile by another run
                self._record("skipped", product)
            else:
                self._record("failed", product, f"{self.s1_images / (product.name + '.SAFE')} exists but is "
                             "incomplete; remove it to download the product again")
            return _Outcome.DONE
        mark_downloaded(self.s1_images, product.name)
        logger.info("%s downloaded (%.1f MiB in %.1f s) into %s", product.name, size / 2**20, seconds, safe)
        self._record("downloaded", product)
        return _Outcome.DOWNLOADED

    # --- several products ----------------------------------------------------------
    def fetch_all(self, products: list[FoundProduct]) -> list[FoundProduct]:
        """Download in parallel; returns those that turned out not to be online."""
        if not products:
            return []
        workers = max(1, min(self.request.nb_parallel_downloads, len(products)))

        def fetch(index: int, product: FoundProduct) -> _Outcome:
            try:
                return self.fetch(product, index % workers)
            except Exception as err:  # noqa: BLE001 - one product's failure must not stop the others
                logger.exception("%s: unexpected error", product.name)
                self._record("failed", product, f"{type(err).__name__}: {redact(str(err))[:300]}")
                return _Outcome.DONE

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s1tiling-download") as pool:
            outcomes = list(pool.map(fetch, range(len(products)), products))
        return [p for p, outcome in zip(products, outcomes) if outcome is _Outcome.OFFLINE]

    def stage(self, product: FoundProduct) -> bool:
        """Ask for an offline product to be staged; True while it still has to be waited for."""
        from eodag.utils.exceptions import NotAvailableError

        eoproduct = product.eoproduct
        downloader = getattr(eoproduct, "downloader", None)
        if not (eoproduct.properties.get("eodag:order_link") and hasattr(downloader, "order")):
            return self.fetch(product) is _Outcome.OFFLINE  # a download attempt starts the restore
        try:
            # (hasattr(downloader, "order") checked above)
            downloader.order(eoproduct, auth=self._auth(eoproduct), wait=self.wait_minutes,  # type: ignore[union-attr]
                             timeout=0)
        except NotAvailableError:
            pass
        except Exception as err:  # noqa: BLE001
            logger.warning("%s: staging request failed (%s: %s); will ask again",
                           product.name, type(err).__name__, redact(str(err))[:200])
            if not eoproduct.properties.get("eodag:status_link"):
                eoproduct.properties["order:status"] = "orderable"  # so that the next check orders again
        product.order_status = eoproduct.properties.get("order:status")
        return True

    def refresh(self, product: FoundProduct) -> None:
        """Update the storage status of a product being staged."""
        from eodag.utils.exceptions import NotAvailableError

        eoproduct = product.eoproduct
        downloader = getattr(eoproduct, "downloader", None)
        properties = eoproduct.properties
        try:
            if hasattr(downloader, "order") and (properties.get("eodag:status_link")
                                                 or properties.get("eodag:order_link")):
                downloader.order(eoproduct, auth=self._auth(eoproduct), wait=self.wait_minutes,  # type: ignore[union-attr]
                                 timeout=0)
            else:
                results = self.gateway().search(id=product.name, provider=product.provider, validate=False)
                match = [r for r in results if product_name(r.properties) == product.name]
                if match:
                    product.eoproduct = match[0]
        except NotAvailableError:
            pass
        except Exception as err:  # noqa: BLE001
            logger.warning("%s: status check failed (%s: %s)", product.name, type(err).__name__,
                           redact(str(err))[:200])
        product.order_status = product.eoproduct.properties.get("order:status")

    def run(self, products: list[FoundProduct]) -> None:
        request = self.request
        waiting = [p for p in products if not p.online]
        if waiting:
            logger.info("%d product(s) offline: asking for their staging", len(waiting))
            waiting = [p for p in waiting if self.stage(p)]
        waiting += self.fetch_all([p for p in products if p.online])
        deadline = time.monotonic() + request.offline_timeout * 60
        while waiting and time.monotonic() < deadline:
            logger.info("waiting for %d offline product(s) (%s)", len(waiting),
                        ", ".join(p.name for p in waiting[:3]) + (", ..." if len(waiting) > 3 else ""))
            time.sleep(max(0.0, min(request.offline_poll_interval, deadline - time.monotonic())))
            for product in waiting:
                self.refresh(product)
            ready = [p for p in waiting if p.online]
            waiting = [p for p in waiting if not p.online] + self.fetch_all(ready)
        for product in waiting:
            self._record("missing", product, f"still offline after {request.offline_timeout:g} min "
                         f"(status {product.order_status})")

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


def download_products(found: list[FoundProduct], request: DownloadRequest, dag: EODataAccessGateway | None = None,
                      progress: bool = True) -> DownloadReport:
    """Bring every found product into ``request.s1_images``; see the module documentation."""
    protect_logs()
    s1_images = Path(request.s1_images)
    s1_images.mkdir(parents=True, exist_ok=True)
    report = DownloadReport(tiles={p.name: tuple(sorted(p.tiles)) for p in found})
    todo = []
    for product in found:
        if local_product(s1_images, product.name):
            report.skipped.append(product.name)
        else:
            todo.append(product)
    if todo:
        session = _Session(request, dag, progress, report)
        try:
            session.run(todo)
        finally:
            session.close()
    report.pruned = prune_downloads(s1_images, request.download_keep, protect=[p.name for p in found])
    logger.info("%s", report.summary())
    return report
