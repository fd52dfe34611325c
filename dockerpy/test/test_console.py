# -*- test-case-name: dockerpy.test.test_console -*-
"""The console shim's exit codes, and window sizes on a real pty (unit:
no runtime, no root)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from twisted.trial import unittest

from dockerpy.runtime import console


class ShimTests(unittest.TestCase):
    def run_shim(self, script: str) -> int:
        tmp = tempfile.mkdtemp(prefix="shim-")
        self.addCleanup(shutil.rmtree, tmp, True)
        pid_file = os.path.join(tmp, "pid")
        # A "runtime" that detaches its child, writes its pid and exits 0.
        runtime = ["/bin/sh", "-c", f"({script}) & echo $! > {pid_file}"]
        return subprocess.run(console.shim_argv(pid_file, runtime), timeout=60).returncode

    def test_exit_code_of_the_adopted_process(self):
        self.assertEqual(self.run_shim("sleep 0.2; exit 5"), 5)

    def test_signalled_process_is_128_plus_signal(self):
        self.assertEqual(self.run_shim("sleep 0.2; kill -9 $(sh -c 'echo $PPID')"), 137)

    def test_failed_runtime_gives_its_own_code(self):
        tmp = tempfile.mkdtemp(prefix="shim-")
        self.addCleanup(shutil.rmtree, tmp, True)
        argv = console.shim_argv(os.path.join(tmp, "pid"), ["/bin/sh", "-c", "exit 3"])
        self.assertEqual(subprocess.run(argv, timeout=60).returncode, 3)


class WindowSizeTests(unittest.TestCase):
    def test_set_window_size_is_seen_on_the_slave(self):
        master, slave = os.openpty()
        self.addCleanup(os.close, master)
        self.addCleanup(os.close, slave)
        console.set_window_size(master, 33, 107)
        self.assertEqual(console.get_window_size(slave), (33, 107))

    def test_resize_of_a_transport_without_terminal_does_nothing(self):
        self.assertFalse(console.resize(object(), 1, 1))


class ConsoleSizeTests(unittest.TestCase):
    """The client's terminal size at create (``HostConfig.ConsoleSize``) is the
    size the runtime gives the container's terminal (no root: fake runtime)."""

    def bundle_spec(self, **body):
        import json
        import os

        from twisted.internet import defer

        from dockerpy.test.test_container_service import ServiceTestBase

        base = ServiceTestBase("run_")
        base.setUp()
        self.addCleanup(base.doCleanups)
        rec = base.create(**body)
        self.successResultOf(defer.ensureDeferred(base.svc.start(rec.id)))
        path = os.path.join(base.svc.exec_root, "containers", rec.id, "config.json")
        with open(path) as f:
            return json.load(f)["process"]

    def test_a_terminal_gets_the_clients_size(self):
        process = self.bundle_spec(Tty=True, HostConfig={"ConsoleSize": [33, 101]})
        self.assertEqual(process["consoleSize"], {"height": 33, "width": 101})

    def test_no_terminal_or_no_size_no_console_size(self):
        self.assertNotIn("consoleSize", self.bundle_spec(HostConfig={"ConsoleSize": [33, 101]}))
        self.assertNotIn("consoleSize", self.bundle_spec(Tty=True,
                                                         HostConfig={"ConsoleSize": [0, 0]}))
