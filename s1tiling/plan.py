"""Planning: settings and passes -> the jobs of a run. No pixels, no numba, no rasterio.

A run is planned in the main process, before any worker starts: for each pass over a tile
(:class:`~s1tiling.discovery.TileGroup`, the slices of one datatake), the tile images to make
(one :class:`TileJob` writes every polarisation), the angle and gamma-area maps NORMLIM and RTC
images need (one :class:`MapJob` per tile and relative orbit, shared by every date), the
calibrated products ``--cache-before-ortho`` keeps (one :class:`CalibrationJob` per product and
polarisation) and the derived products (border masks, quicklooks, filtered images:
:class:`DerivedJob`). Outputs already on disk are not made again (a rerun resumes): they are
listed in :attr:`Plan.present`. Whether an output is there is the ``present(path, inputs=None)``
check the caller gives (default: the file exists); the pipeline gives
:func:`s1tiling.writing.accept_existing`, which keeps only verified, complete files made from the
same slices. When a pass has gained a slice since its tile images were made, the single-slice
images it replaces (and their masks, quicklooks, filtered images) are removed as soon as the
merged ones are published (:attr:`TileImage.replaces`, :attr:`DerivedJob.replaces`), or at once
when the merged ones are already there (:attr:`Plan.superseded`).

The jobs are frozen records of paths and names only: they travel to dask workers, where the
makers (:mod:`s1tiling.production`, :mod:`s1tiling.incidence`, :mod:`s1tiling.terrain_flattening`,
:mod:`s1tiling.derived`, :mod:`s1tiling.engines.otb_production`) turn them into files.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .config import ProcessingSettings
from .naming import TileProduct, layout, product_path
from .s1.names import parse_product_name

if TYPE_CHECKING:
    from .config import Settings
    from .discovery import TileGroup

#: ``[Processing] ia_maps_to_produce`` value -> IA map kind (``{IA_kind}`` of its name)
IA_KINDS = {"deg": "IA", "cos": "cos_IA", "sin": "sin_IA", "tan": "tan_IA"}
#: map families: the maps S1LIAMap, S1IAMap and S1GammaAreaMap make
MAP_FAMILIES = ("LIA", "IA", "GAMMA_AREA")
#: map family -> naming kind and the field holding the map kind
_NAMING = {"LIA": ("lia_product", "LIA_kind"), "IA": ("ia_product", "IA_kind"),
           "GAMMA_AREA": ("gamma_area", "GAMMA_AREA_kind")}
#: derived product kinds, in the order they are planned
DERIVED_KINDS = ("mask", "quicklook", "filtered")
#: ``[Processing] calibration`` -> the LUT its tile images are calibrated with
_LUT = {"sigma": "sigma", "beta": "beta", "gamma": "gamma", "dn": "dn", "normlim": "beta",
        "gamma_naught_rtc": "gamma"}
#: the default ``lower_signal_value``: cache names say when another one is used
_DEFAULT_FLOOR = ProcessingSettings.__dataclass_fields__["lower_signal_value"].default

#: ``present(path, inputs=None)``: whether an output is already there and may be kept (``inputs``: the
#: names of the products a tile image must have been made from)
Present = Callable[..., bool]


def exists(path, inputs: Sequence[str] | None = None) -> bool:
    """The default ``present`` check: the file exists."""
    return Path(path).exists()


# ---------------------------------------------------------------------------- jobs

@dataclass(frozen=True)
class TileImage:
    """One output image of a pass over a tile: its polarisation (``VV``...), name fields and path;
    ``replaces``: the single-slice outputs of the same pass it supersedes (removed once it is published)."""

    polarisation: str
    product: TileProduct
    path: str
    replaces: tuple[str, ...] = ()


@dataclass(frozen=True)
class TileJob:
    """One pass over one tile: the slices (paths, in time order) and the images to make.

    ``sin_lia`` (NORMLIM) and ``gamma_area`` (gamma0 RTC) are the maps the calibrated values are
    multiplied or divided by; ``cached``: the SAR windows are read from the files of
    :func:`calibrated_path` (``--cache-before-ortho``).
    """

    tile: str
    products: tuple[str, ...]
    images: tuple[TileImage, ...]
    sin_lia: str | None = None
    gamma_area: str | None = None
    cached: bool = False

    @property
    def key(self) -> str:
        return f"ortho/{Path(self.images[0].path).stem}"

    @property
    def polarisations(self) -> tuple[str, ...]:
        return tuple(image.polarisation for image in self.images)


@dataclass(frozen=True)
class MapJob:
    """The missing maps of one family (``LIA``, ``IA`` or ``GAMMA_AREA``) of one relative orbit over
    one tile, from the geometry of one pass (``products``: its slices, in time order), or, without
    products, of the pass of an orbit file (:class:`OrbitFilePass`: ``platform``, ``direction``,
    ``absolute_orbit`` and its time window ``start`` / ``stop``, ISO UTC; ``eof`` the file found)."""

    family: str
    tile: str
    orbit: int
    products: tuple[str, ...]
    outputs: tuple[tuple[str, str], ...]  # (map kind, path)
    platform: str = ""
    direction: str = ""
    absolute_orbit: int = 0
    start: str = ""
    stop: str = ""
    eof: str = ""

    @property
    def key(self) -> str:
        return f"{self.family.lower()}/{Path(self.outputs[0][1]).stem}"


@dataclass(frozen=True)
class OrbitFilePass:
    """A pass of a relative orbit over a tile known from an orbit file alone (no Sentinel-1
    product): what a map job needs in place of a :class:`~s1tiling.discovery.TileGroup`."""

    tile: str
    platform: str
    relative_orbit: int
    pass_direction: str
    absolute_orbit: int
    start: str  # ISO UTC, the zero-Doppler times of the tile with a margin
    stop: str
    eof: str  # the orbit file's name
    coverage: float = 0.0  # passes of products, when there are, are preferred
    products: tuple = ()

    @property
    def key(self) -> str:
        return f"{self.platform}_{self.relative_orbit:03d}_{self.absolute_orbit:06d}_{self.tile}"


@dataclass(frozen=True)
class CalibrationJob:
    """One polarisation of one product calibrated and border-cut into ``path`` (``--cache-before-ortho``)."""

    product: str
    polarisation: str
    path: str

    @property
    def key(self) -> str:
        return f"calibrate/{Path(self.product).name}/{self.polarisation}"


@dataclass(frozen=True)
class DerivedJob:
    """A product derived from a tile image: ``kind`` is ``mask``, ``quicklook`` or ``filtered``.

    ``after``: the key of the job making ``source`` in this run (None when it is already there);
    ``replaces``: the products of the same kind it supersedes (see :class:`TileImage`).
    """

    kind: str
    source: str
    path: str
    after: str | None = None
    replaces: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.kind}/{Path(self.path).name}"


@dataclass(frozen=True)
class Plan:
    """What a run will make, and what is already there."""

    passes: tuple[TileGroup | OrbitFilePass, ...] = ()
    tile_jobs: tuple[TileJob, ...] = ()
    map_jobs: tuple[MapJob, ...] = ()
    calibrations: tuple[CalibrationJob, ...] = ()
    derived: tuple[DerivedJob, ...] = ()
    present: tuple[str, ...] = ()
    #: (tile image, its filtered product): the image is removed once filtered
    #: (``keep_non_filtered_products = False``)
    transient: tuple[tuple[str, str], ...] = ()
    #: (old, new): single-slice outputs whose merged replacement is already there, to remove now
    superseded: tuple[tuple[str, str], ...] = ()

    @property
    def is_empty(self) -> bool:
        """Nothing to make."""
        return not (self.tile_jobs or self.map_jobs or self.calibrations or self.derived)

    def describe(self) -> str:
        lines = [f"{len(self.passes)} pass(es) over the requested tiles:"]
        for g in self.passes:
            if isinstance(g, OrbitFilePass):
                lines.append(f"  {g.key}  {g.pass_direction} {g.start} .. {g.stop} over {g.tile}  orbit file {g.eof}")
                continue
            names = ", ".join(p.name for p in g.products)
            lines.append(f"  {g.key}  {g.coverage:5.1f}% of {g.tile}  [{'/'.join(g.polarisations)}]  {names}")
        lines.append(f"{sum(len(j.images) for j in self.tile_jobs)} tile image(s) to produce:")
        lines += [f"  {image.path}" for job in self.tile_jobs for image in job.images]
        if self.calibrations:
            lines.append(f"{len(self.calibrations)} calibrated product(s) to cache before orthorectification:")
            lines += [f"  {c.path}" for c in self.calibrations]
        if self.map_jobs:
            lines.append(f"{sum(len(m.outputs) for m in self.map_jobs)} map(s) (incidence angles, gamma area) "
                         "to produce:")
            lines += [f"  {path}" for m in self.map_jobs for _, path in m.outputs]
        if self.derived:
            lines.append(f"{len(self.derived)} derived product(s) to produce:")
            lines += [f"  {d.kind:<9} {d.path}" for d in self.derived]
        if self.present:
            lines.append(f"{len(self.present)} product(s) already present, kept:")
            lines += [f"  {p}" for p in self.present]
        replaced = [(old, image.path) for job in self.tile_jobs for image in job.images for old in image.replaces]
        replaced += [(old, d.path) for d in self.derived for old in d.replaces] + list(self.superseded)
        if replaced:
            lines.append(f"{len(replaced)} single-slice product(s) replaced by the merged product of their pass:")
            lines += [f"  {old} -> {Path(new).name}" for old, new in replaced]
        return "\n".join(lines)


# ---------------------------------------------------------------------------- names and paths

def tile_product(settings: Settings, group: TileGroup, polarisation: str) -> TileProduct:
    """The name fields of the ``polarisation`` image of a pass over its tile."""
    first = group.products[0]
    return TileProduct(first.flying_unit_code, group.tile, polarisation, group.pass_direction, group.relative_orbit,
                       tuple(p.start_time for p in group.products), settings.processing.calibration,
                       first.absolute_orbit, Path(first.measurement_path(polarisation)).name)


def image_path(settings: Settings, product: TileProduct, kind: str | None = None) -> Path:
    """Path of a tile image (``kind`` None) or of a product derived from it (``mask``...)."""
    proc = settings.processing
    method = settings.filtering.filter
    return product.path(kind, proc.fname_fmt, proc.dname_fmt, layout(settings.paths),
                        None if method == "none" else method)


def map_kinds(settings: Settings, family: str) -> tuple[str, ...]:
    """Kinds of the maps a run makes: ``sin_LIA`` (+ ``LIA`` with ``produce_lia_map``), the
    IA maps of ``ia_maps_to_produce`` (``IA`` when it is empty), or ``GAMMA_AREA``."""
    proc = settings.processing
    if family == "GAMMA_AREA":
        return ("GAMMA_AREA",)
    if family == "LIA":
        return ("sin_LIA", "LIA") if proc.produce_lia_map else ("sin_LIA",)
    return tuple(IA_KINDS[k] for k in proc.ia_maps_to_produce) or ("IA",)


def map_path(settings: Settings, kind: str, group: TileGroup | OrbitFilePass) -> Path:
    """Path of the ``kind`` map (``LIA``, ``sin_LIA``, ``IA``, ``cos_IA``..., ``GAMMA_AREA``) of a
    pass's relative orbit and tile."""
    proc = settings.processing
    naming_kind, field = _NAMING[kind if kind == "GAMMA_AREA" else "LIA" if kind.endswith("LIA") else "IA"]
    fields = {field: kind, "tile_name": group.tile, "orbit": f"{group.relative_orbit:03d}",
              "flying_unit_code": group.platform.lower(), "orbit_direction": group.pass_direction}
    return product_path(naming_kind, fields, proc.fname_fmt, proc.dname_fmt, layout(settings.paths))


