"""Daemon options, daemon.json merging and listening addresses (no root)."""

from __future__ import annotations

import json
import os
import socket

from twisted.python import usage
from twisted.trial import unittest

from dockerpy import tap


def parse(*argv):
    opts = tap.Options()
    opts.parseOptions(list(argv))
    return opts.config


class OptionsTests(unittest.TestCase):
    def test_defaults_match_the_contract(self):
        conf = parse()
        self.assertEqual(conf.hosts, ["unix:///var/run/docker.sock"])
        self.assertEqual((conf.data_root, conf.exec_root), ("/var/lib/dockerpy", "/run/dockerpy"))
        self.assertEqual(conf.storage_driver, "overlay2")

    def test_insecure_registries_from_flags_or_daemon_json(self):
        conf = parse("--insecure-registry", "10.0.0.0/8", "--insecure-registry", "reg:5000")
        self.assertEqual(conf.insecure_registries, ["10.0.0.0/8", "reg:5000"])
        path = self.mktemp()
        with open(path, "w") as f:
            json.dump({"insecure-registries": ["reg:5001"]}, f)
        self.assertEqual(parse("--config-file", path).insecure_registries, ["reg:5001"])

    def test_several_hosts(self):
        conf = parse("-H", "unix:///tmp/a.sock", "--host", "unix:///tmp/b.sock")
        self.assertEqual(conf.hosts, ["unix:///tmp/a.sock", "unix:///tmp/b.sock"])

    def test_plain_tcp_is_refused_without_the_insecure_flag(self):
        e = self.assertRaises(usage.UsageError, parse, "-H", "tcp://127.0.0.1:2375")
        self.assertIn("without TLS", str(e))
        conf = parse("-H", "tcp://127.0.0.1:2375", "--insecure-tcp-without-tls")
        self.assertEqual(conf.hosts, ["tcp://127.0.0.1:2375"])

    def test_tlsverify_needs_ca(self):
        self.assertRaises(usage.UsageError, parse, "--tlsverify", "--tlscert", "c", "--tlskey", "k")

    def test_unknown_log_level_is_refused_with_dockerds_words(self):
        e = self.assertRaises(usage.UsageError, parse, "--log-level", "chatty")
        self.assertEqual(str(e), "unable to parse logging level: chatty")
        self.assertEqual(parse("-l", "debug").log_level, "debug")

    def test_unknown_storage_driver_is_refused(self):
        self.assertRaises(usage.UsageError, parse, "--storage-driver", "aufs")

    def test_daemon_json_fills_unset_fields(self):
        path = self.mktemp()
        with open(path, "w") as f:
            json.dump({"storage-driver": "vfs", "data-root": "/tmp/x", "unknown-key": 1}, f)
        conf = parse("--config-file", path)
        self.assertEqual((conf.storage_driver, conf.data_root), ("vfs", "/tmp/x"))

    def test_daemon_json_conflicting_with_a_flag_is_refused(self):
        path = self.mktemp()
        with open(path, "w") as f:
            json.dump({"storage-driver": "vfs"}, f)
        opts = tap.Options()
        self.patch(tap.sys, "argv", ["twistd", "docker", "--storage-driver", "overlay2",
                                     "--config-file", path])
        e = self.assertRaises(usage.UsageError, opts.parseOptions,
                              ["--storage-driver", "overlay2", "--config-file", path])
        self.assertIn("both as a flag and in the configuration file", str(e))

    def test_short_flag_conflicting_with_daemon_json_is_refused(self):
        path = self.mktemp()
        with open(path, "w") as f:
            json.dump({"storage-driver": "vfs"}, f)
        argv = ["-s", "overlay2", "--config-file", path]
        self.patch(tap.sys, "argv", ["twistd", "docker"] + argv)
        self.assertRaises(usage.UsageError, tap.Options().parseOptions, argv)

    def test_daemons_with_different_roots_get_different_cgroup_parents(self):
        a = parse("--data-root", "/tmp/a").cgroup_parent_path
        b = parse("--data-root", "/tmp/b").cgroup_parent_path
        self.assertNotEqual(a, b)
        self.assertTrue(a.startswith("/dockerpy-"))


class ListenTests(unittest.TestCase):
    def test_live_socket_is_refused_with_a_clear_message(self):
        path = os.path.join(self.mktemp() + "d")
        os.makedirs(path)
        sock_path = os.path.join(path, "s.sock")
        s = socket.socket(socket.AF_UNIX)
        s.bind(sock_path)
        s.listen(1)
        self.addCleanup(s.close)
        e = self.assertRaises(usage.UsageError, tap.unix_endpoint, None, sock_path)
        self.assertIn("already listening", str(e))

    def test_stale_socket_is_replaced(self):
        path = os.path.join(self.mktemp() + "d")
        os.makedirs(path)
        sock_path = os.path.join(path, "s.sock")
        s = socket.socket(socket.AF_UNIX)
        s.bind(sock_path)
        s.close()  # bound, never listening: nobody answers
        tap.unix_endpoint(None, sock_path)
        self.assertFalse(os.path.exists(sock_path))

    def test_unix_endpoint_mode_is_0660(self):
        path = os.path.join(self.mktemp() + "d")
        os.makedirs(path)
        ep = tap.unix_endpoint(None, os.path.join(path, "s.sock"))
        self.assertEqual(ep._mode, 0o660)
