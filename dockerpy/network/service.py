# -*- test-case-name: dockerpy.test.test_integration_network -*-
"""The network service: the default ``bridge`` network (plus the fixed
``host`` and ``none`` networks) and each running container's endpoint on it.

It owns one dedicated single-thread pool on which every netlink, netns,
nft and IPAM change runs, so they are serialised and pyroute2's per-thread
state lives in one thread.  The container service calls :meth:`attach`
before it writes a container's bundle and :meth:`detach` whenever the
container's run ends; the daemon calls :meth:`start` and :meth:`stop`.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import socket

from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from dockerpy import errors
from dockerpy.network import ipam as ipam_mod, netlink, nft, ports as ports_mod
from dockerpy.network.ipam import IPAM, NetworkState

log = Logger()

BRIDGE_MODES = ("", "default", "bridge")


def uses_bridge(host_config: dict) -> bool:
    return (host_config.get("NetworkMode") or "default") in BRIDGE_MODES


def bridge_name_for(key: str) -> str:
    return f"dpy{key}"  # 11 bytes; interface names are at most 15


@dataclasses.dataclass
class Endpoint:
    """A running container's place on the bridge."""

    container_id: str
    endpoint_id: str
    address: str
    prefixlen: int
    gateway: str
    mac: str
    netns: str
    veth: str
    ports: list[ports_mod.PortMapping] = dataclasses.field(default_factory=list)
    sockets: list[socket.socket] = dataclasses.field(default_factory=list, repr=False)


