# -*- test-case-name: dockerpy.test.test_container_etcfiles -*-
"""The files we manage inside every container: /etc/hostname, /etc/hosts,
/etc/resolv.conf, written in the container's directory and bind-mounted.

/etc/hosts maps localhost and, on the bridge network, the container's own
address to its hostname; resolv.conf is the host's minus loopback resolvers
(which a container in its own network namespace cannot reach).
"""

from __future__ import annotations

import os
import re

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


def resolv_conf(host_text: str, dns: list[str], search: list[str], options: list[str]) -> str:
    lines = []
    nameservers = list(dns)
    host_search: list[str] = []
    host_options: list[str] = []
    for line in host_text.splitlines():
        parts = line.split()
        if not parts or parts[0].startswith(("#", ";")):
            continue
        if parts[0] == "nameserver" and len(parts) > 1 and not dns:
            if not re.match(r"^(127\.|::1$)", parts[1]):
                nameservers.append(parts[1])
        elif parts[0] in ("search", "domain"):
            host_search = parts[1:]
        elif parts[0] == "options":
            host_options += parts[1:]
    if not nameservers:
        nameservers = list(DEFAULT_DNS)
    for ns in nameservers:
        lines.append(f"nameserver {ns}")
    if search or host_search:
        lines.append("search " + " ".join(search or host_search))
    if options or host_options:
        lines.append("options " + " ".join(options or host_options))
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
          address: str | None = None) -> list[dict]:
    """Write the files (blocking, small) and return the OCI mounts for them.

    :param address: the container's IP on the bridge, mapped to its hostname
        in /etc/hosts as Docker does.
    """
    files = {
        "hostname": hostname + "\n",
        "hosts": (_read("/etc/hosts") if host_network else hosts(hostname, [])) +
                 (f"{address}\t{hostname}\n" if address and not host_network else "") +
                 "".join(f"{ip}\t{name}\n" for name, _, ip in
                         (e.partition(":") for e in extra_hosts) if ip),
        "resolv.conf": (_read("/etc/resolv.conf") if host_network and not dns else
                        resolv_conf(_read("/etc/resolv.conf"), dns, dns_search, dns_options)),
    }
    mounts = []
    for name, text in files.items():
        path = os.path.join(cdir, name)
        atomic.write_bytes(path, text.encode(), 0o644, durable=False)
        mounts.append({"destination": f"/etc/{name}", "type": "bind", "source": path,
                       "options": ["rbind", "rprivate"]})
    return mounts
