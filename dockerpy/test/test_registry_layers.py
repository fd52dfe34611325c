# -*- test-case-name: dockerpy.test.test_registry_layers -*-
"""Layer formats and push shortcuts against Debian's ``docker-registry`` on
127.0.0.1, through ``RegistryService`` in-process into real image stores
over the in-memory storage driver:

- zstd layers (OCI ``tar+zstd``) are decompressed while downloading and
  verified by digest like the others;
- foreign layers are fetched from the registry by digest (Docker on Linux
  never uses their URLs) and skipped on push;
- a push to a second repository of the same registry mounts the blobs it
  knows are there (cross-repository mount) instead of uploading them, and
  with bearer auth asks for a token that may also pull the source (against
  a small fake registry: Debian's registry has no token server).

The test images are pushed to the registry with raw HTTP.
``CountingProxy`` (also used by the daemon-level tests) sits in front of
the registry and counts the requests.
"""

from __future__ import annotations

import gzip
import http.client
import http.server
import io
import json
import os
import shutil
import tempfile
import threading
import time
from urllib.parse import urlsplit

import zstandard
from twisted.internet import defer, reactor
from twisted.internet.threads import deferToThread
from klein import Klein
from twisted.trial import unittest

from dockerpy.errors import DockerError
from dockerpy.images import reference as refs
from dockerpy.images.store import ImageStore, chain_ids
from dockerpy.registry import manifest as mf
from dockerpy.registry.auth import AuthConfig
from dockerpy.registry.metadata import DistributionMetadata
from dockerpy.registry.service import RegistryService
from dockerpy.test.fake_storage import FakeStorageDriver
from dockerpy.test.test_registry import PlainSite, layer_tar, sha
from dockerpy.test.test_registry_integration import LocalRegistry, registry_skip_reason


_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
        "trailer", "upgrade"}


class CountingProxy:
    """An HTTP proxy in front of a registry that logs every request as
    ``(method, path)``.  It keeps the ``Host`` header, so the registry's
    upload locations point back at the proxy.  It runs on threads of its
    own, not on the reactor: daemon-level tests block in ``subprocess.run``
    while the daemon talks through it.  ``throttle`` slows blob bodies down
    so a test can act in the middle of a download.

    :param upstream_port: the registry's port on 127.0.0.1.
    """

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.requests: list[tuple[str, str]] = []
        self.ranges: list[tuple[str, str]] = []  # (path, Range header) of ranged GETs
        self.throttle: float = 0.0  # seconds to sleep per 64 KiB of blob body
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _body(self) -> bytes | None:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline().strip():
                                pass
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else None

            def _forward(self) -> None:
                body = self._body()
                with proxy._lock:
                    proxy.requests.append((self.command, self.path))
                    if self.headers.get("Range"):
                        proxy.ranges.append((self.path, self.headers["Range"]))
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port,
                                                  timeout=60)
                try:
                    # Repeated headers (Accept) must stay repeated.
                    conn.putrequest(self.command, self.path, skip_host=True,
                                    skip_accept_encoding=True)
                    for k, v in self.headers.items():
                        if k.lower() not in _HOP and k.lower() != "content-length":
                            conn.putheader(k, v)
                    if body is not None:
                        conn.putheader("Content-Length", str(len(body)))
                    conn.endheaders(body)
                    resp = conn.getresponse()
                    out = [(k, v) for k, v in resp.getheaders() if k.lower() not in _HOP]
                    length = resp.getheader("Content-Length")
                    if self.command == "HEAD" or length is not None:
                        self.send_response(resp.status, resp.reason)
                        for k, v in out:
                            self.send_header(k, v)
                        self.end_headers()
                        if self.command != "HEAD":
                            slow = "/blobs/" in self.path and proxy.throttle
                            while chunk := resp.read(65536):
                                self.wfile.write(chunk)
                                if slow:
                                    time.sleep(proxy.throttle)
                        resp.read()
                    else:
                        data = resp.read()
                        self.send_response(resp.status, resp.reason)
                        for k, v in out:
                            self.send_header(k, v)
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        self.wfile.write(data)
                finally:
                    conn.close()

            def _handle(self) -> None:
                try:
                    self._forward()
                except (BrokenPipeError, ConnectionResetError):
                    # The client went away (a killed daemon, a cut pull).
                    self.close_connection = True

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def count(self, method: str, contains: str = "") -> int:
        with self._lock:
            return sum(1 for m, p in self.requests if m == method and contains in p)

    def paths(self, method: str) -> list[str]:
        with self._lock:
            return [urlsplit(p).path for m, p in self.requests if m == method]

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.ranges.clear()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


