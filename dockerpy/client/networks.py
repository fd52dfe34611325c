# -*- test-case-name: dockerpy.test.test_client_networks -*-
"""``docker network create/ls/inspect/rm/connect/disconnect/prune``,
``docker port``, and the networking flags of ``run``/``create``
(``--network`` with its ``name=...,alias=...`` syntax, ``--network-alias``,
``--ip``, ``--ip6``, ``--link``, ``--link-local-ip``, ``--mac-address``)
turned into ``HostConfig.NetworkMode`` and ``NetworkingConfig`` exactly as
the docker CLI v28 sends them.

Standard library only, as every client module.
"""

from __future__ import annotations

import csv
import functools
import ipaddress
import json
import re

from dockerpy.client.command import Cli, Parser, StatusError, confirm, parse_filters
from dockerpy.client.format import Context, truncate_id
from dockerpy.client.transport import APIError

TYPE_CHECKING = False  # typing is for annotations only: importing it costs ~10 ms
if TYPE_CHECKING:  # of every bin/docker run
    from typing import Any

NETWORK_HEADERS = {
    "ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
    "IPv4": "IPV4", "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS",
    "Label": "LABEL", "CreatedAt": "CREATED",
}


# ------------------------------------------------------------ helpers

def natural_less(a: str, b: str) -> bool:
    """``sortorder.NaturalLess``: digit runs compare as numbers, and sort
    before other characters; the docker CLI orders ``network ls`` and
    ``port`` output with it."""
    s1, s2 = a.encode(), b.encode()
    i = j = 0
    while i < len(s1) and j < len(s2):
        d1, d2 = s1[i:i + 1].isdigit(), s2[j:j + 1].isdigit()
        if d1 != d2:
            return d1
        if not d1:
            if s1[i] != s2[j]:
                return s1[i] < s2[j]
            i += 1
            j += 1
            continue
        while i < len(s1) and s1[i] == 0x30:
            i += 1
        while j < len(s2) and s2[j] == 0x30:
            j += 1
        nz1, nz2 = i, j
        while i < len(s1) and s1[i:i + 1].isdigit():
            i += 1
        while j < len(s2) and s2[j:j + 1].isdigit():
            j += 1
        if i - nz1 != j - nz2:
            return i - nz1 < j - nz2
        if s1[nz1:i] != s2[nz2:j]:
            return s1[nz1:i] < s2[nz2:j]
        if nz1 != nz2:
            return nz1 < nz2
    return len(s1) < len(s2)


def natural_key(text: str) -> Any:
    """A sort key for :func:`natural_less`."""
    return functools.cmp_to_key(
        lambda x, y: -1 if natural_less(x, y) else (1 if natural_less(y, x) else 0))(text)


def go_time_string(value: str) -> str:
    """An RFC 3339 timestamp as Go's ``time.Time.String()`` prints it
    (``2026-11-27 16:00:00.123456789 +0000 UTC``), nanoseconds kept."""
    m = re.match(r"^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$",
                 value or "")
    if not m:
        return "0001-01-01 00:00:00 +0000 UTC"
    frac = (m.group(3) or "").rstrip("0")
    stamp = f"{m.group(1)} {m.group(2)}" + (f".{frac}" if frac else "")
    zone = m.group(4)
    if zone == "Z":
        return stamp + " +0000 UTC"
    offset = zone.replace(":", "")
    return f"{stamp} {offset} {offset}"


