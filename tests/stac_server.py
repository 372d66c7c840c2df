"""A small STAC API server on 127.0.0.1 serving zipped Sentinel-1 products, for download tests.

It speaks enough of the STAC API (landing page, ``/conformance``, ``/collections``,
``/search`` in GET and POST with ``collections``, ``ids``, ``bbox``, ``intersects``,
``datetime``, ``query`` and token pagination) for EODAG's ``StacSearch`` plugin, and
serves each product's zip under ``/download/<name>.zip``.

Offline (tape) products follow the STAC "order" flow that EODAG's ``HTTPDownload``
plugin drives for DEDL-like providers:

- a search returns the item with ``properties["order:status"]`` = ``orderable``
  (nothing asked yet), ``shipping`` (being staged) or ``succeeded`` (online), and a
  ``retrieve`` link;
- ``POST /orders/<name>`` asks for staging and answers the order with a ``self`` link
  (the status link);
- ``GET /orders/<name>`` answers HTTP 202 + ``shipping`` while staging, HTTP 200 +
  ``succeeded`` and ``assets.downloadLink.href`` once online;
- ``GET /download/<name>.zip`` on a product not yet online answers HTTP 202 with an
  empty body, and starts its staging (as Copernicus Data Space did for its long-term
  archive).

Orbit files (``.EOF``) are served the same way, in the collections :data:`ORBIT_COLLECTIONS`
(:func:`orbit_file_item`: a zip holding the file, validity as the item's time span), as
Copernicus Data Space serves its ``AUX_POEORB`` / ``AUX_RESORB`` products.

Once staging was asked, every status request, search hit or download attempt counts
as one "poll"; the product is online after ``offline_polls`` of them (``None``: never).
Other behaviours per product: ``fail_first`` HTTP 500 answers before the real one,
``corrupt`` (bytes flipped inside the zip, so its CRC check fails).
"""
from __future__ import annotations

import base64
import datetime as dt
import io
import json
import re
import threading
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from lxml import etree
from shapely.geometry import Polygon, box, mapping, shape

COLLECTION = "sentinel-1-grd"
#: the server's collections of orbit files, by kind
ORBIT_COLLECTIONS = {"POEORB": "sentinel-1-aux-poeorb", "RESORB": "sentinel-1-aux-resorb"}

_NS = {
    "safe": "http://www.esa.int/safe/sentinel-1.0",
    "s1": "http://www.esa.int/safe/sentinel-1.0/sentinel-1",
    "gml": "http://www.opengis.net/gml",
}
_POLARISATIONS = {"SV": ["VV"], "SH": ["HH"], "DV": ["VV", "VH"], "DH": ["HH", "HV"]}


def item_metadata_from_zip(payload: bytes) -> tuple[str, dict, dict]:
    """(name, GeoJSON geometry, STAC properties) read from the ``manifest.safe`` inside a zipped SAFE.

    The footprint is served as the manifest draws it: across the antimeridian, a polygon
    spanning more than 180 degrees of longitude, as some providers do.
    """
    with zipfile.ZipFile(io.BytesIO(payload)) as zf:
        manifest_name = next(n for n in zf.namelist() if n.endswith(".SAFE/manifest.safe"))
        root = etree.fromstring(zf.read(manifest_name))
    name = manifest_name.split("/")[0][: -len(".SAFE")]
    coords = root.findtext(".//gml:coordinates", namespaces=_NS).split()
    latlon = [tuple(float(v) for v in pair.split(",")) for pair in coords]
    footprint = Polygon([(lon, lat) for lat, lon in latlon])
    start = root.findtext(".//safe:acquisitionPeriod/safe:startTime", namespaces=_NS)
    stop = root.findtext(".//safe:acquisitionPeriod/safe:stopTime", namespaces=_NS)
    properties = {
        "datetime": start + "Z",
        "start_datetime": start + "Z",
        "end_datetime": stop + "Z",
        "platform": "sentinel-1" + root.findtext(".//safe:platform/safe:number", namespaces=_NS).lower(),
        "constellation": "sentinel-1",
        "sar:instrument_mode": name[4:6],
        "sar:polarizations": _POLARISATIONS[name[14:16]],
        "sar:product_type": "GRD",
        "sat:orbit_state": root.findtext(".//s1:pass", namespaces=_NS).lower(),
        "sat:relative_orbit": int(root.findtext(".//safe:relativeOrbitNumber[@type='start']", namespaces=_NS)),
        "sat:absolute_orbit": int(root.findtext(".//safe:orbitNumber[@type='start']", namespaces=_NS)),
    }
    return name, mapping(footprint), properties


