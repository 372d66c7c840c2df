"""SAR geometry: orbits, the WGS84 ellipsoid, range-Doppler geocoding, DEM and geoid."""
from .dem import DemCatalog
from .geoid import Geoid, ellipsoidal_heights, find_geoid
from .orbit import Orbit, find_orbit_file, read_eof, select_state_vectors
from .sar_model import SarModel

__all__ = [
    "DemCatalog",
    "Geoid",
    "Orbit",
    "SarModel",
    "ellipsoidal_heights",
    "find_geoid",
    "find_orbit_file",
    "read_eof",
    "select_state_vectors",
]
