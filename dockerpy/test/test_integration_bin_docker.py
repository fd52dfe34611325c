"""dockerpy's own bin/docker driving a real daemon (the client's other tests
use a recording fake engine; these prove it against the real thing)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from dockerpy.test.daemon_fixture import REPO, DaemonTestCase

BIN_DOCKER = os.path.join(REPO, "bin", "docker")


class BinDockerTests(DaemonTestCase):
    def setUp(self):
        self.daemon = self.start_daemon()

    def bd(self, *args, input: bytes | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, BIN_DOCKER, *args], input=input,
                              capture_output=True, env=self.daemon.env, timeout=120)

    def test_run_output_stdin_and_exit_codes(self):
        r = self.bd("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 5")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (5, b"out\n", b"err\n"))
        r = self.bd("run", "--rm", "-i", "busybox", "tr", "a-z", "A-Z", input=b"shout\n")
        self.assertEqual((r.returncode, r.stdout), (0, b"SHOUT\n"), r.stderr)
        r = self.bd("run", "--rm", "busybox", "nosuchcommand")
        self.assertEqual(r.returncode, 127, r.stderr)

    def test_detached_ps_logs_stop_rm(self):
        r = self.bd("run", "-d", "--name", "bd1", "busybox", "sh", "-c",
                    "echo hello; exec sleep 1000")
        self.assertEqual(r.returncode, 0, r.stderr)
        cid = r.stdout.decode().strip()
        ps = self.bd("ps", "--no-trunc", "-q").stdout.decode().split()
        self.assertEqual(ps, [cid])
        self.assertEqual(self.bd("stop", "-t", "0", "bd1").stdout, b"bd1\n")
        self.assertEqual(self.bd("logs", "bd1").stdout, b"hello\n")
        self.assertEqual(self.bd("inspect", "-f", "{{.State.ExitCode}}", "bd1").stdout,
                         b"137\n")
        self.assertEqual(self.bd("rm", "bd1").returncode, 0)
        r = self.bd("rm", "bd1")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"No such container: bd1", r.stderr)

    def test_cp_round_trip_and_save_load(self):
        self.assertEqual(self.bd("create", "--name", "bdcp", "busybox", "true").returncode, 0)
        with tempfile.TemporaryDirectory() as d:
            src = os.path.join(d, "f.txt")
            with open(src, "w") as f:
                f.write("content\n")
            self.assertEqual(self.bd("cp", src, "bdcp:/f.txt").returncode, 0)
            out = os.path.join(d, "back.txt")
            r = self.bd("cp", "bdcp:/f.txt", out)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(out) as f:
                self.assertEqual(f.read(), "content\n")
            archive = os.path.join(d, "img.tar")
            self.assertEqual(self.bd("save", "-o", archive, "busybox").returncode, 0)
            self.bd("rm", "bdcp")
            self.assertEqual(self.bd("rmi", "busybox").returncode, 0)
            r = self.bd("load", "-i", archive)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(b"Loaded image: busybox:latest", r.stdout)
        r = self.bd("run", "--rm", "busybox", "echo", "still works")
        self.assertEqual(r.stdout, b"still works\n")