def _kv_list(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        k, _, v = item.partition("=")
        out[k] = v
    return out


def _filters(p: Parser, values: list[str], flag: str) -> str | None:
    """The ``filters`` query parameter, keys sorted as Go marshals its map;
    a malformed value is a usage error, as pflag reports it."""
    for value in values:
        if "=" not in value:
            p._error(f'invalid argument "{value}" for "{flag}" flag: bad format of filter '
                     f"(expected name=value)")
    encoded = parse_filters(values)
    if encoded is None:
        return None
    return json.dumps(json.loads(encoded), sort_keys=True, separators=(",", ":"))


def _go_bool(value: Any) -> str:
    return "true" if value else "false"


class NetworkContext(Context):
    """One ``network ls`` row: Docker's ``formatter.networkContext`` fields."""

    FIELDS = ("CreatedAt", "Driver", "ID", "IPv4", "IPv6", "Internal", "Labels", "Name",
              "Scope")

    def __init__(self, net: dict[str, Any], trunc: bool = True):
        self._n = net
        self._trunc = trunc

    def ID(self) -> str:  # noqa: N802 - Docker's template names
        nid = self._n.get("Id", "")
        return truncate_id(nid) if self._trunc else nid

    def Name(self) -> str:  # noqa: N802
        return self._n.get("Name", "")

    def Driver(self) -> str:  # noqa: N802
        return self._n.get("Driver", "")

    def Scope(self) -> str:  # noqa: N802
        return self._n.get("Scope", "")

    def IPv4(self) -> str:  # noqa: N802
        return _go_bool(self._n.get("EnableIPv4"))

    def IPv6(self) -> str:  # noqa: N802
        return _go_bool(self._n.get("EnableIPv6"))

    def Internal(self) -> str:  # noqa: N802
        return _go_bool(self._n.get("Internal"))

    def Labels(self) -> str:  # noqa: N802
        labels = self._n.get("Labels") or {}
        return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))

    def Label(self, name: str) -> str:  # noqa: N802
        return (self._n.get("Labels") or {}).get(name, "")

    def CreatedAt(self) -> str:  # noqa: N802
        return go_time_string(self._n.get("Created", ""))


# ------------------------------------------------------------ network create

def _subnet_matches(subnet: str, data: str) -> bool:
    """The CLI's ``subnetMatches``: is *data* (an address or a CIDR) inside
    *subnet*?"""
    try:
        net = ipaddress.ip_network(subnet, strict=False)
    except ValueError:
        raise StatusError(1, f"invalid subnet: invalid CIDR address: {subnet}") from None
    try:
        if "/" in data:
            addr = ipaddress.ip_interface(data).ip
        else:
            addr = ipaddress.ip_address(data)
    except ValueError:
        if "/" in data:
            raise StatusError(1, f"invalid cidr: invalid CIDR address: {data}") from None
        return False
    return addr.version == net.version and addr in net


def _assign_to_subnets(data: dict[str, dict[str, Any]], subnets: list[str], values: list[str],
                       key: str, what: str, twice: str) -> None:
    """Put each of ``values`` (ranges or gateways) under ``key`` of every
    subnet holding it, refusing a second one per subnet (``twice``, with the
    docker CLI's words) and one no subnet holds."""
    for value in values:
        match = False
        for subnet in subnets:
            if not _subnet_matches(subnet, value):
                continue
            if data[subnet].get(key):
                raise StatusError(1, twice.format(new=value, old=data[subnet][key],
                                                  subnet=subnet))
            data[subnet][key] = value
            match = True
        if not match:
            raise StatusError(1, f"no matching subnet for {what} {value}")


