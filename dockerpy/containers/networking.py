# -*- test-case-name: dockerpy.test.test_integration_user_networks -*-
"""What a container's network settings mean to the container service: the
networks a new container joins (``NetworkMode`` plus
``NetworkingConfig.EndpointsConfig``), checked as dockerd checks them, the
``container:<ref>`` mode, and legacy ``--link`` entries for /etc/hosts.

Pure functions over the network service and container records; the
container service calls them at create and start.
"""

from __future__ import annotations

import os
from typing import Callable

from dockerpy import errors

BASIC_MODES = ("default", "bridge", "none", "host")


def exclusive_mode_error(name: str) -> str:
    """dockerd's words for joining ``host`` (``name == "host"``) or ``none``
    (or a ``container:`` mode) to other networks."""
    if name == "host":
        return ("container cannot be disconnected from host network or connected to host "
                "network")
    return ("container cannot be connected to multiple networks with one of the networks "
            "in private (none) mode")


def container_mode_target(host_config: dict) -> str | None:
    """The ``<ref>`` of ``NetworkMode: container:<ref>``, else ``None``."""
    mode = host_config.get("NetworkMode") or ""
    return mode.split(":", 1)[1] if mode.startswith("container:") else None


def plan(network, config: dict, host_config: dict, networking_config: dict | None,
         get_container: Callable[[str], object]) -> dict[str, dict]:
    """The networks a new container joins: name -> ``EndpointSettings`` as
    stored (Aliases, IPAMConfig, Links, MacAddress, NetworkID), the primary
    network first; ``{}`` for host, none and ``container:`` modes.

    :param network: the network service, or ``None`` (only the basic modes).
    :raises NotFound: an unknown network or container.
    :raises InvalidParameter: dockerd's conflicts.
    """
    mode = host_config.get("NetworkMode") or "default"
    endpoints = ((networking_config or {}).get("EndpointsConfig") or {})
    if not isinstance(endpoints, dict):
        raise errors.InvalidParameter("invalid JSON: EndpointsConfig must be an object")
    target = container_mode_target(host_config)
    if target is not None:
        get_container(target)
        if host_config.get("PortBindings") or host_config.get("PublishAllPorts"):
            raise errors.InvalidParameter(
                "conflicting options: port publishing and the container type network mode")
        if config.get("Hostname"):
            raise errors.InvalidParameter(
                "conflicting options: hostname and the network mode")
        if host_config.get("Dns") or host_config.get("ExtraHosts"):
            raise errors.InvalidParameter(
                "conflicting options: dns and the network mode")
        return {}
    if network is None:
        if mode not in BASIC_MODES:
            raise errors.NotFound(f"network {mode} not found")
        return {}
    if mode in ("host", "none"):
        if any(name != mode for name in endpoints):
            raise errors.InvalidParameter(exclusive_mode_error(mode))
        return {}
    primary = "bridge" if mode == "default" else mode
    if mode == "default" and "default" in endpoints:
        # The docker CLI names the default network "default" too.
        endpoints = dict(endpoints)
        endpoints.setdefault("bridge", endpoints.pop("default"))
    out: dict[str, dict] = {}
    for ref in [primary] + [r for r in endpoints if r != primary]:
        cfg = endpoints.get(ref) or {}
        if not isinstance(cfg, dict):
            raise errors.InvalidParameter("invalid JSON: EndpointSettings must be an object")
        try:
            net = network.check_endpoint_config(ref, cfg)
        except errors.NotFound:
            # As dockerd: a network that does not exist (yet) fails the
            # start, not the create.
            out[ref] = endpoint_settings(cfg, "")
            continue
        if net.name in ("host", "none"):
            raise errors.InvalidParameter(exclusive_mode_error(net.name))
        out[net.name] = endpoint_settings(cfg, net.id)
    for link in host_config.get("Links") or []:
        get_container(parse_link(link)[0])
    return out


def endpoint_settings(cfg: dict, network_id: str) -> dict:
    """What a container keeps of an ``EndpointSettings`` it was given."""
    ipam = cfg.get("IPAMConfig") or {}
    return {"Aliases": list(cfg.get("Aliases") or []) or None,
            "IPAMConfig": ({k: v for k, v in ipam.items() if v} or None),
            "Links": list(cfg.get("Links") or []) or None,
            "MacAddress": cfg.get("MacAddress") or "", "NetworkID": network_id}


def parse_link(link: str) -> tuple[str, str]:
    """``name:alias`` or ``/name:/me/alias`` -> (name, alias)."""
    name, _, alias = link.partition(":")
    name = name.lstrip("/")
    alias = alias.rsplit("/", 1)[-1] if alias else name
    return name, alias


def link_hosts(links: list[str], get_container: Callable[[str], object], address_of
               ) -> list[str]:
    """``/etc/hosts`` entries (``"alias name:ip"``, the ``ExtraHosts`` form) for
    ``--link``; each linked container must be running, as dockerd demands.

    :param address_of: container id -> its address, or ``None``.
    :raises Conflict: a linked container is not running.
    """
    entries = []
    for link in links:
        name, alias = parse_link(link)
        rec = get_container(name)
        ip = address_of(rec.id) if rec.state.running else None
        if not ip:
            raise errors.Conflict(f"Cannot link to a non running container: /{rec.name} AS "
                                  f"/{alias}")
        names = alias if alias == rec.name else f"{alias} {rec.id[:12]} {rec.name}"
        entries.append(f"{names}:{ip}")
    return entries


def shared_etc_mounts(other_dir: str) -> list[dict]:
    """``--network container:<ref>``: the other container's /etc/hostname,
    hosts and resolv.conf, as dockerd shares them."""
    return [{"destination": f"/etc/{name}", "type": "bind",
             "source": os.path.join(other_dir, name), "options": ["rbind", "rprivate"]}
            for name in ("hostname", "hosts", "resolv.conf")]
