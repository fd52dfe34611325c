# -*- test-case-name: dockerpy.test.test_network -*-
"""Published ports: from a container's ``PortBindings``/``ExposedPorts``/
``PublishAllPorts`` to concrete mappings, the host ports they reserve, and
the ``NetworkSettings.Ports``/list ``Ports`` shapes Docker shows.

A host port is reserved by binding (not listening on) a socket to it: DNAT
rewrites packets before socket lookup, so the socket never sees traffic, but
no other host process can take the port while the container publishes it.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import random
import socket

from dockerpy import errors


@dataclasses.dataclass(frozen=True)
class PortRequest:
    """One binding as asked: ``host_port`` ``(0, 0)`` means any free port."""

    proto: str
    container_port: int
    host_ip: str
    host_ports: tuple[int, int]


@dataclasses.dataclass(frozen=True)
class PortMapping:
    proto: str
    container_port: int
    host_ip: str
    host_port: int

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def _split_port(key: str) -> tuple[int, str]:
    port, _, proto = key.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise errors.InvalidParameter(f"invalid proto: {proto}")
    try:
        n = int(port)
    except ValueError:
        raise errors.InvalidParameter(f"invalid port specification: \"{port}\"") from None
    if not 0 < n < 65536:
        raise errors.InvalidParameter(f"invalid port specification: \"{port}\"")
    return n, proto


def _host_range(text: str) -> tuple[int, int]:
    text = (text or "").strip()
    if not text:
        return 0, 0
    lo, _, hi = text.partition("-")
    try:
        a, b = int(lo), int(hi or lo)
    except ValueError:
        raise errors.InvalidParameter(f"invalid hostPort: {text}") from None
    if not (0 <= a <= b < 65536):
        raise errors.InvalidParameter(f"invalid hostPort: {text}")
    return a, b


def requests_for(config: dict, host_config: dict) -> list[PortRequest]:
    """The port requests of a container.

    :raises InvalidParameter: malformed ports or host addresses.
    """
    bindings = host_config.get("PortBindings") or {}
    if not isinstance(bindings, dict):
        raise errors.InvalidParameter("invalid JSON: PortBindings must be an object")
    out: list[PortRequest] = []
    for key, entries in sorted(bindings.items()):
        port, proto = _split_port(key)
        for entry in entries or [{}]:
            host_ip = (entry or {}).get("HostIp") or "0.0.0.0"
            try:
                addr = ipaddress.ip_address(host_ip)
            except ValueError:
                raise errors.InvalidParameter(f"invalid IP address: {host_ip}") from None
            if addr.version != 4:
                continue  # IPv6 publishing is not supported (the bridge is IPv4-only)
            out.append(PortRequest(proto, port, str(addr),
                                   _host_range((entry or {}).get("HostPort") or "")))
    if host_config.get("PublishAllPorts"):
        bound = {(r.container_port, r.proto) for r in out}
        for key in sorted(config.get("ExposedPorts") or {}):
            port, proto = _split_port(key)
            if (port, proto) not in bound:
                out.append(PortRequest(proto, port, "0.0.0.0", (0, 0)))
    return out


def ephemeral_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 49153, 60999


def _bind(proto: str, host_ip: str, port: int) -> socket.socket:
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    s = socket.socket(socket.AF_INET, kind)
    try:
        s.bind((host_ip, port))
    except BaseException:
        s.close()
        raise
    return s


def _clashes(proto: str, host_ip: str, port: int, taken: set[tuple[str, str, int]]) -> bool:
    return any(p == proto and hp == port and
               (ip == host_ip or "0.0.0.0" in (ip, host_ip)) for p, ip, hp in taken)


def reserve(requests: list[PortRequest], taken: set[tuple[str, str, int]],
            rng: random.Random | None = None,
            bind=_bind) -> tuple[list[PortMapping], list[socket.socket]]:
    """Blocking: choose and reserve a host port for every request.

    :param taken: ``(proto, host_ip, port)`` already published by containers.
    :return: the mappings and the reserving sockets (close them to release).
    :raises Conflict: an explicit port is in use (message as dockerd's).
    """
    rng = rng or random.Random()
    mappings: list[PortMapping] = []
    sockets: list[socket.socket] = []
    mine = set(taken)
    try:
        for req in requests:
            lo, hi = req.host_ports
            if (lo, hi) == (0, 0):
                lo, hi = ephemeral_range()
                candidates = list(range(lo, hi + 1))
                rng.shuffle(candidates)
                candidates = candidates[:200]
            else:
                candidates = list(range(lo, hi + 1))
            last_error = None
            for port in candidates:
                if _clashes(req.proto, req.host_ip, port, mine):
                    last_error = "port is already allocated"
                    continue
                try:
                    sock = bind(req.proto, req.host_ip, port)
                except OSError as e:
                    last_error = f"listen {req.proto}4 {req.host_ip}:{port}: bind: " \
                                 f"{(e.strerror or str(e)).lower()}"
                    continue
                sockets.append(sock)
                mine.add((req.proto, req.host_ip, port))
                mappings.append(PortMapping(req.proto, req.container_port, req.host_ip, port))
                break
            else:
                where = f"{req.host_ip}:{lo}" if lo == hi else f"{req.host_ip}:{lo}-{hi}"
                if last_error == "port is already allocated":
                    raise errors.Conflict(f"Bind for {where} failed: port is already allocated")
                raise errors.Conflict(
                    f"driver failed programming external connectivity: Error starting userland "
                    f"proxy: {last_error or 'no free port in ' + where}")
    except BaseException:
        for s in sockets:
            s.close()
        raise
    return mappings, sockets


def ports_view(config: dict, mappings: list[PortMapping]) -> dict:
    """``NetworkSettings.Ports``: every exposed or published port, with its
    bindings (``None`` when exposed only)."""
    view: dict = {}
    for key in config.get("ExposedPorts") or {}:
        port, proto = _split_port(key)
        view[f"{port}/{proto}"] = None
    for m in mappings:
        view.setdefault(f"{m.container_port}/{m.proto}", None)
        entries = view[f"{m.container_port}/{m.proto}"] or []
        entries.append({"HostIp": m.host_ip, "HostPort": str(m.host_port)})
        view[f"{m.container_port}/{m.proto}"] = entries
    return view


def list_ports_view(config: dict, mappings: list[PortMapping]) -> list[dict]:
    """The ``Ports`` column of ``GET /containers/json``."""
    out = []
    published = set()
    for m in mappings:
        published.add((m.container_port, m.proto))
        out.append({"IP": m.host_ip, "PrivatePort": m.container_port,
                    "PublicPort": m.host_port, "Type": m.proto})
    for key in config.get("ExposedPorts") or {}:
        port, proto = _split_port(key)
        if (port, proto) not in published:
            out.append({"PrivatePort": port, "Type": proto})
    return out
