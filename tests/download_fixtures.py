"""Fixtures shared by the download tests: the loopback-only socket guard, an isolated EODAG
environment, and local STAC API servers (tests/stac_server.py) declared as an EODAG provider.

Import the fixtures by name into a test module (``from download_fixtures import no_internet, ...``);
the autouse ones then apply to every test of that module.
"""
from __future__ import annotations

import os
import socket

import pytest
import yaml

from stac_server import ServedProduct, StacTestServer, orbit_file_item

PROVIDER = "s1tiling_test"
SECRET = "pa55-W0rd-never-in-logs"
GERMANY = ("S1A_IW_GRDH_1SDV_20150222T170725_20150222T170750_004739_005DD8_CEAB",
           "S1A_IW_GRDH_1SDV_20150222T170750_20150222T170815_004739_005DD8_3768")

#: The loopback, and the wildcard addresses a local server (dask's scheduler) binds to.
_LOCAL = {"127.0.0.1", "localhost", "::1", None, "0.0.0.0", "::", ""}


@pytest.fixture(autouse=True)
def no_internet(monkeypatch):
    """Refuse (and record) any connection or name lookup for a host other than the loopback."""
    blocked = []
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in _LOCAL:
            blocked.append(address)
            raise ConnectionRefusedError(f"test guard: connection to {address} refused")
        return real_connect(sock, address)

    def getaddrinfo(host, *args, **kwargs):
        if host not in _LOCAL:
            blocked.append(host)
            raise socket.gaierror(f"test guard: lookup of {host} refused")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield blocked
    assert not blocked, f"connections attempted outside 127.0.0.1: {blocked}"


@pytest.fixture(autouse=True)
def eodag_env(monkeypatch, tmp_path):
    """EODAG reads only the test's configuration and fetches no external collection list."""
    for key in list(os.environ):
        if key.startswith("EODAG"):
            monkeypatch.delenv(key)
    empty = tmp_path / "ext_collections.json"
    empty.write_text("{}")
    monkeypatch.setenv("EODAG_CFG_DIR", str(tmp_path / "eodag-cfg"))
    monkeypatch.setenv("EODAG_STRICT_COLLECTIONS", "true")
    monkeypatch.setenv("EODAG_PROVIDERS_WHITELIST", f'["{PROVIDER}"]')  # pydantic reads JSON
    monkeypatch.setenv("EODAG_EXT_COLLECTIONS_CFG_URI", str(empty))


def provider_conf(url: str, flavour: str, password: str) -> dict:
    """A STAC provider as a user would add it to eodag.yml.

    ``order``: DEDL-like STAC order flow (order link, status link); ``search``: no order
    request, a download attempt starts the staging and a new search tells when it is online;
    ``assets``: EODAG's STAC defaults (the zip fetched as an asset, always online).
    """
    if flavour == "assets":
        mapping, download_conf = {}, {"type": "HTTPDownload", "timeout": 5}
    else:
        mapping = {
            "order:status": '{$.properties."order:status"#get_group_name('
                            '(?P<succeeded>succeeded)|(?P<ordered>shipping)|(?P<orderable>orderable))}',
            "eodag:download_link": "$.assets.product.href",
        }
        download_conf = {"type": "HTTPDownload", "ignore_assets": True, "extract": True, "timeout": 5}
    if flavour == "order":
        mapping["eodag:order_link"] = '$.links[?rel=="retrieve"].href'
        download_conf.update({
            "order_enabled": True,
            "order_method": "POST",
            "order_on_response": {"metadata_mapping": {
                "eodag:status_link": '$.json.links[?rel=="self"].href',
                "eodag:order_status": '$.json.properties."order:status"'}},
            "order_status": {
                "request": {"method": "GET"},
                "metadata_mapping": {"order:status": '$.json.properties."order:status"'},
                "success": {"http_code": 200},
                "ordered": {"http_code": 202},
                "on_success": {"metadata_mapping": {"eodag:download_link": "$.json.assets.downloadLink.href"}},
            },
        })
    return {PROVIDER: {
        "priority": 10,
        "description": "local STAC API of the tests",
        "url": url,
        "search": {"type": "StacSearch", "api_endpoint": f"{url}/search", "need_auth": False,
                   "metadata_mapping": mapping},
        "products": {"S1_SAR_GRD": {"_collection": "sentinel-1-grd"},
                     # orbit files, as Copernicus Data Space's AUX_POEORB / AUX_RESORB product types
                     "S1_AUX_POEORB": {"_collection": "sentinel-1-aux-poeorb"},
                     "S1_AUX_RESORB": {"_collection": "sentinel-1-aux-resorb"}},
        "download": download_conf,
        "auth": {"type": "GenericAuth", "matching_url": url,
                 "credentials": {"username": "tester", "password": password}},
    }}


@pytest.fixture
def stac_servers(tmp_path):
    """start(zips, flavour="order", password=SECRET, orbit_files=(), **behaviours) -> (server, eodag.yml).

    ``orbit_files``: .EOF files served in the orbit collections (:func:`stac_server.orbit_file_item`).

    ``zips`` maps product names to zipped SAFE bytes, served in that order; ``behaviours``
    maps a product name to ServedProduct options (offline_polls, fail_first, corrupt).
    Every server started is stopped at the end of the test.
    """
    servers = []

    def start(zips: dict[str, bytes], flavour="order", password=SECRET, orbit_files=(), **behaviours):
        products = [ServedProduct(data, **behaviours.get(name, {})) for name, data in zips.items()]
        products += [orbit_file_item(path) for path in orbit_files]
        server = StacTestServer(products, credentials=("tester", SECRET)).start()
        servers.append(server)
        config = tmp_path / f"eodag-{len(servers)}.yml"
        config.write_text(yaml.safe_dump(provider_conf(server.url, flavour, password)))
        return server, config

    yield start
    for server in servers:
        server.stop()
