# -*- test-case-name: dockerpy.test.test_registry -*-
"""Unit tests of the registry client: credentials, challenges, platform
selection, and pulls/logins against a small fake registry (a Klein app on
127.0.0.1) into a real ImageStore over the in-memory storage driver."""

from __future__ import annotations

import base64
import datetime
import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile

from klein import Klein
from twisted.internet import defer, reactor
from twisted.internet.threads import deferToThread
from twisted.trial import unittest
from twisted.web.server import Site

from dockerpy.errors import InvalidParameter, NotFound
from dockerpy.images.store import ImageStore
from dockerpy.registry import manifest as mf
from dockerpy.registry.auth import (AuthConfig, decode_auth_header, encode_auth_header,
                                    parse_challenges, registry_host)
from dockerpy.registry.client import Unauthorized, endpoint_for, error_message, is_insecure
from dockerpy.registry.service import RegistryService, gzip_file
from dockerpy.test.fake_storage import FakeStorageDriver


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


class FakeImage:
    """An image as a registry holds it: gzip layer, config, schema2 manifest."""

    def __init__(self, arch: str = "amd64", content: bytes = b"hello"):
        raw = layer_tar({"hello.txt": content, "arch": arch.encode()})
        self.layer = gzip.compress(raw, mtime=0)
        self.config = json.dumps({
            "architecture": arch, "os": "linux", "config": {"Cmd": ["/hello"]},
            "rootfs": {"type": "layers", "diff_ids": [sha(raw)]},
            "history": [{"created_by": "test"}]}).encode()
        self.manifest = mf.schema2_manifest(
            mf.Descriptor(mf.DOCKER_CONFIG, sha(self.config), len(self.config)),
            [mf.Descriptor(mf.DOCKER_LAYER_GZIP, sha(self.layer), len(self.layer))])
        self.id = sha(self.config)

    def blobs(self) -> dict[str, bytes]:
        return {sha(self.layer): self.layer, sha(self.config): self.config}


class FakeRegistry:
    """Just enough of the distribution API: manifests and blobs by GET/HEAD,
    and optional basic or bearer auth (with its own token endpoint)."""

    app = Klein()

    def __init__(self, auth: str = "", users: dict[str, str] | None = None):
        self.auth = auth
        self.users = users or {}
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, tuple[str, bytes]] = {}  # "repo:ref" -> (type, body)
        self.token_requests: list[dict] = []
        self.port = None

    def add(self, repo: str, tag: str, image: FakeImage) -> None:
        self.blobs.update(image.blobs())
        for ref in (tag, sha(image.manifest)):
            self.manifests[f"{repo}:{ref}"] = (mf.DOCKER_MANIFEST, image.manifest)

    def add_index(self, repo: str, tag: str, images: dict[str, FakeImage]) -> bytes:
        entries = []
        for arch, image in images.items():
            self.add(repo, "_" + arch, image)
            platform = {"architecture": arch, "os": "linux"}
            if arch == "arm64":
                platform["variant"] = "v8"
            entries.append({"mediaType": mf.DOCKER_MANIFEST, "digest": sha(image.manifest),
                            "size": len(image.manifest), "platform": platform})
        body = json.dumps({"schemaVersion": 2, "mediaType": mf.DOCKER_LIST,
                           "manifests": entries}).encode()
        for ref in (tag, sha(body)):
            self.manifests[f"{repo}:{ref}"] = (mf.DOCKER_LIST, body)
        return body

    def _user_ok(self, header: bytes | None) -> bool:
        if not header or not header.startswith(b"Basic "):
            return False
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return self.users.get(user) == password

    def _denied(self, request) -> bytes | None:
        header = request.getHeader(b"authorization")
        if self.auth == "basic" and not self._user_ok(header):
            request.setResponseCode(401)
            request.setHeader(b"www-authenticate", b'Basic realm="fake"')
            return json.dumps({"errors": [{"code": "UNAUTHORIZED",
                                           "message": "authentication required"}]}).encode()
        if self.auth == "bearer" and header != b"Bearer good-token":
            request.setResponseCode(401)
            realm = f"http://127.0.0.1:{self.port}/token"
            request.setHeader(b"www-authenticate",
                              f'Bearer realm="{realm}",service="fake"'.encode())
            return json.dumps({"errors": [{"code": "UNAUTHORIZED",
                                           "message": "authentication required"}]}).encode()
        return None

    @app.route("/token", methods=["GET"])
    def token(self, request):
        self.token_requests.append({k.decode(): v[0].decode() for k, v in request.args.items()})
        if self.users and not self._user_ok(request.getHeader(b"authorization")):
            request.setResponseCode(401)
            return json.dumps({"errors": [{"code": "UNAUTHORIZED",
                                           "message": "bad credentials"}]}).encode()
        return json.dumps({"token": "good-token"}).encode()

    @app.route("/v2/", methods=["GET"])
    def ping(self, request):
        return self._denied(request) or b"{}"

    @app.route("/v2/<path:repo>/manifests/<ref>", methods=["GET", "HEAD"])
    def manifest(self, request, repo, ref):
        denied = self._denied(request)
        if denied:
            return denied
        found = self.manifests.get(f"{repo}:{ref}")
        if found is None:
            request.setResponseCode(404)
            return json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN",
                                           "message": "manifest unknown"}]}).encode()
        request.setHeader(b"content-type", found[0].encode())
        return found[1]

    @app.route("/v2/<path:repo>/blobs/<digest>", methods=["GET", "HEAD"])
    def blob(self, request, repo, digest):
        denied = self._denied(request)
        if denied:
            return denied
        if digest not in self.blobs:
            request.setResponseCode(404)
            return json.dumps({"errors": [{"code": "BLOB_UNKNOWN",
                                           "message": "blob unknown"}]}).encode()
        return self.blobs[digest]


