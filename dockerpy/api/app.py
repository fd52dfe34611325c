# -*- test-case-name: dockerpy.test.test_api_app -*-
"""The HTTP edge of the Engine API: versions, errors, JSON in and out.

This module owns what every route shares: the ``/vX.Y/`` prefix and the
version range we serve, the one table that maps domain errors to Docker's
status codes and ``{"message": ...}`` bodies, request-body and query
parsing (``filters`` in both the map and list forms), and the ``Site`` with
the hijackable channel.  It holds no engine state: routes call the daemon.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable

from klein import Klein
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Site
from werkzeug.exceptions import MethodNotAllowed, NotFound as RouteNotFound

from dockerpy import errors
from dockerpy.filters import check_keys
from dockerpy.api.hijack import HijackableChannel
from dockerpy.logfilter import engine_log

log = Logger(observer=engine_log)

MIN_API_VERSION = (1, 24)
MAX_API_VERSION = (1, 47)
_VERSION_SEGMENT = re.compile(rb"^v(\d+)\.(\d+)$")


def version_string(v: tuple[int, int]) -> str:
    return f"{v[0]}.{v[1]}"


def api_version(request) -> tuple[int, int]:
    """The API version of this request (the highest we serve when unversioned)."""
    return getattr(request, "api_version", MAX_API_VERSION)


class VersionedRoot(Resource):
    """Strips an optional ``/vX.Y`` prefix, checks it, and hands over to Klein.

    Docker answers a version outside its range with 400 before routing.
    """

    def __init__(self, klein_resource: Resource):
        super().__init__()
        self._klein = klein_resource

    def getChildWithDefault(self, path: bytes, request):  # noqa: N802 (Twisted API)
        m = _VERSION_SEGMENT.match(path)
        if m:
            version = (int(m.group(1)), int(m.group(2)))
            request.api_version = version
            if version > MAX_API_VERSION:
                return _ErrorResource(400, (
                    f"client version {version_string(version)} is too new. "
                    f"Maximum supported API version is {version_string(MAX_API_VERSION)}"))
            if version < MIN_API_VERSION:
                return _ErrorResource(400, (
                    f"client version {version_string(version)} is too old. "
                    f"Minimum supported API version is {version_string(MIN_API_VERSION)}, "
                    "please upgrade your client to a newer version"))
        else:
            # Not a version: put the segment back so Klein sees the full path.
            request.postpath.insert(0, request.prepath.pop())
        return self._klein

    def render(self, request):
        return self._klein.render(request)


class _ErrorResource(Resource):
    isLeaf = True

    def __init__(self, status: int, message: str):
        super().__init__()
        self._status, self._message = status, message

    def render(self, request):
        request.setResponseCode(self._status)
        request.setHeader(b"content-type", b"application/json")
        return json_bytes({"message": self._message})


def json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, separators=(",", ":")) + "\n").encode()


def write_json(request, obj: Any, status: int = 200) -> bytes:
    """Set the JSON content type and status; return the body for Klein to send."""
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    return json_bytes(obj)


def read_json(request, required: bool = False) -> Any:
    """Parse the request body as JSON; an empty body is ``{}`` unless required."""
    request.content.seek(0)
    raw = request.content.read()
    if not raw.strip():
        if required:
            raise errors.InvalidParameter("invalid JSON: request body is empty")
        return {}
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise errors.InvalidParameter(f"invalid JSON: {e}") from None


def query(request, name: str, default: str | None = None) -> str | None:
    values = request.args.get(name.encode())
    if not values:
        return default
    return values[-1].decode("utf-8", "replace")


def query_all(request, name: str) -> list[str]:
    return [v.decode("utf-8", "replace") for v in request.args.get(name.encode(), [])]


_TRUE = {"1", "true", "True", "yes"}
_FALSE = {"", "0", "false", "False", "no"}


def query_bool(request, name: str, default: bool = False) -> bool:
    v = query(request, name)
    if v is None:
        return default
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise errors.InvalidParameter(f"invalid boolean value for {name}: {v!r}")


def query_int(request, name: str, default: int | None = None) -> int | None:
    v = query(request, name)
    if v is None or v == "":
        return default
    try:
        return int(v)
    except ValueError:
        raise errors.InvalidParameter(f"invalid value for {name}: {v!r}") from None


def parse_filters(raw: str | None) -> dict[str, list[str]]:
    """Docker's ``filters`` argument: ``{"k": {"v": true}}`` (Go clients) or
    ``{"k": ["v"]}`` (docker-py, compose) -> ``{"k": ["v"]}``."""
    if not raw:
        return {}
    try:
        obj = json.loads(raw)
    except ValueError:
        raise errors.InvalidParameter(f"invalid filter: {raw!r}") from None
    if not isinstance(obj, dict):
        raise errors.InvalidParameter(f"invalid filter: {raw!r}")
    out: dict[str, list[str]] = {}
    for key, value in obj.items():
        if isinstance(value, dict):
            out[key] = [k for k, on in value.items() if on]
        elif isinstance(value, list):
            out[key] = [str(v) for v in value]
        elif isinstance(value, str):
            out[key] = [value]
        else:
            raise errors.InvalidParameter(f"invalid filter: {raw!r}")
    return out


# The routes' name for the engine's filter-key check.
check_filters = check_keys


def make_app(installers: list[Callable[[Klein], None]]) -> Klein:
    """A Klein app with the error table and every route module installed."""
    app = Klein()

    @app.handle_errors(errors.DockerError)
    def docker_error(request, failure):
        err = failure.value
        return write_json(request, {"message": err.message}, err.status)

    @app.handle_errors(RouteNotFound)
    def route_not_found(request, failure):
        return write_json(request, {"message": "page not found"}, 404)

    @app.handle_errors(MethodNotAllowed)
    def method_not_allowed(request, failure):
        return write_json(request, {"message": "page not found"}, 405)

    @app.handle_errors(Exception)
    def unexpected(request, failure):
        log.failure("unhandled error in {method} {uri}", failure,
                    method=request.method, uri=request.uri)
        return write_json(request, {"message": str(failure.value) or repr(failure.value)}, 500)

    for install in installers:
        install(app)
    return app


class EngineSite(Site):
    """The API's Site: hijackable channels, no access log by default (it costs
    as much as routing, see the Twisted notes), no sessions."""

    protocol = HijackableChannel
    displayTracebacks = False

    def log(self, request):  # noqa: A003 - Twisted API
        pass


def make_site(app: Klein) -> EngineSite:
    return EngineSite(VersionedRoot(app.resource()))
