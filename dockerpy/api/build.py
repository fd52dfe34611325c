# -*- test-case-name: dockerpy.test.test_integration_build -*-
"""Build routes: ``POST /build`` (the classic builder protocol) and
``POST /build/prune``.

The request body is the build context, a tar (plain, gzip, bzip2 or xz).
It is never extracted: `open_context` indexes the tar's members by offset
(`dockerpy.build.context.TarTree`, laid out as a safe extraction would lay
it out) and the builder hashes and copies COPY/ADD sources straight from
it, so a cached rebuild reads only the bytes it hashes and leaves nothing
on disk to delete.  Progress is streamed as Docker's JSON messages, one per
line; errors found before the first step are HTTP errors, later ones are
``errorDetail`` messages.  A client that disconnects cancels the build: the
running step's container is removed.
"""

from __future__ import annotations

import datetime
import json
import lzma
import os
import shutil
import tarfile
import tempfile
import zlib
from typing import TYPE_CHECKING

from klein import Klein
from twisted.internet import defer
from twisted.logger import Logger

from dockerpy import errors
from dockerpy.api.app import query, query_all, query_bool, query_int, read_json, write_json
from dockerpy.build import context as ctx
from dockerpy.build.cache import BuildCache
from dockerpy.images import reference as refs
from dockerpy.logfilter import engine_log

if TYPE_CHECKING:
    from dockerpy.build.builder import BuildOptions

log = Logger(observer=engine_log)


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
    extra_hosts = []
    for value in query_all(request, "extrahosts"):
        # docker-py and the Go client repeat the parameter; accept a
        # comma-separated list too.
        extra_hosts.extend(h.strip() for h in value.split(",") if h.strip())
    for host in extra_hosts:
        name, sep, address = host.partition(":")
        if not sep or not name or not address:
            raise errors.InvalidParameter(f"invalid argument \"{host}\" for \"--add-host\" "
                                          "flag: bad format for add-host")
    shm_size = query_int(request, "shmsize", 0) or 0
    if shm_size < 0:
        raise errors.InvalidParameter("SHM size can not be less than 0")
    cache_from: list[str] = []
    raw = query(request, "cachefrom")
    if raw:
        try:
            cache_from = json.loads(raw)
        except ValueError:
            raise errors.InvalidParameter("error reading cache-from params: invalid JSON") \
                from None
        if not isinstance(cache_from, list) or not all(isinstance(c, str) for c in cache_from):
            raise errors.InvalidParameter("error reading cache-from params: not a list")
    from dockerpy.build.builder import BuildOptions

    return BuildOptions(
        extra_hosts=extra_hosts, shm_size=shm_size, cache_from=[c for c in cache_from if c],
        tags=tags, dockerfile=query(request, "dockerfile") or "Dockerfile",
        buildargs=buildargs, labels=labels, target=query(request, "target") or None,
        nocache=query_bool(request, "nocache"), rm=query_bool(request, "rm", True),
        forcerm=query_bool(request, "forcerm"), quiet=query_bool(request, "q"),
        network_mode=None if network in (None, "default", "bridge") else network)


