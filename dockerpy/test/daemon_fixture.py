"""A real dockerpy daemon for integration tests.

Starts ``twistd -n docker`` on a temporary socket, data root and exec root
(under /tmp: unix socket paths must stay below ~107 bytes), imports a
busybox image made from Debian's busybox-static, and on stop checks and
cleans everything the daemon could have left behind: mounts, runtime
state, cgroups.  Needs root, runc and overlayfs: ``skip_reason()`` says
why a machine cannot run these tests.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from twisted.trial import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCKER_CLI = os.environ.get("DOCKERPY_TEST_CLI", "/usr/local/bin/docker")


def skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "integration tests need root"
    if not (shutil.which("runc") or shutil.which("crun")):
        return "no OCI runtime installed (contrib/install.sh installs runc and crun)"
    if not (os.path.exists("/bin/busybox") or os.path.exists("/usr/bin/busybox")):
        return "busybox-static is not installed (contrib/install.sh installs it)"
    return None


def cli_skip_reason() -> str | None:
    return skip_reason() or (None if os.access(DOCKER_CLI, os.X_OK)
                             else f"the docker CLI is not at {DOCKER_CLI}")


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 60):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def settled_listdir(path: str, timeout: float = 30.0) -> list[str]:
    """``os.listdir(path)`` once no ``.removing-*`` entry is left: a removal
    answers once its files are renamed away and deletes them just after."""
    deadline = time.monotonic() + timeout
    while True:
        names = os.listdir(path)
        if not any(n.startswith(".removing-") for n in names) or time.monotonic() > deadline:
            return names
        time.sleep(0.05)


def _mounts_under(prefix: str) -> list[str]:
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mnt = line.split()[4].replace("\\040", " ")
            if mnt == prefix or mnt.startswith(prefix + "/"):
                out.append(mnt)
    return out


class Daemon:
    def __init__(self, storage_driver: str | None = "overlay2", runtime: str | None = None,
                 extra_args: list[str] | None = None):
        self.storage_driver = storage_driver
        self.runtime = runtime
        self.extra_args = extra_args or []
        self.proc: subprocess.Popen | None = None
        self.tmp = tempfile.mkdtemp(prefix="dpt-", dir="/tmp")
        self.sock = os.path.join(self.tmp, "d.sock")
        self.data_root = os.path.join(self.tmp, "data")
        self.exec_root = os.path.join(self.tmp, "exec")
        self.log_path = os.path.join(self.tmp, "daemon.log")
        self.host = "unix://" + self.sock

    @property
    def env(self) -> dict:
        env = dict(os.environ)
        env["DOCKER_HOST"] = self.host
        env.pop("DOCKER_CONTEXT", None)
        env["DOCKER_CONFIG"] = os.path.join(self.tmp, "client-config")
        env["DOCKER_BUILDKIT"] = "0"
        return env

    def start(self, timeout: float = 30.0) -> None:
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        argv = [twistd, "-n", "--pidfile", os.path.join(self.tmp, "twistd.pid"),
                "--logfile", self.log_path, "docker", "-H", self.host,
                "--data-root", self.data_root, "--exec-root", self.exec_root] + self.extra_args
        if self.storage_driver:
            argv += ["--storage-driver", self.storage_driver]
        if self.runtime:
            argv += ["--default-runtime", self.runtime]
        env = dict(os.environ)
        env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
        with open(os.path.join(self.tmp, "stderr"), "ab") as err:
            self.proc = subprocess.Popen(argv, env=env, cwd=self.tmp, stdin=subprocess.DEVNULL,
                                         stdout=err, stderr=err)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n"
                                   + self.read_log())
            try:
                status, _, _ = self.request("GET", "/_ping")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("daemon did not answer in time:\n" + self.read_log())

    def read_log(self) -> str:
        text = ""
        for path in (os.path.join(self.tmp, "stderr"), self.log_path):
            try:
                with open(path, errors="replace") as f:
                    text += f.read()[-20000:]
            except OSError:
                pass
        return text

    def request(self, method: str, path: str, body=None, headers=None, timeout: float = 60):
        conn = UnixHTTPConnection(self.sock, timeout)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
                headers = dict(headers or {}, **{"Content-Type": "application/json"})
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, dict(resp.getheaders()), data
        finally:
            conn.close()

    def json(self, method: str, path: str, body=None):
        status, _, data = self.request(method, path, body)
        return status, (json.loads(data) if data.strip() else None)

    def import_busybox(self, ref: str = "busybox:latest") -> str:
        from dockerpy.tools.busybox_rootfs import rootfs_tar_bytes

        repo, _, tag = ref.partition(":")
        status, _, data = self.request(
            "POST", f"/images/create?fromSrc=-&repo={repo}&tag={tag or 'latest'}",
            rootfs_tar_bytes(), {"Content-Type": "application/x-tar"})
        if status != 200:
            raise RuntimeError(f"import failed: {status} {data!r}")
        return json.loads(data.splitlines()[-1])["status"]

    def cli(self, *args: str, input: bytes | None = None, timeout: float = 120,
            check: bool = False) -> subprocess.CompletedProcess:
        result = subprocess.run([DOCKER_CLI, *args], input=input, capture_output=True,
                                env=self.env, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} exited {result.returncode}: "
                                 f"{result.stderr.decode(errors='replace')}")
        return result

    def bin_docker(self, *args: str, input: bytes | None = None, env: dict | None = None,
                   timeout: float = 120) -> subprocess.CompletedProcess:
        """dockerpy's own client (this checkout's ``bin/docker``) against
        this daemon; ``env`` adds to the daemon's client environment."""
        return subprocess.run([sys.executable, os.path.join(REPO, "bin", "docker"), *args],
                              input=input, capture_output=True,
                              env={**self.env, **(env or {})}, timeout=timeout)

    def mounts(self) -> list[str]:
        return _mounts_under(self.tmp)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill9(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def _network_leaks(self) -> list[str]:
        """The bridge, veths and nft table a stopped daemon must have removed
        (named from its key: dockerpy.network), removed here if left."""
        from dockerpy.config import DaemonConfig
        from dockerpy.network.nft import table_name
        from dockerpy.network.service import bridge_name_for

        key = DaemonConfig(data_root=self.data_root).daemon_key
        leaks = []
        links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True,
                               text=True).stdout
        for line in links.splitlines():
            name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
            if name.startswith(bridge_name_for(key)) or name.startswith("v" + key[:6]):
                leaks.append(f"link {name}")
                subprocess.run(["ip", "link", "del", name], capture_output=True)
        tables = subprocess.run(["nft", "list", "tables"], capture_output=True,
                                text=True).stdout
        if f" {table_name(key)}" in tables:
            leaks.append(f"nft table {table_name(key)}")
            subprocess.run(["nft", "delete", "table", "ip", table_name(key)],
                           capture_output=True)
        return leaks

    def destroy(self) -> list[str]:
        """Stop and remove everything; :return: what was left behind (leaks)."""
        self.stop()
        leaks = [f"mount {m}" for m in self.mounts()]
        for runtime in ("runc", "crun"):
            state = os.path.join(self.exec_root, f"runtime-{runtime}")
            if os.path.isdir(state) and os.listdir(state):
                leaks.append(f"{runtime} state {os.listdir(state)}")
                for cid in os.listdir(state):
                    subprocess.run([runtime, "--root", state, "delete", "--force", cid],
                                   capture_output=True)
        from dockerpy.runtime.cgroups import cgroup_mountpoints, cgroup_parent_for, \
            remove_cgroup_parent

        parent = cgroup_parent_for(self.data_root).strip("/")
        for mountpoint in cgroup_mountpoints():
            if os.path.exists(os.path.join(mountpoint, parent)):
                leaks.append(f"cgroup {mountpoint}/{parent}")
                remove_cgroup_parent("/" + parent)
                break
        leaks += self._network_leaks()
        for m in sorted(self.mounts(), key=len, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        shutil.rmtree(self.tmp, ignore_errors=True)
        return leaks


class DaemonTestCase(unittest.TestCase):
    """A test that runs against its own real daemon, and fails if the
    daemon leaves a mount, runtime state or cgroup behind."""

    def start_daemon(self, cli: bool = False, busybox: bool = True, **kwargs) -> Daemon:
        reason = cli_skip_reason() if cli else skip_reason()
        if reason:
            raise unittest.SkipTest(reason)
        daemon = Daemon(**kwargs)
        self.addCleanup(self._destroy_daemon, daemon)
        daemon.start()
        if busybox:
            daemon.import_busybox()
        return daemon

    def _destroy_daemon(self, daemon: Daemon) -> None:
        leaks = daemon.destroy()
        if leaks:
            raise AssertionError(f"daemon left behind: {leaks}")


class CLIDaemonTestCase(DaemonTestCase):
    """Each test gets its own daemon (about a second to start), driven
    through the real docker CLI, so a test can neither see another's
    containers nor hide a leak."""

    storage_driver = "overlay2"

    def setUp(self):
        self.daemon = self.start_daemon(cli=True, storage_driver=self.storage_driver)

    def docker(self, *args, **kw):
        return self.daemon.cli(*args, **kw)

    def out(self, *args, **kw) -> str:
        return self.docker(*args, check=True, **kw).stdout.decode()
