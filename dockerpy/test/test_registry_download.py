# -*- test-case-name: dockerpy.test.test_registry_download -*-
"""Pull downloads against an in-process fake registry: a connection cut
mid-blob is resumed with a Range request, concurrent pulls share one
download, a mirror is used first and the origin when the mirror fails,
and progress carries Docker's ``progressDetail``."""

from __future__ import annotations

import gzip
import json
import os
import random
import shutil
import tempfile

from twisted.internet import defer, reactor
from twisted.internet.threads import deferToThread
from twisted.trial import unittest
from twisted.web.server import NOT_DONE_YET

from dockerpy.images.store import ImageStore
from dockerpy.registry import manifest as mf
from dockerpy.registry.auth import AuthConfig
from dockerpy.registry.download import partial_path
from dockerpy.registry.service import RegistryService
from dockerpy.test.fake_storage import FakeStorageDriver
from dockerpy.test.test_registry import FakeRegistry, PlainSite, layer_tar, sha


class BigImage:
    """Two layers of incompressible data, big enough to be cut in the middle."""

    def __init__(self, sizes=(3 << 20, 1 << 20)):
        rng = random.Random(7)
        raws = [layer_tar({f"f{i}": rng.randbytes(n)}) for i, n in enumerate(sizes)]
        self.layers = [gzip.compress(r, compresslevel=1, mtime=0) for r in raws]
        self.config = json.dumps({
            "architecture": "amd64", "os": "linux", "config": {},
            "rootfs": {"type": "layers", "diff_ids": [sha(r) for r in raws]},
            "history": [{"created_by": "a"}, {"created_by": "b"}]}).encode()
        self.manifest = mf.schema2_manifest(
            mf.Descriptor(mf.DOCKER_CONFIG, sha(self.config), len(self.config)),
            [mf.Descriptor(mf.DOCKER_LAYER_GZIP, sha(b), len(b)) for b in self.layers])
        self.id = sha(self.config)

    def blobs(self) -> dict[str, bytes]:
        out = {sha(b): b for b in self.layers}
        out[sha(self.config)] = self.config
        return out


class CuttingRegistry(FakeRegistry):
    """Serves ``Range`` requests, can cut the first GET of a blob after
    ``cut_at`` bytes, can hold blob bodies until ``gate`` fires, and logs
    every blob GET with its Range header and the bytes sent."""

    app = FakeRegistry.app.__class__()

    def __init__(self):
        super().__init__()
        self.cut: dict[str, int] = {}
        self.gate: defer.Deferred | None = None
        self.gets: list[tuple[str, str | None, int]] = []

    @app.route("/v2/", methods=["GET"])
    def ping(self, request):
        return b"{}"

    @app.route("/v2/<path:repo>/manifests/<ref>", methods=["GET", "HEAD"])
    def manifest(self, request, repo, ref):
        return FakeRegistry.manifest(self, request, repo, ref)

    @app.route("/v2/<path:repo>/blobs/<digest>", methods=["GET", "HEAD"])
    async def blob(self, request, repo, digest):
        data = self.blobs.get(digest)
        if data is None:
            request.setResponseCode(404)
            return b'{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}'
        if self.gate is not None and len(data) > 10000:
            await self.gate
        rng = request.getHeader(b"range")
        start = 0
        if rng:
            start = int(rng.decode().split("=", 1)[1].rstrip("-"))
            request.setResponseCode(206)
            request.setHeader(b"content-range",
                              f"bytes {start}-{len(data) - 1}/{len(data)}".encode())
        body = data[start:]
        request.setHeader(b"content-length", str(len(body)).encode())
        cut = self.cut.pop(digest, None)
        if cut is not None:
            self.gets.append((digest, rng and rng.decode(), cut))
            request.write(body[:cut])
            transport = request.channel.transport
            # The channel is registered as the transport's producer, which
            # would hold loseConnection back until the server's idle timeout.
            transport.unregisterProducer()
            transport.loseConnection()
            return NOT_DONE_YET
        self.gets.append((digest, rng and rng.decode(), len(body)))
        return body


