# -*- test-case-name: dockerpy.test.test_registry_api -*-
"""Registry routes: pull (``POST /images/create?fromImage=``), push, login
(``POST /auth``) and ``GET /distribution/{name}/json``.

Progress is Docker's JSON stream: one object per line, the status code sent
with the first message.  A failure before that is an ordinary error reply
(the docker CLI prints ``Error response from daemon: ...``); after it, the
error travels in the stream as ``{"errorDetail": ..., "error": ...}``, as
Docker does.  A client that goes away does not stop the pull: the image is
stored whole or not at all either way.
"""

from __future__ import annotations

import json
import os
import weakref

from klein import Klein
from twisted.logger import Logger

from dockerpy import errors
from dockerpy.api.app import query, read_json, write_json
from dockerpy.registry.auth import auth_from_dict, decode_auth_header
from dockerpy.registry.tls import DEFAULT_CERTS_DIR
from dockerpy.logfilter import engine_log

log = Logger(observer=engine_log)

_services: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def close_registry_service(daemon):
    """Close the daemon's registry connections, if it ever made any (at stop)."""
    service = _services.pop(daemon, None)
    return service.close() if service is not None else None


def registry_service(daemon):
    """The daemon's ``RegistryService`` (made on first use, once the store exists)."""
    service = _services.get(daemon)
    if service is None:
        from dockerpy.registry.service import RegistryService

        service = RegistryService(
            daemon.reactor, daemon.in_thread, daemon.images,
            os.path.join(daemon.conf.data_root, "registry"),
            insecure=tuple(getattr(daemon.conf, "insecure_registries", None) or ()),
            mirrors=tuple(getattr(daemon.conf, "registry_mirrors", None) or ()),
            certs_dir=getattr(daemon.conf, "registry_certs_dir", None) or DEFAULT_CERTS_DIR)
        _services[daemon] = service
    return service


class ProgressStream:
    """Writes progress messages as JSON lines, starting the reply on the first."""

    def __init__(self, request):
        self.request = request
        self.started = False
        self.lost = False
        request.notifyFinish().addErrback(self._gone)

    def _gone(self, _failure) -> None:
        self.lost = True

    def __call__(self, message: dict) -> None:
        if self.lost:
            return
        if not self.started:
            self.started = True
            self.request.setResponseCode(200)
            self.request.setHeader(b"content-type", b"application/json")
        self.request.write(json.dumps(message, separators=(",", ":")).encode() + b"\r\n")

    async def run(self, work) -> bytes:
        """Await ``work``; report a failure in the stream once it has started."""
        try:
            await work
        except errors.DockerError as e:
            if not self.started:
                raise
            self({"errorDetail": {"message": e.message}, "error": e.message})
        except Exception as e:
            if not self.started:
                raise
            log.failure("registry operation failed")
            message = str(e) or repr(e)
            self({"errorDetail": {"message": message}, "error": message})
        if not self.started:
            self.request.setHeader(b"content-type", b"application/json")
        return b""


def _auth(request):
    return decode_auth_header(request.getHeader(b"x-registry-auth"))


async def _then_publish(daemon, work, action: str, name: str):
    """Await ``work``, then publish the image event Docker sends for it."""
    result = await work
    events = getattr(daemon, "events", None)
    if events is not None:
        events.publish("image", action, name, {"name": name})
    return result


def _shown(name: str, tag: str | None) -> str:
    return f"{name}:{tag}" if tag and "@" not in name else name


async def pull_route(request, daemon) -> bytes:
    """``POST /images/create?fromImage=...`` (called by the images module)."""
    image = query(request, "fromImage") or ""
    if not image:
        raise errors.InvalidParameter("fromImage or fromSrc is required")
    stream = ProgressStream(request)
    work = registry_service(daemon).pull(image, query(request, "tag"),
                                         query(request, "platform"), _auth(request), stream)
    return await stream.run(_then_publish(daemon, work, "pull",
                                          _shown(image, query(request, "tag"))))


def install(app: Klein, daemon=None) -> None:
    @app.route("/images/<path:name>/push", methods=["POST"])
    async def post_image_push(request, name):
        stream = ProgressStream(request)
        work = registry_service(daemon).push(name, query(request, "tag"), _auth(request),
                                             stream)
        return await stream.run(_then_publish(daemon, work, "push",
                                              _shown(name, query(request, "tag"))))

    @app.route("/auth", methods=["POST"])
    async def post_auth(request):
        auth = auth_from_dict(read_json(request, required=True))
        result = await registry_service(daemon).login(auth)
        return write_json(request, result)

    @app.route("/distribution/<path:name>/json", methods=["GET"])
    async def get_distribution(request, name):
        result = await registry_service(daemon).distribution(name, _auth(request))
        return write_json(request, result)
