# -*- test-case-name: dockerpy.test.test_network -*-
"""The daemon's networks as data: the built-in ``bridge``, ``host`` and
``none`` and the user-defined bridge networks, each with its IPAM, and the
file that remembers them (``<data-root>/network/state.json``).

Pure except :meth:`NetworkState.load`/:meth:`NetworkState.save` (small
atomic JSON).  Allocations are not kept across restarts: no container runs
when a daemon starts.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from dockerpy import atomic, errors
from dockerpy.network.ipam import IPAM, IPv4Net

BUILTIN = ("bridge", "host", "none")
#: Docker's ``Driver`` of each built-in network.
BUILTIN_DRIVERS = {"bridge": "bridge", "host": "host", "none": "null"}


@dataclasses.dataclass
class Network:
    """One network.  ``ipam`` is ``None`` for ``host`` and ``none``, and for
    the default bridge until the daemon has given it an address."""

    id: str
    name: str
    driver: str
    created: str = "0001-01-01T00:00:00Z"
    bridge: str = ""
    ipam: IPAM | None = None
    internal: bool = False
    attachable: bool = False
    #: The user gave the subnet (``--subnet``): only then may containers ask for an address.
    user_subnet: bool = False
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    options: dict[str, str] = dataclasses.field(default_factory=dict)
    #: We made the bridge (so we remove it).
    bridge_created: bool = False

    @property
    def builtin(self) -> bool:
        return self.name in BUILTIN

    @property
    def is_bridge(self) -> bool:
        return self.driver == "bridge"

    def to_json(self) -> dict:
        out = {k: v for k, v in dataclasses.asdict(self).items() if k != "ipam"}
        out["ipam"] = self.ipam.to_json() if self.ipam is not None else None
        return out

    @classmethod
    def from_json(cls, obj: dict) -> "Network":
        fields = {f.name for f in dataclasses.fields(cls)} - {"ipam"}
        net = cls(**{k: v for k, v in obj.items() if k in fields})
        if obj.get("ipam"):
            net.ipam = IPAM.from_json(obj["ipam"], net.name)
        return net


class NetworkState:
    """Every network by id, written atomically on every change."""

    def __init__(self, path: str):
        self.path = path
        self.networks: dict[str, Network] = {}

    def load(self) -> None:
        try:
            obj = atomic.read_json(self.path)
        except FileNotFoundError:
            return
        except (OSError, ValueError):
            return  # unreadable: start afresh, as if first run
        if obj.get("Version") == 1:
            # The first layout: the built-in networks' ids and the bridge's IPAM.
            for name, nid in (obj.get("Ids") or {}).items():
                if name in BUILTIN:
                    self.networks[nid] = Network(nid, name, BUILTIN_DRIVERS[name])
            return
        for item in obj.get("Networks") or []:
            try:
                net = Network.from_json(item)
            except (KeyError, TypeError, ValueError):
                continue
            self.networks[net.id] = net

    def save(self) -> None:
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        atomic.write_json(self.path, {
            "Version": 2, "Networks": [n.to_json() for n in self.networks.values()]})

    def by_name(self, name: str) -> Network | None:
        for net in self.networks.values():
            if net.name == name:
                return net
        return None

    def find(self, ref: str) -> Network:
        """The network named ``ref``, or with that id or unique id prefix
        (dockerd's order: full id, exact name, id prefix).

        :raises NotFound: as dockerd words it.
        """
        if ref in self.networks:
            return self.networks[ref]
        net = self.by_name(ref)
        if net is not None:
            return net
        found = [n for n in self.networks.values() if ref and n.id.startswith(ref)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise errors.InvalidParameter(
                f"network {ref} is ambiguous ({len(found)} matches found based on ID prefix)")
        raise errors.NotFound(f"network {ref} not found")

    def subnets(self, exclude: str = "") -> list[IPv4Net]:
        return [n.ipam.subnet for n in self.networks.values()
                if n.ipam is not None and n.id != exclude]


def view(net: Network, containers: dict[str, dict] | None = None) -> dict:
    """Docker's ``Network`` JSON (``GET /networks/{id}``).

    :param containers: endpoint views by container id (``Containers``).
    """
    config: list[dict[str, Any]] = []
    if net.ipam is not None and net.driver == "bridge":
        entry = {"Subnet": str(net.ipam.subnet), "Gateway": str(net.ipam.gateway)}
        if net.ipam.ip_range is not None:
            entry["IPRange"] = str(net.ipam.ip_range)
        config.append(entry)
    return {
        "Name": net.name, "Id": net.id, "Created": net.created, "Scope": "local",
        "Driver": net.driver, "EnableIPv4": True, "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": None if net.builtin else {},
                 "Config": config},
        "Internal": net.internal, "Attachable": net.attachable, "Ingress": False,
        "ConfigFrom": {"Network": ""}, "ConfigOnly": False,
        "Containers": dict(containers or {}), "Options": dict(net.options),
        "Labels": dict(net.labels),
    }