@dataclass
class ServedProduct:
    """One product of the catalogue and how the server behaves for it."""

    payload: bytes
    offline_polls: int | None = 0
    fail_first: int = 0
    corrupt: bool = False
    name: str = ""
    geometry: dict = field(default_factory=dict)
    properties: dict = field(default_factory=dict)
    staging_requested: bool = False
    polls: int = 0
    downloads: int = 0
    collection: str = COLLECTION

    def __post_init__(self):
        if self.collection != COLLECTION:  # an orbit file: name, geometry and properties given
            return
        name, geometry, properties = item_metadata_from_zip(self.payload)
        self.name = self.name or name
        self.geometry = self.geometry or geometry
        self.properties = {**properties, **self.properties}

    @property
    def online(self) -> bool:
        if self.offline_polls == 0:
            return True
        return self.offline_polls is not None and self.staging_requested and self.polls >= self.offline_polls

    def observe(self):
        """Count one poll once staging was asked."""
        if self.staging_requested:
            self.polls += 1

    @property
    def order_status(self) -> str:
        if self.online:
            return "succeeded"
        return "shipping" if self.staging_requested else "orderable"

    def body(self) -> bytes:
        if not self.corrupt:
            return self.payload
        data = bytearray(self.payload)
        middle = len(data) // 2
        data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
        return bytes(data)


class StacTestServer:
    """Threaded STAC API server; use as a context manager or call start()/stop()."""

    def __init__(self, products: list[ServedProduct], credentials: tuple[str, str] | None = None):
        self.products = {p.name: p for p in products}
        self.credentials = credentials
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def start(self) -> StacTestServer:
        self._thread.start()
        return self

    def stop(self):
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def searches(self) -> list[dict]:
        """Parameters of every search received (POST body or GET query)."""
        return [r["params"] for r in self.requests if r["path"] == "/search"]

    # --- catalogue ------------------------------------------------------------------
    def item(self, product: ServedProduct) -> dict:
        geometry = shape(product.geometry)
        return {
            "type": "Feature",
            "stac_version": "1.0.0",
            "stac_extensions": [],
            "id": product.name,
            "collection": product.collection,
            "geometry": product.geometry,
            "bbox": list(geometry.bounds),
            "properties": {**product.properties, "order:status": product.order_status},
            "assets": {
                "product": {
                    "href": f"{self.url}/download/{product.name}.zip",
                    "type": "application/zip",
                    "roles": ["data"],
                }
            },
            "links": [
                {"rel": "self", "href": f"{self.url}/collections/{COLLECTION}/items/{product.name}"},
                {"rel": "retrieve", "href": f"{self.url}/orders/{product.name}", "method": "POST"},
            ],
        }

    def search(self, params: dict, method: str) -> dict:
        matches = [p for p in self.products.values() if _matches(p, params)]
        limit = int(params.get("limit") or 10)
        start = int(params.get("token") or 0)
        page = matches[start : start + limit]
        for product in page:
            product.observe()
        links = [{"rel": "self", "href": f"{self.url}/search"}]
        if start + limit < len(matches):
            token = str(start + limit)
            if method == "POST":
                links.append({"rel": "next", "href": f"{self.url}/search", "method": "POST",
                              "body": {"token": token}, "merge": True})
            else:
                links.append({"rel": "next", "href": f"{self.url}/search?limit={limit}&token={token}"})
        return {
            "type": "FeatureCollection",
            "features": [self.item(p) for p in page],
            "numberMatched": len(matches),
            "numberReturned": len(page),
            "links": links,
        }

    def landing(self) -> dict:
        return {
            "type": "Catalog",
            "id": "s1tiling-test",
            "stac_version": "1.0.0",
            "description": "Local STAC API for s1tiling tests",
            "conformsTo": _CONFORMANCE,
            "links": [
                {"rel": "self", "href": self.url},
                {"rel": "conformance", "href": f"{self.url}/conformance"},
                {"rel": "data", "href": f"{self.url}/collections"},
                {"rel": "search", "href": f"{self.url}/search", "method": "GET"},
                {"rel": "search", "href": f"{self.url}/search", "method": "POST"},
            ],
        }

    def collection(self) -> dict:
        return {
            "type": "Collection",
            "id": COLLECTION,
            "stac_version": "1.0.0",
            "description": "Sentinel-1 GRD products (test)",
            "license": "proprietary",
            "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]},
                       "temporal": {"interval": [["2014-04-03T00:00:00Z", None]]}},
            "summaries": {"platform": ["sentinel-1a", "sentinel-1b", "sentinel-1c"]},
            "links": [],
        }


