# -*- test-case-name: dockerpy.test.test_network_netns -*-
"""Namespaces made and entered by one thread (root): the thread always comes
back home, a failed body leaves nothing, and removal unbinds the file."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from dockerpy.network import netns


def _mounted(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


class NetnsTests(SynchronousTestCase):
    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("needs root")
        self.dir = tempfile.mkdtemp(prefix="dpt-netns-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.path = os.path.join(self.dir, "ns")
        self.addCleanup(netns.remove, self.path)

    def test_created_namespace_is_bound_and_the_thread_comes_home(self):
        home = netns.ns_id()
        with netns.created(self.path):
            inside = netns.ns_id()
            links = [name for _, name in socket.if_nameindex()]
        self.assertNotEqual(inside, home)
        self.assertEqual(netns.ns_id(), home)
        self.assertEqual(netns.ns_id(self.path), inside)
        self.assertEqual(links, ["lo"])
        self.assertTrue(_mounted(self.path))
        with netns.entered(self.path):
            self.assertEqual(netns.ns_id(), inside)
            # A socket made inside stays there: its port is free at home.
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
        self.addCleanup(s.close)
        self.assertEqual(netns.ns_id(), home)
        with socket.socket() as other:
            other.bind(("127.0.0.1", s.getsockname()[1]))

    def test_a_failed_body_removes_the_namespace(self):
        with self.assertRaises(ZeroDivisionError):
            with netns.created(self.path):
                1 / 0
        self.assertFalse(os.path.exists(self.path))
        self.assertFalse(_mounted(self.path))

    def test_remove_unbinds_and_deletes_and_tolerates_absence(self):
        with netns.created(self.path):
            pass
        netns.remove(self.path)
        self.assertFalse(os.path.exists(self.path))
        self.assertFalse(_mounted(self.path))
        netns.remove(self.path)

    def test_a_failed_return_is_reported_as_a_poisoned_thread(self):
        with netns.created(self.path):
            pass
        real = netns.setns
        calls = []

        def fail_second(fd):
            calls.append(fd)
            if len(calls) == 2:
                raise OSError(1, "Operation not permitted")
            real(fd)

        self.patch(netns, "setns", fail_second)
        home = os.open(netns.THREAD_NS, os.O_RDONLY)
        self.addCleanup(os.close, home)
        try:
            with self.assertRaises(netns.PoisonedThread):
                with netns.entered(self.path):
                    pass
        finally:
            real(home)  # this test's thread is the trial thread: go home by hand