def consolidate_ipam(subnets: list[str], ranges: list[str], gateways: list[str],
                     aux: dict[str, str]) -> list[dict[str, Any]]:
    """The CLI's ``consolidateIpam``: one ``IPAM.Config`` entry per subnet,
    with the range, gateway and auxiliary addresses that fall inside it.

    :raises StatusError: (status 1) with the docker CLI's message.
    """
    if len(subnets) < len(ranges) or len(subnets) < len(gateways):
        raise StatusError(1, "every ip-range or gateway must have a corresponding subnet")
    data: dict[str, dict[str, Any]] = {}
    for s in subnets:
        for k in data:
            if _subnet_matches(s, k) or _subnet_matches(k, s):
                raise StatusError(1, "multiple overlapping subnet configuration is not "
                                     "supported")
        data[s] = {"Subnet": s}
    _assign_to_subnets(data, subnets, ranges, "IPRange", "range",
                       "cannot configure multiple ranges ({new}, {old}) on the same subnet "
                       "({subnet})")
    _assign_to_subnets(data, subnets, gateways, "Gateway", "gateway",
                       "cannot configure multiple gateways ({new}, {old}) for the same subnet "
                       "({subnet})")
    for key, addr in aux.items():
        match = False
        for s in subnets:
            if _subnet_matches(s, addr):
                data[s].setdefault("AuxiliaryAddresses", {})[key] = addr
                match = True
        if not match:
            raise StatusError(1, f"no matching subnet for aux-address {addr}")
    # Fields in the order Go marshals network.IPAMConfig.
    order = ("Subnet", "IPRange", "Gateway", "AuxiliaryAddresses")
    return [{k: d[k] for k in order if k in d} for d in data.values()]


def create(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS] NETWORK", "Create a network", min_args=1, max_args=1)
    p.add("--attachable", kind="bool", help="Enable manual container attachment")
    p.add("--aux-address", kind="list", help="Auxiliary IPv4 or IPv6 addresses used by "
          "Network driver")
    p.add("--config-from", help="The network from which to copy the configuration")
    p.add("--config-only", kind="bool", help="Create a configuration only network")
    p.add("-d", "--driver", default="bridge", help='Driver to manage the Network (default '
          '"bridge")')
    p.add("--gateway", kind="list", help="IPv4 or IPv6 Gateway for the master subnet")
    p.add("--ingress", kind="bool", help="Create swarm routing-mesh network")
    p.add("--internal", kind="bool", help="Restrict external access to the network")
    p.add("--ip-range", kind="list", help="Allocate container ip from a sub-range")
    p.add("--ipam-driver", default="default", help='IP Address Management Driver (default '
          '"default")')
    p.add("--ipam-opt", kind="list", help="Set IPAM driver specific options")
    p.add("--ipv4", kind="bool", default=None, help="Enable or disable IPv4 address "
          "assignment (default true)")
    p.add("--ipv6", kind="bool", default=None, help="Enable or disable IPv6 address "
          "assignment")
    p.add("--label", kind="list", help="Set metadata on a network")
    p.add("-o", "--opt", kind="list", help="Set driver specific options")
    p.add("--scope", default="", help="Control the network's scope")
    p.add("--subnet", kind="list", help="Subnet in CIDR format that represents a network "
          "segment")
    p.positional("args", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.args))

    def split(values: list[str]) -> list[str]:
        # pflag's StringSlice: each value is itself comma-separated.
        return [v for value in values for v in next(csv.reader([value]))] if values else []

    ipam = consolidate_ipam(split(ns.subnet), split(ns.ip_range), split(ns.gateway),
                            _kv_list(ns.aux_address))
    body: dict[str, Any] = {"Driver": ns.driver, "Scope": ns.scope}
    # EnableIPv4/EnableIPv6 are pointers in the CLI: sent only when given.
    if ns.ipv4 is not None:
        body["EnableIPv4"] = ns.ipv4
    if ns.ipv6 is not None:
        body["EnableIPv6"] = ns.ipv6
    body.update({
        "IPAM": {"Driver": ns.ipam_driver, "Options": _kv_list(ns.ipam_opt), "Config": ipam},
        "Internal": ns.internal,
        "Attachable": ns.attachable,
        "Ingress": ns.ingress,
        "ConfigOnly": ns.config_only,
        "ConfigFrom": {"Network": ns.config_from} if ns.config_from else None,
        "Options": _kv_list(ns.opt),
        "Labels": _kv_list(ns.label),
        "Name": ns.args[0],
    })
    result = cli.client.post_json("/networks/create", None, body) or {}
    cli.out(result.get("Id", ""))
    return 0


# ------------------------------------------------------------ ls / inspect / rm