def raw_push(reg, repo: str, tag: str, blobs: list[bytes], manifest: bytes,
             media_type: str) -> None:
    """Upload ``blobs`` and put ``manifest`` as ``repo:tag``, in plain HTTP."""
    for blob in blobs:
        status, headers, _ = reg.request("POST", f"/v2/{repo}/blobs/uploads/", b"")
        assert status == 202, status
        loc = urlsplit(headers["Location"])
        target = loc.path + "?" + (loc.query + "&" if loc.query else "") + "digest=" + sha(blob)
        status, _, body = reg.request("PUT", target, blob,
                                      {"Content-Type": "application/octet-stream"})
        assert status == 201, (status, body)
    status, _, body = reg.request("PUT", f"/v2/{repo}/manifests/{tag}", manifest,
                                  {"Content-Type": media_type})
    assert status == 201, (status, body)


def make_image(layers: list[tuple[str, bytes, tuple[str, ...]]]) -> tuple[bytes, list]:
    """(config bytes, [(media type, blob, urls)]) for raw layer tars given as
    (media type, tar, urls): each tar compressed as its media type says."""
    out, diff_ids = [], []
    for media, raw, urls in layers:
        if "zstd" in media:
            blob = zstandard.ZstdCompressor(level=3).compress(raw)
        elif "gzip" in media:
            blob = gzip.compress(raw, mtime=0)
        else:
            blob = raw
        diff_ids.append(sha(raw))
        out.append((media, blob, urls))
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": f"layer {i}"} for i in range(len(layers))]}).encode()
    return config, out


def manifest_of(config: bytes, layers: list, oci: bool) -> bytes:
    descs = []
    for media, blob, urls in layers:
        d = {"mediaType": media, "digest": sha(blob), "size": len(blob)}
        if urls:
            d["urls"] = list(urls)
        descs.append(d)
    return json.dumps({
        "schemaVersion": 2,
        "mediaType": mf.OCI_MANIFEST if oci else mf.DOCKER_MANIFEST,
        "config": {"mediaType": mf.OCI_CONFIG if oci else mf.DOCKER_CONFIG,
                   "digest": sha(config), "size": len(config)},
        "layers": descs}).encode()


class URLRegistry(LocalRegistry):
    """Accepts foreign layer URLs in manifests (refused unless configured)."""

    def _config(self) -> str:
        return super()._config() + (
            "validation:\n  manifests:\n    urls:\n      allow:\n        - ^https?://\n")


class RegistryLayersTestBase(unittest.TestCase):
    def setUp(self):
        reason = registry_skip_reason()
        if reason:
            raise unittest.SkipTest(reason)
        self.tmp = tempfile.mkdtemp(prefix="dpreglayers-", dir="/tmp")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.reg = URLRegistry()
        self.addCleanup(self.reg.destroy)
        self.reg.start()
        self.proxy = CountingProxy(self.reg.port)
        self.addCleanup(self.proxy.close)
        self.host = self.proxy.host
        self.messages: list[dict] = []

    def service(self, name: str) -> RegistryService:
        root = os.path.join(self.tmp, name)
        store = ImageStore(os.path.join(root, "image"),
                           FakeStorageDriver(os.path.join(root, "storage")))
        service = RegistryService(reactor, deferToThread, store, os.path.join(root, "registry"))
        self.addCleanup(service.close)
        return service

    def pull(self, service, name):
        return defer.ensureDeferred(service.pull(name, None, None, AuthConfig(),
                                                 self.messages.append))

    def serve_image(self, repo: str, skip: int | None = None):
        """Put ``self.image()`` into the registry as ``repo:1`` (Docker
        schema 2), without the blob of layer ``skip``;
        :return: (config, layers)."""
        config, layers = self.image()
        blobs = [b for i, (_, b, _) in enumerate(layers) if i != skip]
        raw_push(self.reg, repo, "1", blobs + [config], manifest_of(config, layers, oci=False),
                 mf.DOCKER_MANIFEST)
        return config, layers

    def push(self, service, name):
        return defer.ensureDeferred(service.push(name, None, AuthConfig(),
                                                 self.messages.append))

    def statuses(self) -> list[str]:
        return [m.get("status", "") for m in self.messages]

    def files(self, store, image) -> dict[str, bytes]:
        """Every regular file of the image's layers, upper layers winning."""
        out = {}
        for chain in image.layers:
            layer = store.layer(chain)
            for info, data in store.driver.layers[layer.cache_id].entries:
                if data is not None:
                    out[info.name] = data
        return out


