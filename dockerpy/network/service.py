# -*- test-case-name: dockerpy.test.test_integration_network -*-
"""The network service: the default ``bridge`` network, the fixed ``host``
and ``none`` networks, user-defined bridge networks, and each running
container's sandbox (one network namespace) with one endpoint per network.

It owns one dedicated single-thread pool on which every netlink, netns,
nft and IPAM change runs, so they are serialised and pyroute2's per-thread
state lives in one thread.  The container service calls :meth:`attach`
before it writes a container's bundle and :meth:`detach` whenever the
container's run ends, and :meth:`connect`/:meth:`disconnect` for running
containers; the daemon calls :meth:`start` and :meth:`stop`.

Containers on user-defined networks resolve each other by name through
the embedded DNS server (:mod:`dockerpy.network.dns`, imported only once
such a container starts).
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import secrets
import socket
from typing import Any, Callable

from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from dockerpy import errors
from dockerpy.network import ipam as ipam_mod, netlink, nft, ports as ports_mod
from dockerpy.network.ipam import IPAM
from dockerpy.network.model import BUILTIN, BUILTIN_DRIVERS, Network, NetworkState, view
from dockerpy.timeutil import rfc3339
from dockerpy.logfilter import engine_log

log = Logger(observer=engine_log)

BRIDGE_MODES = ("", "default", "bridge")


def primary_network(host_config: dict) -> str:
    """The network a container's ``NetworkMode`` names (``default`` is ``bridge``)."""
    mode = host_config.get("NetworkMode") or "default"
    return "bridge" if mode in BRIDGE_MODES else mode


def uses_sandbox(host_config: dict) -> bool:
    """Whether the container gets a namespace of ours (bridge or user network)."""
    mode = host_config.get("NetworkMode") or "default"
    return mode not in ("host", "none") and not mode.startswith("container:")


def bridge_name_for(key: str) -> str:
    return f"dpy{key}"  # 11 bytes; interface names are at most 15


@dataclasses.dataclass
class Endpoint:
    """A running container's place on one network."""

    container_id: str
    network_id: str
    endpoint_id: str
    address: str
    prefixlen: int
    gateway: str
    mac: str
    netns: str
    veth: str
    ifname: str
    aliases: list[str] = dataclasses.field(default_factory=list)
    ports: list[ports_mod.PortMapping] = dataclasses.field(default_factory=list)
    sockets: list[socket.socket] = dataclasses.field(default_factory=list, repr=False)


@dataclasses.dataclass
class Sandbox:
    """A running container's network namespace and its endpoints (the
    primary network's first)."""

    container_id: str
    name: str
    netns: str
    endpoints: dict[str, Endpoint] = dataclasses.field(default_factory=dict)
    dns: bool = False
    #: ``--dns``: where the embedded DNS server forwards this one's queries.
    upstream: list[str] = dataclasses.field(default_factory=list)

    @property
    def primary(self) -> Endpoint | None:
        return next(iter(self.endpoints.values()), None)


@dataclasses.dataclass
class Spare:
    """A namespace made ahead of demand for a network: loopback up, ``eth0``
    (down, no address) paired with ``veth`` on the network's bridge."""

    netns: str
    veth: str


def _config_error(net: Network, cfg: dict) -> str | None:
    """dockerd's refusal of an endpoint config on ``net``, if any."""
    ip = ((cfg.get("IPAMConfig") or {}).get("IPv4Address") or "")
    if net.builtin:
        if ip:
            return "user specified IP address is supported on user defined networks only"
        if cfg.get("Aliases"):
            return "network-scoped alias is supported only for containers in user defined networks"
    elif ip and not net.user_subnet:
        return ("user specified IP address is supported only when connecting to networks with "
                "user configured subnets")
    return None


