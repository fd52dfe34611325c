# -*- test-case-name: dockerpy.test.test_network -*-
"""Unit tests of the bridge network's pure parts: subnet choice, IPAM,
published-port planning, nft scripts and the shared ip_forward bookkeeping
(no root, no kernel)."""

from __future__ import annotations

import ipaddress
import os
import random
import tempfile

from twisted.trial import unittest

from dockerpy import errors
from dockerpy.network import ipam, netlink, nft, ports
from dockerpy.network.ipam import IPAM, IPv4Net
from dockerpy.network.model import Network, NetworkState


class SubnetChoiceTests(unittest.TestCase):
    def test_first_default_pool_when_host_has_no_overlap(self):
        self.assertEqual(ipam.choose_subnet([IPv4Net("192.0.2.0/24")]), IPv4Net("172.17.0.0/16"))

    def test_skips_pools_overlapping_host_routes_and_other_bridges(self):
        used = [IPv4Net("172.17.0.0/16"), IPv4Net("172.18.5.0/24"), IPv4Net("0.0.0.0/0")]
        self.assertEqual(ipam.choose_subnet(used), IPv4Net("172.19.0.0/16"))

    def test_a_wide_route_pushes_to_192_168(self):
        used = [IPv4Net("172.16.0.0/12")]
        self.assertEqual(ipam.choose_subnet(used), IPv4Net("192.168.0.0/20"))

    def test_preferred_subnet_kept_when_free(self):
        self.assertEqual(ipam.choose_subnet([], IPv4Net("172.25.0.0/16")),
                         IPv4Net("172.25.0.0/16"))

    def test_preferred_subnet_dropped_when_taken(self):
        self.assertEqual(ipam.choose_subnet([IPv4Net("172.25.1.0/24")], IPv4Net("172.25.0.0/16")),
                         IPv4Net("172.17.0.0/16"))

    def test_all_pools_taken(self):
        self.assertRaises(errors.Unavailable, ipam.choose_subnet,
                          [IPv4Net("172.16.0.0/12"), IPv4Net("192.168.0.0/16")])

    def test_default_pools_order(self):
        pools = ipam.default_pools()
        self.assertEqual(pools[0], IPv4Net("172.17.0.0/16"))
        self.assertEqual(pools[14], IPv4Net("172.31.0.0/16"))
        self.assertEqual(pools[15], IPv4Net("192.168.0.0/20"))
        self.assertEqual(pools[16], IPv4Net("192.168.16.0/20"))

    def test_parse_bip(self):
        gw, net = ipam.parse_bip("10.20.0.1/24")
        self.assertEqual((str(gw), str(net)), ("10.20.0.1", "10.20.0.0/24"))
        self.assertRaises(errors.InvalidParameter, ipam.parse_bip, "10.20.0.0/24")
        self.assertRaises(errors.InvalidParameter, ipam.parse_bip, "nonsense")


class IPAMTests(unittest.TestCase):
    def test_gateway_is_first_host_and_containers_follow(self):
        a = IPAM(IPv4Net("172.17.0.0/16"))
        self.assertEqual(str(a.gateway), "172.17.0.1")
        self.assertEqual(str(a.allocate("c1")), "172.17.0.2")
        self.assertEqual(str(a.allocate("c2")), "172.17.0.3")
        self.assertEqual(str(a.allocate("c1")), "172.17.0.2")

    def test_released_address_is_reused(self):
        a = IPAM(IPv4Net("172.17.0.0/16"))
        a.allocate("c1")
        a.allocate("c2")
        a.release("c1")
        self.assertEqual(str(a.allocate("c3")), "172.17.0.2")

    def test_full_subnet(self):
        a = IPAM(IPv4Net("10.0.0.0/30"))
        a.allocate("c1")
        self.assertRaises(errors.Unavailable, a.allocate, "c2")

    def test_mac_like_docker(self):
        self.assertEqual(ipam.mac_for_ip("172.17.0.2"), "02:42:ac:11:00:02")

    def test_requested_address_and_ip_range(self):
        a = IPAM(IPv4Net("10.9.0.0/16"), ip_range=IPv4Net("10.9.5.0/24"))
        self.assertEqual(str(a.allocate("c1")), "10.9.5.1")
        self.assertEqual(str(a.allocate("c2", "10.9.0.7")), "10.9.0.7")
        with self.assertRaises(errors.InvalidParameter) as cm:
            a.allocate("c3", "10.9.0.7")
        self.assertEqual(cm.exception.message, "Address already in use")
        with self.assertRaises(errors.InvalidParameter) as cm:
            a.allocate("c3", "10.10.0.7")
        self.assertIn("no configured subnet or ip-range contain the IP address 10.10.0.7",
                      cm.exception.message)

    def test_ipam_config_is_checked_as_dockerd_does(self):
        subnet, gateway, rng = ipam.parse_ipam_config(
            {"Subnet": "10.7.0.0/16", "Gateway": "10.7.0.254", "IPRange": "10.7.1.0/24"})
        self.assertEqual((str(subnet), str(gateway), str(rng)),
                         ("10.7.0.0/16", "10.7.0.254", "10.7.1.0/24"))
        for bad in ({"Subnet": "nonsense"}, {"Subnet": "10.7.0.1/16"},
                    {"Subnet": "10.7.0.0/16", "Gateway": "10.8.0.1"},
                    {"Subnet": "10.7.0.0/16", "IPRange": "10.8.0.0/24"}):
            self.assertRaises(errors.InvalidParameter, ipam.parse_ipam_config, bad)