def open_context(body, tmp_root: str, now: float) -> tuple[ctx.TarTree, object | None]:
    """Thread: the request body (a maybe compressed tar, or a bare
    Dockerfile) as an indexed `dockerpy.build.context.TarTree`.

    Nothing is extracted: a plain tar is indexed where it lies (the body
    Twisted buffered); a compressed one is first decompressed into an
    anonymous temporary file under ``tmp_root`` (unlinked at creation, so
    it cannot outlive the daemon).

    :return: the tree and the temporary file to close when the build ends
        (``None`` when the body itself is indexed).
    """
    from dockerpy.images.store import compression_of, open_decompressed

    body.seek(0)
    head = body.read(tarfile.BLOCKSIZE * 2)
    body.seek(0)
    if not head:
        return ctx.TarTree(body, now), None
    try:
        if compression_of(head[:6]) is not None:
            stream = open_decompressed(body)
            tmp = tempfile.TemporaryFile(dir=tmp_root)
            try:
                shutil.copyfileobj(stream, tmp, 1 << 20)
                tmp.flush()
                return ctx.TarTree.index(tmp, now), tmp
            except BaseException:
                tmp.close()
                raise
        if len(head) >= tarfile.BLOCKSIZE:
            try:
                tarfile.TarInfo.frombuf(head[:tarfile.BLOCKSIZE], "utf-8", "surrogateescape")
            except tarfile.HeaderError:
                if b"\0" not in head:
                    # Docker takes a body that is no archive as the Dockerfile itself.
                    size = body.seek(0, os.SEEK_END)
                    body.seek(0)
                    return ctx.TarTree.single_file(body, "Dockerfile", size, now), None
        elif b"\0" not in head:
            return ctx.TarTree.single_file(body, "Dockerfile", len(head), now), None
        return ctx.TarTree.index(body, now), None
    except (OSError, EOFError, tarfile.TarError, zlib.error, lzma.LZMAError) as e:
        raise errors.InvalidParameter(f"failed to read the build context: {e}") from None


def _step_size(images, image) -> int:
    """Bytes of the layer a cached step added (0 for a metadata step)."""
    history = image.config.get("history") or []
    if not history or history[-1].get("empty_layer") or not image.layers:
        return 0
    try:
        return images.layer(image.layers[-1]).size
    except (KeyError, errors.NotFound):
        return 0


def _kept(images, image, in_use) -> bool:
    """Whether the image outlives the cache (tagged, a parent, or used)."""
    return bool(image.repo_tags or image.repo_digests or images.children(image.id)
                or in_use(image.id))


def build_cache_usage(cache: BuildCache, images, in_use) -> list[dict]:
    """Thread: the step cache as ``GET /system/df``'s ``BuildCache`` array.

    One record per cached step.  ``Size`` is the layer the step added;
    ``Shared`` says the image also serves something else (a tag, a child,
    a container), so pruning the cache would not free it.
    """
    from dockerpy.images.store import format_go_time

    out = []
    for key, image_id in sorted(cache.entries().items()):
        try:
            image = images.get(image_id)
        except errors.NotFound:
            continue
        history = image.config.get("history") or []
        last = cache.last_used(key)
        out.append({
            "ID": key, "Parent": "", "Parents": None, "Type": "regular",
            "Description": history[-1].get("created_by", "") if history else "",
            "InUse": False, "Shared": _kept(images, image, in_use),
            "Size": _step_size(images, image),
            "CreatedAt": image.config.get("created") or format_go_time(image.created),
            "LastUsedAt": format_go_time(datetime.datetime.fromtimestamp(
                last, datetime.timezone.utc)) if last else None,
            "UsageCount": 0,
        })
    return out


def prune_build_cache(cache: BuildCache, images, in_use) -> tuple[list[str], int]:
    """Thread: ``POST /build/prune``: drop every step-cache entry, then the
    images only the cache kept (untagged, no child, no container; their
    untagged parents follow as with ``docker rmi``).

    :return: the entries deleted and the bytes of layers freed.
    """
    entries = cache.entries()

    def layers() -> dict[str, int]:
        return {chain: images.layer(chain).size
                for image in images.images() for chain in image.layers}

    before = layers()
    cache.prune(None)
    todo = set(entries.values())
    progress = True
    while todo and progress:
        progress = False
        for image_id in sorted(todo):
            try:
                image = images.get(image_id)
            except errors.NotFound:
                todo.discard(image_id)
                continue
            if _kept(images, image, in_use):
                continue
            try:
                images.remove(image.id, False, False, in_use)
            except (errors.Conflict, errors.NotFound):
                pass
            todo.discard(image_id)
            progress = True
    after = layers()
    return sorted(entries), sum(size for chain, size in before.items() if chain not in after)


