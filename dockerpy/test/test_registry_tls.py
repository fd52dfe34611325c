# -*- test-case-name: dockerpy.test.test_registry_tls -*-
"""TLS registries as Docker reaches them: Debian's ``docker-registry`` on
127.0.0.1 serving a test CA's certificate and requiring client certificates
(``http.tls.clientcas``); the CA and the client certificate come from a
temporary certs.d.  The pulls and pushes run through ``RegistryService``
in-process, into real image stores over the in-memory storage driver.
"""

from __future__ import annotations

import http.client
import io
import os
import shutil
import ssl
import tempfile

from twisted.internet import defer, reactor
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from dockerpy.errors import DockerError, InvalidParameter
from dockerpy.images.store import ImageStore
from dockerpy.registry.auth import AuthConfig
from dockerpy.registry.service import RegistryService
from dockerpy.registry.tls import host_certs
from dockerpy.test.fake_storage import FakeStorageDriver
from dockerpy.test.test_integration_tls import make_pki
from dockerpy.test.test_registry import FakeImage
from dockerpy.test.test_registry_integration import LocalRegistry, registry_skip_reason


class TLSRegistry(LocalRegistry):
    """``LocalRegistry`` over TLS, requiring a client certificate of the CA."""

    def __init__(self, pki: dict[str, str]):
        super().__init__()
        self.pki = pki

    def _config(self) -> str:
        return super()._config() + (
            "  tls:\n"
            f"    certificate: {self.pki['server_cert']}\n"
            f"    key: {self.pki['server_key']}\n"
            f"    clientcas:\n      - {self.pki['ca']}\n")

    def request(self, method, path, body=None, headers=None):
        context = ssl.create_default_context(cafile=self.pki["ca"])
        context.load_cert_chain(self.pki["client_cert"], self.pki["client_key"])
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=30,
                                           context=context)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()


class HostCertsTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir)
        self.pki = make_pki(self.dir)
        self.certs = os.path.join(self.dir, "certs.d")
        self.host = os.path.join(self.certs, "reg.example:5000")
        os.makedirs(self.host)

    def test_ca_and_client_pair_are_found_by_host_and_port(self):
        shutil.copy(self.pki["ca"], os.path.join(self.host, "ca.crt"))
        shutil.copy(self.pki["client_cert"], os.path.join(self.host, "client.cert"))
        shutil.copy(self.pki["client_key"], os.path.join(self.host, "client.key"))
        cas, client = host_certs(self.certs, "reg.example:5000")
        self.assertEqual([c.get_subject().CN for c in cas], ["dockerpy test CA"])
        self.assertEqual(client, (os.path.join(self.host, "client.cert"),
                                  os.path.join(self.host, "client.key")))
        self.assertEqual(host_certs(self.certs, "reg.example:5001"), ([], None))

    def test_client_cert_without_key_is_dockers_error(self):
        shutil.copy(self.pki["client_cert"], os.path.join(self.host, "client.cert"))
        e = self.assertRaises(InvalidParameter, host_certs, self.certs, "reg.example:5000")
        self.assertIn("missing key client.key for client certificate client.cert", e.message)


class TLSRegistryTests(unittest.TestCase):
    def setUp(self):
        reason = registry_skip_reason()
        if reason:
            raise unittest.SkipTest(reason)
        self.tmp = tempfile.mkdtemp(prefix="dpregtls-", dir="/tmp")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        pki_dir = os.path.join(self.tmp, "pki")
        os.makedirs(pki_dir)
        self.pki = make_pki(pki_dir)
        self.reg = TLSRegistry(self.pki)
        self.addCleanup(self.reg.destroy)
        self.reg.start()
        self.certs = os.path.join(self.tmp, "certs.d")
        self.host_dir = os.path.join(self.certs, self.reg.host)
        os.makedirs(self.host_dir)

    def install(self, ca: bool = True, client: bool = True) -> None:
        if ca:
            shutil.copy(self.pki["ca"], os.path.join(self.host_dir, "ca.crt"))
        if client:
            shutil.copy(self.pki["client_cert"], os.path.join(self.host_dir, "client.cert"))
            shutil.copy(self.pki["client_key"], os.path.join(self.host_dir, "client.key"))

    def service(self, name: str, **kwargs) -> RegistryService:
        root = os.path.join(self.tmp, name)
        store = ImageStore(os.path.join(root, "image"),
                           FakeStorageDriver(os.path.join(root, "storage")))
        service = RegistryService(reactor, deferToThread, store, os.path.join(root, "registry"),
                                  certs_dir=self.certs, **kwargs)
        self.addCleanup(service.close)
        return service

    def pull(self, service, name):
        return defer.ensureDeferred(service.pull(name, None, None, AuthConfig(), lambda m: None))

    async def push_image(self, service, name: str) -> FakeImage:
        image = FakeImage()
        await deferToThread(service.store.add_image, image.config,
                            [lambda: io.BytesIO(image.layer)], name)
        await defer.ensureDeferred(service.push(name, None, AuthConfig(), lambda m: None))
        return image

    async def test_push_and_pull_verified_through_certs_d_ca_and_client_cert(self):
        self.install()
        name = f"{self.reg.host}/tls/img:1"
        image = await self.push_image(self.service("a", loopback_insecure=False), name)
        other = self.service("b", loopback_insecure=False)
        await self.pull(other, name)
        self.assertEqual(other.store.resolve(name).id, image.id)

    async def test_untrusted_registry_fails_with_x509_error_naming_the_host(self):
        self.install(ca=False)
        with self.assertRaises(DockerError) as cm:
            await self.pull(self.service("a", loopback_insecure=False),
                            f"{self.reg.host}/tls/img:1")
        self.assertEqual(cm.exception.message,
                         f'Get "https://{self.reg.host}/v2/": tls: failed to verify '
                         "certificate: x509: certificate signed by unknown authority")

    async def test_registry_requiring_a_client_certificate_refuses_us_without_one(self):
        self.install(client=False)
        with self.assertRaises(DockerError) as cm:
            await self.pull(self.service("a", loopback_insecure=False),
                            f"{self.reg.host}/tls/img:1")
        self.assertIn(f'Get "https://{self.reg.host}/v2/": ', cm.exception.message)
        self.assertNotIn("x509", cm.exception.message)

    async def test_loopback_is_insecure_tls_yet_sends_the_client_certificate(self):
        # Docker's default 127.0.0.0/8: HTTPS tried first without verification.
        self.install(ca=False)
        name = f"{self.reg.host}/tls/img:2"
        image = await self.push_image(self.service("a"), name)
        other = self.service("b")
        await self.pull(other, name)
        self.assertEqual(other.store.resolve(name).id, image.id)
