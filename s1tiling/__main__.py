"""``python -m s1tiling CONFIG.cfg``: same as the ``s1tiling`` command."""
from .cli import main

raise SystemExit(main())