def _sweep(tmp_root: str) -> None:
    """Thread: remove the ``context-*`` directories older daemons extracted."""
    for name in os.listdir(tmp_root):
        if name.startswith("context-"):
            shutil.rmtree(os.path.join(tmp_root, name), ignore_errors=True)


def cache_of(daemon) -> BuildCache:
    """The daemon's step cache (``<data-root>/build/cache``)."""
    return BuildCache(os.path.join(daemon.conf.data_root, "build", "cache"))


def contexts_of(daemon):
    """The daemon's kept build contexts (``<data-root>/build/contexts``),
    made once (it holds the sessions in flight)."""
    store = getattr(daemon, "build_contexts", None)
    if store is None:
        from dockerpy.build.sessions import ContextStore

        store = ContextStore(os.path.join(daemon.conf.data_root, "build", "contexts"))
        daemon.build_contexts = store
    return store


def install(app: Klein, daemon=None) -> None:
    def build_root() -> str:
        return os.path.join(daemon.conf.data_root, "build")

    def cache() -> BuildCache:
        return cache_of(daemon)

    swept: list[bool] = []

    @app.route("/build", methods=["POST"])
    async def post_build(request):
        opts = options_from_request(request)
        tmp_root = os.path.join(build_root(), "tmp")
        os.makedirs(tmp_root, exist_ok=True)
        if not swept:
            # Context directories of daemons before the tar index (left by a
            # crash or a stop mid-build) are removed once, in the background.
            swept.append(True)
            daemon.in_thread(_sweep, tmp_root).addErrback(
                lambda f: log.failure("sweeping old build contexts", f))
        lost = []
        request.notifyFinish().addErrback(lambda f: lost.append(True))

        def emit(obj: dict) -> None:
            if lost:
                return
            try:
                request.write(json.dumps(obj, separators=(",", ":")).encode() + b"\r\n")
            except Exception:
                lost.append(True)

        token = request.getHeader(b"x-dockerpy-context")
        if token:
            # bin/docker's context session: the body holds only what changed.
            tree, spool = await daemon.in_thread(
                contexts_of(daemon).assemble, token.decode("ascii", "replace"),
                request.content, daemon.reactor.seconds()), None
        else:
            tree, spool = await daemon.in_thread(open_context, request.content, tmp_root,
                                                 daemon.reactor.seconds())
        # Loaded on first use: BuildKit's parser brings a Go runtime (~10 MB)
        # that an idle daemon need not carry.
        from dockerpy.build.builder import Builder, StepFailed

        try:
            builder = Builder(daemon.in_thread, daemon.images, daemon.containers, cache(),
                              emit, daemon.reactor.seconds)
            df = await daemon.in_thread(builder.load, tree, opts)
            request.setResponseCode(200)
            request.setHeader(b"content-type", b"application/json")
            request.write(b"")
            build = defer.ensureDeferred(builder.build(tree, df, opts))
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
            if spool is not None:
                spool.close()

    @app.route("/dockerpy/build/context", methods=["POST"])
    async def post_build_context(request):
        from dockerpy.build.sessions import parse_manifest

        def begin() -> tuple[str, list[str]]:
            return contexts_of(daemon).begin(*parse_manifest(read_json(request, required=True)))

        token, need = await daemon.in_thread(begin)
        return write_json(request, {"Token": token, "Need": need})

    @app.route("/build/prune", methods=["POST"])
    async def post_build_prune(request):
        from dockerpy.api.images import _in_use

        # all, keep-storage and filters are accepted: every entry of the
        # step cache is unused once no build runs, so all of it goes.
        query_bool(request, "all")
        deleted, reclaimed = await daemon.in_thread(prune_build_cache, cache(), daemon.images,
                                                    _in_use(daemon))
        reclaimed += await daemon.in_thread(contexts_of(daemon).prune)
        return write_json(request, {"CachesDeleted": deleted or None,
                                    "SpaceReclaimed": reclaimed})

    @app.route("/build/cancel", methods=["POST"])
    def post_build_cancel(request):
        request.setResponseCode(200)
        return b""
