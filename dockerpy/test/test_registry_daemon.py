# -*- test-case-name: dockerpy.test.test_registry_daemon -*-
"""Registry use through a real daemon (twistd) and the real docker CLI,
against Debian's ``docker-registry`` on 127.0.0.1: a TLS registry whose CA
and client certificate come from ``--registry-certs-dir``, pulls through
``--registry-mirror``, two concurrent pulls sharing one download, and a
daemon killed (SIGKILL) in the middle of a pull.  A ``CountingProxy`` in
front of the registry counts the blob requests and slows blob bodies down
where a test must act during a download.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time

from dockerpy.test.daemon_fixture import DOCKER_CLI
from dockerpy.test.test_integration_tls import make_pki
from dockerpy.test.test_registry_integration import RegistryTestCase, free_port
from dockerpy.test.test_registry_layers import CountingProxy
from dockerpy.test.test_registry_tls import TLSRegistry

BIG = 4 << 20


def random_layer_tar(size: int) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("blob.bin")
        info.size = size
        tar.addfile(info, io.BytesIO(os.urandom(size)))
        info = tarfile.TarInfo("hello.txt")
        info.size = 6
        tar.addfile(info, io.BytesIO(b"hello\n"))
    return out.getvalue()


class DaemonRegistryTestCase(RegistryTestCase):
    def proxy(self, reg) -> CountingProxy:
        proxy = CountingProxy(reg.port)
        self.addCleanup(proxy.close)
        return proxy

    def import_big(self, daemon, ref: str) -> str:
        repo, tag = ref.rsplit(":", 1)
        status, _, data = daemon.request(
            "POST", f"/images/create?fromSrc=-&repo={repo}&tag={tag}",
            random_layer_tar(BIG), {"Content-Type": "application/x-tar"}, timeout=120)
        self.assertEqual(status, 200, data)
        return self.image_id(daemon, ref)

    def big_image_behind_a_proxy(self, daemon):
        """A registry behind a counting proxy, holding the big image that
        ``daemon`` imported and pushed as ``<proxy>/big/img:1``.

        :return: (proxy, name, image id, the layer's digest)."""
        reg = self.start_registry()
        proxy = self.proxy(reg)
        name = f"{proxy.host}/big/img:1"
        original = self.import_big(daemon, name)
        daemon.cli("push", name, check=True)
        return proxy, name, original, self.layer_digest(reg, "big/img", "1")

    def layer_digest(self, reg, repo: str, tag: str) -> str:
        _, _, body = reg.request("GET", f"/v2/{repo}/manifests/{tag}", headers={
            "Accept": "application/vnd.docker.distribution.manifest.v2+json"})
        [layer] = json.loads(body)["layers"]
        return layer["digest"]

    def popen_pull(self, daemon, name: str) -> subprocess.Popen:
        proc = subprocess.Popen([DOCKER_CLI, "pull", name], env=daemon.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

        def reap() -> None:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
        self.addCleanup(reap)
        return proc

    def wait_for(self, predicate, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                self.fail(f"timed out waiting for {what}")
            time.sleep(0.02)


class TLSCertsDirTests(DaemonRegistryTestCase):
    def test_push_and_pull_through_a_registry_requiring_a_client_certificate(self):
        tmp = tempfile.mkdtemp(prefix="dpregd-", dir="/tmp")
        self.addCleanup(shutil.rmtree, tmp, True)
        pki = make_pki(tmp)
        reg = TLSRegistry(pki)
        self.addCleanup(reg.destroy)
        reg.start()
        certs = os.path.join(tmp, "certs.d")
        host_dir = os.path.join(certs, reg.host)
        os.makedirs(host_dir)
        daemon = self.start_daemon(cli=True, extra_args=["--registry-certs-dir", certs])
        name = f"{reg.host}/tls/busybox:1"
        daemon.cli("tag", "busybox", name, check=True)
        original = self.image_id(daemon, name)
        refused = daemon.cli("push", name)
        # Without the client certificate the handshake fails (and the plain
        # HTTP fallback Docker tries for a loopback registry is refused too).
        self.assertEqual(refused.returncode, 1, refused.stdout)
        self.assertIn(f'Get "https://{reg.host}/v2/": ', refused.stderr.decode())
        self.assertEqual(reg.request("GET", "/v2/tls/busybox/manifests/1")[0], 404)
        shutil.copy(pki["ca"], os.path.join(host_dir, "ca.crt"))
        shutil.copy(pki["client_cert"], os.path.join(host_dir, "client.cert"))
        shutil.copy(pki["client_key"], os.path.join(host_dir, "client.key"))
        daemon.cli("push", name, check=True)
        status, _, _ = reg.request("GET", "/v2/tls/busybox/manifests/1", headers={
            "Accept": "application/vnd.docker.distribution.manifest.v2+json"})
        self.assertEqual(status, 200)
        daemon.cli("rmi", name, "busybox", check=True)
        daemon.cli("pull", name, check=True)
        self.assertEqual(self.image_id(daemon, name), original)


class MirrorTests(DaemonRegistryTestCase):
    def test_pull_goes_to_the_mirror_first_and_needs_no_origin(self):
        mirror = self.start_registry()
        proxy = self.proxy(mirror)
        # The image only exists on the mirror; the origin does not even listen.
        pusher = self.start_daemon(cli=True)
        pusher.cli("tag", "busybox", f"{mirror.host}/team/app:1", check=True)
        original = self.image_id(pusher, "busybox")
        pusher.cli("push", f"{mirror.host}/team/app:1", check=True)
        origin = f"127.0.0.1:{free_port()}"
        daemon = self.start_daemon(cli=True, busybox=False,
                                   extra_args=["--registry-mirror", f"http://{proxy.host}"])
        pulled = daemon.cli("pull", f"{origin}/team/app:1", check=True).stdout.decode()
        self.assertIn(f"Status: Downloaded newer image for {origin}/team/app:1", pulled)
        self.assertEqual(self.image_id(daemon, f"{origin}/team/app:1"), original)
        self.assertEqual(proxy.count("GET", "/v2/team/app/manifests/1"), 1)
        self.assertEqual(proxy.count("GET", "/v2/team/app/blobs/"), 2)  # config and layer


class SharedDownloadTests(DaemonRegistryTestCase):
    def test_two_concurrent_pulls_of_an_image_share_one_download(self):
        daemon = self.start_daemon(cli=True, busybox=False)
        proxy, name, original, layer = self.big_image_behind_a_proxy(daemon)
        daemon.cli("rmi", name, check=True)
        proxy.reset()
        proxy.throttle = 0.05  # ~3 s for the layer
        first = self.popen_pull(daemon, name)
        self.wait_for(lambda: proxy.count("GET", layer), "the layer download")
        second = self.popen_pull(daemon, name)
        out1, err1 = first.communicate(timeout=120)
        out2, err2 = second.communicate(timeout=120)
        self.assertEqual((first.returncode, second.returncode), (0, 0), (err1, err2))
        # The second pull joined the running download rather than finding the
        # layer already in place.
        self.assertNotIn(b"Already exists", out2)
        self.assertIn(b"Pull complete", out2)
        self.assertEqual(proxy.count("GET", f"/blobs/{layer}"), 1, proxy.requests)
        self.assertEqual(self.image_id(daemon, name), original)


class KilledDaemonTests(DaemonRegistryTestCase):
    def test_sigkill_mid_pull_leaves_no_image_and_the_next_pull_resumes(self):
        pusher = self.start_daemon(cli=True, busybox=False)
        proxy, name, original, layer = self.big_image_behind_a_proxy(pusher)

        daemon = self.start_daemon(cli=True, busybox=False)
        partial = os.path.join(daemon.data_root, "registry", "tmp",
                               layer.split(":", 1)[1] + ".partial")
        proxy.throttle = 0.2  # ~13 s for the layer: killed long before the end
        pull = self.popen_pull(daemon, name)
        self.wait_for(lambda: os.path.exists(partial) and os.path.getsize(partial) >= 256 << 10,
                      "part of the layer on disk")
        daemon.kill9()
        pull.communicate(timeout=60)
        self.assertNotEqual(pull.returncode, 0)
        have = os.path.getsize(partial)
        self.assertLess(have, BIG)

        proxy.throttle = 0.0
        daemon.start()
        self.assertEqual(daemon.cli("images", "-q", check=True).stdout, b"")
        status, images = daemon.json("GET", "/images/json?all=1")
        self.assertEqual((status, images), (200, []))
        # Only the resumable partial file is left: no layer was registered.
        self.assertEqual(os.listdir(os.path.join(daemon.data_root, "registry", "tmp")),
                         [os.path.basename(partial)])
        proxy.reset()
        daemon.cli("pull", name, check=True)
        self.assertEqual(self.image_id(daemon, name), original)
        ranges = [r for p, r in proxy.ranges if layer in p]
        self.assertEqual(len(ranges), 1, proxy.ranges)
        self.assertGreater(int(ranges[0].split("=")[1].rstrip("-")), 0)
        self.assertFalse(os.path.exists(partial))