def calibrated_path(settings: Settings, product_name: str, polarisation: str) -> Path:
    """Where ``--cache-before-ortho`` keeps one calibrated, border-cut polarisation of a product.

    The name encodes every setting that changes the values (LUT, noise removal, non-default
    lower signal value, border-cut override), so a different request never reuses it.
    """
    proc = settings.processing
    parts = [product_name, polarisation.lower(), _LUT[proc.calibration]]
    if proc.remove_thermal_noise:
        parts.append("NoiseRemoved")
        if proc.lower_signal_value != _DEFAULT_FLOOR:
            parts.append(f"floor{proc.lower_signal_value:g}")
    if proc.override_azimuth_cut_threshold_to is not None:
        parts.append(f"cut{'On' if proc.override_azimuth_cut_threshold_to else 'Off'}")
    return Path(settings.paths.tmp) / "S1" / product_name / ("_".join(parts) + ".tif")


def tile_job(settings: Settings, group: TileGroup, polarisations: Iterable[str] | None = None, *,
             cached: bool = False, replaces: dict[str, tuple[str, ...]] | None = None) -> TileJob:
    """The job making the images of a pass over its tile (every polarisation of the pass unless
    ``polarisations`` says which), with the maps its calibration needs; ``replaces``: polarisation
    -> the outputs each image supersedes."""
    proc = settings.processing
    pols = tuple(polarisations) if polarisations is not None else tuple(p.upper() for p in group.polarisations)
    images = []
    for pol in pols:
        product = tile_product(settings, group, pol)
        images.append(TileImage(pol.upper(), product, str(image_path(settings, product)),
                                tuple((replaces or {}).get(pol.upper(), ()))))
    sin_lia = str(map_path(settings, "sin_LIA", group)) if proc.calibration == "normlim" else None
    gamma_area = str(map_path(settings, "GAMMA_AREA", group)) if proc.calibration == "gamma_naught_rtc" else None
    return TileJob(group.tile, tuple(str(p.path) for p in group.products), tuple(images), sin_lia, gamma_area,
                   cached=cached)


