"""The daemon as outside scripts use it: its socket, several daemons side by
side, daemon.json, and the vfs storage driver through the real docker CLI."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

from dockerpy.test.daemon_fixture import Daemon, DaemonTestCase
from dockerpy.test.test_integration_cli import FilesystemTests, RunTests


class SocketTests(DaemonTestCase):
    def test_socket_is_0660(self):
        daemon = self.start_daemon(busybox=False)
        self.assertEqual(stat.S_IMODE(os.stat(daemon.sock).st_mode), 0o660)

    def test_second_daemon_on_a_live_socket_is_refused_with_a_clear_message(self):
        first = self.start_daemon(busybox=False)
        second = Daemon()
        self.addCleanup(second.destroy)
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        r = subprocess.run([twistd, "-n", "--pidfile", "", "docker", "-H", first.host,
                            "--data-root", second.data_root, "--exec-root", second.exec_root],
                           capture_output=True, timeout=60, cwd=second.tmp)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"another daemon is already listening on " + first.host.encode(),
                      r.stdout + r.stderr)
        self.assertEqual(first.request("GET", "/_ping")[0], 200, "the first one still serves")

    def test_stale_socket_of_a_killed_daemon_is_replaced(self):
        daemon = self.start_daemon(busybox=False)
        daemon.kill9()
        self.assertTrue(os.path.exists(daemon.sock))
        daemon.start()
        self.assertEqual(daemon.request("GET", "/_ping")[0], 200)


class LogLevelTests(DaemonTestCase):
    def test_log_level_error_hides_the_engines_info_lines(self):
        quiet = self.start_daemon(busybox=False, extra_args=["--log-level", "error"])
        chatty = self.start_daemon(busybox=False)
        self.assertIn("dockerpy ready", chatty.read_log())
        self.assertNotIn("dockerpy ready", quiet.read_log())


class SideBySideTests(DaemonTestCase):
    def test_two_daemons_do_not_see_each_others_containers(self):
        a = self.start_daemon()
        b = self.start_daemon()
        for daemon, name in ((a, "on-a"), (b, "on-b")):
            r = daemon.cli("run", "-d", "--name", name, "busybox", "sleep", "1000")
            self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(a.cli("ps", "--format", "{{.Names}}").stdout, b"on-a\n")
        self.assertEqual(b.cli("ps", "--format", "{{.Names}}").stdout, b"on-b\n")
        for daemon, name in ((a, "on-a"), (b, "on-b")):
            self.assertEqual(daemon.cli("rm", "-f", name).returncode, 0)

    def test_daemon_json_sets_the_storage_driver(self):
        conf = Daemon()
        self.addCleanup(conf.destroy)
        path = os.path.join(conf.tmp, "daemon.json")
        with open(path, "w") as f:
            json.dump({"storage-driver": "vfs"}, f)
        daemon = self.start_daemon(extra_args=["--config-file", path], storage_driver=None,
                                   busybox=False)
        status, info = daemon.json("GET", "/info")
        self.assertEqual((status, info["Driver"]), (200, "vfs"))


class VfsRunTests(RunTests):
    """`docker run` on the vfs driver (plain copies: works on any kernel)."""

    storage_driver = "vfs"


class VfsFilesystemTests(FilesystemTests):
    storage_driver = "vfs"