def ls(cli: Cli, name: str, argv: list[str]) -> int:
    from dockerpy.client.containers import print_listing

    p = Parser(name, "[OPTIONS]", "List networks", max_args=0)
    p.add("-f", "--filter", kind="list", help='Provide filter values (e.g. "driver=bridge")')
    p.add("--format", help="Format output using a custom template")
    p.add("--no-trunc", kind="bool", help="Do not truncate the output")
    p.add("-q", "--quiet", kind="bool", help="Only display network IDs")
    p.positional("args", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.args))
    nets = cli.client.get_json(
        "/networks", {"filters": _filters(p, list(ns.filter), "-f, --filter")}) or []
    nets = sorted(nets, key=lambda n: natural_key(n.get("Name", "")))
    fmt = ns.format or ""
    if ns.quiet and not fmt:
        fmt = "{{.ID}}"
    if not fmt or fmt == "table":
        fmt = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
    print_listing(cli, fmt, [NetworkContext(n, trunc=not ns.no_trunc) for n in nets],
                  NETWORK_HEADERS)
    return 0


def inspect(cli: Cli, name: str, argv: list[str]) -> int:
    from dockerpy.client.system import print_inspected, template_or_fail

    p = Parser(name, "[OPTIONS] NETWORK [NETWORK...]", "Display detailed information on "
               "one or more networks", min_args=1)
    p.add("-f", "--format", help="Format output using a custom template")
    p.add("-v", "--verbose", kind="bool", help="Verbose output for diagnostics")
    p.positional("names", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.names))
    tmpl = template_or_fail(ns.format) if ns.format and ns.format != "json" else None
    results: list[Any] = []
    errors: list[str] = []
    for net in ns.names:
        try:
            results.append(cli.client.get_json(
                f"/networks/{net}", {"verbose": "true" if ns.verbose else None}))
        except APIError as e:
            errors.append(str(e))
    # v28 prints `network inspect --format json` as one compact array.
    return print_inspected(cli, results, errors, tmpl, compact=ns.format == "json")


def rm(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "NETWORK [NETWORK...]", "Remove one or more networks", min_args=1)
    p.add("-f", "--force", kind="bool", help="Do not error if the network does not exist")
    p.positional("networks", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.networks))
    failed = False
    for net in ns.networks:
        # The docker CLI inspects first (to warn before removing a swarm
        # ingress network); we keep the same requests on the wire.
        try:
            cli.client.get_json(f"/networks/{net}")
        except APIError:
            pass
        try:
            cli.client.send("DELETE", f"/networks/{net}")
        except APIError as e:
            if ns.force and e.status == 404:
                continue
            cli.err(str(e))
            failed = True
            continue
        cli.out(net)
    if failed:
        raise StatusError(1, "exit status 1")
    return 0


# ------------------------------------------------------------ connect / disconnect

def endpoint_settings(*, aliases: list[str] | None = None, links: list[str] | None = None,
                      ipv4: str = "", ipv6: str = "", link_local: list[str] | None = None,
                      mac: str = "", driver_opts: dict[str, str] | None = None,
                      gw_priority: int = 0) -> dict[str, Any]:
    """A ``network.EndpointSettings`` as the docker CLI marshals it (every
    field, in Go's order, ``null`` for nil slices and maps)."""
    ipam: dict[str, Any] | None = None
    if ipv4 or ipv6 or link_local:
        ipam = {}
        if ipv4:
            ipam["IPv4Address"] = ipv4
        if ipv6:
            ipam["IPv6Address"] = ipv6
        if link_local:
            ipam["LinkLocalIPs"] = list(link_local)
    return {
        "IPAMConfig": ipam,
        "Links": list(links) if links else None,
        "Aliases": list(aliases) if aliases else None,
        "MacAddress": mac,
        "DriverOpts": dict(driver_opts) if driver_opts else None,
        "GwPriority": gw_priority,
        "NetworkID": "",
        "EndpointID": "",
        "Gateway": "",
        "IPAddress": "",
        "IPPrefixLen": 0,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "DNSNames": None,
    }