class NetworkStateTests(unittest.TestCase):
    def test_state_round_trip(self):
        path = os.path.join(self.mktemp(), "network", "state.json")
        st = NetworkState(path)
        net = Network("a" * 64, "front", "bridge", bridge="dpyx0001", internal=True,
                      labels={"l": "v"}, user_subnet=True,
                      ipam=IPAM(IPv4Net("172.18.0.0/16"), ipaddress.IPv4Address("172.18.0.1"),
                                ip_range=IPv4Net("172.18.3.0/24")))
        net.ipam.allocate("c1")
        st.networks[net.id] = net
        st.save()
        again = NetworkState(path)
        again.load()
        self.assertEqual(again.networks[net.id].to_json(), net.to_json())
        self.assertEqual(again.find("front").id, net.id)
        self.assertEqual(again.find("aaaa").id, net.id)
        self.assertRaises(errors.NotFound, again.find, "back")

    def test_first_layout_keeps_the_builtin_ids(self):
        path = os.path.join(self.mktemp(), "state.json")
        os.makedirs(os.path.dirname(path))
        with open(path, "w") as f:
            f.write('{"Version": 1, "Ids": {"bridge": "%s", "host": "%s"}}' % ("b" * 64, "h" * 64))
        st = NetworkState(path)
        st.load()
        self.assertEqual(st.by_name("bridge").id, "b" * 64)
        self.assertEqual(st.by_name("host").driver, "host")

    def test_missing_or_corrupt_state_starts_afresh(self):
        base = self.mktemp()
        os.makedirs(base)
        st = NetworkState(os.path.join(base, "state.json"))
        st.load()
        self.assertEqual(st.networks, {})
        with open(os.path.join(base, "state.json"), "w") as f:
            f.write("{not json")
        st.load()
        self.assertEqual(st.networks, {})


class _FakeSocket:
    def __init__(self):
        self.closed = False

    def close(self):
        self.closed = True