class DownloadTestBase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.store = ImageStore(os.path.join(self.tmp, "image"),
                                FakeStorageDriver(os.path.join(self.tmp, "storage")))

    def listen(self, registry) -> str:
        port = reactor.listenTCP(0, PlainSite(registry.app.resource()), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        registry.port = port.getHost().port
        return f"127.0.0.1:{registry.port}"

    def service(self, **kwargs) -> RegistryService:
        service = RegistryService(reactor, deferToThread, self.store,
                                  os.path.join(self.tmp, "registry"), **kwargs)
        self.addCleanup(service.close)
        return service

    def pull(self, service, name, messages):
        return defer.ensureDeferred(service.pull(name, None, None, AuthConfig(),
                                                 messages.append))


class ResumeTests(DownloadTestBase):
    def with_partial(self, content):
        """A registry serving a big image, and a partial download of its
        first layer left by an earlier attempt, holding ``content(image)``.

        :return: (registry, image, that layer's digest, host, tmp dir)."""
        reg = CuttingRegistry()
        image = BigImage()
        reg.add("test/big", "1", image)
        big = sha(image.layers[0])
        host = self.listen(reg)
        tmp = os.path.join(self.tmp, "registry", "tmp")
        os.makedirs(tmp)
        with open(partial_path(tmp, big), "wb") as f:
            f.write(content(image))
        return reg, image, big, host, tmp

    async def test_cut_connection_resumes_with_range_and_fetches_only_the_rest(self):
        reg = CuttingRegistry()
        image = BigImage()
        reg.add("test/big", "1", image)
        big = sha(image.layers[0])
        reg.cut[big] = 1 << 20
        host = self.listen(reg)
        service = self.service()
        messages: list[dict] = []
        await self.pull(service, f"{host}/test/big:1", messages)
        self.assertEqual(self.store.resolve(f"{host}/test/big:1").id, image.id)
        gets = [(r, n) for d, r, n in reg.gets if d == big]
        self.assertEqual(gets, [(None, 1 << 20),
                                (f"bytes={1 << 20}-", len(image.layers[0]) - (1 << 20))])
        self.assertIn("Retrying in 1 second", [m.get("status") for m in messages])
        # Verified and extracted: no partial file left.
        self.assertEqual(os.listdir(service.tmp), [])

    async def test_partial_file_from_an_earlier_attempt_is_resumed(self):
        reg, image, big, host, tmp = self.with_partial(lambda image: image.layers[0][:12345])
        service = self.service()
        await self.pull(service, f"{host}/test/big:1", [])
        self.assertEqual(self.store.resolve(f"{host}/test/big:1").id, image.id)
        self.assertEqual([(r, n) for d, r, n in reg.gets if d == big],
                         [("bytes=12345-", len(image.layers[0]) - 12345)])

    async def test_corrupt_partial_file_fails_verification_and_is_dropped(self):
        reg, image, big, host, tmp = self.with_partial(lambda image: b"\0" * 100)
        service = self.service()
        with self.assertRaises(Exception) as cm:
            await self.pull(service, f"{host}/test/big:1", [])
        self.assertIn(f"filesystem layer verification failed for digest {big}",
                      str(cm.exception))
        self.assertEqual(self.store.images(), [])
        self.assertFalse(os.path.exists(partial_path(tmp, big)))
        # The next pull starts over and succeeds.
        await self.pull(service, f"{host}/test/big:1", [])
        self.assertEqual(self.store.resolve(f"{host}/test/big:1").id, image.id)


    async def test_a_partial_file_linked_by_a_layer_is_never_written_to(self):
        # What a daemon stopped between extraction and clean-up leaves: the
        # download's file, also linked as a layer's kept blob.
        reg, image, big, host, tmp = self.with_partial(lambda image: image.layers[0][:12345])
        start = image.layers[0][:12345]
        kept = os.path.join(self.tmp, "kept")
        os.link(partial_path(tmp, big), kept)
        service = self.service()
        await self.pull(service, f"{host}/test/big:1", [])
        self.assertEqual(self.store.resolve(f"{host}/test/big:1").id, image.id)
        # Fetched afresh into a new file; the linked one is untouched.
        self.assertEqual([(r, n) for d, r, n in reg.gets if d == big],
                         [(None, len(image.layers[0]))])
        with open(kept, "rb") as f:
            self.assertEqual(f.read(), start)


class SharedDownloadTests(DownloadTestBase):
    async def test_concurrent_pulls_share_one_download_per_blob(self):
        reg = CuttingRegistry()
        image = BigImage()
        reg.add("test/big", "1", image)
        reg.add("test/big", "2", image)
        reg.gate = defer.Deferred()
        host = self.listen(reg)
        service = self.service()
        started = [defer.Deferred(), defer.Deferred()]
        logs: list[list[dict]] = [[], []]

        def recorder(n):
            def record(message):
                logs[n].append(message)
                if message.get("status") == "Pulling fs layer" and not started[n].called:
                    started[n].callback(None)
            return record
        pulls = [defer.ensureDeferred(service.pull(f"{host}/test/big:{n + 1}", None, None,
                                                   AuthConfig(), recorder(n)))
                 for n in range(2)]
        await defer.gatherResults(started)
        reg.gate.callback(None)
        await defer.gatherResults(pulls)
        for digest in (sha(image.layers[0]), sha(image.layers[1])):
            self.assertEqual(len([g for g in reg.gets if g[0] == digest]), 1, reg.gets)
        self.assertEqual(self.store.resolve(f"{host}/test/big:2").id, image.id)
        for log in logs:
            downloading = [m for m in log if m.get("status") == "Downloading"]
            self.assertTrue(downloading, log)
            detail = downloading[-1]["progressDetail"]
            self.assertEqual(detail["current"], detail["total"])
            self.assertIn("Pull complete", [m.get("status") for m in log])
        self.assertEqual(os.listdir(service.tmp), [])


class MirrorTests(DownloadTestBase):
    async def test_mirror_is_used_first_for_any_registry(self):
        origin, mirror = CuttingRegistry(), CuttingRegistry()
        image = BigImage((1000,))
        origin.add("test/img", "1", image)
        mirror.add("test/img", "1", image)
        host = self.listen(origin)
        mirror_host = self.listen(mirror)
        service = self.service(mirrors=[f"http://{mirror_host}"])
        await self.pull(service, f"{host}/test/img:1", [])
        self.assertEqual(self.store.resolve(f"{host}/test/img:1").id, image.id)
        self.assertTrue(mirror.gets)
        self.assertEqual(origin.gets, [])

    async def test_origin_is_used_when_the_mirror_lacks_the_image(self):
        origin, mirror = CuttingRegistry(), CuttingRegistry()
        image = BigImage((1000,))
        origin.add("test/img", "1", image)
        host = self.listen(origin)
        mirror_host = self.listen(mirror)
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            dead = s.getsockname()[1]
        service = self.service(mirrors=[f"http://127.0.0.1:{dead}", f"http://{mirror_host}"])
        await self.pull(service, f"{host}/test/img:1", [])
        self.assertEqual(self.store.resolve(f"{host}/test/img:1").id, image.id)
        self.assertEqual(mirror.gets, [])
        self.assertTrue(origin.gets)