# ---------------------------------------------------------------------------- plans

def single_slice_products(settings: Settings, group: TileGroup, polarisation: str) -> list[TileProduct]:
    """The name fields of the images each slice of a pass of several slices would give alone (what a run
    made when only that slice was there); empty for a pass of one slice."""
    if len(group.products) < 2:
        return []
    first = group.products[0]
    return [TileProduct(first.flying_unit_code, group.tile, polarisation, group.pass_direction, group.relative_orbit,
                        (p.start_time,), settings.processing.calibration) for p in group.products]


def plan_maps(settings: Settings, groups: Sequence[TileGroup | OrbitFilePass], family: str,
              present: Present = exists) -> tuple[list[MapJob], list[str]]:
    """Jobs making the missing ``family`` maps of the passes ``groups`` need (one set per tile and
    relative orbit with the default names, from the pass covering most of the tile), and the maps
    already present."""
    best: dict[tuple, TileGroup | OrbitFilePass] = {}  # map paths -> the pass covering most of the tile
    for g in groups:
        paths = tuple((kind, map_path(settings, kind, g)) for kind in map_kinds(settings, family))
        if paths not in best or g.coverage > best[paths].coverage:
            best[paths] = g
    jobs, kept = [], []
    for paths, g in best.items():
        there = {path: present(path) for _, path in paths}
        kept += [str(path) for _, path in paths if there[path]]
        missing = tuple((kind, str(path)) for kind, path in paths if not there[path])
        if missing and isinstance(g, OrbitFilePass):
            jobs.append(MapJob(family, g.tile, g.relative_orbit, (), missing, g.platform, g.pass_direction,
                               g.absolute_orbit, g.start, g.stop, g.eof))
        elif missing:
            jobs.append(MapJob(family, g.tile, g.relative_orbit, tuple(str(p.path) for p in g.products), missing))
    return jobs, kept