def connect(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS] NETWORK CONTAINER", "Connect a container to a network",
               min_args=2, max_args=2)
    p.add("--alias", kind="list", help="Add network-scoped alias for the container")
    p.add("--driver-opt", kind="list", help="driver options for the network")
    p.add("--gw-priority", type=int, default=0, help="Highest gw-priority provides the "
          "default gateway. Accepts positive and negative values.")
    p.add("--ip", default="", help='IPv4 address (e.g., "172.30.100.104")')
    p.add("--ip6", default="", help='IPv6 address (e.g., "2001:db8::33")')
    p.add("--link", kind="list", help="Add link to another container")
    p.add("--link-local-ip", kind="list", help="Add a link-local address for the container")
    p.positional("args", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.args))
    network, container = ns.args
    endpoint = endpoint_settings(
        aliases=None, links=ns.link, ipv4=ns.ip, ipv6=ns.ip6, link_local=ns.link_local_ip,
        driver_opts=None, gw_priority=ns.gw_priority)
    # `network connect` builds the settings literally: empty IPAMConfig,
    # aliases and driver options are sent as {} / [] rather than null.
    if endpoint["IPAMConfig"] is None:
        endpoint["IPAMConfig"] = {}
    endpoint["Aliases"] = list(ns.alias)
    endpoint["DriverOpts"] = _kv_list(ns.driver_opt)
    cli.client.send("POST", f"/networks/{network}/connect", None,
                    {"Container": container, "EndpointConfig": endpoint})
    return 0


def disconnect(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS] NETWORK CONTAINER", "Disconnect a container from a network",
               min_args=2, max_args=2)
    p.add("-f", "--force", kind="bool", help="Force the container to disconnect from a "
          "network")
    p.positional("args", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.args))
    network, container = ns.args
    cli.client.send("POST", f"/networks/{network}/disconnect", None,
                    {"Container": container, "Force": ns.force})
    return 0


# ------------------------------------------------------------ prune

def prune(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS]", "Remove all unused networks", max_args=0)
    p.add("--filter", kind="list", help='Provide filter values (e.g. "until=<timestamp>")')
    p.add("-f", "--force", kind="bool", help="Do not prompt for confirmation")
    p.positional("args", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.args))
    filters = _filters(p, list(ns.filter), "--filter")
    if not ns.force and not confirm(cli, "WARNING! This will remove all custom networks not "
                                         "used by at least one container."):
        return 0
    report = cli.client.post_json("/networks/prune", {"filters": filters}) or {}
    deleted = report.get("NetworksDeleted") or []
    if deleted:
        cli.out("Deleted Networks:")
        for net in deleted:
            cli.out(net)
        cli.out()
    return 0


# ------------------------------------------------------------ port

def _join_host_port(host: str, port: str) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def port(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "CONTAINER [PRIVATE_PORT[/PROTO]]", "List port mappings or a specific "
               "mapping for the container", min_args=1, max_args=2)
    p.positional("args", nargs="*")
    ns = p.parse(cli, argv)
    if not 1 <= len(ns.args) <= 2:
        raise StatusError(1, f"docker: 'docker {name}' requires at least 1 and at most 2 "
                             f"arguments\n\n{p._usage_line()}\n\n"
                             f"Run 'docker {name} --help' for more information")
    container = ns.args[0]
    info = cli.client.get_json(f"/containers/{container}/json") or {}
    ports = (info.get("NetworkSettings") or {}).get("Ports") or {}
    out: list[str] = []
    if len(ns.args) == 2:
        wanted = ns.args[1]
        number, _, proto = wanted.partition("/")
        if not number.isascii() or not number.isdigit():
            raise StatusError(1, f'Error: invalid port ({number}): strconv.ParseUint: '
                                 f'parsing "{number}": invalid syntax')
        if int(number) > 65535:
            raise StatusError(1, f'Error: invalid port ({number}): strconv.ParseUint: '
                                 f'parsing "{number}": value out of range')
        frontends = ports.get(f"{number}/{proto or 'tcp'}") or []
        if not frontends:
            raise StatusError(1, f"Error: No public port '{wanted}' published for {container}")
        out = [_join_host_port(f.get("HostIp", ""), f.get("HostPort", "")) for f in frontends]
    else:
        for private, frontends in ports.items():
            for f in frontends or []:
                out.append(f"{private} -> "
                           f"{_join_host_port(f.get('HostIp', ''), f.get('HostPort', ''))}")
    if out:
        out.sort(key=natural_key)
        cli.out("\n".join(out))
    return 0


