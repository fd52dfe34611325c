# -*- test-case-name: dockerpy.test.test_network -*-
"""Address management of the bridge network: which subnet the bridge gets,
which address and MAC each container gets, and the file that remembers it.

Pure logic except :meth:`IPAM.save`/:func:`IPAM.load` (small atomic JSON).
"""

from __future__ import annotations

import ipaddress
import json
import os
from typing import Iterable

from dockerpy import atomic, errors

IPv4Net = ipaddress.IPv4Network


def default_pools() -> list[IPv4Net]:
    """Docker's default address pools in the order dockerd tries them:
    172.17.0.0/16 ... 172.31.0.0/16, then 192.168.0.0/20, 192.168.16.0/20 ...
    (moby ``ipamutils``: 172.17.0.0/16 split in /16, 192.168.0.0/16 in /20)."""
    pools = [IPv4Net(f"172.{n}.0.0/16") for n in range(17, 32)]
    pools += list(IPv4Net("192.168.0.0/16").subnets(new_prefix=20))
    return pools


def choose_subnet(in_use: Iterable[IPv4Net], preferred: IPv4Net | None = None,
                  pools: list[IPv4Net] | None = None) -> IPv4Net:
    """The first pool that overlaps nothing in ``in_use`` (the host's routes
    and addresses, other daemons' bridges).

    :param preferred: tried first (the subnet this daemon had before a restart).
    :raises Unavailable: every pool overlaps.
    """
    used = [n for n in in_use if n.prefixlen > 0]  # a default route overlaps everything
    candidates = ([preferred] if preferred is not None else []) + list(pools or default_pools())
    for net in candidates:
        if not any(net.overlaps(u) for u in used):
            return net
    raise errors.Unavailable(
        "could not find an available, non-overlapping IPv4 address pool among the defaults to "
        "assign to the network")


def parse_bip(bip: str) -> tuple[ipaddress.IPv4Address, IPv4Net]:
    """``--bip 10.20.0.1/24`` -> (gateway, subnet).

    :raises InvalidParameter: not an IPv4 CIDR, or the network address itself.
    """
    try:
        iface = ipaddress.IPv4Interface(bip)
    except ValueError:
        raise errors.InvalidParameter(f"invalid --bip: {bip}: expected an IPv4 address/prefix"
                                      ) from None
    if iface.ip == iface.network.network_address or iface.network.prefixlen > 30:
        raise errors.InvalidParameter(f"invalid --bip: {bip}")
    return iface.ip, iface.network


def mac_for_ip(ip: ipaddress.IPv4Address | str) -> str:
    """Docker's MAC for an IPv4 address: ``02:42`` then the four address bytes."""
    packed = ipaddress.IPv4Address(ip).packed
    return "02:42:" + ":".join(f"{b:02x}" for b in packed)


class IPAM:
    """Addresses of one network: the gateway is the first host address
    unless given; containers get the lowest free address after it.

    :ivar allocations: container id -> address (text).
    """

    def __init__(self, subnet: IPv4Net, gateway: ipaddress.IPv4Address | None = None,
                 allocations: dict[str, str] | None = None):
        self.subnet = subnet
        self.gateway = gateway if gateway is not None else next(subnet.hosts())
        self.allocations: dict[str, str] = dict(allocations or {})

    def allocate(self, owner: str) -> ipaddress.IPv4Address:
        """An address for ``owner`` (the same again if it has one).

        :raises Unavailable: the subnet is full.
        """
        if owner in self.allocations:
            return ipaddress.IPv4Address(self.allocations[owner])
        taken = set(self.allocations.values())
        for ip in self.subnet.hosts():
            if ip == self.gateway or str(ip) in taken:
                continue
            self.allocations[owner] = str(ip)
            return ip
        raise errors.Unavailable(f"no available IPv4 addresses on this network's address pools: "
                                 f"bridge ({self.subnet})")

    def release(self, owner: str) -> None:
        self.allocations.pop(owner, None)

    def to_json(self) -> dict:
        return {"Subnet": str(self.subnet), "Gateway": str(self.gateway),
                "Allocations": dict(self.allocations)}

    @classmethod
    def from_json(cls, obj: dict) -> "IPAM":
        return cls(IPv4Net(obj["Subnet"]), ipaddress.IPv4Address(obj["Gateway"]),
                   obj.get("Allocations") or {})


class NetworkState:
    """What ``<data-root>/network/state.json`` holds: the bridge network's id,
    name, subnet, whether we created its bridge, and its allocations; the ids
    of the ``host`` and ``none`` networks.  Written atomically on every change."""

    def __init__(self, path: str):
        self.path = path
        self.ids: dict[str, str] = {}
        self.ipam: IPAM | None = None
        self.bridge_created = False

    def load(self) -> None:
        try:
            obj = atomic.read_json(self.path)
        except FileNotFoundError:
            return
        except (OSError, ValueError):
            return  # unreadable: start afresh, as if first run
        self.ids = dict(obj.get("Ids") or {})
        if obj.get("IPAM"):
            try:
                self.ipam = IPAM.from_json(obj["IPAM"])
            except (KeyError, ValueError):
                self.ipam = None
        self.bridge_created = bool(obj.get("BridgeCreated"))

    def save(self) -> None:
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        atomic.write_json(self.path, {
            "Version": 1, "Ids": self.ids, "BridgeCreated": self.bridge_created,
            "IPAM": self.ipam.to_json() if self.ipam is not None else None})

    def __repr__(self) -> str:  # pragma: no cover (debugging aid)
        return json.dumps({"ids": self.ids, "ipam": self.ipam and self.ipam.to_json()})