def plan_maps_only(settings: Settings, groups: Sequence[TileGroup | OrbitFilePass], family: str,
                   present: Present = exists) -> Plan:
    """Only the maps (``family`` 'LIA', 'IA' or 'GAMMA_AREA') of the tiles and relative orbits of
    ``groups``: passes of products, or passes of orbit files (:class:`OrbitFilePass`)."""
    jobs, kept = plan_maps(settings, groups, family, present)
    return Plan(passes=tuple(groups), map_jobs=tuple(jobs), present=tuple(kept))


def plan_products(settings: Settings, groups: Sequence[TileGroup], present: Present = exists) -> Plan:
    """The tile images of each pass, the maps and cached calibrations they need, the derived
    products; those already there (``present``) are skipped (resume).

    ``cache_before_ortho`` (``--cache-before-ortho``, native engine): the jobs read calibrated
    products cached in ``{tmp}/S1``; those missing are planned as :class:`CalibrationJob`.
    """
    proc = settings.processing
    rtc = proc.calibration == "gamma_naught_rtc"
    needs_maps = proc.calibration in ("normlim", "gamma_naught_rtc")
    drop_unfiltered = settings.filtering.filter != "none" and not settings.filtering.keep_non_filtered_products
    cache_before_ortho = proc.cache_before_ortho and proc.engine != "otb"
    wanted = [kind for kind, on in zip(DERIVED_KINDS, (settings.mask.generate_border_mask,
                                                       settings.quicklook.generate,
                                                       settings.filtering.filter != "none")) if on]
    tile_jobs: list[TileJob] = []
    calibrations: list[CalibrationJob] = []
    derived: list[DerivedJob] = []
    kept: list[str] = []
    transient: list[tuple[str, str]] = []
    superseded: list[tuple[str, str]] = []
    map_groups = []  # passes needing the sin(LIA) (NORMLIM) or gamma area (RTC) map of their tile and orbit
    for g in groups:
        inputs = tuple(p.name for p in g.products)
        products = [tile_product(settings, g, pol) for pol in g.polarisations]
        # outputs of the single-slice images this pass supersedes, per polarisation and kind (None: the image)
        old = {tp.polarisation.upper(): _old_outputs(settings, g, tp.polarisation) for tp in products}
        if drop_unfiltered:  # an image whose filtered product exists is done
            finished = [tp for tp in products if present(image_path(settings, tp, "filtered"), inputs)]
            kept += [str(image_path(settings, tp, "filtered")) for tp in finished]
            for tp in finished:
                new = str(image_path(settings, tp, "filtered"))
                superseded += [(path, new) for paths in old[tp.polarisation.upper()].values() for path in paths]
            products = [tp for tp in products if tp not in finished]
        missing = []
        for tp in products:
            image = image_path(settings, tp)
            if present(image, inputs):
                kept.append(str(image))
            else:
                missing.append(tp.polarisation.upper())
            if drop_unfiltered:
                transient.append((str(image), str(image_path(settings, tp, "filtered"))))
        job = None
        if missing:
            replaces = {pol: tuple(path for kind, paths in old[pol].items() if kind not in wanted for path in paths)
                        for pol in missing}
            job = tile_job(settings, g, missing, cached=cache_before_ortho, replaces=replaces)
            tile_jobs.append(job)
            if cache_before_ortho:
                for p in g.products:
                    for pol in missing:
                        cache = CalibrationJob(str(p.path), pol, str(calibrated_path(settings, p.name, pol)))
                        if cache not in calibrations and not present(cache.path):
                            calibrations.append(cache)
            if needs_maps:
                map_groups.append(g)
        made_now = {image.path for image in job.images} if job else set()
        for tp in products:
            source = str(image_path(settings, tp))
            pol = tp.polarisation.upper()
            if source not in made_now:  # the image stays: so do its products; the single-slice ones go now
                superseded += [(path, source) for kind, paths in old[pol].items() if kind not in wanted
                               for path in paths]
            for kind in wanted:
                out = image_path(settings, tp, kind)
                if source not in made_now and present(out):
                    kept.append(str(out))
                    superseded += [(path, str(out)) for path in old[pol].get(kind, ())]
                else:  # made again with its image
                    after = job.key if job is not None and source in made_now else None
                    derived.append(DerivedJob(kind, source, str(out), after, tuple(old[pol].get(kind, ()))))
    map_jobs, maps_present = plan_maps(settings, map_groups, "GAMMA_AREA" if rtc else "LIA", present)
    return Plan(passes=tuple(groups), tile_jobs=tuple(tile_jobs), map_jobs=tuple(map_jobs),
                calibrations=tuple(calibrations), derived=tuple(derived), present=tuple(kept + maps_present),
                transient=tuple(transient), superseded=tuple(superseded))


