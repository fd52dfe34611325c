# -*- test-case-name: dockerpy.test.test_integration_network -*-
"""The default bridge network against a real daemon, real netlink and nft,
driven by the docker CLI.  Traffic goes only to 127.0.0.1, the bridge's
gateway address and the addresses of containers these tests create."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time

from dockerpy.network.ipam import mac_for_ip
from dockerpy.test.daemon_fixture import DaemonTestCase


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read_from(host: str, port: int, deadline: float = 20.0) -> bytes:
    """Connect until the server in the container answers (it may be starting)."""
    end = time.monotonic() + deadline
    last = None
    while time.monotonic() < end:
        try:
            with socket.create_connection((host, port), timeout=3) as s:
                data = s.recv(100)
                if data:
                    return data
        except OSError as e:
            last = e
        time.sleep(0.1)
    raise AssertionError(f"nothing answered on {host}:{port}: {last}")


def _links() -> list[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]


def _nft_tables() -> str:
    return subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout


class BridgeNetworkTests(DaemonTestCase):
    def inspect(self, daemon, name) -> dict:
        r = daemon.cli("inspect", name, check=True)
        return json.loads(r.stdout)[0]

    def start_net_daemon(self):
        daemon = self.start_daemon(cli=True)
        key = __import__("hashlib").sha256(daemon.data_root.encode()).hexdigest()[:8]
        return daemon, key

    def test_container_gets_an_address_and_reaches_gateway_and_peer(self):
        daemon, key = self.start_net_daemon()
        daemon.cli("run", "-d", "--name", "ca", "busybox", "sleep", "300", check=True)
        self.addCleanup(daemon.cli, "rm", "-f", "ca")
        info = self.inspect(daemon, "ca")
        ns = info["NetworkSettings"]
        net = ns["Networks"]["bridge"]
        self.assertTrue(net["IPAddress"])
        self.assertEqual(ns["IPAddress"], net["IPAddress"])
        self.assertEqual(net["MacAddress"], mac_for_ip(net["IPAddress"]))
        self.assertEqual(net["IPPrefixLen"], 16)
        self.assertEqual(len(net["NetworkID"]), 64)
        self.assertEqual(len(net["EndpointID"]), 64)
        gw = net["Gateway"]
        r = daemon.cli("run", "--rm", "busybox", "sh", "-c",
                       f"ping -c1 -W5 {gw} && ping -c1 -W5 {net['IPAddress']} && "
                       "cat /etc/hosts && ip -o addr show eth0", check=True)
        out = r.stdout.decode()
        self.assertIn("1 packets received", out)
        self.assertEqual(out.count("1 packets received"), 2)
        self.assertIn("eth0", out)
        # The bridge is this daemon's own, named for its key.
        self.assertIn(f"dpy{key}", _links())
        net_view = json.loads(daemon.cli("network", "inspect", "bridge", check=True).stdout)[0]
        self.assertEqual(net_view["Id"], net["NetworkID"])
        self.assertEqual(net_view["IPAM"]["Config"][0]["Gateway"], gw)
        self.assertIn(info["Id"], net_view["Containers"])
        names = daemon.cli("network", "ls", "--format", "{{.Name}}", check=True).stdout.split()
        self.assertEqual(sorted(names), [b"bridge", b"host", b"none"])

    def test_published_port_reachable_on_loopback_and_bridge_address(self):
        daemon, _ = self.start_net_daemon()
        p1, p2 = _free_port(), _free_port()
        daemon.cli("run", "-d", "--name", "web", "-p", f"127.0.0.1:{p1}:8080",
                   "-p", f"{p2}:8080", "busybox", "nc", "-ll", "-p", "8080", "-e", "echo", "hi",
                   check=True)
        self.addCleanup(daemon.cli, "rm", "-f", "web")
        self.assertEqual(_read_from("127.0.0.1", p1), b"hi\n")
        gw = self.inspect(daemon, "web")["NetworkSettings"]["Gateway"]
        self.assertEqual(_read_from(gw, p2), b"hi\n")
        # Another container reaches it through the published port too.
        r = daemon.cli("run", "--rm", "busybox", "nc", "-w", "5", gw, str(p2), check=True)
        self.assertEqual(r.stdout, b"hi\n")
        ports = self.inspect(daemon, "web")["NetworkSettings"]["Ports"]
        self.assertEqual(sorted(ports["8080/tcp"], key=lambda b: b["HostIp"]), [
            {"HostIp": "0.0.0.0", "HostPort": str(p2)},
            {"HostIp": "127.0.0.1", "HostPort": str(p1)}])
        out = daemon.cli("port", "web", check=True).stdout.decode()
        self.assertIn(f"8080/tcp -> 127.0.0.1:{p1}", out)
        self.assertIn(f"8080/tcp -> 0.0.0.0:{p2}", out)
        # The same host port cannot be published twice.
        r = daemon.cli("run", "-d", "-p", f"127.0.0.1:{p1}:80", "busybox", "true")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"port is already allocated", r.stderr)
        daemon.cli("rm", "-f", "web", check=True)
        # The DNAT rule went with the container.
        table = subprocess.run(["nft", "list", "ruleset"], capture_output=True,
                               text=True).stdout
        self.assertNotIn(f"dport {p1}", table)

    def test_publish_all_exposed_ports_on_random_host_ports(self):
        daemon, _ = self.start_net_daemon()
        daemon.cli("run", "-d", "--name", "pall", "--expose", "7070", "-P", "busybox",
                   "nc", "-ll", "-p", "7070", "-e", "echo", "yo", check=True)
        self.addCleanup(daemon.cli, "rm", "-f", "pall")
        binding = self.inspect(daemon, "pall")["NetworkSettings"]["Ports"]["7070/tcp"][0]
        port = int(binding["HostPort"])
        lo, hi = (int(x) for x in open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
        self.assertTrue(lo <= port <= hi, port)
        self.assertEqual(_read_from("127.0.0.1", port), b"yo\n")
        ps = daemon.cli("ps", "--format", "{{.Ports}}", check=True).stdout.decode()
        self.assertIn(f"0.0.0.0:{port}->7070/tcp", ps)

    def test_network_none_has_loopback_only_and_no_endpoint(self):
        daemon, _ = self.start_net_daemon()
        r = daemon.cli("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link",
                       check=True)
        self.assertEqual([line.split(":")[1].strip() for line in
                          r.stdout.decode().splitlines()], ["lo"])

    def test_nothing_left_after_containers_and_daemon_stop(self):
        with open("/proc/sys/net/ipv4/ip_forward") as f:
            before = f.read().strip()
        daemon, key = self.start_net_daemon()
        daemon.cli("run", "-d", "--name", "cc", "-p", f"127.0.0.1:{_free_port()}:80", "busybox",
                   "sleep", "300", check=True)
        veth = "v" + key[:6]
        netns_dir = os.path.join(daemon.exec_root, "netns")
        self.assertTrue([n for n in _links() if n.startswith(veth)])
        # The container's namespace, and the one made ready for the next start.
        self.assertEqual(len(os.listdir(netns_dir)), 2)
        self.assertIn(f"dockerpy-{key}", _nft_tables())
        with open("/proc/sys/net/ipv4/ip_forward") as f:
            self.assertEqual(f.read().strip(), "1")
        daemon.cli("stop", "-t", "0", "cc", check=True)
        # The kernel takes the veth pair with the namespace, in its own time;
        # only the spare namespace (and its veth) stays for the next start.
        deadline = time.monotonic() + 10
        while len([n for n in _links() if n.startswith(veth)]) > 1 and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(len([n for n in _links() if n.startswith(veth)]), 1)
        self.assertEqual([n for n in os.listdir(netns_dir) if not n.startswith("spare-")], [])
        self.assertEqual([m for m in daemon.mounts()
                          if not m.startswith(os.path.join(netns_dir, "spare-"))], [])
        daemon.cli("start", "cc", check=True)  # running again when the daemon stops
        daemon.stop()
        links = _links()
        self.assertFalse([n for n in links if n.startswith(veth)])
        self.assertNotIn(f"dpy{key}", links)
        self.assertFalse(os.path.exists(netns_dir))
        self.assertNotIn(f"dockerpy-{key}", _nft_tables())
        state = "/run/dockerpy-ip-forward.json"
        if os.path.exists(state):  # another daemon on this host still needs it
            with open(state) as f:
                self.assertNotIn(key, json.load(f)["users"])
        else:
            with open("/proc/sys/net/ipv4/ip_forward") as f:
                self.assertEqual(f.read().strip(), before)

    def test_restart_after_kill9_cleans_up_and_works(self):
        daemon, key = self.start_net_daemon()
        daemon.cli("run", "-d", "--name", "cc", "busybox", "sleep", "300", check=True)
        daemon.kill9()  # the container keeps running: restore kills it
        daemon.start()
        self.assertFalse([n for n in _links() if n.startswith("v" + key[:6])])
        self.assertFalse(os.path.exists(os.path.join(daemon.exec_root, "netns")))
        self.assertEqual(daemon.mounts(), [])
        r = daemon.cli("run", "--rm", "busybox", "ip", "-o", "-4", "addr", "show", "eth0",
                       check=True)
        self.assertIn(b"inet ", r.stdout)
        daemon.cli("rm", "-f", "cc", check=True)

    def test_two_daemons_have_distinct_bridges_and_subnets(self):
        a, ka = self.start_net_daemon()
        b, kb = self.start_net_daemon()
        va = json.loads(a.cli("network", "inspect", "bridge", check=True).stdout)[0]
        vb = json.loads(b.cli("network", "inspect", "bridge", check=True).stdout)[0]
        self.assertNotEqual(va["Options"]["com.docker.network.bridge.name"],
                            vb["Options"]["com.docker.network.bridge.name"])
        import ipaddress

        sa = ipaddress.ip_network(va["IPAM"]["Config"][0]["Subnet"])
        sb = ipaddress.ip_network(vb["IPAM"]["Config"][0]["Subnet"])
        self.assertFalse(sa.overlaps(sb))

    def test_iptables_false_leaves_the_firewall_alone(self):
        daemon = self.start_daemon(cli=True, extra_args=["--iptables=false"])
        key = __import__("hashlib").sha256(daemon.data_root.encode()).hexdigest()[:8]
        self.assertNotIn(f"dockerpy-{key}", _nft_tables())
        r = daemon.cli("run", "--rm", "busybox", "ip", "-o", "-4", "addr", "show", "eth0",
                       check=True)
        self.assertIn(b"inet ", r.stdout)
