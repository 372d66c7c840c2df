"""``python -m s1tiling.demo DIR``: the README's demo request (see :mod:`s1tiling.samples.demo`)."""
from .samples.demo import main

if __name__ == "__main__":
    raise SystemExit(main())
