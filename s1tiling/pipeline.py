"""Runs the whole chain for validated settings (placeholder until the real pipeline lands)."""
from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def run(settings, *, dry_run: bool = False, cache_before_ortho: bool = False) -> int:
    """Processes the request; returns the exit status (0 on success)."""
    if dry_run:
        print(settings.describe())
        return 0
    logger.warning("processing not implemented yet")
    return 0
