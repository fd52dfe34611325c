# -*- test-case-name: dockerpy.test.test_integration_build -*-
"""Build routes: ``POST /build`` (the classic builder protocol) and
``POST /build/prune``.

The request body is the build context, a tar (plain, gzip, bzip2 or xz),
extracted in the thread pool into a temporary directory under
``<data-root>/build/tmp`` with `dockerpy.storage.layertar` (no entry can
land outside it).  Progress is streamed as Docker's JSON messages, one per
line; errors found before the first step are HTTP errors, later ones are
``errorDetail`` messages.  A client that disconnects cancels the build: the
running step's container is removed and the temporary directory too.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile

from klein import Klein
from twisted.internet import defer
from twisted.logger import Logger

from dockerpy import errors
from dockerpy.api.app import query, query_all, query_bool, write_json
from dockerpy.build.builder import Builder, BuildOptions, StepFailed
from dockerpy.build.cache import BuildCache
from dockerpy.images import reference as refs

log = Logger()


def _json_map(raw: str | None, name: str) -> dict:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise errors.InvalidParameter(f"error reading {name} params: invalid JSON") from None
    if not isinstance(value, dict):
        raise errors.InvalidParameter(f"error reading {name} params: not an object")
    return value


def options_from_request(request) -> BuildOptions:
    """The build options of a ``POST /build`` query string (checked)."""
    if query(request, "remote"):
        raise errors.InvalidParameter(
            "remote build contexts (URLs, git) are not supported by this daemon")
    tags = [t for t in query_all(request, "t") if t]
    for t in tags:
        ref = refs.parse_normalized_named(t)
        if ref.digest is not None:
            raise errors.InvalidParameter(f"invalid reference format: {t}")
    network = query(request, "networkmode") or None
    if network not in (None, "default", "bridge", "none", "host"):
        raise errors.InvalidParameter(f"network mode {network!r} is not supported for builds")
    buildargs = {k: (v if v is None else str(v))
                 for k, v in _json_map(query(request, "buildargs"), "build-args").items()}
    labels = {k: str(v) for k, v in _json_map(query(request, "labels"), "labels").items()}
    return BuildOptions(
        tags=tags, dockerfile=query(request, "dockerfile") or "Dockerfile",
        buildargs=buildargs, labels=labels, target=query(request, "target") or None,
        nocache=query_bool(request, "nocache"), rm=query_bool(request, "rm", True),
        forcerm=query_bool(request, "forcerm"), quiet=query_bool(request, "q"),
        network_mode=None if network in (None, "default", "bridge") else network)


def extract_context(body, dest: str) -> None:
    """Thread: the request body (a maybe compressed tar, or a bare Dockerfile)
    extracted into ``dest``."""
    from dockerpy.images.store import open_decompressed
    from dockerpy.storage import layertar

    body.seek(0)
    head = body.read(tarfile.BLOCKSIZE * 2)
    body.seek(0)
    stream = open_decompressed(body)
    sniff = stream.peek(tarfile.BLOCKSIZE) if hasattr(stream, "peek") else b""
    try:
        if len(sniff) >= tarfile.BLOCKSIZE:
            tarfile.TarInfo.frombuf(sniff[:tarfile.BLOCKSIZE], "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        if head and b"\0" not in head:
            # Docker takes a body that is no archive as the Dockerfile itself.
            body.seek(0)
            with open(os.path.join(dest, "Dockerfile"), "wb") as f:
                shutil.copyfileobj(body, f)
            return
    try:
        layertar.extract_tar(stream, dest, "")
    except (OSError, EOFError, tarfile.TarError) as e:
        raise errors.InvalidParameter(f"failed to read the build context: {e}") from None


def install(app: Klein, daemon=None) -> None:
    def build_root() -> str:
        return os.path.join(daemon.conf.data_root, "build")

    def cache() -> BuildCache:
        return BuildCache(os.path.join(build_root(), "cache"))

    @app.route("/build", methods=["POST"])
    async def post_build(request):
        opts = options_from_request(request)
        tmp_root = os.path.join(build_root(), "tmp")
        os.makedirs(tmp_root, exist_ok=True)
        context_dir = tempfile.mkdtemp(prefix="context-", dir=tmp_root)
        lost = []
        request.notifyFinish().addErrback(lambda f: lost.append(True))

        def emit(obj: dict) -> None:
            if lost:
                return
            try:
                request.write(json.dumps(obj, separators=(",", ":")).encode() + b"\r\n")
            except Exception:
                lost.append(True)

        try:
            await daemon.in_thread(extract_context, request.content, context_dir)
            builder = Builder(daemon.in_thread, daemon.images, daemon.containers, cache(),
                              emit, daemon.reactor.seconds)
            df = await daemon.in_thread(builder.load, context_dir, opts)
            request.setResponseCode(200)
            request.setHeader(b"content-type", b"application/json")
            request.write(b"")
            build = defer.ensureDeferred(builder.build(context_dir, df, opts))
            request.notifyFinish().addErrback(lambda f: build.cancel())
            try:
                await build
            except defer.CancelledError:
                log.info("build cancelled: the client went away")
            except StepFailed as e:
                emit({"errorDetail": {"code": e.code, "message": e.message},
                      "error": e.message})
            except errors.DockerError as e:
                emit({"errorDetail": {"message": e.message}, "error": e.message})
            except Exception as e:
                log.failure("build failed")
                message = str(e) or repr(e)
                emit({"errorDetail": {"message": message}, "error": message})
            return b""
        finally:
            await daemon.in_thread(shutil.rmtree, context_dir, True)

    @app.route("/build/prune", methods=["POST"])
    async def post_build_prune(request):
        c = cache()
        entries = await daemon.in_thread(c.entries)
        await daemon.in_thread(c.prune, None)
        return write_json(request, {"CachesDeleted": sorted(entries) or None,
                                    "SpaceReclaimed": 0})

    @app.route("/build/cancel", methods=["POST"])
    def post_build_cancel(request):
        request.setResponseCode(200)
        return b""