class PortTests(unittest.TestCase):
    def test_requests_from_bindings_and_publish_all(self):
        reqs = ports.requests_for(
            {"ExposedPorts": {"80/tcp": {}, "53/udp": {}}},
            {"PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]},
             "PublishAllPorts": True})
        self.assertEqual(reqs, [
            ports.PortRequest("tcp", 80, "127.0.0.1", (8080, 8080)),
            ports.PortRequest("udp", 53, "0.0.0.0", (0, 0))])

    def test_empty_host_ip_and_port_mean_any(self):
        reqs = ports.requests_for({}, {"PortBindings": {"8080": [{"HostIp": "", "HostPort": ""}]}})
        self.assertEqual(reqs, [ports.PortRequest("tcp", 8080, "0.0.0.0", (0, 0))])

    def test_bad_specs(self):
        self.assertRaises(errors.InvalidParameter, ports.requests_for, {},
                          {"PortBindings": {"http/tcp": []}})
        self.assertRaises(errors.InvalidParameter, ports.requests_for, {},
                          {"PortBindings": {"80/tcp": [{"HostIp": "x", "HostPort": "1"}]}})

    def test_reserve_explicit_and_random(self):
        made = []

        def bind(proto, ip, port):
            made.append((proto, ip, port))
            return _FakeSocket()

        reqs = [ports.PortRequest("tcp", 80, "0.0.0.0", (8080, 8080)),
                ports.PortRequest("udp", 53, "0.0.0.0", (0, 0))]
        mappings, socks = ports.reserve(reqs, set(), random.Random(1), bind)
        self.assertEqual(mappings[0], ports.PortMapping("tcp", 80, "0.0.0.0", 8080))
        lo, hi = ports.ephemeral_range()
        self.assertTrue(lo <= mappings[1].host_port <= hi)
        self.assertEqual(len(socks), 2)

    def test_port_already_published_by_a_container(self):
        reqs = [ports.PortRequest("tcp", 80, "127.0.0.1", (8080, 8080))]
        e = self.assertRaises(errors.Conflict, ports.reserve, reqs,
                              {("tcp", "0.0.0.0", 8080)}, None, lambda *a: _FakeSocket())
        self.assertEqual(e.message, "Bind for 127.0.0.1:8080 failed: port is already allocated")

    def test_same_port_other_proto_or_address_is_free(self):
        reqs = [ports.PortRequest("udp", 80, "0.0.0.0", (8080, 8080)),
                ports.PortRequest("tcp", 80, "127.0.0.2", (9090, 9090))]
        mappings, _ = ports.reserve(reqs, {("tcp", "0.0.0.0", 8080), ("tcp", "127.0.0.1", 9090)},
                                    None, lambda *a: _FakeSocket())
        self.assertEqual([m.host_port for m in mappings], [8080, 9090])

    def test_failure_releases_what_was_reserved(self):
        made = []

        def bind(proto, ip, port):
            if port == 9090:
                raise OSError(98, "Address already in use")
            s = _FakeSocket()
            made.append(s)
            return s

        reqs = [ports.PortRequest("tcp", 80, "0.0.0.0", (8080, 8080)),
                ports.PortRequest("tcp", 81, "0.0.0.0", (9090, 9090))]
        e = self.assertRaises(errors.Conflict, ports.reserve, reqs, set(), None, bind)
        self.assertIn("address already in use", e.message)
        self.assertTrue(made and all(s.closed for s in made))

    def test_range_takes_first_free(self):
        reqs = [ports.PortRequest("tcp", 80, "0.0.0.0", (8000, 8002))]
        mappings, _ = ports.reserve(reqs, {("tcp", "0.0.0.0", 8000)}, None,
                                    lambda *a: _FakeSocket())
        self.assertEqual(mappings[0].host_port, 8001)

    def test_views(self):
        config = {"ExposedPorts": {"80/tcp": {}, "443/tcp": {}}}
        maps = [ports.PortMapping("tcp", 80, "0.0.0.0", 8080)]
        self.assertEqual(ports.ports_view(config, maps), {
            "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}], "443/tcp": None})
        self.assertEqual(ports.list_ports_view(config, maps), [
            {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
            {"PrivatePort": 443, "Type": "tcp"}])


class NftScriptTests(unittest.TestCase):
    def test_table_replaces_a_stale_copy_and_masquerades_the_subnet(self):
        s = nft.table_script("dockerpy-abc", [("dpyabc", "172.17.0.0/16", False)])
        self.assertTrue(s.startswith("table ip dockerpy-abc\ndelete table ip dockerpy-abc\n"))
        self.assertIn('ip saddr 172.17.0.0/16 oifname != "dpyabc" masquerade', s)
        self.assertIn('oifname "dpyabc" ip saddr 127.0.0.0/8 masquerade', s)

    def test_bridges_are_isolated_and_internal_networks_stay_inside(self):
        s = nft.table_script("t", [("b0", "172.17.0.0/16", False), ("b1", "172.18.0.0/16", False),
                                   ("b2", "172.19.0.0/16", True)],
                             [("172.18.0.2", [ports.PortMapping("tcp", 80, "0.0.0.0", 8080)])])
        self.assertIn('iifname "b0" oifname { "b1", "b2" } drop', s)
        self.assertIn('iifname "b1" oifname { "b0", "b2" } drop', s)
        self.assertIn('iifname "b2" oifname != "b2" drop', s)
        self.assertIn('oifname "b2" iifname != "b2" drop', s)
        self.assertNotIn("ip saddr 172.19.0.0/16 oifname", s, "internal: no masquerade")
        self.assertTrue(s.endswith("add rule ip t ports tcp dport 8080 dnat to 172.18.0.2:80\n"))

    def test_ports_script_rewrites_the_whole_chain(self):
        s = nft.ports_script("t", [
            ("172.17.0.2", [ports.PortMapping("tcp", 80, "0.0.0.0", 8080),
                            ports.PortMapping("udp", 53, "127.0.0.1", 5353)])])
        self.assertEqual(s.splitlines(), [
            "flush chain ip t ports",
            "add rule ip t ports tcp dport 8080 dnat to 172.17.0.2:80",
            "add rule ip t ports ip daddr 127.0.0.1 udp dport 5353 dnat to 172.17.0.2:53"])


class IPForwardTests(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.addCleanup(lambda: __import__("shutil").rmtree(self.dir))
        self.sysctl = os.path.join(self.dir, "ip_forward")
        self.state = os.path.join(self.dir, "state.json")
        self.lock = os.path.join(self.dir, "lock")
        with open(self.sysctl, "w") as f:
            f.write("0\n")

    def value(self):
        with open(self.sysctl) as f:
            return f.read().strip()

    def kw(self):
        return {"path": self.state, "sysctl": self.sysctl, "lock": self.lock}

    def test_last_daemon_to_stop_restores(self):
        netlink.acquire_ip_forward("a", os.getpid(), **self.kw())
        netlink.acquire_ip_forward("b", os.getpid(), **self.kw())
        self.assertEqual(self.value(), "1")
        netlink.release_ip_forward("a", **self.kw())
        self.assertEqual(self.value(), "1")
        netlink.release_ip_forward("b", **self.kw())
        self.assertEqual(self.value(), "0")
        self.assertFalse(os.path.exists(self.state))

    def test_dead_daemons_do_not_hold_it(self):
        netlink.acquire_ip_forward("dead", 2 ** 22 + 12345, **self.kw())
        netlink.acquire_ip_forward("live", os.getpid(), **self.kw())
        netlink.release_ip_forward("live", **self.kw())
        self.assertEqual(self.value(), "0")

    def test_already_on_stays_on(self):
        with open(self.sysctl, "w") as f:
            f.write("1\n")
        netlink.acquire_ip_forward("a", os.getpid(), **self.kw())
        netlink.release_ip_forward("a", **self.kw())
        self.assertEqual(self.value(), "1")