class PlainSite(Site):
    """A plain-HTTP site that drops a TLS handshake at once, as Go's HTTP
    server does (Twisted's would wait for a request line), so the client's
    HTTPS probe of an insecure registry fails fast."""

    def buildProtocol(self, addr):  # noqa: N802 (Twisted API)
        proto = super().buildProtocol(addr)
        original, make = proto.dataReceived, proto.makeConnection
        state: dict = {"first": True}

        def make_connection(transport) -> None:
            state["transport"] = transport
            make(transport)

        def data_received(data: bytes) -> None:
            if state["first"]:
                state["first"] = False
                if data[:1] == b"\x16":
                    state["transport"].loseConnection()
                    return
            original(data)
        proto.makeConnection = make_connection
        proto.dataReceived = data_received
        return proto


class AuthHeaderTests(unittest.SynchronousTestCase):
    def test_urlsafe_unpadded_header_decodes(self):
        raw = json.dumps({"username": "u", "password": "p?>", "serveraddress": "h:5000"})
        value = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
        self.assertEqual(decode_auth_header(value), AuthConfig("u", "p?>", "h:5000"))

    def test_auth_field_gives_username_and_password(self):
        raw = json.dumps({"auth": base64.b64encode(b"me:secret:x").decode()})
        auth = decode_auth_header(base64.b64encode(raw.encode()))
        self.assertEqual((auth.username, auth.password), ("me", "secret:x"))

    def test_empty_or_garbage_header_is_anonymous(self):
        for value in (None, "", "e30=", "%%%not base64"):
            self.assertTrue(decode_auth_header(value).anonymous, value)

    def test_identity_token_round_trips(self):
        auth = AuthConfig(identity_token="tok", server_address="r.example")
        self.assertEqual(decode_auth_header(encode_auth_header(auth)).identity_token, "tok")

    def test_server_address_spellings(self):
        self.assertEqual(registry_host("https://index.docker.io/v1/"), "docker.io")
        self.assertEqual(registry_host("http://127.0.0.1:5000/v2/"), "127.0.0.1:5000")
        self.assertEqual(registry_host("myreg:443"), "myreg:443")


class ChallengeTests(unittest.SynchronousTestCase):
    def test_bearer_challenge_parameters(self):
        [c] = parse_challenges('Bearer realm="https://auth.docker.io/token",'
                               'service="registry.docker.io",scope="repository:a/b:pull,push"')
        self.assertEqual(c.scheme, "bearer")
        self.assertEqual(c.params, {"realm": "https://auth.docker.io/token",
                                    "service": "registry.docker.io",
                                    "scope": "repository:a/b:pull,push"})

    def test_basic_challenge(self):
        [c] = parse_challenges('Basic realm="basic-realm"')
        self.assertEqual((c.scheme, c.params), ("basic", {"realm": "basic-realm"}))

    def test_error_body_is_worded_like_go_errcode(self):
        body = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}'
        self.assertEqual(error_message(body), ("manifest unknown: manifest unknown",
                                               "MANIFEST_UNKNOWN"))


