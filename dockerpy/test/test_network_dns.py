# -*- test-case-name: dockerpy.test.test_network_dns -*-
"""Tests for dockerpy.network.dns: the embedded DNS server, served in real
throwaway network namespaces (root) and queried from inside them, with a fake
upstream server on the host's loopback."""

from __future__ import annotations

import json
import os
import shutil
import sys

from twisted.internet import defer, reactor, threads, utils
from twisted.names import common, dns, error, server
from twisted.trial.unittest import SkipTest, TestCase

from dockerpy import errors
from dockerpy.network import dns as edns, netns

IP = shutil.which("ip") or "/usr/sbin/ip"
BUSYBOX = "/usr/bin/busybox"

# Runs inside the namespace: one query to 127.0.0.11 over UDP or TCP,
# printed as JSON.
QUERY = r"""
import json, socket, struct, sys
from twisted.names import dns
name, qtype, proto = sys.argv[1:4]
m = dns.Message(id=4242, recDes=1)
m.queries = [dns.Query(name, getattr(dns, qtype), dns.IN)]
data = m.toStr()
if proto == "udp":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(10)
    s.sendto(data, ("127.0.0.11", 53))
    reply = s.recv(65535)
else:
    s = socket.create_connection(("127.0.0.11", 53), timeout=10)
    s.sendall(struct.pack("!H", len(data)) + data)
    def recvall(n):
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                raise SystemExit("short read")
            buf += chunk
        return buf
    reply = recvall(struct.unpack("!H", recvall(2))[0])
r = dns.Message()
r.fromStr(reply)
def value(a):
    if a.type == dns.A:
        return a.payload.dottedQuad()
    return a.payload.name.name.decode()
print(json.dumps({"id": r.id, "rcode": r.rCode, "ra": r.recAv, "answers": [
    [dns.QUERY_TYPES.get(a.type), a.ttl, value(a)] for a in r.answers]}))
"""

NAMES = {"c1": {"web": ["172.18.0.5"], "db-alias": ["172.18.0.6"], "abcdef123456": ["172.18.0.5"]}}
REVERSE = {"c1": {"172.18.0.5": "web.mynet"}}


class FakeUpstream(common.ResolverBase):
    """Knows one name; anything else does not exist."""

    def __init__(self):
        super().__init__()
        self.asked: list[bytes] = []

    def _lookup(self, name, cls, type, timeout):
        self.asked.append(name)
        if name == b"upstream.test" and type == dns.A:
            rr = dns.RRHeader(name=name, type=dns.A, ttl=30, payload=dns.Record_A("192.0.2.7", 30))
            return defer.succeed(([rr], [], []))
        if name == b"upstream.test":
            return defer.succeed(([], [], []))  # the name exists, without this type
        return defer.fail(error.DomainError(name))


async def run(*argv: str) -> str:
    out, err, code = await utils.getProcessOutputAndValue(argv[0], argv[1:], env=dict(os.environ))
    if code != 0:
        raise RuntimeError(f"{argv} exited {code}: {err.decode(errors='replace')}")
    return out.decode()


