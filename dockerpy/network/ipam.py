# -*- test-case-name: dockerpy.test.test_network -*-
"""Address management of the bridge network: which subnet the bridge gets,
which address and MAC each container gets, and the file that remembers it.

Pure logic; :mod:`dockerpy.network.model` keeps it on disk.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable

from dockerpy import errors

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
    unless given; containers get the lowest free address after it, inside
    ``ip_range`` when one is set (``--ip-range``), or the one they ask for.

    :ivar allocations: container id -> address (text).
    """

    def __init__(self, subnet: IPv4Net, gateway: ipaddress.IPv4Address | None = None,
                 allocations: dict[str, str] | None = None, ip_range: IPv4Net | None = None,
                 name: str = "bridge"):
        self.subnet = subnet
        self.gateway = gateway if gateway is not None else next(subnet.hosts())
        self.allocations: dict[str, str] = dict(allocations or {})
        self.ip_range = ip_range
        self.name = name

    def allocate(self, owner: str, requested: str | None = None) -> ipaddress.IPv4Address:
        """An address for ``owner`` (the same again if it has one).

        :param requested: the address the user asked for (``--ip``).
        :raises Unavailable: the subnet is full.
        :raises InvalidParameter: ``requested`` is outside the subnet or taken.
        """
        if owner in self.allocations:
            return ipaddress.IPv4Address(self.allocations[owner])
        taken = set(self.allocations.values())
        if requested:
            try:
                ip = ipaddress.IPv4Address(requested)
            except ValueError:
                raise errors.InvalidParameter(f"invalid IPv4 address: {requested}") from None
            if ip not in self.subnet or ip in (self.subnet.network_address,
                                               self.subnet.broadcast_address):
                raise errors.InvalidParameter(
                    f"no configured subnet or ip-range contain the IP address {ip}")
            if ip == self.gateway or str(ip) in taken:
                raise errors.InvalidParameter("Address already in use")
            self.allocations[owner] = str(ip)
            return ip
        for ip in (self.ip_range or self.subnet).hosts():
            if ip == self.gateway or str(ip) in taken or ip not in self.subnet:
                continue
            self.allocations[owner] = str(ip)
            return ip
        raise errors.Unavailable(f"no available IPv4 addresses on this network's address pools: "
                                 f"{self.name} ({self.subnet})")

    def release(self, owner: str) -> None:
        self.allocations.pop(owner, None)

    def to_json(self) -> dict:
        return {"Subnet": str(self.subnet), "Gateway": str(self.gateway),
                "IPRange": str(self.ip_range) if self.ip_range else "",
                "Allocations": dict(self.allocations)}

    @classmethod
    def from_json(cls, obj: dict, name: str = "bridge") -> "IPAM":
        return cls(IPv4Net(obj["Subnet"]), ipaddress.IPv4Address(obj["Gateway"]),
                   obj.get("Allocations") or {},
                   IPv4Net(obj["IPRange"]) if obj.get("IPRange") else None, name)


def parse_ipam_config(config: dict) -> tuple[IPv4Net, ipaddress.IPv4Address | None,
                                             IPv4Net | None]:
    """One ``IPAM.Config`` entry of ``POST /networks/create``: (subnet,
    gateway or None, ip range or None), checked as dockerd checks them.

    :raises InvalidParameter: with dockerd's words.
    """
    try:
        subnet = IPv4Net(config.get("Subnet") or "", strict=False)
    except ValueError:
        raise errors.InvalidParameter(
            f"invalid subnet {config.get('Subnet')!r}: expected an IPv4 CIDR") from None
    if str(subnet.network_address) != (config.get("Subnet") or "").split("/")[0]:
        raise errors.InvalidParameter(
            f"invalid subnet {config['Subnet']}: it should be {subnet}")
    gateway = ip_range = None
    if config.get("Gateway"):
        try:
            gateway = ipaddress.IPv4Address(config["Gateway"])
        except ValueError:
            raise errors.InvalidParameter(f"invalid gateway address {config['Gateway']}"
                                          ) from None
        if gateway not in subnet:
            raise errors.InvalidParameter(
                f"invalid pool request: gateway {gateway} is not in subnet {subnet}")
    if config.get("IPRange"):
        try:
            ip_range = IPv4Net(config["IPRange"], strict=False)
        except ValueError:
            raise errors.InvalidParameter(f"invalid ip-range {config['IPRange']}") from None
        if not ip_range.subnet_of(subnet):
            raise errors.InvalidParameter(
                f"invalid pool request: ip-range {ip_range} is not in subnet {subnet}")
    return subnet, gateway, ip_range
