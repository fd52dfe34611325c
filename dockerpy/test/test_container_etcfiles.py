# -*- test-case-name: dockerpy.test.test_container_etcfiles -*-
"""Tests for dockerpy.containers.etcfiles: /etc/hosts and resolv.conf as
Docker writes them, including the systemd-resolved stub and the embedded
DNS server of user-defined networks."""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from dockerpy.containers import etcfiles

STUB = "# systemd-resolved stub\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n"
RESOLVED = "nameserver 192.0.2.1\nnameserver 2001:db8::1\nsearch corp.example\n"


class HostFilesMixin:
    def host_files(self, host: str | None, resolved: str | None = None) -> tuple[str, str]:
        d = self.mktemp()
        os.makedirs(d)
        paths = []
        for name, text in (("resolv.conf", host), ("resolved.conf", resolved)):
            path = os.path.join(d, name)
            if text is not None:
                with open(path, "w") as f:
                    f.write(text)
            paths.append(path)
        return paths[0], paths[1]


class HostResolvTests(HostFilesMixin, SynchronousTestCase):
    def test_plain_host_file_is_used(self):
        host, resolved = self.host_files("nameserver 10.0.0.1\n", RESOLVED)
        self.assertEqual(etcfiles.host_resolv_text(host, resolved), "nameserver 10.0.0.1\n")
        self.assertEqual(etcfiles.host_upstreams(host, resolved), ["10.0.0.1"])

    def test_systemd_resolved_stub_reads_real_upstreams(self):
        host, resolved = self.host_files(STUB, RESOLVED)
        self.assertEqual(etcfiles.host_resolv_text(host, resolved), RESOLVED)
        self.assertEqual(etcfiles.host_upstreams(host, resolved), ["192.0.2.1", "2001:db8::1"])

    def test_any_loopback_only_host_reads_resolved(self):
        host, resolved = self.host_files("nameserver 127.0.1.1\nnameserver ::1\n", RESOLVED)
        self.assertEqual(etcfiles.host_upstreams(host, resolved), ["192.0.2.1", "2001:db8::1"])

    def test_mixed_host_file_drops_only_loopback(self):
        host, resolved = self.host_files("nameserver 127.0.0.53\nnameserver 10.0.0.2\n", RESOLVED)
        self.assertEqual(etcfiles.host_upstreams(host, resolved), ["10.0.0.2"])

    def test_stub_without_resolved_file_falls_back_to_default(self):
        host, resolved = self.host_files(STUB, None)
        self.assertEqual(etcfiles.host_upstreams(host, resolved), ["8.8.8.8", "8.8.4.4"])

    def test_resolved_file_with_only_loopback_falls_back_to_default(self):
        host, resolved = self.host_files(STUB, "nameserver 127.0.0.1\n")
        self.assertEqual(etcfiles.host_upstreams(host, resolved), ["8.8.8.8", "8.8.4.4"])

    def test_missing_host_file_falls_back_to_default(self):
        host, resolved = self.host_files(None, None)
        self.assertEqual(etcfiles.host_upstreams(host, resolved), ["8.8.8.8", "8.8.4.4"])


class ResolvConfTests(SynchronousTestCase):
    def test_bridge_drops_loopback_and_keeps_search_and_options(self):
        text = etcfiles.resolv_conf(
            "nameserver 127.0.0.53\nnameserver 10.0.0.1\nsearch a b\noptions rotate\n", [], [], [])
        self.assertEqual(text, "nameserver 10.0.0.1\nsearch a b\noptions rotate\n")

    def test_bridge_flags_override_host(self):
        text = etcfiles.resolv_conf("nameserver 10.0.0.1\nsearch a\noptions rotate\n",
                                    ["1.1.1.1"], ["x.example"], ["ndots:2"])
        self.assertEqual(text, "nameserver 1.1.1.1\nsearch x.example\noptions ndots:2\n")

    def test_bridge_loopback_only_gets_default(self):
        self.assertEqual(etcfiles.resolv_conf("nameserver 127.0.0.1\n", [], [], []),
                         "nameserver 8.8.8.8\nnameserver 8.8.4.4\n")

    def test_embedded_names_only_internal_server_with_ndots0(self):
        text = etcfiles.embedded_resolv_conf("nameserver 10.0.0.1\nsearch lan\n", [], [])
        self.assertEqual(text, "nameserver 127.0.0.11\nsearch lan\noptions ndots:0\n")

    def test_embedded_appends_ndots0_to_user_options(self):
        text = etcfiles.embedded_resolv_conf("nameserver 10.0.0.1\noptions rotate\n",
                                             ["x.example"], ["timeout:2", "attempts:3"])
        self.assertEqual(text, "nameserver 127.0.0.11\nsearch x.example\n"
                               "options timeout:2 attempts:3 ndots:0\n")

    def test_embedded_keeps_host_options_when_no_flag(self):
        text = etcfiles.embedded_resolv_conf("nameserver 10.0.0.1\noptions edns0\n", [], [])
        self.assertEqual(text, "nameserver 127.0.0.11\noptions edns0 ndots:0\n")

    def test_embedded_keeps_user_ndots(self):
        text = etcfiles.embedded_resolv_conf("", [], ["ndots:3"])
        self.assertEqual(text, "nameserver 127.0.0.11\noptions ndots:3\n")

    def test_embedded_search_dot_means_none(self):
        text = etcfiles.embedded_resolv_conf("search lan\n", ["."], [])
        self.assertEqual(text, "nameserver 127.0.0.11\noptions ndots:0\n")


