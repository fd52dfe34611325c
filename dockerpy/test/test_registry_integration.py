# -*- test-case-name: dockerpy.test.test_registry_integration -*-
"""Pull, push and login against Debian's ``docker-registry`` (the reference
distribution registry) on 127.0.0.1, driven by the real docker CLI and
docker-py through a dockerpy daemon.

``LocalRegistry`` runs the registry with a free port, a temporary storage
directory and an optional htpasswd file, and removes it all in cleanup;
never the packaged service.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time


from twisted.trial.unittest import SkipTest

from dockerpy.test.daemon_fixture import DaemonTestCase

REGISTRY = "/usr/bin/docker-registry"
HTPASSWD = "/usr/bin/htpasswd"


def registry_skip_reason() -> str | None:
    if not os.access(REGISTRY, os.X_OK):
        return "docker-registry is not installed (contrib/install.sh installs it)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalRegistry:
    def __init__(self, users: dict[str, str] | None = None):
        self.tmp = tempfile.mkdtemp(prefix="dpreg-", dir="/tmp")
        self.storage = os.path.join(self.tmp, "storage")
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.users = users or {}
        self.proc: subprocess.Popen | None = None

    def _config(self) -> str:
        auth = ""
        if self.users:
            path = os.path.join(self.tmp, "htpasswd")
            lines = []
            for user, password in self.users.items():
                out = subprocess.run([HTPASSWD, "-Bbn", user, password], check=True,
                                     capture_output=True).stdout.decode().strip()
                lines.append(out)
            with open(path, "w") as f:
                f.write("\n".join(lines) + "\n")
            auth = f"auth:\n  htpasswd:\n    realm: test-realm\n    path: {path}\n"
        return (
            "version: 0.1\n"
            "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.storage}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.host}\n"
            + auth)

    def start(self, timeout: float = 20) -> None:
        config = os.path.join(self.tmp, "config.yml")
        with open(config, "w") as f:
            f.write(self._config())
        with open(os.path.join(self.tmp, "log"), "ab") as log:
            self.proc = subprocess.Popen([REGISTRY, "serve", config], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, cwd=self.tmp)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"registry exited {self.proc.returncode}: {self.read_log()}")
            try:
                status, _, _ = self.request("GET", "/v2/")
                if status in (200, 401):
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("registry did not answer: " + self.read_log())

    def read_log(self) -> str:
        try:
            with open(os.path.join(self.tmp, "log"), errors="replace") as f:
                return f.read()[-5000:]
        except OSError:
            return ""

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict | None = None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def blob_path(self, digest: str) -> str:
        hex_ = digest.split(":", 1)[1]
        return os.path.join(self.storage, "docker", "registry", "v2", "blobs", "sha256",
                            hex_[:2], hex_, "data")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


class RegistryTestCase(DaemonTestCase):
    def start_registry(self, users: dict[str, str] | None = None) -> LocalRegistry:
        reason = registry_skip_reason()
        if reason:
            raise SkipTest(reason)
        reg = LocalRegistry(users)
        self.addCleanup(reg.destroy)
        reg.start()
        return reg

    def image_id(self, daemon, name: str) -> str:
        return daemon.cli("image", "inspect", "-f", "{{.Id}}", name,
                          check=True).stdout.decode().strip()


class CLIPushPullTests(RegistryTestCase):
    def test_push_remove_pull_run_round_trip(self):
        reg = self.start_registry()
        daemon = self.start_daemon(cli=True)
        name = f"{reg.host}/test/busybox:1"
        daemon.cli("tag", "busybox", name, check=True)
        original = self.image_id(daemon, name)
        pushed = daemon.cli("push", name, check=True).stdout.decode()
        self.assertIn(f"The push refers to repository [{reg.host}/test/busybox]", pushed)
        self.assertIn("Pushed", pushed)
        self.assertRegex(pushed, r"1: digest: sha256:[0-9a-f]{64} size: \d+")
        digest = pushed.split("digest: ")[1].split()[0]
        # The registry holds the manifest we reported.
        status, headers, _ = reg.request("HEAD", "/v2/test/busybox/manifests/1", headers={
            "Accept": "application/vnd.docker.distribution.manifest.v2+json"})
        self.assertEqual((status, headers.get("Docker-Content-Digest")), (200, digest))

        again = daemon.cli("push", name, check=True).stdout.decode()
        self.assertIn("Layer already exists", again)

        daemon.cli("rmi", name, "busybox", check=True)
        pulled = daemon.cli("pull", name, check=True).stdout.decode()
        self.assertIn("1: Pulling from test/busybox", pulled)
        self.assertIn("Pull complete", pulled)
        self.assertIn(f"Digest: {digest}", pulled)
        self.assertIn(f"Status: Downloaded newer image for {name}", pulled)
        self.assertEqual(self.image_id(daemon, name), original)
        repo_digests = daemon.cli("image", "inspect", "-f", "{{json .RepoDigests}}", name,
                                  check=True).stdout
        self.assertEqual(json.loads(repo_digests), [f"{reg.host}/test/busybox@{digest}"])

        up_to_date = daemon.cli("pull", name, check=True).stdout.decode()
        self.assertIn(f"Status: Image is up to date for {name}", up_to_date)

        by_digest = daemon.cli("pull", f"{reg.host}/test/busybox@{digest}", check=True)
        self.assertIn(f"Digest: {digest}", by_digest.stdout.decode())

        run = daemon.cli("run", "--rm", name, "echo", "pulled and running", check=True)
        self.assertEqual(run.stdout, b"pulled and running\n")

    def test_pull_missing_tag_fails_like_docker(self):
        reg = self.start_registry()
        daemon = self.start_daemon(cli=True, busybox=False)
        result = daemon.cli("pull", f"{reg.host}/test/busybox:nope")
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stderr.decode().strip(),
                         f"Error response from daemon: manifest for {reg.host}/test/busybox:nope "
                         "not found: manifest unknown: manifest unknown")

    def test_corrupted_blob_in_registry_is_detected(self):
        reg = self.start_registry()
        daemon = self.start_daemon(cli=True)
        name = f"{reg.host}/test/corrupt:1"
        daemon.cli("tag", "busybox", name, check=True)
        daemon.cli("push", name, check=True)
        _, _, body = reg.request("GET", "/v2/test/corrupt/manifests/1", headers={
            "Accept": "application/vnd.docker.distribution.manifest.v2+json"})
        layer = json.loads(body)["layers"][0]["digest"]
        with open(reg.blob_path(layer), "r+b") as f:
            f.seek(100)
            byte = f.read(1)
            f.seek(100)
            f.write(bytes([byte[0] ^ 0xFF]))
        daemon.cli("rmi", name, "busybox", check=True)
        result = daemon.cli("pull", name)
        self.assertEqual(result.returncode, 1)
        self.assertIn(f"filesystem layer verification failed for digest {layer}",
                      result.stderr.decode())
        self.assertEqual(daemon.cli("images", "-q").stdout, b"")


class DockerPyPushPullTests(RegistryTestCase):
    def test_docker_py_push_and_pull(self):
        import docker

        reg = self.start_registry()
        daemon = self.start_daemon(cli=False)
        client = docker.DockerClient(base_url=daemon.host, version="1.45")
        self.addCleanup(client.close)
        image = client.images.get("busybox")
        image.tag(f"{reg.host}/py/busybox", "2")
        lines = list(client.images.push(f"{reg.host}/py/busybox", "2", stream=True,
                                        decode=True))
        aux = [line["aux"] for line in lines if "aux" in line]
        self.assertEqual([a["Tag"] for a in aux], ["2"])
        self.assertFalse([line for line in lines if "error" in line], lines)
        client.images.remove(f"{reg.host}/py/busybox:2")
        client.images.remove("busybox")
        pulled = client.images.pull(f"{reg.host}/py/busybox", tag="2")
        self.assertEqual(pulled.id, image.id)
        self.assertEqual(pulled.attrs["RepoDigests"],
                         [f"{reg.host}/py/busybox@{aux[0]['Digest']}"])


class LoginTests(RegistryTestCase):
    def test_login_push_pull_with_basic_auth(self):
        reg = self.start_registry(users={"alice": "s3cret"})
        daemon = self.start_daemon(cli=True)
        name = f"{reg.host}/private/busybox:1"
        daemon.cli("tag", "busybox", name, check=True)
        denied = daemon.cli("push", name)
        self.assertEqual(denied.returncode, 1)
        bad = daemon.cli("login", "-u", "alice", "--password-stdin", reg.host, input=b"wrong\n")
        self.assertEqual(bad.returncode, 1)
        self.assertIn("401 Unauthorized", bad.stderr.decode())
        ok = daemon.cli("login", "-u", "alice", "--password-stdin", reg.host, input=b"s3cret\n")
        self.assertEqual(ok.returncode, 0, ok.stderr)
        self.assertIn("Login Succeeded", ok.stdout.decode())
        daemon.cli("push", name, check=True)
        daemon.cli("rmi", name, check=True)
        daemon.cli("pull", name, check=True)
        daemon.cli("logout", reg.host, check=True)
        daemon.cli("rmi", name, check=True)
        anonymous = daemon.cli("pull", name)
        self.assertEqual(anonymous.returncode, 1)
        self.assertIn("pull access denied", anonymous.stderr.decode())


class BinDockerTests(RegistryTestCase):
    def bd(self, daemon, *args, input: bytes | None = None) -> subprocess.CompletedProcess:
        return daemon.bin_docker(*args, input=input)

    def test_bin_docker_login_push_pull_logout(self):
        reg = self.start_registry(users={"bob": "pw"})
        daemon = self.start_daemon(cli=False)
        name = f"{reg.host}/bd/busybox"
        original = self.bd(daemon, "image", "inspect", "-f", "{{.Id}}", "busybox").stdout
        self.assertEqual(self.bd(daemon, "tag", "busybox", name).returncode, 0)
        login = self.bd(daemon, "login", "-u", "bob", "--password-stdin", reg.host,
                        input=b"pw\n")
        self.assertEqual(login.returncode, 0, login.stderr)
        self.assertEqual(login.stdout, b"Login Succeeded\n")
        with open(os.path.join(daemon.env["DOCKER_CONFIG"], "config.json")) as f:
            self.assertIn(reg.host, json.load(f)["auths"])
        pushed = self.bd(daemon, "push", name)
        self.assertEqual(pushed.returncode, 0, pushed.stderr)
        self.assertIn(b"Using default tag: latest", pushed.stdout)
        self.assertRegex(pushed.stdout.decode(), r"latest: digest: sha256:[0-9a-f]{64}")
        self.assertEqual(self.bd(daemon, "rmi", name, "busybox").returncode, 0)
        pulled = self.bd(daemon, "pull", name)
        self.assertEqual(pulled.returncode, 0, pulled.stderr)
        self.assertTrue(pulled.stdout.endswith(f"\n{name}:latest\n".encode()), pulled.stdout)
        self.assertIn(b"Pull complete", pulled.stdout)
        again = self.bd(daemon, "image", "inspect", "-f", "{{.Id}}", name).stdout
        self.assertEqual(again, original)
        logout = self.bd(daemon, "logout", reg.host)
        self.assertEqual(logout.stdout.decode(), f"Removing login credentials for {reg.host}\n")
        missing = self.bd(daemon, "pull", f"{reg.host}/bd/busybox:nope")
        self.assertEqual(missing.returncode, 1)
        self.assertIn(b"pull access denied", missing.stderr)