class ZstdLayerTests(RegistryLayersTestBase):
    def image(self):
        base = layer_tar({"etc/base": b"gzip layer\n"})
        top = layer_tar({"data/big": os.urandom(300000) + b"z" * 300000,
                         "data/small": b"from a zstd layer\n"})
        return make_image([(mf.OCI_LAYER_GZIP, base, ()), (mf.OCI_LAYER_ZSTD, top, ())])

    async def test_oci_image_with_zstd_layer_is_pulled_and_verified(self):
        config, layers = self.image()
        manifest = manifest_of(config, layers, oci=True)
        raw_push(self.reg, "z/img", "1", [b for _, b, _ in layers] + [config], manifest,
                 mf.OCI_MANIFEST)
        service = self.service("a")
        result = await self.pull(service, f"{self.host}/z/img:1")
        image = service.store.resolve(f"{self.host}/z/img:1")
        self.assertEqual((result["id"], image.id), (sha(config), sha(config)))
        self.assertEqual(image.repo_digests, (f"{self.host}/z/img@{sha(manifest)}",))
        diff_ids = json.loads(config)["rootfs"]["diff_ids"]
        self.assertEqual(list(image.layers), chain_ids(diff_ids))
        files = self.files(service.store, image)
        self.assertEqual(files["data/small"], b"from a zstd layer\n")
        self.assertEqual(files["etc/base"], b"gzip layer\n")
        self.assertEqual(len(files["data/big"]), 600000)
        self.assertIn("Pull complete", self.statuses())
        self.assertEqual(os.listdir(service.tmp), [])

    async def test_corrupted_zstd_blob_fails_verification_and_stores_nothing(self):
        config, layers = self.image()
        manifest = manifest_of(config, layers, oci=True)
        raw_push(self.reg, "z/bad", "1", [b for _, b, _ in layers] + [config], manifest,
                 mf.OCI_MANIFEST)
        zstd_digest = sha(layers[1][1])
        with open(self.reg.blob_path(zstd_digest), "r+b") as f:
            f.seek(5000)
            byte = f.read(1)
            f.seek(5000)
            f.write(bytes([byte[0] ^ 0xFF]))
        service = self.service("a")
        with self.assertRaises(DockerError) as cm:
            await self.pull(service, f"{self.host}/z/bad:1")
        self.assertEqual(cm.exception.message,
                         f"filesystem layer verification failed for digest {zstd_digest}")
        self.assertEqual(service.store.images(), [])

    def test_a_zstd_layer_needs_the_source_end_before_end_of_file(self):
        """What a pull reads a layer through (the store's decompression):
        end of file only once the blob itself ended (so the digest check
        below it saw every byte), and bytes after the last frame refused."""
        from dockerpy.images.store import open_decompressed

        raw = layer_tar({"a": b"x" * 1000})
        blob = zstandard.ZstdCompressor().compress(raw)
        reads = []

        class Source(io.BytesIO):
            def read(self, n=-1):
                data = super().read(n)
                reads.append(len(data))
                return data
        with open_decompressed(Source(blob)) as stream:
            self.assertEqual(stream.read(1 << 20), raw)
            self.assertEqual(stream.read(1 << 20), b"")
        self.assertEqual(reads[-1], 0)
        with open_decompressed(Source(blob + b"junk")) as stream:
            self.assertRaises(DockerError, lambda: [stream.read(1 << 20) for _ in range(3)])
        with open_decompressed(io.BytesIO(raw)) as plain:
            self.assertEqual(plain.read(), raw)