_CONFORMANCE = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/item-search#query",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
]


_QUERYABLES = {
    "$schema": "https://json-schema.org/draft/2019-09/schema",
    "type": "object",
    "title": "Queryables",
    "properties": {
        "platform": {"type": "string"},
        "sar:polarizations": {"type": "array", "items": {"type": "string"}},
        "sat:orbit_state": {"type": "string", "enum": ["ascending", "descending"]},
        "sat:relative_orbit": {"type": "integer"},
        "order:status": {"type": "string"},
    },
    "additionalProperties": True,
}


def _parse_time(value: str) -> dt.datetime:
    value = value.strip().replace("Z", "+00:00")
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def _equal(actual, expected) -> bool:
    if isinstance(actual, list):
        if isinstance(expected, list):
            return sorted(map(_norm, actual)) == sorted(map(_norm, expected))
        return _norm(expected) in map(_norm, actual)
    return _norm(actual) == _norm(expected)


def _norm(value) -> str:
    return str(value).strip().lower()


def _query_ok(actual, operator: str, expected) -> bool:
    if operator == "eq":
        return _equal(actual, expected)
    if operator == "neq":
        return not _equal(actual, expected)
    if operator == "in":
        return any(_equal(actual, e) for e in expected)
    number = float(actual)
    return {"lt": number < float(expected), "lte": number <= float(expected),
            "gt": number > float(expected), "gte": number >= float(expected)}[operator]


def _matches(product: ServedProduct, params: dict) -> bool:
    collections = params.get("collections")
    if isinstance(collections, str):
        collections = collections.split(",")
    if collections and product.collection not in collections:
        return False
    ids = params.get("ids")
    if isinstance(ids, str):
        ids = ids.split(",")
    if ids and product.name not in ids:
        return False
    footprint = shape(product.geometry)
    if params.get("intersects"):
        area = params["intersects"]
        if not footprint.intersects(shape(json.loads(area) if isinstance(area, str) else area)):
            return False
    if params.get("bbox"):
        bbox = params["bbox"]
        bbox = [float(v) for v in (bbox.split(",") if isinstance(bbox, str) else bbox)]
        if not footprint.intersects(box(*bbox)):
            return False
    if params.get("datetime"):
        begin, _, end = params["datetime"].partition("/")
        if not end:
            end = begin
        start = _parse_time(product.properties["start_datetime"])
        stop = _parse_time(product.properties["end_datetime"])
        if begin not in ("", "..") and stop < _parse_time(begin):
            return False
        if end not in ("", "..") and start > _parse_time(end):
            return False
    query = params.get("query") or {}
    if isinstance(query, str):
        query = json.loads(query)
    for prop, conditions in query.items():
        if prop == "order:status":
            actual = product.order_status
        elif prop in product.properties:
            actual = product.properties[prop]
        else:
            return False
        if not all(_query_ok(actual, op, value) for op, value in conditions.items()):
            return False
    return True