class EmbeddedDNSTests(TestCase):
    def setUp(self):
        if os.geteuid() != 0:
            raise SkipTest("needs root for network namespaces")
        self.upstream_resolver = FakeUpstream()
        factory = server.DNSServerFactory(authorities=[self.upstream_resolver])
        port = reactor.listenUDP(0, dns.DNSDatagramProtocol(factory, reactor=reactor),
                                 interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.upstream = [("127.0.0.1", port.getHost().port)]
        self.lookups: list[tuple[str, str]] = []

    def lookup(self, cid: str, name: str) -> list[str]:
        self.lookups.append((cid, name))
        return NAMES.get(cid, {}).get(name, [])

    def reverse(self, cid: str, ip: str) -> str | None:
        return REVERSE.get(cid, {}).get(ip)

    def make_server(self, upstream=None) -> edns.EmbeddedDNS:
        srv = edns.EmbeddedDNS(reactor, self.lookup, self.reverse,
                               self.upstream if upstream is None else upstream)
        self.addCleanup(lambda: defer.ensureDeferred(srv.close()))
        return srv

    async def make_netns(self) -> tuple[str, str]:
        name = f"dpytest-{os.urandom(4).hex()}"
        await run(IP, "netns", "add", name)
        self.addCleanup(lambda: defer.ensureDeferred(run(IP, "netns", "del", name)))
        await run(IP, "-n", name, "link", "set", "lo", "up")
        return name, f"/run/netns/{name}"

    async def served(self, cid: str = "c1", upstream=None) -> tuple[edns.EmbeddedDNS, str]:
        ns, path = await self.make_netns()
        srv = self.make_server(upstream)
        await srv.serve(cid, path)
        return srv, ns

    async def query(self, ns: str, name: str, qtype: str = "A", proto: str = "udp") -> dict:
        return json.loads(await run(IP, "netns", "exec", ns, sys.executable, "-c", QUERY,
                                    name, qtype, proto))

    async def test_container_name_resolves_to_lookup_address(self):
        srv, ns = await self.served()
        reply = await self.query(ns, "web")
        self.assertEqual(reply["rcode"], dns.OK)
        self.assertEqual(reply["id"], 4242)
        self.assertEqual(reply["ra"], 1)
        self.assertEqual(reply["answers"], [["A", 600, "172.18.0.5"]])
        self.assertIn(("c1", "web"), self.lookups)
        self.assertFalse(self.upstream_resolver.asked)

    async def test_alias_and_short_id_resolve_case_insensitively(self):
        srv, ns = await self.served()
        self.assertEqual((await self.query(ns, "DB-Alias."))["answers"], [["A", 600, "172.18.0.6"]])
        self.assertEqual((await self.query(ns, "abcdef123456"))["answers"],
                         [["A", 600, "172.18.0.5"]])

    async def test_names_are_looked_up_for_the_asking_container(self):
        srv, ns = await self.served(cid="other")
        reply = await self.query(ns, "web")
        self.assertEqual(reply["rcode"], dns.ENAME)  # forwarded: upstream does not know it
        self.assertIn(("other", "web"), self.lookups)
        self.assertEqual(self.upstream_resolver.asked, [b"web"])

    async def test_aaaa_for_known_name_is_empty_success(self):
        srv, ns = await self.served()
        reply = await self.query(ns, "web", "AAAA")
        self.assertEqual((reply["rcode"], reply["answers"]), (dns.OK, []))
        self.assertFalse(self.upstream_resolver.asked)

    async def test_unknown_name_is_forwarded_upstream(self):
        srv, ns = await self.served()
        reply = await self.query(ns, "upstream.test")
        self.assertEqual(reply["rcode"], dns.OK)
        self.assertEqual(reply["answers"], [["A", 30, "192.0.2.7"]])
        self.assertEqual(self.upstream_resolver.asked, [b"upstream.test"])

    async def test_upstream_nxdomain_is_passed_on(self):
        srv, ns = await self.served()
        reply = await self.query(ns, "nothing.test")
        self.assertEqual((reply["rcode"], reply["answers"]), (dns.ENAME, []))

    async def test_no_upstream_gives_servfail(self):
        srv, ns = await self.served(upstream=[])
        reply = await self.query(ns, "upstream.test")
        self.assertEqual(reply["rcode"], dns.ESERVER)
        self.assertEqual((await self.query(ns, "web"))["answers"], [["A", 600, "172.18.0.5"]])

    async def test_per_container_upstream_overrides_default(self):
        ns, path = await self.make_netns()
        srv = self.make_server(upstream=[])
        await srv.serve("c1", path, upstream=self.upstream)
        reply = await self.query(ns, "upstream.test")
        self.assertEqual(reply["answers"], [["A", 30, "192.0.2.7"]])

    async def test_ptr_for_known_address(self):
        srv, ns = await self.served()
        reply = await self.query(ns, "5.0.18.172.in-addr.arpa", "PTR")
        self.assertEqual(reply["answers"], [["PTR", 600, "web.mynet"]])
        self.assertFalse(self.upstream_resolver.asked)

    async def test_ptr_for_unknown_address_is_forwarded(self):
        srv, ns = await self.served()
        reply = await self.query(ns, "9.9.18.172.in-addr.arpa", "PTR")
        self.assertEqual(reply["rcode"], dns.ENAME)
        self.assertEqual(self.upstream_resolver.asked, [b"9.9.18.172.in-addr.arpa"])

    async def test_tcp_query(self):
        srv, ns = await self.served()
        reply = await self.query(ns, "web", proto="tcp")
        self.assertEqual(reply["answers"], [["A", 600, "172.18.0.5"]])
        reply = await self.query(ns, "upstream.test", proto="tcp")
        self.assertEqual(reply["answers"], [["A", 30, "192.0.2.7"]])

    async def test_busybox_nslookup_resolves_through_it(self):
        if not os.path.exists(BUSYBOX):
            raise SkipTest("busybox-static is not installed")
        srv, ns = await self.served()
        out = await run(IP, "netns", "exec", ns, BUSYBOX, "nslookup", "web", "127.0.0.11")
        self.assertIn("172.18.0.5", out)
        out = await run(IP, "netns", "exec", ns, BUSYBOX, "nslookup", "upstream.test", "127.0.0.11")
        self.assertIn("192.0.2.7", out)

    async def test_address_taken_in_namespace_is_an_error(self):
        srv, ns = await self.served()
        path = f"/run/netns/{ns}"
        with self.assertRaises(errors.SystemError_) as e:
            await srv.serve("c2", path)
        self.assertIn("Address already in use", str(e.exception))
        self.assertFalse(srv.serving("c2"))

    async def test_missing_namespace_is_an_error(self):
        srv = self.make_server()
        with self.assertRaises(errors.SystemError_):
            await srv.serve("c1", "/run/netns/dpytest-does-not-exist")

    async def test_stop_frees_the_address(self):
        srv, ns = await self.served()
        path = f"/run/netns/{ns}"
        await srv.stop("c1")
        self.assertFalse(srv.serving("c1"))
        await srv.serve("c2", path)
        self.assertTrue(srv.serving("c2"))
        # c2 knows no names: the query proves c2's ports answer now.
        self.assertEqual((await self.query(ns, "web"))["rcode"], dns.ENAME)

    async def test_serving_again_replaces_ports(self):
        srv, ns = await self.served()
        await srv.serve("c1", f"/run/netns/{ns}")
        self.assertEqual((await self.query(ns, "web"))["answers"], [["A", 600, "172.18.0.5"]])

    async def test_no_descriptor_leaks_and_daemon_stays_in_its_namespace(self):
        ns, path = await self.make_netns()
        home = netns.ns_id()
        before = set(os.listdir("/proc/self/fd"))
        srv = edns.EmbeddedDNS(reactor, self.lookup, self.reverse, self.upstream)
        await srv.serve("c1", path)
        self.assertGreater(len(os.listdir("/proc/self/fd")), len(before))
        await self.query(ns, "upstream.test", proto="tcp")
        await self.query(ns, "web")
        self.assertEqual(netns.ns_id(), home)
        await srv.close()
        self.assertEqual(set(os.listdir("/proc/self/fd")), before)

    async def test_failed_return_replaces_worker_thread(self):
        ns, path = await self.make_netns()
        srv = self.make_server()
        real = netns.setns
        calls = []

        def setns_back_fails(fd):
            calls.append(fd)
            if len(calls) == 2:
                raise OSError(1, "Operation not permitted")
            real(fd)

        await srv.serve("c0", path)  # starts the worker
        await srv.stop("c0")
        old_pool = srv._pool
        self.patch(netns, "setns", setns_back_fails)
        with self.assertRaises(errors.SystemError_) as e:
            await srv.serve("c1", path)
        self.assertIn("cannot return", str(e.exception))
        self.assertIsNone(srv._pool)
        self.assertFalse(old_pool.started)
        self.assertFalse(srv.serving("c1"))
        # A fresh worker starts in the daemon's namespace and serves again.
        self.patch(netns, "setns", real)
        await srv.serve("c1", path)
        home = await threads.deferToThreadPool(reactor, srv._pool, netns.ns_id)
        self.assertEqual(home, netns.ns_id())
        self.assertEqual((await self.query(ns, "web"))["answers"], [["A", 600, "172.18.0.5"]])

    def test_worker_outside_home_namespace_refuses_work(self):
        self.assertRaises(edns.PoisonedThread, edns.bind_in_netns, "/nonexistent", (0, 0))


class PtrAddressTests(TestCase):
    def test_parses_ipv4_reverse_names(self):
        self.assertEqual(edns._ptr_address("5.0.18.172.in-addr.arpa"), "172.18.0.5")
        self.assertIsNone(edns._ptr_address("18.172.in-addr.arpa"))
        self.assertIsNone(edns._ptr_address("5.0.18.300.in-addr.arpa"))
        self.assertIsNone(edns._ptr_address("web.mynet"))

    def test_servers_default_to_port_53(self):
        self.assertEqual(edns._servers(["10.0.0.1", ("127.0.0.1", 5353)]),
                         [("10.0.0.1", 53), ("127.0.0.1", 5353)])
