"""Sample inputs for tests, benchmarks and the demo, built from real metadata or from scratch.

- :mod:`s1tiling.samples.testing`: Sentinel-1 products with synthetic pixels built from real
  metadata-only SAFE folders (``build_product``), DEM folders, corrupted products;
- :mod:`s1tiling.samples.synthetic`: physically consistent synthetic SAFE folders (orbit,
  geolocation grid, calibration and noise tables) when no real metadata is at hand;
- :mod:`s1tiling.samples.demo`: the demo request of the README (``python -m s1tiling.demo``).
"""
