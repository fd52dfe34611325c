# -*- test-case-name: dockerpy.test.test_integration_user_networks -*-
"""User-defined networks against a real daemon, real netlink, nft and the
embedded DNS server, driven by the docker CLI and docker-py: name and alias
resolution, isolation between networks, internal networks, connect and
disconnect while running, ``--ip``, ``container:`` mode, ``--link``, and a
daemon restart.  Traffic goes only to addresses these tests create.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time

from dockerpy.test.daemon_fixture import CLIDaemonTestCase

try:
    import docker
except ImportError:  # pragma: no cover
    docker = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _links() -> list[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]


class UserNetworkTestBase(CLIDaemonTestCase):
    def inspect(self, ref: str) -> dict:
        return json.loads(self.out("inspect", ref))[0]

    def sleeper(self, name: str, *args: str) -> str:
        cid = self.out("run", "-d", "--name", name, *args, "busybox", "sleep", "300").strip()
        self.addCleanup(self.docker, "rm", "-f", name)
        return cid


class NameResolutionTests(UserNetworkTestBase):
    def test_containers_resolve_and_reach_each_other_by_name_and_alias(self):
        self.out("network", "create", "front")
        self.addCleanup(self.docker, "network", "rm", "front")
        cid = self.sleeper("web", "--network", "front", "--network-alias", "www")
        ip = self.inspect("web")["NetworkSettings"]["Networks"]["front"]["IPAddress"]
        out = self.out("run", "--rm", "--network", "front", "busybox", "sh", "-c",
                       "cat /etc/resolv.conf; nslookup web; nslookup www; "
                       f"nslookup {cid[:12]}; ping -c1 -W5 web && ping -c1 -W5 www")
        self.assertIn("nameserver 127.0.0.11", out)
        self.assertIn("options ndots:0", out)
        self.assertEqual(out.count(f"Address: {ip}"), 3, out)
        self.assertEqual(out.count("1 packets received"), 2, out)
        view = self.inspect("web")["NetworkSettings"]["Networks"]["front"]
        self.assertEqual(view["Aliases"], ["www"])
        self.assertEqual(view["DNSNames"], ["web", cid[:12], "www"])

    def test_unknown_names_are_not_answered_from_another_network(self):
        for net in ("na", "nb"):
            self.out("network", "create", net)
            self.addCleanup(self.docker, "network", "rm", net)
        self.sleeper("inb", "--network", "nb")
        r = self.docker("run", "--rm", "--network", "na", "busybox", "nslookup", "inb")
        self.assertNotEqual(r.returncode, 0, r.stdout)


class IsolationTests(UserNetworkTestBase):
    def test_containers_on_different_networks_cannot_reach_each_other(self):
        for net in ("iso1", "iso2"):
            self.out("network", "create", net)
            self.addCleanup(self.docker, "network", "rm", net)
        self.sleeper("a1", "--network", "iso1")
        self.sleeper("b1", "--network", "iso2")
        ip_a = self.inspect("a1")["NetworkSettings"]["Networks"]["iso1"]["IPAddress"]
        ip_b = self.inspect("b1")["NetworkSettings"]["Networks"]["iso2"]["IPAddress"]
        same = self.docker("run", "--rm", "--network", "iso1", "busybox", "ping", "-c1", "-W3",
                           ip_a)
        self.assertEqual(same.returncode, 0, "the same network reaches it")
        other = self.docker("run", "--rm", "--network", "iso1", "busybox", "ping", "-c1",
                            "-W3", ip_b)
        self.assertNotEqual(other.returncode, 0, "another network's container answered")
        # Nor from the default bridge.
        bridge = self.docker("run", "--rm", "busybox", "ping", "-c1", "-W3", ip_a)
        self.assertNotEqual(bridge.returncode, 0)

    def test_internal_network_has_no_route_out(self):
        self.out("network", "create", "--internal", "sealed")
        self.addCleanup(self.docker, "network", "rm", "sealed")
        self.sleeper("peer", "--network", "sealed")
        bridge_gw = json.loads(self.out("network", "inspect", "bridge"))[0]
        bridge_gw = bridge_gw["IPAM"]["Config"][0]["Gateway"]
        out = self.out("run", "--rm", "--network", "sealed", "busybox", "sh", "-c",
                       f"ip route; ping -c1 -W3 peer && echo PEER-OK; "
                       f"ping -c1 -W3 {bridge_gw} || echo OUT-BLOCKED")
        self.assertNotIn("default", out)
        self.assertIn("PEER-OK", out)
        self.assertIn("OUT-BLOCKED", out)
        self.assertTrue(json.loads(self.out("network", "inspect", "sealed"))[0]["Internal"])


class ConnectTests(UserNetworkTestBase):
    def test_connect_and_disconnect_a_running_container(self):
        self.out("network", "create", "--subnet", "10.213.7.0/24", "side")
        self.addCleanup(self.docker, "network", "rm", "side")
        self.sleeper("svc")
        self.out("network", "connect", "--alias", "backend", "--ip", "10.213.7.40", "side",
                 "svc")
        nets = self.inspect("svc")["NetworkSettings"]["Networks"]
        self.assertEqual(sorted(nets), ["bridge", "side"])
        self.assertEqual(nets["side"]["IPAddress"], "10.213.7.40")
        self.assertEqual(nets["side"]["IPAMConfig"], {"IPv4Address": "10.213.7.40"})
        addrs = self.out("exec", "svc", "ip", "-o", "-4", "addr")
        self.assertIn("eth1", addrs)
        self.assertIn("10.213.7.40/24", addrs)
        out = self.out("run", "--rm", "--network", "side", "busybox", "sh", "-c",
                       "ping -c1 -W5 backend && ping -c1 -W5 svc")
        self.assertEqual(out.count("1 packets received"), 2)
        view = json.loads(self.out("network", "inspect", "side"))[0]
        self.assertEqual([c["Name"] for c in view["Containers"].values()], ["svc"])
        r = self.docker("network", "connect", "side", "svc")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"endpoint with name svc already exists in network side", r.stderr)
        r = self.docker("network", "rm", "side")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"has active endpoints", r.stderr)
        self.out("network", "disconnect", "side", "svc")
        self.assertNotIn("eth1", self.out("exec", "svc", "ip", "-o", "link"))
        self.assertEqual(sorted(self.inspect("svc")["NetworkSettings"]["Networks"]), ["bridge"])

    def test_connect_a_stopped_container_takes_effect_at_start(self):
        self.out("network", "create", "later")
        self.addCleanup(self.docker, "network", "rm", "later")
        self.out("create", "--name", "idle", "busybox", "sleep", "300")
        self.addCleanup(self.docker, "rm", "-f", "idle")
        self.out("network", "connect", "later", "idle")
        self.out("start", "idle")
        nets = self.inspect("idle")["NetworkSettings"]["Networks"]
        self.assertTrue(nets["later"]["IPAddress"])
        self.assertTrue(nets["bridge"]["IPAddress"])


class AddressTests(UserNetworkTestBase):
    def test_subnet_gateway_range_and_static_ip(self):
        self.out("network", "create", "--subnet", "10.213.8.0/24", "--gateway", "10.213.8.254",
                 "--ip-range", "10.213.8.128/25", "--label", "tier=db", "fixed")
        self.addCleanup(self.docker, "network", "rm", "fixed")
        view = json.loads(self.out("network", "inspect", "fixed"))[0]
        self.assertEqual(view["IPAM"]["Config"], [{"Subnet": "10.213.8.0/24",
                                                   "Gateway": "10.213.8.254",
                                                   "IPRange": "10.213.8.128/25"}])
        self.assertEqual(view["Labels"], {"tier": "db"})
        self.assertEqual((view["Driver"], view["Scope"]), ("bridge", "local"))
        self.sleeper("dyn", "--network", "fixed")
        self.sleeper("static", "--network", "fixed", "--ip", "10.213.8.9")
        self.assertEqual(self.inspect("dyn")["NetworkSettings"]["Networks"]["fixed"]
                         ["IPAddress"], "10.213.8.129")
        st = self.inspect("static")["NetworkSettings"]["Networks"]["fixed"]
        self.assertEqual((st["IPAddress"], st["Gateway"]), ("10.213.8.9", "10.213.8.254"))
        route = self.out("exec", "static", "ip", "route")
        self.assertIn("default via 10.213.8.254", route)
        r = self.docker("network", "create", "--subnet", "10.213.8.0/25", "clash")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"Pool overlaps with other one on this address space", r.stderr)

    def test_dockers_refusals(self):
        r = self.docker("run", "--rm", "--ip", "172.17.0.9", "busybox", "true")
        self.assertEqual(r.returncode, 125)
        self.assertIn(b"user specified IP address is supported on user defined networks only",
                      r.stderr)
        # The CLI refuses an alias on the default bridge itself; the daemon too.
        status, body = self.daemon.json("POST", "/containers/create", {
            "Image": "busybox", "Cmd": ["true"],
            "NetworkingConfig": {"EndpointsConfig": {"bridge": {"Aliases": ["x"]}}}})
        self.assertEqual(status, 400)
        self.assertEqual(body["message"], "network-scoped alias is supported only for "
                                          "containers in user defined networks")
        self.out("network", "create", "auto")
        self.addCleanup(self.docker, "network", "rm", "auto")
        r = self.docker("run", "--rm", "--network", "auto", "--ip", "172.30.0.9", "busybox",
                        "true")
        self.assertIn(b"user specified IP address is supported only when connecting to "
                      b"networks with user configured subnets", r.stderr)
        r = self.docker("run", "--rm", "--network", "nowhere", "busybox", "true")
        self.assertEqual(r.returncode, 125)
        self.assertIn(b"network nowhere not found", r.stderr)
        r = self.docker("network", "create", "auto")
        self.assertIn(b"network with name auto already exists", r.stderr)
        r = self.docker("network", "rm", "bridge")
        self.assertIn(b"bridge is a pre-defined network and cannot be removed", r.stderr)
        for mode, words in (("host", b"container cannot be disconnected from host network or "
                                     b"connected to host network"),
                            ("none", b"container cannot be connected to multiple networks with "
                                     b"one of the networks in private (none) mode")):
            self.out("create", "--name", f"in-{mode}", "--network", mode, "busybox", "true")
            self.addCleanup(self.docker, "rm", "-f", f"in-{mode}")
            r = self.docker("network", "connect", "auto", f"in-{mode}")
            self.assertEqual(r.returncode, 1)
            self.assertIn(words, r.stderr)

    def test_ls_filters_and_prune(self):
        self.out("network", "create", "--label", "keep=1", "kept")
        self.addCleanup(self.docker, "network", "rm", "kept")
        self.out("network", "create", "unused")
        self.out("network", "create", "busy")
        self.addCleanup(self.docker, "network", "rm", "busy")
        self.sleeper("user", "--network", "busy")
        custom = self.out("network", "ls", "--filter", "type=custom", "--format", "{{.Name}}")
        self.assertEqual(sorted(custom.split()), ["busy", "kept", "unused"])
        dangling = self.out("network", "ls", "-f", "dangling=true", "--format", "{{.Name}}")
        self.assertEqual(sorted(dangling.split()), ["kept", "unused"])
        labelled = self.out("network", "ls", "-f", "label=keep", "--format", "{{.Name}}")
        self.assertEqual(labelled.split(), ["kept"])
        out = self.out("network", "prune", "-f", "--filter", "label!=keep")
        self.assertIn("unused", out)
        names = self.out("network", "ls", "--format", "{{.Name}}").split()
        self.assertEqual(sorted(names), ["bridge", "busy", "host", "kept", "none"])


class ModeTests(UserNetworkTestBase):
    def test_container_mode_shares_localhost_and_etc_files(self):
        self.out("run", "-d", "--name", "srv", "--hostname", "srvhost", "busybox", "sh", "-c",
                 "echo hi > /tmp/i; httpd -f -p 127.0.0.1:8080 -h /tmp")
        self.addCleanup(self.docker, "rm", "-f", "srv")
        out = ""
        for _ in range(50):
            r = self.docker("run", "--rm", "--network", "container:srv", "busybox", "sh", "-c",
                            "wget -qO- http://127.0.0.1:8080/i; hostname")
            out = r.stdout.decode()
            if r.returncode == 0:
                break
            time.sleep(0.1)
        self.assertEqual(out, "hi\nsrvhost\n")
        self.assertEqual(self.inspect("srv")["HostConfig"]["NetworkMode"], "default")
        r = self.docker("run", "--rm", "--network", "container:srv", "-p", "80:80", "busybox",
                        "true")
        self.assertEqual(r.returncode, 125)
        self.assertIn(b"conflicting options: port publishing and the container type network "
                      b"mode", r.stderr)

    def test_link_on_the_default_bridge_adds_a_hosts_entry(self):
        self.sleeper("db")
        ip = self.inspect("db")["NetworkSettings"]["IPAddress"]
        out = self.out("run", "--rm", "--link", "db:database", "busybox", "sh", "-c",
                       "cat /etc/hosts; ping -c1 -W5 database")
        self.assertIn(f"{ip}\tdatabase", out)
        self.assertIn("1 packets received", out)
        self.out("stop", "-t", "0", "db")
        r = self.docker("run", "--rm", "--link", "db:database", "busybox", "true")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"Cannot link to a non running container", r.stderr)


class RestartTests(UserNetworkTestBase):
    def test_networks_and_published_ports_survive_a_daemon_restart(self):
        self.out("network", "create", "--subnet", "10.213.9.0/24", "durable")
        self.addCleanup(self.docker, "network", "rm", "durable")
        before = json.loads(self.out("network", "inspect", "durable"))[0]
        self.daemon.stop()
        self.assertFalse([n for n in _links() if n.startswith("dpy") and
                          before["Id"] in n], "bridges go with the daemon")
        self.daemon.start()
        after = json.loads(self.out("network", "inspect", "durable"))[0]
        self.assertEqual((after["Id"], after["IPAM"]), (before["Id"], before["IPAM"]))
        port = _free_port()
        self.out("run", "-d", "--name", "web", "--network", "durable", "-p",
                 f"127.0.0.1:{port}:8080", "busybox", "nc", "-ll", "-p", "8080", "-e", "echo",
                 "hi")
        self.addCleanup(self.docker, "rm", "-f", "web")
        deadline = time.monotonic() + 20
        data = b""
        while time.monotonic() < deadline and not data:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
                    data = s.recv(10)
            except OSError:
                time.sleep(0.1)
        self.assertEqual(data, b"hi\n")


class DockerPyTests(UserNetworkTestBase):
    def test_docker_py_network_lifecycle_and_events(self):
        if docker is None:
            self.skipTest("docker-py is not installed")
        client = docker.DockerClient(base_url=self.daemon.host, version="auto")
        self.addCleanup(client.close)
        since = int(time.time()) - 1
        net = client.networks.create(
            "pynet", driver="bridge", labels={"a": "b"},
            ipam=docker.types.IPAMConfig(pool_configs=[
                docker.types.IPAMPool(subnet="10.213.10.0/24")]))
        c = client.containers.run("busybox", ["sleep", "300"], detach=True, name="pyc")
        self.addCleanup(lambda: c.remove(force=True))
        net.connect(c, aliases=["pyalias"], ipv4_address="10.213.10.5")
        net.reload()
        self.assertEqual([x.name for x in net.containers], ["pyc"])
        c.reload()
        self.assertEqual(c.attrs["NetworkSettings"]["Networks"]["pynet"]["IPAddress"],
                         "10.213.10.5")
        net.disconnect(c)
        net.remove()
        self.assertEqual([n.name for n in client.networks.list(names=["pynet"])], [])
        events = [(e["Action"], e["Actor"]["Attributes"].get("name"))
                  for e in client.events(since=since, until=int(time.time()) + 1,
                                         filters={"type": "network"}, decode=True)]
        self.assertIn(("create", "pynet"), events)
        self.assertIn(("connect", "pynet"), events)
        self.assertIn(("disconnect", "pynet"), events)
        self.assertIn(("destroy", "pynet"), events)