# ------------------------------------------------------------ run/create flags

_RUN_USAGE = "[OPTIONS] IMAGE [COMMAND] [ARG...]"
_SHORT_NETWORK = re.compile(r"\w+=\w+(,\w+=\w+)*")


def _is_user_defined(mode: str) -> bool:
    return mode not in ("default", "bridge", "host", "none") and not mode.startswith(
        "container:")


def parse_network_flag(value: str, command: str = "run") -> dict[str, Any]:
    """One ``--network`` value: a name, or ``name=n,alias=a,ip=...``
    (the CLI's ``opts.NetworkOpt``).

    :param command: ``run``/``create``/``container run``..., for messages.
    :raises StatusError: (125) a flag error worded as pflag's.
    """
    opt: dict[str, Any] = {"target": value, "aliases": [], "links": [], "ipv4": "",
                           "ipv6": "", "mac": "", "link_local": [], "driver_opts": {},
                           "gw_priority": 0}
    if not _SHORT_NETWORK.search(value):
        return opt

    def bad(message: str) -> StatusError:
        return StatusError(125, f'invalid argument "{value}" for "--network" flag: {message}'
                                f"\n\nUsage:  docker {command} {_RUN_USAGE}\n\n"
                                f"Run 'docker {command} --help' for more information")

    opt["target"] = ""
    for field in next(csv.reader([value])):
        key, eq, val = field.partition("=")
        key = key.strip().lower()
        if not eq or not key:
            raise bad(f"invalid field {field}")
        if key == "name":
            opt["target"] = val
        elif key == "alias":
            opt["aliases"].append(val)
        elif key == "ip":
            opt["ipv4"] = val
        elif key == "ip6":
            opt["ipv6"] = val
        elif key == "mac-address":
            opt["mac"] = val
        elif key == "link-local-ip":
            opt["link_local"].append(val)
        elif key == "driver-opt":
            k, eq2, v = val.lower().partition("=")
            if not eq2 or not k:
                raise bad("invalid key value pair format in driver options")
            opt["driver_opts"][k.strip()] = v.strip()
        elif key == "gw-priority":
            try:
                opt["gw_priority"] = int(val)
            except ValueError:
                raise bad(f'strconv.Atoi: parsing "{val}": invalid syntax') from None
        else:
            raise bad(f"invalid field key {key}")
    if not opt["target"]:
        raise bad("network name/id is not specified")
    return opt


_MAC = re.compile(r"^[0-9a-fA-F]{2}([:-])(?:[0-9a-fA-F]{2}\1){4}[0-9a-fA-F]{2}$")


def _apply_flags(n: dict[str, Any], flags: dict[str, Any]) -> None:
    """The CLI's ``applyContainerOptions``: the single-network flags
    (``--network-alias``, ``--ip``...) go to the first ``--network``."""
    for key, flag, what in (("aliases", "--network-alias", "alias"),
                            ("links", "--link", "links"),
                            ("ipv4", "--ip", "IPv4 address"),
                            ("ipv6", "--ip6", "IPv6 address"),
                            ("mac", "--mac-address", "MAC address"),
                            ("link_local", "--link-local-ip", "link-local IP addresses")):
        if n[key] and flags[key]:
            raise StatusError(125, f"conflicting options: cannot specify both {flag} and "
                                   f"per-network {what}")
    # On a user-defined network --link is an endpoint alias; on the default
    # bridge it is a legacy link (HostConfig.Links only).
    for key in ("aliases", "ipv4", "ipv6", "mac", "link_local") + (
            ("links",) if _is_user_defined(n["target"]) else ()):
        if flags[key]:
            n[key] = flags[key]