def orbit_file_item(eof_path) -> ServedProduct:
    """An orbit file as the provider serves it: a zip holding ``<name>.EOF``, the item's time span
    being the file's validity (from its name), its footprint the whole Earth."""
    from pathlib import Path

    eof_path = Path(eof_path)
    name = eof_path.name.removesuffix(".EOF")
    fields = name.split("_")
    kind, start, stop = fields[3], fields[6].removeprefix("V"), fields[7]

    def iso(stamp: str) -> str:
        return f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:{stamp[11:13]}:{stamp[13:15]}Z"

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(eof_path, eof_path.name)
    properties = {"datetime": iso(start), "start_datetime": iso(start), "end_datetime": iso(stop),
                  "platform": "sentinel-" + fields[0][1:].lower(), "constellation": "sentinel-1",
                  "product:type": f"AUX_{kind}", "title": name}
    return ServedProduct(buffer.getvalue(), name=name, geometry=mapping(box(-180, -90, 180, 90)),
                         properties=properties, collection=ORBIT_COLLECTIONS[kind])


def _handler_for(server: StacTestServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep pytest output clean
            pass

        # --- plumbing ------------------------------------------------------------
        def _send(self, status: int, body: bytes = b"", content_type: str = "application/json",
                  headers: dict | None = None):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, document: dict):
            self._send(status, json.dumps(document).encode())

        def _authorised(self) -> bool:
            if server.credentials is None:
                return True
            expected = base64.b64encode(":".join(server.credentials).encode()).decode()
            if self.headers.get("Authorization") == f"Basic {expected}":
                return True
            self._json(401, {"code": "Unauthorized", "description": "bad credentials"})
            return False

        def _record(self, params: dict):
            with server.lock:
                server.requests.append({"method": self.command, "path": urlparse(self.path).path,
                                        "params": params,
                                        "authorised": "Authorization" in self.headers})

        # --- verbs ---------------------------------------------------------------
        def do_GET(self):
            url = urlparse(self.path)
            params = {k: v[-1] for k, v in parse_qs(url.query).items()}
            self._record(params)
            self._route(url.path.rstrip("/") or "/", params)

        def do_HEAD(self):
            self.do_GET()

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            params = json.loads(raw) if raw.strip() else {}
            self._record(params)
            self._route(urlparse(self.path).path.rstrip("/"), params)

        def _route(self, path: str, params: dict):
            with server.lock:
                if path == "/":
                    return self._json(200, server.landing())
                if path == "/conformance":
                    return self._json(200, {"conformsTo": _CONFORMANCE})
                if path == "/collections":
                    return self._json(200, {"collections": [server.collection()], "links": []})
                if path == f"/collections/{COLLECTION}":
                    return self._json(200, server.collection())
                if path in ("/queryables", f"/collections/{COLLECTION}/queryables"):
                    return self._json(200, _QUERYABLES)
                if path == "/search":
                    return self._json(200, server.search(params, self.command))
                match = re.fullmatch(r"/(download|orders)/([\w.-]+?)(\.zip)?", path)
                if not match or match.group(2) not in server.products:
                    return self._json(404, {"code": "NotFound", "description": path})
                if not self._authorised():
                    return None
                product = server.products[match.group(2)]
                if match.group(1) == "orders":
                    return self._order(product)
                return self._download(product)

        def _order(self, product: ServedProduct):
            if self.command == "POST":
                product.staging_requested = True
            elif self.command == "GET":
                product.observe()
            document = {
                "id": product.name,
                "properties": {"order:status": product.order_status},
                "links": [{"rel": "self", "href": f"{server.url}/orders/{product.name}"}],
            }
            if product.online:
                document["assets"] = {
                    "downloadLink": {"href": f"{server.url}/download/{product.name}.zip"}}
            status = 200 if product.online or self.command == "POST" else 202
            return self._json(status, document)

        def _download(self, product: ServedProduct):
            if not product.online:
                product.staging_requested = True
                product.observe()
                return self._send(202, b"", headers={"Retry-After": "1"})
            if product.fail_first > 0:
                product.fail_first -= 1
                return self._json(500, {"code": "InternalServerError", "description": "try again"})
            product.downloads += 1
            return self._send(200, product.body(), "application/zip",
                              {"Content-Disposition": f'attachment; filename="{product.name}.zip"'})

    return Handler