class ForeignLayerTests(RegistryLayersTestBase):
    """Docker on Linux fetches a foreign layer like any other, from the
    registry by digest (only Windows daemons try the descriptor's URLs), and
    never pushes one: the manifest it pushes keeps the foreign descriptor."""

    # Nothing listens there: a pull that used the URL would fail.
    URL = "http://127.0.0.1:9/foreign/layer.tar.gz"

    def image(self):
        base = layer_tar({"foreign/base": b"licensed bits\n"})
        top = layer_tar({"app": b"ours\n"})
        return make_image([(mf.DOCKER_FOREIGN_LAYER, base, (self.URL,)),
                           (mf.DOCKER_LAYER_GZIP, top, ())])

    async def test_foreign_layer_is_pulled_from_the_registry_and_skipped_on_push(self):
        config, layers = self.serve_image("f/img")
        service = self.service("a")
        await self.pull(service, f"{self.host}/f/img:1")
        image = service.store.resolve(f"{self.host}/f/img:1")
        self.assertEqual(image.id, sha(config))
        self.assertEqual(self.files(service.store, image)["foreign/base"], b"licensed bits\n")
        foreign = sha(layers[0][1])
        self.assertIn(f"/v2/f/img/blobs/{foreign}", self.proxy.paths("GET"))

        service.store.tag(image.id, f"{self.host}/f/copy", "1")
        self.messages.clear()
        self.proxy.reset()
        await self.push(service, f"{self.host}/f/copy:1")
        self.assertIn("Skipped foreign layer", self.statuses())
        self.assertFalse([p for p in self.proxy.requests if foreign in p[1]],
                         self.proxy.requests)
        _, _, body = self.reg.request("GET", "/v2/f/copy/manifests/1", headers={
            "Accept": mf.DOCKER_MANIFEST})
        pushed = json.loads(body)["layers"]
        self.assertEqual(pushed[0], {"mediaType": mf.DOCKER_FOREIGN_LAYER,
                                     "size": len(layers[0][1]), "digest": foreign,
                                     "urls": [self.URL]})
        self.assertEqual(pushed[1]["digest"], sha(layers[1][1]))

    async def test_foreign_layer_missing_from_the_registry_fails_the_pull(self):
        # The registry accepts a manifest whose foreign blob it does not hold.
        config, layers = self.serve_image("f/missing", skip=0)
        service = self.service("a")
        with self.assertRaises(DockerError) as cm:
            await self.pull(service, f"{self.host}/f/missing:1")
        self.assertIn("blob unknown", cm.exception.message)
        self.assertEqual(service.store.images(), [])


class CrossRepositoryMountTests(RegistryLayersTestBase):
    def uploads(self) -> int:
        return self.proxy.count("PUT", "/blobs/uploads/") + self.proxy.count("PATCH")

    def image(self):
        return make_image([(mf.DOCKER_LAYER_GZIP, layer_tar({f"l{i}": os.urandom(5000)}), ())
                           for i in range(3)])

    async def pushed_by_a(self):
        """``self.image()`` made in service "a" and pushed as ``one/img:1``;
        :return: (config, service)."""
        config, layers = self.image()
        service = self.service("a")
        await deferToThread(service.store.add_image, config,
                            [lambda b=gzip.decompress(b): io.BytesIO(b) for _, b, _ in layers],
                            f"{self.host}/one/img:1")
        await self.push(service, f"{self.host}/one/img:1")
        return config, service

    async def test_push_to_a_second_repository_mounts_instead_of_uploading(self):
        config, service = await self.pushed_by_a()
        self.assertEqual(self.uploads(), 4)  # three layers and the config
        service.store.tag(sha(config), f"{self.host}/two/img", "1")
        self.proxy.reset()
        self.messages.clear()
        await self.push(service, f"{self.host}/two/img:1")
        self.assertEqual(self.statuses().count("Mounted from one/img"), 3, self.statuses())
        self.assertEqual(self.uploads(), 1)  # the config only
        self.assertEqual(self.proxy.count("POST", "mount=sha256"), 3)
        # The registry has the image under the second name, complete.
        other = self.service("b")
        await self.pull(other, f"{self.host}/two/img:1")
        self.assertEqual(other.store.resolve(f"{self.host}/two/img:1").id, sha(config))

    async def test_pulled_layers_are_mounted_from_where_they_were_pulled(self):
        config, layers = self.serve_image("src/img")
        service = self.service("a")
        await self.pull(service, f"{self.host}/src/img:1")
        service.store.tag(sha(config), f"{self.host}/dst/img", "1")
        self.proxy.reset()
        self.messages.clear()
        await self.push(service, f"{self.host}/dst/img:1")
        self.assertEqual(self.statuses().count("Mounted from src/img"), 3, self.statuses())
        self.assertEqual(self.uploads(), 1)
        _, _, body = self.reg.request("GET", "/v2/dst/img/manifests/1", headers={
            "Accept": mf.DOCKER_MANIFEST})
        # The very blobs pulled: nothing was recompressed.
        self.assertEqual([d["digest"] for d in json.loads(body)["layers"]],
                         [sha(b) for _, b, _ in layers])

    async def test_failed_mount_falls_back_to_uploading(self):
        config, service = await self.pushed_by_a()
        # The metadata names a repository that does not hold the blobs.
        digests = [d for d in json.loads(self.reg.request(
            "GET", "/v2/one/img/manifests/1",
            headers={"Accept": mf.DOCKER_MANIFEST})[2])["layers"]]
        state = os.path.join(self.tmp, "a", "registry", "sources.json")
        with open(state) as f:
            sources = json.load(f)
        for d in digests:
            sources[d["digest"]] = [f"{self.host}/nowhere/img"]
        with open(state, "w") as f:
            json.dump(sources, f)
        service.store.tag(sha(config), f"{self.host}/three/img", "1")
        self.proxy.reset()
        self.messages.clear()
        await self.push(service, f"{self.host}/three/img:1")
        self.assertEqual(self.proxy.count("POST", "from=nowhere"), 3)
        self.assertEqual(self.statuses().count("Pushed"), 3, self.statuses())
        other = self.service("b")
        await self.pull(other, f"{self.host}/three/img:1")
        self.assertEqual(other.store.resolve(f"{self.host}/three/img:1").id, sha(config))