class EndpointTests(unittest.SynchronousTestCase):
    def test_loopback_and_localhost_are_plain_http(self):
        self.assertEqual(endpoint_for("127.0.0.9:5000"), "http://127.0.0.9:5000")
        self.assertEqual(endpoint_for("localhost:5000"), "http://localhost:5000")
        self.assertEqual(endpoint_for("[::1]:5000"), "http://[::1]:5000")

    def test_other_hosts_use_tls_unless_configured(self):
        self.assertEqual(endpoint_for("reg.example:5000"), "https://reg.example:5000")
        self.assertEqual(endpoint_for("docker.io"), "https://registry-1.docker.io")
        self.assertTrue(is_insecure("reg.example:5000", ["reg.example:5000"]))
        self.assertTrue(is_insecure("10.1.2.3:5000", ["10.0.0.0/8"]))
        self.assertFalse(is_insecure("10.1.2.3:5000", ["192.168.0.0/16"]))


class PlatformTests(unittest.SynchronousTestCase):
    def index(self):
        return {"manifests": [
            {"digest": "sha256:" + "a" * 64, "size": 1, "mediaType": mf.DOCKER_MANIFEST,
             "platform": {"os": "linux", "architecture": "amd64"}},
            {"digest": "sha256:" + "b" * 64, "size": 1, "mediaType": mf.DOCKER_MANIFEST,
             "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            {"digest": "sha256:" + "c" * 64, "size": 1, "mediaType": mf.DOCKER_MANIFEST,
             "platform": {"os": "unknown", "architecture": "unknown"}}]}

    def test_host_default_picks_amd64(self):
        want = mf.parse_platform(None, "amd64")
        self.assertEqual(mf.select_manifest(self.index(), want).digest, "sha256:" + "a" * 64)

    def test_arm64_without_variant_matches_v8(self):
        want = mf.parse_platform("linux/arm64", "amd64")
        self.assertEqual(mf.select_manifest(self.index(), want).digest, "sha256:" + "b" * 64)

    def test_no_matching_platform_is_not_found(self):
        want = mf.parse_platform("linux/s390x", "amd64")
        e = self.assertRaises(NotFound, mf.select_manifest, self.index(), want)
        self.assertIn("no matching manifest for linux/s390x", e.message)

    def test_bad_platform_spec(self):
        self.assertRaises(InvalidParameter, mf.parse_platform, "linux//x", "amd64")

    def test_schema1_is_refused_with_dockers_message(self):
        e = self.assertRaises(InvalidParameter, mf.detect_media_type,
                              b'{"schemaVersion": 1}', "")
        self.assertIn("schema 1 support has been removed", e.message)


class GzipTests(unittest.SynchronousTestCase):
    def test_gzip_is_deterministic_and_digest_matches(self):
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        src = os.path.join(tmp, "layer.tar")
        with open(src, "wb") as f:
            f.write(layer_tar({"a": b"x" * 5000}))
        p1, d1, s1 = gzip_file(src, tmp)
        p2, d2, _ = gzip_file(src, tmp)
        with open(p1, "rb") as f:
            data = f.read()
        self.assertEqual((d1, s1), (sha(data), len(data)))
        self.assertEqual(d1, d2)
        with open(src, "rb") as f:
            self.assertEqual(gzip.decompress(data), f.read())


