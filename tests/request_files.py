"""Small complete requests for CLI tests: request files, and synthetic inputs needing no shared data."""
from __future__ import annotations

from pathlib import Path

from s1tiling import grid
from s1tiling.samples.synthetic import make_safe, write_zero_geoid
from s1tiling.samples.testing import build_product, write_dem_folder

SYNTHETIC_TILE = "31TEL"
SYNTHETIC_DAY = "2021-08-09"


def write_request(root: Path, output: str, *, tiles, first_date, last_date, geoid=None, **sections) -> Path:
    """Write ``root/<output>.cfg`` reading ``root/s1_images`` and ``root/dem``, writing ``root/<output>``.

    ``sections`` maps a section name to its extra ``key: value`` pairs, e.g.
    ``Processing={"output_spatial_resolution": 200}``.
    """
    extra = {name: dict(values) for name, values in sections.items()}
    paths = {"s1_images": root / "s1_images", "output": root / output, "tmp": root / "tmp", "dem_dir": root / "dem",
             **({"geoid_file": geoid} if geoid else {}), **extra.pop("Paths", {})}
    data_source = {"first_date": first_date, "last_date": last_date, **extra.pop("DataSource", {})}
    processing = {"tiles": ", ".join([tiles] if isinstance(tiles, str) else tiles), **extra.pop("Processing", {})}
    text = ""
    for name, values in {"Paths": paths, "DataSource": data_source, "Processing": processing, **extra}.items():
        text += f"[{name}]\n" + "".join(f"{key} : {value}\n" for key, value in values.items())
    cfg = root / f"{output}.cfg"
    cfg.write_text(text)
    return cfg


def synthetic_inputs(root: Path, content="speckle") -> Path:
    """One synthetic product over ``SYNTHETIC_TILE`` in ``root/s1_images``, flat DEM tiles in
    ``root/dem``; returns a zero-undulation geoid file."""
    template = make_safe(root / "templates", center_lat=45.2, center_lon=3.79, pixel_spacing=40.0)
    build_product(template, root / "s1_images", content=content)
    write_dem_folder(root / "dem", grid.tile(SYNTHETIC_TILE).footprint)
    return write_zero_geoid(root / "geoid.gtx")


GERMANY_SLICES = ("S1A_IW_GRDH_1SDV_20150222T170725_20150222T170750_004739_005DD8_CEAB.SAFE",
                  "S1A_IW_GRDH_1SDV_20150222T170750_20150222T170815_004739_005DD8_3768.SAFE")


def germany_map_inputs(root: Path, s1_dir: Path) -> None:
    """The two 2015 Germany slices without pixels in ``root/metadata`` (enough for angle and area
    maps), and the second one with VV pixels (fields of four levels) in ``root/pixels``."""
    for name in GERMANY_SLICES:
        build_product(s1_dir / name, root / "metadata", polarisations=[])
    build_product(s1_dir / GERMANY_SLICES[1], root / "pixels", polarisations=["VV"],
                  content=lambda rows, cols: 50 + (rows // 700 + cols // 900) % 4 * 40)
