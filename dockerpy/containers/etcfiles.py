# -*- test-case-name: dockerpy.test.test_container_etcfiles -*-
"""The files we manage inside every container: /etc/hostname, /etc/hosts,
/etc/resolv.conf, written in the container's directory and bind-mounted.

/etc/hosts maps localhost and, on a bridge network, the container's own
address to its hostname.  resolv.conf is derived from the host's as Docker
does it:

- when the host's /etc/resolv.conf only points at loopback resolvers (the
  systemd-resolved stub 127.0.0.53, a local dnsmasq), which a container in
  its own network namespace cannot reach, the real upstreams are read from
  systemd-resolved's /run/systemd/resolve/resolv.conf;
- on the default bridge the container gets the host's non-loopback
  nameservers (or ``--dns``), falling back to Google's public resolvers;
- on user-defined networks it gets only the embedded DNS server
  (``nameserver 127.0.0.11``, served by :mod:`dockerpy.network.dns`) with
  ``options ndots:0``; that server forwards what it does not know to the
  container's ``--dns`` servers, else to :func:`host_upstreams`.

This module only computes and writes files; it never touches the network.
"""

from __future__ import annotations

import ipaddress
import os

from dockerpy import atomic

HOSTS_BASE = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)
# Docker's fallback when the host only has loopback resolvers.
DEFAULT_DNS = ("8.8.8.8", "8.8.4.4")
#: The address of the embedded DNS server inside containers on user networks.
EMBEDDED_DNS = "127.0.0.11"
HOST_RESOLV_CONF = "/etc/resolv.conf"
#: systemd-resolved's list of the real upstream servers (behind its stub).
RESOLVED_RESOLV_CONF = "/run/systemd/resolve/resolv.conf"
HOST_HOSTS = "/etc/hosts"


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _parse(text: str) -> tuple[list[str], list[str], list[str]]:
    """Return the nameservers, search domains and options of a resolv.conf."""
    nameservers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0].startswith(("#", ";")):
            continue
        if parts[0] == "nameserver" and len(parts) > 1:
            nameservers.append(parts[1])
        elif parts[0] in ("search", "domain"):
            # The last search/domain line wins, as in glibc.
            search = parts[1:]
        elif parts[0] == "options":
            options += parts[1:]
    return nameservers, search, options


def host_resolv_text(host_path: str = HOST_RESOLV_CONF,
                     resolved_path: str = RESOLVED_RESOLV_CONF) -> str:
    """Blocking: the host resolv.conf containers derive theirs from.

    That is the host's own, unless it only lists loopback nameservers and
    systemd-resolved's file exists: then the latter, which names the real
    upstreams (Docker does the same).
    """
    text = _read(host_path)
    nameservers = _parse(text)[0]
    if nameservers and all(is_loopback(ns) for ns in nameservers):
        alternative = _read(resolved_path)
        if alternative:
            return alternative
    return text


def _usable(nameservers: list[str]) -> list[str]:
    return [ns for ns in nameservers if not is_loopback(ns)]


def host_upstreams(host_path: str = HOST_RESOLV_CONF,
                   resolved_path: str = RESOLVED_RESOLV_CONF) -> list[str]:
    """Blocking: the host's nameservers a container's DNS may be sent to.

    Loopback servers are left out; when none remains anywhere, Docker's
    default public resolvers are returned.

    :return: IP addresses (v4 or v6), in the host's order.
    """
    found = _usable(_parse(host_resolv_text(host_path, resolved_path))[0])
    return found or list(DEFAULT_DNS)


def resolv_conf(host_text: str, dns: list[str], search: list[str], options: list[str]) -> str:
    """A default-bridge container's resolv.conf, from the host's text."""
    host_ns, host_search, host_options = _parse(host_text)
    nameservers = list(dns) if dns else _usable(host_ns)
    if not nameservers:
        nameservers = list(DEFAULT_DNS)
    lines = [f"nameserver {ns}" for ns in nameservers]
    if search or host_search:
        lines.append("search " + " ".join(search or host_search))
    if options or host_options:
        lines.append("options " + " ".join(options or host_options))
    return "\n".join(lines) + "\n"


def embedded_resolv_conf(host_text: str, search: list[str], options: list[str]) -> str:
    """A user-network container's resolv.conf: only the embedded server.

    Search domains and options come from ``--dns-search``/``--dns-option``
    or else the host; ``ndots:0`` is added unless an ndots option is already
    there, so that single-label container names are tried as they are
    first (Docker 20.10 and later write the same).
    """
    _, host_search, host_options = _parse(host_text)
    search = search or host_search
    opts = list(options or host_options)
    if not any(o.startswith("ndots:") for o in opts):
        opts.append("ndots:0")
    lines = [f"nameserver {EMBEDDED_DNS}"]
    if search and " ".join(search).strip() != ".":
        lines.append("search " + " ".join(search))
    lines.append("options " + " ".join(opts))
    return "\n".join(lines) + "\n"


def hosts(hostname: str, extra: list[str]) -> str:
    out = HOSTS_BASE
    for entry in extra:
        name, _, ip = entry.partition(":")
        if ip:
            out += f"{ip}\t{name}\n"
    return out


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def write(cdir: str, hostname: str, domainname: str, host_network: bool, extra_hosts: list[str],
          dns: list[str], dns_search: list[str], dns_options: list[str],
          address: str | None = None, *, embedded_dns: bool = False,
          host_resolv_conf: str = HOST_RESOLV_CONF,
          resolved_resolv_conf: str = RESOLVED_RESOLV_CONF,
          host_hosts: str = HOST_HOSTS) -> list[dict]:
    """Write the files (blocking, small) and return the OCI mounts for them.

    :param address: the container's IP on its network, mapped to its
        hostname in /etc/hosts as Docker does.
    :param embedded_dns: the container is on a user-defined network, so its
        resolv.conf names the embedded DNS server (127.0.0.11) only; the
        caller serves it with :class:`dockerpy.network.dns.EmbeddedDNS`,
        forwarding to ``dns`` (used as given: loopback servers are reachable
        from the daemon's namespace), else to :func:`host_upstreams`.
    :param host_resolv_conf: the host files read (for tests).
    """
    if host_network:
        etc_hosts = _read(host_hosts)
    else:
        etc_hosts = hosts(hostname, [])
        if address:
            fqdn = f"{hostname}.{domainname} {hostname}" if domainname else hostname
            etc_hosts += f"{address}\t{fqdn}\n"
    etc_hosts += "".join(f"{ip}\t{name}\n" for name, _, ip in
                         (e.partition(":") for e in extra_hosts) if ip)
    if host_network and not dns:
        # The host's own resolvers, loopback stub included, are reachable.
        resolv = _read(host_resolv_conf)
    elif host_network:
        resolv = resolv_conf(_read(host_resolv_conf), dns, dns_search, dns_options)
    elif embedded_dns:
        resolv = embedded_resolv_conf(host_resolv_text(host_resolv_conf, resolved_resolv_conf),
                                      dns_search, dns_options)
    else:
        resolv = resolv_conf(host_resolv_text(host_resolv_conf, resolved_resolv_conf),
                             dns, dns_search, dns_options)
    files = {"hostname": hostname + "\n", "hosts": etc_hosts, "resolv.conf": resolv}
    mounts = []
    for name, text in files.items():
        path = os.path.join(cdir, name)
        atomic.rewrite(path, text.encode(), 0o644)
        mounts.append({"destination": f"/etc/{name}", "type": "bind", "source": path,
                       "options": ["rbind", "rprivate"]})
    return mounts