class PullTests(unittest.TestCase):
    """Pulls over loopback HTTP from FakeRegistry into a real ImageStore."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.store = ImageStore(os.path.join(self.tmp, "image"),
                                FakeStorageDriver(os.path.join(self.tmp, "storage")))
        self.messages: list[dict] = []

    def start(self, registry: FakeRegistry) -> str:
        port = reactor.listenTCP(0, PlainSite(registry.app.resource()), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        registry.port = port.getHost().port
        self.service = RegistryService(reactor, deferToThread, self.store,
                                       os.path.join(self.tmp, "registry"))
        self.addCleanup(self.service.close)
        return f"127.0.0.1:{registry.port}"

    def pull(self, name, tag=None, platform=None, auth=AuthConfig()):
        return defer.ensureDeferred(
            self.service.pull(name, tag, platform, auth, self.messages.append))

    def statuses(self) -> list[str]:
        return [m.get("status", "") for m in self.messages]

    async def test_pull_stores_image_with_tag_and_repo_digest(self):
        reg = FakeRegistry()
        image = FakeImage()
        reg.add("test/img", "1", image)
        host = self.start(reg)
        result = await self.pull(f"{host}/test/img", "1")
        self.assertEqual(result["id"], image.id)
        stored = self.store.resolve(f"{host}/test/img:1")
        self.assertEqual(stored.id, image.id)
        self.assertEqual(stored.repo_digests, (f"{host}/test/img@{sha(image.manifest)}",))
        self.assertEqual(self.statuses()[0], "Pulling from test/img")
        self.assertIn("Download complete", self.statuses())
        self.assertEqual(self.statuses()[-1],
                         f"Status: Downloaded newer image for {host}/test/img:1")
        self.assertEqual(os.listdir(self.service.tmp), [])
        self.messages.clear()
        await self.pull(f"{host}/test/img:1")
        self.assertIn("Already exists", self.statuses())
        self.assertEqual(self.statuses()[-1], f"Status: Image is up to date for {host}/test/img:1")

    async def test_pulled_blob_is_kept_and_pushed_back_as_it_is(self):
        reg = FakeRegistry()
        image = FakeImage()
        reg.add("test/img", "1", image)
        host = self.start(reg)
        await self.pull(f"{host}/test/img", "1")
        self.assertIn("Pull complete", self.statuses())
        stored = self.store.resolve(f"{host}/test/img:1")
        layer = self.store.layer(stored.layers[0])
        path, kind = self.store.layer_blob(layer)
        self.assertEqual(kind, "gzip")
        with open(path, "rb") as f:
            self.assertEqual(f.read(), image.layer)
        # The download's file is gone; the layer holds the only link.
        self.assertEqual(os.listdir(self.service.tmp), [])
        self.assertEqual(os.stat(path).st_nlink, 1)
        pushed, digest, size, temporary = self.service._push_blob(layer)
        self.assertEqual((pushed, digest, size, temporary),
                         (path, sha(image.layer), len(image.layer), False))

    async def test_layer_without_a_gzip_blob_is_compressed_for_push(self):
        self.start(FakeRegistry())
        raw = layer_tar({"plain": b"x" * 3000})
        image = self.store.import_tar(io.BytesIO(raw), None, [], "", datetime.datetime.now(
            datetime.timezone.utc))
        layer = self.store.layer(image.layers[0])
        self.assertIsNone(self.store.layer_blob(layer)[1])
        pushed, digest, size, temporary = self.service._push_blob(layer)
        self.addCleanup(os.unlink, pushed)
        self.assertTrue(temporary)
        with open(pushed, "rb") as f:
            data = f.read()
        self.assertEqual((digest, size), (sha(data), len(data)))
        self.assertEqual(gzip.decompress(data), raw)

    async def test_pull_by_digest(self):
        reg = FakeRegistry()
        image = FakeImage()
        reg.add("test/img", "1", image)
        host = self.start(reg)
        await self.pull(f"{host}/test/img", sha(image.manifest))
        self.assertEqual(self.store.resolve(f"{host}/test/img@{sha(image.manifest)}").id,
                         image.id)

    async def test_manifest_list_picks_requested_platform(self):
        reg = FakeRegistry()
        images = {"amd64": FakeImage("amd64"), "arm64": FakeImage("arm64", b"other")}
        index = reg.add_index("test/multi", "latest", images)
        host = self.start(reg)
        await self.pull(f"{host}/test/multi", "latest", "linux/arm64")
        stored = self.store.resolve(f"{host}/test/multi:latest")
        self.assertEqual(stored.id, images["arm64"].id)
        self.assertEqual(stored.repo_digests, (f"{host}/test/multi@{sha(index)}",))
        await self.pull(f"{host}/test/multi", "latest", "linux/amd64")
        self.assertEqual(self.store.resolve(f"{host}/test/multi:latest").id,
                         images["amd64"].id)

    async def test_corrupted_blob_fails_and_stores_nothing(self):
        reg = FakeRegistry()
        image = FakeImage()
        reg.add("test/img", "1", image)
        reg.blobs[sha(image.layer)] = image.layer[:-1] + bytes([image.layer[-1] ^ 1])
        host = self.start(reg)
        with self.assertRaises(InvalidParameter) as cm:
            await self.pull(f"{host}/test/img", "1")
        self.assertEqual(cm.exception.message, "filesystem layer verification failed for "
                         f"digest {sha(image.layer)}")
        self.assertEqual(self.store.images(), [])
        self.assertEqual(os.listdir(self.service.tmp), [])

    async def test_missing_tag_is_dockers_not_found(self):
        reg = FakeRegistry()
        host = self.start(reg)
        with self.assertRaises(NotFound) as cm:
            await self.pull(f"{host}/test/img", "nope")
        self.assertEqual(cm.exception.message, f"manifest for {host}/test/img:nope not found: "
                         "manifest unknown: manifest unknown")
        self.assertEqual(self.messages, [])

    async def test_bearer_token_flow_sends_scope_and_credentials(self):
        reg = FakeRegistry("bearer", {"me": "pw"})
        image = FakeImage()
        reg.add("test/img", "1", image)
        host = self.start(reg)
        await self.pull(f"{host}/test/img", "1", auth=AuthConfig("me", "pw"))
        self.assertEqual(self.store.resolve(f"{host}/test/img:1").id, image.id)
        self.assertEqual(reg.token_requests, [{"service": "fake",
                                               "scope": "repository:test/img:pull"}])

    async def test_bearer_with_bad_credentials_is_pull_access_denied(self):
        reg = FakeRegistry("bearer", {"me": "pw"})
        host = self.start(reg)
        with self.assertRaises(NotFound) as cm:
            await self.pull(f"{host}/test/img", "1", auth=AuthConfig("me", "wrong"))
        self.assertTrue(cm.exception.message.startswith(
            f"pull access denied for {host}/test/img, repository does not exist or may "
            "require 'docker login'"), cm.exception.message)

    async def test_basic_auth_pull_and_anonymous_denied(self):
        reg = FakeRegistry("basic", {"me": "pw"})
        image = FakeImage()
        reg.add("test/img", "1", image)
        host = self.start(reg)
        with self.assertRaises(NotFound) as cm:
            await self.pull(f"{host}/test/img", "1")
        self.assertIn("pull access denied", cm.exception.message)
        await self.pull(f"{host}/test/img", "1", auth=AuthConfig("me", "pw"))
        self.assertEqual(self.store.resolve(f"{host}/test/img:1").id, image.id)

    async def test_login_checks_basic_credentials(self):
        reg = FakeRegistry("basic", {"me": "pw"})
        host = self.start(reg)
        ok = await defer.ensureDeferred(self.service.login(AuthConfig("me", "pw", host)))
        self.assertEqual(ok["Status"], "Login Succeeded")
        with self.assertRaises(Unauthorized) as cm:
            await defer.ensureDeferred(self.service.login(AuthConfig("me", "no", host)))
        self.assertEqual(cm.exception.message, f"login attempt to http://{host}/v2/ failed "
                         "with status: 401 Unauthorized")

    async def test_login_checks_bearer_credentials(self):
        reg = FakeRegistry("bearer", {"me": "pw"})
        host = self.start(reg)
        ok = await defer.ensureDeferred(self.service.login(AuthConfig("me", "pw", host)))
        self.assertEqual(ok["Status"], "Login Succeeded")
        with self.assertRaises(Unauthorized):
            await defer.ensureDeferred(self.service.login(AuthConfig("me", "no", host)))

    async def test_unreachable_registry_names_host(self):
        reg = FakeRegistry()
        host = self.start(reg)
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            dead_port = s.getsockname()[1]
        dead = f"127.0.0.1:{dead_port}"
        with self.assertRaises(Exception) as cm:
            await self.pull(f"{dead}/x", "1")
        self.assertIn(f'"http://{dead}/v2/": dial tcp {dead}: connect: connection refused',
                      str(cm.exception))
        del host

    async def test_distribution_reports_platforms(self):
        reg = FakeRegistry()
        images = {"amd64": FakeImage("amd64"), "arm64": FakeImage("arm64", b"other")}
        index = reg.add_index("test/multi", "latest", images)
        host = self.start(reg)
        info = await defer.ensureDeferred(
            self.service.distribution(f"{host}/test/multi", AuthConfig()))
        self.assertEqual(info["Descriptor"]["digest"], sha(index))
        self.assertEqual([p["architecture"] for p in info["Platforms"]], ["amd64", "arm64"])