class NetworkService:
    """:param key: the daemon's key (``DaemonConfig.daemon_key``), which names
        its bridge, nft table and veths so daemons side by side never collide.
    :param bridge: bridge name (``--bridge``); default ``dpy<key>``.
    :param bip: ``--bip`` (gateway/prefix) or ``None`` to pick a free pool.
    :param iptables: ``False`` leaves the host firewall (and ip_forward) alone.
    """

    def __init__(self, reactor, data_root: str, exec_root: str, key: str,
                 bridge: str | None = None, bip: str | None = None, iptables: bool = True):
        self._reactor = reactor
        self.key = key
        self.bridge = bridge or bridge_name_for(key)
        if len(self.bridge.encode()) > 15:
            raise errors.InvalidParameter(f"bridge name too long: {self.bridge}")
        self.bip = ipam_mod.parse_bip(bip) if bip else None
        self.iptables = iptables
        self.table = nft.table_name(key)
        self.netns_dir = os.path.join(exec_root, "netns")
        self.veth_prefix = "v" + key[:6]
        self.state = NetworkState(os.path.join(data_root, "network", "state.json"))
        self._endpoints: dict[str, Endpoint] = {}
        self._pool: ThreadPool | None = None
        self._ipr = None
        self._forwarding = False

    # -- thread -----------------------------------------------------------

    def _run(self, f, *args) -> defer.Deferred:
        return deferToThreadPool(self._reactor, self._pool, f, *args)

    # -- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name="dockerpy-network")
        self._pool.start()
        try:
            await self._run(self._start_sync)
        except BaseException:
            # A daemon that fails to start leaves nothing behind either.
            try:
                await self._run(self._stop_sync)
            except Exception:
                log.failure("network cleanup after a failed start failed")
            await self._run(self._close_sync)
            self._pool.stop()
            self._pool = None
            raise
        ipam = self.state.ipam
        log.info("network bridge {bridge}: {subnet} gateway {gw}", bridge=self.bridge,
                 subnet=str(ipam.subnet), gw=str(ipam.gateway))

    def _start_sync(self) -> None:
        self._ipr = netlink.open_iproute()
        self.state.load()
        for name in ("bridge", "host", "none"):
            self.state.ids.setdefault(name, secrets.token_hex(32))
        # Nothing of ours runs now: whatever a dead daemon left goes first.
        removed = netlink.remove_stale(self._ipr, self.netns_dir, self.veth_prefix)
        netlink.unmount_netns_dir(self.netns_dir)
        if removed:
            log.info("removed stale network state: {removed}", removed=", ".join(removed))
        if self.iptables and nft.table_exists(self.table):
            nft.apply(nft.delete_script(self.table))
        preferred = self.state.ipam.subnet if self.state.ipam is not None else None
        gateway, subnet, created = netlink.ensure_bridge(self._ipr, self.bridge, self.bip,
                                                          preferred)
        self.state.bridge_created = created or (self.state.bridge_created and
                                                self.state.ipam is not None)
        # Allocations of containers that ran when the daemon stopped are void:
        # none runs now.
        self.state.ipam = IPAM(subnet, gateway)
        self.state.save()
        if self.iptables:
            nft.apply(nft.table_script(self.table, self.bridge, str(subnet)))
            netlink.acquire_ip_forward(self.key, os.getpid())
            self._forwarding = True

    async def stop(self) -> None:
        """Remove every endpoint, our nft table and (if we made it) the
        bridge; put ip_forward back.  Containers must have stopped."""
        if self._pool is None:
            return
        try:
            await self._run(self._stop_sync)
        finally:
            try:
                await self._run(self._close_sync)
            finally:
                self._pool.stop()
                self._pool = None

    def _stop_sync(self) -> None:
        for ep in list(self._endpoints.values()):
            self._detach_sync(ep.container_id, update_rules=False)
        netlink.remove_stale(self._ipr, self.netns_dir, self.veth_prefix)
        netlink.unmount_netns_dir(self.netns_dir)
        if self.iptables:
            try:
                if nft.table_exists(self.table):
                    nft.apply(nft.delete_script(self.table))
            finally:
                if self._forwarding:
                    netlink.release_ip_forward(self.key)
                    self._forwarding = False
        if self.state.bridge_created:
            netlink.delete_link(self._ipr, self.bridge)
            self.state.bridge_created = False
        if self.state.ipam is not None:
            self.state.ipam.allocations.clear()
            self.state.save()

    def _close_sync(self) -> None:
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None

    # -- endpoints ----------------------------------------------------------

    def endpoint(self, cid: str) -> Endpoint | None:
        return self._endpoints.get(cid)

    async def attach(self, cid: str, config: dict, host_config: dict) -> Endpoint | None:
        """Give a container starting in bridge mode its namespace, address and
        published ports.  :return: ``None`` for other network modes."""
        if not uses_bridge(host_config):
            return None
        if self._pool is None:
            raise errors.Unavailable("the network service is not running")
        requests = ports_mod.requests_for(config, host_config)
        ep = await self._run(self._attach_sync, cid, requests)
        return ep

    def _attach_sync(self, cid: str, requests: list) -> Endpoint:
        ipam = self.state.ipam
        taken = {(m.proto, m.host_ip, m.host_port)
                 for ep in self._endpoints.values() for m in ep.ports}
        mappings, sockets = ports_mod.reserve(requests, taken)
        address = None
        try:
            address = ipam.allocate(cid)
            ep = Endpoint(
                container_id=cid, endpoint_id=secrets.token_hex(32), address=str(address),
                prefixlen=ipam.subnet.prefixlen, gateway=str(ipam.gateway),
                mac=ipam_mod.mac_for_ip(address),
                netns=os.path.join(self.netns_dir, cid[:12]),
                veth=self.veth_prefix + cid[:8], ports=mappings, sockets=sockets)
            netlink.create_endpoint(self._ipr, self.bridge, ep.netns, ep.veth, address,
                                    ipam.subnet, ipam.gateway, ep.mac)
            self._endpoints[cid] = ep
            try:
                if self.iptables and mappings:
                    self._apply_ports()
                self.state.save()
            except BaseException:
                self._endpoints.pop(cid, None)
                netlink.remove_endpoint(self._ipr, ep.netns, ep.veth)
                raise
        except BaseException:
            for s in sockets:
                s.close()
            if address is not None:
                ipam.release(cid)
            raise
        return ep

    def _apply_ports(self) -> None:
        nft.apply(nft.ports_script(
            self.table, [(ep.address, ep.ports) for ep in self._endpoints.values()]))

    async def detach(self, cid: str) -> None:
        """Undo :meth:`attach`; a container without an endpoint is fine."""
        if cid not in self._endpoints or self._pool is None:
            return
        await self._run(self._detach_sync, cid)

    def _detach_sync(self, cid: str, update_rules: bool = True) -> None:
        ep = self._endpoints.pop(cid, None)
        if ep is None:
            return
        try:
            if update_rules and self.iptables and ep.ports:
                self._apply_ports()
            netlink.remove_endpoint(self._ipr, ep.netns, ep.veth)
            if not self._endpoints:
                # The directory's self-bind mount (made by pyroute2, like
                # ``ip netns``) lives only while some namespace does.
                netlink.unmount_netns_dir(self.netns_dir)
        finally:
            for s in ep.sockets:
                s.close()
            self.state.ipam.release(cid)
            self.state.save()

    # -- views (Docker's JSON shapes) --------------------------------------

    def network_id(self, name: str) -> str:
        return self.state.ids.get(name, "")

    def container_networks(self, cid: str, host_config: dict) -> dict:
        """``NetworkSettings.Networks`` of a container."""
        mode = host_config.get("NetworkMode") or "default"
        name = "bridge" if mode in BRIDGE_MODES else mode
        if name not in ("bridge", "host", "none"):
            return {}
        ep = self._endpoints.get(cid) if name == "bridge" else None
        return {name: {
            "IPAMConfig": None, "Links": None, "Aliases": None,
            "MacAddress": ep.mac if ep else "", "DriverOpts": None,
            "NetworkID": self.network_id(name), "EndpointID": ep.endpoint_id if ep else "",
            "Gateway": ep.gateway if ep else "", "IPAddress": ep.address if ep else "",
            "IPPrefixLen": ep.prefixlen if ep else 0, "IPv6Gateway": "",
            "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": None}}

    def settings_view(self, cid: str, config: dict, host_config: dict) -> dict:
        """The top-level ``NetworkSettings`` fields of container inspect
        (``Networks`` included) that come from the network."""
        ep = self._endpoints.get(cid)
        out = {"Networks": self.container_networks(cid, host_config), "Ports": {}}
        if ep is not None:
            out.update({
                "SandboxKey": ep.netns, "SandboxID": ep.endpoint_id[:64],
                "EndpointID": ep.endpoint_id, "Gateway": ep.gateway,
                "IPAddress": ep.address, "IPPrefixLen": ep.prefixlen, "MacAddress": ep.mac,
                "Ports": ports_mod.ports_view(config, ep.ports)})
        return out

    def list_ports(self, cid: str, config: dict) -> list[dict]:
        """The ``Ports`` of ``GET /containers/json``: published ports while running."""
        ep = self._endpoints.get(cid)
        return ports_mod.list_ports_view(config, ep.ports if ep else [])

    def network_view(self, name: str, containers=None) -> dict:
        """``GET /networks/{id}`` for one of the default networks.

        :param containers: ``(id, name)`` pairs, to fill ``Containers`` for bridge.
        """
        ipam = self.state.ipam
        view = {
            "Name": name, "Id": self.network_id(name), "Created": "0001-01-01T00:00:00Z",
            "Scope": "local", "Driver": {"bridge": "bridge"}.get(name, name),
            "EnableIPv4": True, "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": None, "Config": []},
            "Internal": False, "Attachable": False, "Ingress": False,
            "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Containers": {},
            "Options": {}, "Labels": {},
        }
        if name == "none":
            view["Driver"] = "null"
        if name == "bridge" and ipam is not None:
            view["IPAM"]["Config"] = [{"Subnet": str(ipam.subnet), "Gateway": str(ipam.gateway)}]
            view["Options"] = {
                "com.docker.network.bridge.default_bridge": "true",
                "com.docker.network.bridge.enable_ip_masquerade": str(self.iptables).lower(),
                "com.docker.network.bridge.name": self.bridge,
                "com.docker.network.driver.mtu": "1500"}
            for cid, cname in containers or []:
                ep = self._endpoints.get(cid)
                if ep is not None:
                    view["Containers"][cid] = {
                        "Name": cname, "EndpointID": ep.endpoint_id, "MacAddress": ep.mac,
                        "IPv4Address": f"{ep.address}/{ep.prefixlen}", "IPv6Address": ""}
        return view

    def find_network(self, ref: str) -> str:
        """The default network named or identified (id or unique prefix) by ``ref``.

        :raises NotFound: as dockerd words it.
        """
        for name in ("bridge", "host", "none"):
            if ref == name or ref == self.network_id(name):
                return name
        found = [n for n in ("bridge", "host", "none")
                 if ref and self.network_id(n).startswith(ref)]
        if len(found) == 1:
            return found[0]
        raise errors.NotFound(f"network {ref} not found")