def _settings(n: dict[str, Any]) -> dict[str, Any]:
    """The CLI's ``parseNetworkAttachmentOpt``."""
    if not n["target"].strip():
        raise StatusError(125, "no name set for network")
    if not _is_user_defined(n["target"]):
        if n["aliases"]:
            raise StatusError(125, "network-scoped aliases are only supported for "
                                   "user-defined networks")
        if n["links"]:
            raise StatusError(125, "links are only supported for user-defined networks")
    if n["mac"] and not _MAC.match(n["mac"]):
        raise StatusError(125, f"{n['mac']} is not a valid mac address")
    return endpoint_settings(aliases=n["aliases"], links=n["links"], ipv4=n["ipv4"],
                             ipv6=n["ipv6"], link_local=n["link_local"], mac=n["mac"],
                             driver_opts=n["driver_opts"], gw_priority=n["gw_priority"])


def _endpoints(networks: list[dict[str, Any]], flags: dict[str, Any]) -> dict[str, Any]:
    """The CLI's ``parseNetworkOpts``."""
    endpoints: dict[str, Any] = {}
    if not networks:
        default = parse_network_flag("default")
        _apply_flags(default, flags)
        endpoints["default"] = _settings(default)
    user_defined = other = False
    for i, n in enumerate(networks):
        if _is_user_defined(n["target"]):
            user_defined = True
        else:
            other = True
        if i == 0:
            _apply_flags(n, flags)
        ep = _settings(n)
        if n["target"] in endpoints:
            raise StatusError(125, f'network "{n["target"]}" is specified multiple times')
        # A lone network without options is left for the daemon to fill in.
        if i == 0 and len(networks) == 1 and ep == endpoint_settings():
            continue
        endpoints[n["target"]] = ep
    if user_defined and other:
        raise StatusError(125, "conflicting options: cannot attach both user-defined and "
                               "non-user-defined network-modes")
    # Go marshals map keys sorted.
    return {k: endpoints[k] for k in sorted(endpoints)}


def network_config(ns: Any, command: str = "run") -> tuple[str, dict[str, Any]]:
    """``HostConfig.NetworkMode`` and ``NetworkingConfig.EndpointsConfig``
    for the parsed run/create flags.

    :param ns: carries ``network`` (a list), and optionally
        ``network_alias``, ``link``, ``ip``, ``ip6``, ``link_local_ip`` and
        ``mac_address``.
    :param command: the command as typed (``run``, ``container create``...).
    :return: (network mode, endpoints config).
    :raises StatusError: (status 125) worded as the docker CLI words it.
    """
    networks = [parse_network_flag(v, command) for v in ns.network or []]
    flags = {
        "aliases": list(getattr(ns, "network_alias", None) or []),
        "links": list(getattr(ns, "link", None) or []),
        "ipv4": getattr(ns, "ip", None) or "",
        "ipv6": getattr(ns, "ip6", None) or "",
        "mac": getattr(ns, "mac_address", None) or "",
        "link_local": list(getattr(ns, "link_local_ip", None) or []),
    }
    try:
        endpoints = _endpoints(networks, flags)
    except StatusError as e:
        # reportError names the cobra command alone: "create", not "container create".
        raise StatusError(125, f"docker: {e.message}\n\nRun 'docker {command.split()[-1]} "
                               f"--help' for more information") from None
    return (networks[0]["target"] if networks else "default"), endpoints