class NetworkService:
    """:param key: the daemon's key (``DaemonConfig.daemon_key``), which names
        its bridges, nft table and veths so daemons side by side never collide.
    :param bridge: bridge name (``--bridge``); default ``dpy<key>``.
    :param bip: ``--bip`` (gateway/prefix) or ``None`` to pick a free pool.
    :param iptables: ``False`` leaves the host firewall (and ip_forward) alone.
    :param publish: ``publish("network", action, id, attributes)`` for events.
    """

    def __init__(self, reactor, data_root: str, exec_root: str, key: str,
                 bridge: str | None = None, bip: str | None = None, iptables: bool = True,
                 publish: Callable[..., Any] | None = None):
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
        self._publish = publish
        self._sandboxes: dict[str, Sandbox] = {}
        self._pool: ThreadPool | None = None
        self._ipr = None
        self._forwarding = False
        self._dns = None
        self._veth_seq = itertools.count()
        #: One ready namespace per network that containers start on, so a
        #: start only addresses it (the kernel work is done between starts).
        self._spares: dict[str, Spare] = {}
        self._spare_seq = itertools.count()

    # -- thread -----------------------------------------------------------

    def _run(self, f, *args) -> defer.Deferred:
        if self._pool is None:
            raise errors.Unavailable("the network service is not running")
        return deferToThreadPool(self._reactor, self._pool, f, *args)

    def _event(self, action: str, net: Network, **attributes: str) -> None:
        if self._publish is not None:
            self._publish("network", action, net.id,
                          dict(attributes, name=net.name, type=net.driver))

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
        if any(not n.builtin for n in self.state.networks.values()):
            self._warm_dns()
        ipam = self.default_bridge().ipam
        log.info("network bridge {bridge}: {subnet} gateway {gw}", bridge=self.bridge,
                 subnet=str(ipam.subnet), gw=str(ipam.gateway))

    def default_bridge(self) -> Network:
        return self.state.by_name("bridge")

    def _start_sync(self) -> None:
        self._ipr = netlink.open_iproute()
        self.state.load()
        for name in BUILTIN:
            if self.state.by_name(name) is None:
                nid = secrets.token_hex(32)
                self.state.networks[nid] = Network(nid, name, BUILTIN_DRIVERS[name])
        # Nothing of ours runs now: whatever a dead daemon left goes first.
        removed = netlink.remove_stale(self._ipr, self.netns_dir, self.veth_prefix)
        netlink.unmount_netns_dir(self.netns_dir)
        if removed:
            log.info("removed stale network state: {removed}", removed=", ".join(removed))
        if self.iptables and nft.table_exists(self.table):
            nft.apply(nft.delete_script(self.table))
        default = self.default_bridge()
        preferred = default.ipam.subnet if default.ipam is not None else None
        gateway, subnet, created = netlink.ensure_bridge(self._ipr, self.bridge, self.bip,
                                                          preferred)
        default.bridge = self.bridge
        default.bridge_created = created or default.bridge_created
        # Allocations of containers that ran when the daemon stopped are void:
        # none runs now.
        default.ipam = IPAM(subnet, gateway)
        default.options = {
            "com.docker.network.bridge.default_bridge": "true",
            "com.docker.network.bridge.enable_icc": "true",
            "com.docker.network.bridge.enable_ip_masquerade": str(self.iptables).lower(),
            "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
            "com.docker.network.bridge.name": self.bridge,
            "com.docker.network.driver.mtu": "1500"}
        for net in list(self.state.networks.values()):
            if net.builtin or net.ipam is None:
                continue
            net.ipam.allocations.clear()
            try:
                _, _, made = netlink.ensure_bridge(
                    self._ipr, net.bridge, (net.ipam.gateway, net.ipam.subnet), None)
                net.bridge_created = made or net.bridge_created
            except Exception as e:
                log.error("network {name}: cannot make bridge {bridge}: {e}", name=net.name,
                          bridge=net.bridge, e=e)
        self.state.save()
        if self.iptables:
            self._apply_table()
            netlink.acquire_ip_forward(self.key, os.getpid())
            self._forwarding = True

    async def stop(self) -> None:
        """Remove every endpoint, our nft table and the bridges we made; put
        ip_forward back.  Containers must have stopped."""
        if self._pool is None:
            return
        try:
            for cid in list(self._sandboxes):
                await self._stop_dns(cid)
            await self._run(self._stop_sync)
            if self._dns is not None:
                await self._dns.close()
                self._dns = None
        finally:
            try:
                await self._run(self._close_sync)
            finally:
                self._pool.stop()
                self._pool = None

    def _stop_sync(self) -> None:
        for cid in list(self._sandboxes):
            self._detach_sync(cid, update_rules=False)
        self._spares.clear()  # the sweep takes them
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
        for net in self.state.networks.values():
            if net.bridge_created and net.bridge:
                netlink.delete_link(self._ipr, net.bridge)
                net.bridge_created = False
            if net.ipam is not None:
                net.ipam.allocations.clear()
        self.state.save()

    def _close_sync(self) -> None:
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None

    def _apply_table(self) -> None:
        nets = [(n.bridge, str(n.ipam.subnet), n.internal)
                for n in self.state.networks.values() if n.is_bridge and n.ipam is not None]
        nft.apply(nft.table_script(self.table, nets, self._port_endpoints()))

    def _port_endpoints(self) -> list:
        return [(ep.address, ep.ports) for sb in self._sandboxes.values()
                for ep in sb.endpoints.values() if ep.ports]

    def _apply_ports(self) -> None:
        nft.apply(nft.ports_script(self.table, self._port_endpoints()))

    # -- networks -------------------------------------------------------------

    def find(self, ref: str) -> Network:
        return self.state.find(ref)

    def find_for(self, name: str, cfg: dict) -> Network:
        """A container's network: by the id it was connected with, else by
        the name (a network removed and made again has a new id)."""
        return self.state.networks.get(cfg.get("NetworkID") or "") or self.find(name)

    async def create_network(self, body: dict) -> Network:
        """``POST /networks/create``.  :raises: dockerd's errors."""
        name = body.get("Name")
        if not isinstance(name, str) or not name:
            raise errors.InvalidParameter("invalid name: name is required")
        driver = body.get("Driver") or "bridge"
        if name in ("host", "none") or (name == "bridge" and driver == "bridge"):
            raise errors.Forbidden(f"operation is not permitted on predefined {name} network ")
        if driver != "bridge":
            raise errors.NotFound(f'could not find plugin {driver} in v1 plugin registry: '
                                  f'plugin not found')
        if self.state.by_name(name) is not None:
            raise errors.Conflict(f"network with name {name} already exists")
        for key in ("Labels", "Options"):
            value = body.get(key) or {}
            if not isinstance(value, dict) or not all(isinstance(v, str)
                                                      for v in value.values()):
                raise errors.InvalidParameter(f"invalid JSON: {key} must map strings to "
                                              f"strings")
        ipam_body = body.get("IPAM") or {}
        if (ipam_body.get("Driver") or "default") != "default":
            raise errors.NotFound(f'plugin "{ipam_body["Driver"]}" not found')
        configs = [c for c in (ipam_body.get("Config") or []) if c.get("Subnet")]
        if len(configs) > 1:
            raise errors.InvalidParameter("only one IPv4 subnet per network is supported")
        parsed = ipam_mod.parse_ipam_config(configs[0]) if configs else None
        options = dict(body.get("Options") or {})
        net = Network(
            id=secrets.token_hex(32), name=name, driver="bridge",
            created=rfc3339(self._reactor.seconds()), internal=bool(body.get("Internal")),
            attachable=bool(body.get("Attachable")), user_subnet=parsed is not None,
            labels=dict(body.get("Labels") or {}), options=options)
        net = await self._run(self._create_sync, net, parsed)
        self._event("create", net)
        self._warm_dns()
        return net

    def _create_sync(self, net: Network, parsed) -> Network:
        if self.state.by_name(net.name) is not None:
            raise errors.Conflict(f"network with name {net.name} already exists")
        used = {n.bridge for n in self.state.networks.values()}
        bridge = net.options.get("com.docker.network.bridge.name")
        if bridge:
            if len(bridge.encode()) > 15 or bridge in used:
                raise errors.InvalidParameter(f"invalid bridge name {bridge}")
        else:
            bridge = next(b for b in (f"{bridge_name_for(self.key)}{n:04x}"
                                      for n in range(1, 0x10000)) if b not in used)
        net.bridge = bridge
        with netlink.host_lock():
            if parsed is not None:
                subnet, gateway, ip_range = parsed
                for other in self.state.networks.values():
                    if other.ipam is not None and other.ipam.subnet.overlaps(subnet):
                        raise errors.Forbidden(
                            "Pool overlaps with other one on this address space")
            else:
                subnet = ipam_mod.choose_subnet(
                    netlink.host_networks(self._ipr) + self.state.subnets())
                gateway, ip_range = None, None
            net.ipam = IPAM(subnet, gateway, ip_range=ip_range, name=net.name)
        _, _, net.bridge_created = netlink.ensure_bridge(
            self._ipr, bridge, (net.ipam.gateway, net.ipam.subnet), None)
        try:
            self.state.networks[net.id] = net
            if self.iptables:
                self._apply_table()
            self.state.save()
        except BaseException:
            self.state.networks.pop(net.id, None)
            if net.bridge_created:
                netlink.delete_link(self._ipr, bridge)
            raise
        return net

    def in_use(self, net: Network) -> list[str]:
        """The running containers with an endpoint on ``net``."""
        return [cid for cid, sb in self._sandboxes.items() if net.id in sb.endpoints]

    async def remove_network(self, ref: str) -> None:
        net = self.find(ref)
        if net.builtin:
            raise errors.Forbidden(f"{net.name} is a pre-defined network and cannot be removed")
        if self.in_use(net):
            raise errors.Forbidden(f"error while removing network: network {net.name} id "
                                   f"{net.id} has active endpoints")
        await self._run(self._remove_sync, net)
        self._event("destroy", net)

    def _remove_sync(self, net: Network) -> None:
        self._drop_spare_sync(net.id)
        self.state.networks.pop(net.id, None)
        try:
            if self.iptables:
                self._apply_table()
        finally:
            if net.bridge_created:
                netlink.delete_link(self._ipr, net.bridge)
            self.state.save()

    def networks(self) -> list[Network]:
        return list(self.state.networks.values())

    # -- endpoints ----------------------------------------------------------

    def sandbox(self, cid: str) -> Sandbox | None:
        return self._sandboxes.get(cid)

    def endpoint(self, cid: str) -> Endpoint | None:
        """The container's endpoint on its primary network."""
        sb = self._sandboxes.get(cid)
        return sb.primary if sb is not None else None

    def check_endpoint_config(self, ref: str, cfg: dict) -> Network:
        """The network ``ref`` if ``cfg`` (an ``EndpointSettings``) may be used on it.

        :raises NotFound: no such network.
        :raises InvalidParameter: dockerd's refusals (aliases or ``--ip`` on
            the default bridge, ``--ip`` without a user subnet).
        """
        net = self.find(ref)
        problem = _config_error(net, cfg or {})
        if problem:
            raise errors.InvalidParameter(problem)
        return net

    async def attach(self, cid: str, name: str, config: dict, host_config: dict,
                     networks: dict[str, dict]) -> Sandbox | None:
        """Give a starting container its namespace, one endpoint per network
        in ``networks`` (name -> ``EndpointSettings``; the primary first) and
        its published ports.  :return: ``None`` for host, none and
        ``container:`` modes."""
        if not uses_sandbox(host_config):
            return None
        requests = ports_mod.requests_for(config, host_config)
        wanted = [(self.find_for(ref, cfg or {}), cfg or {}) for ref, cfg in
                  (networks or {primary_network(host_config): {}}).items()]
        sb = await self._run(self._attach_sync, cid, name, wanted, requests)
        self._refill(wanted[0][0])
        sb.upstream = list(host_config.get("Dns") or [])
        try:
            if any(not self.state.networks[nid].builtin for nid in sb.endpoints):
                await self._start_dns(sb)
        except BaseException:
            await self.detach(cid)
            raise
        for nid in sb.endpoints:
            self._event("connect", self.state.networks[nid], container=cid)
        return sb

    def _attach_sync(self, cid: str, name: str, wanted: list, requests: list) -> Sandbox:
        taken = {(m.proto, m.host_ip, m.host_port)
                 for sb in self._sandboxes.values() for ep in sb.endpoints.values()
                 for m in ep.ports}
        mappings, sockets = ports_mod.reserve(requests, taken)
        spare = self._spares.pop(wanted[0][0].id, None)
        sb = Sandbox(cid, name, spare.netns if spare is not None
                     else os.path.join(self.netns_dir, cid[:12]))
        try:
            if spare is None:
                netlink.create_sandbox(sb.netns)
            self._sandboxes[cid] = sb
            routed = False
            for i, (net, cfg) in enumerate(wanted):
                route = not routed and not net.internal
                routed = routed or route
                ep = self._add_endpoint(sb, net, cfg, route, spare if i == 0 else None)
                if i == 0:
                    ep.ports, ep.sockets = mappings, sockets
            # No save: allocations are void at the next start anyway.
            if self.iptables and mappings:
                self._apply_ports()
        except BaseException:
            for s in sockets:
                s.close()
            self._detach_sync(cid, update_rules=bool(mappings))
            netlink.remove_netns(sb.netns)
            raise
        return sb

    def _new_veth(self) -> str:
        # Unique for the daemon's life: a removed namespace takes its veths
        # with it a little later (in the kernel), so a name is never reused.
        return f"{self.veth_prefix}{next(self._veth_seq) % 2**32:08x}"

    def _refill(self, net: Network) -> None:
        """Make ``net``'s next namespace on the network thread, off the
        start that just took the last one."""
        if self._pool is None or net.id in self._spares or not net.is_bridge:
            return
        d = self._run(self._refill_sync, net.id)
        d.addErrback(lambda f: log.failure("preparing a namespace for {net} failed", f,
                                           net=net.name))

    def _refill_sync(self, net_id: str) -> None:
        net = self.state.networks.get(net_id)
        if net is None or net.ipam is None or net_id in self._spares:
            return
        spare = Spare(os.path.join(self.netns_dir, f"spare-{next(self._spare_seq)}"),
                      self._new_veth())
        netlink.create_sandbox(spare.netns)
        try:
            netlink.add_veth(self._ipr, net.bridge, spare.netns, spare.veth, "eth0")
        except BaseException:
            netlink.remove_netns(spare.netns)
            raise
        self._spares[net_id] = spare

    def _drop_spare_sync(self, net_id: str) -> None:
        spare = self._spares.pop(net_id, None)
        if spare is not None:
            netlink.remove_netns(spare.netns)
            netlink.delete_link(self._ipr, spare.veth)

    def _add_endpoint(self, sb: Sandbox, net: Network, cfg: dict, route: bool,
                      spare: Spare | None = None) -> Endpoint:
        if not net.is_bridge or net.ipam is None:
            raise errors.InvalidParameter(
                f"container cannot be connected to network {net.name}")
        problem = _config_error(net, cfg)
        if problem:
            raise errors.InvalidParameter(problem)
        if net.id in sb.endpoints:
            raise errors.Forbidden(f"endpoint with name {sb.name} already exists in network "
                                   f"{net.name}")
        requested = (cfg.get("IPAMConfig") or {}).get("IPv4Address") or None
        address = net.ipam.allocate(sb.container_id, requested)
        try:
            used = {ep.ifname for ep in sb.endpoints.values()}
            ifname = ("eth0" if spare is not None else
                      next(f"eth{n}" for n in range(64) if f"eth{n}" not in used))
            veth = spare.veth if spare is not None else self._new_veth()
            ep = Endpoint(
                container_id=sb.container_id, network_id=net.id,
                endpoint_id=secrets.token_hex(32), address=str(address),
                prefixlen=net.ipam.subnet.prefixlen, gateway=str(net.ipam.gateway),
                mac=(cfg.get("MacAddress") or ipam_mod.mac_for_ip(address)), netns=sb.netns,
                veth=veth, ifname=ifname, aliases=list(cfg.get("Aliases") or []))
            gateway = net.ipam.gateway if route else None
            if spare is not None:
                netlink.configure_interface(sb.netns, ifname, address, net.ipam.subnet,
                                            gateway, ep.mac)
            else:
                netlink.add_interface(self._ipr, net.bridge, sb.netns, veth, ifname, address,
                                      net.ipam.subnet, gateway, ep.mac)
        except BaseException:
            net.ipam.release(sb.container_id)
            raise
        sb.endpoints[net.id] = ep
        return ep

    async def connect(self, cid: str, net: Network, cfg: dict) -> Endpoint:
        """Connect a running container (``POST /networks/{id}/connect``)."""
        sb = self._sandboxes.get(cid)
        if sb is None:
            raise errors.Conflict(f"container {cid} is not running")
        ep = await self._run(self._connect_sync, sb, net, cfg or {})
        if not net.builtin and not sb.dns:
            await self._start_dns(sb)
        self._event("connect", net, container=cid)
        return ep

    def _connect_sync(self, sb: Sandbox, net: Network, cfg: dict) -> Endpoint:
        return self._add_endpoint(sb, net, cfg, route=False)

    async def disconnect(self, cid: str, net: Network) -> None:
        """Disconnect a running container from ``net``."""
        sb = self._sandboxes.get(cid)
        if sb is None or net.id not in sb.endpoints:
            return
        await self._run(self._disconnect_sync, sb, net)
        self._event("disconnect", net, container=cid)

    def _disconnect_sync(self, sb: Sandbox, net: Network) -> None:
        ep = sb.endpoints.pop(net.id)
        try:
            if self.iptables and ep.ports:
                self._apply_ports()
            netlink.delete_link(self._ipr, ep.veth)
        finally:
            for s in ep.sockets:
                s.close()
            net.ipam.release(sb.container_id)

    async def detach(self, cid: str) -> None:
        """Undo :meth:`attach`; a container without a sandbox is fine."""
        sb = self._sandboxes.get(cid)
        if sb is None or self._pool is None:
            return
        await self._stop_dns(cid)
        nets = [self.state.networks.get(nid) for nid in sb.endpoints]
        await self._run(self._detach_sync, cid)
        for net in nets:
            if net is not None:
                self._event("disconnect", net, container=cid)

    def _detach_sync(self, cid: str, update_rules: bool = True) -> None:
        sb = self._sandboxes.pop(cid, None)
        if sb is None:
            return
        try:
            if update_rules and self.iptables and any(ep.ports for ep in
                                                      sb.endpoints.values()):
                self._apply_ports()
            # Removing the namespace takes the veth pairs with it once no
            # process holds it, in the kernel's own time: deleting each pair
            # here would wait ~20 ms for it.  Stragglers (a process that still
            # held it) go with the sweep at shutdown.
            netlink.remove_netns(sb.netns)
        finally:
            for ep in sb.endpoints.values():
                for s in ep.sockets:
                    s.close()
                net = self.state.networks.get(ep.network_id)
                if net is not None and net.ipam is not None:
                    net.ipam.release(cid)

    # -- embedded DNS -------------------------------------------------------

    async def _ensure_dns(self):
        if self._dns is None:
            from dockerpy.containers.etcfiles import host_upstreams
            from dockerpy.network.dns import EmbeddedDNS

            upstream = await self._run(host_upstreams)
            if self._dns is None:
                self._dns = EmbeddedDNS(self._reactor, self.resolve, self.reverse, upstream)
        return self._dns

    def _warm_dns(self) -> None:
        """Load the DNS server (twisted.names) once a user network exists,
        rather than in the first start on one."""
        if self._dns is None and self._pool is not None:
            defer.ensureDeferred(self._ensure_dns()).addErrback(
                lambda f: log.failure("loading the embedded DNS server failed", f))

    async def _start_dns(self, sb: Sandbox) -> None:
        await self._ensure_dns()
        await self._dns.serve(sb.container_id, sb.netns, upstream=sb.upstream or None)
        sb.dns = True

    async def _stop_dns(self, cid: str) -> None:
        sb = self._sandboxes.get(cid)
        if sb is not None and sb.dns and self._dns is not None:
            sb.dns = False
            try:
                await self._dns.stop(cid)
            except Exception:
                log.failure("stopping the DNS server of {cid} failed", cid=cid)

    def _peers(self, cid: str):
        """(sandbox, endpoint, network) of every container sharing a user
        network with ``cid`` (itself included)."""
        sb = self._sandboxes.get(cid)
        if sb is None:
            return
        for nid in sb.endpoints:
            net = self.state.networks.get(nid)
            if net is None or net.builtin:
                continue
            for other in self._sandboxes.values():
                ep = other.endpoints.get(nid)
                if ep is not None:
                    yield other, ep, net

    def resolve(self, cid: str, name: str) -> list[str]:
        """Addresses of ``name`` (a container name, network alias or short
        id) for a query from ``cid``, on the user networks they share."""
        name = name.rstrip(".").lower()
        found = []
        for other, ep, net in self._peers(cid):
            names = {other.name.lower(), other.container_id[:12], *(a.lower() for a in
                                                                   ep.aliases)}
            if name in names or name in {f"{n}.{net.name.lower()}" for n in names}:
                if ep.address not in found:
                    found.append(ep.address)
        return found

    def reverse(self, cid: str, address: str) -> str | None:
        for other, ep, net in self._peers(cid):
            if ep.address == address:
                return f"{other.name}.{net.name}"
        return None

    # -- views (Docker's JSON shapes) --------------------------------------

    def endpoint_view(self, cid: str, name: str, cfg: dict | None) -> dict:
        """One entry of ``NetworkSettings.Networks``."""
        cfg = cfg or {}
        try:
            net = self.find_for(name, cfg)
        except errors.DockerError:
            net = None
        sb = self._sandboxes.get(cid)
        ep = sb.endpoints.get(net.id) if sb is not None and net is not None else None
        user = net is not None and not net.builtin
        aliases = list(cfg.get("Aliases") or []) or None
        return {
            "IPAMConfig": cfg.get("IPAMConfig") or None, "Links": cfg.get("Links") or None,
            "Aliases": aliases, "MacAddress": ep.mac if ep else "", "DriverOpts": None,
            "NetworkID": net.id if net is not None else "",
            "EndpointID": ep.endpoint_id if ep else "",
            "Gateway": ep.gateway if ep else "", "IPAddress": ep.address if ep else "",
            "IPPrefixLen": ep.prefixlen if ep else 0, "IPv6Gateway": "",
            "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "DNSNames": ([sb.name, cid[:12], *(aliases or [])]
                         if user and sb is not None else None)}

    def container_networks(self, cid: str, host_config: dict,
                           networks: dict[str, dict] | None = None) -> dict:
        """``NetworkSettings.Networks`` of a container."""
        mode = host_config.get("NetworkMode") or "default"
        if mode.startswith("container:"):
            return {}
        networks = networks or {primary_network(host_config): {}}
        return {name: self.endpoint_view(cid, name, cfg) for name, cfg in networks.items()}

    def settings_view(self, cid: str, config: dict, host_config: dict,
                      networks: dict[str, dict] | None = None) -> dict:
        """The top-level ``NetworkSettings`` fields of container inspect
        (``Networks`` included) that come from the network."""
        sb = self._sandboxes.get(cid)
        out = {"Networks": self.container_networks(cid, host_config, networks), "Ports": {}}
        if sb is None:
            return out
        out.update({"SandboxKey": sb.netns, "SandboxID": sb.primary.endpoint_id
                    if sb.primary else "",
                    "Ports": ports_mod.ports_view(config, sb.primary.ports if sb.primary
                                                  else [])})
        default = self.default_bridge()
        ep = sb.endpoints.get(default.id)
        if ep is not None:
            # The deprecated top-level fields describe the default bridge only.
            out.update({"EndpointID": ep.endpoint_id, "Gateway": ep.gateway,
                        "IPAddress": ep.address, "IPPrefixLen": ep.prefixlen,
                        "MacAddress": ep.mac})
        return out

    def list_ports(self, cid: str, config: dict) -> list[dict]:
        """The ``Ports`` of ``GET /containers/json``: published ports while running."""
        ep = self.endpoint(cid)
        return ports_mod.list_ports_view(config, ep.ports if ep else [])

    def network_view(self, net: Network, names: dict[str, str] | None = None) -> dict:
        """``GET /networks/{id}``.

        :param names: container id -> name, to fill ``Containers``.
        """
        containers = {}
        for cid in self.in_use(net):
            ep = self._sandboxes[cid].endpoints[net.id]
            containers[cid] = {
                "Name": (names or {}).get(cid, self._sandboxes[cid].name),
                "EndpointID": ep.endpoint_id, "MacAddress": ep.mac,
                "IPv4Address": f"{ep.address}/{ep.prefixlen}", "IPv6Address": ""}
        return view(net, containers)