class BearerMountRegistry:
    """A bearer-token registry that mounts a blob only for a token holding
    pull access to the source repository; its tokens list their scopes."""

    app = Klein()

    def __init__(self):
        self.port = 0
        self.token_scopes: list[list[str]] = []

    @app.route("/token", methods=["GET"])
    def token(self, request):
        scopes = [v.decode() for v in request.args.get(b"scope", [])]
        self.token_scopes.append(scopes)
        return json.dumps({"token": " ".join(scopes)}).encode()

    @app.route("/v2/", methods=["GET"])
    def ping(self, request):
        if not (request.getHeader(b"authorization") or b"").startswith(b"Bearer "):
            request.setResponseCode(401)
            request.setHeader(b"www-authenticate", (
                f'Bearer realm="http://127.0.0.1:{self.port}/token",service="fake"').encode())
        return b"{}"

    @app.route("/v2/<path:repo>/blobs/uploads/", methods=["POST"])
    def upload(self, request, repo):
        source = request.args.get(b"from", [b""])[0].decode()
        token = (request.getHeader(b"authorization") or b"").decode()
        if source and f"repository:{source}:pull" in token.split():
            request.setResponseCode(201)
        else:
            request.setResponseCode(202)
            request.setHeader(b"location", f"/v2/{repo}/blobs/uploads/x".encode())
        return b""


class BearerMountTests(unittest.TestCase):
    async def test_mount_token_adds_pull_access_to_the_source_repository(self):
        reg = BearerMountRegistry()
        port = reactor.listenTCP(0, PlainSite(reg.app.resource()), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        reg.port = port.getHost().port
        host = f"127.0.0.1:{reg.port}"
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp, True)
        store = ImageStore(os.path.join(tmp, "image"),
                           FakeStorageDriver(os.path.join(tmp, "storage")))
        service = RegistryService(reactor, deferToThread, store, os.path.join(tmp, "registry"))
        self.addCleanup(service.close)
        digest = "sha256:" + "a" * 64
        await deferToThread(service.metadata.record, None, digest, 1, f"{host}/src/img")
        repo = service.repository(refs.parse_normalized_named(f"{host}/dst/img"),
                                  AuthConfig(), ["pull", "push"])
        mounted, location = await service._try_mount(repo, digest)
        self.assertEqual((mounted, location), ("src/img", None))
        self.assertEqual(reg.token_scopes, [["repository:dst/img:pull,push"],
                                            ["repository:dst/img:pull,push",
                                             "repository:src/img:pull"]])


class MetadataTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir)
        self.meta = DistributionMetadata(self.dir)

    def test_sources_are_newest_first_and_bounded(self):
        for i in range(7):
            self.meta.record(None, "sha256:aa", 1, f"h:1/r{i}")
        self.meta.record(None, "sha256:aa", 1, "h:1/r3")
        self.assertEqual(self.meta.sources("sha256:aa"),
                         ["h:1/r3", "h:1/r6", "h:1/r5", "h:1/r4", "h:1/r2"])
        self.assertEqual(self.meta.sources("sha256:bb"), [])

    def test_blob_for_diff_id_keeps_urls_of_foreign_layers(self):
        self.meta.record("sha256:d1", "sha256:b1", 10, None, mf.DOCKER_FOREIGN_LAYER,
                         ("http://x/y",))
        self.assertEqual(self.meta.blob_for("sha256:d1"),
                         {"digest": "sha256:b1", "size": 10,
                          "mediaType": mf.DOCKER_FOREIGN_LAYER, "urls": ["http://x/y"]})
        self.assertIsNone(self.meta.blob_for("sha256:d2"))

    def test_corrupt_files_read_as_empty(self):
        for name in ("compressed.json", "sources.json"):
            with open(os.path.join(self.dir, name), "w") as f:
                f.write("{not json")
        self.assertIsNone(self.meta.blob_for("sha256:d1"))
        self.assertEqual(self.meta.sources("sha256:aa"), [])
        self.meta.record("sha256:d1", "sha256:b1", 1, "h/r")
        self.assertEqual(self.meta.sources("sha256:b1"), ["h/r"])