def _old_outputs(settings: Settings, group: TileGroup, polarisation: str) -> dict[str | None, tuple[str, ...]]:
    """The outputs on disk of the single-slice images of a pass of several slices, by kind (None: the
    image, then ``mask``, ``quicklook``, ``filtered``)."""
    found: dict[str | None, tuple[str, ...]] = {}
    for kind in (None, *DERIVED_KINDS):
        paths = [image_path(settings, tp, kind) for tp in single_slice_products(settings, group, polarisation)]
        found[kind] = tuple(str(path) for path in paths if path.exists())
    return found


def _absolute_orbit(name: str) -> int | None:
    parsed = parse_product_name(name)
    return parsed.absolute_orbit if parsed else None


def images_of_search(settings: Settings, found: Iterable) -> list[str]:
    """The tile images a run would make from the products a search found (for a dry run):
    ``found`` are :class:`~s1tiling.download.search.FoundProduct`."""
    wanted = set(settings.data_source.polarisation.upper().split("-"))
    passes: dict[tuple, list] = {}
    every_tile = tuple(settings.processing.tiles) == ("ALL",)  # tiles = ALL: those the products cover
    for product in found:
        for tile in product.tiles:
            if every_tile or tile in settings.processing.tiles:
                passes.setdefault((tile, *product.pass_key), []).append(product)
    images = []
    for (tile, *_), members in sorted(passes.items(), key=lambda item: str(item[0])):
        members.sort(key=lambda m: m.start)
        first = members[0]
        for pol in sorted(wanted.intersection(*[set(m.polarisations) for m in members]), reverse=True):
            product = TileProduct(first.platform.lower(), tile, pol, first.pass_direction or "ASC",
                                  first.relative_orbit or 0, tuple(m.start for m in members),
                                  settings.processing.calibration, _absolute_orbit(first.name))
            images.append(str(image_path(settings, product)))
    return images
