# -*- test-case-name: dockerpy.test.test_registry -*-
"""Pull, push and login: the registry use-cases against the image store.

``RegistryService`` is what the API layer calls.  A pull resolves the
manifest (from a mirror first, if any answers; choosing the platform from a
list or index), starts the missing layers' downloads (three at a time
daemon-wide, shared with concurrent pulls, resumable: see ``download``) and
at once hands readers of them to ``ImageStore.add_image``, which
decompresses, hashes and applies each layer while the next ones arrive, all
or nothing; a reader gives end of file only once its blob matched its
digest, so nothing unverified becomes a layer; the store keeps each verified
blob as it came (a hard link to the download), and foreign layers
are fetched from the registry by digest, as dockerd does on Linux.  A push
asks the registry for the blob it knows for each layer, mounts it from
another repository of the same registry when it knows one holding it,
else uploads the gzip blob the store kept from a pull, or gzips the
layer's tar (in the thread pool, digest computed while writing); foreign
layers are skipped; then it puts a schema2 manifest.

Progress is reported as Docker's JSON messages through a callable; the
first message is sent only once the manifest is known, so early failures
(unknown tag, denied) still become plain HTTP errors, as with Docker.

Owns ``<data-root>/registry/tmp`` (resumable partial downloads, see
``download``; other leftovers removed at start) and, through
``metadata.DistributionMetadata``, what is known of layers on registries
(``compressed.json``, ``sources.json``): which blob each layer was pulled
or pushed as, and which repositories hold each blob.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
from urllib.parse import urlencode
from typing import IO, Any, Callable

import treq
from twisted.internet import defer
from twisted.internet.task import Cooperator
from twisted.web.client import FileBodyProducer
from twisted.logger import Logger
from twisted.python.failure import Failure

from dockerpy.errors import (Conflict, DockerError, Forbidden, InvalidParameter, NotFound,
                             SystemError_)
from dockerpy.images import reference as refs
from dockerpy.images.reference import Reference
from dockerpy.images.store import chain_ids, host_architecture, sha256_digest
from dockerpy.registry import manifest as mf
from dockerpy.registry.auth import AuthConfig, registry_host
from dockerpy.registry.client import (Progress, Repository, Unauthorized, endpoints_for,
                                      is_insecure, make_http_client)
from dockerpy.registry.download import (BlobDownload, BlobReader, clean_tmp, progress_bar,
                                        short)
from dockerpy.registry.metadata import DistributionMetadata
from dockerpy.registry.tls import DEFAULT_CERTS_DIR, RegistryTLSPolicy
from dockerpy.logfilter import engine_log

log = Logger(observer=engine_log)

CHUNK = 1 << 20
MAX_CONCURRENT_DOWNLOADS = 3
#: How long closing the service waits for downloads no pull waits for.
CLOSE_GRACE = 10.0
MAX_CONCURRENT_UPLOADS = 5
MAX_MANIFEST_SIZE = 4 << 20
MAX_MOUNT_ATTEMPTS = 3
_GZIP_LAYERS = (mf.DOCKER_LAYER_GZIP, mf.OCI_LAYER_GZIP)
_PROGRESS_INTERVAL = 0.1


class _ReportingReader:
    """A file wrapper that reports how far a consumer has read (extraction,
    upload); ``report`` is called from whatever thread reads."""

    def __init__(self, f: IO[bytes], report: Callable[[int], None]):
        self._f = f
        self._report = report
        self._done = 0

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self._done += len(data)
        self._report(self._done)
        return data

    def readinto(self, b) -> int:
        n = self._f.readinto(b)
        self._done += n or 0
        self._report(self._done)
        return n

    def seek(self, *args) -> int:
        return self._f.seek(*args)

    def tell(self) -> int:
        return self._f.tell()

    def close(self) -> None:
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def gzip_file(src: str | IO[bytes], directory: str) -> tuple[str, str, int]:
    """Compress ``src`` (a path or a readable stream) to a temp file in
    ``directory`` (deterministic: mtime 0, no name), hashing the output as it
    is written.  Blocking.

    :return: (temp path, digest, size).
    """
    h = hashlib.sha256()
    size = 0

    class _Hashing:
        def write(self, data) -> int:
            nonlocal size
            h.update(data)
            size += len(data)
            return out.write(data)

        def flush(self) -> None:
            out.flush()

    fd, path = tempfile.mkstemp(prefix="push-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out, \
                (open(src, "rb") if isinstance(src, str) else src) as inp:
            with gzip.GzipFile(filename="", mode="wb", fileobj=_Hashing(), mtime=0,
                               compresslevel=6) as gz:
                shutil.copyfileobj(inp, gz, CHUNK)
    except BaseException:
        os.unlink(path)
        raise
    return path, "sha256:" + h.hexdigest(), size


class RegistryService:
    """Pull/push/login for the daemon.

    :param reactor: the reactor (clock for progress throttling, HTTP).
    :param in_thread: runs a blocking callable in the pool, returns a Deferred.
    :param store: the ``ImageStore``.
    :param state_dir: ``<data-root>/registry``.
    :param http: a treq ``HTTPClient`` (default: one on ``reactor``).
    :param insecure: registries (``host:port`` or CIDR) that may be served
        over plain HTTP or unverified TLS (loopback always may).
    :param mirrors: registry mirror URLs tried first for every pull.
    :param certs_dir: the certs.d root (per-registry CAs and client certs).
    :param loopback_insecure: Docker's built-in insecure 127.0.0.0/8 and ::1
        (False only in tests that need a verified registry on loopback).
    """

    def __init__(self, reactor, in_thread, store, state_dir: str, http=None,
                 insecure: tuple[str, ...] | list[str] = (),
                 mirrors: tuple[str, ...] | list[str] = (),
                 certs_dir: str = DEFAULT_CERTS_DIR, loopback_insecure: bool = True):
        self.reactor = reactor
        self.in_thread = in_thread
        self.store = store
        self.state_dir = state_dir
        self.tmp = os.path.join(state_dir, "tmp")
        clean_tmp(self.tmp)
        self.insecure = tuple(insecure)
        self.mirrors = tuple(mirrors)
        self.loopback_insecure = loopback_insecure
        self.certs_dir = certs_dir
        self._pool = None
        if http is None:
            http, self._pool = make_http_client(
                reactor, RegistryTLSPolicy(certs_dir, lambda h: is_insecure(
                    h, self.insecure, self.loopback_insecure)))
        self.http = http
        self._blobs: dict[str, BlobDownload] = {}
        self._download_sem = defer.DeferredSemaphore(MAX_CONCURRENT_DOWNLOADS)
        # The scheme each insecure registry answered on (HTTPS tried first).
        self._schemes: dict[str, str] = {}
        #: Downloads that outlived the pulls that started them.
        self._background: set[BlobDownload] = set()
        self.metadata = DistributionMetadata(state_dir)
        # FileBodyProducer's default cooperator would use the global reactor.
        self._cooperator = Cooperator(scheduler=lambda f: reactor.callLater(0, f))

    def close(self) -> defer.Deferred:
        """Let downloads no pull waits for any more finish (for at most
        ``CLOSE_GRACE`` seconds; what is written stays for a resume), then
        close idle HTTP connections (tests; daemon shutdown)."""
        pending = [b.when_done() for b in self._background if not b.finished]
        d = defer.DeferredList(pending, consumeErrors=True)
        d.addTimeout(CLOSE_GRACE, self.reactor)
        d.addErrback(lambda f: f.trap(defer.TimeoutError))

        def close_pool(_):
            if self._pool is not None:
                return self._pool.closeCachedConnections()

        return d.addCallback(close_pool)

    def repository(self, ref: Reference, auth: AuthConfig, actions: list[str]) -> Repository:
        return self._repository(ref.domain, ref.path, auth, actions)

    def _repository(self, host: str, path: str, auth: AuthConfig,
                    actions: list[str]) -> Repository:
        bases = endpoints_for(host, self.insecure, self.loopback_insecure)
        known = self._schemes.get(host)
        if known is not None:
            bases = [known] + [b for b in bases if b != known]

        def remember(base: str) -> None:
            if len(bases) > 1:
                self._schemes[host] = base
        return Repository(self.http, bases, host, path, auth, actions, remember, self.reactor)

    # -- manifests -------------------------------------------------------------------

    async def _get_manifest(self, repo: Repository, ref: Reference, what: str,
                            expect_digest: str | None) -> tuple[str, dict, bytes, str]:
        """(media type, json, bytes, digest) of a manifest by tag or digest."""
        resp = await repo.request("GET", f"manifests/{what}", {"Accept": mf.ACCEPT})
        if resp.code != 200:
            err = await repo.error(resp, "manifest")
            raise _pull_error(err, ref)
        body = await treq.content(resp)
        if len(body) > MAX_MANIFEST_SIZE:
            raise InvalidParameter("manifest too big")
        digest = sha256_digest(body)
        if expect_digest is not None and digest != expect_digest:
            raise InvalidParameter(
                f"manifest verification failed for digest {expect_digest}")
        content_type = (resp.headers.getRawHeaders(b"content-type") or [b""])[0].decode()
        media, obj = mf.detect_media_type(body, content_type)
        return media, obj, body, digest

    async def resolve_manifest(self, repo: Repository, ref: Reference,
                               platform: mf.Platform, explicit: bool):
        """Follow a list/index to the image manifest for ``platform``.

        :return: (top digest, top descriptor json, image manifest json,
            platforms offered)
        """
        what = ref.digest or ref.tag or refs.DEFAULT_TAG
        media, obj, body, digest = await self._get_manifest(repo, ref, what, ref.digest)
        top = {"mediaType": media, "digest": digest, "size": len(body)}
        platforms: list[dict] = []
        if media in mf.INDEX_TYPES:
            platforms = [m.get("platform") for m in obj.get("manifests") or []
                         if m.get("platform")]
            desc = mf.select_manifest(obj, platform)
            media, obj, _, _ = await self._get_manifest(repo, ref, desc.digest, desc.digest)
        if media not in mf.IMAGE_TYPES:
            raise InvalidParameter(f"unsupported manifest media type {media}")
        return top, obj, platforms

    # -- pull ----------------------------------------------------------------------

    async def pull(self, name: str, tag: str | None, platform: str | None,
                   auth: AuthConfig, progress: Progress) -> dict:
        """``docker pull``: fetch ``name[:tag|@digest]`` into the store.

        :return: ``{"id": image id, "status": final status line}``.
        :raises DockerError: before the first progress message for unknown
            names/tags and refused credentials.
        """
        ref = refs.parse_normalized_named(name)
        if tag:
            if tag.startswith("sha256:"):
                ref = Reference(ref.domain, ref.path, None, tag)
            else:
                ref = refs.with_tag(ref, tag)
        ref = refs.tag_name_only(ref)
        want = mf.parse_platform(platform, host_architecture())
        repo, top, manifest = await self._pull_source(ref, auth, want, bool(platform))
        config_desc, layers = mf.image_layers(manifest)
        # Docker names the repository by its path on the registry (no host).
        progress({"status": f"Pulling from {ref.path}",
                  "id": ref.digest or ref.tag})
        config_bytes = await self._fetch_small_blob(repo, config_desc)
        try:
            config = json.loads(config_bytes)
        except ValueError:
            raise InvalidParameter("invalid image config: not JSON") from None
        if platform:
            actual = mf.Platform(config.get("os") or "", config.get("architecture") or "",
                                 config.get("variant") or "")
            if (actual.os, actual.architecture) != (want.os, want.architecture):
                raise NotFound(
                    f"image with reference {refs.familiar(ref)} was found but does not match "
                    f"the specified platform: wanted {want}, actual: {actual}")
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        if len(diff_ids) != len(layers):
            raise InvalidParameter(
                f"invalid manifest, layers length mismatch: expected {len(layers)}, "
                f"got {len(diff_ids)}")
        image_id = sha256_digest(config_bytes)
        try:
            previous = self.store.resolve(str(ref)).id
        except DockerError:
            previous = None

        chains = chain_ids(diff_ids)
        present = [self._has_layer(c) for c in chains]
        for desc, have in zip(layers, present):
            if have:
                progress({"status": "Already exists", "progressDetail": {}, "id": short(desc.digest)})
            else:
                progress({"status": "Pulling fs layer", "progressDetail": {},
                          "id": short(desc.digest)})
        blobs: dict[int, BlobDownload] = {}
        for i, have in enumerate(present):
            if not have:
                blobs[i] = self._acquire(repo, layers[i], progress)
        for n, i in enumerate(blobs):
            if n >= MAX_CONCURRENT_DOWNLOADS and not blobs[i].requests:
                progress({"status": "Waiting", "progressDetail": {},
                          "id": short(layers[i].digest)})
        completed: set[int] = set()
        try:
            openers = [self._opener(i, d, blobs, progress)
                       for i, d in enumerate(layers)]
            repo_digest: str | None = f"{ref.name}@{top['digest']}"
            try:
                if self.store.resolve(repo_digest).id != image_id:
                    # Docker logs and keeps the old mapping (a list's digest
                    # names whichever platform was pulled first).
                    repo_digest = None
            except DockerError:
                pass
            tag_ref = str(ref) if ref.tag is not None and ref.digest is None else None
            # Extraction starts now and reads each layer as it arrives.  It runs
            # on a thread of its own, not the pool: it blocks on the network, and
            # the pool is what the downloads write through.
            try:
                image = await self._in_own_thread(
                    self.store.add_image, config_bytes, openers, ref=tag_ref,
                    repo_digest=repo_digest,
                    on_layer=lambda i: self._layer_done(i, blobs, completed, progress))
            except BaseException:
                # Corrupt bytes usually break the decompressor before the blob's
                # end is reached: the digest mismatch is the real error.
                last = max((i for i in blobs if blobs[i].requests), default=None)
                for i in sorted(blobs):
                    if i > (last if last is not None else -1):
                        break
                    try:
                        await blobs[i].when_done()
                    except DockerError as e:
                        raise e from None
                raise
        finally:
            await self._release(blobs, progress)
        for i, desc in enumerate(layers):
            if i in blobs and i not in completed:
                progress({"status": "Pull complete", "progressDetail": {},
                          "id": short(desc.digest)})
        await self._record_pulled(repo, ref, layers, diff_ids, set(blobs))
        progress({"status": f"Digest: {top['digest']}"})
        shown = refs.familiar(ref)
        if previous == image.id and not blobs:
            status = f"Status: Image is up to date for {shown}"
        else:
            status = f"Status: Downloaded newer image for {shown}"
        progress({"status": status})
        return {"id": image_id, "status": status}

    async def _record_pulled(self, repo: Repository, ref: Reference,
                             layers: list[mf.Descriptor], diff_ids: list[str],
                             downloaded: set[int]) -> None:
        """Distribution metadata of a pull: which blob each downloaded layer
        came as (only gzip ones are pushed back as they are, and foreign ones
        are not pushed), and that the origin repository holds every blob."""
        origin = repo.host == ref.domain
        entries = []
        for i, desc in enumerate(layers):
            diff_id: str | None = None
            media = desc.media_type
            if i in downloaded and (desc.urls or media in _GZIP_LAYERS):
                diff_id = diff_ids[i]
                media = media if desc.urls else mf.DOCKER_LAYER_GZIP
            if diff_id is not None or origin:
                entries.append((diff_id, desc.digest, desc.size, ref.name if origin else None,
                                media, desc.urls))
        if entries:
            try:
                await self.in_thread(self.metadata.record_many, entries)
            except OSError as e:
                log.warn("pull: could not record distribution metadata: {e}", e=e)

    async def _pull_source(self, ref: Reference, auth: AuthConfig, want: mf.Platform,
                           explicit: bool) -> tuple[Repository, dict, dict]:
        """The repository to pull from and the resolved manifest: each mirror
        first (anonymously: credentials are for the origin), then the origin.

        :return: (repository, top descriptor, image manifest).
        """
        for mirror in self.mirrors:
            repo = Repository(self.http, mirror.rstrip("/"), registry_host(mirror), ref.path,
                              AuthConfig(), ["pull"], reactor=self.reactor)
            try:
                await repo.authenticate()
                top, manifest, _ = await self.resolve_manifest(repo, ref, want, explicit)
                return repo, top, manifest
            except DockerError as e:
                log.info("pull {ref} from mirror {mirror} failed, trying the next "
                         "endpoint: {e}", ref=str(ref), mirror=mirror, e=e.message)
        repo = self.repository(ref, auth, ["pull"])
        try:
            await repo.authenticate()
        except Unauthorized as e:
            raise _pull_error(Forbidden(str(e.message)), ref) from None
        top, manifest, _ = await self.resolve_manifest(repo, ref, want, explicit)
        return repo, top, manifest

    def _in_own_thread(self, f, *args, **kwargs) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()
        call = self.reactor.callFromThread

        def run() -> None:
            try:
                result = f(*args, **kwargs)
            except BaseException:
                call(d.errback, Failure())
            else:
                call(d.callback, result)
        threading.Thread(target=run, name="pull-extract", daemon=True).start()
        return d

    def _acquire(self, repo: Repository, desc: mf.Descriptor,
                 progress: Progress) -> BlobDownload:
        """The download of ``desc``: the running one if another pull started
        it, else a new one (resuming any partial file), queued behind the
        daemon-wide limit of concurrent downloads."""
        blob = self._blobs.get(desc.digest)
        if blob is None or blob.failed:
            blob = BlobDownload(self.reactor, self.in_thread, self.tmp, desc.digest, desc.size)
            self._blobs[desc.digest] = blob
            self._download_sem.run(lambda: defer.ensureDeferred(blob.run(repo)))
        blob.users += 1
        blob.listeners.append(progress)
        return blob

    async def _release(self, blobs: dict[int, BlobDownload], progress: Progress) -> None:
        """Detach this pull from its downloads; the last user of a verified
        blob removes its file (a failed one stays, to be resumed)."""
        done = []
        for blob in blobs.values():
            blob.users -= 1
            if progress in blob.listeners:
                blob.listeners.remove(progress)
            if blob.users == 0:
                if self._blobs.get(blob.digest) is blob:
                    del self._blobs[blob.digest]
                if blob.finished and not blob.failed:
                    done.append(blob.path)
                elif not blob.finished:
                    # Nobody waits for it any more; it finishes into its partial
                    # file, which the next pull resumes or start-up collects.
                    self._background.add(blob)
                    blob.when_done().addBoth(
                        lambda _, b=blob: self._background.discard(b))
        if done:
            await self.in_thread(_remove_all, done)

    def _opener(self, i: int, desc: mf.Descriptor, blobs: dict[int, BlobDownload],
                progress: Progress) -> Callable[[], IO[bytes]]:
        sid = short(desc.digest)
        call = self.reactor.callFromThread

        def open_layer() -> IO[bytes]:
            blob = blobs.get(i)
            if blob is None:
                # The layer was present when we looked and collected since.
                raise Conflict(f"layer {desc.digest} was removed during the pull; "
                               "pull again")
            last = [0.0]

            def report(done: int) -> None:
                now = time.monotonic()
                if now - last[0] >= _PROGRESS_INTERVAL or done >= desc.size:
                    last[0] = now
                    call(progress, {"status": "Extracting",
                                    "progressDetail": {"current": done, "total": desc.size},
                                    "progress": progress_bar(done, desc.size), "id": sid})
            # The store detects the compression (zstd included) itself.
            return BlobReader(blob, report)
        return open_layer

    def _layer_done(self, i: int, blobs: dict[int, BlobDownload], completed: set[int],
                    progress: Progress) -> None:
        """The store registered layer ``i`` (called from its thread)."""
        if i in blobs and i not in completed:
            completed.add(i)
            self.reactor.callFromThread(progress, {"status": "Pull complete",
                                                   "progressDetail": {},
                                                   "id": short(blobs[i].digest)})

    def _has_layer(self, chain: str) -> bool:
        try:
            self.store.layer(chain)
            return True
        except KeyError:
            return False

    async def _fetch_small_blob(self, repo: Repository, desc: mf.Descriptor) -> bytes:
        resp = await repo.request("GET", f"blobs/{desc.digest}")
        if resp.code != 200:
            raise await repo.error(resp, f"blob {desc.digest}")
        body = await treq.content(resp)
        if sha256_digest(body) != desc.digest:
            raise InvalidParameter(f"image config verification failed for digest {desc.digest}")
        return body

    # -- push ----------------------------------------------------------------------

    def _tags_to_push(self, ref: Reference) -> list[tuple[str, Any]]:
        out = []
        for image in self.store.images():
            for full in self.store.references(image.id):
                r = refs.parse(full)
                if r.name == ref.name and r.tag is not None and r.digest is None:
                    if ref.tag is None or r.tag == ref.tag:
                        out.append((r.tag, image))
        return sorted(out, key=lambda t: t[0])

    async def push(self, name: str, tag: str | None, auth: AuthConfig,
                   progress: Progress) -> list[dict]:
        """``docker push``: upload ``name:tag`` (every tag of ``name`` without one).

        :return: the aux records ``{"Tag", "Digest", "Size"}``.
        """
        ref = refs.parse_normalized_named(name)
        if tag:
            ref = refs.with_tag(ref, tag)
        if ref.digest is not None:
            raise InvalidParameter("cannot push a digest reference")
        images = self._tags_to_push(ref)
        if not images:
            raise NotFound("An image does not exist locally with the tag: "
                           f"{refs.familiar_name(ref)}")
        repo = self.repository(ref, auth, ["pull", "push"])
        progress({"status": f"The push refers to repository [{ref.name}]"})
        try:
            await repo.authenticate()
        except Unauthorized as e:
            raise Forbidden(f"denied: {e.message}") from None
        results = []
        for tag_name, image in images:
            results.append(await self._push_image(repo, ref, tag_name, image, progress))
        return results

    async def _push_image(self, repo: Repository, ref: Reference, tag: str, image,
                          progress: Progress) -> dict:
        layers = [self.store.layer(c) for c in image.layers]
        for layer in reversed(layers):
            progress({"status": "Preparing", "progressDetail": {}, "id": short(layer.diff_id)})
        for n, layer in enumerate(reversed(layers)):
            if n >= MAX_CONCURRENT_UPLOADS:
                progress({"status": "Waiting", "progressDetail": {},
                          "id": short(layer.diff_id)})
        sem = defer.DeferredSemaphore(MAX_CONCURRENT_UPLOADS)
        descs: dict[int, mf.Descriptor] = {}

        async def one(i: int) -> None:
            descs[i] = await self._push_layer(repo, layers[i], progress)

        ds = [sem.run(lambda i=i: defer.ensureDeferred(one(i)))
              for i in reversed(range(len(layers)))]
        results = await defer.DeferredList(ds, consumeErrors=True)
        for ok, result in results:
            if not ok:
                result.raiseException()
        config = image.raw_config
        config_desc = mf.Descriptor(mf.DOCKER_CONFIG, image.id, len(config))
        if not await self._blob_exists(repo, image.id):
            await self._upload(repo, image.id, config, len(config))
        body = mf.schema2_manifest(config_desc, [descs[i] for i in range(len(layers))])
        resp = await repo.request("PUT", f"manifests/{tag}",
                                  {"Content-Type": mf.DOCKER_MANIFEST}, body)
        if resp.code not in (200, 201, 202):
            raise await repo.error(resp, "manifest")
        await treq.content(resp)
        digest = sha256_digest(body)
        progress({"status": f"{tag}: digest: {digest} size: {len(body)}"})
        aux = {"Tag": tag, "Digest": digest, "Size": len(body)}
        progress({"progressDetail": {}, "aux": aux})
        await self._record_digest(image, f"{ref.name}@{digest}")
        return aux

    async def _record_digest(self, image, repo_digest: str) -> None:
        """Remember the pushed digest (shown in RepoDigests) through ``add_image``:
        every layer is present, so no opener is called."""
        def never():
            raise SystemError_("layer disappeared during push")
        try:
            await self.in_thread(self.store.add_image, image.raw_config,
                                 [never] * len(image.layers), None, repo_digest)
        except DockerError as e:
            log.warn("push: could not record {digest}: {e}", digest=repo_digest, e=e)

    async def _blob_exists(self, repo: Repository, digest: str) -> bool:
        resp = await repo.request("HEAD", f"blobs/{digest}")
        await treq.content(resp)
        if resp.code == 200:
            return True
        if resp.code == 404:
            return False
        raise await repo.error(resp, f"blob {digest}")

    async def _push_layer(self, repo: Repository, layer, progress: Progress) -> mf.Descriptor:
        sid = short(layer.diff_id)
        target = f"{repo.host}/{repo.path}"
        known = await self.in_thread(self.metadata.blob_for, layer.diff_id)
        location = None
        if known and known.get("urls"):
            # Docker's rule: a layer that came with URLs is not distributable.
            progress({"status": "Skipped foreign layer", "progressDetail": {}, "id": sid})
            return mf.Descriptor(known.get("mediaType") or mf.DOCKER_FOREIGN_LAYER,
                                 known["digest"], int(known["size"]),
                                 urls=tuple(known["urls"]))
        if known and known.get("mediaType", mf.DOCKER_LAYER_GZIP) == mf.DOCKER_LAYER_GZIP:
            digest, size = known["digest"], int(known["size"])
            if await self._blob_exists(repo, digest):
                progress({"status": "Layer already exists", "progressDetail": {}, "id": sid})
                await self._record_pushed(layer.diff_id, digest, size, target)
                return mf.Descriptor(mf.DOCKER_LAYER_GZIP, digest, size)
            mounted, location = await self._try_mount(repo, digest)
            if mounted is not None:
                progress({"status": f"Mounted from {mounted}", "progressDetail": {}, "id": sid})
                await self._record_pushed(layer.diff_id, digest, size, target)
                return mf.Descriptor(mf.DOCKER_LAYER_GZIP, digest, size)
        path, digest, size, own = await self.in_thread(self._push_blob, layer)
        try:
            await self._record_pushed(layer.diff_id, digest, size, None)
            if await self._blob_exists(repo, digest):
                progress({"status": "Layer already exists", "progressDetail": {}, "id": sid})
            else:
                last = [0.0]

                def report(done: int) -> None:
                    now = self.reactor.seconds()
                    if now - last[0] >= _PROGRESS_INTERVAL:
                        last[0] = now
                        progress({"status": "Pushing",
                                  "progressDetail": {"current": done, "total": size},
                                  "progress": progress_bar(done, size), "id": sid})
                with open(path, "rb") as f:
                    producer = FileBodyProducer(_ReportingReader(f, report), self._cooperator,
                                                readSize=256 * 1024)
                    await self._upload(repo, digest, producer, size, location)
                progress({"status": "Pushed", "progressDetail": {}, "id": sid})
            await self._record_pushed(None, digest, size, target)
        finally:
            if own:
                await self.in_thread(_remove_all, [path])
        return mf.Descriptor(mf.DOCKER_LAYER_GZIP, digest, size)

    def _push_blob(self, layer) -> tuple[str, str, int, bool]:
        """The gzip blob to upload for ``layer``: the blob the store keeps when
        it is gzip (a pulled layer: the registry gets the same bytes back, and
        nothing is compressed again), else a compressed temp copy of its tar.
        Blocking.

        :return: (path, digest, size, whether the path is a temp file).
        """
        path, kind = self.store.layer_blob(layer)
        if kind == "gzip":
            h = hashlib.sha256()
            size = 0
            with open(path, "rb") as f:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
                    size += len(chunk)
            return path, "sha256:" + h.hexdigest(), size, False
        tmp, digest, size = gzip_file(self.store.open_layer_tar(layer), self.tmp)
        return tmp, digest, size, True

    async def _record_pushed(self, diff_id: str | None, digest: str, size: int,
                             repository: str | None) -> None:
        try:
            await self.in_thread(self.metadata.record, diff_id, digest, size, repository,
                                 mf.DOCKER_LAYER_GZIP)
        except OSError as e:
            log.warn("push: could not record distribution metadata: {e}", e=e)

    async def _try_mount(self, repo: Repository, digest: str) -> tuple[str | None, str | None]:
        """Cross-repository mount of ``digest`` from a repository of the same
        registry known to hold it (at most ``MAX_MOUNT_ATTEMPTS``, as Docker).

        :return: (the repository path it was mounted from or None, an upload
            location the registry opened instead, to upload through).
        """
        prefix = repo.host + "/"
        candidates = [s[len(prefix):] for s in await self.in_thread(self.metadata.sources,
                                                                     digest)
                      if s.startswith(prefix) and s[len(prefix):] != repo.path]
        location = None
        for source in candidates[:MAX_MOUNT_ATTEMPTS]:
            query = urlencode({"mount": digest, "from": source})
            try:
                resp = await repo.request("POST", f"blobs/uploads/?{query}", {}, b"")
            except Unauthorized as e:
                log.info("no token to mount {digest} from {source}: {e}",
                         digest=digest, source=source, e=e.message)
                continue
            await treq.content(resp)
            if resp.code == 201:
                return source, None
            if resp.code == 202:
                # Not mounted (gone there, or no pull access): the registry
                # opened an ordinary upload session instead.
                location = (resp.headers.getRawHeaders(b"location") or [b""])[0].decode()
                log.info("mount of {digest} from {source} refused; uploading",
                         digest=digest, source=source)
                if location:
                    break
            else:
                log.info("mount of {digest} from {source} failed: {code}",
                         digest=digest, source=source, code=resp.code)
        return None, location or None

    async def _upload(self, repo: Repository, digest: str, data, size: int,
                      location: str | None = None) -> None:
        """Monolithic upload: POST to open a session (unless one is open
        already), PUT the bytes with the digest."""
        if location is None:
            resp = await repo.request("POST", "blobs/uploads/", {}, b"")
            if resp.code != 202:
                raise await repo.error(resp, "blob upload")
            await treq.content(resp)
            location = (resp.headers.getRawHeaders(b"location") or [b""])[0].decode()
        if not location:
            raise SystemError_("registry gave no upload location")
        url = repo.absolute(location)
        url += ("&" if "?" in url else "?") + "digest=" + digest
        resp = await repo.request("PUT", url, {"Content-Type": "application/octet-stream"},
                                  data, redirects=False)
        if resp.code not in (201, 204):
            raise await repo.error(resp, "blob upload")
        await treq.content(resp)

    # -- login and distribution ----------------------------------------------------

    async def login(self, auth: AuthConfig) -> dict:
        """``POST /auth``: check credentials against the registry.

        :raises Unauthorized: Docker's "login attempt ... failed" wording.
        """
        host = registry_host(auth.server_address)
        repo = self._repository(host, "", auth, [])
        challenges = await repo.ping()
        url = repo.base + "/v2/"
        bearer = [c for c in challenges if c.scheme == "bearer"]
        if bearer:
            try:
                await repo.fetch_token(bearer[0], "")
            except Unauthorized as e:
                raise Unauthorized(f"Get \"{url}\": {e.message}") from None
        elif challenges:
            if auth.anonymous:
                raise Unauthorized(f"login attempt to {url} failed with status: "
                                   "401 Unauthorized")
            pair = f"{auth.username}:{auth.password}".encode()
            resp = await repo._raw("GET", url, {
                "Authorization": "Basic " + base64.b64encode(pair).decode()})
            await treq.content(resp)
            if resp.code != 200:
                raise Unauthorized(f"login attempt to {url} failed with status: {resp.code} "
                                   f"{resp.phrase.decode('latin-1', 'replace')}")
        return {"Status": "Login Succeeded", "IdentityToken": ""}

    async def distribution(self, name: str, auth: AuthConfig) -> dict:
        """``GET /distribution/{name}/json``: the descriptor and platforms."""
        ref = refs.tag_name_only(refs.parse_normalized_named(name))
        repo = self.repository(ref, auth, ["pull"])
        what = ref.digest or ref.tag or refs.DEFAULT_TAG
        media, obj, body, digest = await self._get_manifest(repo, ref, what, ref.digest)
        platforms = []
        if media in mf.INDEX_TYPES:
            platforms = [m["platform"] for m in obj.get("manifests") or [] if m.get("platform")]
        else:
            config_desc, _ = mf.image_layers(obj)
            config = json.loads(await self._fetch_small_blob(repo, config_desc))
            p = {"architecture": config.get("architecture") or "", "os": config.get("os") or ""}
            if config.get("variant"):
                p["variant"] = config["variant"]
            platforms = [p]
        return {"Descriptor": {"mediaType": media, "digest": digest, "size": len(body)},
                "Platforms": platforms}


def _remove_all(paths: list[str]) -> None:
    for p in paths:
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass


def _pull_error(err: DockerError, ref: Reference) -> DockerError:
    """Docker's wording for a failed manifest fetch (``translatePullError``)."""
    if isinstance(err, NotFound):
        return NotFound(f"manifest for {refs.familiar(ref)} not found: {err.message}")
    if isinstance(err, Forbidden):
        return NotFound(f"pull access denied for {refs.familiar_name(ref)}, repository does not "
                        f"exist or may require 'docker login': {err.message}")
    return err