class WriteTests(HostFilesMixin, SynchronousTestCase):
    def write(self, host_text: str, resolved_text: str | None = None, **kw) -> dict[str, str]:
        host, resolved = self.host_files(host_text, resolved_text)
        hosts_path = os.path.join(os.path.dirname(host), "hosts")
        with open(hosts_path, "w") as f:
            f.write("127.0.0.1 localhost myhost\n")
        cdir = self.mktemp()
        os.makedirs(cdir)
        args = dict(hostname="abc", domainname="", host_network=False, extra_hosts=[],
                    dns=[], dns_search=[], dns_options=[])
        args.update(kw)
        mounts = etcfiles.write(cdir, host_resolv_conf=host, resolved_resolv_conf=resolved,
                                host_hosts=hosts_path, **args)
        self.assertEqual([m["destination"] for m in mounts],
                         ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"])
        out = {}
        for m in mounts:
            with open(m["source"]) as f:
                out[m["destination"]] = f.read()
        return out

    def test_positional_signature_still_works(self):
        cdir = self.mktemp()
        os.makedirs(cdir)
        mounts = etcfiles.write(cdir, "abc", "", False, [], ["10.1.1.1"], [], [], address="172.17.0.2")
        with open(os.path.join(cdir, "resolv.conf")) as f:
            self.assertEqual(f.read(), "nameserver 10.1.1.1\n")
        self.assertEqual(len(mounts), 3)

    def test_bridge_container_uses_resolved_upstreams(self):
        files = self.write(STUB, RESOLVED, address="172.17.0.2")
        self.assertEqual(files["/etc/resolv.conf"],
                         "nameserver 192.0.2.1\nnameserver 2001:db8::1\nsearch corp.example\n")
        self.assertTrue(files["/etc/hosts"].endswith("172.17.0.2\tabc\n"))

    def test_user_network_container_uses_embedded_dns(self):
        files = self.write("nameserver 10.0.0.1\nsearch lan\n", address="172.18.0.2",
                           embedded_dns=True, extra_hosts=["db:10.9.9.9"])
        self.assertEqual(files["/etc/resolv.conf"],
                         "nameserver 127.0.0.11\nsearch lan\noptions ndots:0\n")
        self.assertIn("172.18.0.2\tabc\n", files["/etc/hosts"])
        self.assertTrue(files["/etc/hosts"].startswith(etcfiles.HOSTS_BASE))
        self.assertTrue(files["/etc/hosts"].endswith("10.9.9.9\tdb\n"))
        self.assertEqual(files["/etc/hostname"], "abc\n")

    def test_user_network_with_dns_flag_still_uses_embedded_dns(self):
        files = self.write("nameserver 10.0.0.1\n", address="172.18.0.2", embedded_dns=True,
                           dns=["1.1.1.1"], dns_search=["x.example"], dns_options=["rotate"])
        self.assertEqual(files["/etc/resolv.conf"],
                         "nameserver 127.0.0.11\nsearch x.example\noptions rotate ndots:0\n")

    def test_domainname_adds_fqdn_to_hosts(self):
        files = self.write("nameserver 10.0.0.1\n", address="172.18.0.2", domainname="example.org")
        self.assertIn("172.18.0.2\tabc.example.org abc\n", files["/etc/hosts"])

    def test_host_network_copies_host_files(self):
        files = self.write(STUB, RESOLVED, host_network=True, embedded_dns=False)
        self.assertEqual(files["/etc/resolv.conf"], STUB)
        self.assertEqual(files["/etc/hosts"], "127.0.0.1 localhost myhost\n")

    def test_files_are_world_readable(self):
        cdir = self.mktemp()
        os.makedirs(cdir)
        for m in etcfiles.write(cdir, "abc", "", False, [], [], [], []):
            self.assertEqual(os.stat(m["source"]).st_mode & 0o777, 0o644)
